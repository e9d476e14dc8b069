//! A test kit for your own endpoints (feature `testing`): [`TestServer`] serves your app on
//! 127.0.0.1, [`TestClient`] talks to it over a real WebSocket, and every assertion fails with a
//! message that says what was expected, what arrived instead, and which line of your test asked.
//!
//! ```toml
//! [dev-dependencies]
//! ws-endpoint = { version = "0.1", features = ["testing"] }
//! ```
//!
//! ```rust,test_harness
//! use ws_endpoint::{prelude::*, test::TestServer};
//!
//! #[derive(Default)]
//! struct Echo;
//!
//! #[server_endpoint("/echo")]
//! impl Echo {
//!     #[on_message]
//!     fn text(&mut self, msg: String) -> String {
//!         msg
//!     }
//! }
//!
//! #[actix_web::test]
//! async fn echoes_text() {
//!     let server = TestServer::start(|| App::new().service(Echo::endpoint()));
//!     let mut client = server.connect("/echo").await;
//!     client.send_text("hello").await;
//!     assert_eq!(client.recv_text().await, "hello");
//!     client.close(1000, "done").await;
//! }
//! ```
//!
//! What to know:
//! - **The server** runs on its own thread with its own actix-rt `System` and one worker, the
//!   way `HttpServer` runs in production, so a test may use `#[actix_web::test]` or
//!   `#[tokio::test]` (the client needs a tokio runtime with time and I/O, which both give). It
//!   gets [`WsServerExt::with_ws_defaults`] except its Ctrl-C / SIGTERM handling: that closes
//!   every session *of the process*, other tests' included, and would keep Ctrl-C from ending
//!   the test run. Dropping the [`TestServer`] stops it (not gracefully: open connections are
//!   dropped without a close frame); [`TestServer::stop`] also waits until it no longer listens.
//! - **Every wait is bounded** by the client's timeout ([`DEFAULT_TIMEOUT`], 5 s; see
//!   [`TestClient::with_timeout`] and [`ClientBuilder::timeout`]), so a missing message fails
//!   the test instead of hanging it.
//! - **Failures panic**, like `assert_eq!` and `actix_web::test`'s helpers, with messages such
//!   as `recv_text() on /echo (at tests/echo.rs:12:32): expected a text message, but the server
//!   closed the connection: 1008 (policy violation) "not allowed"`.
//! - **Pings** from the server's heartbeat are answered while the client waits for a message;
//!   pongs are skipped. A client dropped without [`close`](TestClient::close) is a peer that
//!   vanished: the endpoint's `on_close` gets 1006.
//! - **Shared state** (a `web::Data` the test also holds, a channel the endpoint reports to)
//!   goes into the app factory like in production: `move || App::new().app_data(data.clone())`.

use std::{
    any::type_name, fmt, future::Future, io, net::SocketAddr, panic::Location, time::Duration,
};

