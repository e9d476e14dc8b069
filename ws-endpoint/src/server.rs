//! Server-level settings a WebSocket application wants: a short close linger and a shutdown that
//! closes every session with 1001.

use std::{fmt, time::Duration};

use actix_http::{Request, Response};
use actix_service::IntoServiceFactory;
use actix_web::{
    body::MessageBody,
    dev::{AppConfig, Service, ServiceFactory},
    HttpServer,
};

/// How long a closed connection lingers, reading and discarding, before the server closes the
/// socket: zero, i.e. the server closes TCP as soon as the close frame is flushed, as RFC 6455
/// §7.1.1 asks of a server. (actix-web's default, 1 s, keeps every closed WebSocket open that
/// long; and when a shorter linger expires, actix-http's shutdown makes clients such as the
/// Autobahn testsuite see an unclean close, measured in `scripts/conformance.sh`.)
pub const CLOSE_LINGER: Duration = Duration::ZERO;

/// The `on_connect` hook installed by [`WsServerExt::with_ws_defaults`]: sets `TCP_NODELAY`,
/// records the connection's local address (a connection that arrived at a loopback address
/// accepts only loopback `Host` names unless `allowed_hosts` is set) and the socket's
/// descriptor (no duplicate is made), so that a dead peer that stopped reading can have its
/// connection shut down (see [`WsServerExt::with_ws_defaults`]). Call it
/// from your own `HttpServer::on_connect` hook if you have one.
pub fn on_connect(conn: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        // TLS or Unix-socket connections: a dead peer is dropped by the body's error, which
        // actix-http sees when its write buffer has room; one that stalls with a full buffer
        // stays until the kernel gives up on it (its queue is freed at once).
        return;
    };
    let _ = tcp.set_nodelay(true);
    if let Ok(local) = tcp.local_addr() {
        data.insert(crate::handshake::LocalAddr(local));
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        data.insert(crate::session::ConnFd(tcp.as_raw_fd()));
    }
}

/// Waits for Ctrl-C or SIGTERM, then closes every session with 1001 (waiting up to `grace` for
/// their `on_close` handlers). Pass it to `HttpServer::shutdown_signal` when you configure the
/// server yourself.
///
/// ```no_run
/// # use ws_endpoint::prelude::*;
/// # async fn f() -> std::io::Result<()> {
/// HttpServer::new(|| App::new())
///     .shutdown_signal(ws_endpoint::shutdown_on_signal(std::time::Duration::from_secs(5)))
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
pub async fn shutdown_on_signal(grace: Duration) {
    wait_for_signal().await;
    let left = crate::registry::shutdown(grace).await;
    if left > 0 {
        tracing::warn!(left, "sessions still open after the shutdown grace period");
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Extension methods for `actix_web::HttpServer`.
///
/// ```no_run
/// use ws_endpoint::prelude::*;
/// # #[actix_web::main]
/// # async fn main() -> std::io::Result<()> {
/// HttpServer::new(|| App::new())
///     .with_ws_defaults()
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
pub trait WsServerExt: Sized {
    /// [`CLOSE_LINGER`] (no linger) instead of actix-web's 1 s after a close; `TCP_NODELAY` on
    /// every connection (actix-web leaves Nagle's algorithm on, which delays small frames); the
    /// socket's descriptor, so that a dead peer (no pong, or not reading past the send timeout)
    /// has its TCP connection shut down at once even while actix-http's write buffer is full
    /// (actix-http then stops pulling the body, whose error drops the connection otherwise);
    /// and
    /// [`with_ws_shutdown`](Self::with_ws_shutdown) with a 5 s grace period.
    ///
    /// It sets the server's `on_connect` hook; if you need your own, call [`on_connect`] from it.
    fn with_ws_defaults(self) -> Self;

    /// On Ctrl-C or SIGTERM, close every session with 1001, wait up to `grace` for their
    /// `on_close`, then stop the server gracefully. (Without it, actix-web stops on Ctrl-C without
    /// closing WebSockets, and waits 30 s for them on SIGTERM.)
    fn with_ws_shutdown(self, grace: Duration) -> Self;
}

impl<F, I, S, B> WsServerExt for HttpServer<F, I, S, B>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    fn with_ws_defaults(self) -> Self {
        self.client_disconnect_timeout(CLOSE_LINGER)
            .on_connect(on_connect)
            .with_ws_shutdown(Duration::from_secs(5))
    }

    fn with_ws_shutdown(self, grace: Duration) -> Self {
        self.shutdown_signal(shutdown_on_signal(grace))
            .shutdown_timeout(grace.as_secs() + 1)
    }
}
