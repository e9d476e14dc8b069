//! The ports of Tomcat's annotated WebSocket examples (`examples/tomcat_echo.rs`,
//! `examples/tomcat_chat.rs`, `examples/tomcat_snake.rs`), compiled into this test and driven
//! over real WebSockets on 127.0.0.1: what a client of the Java originals sees on the wire.
//!
//! The snake's rules (moves, wrapping, growth, collisions, the JSON text) are also checked
//! without the network, on `tomcat_snake::Board`.
//!
//! Chat and snake keep process-wide state (the guest counter, `open_sessions()`, the game), as
//! the Java statics do, so each has a single test that opens WebSockets.

#[path = "../examples/tomcat_chat.rs"]
mod tomcat_chat;
#[path = "../examples/tomcat_echo.rs"]
mod tomcat_echo;
#[path = "../examples/tomcat_snake.rs"]
mod tomcat_snake;

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

async fn get_page(srv: &TestServer) -> String {
    let (status, response) = http_request(
        srv.addr,
        &format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            srv.addr
        ),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{response}"
    );
    response
}

// ---------- echo ----------

async fn echo_text_and_binary(path: &str) {
    let srv = start(tomcat_echo::configure);
    let mut ws = connect(&srv.url(path)).await;

    send_text(&mut ws, "Hello, Tomcat").await;
    assert_eq!(recv_text(&mut ws).await, "Hello, Tomcat");

    let data = vec![0u8, 1, 2, 0xfe, 0xff];
    ws.send(Message::binary(data.clone())).await.unwrap();
    match recv(&mut ws).await {
        Message::Binary(b) => assert_eq!(&b[..], &data[..]),
        other => panic!("expected binary, got {other:?}"),
    }

    // An unsolicited pong is ignored (echoPongMessage is a no-op); the session goes on.
    ws.send(Message::Pong(b"pong".to_vec().into()))
        .await
        .unwrap();
    send_text(&mut ws, "still here").await;
    assert_eq!(recv_text(&mut ws).await, "still here");

    ws.close(None).await.unwrap();
    srv.stop().await;
}

#[tokio::test]
async fn echo_annotation_echoes_text_and_binary() {
    echo_text_and_binary("/websocket/echoAnnotation").await;
}

#[tokio::test]
async fn echo_stream_annotation_echoes_text_and_binary() {
    echo_text_and_binary("/websocket/echoStreamAnnotation").await;
}

fn frame(opcode: u8, fin: bool, payload: &[u8]) -> RawFrame {
    RawFrame::Frame {
        opcode,
        fin,
        payload: payload.to_vec(),
    }
}

/// EchoAnnotation echoes part for part, as Tomcat does: a text sent in three fragments comes
/// back as three fragments (a character cut between two fragments goes with the next part).
#[tokio::test]
async fn echo_annotation_echoes_a_fragmented_message_part_for_part() {
    let srv = start(tomcat_echo::configure);
    let mut raw = Raw::connect(srv.addr, "/websocket/echoAnnotation").await;
    let last = "ented wörld".as_bytes();
    raw.send_frame(0x01, b"Hel").await;
    raw.send_frame(0x00, b"lo, fragm").await;
    raw.send_frame(0x80, last).await;
    assert_eq!(raw.read_frame().await, frame(1, false, b"Hel"));
    assert_eq!(raw.read_frame().await, frame(0, false, b"lo, fragm"));
    assert_eq!(raw.read_frame().await, frame(0, true, last));

    // binary, with a ping between the fragments (answered at once, RFC 6455 §5.4)
    raw.send_frame(0x02, &[1, 2]).await;
    raw.send_frame(0x89, b"p").await;
    raw.send_frame(0x00, &[3]).await;
    raw.send_frame(0x80, &[4, 5]).await;
    assert_eq!(raw.read_frame().await, frame(2, false, &[1, 2]));
    assert_eq!(raw.read_frame().await, frame(0xA, true, b"p"));
    assert_eq!(raw.read_frame().await, frame(0, false, &[3]));
    assert_eq!(raw.read_frame().await, frame(0, true, &[4, 5]));

    raw.send_frame(0x88, &1000u16.to_be_bytes()).await;
    assert_eq!(raw.expect_close().await.0, 1000);
    srv.stop().await;
}