use actix_http::{Request, Response};
use actix_service::IntoServiceFactory;
use actix_web::{
    body::MessageBody,
    dev::{AppConfig, ServerHandle, Service, ServiceFactory},
    HttpServer,
};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{de::DeserializeOwned, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use tokio_tungstenite::{
    tungstenite::{
        self,
        protocol::{frame::coding::CloseCode as WireCloseCode, CloseFrame, Role},
        Message,
    },
    WebSocketStream,
};

use crate::{CloseCode, CloseReason, WsServerExt};

/// How long a [`TestClient`] waits for the handshake, a message, a send or a close frame before
/// it fails the test: 5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a handshake response head may take (bytes).
const MAX_HEAD: usize = 64 * 1024;

// ---------------------------------------------------------------- TestServer

/// Your app, served on `127.0.0.1:<free port>` for the duration of a test.
///
/// ```
/// use ws_endpoint::{prelude::*, test::TestServer};
///
/// #[derive(Default)]
/// struct Echo;
///
/// #[server_endpoint("/echo")]
/// impl Echo {
///     #[on_message]
///     fn text(&mut self, msg: String) -> String {
///         msg
///     }
/// }
///
/// # #[actix_web::main]
/// # async fn main() {
/// let server = TestServer::start(|| App::new().service(Echo::endpoint()));
/// assert!(server.url("/echo").starts_with("ws://127.0.0.1:"));
/// let mut client = server.connect("/echo").await;
/// client.send_text("hi").await;
/// assert_eq!(client.recv_text().await, "hi");
/// server.stop().await;
/// # }
/// ```
pub struct TestServer {
    addr: SocketAddr,
    handle: ServerHandle,
    stopped: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl TestServer {
    /// Starts a server whose app is built by `factory` — what you would pass to
    /// `HttpServer::new`, e.g. `|| App::new().service(Echo::endpoint())` — with one worker,
    /// [`WsServerExt::with_ws_defaults`] (without its signal handling, see the
    /// [module documentation](self)), bound to `127.0.0.1:0`. Returns once the port is
    /// listening: connections made after it are served.
    ///
    /// Panics if the port cannot be bound.
    #[track_caller]
    pub fn start<F, I, S, B>(factory: F) -> TestServer
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("ws-endpoint-test-server".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let server = HttpServer::new(factory)
                        .workers(1)
                        .with_ws_defaults()
                        // Replaces with_ws_defaults' Ctrl-C / SIGTERM handler, which would close
                        // other tests' sessions too; with a shutdown signal of its own,
                        // actix-server installs no signal handlers either.
                        .shutdown_signal(std::future::pending::<()>())
                        .bind(("127.0.0.1", 0));
                    let server = match server {
                        Ok(server) => server,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    let addr = server.addrs()[0];
                    let server = server.run();
                    let _ = started_tx.send(Ok((addr, server.handle())));
                    let _ = server.await;
                });
                let _ = stopped_tx.send(());
            });
        if let Err(e) = spawned {
            panic!("TestServer::start: could not start the server's thread: {e}");
        }
        match started_rx.recv() {
            Ok(Ok((addr, handle))) => TestServer {
                addr,
                handle,
                stopped: Some(stopped_rx),
            },
            Ok(Err(e)) => panic!("TestServer::start: could not bind 127.0.0.1:0: {e}"),
            Err(_) => panic!("TestServer::start: the server's thread ended before it listened"),
        }
    }

    /// The address the server listens on (`127.0.0.1` and the port it was given).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `ws://` URL of `path` on this server, e.g. `ws://127.0.0.1:41234/chat/lobby`, for
    /// clients of your own.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Opens a WebSocket to `path` (which may have a query string: `/chat/lobby?nick=ada`) and
    /// panics unless the upgrade succeeds. Shorthand for `self.client(path).connect()`.
    #[track_caller]
    pub fn connect(&self, path: &str) -> impl Future<Output = TestClient> {
        self.client(path).connect()
    }

    /// A [`ClientBuilder`] for `path`: request headers, subprotocols, a timeout, and the
    /// handshake's expected outcome.
    ///
    /// Panics unless `path` starts with `/`.
    #[track_caller]
    pub fn client(&self, path: &str) -> ClientBuilder {
        assert!(
            path.starts_with('/'),
            "TestServer::client: the path must start with `/`, got {path:?}"
        );
        ClientBuilder {
            addr: self.addr,
            path: path.to_owned(),
            headers: Vec::new(),
            protocols: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Stops the server, not gracefully, and waits until its thread is done: from then on,
    /// connections are refused. Open connections are dropped without a close frame as the
    /// worker stops, an instant later (their clients' next `recv` says so). Dropping the
    /// `TestServer` stops it too, without waiting.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The command is sent by the call; the future would only wait for its completion.
        drop(self.handle.stop(false));
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------- ClientBuilder

/// How to open a [`TestClient`]: from [`TestServer::client`], then
/// [`connect`](Self::connect), [`expect_refused`](Self::expect_refused) or
/// [`try_connect`](Self::try_connect).
///
/// The handshake is an HTTP/1.1 upgrade request with `Host`, `Upgrade`, `Connection`,
/// `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, `Sec-WebSocket-Protocol` when
/// [`protocol`](Self::protocol) was called, and your [`header`](Self::header)s, in that order.
/// There is no `Origin` unless you add one, as from a non-browser client.
///
/// ```
/// # use ws_endpoint::{prelude::*, test::TestServer};
/// # #[derive(Default)]
/// # struct Chat;
/// #[server_endpoint("/chat", subprotocols = ["chat.v2", "chat.v1"])]
/// impl Chat {
///     #[on_message]
///     fn text(&mut self, session: &Session, _msg: String) -> String {
///         session.subprotocol().unwrap_or("none").to_owned()
///     }
/// }
///
/// # #[actix_web::main]
/// # async fn main() {
/// let server = TestServer::start(|| App::new().service(Chat::endpoint()));
/// let mut client = server
///     .client("/chat")
///     .header("Authorization", "Bearer token")
///     .protocol("chat.v1")
///     .connect()
///     .await;
/// assert_eq!(client.protocol(), Some("chat.v1"));
/// client.send_text("which?").await;
/// assert_eq!(client.recv_text().await, "chat.v1");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    addr: SocketAddr,
    path: String,
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    timeout: Duration,
}

impl ClientBuilder {
    /// Adds a request header, e.g. `.header("Authorization", "Bearer x")` or
    /// `.header("Origin", "https://app.example")`. Call it again for more headers (a name given
    /// twice is sent twice).
    ///
    /// Panics if the name is not an HTTP token or the value holds a line break.
    #[track_caller]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        assert!(
            !name.is_empty() && name.bytes().all(is_token_byte),
            "ClientBuilder::header: {name:?} is not a valid header name"
        );
        assert!(
            !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
            "ClientBuilder::header: the value of {name} may not hold CR, LF or NUL: {value:?}"
        );
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call it again to offer more, in order of
    /// preference. [`TestClient::protocol`] tells which one the server chose, if any.
    ///
    /// Panics if `protocol` is not an HTTP token.
    #[track_caller]
    pub fn protocol(mut self, protocol: &str) -> Self {
        assert!(
            !protocol.is_empty() && protocol.bytes().all(is_token_byte),
            "ClientBuilder::protocol: {protocol:?} is not a valid subprotocol name"
        );
        self.protocols.push(protocol.to_owned());
        self
    }

    /// How long the handshake may take, and the [`TestClient`]'s timeout afterwards (default:
    /// [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Opens the WebSocket; panics unless the server upgrades the connection (101), with the
    /// status and body of a refusal in the message.
    #[track_caller]
    pub fn connect(self) -> impl Future<Output = TestClient> {
        let caller = Location::caller();
        async move {
            let path = self.path.clone();
            match self.handshake("connect()", caller).await {
                Ok(client) => client,
                Err(refused) => fail(
                    "connect()",
                    &path,
                    caller,
                    format_args!("the server refused the upgrade: {refused}"),
                ),
            }
        }
    }

    /// Asserts that the server refuses the upgrade with `status` (e.g. 401 from a failing
    /// `on_open` extractor) and returns the refusal, for more assertions on its body or headers.
    ///
    /// Panics if the upgrade succeeds instead (the connection is then dropped), or if the
    /// status is another one.
    ///
    /// ```
    /// use actix_web::{dev::Payload, error::ErrorUnauthorized, FromRequest};
    /// use ws_endpoint::{prelude::*, test::TestServer};
    ///
    /// struct User;
    ///
    /// impl FromRequest for User {
    ///     type Error = actix_web::Error;
    ///     type Future = std::future::Ready<Result<User, actix_web::Error>>;
    ///     fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
    ///         let ok = req.headers().get("authorization").is_some_and(|v| v == "Bearer ok");
    ///         std::future::ready(if ok { Ok(User) } else { Err(ErrorUnauthorized("who are you?")) })
    ///     }
    /// }
    ///
    /// #[derive(Default)]
    /// struct Private;
    ///
    /// #[server_endpoint("/private")]
    /// impl Private {
    ///     #[on_open]
    ///     fn open(&mut self, _user: User) {}
    ///
    ///     #[on_message]
    ///     fn text(&mut self, msg: String) -> String {
    ///         msg
    ///     }
    /// }
    ///
    /// # #[actix_web::main]
    /// # async fn main() {
    /// let server = TestServer::start(|| App::new().service(Private::endpoint()));
    /// let refused = server.client("/private").expect_refused(401).await;
    /// assert_eq!(refused.body, "who are you?");
    /// server
    ///     .client("/private")
    ///     .header("Authorization", "Bearer ok")
    ///     .connect()
    ///     .await;
    /// # }
    /// ```
    #[track_caller]
    pub fn expect_refused(self, status: u16) -> impl Future<Output = Refused> {
        let caller = Location::caller();
        async move {
            let path = self.path.clone();
            match self.handshake("expect_refused()", caller).await {
                Ok(_client) => fail(
                    "expect_refused()",
                    &path,
                    caller,
                    format_args!(
                        "expected the upgrade to be refused with {status}, \
                         but the server accepted it (101 Switching Protocols)"
                    ),
                ),
                Err(refused) if refused.status == status => refused,
                Err(refused) => fail(
                    "expect_refused()",
                    &path,
                    caller,
                    format_args!(
                        "expected the upgrade to be refused with {status}, \
                         but it was refused with {refused}"
                    ),
                ),
            }
        }
    }

    /// Opens the WebSocket, or returns the server's refusal; panics only when there is no
    /// valid HTTP answer at all (connection refused, timeout, a malformed 101).
    #[track_caller]
    pub fn try_connect(self) -> impl Future<Output = Result<TestClient, Refused>> {
        let caller = Location::caller();
        self.handshake("try_connect()", caller)
    }

    async fn handshake(
        self,
        call: &'static str,
        caller: &'static Location<'static>,
    ) -> Result<TestClient, Refused> {
        let path = self.path.as_str();
        let failed = |what: &str, e: io::Error| -> ! {
            if e.kind() == io::ErrorKind::TimedOut {
                fail(
                    call,
                    path,
                    caller,
                    format_args!("no complete handshake response within {:?}", self.timeout),
                )
            }
            fail(call, path, caller, format_args!("{what}: {e}"))
        };
        let deadline = Instant::now() + self.timeout;
        let mut stream =
            match tokio::time::timeout_at(deadline, TcpStream::connect(self.addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => failed(&format!("could not connect to {}", self.addr), e),
                Err(_) => failed("could not connect", io::ErrorKind::TimedOut.into()),
            };
        let _ = stream.set_nodelay(true);
        let key = tungstenite::handshake::client::generate_key();
        let request = self.request(&key);
        if let Err(e) = stream.write_all(request.as_bytes()).await {
            failed("could not send the upgrade request", e);
        }
        let mut reader = HttpReader {
            stream: &mut stream,
            buf: Vec::new(),
            deadline,
        };
        let head = match reader.head().await {
            Ok(head) => head,
            Err(e) => failed("no valid handshake response", e),
        };
        if head.status != 101 {
            let body = match reader.body(&head).await {
                Ok(body) => body,
                Err(e) => failed(
                    &format!("the body of the {} response could not be read", head.status),
                    e,
                ),
            };
            return Err(Refused {
                status: head.status,
                reason: head.reason,
                body: String::from_utf8_lossy(&body).into_owned(),
                headers: head.headers,
            });
        }
        let rest = std::mem::take(&mut reader.buf);
        let wrong = |what: String| -> ! {
            fail(
                call,
                path,
                caller,
                format_args!("the server's 101 response is not a valid WebSocket upgrade: {what}"),
            )
        };
        if !head
            .header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        {
            wrong(format!("Upgrade: {:?}", head.header("upgrade")));
        }
        if !head.header("connection").is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        }) {
            wrong(format!("Connection: {:?}", head.header("connection")));
        }
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        if head.header("sec-websocket-accept") != Some(accept.as_str()) {
            wrong(format!(
                "Sec-WebSocket-Accept: {:?}, expected {accept:?}",
                head.header("sec-websocket-accept")
            ));
        }
        let protocol = head.header("sec-websocket-protocol").map(str::to_owned);
        if let Some(chosen) = &protocol {
            if !self.protocols.iter().any(|p| p == chosen) {
                wrong(format!(
                    "it chose the subprotocol {chosen:?}, which the client did not offer \
                     (offered: {:?})",
                    self.protocols
                ));
            }
        }
        let ws = WebSocketStream::from_partially_read(stream, rest, Role::Client, None).await;
        Ok(TestClient {
            ws,
            path: self.path,
            protocol,
            headers: head.headers,
            timeout: self.timeout,
            closed: None,
        })
    }

    fn request(&self, key: &str) -> String {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            self.path
        );
        // The server's address, unless the test names another host (`allowed_hosts` tests).
        if !self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            request.push_str(&format!("Host: {}\r\n", self.addr));
        }
        if !self.protocols.is_empty() {
            request.push_str(&format!(
                "Sec-WebSocket-Protocol: {}\r\n",
                self.protocols.join(", ")
            ));
        }
        for (name, value) in &self.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request
    }
}

