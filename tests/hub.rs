//! Open sessions, broadcast and rooms in one process: `Hub`, `Session::join` / `leave`, and the
//! slow-consumer policies (one stalled client never delays the others).

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use common::*;
use tokio_tungstenite::tungstenite::Message;
use ws_endpoint::{prelude::*, Delivery};

struct Room {
    log: web::Data<Log>,
}

#[server_endpoint("/room/{name}", heartbeat = false)]
impl Room {
    #[on_open]
    fn open(session: &Session, #[path_param] name: String, log: web::Data<Log>) -> Self {
        if name != "none" {
            session.join(&name);
        }
        Room { log }
    }

    /// `all:x` broadcast, `others:x` all but me, `room:R:x` to room R, `odd:x` filtered,
    /// `join:R` / `leave:R`, `rooms` lists mine, `count`.
    #[on_message]
    fn text(&mut self, session: &Session, msg: String) -> Option<String> {
        let hub = Room::hub();
        let (cmd, rest) = msg.split_once(':').unwrap_or((msg.as_str(), ""));
        let delivery = match cmd {
            "all" => hub.broadcast(rest.to_owned()),
            "others" => hub.broadcast_except(session, rest.to_owned()),
            "odd" => hub.broadcast_filter(|s| s.id().as_u64() % 2 == 1, rest.to_owned()),
            "room" => {
                let (room, text) = rest.split_once(':').unwrap_or((rest, ""));
                hub.to_room(room, text.to_owned())
            }
            "join" => return Some(format!("joined:{}", session.join(rest))),
            "leave" => return Some(format!("left:{}", session.leave(rest))),
            "rooms" => return Some(format!("rooms:{}", session.rooms().join(","))),
            "count" => {
                return Some(format!(
                    "count:{}:{}",
                    hub.count(),
                    session.open_sessions().len()
                ))
            }
            _ => return Some(format!("unknown:{msg}")),
        };
        if let Ok(d) = delivery {
            self.log
                .push(format!("delivery:{}:{}:{}", d.sent, d.dropped, d.closed));
        }
        None
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        self.log.closed(&reason);
    }
}

struct Strict {
    log: web::Data<Log>,
}

#[server_endpoint("/strict", heartbeat = false, slow_consumer = "close")]
impl Strict {
    #[on_open]
    fn open(log: web::Data<Log>) -> Self {
        Strict { log }
    }

    #[on_message]
    fn text(&mut self, _msg: String) {}

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        self.log.closed(&reason);
    }
}

fn app(cfg: &mut web::ServiceConfig) {
    cfg.service(Room::endpoint()).service(Strict::endpoint());
}

async fn quiet(ws: &mut Ws) -> bool {
    tokio::time::timeout(Duration::from_millis(200), recv(ws))
        .await
        .is_err()
}

/// Two clients in room red (`a`, `b`) and one in blue (`c`).
async fn red_red_blue(srv: &TestServer) -> (Ws, Ws, Ws) {
    let a = connect(&srv.url("/room/red")).await;
    let b = connect(&srv.url("/room/red")).await;
    let c = connect(&srv.url("/room/blue")).await;
    (a, b, c)
}

