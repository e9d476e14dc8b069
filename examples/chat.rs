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
//! * server → the rest of the room: `{"kind":"join","room":"lobby","nick":"bob","members":[…]}`
//!   and, when someone leaves, `{"kind":"leave","room":"lobby","nick":"bob","members":["ada"]}`.
//! * server → everyone in the room, the sender included:
//!   `{"kind":"message","room":"lobby","from":"ada","text":"hello"}` and
//!   `{"kind":"nick","room":"lobby","from":"ada","to":"grace","members":["bob","grace"]}`.
//! * server → the sender alone, when a message is not understood:
//!   `{"kind":"error","error":"…"}`; the session stays open.
//!
//! The nickname comes from the query string (`?nick=ada`), else it is `guest-<session id>`.
//! Rooms live in memory, in one [`Rooms`] registry shared by all workers through `web::Data`.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use ws_endpoint::{prelude::*, SessionId};

/// Longest nickname kept, in characters.
const MAX_NICK_CHARS: usize = 32;

/// Who is in which room: room name → session id → (nickname, session).
///
/// The lock is only held to read or update the map, never across an `.await`: a broadcast
/// clones the sessions out first, then sends.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Members>>,
}

/// One room: session id → (nickname, session).
type Members = HashMap<SessionId, (String, Session)>;

/// The sessions of a room to send to, and its sorted nicknames.
type Snapshot = (Vec<Session>, Vec<String>);

impl Rooms {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Members>> {
        // The critical sections cannot leave the map half-updated, so a poisoned lock is fine.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot(members: Option<&Members>) -> Snapshot {
        let Some(members) = members else {
            return (Vec::new(), Vec::new());
        };
        let sessions = members.values().map(|(_, s)| s.clone()).collect();
        let mut nicks: Vec<String> = members.values().map(|(n, _)| n.clone()).collect();
        nicks.sort();
        (sessions, nicks)
    }

    /// Adds `session` to `room` as `nick`; the sessions returned are the others.
    fn join(&self, room: &str, nick: &str, session: &Session) -> Snapshot {
        let mut rooms = self.lock();
        let members = rooms.entry(room.to_owned()).or_default();
        members.insert(session.id(), (nick.to_owned(), session.clone()));
        let (mut sessions, nicks) = Self::snapshot(Some(members));
        sessions.retain(|s| s.id() != session.id());
        (sessions, nicks)
    }

    /// Removes session `id` from `room` (and the room, once empty).
    fn leave(&self, room: &str, id: SessionId) -> Snapshot {
        let mut rooms = self.lock();
        let Some(members) = rooms.get_mut(room) else {
            return (Vec::new(), Vec::new());
        };
        members.remove(&id);
        if members.is_empty() {
            rooms.remove(room);
            return (Vec::new(), Vec::new());
        }
        Self::snapshot(Some(members))
    }

    /// Renames session `id` in `room`.
    fn rename(&self, room: &str, id: SessionId, nick: &str) -> Snapshot {
        let mut rooms = self.lock();
        let Some(members) = rooms.get_mut(room) else {
            return (Vec::new(), Vec::new());
        };
        if let Some((old, _)) = members.get_mut(&id) {
            nick.clone_into(old);
        }
        Self::snapshot(Some(members))
    }

    /// The sessions in `room` now.
    fn sessions(&self, room: &str) -> Vec<Session> {
        self.lock()
            .get(room)
            .map(|members| members.values().map(|(_, s)| s.clone()).collect())
            .unwrap_or_default()
    }
}

/// What the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// To a newcomer: you are `nick` in `room`, with `members`.
    Welcome {
        room: String,
        nick: String,
        members: Vec<String>,
    },
    /// `nick` entered the room.
    Join {
        room: String,
        nick: String,
        members: Vec<String>,
    },
    /// `nick` left the room.
    Leave {
        room: String,
        nick: String,
        members: Vec<String>,
    },
    /// A chat message.
    Message {
        room: String,
        from: String,
        text: String,
    },
    /// `from` is now called `to`.
    Nick {
        room: String,
        from: String,
        to: String,
        members: Vec<String>,
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
}

