//! The JSON the compression scenarios send: a deterministic corpus of [`DOCS`] documents of
//! 200 B to 10 KiB of the kinds a WebSocket application sends (chat messages, a page of chat
//! history, presence updates, an order book snapshot, a page of a catalogue), generated from a
//! fixed seed so that every run, on every machine, sends the same bytes; and the ~1 KiB chat
//! message the compressed fan-out fires.
//!
//! Text is drawn from a vocabulary of common English words, identifiers and prices from a
//! pseudo-random sequence: compressible as real JSON is (repeated keys, words), not as a run of
//! one byte is.

use serde_json::{json, Value};

/// Documents in the corpus.
pub const DOCS: usize = 50;

/// Smallest and largest document, bytes.
pub const MIN_SIZE: usize = 200;
/// See [`MIN_SIZE`].
pub const MAX_SIZE: usize = 10 << 10;

const WORDS: &[&str] = &[
    "the",
    "a",
    "to",
    "and",
    "of",
    "in",
    "is",
    "it",
    "you",
    "that",
    "for",
    "on",
    "with",
    "this",
    "we",
    "be",
    "are",
    "not",
    "have",
    "can",
    "will",
    "just",
    "so",
    "but",
    "at",
    "if",
    "do",
    "me",
    "what",
    "all",
    "my",
    "there",
    "about",
    "out",
    "up",
    "from",
    "one",
    "when",
    "get",
    "like",
    "now",
    "know",
    "think",
    "time",
    "see",
    "good",
    "new",
    "today",
    "tomorrow",
    "meeting",
    "release",
    "build",
    "deploy",
    "server",
    "client",
    "branch",
    "review",
    "merge",
    "ticket",
    "customer",
    "order",
    "price",
    "update",
    "thanks",
    "please",
    "check",
    "looks",
    "great",
    "sure",
    "maybe",
    "later",
    "lunch",
    "coffee",
    "office",
    "remote",
    "call",
    "slides",
    "draft",
    "issue",
    "fixed",
    "broken",
    "test",
    "green",
    "red",
    "staging",
    "production",
    "rollback",
    "latency",
    "memory",
    "cache",
    "database",
    "query",
    "index",
    "migration",
    "schema",
    "config",
    "feature",
    "flag",
    "design",
    "mockup",
    "feedback",
    "roadmap",
    "sprint",
    "estimate",
    "week",
    "monday",
    "friday",
    "team",
    "everyone",
    "anyone",
    "question",
    "answer",
    "idea",
    "plan",
    "agree",
    "done",
    "working",
    "waiting",
    "blocked",
    "ready",
    "shipping",
    "again",
    "first",
    "last",
    "next",
    "soon",
    "already",
    "really",
    "very",
    "quick",
    "small",
    "big",
    "better",
];

const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "uma", "victor", "wendy",
];

const ROOMS: &[&str] = &["general", "random", "dev", "ops", "design", "sales"];

const EMOJI: &[&str] = &["👍", "🎉", "😂", "❤️", "👀", "🚀"];

const CATEGORIES: &[&str] = &["kitchen", "garden", "office", "outdoor", "toys", "books"];

const SYMBOLS: &[&str] = &["BTC-USD", "ETH-USD", "SOL-EUR"];

/// xorshift64*: a fixed sequence from a fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    fn sentence(&mut self) -> String {
        let n = self.between(4, 14);
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(self.pick(WORDS));
        }
        s.push(if self.below(5) == 0 { '?' } else { '.' });
        s
    }

    fn timestamp(&mut self) -> String {
        format!(
            "2025-03-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.between(1, 28),
            self.below(24),
            self.below(60),
            self.below(60),
            self.below(1000)
        )
    }
}

fn size(value: &Value) -> usize {
    serde_json::to_string(value).map_or(0, |s| s.len())
}

fn user(rng: &mut Rng) -> Value {
    let name = rng.pick(NAMES);
    let id = rng.between(1000, 99_999);
    json!({
        "id": format!("u_{id}"),
        "name": name,
        "display_name": format!("{}{}", name[..1].to_uppercase(), &name[1..]),
        "avatar": format!("https://cdn.example.com/avatars/{id}.png"),
    })
}

