//! Admission control before the upgrade: `max_sessions` per endpoint and `max_sessions_per_ip`,
//! counted per process from the admission to the end of the session's task.

use std::{
    any::TypeId,
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, MutexGuard},
};

use actix_web::{http::header, HttpResponse};

use crate::config::EndpointConfig;

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

static COUNTS: Mutex<Option<HashMap<TypeId, Counts>>> = Mutex::new(None);

fn counts() -> MutexGuard<'static, Option<HashMap<TypeId, Counts>>> {
    COUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A place taken by an admitted handshake; given back when dropped (the session ended, or the
/// upgrade failed after admission).
pub(crate) struct Admitted {
    endpoint: TypeId,
    ip: Option<IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut guard = counts();
        let Some(c) = guard
            .get_or_insert_with(HashMap::new)
            .get_mut(&self.endpoint)
        else {
            return;
        };
        c.total = c.total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = c.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    c.per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Why a handshake was not admitted.
pub(crate) enum Refusal {
    MaxSessions,
    MaxSessionsPerIp,
}

impl Refusal {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Refusal::MaxSessions => "max_sessions",
            Refusal::MaxSessionsPerIp => "max_sessions_per_ip",
        }
    }

    pub(crate) fn response(&self, config: &EndpointConfig) -> HttpResponse {
        match self {
            Refusal::MaxSessions => HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "5"))
                .body(format!(
                    "WebSocket handshake refused: this endpoint has its {} sessions",
                    config.max_sessions.unwrap_or_default()
                )),
            Refusal::MaxSessionsPerIp => HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, "5"))
                .body(format!(
                    "WebSocket handshake refused: at most {} sessions per client address",
                    config.max_sessions_per_ip.unwrap_or_default()
                )),
        }
    }
}

/// Takes a place for a session of `endpoint` from `ip`, or says why not. Check and count are one
/// step under one lock, so concurrent handshakes cannot overshoot a limit.
pub(crate) fn admit(
    endpoint: TypeId,
    ip: Option<IpAddr>,
    config: &EndpointConfig,
) -> Result<Admitted, Refusal> {
    let mut guard = counts();
    let c = guard
        .get_or_insert_with(HashMap::new)
        .entry(endpoint)
        .or_default();
    if config.max_sessions.is_some_and(|max| c.total >= max) {
        return Err(Refusal::MaxSessions);
    }
    if let (Some(max), Some(ip)) = (config.max_sessions_per_ip, ip) {
        if c.per_ip.get(&ip).copied().unwrap_or(0) >= max {
            return Err(Refusal::MaxSessionsPerIp);
        }
    }
    c.total += 1;
    if let Some(ip) = ip {
        *c.per_ip.entry(ip).or_default() += 1;
    }
    Ok(Admitted { endpoint, ip })
}
