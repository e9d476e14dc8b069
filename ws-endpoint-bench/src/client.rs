//! The load generator: a tokio-tungstenite client that runs on one current-thread runtime (inside
//! a `LocalSet`), so that it stays on the one CPU the harness pins it to.
//!
//! Three measurements: [`echo`] (messages/s, round-trip latency, server CPU per message),
//! [`idle`] (server RSS per idle connection) and [`flood`] (server RSS and a well-behaved
//! client's latency while 50 connections write as fast as they can and never read).

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    net::SocketAddr,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures_util::{future::join_all, FutureExt as _, SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use tokio::{io::AsyncWriteExt as _, net::TcpStream, task::JoinHandle, time::timeout};
use tokio_tungstenite::{
    tungstenite::{protocol::WebSocketConfig, Bytes, Error as WsError, Message},
    WebSocketStream,
};

use crate::sys;

/// A client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// How long one TCP connect plus WebSocket handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A latency histogram in nanoseconds (1 ns to 100 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn record(hist: &mut Histogram<u64>, elapsed: Duration) {
    hist.saturating_record(elapsed.as_nanos().clamp(1, u64::MAX as u128) as u64);
}

/// Opens one WebSocket connection to `ws://addr/` (with `TCP_NODELAY` on the client side).
pub async fn connect(addr: SocketAddr) -> Result<Ws, String> {
    connect_with(addr, None).await
}

/// [`connect`], with the socket's receive buffer set to `recv_buffer` bytes if given (a
/// flooder that never reads uses a small one, so that the server's own queues, not the
/// kernel's buffers, fill up within the flood).
pub async fn connect_with(addr: SocketAddr, recv_buffer: Option<u32>) -> Result<Ws, String> {
    connect_to(addr, "/", recv_buffer, None).await
}

/// Opens one WebSocket connection to `ws://addr{path}` (with `TCP_NODELAY` on the client side),
/// with the socket's receive buffer (`SO_RCVBUF`) and tungstenite's read buffer set if given
/// (tungstenite reserves 128 KiB per connection by default; thousands of fan-out listeners do
/// with 4 KiB).
pub async fn connect_to(
    addr: SocketAddr,
    path: &str,
    recv_buffer: Option<u32>,
    read_buffer: Option<usize>,
) -> Result<Ws, String> {
    let attempt = async {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|e| format!("socket: {e}"))?;
        if let Some(size) = recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .map_err(|e| format!("SO_RCVBUF: {e}"))?;
        }
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("nodelay: {e}"))?;
        let config = read_buffer.map(|size| WebSocketConfig::default().read_buffer_size(size));
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            format!("ws://{addr}{path}"),
            stream,
            config,
        )
        .await
        .map_err(|e| format!("handshake: {e}"))?;
        Ok(ws)
    };
    timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err("connect timed out".to_owned()))
}

/// Opens `n` connections, `batch` at a time (so the server's listen backlog never overflows).
/// Returns the connections that opened and the first error, if any failed.
pub async fn connect_many(addr: SocketAddr, n: usize, batch: usize) -> (Vec<Ws>, Vec<String>) {
    connect_many_with(addr, n, batch, None).await
}

/// [`connect_many`] with [`connect_with`]'s receive buffer size.
pub async fn connect_many_with(
    addr: SocketAddr,
    n: usize,
    batch: usize,
    recv_buffer: Option<u32>,
) -> (Vec<Ws>, Vec<String>) {
    connect_many_to(addr, "/", n, batch, recv_buffer, None).await
}

/// [`connect_many`] with [`connect_to`]'s path and buffer sizes.
pub async fn connect_many_to(
    addr: SocketAddr,
    path: &str,
    n: usize,
    batch: usize,
    recv_buffer: Option<u32>,
    read_buffer: Option<usize>,
) -> (Vec<Ws>, Vec<String>) {
    let mut open = Vec::with_capacity(n);
    let mut errors = Vec::new();
    while open.len() + errors.len() < n {
        let count = batch.min(n - open.len() - errors.len());
        let batch = (0..count).map(|_| connect_to(addr, path, recv_buffer, read_buffer));
        for result in join_all(batch).await {
            match result {
                Ok(ws) => open.push(ws),
                Err(e) => errors.push(e),
            }
        }
    }
    (open, errors)
}

