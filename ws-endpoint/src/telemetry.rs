//! Metrics through the `metrics` facade: the application installs the exporter (Prometheus,
//! StatsD, …); without one every handle is a no-op. Names are Prometheus-style, prefixed
//! `ws_endpoint_`, and every series carries an `endpoint` label (the path template).
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `ws_endpoint_sessions_open` | gauge | `endpoint` | sessions open now |
//! | `ws_endpoint_sessions_opened_total` | counter | `endpoint` | sessions opened (upgrades done) |
//! | `ws_endpoint_sessions_closed_total` | counter | `endpoint`, `code` | sessions ended, by the close code `on_close` got (1006: no close handshake) |
//! | `ws_endpoint_messages_received_total` | counter | `endpoint`, `kind` (`text`, `binary`) | data messages received |
//! | `ws_endpoint_received_bytes_total` | counter | `endpoint`, `kind` | their payload bytes |
//! | `ws_endpoint_messages_sent_total` | counter | `endpoint`, `kind` | data messages queued to be sent (replies, sends, broadcasts) |
//! | `ws_endpoint_sent_bytes_total` | counter | `endpoint`, `kind` | their payload bytes |
//! | `ws_endpoint_errors_total` | counter | `endpoint`, `kind` | errors (`message_too_big`, `invalid_utf8`, `unsupported`, `protocol`, `decode`, `handler`, `panic`, `send`, `rate_limited`, …) |
//! | `ws_endpoint_broadcast_dropped_total` | counter | `endpoint` | broadcast deliveries dropped by `slow_consumer = "drop_messages"` |
//! | `ws_endpoint_handshakes_refused_total` | counter | `endpoint`, `reason` | upgrades refused (`not_websocket`, `origin`, `host`, `shutting_down`, `path_param`, `handshake` (an extractor or `on_handshake`), `max_sessions`, `max_sessions_per_ip`) |
//! | `ws_endpoint_handler_seconds` | histogram | `endpoint`, `handler` (`on_message`) | time in `on_message` handlers, reply queued included; only after [`set_handler_timing(true)`](set_handler_timing) |

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::{error::EndpointError, wire::OpCode};

/// The per-session handles (fetched once, at the upgrade: a message costs a no-op call without
/// a recorder, an atomic add with one).
pub(crate) struct SessionMetrics {
    endpoint: &'static str,
    open: Gauge,
    in_text: Counter,
    in_text_bytes: Counter,
    in_binary: Counter,
    in_binary_bytes: Counter,
    out_text: Counter,
    out_text_bytes: Counter,
    out_binary: Counter,
    out_binary_bytes: Counter,
    pub(crate) dropped: Counter,
    pub(crate) handler: Histogram,
    /// Whether handler times are measured ([`set_handler_timing`]).
    pub(crate) timed: bool,
}

/// The path template, as a `&'static str` label (one per endpoint, leaked once).
fn intern(path: &str) -> &'static str {
    use std::{collections::HashSet, sync::Mutex};
    static PATHS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(p) = set.get(path) {
        return p;
    }
    let leaked: &'static str = Box::leak(path.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

static HANDLER_TIMING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns on `ws_endpoint_handler_seconds`, the histogram of time spent in `on_message` handlers
/// (off by default). Every other metric is always recorded, and costs nothing without a
/// recorder (its handle is a no-op); the histogram costs two clock reads per message whether or
/// not a recorder is installed, so it is measured only when asked for. Applies to sessions
/// opened afterwards.
pub fn set_handler_timing(on: bool) {
    HANDLER_TIMING.store(on, std::sync::atomic::Ordering::Relaxed);
}

impl SessionMetrics {
    pub(crate) fn new(path: &str) -> Self {
        let endpoint = intern(path);
        let kind = |k: &'static str| [("endpoint", endpoint), ("kind", k)];
        SessionMetrics {
            endpoint,
            open: gauge!("ws_endpoint_sessions_open", "endpoint" => endpoint),
            in_text: counter!("ws_endpoint_messages_received_total", &kind("text")),
            in_text_bytes: counter!("ws_endpoint_received_bytes_total", &kind("text")),
            in_binary: counter!("ws_endpoint_messages_received_total", &kind("binary")),
            in_binary_bytes: counter!("ws_endpoint_received_bytes_total", &kind("binary")),
            out_text: counter!("ws_endpoint_messages_sent_total", &kind("text")),
            out_text_bytes: counter!("ws_endpoint_sent_bytes_total", &kind("text")),
            out_binary: counter!("ws_endpoint_messages_sent_total", &kind("binary")),
            out_binary_bytes: counter!("ws_endpoint_sent_bytes_total", &kind("binary")),
            dropped: counter!("ws_endpoint_broadcast_dropped_total", "endpoint" => endpoint),
            handler: histogram!(
                "ws_endpoint_handler_seconds",
                "endpoint" => endpoint,
                "handler" => "on_message"
            ),
            timed: HANDLER_TIMING.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The session is open.
    pub(crate) fn opened(&self) {
        counter!("ws_endpoint_sessions_opened_total", "endpoint" => self.endpoint).increment(1);
        self.open.increment(1.0);
    }

    /// The session ended with `code` (what `on_close` got).
    pub(crate) fn closed(&self, code: u16) {
        self.open.decrement(1.0);
        counter!(
            "ws_endpoint_sessions_closed_total",
            "endpoint" => self.endpoint,
            "code" => code.to_string()
        )
        .increment(1);
    }

    /// A data message arrived.
    pub(crate) fn received(&self, text: bool, bytes: usize) {
        if text {
            self.in_text.increment(1);
            self.in_text_bytes.increment(bytes as u64);
        } else {
            self.in_binary.increment(1);
            self.in_binary_bytes.increment(bytes as u64);
        }
    }

    /// More bytes of a message already counted (a part or a chunk after the first).
    pub(crate) fn received_bytes(&self, text: bool, bytes: usize) {
        if text {
            self.in_text_bytes.increment(bytes as u64);
        } else {
            self.in_binary_bytes.increment(bytes as u64);
        }
    }

    /// A frame was queued (control frames are not counted).
    pub(crate) fn sent(&self, opcode: OpCode, bytes: usize) {
        match opcode {
            OpCode::Text => {
                self.out_text.increment(1);
                self.out_text_bytes.increment(bytes as u64);
            }
            OpCode::Binary => {
                self.out_binary.increment(1);
                self.out_binary_bytes.increment(bytes as u64);
            }
            _ => {}
        }
    }

    /// An error of this session (whether or not an `on_error` handles it).
    pub(crate) fn error(&self, err: &EndpointError) {
        counter!(
            "ws_endpoint_errors_total",
            "endpoint" => self.endpoint,
            "kind" => err.kind_label()
        )
        .increment(1);
    }
}

/// An upgrade refused before the 101.
pub(crate) fn refused(path: &str, reason: &'static str) {
    counter!(
        "ws_endpoint_handshakes_refused_total",
        "endpoint" => intern(path),
        "reason" => reason
    )
    .increment(1);
}
