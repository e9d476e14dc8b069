//! The three echo servers compared by the harness. Each echoes text and binary messages up to
//! 16 MiB, answers pings and closes on close; the two actix ones run with the same actix-web
//! settings (1 worker, no close linger, `TCP_NODELAY`), the tokio-tungstenite one on a
//! current-thread runtime.
//!
//! All three set `TCP_NODELAY` on their accepted sockets: ws-endpoint's `with_ws_defaults()` does
//! (actix-web alone leaves Nagle's algorithm on), the baseline does it in an `on_connect` hook so
//! that the comparison isolates the library's cost, and the tokio-tungstenite server on its
//! accepted streams. `actix-ws-nagle` (not in the default set) is the baseline as actix-web
//! leaves it, with Nagle on.

use std::{fmt, io, str::FromStr, time::Duration};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::{future, StreamExt as _, TryStreamExt as _};

/// The largest message every server accepts (text or binary, after reassembling fragments).
pub const MAX_MESSAGE: usize = 16 << 20;

/// Which echo server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// The echo endpoint written with `#[server_endpoint]` (ws-endpoint).
    Macro,
    /// A hand-written actix-ws 0.4 echo loop: the baseline.
    ActixWs,
    /// A tokio-tungstenite echo server on a current-thread runtime.
    Tungstenite,
    /// The baseline without `TCP_NODELAY` (actix-web's default); not in [`ServerKind::ALL`].
    ActixWsNagle,
    /// A framework-free echo: frames parsed by hand, one write per read.
    Raw,
}

impl ServerKind {
    /// All kinds, in the order the harness alternates them.
    pub const ALL: [ServerKind; 4] = [
        ServerKind::Macro,
        ServerKind::ActixWs,
        ServerKind::Tungstenite,
        ServerKind::Raw,
    ];

    /// Every kind the command line accepts.
    pub const KNOWN: [ServerKind; 5] = [
        ServerKind::Macro,
        ServerKind::ActixWs,
        ServerKind::Tungstenite,
        ServerKind::ActixWsNagle,
        ServerKind::Raw,
    ];

    /// The short name used on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Macro => "macro",
            ServerKind::ActixWs => "actix-ws",
            ServerKind::Tungstenite => "tungstenite",
            ServerKind::ActixWsNagle => "actix-ws-nagle",
            ServerKind::Raw => "raw",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ServerKind::KNOWN
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown server `{s}` (macro, actix-ws, tungstenite, actix-ws-nagle, raw)")
            })
    }
}

/// Runs the server of `kind` on `addr` (e.g. `127.0.0.1:9001`) until the process is killed.
pub fn serve(kind: ServerKind, addr: &str) -> io::Result<()> {
    match kind {
        ServerKind::Macro => macro_echo(addr),
        ServerKind::ActixWs => actix_ws_echo(addr),
        ServerKind::Tungstenite => tungstenite_echo(addr),
        ServerKind::ActixWsNagle => actix_ws_echo_nagle(addr),
        ServerKind::Raw => raw_echo(addr),
    }
}

/// The address from the first command-line argument, or `default`.
pub fn addr_from_args(default: &str) -> String {
    std::env::args()
        .nth(1)
        .unwrap_or_else(|| default.to_owned())
}

/// The endpoint of `examples/echo.rs`, attribute for attribute, and the same echo with
/// permessage-deflate's context takeover (`/keep`, for the compression scenarios).
mod endpoint {
    use ws_endpoint::prelude::*;

    /// The echo endpoint.
    #[derive(Default)]
    pub struct Echo;

    #[server_endpoint("/", max_message_size = "16MiB", heartbeat = false)]
    impl Echo {
        #[on_message]
        fn text(&mut self, msg: String) -> String {
            msg
        }

        #[on_message]
        fn binary(&mut self, data: Bytes) -> Bytes {
            data
        }
    }

    /// The echo endpoint with context takeover: a client that allows it gets the server's
    /// compressor and inflater kept across messages (each connection holds its own).
    #[derive(Default)]
    pub struct EchoKeep;

    #[server_endpoint(
        "/keep",
        max_message_size = "16MiB",
        heartbeat = false,
        compression(context_takeover = true)
    )]
    impl EchoKeep {
        #[on_message]
        fn text(&mut self, msg: String) -> String {
            msg
        }

        #[on_message]
        fn binary(&mut self, data: Bytes) -> Bytes {
            data
        }
    }
}

