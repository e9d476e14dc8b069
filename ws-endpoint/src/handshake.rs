//! Handshake checks before the upgrade (a WebSocket request at all, the Origin policy), and
//! the [`Handshake`] an `#[on_handshake]` hook shapes.

use std::{
    any::{Any, TypeId},
    net::{IpAddr, SocketAddr},
};

use actix_http::ws::HandshakeError;
use actix_web::{
    http::{
        header::{self, HeaderName, HeaderValue, TryIntoHeaderPair},
        StatusCode, Version,
    },
    HttpRequest, HttpResponse,
};

use crate::{config::EndpointConfig, session::HandshakeInfo};

/// The local address a TCP connection arrived at, recorded by [`crate::on_connect`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalAddr(pub(crate) SocketAddr);

/// `None` when the request may be upgraded; otherwise the reason (a metrics label) and the
/// HTTP response refusing it.
///
/// Exactly what actix-http will upgrade, and nothing it would not: the request must be
/// HTTP/1.1 `GET` with `Upgrade: websocket` as its single token, a `Connection` list that
/// contains `upgrade`, no `Transfer-Encoding` (actix-http would read a body instead), one
/// well-formed `Sec-WebSocket-Key` and version 13. Then the `Host` and `Origin` policies.
pub(crate) fn refusal(
    req: &HttpRequest,
    config: &EndpointConfig,
) -> Option<(&'static str, HttpResponse)> {
    if let Err(err) = actix_http::ws::verify_handshake(req.head()) {
        return Some(("not_websocket", refuse(err)));
    }
    if let Err(why) = strict(req) {
        tracing::debug!(path = req.path(), why, "WebSocket handshake refused");
        return Some((
            "not_websocket",
            HttpResponse::BadRequest().body(format!("WebSocket handshake refused: {why}")),
        ));
    }
    // Behind a trusted proxy, the host the client asked for is the forwarded one.
    let forwarded = crate::proxy::forwarded_host(req);
    if let Some(refusal) = host_refusal(req, forwarded.as_deref(), config) {
        return Some(("host", refusal));
    }
    let host = forwarded.as_deref().or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    let mut origins = req.headers().get_all(header::ORIGIN);
    if let Some(origin) = origins.next() {
        if origins.next().is_some() {
            return Some((
                "origin",
                HttpResponse::Forbidden()
                    .body("WebSocket handshake refused: more than one Origin header"),
            ));
        }
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, host.unwrap_or(""), &config.allowed_origins) {
            tracing::debug!(
                origin,
                path = req.path(),
                "WebSocket handshake refused: origin"
            );
            return Some((
                "origin",
                HttpResponse::Forbidden().body(format!(
                    "WebSocket handshake refused: origin `{origin}` is not allowed for this endpoint"
                )),
            ));
        }
    }
    None
}

/// The checks actix-http's `verify_handshake` leaves out (it looks for `websocket` as a
/// substring, takes the first of several keys, and accepts HTTP/1.0 and a chunked body).
fn strict(req: &HttpRequest) -> Result<(), &'static str> {
    if req.version() != Version::HTTP_11 {
        return Err("a WebSocket handshake is an HTTP/1.1 request (RFC 6455 §4.1)");
    }
    let headers = req.headers();
    let mut upgrade = headers.get_all(header::UPGRADE);
    let single = match (upgrade.next(), upgrade.next()) {
        (Some(value), None) => value.to_str().ok().map(str::trim),
        _ => None,
    };
    if !single.is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err("`Upgrade` must be the single token `websocket`");
    }
    // One `Connection` header (with several, actix-http's decoder keeps the last one's
    // meaning), whose comma list contains `upgrade`.
    let mut connection = headers.get_all(header::CONNECTION);
    let connection_upgrade = match (connection.next(), connection.next()) {
        (Some(v), None) => v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
        }),
        _ => false,
    };
    if !connection_upgrade {
        return Err("one `Connection` header, listing `upgrade`, is required");
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err("an upgrade request has no body (`Transfer-Encoding` is not allowed)");
    }
    if headers.get_all(header::SEC_WEBSOCKET_KEY).count() != 1 {
        return Err("exactly one `Sec-WebSocket-Key` is required");
    }
    if headers.get_all(header::SEC_WEBSOCKET_VERSION).count() != 1 {
        return Err("exactly one `Sec-WebSocket-Version` is required");
    }
    Ok(())
}

