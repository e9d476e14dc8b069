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

/// Per-kind limits and whether the endpoint takes that kind at all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) text: Option<usize>,
    pub(crate) binary: Option<usize>,
}

struct Fragments {
    kind: MessageKind,
    data: BytesMut,
    /// Prefix of `data` known to be valid UTF-8 (text only).
    utf8_valid: usize,
}

pub(crate) struct FrameReader {
    payload: Payload,
    buf: BytesMut,
    eof: bool,
    limits: Limits,
    frag: Option<Fragments>,
}

struct Header {
    fin: bool,
    opcode: u8,
    len: u64,
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
    let len = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            u64::from(u16::from_be_bytes([buf[2], buf[3]]))
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
            len
        }
        n => u64::from(n),
    };
    Ok(Some(Header {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        len,
    }))
}

/// Validates the part of `data` after `*valid`; an incomplete sequence at the end is fine
/// unless `fin`.
fn check_utf8(data: &[u8], valid: &mut usize, fin: bool) -> Result<(), ReadError> {
    match std::str::from_utf8(&data[*valid..]) {
        Ok(_) => {
            *valid = data.len();
            Ok(())
        }
        Err(e) => {
            *valid += e.valid_up_to();
            if e.error_len().is_some() || fin {
                Err(ReadError::InvalidUtf8)
            } else {
                Ok(())
            }
        }
    }
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
            buf: BytesMut::with_capacity(4096),
            eof: false,
            limits,
            frag: None,
        }
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
                    if fin {
                        return Ok(Some(match kind {
                            MessageKind::Text => Frame::Text(into_string(data)?),
                            _ => Frame::Binary(data.freeze()),
                        }));
                    }
                    let mut frag = Fragments {
                        kind,
                        data,
                        utf8_valid: 0,
                    };
                    if kind == MessageKind::Text {
                        check_utf8(&frag.data, &mut frag.utf8_valid, false)?;
                    }
                    self.frag = Some(frag);
                }
                OpCode::Continue => {
                    let Some(frag) = self.frag.as_mut() else {
                        return Err(ReadError::Protocol("unexpected continuation".into()));
                    };
                    frag.data.extend_from_slice(&data);
                    if frag.kind == MessageKind::Text {
                        check_utf8(&frag.data, &mut frag.utf8_valid, fin)?;
                    }
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
    fn utf8_split_across_fragments_is_accepted() {
        let s = "héllo €".as_bytes();
        let mut valid = 0;
        // split inside the 3-byte euro sign
        let cut = s.len() - 1;
        check_utf8(&s[..cut], &mut valid, false).unwrap();
        assert!(valid < cut);
        check_utf8(s, &mut valid, true).unwrap();
        assert_eq!(valid, s.len());
    }

    #[test]
    fn invalid_utf8_fails_before_the_last_fragment() {
        let mut valid = 0;
        assert_eq!(
            check_utf8(b"ok\xc0\xafmore", &mut valid, false),
            Err(ReadError::InvalidUtf8)
        );
    }

    #[test]
    fn header_length_is_known_before_the_payload() {
        // masked binary frame announcing 100 MiB, no payload yet
        let mut hdr = vec![0x82, 0xff];
        hdr.extend_from_slice(&(100u64 << 20).to_be_bytes());
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
