//! Messages sent in parts, on the wire: a writer's frames are never interleaved with another
//! data message (those queue behind it and follow in order), control frames are not held back,
//! a writer dropped unfinished closes the session with 1011, a send waiting behind an open
//! writer is not timed out by `send_timeout`, and parts are compressed as they go.

mod common;

use common::*;
use ws_endpoint::{prelude::*, wire::deflate::inflate_shared, BinaryWriter, SendError};

struct Relay {
    log: web::Data<Log>,
    writer: Option<BinaryWriter>,
}

#[server_endpoint(
    "/relay",
    heartbeat = false,
    max_buffered = 1024,
    send_timeout = "100ms"
)]
impl Relay {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        Relay { log, writer: None }
    }

    #[on_message]
    async fn text(&mut self, session: &Session, cmd: String) -> Result<(), SendError> {
        match cmd.as_str() {
            "begin" => {
                let mut w = session.binary_writer().await?;
                w.send(&b"a"[..]).await?;
                self.writer = Some(w);
            }
            "other" => session.text("other").await?,
            "broadcast" => {
                session.hub().broadcast("all")?;
            }
            // Sends larger than the whole budget, from another task: they wait behind the
            // open writer (longer than send_timeout) and go out once it ends.
            "big" => {
                let s = session.clone();
                let log = self.log.clone();
                actix_web::rt::spawn(async move {
                    // The first is taken into the queue (it was empty), behind the writer;
                    // the second finds the budget used up and waits.
                    let result = s.text("x".repeat(3000)).await;
                    log.push(format!("big 1 sent {result:?}"));
                    let result = s.text("z".repeat(3000)).await;
                    log.push(format!("big 2 sent {result:?}"));
                });
            }
            "end" => {
                let mut w = self.writer.take().expect("begun");
                w.send(&b"b"[..]).await?;
                w.finish().await?;
            }
            "drop" => self.writer = None,
            // A binary part in an open text message is refused; the text goes on.
            "mixed" => {
                session.send_partial("text part", false).await?;
                let refused = session
                    .send_partial(Bytes::from_static(b"binary"), false)
                    .await;
                self.log.push(format!("mixed {refused:?}"));
                session.send_partial(" and its end", true).await?;
            }
            // The writer as a futures Sink of Strings, closed at the end.
            "sink" => {
                use futures_util::SinkExt;
                let mut w = session.text_writer().await?;
                w.send("one, ".to_owned()).await?;
                w.send("two".to_owned()).await?;
                w.close().await?;
            }
            // Parts larger than the 1 KiB budget: the second waits for room, and gets it.
            "bigparts" => {
                session.send_partial("p".repeat(3000), false).await?;
                session.send_partial("q".repeat(3000), true).await?;
                self.log.push("bigparts sent");
            }
            "partial" => {
                session.send_partial("x".repeat(500), false).await?;
                session.send_partial("y".repeat(500), true).await?;
            }
            _ => {}
        }
        Ok(())
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        self.log.closed(&reason);
    }
}

fn server() -> TestServer {
    start(|cfg| {
        cfg.service(Relay::endpoint());
    })
}

fn frame(opcode: u8, fin: bool, payload: &[u8]) -> RawFrame {
    RawFrame::Frame {
        opcode,
        fin,
        payload: payload.to_vec(),
    }
}

#[actix_web::test]
async fn a_writer_s_frames_are_never_interleaved_and_control_frames_are_not_held() {
    let s = server();
    let mut raw = Raw::connect(s.addr, "/relay").await;
    raw.send_frame(0x81, b"begin").await;
    assert_eq!(raw.read_frame().await, frame(2, false, b"a"));
    // While the message is open: a ping is answered at once...
    raw.send_frame(0x89, b"p").await;
    assert_eq!(raw.read_frame().await, frame(0xA, true, b"p"));
    // ... another send and a broadcast wait behind it ...
    raw.send_frame(0x81, b"other").await;
    raw.send_frame(0x81, b"broadcast").await;
    // ... and follow it, in order, once it ends.
    raw.send_frame(0x81, b"end").await;
    assert_eq!(raw.read_frame().await, frame(0, false, b"b"));
    assert_eq!(raw.read_frame().await, frame(0, true, b""));
    assert_eq!(raw.read_frame().await, frame(1, true, b"other"));
    assert_eq!(raw.read_frame().await, frame(1, true, b"all"));
    s.stop().await;
}

