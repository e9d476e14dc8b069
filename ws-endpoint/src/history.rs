//! Room history and missed-message recovery: recorded room messages with ids, and a replay of
//! what a reconnecting client missed, in order, exactly once, with no gap and no duplicate at
//! the seam with live messages.
//!
//! A plain [`Hub::to_room`] is fire-and-forget: a client whose connection dropped for a
//! moment has lost whatever was said meanwhile. For rooms that need better:
//!
//! 1. **Keep a history** for the endpoint's rooms: [`Hub::keep_history`] with a [`History`]
//!    (the last N messages and/or the last M minutes of each room).
//! 2. **Send recorded messages** with [`Hub::to_room_recorded`]: each gets a [`MessageId`], and
//!    the message can carry it (the closure receives an [`IdMark`]; wherever the message
//!    formats or serialises it, the id appears).
//! 3. **Replay** on reconnection: the client tells the last id it saw (e.g. `?since=ID`) and
//!    the endpoint calls [`Session::join_since`] instead of [`Session::join`]. The session joins
//!    the room at once; the recorded messages after `since` follow, then the live ones.
//!
//! ```
//! use ws_endpoint::prelude::*;
//! use ws_endpoint::history::{History, MessageId};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Query { since: Option<MessageId> }
//!
//! struct Room { name: String }
//!
//! #[server_endpoint("/room/{name}")]
//! impl Room {
//!     #[on_open]
//!     async fn open(session: &Session, #[path_param] name: String, q: web::Query<Query>) -> Self {
//!         // Once per process is enough; later calls replace the settings.
//!         Room::hub().keep_history(History::last(100));
//!         match &q.since {
//!             None => { session.join(&name); }
//!             Some(since) => match session.join_since(&name, since) {
//!                 Ok(replay) => match replay.await {
//!                     Ok(replayed) => tracing::debug!(count = replayed.count, "caught up"),
//!                     // Older than the history: tell the client to start afresh.
//!                     Err(err) => { let _ = session.send(format!("lost:{err}")).await; }
//!                 },
//!                 Err(err) => tracing::warn!(%err, "no replay"),
//!             },
//!         }
//!         Room { name }
//!     }
//!
//!     #[on_message]
//!     async fn text(&mut self, msg: String) {
//!         let sent = Room::hub()
//!             .to_room_recorded(&self.name, |id| Json(serde_json::json!({ "id": id, "text": msg })))
//!             .await;
//!         if let Err(err) = sent {
//!             tracing::warn!(%err, "not sent");
//!         }
//!     }
//! }
//! ```
//!
//! **Where the history lives.** In this process's memory by default (nothing to install; a
//! restart forgets it). With [`crate::cluster::connect_redis`] called, in one Redis Stream per
//! room shared by every server process: ids come from Redis, each recorded message is one
//! atomic append-and-publish, every process delivers it in the stream's order (the sender's
//! own process included, from its subscription), and a client may reconnect to any process.
//!
//! **What is promised.** A session joined with [`join_since`](Session::join_since) receives
//! every recorded message of the room after `since`, each once, in id order: first those
//! already in the history, then the live ones, with nothing lost or doubled between them,
//! however many senders keep sending meanwhile (on any process). `since` may be any id in the
//! history or the newest one trimmed from it (so up to `max_messages` are replayed); an older
//! id, or one the history never had or lost (a restart), is reported as
//! [`HistoryError::NotInHistory`]; the session is then joined and gets the live messages, and
//! the application should tell the client to start afresh (reload, resync).
//! Recorded messages are only sent once the history has them: with Redis unreachable,
//! [`to_room_recorded`](Hub::to_room_recorded) fails ([`HistoryError::Unavailable`]) and
//! nobody gets the message. A recorded message is never dropped for a member that has no room
//! for it in its outbound queue, whatever the endpoint's `slow_consumer` policy: that member's
//! connection is dropped (`on_close` gets 1008) and its client resumes with its last id.
//!
//! **Limits.** A replay is at most [`History::max_messages`] messages. While it runs, live
//! messages for the session are held (at most `max(max_messages, 64)`); a session that falls
//! further behind is closed with 1008 (it can reconnect with its last id). Memory for the
//! in-process history is at most `max_messages` messages per room that had a message within
//! [`History::quiet_room_kept`]; with no age limit, per room ever recorded.

use std::{
    any::TypeId,
    collections::{HashMap, VecDeque},
    fmt,
    future::{Future, IntoFuture},
    pin::Pin,
    str::FromStr,
    sync::{LazyLock, Mutex, OnceLock},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;

use crate::{
    close::{CloseCode, CloseReason},
    error::SendError,
    hub::{self, Hub},
    message::{Message, Sendable},
    registry,
    session::{OutFrame, Session},
    wire::OpCode,
};

/// How much of each room's recent past an endpoint keeps ([`Hub::keep_history`]): at most
/// `max_messages` messages, none older than `max_age`.
///
/// ```
/// use std::time::Duration;
/// use ws_endpoint::history::History;
///
/// let h = History::last(500).max_age(Duration::from_secs(300));
/// assert_eq!((h.max_messages(), h.age_limit()), (500, Some(Duration::from_secs(300))));
/// assert_eq!(History::default().max_messages(), 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    max_messages: usize,
    max_age: Option<Duration>,
}