/// EchoStreamAnnotation writes each part to the message's writer, which sends 32 KiB frames
/// as it fills and the rest when the last part closes it: a small message comes back in one
/// frame, a large one in several, each byte in order.
#[tokio::test]
async fn echo_stream_annotation_streams_through_a_writer() {
    let srv = start(tomcat_echo::configure);
    let mut raw = Raw::connect(srv.addr, "/websocket/echoStreamAnnotation").await;
    raw.send_frame(0x01, b"Hel").await;
    raw.send_frame(0x00, b"lo, fragm").await;
    raw.send_frame(0x80, "ented wörld".as_bytes()).await;
    assert_eq!(
        raw.read_frame().await,
        frame(1, true, "Hello, fragmented wörld".as_bytes())
    );

    // 100 KiB in four fragments: back as several frames (32 KiB as the writer fills).
    let data: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8).collect();
    for (i, piece) in data.chunks(25 * 1024 + 1).enumerate() {
        let first = if i == 0 { 0x02 } else { 0x00 };
        let fin = if (i + 1) * (25 * 1024 + 1) >= data.len() {
            0x80
        } else {
            0
        };
        raw.send_frame(first | fin, piece).await;
    }
    let mut back = Vec::new();
    let mut frames = 0;
    loop {
        let RawFrame::Frame {
            opcode,
            fin,
            payload,
        } = raw.read_frame().await
        else {
            panic!("connection ended")
        };
        assert_eq!(opcode, if frames == 0 { 2 } else { 0 });
        back.extend(payload);
        frames += 1;
        if fin {
            break;
        }
    }
    assert_eq!(back, data);
    assert!(frames >= 3, "{frames} frames");

    raw.send_frame(0x88, &1000u16.to_be_bytes()).await;
    assert_eq!(raw.expect_close().await.0, 1000);
    srv.stop().await;
}

// ---------- chat ----------

#[test]
fn html_filter_escapes_like_tomcat() {
    assert_eq!(
        tomcat_chat::html_filter(r#"<script>alert("x" & 'y')</script>"#),
        "&lt;script&gt;alert(&quot;x&quot; &amp; 'y')&lt;/script&gt;"
    );
    assert_eq!(tomcat_chat::html_filter("plain ünïcode"), "plain ünïcode");
    assert_eq!(tomcat_chat::html_filter(""), "");
}

#[tokio::test]
async fn chat_guests_join_talk_escaped_and_leave() {
    let srv = start(tomcat_chat::configure);
    assert!(get_page(&srv).await.contains("/websocket/chat"));
    let url = srv.url("/websocket/chat");

    // Each newcomer is announced to everyone, itself included, with the next guest number.
    let mut first = connect(&url).await;
    let n = joined_guest(&recv_text(&mut first).await);
    let mut second = connect(&url).await;
    let joined = format!("* Guest{} has joined.", n + 1);
    assert_eq!(recv_text(&mut second).await, joined);
    assert_eq!(recv_text(&mut first).await, joined);

    // A message goes to everyone, the sender included, prefixed and HTML-escaped.
    send_text(&mut first, r#"<b>bold</b> & "quoted""#).await;
    let expected = format!("Guest{n}: &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;");
    assert_eq!(recv_text(&mut first).await, expected);
    assert_eq!(recv_text(&mut second).await, expected);
    send_text(&mut second, "hi").await;
    let expected = format!("Guest{}: hi", n + 1);
    assert_eq!(recv_text(&mut first).await, expected);
    assert_eq!(recv_text(&mut second).await, expected);

    // A departure is announced to those left, once.
    second.close(None).await.unwrap();
    assert_eq!(
        recv_text(&mut first).await,
        format!("* Guest{} has disconnected.", n + 1)
    );
    send_text(&mut first, "alone").await;
    assert_eq!(recv_text(&mut first).await, format!("Guest{n}: alone"));

    first.close(None).await.unwrap();
    srv.stop().await;
}

// ---------- snake: the rules, without the network ----------

use tomcat_snake::{Board, Direction, Location, DEAD, DEFAULT_LENGTH, KILL};

fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"))
}

/// The body of snake `id` in an update, head first.
fn body(update: &Value, id: u64) -> Vec<(i64, i64)> {
    assert_eq!(update["type"], "update", "{update}");
    let snake = update["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no snake {id} in {update}"));
    snake["body"]
        .as_array()
        .expect("body")
        .iter()
        .map(|l| (l["x"].as_i64().unwrap(), l["y"].as_i64().unwrap()))
        .collect()
}

