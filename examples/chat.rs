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
//! Rooms are the endpoint's [`Hub`] rooms: a session joins the room of its path and leaves it
//! when it closes; events go out with `Chat::hub().to_room(…)`, which never waits on a slow
//! member.
//!
//! Several chat servers share their rooms through Redis (cargo feature `redis`):
//!
//! ```text
//! cargo run --features redis --example chat -- 127.0.0.1:8080 --redis redis://127.0.0.1/
//! cargo run --features redis --example chat -- 127.0.0.1:8081 --redis redis://127.0.0.1/
//! ```
//!
//! A message sent on either server reaches the room's members on both; the `members` lists
//! name the members connected to the server that sends the event.

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use ws_endpoint::prelude::*;

/// Longest nickname kept, in characters.
const MAX_NICK_CHARS: usize = 32;

/// A session's nickname, kept as a session property.
#[derive(Debug, Clone)]
struct Nick(String);

/// The sorted nicknames of `room`'s members (on this server).
fn members(room: &str) -> Vec<String> {
    let mut nicks: Vec<String> = Chat::hub()
        .room_members(room)
        .iter()
        .filter_map(|s| s.property::<Nick>().map(|n| n.0))
        .collect();
    nicks.sort();
    nicks
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

/// One chat connection, built by its `on_open`.
struct Chat {
    room: String,
    nick: String,
}

#[server_endpoint("/chat/{room}", max_message_size = 4096)]
impl Chat {
    #[on_open]
    async fn open(
        session: &Session,
        #[path_param] room: String,
        query: web::Query<Params>,
    ) -> Self {
        let nick = query
            .nick
            .as_deref()
            .and_then(clean_nick)
            .unwrap_or_else(|| format!("guest-{}", session.id()));
        tracing::info!(session = %session.id(), %room, %nick, "join");
        session.set_property(Nick(nick.clone()));
        session.join(&room);
        let members = members(&room);
        let _ = session
            .json(&Event::Welcome {
                room: room.clone(),
                nick: nick.clone(),
                members: members.clone(),
            })
            .await;
        to_room(
            &room,
            Some(session),
            Event::Join {
                room: room.clone(),
                nick: nick.clone(),
                members,
            },
        );
        Chat { room, nick }
    }

    #[on_message]
    fn text(&mut self, session: &Session, Json(msg): Json<Incoming>) -> Option<Json<Event>> {
        if let Some(arg) = msg.text.strip_prefix("/nick") {
            if !arg.is_empty() && !arg.starts_with(char::is_whitespace) {
                return Event::error(format!("unknown command: {}", msg.text));
            }
            let Some(nick) = clean_nick(arg) else {
                return Event::error("usage: /nick <new nickname>");
            };
            session.set_property(Nick(nick.clone()));
            let old = std::mem::replace(&mut self.nick, nick.clone());
            tracing::info!(session = %session.id(), room = %self.room, %old, %nick, "nick");
            let event = Event::Nick {
                room: self.room.clone(),
                from: old,
                to: nick,
                members: members(&self.room),
            };
            to_room(&self.room, None, event);
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
        to_room(&self.room, None, event);
        None
    }

    #[on_close]
    fn close(&mut self, session: &Session, reason: CloseReason) {
        tracing::info!(session = %session.id(), room = %self.room, nick = %self.nick, %reason, "leave");
        session.leave(&self.room);
        let event = Event::Leave {
            room: self.room.clone(),
            nick: std::mem::take(&mut self.nick),
            members: members(&self.room),
        };
        to_room(&std::mem::take(&mut self.room), None, event);
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

/// The chat application: the page at `/` and the endpoint at `/chat/{room}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .service(Chat::endpoint());
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
    let addr = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with("--"))
        .or_else(|| std::env::var("CHAT_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    if let Some(url) = redis_url() {
        #[cfg(feature = "redis")]
        {
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
