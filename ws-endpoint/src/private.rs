//! Items the macro expands into. Not public API.

pub use crate::endpoint::Endpoint;
pub use crate::message::{HandlerReturn, Message, MessagePayload};
pub use actix_web::{FromRequest, HttpRequest};

use crate::{
    error::{EndpointError, MessageKind},
    session::Session,
};

/// Sends a handler's return value back to the peer.
pub async fn reply<R: HandlerReturn>(session: &Session, ret: R) -> Result<(), EndpointError> {
    match ret.into_reply()? {
        None => Ok(()),
        Some(msg) => session.reply(msg).await.map_err(Into::into),
    }
}

pub use crate::error::parse_path;

/// The raw value of a path parameter at the handshake.
pub fn request_path_param<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.match_info().get(name)
}

/// Turns a path parameter error into the 400 body.
pub fn path_error(err: EndpointError) -> String {
    match err {
        EndpointError::PathParam { name, message } => {
            format!("invalid path parameter `{name}`: {message}")
        }
        other => other.to_string(),
    }
}

/// The kind of a payload type, for the dispatcher.
pub const fn kind_of<P: MessagePayload>() -> MessageKind {
    P::KIND
}

/// Whether two kinds are the same, usable in `const` assertions.
pub const fn same_kind(a: MessageKind, b: MessageKind) -> bool {
    a as u8 == b as u8
}

/// Compile-time check the macro emits with the user's span.
pub fn assert_extractor<T: FromRequest>() {}

/// What `endpoint()` is built on when the endpoint did not compile, so that the user's other
/// code type-checks and only the real mistake is reported. Never served.
pub struct FallbackEndpoint;

impl Endpoint for FallbackEndpoint {
    type OpenArgs = ();
    const TEXT: bool = false;
    const BINARY: bool = false;
    const PONG: bool = false;
    const ON_ERROR: bool = false;
    fn config() -> crate::EndpointConfig {
        crate::EndpointConfig::new("/")
    }
    fn create() -> Self {
        FallbackEndpoint
    }
    fn check_path_params(_: &HttpRequest) -> Result<(), String> {
        Err("this endpoint did not compile".into())
    }
    async fn on_open(&mut self, _: &Session, _: ()) -> Result<(), EndpointError> {
        Ok(())
    }
    async fn on_message(&mut self, _: &Session, msg: Message) -> Result<(), EndpointError> {
        Err(EndpointError::Unsupported(msg.kind()))
    }
    async fn on_close(&mut self, _: &Session, _: crate::CloseReason) {}
    async fn on_error(&mut self, _: &Session, _: EndpointError) {}
}

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
    crate::error::log_unhandled(session.id(), session.path(), err);
}

/// Handles what an `on_close` handler returned: nothing can be sent any more; errors are logged.
pub fn finish<R: HandlerReturn>(session: &Session, ret: R) {
    if let Err(err) = ret.into_reply() {
        log_error(session, &err);
    }
}
