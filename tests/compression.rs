//! permessage-deflate (RFC 7692) on the wire: what the server answers to each offer, the bytes
//! it sends (RSV1, compressed payloads, control frames never compressed), the close codes for
//! RSV1 where it does not belong, and interop with an independent client that compresses
//! (Python `websockets`, installed under target/ on first use).

mod common;

use std::{path::PathBuf, process::Command, sync::OnceLock};

use common::*;
use ws_endpoint::{
    prelude::*,
    wire::deflate::{Deflater, Inflater},
};

struct Echo {
    log: web::Data<Log>,
}

#[server_endpoint("/echo", heartbeat = false, max_message_size = "16MiB")]
impl Echo {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        Echo { log }
    }

    #[on_message]
    async fn text(&mut self, session: &Session, msg: String) {
        if let Some(secret) = msg.strip_prefix("secret:") {
            session.send_uncompressed(secret.to_owned()).await.unwrap();
        } else {
            session.text(msg).await.unwrap();
        }
    }

    #[on_message]
    fn binary(&mut self, data: Bytes) -> Bytes {
        data
    }

    #[on_error]
    fn error(&mut self, err: EndpointError) {
        self.log.push(format!("error {err}"));
    }
}

#[derive(Default)]
struct Plain;

#[server_endpoint("/plain", heartbeat = false, compression = false)]
impl Plain {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

#[derive(Default)]
struct Keep;

#[server_endpoint(
    "/keep",
    heartbeat = false,
    max_message_size = "16MiB",
    compression(context_takeover = true, min_size = 16)
)]
impl Keep {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_message]
    fn binary(&mut self, data: Bytes) -> Bytes {
        data
    }
}

fn server() -> TestServer {
    start(|cfg| {
        cfg.service(Echo::endpoint())
            .service(Plain::endpoint())
            .service(Keep::endpoint());
    })
}

const CHROMIUM: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

fn extensions_header(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_owned())
    })
}

async fn agreed(server: &TestServer, path: &str, offer: &str) -> Option<String> {
    let raw = Raw::connect_with(server.addr, path, offer).await;
    extensions_header(&raw.head)
}

#[actix_web::test]
async fn each_offer_gets_the_documented_answer() {
    let s = server();
    // Chromium's and Firefox's offer: accepted without context takeover either way.
    assert_eq!(
        agreed(&s, "/echo", CHROMIUM).await.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    // No offer, no extension.
    assert_eq!(agreed(&s, "/echo", "").await, None);
    // An endpoint with `compression = false` declines.
    assert_eq!(agreed(&s, "/plain", CHROMIUM).await, None);
    // Invalid or unacceptable offers are declined: still 101, without the header.
    for bad in [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover=yes",
        "permessage-deflate; mystery_parameter",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "x-webkit-deflate-frame",
    ] {
        let offer = format!("Sec-WebSocket-Extensions: {bad}\r\n");
        assert_eq!(agreed(&s, "/echo", &offer).await, None, "{bad}");
    }
    // Several offers (one header or several): the first acceptable one.
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=20, \
                 permessage-deflate; server_max_window_bits=10; client_max_window_bits=12\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate\r\n";
    assert_eq!(
        agreed(&s, "/echo", offer).await.as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        )
    );
    // The 8-bit window Autobahn 13.3 asks for is accepted, not declined.
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n";
    assert!(agreed(&s, "/echo", offer)
        .await
        .unwrap()
        .contains("server_max_window_bits=8"));
    // Context takeover, opt-in: the server asks for no reset either way.
    assert_eq!(
        agreed(&s, "/keep", CHROMIUM).await.as_deref(),
        Some("permessage-deflate")
    );
    // ... unless the client asks for it.
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n";
    assert_eq!(
        agreed(&s, "/keep", offer).await.as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    s.stop().await;
}

fn deflate(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Deflater::new(6, 15).compress(msg, &mut out);
    out
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Inflater::default()
        .inflate(payload, usize::MAX, &mut out, |_| Ok(()))
        .unwrap();
    out
}

/// The next data frame: (RSV1, opcode, payload).
async fn data_frame(raw: &mut Raw) -> (bool, u8, Vec<u8>) {
    match raw.read_frame().await {
        RawFrame::Frame {
            opcode, payload, ..
        } => (raw.last_rsv1, opcode, payload),
        RawFrame::Eof => panic!("connection ended"),
    }
}

fn json_doc() -> String {
    let items: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"id":{i},"name":"item {i}","tags":["a","b"]}}"#))
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

