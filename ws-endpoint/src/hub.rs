//! Open sessions, broadcast and rooms of one endpoint, in this process.
//!
//! JSR 356 gives `session.getOpenSessions()` and leaves broadcast loops to the application; here
//! a [`Hub`] broadcasts to every session of an endpoint, to all but one, to a filtered set, or to
//! a room. Sessions [`join`](crate::Session::join) and [`leave`](crate::Session::leave) rooms
//! (and leave all of them when they close).
//!
//! **A broadcast never waits.** It is a plain function, not `async`: the message is encoded
//! once and offered to each session's bounded outbound queue; a session whose queue is full is
//! dealt with by its endpoint's [`SlowConsumer`] policy — its copy is dropped (the default), or
//! the session is dropped. The [`Delivery`] report says how many got it.
//!
//! ```
//! use ws_endpoint::prelude::*;
//!
//! #[derive(Default)]
//! struct Chat { room: String }
//!
//! #[server_endpoint("/chat/{room}")]
//! impl Chat {
//!     #[on_open]
//!     fn open(&mut self, session: &Session, #[path_param] room: String) {
//!         session.join(&room);
//!         let _ = session.hub().to_room_except(&room, session, "someone joined");
//!         self.room = room;
//!     }
//!
//!     #[on_message]
//!     fn text(&mut self, session: &Session, msg: String) {
//!         let delivery = Chat::hub().to_room(&self.room, msg).unwrap();
//!         tracing::debug!(sent = delivery.sent, dropped = delivery.dropped, "relayed");
//!     }
//! }
//!
//! // From any task outside the handlers, e.g. a background job:
//! fn announce() {
//!     let _ = Chat::hub().broadcast("server restarting soon");
//! }
//! ```

use std::{
    any::TypeId,
    fmt,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;

pub use crate::config::SlowConsumer;
use crate::{
    close::{CloseCode, CloseReason},
    error::SendError,
    message::Sendable,
    registry,
    session::{OutFrame, Refused, Session, SessionId, Shared},
    wire::OpCode,
};

/// What a broadcast achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    /// Sessions the message was queued for.
    pub sent: usize,
    /// Sessions that did not get it because their queue was full.
    pub dropped: usize,
    /// Sessions that were closed (already, or by the [`SlowConsumer::Close`] policy).
    pub closed: usize,
}

/// A broadcast's frame, built once: every recipient's queue gets the same payload `Bytes`.
fn prepare(msg: impl Sendable) -> Result<OutFrame, SendError> {
    Ok(OutFrame::message(msg.into_message()?))
}

/// Where a broadcast goes.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Target<'a> {
    All,
    Room(&'a str),
    /// Every session with this user key.
    User(&'a str),
    /// One session.
    Session(ClusterSessionId),
}

/// A session's name across server processes: the node (process) it lives on and its
/// [`SessionId`] there. Its text form is `NODE-ID` (the node in hex): `3f2a…-17`.
///
/// ```
/// use ws_endpoint::ClusterSessionId;
/// let id: ClusterSessionId = "00000000000000ab-42".parse().unwrap();
/// assert_eq!((id.node, id.session), (0xab, 42));
/// assert_eq!(id.to_string(), "00000000000000ab-42");
/// assert!("42".parse::<ClusterSessionId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterSessionId {
    /// The process's node id (random, drawn at start).
    pub node: u64,
    /// The session's id in that process ([`SessionId::as_u64`]).
    pub session: u64,
}

impl fmt::Display for ClusterSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.node, self.session)
    }
}

impl std::str::FromStr for ClusterSessionId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not a cluster session id (NODE-ID, e.g. 00000000000000ab-42)");
        let (node, session) = s.split_once('-').ok_or_else(bad)?;
        if node.len() != 16 {
            return Err(bad());
        }
        Ok(ClusterSessionId {
            node: u64::from_str_radix(node, 16).map_err(|_| bad())?,
            session: session.parse().map_err(|_| bad())?,
        })
    }
}

/// A session as the cluster's presence knows it ([`Hub::cluster_room_members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The session, on whichever process it lives.
    pub id: ClusterSessionId,
    /// Its user key ([`Session::set_user`]), if it has one.
    pub user: Option<String>,
    /// The rooms it is in, sorted.
    pub rooms: Vec<String>,
}

/// A cluster query could not be answered (Redis unreachable or refusing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceError(pub String);

impl fmt::Display for PresenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cluster presence unavailable: {}", self.0)
    }
}

