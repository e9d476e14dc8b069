//! The decoder: a byte stream, cut anywhere, in; messages and control frames out.
//!
//! Every byte is handled once: the header is parsed once into a [`Header`]; the payload is
//! unmasked while it is copied into the buffer the message is handed over in (a word at a time);
//! text is validated as its bytes arrive, so invalid UTF-8 fails before the rest of its frame is
//! sent; a message over its limit fails on the frame header, before any of its payload is read.
//! The decoder consumes all the input it is given and keeps what it needs (a partial header of
//! at most 14 bytes, the message so far), so the caller's chunks can be dropped at once and the
//! events are the same however the stream is split.

use bytes::{Bytes, BytesMut};

use super::{
    close,
    deflate::{inflate_shared, Inflater},
    frame::{extend_unmasked, Header, OpCode},
    utf8::Utf8Validator,
    DataKind, WireError,
};

/// Which side of the connection the decoder reads for: a server reads masked frames (RFC 6455
/// §5.1: an unmasked client frame is a protocol error), a client unmasked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads what a client sends.
    Server,
    /// Reads what a server sends.
    Client,
}

/// How the data messages of one kind are handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assembly {
    /// Whole messages, fragments reassembled.
    Messages,
    /// Each data frame whole, as it completes ([`Event::Fragment`]): for handlers that take a
    /// message in parts. The limit applies to each frame (inflated, when compressed); the
    /// message as a whole is unbounded.
    Frames,
    /// The payload as it arrives ([`Event::Chunk`]), never buffered beyond the piece at hand:
    /// for handlers that take a message as a stream. The limit applies to the whole message.
    Stream,
}

/// Most compressed input inflated per [`Event::Chunk`]: with deflate's ratio of at most about
/// 1:1032, a chunk's output stays under about 4 MiB however the peer compressed it.
const STREAM_INFLATE_STEP: usize = 4 * 1024;

/// Per-kind message limits; `None`: the endpoint takes no messages of that kind (1003).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest text message, in bytes.
    pub text: Option<usize>,
    /// Largest binary message, in bytes.
    pub binary: Option<usize>,
}

/// What the decoder hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole text message, validated.
    Text(String),
    /// A whole binary message. A small one (one frame, up to 2 KiB) shares an 8 KiB block with the
    /// messages decoded around it (no allocation per message): holding on to it keeps its
    /// block alive, as a `Bytes` cut from any read buffer does.
    Binary(Bytes),
    /// A whole message whose first frame had RSV1 set, when [`Decoder::allow_rsv1`] was
    /// called without [`Decoder::inflate`]: the per-message transform is the caller's.
    Compressed {
        /// Text or binary.
        kind: DataKind,
        /// The payload as received.
        payload: Vec<u8>,
    },
    /// With [`Assembly::Frames`]: one data frame of a message. Text is validated so far (a
    /// character may continue in the next fragment); the last one (`fin`) is validated whole.
    Fragment {
        /// Text or binary.
        kind: DataKind,
        /// The frame's payload.
        payload: Vec<u8>,
        /// The message's first frame.
        first: bool,
        /// The message's last frame.
        fin: bool,
        /// RSV1 was set on the first frame.
        compressed: bool,
    },
    /// With [`Assembly::Stream`]: a piece of a message's payload as it arrived (inflated, when
    /// compressed). Text is validated so far: a character may continue in the next chunk; the
    /// last chunk completes the validation.
    Chunk {
        /// Text or binary.
        kind: DataKind,
        /// The bytes (may be empty only when `last`).
        data: Vec<u8>,
        /// The message's first chunk handed over.
        first: bool,
        /// The message's last chunk.
        last: bool,
    },
    /// A ping's payload (at most 125 bytes).
    Ping(Vec<u8>),
    /// A pong's payload.
    Pong(Vec<u8>),
    /// The peer's close frame: `None` when it carried no code.
    Close(Option<(u16, String)>),
}

/// Most a frame header can make the decoder reserve ahead of its payload.
const RESERVE_CAP: u64 = 1 << 20;

/// Binary messages of one frame of at most this many bytes are decoded into the shared block.
const ARENA_MESSAGE: u64 = 2 * 1024;
/// The shared block's size: a block is reused in place once every message cut from it is gone
/// (an echo's steady state), and replaced when it is full and some are still held.
const ARENA: usize = 8 * 1024;

