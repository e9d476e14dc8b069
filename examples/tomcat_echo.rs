//! Tomcat's annotated echo examples, ported: `EchoAnnotation` at `/websocket/echoAnnotation`
//! and `EchoStreamAnnotation` at `/websocket/echoStreamAnnotation`.
//!
//! ```text
//! cargo run --example tomcat_echo                       # ws://127.0.0.1:8080/websocket/echoAnnotation
//! cargo run --example tomcat_echo -- 127.0.0.1:9000     # or: TOMCAT_ECHO_ADDR=0.0.0.0:8080
//! websocat ws://127.0.0.1:8080/websocket/echoAnnotation
//! ```
//!
//! The originals are `websocket.echo.EchoAnnotation` and `websocket.echo.EchoStreamAnnotation`
//! in Tomcat's `webapps/examples/WEB-INF/classes/`. Both echo every text and binary message and
//! ignore pongs; Tomcat points the Autobahn test suite at them, as we do with `examples/echo.rs`.
//!
//! # Side by side
//!
//! ```text
//! @ServerEndpoint("/websocket/echoAnnotation")        #[server_endpoint("/websocket/echoAnnotation", …)]
//! public class EchoAnnotation {                       impl EchoAnnotation {
//!   @OnMessage                                          #[on_message]
//!   public void echoTextMessage(Session session,        async fn echo_text_message(&mut self,
//!       String msg, boolean last) {                         session: &Session, msg: String) {
//!     try {                                                 if session.is_open()
//!       if (session.isOpen())                                   && session.text(msg).await.is_err()
//!         session.getBasicRemote()                          {
//!                .sendText(msg, last);                          let _ = session.close(…).await;
//!     } catch (IOException ioe) {                           }
//!       try { session.close(); } catch (…) {}           }
//!     }
//!   }
//!   @OnMessage                                          #[on_message]
//!   public void echoBinaryMessage(Session session,      async fn echo_binary_message(&mut self,
//!       ByteBuffer bb, boolean last) { … }                  session: &Session, bb: Bytes) { … }
//!   @OnMessage                                          #[on_message]
//!   public void echoPongMessage(PongMessage pm) {}      fn echo_pong_message(&mut self, _pm: Pong) {}
//! }                                                   }
//! ```
//!
//! # Differences from the Java originals
//!
//! * **Partial messages.** The Java handlers take `(String msg, boolean last)` / `(ByteBuffer
//!   bb, boolean last)` and echo each part as it comes (`sendText(msg, last)`); the stream variant
//!   writes the parts to `getSendWriter()` / `getSendStream()`. ws-endpoint has no partial-message
//!   handlers: the runtime reassembles the fragments, validates the UTF-8 of the whole text, and
//!   calls the handler once with the whole message. So a message sent in three fragments comes
//!   back as one unfragmented message. Every client sees the same message either way (RFC 6455
//!   fragmentation is not part of a message's meaning), but the message must fit in memory:
//!   both endpoints here take up to 16 MiB per message (the limit of `examples/echo.rs`), a
//!   larger one is closed with 1009. Tomcat, streaming the parts, has no limit for these two.
//! * **Stream variant.** `EchoStreamAnnotation`'s `Writer` / `OutputStream` has no counterpart
//!   (and needs none for whole messages): its port returns the message, which the runtime sends
//!   back, as JSR 356 does with a non-void `@OnMessage`.
//! * **`EchoAsyncAnnotation`** (`getAsyncRemote()`, disabled in Tomcat's examples) is the same
//!   echo again: every ws-endpoint send is asynchronous, so it would be `EchoStreamAnnotation`
//!   once more, and is left out; so is the programmatic `EchoEndpoint` (`extends Endpoint`),
//!   which has no counterpart (endpoints are always declared with the attributes).
//! * **Heartbeat off**, as in `examples/echo.rs`: Tomcat sends no pings, and a fuzzing client
//!   need not answer them. Pongs the peer sends are ignored, as in Tomcat (`echoPongMessage` is
//!   a no-op there too); pings are answered with a pong by the runtime, as by Tomcat.

use ws_endpoint::prelude::*;

/// Port of `EchoAnnotation`: the Java method by method.
#[derive(Default)]
pub struct EchoAnnotation;

#[server_endpoint(
    "/websocket/echoAnnotation",
    max_message_size = "16MiB",
    heartbeat = false
)]
impl EchoAnnotation {
    /// Echoes a text message. The Java one gets the message in parts (`boolean last`); this
    /// one gets it whole (see the module notes).
    #[on_message]
    async fn echo_text_message(&mut self, session: &Session, msg: String) {
        if session.is_open() && session.text(msg).await.is_err() {
            // Tomcat closes the session on an IOException. A failed send here means the
            // session is already closed (or the peer stopped reading and was dropped), so this
            // close is a no-op kept for the side-by-side.
            let _ = session.close(CloseReason::normal()).await;
        }
    }

    /// Echoes a binary message, whole.
    #[on_message]
    async fn echo_binary_message(&mut self, session: &Session, bb: Bytes) {
        if session.is_open() && session.binary(bb).await.is_err() {
            let _ = session.close(CloseReason::normal()).await;
        }
    }

    /// Process a received pong. This is a no-op, as in Tomcat.
    #[on_message]
    fn echo_pong_message(&mut self, _pm: Pong) {}
}

/// Port of `EchoStreamAnnotation`, the idiomatic way: the returned message is sent back.
#[derive(Default)]
pub struct EchoStreamAnnotation;

#[server_endpoint(
    "/websocket/echoStreamAnnotation",
    max_message_size = "16MiB",
    heartbeat = false
)]
impl EchoStreamAnnotation {
    #[on_message]
    fn echo_text_message(&mut self, msg: String) -> String {
        msg
    }

    #[on_message]
    fn echo_binary_message(&mut self, msg: Bytes) -> Bytes {
        msg
    }

    #[on_message]
    fn echo_pong_message(&mut self, _pm: Pong) {}
}

/// Registers both echo endpoints (also used by `tests/tomcat_examples.rs`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(EchoAnnotation::endpoint())
        .service(EchoStreamAnnotation::endpoint());
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
        .or_else(|| std::env::var("TOMCAT_ECHO_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let server = HttpServer::new(|| App::new().configure(configure))
        .with_ws_defaults()
        .bind(&addr)?;
    for bound in server.addrs() {
        println!("tomcat_echo: ws://{bound}/websocket/echoAnnotation");
        println!("tomcat_echo: ws://{bound}/websocket/echoStreamAnnotation");
    }
    server.run().await
}