impl std::error::Error for PresenceError {}

/// The answer of a cluster query: a boxed future (the backplane is a trait object).
pub(crate) type MembersFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Member>, String>> + Send>>;

/// A link to the other server processes (the Redis backplane of [`crate::cluster`]): the hub
/// hands it every broadcast that travels and asks it who is where; it never reaches into
/// sessions, and delivers what it receives through [`deliver_remote`].
pub(crate) trait Backplane: Send + Sync + 'static {
    /// Publishes a broadcast of endpoint `endpoint` (its type name). Never waits.
    fn publish(&self, endpoint: &str, target: Target<'_>, text: bool, payload: &[u8]);
    /// Every session of endpoint `endpoint` on every live node (in `room`, if given).
    fn members(&self, endpoint: &'static str, room: Option<String>) -> MembersFuture;
}

static BACKPLANE: OnceLock<Box<dyn Backplane>> = OnceLock::new();

/// Installs the backplane; `false` if one was installed already.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn set_backplane(backplane: Box<dyn Backplane>) -> bool {
    BACKPLANE.set(backplane).is_ok()
}

/// The sessions, broadcasts and rooms of one endpoint in this process. Cheap to copy; get it
/// with `MyEndpoint::hub()`, [`Session::hub`], or [`Hub::of`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hub {
    endpoint: TypeId,
    /// The endpoint type's name: its key across processes.
    name: &'static str,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("sessions", &self.count())
            .finish()
    }
}

impl Hub {
    /// The hub of endpoint type `E`.
    pub fn of<E: 'static>() -> Hub {
        Hub {
            endpoint: TypeId::of::<E>(),
            name: std::any::type_name::<E>(),
        }
    }

    pub(crate) fn for_type(endpoint: TypeId, name: &'static str) -> Hub {
        Hub { endpoint, name }
    }

    /// The endpoint's type.
    pub(crate) fn endpoint_type(&self) -> TypeId {
        self.endpoint
    }

    /// The endpoint type's name: its key across processes.
    pub(crate) fn endpoint_name(&self) -> &'static str {
        self.name
    }

    fn publish(&self, target: Target<'_>, frame: &OutFrame) {
        if let Some(b) = BACKPLANE.get() {
            b.publish(
                self.name,
                target,
                frame.opcode == OpCode::Text,
                &frame.payload,
            );
        }
    }

    /// A snapshot of the endpoint's open sessions (JSR 356 `getOpenSessions`).
    pub fn sessions(&self) -> Vec<Session> {
        registry::sessions_of(self.endpoint)
    }

    /// How many sessions of the endpoint are open.
    pub fn count(&self) -> usize {
        registry::table()
            .sessions
            .values()
            .filter(|s| s.inner.endpoint == self.endpoint)
            .count()
    }

    /// The members of `room`, a snapshot.
    pub fn room_members(&self, room: &str) -> Vec<Session> {
        let t = registry::table();
        t.rooms
            .get(&(self.endpoint, room.to_owned()))
            .map(|members| members.sessions().cloned().collect())
            .unwrap_or_default()
    }

    /// The members of `room` as the list broadcasts share (see [`registry::Room`]).
    fn room_snapshot(&self, room: &str) -> Option<Arc<[Session]>> {
        registry::table()
            .rooms
            .get_mut(&(self.endpoint, room.to_owned()))
            .map(|members| members.snapshot())
    }

    /// The rooms that have members, sorted.
    pub fn rooms(&self) -> Vec<String> {
        let mut rooms: Vec<String> = registry::table()
            .rooms
            .keys()
            .filter(|(e, _)| *e == self.endpoint)
            .map(|(_, r)| r.clone())
            .collect();
        rooms.sort();
        rooms
    }

    /// Sends `msg` to every open session of the endpoint (and, with [`crate::cluster`], of the
    /// same endpoint in the other processes).
    pub fn broadcast(&self, msg: impl Sendable) -> Result<Delivery, SendError> {
        let prepared = prepare(msg)?;
        let delivery = deliver(&self.sessions(), &prepared);
        self.publish(Target::All, &prepared);
        Ok(delivery)
    }

    /// Sends `msg` to every open session of the endpoint but `except` (typically the sender),
    /// here and in the other processes.
    pub fn broadcast_except(
        &self,
        except: &Session,
        msg: impl Sendable,
    ) -> Result<Delivery, SendError> {
        let prepared = prepare(msg)?;
        let id = except.id();
        let targets: Vec<Session> = self
            .sessions()
            .into_iter()
            .filter(|s| s.id() != id)
            .collect();
        let delivery = deliver(&targets, &prepared);
        self.publish(Target::All, &prepared);
        Ok(delivery)
    }

    /// Sends `msg` to the sessions of the endpoint in this process for which `filter` returns
    /// true (a filter does not travel to other processes).
    pub fn broadcast_filter(
        &self,
        filter: impl Fn(&Session) -> bool,
        msg: impl Sendable,
    ) -> Result<Delivery, SendError> {
        let prepared = prepare(msg)?;
        let targets: Vec<Session> = self.sessions().into_iter().filter(|s| filter(s)).collect();
        Ok(deliver(&targets, &prepared))
    }

    /// Sends `msg` to every member of `room`, here and in the other processes.
    pub fn to_room(&self, room: &str, msg: impl Sendable) -> Result<Delivery, SendError> {
        let prepared = prepare(msg)?;
        let members = self.room_snapshot(room);
        let delivery = deliver(members.iter().flat_map(|m| m.iter()), &prepared);
        self.publish(Target::Room(room), &prepared);
        Ok(delivery)
    }

    /// Sends `msg` to every member of `room` but `except`, here and in the other processes.
    pub fn to_room_except(
        &self,
        room: &str,
        except: &Session,
        msg: impl Sendable,
    ) -> Result<Delivery, SendError> {
        let prepared = prepare(msg)?;
        let id = except.id();
        let members = self.room_snapshot(room);
        let others = members
            .iter()
            .flat_map(|m| m.iter())
            .filter(|s| s.id() != id);
        let delivery = deliver(others, &prepared);
        self.publish(Target::Room(room), &prepared);
        Ok(delivery)
    }
}

