//! The actix-web side of an endpoint: [`EndpointService`] (an `HttpServiceFactory`), the
//! handshake checks, and the upgrade, after which the response body (running the connection
//! future) carries every frame.

use std::{any::TypeId, marker::PhantomData, sync::Arc, time::Duration};

use tracing::Instrument as _;

use actix_web::{
    dev::{AppService, HttpServiceFactory},
    http::header::{self, HeaderValue},
    web, FromRequest, HttpRequest, HttpResponse,
};

use crate::{
    admission,
    config::EndpointConfig,
    connection,
    drive::Driven,
    endpoint::Endpoint,
    handshake::{self, Handshake},
    proxy, registry,
    session::{Body, ConnFd, SendDeflate, Session, SessionSettings},
    telemetry::{self, SessionMetrics},
    wire::{deflate, DataKind, Decoder, Inflate, Limits, Role},
};

/// The actix-web service of one endpoint, returned by `MyEndpoint::endpoint()`.
///
/// Register it with `App::new().service(MyEndpoint::endpoint())`. Every attribute of
/// `#[server_endpoint]` can be overridden here at runtime, e.g. from a config file or the
/// environment.
///
/// ```
/// use std::time::Duration;
/// use ws_endpoint::prelude::*;
///
/// #[derive(Default)]
/// struct Echo;
///
/// #[server_endpoint("/echo", max_message_size = 4096)]
/// impl Echo {
///     #[on_message]
///     fn text(&mut self, msg: String) -> String { msg }
/// }
///
/// let service = Echo::endpoint()
///     .path("/v2/echo")
///     .max_message_size(1 << 20)
///     .idle_timeout(Duration::from_secs(300));
/// assert_eq!(service.config().path, "/v2/echo");
/// let app = actix_web::App::new().service(service);
/// ```
pub struct EndpointService<E> {
    config: EndpointConfig,
    _endpoint: PhantomData<fn() -> E>,
}

impl<E: Endpoint> EndpointService<E> {
    #[doc(hidden)]
    pub fn new() -> Self {
        Self {
            config: E::config(),
            _endpoint: PhantomData,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Replaces all settings (start from [`config`](Self::config) to keep the attributes).
    pub fn with_config(mut self, config: EndpointConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves the endpoint at another path. The path must keep the template's `{params}`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.path = path.into();
        self
    }

    /// Sets the limit for text and binary messages.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config = self.config.max_message_size(bytes);
        self
    }

    /// Sets the limit for text messages.
    pub fn max_text_message_size(mut self, bytes: usize) -> Self {
        self.config.max_text_message_size = bytes;
        self
    }

    /// Sets the limit for binary messages.
    pub fn max_binary_message_size(mut self, bytes: usize) -> Self {
        self.config.max_binary_message_size = bytes;
        self
    }

    /// Sets the subprotocols.
    pub fn subprotocols<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.config = self.config.subprotocols(protocols);
        self
    }

    /// Sets the allowed cross origins (`"*"` for any).
    pub fn allowed_origins<S: Into<String>>(
        mut self,
        origins: impl IntoIterator<Item = S>,
    ) -> Self {
        self.config = self.config.allowed_origins(origins);
        self
    }

    /// Sets the host names the `Host` header may carry (`"*"` for any; see
    /// [`EndpointConfig::allowed_hosts`]).
    pub fn allowed_hosts<S: Into<String>>(mut self, hosts: impl IntoIterator<Item = S>) -> Self {
        self.config = self.config.allowed_hosts(hosts);
        self
    }

    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// Disables the idle timeout.
    pub fn no_idle_timeout(mut self) -> Self {
        self.config.idle_timeout = None;
        self
    }

    /// Sets the heartbeat: a ping every `interval`, answered within `pong_timeout`.
    pub fn heartbeat(mut self, interval: Duration, pong_timeout: Duration) -> Self {
        self.config = self.config.heartbeat(Some(interval), pong_timeout);
        self
    }

