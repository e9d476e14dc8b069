//! Every row of the behaviour table, on the wire: a real server on 127.0.0.1, an independent
//! client (tokio-tungstenite, or raw frames where it refuses to send something malformed), and
//! the endpoint's own record of which handlers ran and how often.

mod common;

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use ws_endpoint::prelude::*;

// ---------------------------------------------------------------- endpoints under test

#[derive(Debug)]
struct Oops;

impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oops")
    }
}

impl std::error::Error for Oops {}

/// A typed per-session property.
#[derive(Clone)]
struct Nick(String);

#[derive(Default)]
struct Probe {
    log: Option<web::Data<Log>>,
}

impl Probe {
    fn log(&self, event: String) {
        if let Some(log) = &self.log {
            log.push(event);
        }
    }
}

#[server_endpoint(
    "/probe/{id}",
    max_message_size = 1024,
    subprotocols = ["chat.v2", "chat.v1"],
    heartbeat = false
)]
impl Probe {
    #[on_open]
    async fn open(&mut self, session: &Session, #[path_param] id: u32, log: web::Data<Log>) {
        log.push(format!("open:{id}"));
        session.set_property(Nick(format!("user-{id}")));
        self.log = Some(log);
    }

    #[on_message]
    async fn text(&mut self, session: &Session, msg: String) -> Result<Option<String>, Oops> {
        self.log(format!("text:{}", msg.len()));
        match msg.as_str() {
            "panic" => panic!("boom"),
            "err" => Err(Oops),
            "silent" => Ok(None),
            "close" => {
                let _ = session.close(CloseReason::new(4000, "bye")).await;
                Ok(None)
            }
            "close-1006" => {
                let refused = session
                    .close(CloseReason::abnormal("not on the wire"))
                    .await;
                Ok(Some(format!("{refused:?}")))
            }
            "slow" => {
                actix_web::rt::time::sleep(Duration::from_millis(200)).await;
                Ok(Some("slow-done".into()))
            }
            "info" => Ok(Some(format!(
                "{}|{}|{}|{}|{}|{}",
                session.path(),
                session.query_string(),
                session.subprotocol().unwrap_or("-"),
                session.path_param("id").unwrap_or("?"),
                session.property::<Nick>().map_or("-".into(), |n| n.0),
                session.peer_addr().is_some_and(|a| a.ip().is_loopback()),
            ))),
            _ => Ok(Some(msg)),
        }
    }

    #[on_message(max_message_size = 4096)]
    fn binary(&mut self, data: Vec<u8>) -> Vec<u8> {
        self.log(format!("binary:{}", data.len()));
        data
    }

    #[on_message]
    fn pong(&mut self, pong: Pong) {
        self.log(format!("pong:{}", String::from_utf8_lossy(&pong.0)));
    }

    #[on_close]
    async fn close(&mut self, session: &Session, reason: CloseReason) {
        let after = session.text("too late").await;
        if let Some(log) = &self.log {
            log.closed(&reason);
        }
        self.log(format!("send-after-close:{after:?}"));
    }

    #[on_error]
    fn error(&mut self, err: EndpointError) {
        self.log(format!("error:{err}"));
    }
}

#[derive(Default)]
struct TextOnly;

#[server_endpoint("/text-only", heartbeat = false)]
impl TextOnly {
    #[on_message]
    fn text(&mut self, msg: String) -> Result<String, Oops> {
        if msg == "err" {
            Err(Oops)
        } else {
            Ok(msg)
        }
    }
}

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Serialize)]
struct Sum {
    sum: i64,
}

#[derive(Default)]
struct Calc {
    log: Option<web::Data<Log>>,
}

#[server_endpoint("/calc", heartbeat = false)]
impl Calc {
    #[on_open]
    fn open(&mut self, log: web::Data<Log>) {
        self.log = Some(log);
    }

    #[on_message]
    fn add(&mut self, Json(req): Json<Add>) -> Json<Sum> {
        Json(Sum { sum: req.a + req.b })
    }

