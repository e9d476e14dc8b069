//! Messages in parts and as streams, inbound: a handler with `last: bool` called once per frame
//! (characters cut between frames carried over), a `BinaryStream` / `TextStream` handler fed as
//! the bytes arrive with backpressure, pings answered while a stream is open, the rest of a
//! message discarded when its handler returns early, and the upload example's 256 MiB.

mod common;
#[path = "../examples/upload.rs"]
mod upload;

use common::*;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use ws_endpoint::{prelude::*, BinaryStream, TextStream};

struct Parts {
    log: web::Data<Log>,
}

#[server_endpoint("/parts", heartbeat = false, max_message_size = 16)]
impl Parts {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        Parts { log }
    }

    #[on_message]
    fn text(&mut self, part: String, last: bool) -> String {
        self.log.push(format!("text {part:?} {last}"));
        part
    }

    #[on_message]
    fn binary(&mut self, part: Bytes, last: bool) {
        self.log.push(format!("binary {} {last}", part.len()));
    }

    #[on_error]
    fn error(&mut self, err: EndpointError) {
        self.log.push(format!("error {err}"));
    }
}

/// Lets the test hold a streaming handler back, and see what it read.
#[derive(Default)]
struct Gate {
    go: Notify,
}

struct Streams {
    log: web::Data<Log>,
    gate: web::Data<Gate>,
}

#[server_endpoint("/stream", heartbeat = false, max_message_size = "64MiB")]
impl Streams {
    #[on_open]
    fn open(log: web::Data<Log>, gate: web::Data<Gate>) -> Self {
        Streams { log, gate }
    }

    /// `wait` first: reads one chunk, then waits for the gate before reading the rest.
    /// `early` first: returns after the first chunk.
    #[on_message]
    async fn binary(
        &mut self,
        session: &Session,
        mut data: BinaryStream,
    ) -> Result<String, EndpointError> {
        let first = data.next_chunk().await.expect("a first chunk")?;
        let mut total = first.len();
        match first.first() {
            Some(b'e') => {
                self.log.push(format!("early {total}"));
                return Ok("early".into());
            }
            Some(b'w') => {
                self.log.push("waiting");
                self.gate.go.notified().await;
            }
            // `c`: another task closes the session while the message streams in.
            Some(b'c') => {
                let s = session.clone();
                actix_web::rt::spawn(async move {
                    let _ = s.close(CloseReason::new(CloseCode::Normal, "enough")).await;
                });
            }
            _ => {}
        }
        while let Some(chunk) = data.next_chunk().await {
            match chunk {
                Ok(chunk) => total += chunk.len(),
                Err(err) => {
                    self.log.push(format!("stream error {err}"));
                    return Err(err);
                }
            }
        }
        self.log.push(format!("streamed {total}"));
        Ok(format!("{total}"))
    }

    #[on_message]
    async fn text(&mut self, data: TextStream) -> Result<String, EndpointError> {
        let mut chunks = Vec::new();
        let mut data = data;
        while let Some(chunk) = data.next_chunk().await {
            chunks.push(chunk?);
        }
        self.log.push(format!("text chunks {}", chunks.len()));
        Ok(chunks.concat())
    }

    #[on_error]
    fn error(&mut self, err: EndpointError) {
        self.log.push(format!("error {err}"));
    }
}

fn server() -> (TestServer, web::Data<Gate>) {
    let gate = web::Data::new(Gate::default());
    let g = gate.clone();
    let s = start(move |cfg| {
        cfg.app_data(g.clone())
            .service(Parts::endpoint())
            .service(Streams::endpoint())
            .configure(upload::configure);
    });
    (s, gate)
}

/// A client frame with an all-zero mask, so that large payloads need no masking pass.
fn zero_masked(first: u8, payload: &[u8]) -> Vec<u8> {
    Raw::frame_with_mask(first, payload, [0; 4])
}