#[derive(Debug, Clone, Copy)]
struct Current {
    header: Header,
    /// Payload bytes received so far.
    got: u64,
    /// Whether the payload is text to validate as it arrives.
    validate: bool,
    /// Whether the payload goes to the shared block (`Decoder::arena`).
    arena: bool,
}

#[derive(Debug, Clone, Copy)]
struct Partial {
    kind: DataKind,
    compressed: bool,
    /// A frame of this message has been handed over already (`Assembly::Frames`).
    started: bool,
    /// Payload bytes of the message so far, this frame's included once it is complete.
    size: u64,
    /// Inflated bytes handed over so far (`Assembly::Stream`, compressed).
    inflated: u64,
    /// Decoded into the shared block (a small binary message, see [`ARENA`]).
    arena: bool,
}

/// How compressed messages (RSV1) are inflated (permessage-deflate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inflate {
    /// The peer takes no context over (`client_no_context_takeover` agreed): each message is
    /// inflated on its own, with this thread's shared inflater; the connection holds no state.
    PerMessage,
    /// The peer keeps its context: the connection keeps an inflater (allocated at its first
    /// compressed message).
    Context,
}

/// The receive side of one connection.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    /// Per kind: text, binary.
    assembly: [Assembly; 2],
    limits: Limits,
    rsv1: bool,
    inflate: Option<Inflate>,
    inflater: Option<Box<Inflater>>,
    stash: [u8; super::MAX_HEADER],
    stash_len: usize,
    current: Option<Current>,
    message: Option<Partial>,
    /// The data message (or, with `Frames`, the frame) being received.
    data: Vec<u8>,
    /// Small binary messages, cut off as `Bytes` when complete (see [`ARENA`]).
    arena: BytesMut,
    control: Vec<u8>,
    utf8: Utf8Validator,
    /// The error that ended the stream: returned again by every later call, so that nothing
    /// half-checked (a text message whose invalid bytes are in `data`) is ever handed over.
    failed: Option<WireError>,
}

impl Decoder {
    /// Replaces the limits; they apply from the next frame (a message being reassembled is
    /// checked against them with its next fragment).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A decoder for `role` with the given limits, handing over whole messages.
    pub fn new(role: Role, limits: Limits) -> Self {
        Self {
            role,
            assembly: [Assembly::Messages; 2],
            limits,
            rsv1: false,
            inflate: None,
            inflater: None,
            stash: [0; super::MAX_HEADER],
            stash_len: 0,
            current: None,
            message: None,
            data: Vec::new(),
            arena: BytesMut::new(),
            control: Vec::new(),
            utf8: Utf8Validator::default(),
            failed: None,
        }
    }

    /// Hands over the data messages of both kinds as `assembly` says.
    pub fn assembly(mut self, assembly: Assembly) -> Self {
        self.assembly = [assembly; 2];
        self
    }

    /// Hands over the data messages of `kind` as `assembly` says.
    pub fn assembly_for(mut self, kind: DataKind, assembly: Assembly) -> Self {
        self.assembly[kind as usize] = assembly;
        self
    }

    fn mode(&self, kind: DataKind) -> Assembly {
        self.assembly[kind as usize]
    }

    /// Accepts RSV1 on the first frame of a data message (a negotiated permessage-deflate).
    pub fn allow_rsv1(mut self) -> Self {
        self.rsv1 = true;
        self
    }

    /// Accepts RSV1 and inflates compressed messages, handing them over as [`Event::Text`] and
    /// [`Event::Binary`]. The limits count inflated bytes and are checked while inflating: a
    /// message that would inflate past its limit fails with [`WireError::TooBig`] without
    /// being inflated further.
    pub fn inflate(mut self, mode: Inflate) -> Self {
        self.rsv1 = true;
        self.inflate = Some(mode);
        self
    }

    /// Whether a frame has partly arrived (its header or payload).
    pub fn in_frame(&self) -> bool {
        self.stash_len > 0 || self.current.is_some()
    }

