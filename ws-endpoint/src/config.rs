//! Endpoint settings: the attributes of `#[server_endpoint]`, overridable at runtime.

use std::time::Duration;

use std::str::FromStr;

/// What a broadcast does with a session whose outbound queue has no room for it (a slow
/// consumer); set per endpoint with `slow_consumer = "drop_messages"` or `"close"`.
///
/// A recorded room message ([`Hub::to_room_recorded`](crate::Hub::to_room_recorded)) is the
/// exception: it is never dropped, so a session without room for it is always closed, as by
/// `Close` (its client resumes from its last id: [`crate::history`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumer {
    /// Skip this message for that session (counted in [`Delivery::dropped`](crate::Delivery));
    /// the session stays open and gets later messages once its queue has room. The default.
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

/// Default `max_message_size`: 64 KiB, per message after reassembling fragments.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Default heartbeat ping interval.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Default time a peer has to answer a heartbeat ping.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `max_buffered`: 256 KiB of outbound queue per session.
///
/// Why this size: a burst a healthy reader must not lose (300 chat lines, a snapshot of a few
/// hundred JSON objects) is far below it; a reader on a fast link drains it in milliseconds; it
/// is 4 x the default 64 KiB message limit, so an echo of the largest default message never
/// waits; and 10,000 stalled readers hold 2.5 GiB at most, which the process-wide cap
/// ([`set_max_buffered_total`](crate::set_max_buffered_total), 1 GiB by default) bounds further.
/// uWebSockets defaults to 64 KiB with 16 KiB messages; Tomcat blocks the sender instead.
pub const DEFAULT_MAX_BUFFERED: usize = 256 * 1024;
/// Default time a send may wait for room in a session's outbound queue.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// permessage-deflate (RFC 7692) settings: on by default, as in Tomcat; set with the
/// `compression` attribute (`compression = false`, or
/// `compression(level = 1, min_size = 256, context_takeover = true)`) or at runtime with
/// [`EndpointService::compression`](crate::EndpointService::compression).
///
/// **Default: no context takeover.** Every message is compressed on its own, with compressors
/// shared per thread, and the client is asked to do the same, so that an idle connection holds
/// no zlib state at all (it costs what an uncompressed one does). `context_takeover = true`
/// keeps a compressor and an inflater per connection (about 270 KiB and 40 KiB, allocated at
/// the first compressed message each way; measured figures in the README): repetitive small
/// messages then shrink much more (a JSON update that repeats the last one's keys costs a few
/// bytes), at that memory per busy connection.
///
/// ```
/// use ws_endpoint::Compression;
/// let c = Compression::default();
/// assert_eq!((c.level, c.min_size, c.context_takeover), (6, 64, false));
/// let fast = Compression::default().level(1).min_size(512);
/// assert_eq!(fast.level, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compression {
    /// zlib level, 0 (store) to 9 (smallest); default 6, zlib's and Java's `Deflater` default.
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (RSV1 clear): deflate cannot
    /// shrink them enough to pay for its CPU. Default 64.
    pub min_size: usize,
    /// Keep the compression context across messages, both ways, when the client allows it
    /// (see above). Default `false`.
    pub context_takeover: bool,
    /// Largest window the server compresses with, 9 to 15 bits (default 15; a client may ask
    /// for less, down to 8).
    pub max_window_bits: u8,
}

impl Default for Compression {
    fn default() -> Self {
        Self {
            level: 6,
            min_size: 64,
            context_takeover: false,
            max_window_bits: 15,
        }
    }
}

impl Compression {
    /// Sets the zlib level (0 to 9).
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Sets the size below which messages go uncompressed.
    pub fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// Keeps (or not) the compression context across messages.
    pub fn context_takeover(mut self, keep: bool) -> Self {
        self.context_takeover = keep;
        self
    }

    /// Sets the largest window the server compresses with (clamped to 9..=15).
    pub fn max_window_bits(mut self, bits: u8) -> Self {
        self.max_window_bits = bits.clamp(9, 15);
        self
    }
}