/// CPU time counters at one instant: the server's, this process's (the load generator) and the
/// whole machine's.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    at: Instant,
    server: f64,
    server_user: f64,
    server_system: f64,
    client: f64,
    machine: f64,
}

/// CPU use between two [`CpuSnapshot`]s, in percent of one CPU.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// Wall time between the snapshots, seconds.
    pub wall: f64,
    /// Server CPU seconds.
    pub server_secs: f64,
    /// Of which user time (clock ticks).
    pub server_user_secs: f64,
    /// Of which system time (clock ticks).
    pub server_system_secs: f64,
    /// The server's CPU use, percent.
    pub server_pct: f64,
    /// The load generator's CPU use, percent.
    pub client_pct: f64,
    /// Everything else on the machine (other processes, interrupts, steal), percent.
    pub others_pct: f64,
}

impl CpuSnapshot {
    /// Reads the counters now (`pid`: the server).
    pub fn take(pid: u32) -> Result<CpuSnapshot, String> {
        let err = |e: std::io::Error| e.to_string();
        let (server_user, server_system) = sys::cpu_user_system_seconds(pid).map_err(err)?;
        Ok(CpuSnapshot {
            at: Instant::now(),
            server: sys::cpu_seconds(pid).map_err(err)?,
            server_user,
            server_system,
            client: sys::cpu_seconds(std::process::id()).map_err(err)?,
            machine: sys::machine_busy_seconds().map_err(err)?,
        })
    }

    /// CPU use from `self` to `later`.
    pub fn until(&self, later: &CpuSnapshot) -> CpuUse {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let server = later.server - self.server;
        let client = later.client - self.client;
        let others = (later.machine - self.machine - server - client).max(0.0);
        CpuUse {
            wall,
            server_secs: server,
            server_user_secs: later.server_user - self.server_user,
            server_system_secs: later.server_system - self.server_system,
            server_pct: server * 100.0 / wall,
            client_pct: client * 100.0 / wall,
            others_pct: others * 100.0 / wall,
        }
    }
}

/// One echo measurement.
#[derive(Debug, Clone, Copy)]
pub struct EchoSpec {
    /// Connections.
    pub conns: usize,
    /// Message size in bytes (binary messages).
    pub size: usize,
    /// Messages in flight per connection.
    pub window: usize,
    /// Load before the measurement starts.
    pub warmup: Duration,
    /// Measured time.
    pub measure: Duration,
}