impl Hub {
    /// The sessions of this endpoint in this process whose user key is `user`.
    pub fn user_sessions(&self, user: &str) -> Vec<Session> {
        let t = registry::table();
        t.users
            .iter()
            .filter(|(_, u)| u.as_str() == user)
            .filter_map(|(id, _)| t.sessions.get(id))
            .filter(|s| s.inner.endpoint == self.endpoint)
            .cloned()
            .collect()
    }

    /// Sends `msg` to every session of this endpoint whose user key
    /// ([`Session::set_user`]) is `user`, here and in the other processes.
    pub fn to_user(&self, user: &str, msg: impl Sendable) -> Result<Delivery, SendError> {
        let prepared = prepare(msg)?;
        let delivery = deliver(&self.user_sessions(user), &prepared);
        self.publish(Target::User(user), &prepared);
        Ok(delivery)
    }

    /// Sends `msg` to one session of this endpoint, on whichever process it lives
    /// ([`Session::cluster_id`]). The [`Delivery`] counts it when the session is here; for
    /// another process it is handed to the backplane (nothing is counted: that process
    /// delivers it, if the session is still open).
    pub fn to_session(
        &self,
        id: ClusterSessionId,
        msg: impl Sendable,
    ) -> Result<Delivery, SendError> {
        let prepared = prepare(msg)?;
        if id.node == registry::node() {
            let target: Vec<Session> = registry::table()
                .sessions
                .get(&SessionId(id.session))
                .filter(|s| s.inner.endpoint == self.endpoint)
                .cloned()
                .into_iter()
                .collect();
            return Ok(deliver(&target, &prepared));
        }
        self.publish(Target::Session(id), &prepared);
        Ok(Delivery::default())
    }

    /// Every session of this endpoint on every server process (from the cluster's presence,
    /// [`crate::cluster`]); without a backplane, this process's. Eventually consistent: a
    /// process's changes are written within moments (see
    /// [`flush_presence`](crate::cluster::flush_presence)), a dead process's sessions vanish
    /// when its presence expires.
    pub async fn cluster_members(&self) -> Result<Vec<Member>, PresenceError> {
        self.members(None).await
    }

    /// How many sessions of this endpoint are open on every server process (see
    /// [`cluster_members`](Self::cluster_members)).
    pub async fn cluster_count(&self) -> Result<usize, PresenceError> {
        Ok(self.members(None).await?.len())
    }

    /// The members of `room` on every server process (see
    /// [`cluster_members`](Self::cluster_members)), ordered by id.
    pub async fn cluster_room_members(&self, room: &str) -> Result<Vec<Member>, PresenceError> {
        self.members(Some(room.to_owned())).await
    }