impl Default for History {
    /// The last 100 messages of the last 10 minutes.
    fn default() -> Self {
        History {
            max_messages: 100,
            max_age: Some(Duration::from_secs(600)),
        }
    }
}

impl History {
    /// The last `n` messages of each room (at least 1), with no age limit.
    pub fn last(n: usize) -> Self {
        History {
            max_messages: n.max(1),
            max_age: None,
        }
    }

    /// Forgets messages older than `age` too (`age` is taken between 1 ms and ten years).
    ///
    /// A room whose messages have all aged out still remembers its newest id for
    /// [`quiet_room_kept`](Self::quiet_room_kept) (twice `age`, plus a minute): a client that
    /// saw that message resumes with nothing missed. After that the room is forgotten, and
    /// resuming from it is [`HistoryError::NotInHistory`].
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age.clamp(Duration::from_millis(1), MAX_AGE));
        self
    }

    /// How long a room with an age limit is remembered after its newest message (its
    /// messages age out after [`age_limit`](Self::age_limit); its newest id is kept this
    /// long): twice the age limit, plus a minute. `None` without an age limit (the room's last
    /// messages are kept for good).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use ws_endpoint::history::History;
    /// let h = History::last(10).max_age(Duration::from_secs(5));
    /// assert_eq!(h.quiet_room_kept(), Some(Duration::from_secs(70)));
    /// assert_eq!(History::last(10).quiet_room_kept(), None);
    /// ```
    pub fn quiet_room_kept(&self) -> Option<Duration> {
        self.max_age.map(|age| age * 2 + Duration::from_secs(60))
    }

    /// The most messages kept per room.
    pub fn max_messages(&self) -> usize {
        self.max_messages
    }

    /// The age limit, if any.
    pub fn age_limit(&self) -> Option<Duration> {
        self.max_age
    }

    /// The most live messages held for a session while its replay runs.
    fn hold_limit(&self) -> usize {
        self.max_messages.max(64)
    }
}

/// The id of a recorded room message ([`Hub::to_room_recorded`]): increasing in the order the
/// room's members receive its messages. Its text form is `MILLIS-SEQ` (a Redis Stream id; the
/// in-process history uses the same form), and it is what a client hands back to resume.
///
/// ```
/// use ws_endpoint::history::MessageId;
/// let a: MessageId = "1764669600000-0".parse().unwrap();
/// let b: MessageId = "1764669600000-1".parse().unwrap();
/// assert!(a < b);
/// assert_eq!(b.to_string(), "1764669600000-1");
/// assert!("17".parse::<MessageId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    ms: u64,
    seq: u64,
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl MessageId {
    /// The id at full width, both numbers zero-padded to 20 digits (41 bytes, the
    /// placeholder's length): how it is written into binary messages. It parses to the same
    /// id.
    ///
    /// ```
    /// use ws_endpoint::history::MessageId;
    /// let id: MessageId = "1764669600000-3".parse().unwrap();
    /// assert_eq!(id.fixed_width(), "00000001764669600000-00000000000000000003");
    /// assert_eq!(id.fixed_width().parse::<MessageId>().unwrap(), id);
    /// ```
    pub fn fixed_width(&self) -> String {
        format!("{:020}-{:020}", self.ms, self.seq)
    }

    /// The id's millisecond.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn millisecond(&self) -> u64 {
        self.ms
    }

    /// The greatest id before millisecond `ms`: every id of `ms` or later is greater.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn before_millisecond(ms: u64) -> MessageId {
        MessageId {
            ms: ms.saturating_sub(1),
            seq: u64::MAX,
        }
    }
}

/// A text that is not a [`MessageId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessageId(String);

impl fmt::Display for BadMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a message id (MILLIS-SEQ, e.g. 1764669600000-0)",
            self.0
        )
    }
}

impl std::error::Error for BadMessageId {}

impl FromStr for MessageId {
    type Err = BadMessageId;

    fn from_str(s: &str) -> Result<Self, BadMessageId> {
        let bad = || BadMessageId(s.chars().take(64).collect());
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(bad());
        }
        Ok(MessageId {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl serde::Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a recorded message's id goes: the closure of [`Hub::to_room_recorded`] gets one and
/// formats (`{id}`) or serialises it (as a string) wherever the message should carry its id.
///
/// The closure runs once, before the id exists (with Redis, Redis assigns it): the mark writes
/// a placeholder, random per process, that is replaced by the id in the bytes of the message.
/// So use the mark only to format or serialise it into the message (any number of times),
/// not to compute with (`to_string().len()` is the placeholder's).
///
/// In a text message the id replaces it in its short form (`1764669600000-3`). In a binary
/// message it is written at full width ([`MessageId::fixed_width`]), exactly as long as the
/// placeholder (41 bytes), so formats that prefix a string with its length (MessagePack, CBOR
/// through [`crate::codec`]) stay valid; the full width parses back to the same id.
#[derive(Debug)]
pub struct IdMark(());

/// The placeholder: `wsid` and 37 random hex digits, 41 bytes, as long as an id written at
/// full width ([`MessageId::fixed_width`]: 20 digits, `-`, 20 digits), so that a binary
/// message whose format prefixes strings with their length (MessagePack, CBOR) stays valid
/// when the id replaces it.
static PLACEHOLDER: LazyLock<String> = LazyLock::new(|| {
    let s = format!(
        "wsid{:016x}{:016x}{:05x}",
        rand::random::<u64>(),
        rand::random::<u64>(),
        rand::random::<u32>() & 0xf_ffff
    );
    debug_assert_eq!(s.len(), FIXED_WIDTH);
    s
});

/// The longest age limit, ten years (Redis's expiry arithmetic stays far from overflowing).
const MAX_AGE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The length of an id written at full width, and of the placeholder.
const FIXED_WIDTH: usize = 41;

impl fmt::Display for IdMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&PLACEHOLDER)
    }
}

