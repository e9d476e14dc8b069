//! Items the macro expands into. Not public API.

pub use crate::endpoint::Endpoint;
pub use crate::message::{HandlerReturn, Incoming, MessagePayload, Outgoing};
pub use actix_web::{FromRequest, HttpRequest};

use std::str::FromStr;

use crate::{
    error::{EndpointError, MessageKind},
    session::Session,
};

/// Sends a handler's return value back to the peer.
pub async fn reply<R: HandlerReturn>(session: &Session, ret: R) -> Result<(), EndpointError> {
    match ret.into_reply()? {
        None => Ok(()),
        Some(Outgoing::Text(text)) => session.text(text).await.map_err(Into::into),
        Some(Outgoing::Binary(data)) => session.binary(data).await.map_err(Into::into),
    }
}

/// Handshake-time check of one `#[path_param]`.
pub fn check_path_param<T: FromStr>(req: &HttpRequest, name: &str) -> Result<(), String> {
    match req.match_info().get(name) {
        Some(raw) if raw.parse::<T>().is_ok() => Ok(()),
        Some(raw) => Err(format!(
            "invalid path parameter `{name}`: `{raw}` is not a valid {}",
            std::any::type_name::<T>()
        )),
        None => Err(format!("missing path parameter `{name}`")),
    }
}

/// Handler-time value of one `#[path_param]` (validated at the handshake).
pub fn path_param<T: FromStr>(session: &Session, name: &'static str) -> Result<T, EndpointError> {
    let raw = session.path_param(name).unwrap_or_default();
    raw.parse::<T>().map_err(|_| EndpointError::PathParam {
        name,
        message: format!("`{raw}` is not a valid {}", std::any::type_name::<T>()),
    })
}

/// The kind of a payload type, for the dispatcher.
pub const fn kind_of<P: MessagePayload>() -> MessageKind {
    P::KIND
}

/// Whether two kinds are the same, usable in `const` assertions.
pub const fn same_kind(a: MessageKind, b: MessageKind) -> bool {
    a as u8 == b as u8
}

/// Compile-time checks the macro emits with the user's spans.
pub fn assert_payload<P: MessagePayload>() {}
/// See [`assert_payload`].
pub fn assert_return<R: HandlerReturn>() {}
/// See [`assert_payload`].
pub fn assert_extractor<T: FromRequest>() {}
/// See [`assert_payload`].
pub fn assert_path_param<T: FromStr>() {}

/// The return type of `endpoint()` when the endpoint did not compile (never constructed).
pub enum Fallback {}

/// Applies an `#[on_message(max_message_size = N)]` to its kind.
pub fn set_limit(config: &mut crate::EndpointConfig, kind: MessageKind, bytes: usize) {
    match kind {
        MessageKind::Text => config.max_text_message_size = bytes,
        MessageKind::Binary => config.max_binary_message_size = bytes,
        MessageKind::Pong => {}
    }
}

/// Logs an error nobody handles.
pub fn log_error(session: &Session, err: &EndpointError) {
    tracing::warn!(session = %session.id(), path = session.path(), error = %err,
        "WebSocket endpoint error (no #[on_error] handler)");
}

/// Handles what an `on_close` handler returned: nothing can be sent any more; errors are logged.
pub fn finish<R: HandlerReturn>(session: &Session, ret: R) {
    if let Err(err) = ret.into_reply() {
        log_error(session, &err);
    }
}
