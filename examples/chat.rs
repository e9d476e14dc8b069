//! Chat rooms: a browser page at `/` and a JSON WebSocket endpoint at `/chat/{room}`.
//!
//! ```text
//! cargo run --example chat                           # then open http://127.0.0.1:8080/
//! CHAT_ADDR=0.0.0.0:8080 cargo run --example chat    # or: cargo run --example chat -- 127.0.0.1:9000
//! ```
//!
//! Open the page in two browser tabs, pick the same room, and chat. Or without a browser, e.g.
//! with [websocat](https://github.com/vi/websocat):
//!
//! ```text
//! websocat 'ws://127.0.0.1:8080/chat/lobby?nick=ada'
//! {"text": "hello"}
//! ```
//!
//! The protocol, one JSON object per text message:
//!
//! * client → server: `{"text": "hello"}`; `{"text": "/nick grace"}` changes the nickname.
//! * server → the newcomer: who it is and who is there,
//!   `{"kind":"welcome","room":"lobby","nick":"bob","members":["ada","bob"]}`.
//! * server → the rest of the room, as changes (the member list goes only to a newcomer, so a
//!   join costs the same in a room of 2 or 2,000): `{"kind":"join","room":"lobby","nick":"bob"}`
//!   and, when someone leaves, `{"kind":"leave","room":"lobby","nick":"bob"}`.
//! * server → everyone in the room, the sender included:
//!   `{"kind":"message","id":"1764669600000-0","room":"lobby","from":"ada","text":"hello"}`
//!   and `{"kind":"nick","room":"lobby","from":"ada","to":"grace"}`. A message's `id` is its
//!   place in the room's history.
//! * reconnecting: a client that connects with `?since=ID` (the last message id it saw) gets
//!   the welcome, then the room's messages after ID as ordinary message events, each once and
//!   in order, then the live ones. If ID is no longer in the history (each room keeps its last
//!   100 messages of the last 10 minutes: `ws_endpoint::history`), it gets
//!   `{"kind":"gap","room":"lobby","since":"ID"}` instead of the replay. The page reconnects by
//!   itself after a drop, with `since=`.
//! * server → the sender alone, when a message is not understood (or `/nick` names a nickname
//!   taken in the room): `{"kind":"error","error":"…"}`; the session stays open.
//!
//! The nickname comes from the query string (`?nick=ada`), else it is `guest-<session id>`.
//! Nicknames are unique in their room: a second `ada` is admitted as `ada-2` (the welcome says
//! so; refusing would lock out a user whose previous tab is still connected), and `/nick` to a
//! taken name is refused. Control characters and invisible or bidi characters (U+200B, U+202E,
//! U+2066, …) are removed from nicknames and room names, so that no name hides characters or turns
//! a line around (look-alike letters from other scripts are not folded). The room is the path segment percent-decoded (`/chat/c%2B%2B` is `c++`); a
//! name that is empty, longer than 64 characters, not UTF-8 or with control characters is
//! refused with 400 before the upgrade (an `#[on_handshake]` hook).
//! Rooms are the endpoint's [`Hub`] rooms: a session joins the room of its path and leaves it
//! when it closes; events go out with `Chat::hub().to_room(…)`, which never waits on a slow
//! member.
//!
//! `GET /metrics` serves ws-endpoint's metrics in the Prometheus text format (sessions open,
//! messages and bytes each way, close codes, errors, refused handshakes, handler time; see
//! `ws_endpoint::telemetry`).
//!
//! Several chat servers share their rooms through Redis (cargo feature `redis`):
//!
//! ```text
//! cargo run --features redis --example chat -- 127.0.0.1:8080 --redis redis://127.0.0.1/
//! cargo run --features redis --example chat -- 127.0.0.1:8081 --redis redis://127.0.0.1/
//! ```
//!
//! A message sent on either server reaches the room's members on both, and the rooms' history
//! is kept in Redis Streams, so a client may reconnect with `?since=` to either server. The
//! welcome's `members`
//! list spans the servers (the cluster's presence: each session's nickname is its user key),
//! nicknames are unique per room across servers (checked against that presence when a member
//! joins or renames: two members taking the same name on two servers within the same few
//! milliseconds could both get it), and when a server dies (SIGKILL), its members leave the
//! other servers' lists within the presence TTL (12 s): exactly one surviving server sends
//! their `leave`.

