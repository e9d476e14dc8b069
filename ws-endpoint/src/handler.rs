//! What a handler's parameters and return value must be, checked at compile time through
//! traits whose messages name the fix (`#[diagnostic::on_unimplemented]`), and the calls the
//! expansion makes with the user's spans. Not public API: the macro expands into these through
//! `__private_0_1`; they live here so that the compiler's notes name `ws_endpoint::handler`.

use std::{
    future::Future,
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
};

use actix_web::{Error as ActixError, FromRequest, HttpRequest};

use crate::{
    error::{EndpointError, MessageKind},
    message::{HandlerReturn, MessagePayload},
    session::{self, Session},
};

/// Sends a handler's return value back to the peer: queued before this returns when the
/// queue has room (the future is then ready at once), else the future waits for room.
pub fn reply<R: HandlerReturn>(session: &Session, ret: R) -> Reply<'_> {
    Reply(match ret.into_reply() {
        Err(err) => Outcome::Done(Some(Err(err))),
        Ok(None) => Outcome::Done(Some(Ok(()))),
        Ok(Some(msg)) => match session.reply(msg) {
            session::Reply::Done(result) => Outcome::Done(Some(result.map_err(Into::into))),
            session::Reply::Waiting(waiting) => Outcome::Waiting(waiting),
        },
    })
}

/// The future of [`reply`]: a handler's return value queued, or waiting for room.
#[must_use = "a reply that waits for room in the queue is sent only once this is awaited"]
pub struct Reply<'a>(Outcome<'a>);

enum Outcome<'a> {
    Done(Option<Result<(), EndpointError>>),
    Waiting(session::Waiting<'a>),
}

impl Future for Reply<'_> {
    type Output = Result<(), EndpointError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            // Taken once; a future polled again after it completed has nothing more to do.
            Outcome::Done(result) => Poll::Ready(result.take().unwrap_or(Ok(()))),
            Outcome::Waiting(waiting) => waiting.as_mut().poll(cx).map_err(Into::into),
        }
    }
}

/// The kind of a payload type, for the dispatcher.
pub const fn kind_of<P: MessagePayload>() -> MessageKind {
    P::KIND
}

/// The type of one extractor parameter, for [`ExtractorProbe`] / [`ExtractorFallback`]: the
/// expansion calls `(&&Probe::<T>::new()).extract(req)`, which is `T::from_request` when `T`
/// is an extractor, and otherwise one error at the parameter's type in public terms (the
/// `#[diagnostic::on_unimplemented]` of [`OnOpenExtractor`]).
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    /// A probe.
    pub fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The extractor case (chosen first by method resolution).
pub trait ExtractorProbe<T> {
    /// Runs the extractor on the upgrade request; its body is empty (the request's payload is
    /// the WebSocket stream).
    fn extract(self, req: &HttpRequest) -> impl Future<Output = Result<T, ActixError>> + 'static;
}

impl<T: FromRequest + 'static> ExtractorProbe<T> for &&Probe<T> {
    fn extract(self, req: &HttpRequest) -> impl Future<Output = Result<T, ActixError>> + 'static {
        let fut = T::from_request(req, &mut actix_web::dev::Payload::None);
        async move { fut.await.map_err(Into::into) }
    }
}

/// Not an extractor: reported at the parameter.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an actix-web extractor, so #[on_open] and #[on_handshake] cannot take it",
    label = "not `&Session`, a `#[path_param]` or an extractor",
    note = "#[on_open] takes `&Session`, `#[path_param]` parameters and actix-web extractors (types that implement `actix_web::FromRequest`, such as `web::Data<T>`, `web::Query<T>`, `HttpRequest`); for a type of your own, implement `actix_web::FromRequest`, or mark a path parameter `#[path_param]`"
)]
pub trait OnOpenExtractor {}

/// The fallback case: a type that is not an extractor (one error, at the parameter).
pub trait ExtractorFallback<T> {
    /// Never callable: `T: OnOpenExtractor` holds for no type.
    fn extract(self, req: &HttpRequest) -> std::future::Pending<Result<T, ActixError>>
    where
        T: OnOpenExtractor;
}

impl<T> ExtractorFallback<T> for &Probe<T> {
    fn extract(self, _: &HttpRequest) -> std::future::Pending<Result<T, ActixError>>
    where
        T: OnOpenExtractor,
    {
        unreachable!("no type implements OnOpenExtractor")
    }
}