    #[on_error]
    fn error(&mut self, err: EndpointError) -> String {
        if let Some(log) = &self.log {
            log.push(format!("error:{err}"));
        }
        "bad request".to_owned()
    }
}

#[derive(Default)]
struct Timed {
    log: Option<web::Data<Log>>,
}

#[server_endpoint("/idle", idle_timeout = "300ms", heartbeat = false)]
impl Timed {
    #[on_open]
    fn open(&mut self, log: web::Data<Log>) {
        self.log = Some(log);
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        if let Some(log) = &self.log {
            log.closed(&reason);
        }
    }
}

#[derive(Default)]
struct Beat {
    log: Option<web::Data<Log>>,
}

#[server_endpoint("/beat", ping_interval = "200ms", pong_timeout = "200ms")]
impl Beat {
    #[on_open]
    fn open(&mut self, log: web::Data<Log>) {
        self.log = Some(log);
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        if let Some(log) = &self.log {
            log.closed(&reason);
        }
    }
}

/// An extractor that refuses the handshake with 401 unless `x-api-key: secret` is sent.
struct ApiKey;

impl FromRequest for ApiKey {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ok = req
            .headers()
            .get("x-api-key")
            .is_some_and(|v| v.as_bytes() == b"secret");
        std::future::ready(if ok {
            Ok(ApiKey)
        } else {
            Err(actix_web::error::ErrorUnauthorized(
                "missing or wrong x-api-key",
            ))
        })
    }
}

#[derive(Default)]
struct Guarded;

#[server_endpoint("/guarded", allowed_origins = ["http://app.test"])]
impl Guarded {
    #[on_open]
    fn open(&mut self, _key: ApiKey, log: web::Data<Log>) {
        log.push("open");
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

#[derive(Default)]
struct Flood {
    log: Option<web::Data<Log>>,
}

/// Pushes 1 MiB messages from a background task as fast as the session takes them, and echoes
/// what it receives; a peer that stops reading gets 500 ms before it is dropped.
#[server_endpoint("/flood/{push}", heartbeat = false, send_timeout = "500ms")]
impl Flood {
    #[on_open]
    fn open(&mut self, session: &Session, #[path_param] push: bool, log: web::Data<Log>) {
        self.log = Some(log);
        if !push {
            return;
        }
        let session = session.clone();
        actix_web::rt::spawn(async move {
            let chunk = Bytes::from(vec![7u8; 1 << 20]);
            while session.binary(chunk.clone()).await.is_ok() {
                FLOOD_SENT.fetch_add(1, Ordering::SeqCst);
            }
        });
    }

    #[on_message(max_message_size = 65536)]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        if let Some(log) = &self.log {
            log.closed(&reason);
        }
    }
}

/// Released by `an_on_close_that_waits_runs_to_its_end_after_the_connection_is_gone`.
static LINGER_RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// An `on_close` that waits for the test (the connection is gone by then).
#[derive(Default)]
struct Linger {
    log: Option<web::Data<Log>>,
}

#[server_endpoint("/linger", heartbeat = false)]
impl Linger {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        Self { log: Some(log) }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_close]
    async fn close(&mut self, reason: CloseReason) {
        let log = self.log.as_ref().expect("opened");
        log.push(format!("closing:{}", reason.code_u16()));
        LINGER_RELEASE.notified().await;
        log.push(String::from("closed"));
    }
}

fn app(cfg: &mut web::ServiceConfig) {
    cfg.service(Probe::endpoint())
        .service(Linger::endpoint())
        .service(TextOnly::endpoint())
        .service(Calc::endpoint())
        .service(Timed::endpoint())
        .service(Beat::endpoint())
        .service(Guarded::endpoint())
        .service(Flood::endpoint());
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn echo_text_and_binary_and_return_values() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/probe/7")).await;
    send_text(&mut ws, "hello").await;
    assert_eq!(recv_text(&mut ws).await, "hello");
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::binary(vec![1u8, 2, 3]));
    // Option::None sends nothing: the next reply is the one after it.
    send_text(&mut ws, "silent").await;
    send_text(&mut ws, "after").await;
    assert_eq!(recv_text(&mut ws).await, "after");
    ws.close(None).await.unwrap();
    srv.log.wait_for("close:").await;
    assert_eq!(srv.log.count("open:7"), 1);
    srv.stop().await;
}

