//! Broadcasts and rooms across processes, through Redis pub/sub (cargo feature `redis`).
//!
//! Call [`connect_redis`] once at start-up, in every server process. From then on every
//! [`Hub`](crate::Hub) broadcast (`broadcast`, `broadcast_except`, `to_room`,
//! `to_room_except`) is delivered to this process's sessions as before *and* published on one
//! Redis channel; every other process connected to the same Redis delivers it to its own
//! sessions of the same endpoint (matched by the endpoint type's name) and rooms.
//!
//! What it promises:
//! - **Exactly once per receiving session** while Redis is up: each process delivers a message
//!   only to its own sessions, and ignores what it published itself (no echo loops).
//! - **At most once across an outage.** While Redis is unreachable, broadcasts still reach
//!   this process's sessions at once. For the other processes they wait, in order, for the link
//!   to come back (redis-rs's `ConnectionManager` reconnects and renews the subscription by
//!   itself): those that waited less than [`OUTAGE_HOLD`] are then published — and reach the
//!   processes that have resubscribed by then — the older ones are dropped and counted in
//!   [`ClusterStats::publish_failed`]. Redis pub/sub keeps nothing for a subscriber that is away,
//!   so a broadcast made during an outage may arrive late or not at all, never twice.
//! - `broadcast_filter` stays local (a closure cannot travel); `Hub::sessions`, `count`,
//!   `room_members` and `Delivery` describe this process only.
//! - **Presence**: [`Hub::cluster_count`](crate::Hub::cluster_count),
//!   [`cluster_members`](crate::Hub::cluster_members) and
//!   [`cluster_room_members`](crate::Hub::cluster_room_members) ask Redis who is connected on
//!   every process (eventually consistent; [`flush_presence`] waits for this process's changes
//!   to be written). A process that dies drops out when its presence TTL runs out
//!   ([`ClusterConfig`]), and exactly one survivor reports its sessions to
//!   [`on_member_lost`]. How it is kept: the `presence` module's documentation below.
//! - **Targeted delivery**: [`Hub::to_user`](crate::Hub::to_user) (the user key of
//!   [`Session::set_user`](crate::Session::set_user)) and
//!   [`Hub::to_session`](crate::Hub::to_session) (a [`ClusterSessionId`](crate::ClusterSessionId))
//!   reach sessions on any process, with the guarantees of broadcasts.
//! - **Room history** ([`crate::history`]): once connected, rooms with a history keep it in
//!   one Redis Stream per room; [`Hub::to_room_recorded`](crate::Hub::to_room_recorded) appends
//!   and publishes in one step (every process, this one included, delivers it from its
//!   subscription, in the stream's order), a process whose subscription dropped catches up from
//!   the streams when it is back, and a reconnecting client may replay from any process
//!   ([`Session::join_since`](crate::Session::join_since)). How it is kept: the `history`
//!   module's documentation below.
//!
//! ```no_run
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! ws_endpoint::cluster::connect_redis("redis://127.0.0.1/").await?;
//! // ... HttpServer::new(...).run().await
//! # Ok(()) }
//! ```

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::Duration,
};

use bytes::Bytes;
use redis::{aio::ConnectionManagerConfig, PushKind, Value};
use tokio::sync::mpsc;

use crate::hub::{self, Target};

mod history;
mod presence;

pub use presence::{flush_presence, on_member_lost, LostMember};

/// The Redis channel all processes publish on and subscribe to.
pub const CHANNEL: &str = "ws-endpoint:broadcast";

/// How many broadcasts may wait for Redis before new ones are dropped (not delivered to other
/// processes; local delivery is unaffected).
const PUBLISH_QUEUE: usize = 8192;

/// How long a broadcast may wait for an unreachable Redis before it is dropped.
pub const OUTAGE_HOLD: Duration = Duration::from_secs(5);

/// Counters of the Redis link of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterStats {
    /// Broadcasts published to Redis.
    pub published: u64,
    /// Broadcasts that could not be published (Redis unreachable, or the queue full).
    pub publish_failed: u64,
    /// Broadcasts received from other processes and delivered here.
    pub received: u64,
}

struct Backplane {
    node: [u8; 16],
    tx: mpsc::Sender<(std::time::Instant, Vec<u8>)>,
    /// For presence queries (redis-rs multiplexes: clones share one connection).
    manager: redis::aio::ConnectionManager,
    /// The last presence epoch written to Redis.
    written: tokio::sync::watch::Sender<u64>,
    published: AtomicU64,
    publish_failed: AtomicU64,
    received: AtomicU64,
}

static BACKPLANE: OnceLock<Backplane> = OnceLock::new();

/// The hub's side of the link: what it publishes goes through here.
struct Publisher;