impl serde::Serialize for IdMark {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&PLACEHOLDER)
    }
}

/// A message with places for its id: its bytes cut where the placeholder was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub(crate) text: bool,
    pub(crate) parts: Vec<Bytes>,
}

impl Template {
    fn new(msg: Message) -> Result<Self, HistoryError> {
        let (text, data) = match msg {
            Message::Text(t) => (true, Bytes::from(t.into_bytes())),
            Message::Binary(b) => (false, b),
            Message::Pong(_) => {
                return Err(HistoryError::Send(SendError::Encode(
                    "a pong cannot be recorded".into(),
                )))
            }
        };
        let mark = PLACEHOLDER.as_bytes();
        let mut parts = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i + mark.len() <= data.len() {
            if &data[i..i + mark.len()] == mark {
                parts.push(data.slice(start..i));
                i += mark.len();
                start = i;
            } else {
                i += 1;
            }
        }
        parts.push(data.slice(start..));
        Ok(Template { text, parts })
    }

    /// The message with `id` in every place.
    pub(crate) fn fill(&self, id: &MessageId) -> OutFrame {
        let opcode = if self.text {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        if let [only] = self.parts.as_slice() {
            return OutFrame::new(opcode, only.clone());
        }
        // Text (JSON): the short form. Binary: the full width, as long as the placeholder.
        let id = if self.text {
            id.to_string()
        } else {
            id.fixed_width()
        };
        let len =
            self.parts.iter().map(Bytes::len).sum::<usize>() + id.len() * (self.parts.len() - 1);
        let mut out = Vec::with_capacity(len);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(id.as_bytes());
            }
            out.extend_from_slice(part);
        }
        OutFrame::new(opcode, Bytes::from(out))
    }

    /// Encoded for a store: each part as a 4-byte big-endian length and its bytes.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in &self.parts {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// The inverse of [`encode`](Self::encode); `None` if malformed (or text that is not UTF-8).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn decode(text: bool, mut data: &[u8]) -> Option<Self> {
        let mut parts = Vec::new();
        while !data.is_empty() {
            let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
            let part = data.get(4..4 + len)?;
            if text {
                std::str::from_utf8(part).ok()?;
            }
            parts.push(Bytes::copy_from_slice(part));
            data = &data[4 + len..];
        }
        if parts.is_empty() {
            parts.push(Bytes::new());
        }
        Some(Template { text, parts })
    }
}

/// Why a recorded send or a replay did not happen as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryError {
    /// The endpoint keeps no history: call [`Hub::keep_history`] first.
    NoHistory,
    /// `since` is not (or no longer) in the room's history: older than what is kept, or the
    /// history was lost (a restart). The session *is* joined and gets the live messages; what
    /// was said between `since` and now cannot be replayed, so tell the client to start afresh.
    NotInHistory {
        /// The id asked for.
        since: MessageId,
        /// The oldest id the room's history holds, if any.
        oldest: Option<MessageId>,
    },
    /// The history's store (Redis) could not be reached, refused, or did not answer within 2 s.
    /// For a send: the message was not recorded, so nobody got it (except when Redis took it
    /// but its answer came too late: then it went out as usual). For a replay: the session is
    /// joined and gets the live messages.
    Unavailable(String),
    /// The session is already a member of the room (a replay must start with the join).
    AlreadyJoined,
    /// The session fell too far behind while its replay ran; it was closed with 1008.
    Behind,
    /// The message could not be built, or the session is closed.
    Send(SendError),
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::NoHistory => {
                f.write_str("this endpoint keeps no room history (call Hub::keep_history)")
            }
            HistoryError::NotInHistory { since, .. } => {
                write!(f, "message {since} is not in the room's history any more")
            }
            HistoryError::Unavailable(e) => write!(f, "room history unavailable: {e}"),
            HistoryError::AlreadyJoined => {
                f.write_str("already a member of the room: join_since must do the join")
            }
            HistoryError::Behind => f.write_str("fell too far behind during the replay"),
            HistoryError::Send(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for HistoryError {}

impl From<SendError> for HistoryError {
    fn from(e: SendError) -> Self {
        HistoryError::Send(e)
    }
}

/// What a replay delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replayed {
    /// Messages from the history (those after `since`).
    pub count: usize,
    /// Live messages that arrived while the replay ran and followed it.
    pub held: usize,
    /// The last id the session has now been sent, if any.
    pub last: Option<MessageId>,
}

/// A boxed future (the store is a trait object).
pub(crate) type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// What a store found after `since`.
pub(crate) enum Found {
    /// `since` is in the history: the messages after it, in order.
    After(Vec<(MessageId, Template)>),
    /// `since` is not in the history; its oldest id.
    Missing(Option<MessageId>),
}