    async fn members(&self, room: Option<String>) -> Result<Vec<Member>, PresenceError> {
        let mut members = match BACKPLANE.get() {
            Some(b) => b.members(self.name, room).await.map_err(PresenceError)?,
            None => local_members(self.endpoint, room.as_deref()),
        };
        members.sort_by_key(|m| m.id);
        Ok(members)
    }
}

/// This process's sessions of `endpoint` as members (in `room`, if given).
fn local_members(endpoint: TypeId, room: Option<&str>) -> Vec<Member> {
    let t = registry::table();
    t.sessions
        .values()
        .filter(|s| s.inner.endpoint == endpoint)
        .filter_map(|s| {
            let id = s.id();
            let rooms: Vec<String> = t
                .memberships
                .get(&id)
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default();
            if room.is_some_and(|r| !rooms.iter().any(|x| x == r)) {
                return None;
            }
            Some(Member {
                id: ClusterSessionId {
                    node: registry::node(),
                    session: id.as_u64(),
                },
                user: t.users.get(&id).cloned(),
                rooms,
            })
        })
        .collect()
}

/// Where a broadcast from another process goes, as it arrived.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum RemoteTarget {
    All,
    Room(String),
    User(String),
    Session(ClusterSessionId),
}

/// Delivers a broadcast that another process published to this process's sessions.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn deliver_remote(endpoint: &str, target: RemoteTarget, text: bool, payload: Bytes) {
    let Some(&(type_id, name)) = registry::table().names.get(endpoint) else {
        return; // no session of that endpoint has ever opened here
    };
    let hub = Hub::for_type(type_id, name);
    let room: Option<Arc<[Session]>>;
    let listed: Vec<Session>;
    let targets: &[Session] = match target {
        RemoteTarget::All => {
            listed = hub.sessions();
            &listed
        }
        RemoteTarget::Room(name) => {
            room = hub.room_snapshot(&name);
            room.as_deref().unwrap_or_default()
        }
        RemoteTarget::User(user) => {
            listed = hub.user_sessions(&user);
            &listed
        }
        RemoteTarget::Session(id) if id.node == registry::node() => {
            listed = registry::table()
                .sessions
                .get(&SessionId(id.session))
                .filter(|s| s.inner.endpoint == type_id)
                .cloned()
                .into_iter()
                .collect();
            &listed
        }
        RemoteTarget::Session(_) => return, // another node's session
    };
    let opcode = if text { OpCode::Text } else { OpCode::Binary };
    deliver(targets.iter(), &OutFrame::new(opcode, payload));
}

/// Queues a broadcast for `targets`, never waiting: a session whose queue is full gets the
/// endpoint's `slow_consumer` policy.
pub(crate) fn deliver<'a>(
    targets: impl IntoIterator<Item = &'a Session>,
    frame: &OutFrame,
) -> Delivery {
    deliver_or(targets, frame, None)
}

/// Queues a recorded room message ([`crate::history`]) for `targets`, never waiting and never
/// dropping it: a session whose queue is full is closed (1008, as by `slow_consumer =
/// "close"`) whatever its endpoint's policy, since a silent gap would break the history's
/// promise; its client reconnects with the last id it saw and gets the rest.
pub(crate) fn deliver_recorded(targets: &[Session], frame: &OutFrame) {
    deliver_or(targets, frame, Some(SlowConsumer::Close));
}

fn deliver_or<'a>(
    targets: impl IntoIterator<Item = &'a Session>,
    frame: &OutFrame,
    policy: Option<SlowConsumer>,
) -> Delivery {
    let mut delivery = Delivery::default();
    // Compressed once per set of permessage-deflate parameters, not once per session.
    let mut shared = Shared::new(frame.clone());
    for session in targets {
        match session.offer(shared.for_queue(&session.inner.out), frame.payload.len()) {
            Ok(()) => delivery.sent += 1,
            Err(Refused::Closed) => delivery.closed += 1,
            // Full, or behind a message being sent in parts with the budget used up.
            Err(Refused::Full(_) | Refused::Behind(_)) => {
                match policy.unwrap_or(session.inner.slow_consumer) {
                    SlowConsumer::DropMessages => {
                        session.inner.metrics.dropped.increment(1);
                        delivery.dropped += 1
                    }
                    SlowConsumer::Close => {
                        session.inner.abort(CloseReason::new(
                            CloseCode::Policy,
                            "slow consumer: outbound queue full",
                        ));
                        delivery.closed += 1;
                    }
                }
            }
        }
    }
    delivery
}

