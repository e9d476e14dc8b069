//! Tomcat's annotated chat example, ported: `ChatAnnotation` at `/websocket/chat`, and a page at
//! `/` to try it in a browser.
//!
//! ```text
//! cargo run --example tomcat_chat                       # then open http://127.0.0.1:8080/
//! cargo run --example tomcat_chat -- 127.0.0.1:9000     # or: TOMCAT_CHAT_ADDR=0.0.0.0:8080
//! websocat ws://127.0.0.1:8080/websocket/chat
//! ```
//!
//! The original is `websocket.chat.ChatAnnotation` in Tomcat's
//! `webapps/examples/WEB-INF/classes/`, with `util.HTMLFilter`. The protocol is plain text:
//!
//! * each connection is named `Guest0`, `Guest1`, … from one process-wide counter;
//! * on open, everyone (the newcomer included) gets `* Guest0 has joined.`;
//! * a message `hello` from Guest0 goes to everyone as `Guest0: hello`, with `&`, `<`, `>` and
//!   `"` escaped as HTML (Tomcat's page shows messages with `innerHTML`, so the server escapes);
//! * on close, everyone left gets `* Guest0 has disconnected.`.
//!
//! # Side by side
//!
//! ```text
//! @ServerEndpoint("/websocket/chat")                  #[server_endpoint("/websocket/chat", …)]
//! public class ChatAnnotation {                       impl ChatAnnotation {
//!   static AtomicInteger connectionIds;                 (static CONNECTION_IDS: AtomicUsize)
//!   static Set<ChatAnnotation> connections;             (session.open_sessions())
//!   @OnOpen                                             #[on_open]
//!   public void start(Session session) {                fn start(session: &Session) -> Self {
//!     this.session = session;                             let nickname = format!("{GUEST_PREFIX}{}", …);
//!     connections.add(this);                              session.set_property(Nickname(…));
//!     broadcast(String.format("* %s %s",                  broadcast(session,
//!         nickname, "has joined."));                          &format!("* {} has joined.", …));
//!   }                                                     ChatAnnotation { nickname }
//!                                                       }
//!   @OnClose                                            #[on_close]
//!   public void end() {                                 fn end(&mut self, session: &Session) {
//!     connections.remove(this);                           broadcast(session,
//!     broadcast(… "has disconnected.");                      &format!("* {} has disconnected.", …));
//!   }                                                   }
//!   @OnMessage                                          #[on_message]
//!   public void incoming(String message) {              fn incoming(&mut self, session: &Session,
//!     broadcast(String.format("%s: %s", nickname,           message: String) {
//!         HTMLFilter.filter(message)));                   broadcast(session, &format!("{}: {}", …,
//!   }                                                         html_filter(&message)));
//!   @OnError                                            #[on_error]
//!   public void onError(Throwable t) {                  fn on_error(&mut self, t: EndpointError) {
//!     log.error("Chat Error: " + t, t);                   tracing::error!("Chat Error: {t}");
//!   }                                                   }
//!   private void sendMessage(String msg) {              fn send_message(client: &Session, msg: &str) {
//!     // backlog of 10 while a send is in progress;         // the backlog is the client's outbound
//!     // beyond it, skip and count                          // queue; when full: skip and count
//!     … "Skipped [" + n + "] messages due to slow client"   … the same notice, once it has room
//!   }                                                   }
//! }                                                   }
//! ```
//!
//! # Differences from the Java original
//!
//! * **Who is connected.** Java keeps a static `CopyOnWriteArraySet<ChatAnnotation>`; here the
//!   runtime's `session.open_sessions()` (JSR 356 `getOpenSessions()`) is that set: the open
//!   sessions of this endpoint in this process, taken as a snapshot before each broadcast. The
//!   nickname is kept as a session property (`getUserProperties()`) for the log line of a failed
//!   send. Broadcasts go in session-id order (joining order), like Java's insertion order.
//! * **A slow client.** Tomcat 10.1 sends to each client in turn; while a send to a client is in
//!   progress, further messages for it wait in a backlog of 10, and beyond that they are skipped
//!   and counted, and the client later gets `Skipped [N] messages due to slow client`. Here the
//!   backlog is the client's outbound queue (`max_buffered`, 256 KiB: a few hundred lines, where
//!   Tomcat's is 10 messages of any size); `send_message` queues with `Session::try_send`, which
//!   never waits, and a message that does not fit is skipped and counted, with the same notice
//!   once the client has room again. So one client that stops reading delays nobody, as in
//!   Tomcat 10.1 (the Tomcat 9 version of this example waited on each client in turn).
//! * **A send that fails.** Tomcat catches the `IOException`, removes and closes that client,
//!   broadcasts `* GuestN has been disconnected.`, and goes on; its `@OnClose` then also
//!   broadcasts `* GuestN has disconnected.`, so the others see two notices for one departure.
//!   Here a send fails only once the session is closed (a peer that stops reading for good is
//!   dropped by the heartbeat: no pong, 1006), and its `on_close`, which runs exactly once per
//!   session, sends the single `* GuestN has disconnected.` notice. Sessions already closing
//!   are skipped.
//! * **Message size.** Tomcat buffers a whole text message in 8192 characters by default and
//!   closes with 1009 beyond that; this endpoint sets `max_message_size = 8192` (bytes, the
//!   runtime counts UTF-8 bytes), also closed with 1009 (and `on_error` is called first, which
//!   Tomcat does not do).
//! * **A binary message**, for which neither endpoint has a handler, closes the session with
//!   1003 here; Tomcat drops it.
//! * **Heartbeat.** The runtime pings every 30 s and drops a peer that does not answer in 10 s
//!   (browsers and client libraries answer by themselves); Tomcat sends no pings, so a vanished
//!   client stays in its set until a send to it fails.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::HttpResponse;
use ws_endpoint::{prelude::*, SendError};

