//! The chat example (`examples/chat.rs`), compiled into this test and driven over real
//! WebSockets on 127.0.0.1: the page, rooms, nicknames, join / leave notices, broadcasts and
//! error replies.

#[path = "../examples/chat.rs"]
mod chat;
mod common;

use common::*;
use serde_json::{json, Value};

fn start_chat() -> TestServer {
    start(chat::configure)
}

/// The next message, parsed as JSON.
async fn raw_event(ws: &mut Ws) -> Value {
    let text = recv_text(ws).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The next message, parsed as JSON; a message event's `id` (checked to be a message id) is
/// taken out.
async fn event(ws: &mut Ws) -> Value {
    let mut e = raw_event(ws).await;
    if e["kind"] == "message" {
        let id = e
            .as_object_mut()
            .unwrap()
            .remove("id")
            .unwrap_or_else(|| panic!("a message event without an id: {e}"));
        let id = id.as_str().expect("the id is a string");
        assert!(
            id.parse::<ws_endpoint::history::MessageId>().is_ok(),
            "{id}"
        );
    }
    e
}

/// Joins `room` (as `nick`, if given) and checks the welcome; returns the socket and the
/// nickname the server gave.
async fn join(srv: &TestServer, room: &str, nick: Option<&str>) -> (Ws, String) {
    let path = match nick {
        Some(nick) => format!("/chat/{room}?nick={nick}"),
        None => format!("/chat/{room}"),
    };
    let mut ws = connect(&srv.url(&path)).await;
    let welcome = event(&mut ws).await;
    assert_eq!(welcome["kind"], "welcome", "{welcome}");
    assert_eq!(welcome["room"], room, "{welcome}");
    let given = welcome["nick"].as_str().expect("nick").to_owned();
    if let Some(nick) = nick {
        assert_eq!(given, nick);
    }
    (ws, given)
}

async fn say(ws: &mut Ws, text: &str) {
    send_text(ws, &json!({ "text": text }).to_string()).await;
}

/// The chat's rooms are its endpoint's hub rooms, process-wide: tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn the_page_is_served_at_the_root() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let (status, response) = http_request(
        srv.addr,
        &format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            srv.addr
        ),
    )
    .await;
    assert_eq!(status, 200, "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: text/html"),
        "content type: {response}"
    );
    assert!(lower.contains("<!doctype html>"), "{response}");
    assert!(
        response.contains("/chat/"),
        "the page connects to /chat/{{room}}"
    );
    assert!(
        response.contains(r#"params.set("since", lastId)"#),
        "the page reconnects with since="
    );
    srv.stop().await;
}

#[tokio::test]
async fn joins_messages_and_leaves_stay_in_their_room() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let (mut ada, _) = join(&srv, "lobby", Some("ada")).await;
    let (mut bob, _) = join(&srv, "lobby", Some("bob")).await;
    let (mut carol, _) = join(&srv, "kitchen", Some("carol")).await;

    // bob's arrival is announced to ada, with who is there now
    assert_eq!(
        event(&mut ada).await,
        json!({ "kind": "join", "room": "lobby", "nick": "bob" })
    );

    // a message reaches everyone in the room, its sender included, with the right `from`
    say(&mut ada, "hello lobby").await;
    let expected =
        json!({ "kind": "message", "room": "lobby", "from": "ada", "text": "hello lobby" });
    assert_eq!(event(&mut ada).await, expected);
    assert_eq!(event(&mut bob).await, expected);
    say(&mut bob, "hi ada").await;
    assert_eq!(event(&mut ada).await["from"], "bob");
    assert_eq!(event(&mut bob).await["text"], "hi ada");

    // ... and nobody in another room: carol's next message is her own, not the lobby's
    say(&mut carol, "anyone here?").await;
    assert_eq!(
        event(&mut carol).await,
        json!({ "kind": "message", "room": "kitchen", "from": "carol", "text": "anyone here?" })
    );

    // bob hangs up: ada is told, carol is not
    bob.close(None).await.unwrap();
    assert_eq!(
        event(&mut ada).await,
        json!({ "kind": "leave", "room": "lobby", "nick": "bob" })
    );
    say(&mut carol, "still alone").await;
    assert_eq!(event(&mut carol).await["text"], "still alone");
    srv.stop().await;
}