/// A history kept outside this process (Redis Streams, [`crate::cluster`]). A store's recorded
/// messages come back to every process, this one included, through
/// [`deliver_recorded`], in id order.
pub(crate) trait Store: Send + Sync + 'static {
    /// Appends `template` to the room's history and publishes it; the id it got.
    fn record(
        &self,
        endpoint: &'static str,
        room: &str,
        template: Template,
        history: History,
    ) -> StoreFuture<MessageId>;
    /// The room's messages after `since`.
    fn read(
        &self,
        endpoint: &'static str,
        room: &str,
        since: MessageId,
        history: History,
    ) -> StoreFuture<Found>;
}

static STORE: OnceLock<Box<dyn Store>> = OnceLock::new();

/// Installs the shared store; `false` if one was installed already.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn set_store(store: Box<dyn Store>) -> bool {
    STORE.set(store).is_ok()
}

/// The endpoints that keep a history, and how much.
static SETTINGS: LazyLock<Mutex<HashMap<TypeId, History>>> = LazyLock::new(Default::default);

fn settings_of(endpoint: TypeId) -> Option<History> {
    SETTINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&endpoint)
        .copied()
}

/// The in-process history: every room's recent messages, and the last id handed out.
#[derive(Default)]
struct Local {
    rooms: HashMap<(TypeId, String), LocalRoom>,
    last: Option<MessageId>,
    recorded: u64,
}

/// A room's history: its recent messages, and the newest id trimmed away (a client that saw
/// it has missed nothing that was trimmed).
struct LocalRoom {
    entries: VecDeque<Entry>,
    trimmed: Option<MessageId>,
    /// When the newest message was appended.
    newest_at: Instant,
}

struct Entry {
    id: MessageId,
    at: Instant,
    template: Template,
}

static LOCAL: LazyLock<Mutex<Local>> = LazyLock::new(Default::default);

fn local() -> std::sync::MutexGuard<'static, Local> {
    LOCAL.lock().unwrap_or_else(|e| e.into_inner())
}

impl Local {
    /// The next id: the wall clock's milliseconds, and a sequence number within one (never
    /// going back, whatever the clock does).
    fn next_id(&mut self, now_ms: u64) -> MessageId {
        let id = match self.last {
            Some(last) if now_ms <= last.ms => MessageId {
                ms: last.ms,
                seq: last.seq + 1,
            },
            _ => MessageId { ms: now_ms, seq: 0 },
        };
        self.last = Some(id);
        id
    }

    /// Appends to a room's history and trims it; every 1,024 appends, forgets the rooms that
    /// have been quiet longer than their age limit.
    fn append(&mut self, key: (TypeId, String), entry: Entry, history: History) {
        let now = entry.at;
        let room = self.rooms.entry(key).or_insert_with(|| LocalRoom {
            entries: VecDeque::new(),
            trimmed: None,
            newest_at: now,
        });
        room.entries.push_back(entry);
        room.newest_at = now;
        room.trim(history, now);
        self.recorded += 1;
        if self.recorded.is_multiple_of(1024) {
            self.sweep(now);
        }
    }

    /// Forgets the rooms whose messages have all aged out and that have been quiet for
    /// longer than [`History::quiet_room_kept`].
    fn sweep(&mut self, now: Instant) {
        self.rooms.retain(|(endpoint, _), room| {
            let Some(h) = settings_of(*endpoint) else {
                return false; // not kept (rooms are recorded only with settings)
            };
            room.trim(h, now);
            !room.entries.is_empty()
                || h.quiet_room_kept()
                    .is_none_or(|kept| now.saturating_duration_since(room.newest_at) <= kept)
        });
    }

    fn after(
        &mut self,
        key: &(TypeId, String),
        since: MessageId,
        history: History,
        now: Instant,
    ) -> Found {
        let Some(room) = self.rooms.get_mut(key) else {
            return Found::Missing(None);
        };
        room.trim(history, now);
        let entries = &room.entries;
        let from = if room.trimmed == Some(since) {
            0
        } else {
            match entries.binary_search_by_key(&since, |e| e.id) {
                Ok(i) => i + 1,
                Err(_) => return Found::Missing(entries.front().map(|e| e.id)),
            }
        };
        Found::After(
            entries
                .iter()
                .skip(from)
                .map(|e| (e.id, e.template.clone()))
                .collect(),
        )
    }
}