    /// Decodes from `input`, advancing it past what was consumed, up to the next event. `Ok(None)`:
    /// all of `input` was consumed and more is needed. After an `Err` the stream is unusable:
    /// every later call returns the same error.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Event>, WireError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.decode_inner(input);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.data = Vec::new();
            self.arena = BytesMut::new();
            self.message = None;
            self.current = None;
        }
        result
    }

    fn decode_inner(&mut self, input: &mut &[u8]) -> Result<Option<Event>, WireError> {
        loop {
            let Some(mut cur) = self.current else {
                if !self.read_header(input)? {
                    return Ok(None);
                }
                continue;
            };
            let remaining = cur.header.len - cur.got;
            let stream = !cur.header.opcode.is_control()
                && self
                    .message
                    .is_some_and(|p| self.mode(p.kind) == Assembly::Stream);
            let step = match self.message {
                Some(p) if stream && p.compressed => STREAM_INFLATE_STEP as u64,
                _ => u64::MAX,
            };
            let take = remaining.min(input.len() as u64).min(step) as usize;
            if take > 0 {
                let (now, rest) = input.split_at(take);
                if cur.arena {
                    extend_unmasked(&mut self.arena, now, cur.header.mask, cur.got as usize);
                } else {
                    let target = if cur.header.opcode.is_control() {
                        &mut self.control
                    } else {
                        &mut self.data
                    };
                    let start = target.len();
                    extend_unmasked(target, now, cur.header.mask, cur.got as usize);
                    if cur.validate {
                        self.utf8.feed(&target[start..])?;
                    }
                }
                cur.got += take as u64;
                *input = rest;
            }
            if stream {
                let complete = cur.got == cur.header.len;
                self.current = (!complete).then_some(cur);
                if let Some(event) = self.stream_chunk(complete && cur.header.fin)? {
                    return Ok(Some(event));
                }
                if !complete && input.is_empty() {
                    return Ok(None);
                }
                continue;
            }
            if cur.got < cur.header.len {
                self.current = Some(cur);
                return Ok(None);
            }
            self.current = None;
            if let Some(event) = self.complete(cur)? {
                return Ok(Some(event));
            }
        }
    }

    /// Reads a header from the stash and `input`; `false` when more bytes are needed.
    fn read_header(&mut self, input: &mut &[u8]) -> Result<bool, WireError> {
        let parsed = if self.stash_len == 0 {
            match Header::parse(input).map_err(WireError::Protocol)? {
                Some((header, size)) => {
                    *input = &input[size..];
                    header
                }
                None => {
                    self.stash[..input.len()].copy_from_slice(input);
                    self.stash_len = input.len();
                    *input = &[];
                    return Ok(false);
                }
            }
        } else {
            let had = self.stash_len;
            let copy = (self.stash.len() - had).min(input.len());
            self.stash[had..had + copy].copy_from_slice(&input[..copy]);
            match Header::parse(&self.stash[..had + copy]).map_err(WireError::Protocol)? {
                Some((header, size)) => {
                    *input = &input[size - had..];
                    self.stash_len = 0;
                    header
                }
                None => {
                    self.stash_len = had + copy;
                    *input = &input[copy..];
                    return Ok(false);
                }
            }
        };
        self.start(parsed)?;
        Ok(true)
    }

    fn limit(&self, kind: DataKind) -> Result<usize, WireError> {
        match kind {
            DataKind::Text => self.limits.text,
            DataKind::Binary => self.limits.binary,
        }
        .ok_or(WireError::Unsupported(kind))
    }

    /// Checks a new frame's header against the connection's state and limits.
    fn start(&mut self, header: Header) -> Result<(), WireError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(WireError::Protocol("client frame is not masked")),
            (Role::Client, true) => return Err(WireError::Protocol("server frame is masked")),
            _ => {}
        }
        let mut validate = false;
        let mut arena = false;
        if header.opcode.is_control() {
            if !header.fin {
                return Err(WireError::Protocol("fragmented control frame"));
            }
            if header.len > 125 {
                return Err(WireError::Protocol("control frame longer than 125 bytes"));
            }
            if header.rsv1 {
                return Err(WireError::Protocol("RSV1 set on a control frame"));
            }
            self.control.clear();
        } else {
            let partial = match (header.opcode, self.message) {
                (OpCode::Continuation, Some(p)) => {
                    if header.rsv1 {
                        return Err(WireError::Protocol("RSV1 set on a continuation frame"));
                    }
                    p
                }
                (OpCode::Continuation, None) => {
                    return Err(WireError::Protocol(
                        "continuation frame without a message to continue",
                    ))
                }
                (_, Some(_)) => {
                    return Err(WireError::Protocol(
                        "new data frame inside a fragmented message",
                    ))
                }
                (op, None) => {
                    if header.rsv1 && !self.rsv1 {
                        return Err(WireError::Protocol(
                            "reserved bit RSV1 set without a negotiated extension",
                        ));
                    }
                    let kind = if op == OpCode::Text {
                        DataKind::Text
                    } else {
                        DataKind::Binary
                    };
                    Partial {
                        kind,
                        compressed: header.rsv1,
                        started: false,
                        size: 0,
                        inflated: 0,
                        // Whole in one frame: the block never grows past its size.
                        arena: kind == DataKind::Binary
                            && header.fin
                            && !header.rsv1
                            && self.mode(kind) == Assembly::Messages
                            && header.len <= ARENA_MESSAGE,
                    }
                }
            };
            let limit = self.limit(partial.kind)?;
            let size = partial.size.saturating_add(header.len);
            let mode = self.mode(partial.kind);
            // In parts, each frame is checked alone; otherwise the message so far.
            let counted = if mode == Assembly::Frames {
                header.len
            } else {
                size
            };
            // A compressed message is checked against its limit again, inflated; as received
            // it may be a little larger than inflated (stored blocks cost 5 bytes per 64 KiB).
            let cap = if partial.compressed {
                limit.saturating_add(limit / 1024 + 64)
            } else {
                limit
            };
            if counted > cap as u64 {
                return Err(WireError::TooBig {
                    size: counted,
                    limit,
                });
            }
            // Room for the whole frame at once (it is within the limit), capped so that a
            // header alone cannot make the server allocate much; a stream keeps no frame.
            arena = partial.arena;
            if arena {
                let len = header.len.min(RESERVE_CAP) as usize;
                if self.arena.is_empty()
                    && self.arena.capacity() < len
                    && !self.arena.try_reclaim(len)
                {
                    self.arena = BytesMut::with_capacity(ARENA);
                }
                self.arena.reserve(len);
            } else if mode != Assembly::Stream {
                self.data.reserve(header.len.min(RESERVE_CAP) as usize);
            }
            validate = partial.kind == DataKind::Text && !partial.compressed;
            self.message = Some(Partial { size, ..partial });
        }
        self.current = Some(Current {
            header,
            got: 0,
            validate,
            arena,
        });
        Ok(())
    }

    /// A frame is complete: the event it makes, if any.
    fn complete(&mut self, cur: Current) -> Result<Option<Event>, WireError> {
        let header = cur.header;
        match header.opcode {
            OpCode::Ping => return Ok(Some(Event::Ping(std::mem::take(&mut self.control)))),
            OpCode::Pong => return Ok(Some(Event::Pong(std::mem::take(&mut self.control)))),
            OpCode::Close => return close::parse(&self.control).map(|c| Some(Event::Close(c))),
            _ => {}
        }
        let Some(partial) = self.message else {
            return Err(WireError::Protocol("data frame without a message"));
        };
        if header.fin {
            self.message = None;
            if cur.validate {
                self.utf8.finish()?;
            }
        }
        if self.mode(partial.kind) == Assembly::Frames {
            let first = !partial.started;
            if !header.fin {
                self.message = Some(Partial {
                    started: true,
                    ..partial
                });
            }
            let mut payload = std::mem::take(&mut self.data);
            let mut compressed = partial.compressed;
            if compressed && self.inflate.is_some() {
                let limit = self.limit(partial.kind)?;
                payload = self.inflate_piece(partial.kind, &payload, header.fin, limit)?;
                compressed = false;
            }
            return Ok(Some(Event::Fragment {
                kind: partial.kind,
                payload,
                first,
                fin: header.fin,
                compressed,
            }));
        }
        if !header.fin {
            return Ok(None);
        }
        if cur.arena {
            return Ok(Some(Event::Binary(self.arena.split().freeze())));
        }
        let payload = std::mem::take(&mut self.data);
        if partial.compressed {
            if let Some(mode) = self.inflate {
                return self.inflated(mode, partial.kind, &payload).map(Some);
            }
        }
        Ok(Some(match (partial.kind, partial.compressed) {
            (kind, true) => Event::Compressed { kind, payload },
            // SAFETY: every byte of the message went through `self.utf8`, which accepted it
            // piece by piece and then as complete (`finish` above).
            (DataKind::Text, false) => Event::Text(unsafe { String::from_utf8_unchecked(payload) }),
            (DataKind::Binary, false) => Event::Binary(Bytes::from(payload)),
        }))
    }
}

