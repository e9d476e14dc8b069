//! Client endpoints (JSR 356 `@ClientEndpoint`, `WebSocketContainer.connectToServer`): an impl
//! with [`#[client_endpoint]`](crate::client_endpoint) connects with `MyClient::connect(url)`
//! or `MyClient::connector(url)` (a [`Connector`]: headers, subprotocols, Origin, timeouts,
//! limits, heartbeat, compression, [`Reconnect`], TLS), and gets a [`Client`] once `on_open`
//! has run.
//!
//! ```no_run
//! use ws_endpoint::prelude::*;
//!
//! #[derive(Default)]
//! struct Feed;
//!
//! #[client_endpoint(max_message_size = "1MiB")]
//! impl Feed {
//!     #[on_open]
//!     async fn open(&mut self, session: &Session) {
//!         let _ = session.text("subscribe prices").await;
//!     }
//!
//!     #[on_message]
//!     fn price(&mut self, msg: String) {
//!         println!("{msg}");
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ws_endpoint::client::ConnectError> {
//!     let client = Feed::connector("ws://127.0.0.1:8080/prices")
//!         .header("authorization", "Bearer secret")
//!         .reconnect(ws_endpoint::client::Reconnect::default())
//!         .connect()
//!         .await?;
//!     client.session().text("hello").await.ok();
//!     let reason = client.closed().await;
//!     println!("done: {reason}");
//!     Ok(())
//! }
//! ```
//!
//! **How it runs.** Each client runs on a thread of its own, with a current-thread tokio
//! runtime: its handlers, as on the server, run one at a time and their futures need not be
//! `Send`, and the caller may use any runtime (or none but the one `connect` is awaited on).
//! The [`Session`] is `Send + Sync` like the server's: any task on any thread may send. A
//! client that reconnects keeps its thread, and runs `on_open` and `on_close` once per
//! connection, each on a fresh instance of the endpoint.
//!
//! **The wire** is the server's codec in the client's role: every frame masked with a fresh
//! random key, a masked frame from the server answered with 1002, the same limits and close
//! codes, auto-pong, the heartbeat, permessage-deflate offered by default
//! (`permessage-deflate; client_no_context_takeover; client_max_window_bits`: the client
//! compresses every message on its own, with whatever window the server asks for; the server may
//! keep its context). After a close (either side's), the client waits at most
//! [`Connector::close_timeout`] for the server to close the TCP connection (RFC 6455 §7.1.1:
//! the server closes first), then closes it.
//!
//! **HTTP.** The upgrade request is an `http::Request` (the crate `http`), the response is parsed
//! by `httparse`; `Sec-WebSocket-Accept` is verified, a subprotocol or an extension the client
//! did not offer fails the handshake, and any status but 101 is [`ConnectError::Status`] with
//! its headers and body. Redirects are not followed (a 3xx is an error carrying its
//! `Location`), and HTTP proxies (CONNECT) are not supported.

mod handshake;

use std::{
    cell::RefCell,
    marker::PhantomData,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use actix_web::body::MessageBody as _;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadHalf},
    net::TcpStream,
    sync::{oneshot, watch, Notify},
    time::timeout,
};

use crate::{
    close::{CloseCode, CloseReason},
    config::EndpointConfig,
    connection,
    endpoint::Endpoint,
    session::{Body, HandshakeInfo, SendDeflate, Session, SessionSettings},
    telemetry::SessionMetrics,
    wire::{DataKind, Decoder, Inflate, Limits, Role},
};

use self::handshake::{Offer, Target};

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use tokio_rustls::rustls;

/// A byte stream the client speaks over: TCP, or TLS over TCP.
trait Transport: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Transport for T {}
type Io = Box<dyn Transport>;