/// The `Host` policy: `allowed_hosts` when set; otherwise, on a connection that arrived at a
/// loopback address, loopback names only (a DNS-rebinding page reaches a server on 127.0.0.1
/// with its own name in `Host` and `Origin`, so same-origin alone lets it in).
///
/// Behind a trusted proxy (`set_trusted_proxies`), `forwarded` is the host the client asked the
/// proxy for: `allowed_hosts` applies to it, and the loopback rule does not (the proxy is what
/// listens publicly).
fn host_refusal(
    req: &HttpRequest,
    forwarded: Option<&str>,
    config: &EndpointConfig,
) -> Option<HttpResponse> {
    let mut hosts = req.headers().get_all(header::HOST);
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), None) if forwarded.is_some() => forwarded.unwrap_or(""),
        (Some(host), None) => host.to_str().unwrap_or(""),
        (None, _) => {
            return Some(
                HttpResponse::BadRequest()
                    .body("WebSocket handshake refused: a `Host` header is required"),
            )
        }
        (Some(_), Some(_)) => {
            return Some(
                HttpResponse::BadRequest()
                    .body("WebSocket handshake refused: more than one `Host` header"),
            )
        }
    };
    let allowed = if !config.allowed_hosts.is_empty() {
        config
            .allowed_hosts
            .iter()
            .any(|a| a == "*" || host_matches(a, host))
    } else if !crate::proxy::from_trusted_proxy(req)
        && req
            .conn_data::<LocalAddr>()
            .is_some_and(|local| local.0.ip().to_canonical().is_loopback())
    {
        is_loopback_name(host_name(host))
    } else {
        true
    };
    if allowed {
        return None;
    }
    let attribute = if config.allowed_hosts.is_empty() {
        "this connection arrived at a loopback address, where only loopback names are accepted; \
         behind a proxy that forwards another Host, list it in `allowed_hosts`"
    } else {
        "it is not in `allowed_hosts`"
    };
    tracing::warn!(
        host,
        path = req.path(),
        "WebSocket handshake refused: Host `{host}` is not allowed ({attribute}); set \
         `allowed_hosts = [\"{}\"]` on the endpoint (or `.allowed_hosts([...])`) to accept it",
        host_name(host)
    );
    Some(HttpResponse::Forbidden().body(format!(
        "WebSocket handshake refused: Host `{host}` is not allowed for this endpoint"
    )))
}

/// The name part of a `Host` value (`[::1]:8080` → `[::1]`, `a.example:80` → `a.example`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end)
                if host[end + 1..].is_empty()
                    || host[end + 1..].strip_prefix(':').is_some_and(|p| {
                        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                    }) =>
            {
                &host[..=end]
            }
            _ => host, // not `[v6]` or `[v6]:port`: compared whole, so it matches nothing
        };
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

/// `entry` is a name (any port) or `name:port`.
fn host_matches(entry: &str, host: &str) -> bool {
    entry.eq_ignore_ascii_case(host) || entry.eq_ignore_ascii_case(host_name(host))
}

