//! Fan-out (issue 4): one message to 1,000 or 10,000 sessions of a room, in one process and
//! through Redis across two processes.
//!
//! The server ([`serve`], `ws-endpoint-bench serve fanout ADDR [REDIS_URL]` or the
//! `fanout-server` binary; 1 worker) has two endpoints: `/fan`, whose sessions join the room
//! [`ROOM`] when they open and otherwise only listen, and `/control`, which takes text
//! commands: `members` (answers `members N`, the room's members in this process) and
//! `fire SEQ`, which calls `Fan::hub().to_room("all", payload)` with a 64 B text payload that
//! starts with `SEQ` and answers `fired SEQ SENT DROPPED CLOSED CALL_NS` (the `Delivery` of this
//! process and how long the `to_room` call took). With a Redis URL the server calls
//! `ws_endpoint::cluster::connect_redis` before it listens, so a `fire` on one server reaches the
//! room's members on every server connected to the same Redis.
//!
//! The client ([`run`]) opens the listeners (split evenly between the servers given), waits
//! until every one of them has joined the room, then fires `warmup + fires` times through the
//! first server's `/control` and times each fire from the moment its `fire` command is written
//! until each listener has read the payload, on one current-thread runtime.
//!
//! The compressed fan-out ([`Listeners::Json`]): `fire-json SEQ` sends the ~1 KiB JSON chat
//! message of [`corpus::fanout_message`] instead (compressed for sessions that agreed to
//! permessage-deflate; the server compresses a broadcast once per agreement), to listeners of
//! [`deflate_client`] that offer the extension or not. They read and count frames without
//! inflating them (a listener's n-th message is fire n); one listener inflates its first
//! message to check it.

use std::{
    cell::{Cell, RefCell},
    io,
    net::SocketAddr,
    rc::Rc,
    time::{Duration, Instant},
};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::{sync::oneshot, task::JoinHandle, time::timeout};
use tokio_tungstenite::tungstenite::Message;

use ws_endpoint::wire::Event;

use crate::{
    client::{self, Ws},
    corpus,
    deflate_client::{self, Conn, ConnectOptions},
    sys,
};

/// The room every `/fan` session joins.
pub const ROOM: &str = "all";

/// Size of the fanned-out text message, bytes.
pub const PAYLOAD_SIZE: usize = 64;

/// tungstenite's read buffer for each listener (its default, 128 KiB each, would cost the load
/// generator 1.3 GB for 10,000 listeners).
const LISTENER_READ_BUFFER: usize = 4096;

mod endpoints {
    use ws_endpoint::prelude::*;

    /// A listener: joins the room when it opens.
    #[derive(Default)]
    pub struct Fan;

    #[server_endpoint("/fan", heartbeat = false)]
    impl Fan {
        #[on_open]
        fn open(&mut self, session: &Session) {
            session.join(super::ROOM);
        }

        #[on_message]
        fn text(&mut self, _msg: String) {}
    }

    /// The trigger: `members` and `fire SEQ`.
    #[derive(Default)]
    pub struct Control;

    #[server_endpoint("/control", heartbeat = false)]
    impl Control {
        #[on_message]
        fn text(&mut self, msg: String) -> String {
            super::command(&msg)
        }
    }
}

/// The fanned-out message for sequence number `seq`: `"SEQ xxx…"`, [`PAYLOAD_SIZE`] bytes.
pub fn payload(seq: u64) -> String {
    let mut text = format!("{seq} ");
    while text.len() < PAYLOAD_SIZE {
        text.push('x');
    }
    text
}

/// The sequence number a fanned-out message carries.
pub fn parse_seq(text: &str) -> Option<u64> {
    text.split(' ').next()?.parse().ok()
}

/// Runs one `/control` command.
fn command(msg: &str) -> String {
    use endpoints::Fan;

    if msg == "members" {
        return format!("members {}", Fan::hub().room_members(ROOM).len());
    }
    let (seq, text) = if let Some(seq) = msg
        .strip_prefix("fire ")
        .and_then(|s| s.parse::<u64>().ok())
    {
        (seq, payload(seq))
    } else if let Some(seq) = msg
        .strip_prefix("fire-json ")
        .and_then(|s| s.parse::<u64>().ok())
    {
        (seq, corpus::fanout_message(seq))
    } else {
        return format!("error: unknown command `{msg}`");
    };
    let t0 = Instant::now();
    match Fan::hub().to_room(ROOM, text) {
        Ok(d) => format!(
            "fired {seq} {} {} {} {}",
            d.sent,
            d.dropped,
            d.closed,
            t0.elapsed().as_nanos()
        ),
        Err(e) => format!("error: {e}"),
    }
}

