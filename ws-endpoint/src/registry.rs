//! The process-wide table of open sessions: `open_sessions()`, counts, and graceful shutdown.

use std::{
    any::TypeId,
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use tokio::sync::watch;

use crate::{
    close::{CloseCode, CloseReason},
    session::{Session, SessionId},
};

/// Open sessions and room memberships. Rooms belong to an endpoint: `(endpoint, room name)`.
#[derive(Default)]
pub(crate) struct Table {
    pub(crate) sessions: HashMap<SessionId, Session>,
    /// The members of each room, with their handles (a broadcast to a room looks nothing up).
    pub(crate) rooms: HashMap<(TypeId, String), Room>,
    pub(crate) memberships: HashMap<SessionId, BTreeSet<String>>,
    /// The user key of each session that has one (`Session::set_user`).
    pub(crate) users: HashMap<SessionId, String>,
    /// Endpoint type names seen here, for broadcasts from other processes.
    pub(crate) names: HashMap<&'static str, (TypeId, &'static str)>,
}

/// The members of a room, with their handles, and the list a broadcast to the room goes through
/// (made at the first broadcast after a change, then shared by every broadcast until the next:
/// a broadcast to a room of 10,000 looks nothing up and copies no handle).
#[derive(Default)]
pub(crate) struct Room {
    members: BTreeMap<SessionId, Session>,
    snapshot: Option<Arc<[Session]>>,
}

impl Room {
    /// Adds a member; `false` if it was one already.
    pub(crate) fn insert(&mut self, id: SessionId, session: Session) -> bool {
        if self.members.contains_key(&id) {
            return false;
        }
        self.members.insert(id, session);
        self.snapshot = None;
        true
    }

    pub(crate) fn remove(&mut self, id: &SessionId) {
        if self.members.remove(id).is_some() {
            self.snapshot = None;
        }
    }

    pub(crate) fn contains(&self, id: &SessionId) -> bool {
        self.members.contains_key(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members, in the order of their ids.
    pub(crate) fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.members.values()
    }

    /// The members now, as one shared list.
    pub(crate) fn snapshot(&mut self) -> Arc<[Session]> {
        self.snapshot
            .get_or_insert_with(|| self.members.values().cloned().collect())
            .clone()
    }
}

struct Registry {
    table: Mutex<Table>,
    count: watch::Sender<usize>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    table: Mutex::new(Table::default()),
    count: watch::channel(0).0,
});

pub(crate) fn table() -> std::sync::MutexGuard<'static, Table> {
    REGISTRY.table.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process's node id: random, drawn once at start; with a session's [`SessionId`] it names
/// the session across server processes ([`ClusterSessionId`](crate::ClusterSessionId)).
///
/// ```
/// assert_eq!(ws_endpoint::node_id(), ws_endpoint::node_id());
/// ```
pub fn node_id() -> u64 {
    node()
}

pub(crate) fn node() -> u64 {
    static NODE: LazyLock<u64> = LazyLock::new(|| rand::random::<u64>() | 1);
    *NODE
}

/// Bumped at every change of who is here (a session registered or gone, a room joined or left,
/// a user key set), for the cluster's presence writer.
static PRESENCE_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PRESENCE_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

pub(crate) fn presence_changed() {
    PRESENCE_EPOCH.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    PRESENCE_CHANGED.notify_one();
}

/// The presence epoch now.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn presence_epoch() -> u64 {
    PRESENCE_EPOCH.load(std::sync::atomic::Ordering::Acquire)
}

/// Resolves at the next presence change (or at once if one happened since the last call).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) async fn presence_change() {
    PRESENCE_CHANGED.notified().await
}

/// One session as presence sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Presence {
    pub(crate) endpoint: &'static str,
    pub(crate) user: Option<String>,
    pub(crate) rooms: Vec<String>,
}

/// Every session of this process (server sessions only: clients are not registered).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn presence_snapshot() -> HashMap<u64, Presence> {
    let t = table();
    t.sessions
        .iter()
        .map(|(id, s)| {
            let presence = Presence {
                endpoint: s.inner.endpoint_name,
                user: t.users.get(id).cloned(),
                rooms: t
                    .memberships
                    .get(id)
                    .map(|r| r.iter().cloned().collect())
                    .unwrap_or_default(),
            };
            (id.as_u64(), presence)
        })
        .collect()
}