/// One chat message whose text has `sentences` sentences.
fn chat_message(rng: &mut Rng, sentences: usize) -> Value {
    let text: Vec<String> = (0..sentences).map(|_| rng.sentence()).collect();
    let mut msg = json!({
        "type": "chat.message",
        "id": format!("msg_{:08x}", rng.next() as u32),
        "room": rng.pick(ROOMS),
        "ts": rng.timestamp(),
        "user": user(rng),
        "text": text.join(" "),
        "edited": rng.below(8) == 0,
    });
    if rng.below(3) == 0 {
        msg["mentions"] = json!([format!("u_{}", rng.between(1000, 99_999))]);
    }
    if rng.below(2) == 0 {
        let reactions: Vec<Value> = (0..rng.between(1, 3))
            .map(|_| json!({"emoji": rng.pick(EMOJI), "count": rng.between(1, 12)}))
            .collect();
        msg["reactions"] = Value::Array(reactions);
    }
    msg
}

/// Appends items made by `item` to the array at `doc[key]` until the document is `target`
/// bytes or more (but at most [`MAX_SIZE`]).
fn grow(doc: &mut Value, key: &str, target: usize, mut item: impl FnMut() -> Value) {
    let mut len = size(doc);
    loop {
        let next = item();
        let add = size(&next) + 1;
        if len + add > MAX_SIZE {
            return;
        }
        doc[key]
            .as_array_mut()
            .expect("an array to grow")
            .push(next);
        len += add;
        if len >= target {
            return;
        }
    }
}

fn price(rng: &mut Rng, base: f64, spread: f64) -> String {
    let cents = rng.below(10_000) as f64 / 10_000.0;
    format!("{:.2}", base + spread * cents)
}

/// Document `index` of the corpus, about `target` bytes.
fn document(rng: &mut Rng, index: usize, target: usize) -> Value {
    match index % 10 {
        // Single chat messages: half the corpus.
        0..=4 => {
            let mut sentences = 1;
            loop {
                let mut probe = Rng(rng.0);
                let msg = chat_message(&mut probe, sentences);
                if size(&msg) >= target || sentences >= 40 {
                    rng.0 = probe.0;
                    return msg;
                }
                sentences += 1;
            }
        }
        // A page of chat history, as a client loads it when it joins a room.
        5 => {
            let mut doc = json!({
                "type": "chat.history",
                "room": rng.pick(ROOMS),
                "before": rng.timestamp(),
                "has_more": true,
                "messages": [],
            });
            grow(&mut doc, "messages", target, || {
                let n = rng.between(1, 3);
                chat_message(rng, n)
            });
            doc
        }
        // Who is online.
        6 => {
            let mut doc = json!({
                "type": "presence.snapshot",
                "room": rng.pick(ROOMS),
                "users": [],
            });
            grow(&mut doc, "users", target, || {
                let mut u = user(rng);
                u["status"] = json!(["online", "away", "busy"][rng.below(3)]);
                u["last_seen"] = json!(rng.timestamp());
                u
            });
            doc
        }
        // An order book snapshot.
        7 => {
            let symbol = rng.pick(SYMBOLS);
            let mid =
                [64_000.0, 3_100.0, 140.0][SYMBOLS.iter().position(|&s| s == symbol).unwrap_or(0)];
            let mut doc = json!({
                "type": "book.snapshot",
                "symbol": symbol,
                "seq": rng.between(1_000_000, 9_999_999),
                "ts": rng.timestamp(),
                "bids": [],
                "asks": [],
            });
            let mut level = 0usize;
            grow(&mut doc, "bids", target / 2, || {
                level += 1;
                json!([
                    price(rng, mid - level as f64 * mid * 1e-4, mid * 1e-4),
                    format!("{:.4}", rng.below(50_000) as f64 / 1e4)
                ])
            });
            let mut level = 0usize;
            grow(&mut doc, "asks", target, || {
                level += 1;
                json!([
                    price(rng, mid + level as f64 * mid * 1e-4, mid * 1e-4),
                    format!("{:.4}", rng.below(50_000) as f64 / 1e4)
                ])
            });
            doc
        }
        // A page of a product catalogue.
        _ => {
            let category = rng.pick(CATEGORIES);
            let mut doc = json!({
                "type": "catalog.page",
                "category": category,
                "page": rng.between(1, 40),
                "per_page": 50,
                "items": [],
            });
            grow(&mut doc, "items", target, || {
                let words: Vec<&str> = (0..rng.between(2, 5)).map(|_| rng.pick(WORDS)).collect();
                json!({
                    "id": rng.between(100_000, 999_999),
                    "sku": format!("SKU-{:06}", rng.below(1_000_000)),
                    "title": words.join(" "),
                    "price": {"amount": price(rng, 5.0, 200.0), "currency": "EUR"},
                    "in_stock": rng.below(4) != 0,
                    "rating": rng.between(20, 50) as f64 / 10.0,
                    "tags": [category, rng.pick(WORDS)],
                    "image": format!("https://cdn.example.com/items/{}.jpg", rng.below(1_000_000)),
                })
            });
            doc
        }
    }
}

