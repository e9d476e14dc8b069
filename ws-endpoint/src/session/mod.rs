//! The per-connection handle (JSR 356 `Session`).

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use serde::Serialize;

use crate::telemetry::SessionMetrics;
use crate::{
    close::CloseReason,
    config::SlowConsumer,
    error::{EndpointError, SendError},
    message::{Message, Sendable},
    wire::{self, OpCode},
};

pub(crate) mod outbound;
mod writer;

pub use outbound::{
    buffered_total, max_buffered_total, set_max_buffered_total, DEFAULT_MAX_BUFFERED_TOTAL,
};
pub(crate) use outbound::{Body, OutFrame, Outbound, Refused, SendDeflate, Shared};
pub(crate) use writer::PartialOut;
pub use writer::{BinaryWriter, TextWriter};

/// A handler's reply, queued at once or waiting for room ([`Session::reply`]).
pub(crate) enum Reply<'a> {
    /// Queued, or refused: the outcome.
    Done(Result<(), SendError>),
    /// Waiting for room in the queue.
    Waiting(Waiting<'a>),
}

pub(crate) type Waiting<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// A session's identifier, unique in the process (JSR 356 `Session.getId()`).
///
/// ```
/// # use ws_endpoint::SessionId;
/// // Ids print as plain numbers.
/// # fn f(id: SessionId) -> String { id.to_string() }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u64);

impl SessionId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Per-session settings from the endpoint's configuration.
pub(crate) struct SessionSettings {
    pub(crate) send_timeout: Duration,
    pub(crate) slow_consumer: SlowConsumer,
    pub(crate) track_idle: bool,
    pub(crate) max_buffered: usize,
    pub(crate) socket: Option<ConnFd>,
    pub(crate) metrics: SessionMetrics,
    /// permessage-deflate, when agreed.
    pub(crate) deflate: Option<SendDeflate>,
}

/// Per-session settings changed by a handler, waiting for the connection future. `None` fields
/// are unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SessionChanges {
    pub(crate) idle_timeout: Option<Option<Duration>>,
    pub(crate) max_text: Option<usize>,
    pub(crate) max_binary: Option<usize>,
}

/// The raw descriptor of a connection's TCP socket, recorded (not duplicated) by the
/// `on_connect` hook of [`WsServerExt::with_ws_defaults`](crate::WsServerExt::with_ws_defaults).
/// Used only from the connection's own worker thread while actix-http still holds the response
/// body (and so the socket): see `Session::shutdown_stalled_socket`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnFd(#[cfg(unix)] pub(crate) std::os::fd::RawFd);

/// What the handshake established; fixed for the session's life.
#[derive(Debug, Clone, Default)]
pub(crate) struct HandshakeInfo {
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) path_params: Vec<(String, String)>,
    pub(crate) subprotocol: Option<String>,
    /// The `Sec-WebSocket-Extensions` response value, if any.
    pub(crate) extensions: Option<String>,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) secure: bool,
}

pub(crate) struct Inner {
    pub(crate) id: SessionId,
    pub(crate) endpoint: TypeId,
    pub(crate) endpoint_name: &'static str,
    /// The outbound queue, shared with the response body.
    pub(crate) out: Arc<Outbound>,
    open: AtomicBool,
    close_request: Mutex<Option<CloseReason>>,
    /// Wakes the connection future when a close begins (cheaper than a `Notify` per loop turn).
    pub(crate) close_waker: AtomicWaker,
    info: HandshakeInfo,
    properties: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last data message sent by the application.
    last_sent_ms: AtomicU64,
    /// How long a send may wait for room in the outbound queue before the peer is deemed dead.
    send_timeout: Duration,
    /// Whether sends must record their time (only for an idle timeout).
    track_idle: AtomicBool,
    /// Settings changed from a handler (`set_max_idle_timeout`, …), applied by the connection
    /// task at its next turn.
    pub(crate) changes: Mutex<Option<SessionChanges>>,
    /// Whether `changes` holds something (one atomic load per loop turn instead of a lock).
    changed: AtomicBool,
    socket: Option<ConnFd>,
    /// What a broadcast does when this session's queue is full.
    pub(crate) slow_consumer: SlowConsumer,
    /// The message being sent in parts, if any (`send_partial`, writers).
    pub(crate) partial: Mutex<PartialOut>,
    /// This session's metric handles.
    pub(crate) metrics: SessionMetrics,
}

