//! Errors handed to `#[on_error]` ([`EndpointError`]) and returned by sends ([`SendError`]).

use std::{error::Error as StdError, fmt};

/// Which kind of data message a frame or handler is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A text message (opcode 1), UTF-8.
    Text,
    /// A binary message (opcode 2).
    Binary,
    /// A pong control frame (opcode 10).
    Pong,
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageKind::Text => "text",
            MessageKind::Binary => "binary",
            MessageKind::Pong => "pong",
        })
    }
}

/// What went wrong in a session; the argument of an `#[on_error]` handler (JSR 356 `@OnError`'s
/// `Throwable`).
///
/// Which errors keep the session open and which close it is part of the contract:
///
/// | variant | session |
/// | --- | --- |
/// | [`Decode`](Self::Decode), [`Handler`](Self::Handler), [`PathParam`](Self::PathParam) | stays open |
/// | [`MessageTooBig`](Self::MessageTooBig) | closed with 1009 |
/// | [`InvalidUtf8`](Self::InvalidUtf8), [`InvalidCloseReason`](Self::InvalidCloseReason), [`InvalidCompressed`](Self::InvalidCompressed) | closed with 1007 |
/// | [`Unsupported`](Self::Unsupported) | closed with 1003 |
/// | [`TooManyMessages`](Self::TooManyMessages) | closed with 1008 |
/// | [`Protocol`](Self::Protocol) | closed with 1002 |
/// | [`Panic`](Self::Panic) | closed with 1011 |
///
/// ```
/// use ws_endpoint::EndpointError;
/// let err = EndpointError::MessageTooBig { size: 70_000, limit: 65_536 };
/// assert_eq!(err.close_code(), Some(1009));
/// assert!(err.to_string().contains("65536"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum EndpointError {
    /// A message (after reassembling its fragments) is larger than `max_message_size`.
    /// `size` is what the peer announced so far; the payload is not read.
    MessageTooBig {
        /// Bytes the message would have had, at least.
        size: u64,
        /// The limit in force for this kind of message.
        limit: usize,
    },
    /// A text message was not valid UTF-8.
    InvalidUtf8,
    /// The reason in the peer's close frame was not valid UTF-8.
    InvalidCloseReason,
    /// A compressed message (permessage-deflate) was not a valid deflate stream; the session
    /// is closed with 1007, as Jetty does.
    InvalidCompressed,
    /// A message of a kind the endpoint has no `#[on_message]` handler for.
    Unsupported(MessageKind),
    /// The peer broke RFC 6455 (unmasked frame, reserved bits, bad opcode, bad close code, …).
    Protocol(String),
    /// A payload (`Json<T>`, a path parameter re-read in a handler, …) did not decode.
    Decode(Box<dyn StdError + Send + Sync>),
    /// A `#[path_param]` could not be parsed (only possible when a handler names a parameter the
    /// handshake did not validate).
    PathParam {
        /// The template name.
        name: &'static str,
        /// What the parser said.
        message: String,
    },
    /// A handler returned `Err(e)`; the session stays open.
    Handler(Box<dyn StdError + Send + Sync>),
    /// A handler panicked; the message is the panic payload when it was a string.
    Panic(String),
    /// Sending a handler's return value failed.
    Send(SendError),
    /// The client sent more data messages than `max_message_rate` allows (the rate, e.g.
    /// `20/s`); the session is closed with 1008.
    TooManyMessages(String),
    /// A message being streamed to a handler ([`BinaryStream`](crate::BinaryStream),
    /// [`TextStream`](crate::TextStream)) ended before its last frame: the peer closed the
    /// connection or vanished (what follows is the session's close, with its own code).
    Truncated,
}

impl EndpointError {
    /// The close code this error closes the session with, or `None` when the session stays open.
    pub fn close_code(&self) -> Option<u16> {
        use crate::wire::close;
        match self {
            EndpointError::MessageTooBig { .. } => Some(close::TOO_BIG),
            EndpointError::InvalidUtf8
            | EndpointError::InvalidCloseReason
            | EndpointError::InvalidCompressed => Some(close::INVALID_PAYLOAD),
            EndpointError::TooManyMessages(_) => Some(close::POLICY),
            EndpointError::Unsupported(_) => Some(close::UNSUPPORTED),
            EndpointError::Protocol(_) => Some(close::PROTOCOL),
            EndpointError::Panic(_) => Some(close::INTERNAL_ERROR),
            _ => None,
        }
    }

    /// The close frame this error closes the session with (one place decides code and reason
    /// phrase), or `None` when the session stays open.
    pub(crate) fn close_reason(&self) -> Option<crate::CloseReason> {
        let code = self.close_code()?;
        let text = match self {
            EndpointError::MessageTooBig { limit, .. } => {
                format!("message too big: the limit is {limit} bytes")
            }
            EndpointError::Panic(_) => "internal server error".to_owned(),
            other => other.to_string(),
        };
        Some(crate::CloseReason::new(code, text))
    }