/// Runs the fan-out server on `addr`, connected to the Redis server at `redis` if given, until
/// the process is killed.
///
/// 1 worker, no close linger and `with_ws_defaults()`'s `on_connect` hook (`TCP_NODELAY`, and
/// the socket's descriptor number: one descriptor per connection), as the examples serve.
pub fn serve(addr: &str, redis: Option<&str>) -> io::Result<()> {
    use ws_endpoint::prelude::*;

    let (addr, redis) = (addr.to_owned(), redis.map(str::to_owned));
    actix_web::rt::System::new().block_on(async move {
        if let Some(url) = redis {
            ws_endpoint::cluster::connect_redis(&url)
                .await
                .map_err(io::Error::other)?;
        }
        HttpServer::new(|| {
            App::new()
                .service(endpoints::Fan::endpoint())
                .service(endpoints::Control::endpoint())
        })
        .client_disconnect_timeout(ws_endpoint::CLOSE_LINGER)
        .on_connect(ws_endpoint::on_connect)
        .workers(1)
        .bind(&addr)?
        .run()
        .await
    })
}

/// Which listeners, and what is fired at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listeners {
    /// tokio-tungstenite listeners; the [`PAYLOAD_SIZE`]-byte text of `fire SEQ`.
    Tungstenite,
    /// [`deflate_client`] listeners, offering permessage-deflate if `deflate`; the ~1 KiB JSON
    /// of `fire-json SEQ`.
    Json {
        /// Offer permessage-deflate (and require it agreed).
        deflate: bool,
    },
}

/// One fan-out measurement.
#[derive(Debug, Clone)]
pub struct FanoutSpec {
    /// Listeners in all.
    pub sessions: usize,
    /// Which listeners, and the message fired.
    pub listeners: Listeners,
    /// The servers: listeners are split evenly between them; the first one is fired on.
    pub servers: Vec<SocketAddr>,
    /// Processes whose CPU time counts as the server side (the servers, and Redis).
    pub server_pids: Vec<u32>,
    /// Fires before the measured ones (not counted).
    pub warmup_fires: usize,
    /// Measured fires.
    pub fires: usize,
    /// Pause after each fire.
    pub pause: Duration,
    /// How long a fire may take to reach everyone before it counts as incomplete.
    pub fire_timeout: Duration,
}

/// What one fire measured.
#[derive(Debug, Clone, Copy)]
pub struct Fire {
    /// From writing `fire` to the last listener reading the message (`None`: not everyone got
    /// it within the timeout).
    pub last: Option<Duration>,
    /// The median listener's time.
    pub p50: Duration,
    /// Listeners that got it.
    pub received: usize,
    /// The fired-on server's `Delivery`: sessions it queued the message for, dropped, closed.
    pub sent: usize,
    /// See [`Fire::sent`].
    pub dropped: usize,
    /// See [`Fire::sent`].
    pub closed: usize,
    /// How long the `to_room` call took in the fired-on server.
    pub call: Duration,
    /// CPU time of the server processes (and Redis) during the fire.
    pub server_cpu: Duration,
    /// CPU time of the load generator during the fire.
    pub client_cpu: Duration,
    /// User CPU time of the server processes during the fire, in clock ticks (coarse: sum it
    /// over fires).
    pub server_user: Duration,
    /// Bytes the listeners read during the fire (frame headers included); 0 for
    /// [`Listeners::Tungstenite`], which are not counted.
    pub bytes: u64,
    /// Deliveries that came compressed (RSV1); 0 for [`Listeners::Tungstenite`].
    pub compressed: usize,
}

/// What [`run`] measured.
#[derive(Debug, Clone)]
pub struct FanoutOutcome {
    /// Listeners that opened.
    pub opened: usize,
    /// Time to open them and see them all in the room, seconds.
    pub connect_secs: f64,
    /// The warm-up fires.
    pub warmup: Vec<Fire>,
    /// The measured fires.
    pub fires: Vec<Fire>,
    /// Listeners that failed (to connect, or later), with the first errors.
    pub errors: Vec<String>,
    /// [`Listeners::Json`] with deflate: whether the one listener that inflated its first
    /// message found it right (`None`: not checked).
    pub inflated_check: Option<Result<(), String>>,
}

