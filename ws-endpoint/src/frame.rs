//! The receive side: turns the upgraded request payload into whole messages and control frames,
//! enforcing the endpoint's limits on the frame *header*, before any payload is buffered.
//!
//! Frame decoding and unmasking are actix-http's (`actix_http::ws::Parser`). What is added here
//! is what its `Codec` / actix-ws's `MessageStream` do not do: the size check happens when the
//! header arrives (actix-http waits for the whole frame before comparing its length to the
//! limit), limits are per message kind and cover reassembled fragments, text is validated
//! incrementally across fragments, and every complete message that arrived before a protocol
//! error is delivered before the error.

use actix_http::ws::{CloseCode, CloseReason as WireCloseReason, OpCode, Parser};
use actix_web::dev::Payload;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;

use crate::error::MessageKind;

/// One unit handed to the connection loop.
#[derive(Debug)]
pub(crate) enum Frame {
    Text(String),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<WireCloseReason>),
}

/// Why reading stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// A message is larger than the limit for its kind (known from the frame header).
    TooBig { size: u64, limit: usize },
    /// Text (or a close reason) that is not UTF-8.
    InvalidUtf8,
    /// A data message of a kind with no handler.
    Unsupported(MessageKind),
    /// An RFC 6455 violation.
    Protocol(String),
    /// The peer's byte stream ended (or failed) without a close frame.
    Eof,
}

/// Most a frame header can make the reader reserve ahead of its payload.
const RESERVE_CAP: u64 = 1 << 20;

/// Per-kind limits and whether the endpoint takes that kind at all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) text: Option<usize>,
    pub(crate) binary: Option<usize>,
}

struct Fragments {
    kind: MessageKind,
    data: BytesMut,
}

pub(crate) struct FrameReader {
    payload: Payload,
    buf: BytesMut,
    eof: bool,
    limits: Limits,
    frag: Option<Fragments>,
    /// UTF-8 state of the text message being received in pieces (fragments, or a frame whose
    /// payload has only partly arrived), so that an invalid sequence fails at once.
    utf8: Utf8Stream,
    /// Payload bytes of the current, still incomplete frame already fed to `utf8`.
    fed: usize,
}

struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
    /// Header bytes, mask included.
    size: usize,
    mask: [u8; 4],
}

/// Incremental UTF-8 validation: each byte is looked at once; an incomplete sequence at the end
/// of what has arrived is kept until more comes.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn feed(&mut self, bytes: &[u8]) -> Result<(), ReadError> {
        let mut bytes = bytes;
        // Complete the pending sequence (at most 3 bytes) first.
        while !self.pending.is_empty() && !bytes.is_empty() {
            self.pending.push(bytes[0]);
            bytes = &bytes[1..];
            match std::str::from_utf8(&self.pending) {
                Ok(_) => self.pending.clear(),
                Err(e) if e.error_len().is_some() => return Err(ReadError::InvalidUtf8),
                Err(_) => {}
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(ReadError::InvalidUtf8),
            Err(e) => {
                self.pending.extend_from_slice(&bytes[e.valid_up_to()..]);
                Ok(())
            }
        }
    }

    /// The message is complete: nothing may be pending. Resets the state.
    fn finish(&mut self) -> Result<(), ReadError> {
        let complete = self.pending.is_empty();
        self.pending.clear();
        if complete {
            Ok(())
        } else {
            Err(ReadError::InvalidUtf8)
        }
    }
}

/// Reads the fixed part of a frame header, if enough bytes are there.
fn peek_header(buf: &[u8]) -> Result<Option<Header>, ReadError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(ReadError::Protocol(
            "reserved bits set without a negotiated extension".into(),
        ));
    }
    if b1 & 0x80 == 0 {
        return Err(ReadError::Protocol("client frame is not masked".into()));
    }
    let (len, ext) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 2)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(raw);
            if len >> 63 != 0 {
                return Err(ReadError::Protocol(
                    "payload length has its top bit set".into(),
                ));
            }
            (len, 8)
        }
        n => (u64::from(n), 0),
    };
    let size = 2 + ext + 4;
    if buf.len() < size {
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[2 + ext..size]);
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        len,
        size,
        mask,
    }))
}

fn into_string(data: BytesMut) -> Result<String, ReadError> {
    String::from_utf8(Vec::from(data)).map_err(|_| ReadError::InvalidUtf8)
}