    /// The `kind` label of the `ws_endpoint_errors_total` metric.
    pub(crate) fn kind_label(&self) -> &'static str {
        match self {
            EndpointError::MessageTooBig { .. } => "message_too_big",
            EndpointError::InvalidUtf8 => "invalid_utf8",
            EndpointError::InvalidCloseReason => "invalid_close_reason",
            EndpointError::InvalidCompressed => "invalid_compressed",
            EndpointError::Unsupported(_) => "unsupported",
            EndpointError::Protocol(_) => "protocol",
            EndpointError::Decode(_) => "decode",
            EndpointError::PathParam { .. } => "path_param",
            EndpointError::Handler(_) => "handler",
            EndpointError::Panic(_) => "panic",
            EndpointError::Send(_) => "send",
            EndpointError::TooManyMessages(_) => "rate_limited",
            EndpointError::Truncated => "truncated",
        }
    }

    /// Wraps any error as [`EndpointError::Handler`].
    pub fn handler(err: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        EndpointError::Handler(err.into())
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::MessageTooBig { size, limit } => write!(
                f,
                "message too big: at least {size} bytes, the limit is {limit} bytes"
            ),
            EndpointError::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            EndpointError::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            EndpointError::InvalidCompressed => {
                f.write_str("compressed message is not a valid deflate stream")
            }
            EndpointError::Unsupported(kind) => {
                write!(f, "this endpoint does not accept {kind} messages")
            }
            EndpointError::Protocol(msg) => write!(f, "protocol error: {msg}"),
            EndpointError::Decode(err) => write!(f, "could not decode message: {err}"),
            EndpointError::PathParam { name, message } => {
                write!(f, "path parameter `{name}` did not parse: {message}")
            }
            EndpointError::Handler(err) => write!(f, "handler error: {err}"),
            EndpointError::Panic(msg) => write!(f, "handler panicked: {msg}"),
            EndpointError::Send(err) => write!(f, "could not send the reply: {err}"),
            EndpointError::TooManyMessages(rate) => write!(f, "message rate over {rate}"),
            EndpointError::Truncated => {
                f.write_str("the connection ended before the message's last frame")
            }
        }
    }
}

impl StdError for EndpointError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            EndpointError::Decode(e) | EndpointError::Handler(e) => Some(&**e),
            EndpointError::Send(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::wire::WireError> for EndpointError {
    fn from(err: crate::wire::WireError) -> Self {
        use crate::wire::{DataKind, WireError};
        match err {
            WireError::TooBig { size, limit } => EndpointError::MessageTooBig { size, limit },
            WireError::InvalidUtf8 => EndpointError::InvalidUtf8,
            WireError::InvalidCloseReason => EndpointError::InvalidCloseReason,
            WireError::BadCompressed => EndpointError::InvalidCompressed,
            WireError::Unsupported(DataKind::Text) => EndpointError::Unsupported(MessageKind::Text),
            WireError::Unsupported(DataKind::Binary) => {
                EndpointError::Unsupported(MessageKind::Binary)
            }
            other @ (WireError::Protocol(_) | WireError::BadCloseCode(_)) => {
                EndpointError::Protocol(other.to_string())
            }
        }
    }
}

impl From<SendError> for EndpointError {
    fn from(err: SendError) -> Self {
        EndpointError::Send(err)
    }
}

/// A send on a [`Session`](crate::Session) failed.
///
/// ```
/// use ws_endpoint::SendError;
/// assert_eq!(SendError::Closed.to_string(), "the session is closed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed (or closing); nothing was sent.
    Closed,
    /// The value could not be encoded (e.g. `serde_json` refused it); nothing was sent.
    Encode(String),
    /// [`Session::try_send`](crate::Session::try_send) found no room in the outbound queue;
    /// nothing was queued.
    Full,
    /// [`Session::close`](crate::Session::close) with a code RFC 6455 forbids on the wire
    /// (e.g. 1005, 1006, 1015); the session was not closed.
    InvalidCloseCode(u16),
    /// A message sent in parts ([`Session::send_partial`](crate::Session::send_partial), a
    /// writer) cannot take this part: another writer holds the message, or the part is of the
    /// other kind (text in a binary message, or the reverse). Nothing was sent.
    MessageInProgress,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed => f.write_str("the session is closed"),
            SendError::Full => f.write_str("the session's outbound queue is full"),
            SendError::Encode(msg) => write!(f, "could not encode the message: {msg}"),
            SendError::InvalidCloseCode(code) => {
                write!(f, "close code {code} may not be sent on the wire")
            }
            SendError::MessageInProgress => f.write_str(
                "a message sent in parts is in progress (another writer's, or of the other kind)",
            ),
        }
    }
}

impl StdError for SendError {}

/// Parses one `#[path_param]` value. The same function serves the handshake check and the
/// handler call, so a type that is not `FromStr` gives one error.
#[doc(hidden)]
pub fn parse_path<T: std::str::FromStr>(
    raw: Option<&str>,
    name: &'static str,
) -> Result<T, EndpointError> {
    let Some(raw) = raw else {
        return Err(EndpointError::PathParam {
            name,
            message: "missing from the request path".into(),
        });
    };
    raw.parse::<T>().map_err(|_| EndpointError::PathParam {
        name,
        message: format!("`{raw}` is not a valid {}", std::any::type_name::<T>()),
    })
}

/// Logs an error no `on_error` handler takes.
pub(crate) fn log_unhandled(session: impl fmt::Display, path: &str, err: &EndpointError) {
    tracing::warn!(session = %session, path, error = %err,
        "WebSocket endpoint error (no #[on_error] handler)");
}
