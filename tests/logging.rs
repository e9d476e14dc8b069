//! Without an #[on_error] handler, errors are logged through `tracing` (and the session stays
//! open), inside the session's `ws_session` span. In its own binary because it installs the global subscriber.

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use common::*;
use ws_endpoint::prelude::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused by the handler")
    }
}

impl std::error::Error for Refused {}

#[derive(Default)]
struct NoErrorHandler;

#[server_endpoint("/quiet", heartbeat = false)]
impl NoErrorHandler {
    #[on_message]
    fn text(&mut self, msg: String) -> Result<String, Refused> {
        if msg == "err" {
            Err(Refused)
        } else {
            Ok(msg)
        }
    }
}

#[tokio::test]
async fn errors_without_on_error_are_logged_and_the_session_stays_open() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let srv = start(|cfg: &mut web::ServiceConfig| {
        cfg.service(NoErrorHandler::endpoint());
    });
    let mut ws = connect(&srv.url("/quiet")).await;
    send_text(&mut ws, "err").await;
    send_text(&mut ws, "next").await;
    assert_eq!(recv_text(&mut ws).await, "next");
    let logged = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    assert!(
        logged.contains("WARN") && logged.contains("refused by the handler"),
        "log output: {logged}"
    );
    // Inside the session's span: the line names the endpoint, the session and the peer.
    let line = logged
        .lines()
        .find(|l| l.contains("refused by the handler"))
        .unwrap();
    assert!(
        line.contains("ws_session{endpoint=/quiet session=")
            && line.contains("peer=Some(127.0.0.1:"),
        "log line: {line}"
    );
    srv.stop().await;
}