use std::{collections::HashSet, sync::Mutex};

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use ws_endpoint::history::{History, HistoryError, MessageId, Replay};
use ws_endpoint::prelude::*;

/// Longest nickname kept, in characters.
const MAX_NICK_CHARS: usize = 32;

/// Longest room name, in characters (after percent-decoding).
pub const MAX_ROOM_CHARS: usize = 64;

/// A session's nickname, kept as a session property.
#[derive(Debug, Clone)]
struct Nick(String);

/// Taken while a nickname is checked and claimed, so that two `ada`s joining (or renaming) at
/// once cannot both get it. Who holds which name is the room's live members' `Nick`
/// properties: a session that ends frees its name with it, whatever ended it.
static NICKS: Mutex<()> = Mutex::new(());

/// The nicknames held in `room` (on this server).
fn nicks_in(room: &str) -> HashSet<String> {
    Chat::hub()
        .room_members(room)
        .iter()
        .filter_map(|s| s.property::<Nick>().map(|n| n.0))
        .collect()
}

/// The nicknames the room's members on the *other* chat servers hold (their user keys in the
/// cluster's presence); none without Redis, or when it cannot be asked.
async fn remote_nicks(room: &str) -> HashSet<String> {
    let here = ws_endpoint::node_id();
    match Chat::hub().cluster_room_members(room).await {
        Ok(members) => members
            .into_iter()
            .filter(|m| m.id.node != here)
            .filter_map(|m| m.user)
            .collect(),
        Err(err) => {
            tracing::warn!(%err, "other servers' members unknown");
            HashSet::new()
        }
    }
}

/// Joins `room` as `wanted`, or as the first free `wanted-2`, `wanted-3`, …, under the lock:
/// claims the name (no other join or rename here can take it) and joins. `remote`: the names
/// held on the other servers (asked just before). [`welcome`] follows. With `since` (the last
/// message id a reconnecting client saw), the join begins a replay of what it missed: the
/// room's messages are held for the session until the returned replay is awaited.
fn join_as(
    session: &Session,
    room: &str,
    wanted: &str,
    remote: &HashSet<String>,
    since: Option<&MessageId>,
) -> (String, Option<Replay>) {
    let _claim = NICKS.lock().unwrap_or_else(|e| e.into_inner());
    let mut taken = nicks_in(room);
    taken.extend(remote.iter().cloned());
    let mut nick = wanted.to_owned();
    let mut n = 2;
    while taken.contains(&nick) {
        let suffix = format!("-{n}");
        let base: String = wanted
            .chars()
            .take(MAX_NICK_CHARS - suffix.chars().count())
            .collect();
        nick = format!("{base}{suffix}");
        n += 1;
    }
    session.set_property(Nick(nick.clone()));
    // The user key: what the other servers see of this session (presence, `to_user`).
    session.set_user(nick.clone());
    let replay = match since {
        Some(since) => match session.join_since(room, since) {
            Ok(replay) => Some(replay),
            Err(err) => {
                tracing::warn!(%err, "no replay");
                session.join(room);
                None
            }
        },
        None => {
            session.join(room);
            None
        }
    };
    (nick, replay)
}

/// Queues the newcomer's welcome and tells the room, under the lock, so that no join, leave
/// or rename here can fall between the welcome's member list and the events after it.
fn welcome(session: &Session, room: &str, nick: &str, remote: &HashSet<String>) {
    let _claim = NICKS.lock().unwrap_or_else(|e| e.into_inner());
    let mut all = nicks_in(room);
    all.extend(remote.iter().cloned());
    let mut all: Vec<String> = all.into_iter().collect();
    all.sort();
    // Nothing else was sent to the session yet but room events, which are small: the welcome
    // fits (one larger than the budget is taken when the queue is empty).
    let _ = session.try_send(Json(Event::Welcome {
        room: room.to_owned(),
        nick: nick.to_owned(),
        members: all,
    }));
    to_room(
        room,
        Some(session),
        Event::Join {
            room: room.to_owned(),
            nick: nick.to_owned(),
        },
    );
}

