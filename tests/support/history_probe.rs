//! A probe endpoint for room history and recovery (`tests/history.rs`, and across processes in
//! `tests/cluster.rs` through `cluster-node`).
//!
//! `/rec/{room}` (history: the last 1,000 messages) and `/short/{room}` (the last 5), with an
//! optional `?since=ID` (and `&pause=K`: K yields between the join and the replay;
//! `&cancel=true`: the replay is dropped once it has had to wait). On open:
//! `welcome` (then, with `since`, the replay; if it cannot be replayed, `lost:ERROR`). Each recorded message reads `ID|TEXT`. Text commands:
//! `say:X` records X in the room; `burst:N:P` records `P0` … `P{N-1}`, one after the other,
//! yielding between them (other sessions' handlers run meanwhile); `nohist:X` tries to record
//! on an endpoint without history (`error:…`). `/tight/{room}` is `/rec` with an 8 KiB outbound
//! budget (its closes are kept: `tight_closed`); `/brief/{room}` keeps messages for 300 ms.

use std::future::IntoFuture;

use serde::Deserialize;
use ws_endpoint::history::{History, MessageId};
use ws_endpoint::prelude::*;

#[derive(Deserialize)]
pub struct Since {
    since: Option<String>,
    /// Yields this many times between the join and the replay (other sessions' handlers run
    /// meanwhile: their messages are held for this one).
    #[serde(default)]
    pause: usize,
    /// Cancels the replay once it has had to wait (for room in the outbound queue).
    #[serde(default)]
    cancel: bool,
}

async fn open(session: &Session, room: &str, q: &Since) {
    let since = q.since.as_deref();
    match since {
        None => {
            session.join(room);
            let _ = session.send("welcome").await;
        }
        Some(since) => {
            let since: MessageId = match since.parse() {
                Ok(id) => id,
                Err(err) => {
                    let _ = session.send(format!("lost:{err}")).await;
                    session.join(room);
                    return;
                }
            };
            let replay = match session.join_since(room, &since) {
                Ok(replay) => replay,
                Err(err) => {
                    let _ = session.send(format!("error:{err}")).await;
                    return;
                }
            };
            // The session is a member already; room messages wait for the replay.
            let _ = session.send("welcome").await;
            for _ in 0..q.pause {
                tokio::task::yield_now().await;
            }
            if q.cancel {
                let replay = replay.into_future();
                tokio::select! {
                    biased;
                    _ = replay => {}
                    _ = tokio::task::yield_now() => {} // the replay waits: dropped
                }
            } else if let Err(err) = replay.await {
                let _ = session.send(format!("lost:{err}")).await;
            }
        }
    }
}

async fn command(hub: Hub, room: &str, msg: &str) -> Option<String> {
    let (cmd, rest) = msg.split_once(':').unwrap_or((msg, ""));
    let record = |text: String| async move {
        hub.to_room_recorded(room, move |id| format!("{id}|{text}"))
            .await
            .err()
            .map(|e| format!("error:{e}"))
    };
    match cmd {
        "say" => record(rest.to_owned()).await,
        "burst" => {
            let (n, prefix) = rest.split_once(':').unwrap_or((rest, ""));
            for i in 0..n.parse::<usize>().unwrap_or(0) {
                if let Some(err) = record(format!("{prefix}{i}")).await {
                    return Some(err);
                }
                tokio::task::yield_now().await;
            }
            None
        }
        "nohist" => Hub::of::<NoHistory>()
            .to_room_recorded(room, |_| rest.to_owned())
            .await
            .err()
            .map(|e| format!("error:{e}")),
        _ => Some(format!("unknown:{msg}")),
    }
}

/// An endpoint type that keeps no history.
pub struct NoHistory;

pub struct Rec {
    room: String,
}

#[server_endpoint("/rec/{room}", heartbeat = false)]
impl Rec {
    #[on_open]
    async fn open(session: &Session, #[path_param] room: String, q: web::Query<Since>) -> Self {
        Rec::hub().keep_history(History::last(1000));
        open(session, &room, &q).await;
        Rec { room }
    }

    #[on_message]
    async fn text(&mut self, msg: String) -> Option<String> {
        command(Rec::hub(), &self.room, &msg).await
    }
}

pub struct Short {
    room: String,
}

#[server_endpoint("/short/{room}", heartbeat = false)]
impl Short {
    #[on_open]
    async fn open(session: &Session, #[path_param] room: String, q: web::Query<Since>) -> Self {
        Short::hub().keep_history(History::last(5));
        open(session, &room, &q).await;
        Short { room }
    }

    #[on_message]
    async fn text(&mut self, msg: String) -> Option<String> {
        command(Short::hub(), &self.room, &msg).await
    }
}

/// A small outbound budget (8 KiB) and the default `slow_consumer` (drop messages).
pub struct Tight {
    room: String,
}

/// How `/tight` sessions closed (their `on_close`), per room: `(code, reason)`, in order.
static TIGHT_CLOSED: std::sync::Mutex<Vec<(String, u16, String)>> =
    std::sync::Mutex::new(Vec::new());
static TIGHT_CLOSE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Waits until `/tight/{room}` has had a session closed; returns that room's closes so far.
#[allow(dead_code)] // not in cluster-node
pub async fn tight_closed(room: &str) -> Vec<(u16, String)> {
    loop {
        let notified = TIGHT_CLOSE.notified();
        let closed: Vec<(u16, String)> = TIGHT_CLOSED
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _, _)| r == room)
            .map(|(_, code, reason)| (*code, reason.clone()))
            .collect();
        if !closed.is_empty() {
            return closed;
        }
        notified.await;
    }
}

#[server_endpoint("/tight/{room}", heartbeat = false, max_buffered = 8192)]
impl Tight {
    #[on_open]
    async fn open(session: &Session, #[path_param] room: String, q: web::Query<Since>) -> Self {
        Tight::hub().keep_history(History::last(1000));
        open(session, &room, &q).await;
        Tight { room }
    }

    #[on_message]
    async fn text(&mut self, msg: String) -> Option<String> {
        command(Tight::hub(), &self.room, &msg).await
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        TIGHT_CLOSED.lock().unwrap().push((
            self.room.clone(),
            reason.code_u16(),
            reason.reason.to_string(),
        ));
        TIGHT_CLOSE.notify_waiters();
    }
}

/// A history with an age limit of 300 ms (rooms go quiet fast).
pub struct Brief {
    room: String,
}

#[server_endpoint("/brief/{room}", heartbeat = false)]
impl Brief {
    #[on_open]
    async fn open(session: &Session, #[path_param] room: String, q: web::Query<Since>) -> Self {
        Brief::hub()
            .keep_history(History::last(1000).max_age(std::time::Duration::from_millis(300)));
        open(session, &room, &q).await;
        Brief { room }
    }

    #[on_message]
    async fn text(&mut self, msg: String) -> Option<String> {
        command(Brief::hub(), &self.room, &msg).await
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(Rec::endpoint())
        .service(Short::endpoint())
        .service(Tight::endpoint())
        .service(Brief::endpoint());
}
