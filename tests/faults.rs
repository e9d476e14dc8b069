//! Faults real networks and clients produce: vanishing peers, churn, panics under load,
//! malformed handshakes. All on 127.0.0.1, bounded in count and time.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use ws_endpoint::prelude::*;

#[derive(Default)]
struct Echo {
    log: Option<web::Data<Log>>,
}

#[server_endpoint("/fault/{name}", heartbeat = false)]
impl Echo {
    #[on_open]
    fn open(&mut self, log: web::Data<Log>) {
        log.push("open");
        self.log = Some(log);
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        if msg == "panic" {
            panic!("asked to panic");
        }
        msg
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        if let Some(log) = &self.log {
            log.push(format!("close:{}", reason.code_u16()));
        }
    }
}

fn app(cfg: &mut web::ServiceConfig) {
    cfg.service(Echo::endpoint());
}

fn open_at(path: &str) -> usize {
    ws_endpoint::all_open_sessions()
        .iter()
        .filter(|s| s.path() == path)
        .count()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn peer_vanishing_mid_message_gives_on_close_1006_once_and_leaves_nothing() {
    let srv = start(app);
    let mut raw = Raw::connect(srv.addr, "/fault/mid-message").await;
    let frame = Raw::frame(0x81, &[b'a'; 1000]);
    raw.send_raw(&frame[..500]).await; // half a frame
    srv.log.wait_for("open").await;
    drop(raw);
    assert_eq!(srv.log.wait_for("close:").await, "close:1006");
    wait_until("session gone", || open_at("/fault/mid-message") == 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(srv.log.count("close:"), 1);
    srv.stop().await;
}

#[tokio::test]
async fn peer_vanishing_mid_handshake_runs_no_handler() {
    let srv = start(app);
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /fault/mid-handshake HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(srv.log.events().is_empty(), "{:?}", srv.log.events());
    assert_eq!(open_at("/fault/mid-handshake"), 0);
    srv.stop().await;
}

/// A session is registered by its connection task and unregistered when that task ends (or is
/// dropped), so the count of open sessions is also the count of live connection tasks.
#[tokio::test]
async fn churn_of_10000_sessions_leaves_no_session_and_no_task() {
    let srv = start(app);
    const CYCLES: usize = 10_000;
    const PARALLEL: usize = 16;
    let url = srv.url("/fault/churn");
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..PARALLEL)
        .map(|w| {
            let url = url.clone();
            tokio::spawn(async move {
                for i in (w..CYCLES).step_by(PARALLEL) {
                    let mut ws = connect(&url).await;
                    let msg = format!("m{i}");
                    ws.send(Message::text(msg.clone())).await.unwrap();
                    assert_eq!(recv_text(&mut ws).await, msg);
                    if i % 2 == 0 {
                        ws.close(None).await.unwrap(); // clean close...
                        while let Some(Ok(_)) = ws.next().await {}
                    } // ...or the client just goes away
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    wait_until("every on_close ran", || srv.log.count("close:") == CYCLES).await;
    wait_until("no open session", || open_at("/fault/churn") == 0).await;
    assert_eq!(srv.log.count("open"), CYCLES);
    println!(
        "churn: {CYCLES} sessions in {elapsed:?} ({:.0}/s); connection tasks left: {}",
        CYCLES as f64 / elapsed.as_secs_f64(),
        open_at("/fault/churn")
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_panic_under_load_closes_only_its_session() {
    let srv = start(app);
    const CLIENTS: usize = 20;
    const MESSAGES: usize = 50;
    let url = srv.url("/fault/load");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut ws = connect(&url).await;
                for m in 0..MESSAGES {
                    if c == 7 && m == MESSAGES / 2 {
                        ws.send(Message::text("panic")).await.unwrap();
                        return Some(expect_close(&mut ws).await.0);
                    }
                    let msg = format!("{c}:{m}");
                    ws.send(Message::text(msg.clone())).await.unwrap();
                    assert_eq!(recv_text(&mut ws).await, msg);
                }
                ws.close(None).await.unwrap();
                None
            })
        })
        .collect();
    let mut codes = Vec::new();
    for c in clients {
        if let Some(code) = c.await.expect("a bystander saw an error") {
            codes.push(code);
        }
    }
    assert_eq!(codes, vec![1011]);
    wait_until("every on_close ran", || srv.log.count("close:") == CLIENTS).await;
    assert_eq!(srv.log.count("close:1011"), 1);
    srv.stop().await;
}

#[tokio::test]
async fn malformed_handshakes_get_an_http_error_and_the_server_goes_on() {
    let srv = start(app);
    let a = srv.addr;
    let cases = [
        (
            "missing key",
            format!("GET /fault/x HTTP/1.1\r\nHost: {a}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            400,
        ),
        (
            "wrong version",
            format!("GET /fault/x HTTP/1.1\r\nHost: {a}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"),
            426,
        ),
        (
            "not GET",
            format!("POST /fault/x HTTP/1.1\r\nHost: {a}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"),
            405,
        ),
        (
            "oversized headers",
            format!("GET /fault/x HTTP/1.1\r\nHost: {a}\r\nX-Big: {}\r\n\r\n", "a".repeat(256 * 1024)),
            431,
        ),
    ];
    for (what, request, expected) in cases {
        let (status, head) = http_request(a, &request).await;
        assert_eq!(status, expected, "{what}: {head}");
    }
    assert!(srv.log.events().is_empty());
    let mut ws = connect(&srv.url("/fault/after")).await;
    send_text(&mut ws, "still serving").await;
    assert_eq!(recv_text(&mut ws).await, "still serving");
    srv.stop().await;
}
