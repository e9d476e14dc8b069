//! The endpoint contract the macro implements ([`Endpoint`]).

use std::{any::Any, future::Future};

use actix_web::HttpRequest;

use crate::{
    close::CloseReason,
    config::EndpointConfig,
    error::{EndpointError, MessageKind},
    handshake::Handshake,
    incoming::Incoming,
    message::Message,
    session::Session,
    wire::Assembly,
};

/// The path parameters of every handler, parsed once at the handshake (a tuple, typed by the
/// expansion; boxed so that the endpoint's interface names no user type).
pub type Params = Box<dyn Any>;

/// The values of `on_open`'s extractors, resolved during the handshake (a tuple, boxed likewise:
/// a private extractor type on a public endpoint is fine).
pub type OpenArgs = Box<dyn Any>;

/// What [`Endpoint::open`] gives the connection future.
pub enum Opened<E> {
    /// The instance exists and `on_open` went well.
    Open(E),
    /// The instance exists; `on_open` failed (or panicked): `on_error` gets the error.
    Failed(E, EndpointError),
    /// There is no instance (a constructor-style `on_open` returned `Err` or panicked, or
    /// `Default::default` panicked): the session closes with 1011 and no other handler runs.
    Refused(EndpointError),
}

/// What `#[server_endpoint]` implements for an annotated impl. Not meant to be implemented by
/// hand; its items may change between minor versions.
#[doc(hidden)]
pub trait Endpoint: Sized + 'static {
    /// Whether there is a text / binary / pong `on_message` handler.
    const TEXT: bool;
    /// See [`Endpoint::TEXT`].
    const BINARY: bool;
    /// See [`Endpoint::TEXT`].
    const PONG: bool;
    /// Whether there is an `on_error` handler.
    const ON_ERROR: bool;
    /// How text messages reach the text handler: whole, in parts (a handler with a
    /// `last: bool` parameter) or as a stream (a [`TextStream`](crate::TextStream) payload).
    const TEXT_ASSEMBLY: Assembly = Assembly::Messages;
    /// See [`Endpoint::TEXT_ASSEMBLY`].
    const BINARY_ASSEMBLY: Assembly = Assembly::Messages;

    /// The settings from the attributes.
    fn config() -> EndpointConfig;
    /// Parses every `#[path_param]` of every handler; `Err` is the 400 response body.
    fn path_params(req: &HttpRequest) -> Result<Params, String>;
    /// Runs `on_handshake` (if any), then resolves `on_open`'s extractors. An error refuses the
    /// upgrade with its HTTP response.
    fn handshake(
        req: &HttpRequest,
        params: &Params,
        handshake: &mut Handshake,
    ) -> impl Future<Output = Result<OpenArgs, actix_web::Error>>;
    /// Creates the instance and runs `on_open` (after the 101).
    fn open(
        session: &Session,
        params: &Params,
        args: OpenArgs,
    ) -> impl Future<Output = Opened<Self>>;
    /// Runs the `on_message` handler for the message's kind and sends back its return value.
    fn on_message(
        &mut self,
        session: &Session,
        params: &Params,
        msg: Message,
    ) -> impl Future<Output = Result<(), EndpointError>>;
    /// Runs the handler that takes its kind of message in parts, with one part (`last`: the
    /// message's last), and sends back its return value.
    fn on_part(
        &mut self,
        session: &Session,
        params: &Params,
        part: Message,
        last: bool,
    ) -> impl Future<Output = Result<(), EndpointError>> {
        let _ = (session, params, last);
        async move { Err(EndpointError::Unsupported(part.kind())) }
    }
    /// Runs the handler that takes its kind of message as a stream (of `kind`), and sends back
    /// its return value.
    fn on_stream(
        &mut self,
        session: &Session,
        params: &Params,
        kind: MessageKind,
        stream: Incoming,
    ) -> impl Future<Output = Result<(), EndpointError>> {
        let _ = (session, params, stream);
        async move { Err(EndpointError::Unsupported(kind)) }
    }
    /// Runs the `on_close` handler.
    fn on_close(
        &mut self,
        session: &Session,
        params: &Params,
        reason: CloseReason,
    ) -> impl Future<Output = ()>;
    /// Runs the `on_error` handler.
    fn on_error(
        &mut self,
        session: &Session,
        params: &Params,
        err: EndpointError,
    ) -> impl Future<Output = ()>;
}