/// HTTP token characters (RFC 9110 §5.6.2).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A refused upgrade: the HTTP response the server sent instead of 101, from
/// [`ClientBuilder::expect_refused`] or [`ClientBuilder::try_connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refused {
    /// The status code, e.g. 401.
    pub status: u16,
    /// The reason phrase of the status line, e.g. `Unauthorized`.
    pub reason: String,
    /// The response body (lossily decoded as UTF-8), e.g. an extractor error's message.
    pub body: String,
    headers: Vec<(String, String)>,
}

impl Refused {
    /// The first value of the response header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)?;
        if self.body.is_empty() {
            f.write_str(" (empty body)")
        } else {
            write!(f, ", body: {}", quote(&self.body))
        }
    }
}

fn find_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------- HTTP response reading

struct Head {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The head at the start of `buf` (httparse), with its length; `None` while incomplete.
    fn parse(buf: &[u8]) -> io::Result<Option<(Head, usize)>> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => {
                return Err(invalid(format!(
                    "an invalid response head ({e}): {:?}",
                    String::from_utf8_lossy(&buf[..buf.len().min(MAX_HEAD)])
                )))
            }
        };
        let head = Head {
            status: response.code.unwrap_or_default(),
            reason: response.reason.unwrap_or_default().to_owned(),
            headers: response
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).trim().to_owned(),
                    )
                })
                .collect(),
        };
        Ok(Some((head, len)))
    }
}

