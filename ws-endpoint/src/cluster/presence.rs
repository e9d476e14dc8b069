//! Presence in Redis: who is connected where, kept alive by each process's heartbeat, and the
//! sessions of a process that died reported lost by exactly one survivor.
//!
//! **Keys** (`NODE` is a process's node id in hex):
//! - `ws-endpoint:node:NODE`: the process is alive; set with a TTL
//!   ([`ClusterConfig::presence_ttl`](super::ClusterConfig)) that every heartbeat renews;
//! - `ws-endpoint:presence:NODE`: a hash, one field per session (its local id) whose value is
//!   `{"e": endpoint, "u": user, "r": [rooms]}`; written as sessions come and go, join and
//!   leave rooms, or set their user key (the writer sends what changed since its last write,
//!   and everything again after Redis lost it);
//! - `ws-endpoint:nodes`: the set of processes that have presence.
//!
//! The hash has no TTL of its own (Debian's Redis 7.0 has no per-field expiry, and the whole
//! hash must outlive its node key for the survivors to read it): a query counts only the hashes
//! of nodes whose node key exists, and a survivor that finds a node key gone runs one Lua script
//! that, atomically, checks the key is still gone, reads the hash, deletes it and removes the
//! node from the set. Whoever runs it first gets the sessions; everyone after gets nothing: the
//! sessions are reported lost exactly once ([`on_member_lost`]).

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::{ClusterConfig, BACKPLANE};
use crate::{
    hub::{Member, PresenceError},
    registry, ClusterSessionId,
};

const NODES: &str = "ws-endpoint:nodes";

fn node_key(node: u64) -> String {
    format!("ws-endpoint:node:{node:016x}")
}

fn presence_key(node: u64) -> String {
    format!("ws-endpoint:presence:{node:016x}")
}

/// Reads and deletes a dead node's presence, only if its node key is still gone.
const REAP: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local entries = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return entries
";

/// One session's entry in its node's hash.
#[derive(Serialize, Deserialize)]
struct Entry {
    e: String,
    u: Option<String>,
    r: Vec<String>,
}

impl Entry {
    /// The member this entry describes: field `field` of node `node`'s hash.
    fn member(self, node: u64, field: &str) -> Option<Member> {
        Some(Member {
            id: ClusterSessionId {
                node,
                session: field.parse().ok()?,
            },
            user: self.u,
            rooms: self.r,
        })
    }
}

/// A session of a process that died, reported once across the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostMember {
    /// Its endpoint's type name (`std::any::type_name`), as in [`Hub::of`](crate::Hub::of).
    pub endpoint: String,
    /// The session: its id, user key and rooms when it was last seen.
    pub member: Member,
}

type LostHandler = Arc<dyn Fn(LostMember) + Send + Sync>;

static ON_LOST: OnceLock<LostHandler> = OnceLock::new();

/// Sets what this process does with each session of a dead process that it is the one to
/// find (exactly one surviving process finds each): typically, tell the rooms it was in (the
/// chat example broadcasts a `leave`). Call it once, before [`connect_redis`](super::connect_redis);
/// `false` if a handler was already set. Without one, lost sessions are only logged.
///
/// It runs on the presence task: keep it short (a broadcast is), spawn anything longer.
///
/// ```no_run
/// use ws_endpoint::cluster::{on_member_lost, LostMember};
/// on_member_lost(|lost: LostMember| {
///     tracing::info!(endpoint = lost.endpoint, user = ?lost.member.user, "lost with its server");
/// });
/// ```
pub fn on_member_lost(handler: impl Fn(LostMember) + Send + Sync + 'static) -> bool {
    ON_LOST.set(Arc::new(handler)).is_ok()
}

/// Waits until every presence change of this process made before the call (sessions, rooms,
/// user keys) is written to Redis, at most 2 s; `Ok` at once when not connected. Call it where
/// another process must see a change before you go on: the chat example's `on_open` does,
/// before it sends the welcome, so that a member who got a welcome is listed by every server.
pub async fn flush_presence() -> Result<(), PresenceError> {
    let Some(b) = BACKPLANE.get() else {
        return Ok(());
    };
    let target = registry::presence_epoch();
    let mut written = b.written.subscribe();
    let outcome =
        tokio::time::timeout(Duration::from_secs(2), written.wait_for(|w| *w >= target)).await;
    match outcome {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(PresenceError("the presence writer stopped".into())),
        Err(_) => Err(PresenceError(
            "presence not written within 2 s (is Redis reachable?)".into(),
        )),
    }
}