/// Waits until `room` has `n` members here (a closed client leaves once the server saw it go).
async fn members_become(room: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while Room::hub().room_members(room).len() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{room} never had {n} members"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn broadcast_to_all_to_all_but_the_sender_and_to_rooms() {
    let _serial = SERIAL.lock().await;
    let srv = start(app);
    let (mut a, mut b, mut c) = red_red_blue(&srv).await;
    send_text(&mut a, "count").await;
    assert_eq!(recv_text(&mut a).await, "count:3:3");

    send_text(&mut a, "all:hello").await;
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(recv_text(ws).await, "hello");
    }
    send_text(&mut a, "others:psst").await;
    assert_eq!(recv_text(&mut b).await, "psst");
    assert_eq!(recv_text(&mut c).await, "psst");
    assert!(
        quiet(&mut a).await,
        "the sender got its own broadcast_except"
    );

    send_text(&mut c, "room:red:to red").await;
    assert_eq!(recv_text(&mut a).await, "to red");
    assert_eq!(recv_text(&mut b).await, "to red");
    assert!(quiet(&mut c).await);

    // join / leave / membership listing, and a room's members leave when they close
    send_text(&mut c, "join:red").await;
    assert_eq!(recv_text(&mut c).await, "joined:true");
    send_text(&mut c, "rooms").await;
    assert_eq!(recv_text(&mut c).await, "rooms:blue,red");
    assert_eq!(Room::hub().room_members("red").len(), 3);
    assert_eq!(Room::hub().rooms(), vec!["blue".to_string(), "red".into()]);
    send_text(&mut c, "leave:blue").await;
    assert_eq!(recv_text(&mut c).await, "left:true");
    drop(b);
    members_become("red", 2).await;
    assert_eq!(Room::hub().rooms(), vec!["red".to_string()]);
    srv.stop().await;
}

/// A room's broadcasts share one member list until the membership changes: each join, leave
/// and close since the last broadcast is seen by the next one.
#[tokio::test]
async fn a_room_broadcast_follows_joins_leaves_and_closes_since_the_last_one() {
    let _serial = SERIAL.lock().await;
    let srv = start(app);
    let (mut a, mut b, mut c) = red_red_blue(&srv).await;
    send_text(&mut c, "room:red:one").await;
    assert_eq!(recv_text(&mut a).await, "one");
    assert_eq!(recv_text(&mut b).await, "one");
    send_text(&mut c, "room:red:two").await; // the same members: the same list
    assert_eq!(recv_text(&mut a).await, "two");
    assert_eq!(recv_text(&mut b).await, "two");
    assert!(quiet(&mut c).await, "c is not in red yet");

    send_text(&mut c, "join:red").await;
    assert_eq!(recv_text(&mut c).await, "joined:true");
    send_text(&mut a, "room:red:three").await;
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(
            recv_text(ws).await,
            "three",
            "a member that joined since gets it too"
        );
    }

    send_text(&mut b, "leave:red").await;
    assert_eq!(recv_text(&mut b).await, "left:true");
    send_text(&mut a, "room:red:four").await;
    assert_eq!(recv_text(&mut a).await, "four");
    assert_eq!(recv_text(&mut c).await, "four");
    assert!(
        quiet(&mut b).await,
        "b left red and still got its broadcast"
    );

    c.close(None).await.unwrap();
    members_become("red", 1).await;
    let delivery = Room::hub().to_room("red", "five").unwrap();
    assert_eq!((delivery.sent, delivery.closed), (1, 0), "{delivery:?}");
    assert_eq!(recv_text(&mut a).await, "five");
    srv.stop().await;
}

#[tokio::test]
async fn a_task_outside_the_handlers_pushes_to_a_room() {
    let _serial = SERIAL.lock().await;
    let srv = start(app);
    let mut a = connect(&srv.url("/room/news")).await;
    let mut b = connect(&srv.url("/room/sports")).await;
    send_text(&mut a, "count").await; // the handshake and on_open are done
    recv_text(&mut a).await;
    send_text(&mut b, "count").await;
    recv_text(&mut b).await;
    // A background job on another thread and runtime, through the endpoint's handle.
    let delivery = tokio::spawn(async { Room::hub().to_room("news", "extra!").unwrap() })
        .await
        .unwrap();
    assert_eq!(
        delivery,
        Delivery {
            sent: 1,
            dropped: 0,
            closed: 0
        }
    );
    assert_eq!(recv_text(&mut a).await, "extra!");
    assert!(quiet(&mut b).await);
    srv.stop().await;
}