/// Reads an HTTP/1.1 response (parsed by httparse), so that a refusal's whole body is read
/// (content length or chunked) and whatever follows a 101 is handed to the WebSocket.
struct HttpReader<'s> {
    stream: &'s mut TcpStream,
    buf: Vec<u8>,
    deadline: Instant,
}

impl HttpReader<'_> {
    /// Reads more; `false` at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(self.deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
            Ok(Err(e)) => Err(e),
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
        }
    }

    async fn head(&mut self) -> io::Result<Head> {
        loop {
            if let Some((head, len)) = Head::parse(&self.buf)? {
                self.buf.drain(..len);
                return Ok(head);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid(format!("a response head over {MAX_HEAD} bytes")));
            }
            if !self.fill().await? {
                return Err(if self.buf.is_empty() {
                    invalid("the server closed the connection without a response".into())
                } else {
                    invalid(format!(
                        "the connection ended inside the response head: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                });
            }
        }
    }

    /// The next chunk's size line (httparse), or `None` if the stream ends first.
    async fn chunk_size(&mut self) -> io::Result<Option<usize>> {
        loop {
            match httparse::parse_chunk_size(&self.buf) {
                Ok(httparse::Status::Complete((len, size))) => {
                    self.buf.drain(..len);
                    return usize::try_from(size)
                        .map(Some)
                        .map_err(|_| invalid(format!("a chunk of {size} bytes")));
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => {
                    return Err(invalid(format!(
                        "a bad chunk size line: {:?}",
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(64)])
                    )))
                }
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// `n` bytes, or `None` if the stream ends first.
    async fn exact(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf.drain(..n).collect()))
    }

    async fn body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
        let truncated = || invalid("the connection ended inside the response body".into());
        if head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            let mut body = Vec::new();
            loop {
                let size = self.chunk_size().await?.ok_or_else(truncated)?;
                if size == 0 {
                    return Ok(body); // trailers, if any, are left unread
                }
                let chunk = self.exact(size + 2).await?.ok_or_else(truncated)?;
                body.extend_from_slice(&chunk[..size]);
            }
        }
        if let Some(len) = head.header("content-length") {
            let len = len
                .parse()
                .map_err(|_| invalid(format!("a bad Content-Length: {len:?}")))?;
            return self.exact(len).await?.ok_or_else(truncated);
        }
        // No length: the body ends with the connection.
        while self.fill().await? {}
        Ok(std::mem::take(&mut self.buf))
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

// ---------------------------------------------------------------- TestClient

/// One message from the server, as [`TestClient::recv`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// The server's close frame: its code and reason (1005, [`CloseReason::NO_STATUS`], when the
    /// frame carried no code).
    Close(CloseReason),
}

/// A WebSocket client connected to a [`TestServer`], from [`TestServer::connect`] or a
/// [`ClientBuilder`].
///
/// Each `recv_*` waits for the next text or binary message (answering pings, skipping pongs) at
/// most the client's timeout, and panics if something else arrives, with what it expected and
/// what it got. The methods return futures; call them with `.await`.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use ws_endpoint::{prelude::*, test::TestServer};
///
/// #[derive(Serialize, Deserialize)]
/// struct Add { a: i64, b: i64 }
///
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Sum { sum: i64 }
///
/// #[derive(Default)]
/// struct Calc;
///
/// #[server_endpoint("/calc")]
/// impl Calc {
///     #[on_message]
///     async fn add(&mut self, session: &Session, Json(req): Json<Add>) -> Json<Sum> {
///         if req.a < 0 {
///             let _ = session.close(CloseReason::new(4000, "no negatives")).await;
///         }
///         Json(Sum { sum: req.a + req.b })
///     }
/// }
///
/// # #[actix_web::main]
/// # async fn main() {
/// let server = TestServer::start(|| App::new().service(Calc::endpoint()));
/// let mut client = server.connect("/calc").await;
/// client.send_json(&Add { a: 2, b: 40 }).await;
/// assert_eq!(client.recv_json::<Sum>().await, Sum { sum: 42 });
/// client.send_json(&Add { a: -1, b: 0 }).await;
/// assert_eq!(client.expect_close(4000).await, "no negatives");
/// # }
/// ```
pub struct TestClient {
    ws: WebSocketStream<TcpStream>,
    path: String,
    protocol: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Duration,
    /// The server's close frame, once it arrived.
    closed: Option<CloseReason>,
}

/// Why no message could be taken.
enum Failure {
    TimedOut(Duration),
    Ended(String),
    AlreadyClosed(CloseReason),
}

impl TestClient {
    /// The same client with another timeout for each wait (default: the builder's,
    /// [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The path (and query) this client connected to.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The subprotocol the server chose (`Sec-WebSocket-Protocol` of the 101 response), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The first value of the 101 response's header `name` (case-insensitive).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Sends a text message.
    #[track_caller]
    pub fn send_text(&mut self, text: impl Into<String>) -> impl Future<Output = ()> + '_ {
        let caller = Location::caller();
        let message = Message::text(text.into());
        self.send("send_text()", caller, message)
    }

    /// Sends `value` encoded as JSON in a text message (what a `Json<T>` payload decodes).
    #[track_caller]
    pub fn send_json<T: Serialize + ?Sized>(&mut self, value: &T) -> impl Future<Output = ()> + '_ {
        let caller = Location::caller();
        let text = match serde_json::to_string(value) {
            Ok(text) => text,
            Err(e) => fail(
                "send_json()",
                &self.path,
                caller,
                format_args!("could not encode the {} as JSON: {e}", type_name::<T>()),
            ),
        };
        self.send("send_json()", caller, Message::text(text))
    }

    /// Sends a binary message (`Vec<u8>`, `Bytes`, `&'static [u8]`, …).
    #[track_caller]
    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> impl Future<Output = ()> + '_ {
        let caller = Location::caller();
        let message = Message::binary(data.into());
        self.send("send_binary()", caller, message)
    }

    async fn send(&mut self, call: &str, caller: &'static Location<'static>, message: Message) {
        let error = match tokio::time::timeout(self.timeout, self.ws.send(message)).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => ws_error(&e),
            Err(_) => format!("the server took nothing within {:?}", self.timeout),
        };
        let closed = match &self.closed {
            Some(reason) => format!(
                " (the server had closed the connection: {})",
                describe_close(reason)
            ),
            None => String::new(),
        };
        fail(
            call,
            &self.path,
            caller,
            format_args!("could not send: {error}{closed}"),
        )
    }

    /// The next message, whatever it is: text, binary or the server's close frame. Panics if
    /// none arrives in time, or if the connection ends without a close frame.
    #[track_caller]
    pub fn recv(&mut self) -> impl Future<Output = Received> + '_ {
        let caller = Location::caller();
        async move {
            match self.next(self.deadline()).await {
                Ok(message) => message,
                Err(failure) => self.failed("recv()", caller, "a message", failure),
            }
        }
    }

    /// The next message, which must be text.
    #[track_caller]
    pub fn recv_text(&mut self) -> impl Future<Output = String> + '_ {
        let caller = Location::caller();
        self.expect_text("recv_text()", caller, "a text message".into())
    }

    /// The next message, which must be text holding JSON that decodes as `T` (what a
    /// `Json<T>` reply or `session.json(..)` sends).
    #[track_caller]
    pub fn recv_json<T: DeserializeOwned>(&mut self) -> impl Future<Output = T> + '_ {
        let caller = Location::caller();
        async move {
            let ty = type_name::<T>();
            let what = format!("a JSON text message ({ty})");
            let text = self.expect_text("recv_json()", caller, what).await;
            match serde_json::from_str(&text) {
                Ok(value) => value,
                Err(e) => fail(
                    "recv_json()",
                    &self.path,
                    caller,
                    format_args!("the text message {} is not a valid {ty}: {e}", quote(&text)),
                ),
            }
        }
    }

    /// The next message, which must be binary.
    #[track_caller]
    pub fn recv_binary(&mut self) -> impl Future<Output = Bytes> + '_ {
        let caller = Location::caller();
        async move {
            let what = "a binary message";
            match self.next(self.deadline()).await {
                Ok(Received::Binary(data)) => data,
                Ok(other) => self.unexpected("recv_binary()", caller, what, &other),
                Err(failure) => self.failed("recv_binary()", caller, what, failure),
            }
        }
    }

    async fn expect_text(
        &mut self,
        call: &'static str,
        caller: &'static Location<'static>,
        what: String,
    ) -> String {
        match self.next(self.deadline()).await {
            Ok(Received::Text(text)) => text,
            Ok(other) => self.unexpected(call, caller, &what, &other),
            Err(failure) => self.failed(call, caller, &what, failure),
        }
    }

    /// Waits for the server's close frame, asserts its code (a number, or a [`CloseCode`]) and
    /// returns its reason. Text and binary messages that arrive before it are skipped (and
    /// listed if the assertion fails).
    #[track_caller]
    pub fn expect_close(
        &mut self,
        code: impl Into<CloseCode>,
    ) -> impl Future<Output = String> + '_ {
        let caller = Location::caller();
        let code = u16::from(code.into());
        async move {
            let call = "expect_close()";
            let what = format!("the server to close with {}", describe_code(code));
            let deadline = self.deadline();
            let mut skipped = Vec::new();
            loop {
                let failure = match self.next(deadline).await {
                    Ok(Received::Close(reason)) if reason.code_u16() == code => {
                        return reason.reason
                    }
                    Ok(Received::Close(reason)) => format!(
                        "but it closed with {}{}",
                        describe_close(&reason),
                        list_skipped(&skipped)
                    ),
                    Ok(message) => {
                        skipped.push(describe(&message));
                        continue;
                    }
                    Err(Failure::AlreadyClosed(reason)) => format!(
                        "but it had already closed the connection with {}",
                        describe_close(&reason)
                    ),
                    Err(Failure::TimedOut(after)) => format!(
                        "but no close frame arrived within {after:?}{}",
                        list_skipped(&skipped)
                    ),
                    Err(Failure::Ended(why)) => format!("but {why}{}", list_skipped(&skipped)),
                };
                fail(
                    call,
                    &self.path,
                    caller,
                    format_args!("expected {what}, {failure}"),
                )
            }
        }
    }

    /// Closes the connection: sends a close frame with `code` (a number, or a [`CloseCode`])
    /// and `reason`, and waits for the server's close frame, which it returns (normally the
    /// same code, echoed). Messages that arrive meanwhile are skipped. If the server had
    /// already closed the connection, returns its close frame.
    ///
    /// Panics if the server does not answer in time.
    #[track_caller]
    pub fn close(
        mut self,
        code: impl Into<CloseCode>,
        reason: &str,
    ) -> impl Future<Output = CloseReason> {
        let caller = Location::caller();
        let frame = CloseFrame {
            code: WireCloseCode::from(u16::from(code.into())),
            reason: reason.into(),
        };
        async move {
            let call = "close()";
            if let Some(reason) = self.closed.take() {
                return reason;
            }
            let deadline = self.deadline();
            let sent = match tokio::time::timeout_at(deadline, self.ws.close(Some(frame))).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(ws_error(&e)),
                Err(_) => Some(format!("the server took nothing within {:?}", self.timeout)),
            };
            if let Some(error) = sent {
                fail(
                    call,
                    &self.path,
                    caller,
                    format_args!("could not send the close frame: {error}"),
                );
            }
            loop {
                match self.next(deadline).await {
                    Ok(Received::Close(reason)) => return reason,
                    Ok(_) => continue,
                    Err(Failure::AlreadyClosed(reason)) => return reason,
                    Err(Failure::TimedOut(after)) => fail(
                        call,
                        &self.path,
                        caller,
                        format_args!("the server did not answer the close frame within {after:?}"),
                    ),
                    Err(Failure::Ended(why)) => fail(
                        call,
                        &self.path,
                        caller,
                        format_args!("expected the server's close frame, but {why}"),
                    ),
                }
            }
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// The next text, binary or close message before `deadline`.
    async fn next(&mut self, deadline: Instant) -> Result<Received, Failure> {
        if let Some(reason) = &self.closed {
            return Err(Failure::AlreadyClosed(reason.clone()));
        }
        loop {
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(next) => next,
                Err(_) => return Err(Failure::TimedOut(self.timeout)),
            };
            let message = match next {
                None => {
                    return Err(Failure::Ended(
                        "the connection ended without a close frame".into(),
                    ))
                }
                Some(Err(e)) => return Err(Failure::Ended(ws_error(&e))),
                Some(Ok(message)) => message,
            };
            match message {
                Message::Text(text) => return Ok(Received::Text(text.as_str().to_owned())),
                Message::Binary(data) => return Ok(Received::Binary(data)),
                Message::Close(frame) => {
                    let reason = match frame {
                        Some(frame) => {
                            CloseReason::new(u16::from(frame.code), frame.reason.as_str())
                        }
                        None => CloseReason::new(CloseReason::NO_STATUS, ""),
                    };
                    // tungstenite has queued the close reply; send it (the server may have
                    // closed the TCP connection already: nothing to report then).
                    let _ = tokio::time::timeout_at(deadline, self.ws.flush()).await;
                    self.closed = Some(reason.clone());
                    return Ok(Received::Close(reason));
                }
                // A ping is answered by tungstenite on the next read or write.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    fn unexpected(
        &self,
        call: &str,
        caller: &'static Location<'static>,
        what: &str,
        got: &Received,
    ) -> ! {
        let got = match got {
            Received::Close(reason) => format!(
                "but the server closed the connection: {}",
                describe_close(reason)
            ),
            other => format!("got {}", describe(other)),
        };
        fail(
            call,
            &self.path,
            caller,
            format_args!("expected {what}, {got}"),
        )
    }

    fn failed(
        &self,
        call: &str,
        caller: &'static Location<'static>,
        what: &str,
        failure: Failure,
    ) -> ! {
        let why = match failure {
            Failure::TimedOut(after) => format!("but nothing arrived within {after:?}"),
            Failure::Ended(why) => format!("but {why}"),
            Failure::AlreadyClosed(reason) => format!(
                "but the server had already closed the connection: {}",
                describe_close(&reason)
            ),
        };
        fail(
            call,
            &self.path,
            caller,
            format_args!("expected {what}, {why}"),
        )
    }
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("path", &self.path)
            .field("protocol", &self.protocol)
            .field("timeout", &self.timeout)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------- failure messages

#[cold]
#[inline(never)]
fn fail(call: &str, path: &str, caller: &Location<'_>, message: fmt::Arguments<'_>) -> ! {
    panic!("{call} on {path} (at {caller}): {message}")
}

fn ws_error(e: &tungstenite::Error) -> String {
    use tungstenite::{error::ProtocolError, Error};
    match e {
        Error::ConnectionClosed | Error::AlreadyClosed => "the connection is closed".into(),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "the server dropped the connection without a close frame".into()
        }
        Error::Io(e) => format!("the connection failed: {e}"),
        other => format!("{other}"),
    }
}

/// A string in quotes, escaped, cut after 200 characters.
fn quote(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes in all)", &text[..cut], text.len()),
    }
}