#[actix_web::test]
async fn messages_are_compressed_on_the_wire_and_controls_never() {
    let s = server();
    let mut raw = Raw::connect_with(s.addr, "/echo", CHROMIUM).await;
    let doc = json_doc();
    assert!(doc.len() > 8000);

    // A compressed text (RSV1) in: echoed compressed, far smaller than the text.
    raw.send_frame(0xC1, &deflate(doc.as_bytes())).await;
    let (rsv1, opcode, payload) = data_frame(&mut raw).await;
    assert!(rsv1, "the echo is compressed");
    assert_eq!(opcode, 1);
    assert!(
        payload.len() * 5 < doc.len(),
        "{} bytes on the wire for {}",
        payload.len(),
        doc.len()
    );
    assert_eq!(inflate(&payload), doc.as_bytes());

    // An uncompressed message from the client is fine too (RSV1 is per message).
    raw.send_frame(0x82, &vec![7u8; 5000]).await;
    let (rsv1, opcode, payload) = data_frame(&mut raw).await;
    assert!(rsv1 && opcode == 2);
    assert_eq!(inflate(&payload), vec![7u8; 5000]);

    // Under min_size (64 bytes): sent as it is, RSV1 clear.
    raw.send_frame(0x81, b"hi").await;
    assert_eq!(data_frame(&mut raw).await, (false, 1, b"hi".to_vec()));

    // send_uncompressed: RSV1 clear even for a large, compressible message.
    let secret = "token=".repeat(100);
    raw.send_frame(0x81, format!("secret:{secret}").as_bytes())
        .await;
    assert_eq!(
        data_frame(&mut raw).await,
        (false, 1, secret.as_bytes().to_vec())
    );

    // A compressed message in three fragments (RSV1 on the first only).
    let c = deflate(doc.as_bytes());
    let third = c.len() / 3;
    raw.send_frame(0x41, &c[..third]).await;
    raw.send_frame(0x00, &c[third..2 * third]).await;
    raw.send_frame(0x80, &c[2 * third..]).await;
    let (rsv1, _, payload) = data_frame(&mut raw).await;
    assert!(rsv1);
    assert_eq!(inflate(&payload), doc.as_bytes());

    // A ping is answered with a pong, never compressed, whatever its payload.
    let ping = vec![b'p'; 125];
    raw.send_frame(0x89, &ping).await;
    assert_eq!(data_frame(&mut raw).await, (false, 10, ping));

    raw.send_frame(0x88, &[0x03, 0xe8]).await;
    assert_eq!(raw.expect_close().await.0, 1000);
    assert!(!raw.last_rsv1, "the close frame is never compressed");
    s.stop().await;
}

#[actix_web::test]
async fn rsv1_where_it_does_not_belong_is_1002() {
    let s = server();
    // Without the extension agreed.
    let mut raw = Raw::connect(s.addr, "/echo").await;
    raw.send_frame(0xC1, &deflate(b"hello")).await;
    assert_eq!(raw.expect_close().await.0, 1002);
    // On a continuation frame.
    let mut raw = Raw::connect_with(s.addr, "/echo", CHROMIUM).await;
    raw.send_frame(0x01, b"hel").await;
    raw.send_frame(0xC0, b"lo").await;
    assert_eq!(raw.expect_close().await.0, 1002);
    // On a control frame.
    let mut raw = Raw::connect_with(s.addr, "/echo", CHROMIUM).await;
    raw.send_frame(0xC9, b"ping").await;
    assert_eq!(raw.expect_close().await.0, 1002);
    // A compressed message that is not deflate data: 1007, and on_error says so.
    let mut raw = Raw::connect_with(s.addr, "/echo", CHROMIUM).await;
    raw.send_frame(0xC1, &[0xff, 0xff, 0xff, 0xff, 0x01]).await;
    assert_eq!(raw.expect_close().await.0, 1007);
    s.log.wait_for("error compressed message is not").await;
    s.stop().await;
}

#[actix_web::test]
async fn context_takeover_mode_keeps_the_context_both_ways() {
    let s = server();
    let mut raw = Raw::connect_with(s.addr, "/keep", CHROMIUM).await;
    assert_eq!(
        extensions_header(&raw.head).as_deref(),
        Some("permessage-deflate")
    );
    // The client keeps its context too: the second message refers back to the first.
    let mut client = Deflater::new(6, 15);
    let mut inflater = Inflater::default();
    let doc = json_doc();
    let mut sizes = Vec::new();
    for _ in 0..3 {
        let mut c = Vec::new();
        client.compress(doc.as_bytes(), &mut c);
        raw.send_frame(0xC1, &c).await;
        let (rsv1, _, payload) = data_frame(&mut raw).await;
        assert!(rsv1);
        let mut out = Vec::new();
        inflater
            .inflate(&payload, usize::MAX, &mut out, |_| Ok(()))
            .unwrap();
        assert_eq!(out, doc.as_bytes());
        sizes.push(payload.len());
    }
    // With the context kept, the same 10 KiB document again costs about 120 bytes (as on
    // Tomcat: matches of at most 258 bytes each), instead of about 1,000.
    assert!(sizes[0] > 500, "{sizes:?}");
    assert!(sizes[1] < 200 && sizes[2] < 200, "{sizes:?}");
    s.stop().await;
}

/// Python `websockets` under target/python-websockets, installed with pip on first use.
fn python_websockets() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/python-websockets");
        if !dir.join("websockets-15.0.1.dist-info").exists() {
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--target",
                ])
                .arg(&dir)
                .arg("websockets==15.0.1")
                .status()
                .expect("python3 runs");
            assert!(status.success(), "pip could not install websockets");
        }
        dir
    })
    .clone()
}

async fn python_client(url: String, args: &[&str]) -> serde_json::Value {
    let dir = python_websockets();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/deflate_client.py");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(url)
            .args(args)
            .env("PYTHONPATH", dir)
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "python client failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[actix_web::test]
async fn python_websockets_interop() {
    let s = server();
    // websockets' default offer (as Chromium's): per-message on both sides.
    let r = python_client(s.url("/echo"), &[]).await;
    assert_eq!(
        r["extensions"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert_eq!(r["echoed"], 6);
    // A client that keeps its context across messages, against the context-takeover endpoint.
    let r = python_client(s.url("/keep"), &[]).await;
    assert_eq!(r["extensions"], "permessage-deflate");
    assert_eq!(r["echoed"], 6);
    // ... and one that asks for a small server window.
    let r = python_client(s.url("/keep"), &["--server-max-window-bits", "9"]).await;
    assert_eq!(
        r["extensions"],
        "permessage-deflate; server_max_window_bits=9"
    );
    assert_eq!(r["echoed"], 6);
    let r = python_client(
        s.url("/echo"),
        &[
            "--client-no-context-takeover",
            "--server-max-window-bits",
            "8",
        ],
    )
    .await;
    assert_eq!(
        r["extensions"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=8"
    );
    assert_eq!(r["echoed"], 6);
    s.stop().await;
}