/// Why a client could not connect.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    InvalidUrl(String),
    /// A header set on the connector is not valid (or is one the handshake sets itself).
    InvalidRequest(String),
    /// Resolving the host, connecting, reading or writing failed.
    Io(std::io::Error),
    /// The TCP connection (`"connect"`) or the TLS and WebSocket handshakes (`"handshake"`) took
    /// longer than the connector allows.
    Timeout(&'static str),
    /// A `wss://` URL, and the crate was built without its `tls` feature.
    TlsUnavailable,
    /// The TLS handshake failed (an untrusted certificate, a name that does not match, …).
    Tls(std::io::Error),
    /// The server answered the upgrade with another status than 101 (redirects are not
    /// followed: a 3xx lands here with its `Location` header).
    Status {
        /// The response's status.
        status: StatusCode,
        /// The response's headers (boxed: they would make every `Result` of this error large).
        headers: Box<HeaderMap>,
        /// The response's body, as far as `Content-Length` announced it (at most 64 KiB).
        body: Bytes,
    },
    /// The 101 response breaks RFC 6455 §4.1 (a wrong `Sec-WebSocket-Accept`, a subprotocol or
    /// extension that was not offered, …).
    Handshake(String),
    /// The client's thread could not be started, or ended before the connection opened.
    Stopped,
}