/// Renames `session` from `old` to `new` in `room` if no one there holds it, and tells the
/// room, under the lock.
fn rename(session: &Session, room: &str, old: &str, new: &str, remote: &HashSet<String>) -> bool {
    let _claim = NICKS.lock().unwrap_or_else(|e| e.into_inner());
    if nicks_in(room).contains(new) || remote.contains(new) {
        return false;
    }
    session.set_property(Nick(new.to_owned()));
    session.set_user(new.to_owned());
    to_room(
        room,
        None,
        Event::Nick {
            room: room.to_owned(),
            from: old.to_owned(),
            to: new.to_owned(),
        },
    );
    true
}

/// Leaves `room` and tells it, under the lock.
fn leave(session: &Session, room: &str, nick: &str) {
    let _claim = NICKS.lock().unwrap_or_else(|e| e.into_inner());
    session.leave(room);
    to_room(
        room,
        None,
        Event::Leave {
            room: room.to_owned(),
            nick: nick.to_owned(),
        },
    );
}

/// Sends `event` to `room`, or to all its members but `except`. Never waits: a member whose
/// queue is full misses the event (the endpoint's slow-consumer policy).
fn to_room(room: &str, except: Option<&Session>, event: Event) {
    let hub = Chat::hub();
    let result = match except {
        Some(session) => hub.to_room_except(room, session, Json(event)),
        None => hub.to_room(room, Json(event)),
    };
    if let Err(err) = result {
        tracing::error!(%err, "could not send an event");
    }
}

/// What the server sends. Member lists go only to a newcomer (`welcome`); the others get the
/// change (`join`, `leave`, `nick`), so a join costs the same however full the room is.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// To a newcomer: you are `nick` in `room`, with `members` (you included).
    Welcome {
        room: String,
        nick: String,
        members: Vec<String>,
    },
    /// `nick` entered the room.
    Join { room: String, nick: String },
    /// `nick` left the room.
    Leave { room: String, nick: String },
    /// A chat message, with its id in the room's history (what `?since=` takes).
    Message {
        id: String,
        room: String,
        from: String,
        text: String,
    },
    /// To a client that reconnected with `?since=ID`: the messages after `since` are no longer
    /// in the room's history (it keeps the last 100 of the last 10 minutes), so some may be
    /// missing from what it shows.
    Gap { room: String, since: String },
    /// `from` is now called `to`.
    Nick {
        room: String,
        from: String,
        to: String,
    },
    /// The last message was not understood; sent to its sender only.
    Error { error: String },
}

impl Event {
    fn error(error: impl Into<String>) -> Option<Json<Event>> {
        Some(Json(Event::Error {
            error: error.into(),
        }))
    }
}

/// What a client sends.
#[derive(Debug, Deserialize)]
struct Incoming {
    text: String,
}

/// The handshake's query string.
#[derive(Debug, Deserialize)]
struct Params {
    nick: Option<String>,
    /// The id of the last message a reconnecting client saw.
    since: Option<String>,
}

/// Characters that are invisible or reorder text (zero-width spaces and joiners, bidi
/// embeddings, overrides and isolates, the word joiner and invisible operators, the BOM,
/// variation selectors, tag characters, fillers, line and paragraph separators, the braille
/// blank): a nickname or room name that contains them can look like another, or turn the rest
/// of a line around (U+202E). (Look-alike letters from other scripts and unnormalised accents
/// are not folded: that would take Unicode normalisation and confusables data.)
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}' | '\u{2028}' | '\u{2029}' | '\u{2800}')
}

/// A usable nickname from user input: invisible and control characters removed, trimmed, at
/// most [`MAX_NICK_CHARS`]; `None` if nothing is left.
pub fn clean_nick(raw: &str) -> Option<String> {
    let nick: String = raw
        .chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_NICK_CHARS)
        .collect();
    let nick = nick.trim_end().to_owned();
    (!nick.is_empty()).then_some(nick)
}

