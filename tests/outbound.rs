//! The outbound side on the wire: the queue bounded in bytes, messages larger than the budget,
//! and a peer that half-closes its connection.

mod common;

use common::*;
use tokio::io::AsyncWriteExt;
use ws_endpoint::prelude::*;

/// An echo with a small outbound budget.
struct Echo {
    log: web::Data<Log>,
}

#[server_endpoint(
    "/echo",
    max_message_size = "1MiB",
    max_buffered = 4096,
    heartbeat = false
)]
impl Echo {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        Echo { log }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_message]
    fn binary(&mut self, data: Bytes) -> Bytes {
        data
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        self.log.closed(&reason);
    }
}

fn app(cfg: &mut web::ServiceConfig) {
    cfg.service(Echo::endpoint()).service(Filler::endpoint());
}

/// Fills its own queue with broadcasts until one is dropped, and logs the queue's size.
struct Filler {
    log: web::Data<Log>,
}

#[server_endpoint("/filler", max_buffered = 8192, heartbeat = false)]
impl Filler {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        Filler { log }
    }

    #[on_message]
    fn text(&mut self, session: &Session, _msg: String) {
        let id = session.id();
        let chunk = "x".repeat(1000);
        let mut sent = 0;
        loop {
            let d = Filler::hub()
                .broadcast_filter(|s| s.id() == id, chunk.clone())
                .unwrap();
            if d.dropped > 0 {
                break;
            }
            sent += d.sent;
            assert!(sent < 1_000_000, "the queue never filled");
        }
        self.log
            .push(format!("buffered:{}", session.buffered_amount()));
    }
}

#[tokio::test]
async fn the_outbound_queue_is_bounded_in_bytes() {
    let srv = start(app);
    // a client that never reads: kernel buffers fill, then the session's 8 KiB budget
    let mut raw = Raw::connect(srv.addr, "/filler").await;
    raw.send_frame(0x81, b"go").await;
    let line = srv.log.wait_for("buffered:").await;
    let buffered: usize = line["buffered:".len()..].parse().unwrap();
    // 1000-byte messages (1004 with the header): the queue holds at most 8192 bytes, and a
    // message that did not fit was refused, so it is more than 8192 - 1004
    assert!(buffered <= 8192, "{buffered}");
    assert!(buffered > 8192 - 1004, "{buffered}");
    srv.stop().await;
}

#[tokio::test]
async fn a_message_larger_than_the_budget_is_sent_when_the_queue_is_empty() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/echo")).await;
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        big.clone().into(),
    ))
    .await
    .unwrap();
    match recv(&mut ws).await {
        tokio_tungstenite::tungstenite::Message::Binary(got) => assert!(got[..] == big[..]),
        other => panic!("expected the binary echo, got {other:?}"),
    }
    srv.stop().await;
}

/// The peer writes 120 messages and half-closes (`shutdown(SHUT_WR)`) without a close frame:
/// all 120 echoes still arrive, then the server closes the connection (no close frame is owed:
/// the peer sent none), and `on_close` reports 1006 once.
#[tokio::test]
async fn after_a_half_close_every_queued_echo_is_still_written() {
    let srv = start(app);
    let mut raw = Raw::connect(srv.addr, "/echo").await;
    let burst: Vec<u8> = (0..120)
        .flat_map(|i| Raw::frame(0x81, format!("message {i}").as_bytes()))
        .collect();
    raw.send_raw(&burst).await;
    raw.stream.shutdown().await.unwrap();
    for i in 0..120 {
        match raw.read_frame().await {
            RawFrame::Frame {
                opcode: 1, payload, ..
            } => assert_eq!(payload, format!("message {i}").as_bytes()),
            RawFrame::Frame { opcode, .. } => panic!("frame {opcode} instead of echo {i}"),
            RawFrame::Eof => panic!("connection ended after {i} of 120 echoes"),
        }
    }
    raw.expect_eof().await;
    srv.log.wait_for("close:1006").await;
    assert_eq!(srv.log.count("close:"), 1, "{:?}", srv.log.events());
    srv.stop().await;
}
