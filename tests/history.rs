//! Room history and recovery in one process (`ws_endpoint::history`): recorded messages carry
//! ids, a client that reconnects with the last id it saw gets what it missed, in order and once,
//! then the live messages, with no gap and no duplicate at the seam while others keep sending;
//! an id older than the history is reported. (Across processes, on Redis: `tests/cluster.rs`.)

mod common;

#[path = "support/history_probe.rs"]
mod history_probe;

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use common::*;

/// `ID|TEXT` → (ID, TEXT).
fn split(msg: &str) -> (String, String) {
    let (id, text) = msg
        .split_once('|')
        .unwrap_or_else(|| panic!("not a recorded message: {msg}"));
    (id.to_owned(), text.to_owned())
}

async fn silent(ws: &mut Ws) -> bool {
    tokio::time::timeout(Duration::from_millis(300), recv(ws))
        .await
        .is_err()
}

#[tokio::test]
async fn a_reconnecting_client_gets_what_it_missed_once_and_in_order_then_live_messages() {
    let server = start(history_probe::configure);
    let mut ada = connect(&server.url("/rec/r1")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    let mut ids = Vec::new();
    for i in 1..=5 {
        send_text(&mut ada, &format!("say:m{i}")).await;
        let (id, text) = split(&recv_text(&mut ada).await);
        assert_eq!(text, format!("m{i}"));
        ids.push(id);
    }
    let parsed: Vec<ws_endpoint::history::MessageId> =
        ids.iter().map(|i| i.parse().unwrap()).collect();
    assert!(
        parsed.windows(2).all(|w| w[0] < w[1]),
        "ids increase: {ids:?}"
    );

    // bob saw m2, then lost his connection: he gets m3..m5, after the welcome
    let mut bob = connect(&server.url(&format!("/rec/r1?since={}", ids[1]))).await;
    assert_eq!(recv_text(&mut bob).await, "welcome");
    for i in 3..=5 {
        assert_eq!(
            split(&recv_text(&mut bob).await),
            (ids[i - 1].clone(), format!("m{i}"))
        );
    }
    // then the live ones, once
    send_text(&mut ada, "say:m6").await;
    let (id6, text) = split(&recv_text(&mut bob).await);
    assert_eq!(text, "m6");
    assert_eq!(split(&recv_text(&mut ada).await), (id6, "m6".to_owned()));
    assert!(silent(&mut bob).await, "bob got something twice");

    // the last id: nothing to replay, live messages follow
    let mut cy = connect(&server.url(&format!("/rec/r1?since={}", ids[4]))).await;
    assert_eq!(recv_text(&mut cy).await, "welcome");
    send_text(&mut ada, "say:m7").await;
    assert_eq!(split(&recv_text(&mut cy).await).1, "m6");
    assert_eq!(split(&recv_text(&mut cy).await).1, "m7");
    // another room's history is its own
    let mut dee = connect(&server.url(&format!("/rec/r2?since={}", ids[0]))).await;
    assert_eq!(recv_text(&mut dee).await, "welcome");
    assert!(recv_text(&mut dee).await.starts_with("lost:"));
    server.stop().await;
}

/// Joiners reconnect while a sender keeps recording: each gets every message after its `since`
/// exactly once, in order, across the seam between the replay and the live messages.
#[tokio::test]
async fn no_gap_and_no_duplicate_at_the_seam_while_others_keep_sending() {
    let server = start(history_probe::configure);
    let mut ada = connect(&server.url("/rec/seam")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    const N: usize = 400;
    send_text(&mut ada, &format!("burst:{N}:n")).await;
    // Joiners connect as ada sees messages 20, 120 and 250 go by, each with the id of the
    // message it saw last.
    let mut ids = Vec::with_capacity(N);
    let mut joiners = Vec::new();
    for i in 0..N {
        let (id, text) = split(&recv_text(&mut ada).await);
        assert_eq!(text, format!("n{i}"));
        ids.push(id.clone());
        if [20, 120, 250].contains(&i) {
            let url = server.url(&format!("/rec/seam?since={id}&pause=100"));
            joiners.push((i, tokio::spawn(async move { connect(&url).await })));
        }
    }
    for (from, joiner) in joiners {
        let mut ws = joiner.await.unwrap();
        assert_eq!(recv_text(&mut ws).await, "welcome");
        for (i, id) in ids.iter().enumerate().skip(from + 1) {
            let got = split(&recv_text(&mut ws).await);
            assert_eq!(got, (id.clone(), format!("n{i}")), "joiner since n{from}");
        }
        send_text(&mut ada, "say:end").await;
        assert_eq!(
            split(&recv_text(&mut ws).await).1,
            "end",
            "joiner since n{from}"
        );
        assert_eq!(split(&recv_text(&mut ada).await).1, "end");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_id_older_than_the_history_is_reported_and_live_messages_follow() {
    let server = start(history_probe::configure);
    let mut ada = connect(&server.url("/short/r")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    let mut ids = Vec::new();
    for i in 0..8 {
        send_text(&mut ada, &format!("say:m{i}")).await;
        ids.push(split(&recv_text(&mut ada).await).0);
    }
    // /short keeps 5: m3..m7. Since m2: m3..m7; since m1: gone.
    let mut bob = connect(&server.url(&format!("/short/r?since={}", ids[2]))).await;
    assert_eq!(recv_text(&mut bob).await, "welcome");
    for i in 3..8 {
        assert_eq!(split(&recv_text(&mut bob).await).1, format!("m{i}"));
    }
    let mut cy = connect(&server.url(&format!("/short/r?since={}", ids[1]))).await;
    assert_eq!(recv_text(&mut cy).await, "welcome");
    let lost = recv_text(&mut cy).await;
    assert!(
        lost.starts_with(&format!(
            "lost:message {} is not in the room's history",
            ids[1]
        )),
        "{lost}"
    );
    // cy is in the room all the same
    send_text(&mut ada, "say:live").await;
    assert_eq!(split(&recv_text(&mut cy).await).1, "live");
    assert_eq!(split(&recv_text(&mut bob).await).1, "live");
    assert_eq!(split(&recv_text(&mut ada).await).1, "live");
    assert!(silent(&mut cy).await);
    // an id that was never handed out, and one that does not parse
    let mut dee = connect(&server.url("/short/r?since=1-0")).await;
    assert_eq!(recv_text(&mut dee).await, "welcome");
    assert!(recv_text(&mut dee).await.starts_with("lost:message 1-0"));
    let mut eve = connect(&server.url("/short/r?since=yesterday")).await;
    assert!(recv_text(&mut eve)
        .await
        .starts_with("lost:`yesterday` is not a message id"));
    // recording without a history is refused
    send_text(&mut ada, "nohist:x").await;
    assert!(recv_text(&mut ada)
        .await
        .starts_with("error:this endpoint keeps no room history"));
    server.stop().await;
}

/// A member that stops reading, in a room with history, on an endpoint whose `slow_consumer`
/// policy is the default (drop messages): a recorded message is never dropped from the middle
/// of what it gets. Its connection is dropped when its queue is full; what it read is the
/// room's messages without a gap, and reconnecting with the last id it saw gets the rest,
/// once and in order.
#[tokio::test]
async fn a_member_too_slow_for_a_recorded_message_is_closed_not_skipped_and_resumes() {
    let server = start(history_probe::configure);
    let mut slow = Raw::connect_small_buffer(server.addr, "/tight/slow", 4096).await;
    let welcome = slow.read_frame().await;
    assert!(matches!(&welcome, RawFrame::Frame { payload, .. } if payload == b"welcome"));
    let mut ada = connect(&server.url("/tight/slow")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    send_text(&mut ada, "say:start").await;
    let (start, _) = split(&recv_text(&mut ada).await);

    // 200 messages of 16 KiB (3.2 MiB) against an 8 KiB budget and a 4 KiB receive buffer;
    // ada records each once she got the one before (her own queue is empty each time)
    const N: usize = 200;
    let pad = "x".repeat(16 * 1024);
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        send_text(&mut ada, &format!("say:p{i}:{pad}")).await;
        let (id, text) = split(&recv_text(&mut ada).await);
        assert_eq!(text, format!("p{i}:{pad}"));
        ids.push(id);
    }

    // What the slow member has: `start`, then p0, p1, … without a gap, then the end.
    let mut last = None;
    let mut want = std::iter::once((start.clone(), "start".to_owned())).chain(
        ids.iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), format!("p{i}:{pad}"))),
    );
    let got = loop {
        match slow.read_frame().await {
            RawFrame::Frame {
                opcode: 1, payload, ..
            } => {
                let got = split(std::str::from_utf8(&payload).unwrap());
                assert_eq!(
                    Some(&got),
                    want.next().as_ref(),
                    "a gap in what the slow one read"
                );
                last = Some(got.0);
            }
            RawFrame::Frame { opcode, .. } => panic!("opcode {opcode} before the end"),
            RawFrame::Eof => break last.expect("at least `start` was read"),
        }
    };
    let rest: Vec<_> = want.collect();
    assert!(
        !rest.is_empty(),
        "the slow member got everything: nothing was tested"
    );

    // it resumes from the last id it saw
    let mut again = connect(&server.url(&format!("/tight/slow?since={got}"))).await;
    assert_eq!(recv_text(&mut again).await, "welcome");
    for want in &rest {
        assert_eq!(&split(&recv_text(&mut again).await), want);
    }
    send_text(&mut ada, "say:live").await;
    assert_eq!(split(&recv_text(&mut again).await).1, "live");
    assert_eq!(split(&recv_text(&mut ada).await).1, "live");
    // the slow one's on_close, once: 1008 (ada and the reconnected session are open)
    assert_eq!(
        history_probe::tight_closed("slow").await,
        [(1008, "slow consumer: outbound queue full".to_owned())]
    );
    server.stop().await;
}

/// A replay cancelled part-way (here once it has had to wait for room in the outbound queue) may
/// have left out part of what it owed: the session is closed with 1008 rather than let through
/// with a gap, after a prefix of the replay in order.
#[tokio::test]
async fn a_replay_cancelled_part_way_closes_the_session_instead_of_leaving_a_gap() {
    let server = start(history_probe::configure);
    let mut ada = connect(&server.url("/tight/cancel")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    send_text(&mut ada, "say:start").await;
    let (start, _) = split(&recv_text(&mut ada).await);
    let pad = "x".repeat(16 * 1024);
    let mut want = Vec::new();
    for i in 0..10 {
        send_text(&mut ada, &format!("say:p{i}:{pad}")).await;
        want.push(split(&recv_text(&mut ada).await));
    }
    // 10 × 16 KiB to replay against an 8 KiB budget: the replay has to wait
    let mut bob = connect(&server.url(&format!("/tight/cancel?since={start}&cancel=true"))).await;
    assert_eq!(recv_text(&mut bob).await, "welcome");
    let mut got = 0;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), bob.next())
            .await
            .expect("bob hears something")
        {
            Some(Ok(Message::Text(t))) => {
                assert_eq!(split(&t), want[got], "in order, from the start");
                got += 1;
            }
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, 1008);
    assert!(
        got < want.len(),
        "the replay was not cut short: nothing tested"
    );
    assert_eq!(
        history_probe::tight_closed("cancel").await,
        [(
            1008,
            "replay cancelled: reconnect with the last id".to_owned()
        )]
    );
    server.stop().await;
}
