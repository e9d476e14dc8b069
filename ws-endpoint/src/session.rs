//! The per-connection handle (JSR 356 `Session`).

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    future::Future,
    net::SocketAddr,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use bytestring::ByteString;
use futures_util::{task::AtomicWaker, FutureExt as _};
use serde::Serialize;
use tokio::{sync::Notify, task::unconstrained};

use crate::{
    close::CloseReason,
    error::{EndpointError, SendError},
    hub::{Hub, Offer, Prepared, SlowConsumer},
    message::{Outgoing, Sendable},
    registry,
};

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

/// A frame for the outbound queue.
enum OutFrame {
    Text(ByteString),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
}

/// Per-session settings from the endpoint's configuration.
pub(crate) struct SessionSettings {
    pub(crate) send_timeout: Duration,
    pub(crate) slow_consumer: SlowConsumer,
    pub(crate) track_idle: bool,
    pub(crate) socket: Option<ConnSocket>,
}

/// A duplicate handle on a connection's TCP socket, stored by the `on_connect` hook of
/// [`WsServerExt::with_ws_defaults`](crate::WsServerExt::with_ws_defaults).
#[derive(Clone)]
pub(crate) struct ConnSocket(
    #[cfg(unix)] pub(crate) Arc<std::net::TcpStream>,
    #[cfg(not(unix))] pub(crate) (),
);

impl ConnSocket {
    fn shutdown(&self) {
        #[cfg(unix)]
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// What the handshake established; fixed for the session's life.
#[derive(Debug, Clone, Default)]
pub(crate) struct HandshakeInfo {
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) path_params: Vec<(String, String)>,
    pub(crate) subprotocol: Option<String>,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) secure: bool,
}