/// A `#[path_param]` type: parsed once at the handshake with `FromStr`, cloned for each
/// handler that takes it.
pub trait PathParamProbe<T> {
    /// Parses the raw segment (the 400 body on failure).
    fn parse_path(self, raw: Option<&str>, name: &'static str) -> Result<T, EndpointError>;
}

impl<T: std::str::FromStr + Clone + 'static> PathParamProbe<T> for &&Probe<T> {
    fn parse_path(self, raw: Option<&str>, name: &'static str) -> Result<T, EndpointError> {
        crate::error::parse_path(raw, name)
    }
}

/// Not a path parameter type: reported at the parameter.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a #[path_param]: it must implement `FromStr` (the path segment is parsed with it at the handshake) and `Clone` (each handler gets its own copy)",
    label = "not `FromStr + Clone`",
    note = "implement `std::str::FromStr` for it (and derive `Clone`), or take a `String` and convert it in the handler"
)]
pub trait PathParamType {}

/// The fallback: one error at the parameter.
pub trait PathParamFallback<T> {
    /// Never callable: `T: PathParamType` holds for no type.
    fn parse_path(self, raw: Option<&str>, name: &'static str) -> Result<T, EndpointError>
    where
        T: PathParamType;
}

impl<T> PathParamFallback<T> for &Probe<T> {
    fn parse_path(self, _: Option<&str>, _: &'static str) -> Result<T, EndpointError>
    where
        T: PathParamType,
    {
        unreachable!("no type implements PathParamType")
    }
}

/// A handler's copy of a path parameter.
pub trait CloneProbe<T> {
    /// A clone.
    fn param(self, value: &T) -> T;
}

impl<T: Clone> CloneProbe<T> for &&Probe<T> {
    fn param(self, value: &T) -> T {
        value.clone()
    }
}

/// A type that is not `Clone` was already reported by [`PathParamFallback`] (the endpoint does
/// not compile), so this adds no second error.
pub trait CloneFallback<T> {
    /// Unreachable: the endpoint did not compile.
    fn param(self, value: &T) -> T;
}

impl<T> CloneFallback<T> for &Probe<T> {
    fn param(self, _: &T) -> T {
        unreachable!("a #[path_param] type that is not Clone does not compile")
    }
}

/// How the instance of an endpoint without a constructor-style `on_open` is made.
pub trait DefaultProbe<T> {
    /// `T::default`.
    fn default_fn(self) -> fn() -> T;
}

impl<T: Default> DefaultProbe<T> for &&Probe<T> {
    fn default_fn(self) -> fn() -> T {
        T::default
    }
}

/// Neither `Default` nor a constructor: reported at the endpoint's type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no `Default` and no constructor-style #[on_open], so ws-endpoint cannot create an instance per connection",
    label = "needs `#[derive(Default)]` or a constructor-style #[on_open]",
    note = "either derive `Default` on the type (then `#[on_open] fn open(&mut self, ...)` runs on that instance), or build it in `#[on_open] async fn open(session: &Session, ...) -> Self` (no receiver)"
)]
pub trait EndpointInstance {}

/// The fallback: one error at the endpoint's type.
pub trait DefaultFallback<T> {
    /// Never callable: `T: EndpointInstance` holds for no type.
    fn default_fn(self) -> fn() -> T
    where
        T: EndpointInstance;
}

impl<T> DefaultFallback<T> for &Probe<T> {
    fn default_fn(self) -> fn() -> T
    where
        T: EndpointInstance,
    {
        unreachable!("no type implements EndpointInstance")
    }
}

/// Marks a type whose `#[server_endpoint]` was put on the type instead of its impl: that one
/// error is enough, its handlers add none.
#[diagnostic::on_unimplemented(
    message = "handler attributes (#[on_open], #[on_message], …) on an impl of `{Self}` without #[server_endpoint]",
    label = "this handler is never called",
    note = "put `#[server_endpoint(\"/path\")]` on the impl block that holds the handlers"
)]
pub trait ServerEndpointImpl {}

/// See [`ServerEndpointImpl`].
pub fn handler_outside_endpoint<T: ServerEndpointImpl + ?Sized>() {}

/// Handles what an `on_close` handler returned: nothing can be sent any more; errors are logged.
pub fn finish<R: HandlerReturn>(session: &Session, ret: R) {
    if let Err(err) = ret.into_reply() {
        crate::error::log_unhandled(session.id(), session.path(), &err);
    }
}