impl hub::Backplane for Publisher {
    fn publish(&self, endpoint: &str, target: Target<'_>, text: bool, payload: &[u8]) {
        publish(endpoint, target, text, payload);
    }

    fn members(&self, endpoint: &'static str, room: Option<String>) -> hub::MembersFuture {
        Box::pin(async move {
            let Some(b) = BACKPLANE.get() else {
                return Ok(Vec::new());
            };
            let mut manager = b.manager.clone();
            presence::members(&mut manager, endpoint, room.as_deref())
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// The counters of this process's Redis link, or `None` when [`connect_redis`] was not called.
pub fn stats() -> Option<ClusterStats> {
    BACKPLANE.get().map(|b| ClusterStats {
        published: b.published.load(Ordering::Relaxed),
        publish_failed: b.publish_failed.load(Ordering::Relaxed),
        received: b.received.load(Ordering::Relaxed),
    })
}

/// The envelope's origin: this process's node id (the one in [`crate::ClusterSessionId`]) and
/// 8 more random bytes.
fn node_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&crate::registry::node().to_be_bytes());
    id[8..].copy_from_slice(&rand::random::<u64>().to_be_bytes());
    id
}

/// Settings of [`connect_redis_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterConfig {
    /// How long a process's presence outlives its last heartbeat: the sessions of a process
    /// that dies (or stalls this long) vanish from the cluster's queries after at most this
    /// long, and one surviving process reports them lost ([`on_member_lost`]) at most one
    /// heartbeat later.
    pub presence_ttl: Duration,
    /// How often each process renews its presence and looks for dead processes.
    pub heartbeat: Duration,
}

impl Default for ClusterConfig {
    /// A 12 s TTL renewed every 2 s: a dead process's sessions are gone within 12 s and
    /// reported lost within 14 s.
    fn default() -> Self {
        ClusterConfig {
            presence_ttl: Duration::from_secs(12),
            heartbeat: Duration::from_secs(2),
        }
    }
}

/// Error of [`connect_redis`].
#[derive(Debug)]
pub enum ClusterError {
    /// Redis refused or could not be reached.
    Redis(redis::RedisError),
    /// `connect_redis` was already called in this process.
    AlreadyConnected,
}

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterError::Redis(e) => write!(f, "redis: {e}"),
            ClusterError::AlreadyConnected => f.write_str("this process is already connected"),
        }
    }
}

impl std::error::Error for ClusterError {}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        ClusterError::Redis(e)
    }
}

/// Connects this process to the Redis server at `url` (e.g. `redis://127.0.0.1/`) and
/// subscribes to [`CHANNEL`]; from then on hub broadcasts reach the other processes connected to
/// it. Call it once, from within a Tokio runtime (e.g. at the start of `#[actix_web::main]`);
/// the link's tasks run on that runtime.
///
/// RESP3 is used (Redis 6 or newer), as redis-rs needs it for automatic resubscription.
pub async fn connect_redis(url: &str) -> Result<(), ClusterError> {
    connect_redis_with(url, ClusterConfig::default()).await
}

/// [`connect_redis`] with presence settings of your own.
pub async fn connect_redis_with(url: &str, settings: ClusterConfig) -> Result<(), ClusterError> {
    if BACKPLANE.get().is_some() {
        return Err(ClusterError::AlreadyConnected);
    }
    let url = if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    };
    let client = redis::Client::open(url)?;
    let (push_tx, push_rx) = mpsc::unbounded_channel();
    let config = ConnectionManagerConfig::new()
        .set_push_sender(push_tx)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(usize::MAX / 2);
    let mut manager = client.get_connection_manager_with_config(config).await?;
    manager.subscribe(CHANNEL).await?;
    // Redis's clock once subscribed: every message recorded from here on is either received
    // on the channel or, after an outage, read back from its room's stream.
    let start = match redis::cmd("TIME")
        .query_async::<(u64, u64)>(&mut manager)
        .await
    {
        Ok((secs, micros)) => Some(crate::history::MessageId::before_millisecond(
            secs * 1000 + micros / 1000,
        )),
        Err(err) => {
            tracing::warn!(%err, "could not read Redis's clock");
            None
        }
    };

    let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
    let node = node_id();
    let backplane = Backplane {
        node,
        tx,
        manager: manager.clone(),
        written: tokio::sync::watch::channel(0).0,
        published: AtomicU64::new(0),
        publish_failed: AtomicU64::new(0),
        received: AtomicU64::new(0),
    };
    if BACKPLANE.set(backplane).is_err() || !hub::set_backplane(Box::new(Publisher)) {
        return Err(ClusterError::AlreadyConnected);
    }
    crate::history::set_store(Box::new(history::RedisStore {
        manager: manager.clone(),
        node,
    }));
    tokio::spawn(presence::run(manager.clone(), settings));
    tokio::spawn(publisher(manager, rx));
    tokio::spawn(subscriber(push_rx, node, start));
    tracing::info!(channel = CHANNEL, "connected to Redis");
    Ok(())
}

