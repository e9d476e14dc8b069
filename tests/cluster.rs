//! Broadcasts and rooms across processes through Redis (feature `redis`): two server processes
//! (`cluster-node`) sharing one `redis-server` started on 127.0.0.1 by the test, which also
//! restarts it mid-test. Run with `bash scripts/redis-tests.sh` (installs redis-server if
//! missing) or `cargo test --features redis --test cluster`.
#![cfg(feature = "redis")]

mod common;

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_redis(port: u16) -> Proc {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server not found: run `bash scripts/redis-tests.sh`, which installs it");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

/// The presence TTL the nodes run with here: a killed node's sessions vanish within it.
const TTL_MS: u64 = 1500;

/// Starts a `cluster-node` process; returns it and its address.
fn start_node(redis_port: u16) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cluster-node"))
        .arg(format!("redis://127.0.0.1:{redis_port}/"))
        .env("RUST_LOG", "warn")
        .env("CLUSTER_TTL_MS", TTL_MS.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cluster-node");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected node output: {line}"))
        .to_owned();
    (Proc(child), addr)
}

async fn silent(ws: &mut Ws) -> bool {
    tokio::time::timeout(Duration::from_millis(300), recv(ws))
        .await
        .is_err()
}

#[tokio::test]
async fn rooms_and_broadcasts_span_processes_and_survive_a_redis_restart() {
    let redis_port = free_port();
    let mut redis = start_redis(redis_port);
    let (_node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);

    let mut a1 = connect(&format!("ws://{a}/node/x")).await;
    let mut b1 = connect(&format!("ws://{b}/node/x")).await;
    let mut b2 = connect(&format!("ws://{b}/node/y")).await;
    // every session has opened (and joined its room) once it answers
    for ws in [&mut a1, &mut b1, &mut b2] {
        send_text(ws, "join:z").await;
        assert_eq!(recv_text(ws).await, "joined:true");
    }

    // a room spans both processes; exactly once per member; non-members get nothing
    send_text(&mut a1, "room:x:hello").await;
    assert_eq!(recv_text(&mut a1).await, "hello");
    assert_eq!(recv_text(&mut b1).await, "hello");
    assert!(silent(&mut b2).await, "b2 is not in room x");
    assert!(
        silent(&mut a1).await && silent(&mut b1).await,
        "delivered twice"
    );

    // endpoint-wide broadcast, and all-but-the-sender
    send_text(&mut b2, "all:everyone").await;
    for ws in [&mut a1, &mut b1, &mut b2] {
        assert_eq!(recv_text(ws).await, "everyone");
    }
    send_text(&mut a1, "others:psst").await;
    assert_eq!(recv_text(&mut b1).await, "psst");
    assert_eq!(recv_text(&mut b2).await, "psst");
    assert!(silent(&mut a1).await);

    // join and leave on one node are what messages from the other node follow
    send_text(&mut b2, "join:x").await;
    assert_eq!(recv_text(&mut b2).await, "joined:true");
    send_text(&mut a1, "room:x:with b2").await;
    for ws in [&mut a1, &mut b1, &mut b2] {
        assert_eq!(recv_text(ws).await, "with b2");
    }
    send_text(&mut b2, "leave:x").await;
    assert_eq!(recv_text(&mut b2).await, "left:true");
    send_text(&mut a1, "room:x:without b2").await;
    assert_eq!(recv_text(&mut a1).await, "without b2");
    assert_eq!(recv_text(&mut b1).await, "without b2");
    assert!(silent(&mut b2).await);

    // Redis goes away: local members still get room messages at once; the other process gets
    // them late (once the link is back and it has resubscribed) or not at all, never twice
    drop(redis);
    send_text(&mut a1, "room:x:during the outage").await;
    assert_eq!(recv_text(&mut a1).await, "during the outage");
    assert!(
        silent(&mut b1).await,
        "b1 got a message while Redis was down"
    );

    // Redis is back on the same port: both nodes reconnect and resubscribe by themselves
    redis = start_redis(redis_port);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    let mut late = 0;
    'recovered: loop {
        assert!(Instant::now() < deadline, "nodes did not resubscribe");
        n += 1;
        send_text(&mut a1, &format!("room:x:probe {n}")).await;
        assert_eq!(recv_text(&mut a1).await, format!("probe {n}"));
        while let Ok(msg) = tokio::time::timeout(Duration::from_millis(300), recv(&mut b1)).await {
            let text = msg.into_text().unwrap().to_string();
            if text == "during the outage" {
                late += 1;
                continue;
            }
            assert!(text.starts_with("probe "), "b1 got {text}");
            break 'recovered;
        }
    }
    assert!(late <= 1, "the outage message arrived {late} times");
    println!(
        "after the restart: {n} probes until b1 heard one; outage message delivered late: {late}"
    );
    send_text(&mut b1, "room:x:after").await;
    assert_eq!(recv_text(&mut a1).await, "after");
    assert_eq!(recv_text(&mut b1).await, "after");
    drop(redis);
}