#[tokio::test]
async fn a_message_that_is_not_json_gets_an_error_and_the_session_stays_open() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let (mut ada, _) = join(&srv, "lobby", Some("ada")).await;

    send_text(&mut ada, "this is not JSON").await;
    let reply = event(&mut ada).await;
    assert_eq!(reply["kind"], "error", "{reply}");
    assert!(
        reply["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{reply}"
    );

    send_text(&mut ada, r#"{"txet": "wrong field"}"#).await;
    assert_eq!(event(&mut ada).await["kind"], "error");

    say(&mut ada, "   ").await;
    assert_eq!(event(&mut ada).await["kind"], "error");

    say(&mut ada, "still here").await;
    assert_eq!(
        event(&mut ada).await,
        json!({ "kind": "message", "room": "lobby", "from": "ada", "text": "still here" })
    );
    srv.stop().await;
}

#[tokio::test]
async fn without_a_nickname_a_guest_name_is_given() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let (mut ada, _) = join(&srv, "lobby", Some("ada")).await;
    let (mut guest, nick) = join(&srv, "lobby", None).await;
    assert!(
        nick.strip_prefix("guest-")
            .is_some_and(|id| id.parse::<u64>().is_ok()),
        "{nick}"
    );
    let joined = event(&mut ada).await;
    assert_eq!(joined["kind"], "join");
    assert_eq!(joined["nick"], nick.as_str());

    say(&mut guest, "hello").await;
    assert_eq!(event(&mut ada).await["from"], nick.as_str());
    srv.stop().await;
}

#[tokio::test]
async fn nick_command_renames_for_everyone() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let (mut ada, _) = join(&srv, "lobby", Some("ada")).await;
    let (mut bob, _) = join(&srv, "lobby", Some("bob")).await;
    assert_eq!(event(&mut ada).await["kind"], "join");

    say(&mut ada, "/nick lovelace").await;
    let expected = json!({ "kind": "nick", "room": "lobby", "from": "ada", "to": "lovelace" });
    assert_eq!(event(&mut ada).await, expected);
    assert_eq!(event(&mut bob).await, expected);

    say(&mut ada, "new name").await;
    assert_eq!(event(&mut ada).await["from"], "lovelace");
    assert_eq!(event(&mut bob).await["from"], "lovelace");

    say(&mut ada, "/nick").await;
    assert_eq!(event(&mut ada).await["kind"], "error");

    // A nickname taken in the room is refused; the name stays.
    say(&mut ada, "/nick bob").await;
    assert_eq!(
        event(&mut ada).await,
        json!({ "kind": "error", "error": "the nickname bob is taken in this room" })
    );
    say(&mut ada, "still me").await;
    assert_eq!(event(&mut bob).await["from"], "lovelace");
    srv.stop().await;
}

/// Nicknames are unique in their room: a second `ada` is `ada-2`, so its messages and renames
/// can never pass for the first one's (whose page keeps its own name).
#[tokio::test]
async fn a_second_ada_in_a_room_is_ada_2() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let (mut ada, _) = join(&srv, "lobby", Some("ada")).await;
    let mut impostor = connect(&srv.url("/chat/lobby?nick=ada")).await;
    let welcome = event(&mut impostor).await;
    assert_eq!(
        welcome,
        json!({ "kind": "welcome", "room": "lobby", "nick": "ada-2", "members": ["ada", "ada-2"] })
    );
    assert_eq!(
        event(&mut ada).await,
        json!({ "kind": "join", "room": "lobby", "nick": "ada-2" })
    );
    say(&mut impostor, "/nick ada").await;
    assert_eq!(event(&mut impostor).await["kind"], "error");
    say(&mut impostor, "hi").await;
    assert_eq!(event(&mut ada).await["from"], "ada-2");
    assert_eq!(event(&mut impostor).await["from"], "ada-2");
    // In another room the name is free; once ada leaves, it is free here too.
    let (_kitchen, _) = join(&srv, "kitchen", Some("ada")).await;
    ada.close(None).await.unwrap();
    assert_eq!(
        event(&mut impostor).await,
        json!({ "kind": "leave", "room": "lobby", "nick": "ada" })
    );
    let (_again, _) = join(&srv, "lobby", Some("ada")).await;
    srv.stop().await;
}