pub(crate) struct Inner {
    pub(crate) id: SessionId,
    pub(crate) endpoint: TypeId,
    pub(crate) endpoint_name: &'static str,
    sender: Mutex<Option<actix_ws::Session>>,
    open: AtomicBool,
    close_request: Mutex<Option<CloseReason>>,
    /// Wakes the connection task when a close begins (cheaper than a `Notify` per loop turn).
    pub(crate) close_waker: AtomicWaker,
    info: HandshakeInfo,
    properties: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last data message sent by the application.
    last_sent_ms: AtomicU64,
    /// How long a send may wait for room in the outbound queue before the peer is deemed dead.
    send_timeout: Duration,
    /// Whether sends must record their time (only for an idle timeout).
    track_idle: bool,
    /// A second handle on the TCP socket (see `WsServerExt::with_ws_defaults`), so that a dead
    /// peer's connection can be shut down even while actix-http still has bytes to write to it.
    socket: Option<ConnSocket>,
    /// What a broadcast does when this session's queue is full.
    pub(crate) slow_consumer: SlowConsumer,
    /// Woken when the connection is dropped, so that blocked sends return at once.
    aborted: Notify,
    aborted_flag: AtomicBool,
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
        sender: actix_ws::Session,
        info: HandshakeInfo,
        settings: SessionSettings,
    ) -> Session {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Session {
            inner: Arc::new(Inner {
                id: SessionId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
                endpoint,
                endpoint_name,
                sender: Mutex::new(Some(sender)),
                open: AtomicBool::new(true),
                close_request: Mutex::new(None),
                close_waker: AtomicWaker::new(),
                info,
                properties: Mutex::new(HashMap::new()),
                epoch: Instant::now(),
                last_sent_ms: AtomicU64::new(0),
                send_timeout: settings.send_timeout,
                track_idle: settings.track_idle,
                socket: settings.socket,
                slow_consumer: settings.slow_consumer,
                aborted: Notify::new(),
                aborted_flag: AtomicBool::new(false),
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
        crate::__private::parse_path(self.path_param(name), name)
    }

    /// The subprotocol chosen in the handshake (`getNegotiatedSubprotocol`), if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.inner.info.subprotocol.as_deref()
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

    /// Snapshot of the open sessions of the same endpoint in this process, this one included
    /// (`getOpenSessions`).
    pub fn open_sessions(&self) -> Vec<Session> {
        registry::sessions_of(self.inner.endpoint)
    }

    /// The [`Hub`] of this session's endpoint: broadcast and rooms.
    pub fn hub(&self) -> Hub {
        Hub::for_type(self.inner.endpoint, self.inner.endpoint_name)
    }

    /// Joins `room` (of this endpoint); returns false if already a member or closed. A session
    /// leaves all its rooms when it closes.
    pub fn join(&self, room: impl AsRef<str>) -> bool {
        crate::hub::join(self, room.as_ref())
    }

    /// Leaves `room`; returns false if not a member.
    pub fn leave(&self, room: impl AsRef<str>) -> bool {
        crate::hub::leave(self, room.as_ref())
    }

    /// The rooms this session is in, sorted.
    pub fn rooms(&self) -> Vec<String> {
        crate::hub::rooms_of(self)
    }

    /// Offers a prepared message to the outbound queue without waiting.
    pub(crate) fn offer(&self, msg: &Prepared) -> Offer {
        let frame = match msg {
            Prepared::Text(t) => OutFrame::Text(t.clone()),
            Prepared::Binary(b) => OutFrame::Binary(b.clone()),
        };
        match self.try_queue(&frame) {
            Ok(true) => {
                self.touch();
                Offer::Sent
            }
            Ok(false) => Offer::Full,
            Err(_) => Offer::Closed,
        }
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

    fn sender(&self) -> Result<actix_ws::Session, SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        lock(&self.inner.sender).clone().ok_or(SendError::Closed)
    }

    /// Offers a frame to the outbound queue without waiting: `Ok(true)` queued, `Ok(false)` the
    /// queue is full. Uses the stored sender in place (no clone) — the common, fast path.
    fn try_queue(&self, frame: &OutFrame) -> Result<bool, SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        let mut guard = lock(&self.inner.sender);
        let sender = guard.as_mut().ok_or(SendError::Closed)?;
        // `unconstrained`: a single poll must not be refused by Tokio's cooperative budget
        // (128 operations per task turn), or a broadcast to many sessions would see "full"
        // queues after the 128th.
        let result = match frame {
            OutFrame::Text(t) => unconstrained(sender.text(t.clone())).now_or_never(),
            OutFrame::Binary(b) => unconstrained(sender.binary(b.clone())).now_or_never(),
            OutFrame::Ping(p) => unconstrained(sender.ping(p)).now_or_never(),
            OutFrame::Pong(p) => unconstrained(sender.pong(p)).now_or_never(),
        };
        match result {
            Some(Ok(())) => Ok(true),
            Some(Err(_)) => Err(SendError::Closed),
            None => Ok(false),
        }
    }

    /// Queues a frame: at once when there is room, otherwise waiting at most `send_timeout`,
    /// after which the peer, which has stopped reading, is considered dead: the connection is
    /// dropped and `on_close` gets 1006.
    async fn queue(&self, frame: OutFrame) -> Result<(), SendError> {
        let data = matches!(frame, OutFrame::Text(_) | OutFrame::Binary(_));
        if !self.try_queue(&frame)? {
            // Boxed: keeps the waiting machinery out of every caller's future.
            Box::pin(self.queue_waiting(frame)).await?;
        }
        if data {
            self.touch();
        }
        Ok(())
    }

    async fn queue_waiting(&self, frame: OutFrame) -> Result<(), SendError> {
        let mut sender = self.sender()?;
        match frame {
            OutFrame::Text(t) => deliver(&self.inner, sender.text(t)).await,
            OutFrame::Binary(b) => deliver(&self.inner, sender.binary(b)).await,
            OutFrame::Ping(p) => deliver(&self.inner, sender.ping(&p)).await,
            OutFrame::Pong(p) => deliver(&self.inner, sender.pong(&p)).await,
        }
    }

    fn touch(&self) {
        if self.inner.track_idle {
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
        self.queue(OutFrame::Text(ByteString::from(text.into())))
            .await
    }

    /// Sends a binary message (`sendBinary`).
    pub async fn binary(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.queue(OutFrame::Binary(data.into())).await
    }

    /// Serialises `value` with serde_json and sends it as a text message.
    pub async fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), SendError> {
        let text = serde_json::to_string(value).map_err(|e| SendError::Encode(e.to_string()))?;
        self.text(text).await
    }

    /// Sends any [`Sendable`] value (`sendObject`): `String`, `&str`, `Bytes`, `Vec<u8>`,
    /// `Json<T>`.
    pub async fn send<T: Sendable>(&self, value: T) -> Result<(), SendError> {
        match value.into_outgoing()? {
            Outgoing::Text(text) => self.text(text).await,
            Outgoing::Binary(data) => self.binary(data).await,
        }
    }

    /// Sends a ping with an application payload (at most 125 bytes are sent).
    pub async fn ping(&self, payload: &[u8]) -> Result<(), SendError> {
        self.queue(OutFrame::Ping(Bytes::copy_from_slice(payload)))
            .await
    }

    pub(crate) async fn pong(&self, payload: Bytes) -> Result<(), SendError> {
        self.queue(OutFrame::Pong(payload)).await
    }

    /// Closes the session with `reason` (`close(CloseReason)`): sends the close frame, then the
    /// endpoint's `on_close` runs with this reason (after any handler in progress finishes).
    ///
    /// Returns [`SendError::Closed`] if the session was already closing, and
    /// [`SendError::InvalidCloseCode`] (without closing) for a code RFC 6455 forbids on the wire
    /// (below 1000, 1004–1006, 1015, 1016–2999, 5000 and above).
    pub async fn close(&self, reason: CloseReason) -> Result<(), SendError> {
        let code = reason.code_u16();
        if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
            return Err(SendError::InvalidCloseCode(code));
        }
        let sender = self.inner.begin_close(reason.clone())?;
        send_close(&self.inner, sender, reason).await;
        Ok(())
    }
}

