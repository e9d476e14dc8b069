//! The test kit `ws_endpoint::test` (feature `testing`), on small endpoints of its own: every
//! method of `TestServer`, `ClientBuilder` and `TestClient`, and the failure message of each
//! assertion when it does not hold.

use std::{panic::AssertUnwindSafe, time::Duration};

use actix_web::{dev::Payload, error::ErrorUnauthorized, FromRequest};
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use ws_endpoint::{
    prelude::*,
    test::{Received, TestServer, DEFAULT_TIMEOUT},
};

// ---------------------------------------------------------------- endpoints under test

/// Echoes text and binary; `"bye"` closes with 4000, `"policy"` with 1008 after a last text.
#[derive(Default)]
struct Echo;

#[server_endpoint("/echo", max_message_size = "1MiB", heartbeat = false)]
impl Echo {
    #[on_message]
    async fn text(&mut self, session: &Session, msg: String) -> Option<String> {
        match msg.as_str() {
            "bye" => {
                let _ = session.close(CloseReason::new(4000, "bye")).await;
                None
            }
            "policy" => {
                let _ = session.text("one last thing").await;
                let _ = session.binary(Bytes::from_static(b"\x00")).await;
                let _ = session
                    .close(CloseReason::new(CloseCode::Policy, "not allowed"))
                    .await;
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

#[derive(Deserialize, Serialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Sum {
    sum: i64,
}

#[derive(Default)]
struct Calc;

#[server_endpoint("/calc", heartbeat = false)]
impl Calc {
    #[on_message]
    fn add(&mut self, Json(req): Json<Add>) -> Json<Sum> {
        Json(Sum { sum: req.a + req.b })
    }
}

/// Refuses the handshake with 401 unless `Authorization: Bearer <name>` is sent.
struct User(String);

impl FromRequest for User {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let name = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        std::future::ready(match name {
            Some(name) => Ok(User(name.to_owned())),
            None => Err(ErrorUnauthorized("missing bearer token")),
        })
    }
}

/// What the endpoints tell the test, in order.
#[derive(Clone)]
struct Events(mpsc::UnboundedSender<String>);

#[derive(Default)]
struct Private {
    name: String,
    events: Option<web::Data<Events>>,
}

#[server_endpoint("/private", subprotocols = ["chat.v2", "chat.v1"], heartbeat = false)]
impl Private {
    #[on_open]
    async fn open(&mut self, session: &Session, user: User, events: web::Data<Events>) {
        self.name = user.0;
        self.events = Some(events);
        let _ = session.text(format!("hello {}", self.name)).await;
    }

    #[on_message]
    fn text(&mut self, session: &Session, msg: String) -> String {
        format!(
            "{}: {msg} ({})",
            self.name,
            session.subprotocol().unwrap_or("no subprotocol")
        )
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        if let Some(events) = &self.events {
            let _ = events.0.send(format!("close:{reason}"));
        }
    }
}

/// A heartbeat every 50 ms; after three pongs, says so. The client has to answer the pings
/// while it waits for that text.
#[derive(Default)]
struct Beat {
    pongs: usize,
}

#[server_endpoint("/beat", ping_interval = "50ms", pong_timeout = "2s")]
impl Beat {
    #[on_message]
    async fn pong(&mut self, session: &Session, _pong: Pong) {
        self.pongs += 1;
        if self.pongs == 3 {
            let _ = session.text("3 pongs").await;
        }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

/// A server with every endpoint above; the `on_close` events of `/private` go to the receiver.
fn start() -> (TestServer, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let events = web::Data::new(Events(tx));
    let server = TestServer::start(move || {
        App::new()
            .app_data(events.clone())
            .service(Echo::endpoint())
            .service(Calc::endpoint())
            .service(Private::endpoint())
            .service(Beat::endpoint())
    });
    (server, rx)
}

/// The next event an endpoint reported (within 5 s).
async fn next_event(events: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("no event within 5 s")
        .expect("the server is gone")
}

/// Runs `f`, which must panic; returns its panic message.
async fn panic_message(f: impl std::future::Future<Output = ()>) -> String {
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(()) => panic!("expected a panic"),
        Err(panic) => match panic.downcast::<String>() {
            Ok(message) => *message,
            Err(panic) => panic
                .downcast::<&str>()
                .map_or_else(|_| "<not a string>".to_owned(), |m| (*m).to_owned()),
        },
    }
}

// ---------------------------------------------------------------- what works

#[actix_web::test]
async fn server_addr_url_and_connect() {
    let (server, _events) = start();
    assert!(server.addr().ip().is_loopback());
    assert_eq!(
        server.url("/echo"),
        format!("ws://127.0.0.1:{}/echo", server.addr().port())
    );
    let mut client = server.connect("/echo").await;
    assert_eq!(client.path(), "/echo");
    assert_eq!(client.protocol(), None);
    assert_eq!(client.response_header("upgrade"), Some("websocket"));
    client.send_text("hello ✓").await;
    assert_eq!(client.recv_text().await, "hello ✓");
    client.send_text(String::from("owned")).await;
    assert_eq!(client.recv().await, Received::Text("owned".into()));
    server.stop().await;
}

#[tokio::test]
async fn works_under_tokio_test_too() {
    let (server, _events) = start();
    let mut client = server.connect("/echo").await;
    client.send_binary(vec![1u8, 2, 3]).await;
    assert_eq!(client.recv_binary().await, Bytes::from_static(&[1, 2, 3]));
    let big = Bytes::from(vec![7u8; 200_000]);
    client.send_binary(big.clone()).await;
    assert!(
        client.recv().await == Received::Binary(big),
        "the 200 kB echo differs"
    );
    // The futures are Send: a client can be driven from a spawned task.
    let echoed = tokio::spawn(async move {
        client.send_text("from a task").await;
        client.recv_text().await
    });
    assert_eq!(echoed.await.unwrap(), "from a task");
}

#[actix_web::test]
async fn json_both_ways() {
    let (server, _events) = start();
    let mut client = server.connect("/calc").await;
    client.send_json(&Add { a: 2, b: 40 }).await;
    assert_eq!(client.recv_json::<Sum>().await, Sum { sum: 42 });
    client
        .send_json(&serde_json::json!({ "a": 1, "b": 1 }))
        .await;
    let raw: serde_json::Value = client.recv_json().await;
    assert_eq!(raw, serde_json::json!({ "sum": 2 }));
}

#[actix_web::test]
async fn headers_subprotocols_and_refusals() {
    let (server, _events) = start();

    let refused = server.client("/private").expect_refused(401).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.reason, "Unauthorized");
    assert_eq!(refused.body, "missing bearer token");
    assert!(refused
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/plain")));
    assert_eq!(
        refused.to_string(),
        r#"401 Unauthorized, body: "missing bearer token""#
    );

    let mut ada = server
        .client("/private")
        .header("Authorization", "Bearer ada")
        .protocol("chat.v3")
        .protocol("chat.v1")
        .timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert_eq!(ada.protocol(), Some("chat.v1"));
    assert_eq!(
        ada.response_header("Sec-WebSocket-Protocol"),
        Some("chat.v1")
    );
    assert_eq!(ada.recv_text().await, "hello ada");
    ada.send_text("hi").await;
    assert_eq!(ada.recv_text().await, "ada: hi (chat.v1)");

    // No offer the endpoint lists: accepted without a subprotocol.
    let mut bob = server
        .client("/private")
        .header("authorization", "Bearer bob")
        .protocol("graphql-ws")
        .connect()
        .await;
    assert_eq!(bob.protocol(), None);
    assert_eq!(bob.recv_text().await, "hello bob");

    // try_connect: the refusal as a value, or the client.
    let refused = server.client("/private").try_connect().await.unwrap_err();
    assert_eq!(refused.status, 401);
    let carol = server
        .client("/private")
        .header("Authorization", "Bearer carol")
        .try_connect()
        .await;
    assert!(carol.is_ok());

    // A path that is no endpoint: actix-web's 404.
    assert_eq!(server.client("/nowhere").expect_refused(404).await.body, "");
}

#[actix_web::test]
async fn close_waits_for_the_echo_and_on_close_sees_the_code() {
    let (server, mut events) = start();
    let client = server
        .client("/private")
        .header("Authorization", "Bearer ada")
        .connect()
        .await;
    // The greeting is still unread: close skips it.
    let echo = client.close(4001, "done").await;
    assert_eq!(echo.code_u16(), 4001);
    assert_eq!(next_event(&mut events).await, "close:4001 (done)");

    // A client dropped without a close is a peer that vanished.
    let client = server
        .client("/private")
        .header("Authorization", "Bearer bob")
        .connect()
        .await;
    drop(client);
    assert_eq!(
        next_event(&mut events).await,
        "close:1006 (connection lost)"
    );
}

#[actix_web::test]
async fn expect_close_returns_the_reason_and_skips_messages_before_it() {
    let (server, _events) = start();
    let mut client = server.connect("/echo").await;
    client.send_text("bye").await;
    assert_eq!(client.expect_close(4000).await, "bye");

    let mut client = server.connect("/echo").await;
    client.send_text("policy").await; // a text and a binary message, then 1008
    assert_eq!(client.expect_close(CloseCode::Policy).await, "not allowed");

    // recv() returns the close frame like any message; close() then returns it too.
    let mut client = server.connect("/echo").await;
    client.send_text("bye").await;
    let close = Received::Close(CloseReason::new(4000, "bye"));
    assert_eq!(client.recv().await, close);
    assert_eq!(client.close(1000, "").await, CloseReason::new(4000, "bye"));
}

#[actix_web::test]
async fn pings_are_answered_while_waiting() {
    let (server, _events) = start();
    let mut client = server.connect("/beat").await;
    assert_eq!(client.recv_text().await, "3 pongs");
    client.send_text("still open").await;
    assert_eq!(client.recv_text().await, "still open");
}

// ---------------------------------------------------------------- what fails, and how

#[actix_web::test]
async fn failures_name_the_call_the_path_and_the_callers_line() {
    let (server, _events) = start();
    let mut client = server.connect("/echo").await;
    client.send_binary(vec![1u8, 2, 3]).await;
    let line = line!() + 2;
    let message = panic_message(async {
        client.recv_text().await;
    })
    .await;
    assert_eq!(
        message,
        format!(
            "recv_text() on /echo (at {}:{line}:16): expected a text message, \
             got a binary message of 3 bytes [01 02 03]",
            file!()
        )
    );
}

#[actix_web::test]
#[should_panic(expected = "recv_text() on /echo (at tests/test_kit.rs:")]
async fn recv_text_fails_on_a_close_frame_with_its_code_and_reason() {
    let (server, _events) = start();
    let mut client = server.connect("/echo").await;
    client.send_text("bye").await;
    client.recv_text().await;
}

#[actix_web::test]
async fn recv_text_reports_the_close_code_and_reason() {
    let (server, _events) = start();
    let mut client = server.connect("/echo").await;
    client.send_text("bye").await;
    let message = panic_message(async {
        client.recv_text().await;
    })
    .await;
    assert!(
        message.ends_with(
            r#"expected a text message, but the server closed the connection: 4000 "bye""#
        ),
        "{message}"
    );
    // Once closed, every later call says so.
    let message = panic_message(async {
        client.recv().await;
    })
    .await;
    assert!(
        message.ends_with(
            r#"expected a message, but the server had already closed the connection: 4000 "bye""#
        ),
        "{message}"
    );
}

#[actix_web::test]
#[should_panic(expected = r#"expected a binary message, got a text message "hi""#)]
async fn recv_binary_fails_on_text() {
    let (server, _events) = start();
    let mut client = server.connect("/echo").await;
    client.send_text("hi").await;
    client.recv_binary().await;
}

#[actix_web::test]
#[should_panic(
    expected = "the text message \"{\\\"a\\\":1,\\\"b\\\":2}\" is not a valid \
                           test_kit::Sum: missing field `sum`"
)]
async fn recv_json_fails_on_json_of_another_shape() {
    let (server, _events) = start();
    let mut client = server.connect("/echo").await;
    client.send_json(&Add { a: 1, b: 2 }).await;
    client.recv_json::<Sum>().await;
}

#[actix_web::test]
#[should_panic(expected = "expected a text message, but nothing arrived within 200ms")]
async fn recv_fails_after_the_timeout() {
    let (server, _events) = start();
    let mut client = server
        .connect("/echo")
        .await
        .with_timeout(Duration::from_millis(200));
    client.recv_text().await;
}

#[actix_web::test]
async fn expect_close_fails_on_another_code_listing_what_it_skipped() {
    let (server, _events) = start();
    let mut client = server.connect("/echo").await;
    client.send_text("policy").await;
    let message = panic_message(async {
        client.expect_close(4000).await;
    })
    .await;
    assert!(
        message.ends_with(
            "expected the server to close with 4000, but it closed with 1008 (policy violation) \
             \"not allowed\" (skipped before it: a text message \"one last thing\", \
             a binary message of 1 byte [00])"
        ),
        "{message}"
    );
}

#[actix_web::test]
#[should_panic(expected = "expected the server to close with 1000 (normal closure), \
                           but no close frame arrived within 300ms \
                           (skipped before it: a text message \"still here\")")]
