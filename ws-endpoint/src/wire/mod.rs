//! RFC 6455 on bytes only: frame headers, masking, the close codes allowed on the wire, UTF-8,
//! and the decoder that turns a byte stream (cut anywhere) into messages and control frames.
//!
//! Nothing here knows about actix, tokio or sessions: the connection future feeds the decoder the
//! chunks it reads and writes what the encoder produces. The seams the next layers need are here
//! too: RSV1 per frame (permessage-deflate), the frame mask (a client masks what it sends and
//! refuses masked frames), frames handed over as they arrive ([`Assembly::Frames`], for
//! streaming), and a `compressed` flag on every message for a per-message transform.

pub mod close;
mod decode;
pub mod deflate;
mod frame;
mod utf8;

pub use decode::{Assembly, Decoder, Event, Inflate, Limits, Role};
pub use frame::{apply_mask, encode_header, Header, OpCode, MAX_HEADER};
pub use utf8::Utf8Validator;

/// Why the peer's byte stream cannot be read any further, each with its close code (one table:
/// [`WireError::close_code`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A message is larger than the limit for its kind, known from a frame header (the payload
    /// is not read). `size` is what the message would have had at least.
    TooBig {
        /// Bytes announced so far (fragments included).
        size: u64,
        /// The limit for this kind.
        limit: usize,
    },
    /// Text that is not UTF-8.
    InvalidUtf8,
    /// A compressed message (RSV1) that is not a valid deflate stream.
    BadCompressed,
    /// A close frame whose reason is not UTF-8.
    InvalidCloseReason,
    /// A data message of a kind the endpoint takes no messages of.
    Unsupported(DataKind),
    /// An RFC 6455 violation.
    Protocol(&'static str),
    /// An invalid close code in the peer's close frame.
    BadCloseCode(u16),
}

impl WireError {
    /// The close code that answers this error (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            WireError::TooBig { .. } => close::TOO_BIG,
            WireError::InvalidUtf8 | WireError::InvalidCloseReason | WireError::BadCompressed => {
                close::INVALID_PAYLOAD
            }
            WireError::Unsupported(_) => close::UNSUPPORTED,
            WireError::Protocol(_) | WireError::BadCloseCode(_) => close::PROTOCOL,
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::TooBig { size, limit } => write!(
                f,
                "message too big: at least {size} bytes, the limit is {limit} bytes"
            ),
            WireError::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            WireError::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            WireError::BadCompressed => {
                f.write_str("compressed message is not a valid deflate stream")
            }
            WireError::Unsupported(kind) => {
                write!(f, "this endpoint does not accept {kind} messages")
            }
            WireError::Protocol(msg) => f.write_str(msg),
            WireError::BadCloseCode(code) => write!(f, "invalid close code {code}"),
        }
    }
}

impl std::error::Error for WireError {}

/// The two kinds of data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// Opcode 1, UTF-8.
    Text,
    /// Opcode 2.
    Binary,
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DataKind::Text => "text",
            DataKind::Binary => "binary",
        })
    }
}