impl ConnectError {
    /// Whether trying again later may succeed: connection and I/O failures, timeouts, and the
    /// statuses 408, 429, 500, 502, 503 and 504. A bad URL, a refusal (401, 403, 404, …), a
    /// TLS failure or a broken handshake would fail the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Io(_) | ConnectError::Timeout(_) => true,
            ConnectError::Status { status, .. } => {
                matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::InvalidUrl(why) => write!(f, "invalid WebSocket URL {why}"),
            ConnectError::InvalidRequest(why) => write!(f, "invalid upgrade request: {why}"),
            ConnectError::Io(e) => write!(f, "connection failed: {e}"),
            ConnectError::Timeout(what) => write!(f, "{what} timed out"),
            ConnectError::TlsUnavailable => f.write_str(
                "wss:// needs ws-endpoint's `tls` feature (features = [\"tls\"] in Cargo.toml)",
            ),
            ConnectError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            ConnectError::Status { status, .. } => {
                write!(f, "the server refused the upgrade with {status}")
            }
            ConnectError::Handshake(why) => write!(f, "invalid handshake response: {why}"),
            ConnectError::Stopped => f.write_str("the client stopped before it connected"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Io(e) | ConnectError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ConnectError {
    fn from(e: std::io::Error) -> Self {
        ConnectError::Io(e)
    }
}

/// [`Reconnect::when`]'s rule.
type ReconnectIf = Arc<dyn Fn(&CloseReason) -> bool + Send + Sync>;

/// When and how often a [`Client`] connects again (Tyrus' `ReconnectHandler`): exponential
/// backoff with jitter, capped, for at most so many tries in a row.
///
/// A connection that ends is followed by a new one unless its close code was 1000 (the
/// server or the client ended it on purpose) or [`Client::close`] was called; a failed
/// attempt is retried when [`ConnectError::is_transient`]. [`Reconnect::when`] replaces the
/// first rule. The delay before try *n* (counted from the last connection that stayed open
/// [`stable_after`](Reconnect::stable_after)) is `min(max_delay, initial_delay × 2ⁿ⁻¹)`, less a
/// random part of up to `jitter` of it (so that many clients dropped at once do not come back
/// at once). `max_tries(0)` never reconnects.
///
/// ```
/// use std::time::Duration;
/// use ws_endpoint::client::Reconnect;
/// let policy = Reconnect::default()
///     .initial_delay(Duration::from_millis(200))
///     .max_delay(Duration::from_secs(10))
///     .max_tries(20)
///     .when(|reason| reason.code_u16() != 1008);
/// assert_eq!(policy.delay(1), Duration::from_millis(200)); // without jitter: .jitter(0.0)
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct Reconnect {
    initial: Duration,
    max: Duration,
    jitter: f64,
    max_tries: Option<u32>,
    stable: Duration,
    when: Option<ReconnectIf>,
}

impl Default for Reconnect {
    /// 500 ms, doubling up to 30 s, jitter 0.5, tries without end; a connection counts as
    /// having worked once it stayed open 10 s.
    fn default() -> Self {
        Reconnect {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            jitter: 0.5,
            max_tries: None,
            stable: Duration::from_secs(10),
            when: None,
        }
    }
}

impl std::fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnect")
            .field("initial_delay", &self.initial)
            .field("max_delay", &self.max)
            .field("jitter", &self.jitter)
            .field("max_tries", &self.max_tries)
            .field("stable_after", &self.stable)
            .field("when", &self.when.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl Reconnect {
    /// The delay before the first try.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial = delay;
        self
    }

    /// The longest delay between tries.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max = delay;
        self
    }

    /// The part of each delay that is random, from 0.0 (none) to 1.0 (anywhere from zero to
    /// the delay).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// Gives up after this many failed tries in a row (the client then ends, and
    /// [`Client::closed`] returns); unset, it never gives up.
    pub fn max_tries(mut self, tries: u32) -> Self {
        self.max_tries = Some(tries);
        self
    }

    /// How long a connection must stay open to count as having worked (10 s by default): one
    /// that ends sooner (a server that accepts and closes at once) counts as a failed try, so
    /// the backoff goes on growing and [`max_tries`](Self::max_tries) applies.
    pub fn stable_after(mut self, open_for: Duration) -> Self {
        self.stable = open_for;
        self
    }

    /// Whether a connection that ended with this reason is followed by a new one (instead of
    /// "unless its code is 1000"). [`Client::close`] always ends the client.
    pub fn when(mut self, f: impl Fn(&CloseReason) -> bool + Send + Sync + 'static) -> Self {
        self.when = Some(Arc::new(f));
        self
    }

    /// The delay before try `n` (from 1), before jitter.
    pub fn delay(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(30);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    fn jittered(&self, n: u32) -> Duration {
        let d = self.delay(n);
        let cut: f64 = rand::random::<f64>() * self.jitter;
        d.mul_f64(1.0 - cut)
    }

    fn after_close(&self, reason: &CloseReason) -> bool {
        match &self.when {
            Some(f) => f(reason),
            None => reason.code_u16() != u16::from(CloseCode::Normal),
        }
    }

    fn allows(&self, failures: u32) -> bool {
        self.max_tries.is_none_or(|max| failures < max)
    }
}

/// How a client endpoint connects: returned by `MyClient::connector(url)`. Every attribute of
/// `#[client_endpoint]` can be overridden here.
///
/// ```no_run
/// # use ws_endpoint::prelude::*;
/// # #[derive(Default)] struct Feed;
/// # #[client_endpoint] impl Feed { #[on_message] fn m(&mut self, _t: String) {} }
/// # async fn demo() -> Result<(), ws_endpoint::client::ConnectError> {
/// use std::time::Duration;
/// let client = Feed::connector("wss://feed.example/v1/stream")
///     .header("authorization", "Bearer secret")
///     .subprotocols(["feed.v2"])
///     .origin("https://app.example")
///     .connect_timeout(Duration::from_secs(5))
///     .max_message_size(1 << 20)
///     .heartbeat(Duration::from_secs(20), Duration::from_secs(10))
///     .connect()
///     .await?;
/// # let _ = client; Ok(()) }
/// ```
pub struct Connector<E> {
    url: String,
    headers: HeaderMap,
    header_error: Option<String>,
    origin: Option<String>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    close_timeout: Duration,
    config: EndpointConfig,
    reconnect: Option<Reconnect>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    _endpoint: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for Connector<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &std::any::type_name::<E>())
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("origin", &self.origin)
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("config", &self.config)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

/// Default [`Connector::connect_timeout`] and [`Connector::handshake_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Connector::close_timeout`].
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl<E: Endpoint> Connector<E> {
    #[doc(hidden)]
    pub fn new(url: impl Into<String>) -> Self {
        Connector {
            url: url.into(),
            headers: HeaderMap::new(),
            header_error: None,
            origin: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_CONNECT_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            config: E::config(),
            reconnect: None,
            #[cfg(feature = "tls")]
            tls: None,
            _endpoint: PhantomData,
        }
    }

    /// The settings in force (limits, heartbeat, compression, subprotocols).
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Adds a header to the upgrade request (e.g. `Authorization`, `Cookie`). An invalid name
    /// or value, or one of the handshake's own headers (`Host`, `Upgrade`, `Connection`,
    /// `Sec-WebSocket-*`, `Origin`: they have their own settings), makes
    /// [`connect`](Self::connect) fail with [`ConnectError::InvalidRequest`].
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        let (name, value) = (name.as_ref(), value.as_ref());
        match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(n), Ok(v)) => {
                self.headers.append(n, v);
            }
            _ => {
                // The name only: a value may be a secret (an Authorization header).
                self.header_error
                    .get_or_insert_with(|| format!("invalid header {name:?} (or its value)"));
            }
        }
        self
    }

