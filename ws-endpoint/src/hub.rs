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

use std::{any::TypeId, fmt, str::FromStr};

use bytes::Bytes;
use bytestring::ByteString;

use crate::{
    close::{CloseCode, CloseReason},
    error::SendError,
    message::{Outgoing, Sendable},
    registry,
    session::{Session, SessionId},
};

/// What a broadcast does with a session whose outbound queue is full (a slow consumer); set per
/// endpoint with `slow_consumer = "drop_messages"` or `"close"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumer {
    /// Skip this message for that session (counted in [`Delivery::dropped`]); the session stays
    /// open and gets later messages once its queue has room. The default.
    #[default]
    DropMessages,
    /// Drop the session: its connection is closed at once (a close frame could not get through
    /// a full queue) and its `on_close` gets 1008 "slow consumer".
    Close,
}

impl FromStr for SlowConsumer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drop_messages" => Ok(SlowConsumer::DropMessages),
            "close" => Ok(SlowConsumer::Close),
            other => Err(format!(
                "unknown slow-consumer policy `{other}`: use \"drop_messages\" or \"close\""
            )),
        }
    }
}

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

/// A message encoded once for many recipients.
#[derive(Clone)]
pub(crate) enum Prepared {
    Text(ByteString),
    Binary(Bytes),
}

impl Prepared {
    pub(crate) fn new(msg: impl Sendable) -> Result<Self, SendError> {
        Ok(match msg.into_outgoing()? {
            Outgoing::Text(s) => Prepared::Text(ByteString::from(s)),
            Outgoing::Binary(b) => Prepared::Binary(b),
        })
    }
}

/// Result of offering a message to one session's queue without waiting.
pub(crate) enum Offer {
    Sent,
    Full,
    Closed,
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

    #[cfg(feature = "redis")]
    fn publish(&self, target: crate::cluster::Target<'_>, msg: &Prepared) {
        crate::cluster::publish(self.name, target, msg);
    }

    #[cfg(not(feature = "redis"))]
    fn publish(&self, _target: Target<'_>, _msg: &Prepared) {}

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
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| t.sessions.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
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
        let prepared = Prepared::new(msg)?;
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
        let prepared = Prepared::new(msg)?;
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
        let prepared = Prepared::new(msg)?;
        let targets: Vec<Session> = self.sessions().into_iter().filter(|s| filter(s)).collect();
        Ok(deliver(&targets, &prepared))
    }

    /// Sends `msg` to every member of `room`, here and in the other processes.
    pub fn to_room(&self, room: &str, msg: impl Sendable) -> Result<Delivery, SendError> {
        let prepared = Prepared::new(msg)?;
        let delivery = deliver(&self.room_members(room), &prepared);
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
        let prepared = Prepared::new(msg)?;
        let id = except.id();
        let targets: Vec<Session> = self
            .room_members(room)
            .into_iter()
            .filter(|s| s.id() != id)
            .collect();
        let delivery = deliver(&targets, &prepared);
        self.publish(Target::Room(room), &prepared);
        Ok(delivery)
    }
}

#[cfg(feature = "redis")]
use crate::cluster::Target;

/// Where a broadcast goes (without the `redis` feature it goes nowhere else).
#[cfg(not(feature = "redis"))]
#[allow(dead_code)]
enum Target<'a> {
    All,
    Room(&'a str),
}

/// Delivers a broadcast that another process published to this process's sessions.
#[cfg(feature = "redis")]
pub(crate) fn deliver_remote(endpoint: &str, room: Option<String>, msg: &Prepared) {
    let Some(&(type_id, name)) = registry::table().names.get(endpoint) else {
        return; // no session of that endpoint has ever opened here
    };
    let hub = Hub::for_type(type_id, name);
    let targets = match room {
        None => hub.sessions(),
        Some(room) => hub.room_members(&room),
    };
    deliver(&targets, msg);
}

fn deliver(targets: &[Session], msg: &Prepared) -> Delivery {
    let mut delivery = Delivery::default();
    for session in targets {
        match session.offer(msg) {
            Offer::Sent => delivery.sent += 1,
            Offer::Closed => delivery.closed += 1,
            Offer::Full => match session.inner.slow_consumer {
                SlowConsumer::DropMessages => delivery.dropped += 1,
                SlowConsumer::Close => {
                    session.inner.abort(CloseReason::new(
                        CloseCode::Policy,
                        "slow consumer: outbound queue full",
                    ));
                    delivery.closed += 1;
                }
            },
        }
    }
    delivery
}

/// Room membership, called by [`Session::join`] and friends.
pub(crate) fn join(session: &Session, room: &str) -> bool {
    let id: SessionId = session.id();
    let mut t = registry::table();
    if !t.sessions.contains_key(&id) {
        return false; // closed: not registered any more
    }
    t.rooms
        .entry((session.inner.endpoint, room.to_owned()))
        .or_default()
        .insert(id);
    t.memberships.entry(id).or_default().insert(room.to_owned())
}

pub(crate) fn leave(session: &Session, room: &str) -> bool {
    let id = session.id();
    let mut t = registry::table();
    let key = (session.inner.endpoint, room.to_owned());
    if let Some(members) = t.rooms.get_mut(&key) {
        members.remove(&id);
        if members.is_empty() {
            t.rooms.remove(&key);
        }
    }
    t.memberships
        .get_mut(&id)
        .is_some_and(|rooms| rooms.remove(room))
}

pub(crate) fn rooms_of(session: &Session) -> Vec<String> {
    registry::table()
        .memberships
        .get(&session.id())
        .map(|r| r.iter().cloned().collect())
        .unwrap_or_default()
}
