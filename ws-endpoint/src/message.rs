//! What handlers take and return: message payloads ([`MessagePayload`]), sendable values
//! ([`Sendable`]), handler results ([`HandlerReturn`]), and the [`Json`] and [`Pong`] wrappers.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{EndpointError, MessageKind, SendError};

/// One WebSocket message, in both directions: what the runtime hands to the dispatcher, what a
/// [`Sendable`] value becomes, what a broadcast carries. (A pong is a control frame, but JSR 356
/// delivers it to `@OnMessage` like a message, and so does ws-endpoint.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A pong's payload (received only: a handler taking [`Pong`]).
    Pong(Bytes),
}

impl Message {
    /// The kind of message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
            Message::Pong(_) => MessageKind::Pong,
        }
    }
}

/// A JSON message: as an `#[on_message]` payload it is decoded from a text message with serde
/// (a failure goes to `on_error` as [`EndpointError::Decode`] and the session stays open); as a
/// return value or in [`Session::send`](crate::Session::send) it is encoded as a text message.
///
/// ```
/// use ws_endpoint::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize)]
/// struct Add { a: i64, b: i64 }
/// #[derive(Serialize)]
/// struct Sum { sum: i64 }
///
/// #[derive(Default)]
/// struct Calc;
///
/// #[server_endpoint("/calc")]
/// impl Calc {
///     #[on_message]
///     fn add(&mut self, Json(req): Json<Add>) -> Json<Sum> {
///         Json(Sum { sum: req.a + req.b })
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A pong control frame's payload (JSR 356 `PongMessage`). Take it in an `#[on_message]`
/// handler to see pongs, e.g. to measure round trips after [`Session::ping`](crate::Session::ping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pong(pub Bytes);

/// A type that can be the payload of an `#[on_message]` handler.
///
/// Implemented for `String` (text), `Bytes` and `Vec<u8>` (binary), [`Json<T>`] (text),
/// [`Pong`], and your own types through the codec wrappers [`Text<T>`](crate::codec::Text) and
/// [`Binary<T>`](crate::codec::Binary) (and `MsgPack<T>` / `Cbor<T>` with their features). An
/// endpoint has at most one handler per [`MessageKind`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the payload of an #[on_message] handler",
    label = "not a message payload",
    note = "a payload is one of: String (text), Bytes or Vec<u8> (binary), Json<T> (text, decoded with serde), Pong, TextStream / BinaryStream (the message as it arrives), or your type in Text<T> / Binary<T> (implement ws_endpoint::codec::DecodeText / DecodeBinary)"
)]
pub trait MessagePayload: Sized {
    /// Which messages this payload takes.
    const KIND: MessageKind;
    /// Builds the payload from a message of kind [`Self::KIND`].
    #[doc(hidden)]
    fn from_message(msg: Message) -> Result<Self, EndpointError>;
}

fn wrong_kind(msg: &Message) -> EndpointError {
    EndpointError::Unsupported(msg.kind())
}

impl MessagePayload for String {
    const KIND: MessageKind = MessageKind::Text;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        match msg {
            Message::Text(s) => Ok(s),
            other => Err(wrong_kind(&other)),
        }
    }
}

impl MessagePayload for Bytes {
    const KIND: MessageKind = MessageKind::Binary;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        match msg {
            Message::Binary(b) => Ok(b),
            other => Err(wrong_kind(&other)),
        }
    }
}

impl MessagePayload for Vec<u8> {
    const KIND: MessageKind = MessageKind::Binary;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        Bytes::from_message(msg).map(Vec::from)
    }
}

impl MessagePayload for Pong {
    const KIND: MessageKind = MessageKind::Pong;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        match msg {
            Message::Pong(b) => Ok(Pong(b)),
            other => Err(wrong_kind(&other)),
        }
    }
}

