//! Custom codecs, the counterpart of JSR 356 `Decoder.Text` / `Decoder.Binary` /
//! `Encoder.Text` / `Encoder.Binary`.
//!
//! Implement [`DecodeText`] or [`DecodeBinary`] for your type and take it wrapped in [`Text`] or
//! [`Binary`] in an `#[on_message]` handler; implement [`EncodeText`] or [`EncodeBinary`] and
//! return (or [`Session::send`](crate::Session::send)) it wrapped the same way. A decode failure
//! goes to `on_error` as [`EndpointError::Decode`] and the session stays open, as in Tomcat and
//! Tyrus. With the cargo features `msgpack` and `cbor`, [`MsgPack<T>`] and [`Cbor<T>`] do the
//! same for any serde type in binary messages, as [`Json<T>`](crate::Json) does in text ones.
//!
//! ```
//! use ws_endpoint::prelude::*;
//! use ws_endpoint::codec::{DecodeText, EncodeText, Text};
//!
//! /// "move 3 4" on the wire.
//! struct Move { x: i32, y: i32 }
//!
//! impl DecodeText for Move {
//!     type Error = String;
//!     fn decode_text(text: &str) -> Result<Self, String> {
//!         let mut it = text.strip_prefix("move ").ok_or("expected `move x y`")?.split(' ');
//!         let mut num = || it.next().and_then(|n| n.parse().ok()).ok_or("expected two numbers");
//!         Ok(Move { x: num()?, y: num()? })
//!     }
//! }
//!
//! impl EncodeText for Move {
//!     type Error = std::convert::Infallible;
//!     fn encode_text(&self) -> Result<String, Self::Error> {
//!         Ok(format!("moved {} {}", self.x, self.y))
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Board;
//!
//! #[server_endpoint("/board")]
//! impl Board {
//!     #[on_message]
//!     fn play(&mut self, Text(m): Text<Move>) -> Text<Move> {
//!         Text(Move { x: m.x + 1, y: m.y })
//!     }
//! }
//! # assert_eq!(Move::decode_text("move 3 4").unwrap().x, 3);
//! # assert!(Move::decode_text("jump").is_err());
//! ```

use std::error::Error as StdError;

use bytes::Bytes;

use crate::{
    error::{EndpointError, MessageKind, SendError},
    message::{HandlerReturn, Message, MessagePayload, Sendable},
};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Decodes a type from a text message (JSR 356 `Decoder.Text<T>`).
pub trait DecodeText: Sized {
    /// Why a message did not decode; goes to `on_error` inside [`EndpointError::Decode`].
    type Error: Into<BoxError>;
    /// Decodes one whole text message.
    fn decode_text(text: &str) -> Result<Self, Self::Error>;
}

/// Decodes a type from a binary message (JSR 356 `Decoder.Binary<T>`).
pub trait DecodeBinary: Sized {
    /// Why a message did not decode; goes to `on_error` inside [`EndpointError::Decode`].
    type Error: Into<BoxError>;
    /// Decodes one whole binary message.
    fn decode_binary(data: &[u8]) -> Result<Self, Self::Error>;
}

/// Encodes a type as a text message (JSR 356 `Encoder.Text<T>`).
pub trait EncodeText {
    /// Why the value could not be encoded; the send then fails with [`SendError::Encode`].
    type Error: std::fmt::Display;
    /// Encodes the value as one text message.
    fn encode_text(&self) -> Result<String, Self::Error>;
}

/// Encodes a type as a binary message (JSR 356 `Encoder.Binary<T>`).
pub trait EncodeBinary {
    /// Why the value could not be encoded; the send then fails with [`SendError::Encode`].
    type Error: std::fmt::Display;
    /// Encodes the value as one binary message.
    fn encode_binary(&self) -> Result<Vec<u8>, Self::Error>;
}

/// A value carried in a text message by its [`DecodeText`] / [`EncodeText`] codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Text<T>(pub T);

/// A value carried in a binary message by its [`DecodeBinary`] / [`EncodeBinary`] codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Binary<T>(pub T);

fn decode_error(e: impl Into<BoxError>) -> EndpointError {
    EndpointError::Decode(e.into())
}

