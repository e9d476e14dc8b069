//! Room history in Redis Streams: the store behind [`crate::history`] once
//! [`connect_redis`](super::connect_redis) was called.
//!
//! One stream per room, `ws-endpoint:history:LEN:ENDPOINT:ROOM` (`LEN` is the endpoint name's
//! length, so that no endpoint and room pair can spell another's key), each entry a message
//! kind (`k`: `t` text, `b` binary) and its template (`p`: the message cut where its id goes).
//!
//! - **Record** (one Lua script, atomic): `XADD … MAXLEN N *` (Redis assigns the id), trim by
//!   age (`XTRIM MINID`, the id's milliseconds minus the age limit) and let the stream expire
//!   when the room has been quiet for [`History::quiet_room_kept`] (`PEXPIRE`), then
//!   `PUBLISH` the message with its id on [`CHANNEL`](super::CHANNEL). Append and publish are
//!   one step, so the channel carries the room's messages in the stream's order, and every
//!   process delivers them in that order. The newest id trimmed away is kept beside the stream
//!   (`ws-endpoint:history-trimmed:…`): a client that saw it has missed nothing, which is also
//!   how a quiet room whose messages all aged out still answers for its newest id.
//! - **Read** (one Lua script): trim by age (Redis's clock), check that `since` is in the
//!   stream or is the newest trimmed id, then `XRANGE` after it (all of it: the stream is
//!   bounded); or, when `since` is missing, the oldest id.
//! - Every call waits at most [`CALL_TIMEOUT`] for Redis.
//! - **Catch-up**: the subscriber remembers the last recorded id it delivered per room with
//!   members here, and the newest id it saw on the channel (from Redis's clock when it
//!   subscribed); when its connection to Redis was lost and renewed, it reads what each room
//!   with members here got meanwhile from its stream (after the last id delivered, or after
//!   the newest id seen for a room it had delivered nothing to) before going on, and skips
//!   what it already delivered. Where that cannot be done (the stream lost the id, more than
//!   it keeps was recorded meanwhile, Redis did not answer), the room's members here are
//!   closed with 1012: their clients reconnect with their last id and are told.

use redis::{aio::ConnectionManager, Script, Value};

use crate::history::{Found, History, MessageId, Store, StoreFuture, Template};