/// Invisible and bidi characters are removed from nicknames; room names are percent-decoded
/// and cleaned the same way.
#[tokio::test]
async fn nicknames_and_rooms_lose_invisible_characters_and_rooms_are_decoded() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    // "a\u{200B}d\u{202E}a\u{2066}" is "ada" once cleaned, so it is taken as the first ada.
    let nick = "a%E2%80%8Bd%E2%80%AEa%E2%81%A6";
    let mut ws = connect(&srv.url(&format!("/chat/c%2B%2B?nick={nick}"))).await;
    assert_eq!(
        event(&mut ws).await,
        json!({ "kind": "welcome", "room": "c++", "nick": "ada", "members": ["ada"] })
    );
    let mut other = connect(&srv.url(&format!("/chat/c%2B%2B%E2%80%8B?nick={nick}"))).await;
    assert_eq!(
        event(&mut other).await,
        json!({ "kind": "welcome", "room": "c++", "nick": "ada-2", "members": ["ada", "ada-2"] })
    );
    assert_eq!(
        chat::clean_nick("\u{202E}evil\u{200D}"),
        Some("evil".to_owned())
    );
    assert_eq!(chat::clean_nick("\u{200B}\u{2066}"), None);
    srv.stop().await;
}

/// A room name that is empty once cleaned, too long, not UTF-8 or with control characters is
/// refused before the upgrade.
#[tokio::test]
async fn bad_room_names_are_refused_with_400() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let long = "r".repeat(chat::MAX_ROOM_CHARS + 1);
    for (room, why) in [
        ("%00", "control characters"),
        ("a%0Ab", "control characters"),
        ("%FF%FE", "not valid UTF-8"),
        ("%E2%80%8B", "empty"),
        (long.as_str(), "at most 64"),
    ] {
        let (status, head) = http_request(
            srv.addr,
            &upgrade_request(srv.addr, &format!("/chat/{room}"), ""),
        )
        .await;
        assert_eq!(status, 400, "{room}: {head}");
        assert!(head.contains(why), "{room}: {head}");
    }
    let ok = "r".repeat(chat::MAX_ROOM_CHARS);
    let (_ws, _) = join(&srv, &ok, Some("ada")).await;
    srv.stop().await;
}

/// A join costs the same in a full room: the others get the change, not the member list.
#[tokio::test]
async fn join_and_leave_carry_the_member_not_the_list() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let (mut first, _) = join(&srv, "big", Some("first")).await;
    let mut others = Vec::new();
    for i in 0..50 {
        let (ws, _) = join(&srv, "big", Some(&format!("m{i}"))).await;
        others.push(ws);
        let ev = event(&mut first).await;
        assert_eq!(
            ev,
            json!({ "kind": "join", "room": "big", "nick": format!("m{i}") })
        );
    }
    // The newcomer alone gets the whole list.
    let mut last = connect(&srv.url("/chat/big?nick=last")).await;
    let welcome = event(&mut last).await;
    assert_eq!(welcome["members"].as_array().unwrap().len(), 52);
    srv.stop().await;
}

/// One client writes 300 messages in a single TCP write; the room's three healthy readers and
/// the sender itself each get all 300, in order, under the default `drop_messages` policy (the
/// outbound queues are bounded in bytes, and 300 chat lines are far below the budget).
/// A client that lost its connection reconnects with the id of the last message it saw: it
/// gets the welcome, then what was said meanwhile (once, in order, as message events), then the
/// live messages; an id the history does not hold gets a `gap` event.
#[tokio::test]
async fn a_client_that_reconnects_with_since_gets_what_it_missed() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let (mut ada, _) = join(&srv, "recover", Some("ada")).await;
    let (mut bob, _) = join(&srv, "recover", Some("bob")).await;
    assert_eq!(event(&mut ada).await["kind"], "join");
    say(&mut bob, "m1").await;
    let m1 = raw_event(&mut bob).await;
    assert_eq!(raw_event(&mut ada).await, m1, "the same event, id included");
    let id1 = m1["id"].as_str().unwrap().to_owned();

    bob.close(None).await.unwrap();
    assert_eq!(event(&mut ada).await["kind"], "leave");
    let mut missed = Vec::new();
    for text in ["m2", "m3"] {
        say(&mut ada, text).await;
        missed.push(raw_event(&mut ada).await);
    }
    let mut bob = connect(&srv.url(&format!("/chat/recover?nick=bob&since={id1}"))).await;
    let welcome = event(&mut bob).await;
    assert_eq!(welcome["kind"], "welcome");
    assert_eq!(welcome["members"], json!(["ada", "bob"]));
    for want in &missed {
        assert_eq!(&raw_event(&mut bob).await, want);
    }
    assert_eq!(event(&mut ada).await["kind"], "join");
    say(&mut ada, "m4").await;
    let m4 = raw_event(&mut bob).await;
    assert_eq!(m4["text"], "m4");
    let id = |e: &Value| -> ws_endpoint::history::MessageId {
        e["id"].as_str().unwrap().parse().unwrap()
    };
    assert!(id(&m4) > id(&missed[1]) && id(&missed[1]) > id(&missed[0]));
    assert_eq!(raw_event(&mut ada).await, m4);

    // an id the room's history does not hold: a gap; one that is not an id: an error
    let mut cy = connect(&srv.url("/chat/recover?nick=cy&since=1-0")).await;
    assert_eq!(event(&mut cy).await["kind"], "welcome");
    assert_eq!(
        event(&mut cy).await,
        json!({ "kind": "gap", "room": "recover", "since": "1-0" })
    );
    let mut dee = connect(&srv.url("/chat/recover?nick=dee&since=soon")).await;
    let error = event(&mut dee).await;
    assert_eq!(error["kind"], "error");
    assert!(error["error"]
        .as_str()
        .unwrap()
        .starts_with("since: `soon` is not a message id"));
    assert_eq!(event(&mut dee).await["kind"], "welcome");
    srv.stop().await;
}

