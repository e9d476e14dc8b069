//! Hostile and sloppy clients, on the wire: handshakes actix-http would not upgrade, several
//! Origin headers, a DNS-rebinding Host, and the close handshake as browsers and Tomcat expect it.

mod common;

use common::*;
use ws_endpoint::prelude::*;

#[derive(Default)]
struct Probe;

#[server_endpoint("/probe", heartbeat = false)]
impl Probe {
    #[on_open]
    fn open(&mut self, log: web::Data<Log>) {
        log.push("open");
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

/// Logs each `on_close`, to check the code the handler sees.
struct Closer {
    log: web::Data<Log>,
}

#[server_endpoint("/closer", heartbeat = false)]
impl Closer {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        Closer { log }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        self.log.closed(&reason);
    }
}

#[server_endpoint("/proxied", heartbeat = false, allowed_hosts = ["app.example"])]
impl Closer2 {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

#[derive(Default)]
struct Closer2;

fn server() -> TestServer {
    start(|cfg| {
        cfg.service(Probe::endpoint())
            .service(Closer::endpoint())
            .service(Closer2::endpoint());
    })
}

/// A change to the standard handshake request.
type Edit = Box<dyn Fn(String) -> String>;

/// The standard handshake with `edit` applied.
fn request(server: &TestServer, path: &str, edit: impl Fn(String) -> String) -> String {
    edit(upgrade_request(server.addr, path, ""))
}

#[actix_web::test]
async fn handshakes_actix_would_not_upgrade_are_refused_with_400_before_any_handler() {
    let server = server();
    let cases: [(&str, Edit); 7] = [
        (
            "Upgrade: websocket, h2c",
            Box::new(|r| r.replace("Upgrade: websocket", "Upgrade: websocket, h2c")),
        ),
        (
            "Upgrade: notwebsocket",
            Box::new(|r| r.replace("Upgrade: websocket", "Upgrade: notwebsocket")),
        ),
        (
            "Transfer-Encoding: chunked",
            Box::new(|r| {
                r.replace(
                    "\r\n\r\n",
                    "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                )
            }),
        ),
        ("HTTP/1.0", Box::new(|r| r.replace("HTTP/1.1", "HTTP/1.0"))),
        (
            "a second Sec-WebSocket-Key",
            Box::new(|r| {
                r.replace(
                    "\r\n\r\n",
                    "\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\r\n",
                )
            }),
        ),
        (
            "two Upgrade headers",
            Box::new(|r| r.replace("\r\n\r\n", "\r\nUpgrade: h2c\r\n\r\n")),
        ),
        (
            "Connection: keep-alive only",
            Box::new(|r| r.replace("Connection: Upgrade", "Connection: keep-alive")),
        ),
    ];
    for (what, edit) in cases {
        let (status, head) = http_request(server.addr, &request(&server, "/probe", edit)).await;
        assert_eq!(status, 400, "{what}: {head}");
        assert!(!head.contains(" 101 "), "{what}: {head}");
    }
    // The standard request still works, and only it ran on_open.
    let mut ws = Raw::connect(server.addr, "/probe").await;
    ws.send_frame(0x81, b"hi").await;
    assert_eq!(
        ws.read_frame().await,
        RawFrame::Frame {
            opcode: 1,
            fin: true,
            payload: b"hi".to_vec()
        }
    );
    assert_eq!(server.log.count("open"), 1);
    server.stop().await;
}

#[actix_web::test]
async fn every_origin_header_counts() {
    let server = server();
    let same = format!("http://{}", server.addr);
    for origins in [
        vec![same.as_str(), "http://evil.example"],
        vec!["http://evil.example", same.as_str()],
        vec![same.as_str(), same.as_str()],
    ] {
        let extra: String = origins.iter().map(|o| format!("Origin: {o}\r\n")).collect();
        let (status, head) =
            http_request(server.addr, &upgrade_request(server.addr, "/probe", &extra)).await;
        assert_eq!(status, 403, "{origins:?}: {head}");
        assert!(head.contains("more than one Origin header"), "{head}");
    }
    let extra = format!("Origin: {same}\r\n");
    let (status, head) =
        http_request(server.addr, &upgrade_request(server.addr, "/probe", &extra)).await;
    assert_eq!(status, 101, "{head}");
    server.stop().await;
}

#[actix_web::test]
async fn a_dns_rebinding_host_is_refused_on_a_loopback_server() {
    let server = server();
    let port = server.addr.port();
    // A page at evil.example whose name now resolves to 127.0.0.1: same-origin by its own Host.
    let rebinding = |path: &str| {
        upgrade_request(
            server.addr,
            path,
            &format!("Origin: http://evil.example:{port}\r\n"),
        )
        .replace(
            &format!("Host: {}", server.addr),
            &format!("Host: evil.example:{port}"),
        )
    };
    let (status, head) = http_request(server.addr, &rebinding("/probe")).await;
    assert_eq!(status, 403, "{head}");
    assert!(head.contains("Host `evil.example"), "{head}");
    // Loopback names are accepted.
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let req = upgrade_request(server.addr, "/probe", "")
            .replace(&format!("Host: {}", server.addr), &format!("Host: {host}"));
        let (status, head) = http_request(server.addr, &req).await;
        assert_eq!(status, 101, "{host}: {head}");
    }
    // `allowed_hosts` replaces the loopback rule: a proxy on this machine forwarding its Host.
    let proxied = upgrade_request(server.addr, "/proxied", "")
        .replace(&format!("Host: {}", server.addr), "Host: app.example");
    let (status, head) = http_request(server.addr, &proxied).await;
    assert_eq!(status, 101, "{head}");
    let (status, _) = http_request(server.addr, &rebinding("/proxied")).await;
    assert_eq!(status, 403);
    assert_eq!(server.log.count("open"), 2);
    server.stop().await;
}

#[actix_web::test]
async fn an_empty_close_is_answered_with_1000_and_a_reason_is_echoed() {
    let server = server();
    // Empty close: the answer carries 1000 (a browser then reports 1000, as against Tomcat);
    // on_close hears what the peer sent: no status (1005).
    let mut ws = Raw::connect(server.addr, "/closer").await;
    ws.send_frame(0x88, b"").await;
    assert_eq!(ws.expect_close().await, (1000, String::new()));
    server.log.wait_for("close:1005").await;

    // Code and reason are echoed.
    let mut ws = Raw::connect(server.addr, "/closer").await;
    let mut payload = 4001u16.to_be_bytes().to_vec();
    payload.extend_from_slice("bye for now ✓".as_bytes());
    ws.send_frame(0x88, &payload).await;
    assert_eq!(ws.expect_close().await, (4001, "bye for now ✓".to_owned()));
    server.log.wait_for("close:4001:bye for now ✓").await;

    // A reason that is not UTF-8: 1007, and the reason says what was wrong.
    let mut ws = Raw::connect(server.addr, "/closer").await;
    ws.send_frame(0x88, &[0x03, 0xe8, 0xff, 0xfe]).await;
    assert_eq!(
        ws.expect_close().await,
        (1007, "close reason is not valid UTF-8".to_owned())
    );
    server.stop().await;
}

/// The test kit can name the Host (for `allowed_hosts` tests of your own).
#[actix_web::test]
async fn the_test_kit_can_send_another_host() {
    let (kit, _log) = start_kit(|cfg| {
        cfg.service(Probe::endpoint()).service(Closer2::endpoint());
    });
    let mut ws = kit
        .client("/proxied")
        .header("Host", "app.example")
        .connect()
        .await;
    ws.send_text("hi").await;
    assert_eq!(ws.recv_text().await, "hi");
    let refused = kit
        .client("/probe")
        .header("Host", "evil.example:80")
        .expect_refused(403)
        .await;
    assert!(refused.body.contains("evil.example"), "{refused}");
}
