//! permessage-deflate (RFC 7692) on bytes: the negotiation (offers in, one response out), and
//! the per-message transform both ways, with the deflate itself done by well-kept crates:
//! zlib-rs through flate2 (any window from 9 to 15 bits), and miniz_oxide's run-length strategy
//! for an 8-bit window (zlib and zlib-rs refuse 8 bits for raw deflate; a run-length match
//! never refers back farther than one byte, so it is valid for any window).
//!
//! **Memory.** Without context takeover (the default), a connection holds no zlib state at
//! all: messages are compressed and inflated with state shared per thread ([`compress_shared`],
//! [`inflate_shared`]), reset after each message. With context takeover a connection keeps a
//! [`Deflater`] and an [`Inflater`] of its own, allocated at its first compressed message.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressionStrategy, CompressorOxide,
    TDEFLFlush,
};

use super::WireError;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const NAME: &str = "permessage-deflate";

/// The four bytes a sync flush ends with; removed from each compressed message, appended again
/// before inflating (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What the server asks for, before it has seen an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Keep the compression context across messages (both ways) when the client allows it;
    /// `false`: every message is compressed on its own and the client is asked to do the same.
    pub context_takeover: bool,
    /// The largest window the server compresses with (9 to 15; 15 is zlib's default). A client
    /// may ask for less.
    pub max_window_bits: u8,
}

/// The parameters both sides agreed on for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message (the server's inflater need not
    /// keep a window).
    pub client_no_context_takeover: bool,
    /// The window the server compresses with: 8 to 15.
    pub server_max_window_bits: u8,
    /// Sent back when the client offered `client_max_window_bits` (we inflate with a 15-bit
    /// window, which reads any smaller one, so we only ever echo the client's own value).
    pub client_max_window_bits: Option<u8>,
    /// Whether `server_max_window_bits` goes in the response.
    pub send_server_max_window_bits: bool,
}

impl Agreed {
    /// The `Sec-WebSocket-Extensions` response value.
    pub fn response(&self) -> String {
        let mut out = String::from(NAME);
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.send_server_max_window_bits {
            out.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if let Some(bits) = self.client_max_window_bits {
            out.push_str(&format!("; client_max_window_bits={bits}"));
        }
        out
    }
}

/// Picks the first acceptable permessage-deflate offer among the `Sec-WebSocket-Extensions`
/// header values (in order; several headers count as one list). `None`: no offer, or none that
/// can be accepted, or a header that does not parse; the handshake then goes on without the
/// extension (RFC 7692 §5: declining is not a failure).
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>, policy: Policy) -> Option<Agreed> {
    for value in values {
        for ext in split_outside_quotes(value, b',')? {
            let mut parts = split_outside_quotes(ext, b';')?.into_iter();
            let name = parts.next()?.trim();
            if !is_token(name) {
                return None; // a malformed header: decline everything rather than guess
            }
            if !name.eq_ignore_ascii_case(NAME) {
                continue;
            }
            let params: Option<Vec<(&str, Option<String>)>> = parts.map(param).collect();
            if let Some(agreed) = params.and_then(|p| accept(&p, policy)) {
                return Some(agreed);
            }
        }
    }
    None
}

/// One offer's parameters → the agreement, or `None` to decline this offer (RFC 7692 §7.1).
fn accept(params: &[(&str, Option<String>)], policy: Policy) -> Option<Agreed> {
    let mut seen = [false; 4];
    let mut server_nct = false;
    let mut client_nct = false;
    let mut server_bits: Option<u8> = None;
    let mut client_bits: Option<Option<u8>> = None;
    for (name, value) in params {
        let index = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return None, // an unknown parameter: decline the offer
        };
        if std::mem::replace(&mut seen[index], true) {
            return None; // a parameter twice
        }
        match index {
            0 | 1 if value.is_some() => return None,
            0 => server_nct = true,
            1 => client_nct = true,
            2 => server_bits = Some(window_bits(value.as_deref()?)?),
            _ => {
                client_bits = Some(match value {
                    None => None,
                    Some(v) => Some(window_bits(v)?),
                })
            }
        }
    }
    let max = policy.max_window_bits.clamp(9, 15);
    let bits = server_bits.map_or(max, |asked| asked.min(max));
    Some(Agreed {
        server_no_context_takeover: server_nct || !policy.context_takeover,
        client_no_context_takeover: client_nct || !policy.context_takeover,
        server_max_window_bits: bits,
        client_max_window_bits: client_bits.flatten(),
        send_server_max_window_bits: server_bits.is_some() || bits < 15,
    })
}