#[tokio::test]
async fn handlers_run_in_arrival_order_one_at_a_time() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/probe/1")).await;
    send_text(&mut ws, "slow").await;
    send_text(&mut ws, "fast").await;
    assert_eq!(recv_text(&mut ws).await, "slow-done");
    assert_eq!(recv_text(&mut ws).await, "fast");
    srv.stop().await;
}

#[tokio::test]
async fn peer_close_is_echoed_and_on_close_runs_once() {
    let srv = start(app);
    let mut raw = Raw::connect(srv.addr, "/probe/1").await;
    let mut payload = 4001u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"done");
    raw.send_frame(0x88, &payload).await;
    assert_eq!(raw.expect_close().await.0, 4001, "close code echoed");
    let took = raw.expect_eof().await;
    assert!(
        took < Duration::from_millis(900),
        "TCP closed after {took:?}"
    );
    assert_eq!(srv.log.wait_for("close:").await, "close:4001:done");
    settle().await;
    assert_eq!(srv.log.count("close:"), 1, "{:?}", srv.log.events());
    assert_eq!(srv.log.count("error:"), 0);
    srv.stop().await;
}

#[tokio::test]
async fn an_on_close_that_waits_runs_to_its_end_after_the_connection_is_gone() {
    let srv = start(app);
    let mut raw = Raw::connect(srv.addr, "/linger").await;
    raw.send_frame(0x81, b"hi").await;
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    raw.send_frame(0x88, &payload).await;
    // The echo, then the close answered, then TCP closed, while `on_close` is still waiting.
    assert_eq!(raw.expect_close().await.0, 1000);
    raw.expect_eof().await;
    assert_eq!(srv.log.wait_for("closing:").await, "closing:1000");
    assert_eq!(srv.log.count("closed"), 0);
    assert_eq!(Linger::hub().count(), 1, "registered until on_close ends");
    // Released: the rest of `on_close` runs (on the worker's keeper), once.
    LINGER_RELEASE.notify_one();
    assert_eq!(srv.log.wait_for("closed").await, "closed");
    wait_until_no_linger_session().await;
    assert_eq!(srv.log.count("closing:"), 1);
    assert_eq!(srv.log.count("closed"), 1);
    srv.stop().await;
}

async fn wait_until_no_linger_session() {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Linger::hub().count() > 0 {
        assert!(Instant::now() < deadline, "a session stayed registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn session_close_from_a_handler_sends_the_code_and_runs_on_close() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/probe/1")).await;
    send_text(&mut ws, "close").await;
    assert_eq!(expect_close(&mut ws).await, (4000, "bye".into()));
    assert_eq!(srv.log.wait_for("close:").await, "close:4000:bye");
    // sends on a closed session return an error, never panic
    assert_eq!(
        srv.log.wait_for("send-after-close:").await,
        "send-after-close:Err(Closed)"
    );
    srv.stop().await;
}

#[tokio::test]
async fn oversized_text_is_1009_with_on_error_then_on_close() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/probe/1")).await;
    send_text(&mut ws, &"x".repeat(1024)).await; // exactly the limit: fine
    assert_eq!(recv_text(&mut ws).await.len(), 1024);
    send_text(&mut ws, &"x".repeat(1025)).await;
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1009);
    assert!(reason.contains("1024"), "reason: {reason}");
    let events = {
        srv.log.wait_for("close:").await;
        srv.log.events()
    };
    let err = events
        .iter()
        .position(|e| e.starts_with("error:message too big"));
    let close = events.iter().position(|e| e.starts_with("close:1009"));
    assert!(
        err.is_some() && close.is_some() && err < close,
        "{events:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn on_message_limit_overrides_the_endpoint_limit_for_its_kind() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/probe/1")).await;
    ws.send(Message::binary(vec![0u8; 4096])).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::binary(vec![0u8; 4096]));
    ws.send(Message::binary(vec![0u8; 4097])).await.unwrap();
    assert_eq!(expect_close(&mut ws).await.0, 1009);
    srv.stop().await;
}