fn describe(message: &Received) -> String {
    match message {
        Received::Text(text) => format!("a text message {}", quote(text)),
        Received::Binary(data) => {
            const MAX: usize = 32;
            let hex: Vec<String> = data.iter().take(MAX).map(|b| format!("{b:02x}")).collect();
            let more = if data.len() > MAX { " …" } else { "" };
            let s = if data.len() == 1 { "" } else { "s" };
            format!(
                "a binary message of {} byte{s} [{}{more}]",
                data.len(),
                hex.join(" ")
            )
        }
        Received::Close(reason) => format!("the server's close frame {}", describe_close(reason)),
    }
}

fn list_skipped(skipped: &[String]) -> String {
    const MAX: usize = 5;
    if skipped.is_empty() {
        return String::new();
    }
    let mut list = skipped[..skipped.len().min(MAX)].join(", ");
    if skipped.len() > MAX {
        list.push_str(&format!(" and {} more", skipped.len() - MAX));
    }
    format!(" (skipped before it: {list})")
}

/// `1008 (policy violation) "reason"`.
fn describe_close(reason: &CloseReason) -> String {
    let code = describe_code(reason.code_u16());
    if reason.reason.is_empty() {
        format!("{code}, no reason")
    } else {
        format!("{code} {}", quote(&reason.reason))
    }
}