#[tokio::test]
async fn two_chat_servers_share_their_rooms() {
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let (_node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);

    let json = |text: String| -> Value { serde_json::from_str(&text).unwrap() };
    let mut ada = connect(&format!("ws://{a}/chat/lobby?nick=ada")).await;
    assert_eq!(json(recv_text(&mut ada).await)["kind"], "welcome");
    let mut bob = connect(&format!("ws://{b}/chat/lobby?nick=bob")).await;
    let mut welcome = json(recv_text(&mut bob).await);
    let mut late_join = false;
    if welcome["kind"] == "join" && welcome["nick"] == "ada" {
        late_join = true; // see below: ada's join reached server B after bob joined
        welcome = json(recv_text(&mut bob).await);
    }
    assert_eq!(welcome["kind"], "welcome", "{welcome}");
    // The member list spans the servers: ada (on A) is listed for bob (on B).
    assert_eq!(
        welcome["members"],
        serde_json::json!(["ada", "bob"]),
        "{welcome}"
    );
    let join = json(recv_text(&mut ada).await);
    assert_eq!(
        (join["kind"].as_str(), join["nick"].as_str()),
        (Some("join"), Some("bob"))
    );

    send_text(&mut ada, r#"{"text": "hi from server A"}"#).await;
    for ws in [&mut ada, &mut bob] {
        let mut msg = json(recv_text(ws).await);
        // ada's own join, published by server A before bob connected, may reach server B
        // after bob has joined the room there (pub/sub gives no order across servers): bob then
        // sees it, late. Anything else before the message is a failure.
        if msg["kind"] == "join" && msg["nick"] == "ada" && !late_join {
            late_join = true;
            msg = json(recv_text(ws).await);
        }
        assert_eq!(msg["kind"], "message", "{msg}");
        assert_eq!(msg["from"], "ada");
        assert_eq!(msg["text"], "hi from server A");
    }
    drop(bob);
    let leave = json(recv_text(&mut ada).await);
    assert_eq!(
        (leave["kind"].as_str(), leave["nick"].as_str()),
        (Some("leave"), Some("bob"))
    );
}

/// The next chat event, skipping a late `join` of `skip` (pub/sub gives no order across
/// servers: a join published just before someone else joined may reach them after).
async fn event_skipping_join(ws: &mut Ws, skip: &[&str]) -> Value {
    loop {
        let e: Value = serde_json::from_str(&recv_text(ws).await).unwrap();
        if e["kind"] == "join" && skip.iter().any(|n| e["nick"] == *n) {
            continue;
        }
        return e;
    }
}

#[tokio::test]
async fn presence_spans_servers_and_a_killed_servers_members_leave_once() {
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let (_node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);
    let (node_c, c) = start_node(redis_port);

    let json = |text: String| -> Value { serde_json::from_str(&text).unwrap() };
    let mut ada = connect(&format!("ws://{a}/chat/lobby?nick=ada")).await;
    assert_eq!(
        json(recv_text(&mut ada).await)["members"],
        serde_json::json!(["ada"])
    );
    let mut bob = connect(&format!("ws://{b}/chat/lobby?nick=bob")).await;
    let welcome = event_skipping_join(&mut bob, &["ada"]).await;
    assert_eq!(
        welcome["members"],
        serde_json::json!(["ada", "bob"]),
        "{welcome}"
    );
    // A second ada, on another server, is given another name.
    let mut ada2 = connect(&format!("ws://{c}/chat/lobby?nick=ada")).await;
    let welcome = event_skipping_join(&mut ada2, &["ada", "bob"]).await;
    assert_eq!(welcome["nick"], "ada-2", "{welcome}");
    assert_eq!(
        welcome["members"],
        serde_json::json!(["ada", "ada-2", "bob"])
    );
    for ws in [&mut ada, &mut bob] {
        let join = event_skipping_join(ws, &["ada", "bob"]).await;
        assert_eq!(
            (join["kind"].as_str(), join["nick"].as_str()),
            (Some("join"), Some("ada-2"))
        );
    }

    // Server C dies (SIGKILL): no close frames, no leave from it. Within the TTL its session
    // vanishes from the presence, and exactly one survivor tells the room.
    drop(node_c);
    for ws in [&mut ada, &mut bob] {
        let leave = tokio::time::timeout(
            Duration::from_millis(4 * TTL_MS + 5000),
            event_skipping_join(ws, &[]),
        )
        .await
        .expect("a leave within the TTL");
        assert_eq!(
            (leave["kind"].as_str(), leave["nick"].as_str()),
            (Some("leave"), Some("ada-2")),
            "{leave}"
        );
    }
    // Gone from the presence: a newcomer's list no longer has it.
    let mut dan = connect(&format!("ws://{a}/chat/lobby?nick=dan")).await;
    let welcome = json(recv_text(&mut dan).await);
    assert_eq!(
        welcome["members"],
        serde_json::json!(["ada", "bob", "dan"]),
        "{welcome}"
    );
    for ws in [&mut ada, &mut bob] {
        let join = event_skipping_join(ws, &[]).await;
        assert_eq!(join["nick"], "dan", "{join}");
    }
    // Exactly once: the next event after the leave is this message, not a second leave.
    send_text(&mut bob, r#"{"text": "still here"}"#).await;
    for ws in [&mut ada, &mut bob, &mut dan] {
        let next = json(recv_text(ws).await);
        assert_eq!(
            (next["kind"].as_str(), next["text"].as_str()),
            (Some("message"), Some("still here")),
            "{next}"
        );
    }
    drop(ada2);
}

#[tokio::test]
async fn to_user_and_to_session_reach_sessions_on_other_servers() {
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let (_node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);

    // grace has a session on each server; lin one on B.
    let mut grace_a = connect(&format!("ws://{a}/node/x")).await;
    let mut grace_b = connect(&format!("ws://{b}/node/y")).await;
    let mut lin_b = connect(&format!("ws://{b}/node/z")).await;
    for (ws, user) in [
        (&mut grace_a, "grace"),
        (&mut grace_b, "grace"),
        (&mut lin_b, "lin"),
    ] {
        send_text(ws, &format!("user:{user}")).await;
        assert_eq!(recv_text(ws).await, "user:true");
    }
    send_text(&mut lin_b, "count").await;
    assert_eq!(recv_text(&mut lin_b).await, "count:3");

    // From B, to the user grace: both her sessions, on A and on B.
    send_text(&mut lin_b, "to_user:grace:hello grace").await;
    assert_eq!(recv_text(&mut grace_a).await, "hello grace");
    assert_eq!(recv_text(&mut grace_b).await, "hello grace");
    assert!(silent(&mut lin_b).await);

    // From A, to lin's one session on B, by its cluster id.
    send_text(&mut lin_b, "id").await;
    let id = recv_text(&mut lin_b)
        .await
        .strip_prefix("id:")
        .unwrap()
        .to_owned();
    send_text(&mut grace_a, &format!("to_session:{id}:just you")).await;
    assert_eq!(recv_text(&mut lin_b).await, "just you");
    assert!(silent(&mut grace_b).await);
}

/// `ID|TEXT` → (ID, TEXT), from the history probe (`tests/support/history_probe.rs`).
fn recorded(msg: &str) -> (String, String) {
    let (id, text) = msg
        .split_once('|')
        .unwrap_or_else(|| panic!("not a recorded message: {msg}"));
    (id.to_owned(), text.to_owned())
}

/// Clients reconnect to either server, with the last id they saw, while a client of the first
/// keeps recording: each gets every message after its id exactly once, in the stream's order
/// and with the same ids everywhere, across the seam between the replay and the live messages.
#[tokio::test]
async fn recovery_across_servers_has_no_gap_and_no_duplicate_at_the_seam() {
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let (_node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);

    let mut ada = connect(&format!("ws://{a}/rec/seam")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    let mut bob = connect(&format!("ws://{b}/rec/seam")).await;
    assert_eq!(recv_text(&mut bob).await, "welcome");
    const N: usize = 300;
    send_text(&mut ada, &format!("burst:{N}:n")).await;
    let mut ids = Vec::with_capacity(N);
    let mut joiners = Vec::new();
    for i in 0..N {
        let (id, text) = recorded(&recv_text(&mut ada).await);
        assert_eq!(text, format!("n{i}"));
        // bob, live on the other server, gets the same message with the same id
        assert_eq!(recorded(&recv_text(&mut bob).await), (id.clone(), text));
        if let Some(server) = match i {
            20 | 150 => Some(b.clone()),
            80 => Some(a.clone()),
            _ => None,
        } {
            let url = format!("ws://{server}/rec/seam?since={id}&pause=100");
            joiners.push((i, tokio::spawn(async move { connect(&url).await })));
        }
        ids.push(id);
    }
    let mut caught_up = Vec::new();
    for (from, joiner) in joiners {
        let mut ws = joiner.await.unwrap();
        assert_eq!(recv_text(&mut ws).await, "welcome");
        for (i, id) in ids.iter().enumerate().skip(from + 1) {
            let got = recorded(&recv_text(&mut ws).await);
            assert_eq!(got, (id.clone(), format!("n{i}")), "joiner since n{from}");
        }
        caught_up.push((from, ws));
    }
    send_text(&mut bob, "say:end").await;
    assert_eq!(recorded(&recv_text(&mut ada).await).1, "end");
    assert_eq!(recorded(&recv_text(&mut bob).await).1, "end");
    for (from, mut ws) in caught_up {
        assert_eq!(recorded(&recv_text(&mut ws).await).1, "end");
        assert!(silent(&mut ws).await, "joiner since n{from} got more");
    }
}

/// The local port of `pid`'s TCP connection to 127.0.0.1:`port` (Linux: the process's socket
/// inodes in `/proc/PID/fd`, matched in `/proc/PID/net/tcp`).
fn local_port_to(pid: u32, port: u16) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    tcp.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, inode) = (f.get(1)?, f.get(2)?, f.get(9)?);
        let remote_port = u16::from_str_radix(remote.split(':').nth(1)?, 16).ok()?;
        (remote_port == port && inodes.iter().any(|i| i == inode))
            .then(|| u16::from_str_radix(local.split(':').nth(1)?, 16).ok())
            .flatten()
    })
}

