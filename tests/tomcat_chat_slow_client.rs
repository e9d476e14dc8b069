//! examples/tomcat_chat.rs against a client that stops reading (its own test binary: the chat's
//! broadcasts go to every open session of the endpoint in the process, so it must not share one
//! with the other chat test).

#[path = "../examples/tomcat_chat.rs"]
#[allow(dead_code)]
mod tomcat_chat;

mod common;

use common::*;

/// The start of a long line, for assertion messages.
fn short(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Tomcat 10.1's chat keeps a backlog per client: one client that stops reading delays nobody,
/// and once it reads again it is told how many messages it missed.
#[tokio::test]
async fn chat_a_client_that_stops_reading_delays_nobody_and_is_told_what_it_missed() {
    let srv = start(tomcat_chat::configure);
    let url = srv.url("/websocket/chat");
    let mut talker = connect(&url).await;
    let n = joined_guest(&recv_text(&mut talker).await);
    let mut listener = connect(&url).await;
    let joined = format!("* Guest{} has joined.", n + 1);
    assert_eq!(recv_text(&mut listener).await, joined);
    assert_eq!(recv_text(&mut talker).await, joined);
    // The slow client: a 4 KiB receive buffer, and it reads nothing for now.
    let mut slow = Raw::connect_small_buffer(srv.addr, "/websocket/chat", 4096).await;
    let joined = format!("* Guest{} has joined.", n + 2);
    assert_eq!(recv_text(&mut listener).await, joined);
    assert_eq!(recv_text(&mut talker).await, joined);

    // 1,000 lines of 7,000 bytes (7 MB: more than the slow client's queue, socket buffers and
    // kernel buffers hold): the two others get every one, in order, without waiting on it.
    let line = "x".repeat(7000);
    for i in 0..1000 {
        send_text(&mut talker, &format!("{i} {line}")).await;
        let expected = format!("Guest{n}: {i} {line}");
        let (a, b) = (recv_text(&mut talker).await, recv_text(&mut listener).await);
        assert!(a == expected, "talker, line {i}: got {:?}", short(&a));
        assert!(b == expected, "listener, line {i}: got {:?}", short(&b));
    }

    // The slow client now reads what was queued for it: a ping, answered behind whatever is
    // left, tells where that ends. Lines arrive in order; what it missed is announced by
    // `Skipped [k] …` notices before the next line it gets.
    slow.send_frame(0x89, b"drain").await;
    let mut texts = Vec::new();
    loop {
        match slow.read_frame().await {
            RawFrame::Frame {
                opcode: 1, payload, ..
            } => texts.push(String::from_utf8(payload).unwrap()),
            RawFrame::Frame { opcode: 0xA, .. } => break,
            RawFrame::Frame { .. } => continue,
            RawFrame::Eof => panic!("the slow client was dropped"),
        }
    }
    assert_eq!(texts[0], joined);
    let mut next = 0; // the index of the line the slow client should get next
    let mut skipped_before = 0;
    for text in &texts[1..] {
        if let Some(k) = text
            .strip_prefix("Skipped [")
            .and_then(|r| r.strip_suffix("] messages due to slow client"))
        {
            // Notices add up: a small notice may fit where the line after it does not.
            skipped_before += k.parse::<usize>().unwrap();
            continue;
        }
        let i: usize = text
            .strip_prefix(&format!("Guest{n}: "))
            .and_then(|r| r.split_once(' '))
            .and_then(|(i, rest)| (rest == line).then_some(i))
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("not a chat line: {:.60}", text));
        assert_eq!(
            i,
            next + skipped_before,
            "slow client: lines out of order or miscounted"
        );
        next = i + 1;
        skipped_before = 0;
    }
    assert!(
        next < 1000,
        "the slow client got every line: its queue never filled"
    );

    // The next message reaches it after the notice of what it missed since.
    send_text(&mut talker, "last").await;
    assert_eq!(recv_text(&mut talker).await, format!("Guest{n}: last"));
    // Every line is accounted for: read, or counted in a notice (those already read after its
    // last line, and the one that comes with the next message).
    let notice = format!(
        "Skipped [{}] messages due to slow client",
        1000 - next - skipped_before
    );
    for expected in [notice, format!("Guest{n}: last")] {
        match slow.read_frame().await {
            RawFrame::Frame {
                opcode: 1, payload, ..
            } => {
                assert_eq!(String::from_utf8(payload).unwrap(), expected)
            }
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    srv.stop().await;
}