#[tokio::test]
async fn a_burst_of_300_in_one_write_reaches_every_reader_in_order() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let mut readers = Vec::new();
    for nick in ["ada", "bob", "carol"] {
        readers.push(join(&srv, "lobby", Some(nick)).await.0);
    }
    let mut dan = Raw::connect(srv.addr, "/chat/lobby?nick=dan").await;
    let burst: Vec<u8> = (0..300)
        .flat_map(|i| {
            Raw::frame(
                0x81,
                json!({ "text": format!("m{i}") }).to_string().as_bytes(),
            )
        })
        .collect();
    dan.send_raw(&burst).await;

    for ws in &mut readers {
        let mut got = Vec::new();
        while got.len() < 300 {
            let e = event(ws).await;
            if e["kind"] == "message" {
                assert_eq!(e["from"], "dan", "{e}");
                got.push(e["text"].as_str().unwrap().to_owned());
            }
        }
        let want: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
        assert_eq!(got, want);
    }
    let mut own = 0;
    while own < 300 {
        match dan.read_frame().await {
            RawFrame::Frame { payload, .. } => {
                let e: Value = serde_json::from_slice(&payload).unwrap();
                if e["kind"] == "message" {
                    assert_eq!(e["text"], format!("m{own}"));
                    own += 1;
                }
            }
            RawFrame::Eof => panic!("the sender's connection ended after {own} of its echoes"),
        }
    }
    srv.stop().await;
}