async fn expect_close_fails_when_no_close_comes() {
    let (server, _events) = start();
    let mut client = server
        .connect("/echo")
        .await
        .with_timeout(Duration::from_millis(300));
    client.send_text("still here").await;
    client.expect_close(1000).await;
}

#[actix_web::test]
#[should_panic(expected = "expect_refused() on /echo (at tests/test_kit.rs:")]
async fn expect_refused_fails_when_the_upgrade_succeeds() {
    let (server, _events) = start();
    server.client("/echo").expect_refused(401).await;
}

#[actix_web::test]
async fn expect_refused_says_what_happened_instead() {
    let (server, _events) = start();
    let accepted = panic_message(async {
        server.client("/echo").expect_refused(401).await;
    })
    .await;
    assert!(
        accepted.ends_with(
            "expected the upgrade to be refused with 401, \
             but the server accepted it (101 Switching Protocols)"
        ),
        "{accepted}"
    );
    let other = panic_message(async {
        server.client("/private").expect_refused(403).await;
    })
    .await;
    assert!(
        other.ends_with(
            "expected the upgrade to be refused with 403, \
             but it was refused with 401 Unauthorized, body: \"missing bearer token\""
        ),
        "{other}"
    );
}

#[actix_web::test]
#[should_panic(expected = "connect() on /private (at tests/test_kit.rs:")]
async fn connect_fails_on_a_refusal_with_its_status_and_body() {
    let (server, _events) = start();
    server.connect("/private").await;
}