async fn deliver<F>(inner: &Inner, send: F) -> Result<(), SendError>
where
    F: Future<Output = Result<(), actix_ws::Closed>>,
{
    let send = std::pin::pin!(send);
    let mut send = send;
    // The common case, room in the queue: no timer.
    if let Some(result) = (&mut send).now_or_never() {
        return result.map_err(|_| SendError::Closed);
    }
    let aborted = inner.aborted.notified();
    if inner.is_aborted() {
        return Err(SendError::Closed);
    }
    tokio::select! {
        result = &mut send => result.map_err(|_| SendError::Closed),
        _ = aborted => Err(SendError::Closed),
        _ = tokio::time::sleep(inner.send_timeout) => {
            inner.abort(CloseReason::abnormal("peer stopped reading"));
            Err(SendError::Closed)
        }
    }
}

/// Queues the close frame (bounded by the send timeout like any send).
pub(crate) async fn send_close(
    inner: &Inner,
    sender: Option<actix_ws::Session>,
    reason: CloseReason,
) {
    if let Some(sender) = sender {
        // An error means the connection is already gone; the close is then implicit.
        let _ = deliver(inner, sender.close(Some(reason.into_actix()))).await;
    }
}

/// Queues the echo of a peer's close frame.
pub(crate) async fn echo_close(
    inner: &Inner,
    sender: actix_ws::Session,
    reason: Option<actix_ws::CloseReason>,
) {
    let _ = deliver(inner, sender.close(reason)).await;
}

impl Inner {
    /// Marks the session closed and records why. Returns the sender for the close frame, or
    /// `Err(Closed)` if a close had already begun.
    pub(crate) fn begin_close(
        &self,
        reason: CloseReason,
    ) -> Result<Option<actix_ws::Session>, SendError> {
        {
            // The reason is written under its lock before `open` turns false, so whoever sees
            // the session closed and then asks for the reason gets this one.
            let mut request = lock(&self.close_request);
            if !self.open.swap(false, Ordering::AcqRel) {
                return Err(SendError::Closed);
            }
            *request = Some(reason);
        }
        let sender = lock(&self.sender).take();
        self.close_waker.wake();
        Ok(sender)
    }

    /// Ends the connection without a close frame (peer gone, dead peer): drops the sender so the
    /// response body ends, and wakes every blocked send. Returns the reason if this call closed
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
        self.aborted_flag.store(true, Ordering::Release);
        drop(lock(&self.sender).take());
        if let Some(socket) = &self.socket {
            // actix-http would otherwise go on trying to write what it has buffered to a peer
            // that reads nothing, holding the connection (and its buffers) open.
            socket.shutdown();
        }
        self.aborted.notify_waiters();
        self.close_waker.wake();
        first.then_some(reason)
    }

    fn is_aborted(&self) -> bool {
        self.aborted_flag.load(Ordering::Acquire)
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

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for Session {}