/// `/metrics` after some traffic: the counters moved, with the endpoint's path as a label.
#[tokio::test]
async fn metrics_are_served_in_the_prometheus_format_after_traffic() {
    let _serial = SERIAL.lock().await;
    chat::install_metrics();
    let srv = start_chat();
    let (mut ada, _) = join(&srv, "metrics", Some("ada")).await;
    for i in 0..3 {
        say(&mut ada, &format!("line {i}")).await;
        assert_eq!(event(&mut ada).await["kind"], "message");
    }
    // A refused handshake is counted too.
    let (status, _) = http_request(srv.addr, &upgrade_request(srv.addr, "/chat/%00", "")).await;
    assert_eq!(status, 400);
    let (status, page) = http_request(
        srv.addr,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            srv.addr
        ),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let value = |name: &str, labels: &str| -> f64 {
        page.lines()
            .find(|l| l.starts_with(name) && labels.split(',').all(|lab| l.contains(lab)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} {{{labels}}} in:\n{page}"))
    };
    let ep = r#"endpoint="/chat/{room}""#;
    assert!(value("ws_endpoint_sessions_opened_total", ep) >= 1.0);
    assert!(value("ws_endpoint_sessions_open", ep) >= 1.0);
    assert!(
        value(
            "ws_endpoint_messages_received_total",
            &format!("{ep},kind=\"text\"")
        ) >= 3.0
    );
    assert!(
        value(
            "ws_endpoint_messages_sent_total",
            &format!("{ep},kind=\"text\"")
        ) >= 4.0
    );
    assert!(
        value(
            "ws_endpoint_handshakes_refused_total",
            &format!("{ep},reason=\"handshake\"")
        ) >= 1.0
    );
    assert!(value("ws_endpoint_handler_seconds_count", ep) >= 3.0);
    srv.stop().await;
}

/// What a browser does: it offers permessage-deflate (Chromium's offer, byte for byte), and the
/// chat answers it; the room's events then arrive compressed (RSV1) and inflate to the JSON a
/// page parses.
#[tokio::test]
async fn a_browser_s_deflate_offer_is_accepted_and_events_arrive_compressed() {
    let _serial = SERIAL.lock().await;
    let srv = start_chat();
    let offer = format!(
        "Origin: http://{}\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        srv.addr
    );
    let mut raw = Raw::connect_with(srv.addr, "/chat/deflate?nick=ada", &offer).await;
    assert!(
        raw.head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        "{}",
        raw.head
    );
    let inflate = |payload: &[u8]| -> Value {
        let mut out = Vec::new();
        ws_endpoint::wire::deflate::inflate_shared(payload, 1 << 20, &mut out, |_| Ok(())).unwrap();
        serde_json::from_slice(&out).unwrap()
    };
    let RawFrame::Frame { payload, .. } = raw.read_frame().await else {
        panic!("no welcome")
    };
    let welcome = if raw.last_rsv1 {
        inflate(&payload)
    } else {
        serde_json::from_slice(&payload).unwrap()
    };
    assert_eq!(welcome["kind"], "welcome", "{welcome}");
    // A long line (the client sends it uncompressed: RSV1 is per message) comes back to the
    // room compressed, and much smaller than it is.
    let line = "the quick brown fox jumps over the lazy dog; ".repeat(20);
    raw.send_frame(0x81, json!({ "text": line }).to_string().as_bytes())
        .await;
    loop {
        let RawFrame::Frame { payload, .. } = raw.read_frame().await else {
            panic!("connection ended")
        };
        if !raw.last_rsv1 {
            continue; // a short event (under 64 bytes) goes uncompressed
        }
        let event = inflate(&payload);
        if event["kind"] == "message" {
            assert_eq!(event["text"], line.trim_end());
            assert!(
                payload.len() * 3 < line.len(),
                "{} bytes on the wire",
                payload.len()
            );
            break;
        }
    }
}

/// The terminal client (`examples/chat_client.rs`), run as the program `cargo` built, talking
/// to the chat server: what it prints, and what it sends from its standard input.
#[tokio::test]
async fn the_terminal_client_prints_events_and_sends_its_input() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
    let _one = SERIAL.lock().await;
    let srv = start_chat();
    // target/debug/deps/chat_example-… → target/debug/examples/chat_client
    let exe = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join(format!("chat_client{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.exists(),
        "cargo test builds the examples: {}",
        exe.display()
    );
    let mut child = tokio::process::Command::new(&exe)
        .arg(srv.url("/chat/terminal?nick=bob"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chat_client");
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdin = child.stdin.take().unwrap();
    macro_rules! printed {
        () => {
            tokio::time::timeout(WAIT, out.next_line())
                .await
                .expect("a line within the wait")
                .expect("stdout readable")
                .expect("a line, not the end")
        };
    }
    assert_eq!(printed!(), "* you are bob in terminal; here: bob");

    let (mut ada, _) = join(&srv, "terminal", Some("ada")).await;
    assert_eq!(printed!(), "* ada joined");
    say(&mut ada, "hi bob").await;
    assert_eq!(event(&mut ada).await["text"], "hi bob");
    assert_eq!(printed!(), "<ada> hi bob");

    stdin.write_all("hello ada ✓\n".as_bytes()).await.unwrap();
    let heard = event(&mut ada).await;
    assert_eq!(
        (heard["from"].as_str(), heard["text"].as_str()),
        (Some("bob"), Some("hello ada ✓"))
    );
    assert_eq!(printed!(), "<bob> hello ada ✓");

    // End of input: the client leaves with a close handshake and exits 0.
    drop(stdin);
    let left = event(&mut ada).await;
    assert_eq!(
        (left["kind"].as_str(), left["nick"].as_str()),
        (Some("leave"), Some("bob"))
    );
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status}");
    srv.stop().await;
}