/// `localhost` (and `*.localhost`, RFC 6761), `127.0.0.0/8`, `[::1]`.
fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    if name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    let ip = name.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
fn origin_allowed(origin: &str, host: &str, allowed: &[String]) -> bool {
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
        extensions: response
            .headers()
            .get(header::SEC_WEBSOCKET_EXTENSIONS)
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
    /// added (e.g. `("set-cookie", "sid=…; HttpOnly")`). A header that is not valid, or one the
    /// upgrade itself sets (`Upgrade`, `Connection`, `Sec-WebSocket-*`, `Content-Length`,
    /// `Transfer-Encoding`), is not sent: the upgrade is refused with 500 and the reason is
    /// logged.
    pub fn insert_header(&mut self, header: impl TryIntoHeaderPair) -> &mut Self {
        match header.try_into_pair() {
            Ok((name, _)) if reserved(&name) => self.refuse_reserved(&name),
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
            Ok((name, _)) if reserved(&name) => self.refuse_reserved(&name),
            Ok(pair) => self.headers.push(pair),
            Err(e) => self.error = Some(e.into().to_string()),
        }
        self
    }

    fn refuse_reserved(&mut self, name: &HeaderName) {
        self.error = Some(format!(
            "`{name}` belongs to the WebSocket handshake itself and cannot be set by a hook \
             (subprotocols: the `subprotocols` attribute)"
        ));
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

/// Headers the upgrade itself sets: a hook that added one would break the handshake.
fn reserved(name: &HeaderName) -> bool {
    name == header::UPGRADE
        || name == header::CONNECTION
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name.as_str().starts_with("sec-websocket-")
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
    use actix_web::{http::Method, test::TestRequest};
    use proptest::prelude::*;

    /// One handshake request, described by what the strict checks look at.
    #[derive(Debug, Clone)]
    struct Shape {
        get: bool,
        http11: bool,
        upgrade: Vec<&'static str>,
        connection: Vec<&'static str>,
        transfer_encoding: bool,
        keys: usize,
        version: Option<&'static str>,
        hosts: usize,
    }

    impl Shape {
        fn request(&self) -> HttpRequest {
            let mut r = TestRequest::default()
                .method(if self.get { Method::GET } else { Method::POST })
                .version(if self.http11 {
                    Version::HTTP_11
                } else {
                    Version::HTTP_10
                });
            for u in &self.upgrade {
                r = r.append_header((header::UPGRADE, *u));
            }
            for c in &self.connection {
                r = r.append_header((header::CONNECTION, *c));
            }
            if self.transfer_encoding {
                r = r.append_header((header::TRANSFER_ENCODING, "chunked"));
            }
            for _ in 0..self.keys {
                r = r.append_header((header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ=="));
            }
            if let Some(v) = self.version {
                r = r.append_header((header::SEC_WEBSOCKET_VERSION, v));
            }
            for _ in 0..self.hosts {
                r = r.append_header((header::HOST, "example.test"));
            }
            r.to_http_request()
        }

        /// What RFC 6455 §4.2.1 and actix-http's upgrade accept together.
        fn acceptable(&self) -> bool {
            self.get
                && self.http11
                && self.upgrade.len() == 1
                && self.upgrade[0].trim().eq_ignore_ascii_case("websocket")
                && self.connection.len() == 1
                && self.connection[0]
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                && !self.transfer_encoding
                && self.keys == 1
                && self.version == Some("13")
                && self.hosts == 1
        }
    }

    /// Mostly valid requests with one or two things wrong, so that both outcomes are common.
    fn shapes() -> impl Strategy<Value = Shape> {
        let upgrade = prop_oneof![
            4 => prop::sample::select(vec!["websocket", "WebSocket", " websocket "]).prop_map(|u| vec![u]),
            1 => prop::collection::vec(
                prop::sample::select(vec![
                    "websocket",
                    "websocket, h2c",
                    "h2c, websocket",
                    "notwebsocket",
                    "websocketx",
                    "",
                ]),
                0..3,
            ),
        ];
        let connection = prop_oneof![
            4 => prop::sample::select(vec!["Upgrade", "upgrade", "keep-alive, Upgrade"]).prop_map(|c| vec![c]),
            1 => prop::collection::vec(
                prop::sample::select(vec!["Upgrade", "keep-alive", "upgradex", "close"]),
                0..3,
            ),
        ];
        let likely = |p: f64| prop::bool::weighted(p);
        (
            (likely(0.9), likely(0.9), upgrade, connection),
            (
                likely(0.1),
                prop_oneof![6 => Just(1usize), 1 => Just(0usize), 1 => Just(2usize)],
                prop_oneof![6 => Just(Some("13")), 1 => Just(Some("8")), 1 => Just(None)],
                prop_oneof![6 => Just(1usize), 1 => Just(0usize), 1 => Just(2usize)],
            ),
        )
            .prop_map(
                |((get, http11, upgrade, connection), (te, keys, version, hosts))| Shape {
                    get,
                    http11,
                    upgrade,
                    connection,
                    transfer_encoding: te,
                    keys,
                    version,
                    hosts,
                },
            )
    }

    #[test]
    fn the_usual_browser_request_is_accepted() {
        let shape = Shape {
            get: true,
            http11: true,
            upgrade: vec!["websocket"],
            connection: vec!["keep-alive, Upgrade"],
            transfer_encoding: false,
            keys: 1,
            version: Some("13"),
            hosts: 1,
        };
        assert!(shape.acceptable());
        assert!(refusal(&shape.request(), &EndpointConfig::new("/")).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The handshake checks accept exactly the requests actix-http upgrades and RFC 6455
        /// allows, whatever the mix of headers; everything else is refused before any handler.
        #[test]
        fn accepts_exactly_the_upgradable_requests(shape in shapes()) {
            let config = EndpointConfig::new("/");
            let refused = refusal(&shape.request(), &config);
            prop_assert_eq!(refused.is_none(), shape.acceptable(), "{:?} -> {:?}", shape, refused.map(|r| r.1.status()));
        }
    }

    fn upgrade_with_host(host: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((header::UPGRADE, "websocket"))
            .insert_header((header::CONNECTION, "Upgrade"))
            .insert_header((header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ=="))
            .insert_header((header::SEC_WEBSOCKET_VERSION, "13"))
            .insert_header((header::HOST, host))
            .to_http_request()
    }

    #[test]
    fn allowed_hosts_restrict_the_host_header() {
        let config = EndpointConfig::new("/").allowed_hosts(["app.example", "api.example:8443"]);
        let status = |host: &str| refusal(&upgrade_with_host(host), &config).map(|r| r.1.status());
        assert_eq!(status("app.example"), None);
        assert_eq!(status("APP.example:8080"), None);
        assert_eq!(status("api.example:8443"), None);
        assert_eq!(status("api.example:9000"), Some(StatusCode::FORBIDDEN));
        assert_eq!(status("evil.example"), Some(StatusCode::FORBIDDEN));
        let any = EndpointConfig::new("/").allowed_hosts(["*"]);
        assert!(refusal(&upgrade_with_host("evil.example"), &any).is_none());
    }

    #[test]
    fn loopback_names() {
        assert_eq!(host_name("[::1]garbage"), "[::1]garbage");
        assert!(!is_loopback_name(host_name("[::1]garbage")));
        for name in [
            "localhost",
            "LOCALHOST",
            "app.localhost",
            "127.0.0.1",
            "127.3.2.1",
            "[::1]",
        ] {
            assert!(is_loopback_name(name), "{name}");
        }
        for name in [
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1",
            "[::2]",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_name(name), "{name}");
        }
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("a.example:80"), "a.example");
        assert_eq!(host_name("a.example"), "a.example");
    }

    #[test]
    fn same_origin_is_allowed_by_host() {
        assert!(origin_allowed(
            "http://localhost:8080",
            "localhost:8080",
            &[]
        ));
        assert!(origin_allowed(
            "https://LOCALHOST:8080",
            "localhost:8080",
            &[]
        ));
        assert!(!origin_allowed("http://evil.test", "localhost:8080", &[]));
        assert!(!origin_allowed("null", "localhost:8080", &[]));
    }

    #[test]
    fn listed_origins_and_star_widen_it() {
        let allowed = vec!["http://app.test".to_string()];
        assert!(origin_allowed("http://app.test", "api.test", &allowed));
        assert!(origin_allowed("http://x.test", "api.test", &["*".into()]));
    }
}