    /// Sets how long a send may wait for a peer that does not read (then 1006).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.config.send_timeout = timeout;
        self
    }

    /// Sets the outbound queue's budget in bytes (see [`EndpointConfig::max_buffered`]).
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.config.max_buffered = bytes;
        self
    }

    /// Sets the most sessions of this endpoint in this process (beyond: 503).
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.config.max_sessions = Some(n);
        self
    }

    /// Sets the most sessions of this endpoint per client address (beyond: 429).
    pub fn max_sessions_per_ip(mut self, n: usize) -> Self {
        self.config.max_sessions_per_ip = Some(n);
        self
    }

    /// Sets the most data messages a client may send per period (beyond: 1008).
    pub fn max_message_rate(mut self, rate: crate::Rate) -> Self {
        self.config.max_message_rate = Some(rate);
        self
    }

    /// Sets how long a session may last (then 1001).
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.max_lifetime = Some(lifetime);
        self
    }

    /// Sets permessage-deflate (on by default; see [`Compression`](crate::Compression)).
    ///
    /// ```
    /// # use ws_endpoint::prelude::*;
    /// # #[derive(Default)] struct Feed;
    /// # #[server_endpoint("/feed")] impl Feed { #[on_message] fn m(&mut self, _t: String) {} }
    /// use ws_endpoint::Compression;
    /// let service = Feed::endpoint().compression(Compression::default().level(1).context_takeover(true));
    /// assert!(service.config().compression.unwrap().context_takeover);
    /// assert!(Feed::endpoint().no_compression().config().compression.is_none());
    /// ```
    pub fn compression(mut self, compression: crate::Compression) -> Self {
        self.config.compression = Some(compression);
        self
    }

    /// Declines permessage-deflate: no message of this endpoint is compressed either way.
    pub fn no_compression(mut self) -> Self {
        self.config.compression = None;
        self
    }

    /// Sets what a broadcast does with a session whose outbound queue is full.
    pub fn slow_consumer(mut self, policy: crate::SlowConsumer) -> Self {
        self.config.slow_consumer = policy;
        self
    }

    /// The [`Hub`](crate::Hub) of this endpoint (broadcast, rooms).
    pub fn hub(&self) -> crate::Hub {
        crate::Hub::of::<E>()
    }

    /// Disables the heartbeat.
    pub fn no_heartbeat(mut self) -> Self {
        self.config.ping_interval = None;
        self
    }
}

impl<E: Endpoint> Default for EndpointService<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> std::fmt::Debug for EndpointService<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointService")
            .field("endpoint", &std::any::type_name::<E>())
            .field("config", &self.config)
            .finish()
    }
}

/// Settings of one registered endpoint, stored in the resource's app data.
struct Settings<E> {
    config: Arc<EndpointConfig>,
    protocols: Vec<String>,
    _endpoint: PhantomData<fn() -> E>,
}

impl<E: Endpoint> HttpServiceFactory for EndpointService<E> {
    fn register(self, config: &mut AppService) {
        let settings = Settings::<E> {
            protocols: self.config.subprotocols.clone(),
            config: Arc::new(self.config),
            _endpoint: PhantomData,
        };
        let path = settings.config.path.clone();
        web::resource(path)
            .app_data(web::Data::new(settings))
            .route(web::get().to(upgrade::<E>))
            .register(config)
    }
}