/// The endpoint of `examples/upload.rs` (the root package's examples are out of the bench's
/// reach): one binary message of up to 4 GiB taken as a [`ws_endpoint::BinaryStream`], counted
/// and hashed with SHA-256 as it arrives, answered with `{"bytes": N, "sha256": "<hex>"}`. The
/// same attributes as the example, except `heartbeat = false` like the bench's other endpoints
/// (the upload client reads nothing until the reply).
mod upload {
    use sha2::{Digest as _, Sha256};
    use ws_endpoint::{prelude::*, BinaryStream};

    /// The upload endpoint.
    #[derive(Default)]
    pub struct Upload;

    #[server_endpoint(
        "/upload",
        max_binary_message_size = "4GiB",
        idle_timeout = "5m",
        heartbeat = false
    )]
    impl Upload {
        #[on_message]
        async fn upload(&mut self, mut data: BinaryStream) -> Result<String, EndpointError> {
            let mut hasher = Sha256::new();
            let mut bytes: u64 = 0;
            while let Some(chunk) = data.next_chunk().await {
                let chunk = chunk?;
                bytes += chunk.len() as u64;
                hasher.update(&chunk);
            }
            let hex: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Ok(format!(r#"{{"bytes": {bytes}, "sha256": "{hex}"}}"#))
        }

        #[on_message]
        fn text(&mut self, _msg: String) -> &'static str {
            r#"{"error": "send the file as one binary message"}"#
        }
    }
}

/// (1) The `#[server_endpoint]` echo, served as `examples/echo.rs` serves it: `with_ws_defaults()`,
/// 1 worker; beside it `/keep`, the same echo with `compression(context_takeover = true)`, which
/// only the compression scenarios use (registered after `/`, which is matched first), and
/// `/upload`, the streaming upload of `examples/upload.rs`, which only the `upload` scenario
/// uses.
pub fn macro_echo(addr: &str) -> io::Result<()> {
    use ws_endpoint::WsServerExt as _;
    let addr = addr.to_owned();
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .route("/heap", web::get().to(heap_handler))
                .service(endpoint::Echo::endpoint())
                .service(endpoint::EchoKeep::endpoint())
                .service(upload::Upload::endpoint())
        })
        .with_ws_defaults()
        .workers(1)
        .bind(&addr)?
        .run()
        .await
    })
}

async fn actix_ws_handler(
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    use actix_ws::AggregatedMessage;

    let (response, mut session, stream) = actix_ws::handle(&req, body)?;
    let mut stream = stream
        .max_frame_size(MAX_MESSAGE)
        .aggregate_continuations()
        .max_continuation_size(MAX_MESSAGE);
    actix_web::rt::spawn(async move {
        while let Some(msg) = stream.recv().await {
            let sent = match msg {
                Ok(AggregatedMessage::Text(text)) => session.text(text).await,
                Ok(AggregatedMessage::Binary(data)) => session.binary(data).await,
                Ok(AggregatedMessage::Ping(data)) => session.pong(&data).await,
                Ok(AggregatedMessage::Pong(_)) => Ok(()),
                Ok(AggregatedMessage::Close(reason)) => {
                    let _ = session.close(reason).await;
                    return;
                }
                Err(_) => break,
            };
            if sent.is_err() {
                return;
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

/// (2) The baseline: a hand-written actix-ws 0.4 echo loop with the same actix-web settings as
/// (1): 1 worker, `client_disconnect_timeout(0)`, `TCP_NODELAY` on every connection (set in an
/// `on_connect` hook, as `with_ws_defaults()` does for (1)).
pub fn actix_ws_echo(addr: &str) -> io::Result<()> {
    actix_ws_server(addr, true)
}

/// The baseline as actix-web leaves it: Nagle's algorithm on (no `TCP_NODELAY`).
pub fn actix_ws_echo_nagle(addr: &str) -> io::Result<()> {
    actix_ws_server(addr, false)
}

/// An `HttpServer::on_connect` hook that sets `TCP_NODELAY` (and nothing else).
pub fn set_nodelay(conn: &dyn std::any::Any, _data: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let _ = tcp.set_nodelay(true);
    }
}

fn actix_ws_server(addr: &str, nodelay: bool) -> io::Result<()> {
    let addr = addr.to_owned();
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new()
                .route("/heap", web::get().to(heap_handler))
                .route("/", web::get().to(actix_ws_handler))
        })
        .client_disconnect_timeout(Duration::ZERO)
        .workers(1);
        let server = if nodelay {
            server.on_connect(set_nodelay)
        } else {
            server
        };
        server.bind(&addr)?.run().await
    })
}