/// The client's offer (RFC 7692 §7.1): `client_max_window_bits` (it compresses with whatever
/// window the server asks for) and, when it will reset its compressor after every message,
/// `client_no_context_takeover` (RFC 7692 §7.1.1.2: then a promise, whatever the answer).
/// The server may keep its own context: the client's inflater then keeps a window.
pub fn client_offer(client_no_context_takeover: bool) -> String {
    let mut out = String::from(NAME);
    if client_no_context_takeover {
        out.push_str("; client_no_context_takeover");
    }
    out.push_str("; client_max_window_bits");
    out
}

/// The client's reading of the server's `Sec-WebSocket-Extensions` response to
/// [`client_offer`]. `Ok(None)`: no extension agreed; `Err`: a response the client must fail
/// the connection for (RFC 6455 §4.1, RFC 7692 §5: an extension it did not offer, an unknown
/// parameter, a parameter twice, a window outside 8–15).
///
/// In the result, `server_max_window_bits` is the window the server compresses with (the
/// client inflates with 15 bits, which reads any) and `client_max_window_bits` the one the
/// client must compress with (15 when the server set none).
pub fn accept_response<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Option<Agreed>, &'static str> {
    let mut agreed = None;
    for value in values {
        let Some(exts) = split_outside_quotes(value, b',') else {
            return Err("malformed Sec-WebSocket-Extensions in the response");
        };
        for ext in exts {
            let Some(parts) = split_outside_quotes(ext, b';') else {
                return Err("malformed Sec-WebSocket-Extensions in the response");
            };
            let mut parts = parts.into_iter();
            let name = parts.next().unwrap_or("").trim();
            if !name.eq_ignore_ascii_case(NAME) {
                return Err("the server answered with an extension that was not offered");
            }
            if agreed.is_some() {
                return Err("the server answered with permessage-deflate twice");
            }
            let mut seen = [false; 4];
            let mut a = Agreed {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 15,
                client_max_window_bits: Some(15),
                send_server_max_window_bits: false,
            };
            for raw in parts {
                let Some((name, value)) = param(raw) else {
                    return Err("malformed permessage-deflate parameter in the response");
                };
                let index = match name.to_ascii_lowercase().as_str() {
                    "server_no_context_takeover" => 0,
                    "client_no_context_takeover" => 1,
                    "server_max_window_bits" => 2,
                    "client_max_window_bits" => 3,
                    _ => return Err("unknown permessage-deflate parameter in the response"),
                };
                if std::mem::replace(&mut seen[index], true) {
                    return Err("a permessage-deflate parameter twice in the response");
                }
                match (index, value) {
                    (0, None) => a.server_no_context_takeover = true,
                    (1, None) => a.client_no_context_takeover = true,
                    (2, Some(v)) => {
                        a.server_max_window_bits = window_bits(&v)
                            .ok_or("invalid server_max_window_bits in the response")?;
                        a.send_server_max_window_bits = true;
                    }
                    (3, Some(v)) => {
                        a.client_max_window_bits = Some(
                            window_bits(&v)
                                .ok_or("invalid client_max_window_bits in the response")?,
                        );
                    }
                    _ => return Err("invalid permessage-deflate parameter value in the response"),
                }
            }
            agreed = Some(a);
        }
    }
    Ok(agreed)
}