impl Decoder {
    /// Inflates one piece of a message handed over in parts or as a stream, with the
    /// connection's own inflater (the context runs through the message; without context
    /// takeover the inflater is given back at the message's end). Text is validated as it
    /// inflates, and completed at `last`.
    fn inflate_piece(
        &mut self,
        kind: DataKind,
        input: &[u8],
        last: bool,
        limit: usize,
    ) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        let text = kind == DataKind::Text;
        let utf8 = &mut self.utf8;
        let check = |piece: &[u8]| if text { utf8.feed(piece) } else { Ok(()) };
        self.inflater
            .get_or_insert_with(Default::default)
            .inflate_part(input, last, limit, &mut out, check)?;
        if last {
            if text {
                self.utf8.finish()?;
            }
            if self.inflate == Some(Inflate::PerMessage) {
                self.inflater = None;
            }
        }
        Ok(out)
    }

    /// `Assembly::Stream`: hands over what arrived of the current frame (`self.data`), or
    /// nothing when there is nothing yet; `last`: the message's last frame is complete.
    fn stream_chunk(&mut self, last: bool) -> Result<Option<Event>, WireError> {
        let Some(mut partial) = self.message else {
            return Err(WireError::Protocol("data frame without a message"));
        };
        let raw = std::mem::take(&mut self.data);
        let data = if partial.compressed && self.inflate.is_some() {
            let limit = self.limit(partial.kind)?;
            let left = limit.saturating_sub(partial.inflated as usize);
            let out =
                self.inflate_piece(partial.kind, &raw, last, left)
                    .map_err(|err| match err {
                        WireError::TooBig { size, .. } => WireError::TooBig {
                            size: partial.inflated + size,
                            limit,
                        },
                        other => other,
                    })?;
            partial.inflated += out.len() as u64;
            out
        } else {
            if last && partial.kind == DataKind::Text {
                // Every byte went through `self.utf8` as it arrived (`validate`).
                self.utf8.finish()?;
            }
            raw
        };
        if data.is_empty() && !last {
            self.message = Some(partial);
            return Ok(None);
        }
        let first = !partial.started;
        self.message = if last {
            None
        } else {
            Some(Partial {
                started: true,
                ..partial
            })
        };
        Ok(Some(Event::Chunk {
            kind: partial.kind,
            data,
            first,
            last,
        }))
    }

    /// Inflates a compressed message, validating text as it inflates.
    fn inflated(
        &mut self,
        mode: Inflate,
        kind: DataKind,
        payload: &[u8],
    ) -> Result<Event, WireError> {
        let limit = self.limit(kind)?;
        let mut out = Vec::new();
        let text = kind == DataKind::Text;
        let utf8 = &mut self.utf8;
        let check = |piece: &[u8]| if text { utf8.feed(piece) } else { Ok(()) };
        match mode {
            Inflate::PerMessage => inflate_shared(payload, limit, &mut out, check)?,
            Inflate::Context => self
                .inflater
                .get_or_insert_with(Default::default)
                .inflate(payload, limit, &mut out, check)?,
        }
        Ok(if text {
            self.utf8.finish()?;
            // SAFETY: every inflated byte went through `self.utf8` (`check`), which accepted
            // them piece by piece and then as complete.
            Event::Text(unsafe { String::from_utf8_unchecked(out) })
        } else {
            Event::Binary(Bytes::from(out))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::{apply_mask, encode_header};
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        text: Some(1 << 16),
        binary: Some(1 << 16),
    };

    fn frame(op: OpCode, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(&mut out, op, fin, false, Some(mask), payload.len());
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], mask, 0);
        out
    }

    /// Decodes `bytes` fed in the given pieces: the events, and the error that ended it.
    fn run(bytes: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<WireError>) {
        let mut d = Decoder::new(Role::Server, LIMITS);
        let mut events = Vec::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        for w in points.windows(2) {
            let mut input = &bytes[w[0]..w[1]];
            loop {
                match d.decode(&mut input) {
                    Ok(Some(e)) => events.push(e),
                    Ok(None) => {
                        assert!(input.is_empty());
                        break;
                    }
                    Err(e) => return (events, Some(e)),
                }
            }
        }
        (events, None)
    }

    fn binary(event: Event) -> Bytes {
        match event {
            Event::Binary(b) => b,
            other => panic!("not binary: {other:?}"),
        }
    }

    #[test]
    fn small_binary_messages_share_a_block_and_held_ones_stay_intact() {
        let m = [1, 2, 3, 4];
        let mut d = Decoder::new(Role::Server, LIMITS);
        let mut decode_one = |payload: &[u8]| {
            let bytes = frame(OpCode::Binary, true, payload, m);
            let mut input = &bytes[..];
            let event = d.decode(&mut input).unwrap().unwrap();
            assert!(input.is_empty());
            binary(event)
        };
        // Held messages: cut one after the other from the same block.
        let a = decode_one(&[b'a'; 64]);
        let b = decode_one(&[b'b'; 64]);
        assert_eq!(a.as_ptr().wrapping_add(64), b.as_ptr());
        // Past the block's end while both are held: a new block; the held ones are unchanged.
        let held: Vec<Bytes> = (0..200u8).map(|i| decode_one(&[i; 100])).collect();
        assert_eq!(&a[..], &[b'a'; 64][..]);
        assert_eq!(&b[..], &[b'b'; 64][..]);
        for (i, h) in held.iter().enumerate() {
            assert_eq!(&h[..], &[i as u8; 100][..]);
        }
        // Nothing held: the block is taken back in place (no allocation per message).
        drop((a, b, held));
        let at: Vec<usize> = (0..1000u32)
            .map(|i| {
                let m = decode_one(&[i as u8; 64]);
                assert!(m.iter().all(|&x| x == i as u8));
                m.as_ptr() as usize
            })
            .collect();
        let (lo, hi) = (at.iter().min().unwrap(), at.iter().max().unwrap());
        assert!(
            hi - lo < ARENA,
            "1000 messages in one block: {lo:#x}..{hi:#x}"
        );
        // A message over the limit for the block gets its own allocation.
        let big = decode_one(&[7; 4000]);
        assert_eq!(big.len(), 4000);
        assert!(big.iter().all(|&x| x == 7));
    }

    #[test]
    fn a_fragmented_binary_message_is_whole_and_leaves_the_block_as_it_was() {
        let m = [5, 6, 7, 8];
        let mut s = frame(OpCode::Binary, false, &[1; 100], m);
        s.extend(frame(OpCode::Continuation, false, &[2; 20_000], m));
        s.extend(frame(OpCode::Continuation, true, &[3; 5], m));
        s.extend(frame(OpCode::Binary, true, &[4; 10], m));
        let (events, err) = run(&s, &[7, 150, 9000]);
        assert_eq!(err, None);
        // Fragmented: its own buffer (the shared block is for messages of one frame, so it
        // never grows past its 8 KiB).
        let mut d = Decoder::new(Role::Server, LIMITS);
        let mut input = &s[..];
        assert!(d.decode(&mut input).unwrap().is_some());
        assert_eq!(d.arena.capacity(), 0);
        let mut want = vec![1; 100];
        want.extend([2; 20_000]);
        want.extend([3; 5]);
        assert_eq!(
            events,
            vec![
                Event::Binary(Bytes::from(want)),
                Event::Binary(Bytes::from_static(&[4; 10]))
            ]
        );
    }

    #[test]
    fn messages_fragments_and_controls() {
        let m = [7, 7, 7, 7];
        let mut s = frame(OpCode::Text, false, "hé".as_bytes(), m);
        s.extend(frame(OpCode::Ping, true, b"p", m));
        s.extend(frame(OpCode::Continuation, true, "llo".as_bytes(), m));
        s.extend(frame(OpCode::Binary, true, &[0, 1, 2], m));
        s.extend(frame(OpCode::Close, true, &[0x03, 0xe8, b'o', b'k'], m));
        let (events, err) = run(&s, &[]);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![
                Event::Ping(b"p".to_vec()),
                Event::Text("héllo".into()),
                Event::Binary(Bytes::from_static(&[0, 1, 2])),
                Event::Close(Some((1000, "ok".into()))),
            ]
        );
    }

    #[test]
    fn too_big_is_known_from_the_header() {
        let mut hdr = Vec::new();
        encode_header(
            &mut hdr,
            OpCode::Binary,
            true,
            false,
            Some([1, 2, 3, 4]),
            100 << 20,
        );
        let (_, err) = run(&hdr, &[]);
        assert_eq!(
            err,
            Some(WireError::TooBig {
                size: 100 << 20,
                limit: 1 << 16
            })
        );
        // fragments count together
        let m = [1, 1, 1, 1];
        let mut s = frame(OpCode::Text, false, &[b'a'; 40000], m);
        s.extend(frame(OpCode::Continuation, true, &[b'a'; 40000], m));
        assert!(matches!(
            run(&s, &[]).1,
            Some(WireError::TooBig { size: 80000, .. })
        ));
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_is_complete() {
        let m = [9, 8, 7, 6];
        let f = frame(OpCode::Text, true, b"abc\xff and much more text", m);
        // only the header and the first 5 payload bytes
        let (events, err) = run(&f[..6 + 5], &[]);
        assert!(events.is_empty());
        assert_eq!(err, Some(WireError::InvalidUtf8));
    }

    #[test]
    fn unmasked_and_unsupported_frames() {
        assert!(matches!(
            run(&[0x81, 0x00], &[]).1,
            Some(WireError::Protocol(_))
        ));
        let mut d = Decoder::new(
            Role::Server,
            Limits {
                text: Some(10),
                binary: None,
            },
        );
        let f = frame(OpCode::Binary, true, b"x", [0; 4]);
        assert_eq!(
            d.decode(&mut &f[..]),
            Err(WireError::Unsupported(DataKind::Binary))
        );
        let mut c = Decoder::new(Role::Client, LIMITS);
        assert_eq!(
            c.decode(&mut &[0x81, 0x01, b'x'][..]),
            Ok(Some(Event::Text("x".into())))
        );
        assert!(c.decode(&mut &f[..]).is_err()); // masked frame from a server
    }

    #[test]
    fn an_error_is_final() {
        let m = [5, 6, 7, 8];
        let mut d = Decoder::new(Role::Server, LIMITS);
        let bad = frame(OpCode::Text, false, b"ok\xff", m);
        assert_eq!(d.decode(&mut &bad[..]), Err(WireError::InvalidUtf8));
        // what follows is not decoded on top of the invalid bytes
        let rest = frame(OpCode::Continuation, true, b"fine", m);
        assert_eq!(d.decode(&mut &rest[..]), Err(WireError::InvalidUtf8));
    }

    #[test]
    fn an_empty_first_fragment_is_still_the_first() {
        let m = [1, 2, 3, 4];
        let mut s = frame(OpCode::Binary, false, b"", m);
        s.extend(frame(OpCode::Continuation, false, b"", m));
        s.extend(frame(OpCode::Continuation, true, b"x", m));
        let mut d = Decoder::new(Role::Server, LIMITS).assembly(Assembly::Frames);
        let mut input = &s[..];
        let firsts: Vec<bool> = (0..3)
            .map(|_| match d.decode(&mut input).unwrap().unwrap() {
                Event::Fragment { first, .. } => first,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(firsts, vec![true, false, false]);
    }

    #[test]
    fn frames_mode_hands_over_each_fragment() {
        let m = [3, 1, 4, 1];
        let mut s = frame(OpCode::Text, false, b"ab", m);
        s.extend(frame(OpCode::Continuation, true, b"cd", m));
        let mut d = Decoder::new(Role::Server, LIMITS).assembly(Assembly::Frames);
        let mut input = &s[..];
        let first = d.decode(&mut input).unwrap().unwrap();
        let last = d.decode(&mut input).unwrap().unwrap();
        assert!(matches!(
            first,
            Event::Fragment {
                first: true,
                fin: false,
                ..
            }
        ));
        assert!(
            matches!(last, Event::Fragment { first: false, fin: true, ref payload, .. } if payload == b"cd")
        );
    }

    fn compressed_frames(msg: &[u8], op: OpCode, pieces: usize) -> Vec<u8> {
        let mut c = Vec::new();
        crate::wire::deflate::Deflater::new(6, 15).compress(msg, &mut c);
        let chunk = c.len().div_ceil(pieces).max(1);
        let mut out = Vec::new();
        let parts: Vec<&[u8]> = c.chunks(chunk).collect();
        for (i, part) in parts.iter().enumerate() {
            let mask = [i as u8, 2, 3, 4];
            let opcode = if i == 0 { op } else { OpCode::Continuation };
            let mut f = Vec::new();
            encode_header(
                &mut f,
                opcode,
                i + 1 == parts.len(),
                i == 0,
                Some(mask),
                part.len(),
            );
            let start = f.len();
            f.extend_from_slice(part);
            apply_mask(&mut f[start..], mask, 0);
            out.extend(f);
        }
        out
    }

    fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Event>, WireError> {
        let mut input = bytes;
        let mut events = Vec::new();
        while let Some(e) = d.decode(&mut input)? {
            events.push(e);
        }
        Ok(events)
    }

    #[test]
    fn compressed_messages_inflate_fragmented_and_whole() {
        let text = "héllo, compressed world ".repeat(50);
        for mode in [Inflate::PerMessage, Inflate::Context] {
            let mut d = Decoder::new(Role::Server, LIMITS).inflate(mode);
            let mut s = compressed_frames(text.as_bytes(), OpCode::Text, 3);
            s.extend(compressed_frames(&[1, 2, 3], OpCode::Binary, 1));
            assert_eq!(
                decode_all(&mut d, &s).unwrap(),
                vec![
                    Event::Text(text.clone()),
                    Event::Binary(Bytes::from_static(&[1, 2, 3]))
                ]
            );
        }
        // without a negotiated extension, RSV1 is a protocol error
        let s = compressed_frames(b"x", OpCode::Text, 1);
        assert!(matches!(
            decode_all(&mut Decoder::new(Role::Server, LIMITS), &s),
            Err(WireError::Protocol(_))
        ));
    }

    #[test]
    fn compressed_limits_count_inflated_bytes_and_utf8_is_checked() {
        let mut d = Decoder::new(Role::Server, LIMITS).inflate(Inflate::PerMessage);
        let s = compressed_frames(&vec![b'a'; 100_000], OpCode::Text, 1);
        assert!(s.len() < 1000);
        assert!(matches!(
            decode_all(&mut d, &s),
            Err(WireError::TooBig { limit: 65536, .. })
        ));
        let mut d = Decoder::new(Role::Server, LIMITS).inflate(Inflate::PerMessage);
        let s = compressed_frames(b"ok \xff not utf-8", OpCode::Text, 2);
        assert_eq!(decode_all(&mut d, &s), Err(WireError::InvalidUtf8));
        // RSV1 on a continuation frame
        let m = [1, 1, 1, 1];
        let mut s = frame(OpCode::Text, false, b"a", m);
        let mut cont = frame(OpCode::Continuation, true, b"b", m);
        cont[0] |= 0x40;
        s.extend(cont);
        let mut d = Decoder::new(Role::Server, LIMITS).inflate(Inflate::PerMessage);
        assert!(matches!(
            decode_all(&mut d, &s),
            Err(WireError::Protocol(_))
        ));
        // RSV1 on a control frame
        let mut ping = frame(OpCode::Ping, true, b"p", m);
        ping[0] |= 0x40;
        let mut d = Decoder::new(Role::Server, LIMITS).inflate(Inflate::PerMessage);
        assert!(matches!(
            decode_all(&mut d, &ping),
            Err(WireError::Protocol(_))
        ));
    }

    fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
        let op = prop_oneof![
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Continuation),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
            Just(OpCode::Close),
        ];
        (
            op,
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<[u8; 4]>(),
        )
            .prop_map(|(op, fin, payload, mask)| frame(op, fin, &payload, mask))
    }

    proptest! {
        /// Random bytes, cut at random points: never a panic, and the same events and error
        /// however the stream is split.
        #[test]
        fn random_bytes_split_anywhere(
            bytes in prop::collection::vec(any::<u8>(), 0..2000),
            cuts in prop::collection::vec(any::<usize>(), 0..20),
        ) {
            prop_assert_eq!(run(&bytes, &cuts), run(&bytes, &[]));
        }

        /// Well-formed frames (in a random, often invalid, order), cut anywhere: the same as
        /// decoded in one piece, and as decoded byte by byte.
        #[test]
        fn frame_sequences_split_anywhere(
            frames in prop::collection::vec(arb_frame(), 0..12),
            cuts in prop::collection::vec(any::<usize>(), 0..30),
        ) {
            let bytes: Vec<u8> = frames.concat();
            let whole = run(&bytes, &[]);
            prop_assert_eq!(run(&bytes, &cuts), whole.clone());
            let every: Vec<usize> = (0..bytes.len()).collect();
            prop_assert_eq!(run(&bytes, &every), whole);
        }
    }
}