impl LocalRoom {
    fn trim(&mut self, history: History, now: Instant) {
        let too_old = |e: &Entry| {
            history
                .max_age
                .is_some_and(|age| now.saturating_duration_since(e.at) > age)
        };
        while self.entries.len() > history.max_messages || self.entries.front().is_some_and(too_old)
        {
            self.trimmed = self.entries.pop_front().map(|e| e.id);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Hub {
    /// Keeps a [`History`] of each of this endpoint's rooms, for
    /// [`to_room_recorded`](Self::to_room_recorded) and [`Session::join_since`]. Call it once
    /// at start-up (calling it again replaces the settings; it is cheap). See the
    /// [module documentation](crate::history).
    pub fn keep_history(&self, history: History) {
        SETTINGS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.endpoint_type(), history);
    }

    /// The endpoint's history settings, if it keeps one.
    pub fn history(&self) -> Option<History> {
        settings_of(self.endpoint_type())
    }

    /// Sends a message to every member of `room` (on every server process, with
    /// [`crate::cluster`]) and records it in the room's history under a new [`MessageId`],
    /// which it returns. `make` builds the message; wherever it formats or serialises its
    /// [`IdMark`], the message carries the id.
    ///
    /// In-process, the id is assigned and the message is queued for the members here before
    /// this returns. It never waits on a slow member, and never drops the message for one: a
    /// member whose outbound queue has no room for it is closed (1008), whatever the
    /// endpoint's `slow_consumer` policy, and its client resumes with its last id. With
    /// Redis, the message is appended to the room's stream and published in one step, and
    /// every process (this one included) delivers it from its subscription, in the stream's
    /// order: it may reach the members here a moment after this returns. If Redis cannot be
    /// reached, nothing is sent.
    ///
    /// ```
    /// # use ws_endpoint::prelude::*;
    /// # use ws_endpoint::history::History;
    /// # async fn f(hub: Hub) -> Result<(), ws_endpoint::history::HistoryError> {
    /// hub.keep_history(History::last(50));
    /// let id = hub
    ///     .to_room_recorded("lobby", |id| Json(serde_json::json!({ "id": id, "text": "hi" })))
    ///     .await?;
    /// println!("sent {id}");
    /// # Ok(()) }
    /// ```
    pub async fn to_room_recorded<M: Sendable>(
        &self,
        room: &str,
        make: impl FnOnce(&IdMark) -> M,
    ) -> Result<MessageId, HistoryError> {
        let history = self.history().ok_or(HistoryError::NoHistory)?;
        let template = Template::new(make(&IdMark(())).into_message()?)?;
        if let Some(store) = STORE.get() {
            return store
                .record(self.endpoint_name(), room, template, history)
                .await
                .map_err(HistoryError::Unavailable);
        }
        Ok(self.record_here(room, template, history))
    }

    /// The in-process history: the id, the append and the delivery in one step under its
    /// lock, so that every member receives the room's messages in id order.
    fn record_here(&self, room: &str, template: Template, history: History) -> MessageId {
        let mut local = local();
        let id = local.next_id(now_ms());
        let frame = template.fill(&id);
        local.append(
            (self.endpoint_type(), room.to_owned()),
            Entry {
                id,
                at: Instant::now(),
                template,
            },
            history,
        );
        deliver_to(*self, room, id, frame, history);
        drop(local);
        id
    }
}

/// A session's replays under way (or just finished), per room: the session property behind
/// [`Session::join_since`].
#[derive(Default)]
struct Replays(HashMap<String, Phase>);

enum Phase {
    /// The replay runs: live recorded messages are held for after it.
    Holding {
        held: VecDeque<(MessageId, OutFrame)>,
        overflow: bool,
    },
    /// The replay is over, up to `after`: a message delivered live with an id up to it (one
    /// that was in the history read but reached this process's delivery late) is skipped;
    /// the first one after it ends this phase.
    Live { after: MessageId },
}

/// Delivers a recorded message to the members of `room` of endpoint `hub` here: queued as a
/// broadcast that is never dropped (a member with no room for it is closed:
/// [`hub::deliver_recorded`]), except for members whose replay of the room runs (held) or
/// just ended (skipped if already replayed). Returns how many members there were.
fn deliver_to(hub: Hub, room: &str, id: MessageId, frame: OutFrame, history: History) -> usize {
    let members = hub.room_members(room);
    let count = members.len();
    let mut live = Vec::with_capacity(members.len());
    for member in members {
        let takes = member.with_property::<Replays, _>(|replays| {
            let Some(replays) = replays else { return true };
            match replays.0.get_mut(room) {
                None => true,
                Some(Phase::Holding { held, overflow }) => {
                    if held.len() >= history.hold_limit() {
                        *overflow = true;
                    } else {
                        held.push_back((id, frame.clone()));
                    }
                    false
                }
                Some(Phase::Live { after }) => {
                    let fresh = id > *after;
                    if fresh {
                        replays.0.remove(room);
                    }
                    fresh
                }
            }
        });
        if takes {
            live.push(member);
        }
    }
    hub::deliver_recorded(&live, &frame);
    count
}

/// Why a session whose replay fell too far behind is closed (1008).
fn behind_reason() -> CloseReason {
    CloseReason::new(
        CloseCode::Policy,
        "slow consumer: too far behind during a replay",
    )
}

/// Closes `session` with `reason`: its close frame follows what is queued.
fn close(session: &Session, reason: &CloseReason) {
    let frame = crate::session::close_payload(reason);
    let _ = session.inner.begin_close(reason.clone(), Some(frame));
}

/// The hub of the endpoint named `endpoint`, if a session of it has opened here.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn hub_of(endpoint: &str) -> Option<Hub> {
    let (type_id, name) = *registry::table().names.get(endpoint)?;
    Some(Hub::for_type(type_id, name))
}

/// The store lost the room's history (Redis restarted without persistence): its members here
/// may have missed messages that nobody can replay. They are closed with 1012 ("service
/// restart"), so that their clients reconnect with their last id and learn it
/// ([`HistoryError::NotInHistory`]).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn history_lost(hub: Hub, room: &str) {
    let reason = CloseReason::new(CloseCode::Restart, "room history lost: reconnect");
    for member in hub.room_members(room) {
        close(&member, &reason);
    }
}