/// The presence task: writes this process's changes, renews its TTL, reaps dead processes.
pub(super) async fn run(mut manager: ConnectionManager, config: ClusterConfig) {
    let me = registry::node();
    // What Redis holds for this node, as far as this task knows (`None`: unknown, rewrite all).
    let mut written: Option<HashMap<String, String>> = None;
    let ttl_ms = config.presence_ttl.as_millis().max(1000) as u64;
    // Failing since (an outage is logged once when it starts and once when it ends, not at
    // every heartbeat).
    let mut failing: Option<std::time::Instant> = None;
    loop {
        let epoch = registry::presence_epoch();
        let result = match write(&mut manager, me, ttl_ms, &mut written).await {
            Ok(()) => {
                if let Some(b) = BACKPLANE.get() {
                    b.written.send_replace(epoch);
                }
                reap(&mut manager, me).await
            }
            Err(err) => {
                written = None;
                Err(err)
            }
        };
        match (result, failing) {
            (Ok(()), None) => {}
            (Ok(()), Some(since)) => {
                failing = None;
                tracing::info!(after = ?since.elapsed(), "presence written to Redis again");
            }
            (Err(err), None) => {
                failing = Some(std::time::Instant::now());
                tracing::warn!(%err, "presence not written to Redis; retrying at every heartbeat");
            }
            (Err(err), Some(_)) => tracing::debug!(%err, "presence still not written"),
        }
        tokio::select! {
            _ = registry::presence_change() => {
                // Changes come in bursts (a session opens, joins, sets its user): one write.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ = tokio::time::sleep(config.heartbeat) => {}
        }
    }
}

/// Renews this node's key and brings its hash up to date.
async fn write(
    manager: &mut ConnectionManager,
    me: u64,
    ttl_ms: u64,
    written: &mut Option<HashMap<String, String>>,
) -> redis::RedisResult<()> {
    let now: HashMap<String, String> = registry::presence_snapshot()
        .into_iter()
        .map(|(id, p)| {
            let entry = Entry {
                e: p.endpoint.to_owned(),
                u: p.user,
                r: p.rooms,
            };
            let value = serde_json::to_string(&entry).unwrap_or_default();
            (id.to_string(), value)
        })
        .collect();
    // `SET … GET`: a key that was gone (expired while this process stalled, or lost in a Redis
    // restart) means the hash may be gone too: write it all again.
    let previous: Option<String> = redis::cmd("SET")
        .arg(node_key(me))
        .arg("1")
        .arg("PX")
        .arg(ttl_ms)
        .arg("GET")
        .query_async(manager)
        .await?;
    if previous.is_none() {
        *written = None;
    }
    let key = presence_key(me);
    let mut pipe = redis::pipe();
    pipe.atomic();
    pipe.sadd(NODES, format!("{me:016x}")).ignore();
    match written.as_ref() {
        None => {
            pipe.del(&key).ignore();
            if !now.is_empty() {
                let fields: Vec<(&String, &String)> = now.iter().collect();
                pipe.hset_multiple(&key, &fields).ignore();
            }
        }
        Some(before) => {
            let changed: Vec<(&String, &String)> = now
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(*v))
                .collect();
            let gone: Vec<&String> = before.keys().filter(|k| !now.contains_key(*k)).collect();
            if changed.is_empty() && gone.is_empty() {
                return Ok(());
            }
            if !changed.is_empty() {
                pipe.hset_multiple(&key, &changed).ignore();
            }
            if !gone.is_empty() {
                pipe.hdel(&key, gone).ignore();
            }
        }
    }
    let () = pipe.query_async(manager).await?;
    *written = Some(now);
    Ok(())
}

/// The nodes that have presence (alive or not yet reaped).
async fn nodes(manager: &mut ConnectionManager) -> redis::RedisResult<Vec<u64>> {
    let nodes: Vec<String> = redis::cmd("SMEMBERS")
        .arg(NODES)
        .query_async(manager)
        .await?;
    Ok(nodes
        .iter()
        .filter_map(|n| u64::from_str_radix(n, 16).ok())
        .collect())
}

/// Every node in the set whose key is gone is reaped (by whichever process gets there first).
async fn reap(manager: &mut ConnectionManager, me: u64) -> redis::RedisResult<()> {
    let others: Vec<u64> = nodes(manager)
        .await?
        .into_iter()
        .filter(|n| *n != me)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for n in &others {
        pipe.exists(node_key(*n));
    }
    let alive: Vec<bool> = pipe.query_async(manager).await?;
    let script = redis::Script::new(REAP);
    for (node, alive) in others.into_iter().zip(alive) {
        if alive {
            continue;
        }
        let entries: Vec<String> = script
            .key(node_key(node))
            .key(presence_key(node))
            .key(NODES)
            .arg(format!("{node:016x}"))
            .invoke_async(manager)
            .await?;
        let lost: Vec<LostMember> = entries
            .chunks(2)
            .filter_map(|pair| {
                let [field, value] = pair else { return None };
                let mut entry: Entry = serde_json::from_str(value).ok()?;
                Some(LostMember {
                    endpoint: std::mem::take(&mut entry.e),
                    member: entry.member(node, field)?,
                })
            })
            .collect();
        tracing::warn!(
            node = format!("{node:016x}"),
            sessions = lost.len(),
            "a server process stopped renewing its presence: its sessions are lost"
        );
        for member in lost {
            match ON_LOST.get() {
                Some(handler) => handler(member),
                None => tracing::info!(?member, "session lost with its server process"),
            }
        }
    }
    Ok(())
}

/// The members of `endpoint` (in `room`, if given) on every live node.
pub(super) async fn members(
    manager: &mut ConnectionManager,
    endpoint: &str,
    room: Option<&str>,
) -> redis::RedisResult<Vec<Member>> {
    let nodes = nodes(manager).await?;
    let mut pipe = redis::pipe();
    for n in &nodes {
        pipe.exists(node_key(*n));
        pipe.hgetall(presence_key(*n));
    }
    let replies: Vec<redis::Value> = pipe.query_async(manager).await?;
    let mut out = Vec::new();
    for (node, pair) in nodes.iter().zip(replies.chunks(2)) {
        let [alive, hash] = pair else { continue };
        let alive: bool = redis::from_redis_value(alive.clone()).unwrap_or(false);
        if !alive {
            continue; // dead (its sessions are reported lost by whoever reaps it)
        }
        let hash: HashMap<String, String> =
            redis::from_redis_value(hash.clone()).unwrap_or_default();
        for (field, value) in hash {
            let Ok(entry) = serde_json::from_str::<Entry>(&value) else {
                continue;
            };
            if entry.e != endpoint || room.is_some_and(|r| !entry.r.iter().any(|x| x == r)) {
                continue;
            }
            if let Some(member) = entry.member(*node, &field) {
                out.push(member);
            }
        }
    }
    Ok(out)
}
