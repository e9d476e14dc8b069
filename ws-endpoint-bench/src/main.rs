//! The benchmark harness of issue 5: three echo servers, each started fresh for every
//! measurement and run in alternating rounds, driven by a tokio-tungstenite load generator; and
//! the fan-out of issue 4: one message to a room of 1,000 and 10,000 sessions, in one process
//! and through Redis across two processes.
//!
//! ```text
//! cargo run --release -p ws-endpoint-bench -- all         # every scenario, 3 rounds (< 10 min)
//! cargo run --release -p ws-endpoint-bench -- quick       # every scenario, 1 short round
//! cargo run --release -p ws-endpoint-bench -- small-w1 flood --rounds 5
//! cargo run --release -p ws-endpoint-bench -- flood-long --rounds 1   # 20 s flood
//! cargo run --release -p ws-endpoint-bench -- fanout      # fan-out only (15 s to 1 min)
//! cargo run --release -p ws-endpoint-bench -- compression # permessage-deflate: echo, idle, fan-out
//! cargo run --release -p ws-endpoint-bench -- deflate idle-deflate --rounds 5
//! cargo run --release -p ws-endpoint-bench -- upload --rounds 1   # server RSS during a 1 GiB upload
//! cargo run --release -p ws-endpoint-bench -- serve actix-ws 127.0.0.1:9001
//! cargo run --release -p ws-endpoint-bench -- serve fanout 127.0.0.1:9001 [REDIS_URL]
//! cargo run --release -p ws-endpoint-bench -- hold 127.0.0.1:9001 1000 10
//! ```
//! Options: `--rounds N`, `--servers macro,actix-ws,tungstenite[,actix-ws-nagle]`,
//! `--variants plain,plain-msg,deflate,keep`, `--measure SECS`, `--flood SECS`, `--idle-conns N`,
//! `--fanout-fires N`, `--fanout-sessions N,M`, `--upload-mib N`, `--no-wait`, `--macro-bin PATH`
//! (serve "macro" with another build of the echo endpoint, e.g. `target/release/examples/echo`).
//! See `BENCHMARKS.md`.
//!
//! The compression scenarios (`deflate-w1`, `deflate-w16`, `idle-deflate`, `fanout-deflate`) run
//! against the `macro` server only; their columns are not servers but client variants
//! ([`Variant`]): `plain` (no offer), `deflate` (a browser's offer, the default endpoint: no
//! context takeover), `keep` (the same offer to `/keep`, `compression(context_takeover = true)`),
//! and for `idle-deflate` also `plain-msg` (no offer, one message echoed), in alternating rounds
//! with ratios to `plain`.
//!
//! The `upload` scenario streams one binary message of `--upload-mib` MiB (default 1,024) to
//! the `macro` server's `/upload` endpoint (a `BinaryStream` handler that counts and hashes,
//! as `examples/upload.rs`; always the bench's own server, whatever `--macro-bin` says), in
//! 1 MiB frames and in one frame, and reports the server's RSS (idle, peak while the upload
//! runs, sampled every 20 ms) with throughput and server CPU per MiB ([`upload`]).

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use std::rc::Rc;

use ws_endpoint_bench::{
    client::{self, EchoSpec, FloodSpec},
    corpus,
    deflate_client::{self, Corpus, Variant},
    fanout::{self, FanoutOutcome, FanoutSpec, Listeners},
    history,
    report::{self, Row},
    servers::{self, ServerKind},
    sys,
    upload::{self, Framing, Payload, UploadSpec},
};

const USAGE: &str = "\
usage: ws-endpoint-bench <all | quick | SCENARIO...> [options]
       ws-endpoint-bench serve <macro | actix-ws | tungstenite | actix-ws-nagle> ADDR
       ws-endpoint-bench serve fanout ADDR [REDIS_URL]
       ws-endpoint-bench serve history ADDR [REDIS_URL]
       ws-endpoint-bench hold ADDR N SECS    (open N idle connections to ADDR, hold them SECS;
                                             for profiling a server started by hand)

scenarios: small-w1 small-w16 16k 1m idle flood fanout   (all and quick run these)
           flood-long            the flood for 20 s: past ws-endpoint's 10 s send timeout
           fanout                one message to a room of 1,000 and 10,000 sessions, in one
                                 process and through Redis across two (needs redis-server)
compression (permessage-deflate, against macro only; all and quick run these too):
           deflate-w1 deflate-w16  a corpus of 50 JSON documents (200 B to 10 KiB) echoed,
                                 1 / 16 in flight, 50 conns: plain, deflate, keep
           deflate               both of the above
           idle-deflate          --idle-conns connections that each exchange one compressed
                                 ~1 KiB message, then idle: RSS per conn; plain, plain-msg,
                                 deflate, keep
           fanout-deflate        a ~1 KiB JSON message to a room of --fanout-sessions, listeners
                                 that offer permessage-deflate and listeners that do not
           compression           deflate-w1 deflate-w16 idle-deflate fanout-deflate
streaming (all and quick run it too; about 4 s a round):
           upload                one binary message of --upload-mib MiB streamed to the macro
                                 server's /upload (BinaryStream, SHA-256), in 1 MiB frames and
                                 in one frame: server RSS idle, peak during the upload (sampled
                                 every 20 ms), peak - idle, MiB/s, server CPU per MiB
history (not in all or quick; about 30 s):
           history               replay of 1,000 missed 64 B messages to a client reconnecting
                                 with ?since= (in one process, and through Redis Streams), and
                                 the round trip of a presence query over 1,000 sessions on two
                                 servers sharing Redis, against a plain ping
options:   --rounds N            rounds of A B C (default 3; quick: 1)
           --servers a,b,c       servers to compare (default macro,actix-ws,tungstenite;
                                 also actix-ws-nagle: the baseline without TCP_NODELAY)
           --variants a,b        compression variants to compare (default: all of plain,
                                 plain-msg, deflate, keep that a scenario has)
           --fanout-fires N      measured fires per fan-out setup (default 5; quick: 3)
           --fanout-sessions N,M room sizes (default 1000,10000)
           --measure SECS        measured seconds per echo run (default 3; quick: 1.5)
           --idle-conns N        idle connections (default 5000)
           --upload-mib N        the upload's size, MiB (default 1024, at most 4096)
           --flood SECS          flood duration (default 5; quick: 3)
           --no-wait             do not wait for other processes to go quiet before a run
                                 (by default up to 120 s in all, before runs, are spent so)
                                 and do not measure again a run they disturbed (> 10 % of a
                                 CPU used by others; by default up to 12 runs are redone)
           --macro-bin PATH      serve \"macro\" with this binary (address as first argument,
                                 ECHO_WORKERS=1), e.g. target/release/examples/echo";

/// The scenarios of issue 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    SmallW1,
    SmallW16,
    Medium,
    Large,
    Idle,
    Flood,
    FloodLong,
    SlowReader,
}

impl Scenario {
    const ALL: [Scenario; 7] = [
        Scenario::SmallW1,
        Scenario::SmallW16,
        Scenario::Medium,
        Scenario::Large,
        Scenario::Idle,
        Scenario::Flood,
        Scenario::SlowReader,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::SmallW1 => "small-w1",
            Scenario::SmallW16 => "small-w16",
            Scenario::Medium => "16k",
            Scenario::Large => "1m",
            Scenario::Idle => "idle",
            Scenario::Flood => "flood",
            Scenario::FloodLong => "flood-long",
            Scenario::SlowReader => "slow-reader",
        }
    }

    /// Echo parameters: (connections, message size, window).
    fn echo(self) -> Option<(usize, usize, usize)> {
        match self {
            Scenario::SmallW1 => Some((50, 64, 1)),
            Scenario::SmallW16 => Some((50, 64, 16)),
            Scenario::Medium => Some((16, 16 << 10, 1)),
            Scenario::Large => Some((4, 1 << 20, 1)),
            Scenario::Idle | Scenario::Flood | Scenario::FloodLong | Scenario::SlowReader => None,
        }
    }

    fn title(self, opts: &Options) -> String {
        match (self, self.echo()) {
            (_, Some((conns, size, window))) => {
                let size = match size {
                    s if s >= 1 << 20 => format!("{} MiB", s >> 20),
                    s if s >= 1 << 10 => format!("{} KiB", s >> 10),
                    s => format!("{s} B"),
                };
                format!("{size}, W={window}, {conns} conns")
            }
            (Scenario::Idle, _) => format!("{} idle conns", opts.idle_conns),
            (Scenario::SlowReader, _) => format!(
                "one client sending 16 MiB messages for {} s, never reading",
                SLOW_READER.as_secs()
            ),
            _ => format!(
                "flood: {} conns × 64 B, {} s, flooders' SO_RCVBUF {} KiB",
                FLOOD_CONNS,
                self.flood_duration(opts).as_secs_f64(),
                FLOOD_RECV_BUFFER >> 10
            ),
        }
    }

    /// How long this scenario floods: `flood-long` outlasts ws-endpoint's 10 s send timeout.
    fn flood_duration(self, opts: &Options) -> Duration {
        if self == Scenario::FloodLong {
            FLOOD_LONG
        } else {
            opts.flood
        }
    }

    /// The metrics a run of this scenario reports: (name, decimals), in the order of the values.
    fn metrics(self) -> &'static [(&'static str, usize)] {
        match self {
            Scenario::Idle => &[
                ("conns open", 0),
                ("RSS before, MiB", 1),
                ("RSS with conns, MiB", 1),
                ("**RSS per conn, KiB**", 2),
                ("connect time, s", 2),
                ("failed conns", 0),
            ],
            Scenario::SlowReader => &[
                ("RSS before, MiB", 1),
                ("**RSS peak, MiB**", 1),
                ("RSS 1 s after, MiB", 1),
                ("heap before, MiB", 1),
                ("**heap peak, MiB**", 1),
                ("heap 1 s after, MiB", 1),
                ("written by the client, MiB", 0),
                ("dropped after, s", 1),
            ],
            Scenario::Flood | Scenario::FloodLong => &[
                ("RSS before, MiB", 1),
                ("RSS 1 s into flood, MiB", 1),
                ("**RSS peak during, MiB**", 1),
                ("RSS at end of flood, MiB", 1),
                ("peak growth per flooder, KiB", 0),
                ("kernel TCP buffers at end, MiB", 0),
                ("RSS 2 s after close, MiB", 1),
                ("**probe p50, ms**", 2),
                ("**probe p99, ms**", 2),
                ("probe max, ms", 2),
                ("probe msgs echoed", 0),
                ("flooders dropped by server", 0),
                ("flood written, MiB", 0),
                ("server CPU, %", 0),
                ("load generator CPU, %", 0),
                ("others' CPU, %", 0),
            ],
            _ => &[
                ("**msgs/s**", 0),
                ("**server CPU µs/msg**", 2),
                ("**server user µs/msg**", 2),
                ("server system µs/msg", 2),
                ("server CPU, %", 0),
                ("load generator CPU, %", 0),
                ("others' CPU, %", 0),
                ("latency p50, µs", 0),
                ("latency p90, µs", 0),
                ("latency p99, µs", 0),
                ("latency p99.9, µs", 0),
                ("server RSS, MiB", 1),
                ("failed conns", 0),
            ],
        }
    }
}

