//! The echo example, served by the test harness and driven by tokio-tungstenite.

mod common;
#[path = "../examples/echo.rs"]
mod echo;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn echoes_text_binary_and_fragmented_messages() {
    let srv = start(echo::configure);
    let mut ws = connect(&srv.url("/")).await;
    send_text(&mut ws, "hello ✓").await;
    assert_eq!(recv_text(&mut ws).await, "hello ✓");
    let big = vec![0xabu8; 3 << 20];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(recv(&mut ws).await, Message::binary(big));

    // A text message sent in three fragments comes back whole.
    let mut raw = Raw::connect(srv.addr, "/").await;
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
    srv.stop().await;
}
