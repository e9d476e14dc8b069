//! The echo example, served by the test kit (`ws_endpoint::test`) and, for fragments, raw TCP
//! frames.

mod common;
#[path = "../examples/echo.rs"]
mod echo;

use common::*;
use ws_endpoint::{prelude::*, test::TestServer};

#[actix_web::test]
async fn echoes_text_binary_and_fragmented_messages() {
    let server = TestServer::start(|| App::new().configure(echo::configure));
    let mut client = server.connect("/").await;
    client.send_text("hello ✓").await;
    assert_eq!(client.recv_text().await, "hello ✓");
    let big = Bytes::from(vec![0xabu8; 3 << 20]);
    client.send_binary(big.clone()).await;
    let echoed = client.recv_binary().await;
    assert!(
        echoed == big,
        "the 3 MiB echo differs ({} bytes)",
        echoed.len()
    );

    // A text message sent in three fragments comes back whole.
    let mut raw = Raw::connect(server.addr(), "/").await;
    raw.send_frame(0x01, b"frag").await;
    raw.send_frame(0x00, b"men").await;
    raw.send_frame(0x80, b"ted").await;
    match raw.read_frame().await {
        RawFrame::Frame {
            opcode: 1,
            fin: true,
            payload,
        } => assert_eq!(payload, b"fragmented"),
        other => panic!("expected the echo, got {other:?}"),
    }
    client.close(1000, "done").await;
    server.stop().await;
}
