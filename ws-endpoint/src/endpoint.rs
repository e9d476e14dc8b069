//! The endpoint contract the macro implements ([`Endpoint`]).

use std::future::Future;

use actix_web::{FromRequest, HttpRequest};

use crate::{
    close::CloseReason, config::EndpointConfig, error::EndpointError, message::Message,
    session::Session,
};

/// What `#[server_endpoint]` implements for an annotated impl. Not meant to be implemented by
/// hand; its items may change between minor versions.
#[doc(hidden)]
pub trait Endpoint: Sized + 'static {
    /// The actix-web extractors `on_open` takes, as a tuple.
    type OpenArgs: FromRequest + 'static;
    /// Whether there is a text / binary / pong `on_message` handler.
    const TEXT: bool;
    /// See [`Endpoint::TEXT`].
    const BINARY: bool;
    /// See [`Endpoint::TEXT`].
    const PONG: bool;
    /// Whether there is an `on_error` handler.
    const ON_ERROR: bool;

    /// The settings from the attributes.
    fn config() -> EndpointConfig;
    /// A fresh instance for a new connection.
    fn create() -> Self;
    /// Parses every `#[path_param]` of every handler; `Err` is the 400 response body.
    fn check_path_params(req: &HttpRequest) -> Result<(), String>;

    /// Runs the `on_open` handler.
    fn on_open(
        &mut self,
        session: &Session,
        args: Self::OpenArgs,
    ) -> impl Future<Output = Result<(), EndpointError>>;
    /// Runs the `on_message` handler for the message's kind and sends back its return value.
    fn on_message(
        &mut self,
        session: &Session,
        msg: Message,
    ) -> impl Future<Output = Result<(), EndpointError>>;
    /// Runs the `on_close` handler.
    fn on_close(&mut self, session: &Session, reason: CloseReason) -> impl Future<Output = ()>;
    /// Runs the `on_error` handler.
    fn on_error(&mut self, session: &Session, err: EndpointError) -> impl Future<Output = ()>;
}