/// Delivers a recorded message that a store published (from any process, this one included);
/// how many members the room has here.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn deliver_recorded(
    endpoint: &str,
    room: &str,
    id: MessageId,
    template: &Template,
) -> usize {
    let Some(hub) = hub_of(endpoint) else {
        return 0; // no session of that endpoint has ever opened here
    };
    let Some(history) = hub.history() else {
        return 0;
    };
    deliver_to(hub, room, id, template.fill(&id), history)
}

/// The rooms with members here, of the endpoints that keep a history: `(endpoint name, room)`.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn rooms_with_members() -> Vec<(&'static str, String)> {
    let kept: Vec<TypeId> = SETTINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .copied()
        .collect();
    let t = registry::table();
    t.rooms
        .keys()
        .filter(|(endpoint, _)| kept.contains(endpoint))
        .filter_map(|(endpoint, room)| {
            let (_, name) = t.names.values().find(|(id, _)| id == endpoint)?;
            Some((*name, room.clone()))
        })
        .collect()
}

/// A replay begun by [`Session::join_since`]: the session is a member of the room, and the
/// room's recorded messages are held for it until this is awaited (which sends what it missed,
/// then what was held, then lets live messages through). Dropping it without awaiting it lets
/// the held messages through without the replay (the messages after `since` are then not
/// sent: the application chose not to replay). Cancelling the await once it has begun closes
/// the session with 1008 instead, since part of what it owed may be missing: the client
/// resumes with the last id it got.
#[must_use = "the replay runs when awaited; until then the room's messages are held"]
pub struct Replay {
    guard: Guard,
    since: MessageId,
}

impl fmt::Debug for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("room", &self.guard.room)
            .field("since", &self.since)
            .finish()
    }
}

/// Ends the hold on a session's room however the replay ends: finished, what was held has been
/// queued and live messages go through; never started (dropped unawaited), the same at once;
/// cut short after it started, the session is closed (1008).
struct Guard {
    session: Session,
    room: String,
    history: History,
    /// The last id sent to the session, once the replay got that far.
    last: Option<MessageId>,
    /// The replay was awaited: from here on, ending early may leave a gap.
    started: bool,
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.started {
            // Cancelled (or failed) part-way: messages it owed may be missing, so the session
            // is closed and its client resumes from the last id it got. Closed before the hold
            // ends: a live message delivered meanwhile is refused, not queued ahead of the
            // close (the client would resume after it, past the gap).
            self.done = true;
            let reason = CloseReason::new(
                CloseCode::Policy,
                "replay cancelled: reconnect with the last id",
            );
            close(&self.session, &reason);
            self.session
                .with_property_default::<Replays, _>(|replays| replays.0.remove(&self.room));
        } else {
            self.release();
        }
    }
}

impl Guard {
    /// Takes the held messages after `last`; when none are held, ends the hold (live from
    /// here, skipping ids up to `last`) and returns none. `None`: the session fell too far
    /// behind (more was held than the limit).
    fn take_held(&mut self, last: Option<MessageId>) -> Option<Vec<(MessageId, OutFrame)>> {
        self.session.with_property_default::<Replays, _>(|replays| {
            let batch: Vec<(MessageId, OutFrame)> = match replays.0.get_mut(&self.room) {
                Some(Phase::Holding { overflow: true, .. }) => {
                    replays.0.remove(&self.room);
                    return None;
                }
                Some(Phase::Holding { held, .. }) => held
                    .drain(..)
                    .filter(|(id, _)| last.is_none_or(|l| *id > l))
                    .collect(),
                _ => Vec::new(),
            };
            if batch.is_empty() {
                match last {
                    Some(after) => replays.0.insert(self.room.clone(), Phase::Live { after }),
                    None => replays.0.remove(&self.room),
                };
            }
            Some(batch)
        })
    }

    /// Ends the hold at once (the replay was dropped unawaited, so nothing was replayed):
    /// queues whatever was held, as live recorded messages are (never waiting; a session with
    /// no room is closed), under the properties' lock, so that no live message can overtake
    /// them. A session that fell too far behind is closed as a finished replay's would be.
    fn release(&mut self) {
        self.done = true;
        let session = &self.session;
        let behind = session.with_property_default::<Replays, _>(|replays| {
            let Some(Phase::Holding { held, overflow }) = replays.0.remove(&self.room) else {
                return false;
            };
            if !overflow {
                for (_, frame) in held {
                    hub::deliver_recorded(std::slice::from_ref(session), &frame);
                }
            }
            overflow
        });
        if behind {
            close(session, &behind_reason());
        }
    }

    /// Sends the held messages (as they come: more may be held while these are sent) until
    /// none are left, then lets live messages through.
    async fn drain(&mut self) -> Result<usize, HistoryError> {
        let mut sent = 0;
        loop {
            let batch = match self.take_held(self.last) {
                Some(batch) => batch,
                None => {
                    self.done = true;
                    close(&self.session, &behind_reason());
                    return Err(HistoryError::Behind);
                }
            };
            if batch.is_empty() {
                self.done = true;
                return Ok(sent);
            }
            for (id, frame) in batch {
                self.session.queue(frame, true).await?;
                self.last = Some(id);
                sent += 1;
            }
        }
    }
}