/// `1008 (policy violation)`; application codes are just the number.
fn describe_code(code: u16) -> String {
    let name = match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status code",
        1006 => "abnormal closure",
        1007 => "invalid payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake",
        _ => return code.to_string(),
    };
    format!("{code} ({name})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse() {
        let (head, len) = Head::parse(
            b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 12\r\nX-Thing: a: b\r\n\r\nbody",
        )
        .unwrap()
        .unwrap();
        assert_eq!((head.status, head.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(head.header("Content-Length"), Some("12"));
        assert_eq!(head.header("x-thing"), Some("a: b"));
        assert_eq!(len, 64); // the head, up to and with its empty line
        assert!(Head::parse(b"HTTP/1.1 401 Unauth").unwrap().is_none()); // incomplete
        assert!(Head::parse(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(Head::parse(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
    }

    #[test]
    fn descriptions() {
        assert_eq!(describe_code(1008), "1008 (policy violation)");
        assert_eq!(describe_code(4001), "4001");
        assert_eq!(
            describe_close(&CloseReason::new(1000, "")),
            "1000 (normal closure), no reason"
        );
        assert_eq!(
            describe(&Received::Binary(Bytes::from_static(&[1, 0xab]))),
            "a binary message of 2 bytes [01 ab]"
        );
        let long = "é".repeat(300);
        assert!(
            quote(&long).ends_with("… (600 bytes in all)"),
            "{}",
            quote(&long)
        );
        assert_eq!(list_skipped(&[]), "");
        let many: Vec<String> = (0..7).map(|i| i.to_string()).collect();
        assert_eq!(
            list_skipped(&many),
            " (skipped before it: 0, 1, 2, 3, 4 and 2 more)"
        );
    }
}