/// Tests of one endpoint share its hub (a process-wide view, as JSR 356's getOpenSessions), so
/// they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until `counter` reaches `n`.
async fn until(counter: &AtomicUsize, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counter.load(Ordering::SeqCst) < n {
        assert!(std::time::Instant::now() < deadline, "readers stuck");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One client that reads nothing; three that read. 300 broadcasts of 64 KiB to the room: the
/// broadcast never waits for the stalled client (its copies are dropped once its queue is full)
/// and the readers get every message, in order. (The sender paces itself on the readers, so that
/// only the stalled client can be full.)
#[tokio::test]
async fn a_stalled_client_does_not_delay_the_others() {
    let _serial = SERIAL.lock().await;
    let srv = start(app);
    let _stalled = Raw::connect(srv.addr, "/room/stall").await;
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(connect(&srv.url("/room/stall")).await);
    }
    while Room::hub().room_members("stall").len() < 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    const N: usize = 300;
    let readers_done = readers
        .into_iter()
        .map(|mut ws| {
            let received = received.clone();
            tokio::spawn(async move {
                for i in 0..N {
                    let Message::Binary(data) = recv(&mut ws).await else {
                        panic!("expected binary")
                    };
                    assert_eq!(data.len(), 64 * 1024);
                    assert_eq!(&data[..8], &(i as u64).to_be_bytes());
                    received.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect::<Vec<_>>();
    let mut total = Delivery::default();
    for i in 0..N {
        let mut msg = vec![0u8; 64 * 1024];
        msg[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let d = Room::hub().to_room("stall", msg).unwrap();
        total.sent += d.sent;
        total.dropped += d.dropped;
        total.closed += d.closed;
        until(&received, 3 * (i + 1)).await;
    }
    for r in readers_done {
        r.await.expect("a reader missed a message");
    }
    println!("stalled-client broadcast of {N}: {total:?}");
    // the stalled client took what its queue holds, then missed the rest
    assert_eq!(total.sent + total.dropped, 4 * N);
    assert!(total.dropped >= N - 100, "{total:?}");
    assert_eq!(total.closed, 0);
    srv.stop().await;
}

#[tokio::test]
async fn the_close_policy_drops_a_slow_consumer_with_1008() {
    let _serial = SERIAL.lock().await;
    let srv = start(app);
    let _stalled = Raw::connect(srv.addr, "/strict").await;
    let mut reader = connect(&srv.url("/strict")).await;
    while Strict::hub().count() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // enough to fill the stalled client's queue (64 frames) and its socket buffers
    const N: usize = 600;
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let reading = tokio::spawn(async move {
        for _ in 0..N {
            let Message::Binary(_) = recv(&mut reader).await else {
                panic!("expected binary")
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut closed = 0;
    for i in 0..N {
        let d = Strict::hub().broadcast(vec![1u8; 64 * 1024]).unwrap();
        closed += d.closed;
        until(&received, i + 1).await;
    }
    reading.await.expect("the reader missed a message");
    assert_eq!(closed, 1);
    assert_eq!(
        srv.log.wait_for("close:").await,
        "close:1008:slow consumer: outbound queue full"
    );
    assert_eq!(
        srv.log.count("close:1008"),
        1,
        "only the slow consumer was dropped"
    );
    srv.stop().await;
}

/// One broadcast reaches every member, however many (Tokio's cooperative budget of 128
/// operations per task turn must not turn into "queue full" for the 129th session).
#[tokio::test]
async fn one_broadcast_reaches_hundreds_of_sessions() {
    let _serial = SERIAL.lock().await;
    let srv = start(app);
    const N: usize = 300;
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(connect(&srv.url("/room/big")).await);
    }
    while Room::hub().room_members("big").len() < N {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delivery = Room::hub().to_room("big", "to all of you").unwrap();
    assert_eq!(
        delivery,
        Delivery {
            sent: N,
            dropped: 0,
            closed: 0
        }
    );
    for ws in &mut clients {
        assert_eq!(recv_text(ws).await, "to all of you");
    }
    srv.stop().await;
}