/// The room name from the path segment: percent-decoded (`c%2B%2B` is `c++`), invisible
/// characters removed, trimmed; refused when it is not UTF-8, holds control characters, or is
/// empty or longer than [`MAX_ROOM_CHARS`].
pub fn room_name(segment: &str) -> Result<String, String> {
    let decoded = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| "the room name is not valid UTF-8".to_owned())?;
    // actix-web decodes the path before us, putting U+FFFD where the bytes were not UTF-8.
    if decoded.contains('\u{FFFD}') {
        return Err("the room name is not valid UTF-8".to_owned());
    }
    if decoded.chars().any(char::is_control) {
        return Err("the room name contains control characters".to_owned());
    }
    let room: String = decoded.chars().filter(|c| !is_invisible(*c)).collect();
    let room = room.trim();
    match room.chars().count() {
        0 => Err("the room name is empty".to_owned()),
        n if n > MAX_ROOM_CHARS => Err(format!(
            "the room name is {n} characters long; at most {MAX_ROOM_CHARS}"
        )),
        _ => Ok(room.to_owned()),
    }
}

/// The cleaned room name, from the handshake to `on_open`.
#[derive(Clone)]
struct Room(String);

/// One chat connection, built by its `on_open`.
struct Chat {
    room: String,
    nick: String,
}

#[server_endpoint("/chat/{room}", max_message_size = 4096)]
impl Chat {
    /// Before the 101: a room name that is not usable is refused with 400.
    #[on_handshake]
    fn handshake(#[path_param] room: String, hs: &mut Handshake) -> Result<(), actix_web::Error> {
        let room = room_name(&room).map_err(actix_web::error::ErrorBadRequest)?;
        hs.set_property(Room(room));
        Ok(())
    }

    #[on_open]
    async fn open(session: &Session, query: web::Query<Params>) -> Self {
        let room = session.property::<Room>().expect("set by the handshake").0;
        let wanted = query
            .nick
            .as_deref()
            .and_then(clean_nick)
            .unwrap_or_else(|| format!("guest-{}", session.id()));
        let since = match query.since.as_deref().map(str::parse::<MessageId>) {
            Some(Err(err)) => {
                let _ = session.try_send(Json(Event::Error {
                    error: format!("since: {err}"),
                }));
                None
            }
            Some(Ok(id)) => Some(id),
            None => None,
        };
        // Unique in the room, on every server: a second `ada` becomes `ada-2`.
        let remote = remote_nicks(&room).await;
        let (nick, replay) = join_as(session, &room, &wanted, &remote, since.as_ref());
        // With Redis: written to the cluster's presence before the welcome and the join go
        // out, so that whoever joins after them, on any server, is told about this member.
        #[cfg(feature = "redis")]
        if let Err(err) = ws_endpoint::cluster::flush_presence().await {
            tracing::warn!(%err, "presence not shared yet");
        }
        welcome(session, &room, &nick, &remote);
        tracing::info!(session = %session.id(), %room, %nick, "join");
        // A reconnection: what it missed, then the live messages.
        if let Some(replay) = replay {
            match replay.await {
                Ok(replayed) => tracing::debug!(replayed = replayed.count, "caught up"),
                Err(HistoryError::NotInHistory { since, .. }) => {
                    let _ = session
                        .send(Json(Event::Gap {
                            room: room.clone(),
                            since: since.to_string(),
                        }))
                        .await;
                }
                Err(err) => tracing::warn!(%err, "replay failed"),
            }
        }
        Chat { room, nick }
    }