/// State the listener tasks share with the firing task (one thread: plain cells).
struct Shared {
    seq: Cell<u64>,
    expected: Cell<usize>,
    arrivals: RefCell<Vec<Instant>>,
    done: RefCell<Option<oneshot::Sender<()>>>,
    errors: RefCell<Vec<String>>,
    /// [`Listeners::Json`]: bytes read and compressed deliveries in the current fire.
    bytes: Cell<u64>,
    compressed: Cell<usize>,
    inflated_check: RefCell<Option<Result<(), String>>>,
}

impl Shared {
    fn arrived(&self, now: Instant) {
        let mut arrivals = self.arrivals.borrow_mut();
        arrivals.push(now);
        if arrivals.len() == self.expected.get() {
            if let Some(done) = self.done.borrow_mut().take() {
                let _ = done.send(());
            }
        }
    }
}

async fn listener(mut ws: Ws, shared: Rc<Shared>) {
    loop {
        let item = ws.next().await;
        let now = Instant::now();
        let error = match item {
            Some(Ok(Message::Text(text))) => {
                if parse_seq(&text) == Some(shared.seq.get()) {
                    shared.arrived(now);
                }
                continue;
            }
            Some(Ok(Message::Close(frame))) => format!("server closed: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => format!("read: {e}"),
            None => "connection ended".to_owned(),
        };
        shared.errors.borrow_mut().push(error);
        return;
    }
}

/// A [`Listeners::Json`] listener: counts the data messages it reads (its n-th is fire n),
/// checks the sequence number of those that come uncompressed, and, if `check`, inflates its
/// first compressed one and compares it with what was fired.
async fn json_listener(mut conn: Conn, shared: Rc<Shared>, deflate: bool, check: bool) {
    let mut count = 0u64;
    let mut events = Vec::new();
    let mut scratch = Vec::new();
    loop {
        let before = conn.bytes_read;
        if let Err(e) = conn.read_events(&mut events).await {
            shared.errors.borrow_mut().push(e);
            return;
        }
        let now = Instant::now();
        shared
            .bytes
            .set(shared.bytes.get() + (conn.bytes_read - before));
        for event in events.drain(..) {
            let error = match event {
                Event::Text(text) => {
                    count += 1;
                    match corpus::fanout_seq(text.as_bytes()) {
                        Some(seq) if seq == count && !deflate => None,
                        Some(_) if deflate => Some("an uncompressed delivery".to_owned()),
                        _ => Some(format!("message {count} is not fire {count}")),
                    }
                }
                Event::Compressed { payload, .. } => {
                    count += 1;
                    shared.compressed.set(shared.compressed.get() + 1);
                    if check && shared.inflated_check.borrow().is_none() {
                        scratch.clear();
                        let expected = corpus::fanout_message(count);
                        let result = conn.inflate(&payload, &mut scratch).and_then(|()| {
                            if scratch == expected.as_bytes() {
                                Ok(())
                            } else {
                                Err(format!(
                                    "fire {count} inflated to {} bytes that differ from the {} fired",
                                    scratch.len(),
                                    expected.len()
                                ))
                            }
                        });
                        *shared.inflated_check.borrow_mut() = Some(result);
                    }
                    if deflate {
                        None
                    } else {
                        Some("a compressed delivery, never agreed".to_owned())
                    }
                }
                Event::Close(frame) => Some(format!("server closed: {frame:?}")),
                _ => continue,
            };
            if let Some(e) = error {
                shared.errors.borrow_mut().push(e);
                return;
            }
            if count == shared.seq.get() {
                shared.arrived(now);
            }
        }
    }
}

/// Sends `cmd` on a control connection and returns the text answer.
async fn ask(control: &mut Ws, cmd: &str) -> Result<String, String> {
    control
        .send(Message::text(cmd))
        .await
        .map_err(|e| format!("control write: {e}"))?;
    read_answer(control).await
}

async fn read_answer(control: &mut Ws) -> Result<String, String> {
    loop {
        match timeout(Duration::from_secs(10), control.next()).await {
            Err(_) => return Err("no answer on the control connection within 10 s".to_owned()),
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text.as_str().to_owned()),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(format!("control closed: {frame:?}"))
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("control read: {e}")),
            Ok(None) => return Err("control connection ended".to_owned()),
        }
    }
}