/// Publishes a hub broadcast to the other processes, if connected. Never waits.
fn publish(endpoint: &str, target: Target<'_>, text: bool, payload: &[u8]) {
    let Some(b) = BACKPLANE.get() else {
        return;
    };
    let envelope = encode_target(&b.node, endpoint, &target, text, payload);
    if b.tx
        .try_send((std::time::Instant::now(), envelope))
        .is_err()
    {
        b.publish_failed.fetch_add(1, Ordering::Relaxed);
    }
}

async fn publisher(
    mut manager: redis::aio::ConnectionManager,
    mut rx: mpsc::Receiver<(std::time::Instant, Vec<u8>)>,
) {
    while let Some((queued, envelope)) = rx.recv().await {
        let Some(b) = BACKPLANE.get() else { return };
        if queued.elapsed() > OUTAGE_HOLD {
            b.publish_failed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let result: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(envelope)
            .query_async(&mut manager)
            .await;
        match result {
            Ok(_) => b.published.fetch_add(1, Ordering::Relaxed),
            Err(err) => {
                tracing::warn!(%err, "broadcast not published to Redis (other servers miss it)");
                b.publish_failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

async fn subscriber(
    mut push_rx: mpsc::UnboundedReceiver<redis::PushInfo>,
    node: [u8; 16],
    start: Option<crate::history::MessageId>,
) {
    let mut delivered = history::Delivered::starting_at(start);
    // The connection was lost: recorded messages published meanwhile were missed here.
    let mut lost = false;
    while let Some(push) = push_rx.recv().await {
        match push.kind {
            PushKind::Message => {}
            PushKind::Disconnection => {
                tracing::warn!("Redis connection lost; reconnecting and resubscribing");
                lost = true;
                continue;
            }
            PushKind::Subscribe => {
                if std::mem::take(&mut lost) {
                    catch_up(&mut delivered).await;
                }
                continue;
            }
            _ => continue,
        }
        if std::mem::take(&mut lost) {
            catch_up(&mut delivered).await;
        }
        let Some(Value::BulkString(payload)) = push.data.get(1) else {
            continue;
        };
        let Some((from, endpoint, incoming)) = decode(payload) else {
            tracing::warn!("ignored a malformed message on {CHANNEL}");
            continue;
        };
        match incoming {
            // Recorded messages are delivered from here by every process, the sender's
            // included, in the stream's order.
            Incoming::Recorded { room, id, template } => {
                delivered.deliver(&endpoint, &room, id, &template);
            }
            Incoming::Broadcast(..) if from == node => {} // ours, already delivered here
            Incoming::Broadcast(target, (text, msg)) => {
                if let Some(b) = BACKPLANE.get() {
                    b.received.fetch_add(1, Ordering::Relaxed);
                }
                hub::deliver_remote(&endpoint, target, text, msg);
            }
        }
    }
}

async fn catch_up(delivered: &mut history::Delivered) {
    if let Some(b) = BACKPLANE.get() {
        delivered.catch_up(&mut b.manager.clone()).await;
    }
}

/// Envelope: version 1, node id (16), kind (0 text, 1 binary), target (0 all, 1 room, 2 user,
/// 3 session, 4 a recorded room message), endpoint name (u16 length + bytes), the target's
/// name (room, user or session id; u16 length + bytes), payload (rest; for a recorded message
/// its id, a space and its template, appended by the store's script).
fn encode_target(
    node: &[u8; 16],
    endpoint: &str,
    target: &Target<'_>,
    text: bool,
    payload: &[u8],
) -> Vec<u8> {
    let session;
    let (target_byte, name) = match target {
        Target::All => (0u8, ""),
        Target::Room(r) => (1, *r),
        Target::User(u) => (2, *u),
        Target::Session(id) => {
            session = id.to_string();
            (3, session.as_str())
        }
    };
    encode(node, endpoint, target_byte, name, text, payload)
}

/// The target byte of a recorded room message (`crate::history`).
const RECORDED: u8 = 4;

fn encode(
    node: &[u8; 16],
    endpoint: &str,
    target: u8,
    name: &str,
    text: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + endpoint.len() + name.len() + payload.len());
    out.push(1);
    out.extend_from_slice(node);
    out.push(u8::from(!text));
    out.push(target);
    for s in [endpoint, name] {
        let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&s.as_bytes()[..len as usize]);
    }
    out.extend_from_slice(payload);
    out
}

/// What an envelope carries.
enum Incoming {
    /// A hub broadcast, `(text, payload)`; text is checked to be UTF-8.
    Broadcast(hub::RemoteTarget, (bool, Bytes)),
    /// A recorded room message, with its id.
    Recorded {
        room: String,
        id: crate::history::MessageId,
        template: crate::history::Template,
    },
}

/// Decoded envelope: origin node, endpoint name, what it carries.
fn decode(data: &[u8]) -> Option<([u8; 16], String, Incoming)> {
    let (&version, rest) = data.split_first()?;
    if version != 1 || rest.len() < 18 {
        return None;
    }
    let node: [u8; 16] = rest[..16].try_into().ok()?;
    let (kind, target) = (rest[16], rest[17]);
    let mut rest = &rest[18..];
    let mut strings = Vec::with_capacity(2);
    for _ in 0..2 {
        if rest.len() < 2 {
            return None;
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let s = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_owned();
        strings.push(s);
        rest = &rest[2 + len..];
    }
    let name = strings.pop()?;
    let endpoint = strings.pop()?;
    let text = match kind {
        0 => true,
        1 => false,
        _ => return None,
    };
    if target == RECORDED {
        let space = rest.iter().position(|&b| b == b' ')?;
        let id = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        let template = crate::history::Template::decode(text, &rest[space + 1..])?;
        let incoming = Incoming::Recorded {
            room: name,
            id,
            template,
        };
        return Some((node, endpoint, incoming));
    }
    if text {
        std::str::from_utf8(rest).ok()?;
    }
    let msg = (text, Bytes::copy_from_slice(rest));
    let target = match target {
        0 => hub::RemoteTarget::All,
        1 => hub::RemoteTarget::Room(name),
        2 => hub::RemoteTarget::User(name),
        3 => hub::RemoteTarget::Session(name.parse().ok()?),
        _ => return None,
    };
    Some((node, endpoint, Incoming::Broadcast(target, msg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Broadcast = ([u8; 16], String, hub::RemoteTarget, (bool, Bytes));

    fn broadcast(data: &[u8]) -> Option<Broadcast> {
        match decode(data)? {
            (n, e, Incoming::Broadcast(t, m)) => Some((n, e, t, m)),
            _ => None,
        }
    }

    #[test]
    fn envelopes_round_trip() {
        let node = [7u8; 16];
        let env = encode_target(
            &node,
            "app::Chat",
            &Target::Room("lobby"),
            true,
            "héllo".as_bytes(),
        );
        let (n, e, r, m) = broadcast(&env).unwrap();
        assert_eq!((n, e.as_str()), (node, "app::Chat"));
        assert!(matches!(r, hub::RemoteTarget::Room(r) if r == "lobby"));
        assert_eq!(m, (true, Bytes::from("héllo")));
        let env = encode_target(&node, "E", &Target::All, false, b"\0\x01");
        let (_, _, r, m) = broadcast(&env).unwrap();
        assert!(matches!(r, hub::RemoteTarget::All));
        assert_eq!(m, (false, Bytes::from_static(b"\0\x01")));
        let env = encode_target(&node, "E", &Target::User("ada"), true, b"hi");
        assert!(matches!(broadcast(&env).unwrap().2, hub::RemoteTarget::User(u) if u == "ada"));
        let id = crate::ClusterSessionId {
            node: 0xfeed,
            session: 9,
        };
        let env = encode_target(&node, "E", &Target::Session(id), true, b"hi");
        assert!(matches!(broadcast(&env).unwrap().2, hub::RemoteTarget::Session(i) if i == id));
        assert!(decode(&env[..10]).is_none());
        assert!(decode(b"").is_none());
        assert!(decode(&encode_target(&node, "E", &Target::All, true, b"\xff")).is_none());
    }

    #[test]
    fn recorded_envelopes_carry_the_id_and_the_template() {
        use crate::history::Template;
        // what the store's script publishes: the head, the id, a space, the template
        let template = Template::decode(true, b"\0\0\0\x07{\"id\":\"\0\0\0\x02\"}").unwrap();
        let mut env = encode(&[1; 16], "E", RECORDED, "lobby", true, b"");
        env.extend_from_slice(b"1700000000000-3 ");
        env.extend_from_slice(&template.encode());
        let Some((
            _,
            e,
            Incoming::Recorded {
                room,
                id,
                template: t,
            },
        )) = decode(&env)
        else {
            panic!("not a recorded message")
        };
        assert_eq!(
            (e.as_str(), room.as_str(), id.to_string()),
            ("E", "lobby", "1700000000000-3".to_owned())
        );
        assert_eq!(&t.fill(&id).payload[..], br#"{"id":"1700000000000-3"}"#);
        // a binary template is not checked as text; a malformed one is refused
        env.truncate(env.len() - 1);
        assert!(decode(&env).is_none());
    }
}