/// One server's connection to Redis is cut (Redis stays up) while the other records a burst:
/// the cut server catches up from the stream when it resubscribes, so its client gets every
/// message once and in order.
#[tokio::test]
async fn a_server_whose_subscription_was_cut_catches_up_from_the_stream() {
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let (node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);
    let mut ada = connect(&format!("ws://{a}/rec/cut")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    let mut bob = connect(&format!("ws://{b}/rec/cut")).await;
    assert_eq!(recv_text(&mut bob).await, "welcome");
    send_text(&mut bob, "say:before").await;
    assert_eq!(recorded(&recv_text(&mut ada).await).1, "before");
    assert_eq!(recorded(&recv_text(&mut bob).await).1, "before");

    // B records a long burst; A's one connection (its subscription) is cut in the middle.
    const N: usize = 1000;
    send_text(&mut bob, &format!("burst:{N}:m")).await;
    for i in 0..N {
        assert_eq!(
            recorded(&recv_text(&mut ada).await).1,
            format!("m{i}"),
            "ada, with A's connection cut after m100"
        );
        if i == 100 {
            cut(&node_a, redis_port, false);
        }
    }
    for i in 0..N {
        assert_eq!(recorded(&recv_text(&mut bob).await).1, format!("m{i}"));
    }
    assert!(silent(&mut ada).await, "ada got something twice");
}

/// Redis restarts without persistence: the history is gone. Recorded sends fail while it is
/// down (nobody gets them); once it is back, the servers find that the rooms' streams lost
/// what they had delivered and close the rooms' members with 1012, and a client that
/// reconnects with its last id is told that it is not in the history.
#[tokio::test]
async fn a_redis_restart_loses_the_history_and_the_clients_are_told() {
    let redis_port = free_port();
    let mut redis = start_redis(redis_port);
    let (_node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);
    let mut ada = connect(&format!("ws://{a}/rec/gone")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    let mut bob = connect(&format!("ws://{b}/rec/gone")).await;
    assert_eq!(recv_text(&mut bob).await, "welcome");
    send_text(&mut ada, "say:m1").await;
    let (id, _) = recorded(&recv_text(&mut ada).await);
    assert_eq!(
        recorded(&recv_text(&mut bob).await),
        (id.clone(), "m1".to_owned())
    );

    drop(redis);
    send_text(&mut ada, "say:m2").await;
    let reply = recv_text(&mut ada).await;
    assert!(
        reply.starts_with("error:room history unavailable"),
        "{reply}"
    );
    assert!(
        silent(&mut bob).await,
        "a message that was not recorded was delivered"
    );

    redis = start_redis(redis_port);
    for ws in [&mut ada, &mut bob] {
        let closed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                    Some(Ok(Message::Text(t))) => panic!("got {t} before the close"),
                    Some(Ok(_)) => continue,
                    other => panic!("no close frame: {other:?}"),
                }
            }
        })
        .await
        .expect("not closed within 30 s of Redis coming back");
        assert_eq!(closed, 1012);
    }
    let mut bob = connect(&format!("ws://{b}/rec/gone?since={id}")).await;
    assert_eq!(recv_text(&mut bob).await, "welcome");
    let lost = recv_text(&mut bob).await;
    assert!(
        lost.starts_with(&format!("lost:message {id} is not in")),
        "{lost}"
    );
    // and the room records again, from a new history
    send_text(&mut bob, "say:again").await;
    assert_eq!(recorded(&recv_text(&mut bob).await).1, "again");
    drop(redis);
}

