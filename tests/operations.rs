//! Admission control and limits, on the wire: `max_sessions` (503), `max_sessions_per_ip` with
//! trusted proxies (429), `max_message_rate` (1008), `max_lifetime` (1001). (The metrics are
//! scraped in `chat_example::metrics_are_served_in_the_prometheus_format_after_traffic`.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use ws_endpoint::prelude::*;

/// The trusted-proxy list is process-wide: the tests of this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Says who it thinks the client is.
#[derive(Default)]
struct Limited;

#[server_endpoint(
    "/limited",
    heartbeat = false,
    max_sessions = 2,
    max_sessions_per_ip = 1,
    max_message_rate = "5/s"
)]
impl Limited {
    #[on_open]
    async fn open(&mut self, session: &Session) {
        let peer = session
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let _ = session.text(format!("peer {peer}")).await;
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

#[derive(Default)]
struct Mortal;

#[server_endpoint("/mortal", heartbeat = false, max_lifetime = "300ms")]
impl Mortal {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

#[derive(Default)]
struct Counted;

#[server_endpoint("/counted", heartbeat = false, max_sessions = 2)]
impl Counted {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

/// A connection that claims, through the proxy headers, to come from `client`.
async fn connect_as(srv: &TestServer, path: &str, client: &str) -> Result<Ws, u16> {
    let mut req = srv.url(path).into_client_request().unwrap();
    req.headers_mut()
        .insert("x-forwarded-for", client.parse().unwrap());
    match tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("handshake timed out")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// Waits until the endpoint has at most `n` sessions (a closed one gives its place back when
/// its task ends).
async fn until_at_most(hub: Hub, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while hub.count() > n {
        assert!(Instant::now() < deadline, "still {} sessions", hub.count());
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix_web::test]
async fn max_sessions_refuses_with_503_and_retry_after_until_a_place_is_free() {
    let _serial = SERIAL.lock().await;
    let srv = start(|cfg| {
        cfg.service(Counted::endpoint());
    });
    let mut a = connect(&srv.url("/counted")).await;
    let _b = connect(&srv.url("/counted")).await;
    let (status, head) = http_request(srv.addr, &upgrade_request(srv.addr, "/counted", "")).await;
    assert_eq!(status, 503, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 5"),
        "{head}"
    );
    a.close(None).await.unwrap();
    expect_close(&mut a).await;
    until_at_most(Counted::hub(), 1).await;
    let _c = connect(&srv.url("/counted")).await;
    srv.stop().await;
}

#[actix_web::test]
async fn per_ip_limits_use_the_client_address_a_trusted_proxy_forwards() {
    let _serial = SERIAL.lock().await;
    let srv = start(|cfg| {
        cfg.service(Limited::endpoint());
    });
    // Untrusted peer: the header is ignored, the client is 127.0.0.1.
    let mut ws = connect_as(&srv, "/limited", "203.0.113.1").await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "peer 127.0.0.1");
    assert_eq!(
        connect_as(&srv, "/limited", "203.0.113.2").await.err(),
        Some(429)
    );
    ws.close(None).await.unwrap();
    expect_close(&mut ws).await;
    until_at_most(Limited::hub(), 0).await;

    // The test client's address is a trusted proxy: the forwarded address is the client.
    ws_endpoint::set_trusted_proxies(["127.0.0.1"]).unwrap();
    let mut one = connect_as(&srv, "/limited", "203.0.113.1").await.unwrap();
    assert_eq!(recv_text(&mut one).await, "peer 203.0.113.1");
    assert_eq!(
        connect_as(&srv, "/limited", "203.0.113.1").await.err(),
        Some(429)
    );
    let mut two = connect_as(&srv, "/limited", "203.0.113.2").await.unwrap();
    assert_eq!(recv_text(&mut two).await, "peer 203.0.113.2");
    // max_sessions = 2 applies over all addresses.
    assert_eq!(
        connect_as(&srv, "/limited", "203.0.113.3").await.err(),
        Some(503)
    );
    ws_endpoint::set_trusted_proxies(Vec::<String>::new()).unwrap();
    srv.stop().await;
}

#[actix_web::test]
async fn a_client_over_the_message_rate_is_closed_with_1008() {
    let _serial = SERIAL.lock().await;
    let srv = start(|cfg| {
        cfg.service(Limited::endpoint());
    });
    let mut ws = connect(&srv.url("/limited")).await;
    assert!(recv_text(&mut ws).await.starts_with("peer "));
    // 20 messages at once against 5 per second (bursts of 5): the first 5 are echoed, then 1008.
    for i in 0..20 {
        if ws.send(Message::text(format!("m{i}"))).await.is_err() {
            break;
        }
    }
    // (A slow machine may spread the 20 over more than 200 ms and earn a token more.)
    let mut echoed = 0;
    let close = loop {
        match recv(&mut ws).await {
            Message::Text(t) => {
                assert_eq!(t.as_str(), format!("m{echoed}"));
                echoed += 1;
            }
            Message::Close(Some(frame)) => break (u16::from(frame.code), frame.reason.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!((5..20).contains(&echoed), "{echoed} echoed");
    assert_eq!(close, (1008, "message rate over 5/s".to_owned()));
    srv.stop().await;
}

#[actix_web::test]
async fn a_session_is_closed_with_1001_at_the_end_of_its_lifetime() {
    let _serial = SERIAL.lock().await;
    let srv = start(|cfg| {
        cfg.service(Mortal::endpoint());
    });
    let mut ws = connect(&srv.url("/mortal")).await;
    assert_eq!(
        expect_close(&mut ws).await,
        (1001, "session lifetime reached".to_owned())
    );
    srv.stop().await;
}

#[derive(Default)]
struct Proxied;

#[server_endpoint("/proxied", heartbeat = false, allowed_hosts = ["app.example"])]
impl Proxied {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

/// Behind a trusted proxy the Host and Origin checks see the host the client asked the proxy
/// for (`X-Forwarded-Host`); from any other peer that header is ignored.
#[actix_web::test]
async fn host_and_origin_checks_use_the_forwarded_host_of_a_trusted_proxy() {
    let _serial = SERIAL.lock().await;
    let srv = start(|cfg| {
        cfg.service(Proxied::endpoint());
    });
    let forwarded = upgrade_request(
        srv.addr,
        "/proxied",
        "X-Forwarded-Host: app.example\r\nOrigin: https://app.example\r\n",
    );
    // Not trusted yet: Host is 127.0.0.1:port, not in allowed_hosts.
    let (status, head) = http_request(srv.addr, &forwarded).await;
    assert_eq!(status, 403, "{head}");
    ws_endpoint::set_trusted_proxies(["127.0.0.1"]).unwrap();
    let (status, head) = http_request(srv.addr, &forwarded).await;
    assert_eq!(status, 101, "{head}");
    // A forwarded host outside allowed_hosts is still refused.
    let evil = forwarded.replace(
        "X-Forwarded-Host: app.example",
        "X-Forwarded-Host: evil.example",
    );
    let (status, head) = http_request(srv.addr, &evil).await;
    assert_eq!(status, 403, "{head}");
    ws_endpoint::set_trusted_proxies(Vec::<String>::new()).unwrap();
    srv.stop().await;
}