impl Session {
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
        join(self, room.as_ref())
    }

    /// Joins `room` unless it already holds `capacity` sessions (of this endpoint, in this
    /// process). The count and the join are one step under the rooms' lock, so two sessions
    /// racing for the last place cannot both get it. `Ok(true)`: joined; `Ok(false)`: already a
    /// member, or the session is closed; `Err(RoomFull)`: full, not joined.
    ///
    /// ```
    /// use ws_endpoint::prelude::*;
    ///
    /// struct Table;
    ///
    /// #[server_endpoint("/table/{id}")]
    /// impl Table {
    ///     #[on_open]
    ///     async fn open(session: &Session, #[path_param] id: String) -> Self {
    ///         if let Err(full) = session.join_limited(&id, 4) {
    ///             // 1013 "try again later"
    ///             let _ = session.close(CloseReason::new(1013, full.to_string())).await;
    ///         }
    ///         Table
    ///     }
    /// }
    /// ```
    pub fn join_limited(&self, room: impl AsRef<str>, capacity: usize) -> Result<bool, RoomFull> {
        let room = room.as_ref();
        let id: SessionId = self.id();
        let mut t = registry::table();
        if !t.sessions.contains_key(&id) {
            return Ok(false);
        }
        let key = (self.inner.endpoint, room.to_owned());
        let members = t.rooms.entry(key.clone()).or_default();
        if members.contains(&id) {
            return Ok(false);
        }
        if members.len() >= capacity {
            if members.is_empty() {
                t.rooms.remove(&key);
            }
            return Err(RoomFull {
                room: room.to_owned(),
                capacity,
            });
        }
        members.insert(id, self.clone());
        t.memberships.entry(id).or_default().insert(room.to_owned());
        drop(t);
        registry::presence_changed();
        Ok(true)
    }

    /// Leaves `room`; returns false if not a member.
    pub fn leave(&self, room: impl AsRef<str>) -> bool {
        leave(self, room.as_ref())
    }

    /// The rooms this session is in, sorted.
    pub fn rooms(&self) -> Vec<String> {
        rooms_of(self)
    }

    /// Sets this session's user key (a user id, a nickname): [`Hub::to_user`] reaches every
    /// session with it, on every server process, and the cluster's presence lists it
    /// ([`Member::user`]). Returns false if the session is closed.
    pub fn set_user(&self, user: impl Into<String>) -> bool {
        let mut t = registry::table();
        if !t.sessions.contains_key(&self.id()) {
            return false;
        }
        t.users.insert(self.id(), user.into());
        drop(t);
        registry::presence_changed();
        true
    }

    /// This session's user key, if set.
    pub fn user(&self) -> Option<String> {
        registry::table().users.get(&self.id()).cloned()
    }

    /// This session's id across server processes: [`Hub::to_session`] reaches it from any
    /// of them.
    pub fn cluster_id(&self) -> ClusterSessionId {
        ClusterSessionId {
            node: registry::node(),
            session: self.id().as_u64(),
        }
    }
}

/// [`Session::join_limited`] found the room full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomFull {
    /// The room.
    pub room: String,
    /// Its capacity.
    pub capacity: usize,
}

impl std::fmt::Display for RoomFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "room `{}` is full ({} members)",
            self.room, self.capacity
        )
    }
}

impl std::error::Error for RoomFull {}

/// Room membership, called by [`Session::join`] and friends.
fn join(session: &Session, room: &str) -> bool {
    let id: SessionId = session.id();
    let mut t = registry::table();
    if !t.sessions.contains_key(&id) {
        return false; // closed: not registered any more
    }
    t.rooms
        .entry((session.inner.endpoint, room.to_owned()))
        .or_default()
        .insert(id, session.clone());
    let joined = t.memberships.entry(id).or_default().insert(room.to_owned());
    drop(t);
    if joined {
        registry::presence_changed();
    }
    joined
}

fn leave(session: &Session, room: &str) -> bool {
    let id = session.id();
    let mut t = registry::table();
    let key = (session.inner.endpoint, room.to_owned());
    if let Some(members) = t.rooms.get_mut(&key) {
        members.remove(&id);
        if members.is_empty() {
            t.rooms.remove(&key);
        }
    }
    let left = t
        .memberships
        .get_mut(&id)
        .is_some_and(|rooms| rooms.remove(room));
    drop(t);
    if left {
        registry::presence_changed();
    }
    left
}

fn rooms_of(session: &Session) -> Vec<String> {
    registry::table()
        .memberships
        .get(&session.id())
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default()
}