    /// The subprotocols offered, in order of preference (replaces the attribute's).
    pub fn subprotocols<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.config = self.config.subprotocols(protocols);
        self
    }

    /// The `Origin` header (none by default: browsers send one, other clients need not).
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// How long the TCP connection may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the TLS and WebSocket handshakes may take, once connected.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long the client waits, after the close handshake, for the server to close the TCP
    /// connection before it closes it itself.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets the limit for text and binary messages from the server.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config = self.config.max_message_size(bytes);
        self
    }

    /// Sets the limit for text messages from the server.
    pub fn max_text_message_size(mut self, bytes: usize) -> Self {
        self.config.max_text_message_size = bytes;
        self
    }

    /// Sets the limit for binary messages from the server.
    pub fn max_binary_message_size(mut self, bytes: usize) -> Self {
        self.config.max_binary_message_size = bytes;
        self
    }

    /// Sets the heartbeat: a ping every `interval`, answered within `pong_timeout`.
    pub fn heartbeat(mut self, interval: Duration, pong_timeout: Duration) -> Self {
        self.config = self.config.heartbeat(Some(interval), pong_timeout);
        self
    }

    /// Disables the heartbeat.
    pub fn no_heartbeat(mut self) -> Self {
        self.config.ping_interval = None;
        self
    }

    /// Sets the idle timeout (1001 after this long without a data message either way).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// Sets how long a send may wait for a server that does not read (then 1006).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_timeout = timeout;
        self
    }

    /// Sets the outbound queue's budget in bytes.
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.config.max_buffered = bytes;
        self
    }

    /// Sets permessage-deflate (offered by default; see [`Compression`](crate::Compression):
    /// `level` and `min_size` apply to what the client sends; `context_takeover(true)` lets
    /// the client keep its compression context when the server allows it).
    pub fn compression(mut self, compression: crate::Compression) -> Self {
        self.config.compression = Some(compression);
        self
    }

    /// Offers no compression.
    pub fn no_compression(mut self) -> Self {
        self.config.compression = None;
        self
    }

    /// Connects again when a connection ends or fails (see [`Reconnect`]).
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// The rustls configuration for `wss://`: your own root certificates
    /// (`with_root_certificates`), a client certificate for mutual TLS
    /// (`with_client_auth_cert`). Unset: Mozilla's roots (webpki-roots), no client
    /// certificate, ALPN `http/1.1`.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Connects, and returns once the handshake succeeded and `on_open` has run. With a
    /// [`Reconnect`] policy, a failed first try is retried by it too; the error returned is
    /// then the last one.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        if let Some(why) = self.header_error.clone() {
            return Err(ConnectError::InvalidRequest(why));
        }
        let target = Target::parse(&self.url)?;
        let (first_tx, first_rx) = oneshot::channel();
        let (state, _) = watch::channel(State::default());
        let shared = Arc::new(Shared {
            state,
            stop: AtomicBool::new(false),
            stop_reason: std::sync::Mutex::new(None),
            stopped: Notify::new(),
        });
        let for_thread = shared.clone();
        std::thread::Builder::new()
            .name("ws-endpoint-client".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = first_tx.send(Err(ConnectError::Io(e)));
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, supervise(self, target, for_thread, first_tx));
            })?;
        match first_rx.await {
            Ok(Ok(())) => Ok(Client { shared }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ConnectError::Stopped),
        }
    }
}