impl<T: DecodeText> MessagePayload for Text<T> {
    const KIND: MessageKind = MessageKind::Text;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        match msg {
            Message::Text(s) => T::decode_text(&s).map(Text).map_err(decode_error),
            other => Err(EndpointError::Unsupported(other.kind())),
        }
    }
}

impl<T: DecodeBinary> MessagePayload for Binary<T> {
    const KIND: MessageKind = MessageKind::Binary;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        match msg {
            Message::Binary(b) => T::decode_binary(&b).map(Binary).map_err(decode_error),
            other => Err(EndpointError::Unsupported(other.kind())),
        }
    }
}

impl<T: EncodeText> Sendable for Text<T> {
    fn into_message(self) -> Result<Message, SendError> {
        self.0
            .encode_text()
            .map(Message::Text)
            .map_err(|e| SendError::Encode(e.to_string()))
    }
}

impl<T: EncodeBinary> Sendable for Binary<T> {
    fn into_message(self) -> Result<Message, SendError> {
        self.0
            .encode_binary()
            .map(|v| Message::Binary(Bytes::from(v)))
            .map_err(|e| SendError::Encode(e.to_string()))
    }
}

impl<T: EncodeText> HandlerReturn for Text<T> {
    fn into_reply(self) -> Result<Option<Message>, EndpointError> {
        self.into_message().map(Some).map_err(EndpointError::Send)
    }
}

impl<T: EncodeBinary> HandlerReturn for Binary<T> {
    fn into_reply(self) -> Result<Option<Message>, EndpointError> {
        self.into_message().map(Some).map_err(EndpointError::Send)
    }
}

/// A MessagePack message (binary), decoded and encoded with serde through `rmp-serde`
/// (cargo feature `msgpack`). Maps are encoded with field names, so peers need no schema.
#[cfg(feature = "msgpack")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsgPack<T>(pub T);

#[cfg(feature = "msgpack")]
impl<T: serde::de::DeserializeOwned> MessagePayload for MsgPack<T> {
    const KIND: MessageKind = MessageKind::Binary;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        match msg {
            Message::Binary(b) => rmp_serde::from_slice(&b).map(MsgPack).map_err(decode_error),
            other => Err(EndpointError::Unsupported(other.kind())),
        }
    }
}

#[cfg(feature = "msgpack")]
impl<T: serde::Serialize> Sendable for MsgPack<T> {
    fn into_message(self) -> Result<Message, SendError> {
        rmp_serde::to_vec_named(&self.0)
            .map(|v| Message::Binary(Bytes::from(v)))
            .map_err(|e| SendError::Encode(e.to_string()))
    }
}

#[cfg(feature = "msgpack")]
impl<T: serde::Serialize> HandlerReturn for MsgPack<T> {
    fn into_reply(self) -> Result<Option<Message>, EndpointError> {
        self.into_message().map(Some).map_err(EndpointError::Send)
    }
}

/// A CBOR message (binary), decoded and encoded with serde through `ciborium` (cargo feature
/// `cbor`).
#[cfg(feature = "cbor")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cbor<T>(pub T);

#[cfg(feature = "cbor")]
impl<T: serde::de::DeserializeOwned> MessagePayload for Cbor<T> {
    const KIND: MessageKind = MessageKind::Binary;
    fn from_message(msg: Message) -> Result<Self, EndpointError> {
        match msg {
            Message::Binary(b) => ciborium::from_reader(&b[..])
                .map(Cbor)
                .map_err(decode_error),
            other => Err(EndpointError::Unsupported(other.kind())),
        }
    }
}

#[cfg(feature = "cbor")]
impl<T: serde::Serialize> Sendable for Cbor<T> {
    fn into_message(self) -> Result<Message, SendError> {
        let mut out = Vec::new();
        ciborium::into_writer(&self.0, &mut out)
            .map(|()| Message::Binary(Bytes::from(out)))
            .map_err(|e| SendError::Encode(e.to_string()))
    }
}

#[cfg(feature = "cbor")]
impl<T: serde::Serialize> HandlerReturn for Cbor<T> {
    fn into_reply(self) -> Result<Option<Message>, EndpointError> {
        self.into_message().map(Some).map_err(EndpointError::Send)
    }
}
