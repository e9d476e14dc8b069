//! Items the macro expands into. Not public API: the module's name carries the version of this
//! contract (`__private_0_1`), and the macro crate is pinned with `=` to this crate's version,
//! so a mismatched pair fails to compile instead of misbehaving.

use std::{any::Any, future::Future};

pub use crate::endpoint::{Endpoint, OpenArgs, Opened, Params};
pub use crate::incoming::{Incoming, StreamPayload};
pub use crate::message::{HandlerReturn, Message, MessagePayload};
pub use crate::wire::Assembly;
pub use actix_web::{Error as ActixError, HttpRequest};

pub use crate::handler::{
    finish, handler_outside_endpoint, kind_of, reply, CloneFallback, CloneProbe, DefaultFallback,
    DefaultProbe, ExtractorFallback, ExtractorProbe, PathParamFallback, PathParamProbe, Probe,
    ServerEndpointImpl,
};

use crate::{
    error::{EndpointError, MessageKind},
    handshake::Handshake,
    session::Session,
};

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

/// Boxes the parsed path parameters or the extractors' values.
pub fn boxed<T: 'static>(value: T) -> Box<dyn Any> {
    Box::new(value)
}

/// The path parameters' tuple, as the expansion typed it.
pub fn params<T: 'static>(params: &Params) -> &T {
    params
        .downcast_ref::<T>()
        .expect("ws-endpoint: path parameters of another type (a bug in the expansion)")
}

/// The extractors' tuple, as the expansion typed it.
pub fn args<T: 'static>(args: OpenArgs) -> Box<T> {
    args.downcast::<T>()
        .expect("ws-endpoint: on_open arguments of another type (a bug in the expansion)")
}

/// Runs a handler future, turning a panic into its message.
pub async fn guarded<T>(fut: impl Future<Output = T>) -> Result<T, String> {
    crate::connection::guarded(fut).await
}

/// `Default::default()` for the `Default` + `&mut self` form, a panic caught.
pub fn create<E>(default: fn() -> E) -> Result<E, EndpointError> {
    std::panic::catch_unwind(default)
        .map_err(|panic| EndpointError::Panic(crate::connection::panic_message(panic)))
}

/// The outcome of a `&mut self` `on_open`.
pub fn opened<E>(ep: E, result: Result<Result<(), EndpointError>, String>) -> Opened<E> {
    match result {
        Ok(Ok(())) => Opened::Open(ep),
        Ok(Err(err)) => Opened::Failed(ep, err),
        Err(panic) => Opened::Failed(ep, EndpointError::Panic(panic)),
    }
}

/// The outcome of a constructor-style `on_open`.
pub fn constructed<E>(result: Result<Result<E, EndpointError>, String>) -> Opened<E> {
    match result {
        Ok(Ok(ep)) => Opened::Open(ep),
        Ok(Err(err)) => Opened::Refused(err),
        Err(panic) => Opened::Refused(EndpointError::Panic(panic)),
    }
}

/// The `Err` of a constructor-style `on_open` returning `Result<Self, E>`.
pub fn handler_error<E: Into<Box<dyn std::error::Error + Send + Sync>>>(err: E) -> EndpointError {
    EndpointError::Handler(err.into())
}

/// What an `#[on_handshake]` hook may return: `()`, or `Result<(), E>` whose `Err` refuses the
/// upgrade with `E`'s HTTP response.
#[diagnostic::on_unimplemented(
    message = "an #[on_handshake] hook returns `()` or `Result<(), E>` with `E: Into<actix_web::Error>`, not `{Self}`",
    label = "the handshake's outcome",
    note = "`Err(actix_web::error::ErrorUnauthorized(\"...\"))` refuses the upgrade with 401, for example"
)]
pub trait HandshakeReturn {
    /// `Err`: the refusal.
    fn into_result(self) -> Result<(), ActixError>;
}

impl HandshakeReturn for () {
    fn into_result(self) -> Result<(), ActixError> {
        Ok(())
    }
}

impl<E: Into<ActixError>> HandshakeReturn for Result<(), E> {
    fn into_result(self) -> Result<(), ActixError> {
        self.map_err(Into::into)
    }
}

/// An `#[on_handshake]` hook's return value.
pub fn handshake_result<R: HandshakeReturn>(ret: R) -> Result<(), ActixError> {
    ret.into_result()
}

/// Whether two kinds are the same, usable in `const` assertions.
pub const fn same_kind(a: MessageKind, b: MessageKind) -> bool {
    a as u8 == b as u8
}

/// The assembly of `kind`'s handler among the handlers that take parts or streams (their kind
/// and assembly), [`Assembly::Messages`] when none does.
pub const fn assembly_of(kind: MessageKind, handlers: &[(MessageKind, Assembly)]) -> Assembly {
    let mut i = 0;
    while i < handlers.len() {
        if same_kind(handlers[i].0, kind) {
            return handlers[i].1;
        }
        i += 1;
    }
    Assembly::Messages
}

/// What `endpoint()` is built on when the endpoint did not compile, so that the user's other
/// code type-checks and only the real mistake is reported. Never served.
pub struct FallbackEndpoint;

impl Endpoint for FallbackEndpoint {
    const TEXT: bool = false;
    const BINARY: bool = false;
    const PONG: bool = false;
    const ON_ERROR: bool = false;
    fn config() -> crate::EndpointConfig {
        crate::EndpointConfig::new("/")
    }
    fn path_params(_: &HttpRequest) -> Result<Params, String> {
        Err("this endpoint did not compile".into())
    }
    async fn handshake(
        _: &HttpRequest,
        _: &Params,
        _: &mut Handshake,
    ) -> Result<OpenArgs, ActixError> {
        Err(actix_web::error::ErrorInternalServerError(
            "this endpoint did not compile",
        ))
    }
    async fn open(_: &Session, _: &Params, _: OpenArgs) -> Opened<Self> {
        Opened::Open(FallbackEndpoint)
    }
    async fn on_message(
        &mut self,
        _: &Session,
        _: &Params,
        msg: Message,
    ) -> Result<(), EndpointError> {
        Err(EndpointError::Unsupported(msg.kind()))
    }
    async fn on_close(&mut self, _: &Session, _: &Params, _: crate::CloseReason) {}
    async fn on_error(&mut self, _: &Session, _: &Params, _: EndpointError) {}
}

/// A `max_message_rate` the macro checked.
pub fn rate(s: &str) -> crate::Rate {
    s.parse().expect("checked by the macro")
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