/// The chat example on two servers: a client that dropped from one server reconnects to the
/// other with `?since=` and gets what was said meanwhile, once and in order, then live messages.
#[tokio::test]
async fn a_chat_client_reconnects_to_the_other_server_and_gets_what_it_missed() {
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let (_node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);
    let say = |text: &str| serde_json::json!({ "text": text }).to_string();
    // the next message event (joins and leaves, which travel unordered, are skipped)
    async fn message(ws: &mut Ws) -> Value {
        loop {
            let e: Value = serde_json::from_str(&recv_text(ws).await).unwrap();
            if e["kind"] == "message" {
                return e;
            }
        }
    }
    let mut ada = connect(&format!("ws://{a}/chat/again?nick=ada")).await;
    let mut bob = connect(&format!("ws://{b}/chat/again?nick=bob")).await;
    send_text(&mut ada, &say("m1")).await;
    let m1 = message(&mut ada).await;
    assert_eq!(
        message(&mut bob).await,
        m1,
        "the same event and id on both servers"
    );
    drop(bob);
    let mut missed = Vec::new();
    for text in ["m2", "m3"] {
        send_text(&mut ada, &say(text)).await;
        missed.push(message(&mut ada).await);
    }
    let since = m1["id"].as_str().unwrap();
    let mut bob = connect(&format!("ws://{a}/chat/again?nick=bob&since={since}")).await;
    for want in &missed {
        assert_eq!(&message(&mut bob).await, want);
    }
    send_text(&mut ada, &say("m4")).await;
    assert_eq!(message(&mut bob).await["text"], "m4");
}