async fn text_reply(raw: &mut Raw) -> String {
    loop {
        match raw.read_frame().await {
            RawFrame::Frame {
                opcode: 1, payload, ..
            } => return String::from_utf8(payload).unwrap(),
            RawFrame::Frame { .. } => continue,
            RawFrame::Eof => panic!("connection ended"),
        }
    }
}

#[actix_web::test]
async fn a_part_handler_is_called_once_per_frame_with_whole_characters() {
    let (s, _) = server();
    let mut raw = Raw::connect(s.addr, "/parts").await;
    // "héllo wörld" in three frames, "é" and "ö" cut between frames.
    let text = "héllo wörld".as_bytes();
    let cut1 = 2; // inside "é"
    let cut2 = text.len() - 4; // inside "ö"
    raw.send_frame(0x01, &text[..cut1]).await;
    raw.send_frame(0x00, &text[cut1..cut2]).await;
    raw.send_frame(0x80, &text[cut2..]).await;
    // The echo of each part comes back as its own message.
    let mut echoed = String::new();
    for _ in 0..3 {
        echoed.push_str(&text_reply(&mut raw).await);
    }
    assert_eq!(echoed, "héllo wörld");
    let parts: Vec<String> = s
        .log
        .events()
        .into_iter()
        .filter(|e| e.starts_with("text"))
        .collect();
    assert_eq!(
        parts,
        vec![
            r#"text "h" false"#.to_owned(),
            r#"text "éllo w" false"#.to_owned(),
            r#"text "örld" true"#.to_owned()
        ]
    );
    // Binary parts; the limit (16 bytes) applies to each part, not to the message.
    raw.send_frame(0x02, &[1; 16]).await;
    raw.send_frame(0x00, &[2; 16]).await;
    raw.send_frame(0x80, &[3; 5]).await;
    s.log.wait_for("binary 5 true").await;
    assert_eq!(s.log.count("binary 16 false"), 2);
    // A part over the limit: 1009.
    raw.send_frame(0x82, &[0; 17]).await;
    assert_eq!(raw.expect_close().await.0, 1009);
    s.stop().await;
}

#[actix_web::test]
async fn a_stream_handler_gets_the_bytes_as_they_arrive_and_holds_the_socket_back() {
    let (s, gate) = server();
    let mut raw = Raw::connect(s.addr, "/stream").await;
    // The first frame of a large message: the handler starts with it and waits.
    let mut first = vec![b'w'];
    first.extend(vec![0u8; 1 << 20]);
    raw.send_raw(&zero_masked(0x02, &first)).await;
    s.log.wait_for("waiting").await;
    // While the handler waits, the socket is not read further: 48 MiB more cannot all be
    // written (the kernel's buffers hold a few MiB at most).
    let rest = zero_masked(0x80, &vec![7u8; 48 << 20]);
    let client = tokio::spawn(async move {
        raw.send_raw(&rest).await;
        let done_writing = std::time::Instant::now();
        (text_reply(&mut raw).await, done_writing)
    });
    let blocked = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        while !client.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .is_err();
    assert!(blocked, "48 MiB were taken while the handler did not read");
    assert_eq!(s.log.count("streamed"), 0);
    // Released, it reads everything, and the reply comes.
    let released = std::time::Instant::now();
    gate.go.notify_one();
    let (reply, done_writing) = client.await.unwrap();
    assert!(
        done_writing > released,
        "the write finished before the handler was released"
    );
    assert_eq!(reply, format!("{}", (1 << 20) + 1 + (48 << 20)));
    s.stop().await;
}