impl Session {
    /// Joins `room` and replays what the session missed since the recorded message `since`
    /// (the last one its client saw): the session is a member from this call on, and the
    /// room's recorded messages ([`Hub::to_room_recorded`]) are held for it until the returned
    /// [`Replay`] is awaited, which sends the room's history after `since`, then what was
    /// held, each message once and in order, then lets live messages through. In between, the
    /// endpoint may send its own messages (a welcome) first.
    ///
    /// Errors at once: [`HistoryError::NoHistory`] (the endpoint keeps none),
    /// [`HistoryError::AlreadyJoined`], `Send(Closed)`. The await's errors are those of
    /// [`HistoryError`]; after `NotInHistory` or `Unavailable` the session stays joined and
    /// gets the live messages.
    pub fn join_since(
        &self,
        room: impl AsRef<str>,
        since: &MessageId,
    ) -> Result<Replay, HistoryError> {
        let room = room.as_ref();
        let history = self.hub().history().ok_or(HistoryError::NoHistory)?;
        if !self.is_open() {
            return Err(SendError::Closed.into());
        }
        if self.rooms().iter().any(|r| r == room) {
            return Err(HistoryError::AlreadyJoined);
        }
        // Held from before the join: whatever reaches the room once this session is a member
        // is held for after the replay.
        self.with_property_default::<Replays, _>(|replays| {
            replays.0.insert(
                room.to_owned(),
                Phase::Holding {
                    held: VecDeque::new(),
                    overflow: false,
                },
            )
        });
        let guard = Guard {
            session: self.clone(),
            room: room.to_owned(),
            history,
            last: None,
            started: false,
            done: false,
        };
        if !self.join(room) {
            drop(guard); // ends the hold
            return Err(SendError::Closed.into());
        }
        Ok(Replay {
            guard,
            since: *since,
        })
    }
}