/// The settings of one endpoint (JSR 356 `ServerEndpointConfig` plus what containers configure
/// elsewhere: idle timeout, heartbeat).
///
/// The macro builds one from the `#[server_endpoint(...)]` attributes; the value returned by
/// `MyEndpoint::endpoint()` lets the application override every field at runtime (from a config
/// file or the environment) through [`EndpointService`](crate::EndpointService)'s builder methods.
///
/// ```
/// use std::time::Duration;
/// use ws_endpoint::EndpointConfig;
/// let cfg = EndpointConfig::new("/echo")
///     .max_message_size(1 << 20)
///     .idle_timeout(Some(Duration::from_secs(60)));
/// assert_eq!(cfg.max_text_message_size, 1 << 20);
/// assert_eq!(cfg.max_binary_message_size, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointConfig {
    /// The actix-web path template, e.g. `/chat/{room}`.
    pub path: String,
    /// Largest text message accepted, in bytes (after reassembling fragments).
    pub max_text_message_size: usize,
    /// Largest binary message accepted, in bytes (after reassembling fragments).
    pub max_binary_message_size: usize,
    /// Subprotocols the endpoint speaks, in order of preference for documentation; the client's
    /// first offer that appears here is chosen.
    pub subprotocols: Vec<String>,
    /// Origins allowed besides the request's own (same-origin is always allowed; `"*"` allows any).
    pub allowed_origins: Vec<String>,
    /// Host names (`app.example`, any port) or `host:port`s the `Host` header may carry; `"*"`
    /// for any. Empty (the default): any host, except on a connection that arrived at a
    /// loopback address, where only loopback names are accepted (`localhost`, `127.0.0.0/8`,
    /// `[::1]`: the DNS-rebinding defence of development servers).
    pub allowed_hosts: Vec<String>,
    /// Close a session with 1001 after this long without a data message either way (or a ping
    /// from the peer). `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Send a ping this often. `None`: no heartbeat.
    pub ping_interval: Option<Duration>,
    /// A peer that does not answer a heartbeat ping within this time is considered dead.
    pub pong_timeout: Duration,
    /// A send that waits longer than this for room in the session's outbound queue (the peer
    /// has stopped reading) fails, and the peer is considered dead: the connection is dropped
    /// and `on_close` gets 1006. This is the slow-reader policy.
    pub send_timeout: Duration,
    /// What a broadcast does with a session whose outbound queue is full.
    pub slow_consumer: SlowConsumer,
    /// The outbound queue's budget in bytes (frame headers included). A send that does not fit
    /// waits (at most `send_timeout`); a broadcast that does not fit applies `slow_consumer`; a
    /// single message larger than the budget is taken when the queue is empty.
    pub max_buffered: usize,
    /// At most this many sessions of this endpoint in this process; a handshake beyond it is
    /// refused with 503 and `Retry-After`. `None`: no limit.
    pub max_sessions: Option<usize>,
    /// At most this many sessions of this endpoint per client address (see
    /// [`set_trusted_proxies`](crate::set_trusted_proxies)); beyond it, 429 and `Retry-After`.
    pub max_sessions_per_ip: Option<usize>,
    /// At most this many data messages from a client per period (a token bucket that allows
    /// bursts of the same size); a client over it gets `on_error(TooManyMessages)` and 1008.
    pub max_message_rate: Option<Rate>,
    /// Close a session with 1001 this long after it opened, whatever it is doing.
    pub max_lifetime: Option<Duration>,
    /// permessage-deflate: offered by every browser, accepted by default; `None`: declined
    /// (no `Sec-WebSocket-Extensions` in the response).
    pub compression: Option<Compression>,
}