/// One WebSocket connection, as seen by handlers and by any other task.
///
/// `Session` is `Clone + Send + Sync`: clone it into a background task, a registry, a broadcast
/// list. Every send is `async` and waits while the connection's bounded outbound queue is full,
/// so a slow reader slows its senders down instead of growing memory. Once the session is closed,
/// every send returns [`SendError::Closed`]; nothing panics.
///
/// ```
/// use ws_endpoint::prelude::*;
///
/// #[derive(Default)]
/// struct Ticker;
///
/// #[server_endpoint("/tick")]
/// impl Ticker {
///     #[on_open]
///     async fn open(&mut self, session: &Session) {
///         let session = session.clone();
///         actix_web::rt::spawn(async move {
///             // a task outside the handlers; it stops when the session is closed
///             while session.text("tick").await.is_ok() {
///                 actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
///             }
///         });
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short critical sections cannot leave the data
    // half-updated, so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    pub(crate) fn new(
        (endpoint, endpoint_name): (TypeId, &'static str),
        info: HandshakeInfo,
        settings: SessionSettings,
    ) -> Session {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Session {
            inner: Arc::new(Inner {
                id: SessionId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
                endpoint,
                endpoint_name,
                out: Arc::new(Outbound::new(settings.max_buffered, settings.deflate)),
                open: AtomicBool::new(true),
                close_request: Mutex::new(None),
                close_waker: AtomicWaker::new(),
                info,
                properties: Mutex::new(HashMap::new()),
                epoch: Instant::now(),
                last_sent_ms: AtomicU64::new(0),
                send_timeout: settings.send_timeout,
                track_idle: AtomicBool::new(settings.track_idle),
                changes: Mutex::new(None),
                changed: AtomicBool::new(false),
                socket: settings.socket,
                slow_consumer: settings.slow_consumer,
                partial: Mutex::new(PartialOut::default()),
                metrics: settings.metrics,
            }),
        }
    }

    /// The session id (`getId`).
    pub fn id(&self) -> SessionId {
        self.inner.id
    }

    /// Whether the session is still open (`isOpen`): false from the moment a close starts.
    pub fn is_open(&self) -> bool {
        self.inner.open.load(Ordering::Acquire)
    }

    /// The request path of the handshake, e.g. `/chat/lobby` (`getRequestURI` without query).
    pub fn path(&self) -> &str {
        &self.inner.info.path
    }

    /// The raw query string of the handshake, without `?` (`getQueryString`); empty if none.
    pub fn query_string(&self) -> &str {
        &self.inner.info.query
    }

    /// All path parameters, as matched from the template (`getPathParameters`).
    pub fn path_params(&self) -> &[(String, String)] {
        &self.inner.info.path_params
    }

    /// One path parameter's raw value.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.inner
            .info
            .path_params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// One path parameter parsed with `FromStr`.
    pub fn parse_path_param<T: FromStr>(&self, name: &'static str) -> Result<T, EndpointError> {
        crate::error::parse_path(self.path_param(name), name)
    }

    /// The subprotocol chosen in the handshake (`getNegotiatedSubprotocol`), if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.inner.info.subprotocol.as_deref()
    }

    /// The extensions agreed in the handshake (`getNegotiatedExtensions`): `permessage-deflate`
    /// with its parameters as the server answered them, or empty.
    ///
    /// ```
    /// # fn f(session: &ws_endpoint::Session) {
    /// let compressed = session
    ///     .negotiated_extensions()
    ///     .iter()
    ///     .any(|e| e.starts_with("permessage-deflate"));
    /// # }
    /// ```
    pub fn negotiated_extensions(&self) -> Vec<String> {
        self.inner.info.extensions.iter().cloned().collect()
    }

    /// Whether permessage-deflate was agreed: data messages of at least the endpoint's
    /// `min_size` are sent compressed, unless sent with
    /// [`send_uncompressed`](Self::send_uncompressed).
    pub fn is_compressed(&self) -> bool {
        self.inner.out.compresses()
    }

    /// The peer's socket address, when known.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.info.peer_addr
    }

    /// Whether the connection came in on a TLS listener of this server (`isSecure`); proxy
    /// headers (`X-Forwarded-Proto`) are not trusted.
    pub fn is_secure(&self) -> bool {
        self.inner.info.secure
    }

    /// Stores a typed per-session property (`getUserProperties`), returning the previous value of
    /// that type.
    ///
    /// ```
    /// # use ws_endpoint::Session;
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Nick(String);
    /// # fn f(session: &Session) {
    /// session.set_property(Nick("ada".into()));
    /// assert_eq!(session.property::<Nick>(), Some(Nick("ada".into())));
    /// # }
    /// ```
    pub fn set_property<T: Send + Sync + 'static>(&self, value: T) -> Option<T> {
        lock(&self.inner.properties)
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// Sets this session's idle timeout (JSR 356 `setMaxIdleTimeout`): closed with 1001 after
    /// `timeout` without a data message either way; `None` disables it. Overrides the
    /// endpoint's `idle_timeout` for this session only, from the next turn of its connection
    /// task (counted from the last message, not from this call).
    ///
    /// ```
    /// # use ws_endpoint::Session;
    /// # use std::time::Duration;
    /// # fn f(session: &Session) {
    /// session.set_max_idle_timeout(Some(Duration::from_secs(30)));
    /// # }
    /// ```
    pub fn set_max_idle_timeout(&self, timeout: Option<Duration>) {
        if timeout.is_some() {
            self.inner.track_idle.store(true, Ordering::Relaxed);
        }
        self.change(|c| c.idle_timeout = Some(timeout));
    }

    /// Sets this session's limit for text messages (JSR 356 `setMaxTextMessageBufferSize`);
    /// a larger one closes the session with 1009. Applies to the frames read after the
    /// connection future's next turn. Ignored if the endpoint takes no text (1003).
    pub fn set_max_text_message_size(&self, bytes: usize) {
        self.change(|c| c.max_text = Some(bytes));
    }

    /// Sets this session's limit for binary messages (JSR 356
    /// `setMaxBinaryMessageBufferSize`); see [`set_max_text_message_size`](Self::set_max_text_message_size).
    pub fn set_max_binary_message_size(&self, bytes: usize) {
        self.change(|c| c.max_binary = Some(bytes));
    }

    fn change(&self, f: impl FnOnce(&mut SessionChanges)) {
        f(lock(&self.inner.changes).get_or_insert_with(SessionChanges::default));
        self.inner.changed.store(true, Ordering::Release);
        // The connection future looks at changes when it wakes (see `connection::closing`).
        self.inner.close_waker.wake();
    }

    /// Takes the pending changes (the connection future).
    pub(crate) fn take_changes(&self) -> Option<SessionChanges> {
        if !self.inner.changed.load(Ordering::Acquire) {
            return None;
        }
        self.inner.changed.store(false, Ordering::Release);
        lock(&self.inner.changes).take()
    }

    /// Whether changes are pending (cheap check for the connection future's loop).
    pub(crate) fn has_changes(&self) -> bool {
        self.inner.changed.load(Ordering::Acquire)
    }

    /// Starts with the properties an `#[on_handshake]` hook set.
    pub(crate) fn adopt_properties(&self, props: Vec<(TypeId, Box<dyn Any + Send + Sync>)>) {
        if !props.is_empty() {
            lock(&self.inner.properties).extend(props);
        }
    }

    /// A clone of the property of type `T`, if set.
    pub fn property<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        lock(&self.inner.properties)
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }

    /// Removes and returns the property of type `T`.
    pub fn remove_property<T: Send + Sync + 'static>(&self) -> Option<T> {
        lock(&self.inner.properties)
            .remove(&TypeId::of::<T>())
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// Runs `f` on the property of type `T` (mutable, in place), or on `None` if unset.
    pub fn with_property<T: Send + Sync + 'static, R>(
        &self,
        f: impl FnOnce(Option<&mut T>) -> R,
    ) -> R {
        let mut props = lock(&self.inner.properties);
        f(props
            .get_mut(&TypeId::of::<T>())
            .and_then(|v| v.downcast_mut::<T>()))
    }

    /// Runs `f` on the property of type `T`, set to its default first if unset (one step under
    /// the properties' lock).
    pub(crate) fn with_property_default<T: Default + Send + Sync + 'static, R>(
        &self,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let mut props = lock(&self.inner.properties);
        let value = props
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()));
        match value.downcast_mut::<T>() {
            Some(v) => f(v),
            None => unreachable!("a property is stored under its own type's id"),
        }
    }

    /// Offers a frame to the outbound queue without waiting (broadcasts). `len` is the
    /// message's own size (the metrics count it, compressed or not).
    pub(crate) fn offer(&self, frame: OutFrame, len: usize) -> Result<(), Refused> {
        if !self.is_open() {
            return Err(Refused::Closed);
        }
        let opcode = frame.opcode;
        self.inner.out.push(frame)?;
        self.inner.metrics.sent(opcode, len);
        self.touch();
        Ok(())
    }

    /// Queues a frame: at once when there is room, otherwise waiting at most `send_timeout`,
    /// after which the peer, which has stopped reading, is considered dead: the connection is
    /// dropped and `on_close` gets 1006.
    pub(crate) async fn queue(&self, frame: OutFrame, data: bool) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        let (opcode, len) = (frame.opcode, frame.payload.len());
        match self.inner.out.push(frame) {
            Ok(()) => {}
            Err(Refused::Closed) => return Err(SendError::Closed),
            // Boxed: keeps the waiting machinery out of every caller's future.
            Err(Refused::Full(frame)) => Box::pin(self.queue_waiting(frame)).await?,
            Err(Refused::Behind(frame)) => Box::pin(self.queue_behind(frame)).await?,
        }
        if data {
            self.inner.metrics.sent(opcode, len);
            self.touch();
        }
        Ok(())
    }

    /// A message is being sent in parts and the budget is used up: waits (without a timeout:
    /// the socket is not at fault) for it to end, then queues as usual.
    async fn queue_behind(&self, mut frame: OutFrame) -> Result<(), SendError> {
        loop {
            self.inner.out.message_ended().await;
            match self.inner.out.push(frame) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed) => return Err(SendError::Closed),
                Err(Refused::Full(f)) => return self.queue_waiting(f).await,
                Err(Refused::Behind(f)) => frame = f,
            }
        }
    }

    async fn queue_waiting(&self, frame: OutFrame) -> Result<(), SendError> {
        match tokio::time::timeout(self.inner.send_timeout, self.inner.out.push_wait(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(None)) => Err(SendError::Closed),
            // A message in parts opened meanwhile: waiting behind it is not timed out.
            Ok(Err(Some(frame))) => Box::pin(self.queue_behind(frame)).await,
            Err(_) => {
                self.inner
                    .abort(CloseReason::abnormal("peer stopped reading"));
                Err(SendError::Closed)
            }
        }
    }

    fn touch(&self) {
        if self.inner.track_idle.load(Ordering::Relaxed) {
            let ms = self.inner.epoch.elapsed().as_millis() as u64;
            self.inner.last_sent_ms.store(ms, Ordering::Relaxed);
        }
    }

    pub(crate) fn last_sent(&self) -> Instant {
        self.inner.epoch
            + std::time::Duration::from_millis(self.inner.last_sent_ms.load(Ordering::Relaxed))
    }

    /// Sends a text message (`getBasicRemote().sendText`).
    pub async fn text(&self, text: impl Into<String>) -> Result<(), SendError> {
        let payload = Bytes::from(text.into().into_bytes());
        self.queue(OutFrame::new(OpCode::Text, payload), true).await
    }

    /// Sends a binary message (`sendBinary`).
    pub async fn binary(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.queue(OutFrame::new(OpCode::Binary, data.into()), true)
            .await
    }

    /// Serialises `value` with serde_json and sends it as a text message.
    pub async fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        let text = serde_json::to_string(value).map_err(|e| SendError::Encode(e.to_string()))?;
        self.text(text).await
    }

    /// Sends any [`Sendable`] value (`sendObject`): `String`, `&str`, `Bytes`, `Vec<u8>`,
    /// `Json<T>`.
    pub async fn send<T: Sendable>(&self, value: T) -> Result<(), SendError> {
        self.send_message(value.into_message()?).await
    }

    /// Queues `value` if the outbound queue has room for it now, and never waits:
    /// `Err(SendError::Full)` when it has not (the peer reads slower than it is sent to), and
    /// nothing is queued. The building block of a per-client policy of your own (skip, count,
    /// tell the client what it missed, as Tomcat's chat example does); broadcasts
    /// ([`Hub`](crate::Hub)) apply the endpoint's `slow_consumer` policy instead.
    ///
    /// ```
    /// # use ws_endpoint::{Session, SendError};
    /// # fn f(session: &Session) {
    /// match session.try_send("tick") {
    ///     Ok(()) => {}
    ///     Err(SendError::Full) => { /* this client is behind: skip it this time */ }
    ///     Err(_) => { /* closed */ }
    /// }
    /// # }
    /// ```
    pub fn try_send<T: Sendable>(&self, value: T) -> Result<(), SendError> {
        let frame = OutFrame::message(value.into_message()?);
        let len = frame.payload.len();
        match self.offer(frame, len) {
            Ok(()) => Ok(()),
            Err(Refused::Closed) => Err(SendError::Closed),
            Err(Refused::Full(_) | Refused::Behind(_)) => Err(SendError::Full),
        }
    }

    /// Sends `value` uncompressed even when permessage-deflate was agreed (RSV1 clear), waiting
    /// for room like [`send`](Self::send).
    ///
    /// Use it for a message that carries a secret next to text an attacker can choose: with
    /// compression, the size of such a message on the wire tells the attacker whether a guess
    /// matched the secret (the CRIME and BREACH attacks on TLS compression). Typical cases: a
    /// token or CSRF value echoed in a page of user content, a session key in a chat message.
    ///
    /// ```
    /// # async fn f(session: &ws_endpoint::Session, token: String) -> Result<(), ws_endpoint::SendError> {
    /// session.send_uncompressed(format!(r#"{{"token":"{token}"}}"#)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_uncompressed<T: Sendable>(&self, value: T) -> Result<(), SendError> {
        let frame = OutFrame::message(value.into_message()?).plain();
        let data = frame.opcode != OpCode::Pong;
        self.queue(frame, data).await
    }

    /// Queues a handler's reply: at once when there is room (no future is built: the common
    /// case costs a push), otherwise the returned future waits as [`Session::send`] does.
    pub(crate) fn reply(&self, msg: Message) -> Reply<'_> {
        if !self.is_open() {
            return Reply::Done(Err(SendError::Closed));
        }
        let frame = OutFrame::message(msg);
        let (opcode, len) = (frame.opcode, frame.payload.len());
        match self.inner.out.push(frame) {
            Ok(()) => {
                self.inner.metrics.sent(opcode, len);
                self.touch();
                Reply::Done(Ok(()))
            }
            Err(Refused::Closed) => Reply::Done(Err(SendError::Closed)),
            // No room: a send as any other, which waits (and counts the frame once queued).
            Err(Refused::Full(frame) | Refused::Behind(frame)) => {
                Reply::Waiting(Box::pin(self.queue(frame, true)))
            }
        }
    }

    pub(crate) async fn send_message(&self, msg: Message) -> Result<(), SendError> {
        match msg {
            Message::Text(text) => self.text(text).await,
            Message::Binary(data) => self.binary(data).await,
            Message::Pong(data) => self.pong(data).await,
        }
    }

    /// Sends a ping with an application payload (at most 125 bytes are sent).
    pub async fn ping(&self, payload: &[u8]) -> Result<(), SendError> {
        let payload = &payload[..payload.len().min(125)];
        self.queue(
            OutFrame::new(OpCode::Ping, Bytes::copy_from_slice(payload)),
            false,
        )
        .await
    }

    pub(crate) async fn pong(&self, payload: Bytes) -> Result<(), SendError> {
        self.queue(OutFrame::new(OpCode::Pong, payload), false)
            .await
    }

    /// Bytes waiting in this session's outbound queue (the frame being written included).
    pub fn buffered_amount(&self) -> usize {
        self.inner.out.buffered()
    }

    /// Closes the session with `reason` (`close(CloseReason)`): sends the close frame, then the
    /// endpoint's `on_close` runs with this reason (after any handler in progress finishes).
    ///
    /// Returns [`SendError::Closed`] if the session was already closing, and
    /// [`SendError::InvalidCloseCode`] (without closing) for a code RFC 6455 forbids on the wire
    /// (below 1000, 1004–1006, 1015, 1016–2999, 5000 and above).
    pub async fn close(&self, reason: CloseReason) -> Result<(), SendError> {
        let code = reason.code_u16();
        if !wire::close::is_allowed(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        let frame = close_payload(&reason);
        self.inner.begin_close(reason, Some(frame))?;
        Ok(())
    }

    /// Shuts a dead peer's TCP socket down when actix-http is stuck writing to it.
    ///
    /// actix-http pulls the response body only while its write buffer has room, so a peer that
    /// stopped reading keeps it from ever seeing the body's error. Only TCP connections served
    /// with [`WsServerExt::with_ws_defaults`](crate::WsServerExt::with_ws_defaults) carry the
    /// descriptor. Called from the connection future, which runs on the same worker thread as the
    /// connection's dispatcher: while the body is alive the dispatcher, and so the socket, is.
    pub(crate) fn shutdown_stalled_socket(&self) {
        #[cfg(unix)]
        if let Some(ConnFd(fd)) = self.inner.socket {
            if self.inner.out.is_aborted() && self.inner.out.body_alive() {
                use std::os::fd::FromRawFd;
                // SAFETY: the descriptor is open (see above) and is not closed here: the
                // borrowed stream is never dropped.
                let stream =
                    std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// The payload of a close frame carrying `reason` (its phrase cut to 123 bytes).
pub(crate) fn close_payload(reason: &CloseReason) -> Bytes {
    Bytes::from(wire::close::payload(reason.code_u16(), &reason.reason))
}

impl Inner {
    /// Marks the session closed and records why; queues `frame`'s close frame (a peer's close
    /// answered, or the server's own), after which the body ends. `Err(Closed)` if a close had
    /// already begun.
    pub(crate) fn begin_close(
        &self,
        reason: CloseReason,
        frame: Option<Bytes>,
    ) -> Result<(), SendError> {
        {
            // The reason is written under its lock before `open` turns false, so whoever sees
            // the session closed and then asks for the reason gets this one.
            let mut request = lock(&self.close_request);
            if !self.open.swap(false, Ordering::AcqRel) {
                return Err(SendError::Closed);
            }
            *request = Some(reason);
        }
        self.out
            .finish(frame.map(|payload| OutFrame::new(OpCode::Close, payload)));
        self.close_waker.wake();
        Ok(())
    }

    /// The peer's byte stream ended without a close frame: no more sends, but what is queued is
    /// still written. Returns the reason if this call closed the session.
    pub(crate) fn half_closed(&self, reason: CloseReason) -> Option<CloseReason> {
        self.begin_close(reason.clone(), None).ok().map(|()| reason)
    }

    /// Ends the connection without a close frame (dead peer): drops what is queued and fails
    /// the body so that actix-http drops the connection. Returns the reason if this call closed
    /// the session.
    pub(crate) fn abort(&self, reason: CloseReason) -> Option<CloseReason> {
        let first = {
            let mut request = lock(&self.close_request);
            let was_open = self.open.swap(false, Ordering::AcqRel);
            if was_open {
                *request = Some(reason.clone());
            }
            was_open
        };
        self.out.abort();
        self.close_waker.wake();
        first.then_some(reason)
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        lock(&self.close_request).clone()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("path", &self.inner.info.path)
            .field("open", &self.is_open())
            .finish()
    }
}

/// Sessions are equal when they are the same connection (same [`id`](Session::id)), so a
/// `Session` goes in a `HashSet` or a `HashMap` key, as `Set<Session>` does in Java:
///
/// ```
/// use std::collections::HashSet;
/// use ws_endpoint::prelude::*;
///
/// #[derive(Default)]
/// struct Watchers;
///
/// #[server_endpoint("/watch")]
/// impl Watchers {
///     #[on_open]
///     fn open(&mut self, session: &Session) {
///         let mut set = HashSet::new();
///         assert!(set.insert(session.clone()));
///         assert!(!set.insert(session.clone())); // the same session again
///     }
/// }
/// ```
impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for Session {}

impl std::hash::Hash for Session {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}