impl<T: DeserializeOwned> MessagePayload for Json<T> {
    const KIND: MessageKind = MessageKind::Text;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        match msg {
            Message::Text(s) => serde_json::from_str(&s)
                .map(Json)
                .map_err(|e| EndpointError::Decode(Box::new(e))),
            other => Err(wrong_kind(&other)),
        }
    }
}

/// A value that can be sent as one message (JSR 356 `sendText` / `sendBinary` / `sendObject`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent as a WebSocket message",
    label = "not sendable",
    note = "sendable values are: String, &str, Bytes, Vec<u8>, &'static [u8], Json<T: Serialize>, or your type in Text<T> / Binary<T> (implement ws_endpoint::codec::EncodeText / EncodeBinary)"
)]
pub trait Sendable {
    /// Encodes the value as one text or binary frame.
    #[doc(hidden)]
    fn into_message(self) -> Result<Message, SendError>;
}

impl Sendable for String {
    fn into_message(self) -> Result<Message, SendError> {
        Ok(Message::Text(self))
    }
}

impl Sendable for &str {
    fn into_message(self) -> Result<Message, SendError> {
        Ok(Message::Text(self.to_owned()))
    }
}

impl Sendable for Bytes {
    fn into_message(self) -> Result<Message, SendError> {
        Ok(Message::Binary(self))
    }
}

impl Sendable for Vec<u8> {
    fn into_message(self) -> Result<Message, SendError> {
        Ok(Message::Binary(Bytes::from(self)))
    }
}

impl Sendable for &'static [u8] {
    fn into_message(self) -> Result<Message, SendError> {
        Ok(Message::Binary(Bytes::from_static(self)))
    }
}

impl<T: Serialize> Sendable for Json<T> {
    fn into_message(self) -> Result<Message, SendError> {
        serde_json::to_string(&self.0)
            .map(Message::Text)
            .map_err(|e| SendError::Encode(e.to_string()))
    }
}

/// What a handler may return: `()`, a [`Sendable`] value (sent back to the peer, as JSR 356
/// does with a non-void `@OnMessage`), `Option<_>` of one (`None` sends nothing), or
/// `Result<_, E>` of either (`Err` goes to `on_error`, the session stays open).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a ws-endpoint handler",
    label = "cannot be sent back to the peer",
    note = "return (), a sendable value (String, &str, Bytes, Vec<u8>, Json<T>), Option<_> of one, or Result<_, E> where E converts into Box<dyn Error + Send + Sync>"
)]
pub trait HandlerReturn {
    /// What to send back, if anything; `Err` for a handler error.
    #[doc(hidden)]
    fn into_reply(self) -> Result<Option<Message>, EndpointError>;
}

impl HandlerReturn for () {
    fn into_reply(self) -> Result<Option<Message>, EndpointError> {
        Ok(None)
    }
}

macro_rules! sendable_returns {
    ($($ty:ty),* $(,)?) => {$(
        impl HandlerReturn for $ty {
            fn into_reply(self) -> Result<Option<Message>, EndpointError> {
                self.into_message().map(Some).map_err(EndpointError::Send)
            }
        }
    )*};
}

sendable_returns!(String, &str, Bytes, Vec<u8>, &'static [u8]);

impl<T: Serialize> HandlerReturn for Json<T> {
    fn into_reply(self) -> Result<Option<Message>, EndpointError> {
        self.into_message().map(Some).map_err(EndpointError::Send)
    }
}

impl<T: HandlerReturn> HandlerReturn for Option<T> {
    fn into_reply(self) -> Result<Option<Message>, EndpointError> {
        match self {
            Some(v) => v.into_reply(),
            None => Ok(None),
        }
    }
}

impl<T, E> HandlerReturn for Result<T, E>
where
    T: HandlerReturn,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn into_reply(self) -> Result<Option<Message>, EndpointError> {
        match self {
            Ok(v) => v.into_reply(),
            Err(e) => Err(EndpointError::Handler(e.into())),
        }
    }
}
