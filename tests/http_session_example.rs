//! examples/http_session.rs: the actix-session cookie reaches the WebSocket endpoint, and an
//! anonymous upgrade is refused with 401 before the 101.

#[path = "../examples/http_session.rs"]
#[allow(dead_code)]
mod example;

use std::time::Duration;

use actix_web::{cookie::Key, HttpServer};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// Sends one raw HTTP request, returns the whole response head.
async fn http(addr: std::net::SocketAddr, request: String) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("no response within 5 s")
            .unwrap();
        out.extend_from_slice(&chunk[..n]);
        if n == 0 || String::from_utf8_lossy(&out).contains("\r\n\r\n") {
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
}

#[actix_web::test]
async fn the_http_session_names_the_websocket_user_and_anonymous_upgrades_get_401() {
    let key = Key::generate();
    let server = HttpServer::new(move || example::app(key.clone()))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    // Anonymous: refused before the upgrade.
    let head = http(
        addr,
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    // Log in: the response sets the session cookie.
    let body = "name=ada";
    let head = http(
        addr,
        format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();

    // With the cookie, the WebSocket session knows the user.
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .unwrap()
    .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert_eq!(first.unwrap().unwrap().unwrap(), Message::text("hello ada"));
    ws.send(Message::text("hi")).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert_eq!(reply.unwrap().unwrap().unwrap(), Message::text("ada: hi"));
    handle.stop(false).await;
}
