//! Test harness: a real actix-web server on 127.0.0.1 in its own thread, an event log the
//! endpoints write to, and two independent clients: tokio-tungstenite, and raw TCP frames for
//! what a well-behaved client refuses to send.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{dev::ServerHandle, web, App, HttpServer};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{
    tungstenite::{self, protocol::CloseFrame, Message},
    MaybeTlsStream, WebSocketStream,
};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the endpoints did, in order.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Records an `on_close` as `close:CODE:REASON`.
    pub fn closed(&self, reason: &ws_endpoint::CloseReason) {
        self.push(format!("close:{}:{}", reason.code_u16(), reason.reason));
    }

    /// Events starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }

    /// Waits (up to 5 s) until an event starting with `prefix` is logged; returns it.
    pub async fn wait_for(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(e) = self.events().into_iter().find(|e| e.starts_with(prefix)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no `{prefix}` event within 5 s; events: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub log: Log,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        // Not graceful: a graceful stop would wait for the open WebSockets.
        self.handle.stop(false).await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Starts a server with one worker whose app is built by `configure`, with the test [`Log`] in
/// the app data.
pub fn start<F>(configure: F) -> TestServer
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    start_with(configure, None)
}

/// Like [`start`]; with `Some(grace)`, the server also gets `with_ws_shutdown(grace)` (Ctrl-C /
/// SIGTERM close every session with 1001).
pub fn start_with<F>(configure: F, ws_shutdown: Option<Duration>) -> TestServer
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    use ws_endpoint::WsServerExt;
    let log = Log::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let app_log = log.clone();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let mut server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(app_log.clone()))
                    .configure(configure.clone())
            })
            .workers(1)
            .client_disconnect_timeout(ws_endpoint_close_linger())
            .on_connect(ws_endpoint::on_connect);
            if let Some(grace) = ws_shutdown {
                server = server.with_ws_shutdown(grace);
            } else {
                server = server.disable_signals();
            }
            let server = server.bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((addr, server.handle())).unwrap();
            let _ = server.await;
        })
    });
    let (addr, handle) = rx.recv().expect("server started");
    TestServer {
        addr,
        handle,
        log,
        thread: Some(thread),
    }
}

/// The test kit's server (`ws_endpoint::test::TestServer`) with the app `configure` builds and
/// the test [`Log`] in the app data, like [`start`].
pub fn start_kit<F>(configure: F) -> (ws_endpoint::test::TestServer, Log)
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let log = Log::default();
    let app_log = log.clone();
    let server = ws_endpoint::test::TestServer::start(move || {
        App::new()
            .app_data(web::Data::new(app_log.clone()))
            .configure(configure.clone())
    });
    (server, log)
}

fn ws_endpoint_close_linger() -> Duration {
    ws_endpoint::CLOSE_LINGER
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _resp) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("connect timed out")
    .expect("handshake failed");
    ws
}

/// The next data message (skipping control frames), within 5 s.
pub async fn recv(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no message within 5 s")
            .expect("stream ended")
            .expect("read error");
        match msg {
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            other => return other,
        }
    }
}

pub async fn recv_text(ws: &mut Ws) -> String {
    match recv(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads until the server's close frame; returns its code and reason. Fails after 5 s.
pub async fn expect_close(ws: &mut Ws) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .expect("no close frame within 5 s");
        match msg {
            Some(Ok(Message::Close(Some(CloseFrame { code, reason })))) => {
                return (u16::from(code), reason.to_string())
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("read error before the close frame: {e}"),
            None => panic!("connection ended without a close frame"),
        }
    }
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
}

pub fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::from(code),
        reason: reason.into(),
    }))
}

// ---------- raw TCP client ----------

pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// The handshake response's head.
    pub head: String,
    /// RSV1 of the last frame [`Raw::read_frame`] returned (permessage-deflate: compressed).
    pub last_rsv1: bool,
}

/// What a raw read saw.
#[derive(Debug, PartialEq, Eq)]
pub enum RawFrame {
    Frame {
        opcode: u8,
        fin: bool,
        payload: Vec<u8>,
    },
    Eof,
}

/// Sends an HTTP request and returns the status code and the whole head.
pub async fn http_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&out);
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        // body length, when given
                        let len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if out.len() >= head_end + 4 + len {
                            break;
                        }
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