/// A window-bits value: 8 to 15, in decimal without leading zeros.
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || value.starts_with('0') {
        return None;
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|b| (8..=15).contains(b))
}

/// `name` or `name=value` (a token or a quoted string) → name and unquoted value.
fn param(raw: &str) -> Option<(&str, Option<String>)> {
    let raw = raw.trim();
    let (name, value) = match raw.split_once('=') {
        None => (raw, None),
        Some((n, v)) => (n.trim(), Some(v.trim())),
    };
    if !is_token(name) {
        return None;
    }
    let value = match value {
        None => None,
        Some(v) if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
            let inner = &v[1..v.len() - 1];
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '"' => return None,
                    c => out.push(c),
                }
            }
            // RFC 7692 §7.1: a quoted value must still be a token.
            if !is_token(&out) {
                return None;
            }
            Some(out)
        }
        Some(v) if is_token(v) => Some(v.to_owned()),
        Some(_) => return None,
    };
    Some((name, value))
}

/// RFC 7230 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Splits at `sep` outside quoted strings; `None` for an unterminated quote.
fn split_outside_quotes(s: &str, sep: u8) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&s[start..]);
    // Empty list elements (`a, , b`) are allowed by the list syntax and ignored.
    Some(parts.into_iter().filter(|p| !p.trim().is_empty()).collect())
}

/// A compressor for one window size and level: zlib-rs for 9 to 15 bits, miniz_oxide's
/// run-length strategy for 8.
pub struct Deflater {
    inner: DeflaterKind,
}

enum DeflaterKind {
    Zlib(Compress),
    Rle(Box<CompressorOxide>),
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            DeflaterKind::Zlib(_) => "Deflater(zlib)",
            DeflaterKind::Rle(_) => "Deflater(rle)",
        })
    }
}

impl Deflater {
    /// A raw-deflate compressor at `level` (0 to 9) that never refers back farther than
    /// `2^window_bits` bytes.
    pub fn new(level: u32, window_bits: u8) -> Self {
        let level = level.min(9);
        let inner = if window_bits >= 9 {
            DeflaterKind::Zlib(Compress::new_with_window_bits(
                Compression::new(level),
                false,
                window_bits.min(15),
            ))
        } else {
            let flags = create_comp_flags_from_zip_params(
                level.max(1) as i32,
                -15, // negative: raw deflate, no zlib header
                CompressionStrategy::RLE as i32,
            );
            DeflaterKind::Rle(Box::new(CompressorOxide::new(flags)))
        };
        Self { inner }
    }

    /// Compresses one message into `out` (appended), flushed so that it ends on a byte
    /// boundary, without the final `00 00 ff ff`. The context is kept: call [`reset`](Self::reset)
    /// for no context takeover.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.compress_part(input, out, true);
    }

    /// Compresses one part of a message sent in parts, flushed to a byte boundary; the final
    /// `00 00 ff ff` is removed from the `last` part only (the receiver appends it once, after
    /// the whole message).
    pub fn compress_part(&mut self, input: &[u8], out: &mut Vec<u8>, last: bool) {
        let start = out.len();
        match &mut self.inner {
            DeflaterKind::Zlib(c) => {
                let before = c.total_in();
                loop {
                    if out.capacity() - out.len() < 64 {
                        out.reserve((input.len() / 2).max(64));
                    }
                    let consumed = (c.total_in() - before) as usize;
                    // Raw deflate with a sync flush on a valid stream cannot fail.
                    let _ = c.compress_vec(&input[consumed..], out, FlushCompress::Sync);
                    let consumed = (c.total_in() - before) as usize;
                    // The flush is complete once everything was taken and the output had room
                    // left (zlib fills the buffer when it has more to write).
                    if consumed == input.len() && out.len() < out.capacity() {
                        break;
                    }
                }
            }
            DeflaterKind::Rle(c) => {
                let _ = compress_to_output(c, input, TDEFLFlush::Sync, |chunk| {
                    out.extend_from_slice(chunk);
                    true
                });
            }
        }
        if last && out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if last && out.len() == start {
            // Nothing new to flush (an empty message, or an empty last part after a flushed
            // one): zlib writes nothing, and the tail the receiver appends would then start a
            // stored block it never finishes. One 0x00 byte makes that tail an empty stored
            // block (RFC 7692 §7.2.3.6).
            out.push(0x00);
        }
    }

    /// Forgets the context: the next message refers to nothing before it.
    pub fn reset(&mut self) {
        match &mut self.inner {
            DeflaterKind::Zlib(c) => c.reset(),
            DeflaterKind::Rle(c) => c.reset(),
        }
    }
}

