//! The per-connection handle (JSR 356 `Session`).

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    net::SocketAddr,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Instant,
};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::Notify;

use crate::{
    close::CloseReason,
    error::{EndpointError, SendError},
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
    sender: Mutex<Option<actix_ws::Session>>,
    open: AtomicBool,
    close_request: Mutex<Option<CloseReason>>,
    pub(crate) close_notify: Notify,
    info: HandshakeInfo,
    properties: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last data message sent by the application.
    last_sent_ms: AtomicU64,
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
    pub(crate) fn new(endpoint: TypeId, sender: actix_ws::Session, info: HandshakeInfo) -> Session {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Session {
            inner: Arc::new(Inner {
                id: SessionId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
                endpoint,
                sender: Mutex::new(Some(sender)),
                open: AtomicBool::new(true),
                close_request: Mutex::new(None),
                close_notify: Notify::new(),
                info,
                properties: Mutex::new(HashMap::new()),
                epoch: Instant::now(),
                last_sent_ms: AtomicU64::new(0),
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

    /// Whether the handshake came over TLS (`isSecure`).
    pub fn is_secure(&self) -> bool {
        self.inner.info.secure
    }

    /// Snapshot of the open sessions of the same endpoint in this process, this one included
    /// (`getOpenSessions`).
    pub fn open_sessions(&self) -> Vec<Session> {
        registry::sessions_of(self.inner.endpoint)
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

    fn touch(&self) {
        let ms = self.inner.epoch.elapsed().as_millis() as u64;
        self.inner.last_sent_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn last_sent(&self) -> Instant {
        self.inner.epoch
            + std::time::Duration::from_millis(self.inner.last_sent_ms.load(Ordering::Relaxed))
    }

    /// Sends a text message (`getBasicRemote().sendText`).
    pub async fn text(&self, text: impl Into<String>) -> Result<(), SendError> {
        let mut sender = self.sender()?;
        sender
            .text(text.into())
            .await
            .map_err(|_| SendError::Closed)?;
        self.touch();
        Ok(())
    }

    /// Sends a binary message (`sendBinary`).
    pub async fn binary(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        let mut sender = self.sender()?;
        sender
            .binary(data.into())
            .await
            .map_err(|_| SendError::Closed)?;
        self.touch();
        Ok(())
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
        let mut sender = self.sender()?;
        sender.ping(payload).await.map_err(|_| SendError::Closed)
    }

    pub(crate) async fn pong(&self, payload: &[u8]) -> Result<(), SendError> {
        let mut sender = self.sender()?;
        sender.pong(payload).await.map_err(|_| SendError::Closed)
    }

    /// Closes the session with `reason` (`close(CloseReason)`): sends the close frame, then the
    /// endpoint's `on_close` runs with this reason (after any handler in progress finishes).
    /// Returns [`SendError::Closed`] if the session was already closing.
    pub async fn close(&self, reason: CloseReason) -> Result<(), SendError> {
        let sender = self.inner.begin_close(reason.clone())?;
        send_close(sender, reason).await;
        Ok(())
    }
}

pub(crate) async fn send_close(sender: Option<actix_ws::Session>, reason: CloseReason) {
    if let Some(sender) = sender {
        // An error means the connection is already gone; the close is then implicit.
        let _ = sender.close(Some(reason.into_actix())).await;
    }
}

impl Inner {
    /// Marks the session closed and records why. Returns the sender for the close frame, or
    /// `Err(Closed)` if a close had already begun.
    pub(crate) fn begin_close(
        &self,
        reason: CloseReason,
    ) -> Result<Option<actix_ws::Session>, SendError> {
        if !self.open.swap(false, Ordering::AcqRel) {
            return Err(SendError::Closed);
        }
        *lock(&self.close_request) = Some(reason);
        let sender = lock(&self.sender).take();
        self.close_notify.notify_one();
        Ok(sender)
    }

    /// Ends the connection without a close frame (peer gone, dead peer).
    pub(crate) fn abort(&self, reason: CloseReason) -> Option<CloseReason> {
        let was_open = self.open.swap(false, Ordering::AcqRel);
        drop(lock(&self.sender).take());
        if was_open {
            *lock(&self.close_request) = Some(reason.clone());
            Some(reason)
        } else {
            None
        }
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