/// A message rate: `messages` per `per`, written `"20/s"`, `"600/m"`, `"5/100ms"`.
///
/// ```
/// use std::time::Duration;
/// use ws_endpoint::Rate;
/// let rate: Rate = "20/s".parse().unwrap();
/// assert_eq!((rate.messages, rate.per), (20, Duration::from_secs(1)));
/// assert_eq!("600/m".parse::<Rate>().unwrap().per, Duration::from_secs(60));
/// assert!("fast".parse::<Rate>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Messages allowed per period (and the largest burst).
    pub messages: u32,
    /// The period.
    pub per: Duration,
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.per.as_millis() {
            1000 => write!(f, "{}/s", self.messages),
            60_000 => write!(f, "{}/m", self.messages),
            3_600_000 => write!(f, "{}/h", self.messages),
            ms => write!(f, "{}/{ms}ms", self.messages),
        }
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("`{s}` is not a rate: write `20/s`, `600/m`, `1000/h` or `5/100ms`");
        let (n, per) = s.trim().split_once('/').ok_or_else(err)?;
        let messages: u32 = n.trim().parse().map_err(|_| err())?;
        let per = per.trim();
        let per = match per {
            "s" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => {
                let (digits, unit) = other.split_at(
                    other
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(other.len()),
                );
                let v: u64 = digits.parse().map_err(|_| err())?;
                match unit {
                    "ms" => Duration::from_millis(v),
                    "s" => Duration::from_secs(v),
                    "m" | "min" => Duration::from_secs(v * 60),
                    _ => return Err(err()),
                }
            }
        };
        if messages == 0 || per.is_zero() {
            return Err(err());
        }
        Ok(Rate { messages, per })
    }
}

impl EndpointConfig {
    /// The defaults for an endpoint at `path`: 64 KiB messages, no subprotocols, same-origin
    /// only, no idle timeout, a ping every 30 s answered within 10 s, sends that wait at most 10 s.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            max_text_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_binary_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            subprotocols: Vec::new(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            idle_timeout: None,
            ping_interval: Some(DEFAULT_PING_INTERVAL),
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            slow_consumer: SlowConsumer::DropMessages,
            max_buffered: DEFAULT_MAX_BUFFERED,
            max_sessions: None,
            max_sessions_per_ip: None,
            max_message_rate: None,
            max_lifetime: None,
            compression: Some(Compression::default()),
        }
    }

    /// Sets permessage-deflate: `None` declines it.
    pub fn compression(mut self, compression: Option<Compression>) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the slow-consumer policy of broadcasts.
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.slow_consumer = policy;
        self
    }

    /// Sets the outbound queue's budget in bytes.
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.max_buffered = bytes;
        self
    }

    /// Sets the send timeout (the slow-reader policy).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Sets the limit for both text and binary messages.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_text_message_size = bytes;
        self.max_binary_message_size = bytes;
        self
    }

    /// Sets the limit for text messages only.
    pub fn max_text_message_size(mut self, bytes: usize) -> Self {
        self.max_text_message_size = bytes;
        self
    }

    /// Sets the limit for binary messages only.
    pub fn max_binary_message_size(mut self, bytes: usize) -> Self {
        self.max_binary_message_size = bytes;
        self
    }

    /// Sets the subprotocols.
    pub fn subprotocols<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.subprotocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the allowed cross origins (e.g. `https://app.example`; `"*"` for any).
    pub fn allowed_origins<S: Into<String>>(
        mut self,
        origins: impl IntoIterator<Item = S>,
    ) -> Self {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the host names the `Host` header may carry (`"app.example"`, `"app.example:8443"`;
    /// `"*"` for any); see [`allowed_hosts`](Self::allowed_hosts).
    pub fn allowed_hosts<S: Into<String>>(mut self, hosts: impl IntoIterator<Item = S>) -> Self {
        self.allowed_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the heartbeat: a ping every `interval` (`None` disables it), answered within
    /// `pong_timeout`.
    pub fn heartbeat(mut self, interval: Option<Duration>, pong_timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.pong_timeout = pong_timeout;
        self
    }
}