/// The compression scenarios: against the `macro` server, one column per client [`Variant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CompScenario {
    DeflateW1,
    DeflateW16,
    IdleDeflate,
}

/// Connections of the compressed echo (as in `small-w1` and `small-w16`).
const DEFLATE_CONNS: usize = 50;

impl CompScenario {
    const ALL: [CompScenario; 3] = [
        CompScenario::DeflateW1,
        CompScenario::DeflateW16,
        CompScenario::IdleDeflate,
    ];

    fn name(self) -> &'static str {
        match self {
            CompScenario::DeflateW1 => "deflate-w1",
            CompScenario::DeflateW16 => "deflate-w16",
            CompScenario::IdleDeflate => "idle-deflate",
        }
    }

    /// Messages in flight per connection; `None`: the idle scenario.
    fn window(self) -> Option<usize> {
        match self {
            CompScenario::DeflateW1 => Some(1),
            CompScenario::DeflateW16 => Some(16),
            CompScenario::IdleDeflate => None,
        }
    }

    /// The variants this scenario compares (of those `--variants` allows), `plain` first.
    fn variants(self, opts: &Options) -> Vec<Variant> {
        Variant::ALL
            .into_iter()
            .filter(|&v| v != Variant::PlainMsg || self.window().is_none())
            .filter(|v| opts.variants.contains(v))
            .collect()
    }

    fn title(self, opts: &Options) -> String {
        match self.window() {
            Some(window) => format!(
                "JSON corpus ({} docs, mean {:.0} B), W={window}, {DEFLATE_CONNS} conns",
                corpus::DOCS,
                opts.corpus.mean_size()
            ),
            None => format!(
                "{} idle conns after one {} B message",
                opts.idle_conns,
                opts.corpus.docs[opts.corpus.nearest(1024)].len()
            ),
        }
    }

    fn metrics(self) -> &'static [(&'static str, usize)] {
        match self.window() {
            None => &[
                ("conns open", 0),
                ("RSS before, MiB", 1),
                ("RSS with conns, MiB", 1),
                ("**RSS per conn, KiB**", 2),
                ("echoes compressed", 0),
                ("connect + echo time, s", 2),
                ("failed conns", 0),
            ],
            Some(_) => &[
                ("**msgs/s**", 0),
                ("**server CPU µs/msg**", 2),
                ("**server user µs/msg**", 2),
                ("server system µs/msg", 2),
                ("**wire bytes/msg, client → server**", 0),
                ("**wire bytes/msg, server → client**", 0),
                ("echoes compressed, %", 0),
                ("server CPU, %", 0),
                ("load generator CPU, %", 0),
                ("others' CPU, %", 0),
                ("latency p50, µs", 0),
                ("latency p99, µs", 0),
                ("server RSS, MiB", 1),
                ("failed conns", 0),
            ],
        }
    }
}

const FLOOD_CONNS: usize = 50;

/// How long the slow reader writes: past the 10 s `send_timeout` that drops it.
const SLOW_READER: Duration = Duration::from_secs(14);

/// A run during which other processes (or the hypervisor: steal time) used more than this much
/// of a CPU is measured again, up to 12 times per invocation (not with `--no-wait`).
const DISTURBED_PCT: f64 = 10.0;

/// The `flood-long` duration: past ws-endpoint's default 10 s `send_timeout` counted from when
/// the queues fill (about 3 s in), to show what that policy does.
const FLOOD_LONG: Duration = Duration::from_secs(20);

/// The flooders' `SO_RCVBUF`: small, so that what the server cannot send piles up in the
/// server's own queues within the flood rather than in the kernel's socket buffers (with
/// autotuned buffers each flooder soaks up ~10 MB of echoes in the kernel first).
const FLOOD_RECV_BUFFER: u32 = 16 << 10;

#[derive(Debug)]
struct Options {
    scenarios: Vec<Scenario>,
    servers: Vec<ServerKind>,
    rounds: usize,
    warmup: Duration,
    measure: Duration,
    flood: Duration,
    idle_conns: usize,
    macro_bin: Option<PathBuf>,
    server_cpu: Option<usize>,
    /// The compression scenarios.
    comp: Vec<CompScenario>,
    /// The client variants they compare.
    variants: Vec<Variant>,
    /// The JSON corpus they send.
    corpus: Rc<Corpus>,
    /// Whether to measure the fan-out (issue 4).
    fanout: bool,
    /// Whether to measure the compressed fan-out (1 KiB JSON, deflate or not).
    fanout_deflate: bool,
    fanout_fires: usize,
    fanout_sessions: Vec<usize>,
    /// Total time the harness may wait for other processes to quiet down before runs.
    quiet_budget: Duration,
    /// Runs that may still be redone because other processes used the CPU during them.
    retries: usize,
    /// Whether to measure the streaming upload.
    upload: bool,
    history: bool,
    /// Its size, MiB.
    upload_mib: u64,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        scenarios: Vec::new(),
        servers: ServerKind::ALL.to_vec(),
        rounds: 3,
        warmup: Duration::from_secs(1),
        measure: Duration::from_secs(3),
        flood: Duration::from_secs(5),
        idle_conns: 5000,
        macro_bin: None,
        server_cpu: None,
        comp: Vec::new(),
        variants: Variant::ALL.to_vec(),
        corpus: Rc::new(Corpus::new()),
        fanout: false,
        fanout_deflate: false,
        fanout_fires: 5,
        fanout_sessions: vec![1000, 10_000],
        quiet_budget: Duration::from_secs(120),
        retries: 12,
        upload: false,
        history: false,
        upload_mib: 1024,
    };
    let mut quick = false;
    let mut rounds = None;
    let mut measure = None;
    let mut flood = None;
    let mut fires = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "all" | "quick" => {
                quick |= arg == "quick";
                opts.scenarios.extend(Scenario::ALL);
                opts.comp.extend(CompScenario::ALL);
                opts.fanout = true;
                opts.fanout_deflate = true;
                opts.upload = true;
            }
            "flood-long" => opts.scenarios.push(Scenario::FloodLong),
            "upload" => opts.upload = true,
            "history" => opts.history = true,
            "--upload-mib" => {
                opts.upload_mib = value(arg)?
                    .parse::<u64>()
                    .map_err(|e| format!("--upload-mib: {e}"))?
                    .clamp(1, 4096)
            }
            "fanout" => opts.fanout = true,
            "fanout-deflate" => opts.fanout_deflate = true,
            "deflate" => opts
                .comp
                .extend([CompScenario::DeflateW1, CompScenario::DeflateW16]),
            "compression" => {
                opts.comp.extend(CompScenario::ALL);
                opts.fanout_deflate = true;
            }
            "--variants" => {
                opts.variants = value(arg)?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--fanout-fires" => {
                fires = Some(
                    value(arg)?
                        .parse::<usize>()
                        .map_err(|e| format!("--fanout-fires: {e}"))?
                        .max(1),
                )
            }
            "--fanout-sessions" => {
                opts.fanout_sessions = value(arg)?
                    .split(',')
                    .map(|n| n.parse::<usize>().map(|n| n.max(1)))
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--fanout-sessions: {e}"))?
            }
            "--rounds" => {
                rounds = Some(
                    value(arg)?
                        .parse::<usize>()
                        .map_err(|e| format!("--rounds: {e}"))?
                        .max(1),
                )
            }
            "--measure" => {
                let secs: f64 = value(arg)?.parse().map_err(|e| format!("--measure: {e}"))?;
                measure = Some(Duration::from_secs_f64(secs.clamp(0.1, 600.0)));
            }
            "--idle-conns" => {
                opts.idle_conns = value(arg)?
                    .parse()
                    .map_err(|e| format!("--idle-conns: {e}"))?
            }
            "--no-wait" => {
                opts.quiet_budget = Duration::ZERO;
                opts.retries = 0;
            }
            "--flood" => {
                let secs: f64 = value(arg)?.parse().map_err(|e| format!("--flood: {e}"))?;
                flood = Some(Duration::from_secs_f64(secs.clamp(1.0, 60.0)));
            }
            "--macro-bin" => opts.macro_bin = Some(PathBuf::from(value(arg)?)),
            "--servers" => {
                opts.servers = value(arg)?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            name => {
                if let Some(s) = Scenario::ALL.into_iter().find(|s| s.name() == name) {
                    opts.scenarios.push(s);
                } else if let Some(c) = CompScenario::ALL.into_iter().find(|c| c.name() == name) {
                    opts.comp.push(c);
                } else {
                    return Err(format!("unknown argument `{name}`"));
                }
            }
        }
    }
    if quick {
        opts.rounds = 1;
        opts.warmup = Duration::from_millis(500);
        opts.measure = Duration::from_millis(1500);
        opts.flood = Duration::from_secs(3);
        opts.fanout_fires = 3;
    }
    if let Some(f) = fires {
        opts.fanout_fires = f;
    }
    if let Some(r) = rounds {
        opts.rounds = r;
    }
    if let Some(m) = measure {
        opts.measure = m;
    }
    if let Some(f) = flood {
        opts.flood = f;
    }
    opts.scenarios.dedup();
    let mut seen = Vec::new();
    opts.comp.retain(|c| {
        let new = !seen.contains(c);
        seen.push(*c);
        new
    });
    let echo = !opts.scenarios.is_empty() && !opts.servers.is_empty();
    let comp = opts.comp.iter().any(|c| !c.variants(&opts).is_empty());
    if !echo && !comp && !opts.fanout && !opts.fanout_deflate && !opts.upload && !opts.history {
        return Err("nothing to run".to_owned());
    }
    Ok(opts)
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    pid: u32,
    addr: SocketAddr,
}