fn ids(packet: &Value) -> Vec<u64> {
    packet["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|s| s["id"].as_u64().expect("id"))
        .collect()
}

#[test]
fn snake_messages_are_built_as_in_java() {
    let mut board = Board::new();
    let join = board.add_snake(7);
    // The same text as Tomcat's String.format, spaces included.
    let color = parse(&join)["data"][0]["color"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        join,
        format!(r#"{{"type": "join","data":[{{"id": 7, "color": "{color}"}}]}}"#)
    );
    assert!(
        color.len() == 7
            && color.starts_with('#')
            && color[1..].chars().all(|c| c.is_ascii_hexdigit()),
        "{color}"
    );
    board.place(7, Location { x: 100, y: 50 }, Direction::East);
    let (update, notes) = board.tick();
    assert_eq!(
        update,
        r#"{"type": "update", "data" : [{"id":7,"body":[{"x": 110, "y": 50},{"x": 100, "y": 50}]}]}"#
    );
    assert!(notes.is_empty());
    assert_eq!(parse(DEAD), serde_json::json!({ "type": "dead" }));
    assert_eq!(parse(KILL), serde_json::json!({ "type": "kill" }));
}

#[test]
fn snake_moves_grows_to_its_length_wraps_and_refuses_to_reverse() {
    let mut board = Board::new();
    board.add_snake(1);
    board.place(1, Location { x: 600, y: 0 }, Direction::East);
    let mut heads = Vec::new();
    for _ in 0..8 {
        let (update, _) = board.tick();
        let body = body(&parse(&update), 1);
        assert!(body.len() <= DEFAULT_LENGTH + 1, "{body:?}");
        heads.push(body[0]);
    }
    // east along y = 0, wrapping from x = 630 to 0
    assert_eq!(
        heads,
        [
            (610, 0),
            (620, 0),
            (630, 0),
            (0, 0),
            (10, 0),
            (20, 0),
            (30, 0),
            (40, 0)
        ]
    );
    let (update, _) = board.tick();
    assert_eq!(body(&parse(&update), 1).len(), DEFAULT_LENGTH + 1);

    // reversing is ignored; a turn is taken
    board.set_direction(1, Direction::West);
    let (update, _) = board.tick();
    assert_eq!(body(&parse(&update), 1)[0], (60, 0));
    board.set_direction(1, Direction::North);
    let (update, _) = board.tick();
    assert_eq!(
        body(&parse(&update), 1)[0],
        (60, 470),
        "wraps to the last row"
    );
    board.set_direction(1, Direction::South);
    let (update, _) = board.tick();
    assert_eq!(
        body(&parse(&update), 1)[0],
        (60, 460),
        "south is a reversal"
    );
}

#[test]
fn snake_running_into_another_dies_and_the_other_is_rewarded() {
    // Seeded: where the dead snake starts again is then known not to be on the other one.
    let mut board = Board::with_seed(42);
    board.add_snake(1);
    board.add_snake(2);
    // 1 runs into 2's head
    board.place(1, Location { x: 100, y: 100 }, Direction::East);
    board.place(2, Location { x: 110, y: 100 }, Direction::None);
    let (update, notes) = board.tick();
    assert_eq!(notes.get(&1), Some(&vec![DEAD]));
    assert_eq!(notes.get(&2), Some(&vec![KILL]));
    let update = parse(&update);
    assert_eq!(
        body(&update, 1).len(),
        1,
        "a dead snake starts again, alone"
    );
    assert_eq!(body(&update, 2), [(110, 100)]);

    // The reward is one more cell: 2 now grows to 1 + DEFAULT_LENGTH + 1.
    board.place(2, Location { x: 0, y: 300 }, Direction::South);
    board.place(1, Location { x: 300, y: 0 }, Direction::None);
    let mut last = 0;
    for _ in 0..10 {
        let (update, notes) = board.tick();
        assert!(notes.is_empty(), "{notes:?}");
        last = body(&parse(&update), 2).len();
    }
    assert_eq!(last, DEFAULT_LENGTH + 2);
}

#[test]
fn snake_running_into_its_own_tail_dies() {
    let mut board = Board::new();
    board.add_snake(1);
    board.place(1, Location { x: 200, y: 200 }, Direction::East);
    for (direction, dies) in [
        (Direction::East, false),
        (Direction::South, false),
        (Direction::West, false),
        (Direction::North, true),
    ] {
        board.set_direction(1, direction);
        let (_, notes) = board.tick();
        assert_eq!(notes.contains_key(&1), dies, "{direction:?}: {notes:?}");
    }
    assert_eq!(board.tick().1.len(), 0, "reset: no direction, no collision");
}

// ---------- snake: on the wire ----------

/// Reads packets until one satisfies `pred`, for at most 5 s; returns it.
async fn wait_for(ws: &mut Ws, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let packet = parse(&recv_text(ws).await);
        if pred(&packet) {
            return packet;
        }
        assert!(Instant::now() < deadline, "no {what} within 5 s");
    }
}

fn is(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |p| p["type"] == kind
}

/// One step of `direction` from `from`, wrapped.
fn step((x, y): (i64, i64), direction: &str) -> (i64, i64) {
    match direction {
        "east" => ((x + 10) % 640, y),
        "west" => ((x + 630) % 640, y),
        "south" => (x, (y + 10) % 480),
        "north" => (x, (y + 470) % 480),
        _ => unreachable!(),
    }
}

/// Steers `id` (through `ws`) along one line for a few ticks, then sends the reverse (ignored).
/// `Err` if the snake died meanwhile (it started on the other snake's head: retry).
async fn steer(ws: &mut Ws, id: u64, other: u64) -> Result<(), ()> {
    let update = wait_for(ws, "update", is("update")).await;
    let (me, them) = (body(&update, id)[0], body(&update, other)[0]);
    // Stay off the other snake's row (or column): it does not move, so no collision.
    let (go, back) = if me.1 != them.1 {
        ("east", "west")
    } else {
        ("south", "north")
    };
    send_text(ws, go).await;
    let mut head = me;
    let mut moves = 0;
    let mut reversed = false;
    while moves < 8 {
        let packet = wait_for(ws, "update", |p| p["type"] != "join").await;
        if packet["type"] == "dead" {
            return Err(());
        }
        let now = body(&packet, id)[0];
        if now == head {
            assert_eq!(moves, 0, "the snake stopped: {packet}");
            continue; // the direction has not arrived yet
        }
        assert_eq!(now, step(head, go), "{go}: {packet}");
        head = now;
        moves += 1;
        if moves == 4 && !reversed {
            send_text(ws, back).await; // ignored: the snake keeps going
            reversed = true;
        }
    }
    assert_eq!(
        body(&wait_for(ws, "update", is("update")).await, id).len(),
        DEFAULT_LENGTH + 1,
        "the body is the head and a tail of {DEFAULT_LENGTH}"
    );
    Ok(())
}

#[tokio::test]
async fn snake_players_join_move_and_leave() {
    let srv = start(tomcat_snake::configure);
    assert!(get_page(&srv).await.contains("/websocket/snake"));
    let url = srv.url("/websocket/snake");

    // The first player gets the join list with its own snake.
    let mut a = connect(&url).await;
    let join = wait_for(&mut a, "join", is("join")).await;
    let a_id = *ids(&join).last().expect("a snake");
    assert!(tomcat_snake::timer_running(), "the game loop runs");

    // A second player: both get the join list with both snakes, in id order.
    let mut b = connect(&url).await;
    let join = wait_for(&mut b, "join", is("join")).await;
    let both = ids(&join);
    assert_eq!(both.len(), 2, "{join}");
    assert_eq!(both[0], a_id, "{join}");
    let b_id = both[1];
    for snake in join["data"].as_array().unwrap() {
        assert!(snake["color"].as_str().is_some_and(|c| c.starts_with('#')));
    }
    let join_a = wait_for(&mut a, "join", is("join")).await;
    assert_eq!(join_a, join);

    // Updates come every 100 ms, with both snakes; no direction yet: they stay put.
    let first = wait_for(&mut b, "update", is("update")).await;
    let started = Instant::now();
    let mut last = first.clone();
    for _ in 0..5 {
        last = wait_for(&mut b, "update", is("update")).await;
        assert_eq!(ids(&last), [a_id, b_id], "{last}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(350) && elapsed < Duration::from_secs(3),
        "5 ticks took {elapsed:?}"
    );
    assert_eq!(body(&last, a_id), body(&first, a_id));
    assert_eq!(body(&last, b_id), body(&first, b_id));

    // A direction moves the head one cell a tick; the reverse is refused.
    let mut attempts = 0;
    while steer(&mut a, a_id, b_id).await.is_err() {
        attempts += 1;
        assert!(attempts < 3, "the snake kept dying");
    }

    // A player leaves: the others are told, and the updates go on without its snake.
    b.close(None).await.unwrap();
    let leave = wait_for(&mut a, "leave", is("leave")).await;
    assert_eq!(leave, serde_json::json!({ "type": "leave", "id": b_id }));
    let update = wait_for(&mut a, "update", is("update")).await;
    assert_eq!(ids(&update), [a_id]);

    // The last one leaves: the game loop stops.
    a.close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while tomcat_snake::timer_running() {
        assert!(Instant::now() < deadline, "the game loop still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.stop().await;
}