#[actix_web::test]
async fn a_text_writer_is_a_sink_and_send_partial_refuses_a_part_of_the_other_kind() {
    let s = server();
    let mut raw = Raw::connect(s.addr, "/relay").await;
    raw.send_frame(0x81, b"sink").await;
    assert_eq!(raw.read_frame().await, frame(1, false, b"one, "));
    assert_eq!(raw.read_frame().await, frame(0, false, b"two"));
    assert_eq!(raw.read_frame().await, frame(0, true, b""));
    raw.send_frame(0x81, b"mixed").await;
    s.log.wait_for("mixed Err(MessageInProgress)").await;
    assert_eq!(raw.read_frame().await, frame(1, false, b"text part"));
    assert_eq!(raw.read_frame().await, frame(0, true, b" and its end"));
    s.stop().await;
}

#[actix_web::test]
async fn a_writer_dropped_unfinished_closes_the_session_with_1011() {
    let s = server();
    let mut raw = Raw::connect(s.addr, "/relay").await;
    raw.send_frame(0x81, b"begin").await;
    assert_eq!(raw.read_frame().await, frame(2, false, b"a"));
    raw.send_frame(0x81, b"drop").await;
    assert_eq!(
        raw.expect_close().await,
        (1011, "message left unfinished".to_owned())
    );
    s.log.wait_for("close:1011").await;
    s.stop().await;
}

#[actix_web::test]
async fn waiting_behind_an_open_writer_does_not_count_against_send_timeout() {
    let s = server();
    let mut raw = Raw::connect(s.addr, "/relay").await;
    raw.send_frame(0x81, b"begin").await;
    assert_eq!(raw.read_frame().await, frame(2, false, b"a"));
    // A send larger than the 1 KiB budget waits behind the open writer, three times longer
    // than the 100 ms send_timeout: the peer reads fine, so nothing is timed out.
    raw.send_frame(0x81, b"big").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.log.count("big 1 sent Ok"), 1, "{:?}", s.log.events());
    assert_eq!(s.log.count("big 2 sent"), 0, "{:?}", s.log.events());
    raw.send_frame(0x81, b"end").await;
    assert_eq!(raw.read_frame().await, frame(0, false, b"b"));
    assert_eq!(raw.read_frame().await, frame(0, true, b""));
    assert_eq!(
        raw.read_frame().await,
        frame(1, true, "x".repeat(3000).as_bytes())
    );
    assert_eq!(
        raw.read_frame().await,
        frame(1, true, "z".repeat(3000).as_bytes())
    );
    s.log.wait_for("big 2 sent Ok(())").await;
    assert_eq!(s.log.count("close:"), 0, "{:?}", s.log.events());
    s.stop().await;
}

#[actix_web::test]
async fn parts_larger_than_the_budget_wait_for_room_and_are_sent() {
    let s = server();
    let mut raw = Raw::connect(s.addr, "/relay").await;
    raw.send_frame(0x81, b"bigparts").await;
    assert_eq!(
        raw.read_frame().await,
        frame(1, false, "p".repeat(3000).as_bytes())
    );
    assert_eq!(
        raw.read_frame().await,
        frame(0, true, "q".repeat(3000).as_bytes())
    );
    s.log.wait_for("bigparts sent").await;
    assert_eq!(s.log.count("close:"), 0, "{:?}", s.log.events());
    s.stop().await;
}

#[actix_web::test]
async fn parts_are_compressed_as_they_go() {
    let s = server();
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    let mut raw = Raw::connect_with(s.addr, "/relay", offer).await;
    raw.send_frame(0x81, b"partial").await;
    let mut payload = Vec::new();
    let RawFrame::Frame {
        opcode: 1,
        fin: false,
        payload: first,
    } = raw.read_frame().await
    else {
        panic!("a first text frame")
    };
    assert!(raw.last_rsv1, "RSV1 on the first frame");
    payload.extend(first);
    let RawFrame::Frame {
        opcode: 0,
        fin: true,
        payload: second,
    } = raw.read_frame().await
    else {
        panic!("a last continuation frame")
    };
    assert!(!raw.last_rsv1, "no RSV1 on a continuation frame");
    payload.extend(second);
    assert!(payload.len() < 100, "{} bytes for 1000", payload.len());
    let mut text = Vec::new();
    inflate_shared(&payload, 1 << 20, &mut text, |_| Ok(())).unwrap();
    assert_eq!(
        text,
        format!("{}{}", "x".repeat(500), "y".repeat(500)).as_bytes()
    );
    s.stop().await;
}