fn free_addr() -> Result<SocketAddr, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

impl Server {
    /// Starts the echo server of `kind`.
    fn start(kind: ServerKind, opts: &Options) -> Result<Server, String> {
        let addr = free_addr()?;
        let cmd = match (kind, &opts.macro_bin) {
            (ServerKind::Macro, Some(bin)) => {
                let mut cmd = Command::new(bin);
                cmd.arg(addr.to_string()).env("ECHO_WORKERS", "1");
                cmd
            }
            _ => {
                let exe = std::env::current_exe().map_err(|e| e.to_string())?;
                let mut cmd = Command::new(exe);
                cmd.arg("serve").arg(kind.name()).arg(addr.to_string());
                cmd
            }
        };
        Server::spawn(kind.name(), cmd, addr, opts.server_cpu)
    }

    /// Starts the bench's own `macro` server (whatever `--macro-bin` says), for its `/upload`.
    fn start_upload(opts: &Options) -> Result<Server, String> {
        let addr = free_addr()?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg(ServerKind::Macro.name())
            .arg(addr.to_string());
        Server::spawn("upload server", cmd, addr, opts.server_cpu)
    }

    /// Starts the fan-out server, connected to the Redis server at `redis` if given.
    fn start_fanout(opts: &Options, redis: Option<SocketAddr>) -> Result<Server, String> {
        let addr = free_addr()?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve").arg("fanout").arg(addr.to_string());
        if let Some(redis) = redis {
            cmd.arg(format!("redis://{redis}/"));
        }
        Server::spawn("fanout server", cmd, addr, opts.server_cpu)
    }

    /// Starts the history server, connected to the Redis server at `redis` if given.
    fn start_history(opts: &Options, redis: Option<SocketAddr>) -> Result<Server, String> {
        let addr = free_addr()?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve").arg("history").arg(addr.to_string());
        if let Some(redis) = redis {
            cmd.arg(format!("redis://{redis}/"));
        }
        Server::spawn("history server", cmd, addr, opts.server_cpu)
    }

    /// Starts a `redis-server` on 127.0.0.1 that keeps nothing on disk.
    fn start_redis(opts: &Options) -> Result<Server, String> {
        let addr = free_addr()?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port"])
            .arg(addr.port().to_string())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .current_dir(std::env::temp_dir());
        Server::spawn("redis-server", cmd, addr, opts.server_cpu)
    }