/// Cuts `node`'s connection to Redis (`CLIENT KILL`, as the test's `admin` user if `admin`);
/// Redis stays up and the node reconnects by itself.
fn cut(node: &Proc, redis_port: u16, admin: bool) {
    let port = local_port_to(node.0.id(), redis_port).expect("the node's connection to Redis");
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(
        redis_cli(redis_port, admin, &["CLIENT", "KILL", "ADDR", &addr]),
        "1"
    );
}

/// `redis-cli -p PORT ARGS…` (as the test's `admin` user if `admin`); its output.
fn redis_cli(port: u16, admin: bool, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &port.to_string()]);
    if admin {
        cmd.args(["--user", "admin", "--pass", "admin", "--no-auth-warning"]);
    }
    let out = cmd
        .args(args)
        .output()
        .expect("redis-cli (installed with redis-server)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A server is kept away from Redis (its connection cut, and the servers' user disabled so that
/// it cannot come back) while another records into rooms in which the first has members but
/// has delivered nothing yet, and has seen nothing on the channel at all: when it is back, it
/// reads those rooms' streams from Redis's clock at the time it subscribed. In two `/rec` rooms
/// (which keep 1,000), written in turn, its members get every message once, in order (the
/// first room caught up does not move the other's starting point); in `/short` (which keeps
/// 5) 8 were recorded, so 3 are lost for good and its member is closed with 1012 (its client
/// then reconnects with its last id and is told).
#[tokio::test]
async fn a_server_kept_away_catches_up_on_rooms_it_had_delivered_nothing_to() {
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let (node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);
    let mut ada = connect(&format!("ws://{a}/rec/fresh")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    let mut bob = connect(&format!("ws://{b}/rec/fresh")).await;
    assert_eq!(recv_text(&mut bob).await, "welcome");
    let mut eve = connect(&format!("ws://{a}/rec/other")).await;
    assert_eq!(recv_text(&mut eve).await, "welcome");
    let mut fay = connect(&format!("ws://{b}/rec/other")).await;
    assert_eq!(recv_text(&mut fay).await, "welcome");
    let mut cy = connect(&format!("ws://{a}/short/over")).await;
    assert_eq!(recv_text(&mut cy).await, "welcome");
    let mut dee = connect(&format!("ws://{b}/short/over")).await;
    assert_eq!(recv_text(&mut dee).await, "welcome");

    let port = redis_port;
    redis_cli(
        port,
        false,
        &[
            "ACL", "SETUSER", "admin", "on", ">admin", "~*", "&*", "+@all",
        ],
    );
    // existing connections stay; new ones as `default` are refused
    redis_cli(port, true, &["ACL", "SETUSER", "default", "off"]);
    cut(&node_a, port, true);
    for i in 0..20 {
        send_text(&mut bob, &format!("say:m{i}")).await;
        assert_eq!(recorded(&recv_text(&mut bob).await).1, format!("m{i}"));
        send_text(&mut fay, &format!("say:o{i}")).await;
        assert_eq!(recorded(&recv_text(&mut fay).await).1, format!("o{i}"));
    }
    for i in 0..8 {
        send_text(&mut dee, &format!("say:s{i}")).await;
        assert_eq!(recorded(&recv_text(&mut dee).await).1, format!("s{i}"));
    }
    assert!(
        silent(&mut ada).await,
        "A is away: nothing can reach ada yet"
    );
    redis_cli(port, true, &["ACL", "SETUSER", "default", "on"]);
    for i in 0..20 {
        assert_eq!(recorded(&recv_text(&mut ada).await).1, format!("m{i}"));
        assert_eq!(recorded(&recv_text(&mut eve).await).1, format!("o{i}"));
    }
    send_text(&mut bob, "say:live").await;
    assert_eq!(recorded(&recv_text(&mut ada).await).1, "live");
    send_text(&mut fay, "say:live").await;
    assert_eq!(recorded(&recv_text(&mut eve).await).1, "live");
    assert!(silent(&mut ada).await, "ada got something twice");
    // cy cannot get s0..s2 any more: closed, not left with a gap
    match tokio::time::timeout(Duration::from_secs(10), cy.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => assert_eq!(u16::from(frame.code), 1012),
        other => panic!("cy: {other:?} instead of a 1012 close"),
    }
}

/// A room with an age limit (300 ms) goes quiet for longer than that, so its messages age
/// out; then a server's subscription is cut. Nothing was lost: its member stays and gets the
/// next message, and a client that saw the last one resumes with nothing to replay.
#[tokio::test]
async fn a_quiet_room_whose_messages_aged_out_loses_nothing_across_a_cut() {
    let redis_port = free_port();
    let _redis = start_redis(redis_port);
    let (node_a, a) = start_node(redis_port);
    let (_node_b, b) = start_node(redis_port);
    let mut ada = connect(&format!("ws://{a}/brief/quiet")).await;
    assert_eq!(recv_text(&mut ada).await, "welcome");
    let mut bob = connect(&format!("ws://{b}/brief/quiet")).await;
    assert_eq!(recv_text(&mut bob).await, "welcome");
    send_text(&mut bob, "say:m1").await;
    let (m1, _) = recorded(&recv_text(&mut ada).await);
    assert_eq!(recorded(&recv_text(&mut bob).await).0, m1);
    // until Redis's clock is past m1's age limit
    let ms: u64 = m1.split('-').next().unwrap().parse().unwrap();
    loop {
        let time = redis_cli(redis_port, false, &["TIME"]);
        let mut t = time.lines().map(|l| l.trim().parse::<u64>().unwrap());
        let now = t.next().unwrap() * 1000 + t.next().unwrap() / 1000;
        if now > ms + 400 {
            break;
        }
        tokio::task::yield_now().await;
    }
    cut(&node_a, redis_port, false);
    send_text(&mut bob, "say:m2").await;
    assert_eq!(recorded(&recv_text(&mut bob).await).1, "m2");
    assert_eq!(
        recorded(&recv_text(&mut ada).await).1,
        "m2",
        "ada is still a member after A caught up"
    );
    // who saw m1 (aged out, then trimmed when m2 was recorded) gets m2
    let mut cy = connect(&format!("ws://{b}/brief/quiet?since={m1}")).await;
    assert_eq!(recv_text(&mut cy).await, "welcome");
    assert_eq!(recorded(&recv_text(&mut cy).await).1, "m2");
    send_text(&mut bob, "say:m3").await;
    assert_eq!(recorded(&recv_text(&mut cy).await).1, "m3");
    assert_eq!(recorded(&recv_text(&mut ada).await).1, "m3");
    assert!(silent(&mut ada).await, "ada got something twice");
}