/// The corpus: [`DOCS`] JSON documents, their sizes spread evenly on a log scale from
/// [`MIN_SIZE`] to [`MAX_SIZE`] within each kind's range (a single chat message stays under
/// 2 KiB). The same every run.
pub fn documents() -> Vec<String> {
    let mut rng = Rng(0x5eed_0fc0_ffee);
    (0..DOCS)
        .map(|i| {
            // A size for each document (growing with `i`), a kind cycling through all ten
            // (7 is prime to 10), and single chat messages capped at 2,000 bytes.
            let t = i as f64 / (DOCS - 1) as f64;
            let mut target =
                (MIN_SIZE as f64 * (MAX_SIZE as f64 / MIN_SIZE as f64).powf(t)) as usize;
            let kind = (i * 7) % 10;
            if kind <= 4 {
                target = target.min(2000);
            }
            let doc = document(&mut rng, kind, target);
            serde_json::to_string(&doc).expect("serializable")
        })
        .collect()
}

/// The fan-out's compressed message for fire `seq`: a ~1 KiB chat message, `{"seq":SEQ,…}`
/// (the sequence number first, so that a listener reads it without parsing the JSON).
pub fn fanout_message(seq: u64) -> String {
    static BODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = BODY.get_or_init(|| {
        let mut sentences = 1;
        loop {
            let msg = chat_message(&mut Rng(0x0fa0_0017), sentences);
            let text = serde_json::to_string(&msg).expect("serializable");
            if text.len() >= 1000 {
                break text;
            }
            sentences += 1;
        }
    });
    format!("{{\"seq\":{seq},{}", &body[1..])
}

/// The sequence number at the start of a [`fanout_message`].
pub fn fanout_seq(text: &[u8]) -> Option<u64> {
    let rest = text.strip_prefix(b"{\"seq\":")?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_valid_json_of_the_promised_sizes_and_stable() {
        let docs = documents();
        assert_eq!(docs.len(), DOCS);
        for d in &docs {
            assert!(
                (MIN_SIZE..=MAX_SIZE).contains(&d.len()),
                "a document of {} bytes",
                d.len()
            );
            serde_json::from_str::<Value>(d).unwrap();
        }
        assert_eq!(docs, documents());
        let kinds: std::collections::BTreeSet<String> = docs
            .iter()
            .map(|d| serde_json::from_str::<Value>(d).unwrap()["type"].to_string())
            .collect();
        assert_eq!(kinds.len(), 5, "{kinds:?}");
    }

    #[test]
    fn fanout_message_carries_its_seq() {
        let m = fanout_message(4321);
        assert!((1000..1300).contains(&m.len()), "{}", m.len());
        assert_eq!(fanout_seq(m.as_bytes()), Some(4321));
        let v: Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v["seq"], 4321);
        assert_eq!(fanout_seq(b"{\"x\":1}"), None);
    }
}
