//! The JSR 356 `HttpSession` counterpart: an actix-session cookie read during the handshake.
//!
//! ```text
//! cargo run --example http_session      # then open http://127.0.0.1:8080/
//! ```
//!
//! `POST /login` (a form with a `name`) stores the name in actix-session's signed cookie. The
//! WebSocket endpoint at `/ws` takes `actix_session::Session` as an extractor of its
//! `#[on_handshake]` hook (JSR 356 `Configurator.modifyHandshake`), refuses the upgrade with 401
//! when nobody is logged in, and hands the name to the session as a property, which the
//! constructor-style `on_open` reads: the same path as Java's `HttpSession` →
//! `getUserProperties()` → `@OnOpen`. (`actix_session::Session` is written with its crate path,
//! or renamed, so that it is not taken for ws-endpoint's `Session`.)
//!
//! Java:
//!
//! ```text
//! public void modifyHandshake(ServerEndpointConfig c, HandshakeRequest req, …) {
//!     HttpSession http = (HttpSession) req.getHttpSession();
//!     c.getUserProperties().put("user", http.getAttribute("user"));
//! }
//! @OnOpen public void open(Session s, EndpointConfig c) { user = (String) c.getUserProperties().get("user"); }
//! ```

use actix_session::{storage::CookieSessionStore, SessionMiddleware};
use actix_web::{cookie::Key, http::header, HttpResponse};
use serde::Deserialize;
use ws_endpoint::prelude::*;

/// Who is logged in, as stored in the HTTP session.
#[derive(Clone, Debug)]
struct User(String);

/// One WebSocket connection of a logged-in user.
struct Greeter {
    user: User,
}

#[server_endpoint("/ws", max_message_size = 4096)]
impl Greeter {
    /// Before the 101: the HTTP session must name a user, else the upgrade is refused with 401;
    /// the user becomes a property of the WebSocket session.
    ///
    /// Read it here, not in `on_open`: `on_open` runs after the 101 has gone back through
    /// actix-session's middleware, which takes the session's state out of the request then
    /// (to write the cookie), so an `actix_session::Session` read later finds it empty.
    #[on_handshake]
    fn handshake(http: actix_session::Session, hs: &mut Handshake) -> Result<(), actix_web::Error> {
        let name = http
            .get::<String>("user")
            .map_err(actix_web::error::ErrorInternalServerError)?
            .ok_or_else(|| actix_web::error::ErrorUnauthorized("log in first: POST /login"))?;
        hs.set_property(User(name));
        Ok(())
    }

    #[on_open]
    async fn open(session: &Session) -> Self {
        let user = session
            .property::<User>()
            .expect("set by the handshake hook");
        let _ = session.text(format!("hello {}", user.0)).await;
        Greeter { user }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        format!("{}: {msg}", self.user.0)
    }
}

#[derive(Deserialize)]
struct Login {
    name: String,
}

async fn login(session: actix_session::Session, form: web::Form<Login>) -> HttpResponse {
    let name = form.name.trim();
    if name.is_empty() || name.len() > 32 {
        return HttpResponse::BadRequest().body("a name of 1 to 32 bytes");
    }
    if let Err(err) = session.insert("user", name) {
        return HttpResponse::InternalServerError().body(err.to_string());
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

async fn index(session: actix_session::Session) -> HttpResponse {
    let user = session.get::<String>("user").ok().flatten();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page(user.as_deref()))
}

fn page(user: Option<&str>) -> String {
    let body = match user {
        None => r#"<form method="post" action="/login"><input name="name" placeholder="your name" autofocus> <button>Log in</button></form>"#.to_owned(),
        Some(_) => r#"<p id="log"></p><input id="msg" placeholder="say something" autofocus>
<script>
const log = document.getElementById('log');
const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
ws.onmessage = (e) => { log.textContent += e.data + '\n'; };
ws.onclose = (e) => { log.textContent += `closed ${e.code}\n`; };
document.getElementById('msg').onkeydown = (e) => {
  if (e.key === 'Enter') { ws.send(e.target.value); e.target.value = ''; }
};
</script>"#
            .to_owned(),
    };
    format!("<!doctype html><meta charset=utf-8><title>HttpSession</title><style>#log{{white-space:pre}}</style>{body}")
}

/// The routes, behind actix-session's cookie middleware with `key` (also used by
/// `tests/http_session_example.rs`).
pub fn app(
    key: Key,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(
            SessionMiddleware::builder(CookieSessionStore::default(), key)
                // The example serves plain http on 127.0.0.1; behind TLS keep the default.
                .cookie_secure(false)
                .build(),
        )
        .route("/", web::get().to(index))
        .route("/login", web::post().to(login))
        .service(Greeter::endpoint())
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
        .or_else(|| std::env::var("SESSION_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    // One key for all workers (a real deployment loads it from its secrets).
    let key = Key::generate();
    let server = HttpServer::new(move || app(key.clone()))
        .with_ws_defaults()
        .bind(&addr)?;
    tracing::info!("open http://{addr}/");
    server.run().await
}