/// Appends a message, trims, publishes. KEYS: stream, channel, trimmed marker (the newest id
/// trimmed away). ARGV: max messages, age limit in ms (0: none), kind, template, envelope
/// head, how long a quiet room is kept in ms ([`History::quiet_room_kept`]). Returns the id.
const RECORD: &str = r"
local max = tonumber(ARGV[1])
local len = redis.call('XLEN', KEYS[1])
if len >= max then
  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - max + 1)
  redis.call('SET', KEYS[3], old[#old][1])
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', max, '*', 'k', ARGV[3], 'p', ARGV[4])
local age = tonumber(ARGV[2])
if age > 0 then
  local ms = tonumber(string.match(id, '^(%d+)'))
  local minid = string.format('%.0f', ms - age) .. '-0'
  local old = redis.call('XREVRANGE', KEYS[1], '(' .. minid, '-', 'COUNT', 1)
  if #old > 0 then
    redis.call('SET', KEYS[3], old[1][1])
    redis.call('XTRIM', KEYS[1], 'MINID', minid)
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
redis.call('PUBLISH', KEYS[2], ARGV[5] .. id .. ' ' .. ARGV[4])
return id
";

/// Reads after `since`. KEYS: stream, trimmed marker. ARGV: since, age limit in ms (0: none),
/// how long a quiet room is kept in ms, mode. Mode `got`: `since` is the room's message that
/// a client saw last; returns `{1, entries}` when it is in the stream or is the newest id
/// trimmed from it (nothing after it is lost), else `{0}` or `{0, oldest id}`. Mode `seen`:
/// `since` is an id seen on the channel, of any room; returns `{1, entries after it}`, or
/// `{0}` if a message after it was trimmed away (lost for whoever had not got it).
const READ: &str = r"
local function later(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local age = tonumber(ARGV[2])
if age > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local minid = string.format('%.0f', now - age) .. '-0'
  local old = redis.call('XREVRANGE', KEYS[1], '(' .. minid, '-', 'COUNT', 1)
  if #old > 0 then
    redis.call('SET', KEYS[2], old[1][1], 'PX', ARGV[3])
    redis.call('XTRIM', KEYS[1], 'MINID', minid)
  end
end
local trimmed = redis.call('GET', KEYS[2])
if ARGV[4] == 'seen' then
  if trimmed and later(trimmed, ARGV[1]) then return {0} end
  return {1, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+')}
end
local from
if trimmed == ARGV[1] then
  from = '-'
elseif #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 1 then
  from = '(' .. ARGV[1]
else
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if #first == 0 then return {0} end
  return {0, first[1][1]}
end
return {1, redis.call('XRANGE', KEYS[1], from, '+')}
";

pub(super) struct RedisStore {
    pub(super) manager: ConnectionManager,
    pub(super) node: [u8; 16],
}

/// The stream of `endpoint`'s `room`, and the key of the newest id trimmed from it.
fn keys(endpoint: &str, room: &str) -> (Vec<u8>, Vec<u8>) {
    let key = |kind: &str| {
        let mut key = format!("ws-endpoint:{kind}:{}:{endpoint}:", endpoint.len()).into_bytes();
        key.extend_from_slice(room.as_bytes());
        key
    };
    (key("history"), key("history-trimmed"))
}

/// What `since` is to [`READ`].
#[derive(Clone, Copy)]
enum Since {
    /// The room's message that a client (or this process) got last.
    Got,
    /// An id seen on the channel, of any room: this process got every message before it.
    Seen,
}

/// Runs [`READ`] for `room` after `since`.
async fn read_room(
    manager: &mut ConnectionManager,
    endpoint: &str,
    room: &str,
    since: MessageId,
    mode: Since,
    history: History,
) -> Result<Found, String> {
    static SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(READ));
    let (stream, trimmed) = keys(endpoint, room);
    let mut invocation = SCRIPT.prepare_invoke();
    let call = invocation
        .key(stream)
        .key(trimmed)
        .arg(since.to_string())
        .arg(age_ms(history))
        .arg(kept_ms(history))
        .arg(match mode {
            Since::Got => "got",
            Since::Seen => "seen",
        })
        .invoke_async::<Value>(manager);
    let reply = bounded(call).await?;
    parse_read(reply).ok_or_else(|| "unexpected reply from Redis".to_owned())
}

/// How long a history call may wait for Redis (while it is unreachable, the connection
/// manager keeps reconnecting and a call would wait for it).
pub(super) const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer from Redis within {CALL_TIMEOUT:?}")),
    }
}

fn age_ms(history: History) -> u64 {
    history
        .age_limit()
        .map(|a| (a.as_millis() as u64).max(1))
        .unwrap_or(0)
}

fn kept_ms(history: History) -> u64 {
    history
        .quiet_room_kept()
        .map(|a| a.as_millis() as u64)
        .unwrap_or(0)
}

impl Store for RedisStore {
    fn record(
        &self,
        endpoint: &'static str,
        room: &str,
        template: Template,
        history: History,
    ) -> StoreFuture<MessageId> {
        let mut manager = self.manager.clone();
        let head = super::encode(
            &self.node,
            endpoint,
            super::RECORDED,
            room,
            template.text,
            b"",
        );
        let (stream, trimmed) = keys(endpoint, room);
        Box::pin(async move {
            static SCRIPT: std::sync::LazyLock<Script> =
                std::sync::LazyLock::new(|| Script::new(RECORD));
            let mut invocation = SCRIPT.prepare_invoke();
            let call = invocation
                .key(stream)
                .key(super::CHANNEL)
                .key(trimmed)
                .arg(history.max_messages())
                .arg(age_ms(history))
                .arg(if template.text { "t" } else { "b" })
                .arg(template.encode())
                .arg(head)
                .arg(kept_ms(history))
                .invoke_async::<String>(&mut manager);
            let id = bounded(call).await?;
            id.parse()
                .map_err(|e: crate::history::BadMessageId| e.to_string())
        })
    }

    fn read(
        &self,
        endpoint: &'static str,
        room: &str,
        since: MessageId,
        history: History,
    ) -> StoreFuture<Found> {
        let mut manager = self.manager.clone();
        let room = room.to_owned();
        Box::pin(async move {
            read_room(&mut manager, endpoint, &room, since, Since::Got, history).await
        })
    }
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn parse_read(reply: Value) -> Option<Found> {
    let Value::Array(items) = reply else {
        return None;
    };
    match items.first()? {
        Value::Int(0) => Some(Found::Missing(match items.get(1) {
            Some(v) => Some(string(v)?.parse().ok()?),
            None => None,
        })),
        Value::Int(1) => Some(Found::After(parse_entries(items.get(1)?)?)),
        _ => None,
    }
}

/// XRANGE's entries: `[[id, [field, value, …]], …]`.
pub(super) fn parse_entries(v: &Value) -> Option<Vec<(MessageId, Template)>> {
    let Value::Array(entries) = v else {
        return None;
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(pair) = entry else {
            return None;
        };
        let id: MessageId = string(pair.first()?)?.parse().ok()?;
        let Value::Array(fields) = pair.get(1)? else {
            return None;
        };
        let (mut kind, mut template) = (None, None);
        for fv in fields.chunks(2) {
            match (fv.first().and_then(string).as_deref(), fv.get(1)) {
                (Some("k"), Some(v)) => kind = string(v),
                (Some("p"), Some(Value::BulkString(p))) => template = Some(p.clone()),
                _ => {}
            }
        }
        let text = match kind.as_deref()? {
            "t" => true,
            "b" => false,
            _ => return None,
        };
        out.push((id, Template::decode(text, &template?)?));
    }
    Some(out)
}

/// What the subscriber has delivered, to skip what it already delivered and to catch up after
/// a lost connection.
#[derive(Default)]
pub(super) struct Delivered {
    /// Per room that had members here at its last message: that message's id.
    last: std::collections::HashMap<(String, String), MessageId>,
    /// The newest id seen on the channel, any room (one Redis hands out every id, from one
    /// clock: whatever is recorded later has an id of at least this millisecond).
    newest: Option<MessageId>,
    delivered: u64,
}

impl Delivered {
    /// Delivers a recorded message to the room's members here, unless it was already
    /// delivered, and remembers it.
    pub(super) fn deliver(&mut self, endpoint: &str, room: &str, id: MessageId, t: &Template) {
        self.newest = self.newest.max(Some(id));
        let key = (endpoint.to_owned(), room.to_owned());
        if self.last.get(&key).is_some_and(|last| id <= *last) {
            return; // delivered already (read by a catch-up, then published)
        }
        if crate::history::deliver_recorded(endpoint, room, id, t) > 0 {
            self.last.insert(key, id);
        } else {
            self.last.remove(&key);
        }
        self.delivered += 1;
        if self.delivered.is_multiple_of(4096) {
            self.forget_empty_rooms();
        }
    }

    /// Forgets the rooms that have no members here any more.
    fn forget_empty_rooms(&mut self) {
        let here: std::collections::HashSet<(String, String)> =
            crate::history::rooms_with_members()
                .into_iter()
                .map(|(e, r)| (e.to_owned(), r))
                .collect();
        self.last.retain(|k, _| here.contains(k));
    }

    /// Starts from an id of Redis's clock taken when the subscription began (`None` if it
    /// could not be read): whatever is recorded after it, this process either gets on the
    /// channel or catches up on.
    pub(super) fn starting_at(start: Option<MessageId>) -> Self {
        Delivered {
            newest: start,
            ..Default::default()
        }
    }

    /// After a lost connection: delivers what each room with members here got in the
    /// meantime, from its stream: after the last id delivered here, or, for a room that got
    /// nothing here yet, after the newest id seen on the channel (or the subscription's
    /// start). Members of a room that may have missed messages nobody can replay are closed
    /// with 1012, so that their clients reconnect and learn it from their last id: when the
    /// stream no longer holds the last id delivered here (Redis lost it, or more than
    /// `max_messages` were recorded meanwhile), when a message after the newest id seen was
    /// trimmed away, or when the stream could not be read.
    pub(super) async fn catch_up(&mut self, manager: &mut ConnectionManager) {
        self.forget_empty_rooms();
        // Taken before the loop: delivering a room's catch-up raises `self.newest`, which must
        // not move the starting point of the rooms after it.
        let newest = self.newest;
        for (endpoint, room) in crate::history::rooms_with_members() {
            let Some(hub) = crate::history::hub_of(endpoint) else {
                continue;
            };
            let history = hub.history().unwrap_or_default();
            let key = (endpoint.to_owned(), room.clone());
            let (since, mode) = match (self.last.get(&key).copied(), newest) {
                (Some(last), _) => (last, Since::Got),
                // Ids are ordered per stream: another room's message of the same millisecond
                // may have a smaller sequence number. So the whole millisecond is read (a
                // member that joined within it may get a message twice; none is lost).
                (None, Some(newest)) => (
                    MessageId::before_millisecond(newest.millisecond()),
                    Since::Seen,
                ),
                (None, None) => {
                    // Redis's clock could not be read at the start: nothing to read from.
                    tracing::warn!(%room, "cannot tell what the room missed; closing it here");
                    crate::history::history_lost(hub, &room);
                    continue;
                }
            };
            match read_room(manager, endpoint, &room, since, mode, history).await {
                Ok(Found::After(missed)) => {
                    for (id, template) in missed {
                        self.deliver(endpoint, &room, id, &template);
                    }
                }
                Ok(Found::Missing(_)) => {
                    tracing::warn!(%room, "room messages lost during the outage; closing it here");
                    crate::history::history_lost(hub, &room);
                    self.last.remove(&key);
                }
                Err(err) => {
                    tracing::warn!(%room, %err, "could not catch up on the room; closing it here");
                    crate::history::history_lost(hub, &room);
                    self.last.remove(&key);
                }
            }
        }
    }
}
