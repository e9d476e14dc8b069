//! Room history and presence (issue 16): the time to replay 1,000 missed messages to a client
//! that reconnects with `?since=`, in one process and through Redis Streams, and the latency of
//! a cluster presence query (`Hub::cluster_room_members`, `cluster_count`) against a plain
//! round trip on the same connection.
//!
//! The server (`ws-endpoint-bench serve history ADDR [REDIS_URL]`, 1 worker):
//! - `/h/{room}`: keeps the last [`HISTORY`] messages of each room. Without `since`: joins and
//!   sends `ready`. With `?since=ID`: [`Session::join_since`](ws_endpoint::Session::join_since),
//!   the replay, then `replayed:COUNT`. Text `fill:N:SIZE` records N messages of SIZE bytes
//!   (`ID|xxx…`) one after the other and answers `filled:FIRST:LAST`.
//! - `/p/{room}`: joins and sends `ready`; `members` answers `members:N` (the room's members
//!   on every server), `count` answers `count:N`, `ping` answers `pong`.

use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Messages kept per room.
pub const HISTORY: usize = 1000;

/// The endpoints.
pub mod endpoints {
    use ws_endpoint::history::{History, MessageId};
    use ws_endpoint::prelude::*;

    /// `/h/{room}`: recording and replay.
    pub struct Hist {
        room: String,
    }

    #[server_endpoint("/h/{room}", heartbeat = false)]
    impl Hist {
        #[on_open]
        async fn open(session: &Session, #[path_param] room: String) -> Self {
            Hist::hub().keep_history(History::last(super::HISTORY));
            let since = session
                .query_string()
                .strip_prefix("since=")
                .and_then(|s| s.parse::<MessageId>().ok());
            match since {
                None => {
                    session.join(&room);
                    let _ = session.send("ready").await;
                }
                Some(since) => {
                    let answer = match session.join_since(&room, &since) {
                        Ok(replay) => match replay.await {
                            Ok(r) => format!("replayed:{}", r.count),
                            Err(e) => format!("error:{e}"),
                        },
                        Err(e) => format!("error:{e}"),
                    };
                    let _ = session.send(answer).await;
                }
            }
            Hist { room }
        }

        #[on_message]
        async fn text(&mut self, msg: String) -> String {
            let mut parts = msg.splitn(3, ':');
            let (Some("fill"), Some(n), Some(size)) = (parts.next(), parts.next(), parts.next())
            else {
                return format!("unknown:{msg}");
            };
            let (n, size): (usize, usize) = (n.parse().unwrap_or(0), size.parse().unwrap_or(0));
            let pad = "x".repeat(size.saturating_sub(24));
            let (mut first, mut last) = (None, None);
            for _ in 0..n {
                match Hist::hub()
                    .to_room_recorded(&self.room, |id| format!("{id}|{pad}"))
                    .await
                {
                    Ok(id) => {
                        first.get_or_insert(id);
                        last = Some(id);
                    }
                    Err(e) => return format!("error:{e}"),
                }
            }
            match (first, last) {
                (Some(f), Some(l)) => format!("filled:{f}:{l}"),
                _ => "error:nothing recorded".to_owned(),
            }
        }
    }

    /// `/p/{room}`: presence queries.
    pub struct Presence {
        room: String,
    }

    #[server_endpoint("/p/{room}", heartbeat = false)]
    impl Presence {
        #[on_open]
        async fn open(session: &Session, #[path_param] room: String) -> Self {
            session.join(&room);
            let _ = session.send("ready").await;
            Presence { room }
        }

        #[on_message]
        async fn text(&mut self, msg: String) -> String {
            let hub = Presence::hub();
            match msg.as_str() {
                "members" => match hub.cluster_room_members(&self.room).await {
                    Ok(m) => format!("members:{}", m.len()),
                    Err(e) => format!("error:{e}"),
                },
                "count" => match hub.cluster_count().await {
                    Ok(n) => format!("count:{n}"),
                    Err(e) => format!("error:{e}"),
                },
                "ping" => "pong".to_owned(),
                other => format!("unknown:{other}"),
            }
        }
    }
}

/// Runs the history server on `addr` (connected to Redis at `redis`, if given) until killed.
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
                .service(endpoints::Hist::endpoint())
                .service(endpoints::Presence::endpoint())
        })
        .client_disconnect_timeout(ws_endpoint::CLOSE_LINGER)
        .on_connect(ws_endpoint::on_connect)
        .workers(1)
        .bind(&addr)?
        .run()
        .await
    })
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Result<Ws, String> {
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .map_err(|_| format!("{url}: no handshake within 10 s"))?
    .map_err(|e| format!("{url}: {e}"))?;
    Ok(ws)
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| "no message within 30 s".to_owned())?
            .ok_or("connection ended")?
            .map_err(|e| e.to_string())?;
        match msg {
            Message::Text(t) => return Ok(t.to_string()),
            Message::Close(c) => return Err(format!("closed: {c:?}")),
            _ => continue,
        }
    }
}

async fn ask(ws: &mut Ws, text: &str) -> Result<String, String> {
    ws.send(Message::text(text.to_owned()))
        .await
        .map_err(|e| e.to_string())?;
    next_text(ws).await
}