#[actix_web::test]
async fn connect_reports_the_refusal() {
    let (server, _events) = start();
    let message = panic_message(async {
        server.connect("/private").await;
    })
    .await;
    assert!(
        message.ends_with(
            "the server refused the upgrade: 401 Unauthorized, body: \"missing bearer token\""
        ),
        "{message}"
    );
}

#[actix_web::test]
async fn a_stopped_server_refuses_connections_and_drops_the_open_ones() {
    let (server, _events) = start();
    let mut client = server.connect("/echo").await.with_timeout(DEFAULT_TIMEOUT);
    let builder = server.client("/echo");
    server.stop().await;
    let message = panic_message(async {
        builder.connect().await;
    })
    .await;
    assert!(
        message.contains("could not connect to 127.0.0.1:"),
        "{message}"
    );
    let message = panic_message(async {
        client.recv().await;
    })
    .await;
    assert!(
        message.ends_with("expected a message, but the connection ended without a close frame")
            || message.ends_with("the server dropped the connection without a close frame"),
        "{message}"
    );
}

#[test]
#[should_panic(expected = "TestServer::client: the path must start with `/`, got \"echo\"")]
fn a_path_without_a_slash_is_refused_at_once() {
    let _ = TestServer::start(|| App::new().service(Echo::endpoint())).client("echo");
}

#[test]
#[should_panic(expected = "ClientBuilder::header: \"bad name\" is not a valid header name")]
fn a_bad_header_name_is_refused_at_once() {
    let server = TestServer::start(|| App::new().service(Echo::endpoint()));
    let _ = server.client("/echo").header("bad name", "x");
}
