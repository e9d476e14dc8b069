//! Handshake checks before the upgrade (a WebSocket request at all, the Origin policy), and
//! the [`Handshake`] an `#[on_handshake]` hook shapes.

use std::any::{Any, TypeId};

use actix_http::ws::HandshakeError;
use actix_web::{
    http::{
        header::{self, HeaderName, HeaderValue, TryIntoHeaderPair},
        StatusCode,
    },
    HttpRequest, HttpResponse,
};

use crate::{config::EndpointConfig, session::HandshakeInfo};

/// `None` when the request may be upgraded; otherwise the HTTP response refusing it.
pub(crate) fn refusal(req: &HttpRequest, config: &EndpointConfig) -> Option<HttpResponse> {
    if let Err(err) = actix_http::ws::verify_handshake(req.head()) {
        return Some(refuse(err));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, req, &config.allowed_origins) {
            tracing::debug!(
                origin,
                path = req.path(),
                "WebSocket handshake refused: origin"
            );
            return Some(HttpResponse::Forbidden().body(format!(
                "WebSocket handshake refused: origin `{origin}` is not allowed for this endpoint"
            )));
        }
    }
    None
}

fn refuse(err: HandshakeError) -> HttpResponse {
    match err {
        HandshakeError::NoWebsocketUpgrade | HandshakeError::NoConnectionUpgrade => {
            HttpResponse::BadRequest().body(
                "This is a WebSocket endpoint: connect with a WebSocket client \
                 (the request did not ask for `Connection: Upgrade` / `Upgrade: websocket`).",
            )
        }
        HandshakeError::UnsupportedVersion | HandshakeError::NoVersionHeader => {
            HttpResponse::build(StatusCode::UPGRADE_REQUIRED)
                .insert_header((header::SEC_WEBSOCKET_VERSION, "13"))
                .body("WebSocket handshake refused: only version 13 is supported")
        }
        HandshakeError::GetMethodRequired => HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET"))
            .body("WebSocket handshake refused: the method must be GET"),
        HandshakeError::BadWebsocketKey => HttpResponse::BadRequest()
            .body("WebSocket handshake refused: missing or malformed Sec-WebSocket-Key"),
    }
}

/// Same-origin (Origin's host equals the Host header), or listed, or `*` listed.
fn origin_allowed(origin: &str, req: &HttpRequest, allowed: &[String]) -> bool {
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(origin_host) = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
    else {
        return false; // "null" or garbage
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// What the session remembers of the handshake.
pub(crate) fn info(req: &HttpRequest, response: &HttpResponse) -> HandshakeInfo {
    HandshakeInfo {
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        path_params: req
            .match_info()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        subprotocol: response
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        peer_addr: req.peer_addr(),
        // The listener's own TLS, not the spoofable Forwarded / X-Forwarded-Proto headers.
        secure: req.app_config().secure(),
    }
}

/// The handshake in progress, handed to an [`#[on_handshake]`](crate::on_handshake) hook
/// (JSR 356 `Configurator.modifyHandshake`): headers to add to the 101 response, and typed
/// properties the session starts with (read them in `on_open` with
/// [`Session::property`](crate::Session::property)).
///
/// ```
/// use ws_endpoint::prelude::*;
/// use ws_endpoint::Handshake;
///
/// #[derive(Clone)]
/// struct User(String);
///
/// struct Feed {
///     user: User,
/// }
///
/// #[server_endpoint("/feed")]
/// impl Feed {
///     /// Runs before the 101: refuses with 401 without a token, names the user for `on_open`.
///     #[on_handshake]
///     fn handshake(req: HttpRequest, hs: &mut Handshake) -> Result<(), actix_web::Error> {
///         let token = req.headers().get("authorization").and_then(|v| v.to_str().ok());
///         let Some(user) = token.and_then(|t| t.strip_prefix("Bearer ")) else {
///             return Err(actix_web::error::ErrorUnauthorized("a bearer token is required"));
///         };
///         hs.insert_header(("x-feed-user", user));
///         hs.set_property(User(user.to_owned()));
///         Ok(())
///     }
///
///     #[on_open]
///     fn open(session: &Session) -> Self {
///         Feed { user: session.property::<User>().expect("set by the handshake") }
///     }
/// }
/// ```
#[derive(Default)]
pub struct Handshake {
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) properties: Vec<(TypeId, Box<dyn Any + Send + Sync>)>,
    pub(crate) error: Option<String>,
}

impl Handshake {
    /// Adds a header to the 101 response, replacing one of the same name that an earlier call
    /// added (e.g. `("set-cookie", "sid=…; HttpOnly")`). A header that is not valid is not
    /// sent: the upgrade is refused with 500 and the reason is logged.
    pub fn insert_header(&mut self, header: impl TryIntoHeaderPair) -> &mut Self {
        match header.try_into_pair() {
            Ok((name, value)) => {
                self.headers.retain(|(n, _)| *n != name);
                self.headers.push((name, value));
            }
            Err(e) => self.error = Some(e.into().to_string()),
        }
        self
    }

    /// Adds a header to the 101 response, keeping others of the same name (several
    /// `Set-Cookie`s).
    pub fn append_header(&mut self, header: impl TryIntoHeaderPair) -> &mut Self {
        match header.try_into_pair() {
            Ok(pair) => self.headers.push(pair),
            Err(e) => self.error = Some(e.into().to_string()),
        }
        self
    }

    /// A typed property the session will start with (see [`Session::set_property`](crate::Session::set_property)).
    pub fn set_property<T: Send + Sync + 'static>(&mut self, value: T) -> &mut Self {
        self.properties.retain(|(t, _)| *t != TypeId::of::<T>());
        self.properties.push((TypeId::of::<T>(), Box::new(value)));
        self
    }

    /// The headers added so far.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().map(|(n, v)| (n, v))
    }
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("headers", &self.headers)
            .field("properties", &self.properties.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req(host: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((header::HOST, host))
            .to_http_request()
    }

    #[test]
    fn same_origin_is_allowed_by_host() {
        assert!(origin_allowed(
            "http://localhost:8080",
            &req("localhost:8080"),
            &[]
        ));
        assert!(origin_allowed(
            "https://LOCALHOST:8080",
            &req("localhost:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            "http://evil.test",
            &req("localhost:8080"),
            &[]
        ));
        assert!(!origin_allowed("null", &req("localhost:8080"), &[]));
    }

    #[test]
    fn listed_origins_and_star_widen_it() {
        let allowed = vec!["http://app.test".to_string()];
        assert!(origin_allowed(
            "http://app.test",
            &req("api.test"),
            &allowed
        ));
        assert!(origin_allowed(
            "http://x.test",
            &req("api.test"),
            &["*".into()]
        ));
    }
}