/// The actix-web handler: validates the handshake, runs the extractors, upgrades, and makes the
/// response body that runs the connection future.
async fn upgrade<E: Endpoint>(
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let Some(settings) = req.app_data::<web::Data<Settings<E>>>().cloned() else {
        return Ok(HttpResponse::InternalServerError().body("ws-endpoint: settings missing"));
    };
    let config = settings.config.clone();

    let path = config.path.as_str();
    if let Some((reason, refusal)) = handshake::refusal(&req, &config) {
        telemetry::refused(path, reason);
        return Ok(refusal);
    }
    if registry::shutting_down() {
        telemetry::refused(path, "shutting_down");
        return Ok(HttpResponse::ServiceUnavailable().body("server shutting down"));
    }
    // Admission: a place is taken here and given back when the session ends (or when this
    // upgrade fails below).
    let client = proxy::client_addr(&req);
    let admitted = match admission::admit(TypeId::of::<E>(), client.map(|a| a.ip()), &config) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            telemetry::refused(path, refusal.label());
            return Ok(refusal.response(&config));
        }
    };
    // Path parameters are parsed once, here, and handed to every handler typed.
    let params = match E::path_params(&req) {
        Ok(params) => params,
        Err(message) => {
            telemetry::refused(path, "path_param");
            return Ok(HttpResponse::BadRequest().body(message));
        }
    };

    // `#[on_handshake]`, then `on_open`'s extractors; they see an empty body: the request's
    // payload is the WebSocket byte stream. An error refuses the upgrade with its response.
    let mut handshake = Handshake::default();
    let args = match E::handshake(&req, &params, &mut handshake).await {
        Ok(args) => args,
        Err(err) => {
            telemetry::refused(path, "handshake");
            return Err(err);
        }
    };
    if let Some(error) = handshake.error.take() {
        tracing::error!(
            path = req.path(),
            error,
            "#[on_handshake] added an invalid header"
        );
        return Ok(HttpResponse::InternalServerError().body("invalid handshake header"));
    }
    let payload = payload.into_inner();

    // actix-ws performs the handshake (key, version, subprotocol, the 101 response); every
    // frame after it is ours: the request payload goes to the connection future's decoder, the
    // response body is the session's outbound queue. actix-ws's own channel and stream are
    // dropped unused.
    let empty = web::Payload::from_request(&req, &mut actix_web::dev::Payload::None).await?;
    let protocols: Vec<&str> = settings.protocols.iter().map(String::as_str).collect();
    let (mut response, _unused_session, _unused_stream) =
        actix_ws::handle_with_protocols(&req, empty, &protocols)?;
    for (name, value) in handshake.headers.drain(..) {
        response.headers_mut().append(name, value);
    }
    // permessage-deflate: the first acceptable offer, or none (declining never fails the
    // handshake).
    let agreed = config.compression.and_then(|c| {
        let offers = req
            .headers()
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .filter_map(|v| v.to_str().ok());
        deflate::negotiate(
            offers,
            deflate::Policy {
                context_takeover: c.context_takeover,
                max_window_bits: c.max_window_bits,
            },
        )
        .map(|agreed| (c, agreed))
    });
    if let Some((_, agreed)) = &agreed {
        if let Ok(value) = HeaderValue::from_str(&agreed.response()) {
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
    }

    let mut info = handshake::info(&req, &response);
    info.peer_addr = client;
    let session = Session::new(
        (TypeId::of::<E>(), std::any::type_name::<E>()),
        info,
        SessionSettings {
            send_timeout: config.send_timeout,
            slow_consumer: config.slow_consumer,
            track_idle: config.idle_timeout.is_some(),
            max_buffered: config.max_buffered,
            socket: req.conn_data::<ConnFd>().copied(),
            metrics: SessionMetrics::new(path),
            deflate: agreed.map(|(c, a)| SendDeflate {
                level: c.level,
                window_bits: a.server_max_window_bits,
                min_size: c.min_size,
                context_takeover: !a.server_no_context_takeover,
            }),
        },
    );
    session.adopt_properties(std::mem::take(&mut handshake.properties));
    let body = Body::new(session.inner.out.clone());
    // Registered before the connection future is made, and unregistered when the guard drops:
    // even a future dropped before its first poll leaves no session behind.
    let registered = registry::Registered::new(&session);

    let mut decoder = Decoder::new(
        Role::Server,
        Limits {
            text: E::TEXT.then_some(config.max_text_message_size),
            binary: E::BINARY.then_some(config.max_binary_message_size),
        },
    )
    .assembly_for(DataKind::Text, E::TEXT_ASSEMBLY)
    .assembly_for(DataKind::Binary, E::BINARY_ASSEMBLY);
    if let Some((_, agreed)) = &agreed {
        decoder = decoder.inflate(if agreed.client_no_context_takeover {
            Inflate::PerMessage
        } else {
            Inflate::Context
        });
    }
    let span = tracing::info_span!(
        "ws_session",
        endpoint = %config.path,
        session = %session.id(),
        peer = ?session.peer_addr(),
    );
    // No task of its own: the response body runs the connection future each time actix-http
    // pulls it (see `drive`).
    let body = Driven::new(body, payload, |payload| {
        connection::run::<E, _>(
            session,
            (registered, admitted),
            payload,
            decoder,
            config,
            params,
            args,
            || {},
        )
        .instrument(span)
    });
    Ok(response.set_body(body).map_into_boxed_body())
}