#[actix_web::test]
async fn pings_are_answered_while_a_stream_is_open_and_an_early_return_discards_the_rest() {
    let (s, _) = server();
    let mut raw = Raw::connect(s.addr, "/stream").await;
    // A message in three frames with a ping between them: the pong comes while the message
    // is still open.
    raw.send_frame(0x02, b"x first").await;
    raw.send_frame(0x89, b"still there?").await;
    match raw.read_frame().await {
        RawFrame::Frame {
            opcode: 10,
            payload,
            ..
        } => assert_eq!(payload, b"still there?"),
        other => panic!("expected a pong, got {other:?}"),
    }
    raw.send_frame(0x00, b" second").await;
    raw.send_frame(0x80, b" third").await;
    assert_eq!(text_reply(&mut raw).await, "20");
    // A handler that returns after its first chunk: the rest of the message is discarded,
    // and the next message gets a handler call of its own.
    raw.send_frame(0x02, b"early").await;
    assert_eq!(text_reply(&mut raw).await, "early");
    raw.send_frame(0x00, &[9; 1000]).await;
    raw.send_frame(0x80, &[9; 1000]).await;
    raw.send_frame(0x82, b"after").await;
    assert_eq!(text_reply(&mut raw).await, "5");
    // Text streams come in whole characters.
    let text = "ünïcödé ".repeat(1000);
    let bytes = text.as_bytes();
    raw.send_frame(0x01, &bytes[..1001]).await;
    raw.send_frame(0x80, &bytes[1001..]).await;
    assert_eq!(text_reply(&mut raw).await, text);
    // Closed from another task mid-message: the stream ends with Truncated, the close goes out.
    raw.send_frame(0x02, b"c, then more").await;
    assert_eq!(raw.expect_close().await, (1000, "enough".to_owned()));
    s.log
        .wait_for("stream error the connection ended before the message's last frame")
        .await;
    let mut raw = Raw::connect(s.addr, "/stream").await;
    // The peer closing mid-message ends the stream with Truncated, then on_close.
    raw.send_frame(0x02, b"x never finished").await;
    raw.send_frame(0x88, &[0x03, 0xe8]).await;
    assert_eq!(raw.expect_close().await.0, 1000);
    // The handler saw it (the second time); on_error is not called for it (the close is what
    // happened).
    let truncated = "stream error the connection ended before the message's last frame";
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while s.log.count(truncated) < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{:?}", s.log.events()));
    assert_eq!(s.log.count("error "), 0, "{:?}", s.log.events());
    s.stop().await;
}

#[actix_web::test]
async fn the_upload_example_streams_256_mib_and_replies_with_its_length_and_sha256() {
    let (s, _) = server();
    let mut raw = Raw::connect(s.addr, "/upload").await;
    let block: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut hasher = Sha256::new();
    // 256 MiB in 64 frames of 4 MiB, sent while the server hashes.
    let frame_size = 4 << 20;
    let frames = 64;
    let mut frame = Vec::with_capacity(frame_size);
    for _ in 0..frame_size / block.len() {
        frame.extend_from_slice(&block);
    }
    for i in 0..frames {
        hasher.update(&frame);
        let opcode = if i == 0 { 0x02 } else { 0x00 };
        let fin = if i == frames - 1 { 0x80 } else { 0 };
        raw.send_raw(&zero_masked(opcode | fin, &frame)).await;
    }
    let expected: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let reply = text_reply(&mut raw).await;
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["bytes"], 256u64 << 20);
    assert_eq!(reply["sha256"], expected);
    s.stop().await;
}