    #[on_message]
    async fn text(&mut self, session: &Session, Json(msg): Json<Incoming>) -> Option<Json<Event>> {
        if let Some(arg) = msg.text.strip_prefix("/nick") {
            if !arg.is_empty() && !arg.starts_with(char::is_whitespace) {
                return Event::error(format!("unknown command: {}", msg.text));
            }
            let Some(nick) = clean_nick(arg) else {
                return Event::error("usage: /nick <new nickname>");
            };
            if nick == self.nick {
                return None;
            }
            let remote = remote_nicks(&self.room).await;
            if !rename(session, &self.room, &self.nick, &nick, &remote) {
                return Event::error(format!("the nickname {nick} is taken in this room"));
            }
            let old = std::mem::replace(&mut self.nick, nick.clone());
            tracing::info!(session = %session.id(), room = %self.room, %old, %nick, "nick");
            return None;
        }
        let text = msg.text.trim();
        if text.is_empty() {
            return Event::error("empty message");
        }
        // Recorded in the room's history, under an id that the event carries.
        let sent = Chat::hub()
            .to_room_recorded(&self.room, |id| {
                Json(Event::Message {
                    id: id.to_string(),
                    room: self.room.clone(),
                    from: self.nick.clone(),
                    text: text.to_owned(),
                })
            })
            .await;
        match sent {
            Ok(_) => None,
            Err(err) => Event::error(format!("message not sent: {err}")),
        }
    }

    #[on_close]
    fn close(&mut self, session: &Session, reason: CloseReason) {
        tracing::info!(session = %session.id(), room = %self.room, nick = %self.nick, %reason, "leave");
        leave(session, &self.room, &self.nick);
    }

    #[on_error]
    async fn error(&mut self, session: &Session, err: EndpointError) -> Option<Json<Event>> {
        tracing::debug!(session = %session.id(), %err, "bad message");
        // Errors with a close code end the session; the others (a message that is not
        // `{"text": …}`) get an answer and the session goes on.
        match err.close_code() {
            None => Event::error(err.to_string()),
            Some(_) => None,
        }
    }
}

/// The page.
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("chat.html"))
}

/// The Prometheus recorder, once installed.
static PROMETHEUS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// Installs the Prometheus recorder for ws-endpoint's metrics (once per process; `main` does it,
/// and the test), with the handler-time histogram turned on.
pub fn install_metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        ws_endpoint::telemetry::set_handler_timing(true);
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// `GET /metrics`: the Prometheus text format (404 when no recorder is installed).
async fn metrics_page() -> HttpResponse {
    match PROMETHEUS.get() {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(handle.render()),
        None => HttpResponse::NotFound().body("metrics are not installed"),
    }
}

/// The chat application: the page at `/`, the endpoint at `/chat/{room}` and `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Each room keeps its last 100 messages of the last 10 minutes, for clients that reconnect.
    Chat::hub().keep_history(History::default());
    cfg.route("/", web::get().to(index))
        .route("/metrics", web::get().to(metrics_page))
        .service(Chat::endpoint());
}

/// With Redis: when another chat server dies, the one server that finds its sessions tells
/// their rooms that they left (the `leave` reaches every server's members through Redis).
#[cfg(feature = "redis")]
pub fn on_lost_members() {
    ws_endpoint::cluster::on_member_lost(|lost| {
        if lost.endpoint != std::any::type_name::<Chat>() {
            return;
        }
        let Some(nick) = lost.member.user else { return };
        for room in lost.member.rooms {
            to_room(
                &room,
                None,
                Event::Leave {
                    room: room.clone(),
                    nick: nick.clone(),
                },
            );
        }
    });
}

/// `--redis URL` (or `CHAT_REDIS`): the Redis server through which several chat servers share
/// their rooms.
fn redis_url() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--redis")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("CHAT_REDIS").ok())
}

#[allow(dead_code)] // the integration test includes this file as a module
#[actix_web::main]
pub async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    install_metrics();
    let addr = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .or_else(|| std::env::var("CHAT_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    if let Some(url) = redis_url() {
        #[cfg(feature = "redis")]
        {
            on_lost_members();
            ws_endpoint::cluster::connect_redis(&url)
                .await
                .map_err(std::io::Error::other)?;
            println!("chat: sharing rooms through {url}");
        }
        #[cfg(not(feature = "redis"))]
        {
            eprintln!("chat: --redis {url} needs `cargo run --features redis --example chat`");
            std::process::exit(2);
        }
    }
    let server = HttpServer::new(|| App::new().configure(configure))
        .with_ws_defaults()
        .bind(&addr)?;
    for bound in server.addrs() {
        println!("chat: open http://{bound}/ in a browser");
    }
    server.run().await
}
