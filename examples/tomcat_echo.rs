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
//!       String msg, boolean last) {                         session: &Session, msg: String,
//!     try {                                                 last: bool) {
//!       if (session.isOpen())                               if session.is_open() && session
//!         session.getBasicRemote()                              .send_partial(msg, last)
//!                .sendText(msg, last);                          .await.is_err() {
//!     } catch (IOException ioe) {                             let _ = session.close(…).await;
//!       try { session.close(); } catch (…) {}               }
//!     }                                                   }
//!   }
//!   @OnMessage                                          #[on_message]
//!   public void echoBinaryMessage(Session session,      async fn echo_binary_message(&mut self,
//!       ByteBuffer bb, boolean last) { … }                  session: &Session, bb: Bytes,
//!                                                           last: bool) { … }
//!   @OnMessage                                          #[on_message]
//!   public void echoPongMessage(PongMessage pm) {}      fn echo_pong_message(&mut self, _pm: Pong) {}
//! }                                                   }
//! ```
//!
//! # Differences from the Java originals
//!
//! * **Partial messages, as in Tomcat.** Both endpoints take each message in parts (`msg:
//!   String, last: bool`, one call per frame, a character cut between frames carried over to
//!   the next part) and echo it part for part: `EchoAnnotation` with `session.send_partial(msg,
//!   last)` (Java's `sendText(msg, last)`), `EchoStreamAnnotation` through a `TextWriter` /
//!   `BinaryWriter` kept between parts (Java's `getSendWriter()` / `getSendStream()`), finished
//!   at the last part. A text sent in three fragments comes back as three fragments, and a
//!   message of any size passes through: the 16 MiB limit applies to each part.
//! * **A writer left unfinished** (the session closes mid-message) is dropped with the endpoint:
//!   the session is closing anyway; a writer dropped unfinished on an open session closes it
//!   with 1011.
//! * **`EchoAsyncAnnotation`** (`getAsyncRemote()`, disabled in Tomcat's examples) is the same
//!   echo again: every ws-endpoint send is asynchronous, so it would be `EchoStreamAnnotation`
//!   once more, and is left out; so is the programmatic `EchoEndpoint` (`extends Endpoint`),
//!   which has no counterpart (endpoints are always declared with the attributes).
//! * **Heartbeat off**, as in `examples/echo.rs`: Tomcat sends no pings, and a fuzzing client
//!   need not answer them. Pongs the peer sends are ignored, as in Tomcat (`echoPongMessage` is
//!   a no-op there too); pings are answered with a pong by the runtime, as by Tomcat.

use tokio::io::AsyncWriteExt as _;
use ws_endpoint::{prelude::*, BinaryWriter, SendError, TextWriter};

/// Port of `EchoAnnotation`: the Java method by method. Like Tomcat, it takes each message in
/// parts (`last: bool`) and echoes part for part (`send_partial`, Java's `sendText(msg, last)`):
/// a text sent in three fragments comes back as three fragments, and a message of any size
/// passes through (the limit, 16 MiB, applies to each part).
#[derive(Default)]
pub struct EchoAnnotation;

#[server_endpoint(
    "/websocket/echoAnnotation",
    max_message_size = "16MiB",
    heartbeat = false
)]
impl EchoAnnotation {
    #[on_message]
    async fn echo_text_message(&mut self, session: &Session, msg: String, last: bool) {
        if session.is_open() && session.send_partial(msg, last).await.is_err() {
            // Tomcat closes the session on an IOException. A failed send here means the
            // session is already closed (or the peer stopped reading and was dropped), so this
            // close is a no-op kept for the side-by-side.
            let _ = session.close(CloseReason::normal()).await;
        }
    }

    #[on_message]
    async fn echo_binary_message(&mut self, session: &Session, bb: Bytes, last: bool) {
        if session.is_open() && session.send_partial(bb, last).await.is_err() {
            let _ = session.close(CloseReason::normal()).await;
        }
    }

    /// Process a received pong. This is a no-op, as in Tomcat.
    #[on_message]
    fn echo_pong_message(&mut self, _pm: Pong) {}
}

/// Port of `EchoStreamAnnotation`: each part that comes in is written to the message's writer
/// (Java's `getSendWriter()` / `getSendStream()`), which the last part closes.
#[derive(Default)]
pub struct EchoStreamAnnotation {
    writer: Option<TextWriter>,
    stream: Option<BinaryWriter>,
}

#[server_endpoint(
    "/websocket/echoStreamAnnotation",
    max_message_size = "16MiB",
    heartbeat = false
)]
impl EchoStreamAnnotation {
    #[on_message]
    async fn echo_text_message(
        &mut self,
        session: &Session,
        msg: String,
        last: bool,
    ) -> Result<(), SendError> {
        if self.writer.is_none() {
            self.writer = Some(session.text_writer().await?);
        }
        let writer = self.writer.as_mut().expect("just set");
        writer
            .write_all(msg.as_bytes())
            .await
            .map_err(|_| SendError::Closed)?;
        if last {
            self.writer.take().expect("open").finish().await?;
        }
        Ok(())
    }

    #[on_message]
    async fn echo_binary_message(
        &mut self,
        session: &Session,
        msg: Bytes,
        last: bool,
    ) -> Result<(), SendError> {
        if self.stream.is_none() {
            self.stream = Some(session.binary_writer().await?);
        }
        let stream = self.stream.as_mut().expect("just set");
        stream
            .write_all(&msg)
            .await
            .map_err(|_| SendError::Closed)?;
        if last {
            self.stream.take().expect("open").finish().await?;
        }
        Ok(())
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