/// One replay round's figures.
#[derive(Debug, Clone, Copy)]
pub struct ReplayRound {
    /// From the start of the TCP connect until the `replayed:N` after the last replayed message.
    pub replay: Duration,
    /// A plain connect (handshake and `ready`) on the same server, just before.
    pub plain: Duration,
    /// The server's CPU time (user + system) over the replay round.
    pub server_cpu: Duration,
    /// Redis's CPU time over the replay round (zero without Redis).
    pub redis_cpu: Duration,
}

/// Fills the room with `n + 1` messages of `size` bytes, then `rounds` times connects with
/// `since` = the first (so that `n` are replayed) and times it until everything has arrived.
/// `pid`: the server's process, `redis_pid`: Redis's, for their CPU time.
pub async fn replay(
    addr: SocketAddr,
    pid: u32,
    redis_pid: Option<u32>,
    n: usize,
    size: usize,
    rounds: usize,
) -> Result<Vec<ReplayRound>, String> {
    let room = format!("bench-{}", std::process::id());
    let base = format!("ws://{addr}/h/{room}");
    let mut filler = connect(&base).await?;
    if next_text(&mut filler).await? != "ready" {
        return Err("the filler was not welcomed".into());
    }
    filler
        .send(Message::text(format!("fill:{}:{size}", n + 1)))
        .await
        .map_err(|e| e.to_string())?;
    let first = loop {
        let msg = next_text(&mut filler).await?;
        if let Some(rest) = msg.strip_prefix("filled:") {
            break rest.split(':').next().unwrap_or_default().to_owned();
        }
        if msg.starts_with("error:") {
            return Err(msg);
        }
    };
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        let mut plain = connect(&base).await?;
        if next_text(&mut plain).await? != "ready" {
            return Err("no ready".into());
        }
        let plain_time = t0.elapsed();
        drop(plain);
        let cpu = |pid: Option<u32>| match pid {
            Some(pid) => crate::sys::process_cpu_ns(pid).map_err(|e| e.to_string()),
            None => Ok(0),
        };
        let (cpu0, redis0) = (cpu(Some(pid))?, cpu(redis_pid)?);
        let t0 = Instant::now();
        let mut ws = connect(&format!("{base}?since={first}")).await?;
        let mut got = 0;
        loop {
            let msg = next_text(&mut ws).await?;
            if let Some(count) = msg.strip_prefix("replayed:") {
                if count != n.to_string() || got != n {
                    return Err(format!("replayed {count}, received {got}, wanted {n}"));
                }
                break;
            }
            if msg.starts_with("error:") {
                return Err(msg);
            }
            got += 1;
        }
        let replay = t0.elapsed();
        let (cpu1, redis1) = (cpu(Some(pid))?, cpu(redis_pid)?);
        let _ = ws.close(None).await;
        out.push(ReplayRound {
            replay,
            plain: plain_time,
            server_cpu: Duration::from_nanos(cpu1.saturating_sub(cpu0)),
            redis_cpu: Duration::from_nanos(redis1.saturating_sub(redis0)),
        });
    }
    Ok(out)
}

/// Round trips of a presence query and of a plain `ping`, medians and 99th percentiles.
#[derive(Debug, Clone)]
pub struct PresenceOutcome {
    /// Sessions in the room (the probe included), as the servers' presence counted them.
    pub members: usize,
    /// `cluster_room_members` round trips.
    pub room_members: Vec<Duration>,
    /// `cluster_count` round trips.
    pub count: Vec<Duration>,
    /// `ping` round trips (the connection's own cost).
    pub ping: Vec<Duration>,
    /// How long after the last session opened the presence counted every session.
    pub converged: Duration,
}

/// Opens `sessions` sessions spread over `servers` in one room, waits until the presence
/// counts them all, then times `rounds` queries of each kind from a probe on the first server.
pub async fn presence(
    servers: &[SocketAddr],
    sessions: usize,
    rounds: usize,
) -> Result<PresenceOutcome, String> {
    let room = format!("presence-{}", std::process::id());
    let mut held = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let addr = servers[i % servers.len()];
        let mut ws = connect(&format!("ws://{addr}/p/{room}")).await?;
        if next_text(&mut ws).await? != "ready" {
            return Err("no ready".into());
        }
        held.push(ws);
    }
    let mut probe = connect(&format!("ws://{}/p/{room}", servers[0])).await?;
    if next_text(&mut probe).await? != "ready" {
        return Err("no ready".into());
    }
    let want = sessions + 1;
    let t0 = Instant::now();
    let members = loop {
        let answer = ask(&mut probe, "members").await?;
        let n: usize = answer
            .strip_prefix("members:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("unexpected answer: {answer}"))?;
        if n >= want {
            break n;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!("presence counted {n} of {want} after 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let converged = t0.elapsed();
    let mut outcome = PresenceOutcome {
        members,
        room_members: Vec::with_capacity(rounds),
        count: Vec::with_capacity(rounds),
        ping: Vec::with_capacity(rounds),
        converged,
    };
    for _ in 0..rounds {
        for (what, into) in [
            ("ping", &mut outcome.ping),
            ("members", &mut outcome.room_members),
            ("count", &mut outcome.count),
        ] {
            let t = Instant::now();
            let answer = ask(&mut probe, what).await?;
            into.push(t.elapsed());
            if answer.starts_with("error:") || answer.starts_with("unknown:") {
                return Err(answer);
            }
        }
    }
    drop(held);
    Ok(outcome)
}
