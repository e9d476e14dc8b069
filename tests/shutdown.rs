//! Server shutdown: every session gets 1001 and its on_close runs. In its own test binary
//! because it signals the process and closes every session in it.

mod common;

use std::time::Duration;

use common::*;
use ws_endpoint::prelude::*;

struct Room {
    log: web::Data<Log>,
}

#[server_endpoint("/room", heartbeat = false)]
impl Room {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        log.push("open");
        Room { log }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_close]
    async fn close(&mut self, reason: CloseReason) {
        // an async on_close that takes a moment still completes before the server stops
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        self.log.closed(&reason);
    }
}

#[tokio::test]
async fn sigterm_closes_every_session_with_1001_and_runs_on_close() {
    let srv = start_with(
        |cfg: &mut web::ServiceConfig| {
            cfg.service(Room::endpoint());
        },
        Some(Duration::from_secs(5)),
    );
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut ws = connect(&srv.url("/room")).await;
        send_text(&mut ws, "hi").await;
        assert_eq!(recv_text(&mut ws).await, "hi");
        clients.push(ws);
    }
    assert_eq!(ws_endpoint::open_session_count(), 3);

    // What an orchestrator does to stop the process.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());

    for ws in &mut clients {
        assert_eq!(
            expect_close(ws).await,
            (1001, "server shutting down".to_string())
        );
    }
    // A client reconnecting at once is not let in (503 while the server drains, or refused
    // once it has stopped).
    let (status, _) = http_request(srv.addr, &upgrade_request(srv.addr, "/room", "")).await;
    assert_ne!(status, 101, "a handshake was accepted during shutdown");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while srv.log.count("close:") < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            srv.log.events()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = srv.log.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "close:1001:server shutting down")
            .count(),
        3,
        "{events:?}"
    );
    assert_eq!(ws_endpoint::open_session_count(), 0);
    srv.stop().await;
}