const GUEST_PREFIX: &str = "Guest";

/// Nickname numbers, process-wide (Java's `static AtomicInteger connectionIds`).
static CONNECTION_IDS: AtomicUsize = AtomicUsize::new(0);

/// A session's nickname, as a session property.
#[derive(Clone)]
struct Nickname(String);

/// One chat connection.
pub struct ChatAnnotation {
    nickname: String,
}

#[server_endpoint("/websocket/chat", max_message_size = 8192)]
impl ChatAnnotation {
    /// Java names the guest in its constructor and announces it in `@OnOpen`; the
    /// constructor-style `on_open` does both, right after the handshake.
    #[on_open]
    fn start(session: &Session) -> Self {
        let nickname = format!(
            "{GUEST_PREFIX}{}",
            CONNECTION_IDS.fetch_add(1, Ordering::Relaxed)
        );
        session.set_property(Nickname(nickname.clone()));
        session.set_property(Skipped(0));
        broadcast(session, &format!("* {} {}", nickname, "has joined."));
        ChatAnnotation { nickname }
    }

    #[on_close]
    fn end(&mut self, session: &Session) {
        // This session is no longer open, so the broadcast skips it (Java removes it from the
        // set first).
        broadcast(
            session,
            &format!("* {} {}", self.nickname, "has disconnected."),
        );
    }

    #[on_message]
    fn incoming(&mut self, session: &Session, message: String) {
        // Never trust the client
        let filtered = format!("{}: {}", self.nickname, html_filter(&message));
        broadcast(session, &filtered);
    }

    #[on_error]
    fn on_error(&mut self, t: EndpointError) {
        tracing::error!("Chat Error: {t}");
    }
}

/// Messages a slow client missed since it last had room (Java's `skippedMessageCount`).
#[derive(Clone, Copy, Default)]
struct Skipped(u64);

/// Sends `msg` to every open session of the chat endpoint (`session`'s endpoint), in joining
/// order, and never waits (Java's `broadcast` + `sendMessage`): each client's backlog is its
/// outbound queue (`max_buffered` bytes), so one client that stops reading delays nobody.
fn broadcast(session: &Session, msg: &str) {
    let mut clients = session.open_sessions();
    clients.sort_by_key(Session::id);
    for client in clients {
        if client.is_open() {
            // A closing client is skipped: its own `on_close` announces it.
            send_message(&client, msg);
        }
    }
}

/// Tomcat 10.1's `sendMessage`: queued when the client's backlog has room; otherwise skipped
/// and counted, and once the client has room again it first gets
/// `Skipped [N] messages due to slow client`.
fn send_message(client: &Session, msg: &str) {
    // Under the session's property lock, like Java's `synchronized (this)`: broadcasts from
    // several sessions' handlers may reach this client at once, and must not lose a count.
    let failed = client.with_property::<Skipped, _>(|skipped| {
        let Some(skipped) = skipped else {
            return Ok(()); // not announced yet (set in `start`)
        };
        if skipped.0 > 0 {
            let notice = format!("Skipped [{}] messages due to slow client", skipped.0);
            if client.try_send(notice).is_err() {
                skipped.0 += 1;
                return Ok(());
            }
            skipped.0 = 0;
        }
        match client.try_send(msg.to_owned()) {
            Ok(()) => Ok(()),
            Err(SendError::Full) => {
                skipped.0 = 1;
                Ok(())
            }
            Err(err) => Err(err),
        }
    });
    if let Err(err) = failed {
        // Closed meanwhile: its `on_close` announces it (Java removes and closes it here).
        let nickname = client
            .property::<Nickname>()
            .map(|n| n.0)
            .unwrap_or_default();
        tracing::debug!(%err, %nickname, "Chat Error: Failed to send message to client");
    }
}

/// Port of Tomcat's `util.HTMLFilter.filter`: escapes the characters that are sensitive in
/// HTML (`<`, `>`, `&`, `"`; not `'`, as in Tomcat).
pub fn html_filter(message: &str) -> String {
    let mut result = String::with_capacity(message.len() + 50);
    for c in message.chars() {
        match c {
            '<' => result.push_str("&lt;"),
            '>' => result.push_str("&gt;"),
            '&' => result.push_str("&amp;"),
            '"' => result.push_str("&quot;"),
            c => result.push(c),
        }
    }
    result
}

/// The page (a port of Tomcat's `websocket/chat.xhtml`).
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("tomcat_chat.html"))
}

/// The page at `/` and the endpoint at `/websocket/chat` (also used by
/// `tests/tomcat_examples.rs`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .service(ChatAnnotation::endpoint());
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
        .or_else(|| std::env::var("TOMCAT_CHAT_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let server = HttpServer::new(|| App::new().configure(configure))
        .with_ws_defaults()
        .bind(&addr)?;
    for bound in server.addrs() {
        println!("tomcat_chat: open http://{bound}/ in a browser (endpoint: ws://{bound}/websocket/chat)");
    }
    server.run().await
}