    /// Spawns `cmd` (pinned to `cpu` if given) and waits until it listens on `addr`.
    fn spawn(
        name: &str,
        mut cmd: Command,
        addr: SocketAddr,
        cpu: Option<usize>,
    ) -> Result<Server, String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(cpu) = cpu {
            // SAFETY: the hook makes one system call (sched_setaffinity), which is
            // async-signal-safe, and touches no memory shared with the parent.
            unsafe {
                cmd.pre_exec(move || sys::pin_current_thread(cpu));
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let mut server = Server {
            pid: child.id(),
            child,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("{name} exited at start: {status}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{name} did not listen on {addr} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the readiness probe's connection be accepted and closed.
        std::thread::sleep(Duration::from_millis(200));
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn quantile(hist: &Histogram<u64>, q: f64, unit_ns: f64) -> f64 {
    if hist.is_empty() {
        f64::NAN
    } else {
        hist.value_at_quantile(q) as f64 / unit_ns
    }
}

/// Runs one scenario against a fresh server; returns the metric values (see
/// [`Scenario::metrics`]) and a one-line summary.
fn run_one(
    scenario: Scenario,
    kind: ServerKind,
    opts: &Options,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Vec<f64>, String), String> {
    let server = Server::start(kind, opts)?;
    let (addr, pid) = (server.addr, server.pid);
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(runtime, async {
        if let Some((conns, size, window)) = scenario.echo() {
            let spec = EchoSpec {
                conns,
                size,
                window,
                warmup: opts.warmup,
                measure: opts.measure,
            };
            let o = client::echo(addr, pid, spec).await?;
            let us = 1e3;
            let values = vec![
                o.msgs_per_s,
                o.cpu_us_per_msg,
                o.user_us_per_msg,
                o.system_us_per_msg,
                o.cpu.server_pct,
                o.cpu.client_pct,
                o.cpu.others_pct,
                quantile(&o.latency, 0.5, us),
                quantile(&o.latency, 0.9, us),
                quantile(&o.latency, 0.99, us),
                quantile(&o.latency, 0.999, us),
                mib(o.rss_kib),
                o.errors.len() as f64,
            ];
            let mut line = format!(
                "{} msgs/s, {:.2} µs CPU/msg (user {:.2}, sys {:.2}), CPU % server {:.0} client {:.0} others {:.0}, p50 {:.0} µs, p99 {:.0} µs",
                report::number(values[0], 0),
                values[1],
                values[2],
                values[3],
                values[4],
                values[5],
                values[6],
                values[7],
                values[9]
            );
            if let Some(e) = o.errors.first() {
                line += &format!(", {} failed conns (first: {e})", o.errors.len());
            }
            Ok((values, line))
        } else if scenario == Scenario::SlowReader {
            let o = client::slow_reader(addr, pid, 16 << 20, SLOW_READER).await?;
            let heap_mib = |b: Option<usize>| b.map_or(f64::NAN, |b| b as f64 / (1 << 20) as f64);
            let values = vec![
                mib(o.rss_before_kib),
                mib(o.rss_peak_kib),
                mib(o.rss_after_kib),
                heap_mib(o.heap_before),
                heap_mib(o.heap_peak),
                heap_mib(o.heap_after),
                o.written as f64 / (1 << 20) as f64,
                o.dropped_after.unwrap_or(f64::NAN),
            ];
            let line = format!(
                "RSS {:.1} -> peak {:.1} -> after {:.1} MiB, heap {:.1} -> peak {:.1} -> after {:.1} MiB, {:.0} MiB written, dropped after {:.1} s",
                values[0], values[1], values[2], values[3], values[4], values[5], values[6], values[7]
            );
            Ok((values, line))
        } else if scenario == Scenario::Idle {
            let o = client::idle(addr, pid, opts.idle_conns, 100, Duration::from_secs(1)).await?;
            let values = vec![
                o.opened as f64,
                mib(o.rss_before_kib),
                mib(o.rss_with_kib),
                o.kib_per_conn(),
                o.connect_secs,
                o.errors.len() as f64,
            ];
            let mut line = format!(
                "{} conns in {:.2} s, RSS {:.1} -> {:.1} MiB, {:.2} KiB/conn",
                o.opened, o.connect_secs, values[1], values[2], values[3]
            );
            if let Some(e) = o.errors.first() {
                line += &format!(", {} failed (first: {e})", o.errors.len());
            }
            Ok((values, line))
        } else {
            let spec = FloodSpec {
                conns: FLOOD_CONNS,
                size: 64,
                recv_buffer: FLOOD_RECV_BUFFER,
                duration: scenario.flood_duration(opts),
                probe_delay: Duration::from_millis(500),
                after: Duration::from_secs(2),
            };
            let o = client::flood(addr, pid, spec).await?;
            let ms = 1e6;
            let values = vec![
                mib(o.rss_before_kib),
                mib(o.rss_1s_kib),
                mib(o.rss_peak_kib),
                mib(o.rss_end_kib),
                (o.rss_peak_kib as f64 - o.rss_before_kib as f64) / FLOOD_CONNS as f64,
                mib(o.tcp_buffers_kib),
                mib(o.rss_after_kib),
                quantile(&o.probe, 0.5, ms),
                quantile(&o.probe, 0.99, ms),
                quantile(&o.probe, 1.0, ms),
                o.probe_msgs as f64,
                o.dropped as f64,
                o.flood_bytes as f64 / (1 << 20) as f64,
                o.cpu.server_pct,
                o.cpu.client_pct,
                o.cpu.others_pct,
            ];
            let mut line = format!(
                "RSS {:.1} -> peak {:.1} -> after {:.1} MiB, probe p50 {:.2} ms p99 {:.2} ms ({} msgs), {} flooders dropped",
                values[0], values[2], values[6], values[7], values[8], o.probe_msgs, o.dropped
            );
            if let Some(e) = &o.probe_error {
                line += &format!(", probe failed: {e}");
            }
            Ok((values, line))
        }
    });
    drop(server);
    result
}

/// Runs one compression scenario's variant against a fresh `macro` server; returns the metric
/// values (see [`CompScenario::metrics`]) and a one-line summary.
fn run_comp_one(
    scenario: CompScenario,
    variant: Variant,
    opts: &Options,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Vec<f64>, String), String> {
    let server = Server::start(ServerKind::Macro, opts)?;
    let (addr, pid) = (server.addr, server.pid);
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(runtime, async {
        if let Some(window) = scenario.window() {
            let spec = deflate_client::EchoSpec {
                conns: DEFLATE_CONNS,
                window,
                variant,
                warmup: opts.warmup,
                measure: opts.measure,
            };
            let o = deflate_client::echo(addr, pid, spec, opts.corpus.clone()).await?;
            let us = 1e3;
            let values = vec![
                o.msgs_per_s,
                o.cpu_us_per_msg,
                o.user_us_per_msg,
                o.system_us_per_msg,
                o.bytes_out_per_msg,
                o.bytes_in_per_msg,
                o.compressed_pct,
                o.cpu.server_pct,
                o.cpu.client_pct,
                o.cpu.others_pct,
                quantile(&o.latency, 0.5, us),
                quantile(&o.latency, 0.99, us),
                mib(o.rss_kib),
                o.errors.len() as f64,
            ];
            let mut line = format!(
                "{} msgs/s, {:.2} µs CPU/msg (user {:.2}, sys {:.2}), wire B/msg out {:.0} in {:.0}, {:.0} % compressed, CPU % server {:.0} client {:.0} others {:.0}, p50 {:.0} µs",
                report::number(values[0], 0),
                values[1],
                values[2],
                values[3],
                values[4],
                values[5],
                values[6],
                values[7],
                values[8],
                values[9],
                values[10]
            );
            if let Some(e) = o.errors.first() {
                line += &format!(", {} failed conns (first: {e})", o.errors.len());
            }
            Ok((values, line))
        } else {
            let o = deflate_client::idle(
                addr,
                pid,
                opts.idle_conns,
                100,
                variant,
                Duration::from_secs(1),
            )
            .await?;
            let i = &o.idle;
            let values = vec![
                i.opened as f64,
                mib(i.rss_before_kib),
                mib(i.rss_with_kib),
                i.kib_per_conn(),
                o.compressed as f64,
                i.connect_secs,
                i.errors.len() as f64,
            ];
            let mut line = format!(
                "{} conns in {:.2} s ({} echoes compressed), RSS {:.1} -> {:.1} MiB, {:.2} KiB/conn",
                i.opened, i.connect_secs, o.compressed, values[1], values[2], values[3]
            );
            if let Some(e) = i.errors.first() {
                line += &format!(", {} failed (first: {e})", i.errors.len());
            }
            Ok((values, line))
        }
    });
    drop(server);
    result
}

/// How often the `upload` scenario samples the server's RSS.
const UPLOAD_SAMPLE: Duration = Duration::from_millis(20);

/// The target of the `upload` scenario: the server's peak RSS during the upload at most this
/// far above its idle RSS, MiB.
const UPLOAD_TARGET_MIB: f64 = 64.0;

/// The `upload` scenario's metrics: (name, decimals), in the order of the values.
const UPLOAD_METRICS: &[(&str, usize)] = &[
    ("RSS idle, MiB", 1),
    ("**RSS peak during the upload, MiB**", 1),
    ("**peak − idle, MiB**", 1),
    ("RSS after the reply, MiB", 1),
    ("heap idle, MiB", 2),
    ("heap peak, MiB", 2),
    ("**throughput, MiB/s**", 0),
    ("**server CPU, ms/MiB**", 3),
    ("server user, ms/MiB", 3),
    ("server system, ms/MiB", 3),
    ("upload time (first byte to reply), s", 2),
    ("write time (first byte to last), s", 2),
    ("frames", 0),
    ("RSS samples", 0),
    ("longest gap between samples, ms", 0),
    ("server CPU, %", 0),
    ("load generator CPU, %", 0),
    ("others' CPU, %", 0),
];

/// Streams one upload of `framing` to a fresh `macro` server; returns the metric values (see
/// [`UPLOAD_METRICS`]) and a one-line summary.
fn run_upload_one(
    framing: Framing,
    opts: &Options,
    payload: &mut Payload,
    sha256: &str,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Vec<f64>, String), String> {
    let server = Server::start_upload(opts)?;
    let spec = UploadSpec {
        blocks: opts.upload_mib,
        framing,
        sample_every: UPLOAD_SAMPLE,
    };
    let o = runtime.block_on(upload::upload(
        server.addr,
        server.pid,
        spec,
        payload,
        sha256,
    ));
    drop(server);
    let o = o?;
    let heap_mib = |b: Option<usize>| b.map_or(f64::NAN, |b| b as f64 / (1 << 20) as f64);
    let per_mib = |secs: f64| secs * 1e3 / opts.upload_mib as f64;
    let values = vec![
        mib(o.rss_idle_kib),
        mib(o.rss_peak_kib),
        mib(o.rss_peak_kib) - mib(o.rss_idle_kib),
        mib(o.rss_after_kib),
        heap_mib(o.heap_idle),
        heap_mib(o.heap_peak),
        o.mib_per_s(opts.upload_mib),
        per_mib(o.cpu.server_secs),
        per_mib(o.cpu.server_user_secs),
        per_mib(o.cpu.server_system_secs),
        o.secs,
        o.write_secs,
        o.frames as f64,
        o.samples as f64,
        ms(o.max_gap),
        o.cpu.server_pct,
        o.cpu.client_pct,
        o.cpu.others_pct,
    ];
    let line = format!(
        "RSS idle {:.1} MiB, peak {:.1} MiB, peak − idle {:.1} MiB, after {:.1} MiB ({} samples, longest gap {:.0} ms); heap idle {:.2} peak {:.2} MiB; {:.0} MiB/s ({:.2} s), server CPU {:.3} ms/MiB ({:.0} %), client {:.0} %, others {:.0} %; reply: {} bytes and SHA-256 as sent",
        values[0],
        values[1],
        values[2],
        values[3],
        o.samples,
        values[14],
        values[4],
        values[5],
        values[6],
        o.secs,
        values[7],
        values[15],
        values[16],
        values[17],
        report::number((opts.upload_mib << 20) as f64, 0),
    );
    Ok((values, line))
}

/// The `upload` table: medians per framing, with ratios to 1 MiB frames, and the target.
fn print_upload(opts: &Options, values: &[Vec<Vec<f64>>]) {
    let names: Vec<&str> = Framing::ALL.iter().map(|f| f.name()).collect();
    let scenario = format!(
        "one {} MiB binary message",
        report::number(opts.upload_mib as f64, 0)
    );
    let rows: Vec<Row> = UPLOAD_METRICS
        .iter()
        .enumerate()
        .map(|(mi, &(metric, decimals))| Row {
            scenario: scenario.clone(),
            metric: metric.to_owned(),
            decimals,
            values: values
                .iter()
                .map(|rounds| rounds.iter().map(|v| v[mi]).collect())
                .collect(),
        })
        .collect();
    println!(
        "\nUpload (streaming): one binary message of {} MiB to the macro server's `{}` (`BinaryStream`, counted and hashed with SHA-256 as it arrives; reply checked against the client's own length and SHA-256), frames masked with the zero key; server RSS sampled every {} ms from the first byte written to the reply; a fresh server per upload. Medians of {} round(s); ratios to {}:\n",
        report::number(opts.upload_mib as f64, 0),
        upload::PATH,
        UPLOAD_SAMPLE.as_millis(),
        opts.rounds,
        names[0]
    );
    print!("{}", report::median_table(&names, 0, &rows));
    let growth = rows.iter().find(|r| r.metric == "**peak − idle, MiB**");
    if let Some(growth) = growth {
        for (name, v) in names.iter().zip(&growth.values) {
            let m = report::median(v);
            println!(
                "\n{name}: peak − idle {} MiB (target: < {UPLOAD_TARGET_MIB:.0}: {})",
                report::number(m, 1),
                if m.is_nan() {
                    "not measured"
                } else if m < UPLOAD_TARGET_MIB {
                    "met"
                } else {
                    "**missed**"
                }
            );
        }
    }
    if opts.rounds > 1 {
        println!("\nEvery round:\n");
        print!("{}", report::rounds_table(&names, &rows));
    }
}

/// Runs `run` until it is not disturbed by other processes (its `others'` metric at `others`
/// above [`DISTURBED_PCT`]) or the retries are used up, after waiting for quiet. Returns when
/// the kept run started, and its result.
fn run_measured(
    opts: &mut Options,
    label: &str,
    others: Option<usize>,
    mut run: impl FnMut(&Options) -> Result<(Vec<f64>, String), String>,
) -> (Instant, Result<(Vec<f64>, String), String>) {
    loop {
        let waited = wait_quiet(&mut opts.quiet_budget);
        if waited >= 1.0 {
            eprintln!("(waited {waited:.0} s for other processes to quiet down)");
        }
        let t0 = Instant::now();
        let result = run(opts);
        let disturbed = match (&result, others) {
            (Ok((v, _)), Some(i)) => Some(v[i]).filter(|&o| o > DISTURBED_PCT),
            _ => None,
        };
        match disturbed {
            Some(pct) if opts.retries > 0 => {
                opts.retries -= 1;
                eprintln!("{label} disturbed: others' CPU {pct:.0} % of a core; measuring again");
            }
            _ => return (t0, result),
        }
    }
}

/// Waits (at most `budget`, which it uses up) until the rest of the machine has used less than
/// 15 % of one CPU over half a second. Returns the seconds waited.
fn wait_quiet(budget: &mut Duration) -> f64 {
    let t0 = Instant::now();
    loop {
        let sample = || -> Option<f64> {
            let me = std::process::id();
            let (m0, c0) = (
                sys::machine_busy_seconds().ok()?,
                sys::cpu_seconds(me).ok()?,
            );
            std::thread::sleep(Duration::from_millis(500));
            let (m1, c1) = (
                sys::machine_busy_seconds().ok()?,
                sys::cpu_seconds(me).ok()?,
            );
            Some(((m1 - m0) - (c1 - c0)) / 0.5)
        };
        let busy = sample().unwrap_or(0.0);
        let waited = t0.elapsed();
        if busy < 0.15 || waited >= *budget {
            *budget = budget.saturating_sub(waited);
            return waited.as_secs_f64();
        }
    }
}

/// The commit the harness was built from, and whether the library sources had uncommitted
/// changes (from `git`, when it is there).
fn source_version() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&[
                "status",
                "--porcelain",
                "--",
                "../ws-endpoint",
                "../ws-endpoint-macros",
            ])
            .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("commit {commit} + uncommitted changes in ws-endpoint / ws-endpoint-macros")
            } else {
                format!("commit {commit}")
            }
        }
        None => "unknown commit (no git)".to_owned(),
    }
}