#[derive(Clone, Default)]
struct State {
    /// The latest connection's session.
    session: Option<Session>,
    open: bool,
    connections: u64,
    /// Set once the client has ended: no connection is open and none will be made.
    finished: Option<CloseReason>,
}

struct Shared {
    state: watch::Sender<State>,
    stop: AtomicBool,
    /// The reason [`Client::close`] was given, for a connection that opens after it was called.
    stop_reason: std::sync::Mutex<Option<CloseReason>>,
    /// Wakes the supervisor from its wait between tries (a stored permit if it is not waiting).
    stopped: Notify,
}

impl Shared {
    fn finish(&self, reason: CloseReason) {
        self.state.send_modify(|s| {
            s.open = false;
            s.finished.get_or_insert(reason);
        });
    }
}

/// A connected client endpoint: the handle that outlives reconnects. Cheap to clone; any task
/// may use it.
///
/// Dropping every handle does not close the connection (as with a server session, which
/// lives until a side closes it): call [`close`](Self::close).
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.state.borrow();
        f.debug_struct("Client")
            .field("session", &s.session.as_ref().map(Session::id))
            .field("open", &s.open)
            .field("connections", &s.connections)
            .field("finished", &s.finished)
            .finish()
    }
}

impl Client {
    /// The session of the latest connection: open, or closed while a new one is being made
    /// (its sends then fail with [`SendError::Closed`](crate::SendError::Closed)); see
    /// [`connected`](Self::connected) to wait for an open one.
    pub fn session(&self) -> Session {
        self.shared
            .state
            .borrow()
            .session
            .clone()
            .expect("a Client exists only once a connection has opened")
    }

    /// Whether a connection is open now (its session is open).
    pub fn is_connected(&self) -> bool {
        let s = self.shared.state.borrow();
        s.open && s.session.as_ref().is_some_and(Session::is_open)
    }

    /// How many connections have opened so far (1, plus one per reconnect).
    pub fn connections(&self) -> u64 {
        self.shared.state.borrow().connections
    }

    /// Waits until a connection is open and returns its session; `None` once the client has
    /// ended.
    pub async fn connected(&self) -> Option<Session> {
        let mut rx = self.shared.state.subscribe();
        // A session that has closed leaves `open` set until its connection is wound up, which
        // changes the state again: the wait looks at the session itself.
        let live = |s: &State| s.open && s.session.as_ref().is_some_and(Session::is_open);
        let state = rx
            .wait_for(|s| live(s) || s.finished.is_some())
            .await
            .ok()?;
        if live(&state) {
            state.session.clone()
        } else {
            None
        }
    }

    /// Waits until the client has ended (its connection closed and no reconnect follows), and
    /// returns the reason the last connection ended with.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.shared.state.subscribe();
        let reason = match rx.wait_for(|s| s.finished.is_some()).await {
            Ok(state) => state.finished.clone().unwrap_or_default(),
            Err(_) => CloseReason::abnormal("client stopped"),
        };
        reason
    }

    /// Ends the client: no more reconnects, and the open connection (if any) is closed with
    /// `reason` (the close handshake, then the TCP close). Returns once the client has ended
    /// (`on_close` has run), with the reason the connection ended with.
    ///
    /// A code that may not be sent on the wire (1005, 1006, 1015, …: see
    /// [`Session::close`]) is sent as 1000 with the same phrase.
    pub async fn close(&self, reason: CloseReason) -> CloseReason {
        let reason = if crate::wire::close::is_allowed(reason.code_u16()) {
            reason
        } else {
            CloseReason::new(CloseCode::Normal, reason.reason)
        };
        *self
            .shared
            .stop_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        self.shared.stop.store(true, Ordering::Release);
        self.shared.stopped.notify_one();
        let session = self.shared.state.borrow().session.clone();
        if let Some(session) = session {
            let _ = session.close(reason).await;
        }
        self.closed().await
    }
}

