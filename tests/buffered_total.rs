//! The process-wide cap on queued outbound bytes (`set_max_buffered_total`), on the wire. Its own
//! test binary: the cap is global to the process.

mod common;

use common::*;
use ws_endpoint::prelude::*;

/// Broadcasts 1000-byte messages to itself until one is dropped, then logs the process total.
struct Filler {
    log: web::Data<Log>,
}

#[server_endpoint("/filler", max_buffered = "1MiB", heartbeat = false)]
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
        self.log.push(format!(
            "total:{}:{}",
            ws_endpoint::buffered_total(),
            session.buffered_amount()
        ));
    }
}

#[tokio::test]
async fn the_process_wide_cap_applies_before_the_session_budget() {
    ws_endpoint::set_max_buffered_total(16 * 1024);
    let srv = start(|cfg| {
        cfg.service(Filler::endpoint());
    });
    // a client that never reads: its session's 1 MiB budget is not reached, the 16 KiB cap is
    let mut raw = Raw::connect(srv.addr, "/filler").await;
    raw.send_frame(0x81, b"go").await;
    let line = srv.log.wait_for("total:").await;
    let fields: Vec<usize> = line
        .split(':')
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    let (total, session) = (fields[0], fields[1]);
    assert!(total <= 16 * 1024, "{line}");
    assert!(total > 16 * 1024 - 1004, "{line}");
    assert_eq!(session, total, "only this session queues anything: {line}");
    srv.stop().await;
}