fn machine_lines(opts: &Options, nofile: u64, pinning: &str) -> Vec<String> {
    let cores = sys::cpu_count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut lines = vec![
        format!(
            "command: cargo run --release -p ws-endpoint-bench -- {}",
            args.join(" ")
        ),
        format!(
            "machine: {}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {}",
            sys::cpu_model(),
            kernel.trim()
        ),
        format!("pinning: {pinning}"),
        format!("ws-endpoint: {}", source_version()),
        format!(
            "servers: {} (each started fresh per measurement; open-file limit {nofile})",
            opts.servers
                .iter()
                .map(|k| match (k, &opts.macro_bin) {
                    (ServerKind::Macro, Some(bin)) => format!("macro = {}", bin.display()),
                    _ => k.name().to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "rounds: {} (A B C per scenario per round), warmup {:.1} s + {:.1} s measured per echo run, flood {:.0} s",
            opts.rounds,
            opts.warmup.as_secs_f64(),
            opts.measure.as_secs_f64(),
            opts.flood.as_secs_f64()
        ),
    ];
    if !opts.comp.is_empty() {
        lines.push(format!(
            "compression: against macro, client variants {} (the client: deflate_client.rs, level {}), {DEFLATE_CONNS} conns per echo, {} idle conns",
            opts.variants
                .iter()
                .map(|v| v.name())
                .collect::<Vec<_>>()
                .join(", "),
            deflate_client::CLIENT_LEVEL,
            opts.idle_conns
        ));
    }
    if opts.upload {
        lines.push(format!(
            "upload: one {} MiB binary message to the bench's macro server `{}`, in 1 MiB frames and in one frame, RSS sampled every {} ms",
            opts.upload_mib,
            upload::PATH,
            UPLOAD_SAMPLE.as_millis()
        ));
    }
    if opts.fanout || opts.fanout_deflate {
        lines.push(format!(
            "fan-out: rooms of {} sessions, 1 warm-up + {} measured fires per setup, servers and Redis on the server CPU",
            opts.fanout_sessions
                .iter()
                .map(|&n| report::number(n as f64, 0))
                .collect::<Vec<_>>()
                .join(" and "),
            opts.fanout_fires
        ));
    }
    lines
}

fn bench(mut opts: Options) -> Result<(), String> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    let started = Instant::now();
    let nofile = sys::raise_nofile_limit(65536);
    let fit = nofile.saturating_sub(256) as usize;
    if opts.idle_conns > fit {
        eprintln!(
            "warning: open-file limit {nofile}: idle connections reduced from {} to {fit}",
            opts.idle_conns
        );
        opts.idle_conns = fit;
    }
    for n in &mut opts.fanout_sessions {
        if *n > fit {
            eprintln!("warning: open-file limit {nofile}: fan-out room reduced from {n} to {fit}");
            *n = fit;
        }
    }
    let cpus = sys::allowed_cpus();
    let pinning = if cpus.len() >= 2 {
        opts.server_cpu = Some(cpus[0]);
        match sys::pin_current_thread(cpus[1]) {
            Ok(()) => format!(
                "server on CPU {}, load generator on CPU {} (sched_setaffinity)",
                cpus[0], cpus[1]
            ),
            Err(e) => {
                opts.server_cpu = None;
                format!("not pinned ({e}): server and load generator share the CPUs")
            }
        }
    } else {
        "not pinned (one CPU): server and load generator share it".to_owned()
    };
    let header = machine_lines(&opts, nofile, &pinning);
    for line in &header {
        eprintln!("{line}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    // values[scenario][server][round] = that run's metric values
    let mut values: Vec<Vec<Vec<Vec<f64>>>> =
        vec![vec![Vec::new(); opts.servers.len()]; opts.scenarios.len()];
    for round in 1..=opts.rounds {
        for (si, scenario) in opts.scenarios.clone().into_iter().enumerate() {
            for (ki, kind) in opts.servers.clone().into_iter().enumerate() {
                let others = scenario
                    .metrics()
                    .iter()
                    .position(|(name, _)| name.starts_with("others'"));
                let label = format!(
                    "[round {round}/{}] {:<9} {:<11}",
                    opts.rounds,
                    scenario.name(),
                    kind.name()
                );
                let (t0, run) = run_measured(&mut opts, &label, others, |opts| {
                    run_one(scenario, kind, opts, &runtime)
                });
                let metrics = scenario.metrics().len();
                values[si][ki].push(report_run(&label, t0, run, metrics));
            }
        }
    }
    // The compression scenarios, in rounds of their own: comp_values[scenario][variant][round].
    let mut comp_values: Vec<Vec<Vec<Vec<f64>>>> = opts
        .comp
        .iter()
        .map(|c| vec![Vec::new(); c.variants(&opts).len()])
        .collect();
    for round in 1..=opts.rounds {
        for (si, scenario) in opts.comp.clone().into_iter().enumerate() {
            for (vi, variant) in scenario.variants(&opts).into_iter().enumerate() {
                let others = scenario
                    .metrics()
                    .iter()
                    .position(|(name, _)| name.starts_with("others'"));
                let label = format!(
                    "[round {round}/{}] {:<12} {:<9}",
                    opts.rounds,
                    scenario.name(),
                    variant.name()
                );
                let (t0, run) = run_measured(&mut opts, &label, others, |opts| {
                    run_comp_one(scenario, variant, opts, &runtime)
                });
                let metrics = scenario.metrics().len();
                comp_values[si][vi].push(report_run(&label, t0, run, metrics));
            }
        }
    }
    // The upload, in rounds of its own: upload_values[framing][round].
    let mut upload_values: Vec<Vec<Vec<f64>>> = vec![Vec::new(); Framing::ALL.len()];
    if opts.upload {
        let mut payload = Payload::new();
        let t0 = Instant::now();
        let sha256 = payload.sha256(opts.upload_mib);
        eprintln!(
            "[upload] the client's SHA-256 of the {} MiB payload: {sha256} ({:.2} s)",
            opts.upload_mib,
            t0.elapsed().as_secs_f64()
        );
        let others = UPLOAD_METRICS
            .iter()
            .position(|(name, _)| name.starts_with("others'"));
        for round in 1..=opts.rounds {
            for (fi, framing) in Framing::ALL.into_iter().enumerate() {
                let label = format!(
                    "[round {round}/{}] upload {:<12}",
                    opts.rounds,
                    framing.name()
                );
                let (t0, run) = run_measured(&mut opts, &label, others, |opts| {
                    run_upload_one(framing, opts, &mut payload, &sha256, &runtime)
                });
                upload_values[fi].push(report_run(&label, t0, run, UPLOAD_METRICS.len()));
            }
        }
    }
    let fanout = if opts.fanout || opts.fanout_deflate {
        Some(fanout_all(&mut opts, &runtime))
    } else {
        None
    };

    let mut rows = Vec::new();
    for (si, &scenario) in opts.scenarios.iter().enumerate() {
        for (mi, &(metric, decimals)) in scenario.metrics().iter().enumerate() {
            rows.push(Row {
                scenario: scenario.title(&opts),
                metric: metric.to_owned(),
                decimals,
                values: values[si]
                    .iter()
                    .map(|rounds| rounds.iter().map(|v| v[mi]).collect())
                    .collect(),
            });
        }
    }
    let names: Vec<&str> = opts.servers.iter().map(|k| k.name()).collect();
    let base = opts
        .servers
        .iter()
        .position(|&k| k == ServerKind::ActixWs)
        .unwrap_or(0);
    println!();
    for line in &header {
        println!("{line}  ");
    }
    if !rows.is_empty() {
        println!(
            "\nMedians of {} round(s); ratios to {}:\n",
            opts.rounds, names[base]
        );
        print!("{}", report::median_table(&names, base, &rows));
        if opts.rounds > 1 {
            println!("\nEvery round:\n");
            print!("{}", report::rounds_table(&names, &rows));
        }
    }
    print_compression(&opts, &comp_values);
    if opts.upload {
        print_upload(&opts, &upload_values);
    }
    if let Some(fanout) = &fanout {
        print_fanout(&opts, fanout);
    }
    if opts.history {
        history_bench(&opts, &runtime);
    }
    println!(
        "\ntotal time: {:.0} s",
        started.elapsed().as_secs_f64().ceil()
    );
    Ok(())
}

/// Percentile `p` (0–100) of `values`, in ms.
fn percentile_ms(values: &[Duration], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().map(|d| ms(*d)).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

/// The history scenario: replays and presence queries, printed as tables.
fn history_bench(opts: &Options, runtime: &tokio::runtime::Runtime) {
    const MISSED: usize = 1000;
    const SIZE: usize = 64;
    const ROUNDS: usize = 20;
    const SESSIONS: usize = 1000;
    const QUERIES: usize = 200;
    let redis = redis_version();
    if let Err(why) = &redis {
        eprintln!(
            "history: {why}; skipping the Redis part (`bash scripts/redis-tests.sh` installs it)"
        );
    }
    println!(
        "\nReplay: a client reconnects with `?since=` and receives {MISSED} missed {SIZE} B messages (`Session::join_since`), from the TCP connect until the last one and the server's `replayed` notice; {ROUNDS} rounds:\n"
    );
    println!("| history | replay, median ms | replay, p90 ms | plain connect, median ms | server CPU per replay, median ms | server CPU per replayed message, µs | Redis CPU per replay, median ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let replay_in = |label: &str, with_redis: bool| {
        let redis_server = if with_redis {
            match Server::start_redis(opts) {
                Ok(s) => Some(s),
                Err(e) => return eprintln!("history: {e}"),
            }
        } else {
            None
        };
        let server = match Server::start_history(opts, redis_server.as_ref().map(|r| r.addr)) {
            Ok(s) => s,
            Err(e) => return eprintln!("history: {e}"),
        };
        match runtime.block_on(history::replay(
            server.addr,
            server.pid,
            redis_server.as_ref().map(|r| r.pid),
            MISSED,
            SIZE,
            ROUNDS,
        )) {
            Ok(rounds) => {
                let replay: Vec<Duration> = rounds.iter().map(|r| r.replay).collect();
                let plain: Vec<Duration> = rounds.iter().map(|r| r.plain).collect();
                let cpu: Vec<Duration> = rounds.iter().map(|r| r.server_cpu).collect();
                let cpu_ms = percentile_ms(&cpu, 50.0);
                let redis_cpu: Vec<Duration> = rounds.iter().map(|r| r.redis_cpu).collect();
                println!(
                    "| {label} | {} | {} | {} | {} | {} | {} |",
                    report::number(percentile_ms(&replay, 50.0), 2),
                    report::number(percentile_ms(&replay, 90.0), 2),
                    report::number(percentile_ms(&plain, 50.0), 2),
                    report::number(cpu_ms, 2),
                    report::number(cpu_ms * 1e3 / MISSED as f64, 2),
                    if with_redis {
                        report::number(percentile_ms(&redis_cpu, 50.0), 2)
                    } else {
                        "-".to_owned()
                    },
                );
            }
            Err(e) => println!("| {label} | FAILED: {e} | | | | | |"),
        }
    };
    replay_in("in memory (one process)", false);
    if redis.is_ok() {
        replay_in("Redis Streams", true);
    }

    println!(
        "\nPresence: the round trip of a query over a room of {SESSIONS} sessions (plus the probe) from a WebSocket client, {QUERIES} of each, against a plain ping on the same connection:\n"
    );
    println!("| setup | ping, median ms | `cluster_room_members`, median ms | p99 ms | `cluster_count`, median ms | p99 ms | presence counted everyone after, ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let presence_in = |label: &str, servers: usize, with_redis: bool| {
        let redis_server = if with_redis {
            match Server::start_redis(opts) {
                Ok(s) => Some(s),
                Err(e) => return eprintln!("history: {e}"),
            }
        } else {
            None
        };
        let mut started = Vec::new();
        for _ in 0..servers {
            match Server::start_history(opts, redis_server.as_ref().map(|r| r.addr)) {
                Ok(s) => started.push(s),
                Err(e) => return eprintln!("history: {e}"),
            }
        }
        let addrs: Vec<SocketAddr> = started.iter().map(|s| s.addr).collect();
        match runtime.block_on(history::presence(&addrs, SESSIONS, QUERIES)) {
            Ok(o) => println!(
                "| {label} ({} counted) | {} | {} | {} | {} | {} | {} |",
                o.members,
                report::number(percentile_ms(&o.ping, 50.0), 3),
                report::number(percentile_ms(&o.room_members, 50.0), 3),
                report::number(percentile_ms(&o.room_members, 99.0), 3),
                report::number(percentile_ms(&o.count, 50.0), 3),
                report::number(percentile_ms(&o.count, 99.0), 3),
                report::number(ms(o.converged), 0),
            ),
            Err(e) => println!("| {label} | FAILED: {e} | | | | | |"),
        }
    };
    presence_in("one process, no Redis", 1, false);
    if redis.is_ok() {
        presence_in("two servers and Redis", 2, true);
    }
}

/// Prints a run's line to stderr; returns its values (NaN for a failed run).
fn report_run(
    label: &str,
    t0: Instant,
    run: Result<(Vec<f64>, String), String>,
    metrics: usize,
) -> Vec<f64> {
    match run {
        Ok((v, line)) => {
            eprintln!("{label} {line} ({:.1} s)", t0.elapsed().as_secs_f64());
            v
        }
        Err(e) => {
            eprintln!("{label} FAILED: {e}");
            vec![f64::NAN; metrics]
        }
    }
}

/// The compression tables: per group of scenarios with the same variants (the echoes; the
/// idle), medians with ratios to `plain`, and every round.
fn print_compression(opts: &Options, values: &[Vec<Vec<Vec<f64>>>]) {
    let mut groups: Vec<(Vec<Variant>, Vec<Row>)> = Vec::new();
    for (si, &scenario) in opts.comp.iter().enumerate() {
        let variants = scenario.variants(opts);
        if variants.is_empty() {
            continue;
        }
        let rows = scenario
            .metrics()
            .iter()
            .enumerate()
            .map(|(mi, &(metric, decimals))| Row {
                scenario: scenario.title(opts),
                metric: metric.to_owned(),
                decimals,
                values: values[si]
                    .iter()
                    .map(|rounds| rounds.iter().map(|v| v[mi]).collect())
                    .collect(),
            });
        match groups.iter_mut().find(|(v, _)| *v == variants) {
            Some((_, all)) => all.extend(rows),
            None => groups.push((variants, rows.collect())),
        }
    }
    if groups.is_empty() {
        return;
    }
    let c = &opts.corpus;
    println!(
        "\nCompression (permessage-deflate), against the macro server; the client offers `{}` (deflate: the default endpoint `/`, no context takeover; keep: `/keep`, `compression(context_takeover = true)`; plain: no offer). Corpus: {} JSON documents, {} to {} B, mean {:.0} B, {:.1} % of their size compressed each on its own at level {}.",
        deflate_client::OFFER,
        corpus::DOCS,
        c.docs.iter().map(Vec::len).min().unwrap_or(0),
        c.docs.iter().map(Vec::len).max().unwrap_or(0),
        c.mean_size(),
        c.alone_ratio() * 100.0,
        deflate_client::CLIENT_LEVEL
    );
    for (variants, rows) in &groups {
        let names: Vec<&str> = variants.iter().map(|v| v.name()).collect();
        let base = variants
            .iter()
            .position(|&v| v == Variant::Plain)
            .unwrap_or(0);
        println!(
            "\nMedians of {} round(s); ratios to {}:\n",
            opts.rounds, names[base]
        );
        print!("{}", report::median_table(&names, base, rows));
        // The idle target: what a compressed connection costs over a plain one, KiB.
        if let Some(per_conn) = rows.iter().find(|r| r.metric == "**RSS per conn, KiB**") {
            let medians: Vec<f64> = per_conn.values.iter().map(|v| report::median(v)).collect();
            for (i, v) in variants.iter().enumerate() {
                if i != base {
                    println!(
                        "\n{} − {}: {} KiB per connection{}",
                        v.name(),
                        names[base],
                        report::number(medians[i] - medians[base], 2),
                        if *v == Variant::Deflate && variants[base] == Variant::Plain {
                            " (target: ≤ 4)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        if opts.rounds > 1 {
            println!("\nEvery round:\n");
            print!("{}", report::rounds_table(&names, rows));
        }
    }
}

/// A fan-out setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FanSetup {
    /// One server process.
    OneProcess,
    /// Two server processes sharing a Redis server; listeners split half and half.
    Redis,
    /// The baseline: Bun's `server.publish` (uWebSockets), one process, same protocol
    /// (`ws-endpoint-bench/bun/fanout.js`).
    Bun,
    /// One server process, the ~1 KiB JSON message, listeners that do not offer
    /// permessage-deflate.
    Json,
    /// The same, listeners that offer it (and get it).
    JsonDeflate,
}

impl FanSetup {
    /// The fan-out of issue 4 (`fanout`).
    const ALL: [FanSetup; 3] = [FanSetup::OneProcess, FanSetup::Redis, FanSetup::Bun];

    /// The compressed fan-out (`fanout-deflate`).
    const DEFLATE: [FanSetup; 2] = [FanSetup::Json, FanSetup::JsonDeflate];

    fn name(self) -> &'static str {
        match self {
            FanSetup::OneProcess => "one process",
            FanSetup::Redis => "two processes via Redis",
            FanSetup::Bun => "Bun publish",
            FanSetup::Json => "1 KiB JSON, plain",
            FanSetup::JsonDeflate => "1 KiB JSON, deflate",
        }
    }

    fn listeners(self) -> Listeners {
        match self {
            FanSetup::Json => Listeners::Json { deflate: false },
            FanSetup::JsonDeflate => Listeners::Json { deflate: true },
            _ => Listeners::Tungstenite,
        }
    }
}

/// The fan-out setups the options ask for, in the order they alternate per room size.
fn fan_setups(opts: &Options) -> Vec<FanSetup> {
    let mut setups = Vec::new();
    if opts.fanout {
        setups.extend(FanSetup::ALL);
    }
    if opts.fanout_deflate {
        setups.extend(FanSetup::DEFLATE);
    }
    setups
}

/// Bun's binary: `$BUN`, or where `scripts/install-bun.sh` puts it.
fn bun_binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("BUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bun/node_modules/@oven/bun-linux-x64/bin/bun"));
    match Command::new(&path).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(path),
        _ => Err(format!(
            "Bun not found at {} (`bash scripts/install-bun.sh` installs it with npm)",
            path.display()
        )),
    }
}

/// The fan-out results: per room size, per setup, the outcome (or why there is none).
struct FanResults {
    /// `redis-server --version`, or why Redis is not available.
    redis: Result<String, String>,
    /// (sessions, setup, outcome)
    runs: Vec<(usize, FanSetup, Result<FanoutOutcome, String>)>,
}

fn redis_version() -> Result<String, String> {
    match Command::new("redis-server").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map_or_else(
                || "redis-server".to_owned(),
                |v| format!("redis-server {v}"),
            )),
        Ok(out) => Err(format!("`redis-server --version` failed ({})", out.status)),
        Err(e) => Err(format!("redis-server not found ({e})")),
    }
}

/// One fan-out setup, on fresh server processes (and a fresh Redis).
fn run_fanout(
    sessions: usize,
    setup: FanSetup,
    opts: &Options,
    runtime: &tokio::runtime::Runtime,
) -> Result<FanoutOutcome, String> {
    let redis = match setup {
        FanSetup::Redis => Some(Server::start_redis(opts)?),
        _ => None,
    };
    let redis_addr = redis.as_ref().map(|r| r.addr);
    let servers = if setup == FanSetup::Bun {
        let addr = free_addr()?;
        let mut cmd = Command::new(bun_binary()?);
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/bun/fanout.js"))
            .arg(addr.to_string());
        vec![Server::spawn("bun", cmd, addr, opts.server_cpu)?]
    } else {
        (0..if redis.is_some() { 2 } else { 1 })
            .map(|_| Server::start_fanout(opts, redis_addr))
            .collect::<Result<Vec<_>, _>>()?
    };
    let spec = FanoutSpec {
        sessions,
        listeners: setup.listeners(),
        servers: servers.iter().map(|s| s.addr).collect(),
        server_pids: servers.iter().chain(&redis).map(|s| s.pid).collect(),
        warmup_fires: 1,
        fires: opts.fanout_fires,
        pause: Duration::from_millis(200),
        fire_timeout: Duration::from_secs(2),
    };
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(runtime, fanout::run(&spec));
    drop(servers);
    drop(redis);
    outcome
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs every fan-out setup once, printing each one's fires to stderr.
fn fanout_all(opts: &mut Options, runtime: &tokio::runtime::Runtime) -> FanResults {
    let (redis, bun) = if opts.fanout {
        (redis_version(), bun_binary().map(|_| ()))
    } else {
        (Err("not run".to_owned()), Err("not run".to_owned()))
    };
    if opts.fanout {
        if let Err(why) = &redis {
            eprintln!(
                "fan-out: {why}; skipping the Redis part (`bash scripts/redis-tests.sh` installs it)"
            );
        }
        if let Err(why) = &bun {
            eprintln!("fan-out: {why}; skipping the Bun baseline");
        }
    }
    let mut runs = Vec::new();
    for &sessions in &opts.fanout_sessions.clone() {
        for setup in fan_setups(opts) {
            if (setup == FanSetup::Redis && redis.is_err())
                || (setup == FanSetup::Bun && bun.is_err())
            {
                continue;
            }
            let waited = wait_quiet(&mut opts.quiet_budget);
            if waited >= 1.0 {
                eprintln!("(waited {waited:.0} s for other processes to quiet down)");
            }
            let t0 = Instant::now();
            let outcome = run_fanout(sessions, setup, opts, runtime);
            let label = format!("[fanout] {sessions:>6} sessions, {:<23}", setup.name());
            match &outcome {
                Ok(o) => {
                    let each = |f: fn(&fanout::Fire) -> f64| {
                        o.fires
                            .iter()
                            .map(|fire| {
                                report::number(f(fire), if f(fire).fract() == 0.0 { 0 } else { 2 })
                            })
                            .collect::<Vec<_>>()
                            .join(" / ")
                    };
                    let mut line = format!(
                        "{label} last {} ms, p50 {} ms, to_room {} ms, server CPU {} ms, client CPU {} ms, queued {} dropped {} by the fired-on server; warm-up last {} ms; {} open in {:.2} s",
                        each(|f| f.last.map_or(f64::NAN, ms)),
                        each(|f| ms(f.p50)),
                        each(|f| ms(f.call)),
                        each(|f| ms(f.server_cpu)),
                        each(|f| ms(f.client_cpu)),
                        each(|f| f.sent as f64),
                        each(|f| f.dropped as f64),
                        o.warmup
                            .first()
                            .and_then(|f| f.last)
                            .map_or("-".to_owned(), |d| report::number(ms(d), 2)),
                        o.opened,
                        o.connect_secs
                    );
                    if setup.listeners() != Listeners::Tungstenite {
                        line += &format!(
                            ", wire bytes per delivery {}, compressed deliveries {}",
                            each(|f| f.bytes as f64 / f.received.max(1) as f64),
                            each(|f| f.compressed as f64)
                        );
                    }
                    match &o.inflated_check {
                        Some(Ok(())) => line += ", first message inflated and checked",
                        Some(Err(e)) => line += &format!(", INFLATE CHECK FAILED: {e}"),
                        None => {}
                    }
                    let short = o.fires.iter().filter(|f| f.received < o.opened).count();
                    if short > 0 {
                        line += &format!(", {short} fires did not reach everyone");
                    }
                    if let Some(e) = o.errors.first() {
                        line += &format!(", {} failed listeners (first: {e})", o.errors.len());
                    }
                    eprintln!("{line} ({:.1} s)", t0.elapsed().as_secs_f64());
                }
                Err(e) => eprintln!("{label} FAILED: {e}"),
            }
            runs.push((sessions, setup, outcome));
        }
    }
    FanResults { redis, runs }
}

/// Median over the measured fires of `f` (NaN where a fire has no value).
fn fire_median(o: &FanoutOutcome, f: impl Fn(&fanout::Fire) -> f64) -> f64 {
    report::median(&o.fires.iter().map(f).collect::<Vec<_>>())
}

fn print_fanout(opts: &Options, results: &FanResults) {
    let find = |sessions: usize, setup: FanSetup| {
        results
            .runs
            .iter()
            .find(|(n, s, _)| *n == sessions && *s == setup)
            .and_then(|(_, _, o)| o.as_ref().ok())
    };
    if opts.fanout {
        println!(
            "\nFan-out: one {} B text message to every session of a room (`Hub::to_room`), from the `fire` command written by the load generator until each listener has read it; medians of {} fires:\n",
            fanout::PAYLOAD_SIZE,
            opts.fanout_fires
        );
        print!("| sessions |");
        for setup in FanSetup::ALL {
            print!(" {0}: last arrival, ms | {0}: p50, ms |", setup.name());
        }
        println!("\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for &sessions in &opts.fanout_sessions {
            print!("| {} |", report::number(sessions as f64, 0));
            for setup in FanSetup::ALL {
                match find(sessions, setup) {
                    Some(o) => print!(
                        " {} | {} |",
                        report::number(fire_median(o, |f| f.last.map_or(f64::NAN, ms)), 2),
                        report::number(fire_median(o, |f| ms(f.p50)), 2)
                    ),
                    None => print!(" - | - |"),
                }
            }
            println!();
        }
    }
    if opts.fanout_deflate {
        print_fanout_deflate(opts, &find);
    }
    println!(
        "\n| sessions | setup | last arrival, each fire, ms | `to_room` call, ms | server CPU per fire, ms | server CPU per session, µs | server user CPU per session, µs (all fires) | load generator CPU per fire, ms | reached (fewest) |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (sessions, setup, outcome) in &results.runs {
        let n = report::number(*sessions as f64, 0);
        match outcome {
            Ok(o) => {
                let each = o
                    .fires
                    .iter()
                    .map(|f| report::number(f.last.map_or(f64::NAN, ms), 2))
                    .collect::<Vec<_>>()
                    .join(" / ");
                let reached = o.fires.iter().map(|f| f.received).min().unwrap_or(0);
                let server_cpu = fire_median(o, |f| ms(f.server_cpu));
                let user: f64 = o.fires.iter().map(|f| f.server_user.as_secs_f64()).sum();
                let delivered: usize = o.fires.iter().map(|f| f.received).sum();
                println!(
                    "| {n} | {} | {each} | {} | {} | {} | {} | {} | {} of {} |",
                    setup.name(),
                    report::number(fire_median(o, |f| ms(f.call)), 2),
                    report::number(server_cpu, 2),
                    report::number(server_cpu * 1e3 / *sessions as f64, 2),
                    report::number(user * 1e6 / delivered.max(1) as f64, 2),
                    report::number(fire_median(o, |f| ms(f.client_cpu)), 2),
                    report::number(reached as f64, 0),
                    report::number(*sessions as f64, 0)
                );
            }
            Err(e) => println!("| {n} | {} | failed: {e} | | | | | | |", setup.name()),
        }
    }
    for (sessions, setup, outcome) in &results.runs {
        let Ok(o) = outcome else { continue };
        let short: Vec<String> = o
            .fires
            .iter()
            .filter(|f| f.last.is_none())
            .map(|f| report::number(f.received as f64, 0))
            .collect();
        if !short.is_empty() {
            let dropped = fire_median(o, |f| f.dropped as f64);
            println!(
                "\n**{} sessions, {}: {} of {} fires did not reach every session** (reached {} of {}; the fired-on server's `Delivery` counted a median of {} dropped): no last arrival (`-`).",
                report::number(*sessions as f64, 0),
                setup.name(),
                short.len(),
                o.fires.len(),
                short.join(" / "),
                report::number(o.opened as f64, 0),
                report::number(dropped, 0)
            );
        }
    }
    match &results.redis {
        _ if !opts.fanout => {}
        Ok(version) => println!(
            "\nRedis: {version} on 127.0.0.1, `--save \"\" --appendonly no`; both servers and Redis pinned to the server CPU, fired on the first server, listeners split half and half."
        ),
        Err(why) => println!(
            "\nRedis part skipped: {why}; `bash scripts/redis-tests.sh` installs redis-server."
        ),
    }
}

/// The compressed fan-out's table: the JSON message to listeners with and without
/// permessage-deflate, side by side, with ratios.
fn print_fanout_deflate<'a>(
    opts: &Options,
    find: &dyn Fn(usize, FanSetup) -> Option<&'a FanoutOutcome>,
) {
    println!(
        "\nCompressed fan-out: one {} B JSON text message (`fire-json`) to every session of a room, one server process; listeners that offer `{}` (deflate: the default endpoint, no context takeover; the broadcast is compressed once) or do not (plain); medians of {} fires:\n",
        corpus::fanout_message(1).len(),
        deflate_client::OFFER,
        opts.fanout_fires
    );
    println!(
        "| sessions | plain: last arrival, ms | deflate: last arrival, ms | deflate / plain | plain: server CPU per fire, ms | deflate: server CPU per fire, ms | deflate / plain | plain: wire bytes per delivery | deflate: wire bytes per delivery | deflate: compressed deliveries | first message inflated |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for &sessions in &opts.fanout_sessions {
        let (plain, deflate) = (
            find(sessions, FanSetup::Json),
            find(sessions, FanSetup::JsonDeflate),
        );
        let median = |o: Option<&FanoutOutcome>, f: &dyn Fn(&fanout::Fire) -> f64| {
            o.map_or(f64::NAN, |o| fire_median(o, f))
        };
        let last = |f: &fanout::Fire| f.last.map_or(f64::NAN, ms);
        let cpu = |f: &fanout::Fire| ms(f.server_cpu);
        let bytes = |f: &fanout::Fire| f.bytes as f64 / f.received.max(1) as f64;
        let check = match deflate.and_then(|o| o.inflated_check.as_ref()) {
            Some(Ok(())) => "right".to_owned(),
            Some(Err(e)) => format!("**wrong: {e}**"),
            None => "-".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {check} |",
            report::number(sessions as f64, 0),
            report::number(median(plain, &last), 2),
            report::number(median(deflate, &last), 2),
            report::ratio(median(deflate, &last), median(plain, &last)),
            report::number(median(plain, &cpu), 2),
            report::number(median(deflate, &cpu), 2),
            report::ratio(median(deflate, &cpu), median(plain, &cpu)),
            report::number(median(plain, &bytes), 0),
            report::number(median(deflate, &bytes), 0),
            report::number(median(deflate, &|f| f.compressed as f64), 0),
        );
    }
}

/// `hold ADDR N SECS`: N idle connections to a server started by hand (e.g. under a profiler).
fn hold(args: &[String]) -> ExitCode {
    let parsed = (|| -> Option<(SocketAddr, usize, f64)> {
        Some((
            args.first()?.parse().ok()?,
            args.get(1)?.parse().ok()?,
            args.get(2)?.parse().ok()?,
        ))
    })();
    let Some((addr, n, secs)) = parsed else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if !addr.ip().is_loopback() {
        eprintln!("hold targets loopback addresses only");
        return ExitCode::from(2);
    }
    sys::raise_nofile_limit(n as u64 + 256);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let (conns, errors) = client::connect_many(addr, n, 100).await;
        eprintln!(
            "{} connections open, {} failed{}",
            conns.len(),
            errors.len(),
            errors
                .first()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0))).await;
        drop(conns);
    });
    ExitCode::SUCCESS
}

/// Counts heap bytes for the memory figures of the servers this binary serves.
#[global_allocator]
static HEAP: ws_endpoint_bench::heap::Counting = ws_endpoint_bench::heap::Counting;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        let (Some(kind), Some(addr)) = (args.get(1), args.get(2)) else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        if kind == "history" {
            return match history::serve(addr, args.get(3).map(String::as_str)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("history: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        if kind == "fanout" {
            return match fanout::serve(addr, args.get(3).map(String::as_str)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fanout: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        let kind = match kind.parse::<ServerKind>() {
            Ok(kind) => kind,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        return match servers::serve(kind, addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{kind}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some("hold") {
        return hold(&args[1..]);
    }
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("{USAGE}");
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let opts = match parse_args(&args) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("{e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match bench(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