static SHUTTING_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`shutdown`] has been called: new handshakes are then refused with 503.
pub(crate) fn shutting_down() -> bool {
    SHUTTING_DOWN.load(std::sync::atomic::Ordering::Acquire)
}

/// A session's place in the registry: registered on creation, removed when dropped (however
/// the connection future ends, even if it is dropped before its first poll).
pub(crate) struct Registered(SessionId);

impl Registered {
    pub(crate) fn new(session: &Session) -> Self {
        register(session);
        Registered(session.id())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        unregister(self.0);
    }
}

fn register(session: &Session) {
    let mut t = table();
    let (endpoint, name) = (session.inner.endpoint, session.inner.endpoint_name);
    t.names.entry(name).or_insert((endpoint, name));
    t.sessions.insert(session.id(), session.clone());
    REGISTRY.count.send_replace(t.sessions.len());
    drop(t);
    presence_changed();
}

/// Removes a session and its room memberships.
fn unregister(id: SessionId) {
    let mut t = table();
    t.users.remove(&id);
    if let Some(session) = t.sessions.remove(&id) {
        let endpoint = session.inner.endpoint;
        for room in t.memberships.remove(&id).unwrap_or_default() {
            let key = (endpoint, room);
            if let Some(members) = t.rooms.get_mut(&key) {
                members.remove(&id);
                if members.is_empty() {
                    t.rooms.remove(&key);
                }
            }
        }
    }
    REGISTRY.count.send_replace(t.sessions.len());
    drop(t);
    presence_changed();
}

pub(crate) fn sessions_of(endpoint: TypeId) -> Vec<Session> {
    table()
        .sessions
        .values()
        .filter(|s| s.inner.endpoint == endpoint)
        .cloned()
        .collect()
}

/// Number of sessions open in this process, all endpoints together.
///
/// A session counts from the moment its handshake succeeded until its `on_close` has returned.
///
/// ```
/// assert_eq!(ws_endpoint::open_session_count(), 0);
/// ```
pub fn open_session_count() -> usize {
    *REGISTRY.count.borrow()
}

/// A snapshot of every open session in this process, all endpoints together.
pub fn all_open_sessions() -> Vec<Session> {
    table().sessions.values().cloned().collect()
}

/// Closes every open session with 1001 ("server shutting down") and waits until each one's
/// `on_close` has run, or `grace` has passed. Returns how many sessions were still open when it
/// gave up (0 when all closed in time).
///
/// From the first call on, this process refuses new WebSocket handshakes with 503, and sessions
/// whose handshake was already under way are closed as they register.
///
/// Call it before stopping the server; [`WsServerExt::with_ws_shutdown`](crate::WsServerExt)
/// wires it to Ctrl-C / SIGTERM for you.
///
/// ```no_run
/// # async fn f(handle: actix_web::dev::ServerHandle) {
/// ws_endpoint::shutdown(std::time::Duration::from_secs(5)).await;
/// handle.stop(true).await;
/// # }
/// ```
pub async fn shutdown(grace: Duration) -> usize {
    SHUTTING_DOWN.store(true, std::sync::atomic::Ordering::Release);
    let reason = CloseReason::new(CloseCode::Away, "server shutting down");
    let mut rx = REGISTRY.count.subscribe();
    let all_closed = async {
        loop {
            let closes = all_open_sessions().into_iter().map(|session| {
                let reason = reason.clone();
                async move {
                    let _ = session.close(reason).await;
                }
            });
            futures_util::future::join_all(closes).await;
            if open_session_count() == 0 {
                return;
            }
            // Wait for the count to change (a session ended, or one registered late), or
            // re-check shortly, then close whatever is open again.
            let _ = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
        }
    };
    match tokio::time::timeout(grace, all_closed).await {
        Ok(()) => 0,
        Err(_) => open_session_count(),
    }
}