/// Connects, runs connections, and reconnects, on the client's own thread.
async fn supervise<E: Endpoint>(
    connector: Connector<E>,
    target: Target,
    shared: Arc<Shared>,
    first: oneshot::Sender<Result<(), ConnectError>>,
) {
    let mut first = Some(first);
    let config = Arc::new(connector.config.clone());
    let mut failures: u32 = 0;
    // How the last connection ended: what `Client::close` and `closed` report when the client
    // is stopped between connections.
    let mut last: Option<CloseReason> = None;
    loop {
        let attempt = tokio::select! {
            attempt = connect_once(&connector, &target) => attempt,
            _ = shared.stopped.notified() => {
                // `Client::close` while a reconnect was being made: it is dropped.
                shared.finish(last.unwrap_or_default());
                return;
            }
            _ = gone(&mut first) => return, // `connect()` was cancelled: nobody waits
        };
        let ended = match attempt {
            Ok(conn) => {
                let opened_at = std::time::Instant::now();
                let reason =
                    run_connection::<E>(conn, &target, &connector, &config, &shared, &mut first)
                        .await;
                // A connection that did not stay open counts as a failed try.
                match &connector.reconnect {
                    Some(p) if opened_at.elapsed() < p.stable => failures += 1,
                    _ => failures = 0,
                }
                let again = !shared.stop.load(Ordering::Acquire)
                    && connector
                        .reconnect
                        .as_ref()
                        .is_some_and(|p| p.after_close(&reason) && p.allows(failures));
                if !again {
                    shared.finish(reason);
                    return;
                }
                tracing::info!(url = %connector.url, %reason, "connection ended; reconnecting");
                last = Some(reason.clone());
                reason
            }
            Err(err) => {
                failures += 1;
                let retry = err.is_transient()
                    && !shared.stop.load(Ordering::Acquire)
                    && connector
                        .reconnect
                        .as_ref()
                        .is_some_and(|p| p.allows(failures));
                if !retry {
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Err(err));
                    } else {
                        tracing::warn!(url = %connector.url, error = %err, "gave up reconnecting");
                        shared
                            .finish(last.unwrap_or_else(|| CloseReason::abnormal(err.to_string())));
                    }
                    return;
                }
                tracing::info!(url = %connector.url, error = %err, tries = failures, "connecting failed; trying again");
                last.clone()
                    .unwrap_or_else(|| CloseReason::abnormal(err.to_string()))
            }
        };
        let Some(policy) = &connector.reconnect else {
            shared.finish(ended);
            return;
        };
        let delay = policy.jittered(failures + 1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.stopped.notified() => {}
            _ = gone(&mut first) => return,
        }
        if shared.stop.load(Ordering::Acquire) {
            match first.take() {
                Some(tx) => {
                    let _ = tx.send(Err(ConnectError::Stopped));
                }
                None => shared.finish(ended),
            }
            return;
        }
    }
}

/// Ready when the caller of `connect()` stopped waiting for the first connection (the future
/// was dropped); pending forever once there is a `Client`.
async fn gone(first: &mut Option<oneshot::Sender<Result<(), ConnectError>>>) {
    match first {
        Some(tx) => tx.closed().await,
        None => std::future::pending().await,
    }
}

/// One connection, up to the 101 response.
struct Connected {
    io: Io,
    peer: Option<std::net::SocketAddr>,
    accepted: handshake::Accepted,
}

async fn connect_once<E: Endpoint>(
    connector: &Connector<E>,
    target: &Target,
) -> Result<Connected, ConnectError> {
    let tcp = timeout(
        connector.connect_timeout,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| ConnectError::Timeout("connect"))??;
    tcp.set_nodelay(true)?;
    let peer = tcp.peer_addr().ok();
    let offer = Offer {
        headers: &connector.headers,
        subprotocols: &connector.config.subprotocols,
        origin: connector.origin.as_deref(),
        deflate: connector.config.compression.map(|c| !c.context_takeover),
    };
    let handshake = async {
        let mut io = secure(connector, target, tcp).await?;
        let accepted = match handshake::handshake(&mut io, target, &offer).await {
            // A TLS 1.3 server refuses a client certificate after the handshake: its alert
            // arrives with the response.
            Err(ConnectError::Io(e)) if target.secure => return Err(tls_or_io(e)),
            other => other?,
        };
        Ok::<_, ConnectError>((io, accepted))
    };
    let (io, accepted) = timeout(connector.handshake_timeout, handshake)
        .await
        .map_err(|_| ConnectError::Timeout("handshake"))??;
    Ok(Connected { io, peer, accepted })
}