/// What [`echo`] measured.
#[derive(Debug, Clone)]
pub struct EchoOutcome {
    /// Echoed messages received per second.
    pub msgs_per_s: f64,
    /// Server CPU time (user + system) per echoed message, in microseconds.
    pub cpu_us_per_msg: f64,
    /// Server user CPU time per echoed message, in microseconds.
    pub user_us_per_msg: f64,
    /// Server system CPU time per echoed message, in microseconds.
    pub system_us_per_msg: f64,
    /// CPU use during the measurement (server, load generator, everything else).
    pub cpu: CpuUse,
    /// Round-trip latency of the messages echoed during the measurement (ns).
    pub latency: Histogram<u64>,
    /// Server RSS at the end of the measurement, in KiB.
    pub rss_kib: u64,
    /// Connections that failed (connect or during the run), with the first error.
    pub errors: Vec<String>,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// State the connection tasks share (one thread: plain cells).
struct Shared {
    phase: Cell<u8>,
    received: Cell<u64>,
    latency: RefCell<Histogram<u64>>,
}

/// What one received item was.
enum Got {
    Echo(usize),
    Other,
}

fn classify(item: Option<Result<Message, WsError>>) -> Result<Got, String> {
    match item {
        Some(Ok(Message::Binary(data))) => Ok(Got::Echo(data.len())),
        Some(Ok(Message::Text(text))) => Ok(Got::Echo(text.len())),
        Some(Ok(Message::Close(frame))) => Err(format!("server closed: {frame:?}")),
        Some(Ok(_)) => Ok(Got::Other),
        Some(Err(e)) => Err(format!("read: {e}")),
        None => Err("connection ended".to_owned()),
    }
}

/// One connection of [`echo`]: keeps `window` messages in flight; on each batch of replies that
/// has arrived, sends as many new ones in one write.
async fn echo_conn(
    mut ws: Ws,
    payload: Bytes,
    window: usize,
    shared: Rc<Shared>,
) -> Result<(), String> {
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(window);
    let mut refill = window;
    loop {
        for _ in 0..refill {
            in_flight.push_back(Instant::now());
            ws.feed(Message::Binary(payload.clone()))
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        ws.flush().await.map_err(|e| format!("write: {e}"))?;
        refill = 0;
        let mut item = Some(ws.next().await);
        while let Some(got) = item {
            if let Got::Echo(len) = classify(got)? {
                if len != payload.len() {
                    return Err(format!("echo of {len} bytes, sent {}", payload.len()));
                }
                let sent = in_flight
                    .pop_front()
                    .ok_or("echo of a message never sent")?;
                if shared.phase.get() == MEASURE {
                    record(&mut shared.latency.borrow_mut(), sent.elapsed());
                    shared.received.set(shared.received.get() + 1);
                }
                refill += 1;
            }
            // Take every reply that is already here before writing again.
            item = ws.next().now_or_never();
        }
        if shared.phase.get() == STOP {
            return Ok(());
        }
    }
}

/// Microseconds per message.
fn per_msg(secs: f64, msgs: u64) -> f64 {
    if msgs > 0 {
        secs * 1e6 / msgs as f64
    } else {
        f64::NAN
    }
}

/// Runs `spec` against the echo server at `addr` (process `pid`). Must run inside a `LocalSet`.
pub async fn echo(addr: SocketAddr, pid: u32, spec: EchoSpec) -> Result<EchoOutcome, String> {
    let (conns, mut errors) = connect_many(addr, spec.conns, 100).await;
    if conns.is_empty() {
        return Err(format!("no connection opened: {errors:?}"));
    }
    let shared = Rc::new(Shared {
        phase: Cell::new(WARMUP),
        received: Cell::new(0),
        latency: RefCell::new(new_histogram()),
    });
    let payload = Bytes::from(vec![b'x'; spec.size]);
    let mut tasks: Vec<JoinHandle<Result<(), String>>> = conns
        .into_iter()
        .map(|ws| {
            tokio::task::spawn_local(echo_conn(ws, payload.clone(), spec.window, shared.clone()))
        })
        .collect();

    tokio::time::sleep(spec.warmup).await;
    let cpu0 = CpuSnapshot::take(pid)?;
    shared.phase.set(MEASURE);
    tokio::time::sleep(spec.measure).await;
    shared.phase.set(STOP);
    let cpu = cpu0.until(&CpuSnapshot::take(pid)?);
    let rss_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;
    let received = shared.received.get();

    for task in &mut tasks {
        match timeout(Duration::from_secs(2), &mut *task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => errors.push(e),
            Ok(Err(e)) => errors.push(format!("task: {e}")),
            Err(_) => {
                task.abort();
                errors.push("no reply within 2 s of the end".to_owned());
            }
        }
    }
    let latency = shared.latency.borrow().clone();
    Ok(EchoOutcome {
        msgs_per_s: received as f64 / cpu.wall,
        cpu_us_per_msg: per_msg(cpu.server_secs, received),
        user_us_per_msg: per_msg(cpu.server_user_secs, received),
        system_us_per_msg: per_msg(cpu.server_system_secs, received),
        cpu,
        latency,
        rss_kib,
        errors,
    })
}

/// What [`idle`] measured.
#[derive(Debug, Clone)]
pub struct IdleOutcome {
    /// Connections open when RSS was read.
    pub opened: usize,
    /// Connections that failed, with the first errors.
    pub errors: Vec<String>,
    /// Server RSS before the first connection, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with every connection open, KiB.
    pub rss_with_kib: u64,
    /// Time to open them all, seconds.
    pub connect_secs: f64,
}

impl IdleOutcome {
    /// RSS growth per open connection, KiB.
    pub fn kib_per_conn(&self) -> f64 {
        if self.opened == 0 {
            return f64::NAN;
        }
        (self.rss_with_kib as f64 - self.rss_before_kib as f64) / self.opened as f64
    }
}

/// Opens `n` connections (`batch` at a time) that then stay idle, and reads the server's RSS
/// before and with them (after `settle`). Must run inside a `LocalSet`.
pub async fn idle(
    addr: SocketAddr,
    pid: u32,
    n: usize,
    batch: usize,
    settle: Duration,
) -> Result<IdleOutcome, String> {
    let rss_before_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let (conns, errors) = connect_many(addr, n, batch).await;
    let connect_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let rss_with_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;
    let opened = conns.len();
    drop(conns);
    Ok(IdleOutcome {
        opened,
        errors,
        rss_before_kib,
        rss_with_kib,
        connect_secs,
    })
}

/// The flood measurement.
#[derive(Debug, Clone, Copy)]
pub struct FloodSpec {
    /// Flooding connections (they write as fast as they can and never read).
    pub conns: usize,
    /// Size of each flooded (binary) message.
    pub size: usize,
    /// The flooders' socket receive buffer (`SO_RCVBUF`), bytes.
    pub recv_buffer: u32,
    /// How long the flood lasts.
    pub duration: Duration,
    /// The probe's latency is recorded from this long after the flood starts.
    pub probe_delay: Duration,
    /// How long after closing the flooding connections RSS is read again.
    pub after: Duration,
}

/// What [`flood`] measured.
#[derive(Debug, Clone)]
pub struct FloodOutcome {
    /// Server RSS before the flood, KiB.
    pub rss_before_kib: u64,
    /// Server RSS one second into the flood, KiB (against the peak and the end: does it level
    /// off?).
    pub rss_1s_kib: u64,
    /// Highest server RSS seen during the flood (sampled every 50 ms), KiB.
    pub rss_peak_kib: u64,
    /// Server RSS when the flood ends (flooding connections still open), KiB.
    pub rss_end_kib: u64,
    /// Kernel TCP buffers (machine-wide, both ends) when the flood ends, KiB.
    pub tcp_buffers_kib: u64,
    /// Server RSS `after` the flooding connections were closed, KiB.
    pub rss_after_kib: u64,
    /// The well-behaved client's round trips during the flood (64 B, one in flight), ns. A
    /// message still unanswered when the flood ends counts with the time it had waited.
    pub probe: Histogram<u64>,
    /// Messages the well-behaved client had echoed during the flood.
    pub probe_msgs: u64,
    /// Whether the well-behaved client's connection failed.
    pub probe_error: Option<String>,
    /// Flooding connections the server dropped before the flood ended.
    pub dropped: usize,
    /// Bytes the flooders got written into their sockets.
    pub flood_bytes: u64,
    /// CPU use during the flood (server, load generator, everything else).
    pub cpu: CpuUse,
}

/// Masked client frames of `size`-byte binary messages, about `total` bytes of them.
pub fn masked_frames(size: usize, total: usize) -> Vec<u8> {
    let mut frame = vec![0x82u8];
    match size {
        0..=125 => frame.push(0x80 | size as u8),
        126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    frame.extend_from_slice(&mask);
    frame.extend((0..size).map(|i| b'f' ^ mask[i % 4]));
    let copies = total.div_ceil(frame.len()).max(1);
    frame.repeat(copies)
}

/// The well-behaved client beside the flood, on its own thread and runtime (on the client's
/// CPU too): one 64 B message in flight, latency recorded in `[from, until)`.
fn probe_thread(
    addr: SocketAddr,
    from: Instant,
    until: Instant,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> (Histogram<u64>, u64, Option<String>) {
    let mut hist = new_histogram();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return (hist, 0, Some(e.to_string()));
        }
    };
    let mut count = 0u64;
    let error = runtime.block_on(async {
        let mut ws = match connect(addr).await {
            Ok(ws) => {
                let _ = ready.send(Ok(()));
                ws
            }
            Err(e) => {
                let _ = ready.send(Err(e.clone()));
                return Some(e);
            }
        };
        let payload = Bytes::from(vec![b'p'; 64]);
        loop {
            let sent = Instant::now();
            if sent >= until {
                return None;
            }
            if let Err(e) = ws.send(Message::Binary(payload.clone())).await {
                return Some(format!("write: {e}"));
            }
            loop {
                let next = tokio::time::timeout_at(until.into(), ws.next()).await;
                let Ok(item) = next else {
                    // Unanswered when the flood ends: count the time it waited.
                    if sent >= from {
                        record(&mut hist, sent.elapsed());
                    }
                    return None;
                };
                match classify(item) {
                    Ok(Got::Echo(_)) => break,
                    Ok(Got::Other) => continue,
                    Err(e) => return Some(e),
                }
            }
            if sent >= from {
                record(&mut hist, sent.elapsed());
                count += 1;
            }
        }
    });
    (hist, count, error)
}

/// Floods the echo server at `addr` (process `pid`) per `spec` while a well-behaved client
/// measures its latency. Must run inside a `LocalSet`.
pub async fn flood(addr: SocketAddr, pid: u32, spec: FloodSpec) -> Result<FloodOutcome, String> {
    let rss_before_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;
    let (conns, errors) = connect_many_with(addr, spec.conns, 100, Some(spec.recv_buffer)).await;
    if !errors.is_empty() {
        return Err(format!("flooders failed to connect: {errors:?}"));
    }

    // The schedule: flood for `duration`; the probe measures from `probe_delay` on.
    let setup = Duration::from_millis(300);
    let start = Instant::now() + setup;
    let until = start + spec.duration;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let probe =
        std::thread::spawn(move || probe_thread(addr, start + spec.probe_delay, until, ready_tx));
    match tokio::task::spawn_blocking(move || ready_rx.recv_timeout(CONNECT_TIMEOUT)).await {
        Ok(Ok(Ok(()))) => {}
        other => return Err(format!("probe did not connect: {other:?}")),
    }
    tokio::time::sleep_until(start.into()).await;

    let frames: Rc<[u8]> = masked_frames(spec.size, 64 << 10).into();
    let written = Rc::new(Cell::new(0u64));
    let dropped = Rc::new(Cell::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<JoinHandle<()>> = conns
        .into_iter()
        .map(|mut ws| {
            let (frames, written, dropped, stop) = (
                frames.clone(),
                written.clone(),
                dropped.clone(),
                stop.clone(),
            );
            tokio::task::spawn_local(async move {
                // The handshake was tungstenite's; from here on raw frames, and no reads.
                // `pos` keeps partial writes frame-aligned across the repeated buffer.
                let socket = ws.get_mut();
                let mut pos = 0;
                while !stop.load(Ordering::Relaxed) {
                    match socket.write(&frames[pos..]).await {
                        Ok(0) | Err(_) => {
                            if !stop.load(Ordering::Relaxed) {
                                dropped.set(dropped.get() + 1);
                            }
                            return;
                        }
                        Ok(n) => {
                            written.set(written.get() + n as u64);
                            pos = (pos + n) % frames.len();
                        }
                    }
                }
            })
        })
        .collect();

    let cpu0 = CpuSnapshot::take(pid)?;
    let mut rss_peak_kib = rss_before_kib;
    let mut rss_1s_kib = None;
    while Instant::now() < until {
        if let Ok(rss) = sys::rss_kib(pid) {
            rss_peak_kib = rss_peak_kib.max(rss);
            if rss_1s_kib.is_none() && start.elapsed() >= Duration::from_secs(1) {
                rss_1s_kib = Some(rss);
            }
        }
        let next = (Instant::now() + Duration::from_millis(50)).min(until);
        tokio::time::sleep_until(next.into()).await;
    }
    let rss_end_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;
    let tcp_buffers_kib = sys::tcp_buffers_kib().unwrap_or(0);
    rss_peak_kib = rss_peak_kib.max(rss_end_kib);
    let cpu = cpu0.until(&CpuSnapshot::take(pid)?);
    let dropped_during = dropped.get();

    stop.store(true, Ordering::Relaxed);
    for task in &flooders {
        task.abort();
    }
    for task in flooders {
        let _ = task.await;
    }
    let (probe, probe_msgs, probe_error) = tokio::task::spawn_blocking(move || probe.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "probe thread panicked".to_owned())?;
    tokio::time::sleep(spec.after).await;
    let rss_after_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;

    Ok(FloodOutcome {
        rss_before_kib,
        rss_1s_kib: rss_1s_kib.unwrap_or(rss_end_kib),
        rss_peak_kib,
        rss_end_kib,
        tcp_buffers_kib,
        rss_after_kib,
        probe,
        probe_msgs,
        probe_error,
        dropped: dropped_during,
        flood_bytes: written.get(),
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_frames_are_whole_frames() {
        let small = masked_frames(64, 1000);
        assert_eq!(small.len() % (2 + 4 + 64), 0);
        assert_eq!(&small[..2], &[0x82, 0x80 | 64]);
        let mid = masked_frames(16 << 10, 1);
        assert_eq!(mid.len(), 4 + 4 + (16 << 10));
        assert_eq!(mid[1], 0x80 | 126);
        let big = masked_frames(1 << 20, 1);
        assert_eq!(big.len(), 10 + 4 + (1 << 20));
    }
}

/// What [`slow_reader`] measured.
#[derive(Debug, Clone)]
pub struct SlowReaderOutcome {
    /// Server RSS before the client connected, KiB.
    pub rss_before_kib: u64,
    /// Most server RSS seen while the client wrote, KiB (sampled every 10 ms).
    pub rss_peak_kib: u64,
    /// Server RSS 1 s after the client left, KiB.
    pub rss_after_kib: u64,
    /// Server heap in use before, bytes (`None`: the server does not serve `/heap`).
    pub heap_before: Option<usize>,
    /// Most server heap in use during the run, bytes.
    pub heap_peak: Option<usize>,
    /// Server heap in use 1 s after the client left, bytes.
    pub heap_after: Option<usize>,
    /// Bytes the client got written into its socket.
    pub written: u64,
    /// Seconds after which the server dropped the client, if it did within the run.
    pub dropped_after: Option<f64>,
}

/// `GET /heap[?reset]` of the bench's actix servers: (now, peak) heap bytes.
pub async fn heap(addr: SocketAddr, reset: bool) -> Option<(usize, usize)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let path = if reset { "/heap?reset" } else { "/heap" };
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out);
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    let body = text.split("\r\n\r\n").nth(1)?;
    let mut it = body.split_whitespace().map(|v| v.parse::<usize>().ok());
    Some((it.next()??, it.next()??))
}

/// One client that sends `size`-byte binary messages for `duration` and never reads (its
/// `SO_RCVBUF` is 16 KiB): how much memory the server holds for it. Must run inside a
/// `LocalSet`.
pub async fn slow_reader(
    addr: SocketAddr,
    pid: u32,
    size: usize,
    duration: Duration,
) -> Result<SlowReaderOutcome, String> {
    let heap_before = heap(addr, true).await.map(|(now, _)| now);
    let rss_before_kib = sys::rss_kib(pid).map_err(|e| e.to_string())?;
    let mut ws = connect_with(addr, Some(16 << 10)).await?;
    let mut frame = Vec::with_capacity(size + 14);
    frame.push(0x82);
    frame.push(0x80 | 127);
    frame.extend_from_slice(&(size as u64).to_be_bytes());
    frame.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
    frame.extend((0..size).map(|i| (i as u8) ^ [0x11, 0x22, 0x33, 0x44][i & 3]));
    let frame: Rc<[u8]> = frame.into();
    let written = Rc::new(Cell::new(0u64));
    let dropped: Rc<Cell<Option<f64>>> = Rc::new(Cell::new(None));
    let start = Instant::now();
    let writer = {
        let (frame, written, dropped) = (frame.clone(), written.clone(), dropped.clone());
        tokio::task::spawn_local(async move {
            use tokio::io::AsyncWriteExt as _;
            let socket = ws.get_mut();
            let mut pos = 0;
            loop {
                match socket.write(&frame[pos..]).await {
                    Ok(0) | Err(_) => {
                        dropped.set(Some(start.elapsed().as_secs_f64()));
                        return;
                    }
                    Ok(n) => {
                        written.set(written.get() + n as u64);
                        pos = (pos + n) % frame.len();
                    }
                }
            }
        })
    };
    let mut rss_peak_kib = rss_before_kib;
    while start.elapsed() < duration && dropped.get().is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        rss_peak_kib = rss_peak_kib.max(sys::rss_kib(pid).map_err(|e| e.to_string())?);
    }
    writer.abort();
    let _ = writer.await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = heap(addr, false).await;
    Ok(SlowReaderOutcome {
        rss_before_kib,
        rss_peak_kib,
        rss_after_kib: sys::rss_kib(pid).map_err(|e| e.to_string())?,
        heap_before,
        heap_peak: after.map(|(_, peak)| peak),
        heap_after: after.map(|(now, _)| now),
        written: written.get(),
        dropped_after: dropped.get(),
    })
}