#[actix_web::test]
async fn compressed_messages_inflate_as_they_stream_and_as_parts() {
    let (s, _) = server();
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    // 8 MiB that deflate to a few KiB, streamed in 4 frames: inflated as they arrive.
    let mut raw = Raw::connect_with(s.addr, "/stream", offer).await;
    assert!(raw.head.contains("permessage-deflate"));
    let data: Vec<u8> = (0..8u32 << 20).map(|i| b"xyz"[(i % 3) as usize]).collect();
    let mut c = Vec::new();
    ws_endpoint::wire::deflate::Deflater::new(6, 15).compress(&data, &mut c);
    assert!(c.len() < 64 * 1024, "{}", c.len());
    let quarter = c.len() / 4 + 1;
    for (i, piece) in c.chunks(quarter).enumerate() {
        let first = if i == 0 { 0x42 } else { 0x00 }; // RSV1 on the first frame only
        let fin = if (i + 1) * quarter >= c.len() {
            0x80
        } else {
            0
        };
        raw.send_frame(first | fin, piece).await;
    }
    assert_eq!(text_reply(&mut raw).await, format!("{}", 8 << 20));
    s.log.wait_for(&format!("streamed {}", 8 << 20)).await;

    // Parts of a compressed text, each inflated on its own (the context runs through).
    let mut raw = Raw::connect_with(s.addr, "/parts", offer).await;
    let mut d = ws_endpoint::wire::deflate::Deflater::new(6, 15);
    let mut p1 = Vec::new();
    d.compress_part("héllo ".as_bytes(), &mut p1, false);
    let mut p2 = Vec::new();
    d.compress_part("wörld".as_bytes(), &mut p2, true);
    raw.send_frame(0x41, &p1).await;
    raw.send_frame(0x80, &p2).await;
    s.log.wait_for("text \"wörld\" true").await;
    assert_eq!(
        s.log.count("text \"héllo \" false"),
        1,
        "{:?}",
        s.log.events()
    );
    s.stop().await;
}

struct Slow {
    gate: web::Data<Gate>,
    log: web::Data<Log>,
}

#[server_endpoint(
    "/slow",
    max_message_size = "16MiB",
    ping_interval = "100ms",
    pong_timeout = "200ms"
)]
impl Slow {
    #[on_open]
    fn open(gate: web::Data<Gate>, log: web::Data<Log>) -> Self {
        Slow { gate, log }
    }

    /// Holds the socket back until the test opens the gate, far longer than pong_timeout.
    #[on_message]
    async fn binary(&mut self, mut data: BinaryStream) -> Result<String, EndpointError> {
        let mut total = data.next_chunk().await.expect("a first chunk")?.len();
        self.gate.go.notified().await;
        while let Some(chunk) = data.next_chunk().await {
            total += chunk?.len();
        }
        Ok(format!("{total}"))
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        self.log.closed(&reason);
    }
}

#[actix_web::test]
async fn the_heartbeat_does_not_kill_a_session_whose_handler_holds_the_socket_back() {
    let gate = web::Data::new(Gate::default());
    let g = gate.clone();
    let s = start(move |cfg| {
        cfg.app_data(g.clone()).service(Slow::endpoint());
    });
    let mut raw = Raw::connect(s.addr, "/slow").await;
    // Enough data to fill the stream and the socket buffers, so that the server stops reading
    // (and cannot see a pong) while the handler waits.
    raw.send_raw(&zero_masked(0x02, &vec![1u8; 1 << 20])).await;
    let rest = zero_masked(0x80, &vec![2u8; 8 << 20]);
    let client = tokio::spawn(async move {
        if !raw.send_raw_checked(&rest).await {
            return Err(b"write failed".to_vec());
        }
        // Answer the heartbeat from here on, as a browser would.
        loop {
            match raw.read_frame().await {
                RawFrame::Frame {
                    opcode: 9, payload, ..
                } => raw.send_frame(0x8A, &payload).await,
                RawFrame::Frame {
                    opcode: 1, payload, ..
                } => return Ok(String::from_utf8(payload).unwrap()),
                RawFrame::Frame {
                    opcode: 8, payload, ..
                } => return Err(payload),
                RawFrame::Frame { .. } => {}
                RawFrame::Eof => return Err(b"eof".to_vec()),
            }
        }
    });
    // Held back for ten pong deadlines (the subject of the test is this wait).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    gate.go.notify_one();
    let reply = client.await.unwrap();
    assert_eq!(
        reply,
        Ok(format!("{}", (1 << 20) + (8 << 20))),
        "{:?}",
        s.log.events()
    );
    s.stop().await;
}