pub fn upgrade_request(addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

impl Raw {
    /// Opens a WebSocket with a hand-written handshake.
    pub async fn connect(addr: SocketAddr, path: &str) -> Raw {
        Self::handshake(TcpStream::connect(addr).await.unwrap(), addr, path).await
    }

    /// Like [`Raw::connect`], with a receive buffer of about `bytes` (set before connecting, so
    /// the kernel does not grow it): a reader that stops reading fills up fast.
    pub async fn connect_small_buffer(addr: SocketAddr, path: &str, bytes: u32) -> Raw {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        Self::handshake(stream, addr, path).await
    }

    /// Like [`Raw::connect`], with extra request header lines (each ending in `\r\n`).
    pub async fn connect_with(addr: SocketAddr, path: &str, extra: &str) -> Raw {
        Self::handshake_with(TcpStream::connect(addr).await.unwrap(), addr, path, extra).await
    }

    async fn handshake(stream: TcpStream, addr: SocketAddr, path: &str) -> Raw {
        Self::handshake_with(stream, addr, path, "").await
    }

    async fn handshake_with(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        extra: &str,
    ) -> Raw {
        stream
            .write_all(upgrade_request(addr, path, extra).as_bytes())
            .await
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("handshake response timed out")
                .unwrap();
            assert!(n > 0, "connection closed during handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..pos]).to_string();
                assert!(
                    head.starts_with("HTTP/1.1 101"),
                    "handshake refused: {head}"
                );
                buf.drain(..pos + 4);
                return Raw {
                    stream,
                    buf,
                    head,
                    last_rsv1: false,
                };
            }
        }
    }

    /// A masked client frame. `first` is the first header byte (FIN, RSV, opcode).
    pub fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        Self::frame_with_mask(first, payload, [0x12, 0x34, 0x56, 0x78])
    }

    /// A client frame masked with `mask`; the all-zero mask (valid: the server unmasks with
    /// it) spares large payloads a masking pass.
    pub fn frame_with_mask(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![first];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xffff {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        if mask == [0; 4] {
            out.extend_from_slice(payload);
        } else {
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        out
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Like [`send_raw`](Self::send_raw), but `false` when the connection is gone.
    pub async fn send_raw_checked(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    pub async fn send_frame(&mut self, first: u8, payload: &[u8]) {
        self.send_raw(&Self::frame(first, payload)).await;
    }

    async fn fill(&mut self, n: usize, deadline: Instant) -> bool {
        let mut chunk = [0u8; 4096];
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("timed out waiting for the server"),
                Ok(Ok(0)) | Ok(Err(_)) => return false,
                Ok(Ok(k)) => self.buf.extend_from_slice(&chunk[..k]),
            }
        }
        true
    }

    /// The next server frame (servers do not mask), or `Eof`; fails after 5 s.
    pub async fn read_frame(&mut self) -> RawFrame {
        let deadline = Instant::now() + Duration::from_secs(5);
        if !self.fill(2, deadline).await {
            return RawFrame::Eof;
        }
        let (b0, b1) = (self.buf[0], self.buf[1]);
        assert_eq!(b1 & 0x80, 0, "server frames must not be masked");
        let (len, hdr) = match b1 & 0x7f {
            126 => {
                assert!(self.fill(4, deadline).await);
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                assert!(self.fill(10, deadline).await);
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(raw) as usize, 10)
            }
            n => (n as usize, 2),
        };
        if !self.fill(hdr + len, deadline).await {
            return RawFrame::Eof;
        }
        let payload = self.buf[hdr..hdr + len].to_vec();
        self.buf.drain(..hdr + len);
        self.last_rsv1 = b0 & 0x40 != 0;
        RawFrame::Frame {
            opcode: b0 & 0x0f,
            fin: b0 & 0x80 != 0,
            payload,
        }
    }

    /// Reads frames until a close frame; returns its code (1005 if empty). Panics on EOF first.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.read_frame().await {
                RawFrame::Frame {
                    opcode: 8, payload, ..
                } => {
                    if payload.len() < 2 {
                        return (1005, String::new());
                    }
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    return (code, String::from_utf8_lossy(&payload[2..]).to_string());
                }
                RawFrame::Frame { .. } => continue,
                RawFrame::Eof => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Whether the server has shut the connection down: writing to it fails (reset) within
    /// `limit`, without reading anything.
    pub async fn writes_fail_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let frame = Self::frame(0x81, b"are you there");
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.write_all(&frame)).await {
                Ok(Err(_)) => return true,
                Ok(Ok(())) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(_) => return false,
            }
        }
        false
    }

    /// After the close frame: the server closes the TCP connection; returns how long it took.
    pub async fn expect_eof(&mut self) -> Duration {
        let start = Instant::now();
        match self.read_frame().await {
            RawFrame::Eof => start.elapsed(),
            RawFrame::Frame { opcode, .. } => {
                panic!("unexpected frame (opcode {opcode}) after close")
            }
        }
    }
}

/// Tomcat's chat: `* GuestN has joined.` → N.
pub fn joined_guest(notice: &str) -> usize {
    notice
        .strip_prefix("* Guest")
        .and_then(|rest| rest.strip_suffix(" has joined."))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a join notice: {notice:?}"))
}