#[tokio::test]
async fn oversized_frame_is_refused_on_its_header_without_the_payload() {
    let srv = start(app);
    let mut raw = Raw::connect(srv.addr, "/probe/1").await;
    // A binary frame header announcing 100 MiB against a 4 KiB limit, and no payload at all:
    // a server that waited for the payload before checking would never answer.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(100u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.send_raw(&header).await;
    let started = Instant::now();
    assert_eq!(raw.expect_close().await.0, 1009);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        srv.log.wait_for("close:").await.split(':').nth(1),
        Some("1009")
    );
    srv.stop().await;
}

#[tokio::test]
async fn fragments_count_towards_the_limit() {
    let srv = start(app);
    let mut raw = Raw::connect(srv.addr, "/probe/1").await;
    raw.send_frame(0x01, &[b'a'; 600]).await; // text, not final
    raw.send_frame(0x80, &[b'b'; 600]).await; // continuation, final: 1200 > 1024
    assert_eq!(raw.expect_close().await.0, 1009);
    srv.stop().await;
}

#[tokio::test]
async fn invalid_utf8_is_1007_even_before_the_last_fragment() {
    let srv = start(app);
    let mut raw = Raw::connect(srv.addr, "/probe/1").await;
    raw.send_frame(0x81, &[0xff, 0xfe]).await;
    assert_eq!(raw.expect_close().await.0, 1007);
    srv.log.wait_for("close:1007").await;

    let mut raw = Raw::connect(srv.addr, "/probe/2").await;
    raw.send_frame(0x01, b"ok \xc0\xaf").await; // invalid sequence in a first fragment
    assert_eq!(raw.expect_close().await.0, 1007);

    // a character split across fragments is fine
    let mut raw = Raw::connect(srv.addr, "/probe/3").await;
    let euro = "€".as_bytes();
    raw.send_frame(0x01, &euro[..1]).await;
    raw.send_frame(0x80, &euro[1..]).await;
    match raw.read_frame().await {
        RawFrame::Frame {
            opcode: 1, payload, ..
        } => assert_eq!(payload, euro),
        other => panic!("expected the echo, got {other:?}"),
    }
    srv.stop().await;
}

#[tokio::test]
async fn message_kind_without_handler_is_1003() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/text-only")).await;
    ws.send(Message::binary(vec![1u8])).await.unwrap();
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, 1003);
    assert!(reason.contains("binary"), "reason: {reason}");
    srv.stop().await;
}

#[tokio::test]
async fn json_that_does_not_decode_goes_to_on_error_and_the_session_stays_open() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/calc")).await;
    send_text(&mut ws, "{not json").await;
    assert_eq!(recv_text(&mut ws).await, "bad request"); // on_error's return value
    assert!(srv
        .log
        .wait_for("error:")
        .await
        .contains("could not decode"));
    send_text(&mut ws, r#"{"a": 2, "b": 40}"#).await;
    assert_eq!(recv_text(&mut ws).await, r#"{"sum":42}"#);
    srv.stop().await;
}

#[tokio::test]
async fn handler_err_goes_to_on_error_and_the_session_stays_open() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/probe/1")).await;
    send_text(&mut ws, "err").await;
    send_text(&mut ws, "still here").await;
    assert_eq!(recv_text(&mut ws).await, "still here");
    assert_eq!(
        srv.log.wait_for("error:").await,
        "error:handler error: oops"
    );
    assert_eq!(srv.log.count("close:"), 0);
    srv.stop().await;
}

#[tokio::test]
async fn a_panic_closes_only_its_own_session_with_1011() {
    let srv = start(app);
    let mut bystander = connect(&srv.url("/probe/1")).await;
    let mut victim = connect(&srv.url("/probe/2")).await;
    send_text(&mut victim, "panic").await;
    assert_eq!(expect_close(&mut victim).await.0, 1011);
    srv.log.wait_for("close:1011").await;
    assert_eq!(srv.log.count("error:handler panicked: boom"), 1);
    assert_eq!(srv.log.count("close:"), 1);
    send_text(&mut bystander, "unaffected").await;
    assert_eq!(recv_text(&mut bystander).await, "unaffected");
    let mut newcomer = connect(&srv.url("/probe/3")).await;
    send_text(&mut newcomer, "hi").await;
    assert_eq!(recv_text(&mut newcomer).await, "hi");
    srv.stop().await;
}