fn parse_close(data: &[u8]) -> Result<Option<WireCloseReason>, ReadError> {
    match data.len() {
        0 => Ok(None),
        1 => Err(ReadError::Protocol(
            "close frame with a 1-byte payload".into(),
        )),
        _ => {
            let raw = u16::from_be_bytes([data[0], data[1]]);
            if !matches!(raw, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(ReadError::Protocol(format!("invalid close code {raw}")));
            }
            let reason = std::str::from_utf8(&data[2..]).map_err(|_| ReadError::InvalidUtf8)?;
            Ok(Some(WireCloseReason {
                code: CloseCode::from(raw),
                description: (!reason.is_empty()).then(|| reason.to_owned()),
            }))
        }
    }
}

impl FrameReader {
    pub(crate) fn new(payload: Payload, limits: Limits) -> Self {
        Self {
            payload,
            buf: BytesMut::new(),
            eof: false,
            limits,
            frag: None,
            utf8: Utf8Stream::default(),
            fed: 0,
        }
    }

    /// Validates the newly arrived part of an incomplete text frame.
    fn feed_partial(&mut self, header: &Header) -> Result<(), ReadError> {
        let available = (self.buf.len() - header.size).min(header.len as usize);
        if available <= self.fed {
            return Ok(());
        }
        let start = header.size + self.fed;
        let mut chunk = self.buf[start..header.size + available].to_vec();
        for (i, b) in chunk.iter_mut().enumerate() {
            *b ^= header.mask[(self.fed + i) % 4];
        }
        self.fed = available;
        self.utf8.feed(&chunk)
    }