/// CPU time of `pids` together, ns (a process that is gone counts 0).
fn cpu_ns(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|&pid| sys::process_cpu_ns(pid).unwrap_or(0))
        .sum()
}

/// User CPU seconds of `pids` together (clock ticks).
fn user_secs(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|&pid| sys::cpu_user_system_seconds(pid).map_or(0.0, |(user, _)| user))
        .sum()
}

/// Runs `spec` against fan-out servers already listening. Must run inside a `LocalSet`.
pub async fn run(spec: &FanoutSpec) -> Result<FanoutOutcome, String> {
    if spec.servers.is_empty() {
        return Err("no server".to_owned());
    }
    let t0 = Instant::now();
    let mut listeners = Vec::with_capacity(spec.sessions);
    let mut json_listeners = Vec::new();
    let mut errors = Vec::new();
    let mut per_server = Vec::new();
    for (i, &addr) in spec.servers.iter().enumerate() {
        let share = spec.sessions / spec.servers.len()
            + usize::from(i < spec.sessions % spec.servers.len());
        match spec.listeners {
            Listeners::Tungstenite => {
                let (open, failed) = client::connect_many_to(
                    addr,
                    "/fan",
                    share,
                    100,
                    None,
                    Some(LISTENER_READ_BUFFER),
                )
                .await;
                per_server.push(open.len());
                listeners.extend(open);
                errors.extend(failed);
            }
            Listeners::Json { deflate } => {
                let opts = ConnectOptions {
                    read_chunk: LISTENER_READ_BUFFER,
                    ..ConnectOptions::new(deflate)
                };
                let (open, failed) =
                    deflate_client::connect_many(addr, "/fan", share, 100, opts).await;
                if let Some(conn) = open.iter().find(|c| c.agreement().is_some() != deflate) {
                    return Err(format!(
                        "a listener {} permessage-deflate, answered `{}`",
                        if deflate { "offering" } else { "not offering" },
                        conn.response()
                    ));
                }
                per_server.push(open.len());
                json_listeners.extend(open);
                errors.extend(failed);
            }
        }
    }
    let mut controls = Vec::new();
    for &addr in &spec.servers {
        controls.push(client::connect_to(addr, "/control", None, None).await?);
    }
    // The handshake may complete before `on_open` has joined the room: wait for the count.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (control, &want) in controls.iter_mut().zip(&per_server) {
        loop {
            let answer = ask(control, "members").await?;
            let members: usize = answer
                .strip_prefix("members ")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("unexpected answer `{answer}`"))?;
            if members >= want {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{members} of {want} listeners in the room after 30 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    let opened = listeners.len() + json_listeners.len();
    if opened == 0 {
        return Err(format!("no listener opened: {errors:?}"));
    }

    let shared = Rc::new(Shared {
        seq: Cell::new(0),
        expected: Cell::new(opened),
        arrivals: RefCell::new(Vec::with_capacity(opened)),
        done: RefCell::new(None),
        errors: RefCell::new(Vec::new()),
        bytes: Cell::new(0),
        compressed: Cell::new(0),
        inflated_check: RefCell::new(None),
    });
    let deflate = spec.listeners == Listeners::Json { deflate: true };
    let tasks: Vec<JoinHandle<()>> = listeners
        .into_iter()
        .map(|ws| tokio::task::spawn_local(listener(ws, shared.clone())))
        .chain(json_listeners.into_iter().enumerate().map(|(i, conn)| {
            tokio::task::spawn_local(json_listener(conn, shared.clone(), deflate, i == 0))
        }))
        .collect();
    let fire_cmd = match spec.listeners {
        Listeners::Tungstenite => "fire",
        Listeners::Json { .. } => "fire-json",
    };
    let me = std::process::id();
    let control = &mut controls[0];
    let mut fired = Vec::new();
    let result = async {
        tokio::time::sleep(spec.pause).await;
        for i in 0..spec.warmup_fires + spec.fires {
            let seq = i as u64 + 1;
            shared.seq.set(seq);
            shared.arrivals.borrow_mut().clear();
            shared.bytes.set(0);
            shared.compressed.set(0);
            let (done_tx, done_rx) = oneshot::channel();
            *shared.done.borrow_mut() = Some(done_tx);
            let (server0, client0) = (cpu_ns(&spec.server_pids), cpu_ns(&[me]));
            let user0 = user_secs(&spec.server_pids);

            let fire_at = Instant::now();
            control
                .send(Message::text(format!("{fire_cmd} {seq}")))
                .await
                .map_err(|e| format!("control write: {e}"))?;
            let complete = timeout(spec.fire_timeout, done_rx).await.is_ok();
            let answer = read_answer(control).await?;
            let (server1, client1) = (cpu_ns(&spec.server_pids), cpu_ns(&[me]));
            let user1 = user_secs(&spec.server_pids);

            let fields: Vec<u64> = answer
                .strip_prefix("fired ")
                .map(|rest| rest.split(' ').filter_map(|f| f.parse().ok()).collect())
                .unwrap_or_default();
            let [answer_seq, sent, dropped, closed, call_ns] = fields[..] else {
                return Err(format!("unexpected answer `{answer}`"));
            };
            if answer_seq != seq {
                return Err(format!("answer `{answer}` to fire {seq}"));
            }
            let mut times: Vec<Duration> = shared
                .arrivals
                .borrow()
                .iter()
                .map(|at| at.saturating_duration_since(fire_at))
                .collect();
            times.sort_unstable();
            fired.push(Fire {
                last: complete.then(|| times.last().copied().unwrap_or_default()),
                p50: times.get(times.len() / 2).copied().unwrap_or_default(),
                received: times.len(),
                sent: sent as usize,
                dropped: dropped as usize,
                closed: closed as usize,
                call: Duration::from_nanos(call_ns),
                server_cpu: Duration::from_nanos(server1.saturating_sub(server0)),
                client_cpu: Duration::from_nanos(client1.saturating_sub(client0)),
                server_user: Duration::from_secs_f64((user1 - user0).max(0.0)),
                bytes: shared.bytes.get(),
                compressed: shared.compressed.get(),
            });
            shared.seq.set(0);
            tokio::time::sleep(spec.pause).await;
        }
        Ok(())
    }
    .await;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    result?;
    errors.extend(shared.errors.borrow().iter().cloned());
    let fires = fired.split_off(spec.warmup_fires.min(fired.len()));
    let inflated_check = shared.inflated_check.borrow_mut().take();
    Ok(FanoutOutcome {
        opened,
        connect_secs,
        warmup: fired,
        fires,
        errors,
        inflated_check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_carries_its_sequence_number() {
        let p = payload(12345);
        assert_eq!(p.len(), PAYLOAD_SIZE);
        assert_eq!(parse_seq(&p), Some(12345));
        assert_eq!(parse_seq("x 1"), None);
        assert!(command("fire x").starts_with("error"));
    }

    #[test]
    fn fans_out_to_a_room_in_one_process() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        std::thread::spawn(move || serve(&addr.to_string(), None));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for listeners in [
            Listeners::Tungstenite,
            Listeners::Json { deflate: false },
            Listeners::Json { deflate: true },
        ] {
            let spec = FanoutSpec {
                sessions: 50,
                listeners,
                servers: vec![addr],
                server_pids: vec![std::process::id()],
                warmup_fires: 1,
                fires: 2,
                pause: Duration::from_millis(10),
                fire_timeout: Duration::from_secs(5),
            };
            let outcome = tokio::task::LocalSet::new()
                .block_on(&runtime, run(&spec))
                .unwrap();
            assert_eq!(outcome.opened, 50, "{:?}", outcome.errors);
            assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
            assert_eq!(outcome.fires.len(), 2);
            let deflate = listeners == Listeners::Json { deflate: true };
            for fire in &outcome.fires {
                assert_eq!((fire.received, fire.sent, fire.dropped), (50, 50, 0));
                assert!(fire.last.is_some_and(|last| last >= fire.p50));
                assert_eq!(fire.compressed, if deflate { 50 } else { 0 });
            }
            assert_eq!(outcome.inflated_check, deflate.then_some(Ok(())));
            if let Listeners::Json { .. } = listeners {
                let per = outcome.fires[0].bytes / 50;
                let size = corpus::fanout_message(2).len() as u64;
                if deflate {
                    // One chat message compressed on its own: ~56 % of its size.
                    assert!(per < size * 3 / 4, "{per} bytes per delivery of {size}");
                } else {
                    assert_eq!(per, size + 4, "a 2+2-byte header and the text");
                }
            }
        }
    }
}
