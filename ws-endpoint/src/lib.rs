//! # ws-endpoint
//!
//! Declare actix-web WebSocket endpoints the way Jakarta WebSocket (JSR 356) does with
//! `@ServerEndpoint`: put [`#[server_endpoint]`](server_endpoint) on an impl, mark its handlers
//! with [`#[on_open]`](on_open), [`#[on_message]`](on_message), [`#[on_close]`](on_close) and
//! [`#[on_error]`](on_error) (and [`#[on_handshake]`](on_handshake) to shape or refuse the
//! handshake), and serve it with `App::new().service(MyEndpoint::endpoint())`. The receive loop,
//! message limits, close handshake, idle timeout and heartbeat are done for you, with the close
//! codes of RFC 6455.
//!
//! ```no_run
//! use ws_endpoint::prelude::*;
//!
//! struct Echo {
//!     name: String,
//! }
//!
//! #[server_endpoint("/echo/{name}", max_message_size = 65536)]
//! impl Echo {
//!     /// Builds the instance for a new connection (no receiver, returns `Self`).
//!     #[on_open]
//!     async fn open(session: &Session, #[path_param] name: String) -> Self {
//!         let _ = session.text(format!("hello {name}")).await;
//!         Echo { name }
//!     }
//!
//!     #[on_message]
//!     async fn text(&mut self, msg: String) -> String {
//!         msg // the returned value is sent back
//!     }
//!
//!     #[on_close]
//!     fn close(&mut self, reason: CloseReason) {
//!         tracing::info!(name = %self.name, %reason, "closed");
//!     }
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     HttpServer::new(|| App::new().service(Echo::endpoint()))
//!         .with_ws_defaults()
//!         .bind(("127.0.0.1", 8080))?
//!         .run()
//!         .await
//! }
//! ```
//!
//! One endpoint instance is created per connection; its handlers never run concurrently and see
//! messages in arrival order.
//!
//! The client half: [`#[client_endpoint]`](client_endpoint) on an impl with the same handlers,
//! connected with `MyClient::connect("ws://…")` (see [`client`]).
//!
//! **Where to look**: [`server_endpoint`] has the attribute reference, the handler-parameter
//! table and the return types; [`Session`] what a handler can do with its connection (send,
//! close, properties, rooms, per-session limits); [`Hub`] broadcasts and rooms; [`history`]
//! room histories and the replay of missed messages;
//! [`EndpointService`] the runtime overrides of every attribute; [`WsServerExt`] the server
//! settings; [`codec`] your own payload formats. The README has the install block, deployment
//! (TLS, reverse proxies), blocking work, and the JSR 356 name map.
//!
//! Warnings (an error no `on_error` handles, a refused handshake) are logged through
//! [`tracing`](https://docs.rs/tracing): install a subscriber (e.g. `tracing_subscriber::fmt()
//! .init()`) or they are invisible.
//!
#![doc = include_str!("docs/behaviour.md")]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admission;
pub mod client;
mod close;
#[cfg(feature = "redis")]
pub mod cluster;
pub mod codec;
mod config;
mod connection;
mod drive;
mod endpoint;
mod error;
#[doc(hidden)]
pub mod handler;
mod handshake;
pub mod history;
pub mod hub;
mod incoming;
mod message;
mod proxy;
mod registry;
mod server;
mod service;
mod session;
pub mod telemetry;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod test;
pub mod wire;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private_0_1;

pub use crate::{
    close::{CloseCode, CloseReason},
    config::{
        Compression, EndpointConfig, Rate, SlowConsumer, DEFAULT_MAX_BUFFERED,
        DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PING_INTERVAL, DEFAULT_PONG_TIMEOUT,
        DEFAULT_SEND_TIMEOUT,
    },
    error::{EndpointError, MessageKind, SendError},
    handshake::Handshake,
    hub::{ClusterSessionId, Delivery, Hub, Member, PresenceError, RoomFull},
    incoming::{BinaryStream, TextStream},
    message::{HandlerReturn, Json, Message, MessagePayload, Pong, Sendable},
    proxy::set_trusted_proxies,
    registry::{all_open_sessions, node_id, open_session_count, shutdown},
    server::{on_connect, shutdown_on_signal, WsServerExt, CLOSE_LINGER},
    service::EndpointService,
    session::{
        buffered_total, max_buffered_total, set_max_buffered_total, BinaryWriter, Session,
        SessionId, TextWriter, DEFAULT_MAX_BUFFERED_TOTAL,
    },
};
pub use bytes::Bytes;
pub use ws_endpoint_macros::{on_close, on_error, on_handshake, on_message, on_open, path_param};

#[doc(inline)]
#[doc = include_str!("docs/server_endpoint.md")]
pub use ws_endpoint_macros::server_endpoint;

#[doc(inline)]
#[doc = include_str!("docs/client_endpoint.md")]
pub use ws_endpoint_macros::client_endpoint;

/// The common imports: the attributes, [`Session`], [`CloseReason`], [`Json`], [`Bytes`],
/// and actix-web's `web`, `App` and `HttpServer`.
pub mod prelude {
    pub use crate::{
        client_endpoint, on_close, on_error, on_handshake, on_message, on_open, path_param,
        server_endpoint, Bytes, CloseCode, CloseReason, EndpointError, Handshake, Hub, Json, Pong,
        Session, WsServerExt,
    };
    pub use actix_web::{web, App, HttpRequest, HttpServer};
}

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