impl IntoFuture for Replay {
    type Output = Result<Replayed, HistoryError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl Replay {
    async fn run(self) -> Result<Replayed, HistoryError> {
        let Replay { mut guard, since } = self;
        guard.started = true;
        let hub = guard.session.hub();
        let found = match STORE.get() {
            Some(store) => store
                .read(hub.endpoint_name(), &guard.room, since, guard.history)
                .await
                .map_err(HistoryError::Unavailable),
            None => Ok(local().after(
                &(hub.endpoint_type(), guard.room.clone()),
                since,
                guard.history,
                Instant::now(),
            )),
        };
        let missed = match found {
            Ok(Found::After(missed)) => missed,
            Ok(Found::Missing(oldest)) => {
                guard.drain().await?;
                return Err(HistoryError::NotInHistory { since, oldest });
            }
            Err(err) => {
                guard.drain().await?;
                return Err(err);
            }
        };
        let count = missed.len();
        guard.last = Some(since);
        for (id, template) in missed {
            guard.session.queue(template.fill(&id), true).await?;
            guard.last = Some(id);
        }
        let held = guard.drain().await?;
        Ok(Replayed {
            count,
            held,
            last: guard.last.filter(|l| *l != since),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(local: &mut Local, ms: u64, at: Instant) -> Entry {
        Entry {
            id: local.next_id(ms),
            at,
            template: Template::new(Message::Text("x".into())).unwrap(),
        }
    }

    #[test]
    fn ids_increase_whatever_the_clock_does() {
        let mut l = Local::default();
        let a = l.next_id(1000);
        let b = l.next_id(1000);
        let c = l.next_id(999); // the clock went back
        let d = l.next_id(1001);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(c.to_string(), "1000-2");
        assert_eq!(d.to_string(), "1001-0");
    }

    #[test]
    fn the_history_keeps_the_last_n_and_forgets_what_is_too_old() {
        let mut l = Local::default();
        let t0 = Instant::now();
        let h = History::last(3).max_age(Duration::from_secs(60));
        let key = (TypeId::of::<()>(), "r".to_owned());
        let mut ids = Vec::new();
        for i in 0..5 {
            let e = entry(&mut l, 1000 + i, t0 + Duration::from_secs(i));
            ids.push(e.id);
            l.append(key.clone(), e, h);
        }
        // the last 3 are kept, and where the trimmed ones ended: after the 3rd-last, the last
        // 2; after the 4th-last (trimmed, the newest trimmed), the last 3; before it, missing
        let Found::After(after) = l.after(&key, ids[2], h, t0 + Duration::from_secs(5)) else {
            panic!("the 3rd message is kept")
        };
        assert_eq!(after.iter().map(|e| e.0).collect::<Vec<_>>(), ids[3..]);
        let Found::After(after) = l.after(&key, ids[1], h, t0) else {
            panic!("the newest trimmed id is known")
        };
        assert_eq!(after.iter().map(|e| e.0).collect::<Vec<_>>(), ids[2..]);
        assert!(matches!(
            l.after(&key, ids[0], h, t0),
            Found::Missing(Some(oldest)) if oldest == ids[2]
        ));
        // 64 s after the first, the 3rd and 4th (62 and 61 s old) are too old: the 5th is left
        let late = t0 + Duration::from_secs(64);
        assert!(matches!(l.after(&key, ids[2], h, late), Found::Missing(Some(o)) if o == ids[4]));
        assert!(matches!(l.after(&key, ids[3], h, late), Found::After(v) if v.len() == 1));
        assert!(matches!(l.after(&key, ids[4], h, late), Found::After(v) if v.is_empty()));
        // an unknown room
        let other = (TypeId::of::<()>(), "s".to_owned());
        assert!(matches!(
            l.after(&other, ids[4], h, late),
            Found::Missing(None)
        ));
    }

    /// A room quiet for longer than its age limit: its messages are gone, but a client that
    /// saw the newest has missed nothing, until the room is forgotten.
    #[test]
    fn a_quiet_room_remembers_its_newest_id_for_a_while() {
        struct Quiet;
        let h = History::last(3).max_age(Duration::from_secs(10));
        Hub::for_type(TypeId::of::<Quiet>(), "quiet").keep_history(h);
        let mut l = Local::default();
        let t0 = Instant::now();
        let key = (TypeId::of::<Quiet>(), "q".to_owned());
        let ids: Vec<MessageId> = (0..2)
            .map(|i| {
                let e = entry(&mut l, 1000 + i, t0);
                let id = e.id;
                l.append(key.clone(), e, h);
                id
            })
            .collect();
        let quiet = t0 + Duration::from_secs(30); // aged out, still remembered (80 s)
        l.sweep(quiet);
        assert!(matches!(l.after(&key, ids[1], h, quiet), Found::After(v) if v.is_empty()));
        // who saw only the first missed the second, which aged out
        assert!(matches!(
            l.after(&key, ids[0], h, quiet),
            Found::Missing(None)
        ));
        let forgotten = t0 + Duration::from_secs(81);
        l.sweep(forgotten);
        assert!(l.rooms.is_empty());
        assert!(matches!(
            l.after(&key, ids[1], h, forgotten),
            Found::Missing(None)
        ));
        // ages are clamped: no overflow in a store's expiry arithmetic
        let long = History::last(1).max_age(Duration::MAX);
        assert_eq!(long.age_limit(), Some(MAX_AGE));
        assert!(long.quiet_room_kept().is_some());
    }

    #[test]
    fn marks_become_the_id_everywhere_they_were_formatted() {
        let msg = format!(
            r#"{{"id":"{m}","again":"{m}","text":"hi"}}"#,
            m = IdMark(())
        );
        let t = Template::new(Message::Text(msg)).unwrap();
        assert_eq!(t.parts.len(), 3);
        let id: MessageId = "5-7".parse().unwrap();
        let frame = t.fill(&id);
        assert_eq!(
            &frame.payload[..],
            br#"{"id":"5-7","again":"5-7","text":"hi"}"#
        );
        // through a store and back
        let back = Template::decode(true, &t.encode()).unwrap();
        assert_eq!(back, t);
        assert!(Template::decode(true, &[0, 0, 0, 9, b'a']).is_none());
        assert!(Template::decode(true, &[0, 0, 0, 1, 0xff]).is_none());
        // serde serialises the mark as a string
        let json = serde_json::to_string(&serde_json::json!({ "id": IdMark(()) })).unwrap();
        let t = Template::new(Message::Text(json)).unwrap();
        assert_eq!(&t.fill(&id).payload[..], br#"{"id":"5-7"}"#);
        // no mark: the message as it is
        let t = Template::new(Message::Binary(Bytes::from_static(b"\0\x01"))).unwrap();
        assert_eq!(&t.fill(&id).payload[..], b"\0\x01");
        assert_eq!(t.fill(&id).opcode, OpCode::Binary);
    }

    /// MessagePack and CBOR prefix a string with its length: the id written into a binary
    /// message is exactly as long as the placeholder, so the message still decodes, and its id
    /// parses back.
    #[cfg(all(feature = "msgpack", feature = "cbor"))]
    #[test]
    fn marks_in_length_prefixed_binary_formats_keep_the_message_valid() {
        use crate::codec::{Cbor, MsgPack};
        #[derive(serde::Deserialize)]
        struct Msg {
            id: String,
            text: String,
        }
        let id: MessageId = "1764669600000-12".parse().unwrap();
        let value = || serde_json::json!({ "id": IdMark(()), "text": "hi" });
        let check = |msg: Msg| {
            assert_eq!(msg.text, "hi");
            assert_eq!(msg.id.parse::<MessageId>().unwrap(), id);
            assert_eq!(msg.id.len(), PLACEHOLDER.len());
        };
        let t = Template::new(MsgPack(value()).into_message().unwrap()).unwrap();
        assert_eq!(t.parts.len(), 2);
        check(rmp_serde::from_slice(&t.fill(&id).payload).unwrap());
        let t = Template::new(Cbor(value()).into_message().unwrap()).unwrap();
        check(ciborium::from_reader(&t.fill(&id).payload[..]).unwrap());
        // the largest id too
        let max = MessageId {
            ms: u64::MAX,
            seq: u64::MAX,
        };
        assert_eq!(max.fixed_width().len(), PLACEHOLDER.len());
        assert_eq!(max.fixed_width().parse::<MessageId>().unwrap(), max);
    }

    #[test]
    fn message_ids_parse_strictly() {
        for bad in [
            "",
            "1",
            "1-",
            "-1",
            "a-1",
            "1-2-3",
            "+1-2",
            "1 -2",
            "99999999999999999999999-0",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad}");
        }
        let id: MessageId = serde_json::from_str(r#""12-3""#).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""12-3""#);
    }
}