/// Sends `event` to each of `sessions`, one after the other (so every member sees the room's
/// events in the same order). A member that left meanwhile is skipped.
async fn broadcast(sessions: Vec<Session>, event: &Event) {
    let text = match serde_json::to_string(event) {
        Ok(text) => text,
        Err(err) => return tracing::error!(%err, "could not encode an event"),
    };
    for session in sessions {
        let _ = session.text(text.clone()).await;
    }
}

/// A usable nickname from user input: trimmed, no control characters, at most
/// [`MAX_NICK_CHARS`]; `None` if nothing is left.
fn clean_nick(raw: &str) -> Option<String> {
    let nick: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_NICK_CHARS)
        .collect();
    let nick = nick.trim_end().to_owned();
    (!nick.is_empty()).then_some(nick)
}

/// One chat connection.
#[derive(Default)]
struct Chat {
    rooms: Option<web::Data<Rooms>>,
    room: String,
    nick: String,
}

#[server_endpoint("/chat/{room}", max_message_size = 4096)]
impl Chat {
    #[on_open]
    async fn open(
        &mut self,
        session: &Session,
        #[path_param] room: String,
        rooms: web::Data<Rooms>,
        query: web::Query<Params>,
    ) {
        let nick = query
            .nick
            .as_deref()
            .and_then(clean_nick)
            .unwrap_or_else(|| format!("guest-{}", session.id()));
        tracing::info!(session = %session.id(), %room, %nick, "join");
        let (others, members) = rooms.join(&room, &nick, session);
        let welcome = Event::Welcome {
            room: room.clone(),
            nick: nick.clone(),
            members: members.clone(),
        };
        let join = Event::Join {
            room: room.clone(),
            nick: nick.clone(),
            members,
        };
        self.rooms = Some(rooms);
        self.room = room;
        self.nick = nick;
        let _ = session.json(&welcome).await;
        broadcast(others, &join).await;
    }

    #[on_message]
    async fn text(&mut self, session: &Session, Json(msg): Json<Incoming>) -> Option<Json<Event>> {
        let rooms = self.rooms.clone()?;
        if let Some(arg) = msg.text.strip_prefix("/nick") {
            if !arg.is_empty() && !arg.starts_with(char::is_whitespace) {
                return Event::error(format!("unknown command: {}", msg.text));
            }
            let Some(nick) = clean_nick(arg) else {
                return Event::error("usage: /nick <new nickname>");
            };
            let (sessions, members) = rooms.rename(&self.room, session.id(), &nick);
            let old = std::mem::replace(&mut self.nick, nick.clone());
            tracing::info!(session = %session.id(), room = %self.room, %old, %nick, "nick");
            let event = Event::Nick {
                room: self.room.clone(),
                from: old,
                to: nick,
                members,
            };
            broadcast(sessions, &event).await;
            return None;
        }
        let text = msg.text.trim();
        if text.is_empty() {
            return Event::error("empty message");
        }
        let event = Event::Message {
            room: self.room.clone(),
            from: self.nick.clone(),
            text: text.to_owned(),
        };
        broadcast(rooms.sessions(&self.room), &event).await;
        None
    }

    #[on_close]
    async fn close(&mut self, session: &Session, reason: CloseReason) {
        let Some(rooms) = self.rooms.take() else {
            return;
        };
        tracing::info!(session = %session.id(), room = %self.room, nick = %self.nick, %reason, "leave");
        let (sessions, members) = rooms.leave(&self.room, session.id());
        let event = Event::Leave {
            room: std::mem::take(&mut self.room),
            nick: std::mem::take(&mut self.nick),
            members,
        };
        broadcast(sessions, &event).await;
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

/// The chat application: the page at `/`, the endpoint at `/chat/{room}`, sharing `rooms`.
///
/// Create `rooms` once, outside `HttpServer::new`, whose closure runs once per worker: each
/// worker would have its own rooms otherwise.
pub fn configure(
    rooms: web::Data<Rooms>,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |cfg| {
        cfg.app_data(rooms.clone())
            .route("/", web::get().to(index))
            .service(Chat::endpoint());
    }
}

#[allow(dead_code)] // the integration test includes this file as a module
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("CHAT_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let rooms = web::Data::new(Rooms::default());
    let server = HttpServer::new(move || App::new().configure(configure(rooms.clone())))
        .with_ws_defaults()
        .bind(&addr)?;
    for bound in server.addrs() {
        println!("chat: open http://{bound}/ in a browser");
    }
    server.run().await
}