#[cfg(feature = "tls")]
async fn secure<E>(
    connector: &Connector<E>,
    target: &Target,
    tcp: TcpStream,
) -> Result<Io, ConnectError> {
    if !target.secure {
        return Ok(Box::new(tcp));
    }
    let config = connector.tls.clone().unwrap_or_else(default_tls);
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| ConnectError::InvalidUrl(format!("{}: {e}", target.host)))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(tls_or_io)?;
    Ok(Box::new(tls))
}

#[cfg(not(feature = "tls"))]
async fn secure<E>(
    _connector: &Connector<E>,
    target: &Target,
    tcp: TcpStream,
) -> Result<Io, ConnectError> {
    if target.secure {
        return Err(ConnectError::TlsUnavailable);
    }
    Ok(Box::new(tcp))
}

/// rustls reports its own errors (certificates, alerts) as `InvalidData`; anything else is the
/// connection's.
fn tls_or_io(e: std::io::Error) -> ConnectError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        ConnectError::Tls(e)
    } else {
        ConnectError::Io(e)
    }
}

/// Mozilla's roots, ring, ALPN `http/1.1`: made once.
#[cfg(feature = "tls")]
fn default_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// The socket's read half, shared between the connection task (which reads frames) and,
/// once it has returned, the wait for the server to close the TCP connection.
struct ReadSide {
    read: ReadHalf<Io>,
    /// Bytes that came with the 101 response.
    first: Option<Bytes>,
    buf: BytesMut,
    eof: bool,
}

impl ReadSide {
    fn poll_chunk(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Bytes>> {
        use std::task::Poll;
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        if self.eof {
            return Poll::Ready(None);
        }
        if self.buf.capacity() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        match tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.read), cx, &mut self.buf) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                self.eof = true;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(_)) => Poll::Ready(Some(self.buf.split().freeze())),
            Poll::Pending => Poll::Pending,
        }
    }
}

struct SocketInput(Rc<RefCell<ReadSide>>);