/// (3) tokio-tungstenite's canonical echo server (`read.forward(write)` of the text and binary
/// messages; tungstenite answers pings and closes itself), on a current-thread runtime, with
/// `TCP_NODELAY` on its accepted streams like the other two.
pub fn tungstenite_echo(addr: &str) -> io::Result<()> {
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    // EMFILE and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                else {
                    return;
                };
                let (write, read) = ws.split();
                let _ = read
                    .try_filter(|msg| future::ready(msg.is_text() || msg.is_binary()))
                    .forward(write)
                    .await;
            });
        }
    })
}

/// (4) A framework-free echo: a current-thread tokio runtime, a hand-read handshake, frames
/// parsed by hand, and one write per read (every complete frame of what one read brought is
/// echoed into one buffer). No limits beyond [`MAX_MESSAGE`], no UTF-8 check: the floor of what
/// a WebSocket echo costs on this machine, to tell the framework's cost from the kernel's.
pub fn raw_echo(addr: &str) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = raw_connection(stream).await;
            });
        }
    })
}

async fn raw_connection(mut stream: tokio::net::TcpStream) -> io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    // The handshake: read up to the blank line, answer with the accept key.
    let end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 16 << 10 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    stream
        .write_all(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    buf.drain(..end);
    let mut out: Vec<u8> = Vec::with_capacity(64 << 10);
    loop {
        let mut pos = 0;
        let mut closing = false;
        while let Some((fin_op, len, hdr)) = raw_header(&buf[pos..]) {
            if len > MAX_MESSAGE || buf.len() - pos < hdr + len {
                if len > MAX_MESSAGE {
                    return Ok(());
                }
                break;
            }
            let mask = [
                buf[pos + hdr - 4],
                buf[pos + hdr - 3],
                buf[pos + hdr - 2],
                buf[pos + hdr - 1],
            ];
            let payload = &mut buf[pos + hdr..pos + hdr + len];
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
            let op = fin_op & 0x0f;
            let reply = match op {
                9 => Some(0x8a), // ping -> pong
                8 => {
                    closing = true;
                    Some(0x88)
                }
                10 => None,
                _ => Some(fin_op), // data frames and continuations, as they came
            };
            if let Some(first) = reply {
                out.push(first);
                if len < 126 {
                    out.push(len as u8);
                } else if len <= 0xffff {
                    out.push(126);
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                } else {
                    out.push(127);
                    out.extend_from_slice(&(len as u64).to_be_bytes());
                }
                out.extend_from_slice(&buf[pos + hdr..pos + hdr + len]);
            }
            pos += hdr + len;
            if closing {
                break;
            }
        }
        buf.drain(..pos);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if closing {
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A masked client frame's header: (first byte, payload length, header length), if complete.
fn raw_header(b: &[u8]) -> Option<(u8, usize, usize)> {
    if b.len() < 2 {
        return None;
    }
    let (len, ext) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 2),
        127 if b.len() >= 10 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&b[2..10]);
            (u64::from_be_bytes(raw).min(usize::MAX as u64) as usize, 8)
        }
        126 | 127 => return None,
        n => (n as usize, 0),
    };
    let hdr = 2 + ext + 4;
    (b.len() >= hdr).then_some((b[0], len, hdr))
}

/// Heap bytes now and at most so far, counted by the bench binary's global allocator
/// ([`crate::heap`]), served at `GET /heap` by the actix servers as "current peak".
/// `GET /heap?reset` first starts a new peak.
async fn heap_handler(req: HttpRequest) -> HttpResponse {
    if req.query_string() == "reset" {
        crate::heap::reset_peak();
    }
    let (now, peak) = crate::heap::stats();
    HttpResponse::Ok().body(format!("{now} {peak}"))
}