    /// The next message or control frame. Cancel-safe: bytes read are kept in the buffer.
    pub(crate) async fn next(&mut self) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = self.decode()? {
                return Ok(frame);
            }
            if self.eof {
                return Err(ReadError::Eof);
            }
            if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
                // Do not keep a large message's buffer for the rest of the connection.
                self.buf = BytesMut::new();
            }
            match self.payload.next().await {
                Some(Ok(chunk)) => {
                    if self.buf.is_empty() && self.buf.capacity() < chunk.len() {
                        self.buf = BytesMut::from(chunk);
                    } else {
                        self.buf.extend_from_slice(&chunk);
                    }
                }
                Some(Err(_)) | None => self.eof = true,
            }
        }
    }

    fn limit_for(&self, kind: MessageKind) -> Result<usize, ReadError> {
        let limit = match kind {
            MessageKind::Text => self.limits.text,
            MessageKind::Binary => self.limits.binary,
            MessageKind::Pong => Some(125),
        };
        limit.ok_or(ReadError::Unsupported(kind))
    }

    fn decode(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            let Some(header) = peek_header(&self.buf)? else {
                return Ok(None);
            };
            match header.opcode {
                0..=2 => {
                    let kind = match (header.opcode, &self.frag) {
                        (0, Some(f)) => f.kind,
                        (0, None) => {
                            return Err(ReadError::Protocol(
                                "continuation frame without a message to continue".into(),
                            ))
                        }
                        (_, Some(_)) => {
                            return Err(ReadError::Protocol(
                                "new data frame inside a fragmented message".into(),
                            ))
                        }
                        (1, None) => MessageKind::Text,
                        _ => MessageKind::Binary,
                    };
                    let limit = self.limit_for(kind)?;
                    let so_far = self.frag.as_ref().map_or(0, |f| f.data.len()) as u64;
                    let size = so_far.saturating_add(header.len);
                    if size > limit as u64 {
                        return Err(ReadError::TooBig { size, limit });
                    }
                }
                8..=10 => {
                    if !header.fin {
                        return Err(ReadError::Protocol("fragmented control frame".into()));
                    }
                    if header.len > 125 {
                        return Err(ReadError::Protocol(
                            "control frame longer than 125 bytes".into(),
                        ));
                    }
                }
                op => return Err(ReadError::Protocol(format!("reserved opcode {op}"))),
            }

            let frame_size = header.size as u64 + header.len;
            if (self.buf.len() as u64) < frame_size {
                // Make room for the whole frame at once (it is within the limit), rather than
                // doubling the buffer chunk by chunk; capped so that a header alone cannot make
                // the server allocate much.
                let missing = (frame_size - self.buf.len() as u64).min(RESERVE_CAP) as usize;
                self.buf.reserve(missing);
                let text = header.opcode == 1
                    || (header.opcode == 0
                        && self
                            .frag
                            .as_ref()
                            .is_some_and(|f| f.kind == MessageKind::Text));
                if text {
                    self.feed_partial(&header)?;
                }
                return Ok(None);
            }
            let fed = std::mem::take(&mut self.fed);

            let Some((fin, opcode, data)) = Parser::parse(&mut self.buf, true, usize::MAX)
                .map_err(|e| ReadError::Protocol(e.to_string()))?
            else {
                return Ok(None);
            };
            let data = data.unwrap_or_default();

            match opcode {
                OpCode::Text | OpCode::Binary => {
                    let kind = if opcode == OpCode::Text {
                        MessageKind::Text
                    } else {
                        MessageKind::Binary
                    };
                    if kind == MessageKind::Text && (fed > 0 || !fin) {
                        self.utf8.feed(&data[fed..])?;
                        if fin {
                            self.utf8.finish()?;
                        }
                    }
                    if fin {
                        return Ok(Some(match kind {
                            MessageKind::Text => Frame::Text(into_string(data)?),
                            _ => Frame::Binary(data.freeze()),
                        }));
                    }
                    self.frag = Some(Fragments { kind, data });
                }
                OpCode::Continue => {
                    let Some(frag) = self.frag.as_mut() else {
                        return Err(ReadError::Protocol("unexpected continuation".into()));
                    };
                    if frag.kind == MessageKind::Text {
                        self.utf8.feed(&data[fed..])?;
                        if fin {
                            self.utf8.finish()?;
                        }
                    }
                    frag.data.extend_from_slice(&data);
                    if fin {
                        let Some(frag) = self.frag.take() else {
                            return Err(ReadError::Protocol("unexpected continuation".into()));
                        };
                        return Ok(Some(match frag.kind {
                            MessageKind::Text => Frame::Text(into_string(frag.data)?),
                            _ => Frame::Binary(frag.data.freeze()),
                        }));
                    }
                }
                OpCode::Ping => return Ok(Some(Frame::Ping(data.freeze()))),
                OpCode::Pong => return Ok(Some(Frame::Pong(data.freeze()))),
                OpCode::Close => return Ok(Some(Frame::Close(parse_close(&data)?))),
                OpCode::Bad => return Err(ReadError::Protocol("bad opcode".into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_anywhere_is_accepted() {
        let s = "héllo € 😀 done".as_bytes();
        for cut1 in 0..s.len() {
            for cut2 in cut1..s.len() {
                let mut v = Utf8Stream::default();
                v.feed(&s[..cut1]).unwrap();
                v.feed(&s[cut1..cut2]).unwrap();
                v.feed(&s[cut2..]).unwrap();
                v.finish().unwrap();
            }
        }
    }

    #[test]
    fn invalid_utf8_fails_as_soon_as_it_is_seen() {
        let mut v = Utf8Stream::default();
        v.feed(b"ok \xce").unwrap(); // incomplete so far: fine
        assert_eq!(v.feed(b"\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), Ok(()));
        assert_eq!(v.feed(b"\xed\xa0\x80"), Err(ReadError::InvalidUtf8)); // surrogate
        let mut v = Utf8Stream::default();
        v.feed(b"\xf4").unwrap();
        assert_eq!(v.feed(b"\x90"), Err(ReadError::InvalidUtf8)); // above U+10FFFF
        let mut v = Utf8Stream::default();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(ReadError::InvalidUtf8)); // truncated at the end
    }

    #[test]
    fn header_length_is_known_before_the_payload() {
        // masked binary frame announcing 100 MiB, no payload yet
        let mut hdr = vec![0x82, 0xff];
        hdr.extend_from_slice(&(100u64 << 20).to_be_bytes());
        hdr.extend_from_slice(&[1, 2, 3, 4]);
        let h = peek_header(&hdr).unwrap().unwrap();
        assert_eq!(h.len, 100 << 20);
        assert_eq!(h.opcode, 2);
    }

    #[test]
    fn close_codes_are_validated() {
        assert!(parse_close(&[0x03, 0xe8]).unwrap().is_some()); // 1000
        assert!(matches!(
            parse_close(&[0x03, 0xed]),
            Err(ReadError::Protocol(_))
        )); // 1005
        assert_eq!(
            parse_close(&[0x03, 0xe8, 0xff]),
            Err(ReadError::InvalidUtf8)
        );
    }
}
