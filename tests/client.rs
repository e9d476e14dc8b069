//! Client endpoints (`#[client_endpoint]`): against our own server (a `TestServer`), and against
//! a raw TCP peer written here, which reads the client's bytes as they are on the wire (masks,
//! close frames, the TCP close) and sends what a well-behaved server would not.
//!
//! Every test runs on a plain multi-threaded tokio runtime: the client needs no actix runtime.

use std::{
    cell::Cell,
    rc::Rc,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use ws_endpoint::{
    client::{ConnectError, Reconnect},
    prelude::*,
    test::TestServer,
};

/// Bound on every wait for an event (never a synchronisation by sleeping).
const WAIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

// ---- the server side of the tests -------------------------------------------------------------

#[derive(Default)]
struct Echo;

#[server_endpoint("/echo", max_message_size = "1MiB")]
impl Echo {
    #[on_message]
    fn text(&mut self, msg: String, session: &Session) -> Option<String> {
        match msg.as_str() {
            "restart" => {
                let s = session.clone();
                actix_web::rt::spawn(async move {
                    let _ = s.close(CloseReason::new(1012, "restarting")).await;
                });
                None
            }
            "bye" => {
                let s = session.clone();
                actix_web::rt::spawn(async move {
                    let _ = s.close(CloseReason::normal()).await;
                });
                None
            }
            "big" => Some("x".repeat(100_000)),
            "compressed?" => Some(session.is_compressed().to_string()),
            "parts" => {
                // 3 MiB of binary in 48 frames, then a text in 3 frames.
                let s = session.clone();
                actix_web::rt::spawn(async move {
                    let mut w = s.binary_writer().await.unwrap();
                    for i in 0..48u8 {
                        w.send(vec![i; 64 * 1024]).await.unwrap();
                    }
                    w.finish().await.unwrap();
                    s.send_partial("one ", false).await.unwrap();
                    s.send_partial("two ", false).await.unwrap();
                    s.send_partial("three", true).await.unwrap();
                });
                None
            }
            _ => Some(msg),
        }
    }

    #[on_message]
    fn binary(&mut self, data: Bytes) -> Bytes {
        data
    }
}

fn echo_server() -> TestServer {
    TestServer::start(|| App::new().service(Echo::endpoint()))
}

// ---- the client endpoints ---------------------------------------------------------------------

/// Each test's name and the channel its client endpoints report to.
type Listeners = Mutex<Vec<(&'static str, mpsc::UnboundedSender<String>)>>;

/// Where the client endpoints report what happened (one channel per test, by name).
fn events() -> &'static Listeners {
    static EVENTS: OnceLock<Listeners> = OnceLock::new();
    EVENTS.get_or_init(Default::default)
}

fn listen(test: &'static str) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    events().lock().unwrap().push((test, tx));
    rx
}

fn report(test: &str, event: String) {
    for (name, tx) in events().lock().unwrap().iter() {
        if *name == test {
            let _ = tx.send(event.clone());
        }
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    within("a client event", rx.recv())
        .await
        .expect("the event channel is open")
}

/// Reports every event under the test's name, which is the query string of the URL it
/// connected to (`?t=name`).
#[derive(Default)]
struct Recorder {
    /// Not `Send`: the client runs its handlers on a thread of its own, so this is fine.
    seen: Rc<Cell<usize>>,
}

fn test_name(session: &Session) -> String {
    session
        .query_string()
        .strip_prefix("t=")
        .unwrap_or("")
        .to_owned()
}

#[client_endpoint(max_message_size = "16KiB", heartbeat = false)]
impl Recorder {
    #[on_open]
    async fn open(&mut self, session: &Session) {
        // An await with a non-Send value alive across it.
        let seen = self.seen.clone();
        tokio::task::yield_now().await;
        seen.set(0);
        report(&test_name(session), format!("open:{}", session.path()));
    }

    #[on_message]
    async fn text(&mut self, msg: String, session: &Session) {
        self.seen.set(self.seen.get() + 1);
        tokio::task::yield_now().await;
        report(&test_name(session), format!("text:{msg}"));
    }

    #[on_message]
    fn binary(&mut self, data: Bytes, session: &Session) {
        report(&test_name(session), format!("binary:{}", data.len()));
    }

    #[on_error]
    fn error(&mut self, err: EndpointError, session: &Session) {
        report(&test_name(session), format!("error:{err}"));
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason, session: &Session) {
        report(
            &test_name(session),
            format!("close:{}:{}", reason.code_u16(), reason.reason),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_through_a_server_endpoint_and_on_close_runs_once() {
    let server = echo_server();
    let mut rx = listen("echo");
    let client = within("connect", Recorder::connect(server.url("/echo?t=echo")))
        .await
        .expect("connects");
    assert_eq!(next(&mut rx).await, "open:/echo");
    let session = client.session();
    assert!(session.is_open() && client.is_connected());
    assert_eq!(client.connections(), 1);
    // From another task of the caller's runtime: the session is Send + Sync.
    let s = session.clone();
    tokio::spawn(async move { s.text("hello").await.unwrap() })
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "text:hello");
    session.binary(vec![7u8; 3000]).await.unwrap();
    assert_eq!(next(&mut rx).await, "binary:3000");
    // A message in parts from the client: the server reassembles it.
    session.send_partial("hel", false).await.unwrap();
    session.send_partial("lo again", true).await.unwrap();
    assert_eq!(next(&mut rx).await, "text:hello again");

    let reason = within("close", client.close(CloseReason::normal())).await;
    assert_eq!(reason.code_u16(), 1000);
    assert_eq!(next(&mut rx).await, "close:1000:");
    assert!(!client.is_connected());
    assert!(within("closed", client.connected()).await.is_none());
    server.stop().await;
    // on_close ran once: nothing else was reported.
    assert!(rx.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_is_negotiated_by_default_and_messages_round_trip() {
    let server = echo_server();
    let mut rx = listen("deflate");
    let client = Recorder::connector(server.url("/echo?t=deflate"))
        .max_message_size(1 << 20)
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "open:/echo");
    let session = client.session();
    assert!(session.is_compressed());
    assert_eq!(
        session.negotiated_extensions(),
        vec!["permessage-deflate; server_no_context_takeover; client_no_context_takeover"]
    );
    session.text("compressed?").await.unwrap();
    assert_eq!(next(&mut rx).await, "text:true");
    let text = "{\"price\": 101.25, \"symbol\": \"ACME\"} ".repeat(500);
    session.text(text.clone()).await.unwrap();
    assert_eq!(next(&mut rx).await, format!("text:{text}"));
    client.close(CloseReason::normal()).await;

    // Offered nothing: nothing agreed.
    let mut rx = listen("plain");
    let client = Recorder::connector(server.url("/echo?t=plain"))
        .no_compression()
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "open:/echo");
    assert!(!client.session().is_compressed());
    client.session().text("compressed?").await.unwrap();
    assert_eq!(next(&mut rx).await, "text:false");
    client.close(CloseReason::normal()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_closes_with_1009() {
    let server = echo_server();
    let mut rx = listen("limit");
    let client = Recorder::connect(server.url("/echo?t=limit"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "open:/echo");
    client.session().text("big").await.unwrap();
    assert!(next(&mut rx).await.starts_with("error:message too big"));
    assert!(next(&mut rx).await.starts_with("close:1009:"));
    assert_eq!(within("closed", client.closed()).await.code_u16(), 1009);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upgrade_is_an_error_with_its_status_headers_and_body() {
    let server = echo_server();
    // Our endpoints allow same-origin only by default: a foreign Origin gets 403.
    let err = Recorder::connector(server.url("/echo"))
        .origin("http://evil.example")
        .connect()
        .await
        .unwrap_err();
    match err {
        ConnectError::Status {
            status,
            headers,
            body,
        } => {
            assert_eq!(status.as_u16(), 403);
            assert!(headers.contains_key("content-length"));
            assert!(!body.is_empty(), "the refusal's body is kept");
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    let err = Recorder::connect(server.url("/nowhere")).await.unwrap_err();
    assert!(
        matches!(&err, ConnectError::Status { status, .. } if status.as_u16() == 404),
        "{err:?}"
    );
    assert!(!err.is_transient());
    for bad in ["http://127.0.0.1/", "ws://", "127.0.0.1:80"] {
        assert!(matches!(
            Recorder::connect(bad).await,
            Err(ConnectError::InvalidUrl(_))
        ));
    }
    let err = Recorder::connector(server.url("/echo"))
        .header("sec-websocket-key", "mine")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidRequest(_)), "{err:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_subprotocols_reach_the_server() {
    #[derive(Default)]
    struct Auth;
    #[server_endpoint("/auth", subprotocols = ["v2", "v1"])]
    impl Auth {
        #[on_open]
        fn open(&mut self, session: &Session, req: HttpRequest) {
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            let s = session.clone();
            actix_web::rt::spawn(async move {
                let _ = s
                    .text(format!("{auth} {}", s.subprotocol().unwrap_or("-")))
                    .await;
            });
        }
        #[on_message]
        fn m(&mut self, _m: String) {}
    }
    let server = TestServer::start(|| App::new().service(Auth::endpoint()));
    let mut rx = listen("auth");
    let client = Recorder::connector(server.url("/auth?t=auth"))
        .header("Authorization", "Bearer abc")
        .subprotocols(["v1", "v0"])
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "open:/auth");
    assert_eq!(next(&mut rx).await, "text:Bearer abc v1");
    assert_eq!(client.session().subprotocol(), Some("v1"));
    client.close(CloseReason::normal()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_restart_and_runs_on_open_and_on_close_per_connection() {
    let server = echo_server();
    let mut rx = listen("reconnect");
    let client = Recorder::connector(server.url("/echo?t=reconnect"))
        .reconnect(
            Reconnect::default()
                .initial_delay(Duration::from_millis(10))
                .jitter(0.0),
        )
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "open:/echo");
    let first = client.session();
    first.text("restart").await.unwrap();
    assert_eq!(next(&mut rx).await, "close:1012:restarting");
    assert_eq!(next(&mut rx).await, "open:/echo");
    let second = within("the new session", client.connected())
        .await
        .expect("reconnected");
    assert_eq!(client.connections(), 2);
    assert_ne!(first.id(), second.id());
    assert!(!first.is_open());
    assert!(first.text("lost").await.is_err());
    second.text("still here").await.unwrap();
    assert_eq!(next(&mut rx).await, "text:still here");

    // A close with 1000 (here the server's) ends the client: no reconnect.
    second.text("bye").await.unwrap();
    assert_eq!(next(&mut rx).await, "close:1000:");
    assert_eq!(within("closed", client.closed()).await.code_u16(), 1000);
    assert_eq!(client.connections(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_while_reconnecting_ends_the_client() {
    let server = echo_server();
    let mut rx = listen("lost");
    let client = Recorder::connector(server.url("/echo?t=lost"))
        .reconnect(Reconnect::default().initial_delay(Duration::from_millis(20)))
        .connect()
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, "open:/echo");
    // The server goes away without a close frame: 1006, then tries that are refused.
    server.stop().await;
    assert!(next(&mut rx).await.starts_with("close:1006:"));
    // on_close ran: the session is closed.
    assert!(!client.is_connected());
    let reason = within(
        "close while reconnecting",
        client.close(CloseReason::normal()),
    )
    .await;
    assert_eq!(reason.code_u16(), 1006, "the last connection's end");
    assert!(within("no session", client.connected()).await.is_none());
    assert_eq!(client.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_tries_and_does_not_retry_a_refusal() {
    // A port that accepts and hangs up before answering (a proxy with no server behind it):
    // each try is one connection, counted here.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accepts.clone();
    let acceptor = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Read the request first, so that the close is a FIN (closing with unread bytes
            // would reset the connection instead: an I/O error of another kind, as transient).
            let mut head = [0u8; 4096];
            let _ = tcp.read(&mut head).await;
            drop(tcp);
        }
    });
    let err = within(
        "three failed tries",
        Recorder::connector(format!("ws://127.0.0.1:{port}/x"))
            .reconnect(
                Reconnect::default()
                    .initial_delay(Duration::from_millis(1))
                    .max_tries(3),
            )
            .connect(),
    )
    .await
    .unwrap_err();
    // The end of the stream before the 101 (or a reset, if the close raced the request).
    assert!(matches!(&err, ConnectError::Io(_)), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(
        accepts.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "exactly max_tries tries"
    );
    acceptor.abort();

    // 404 is not retried, whatever the policy.
    let server = echo_server();
    let err = within(
        "a refusal",
        Recorder::connector(server.url("/nowhere"))
            .reconnect(Reconnect::default())
            .connect(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Status { .. }));
    server.stop().await;
}

/// Takes binary messages as a stream and text in parts.
#[derive(Default)]
struct Streamer;

#[client_endpoint(max_binary_message_size = "4GiB", max_text_message_size = "1KiB")]
impl Streamer {
    #[on_message]
    async fn binary(&mut self, mut data: ws_endpoint::BinaryStream, session: &Session) {
        let (mut bytes, mut sum) = (0usize, 0u64);
        while let Some(chunk) = data.next_chunk().await {
            let chunk = chunk.expect("a whole stream");
            bytes += chunk.len();
            sum += chunk.iter().map(|&b| b as u64).sum::<u64>();
        }
        report(&test_name(session), format!("stream:{bytes}:{sum}"));
    }

    #[on_message]
    fn text(&mut self, part: String, last: bool, session: &Session) {
        report(&test_name(session), format!("part:{part}:{last}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_parts_reach_client_handlers_as_they_arrive() {
    let server = echo_server();
    let mut rx = listen("streams");
    let client = Streamer::connect(server.url("/echo?t=streams"))
        .await
        .unwrap();
    client.session().text("parts").await.unwrap();
    let sum: u64 = (0..48u64).map(|i| i * 64 * 1024).sum();
    assert_eq!(
        next(&mut rx).await,
        format!("stream:{}:{sum}", 48 * 64 * 1024)
    );
    assert_eq!(next(&mut rx).await, "part:one :false");
    assert_eq!(next(&mut rx).await, "part:two :false");
    assert_eq!(next(&mut rx).await, "part:three:true");
    client.close(CloseReason::normal()).await;
    server.stop().await;
}

// ---- a raw server peer ------------------------------------------------------------------------

/// One connection accepted and upgraded by hand; reads and writes frames byte by byte.
struct Peer {
    tcp: TcpStream,
    buf: Vec<u8>,
}

/// A frame as the client put it on the wire.
#[derive(Debug)]
struct WireFrame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Unmasked.
    payload: Vec<u8>,
}

impl Peer {
    /// Listens on 127.0.0.1:0; `accept` upgrades the first connection, answering with
    /// `respond(key)` (the status line and headers after it).
    async fn listen() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/raw?t=", l.local_addr().unwrap());
        (l, url)
    }

    async fn accept(listener: &TcpListener, respond: impl FnOnce(&str) -> String) -> Peer {
        let (tcp, _) = within("a connection", listener.accept()).await.unwrap();
        let mut peer = Peer {
            tcp,
            buf: Vec::new(),
        };
        let head = loop {
            if let Some(end) = peer.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = peer.buf.drain(..end + 4).collect();
                break String::from_utf8(head).unwrap();
            }
            peer.fill().await;
        };
        let key = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("sec-websocket-key:")
                    .then(|| l.split_once(':').unwrap().1.trim().to_owned())
            })
            .expect("a key");
        peer.tcp.write_all(respond(&key).as_bytes()).await.unwrap();
        peer
    }

    fn upgrade(key: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let n = within("bytes from the client", self.tcp.read(&mut chunk))
            .await
            .unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    async fn need(&mut self, n: usize) {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "the client closed the connection");
        }
    }

    async fn frame(&mut self) -> WireFrame {
        self.need(2).await;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let mut len = (b1 & 0x7f) as usize;
        let mut at = 2;
        if len == 126 {
            self.need(4).await;
            len = u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize;
            at = 4;
        } else if len == 127 {
            self.need(10).await;
            len = u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize;
            at = 10;
        }
        let mask = if b1 & 0x80 != 0 {
            self.need(at + 4).await;
            let m: [u8; 4] = self.buf[at..at + 4].try_into().unwrap();
            at += 4;
            Some(m)
        } else {
            None
        };
        self.need(at + len).await;
        let mut payload: Vec<u8> = self.buf[at..at + len].to_vec();
        self.buf.drain(..at + len);
        if let Some(m) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= m[i % 4];
            }
        }
        WireFrame {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            opcode: b0 & 0x0f,
            mask,
            payload,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// Reads until the client closes the TCP connection (bytes after it are ignored).
    async fn expect_eof(&mut self) {
        loop {
            if self.fill().await == 0 {
                return;
            }
        }
    }
}

fn close_code(f: &WireFrame) -> u16 {
    assert_eq!(f.opcode, 8, "a close frame: {f:?}");
    u16::from_be_bytes([f.payload[0], f.payload[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_are_masked_each_with_a_fresh_key() {
    let (listener, url) = Peer::listen().await;
    let mut rx = listen("masks");
    let connecting = tokio::spawn(
        Recorder::connector(format!("{url}masks"))
            .no_compression()
            .connect(),
    );
    let mut peer = Peer::accept(&listener, Peer::upgrade).await;
    let client = connecting.await.unwrap().unwrap();
    assert_eq!(next(&mut rx).await, "open:/raw");
    let mut keys = Vec::new();
    for i in 0..8 {
        client.session().text(format!("message {i}")).await.unwrap();
        let f = peer.frame().await;
        assert!(f.fin && !f.rsv1 && f.opcode == 1);
        assert_eq!(f.payload, format!("message {i}").into_bytes());
        keys.push(f.mask.expect("every client frame is masked"));
    }
    keys.sort();
    keys.dedup();
    assert!(keys.len() >= 7, "fresh random keys, got {keys:?}");
    // A ping from the server is answered with a masked pong carrying its payload.
    peer.send(&[0x89, 3, b'a', b'b', b'c']).await;
    let pong = peer.frame().await;
    assert_eq!((pong.opcode, pong.payload.as_slice()), (10, &b"abc"[..]));
    assert!(pong.mask.is_some());
    drop(client);
}

fn python_inflate_9_bits(input: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let script = "import sys, zlib\n\
                  data = sys.stdin.buffer.read(); d = zlib.decompressobj(-9); out = b''\n\
                  while data:\n    out += d.decompress(data, 64); data = d.unconsumed_tail\n\
                  sys.stdout.buffer.write(out)\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "zlib could not inflate it with a 9-bit window: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    done.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_compresses_with_the_window_the_server_asks_for() {
    let (listener, url) = Peer::listen().await;
    let mut rx = listen("window");
    let connecting = tokio::spawn(Recorder::connect(format!("{url}window")));
    let mut peer = Peer::accept(&listener, |key| {
        Peer::upgrade(key).replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits=8\r\n\r\n",
        )
    })
    .await;
    let client = connecting.await.unwrap().unwrap();
    assert_eq!(next(&mut rx).await, "open:/raw");
    assert!(client.session().is_compressed());
    // Repeats 700 bytes apart: a 15-bit compressor would refer back 700 bytes, which a 9-bit
    // window (512 bytes) cannot follow; a compressor held to 8 bits never does.
    let unit: String = (0..700)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let text = unit.repeat(6);
    for _ in 0..2 {
        client.session().text(text.clone()).await.unwrap();
        let f = peer.frame().await;
        assert!(f.rsv1 && f.fin && f.opcode == 1, "compressed: {f:?}");
        let mut input = f.payload.clone();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        // Inflated by Python's zlib (the C library, an independent inflater) with a fresh 9-bit
        // window per message (the client promised no context takeover), 64 bytes of output at
        // a time: what lies farther back than its 512 bytes is gone, so a reference to it
        // fails ("invalid distance too far back").
        let out = python_inflate_9_bits(&input);
        assert_eq!(out, text.as_bytes());
    }
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_frame_from_the_server_is_answered_with_1002() {
    let (listener, url) = Peer::listen().await;
    let mut rx = listen("masked");
    let connecting = tokio::spawn(Recorder::connect(format!("{url}masked")));
    let mut peer = Peer::accept(&listener, Peer::upgrade).await;
    let client = connecting.await.unwrap().unwrap();
    assert_eq!(next(&mut rx).await, "open:/raw");
    // "hi", masked with key 1 2 3 4.
    peer.send(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
        .await;
    assert!(next(&mut rx).await.starts_with("error:"));
    let close = peer.frame().await;
    assert_eq!(close_code(&close), 1002);
    assert!(next(&mut rx).await.starts_with("close:1002:"));
    // The server closes first; the client then closes too (it does not wait for its timeout
    // for anything else).
    drop(peer);
    assert_eq!(within("closed", client.closed()).await.code_u16(), 1002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_closes_tcp_after_the_servers_close_frame() {
    let (listener, url) = Peer::listen().await;
    let mut rx = listen("closing");
    let connecting = tokio::spawn(Recorder::connect(format!("{url}closing")));
    let mut peer = Peer::accept(&listener, Peer::upgrade).await;
    let client = connecting.await.unwrap().unwrap();
    assert_eq!(next(&mut rx).await, "open:/raw");
    let closing = {
        let client = client.clone();
        tokio::spawn(async move { client.close(CloseReason::new(1001, "going")).await })
    };
    let close = peer.frame().await;
    assert_eq!(close_code(&close), 1001);
    assert_eq!(&close.payload[2..], b"going");
    assert!(close.mask.is_some());
    assert!(next(&mut rx).await.starts_with("close:1001:going"));
    // The server answers and closes its side of TCP first (RFC 6455 §7.1.1); the client, which
    // waits for that, then closes its own (a server that never does is the next test).
    peer.send(&[0x88, 2, 0x03, 0xe9]).await;
    peer.tcp.shutdown().await.unwrap();
    peer.expect_eof().await;
    assert_eq!(closing.await.unwrap().code_u16(), 1001);

    // The server starts the close: the client echoes it and waits for the server's TCP close.
    let mut rx = listen("server-closes");
    let connecting = tokio::spawn(Recorder::connect(format!("{url}server-closes")));
    let mut peer = Peer::accept(&listener, Peer::upgrade).await;
    let client = connecting.await.unwrap().unwrap();
    assert_eq!(next(&mut rx).await, "open:/raw");
    peer.send(&[0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']).await;
    let echo = peer.frame().await;
    assert_eq!(close_code(&echo), 1000);
    assert!(next(&mut rx).await.starts_with("close:1000:bye"));
    assert!(!client.is_connected());
    drop(peer); // the server's TCP close
    assert_eq!(within("closed", client.closed()).await.code_u16(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_closes_tcp_is_left_after_the_close_timeout() {
    let (listener, url) = Peer::listen().await;
    let mut rx = listen("linger");
    let connecting = tokio::spawn(
        Recorder::connector(format!("{url}linger"))
            .close_timeout(Duration::from_millis(100))
            .connect(),
    );
    let mut peer = Peer::accept(&listener, Peer::upgrade).await;
    let client = connecting.await.unwrap().unwrap();
    assert_eq!(next(&mut rx).await, "open:/raw");
    let closing = {
        let client = client.clone();
        tokio::spawn(async move { client.close(CloseReason::normal()).await })
    };
    assert_eq!(close_code(&peer.frame().await), 1000);
    // No answer, no TCP close from this side: the client closes on its own.
    peer.expect_eof().await;
    assert_eq!(closing.await.unwrap().code_u16(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_is_dropped_after_the_send_timeout() {
    let (listener, url) = Peer::listen().await;
    let mut rx = listen("stalled");
    let connecting = tokio::spawn(
        Recorder::connector(format!("{url}stalled"))
            .no_compression()
            .send_timeout(Duration::from_millis(200))
            .connect(),
    );
    // Upgraded, then never read again (but kept open).
    let _peer = Peer::accept(&listener, Peer::upgrade).await;
    let client = connecting.await.unwrap().unwrap();
    assert_eq!(next(&mut rx).await, "open:/raw");
    let session = client.session();
    let sender = tokio::spawn(async move {
        let chunk = Bytes::from(vec![0u8; 1 << 20]);
        // Until the socket's buffers and the queue are full and a send times out.
        for _ in 0..1024 {
            if session.binary(chunk.clone()).await.is_err() {
                return true;
            }
        }
        false
    });
    assert!(
        within("a send to fail", sender).await.unwrap(),
        "a send failed"
    );
    assert!(next(&mut rx).await.starts_with("close:1006:"));
    // The writer, stuck in a write the peer never reads, gives up too: the client ends.
    assert_eq!(within("closed", client.closed()).await.code_u16(), 1006);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_handshake_response_fails_the_connection() {
    let (listener, url) = Peer::listen().await;
    type Respond = fn(&str) -> String;
    let cases: [(&str, Respond); 3] = [
        ("wrong accept", |_key| {
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n".to_owned()
        }),
        ("unoffered extension", |key| {
            Peer::upgrade(key).replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: x-custom\r\n\r\n")
        }),
        ("redirect", |_key| {
            "HTTP/1.1 302 Found\r\nLocation: ws://elsewhere.example/\r\nContent-Length: 0\r\n\r\n"
                .to_owned()
        }),
    ];
    for (what, respond) in cases {
        let connecting = tokio::spawn(Recorder::connect(format!("{url}broken")));
        let _peer = Peer::accept(&listener, respond).await;
        let err = connecting.await.unwrap().unwrap_err();
        match (what, &err) {
            (
                "redirect",
                ConnectError::Status {
                    status, headers, ..
                },
            ) => {
                assert_eq!(status.as_u16(), 302);
                assert_eq!(headers["location"], "ws://elsewhere.example/");
            }
            ("redirect", _) => panic!("{what}: {err:?}"),
            (_, ConnectError::Handshake(_)) => {}
            _ => panic!("{what}: {err:?}"),
        }
    }
}