#[tokio::test]
async fn pings_are_answered_and_pongs_reach_the_pong_handler() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/probe/1")).await;
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Pong(p))) = ws.next().await {
                return p;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&pong[..], b"are you there");
    ws.send(Message::Pong(b"unsolicited".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(srv.log.wait_for("pong:").await, "pong:unsolicited");
    srv.stop().await;
}

#[tokio::test]
async fn idle_timeout_closes_with_1001_and_traffic_keeps_it_open() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/idle")).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send_text(&mut ws, "tick").await;
        assert_eq!(recv_text(&mut ws).await, "tick");
    }
    let quiet = Instant::now();
    assert_eq!(expect_close(&mut ws).await, (1001, "idle timeout".into()));
    let waited = quiet.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    assert_eq!(srv.log.wait_for("close:").await, "close:1001:idle timeout");
    srv.stop().await;
}

#[tokio::test]
async fn heartbeat_detects_a_dead_peer_as_1006() {
    let srv = start(app);
    // The raw client never answers pings.
    let _raw = Raw::connect(srv.addr, "/beat").await;
    let started = Instant::now();
    let close = srv.log.wait_for("close:").await;
    assert!(close.starts_with("close:1006:no pong"), "{close}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // A live client (tungstenite answers pings while it reads) stays connected.
    let mut ws = connect(&srv.url("/beat")).await;
    let live = tokio::time::timeout(Duration::from_millis(1200), recv(&mut ws)).await;
    assert!(live.is_err(), "live client got {live:?}");
    send_text(&mut ws, "alive").await;
    assert_eq!(recv_text(&mut ws).await, "alive");
    srv.stop().await;
}

#[tokio::test]
async fn a_vanished_peer_gives_on_close_1006_once() {
    let srv = start(app);
    let raw = Raw::connect(srv.addr, "/probe/1").await;
    srv.log.wait_for("open:").await;
    drop(raw);
    assert_eq!(
        srv.log.wait_for("close:").await,
        "close:1006:connection lost"
    );
    settle().await;
    assert_eq!(srv.log.count("close:"), 1);
    srv.stop().await;
}

#[tokio::test]
async fn protocol_violations_are_1002() {
    let srv = start(app);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked frame", vec![0x81, 0x02, b'h', b'i']),
        ("reserved bits", Raw::frame(0x81 | 0x40, b"hi")),
        ("reserved opcode", Raw::frame(0x83, b"hi")),
        ("close code 1005", Raw::frame(0x88, &1005u16.to_be_bytes())),
        ("close code 999", Raw::frame(0x88, &999u16.to_be_bytes())),
        ("continuation first", Raw::frame(0x80, b"hi")),
        ("fragmented ping", Raw::frame(0x09, b"hi")),
        ("long ping", Raw::frame(0x89, &[0u8; 126])),
    ];
    for (what, bytes) in cases {
        let mut raw = Raw::connect(srv.addr, "/probe/1").await;
        raw.send_raw(&bytes).await;
        assert_eq!(raw.expect_close().await.0, 1002, "{what}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn subprotocol_is_the_clients_first_offer_the_endpoint_lists() {
    let (server, _log) = start_kit(app);
    let mut client = server
        .client("/probe/1?x=1")
        .protocol("chat.v3")
        .protocol("chat.v1")
        .protocol("chat.v2")
        .connect()
        .await;
    assert_eq!(client.protocol(), Some("chat.v1"));
    client.send_text("info").await;
    assert_eq!(
        client.recv_text().await,
        "/probe/1|x=1|chat.v1|1|user-1|true"
    );

    // No overlap: accepted, without the header.
    let client = server
        .client("/probe/1")
        .protocol("graphql-ws")
        .connect()
        .await;
    assert_eq!(client.response_header("sec-websocket-protocol"), None);
}

#[tokio::test]
async fn origin_is_same_origin_by_default_widened_by_allowed_origins() {
    let srv = start(app);
    let host = srv.addr;
    let up = |path: &str, extra: &str| upgrade_request(host, path, extra);
    let status = |path: &'static str, extra: String| {
        let req = up(path, &extra);
        async move { http_request(host, &req).await.0 }
    };
    assert_eq!(status("/probe/1", String::new()).await, 101, "no Origin");
    assert_eq!(
        status("/probe/1", format!("Origin: http://{host}\r\n")).await,
        101
    );
    let (code, body) = http_request(host, &up("/probe/1", "Origin: http://evil.test\r\n")).await;
    assert_eq!(code, 403);
    assert!(body.contains("origin"), "{body}");
    let key = "x-api-key: secret\r\n";
    assert_eq!(
        status("/guarded", format!("{key}Origin: http://app.test\r\n")).await,
        101
    );
    assert_eq!(
        status("/guarded", format!("{key}Origin: http://evil.test\r\n")).await,
        403
    );
    let guarded_opens = srv.log.events().iter().filter(|e| *e == "open").count();
    assert_eq!(guarded_opens, 1, "{:?}", srv.log.events());
    srv.stop().await;
}

#[tokio::test]
async fn plain_http_get_is_400_with_a_clear_message() {
    let srv = start(app);
    let (status, text) = http_request(
        srv.addr,
        &format!("GET /probe/1 HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("This is a WebSocket endpoint"), "{text}");
    assert!(srv.log.events().is_empty());
    srv.stop().await;
}

#[tokio::test]
async fn path_param_that_does_not_parse_is_400_before_any_handler() {
    let srv = start(app);
    let (status, text) = http_request(srv.addr, &upgrade_request(srv.addr, "/probe/abc", "")).await;
    assert_eq!(status, 400);
    assert!(text.contains("invalid path parameter `id`"), "{text}");
    settle().await;
    assert!(srv.log.events().is_empty(), "{:?}", srv.log.events());
    srv.stop().await;
}

#[tokio::test]
async fn failing_extractor_refuses_the_upgrade_with_its_own_status() {
    let (server, log) = start_kit(app);
    let refused = server.client("/guarded").expect_refused(401).await;
    assert_eq!(refused.body, "missing or wrong x-api-key");
    let _client = server
        .client("/guarded")
        .header("x-api-key", "secret")
        .connect()
        .await;
    log.wait_for("open").await;
    settle().await;
    assert_eq!(log.events(), vec!["open".to_string()]);
}

#[tokio::test]
async fn session_is_usable_from_another_thread() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/probe/5")).await;
    srv.log.wait_for("open:").await;
    // The session lives on the server's worker thread; take it from the registry of open
    // sessions and use it from the test's runtime, on another thread.
    let session = loop {
        if let Some(s) = ws_endpoint::all_open_sessions()
            .into_iter()
            .find(|s| s.path() == "/probe/5")
        {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let handle = tokio::spawn(async move {
        session.text("from outside").await.unwrap();
        session
    });
    assert_eq!(recv_text(&mut ws).await, "from outside");
    let session = handle.await.unwrap();
    ws.close(None).await.unwrap();
    srv.log.wait_for("close:").await;
    assert!(!session.is_open());
    assert_eq!(session.text("x").await, Err(ws_endpoint::SendError::Closed));
    srv.stop().await;
}

#[tokio::test]
async fn a_reader_that_never_reads_is_dropped_after_the_send_timeout() {
    let srv = start(app);
    // Connect and never read: the server pushes 1 MiB messages as fast as the session takes them.
    let mut raw = Raw::connect(srv.addr, "/flood/true").await;
    let started = Instant::now();
    // Meanwhile another session of the same endpoint is served as usual.
    let mut bystander = connect(&srv.url("/flood/false")).await;
    for i in 0..20 {
        send_text(&mut bystander, &format!("m{i}")).await;
        assert_eq!(recv_text(&mut bystander).await, format!("m{i}"));
    }
    let close = srv.log.wait_for("close:").await;
    assert_eq!(close, "close:1006:peer stopped reading");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // What was accepted before the sender blocked is bounded by the outbound queue (32 frames,
    // plus the 32 the response body has taken from it and not yet written) and the socket
    // buffers (a few MiB on loopback), not by how long the peer stalls.
    let sent = ws_endpoint_sent(&srv).await;
    println!("stalled reader: {sent} messages of 1 MiB accepted before the sender blocked");
    assert!(
        sent <= 64 + 16,
        "{sent} MiB queued for a peer that reads nothing"
    );
    send_text(&mut bystander, "after").await;
    assert_eq!(recv_text(&mut bystander).await, "after");
    // The dead peer's TCP connection is shut down (not left to actix-http, which would keep
    // trying to write to it): the peer's next writes are refused.
    assert!(
        raw.writes_fail_within(Duration::from_secs(3)).await,
        "the server kept the dead peer's connection open"
    );
    srv.stop().await;
}

/// Messages of 1 MiB the flood endpoint got into its session (only the pushing flood test
/// connects to `/flood/true`).
async fn ws_endpoint_sent(_srv: &TestServer) -> usize {
    FLOOD_SENT.load(Ordering::SeqCst)
}

static FLOOD_SENT: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn a_client_that_writes_but_never_reads_is_dropped_too() {
    let srv = start(app);
    let mut raw = Raw::connect(srv.addr, "/flood/false").await;
    let frame = Raw::frame(0x81, &[b'x'; 60_000]);
    // Each message is echoed; nobody reads the echoes. Once the queue and the socket buffers
    // are full the handler's reply waits, then the session is dropped.
    let writer = async {
        loop {
            if tokio::time::timeout(Duration::from_secs(1), raw.send_raw_checked(&frame))
                .await
                .map_or(true, |ok| !ok)
            {
                break; // blocked (server stopped reading) or connection gone
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    assert_eq!(
        srv.log.wait_for("close:").await,
        "close:1006:peer stopped reading"
    );
    srv.stop().await;
}

#[tokio::test]
async fn close_with_a_code_forbidden_on_the_wire_is_refused() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/probe/1")).await;
    send_text(&mut ws, "close-1006").await;
    assert_eq!(recv_text(&mut ws).await, "Err(InvalidCloseCode(1006))");
    send_text(&mut ws, "still open").await;
    assert_eq!(recv_text(&mut ws).await, "still open");
    srv.stop().await;
}

#[tokio::test]
async fn attributes_are_overridable_at_runtime() {
    let srv = start(|cfg: &mut web::ServiceConfig| {
        cfg.service(
            Probe::endpoint()
                .path("/v2/probe/{id}")
                .max_message_size(8)
                .subprotocols(["other"])
                .idle_timeout(Duration::from_millis(300)),
        );
    });
    let mut req = srv.url("/v2/probe/9").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "chat.v1, other".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "other");
    send_text(&mut ws, "12345678").await;
    assert_eq!(recv_text(&mut ws).await, "12345678");
    send_text(&mut ws, "123456789").await;
    assert_eq!(expect_close(&mut ws).await.0, 1009);

    let mut idle = connect(&srv.url("/v2/probe/9")).await;
    assert_eq!(expect_close(&mut idle).await, (1001, "idle timeout".into()));
    srv.stop().await;
}

#[tokio::test]
async fn invalid_utf8_fails_before_the_rest_of_its_frame_arrives() {
    let srv = start(app);
    let mut raw = Raw::connect(srv.addr, "/probe/1").await;
    // One 100-byte text frame; only its first 10 bytes are sent, and they are not UTF-8.
    let mut payload = b"fine \xed\xa0\x80".to_vec(); // a UTF-16 surrogate: never valid
    payload.resize(100, b'x');
    let frame = Raw::frame(0x81, &payload);
    let header = frame.len() - payload.len();
    raw.send_raw(&frame[..header + 10]).await;
    assert_eq!(raw.expect_close().await.0, 1007);
    srv.stop().await;
}