/// An inflater (raw deflate, 15-bit window: it reads any window the peer used).
pub struct Inflater {
    inner: Decompress,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self {
            inner: Decompress::new(false),
        }
    }
}

/// Output is grown at most this much at a time while inflating, so that a message that
/// inflates past its limit never has more than the limit plus this allocated.
const INFLATE_STEP: usize = 256 * 1024;

impl Inflater {
    /// Inflates one message (its payload as received, all frames together) into `out`,
    /// stopping with [`WireError::TooBig`] as soon as the output would pass `limit`: a
    /// decompression bomb costs at most `limit` plus one step of output. `check` sees each
    /// piece of output as it is produced (text is validated as it inflates).
    pub fn inflate(
        &mut self,
        input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
        check: impl FnMut(&[u8]) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        self.inflate_part(input, true, limit, out, check)
    }

    /// Inflates a piece of a message (a frame's payload, or a chunk of it, in order); `last`:
    /// the message ends with this piece (the sync-flush tail is appended). The output of this
    /// piece is limited to `limit` bytes as in [`inflate`](Self::inflate).
    pub fn inflate_part(
        &mut self,
        input: &[u8],
        last: bool,
        limit: usize,
        out: &mut Vec<u8>,
        mut check: impl FnMut(&[u8]) -> Result<(), WireError>,
    ) -> Result<(), WireError> {
        let d = &mut self.inner;
        let tail: &[u8] = if last { &TAIL } else { &[] };
        let mut feed: [&[u8]; 2] = [input, tail];
        let mut part = 0;
        loop {
            let before_in = d.total_in();
            let before_out = out.len();
            if out.capacity() == out.len() {
                let grow = out
                    .len()
                    .max(input.len().saturating_mul(2))
                    .clamp(1024, INFLATE_STEP)
                    .min(limit.saturating_add(1).saturating_sub(out.len()).max(1));
                out.reserve_exact(grow);
            }
            let status = d
                .decompress_vec(feed[part], out, FlushDecompress::Sync)
                .map_err(|_| WireError::BadCompressed)?;
            let consumed = (d.total_in() - before_in) as usize;
            feed[part] = &feed[part][consumed..];
            check(&out[before_out..])?;
            if out.len() > limit {
                return Err(WireError::TooBig {
                    size: out.len() as u64,
                    limit,
                });
            }
            if status == Status::StreamEnd {
                // The peer ended the deflate stream (a final block): what follows in this
                // message, the tail at most, is not deflate data; the next message starts anew.
                d.reset(false);
                return Ok(());
            }
            if feed[part].is_empty() {
                if part == 0 {
                    part = 1;
                    continue;
                }
                // All input taken; done once the output was not what stopped zlib.
                if out.len() < out.capacity() {
                    return Ok(());
                }
            } else if consumed == 0 && out.len() == before_out && out.len() < out.capacity() {
                return Err(WireError::BadCompressed); // no progress with room and input
            }
        }
    }

    /// Forgets the window: the next message must not refer to this one.
    pub fn reset(&mut self) {
        self.inner.reset(false);
    }
}