impl connection::Input for SocketInput {
    fn poll_chunk(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Bytes>> {
        self.0.borrow_mut().poll_chunk(cx)
    }
}

/// Runs one open connection to its end: the connection task (handlers, limits, timers,
/// `on_close`) beside the writer that drains the session's queue into the socket; then the
/// wait for the server's TCP close. Returns the reason `on_close` got.
async fn run_connection<E: Endpoint>(
    conn: Connected,
    target: &Target,
    connector: &Connector<E>,
    config: &Arc<EndpointConfig>,
    shared: &Shared,
    first: &mut Option<oneshot::Sender<Result<(), ConnectError>>>,
) -> CloseReason {
    let Connected { io, peer, accepted } = conn;
    let deflate = config.compression.zip(accepted.deflate);
    let info = HandshakeInfo {
        path: target.path.clone(),
        query: target.query.clone(),
        path_params: Vec::new(),
        subprotocol: accepted.subprotocol.clone(),
        extensions: accepted.extensions.clone(),
        peer_addr: peer,
        secure: target.secure,
    };
    let name = std::any::type_name::<E>();
    let session = Session::new(
        (std::any::TypeId::of::<E>(), name),
        info,
        SessionSettings {
            send_timeout: config.send_timeout,
            slow_consumer: config.slow_consumer,
            track_idle: config.idle_timeout.is_some(),
            max_buffered: config.max_buffered,
            socket: None,
            metrics: SessionMetrics::new(name),
            deflate: deflate.map(|(c, a)| SendDeflate {
                level: c.level,
                window_bits: a.client_max_window_bits.unwrap_or(15),
                min_size: c.min_size,
                context_takeover: c.context_takeover && !a.client_no_context_takeover,
            }),
        },
    );
    let mut decoder = Decoder::new(
        Role::Client,
        Limits {
            text: E::TEXT.then_some(config.max_text_message_size),
            binary: E::BINARY.then_some(config.max_binary_message_size),
        },
    )
    .assembly_for(DataKind::Text, E::TEXT_ASSEMBLY)
    .assembly_for(DataKind::Binary, E::BINARY_ASSEMBLY);
    if let Some((_, agreed)) = deflate {
        decoder = decoder.inflate(if agreed.server_no_context_takeover {
            Inflate::PerMessage
        } else {
            Inflate::Context
        });
    }

    let (read, mut write) = tokio::io::split(io);
    let read = Rc::new(RefCell::new(ReadSide {
        read,
        first: (!accepted.leftover.is_empty()).then_some(accepted.leftover),
        buf: BytesMut::new(),
        eof: false,
    }));
    let body = Body::masked(session.inner.out.clone());
    let opened = || {
        shared.state.send_modify(|s| {
            s.session = Some(session.clone());
            s.open = true;
            s.connections += 1;
        });
        if shared.stop.load(Ordering::Acquire) {
            // `Client::close` came while this connection was being made: it closes at once.
            let reason = shared
                .stop_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            connection::close_with(&session, reason);
        }
        if let Some(tx) = first.take() {
            if tx.send(Ok(())).is_err() {
                // `connect()` was cancelled while on_open ran: nobody holds a Client.
                shared.stop.store(true, Ordering::Release);
                let reason = CloseReason::new(CloseCode::Away, "connect cancelled");
                connection::close_with(&session, reason);
            }
        }
    };
    let span = tracing::info_span!("ws_client", url = %connector.url, session = %session.id());
    let task = tracing::Instrument::instrument(
        connection::run::<E, _>(
            session.clone(),
            (),
            SocketInput(read.clone()),
            decoder,
            config.clone(),
            Box::new(()),
            Box::new(()),
            opened,
        ),
        span,
    );
    let ((), clean) = tokio::join!(task, write_body(body, &mut write, &session));
    shared.state.send_modify(|s| s.open = false);
    if clean {
        // The close frames are exchanged (or the server's stream ended): the server closes the
        // TCP connection first; what still arrives is read and dropped.
        let drain = async {
            while std::future::poll_fn(|cx| read.borrow_mut().poll_chunk(cx))
                .await
                .is_some()
            {}
        };
        let _ = timeout(connector.close_timeout, drain).await;
        let _ = timeout(connector.close_timeout, write.shutdown()).await;
    }
    session.inner.close_reason().unwrap_or_default()
}

/// Writes what the session's queue hands over; `true` when it ended after its last frame
/// (a close handshake or the server's end of stream), `false` when the connection was dropped
/// (a dead peer, a failed write).
async fn write_body(body: Body, write: &mut tokio::io::WriteHalf<Io>, session: &Session) -> bool {
    let mut body = std::pin::pin!(body);
    loop {
        let next = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await;
        match next {
            Some(Ok(bytes)) => {
                let written = async {
                    write.write_all(&bytes).await?;
                    write.flush().await
                };
                // A server that stopped reading stalls the write; the session's send timeout,
                // heartbeat or close timeout then aborts it, and the connection is dropped.
                let aborted = async {
                    let out = &session.inner.out;
                    loop {
                        let ended = out.ended_notified();
                        let mut ended = std::pin::pin!(ended);
                        ended.as_mut().enable();
                        if out.is_aborted() {
                            return;
                        }
                        ended.await;
                    }
                };
                let result = tokio::select! {
                    result = written => result,
                    () = aborted => return false,
                };
                if let Err(e) = result {
                    session
                        .inner
                        .abort(CloseReason::abnormal(format!("write failed: {e}")));
                    return false;
                }
            }
            Some(Err(_)) => return false,
            None => return true,
        }
    }
}