thread_local! {
    /// Compressors shared by the connections of this thread that take no context over, one per
    /// level and window; each is reset after every message.
    static DEFLATERS: RefCell<Vec<(u32, u8, Deflater)>> = const { RefCell::new(Vec::new()) };
    static INFLATER: RefCell<Option<Inflater>> = const { RefCell::new(None) };
}

/// Compresses one message with this thread's compressor for `level` and `window_bits`, and
/// resets it (no context takeover).
pub fn compress_shared(level: u32, window_bits: u8, input: &[u8]) -> Vec<u8> {
    DEFLATERS.with(|cell| {
        let mut all = cell.borrow_mut();
        let index = match all
            .iter()
            .position(|(l, b, _)| *l == level && *b == window_bits)
        {
            Some(i) => i,
            None => {
                all.push((level, window_bits, Deflater::new(level, window_bits)));
                all.len() - 1
            }
        };
        let deflater = &mut all[index].2;
        let mut out = Vec::with_capacity(input.len() / 2 + 16);
        deflater.compress(input, &mut out);
        deflater.reset();
        out
    })
}

/// Inflates one message with this thread's inflater, then resets it (the client takes no
/// context over).
pub fn inflate_shared(
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    check: impl FnMut(&[u8]) -> Result<(), WireError>,
) -> Result<(), WireError> {
    INFLATER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let inflater = slot.get_or_insert_with(Inflater::default);
        let result = inflater.inflate(input, limit, out, check);
        inflater.reset();
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_reads_the_servers_answer() {
        assert_eq!(
            client_offer(true),
            "permessage-deflate; client_no_context_takeover; client_max_window_bits"
        );
        assert_eq!(
            client_offer(false),
            "permessage-deflate; client_max_window_bits"
        );
        assert_eq!(accept_response([]), Ok(None));
        let a = accept_response(["permessage-deflate"]).unwrap().unwrap();
        assert!(!a.server_no_context_takeover && !a.client_no_context_takeover);
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (15, Some(15))
        );
        let a = accept_response(
            ["permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=\"8\""],
        )
        .unwrap()
        .unwrap();
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (10, Some(8))
        );
        for bad in [
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; mystery",
            "permessage-deflate; \"",
        ] {
            assert!(accept_response([bad]).is_err(), "{bad}");
        }
    }

    const SHARED: Policy = Policy {
        context_takeover: false,
        max_window_bits: 15,
    };
    const TAKEOVER: Policy = Policy {
        context_takeover: true,
        max_window_bits: 15,
    };

    fn resp(offer: &str, policy: Policy) -> Option<String> {
        negotiate([offer], policy).map(|a| a.response())
    }

    #[test]
    fn browser_offer_default_policy() {
        assert_eq!(
            resp("permessage-deflate; client_max_window_bits", SHARED).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            resp("permessage-deflate; client_max_window_bits", TAKEOVER).as_deref(),
            Some("permessage-deflate")
        );
    }

    #[test]
    fn all_four_parameters() {
        let a = negotiate(
            [
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
              server_max_window_bits=10; client_max_window_bits=\"12\"",
            ],
            TAKEOVER,
        )
        .unwrap();
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        assert_eq!(a.server_max_window_bits, 10);
        assert_eq!(a.client_max_window_bits, Some(12));
        assert_eq!(
            a.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
        // 8 bits is accepted (compressed with run-length matches only)
        let a = negotiate(["permessage-deflate; server_max_window_bits=8"], SHARED).unwrap();
        assert_eq!(a.server_max_window_bits, 8);
        // a smaller server maximum of ours is announced
        let a = negotiate(
            ["permessage-deflate"],
            Policy {
                context_takeover: true,
                max_window_bits: 11,
            },
        )
        .unwrap();
        assert_eq!(
            a.response(),
            "permessage-deflate; server_max_window_bits=11"
        );
    }

    #[test]
    fn invalid_offers_are_declined_and_the_next_one_taken() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=x",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; foo",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(resp(bad, SHARED), None, "{bad}");
        }
        // several offers: the first acceptable one
        let a = negotiate(
            [
                "permessage-deflate; server_max_window_bits=5, permessage-deflate; server_max_window_bits=9",
                "permessage-deflate",
            ],
            SHARED,
        )
        .unwrap();
        assert_eq!(a.server_max_window_bits, 9);
        // a malformed header declines, never fails
        assert_eq!(resp("permessage-deflate; a=\"unterminated", SHARED), None);
        assert_eq!(resp("", SHARED), None);
    }

    fn round_trip(deflater: &mut Deflater, inflater: &mut Inflater, msg: &[u8]) -> usize {
        let mut c = Vec::new();
        deflater.compress(msg, &mut c);
        let mut out = Vec::new();
        inflater
            .inflate(&c, usize::MAX, &mut out, |_| Ok(()))
            .unwrap();
        assert_eq!(out, msg);
        c.len()
    }

    #[test]
    fn compress_inflate_every_window() {
        let text = br#"{"type":"message","room":"lobby","nick":"ada","text":"hello hello hello"}"#;
        let big: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7) as u8)
            .collect();
        for bits in 8..=15 {
            let mut d = Deflater::new(6, bits);
            let mut i = Inflater::default();
            let first = round_trip(&mut d, &mut i, text);
            // with the context kept, the same text again costs much less
            let again = round_trip(&mut d, &mut i, text);
            if bits >= 9 {
                assert!(again < first / 2, "bits {bits}: {again} vs {first}");
            }
            round_trip(&mut d, &mut i, &big);
            round_trip(&mut d, &mut i, b"");
            d.reset();
            i.reset();
            round_trip(&mut d, &mut i, text);
        }
    }

    #[test]
    fn an_empty_last_part_or_message_keeps_a_kept_inflater_in_step() {
        let mut d = Deflater::new(6, 15);
        let mut i = Inflater::default();
        // a message in two parts, the last one empty
        let (mut p1, mut p2) = (Vec::new(), Vec::new());
        d.compress_part(b"hello hello hello", &mut p1, false);
        d.compress_part(b"", &mut p2, true);
        assert_eq!(p2, [0x00]);
        let mut whole = p1.clone();
        whole.extend_from_slice(&p2);
        let mut out = Vec::new();
        i.inflate(&whole, 1000, &mut out, |_| Ok(())).unwrap();
        assert_eq!(out, b"hello hello hello");
        // an empty message with the context kept, then another message: still in step
        assert_eq!(round_trip(&mut d, &mut i, b""), 1);
        round_trip(&mut d, &mut i, b"hello again");
    }

    #[test]
    fn shared_compression_takes_no_context() {
        let text = b"the same text, the same text, the same text";
        let a = compress_shared(6, 15, text);
        let b = compress_shared(6, 15, text);
        assert_eq!(a, b);
        let mut out = Vec::new();
        inflate_shared(&b, 1000, &mut out, |_| Ok(())).unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 16 << 20];
        let mut c = Vec::new();
        Deflater::new(1, 15).compress(&zeros, &mut c);
        // (zlib-rs's fastest level compresses zeros about 100:1; that is bomb enough)
        assert!(c.len() < (16 << 20) / 50, "{}", c.len());
        let limit = 4 << 20;
        let mut out = Vec::new();
        let err = inflate_shared(&c, limit, &mut out, |_| Ok(())).unwrap_err();
        assert!(matches!(err, WireError::TooBig { limit: l, .. } if l == limit));
        assert!(
            out.capacity() <= limit + INFLATE_STEP + 1,
            "{}",
            out.capacity()
        );
    }

    #[test]
    fn garbage_does_not_inflate() {
        let mut out = Vec::new();
        assert_eq!(
            inflate_shared(&[0xff, 0xff, 0xff, 0xff, 0x12], 1000, &mut out, |_| Ok(())),
            Err(WireError::BadCompressed)
        );
    }
}
