//! The connection future: on_open, the receive loop, limits, timers, and exactly one on_close.
//!
//! It reads the peer's byte stream, feeds it to the [`Decoder`](crate::wire::Decoder) and runs
//! the handlers one at a time, in arrival order. Replies and other sends go to the session's
//! outbound queue, which the response body drains (see `session::outbound`): it never writes to
//! the socket itself. On the server it has no task of its own: the response body runs it each
//! time actix-http pulls the body (see `drive`); a client runs it on its connection's thread.

use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{FutureExt as _, Stream};
use tokio::{
    sync::mpsc::OwnedPermit,
    time::{sleep_until, timeout, timeout_at},
};

use crate::{
    close::{CloseCode, CloseReason},
    config::EndpointConfig,
    endpoint::{Endpoint, OpenArgs, Opened, Params},
    error::{EndpointError, SendError},
    message::Message,
    session::{close_payload, Session},
    wire::{DataKind, Decoder, Event as WireEvent, WireError},
};

pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

pub(crate) async fn guarded<T>(fut: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(panic_message)
}

/// Hands an error to `on_error`, or logs it when the endpoint has none.
/// The endpoint instance with the path parameters its handlers take.
struct Live<E> {
    ep: E,
    params: Params,
}

async fn report<E: Endpoint>(ep: &mut Live<E>, session: &Session, err: EndpointError) {
    if matches!(err, EndpointError::Send(SendError::Closed)) && !session.is_open() {
        return; // a reply after the handler itself closed the session: nothing to report
    }
    session.inner.metrics.error(&err);
    if E::ON_ERROR {
        if let Err(panic) = guarded(ep.ep.on_error(session, &ep.params, err)).await {
            tracing::error!(session = %session.id(), panic, "on_error handler panicked");
        }
    } else {
        crate::error::log_unhandled(session.id(), session.path(), &err);
    }
}

/// Starts a server-side close; returns the reason `on_close` will see.
pub(crate) fn close_with(session: &Session, reason: CloseReason) -> CloseReason {
    let frame = close_payload(&reason);
    match session.inner.begin_close(reason.clone(), Some(frame)) {
        Ok(()) => reason,
        Err(_) => session.inner.close_reason().unwrap_or(reason),
    }
}

/// `on_error(err)`, then, if the error closes the session, the close frame its code says.
async fn fail<E: Endpoint>(ep: &mut Live<E>, session: &Session, err: EndpointError) -> CloseReason {
    let close = err
        .close_reason()
        .unwrap_or_else(|| CloseReason::new(CloseCode::Error, "internal server error"));
    report(ep, session, err).await;
    close_with(session, close)
}

/// The peer's byte stream, as chunks: the request payload on the server, the socket's read
/// half on the client. An error ends it like the end of the stream.
pub(crate) trait Input: Unpin {
    fn poll_chunk(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Bytes>>;
}

impl<S: Stream<Item = Result<Bytes, E>> + Unpin, E> Input for S {
    fn poll_chunk(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Bytes>> {
        match std::pin::Pin::new(self).poll_next(cx) {
            std::task::Poll::Ready(Some(Ok(chunk))) => std::task::Poll::Ready(Some(chunk)),
            std::task::Poll::Ready(_) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// The peer's byte stream and the decoder over it.
struct Reader<P> {
    payload: P,
    decoder: Decoder,
    chunk: Bytes,
    pos: usize,
    eof: bool,
}

enum ReadError {
    Wire(WireError),
    /// The peer's byte stream ended (or failed) without a close frame.
    Eof,
}

impl<P: Input> Reader<P> {
    /// The next event from what has already been read, without waiting: `None` when the
    /// current chunk is used up.
    fn try_next(&mut self) -> Option<Result<WireEvent, ReadError>> {
        if self.pos >= self.chunk.len() {
            return None;
        }
        let mut input = &self.chunk[self.pos..];
        let result = self.decoder.decode(&mut input);
        self.pos = self.chunk.len() - input.len();
        match result {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => None,
            Err(err) => Some(Err(ReadError::Wire(err))),
        }
    }

    /// The next event. Cancel-safe: what was read stays in `self`.
    async fn next(&mut self) -> Result<WireEvent, ReadError> {
        loop {
            if self.pos < self.chunk.len() {
                let mut input = &self.chunk[self.pos..];
                let result = self.decoder.decode(&mut input);
                self.pos = self.chunk.len() - input.len();
                match result {
                    Ok(Some(event)) => return Ok(event),
                    Ok(None) => {}
                    Err(err) => return Err(ReadError::Wire(err)),
                }
            }
            if self.eof {
                return Err(ReadError::Eof);
            }
            match std::future::poll_fn(|cx| self.payload.poll_chunk(cx)).await {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                None => self.eof = true,
            }
        }
    }
}

enum Event {
    Frame(Result<WireEvent, ReadError>),
    CloseRequested,
    Timer,
}

struct Timers {
    idle: Option<Duration>,
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
    last_received: Instant,
    next_ping: Option<Instant>,
    pong_due: Option<Instant>,
    /// When `max_lifetime` ends the session.
    end_of_life: Option<Instant>,
}

impl Timers {
    fn new(config: &EndpointConfig) -> Self {
        let now = Instant::now();
        Self {
            idle: config.idle_timeout,
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            last_received: now,
            next_ping: config.ping_interval.map(|i| now + i),
            pong_due: None,
            end_of_life: config.max_lifetime.map(|l| now + l),
        }
    }

    fn idle_deadline(&self, session: &Session) -> Option<Instant> {
        self.idle
            .map(|idle| self.last_received.max(session.last_sent()) + idle)
    }

    fn next_deadline(&self, session: &Session) -> Option<Instant> {
        [
            self.idle_deadline(session),
            self.next_ping,
            self.pong_due,
            self.end_of_life,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The connection future. `guard` (the server's registration and admission) lives until it
/// returns; `opened` is called once `on_open` has run (or the instance could not be made).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<E: Endpoint, P: Input>(
    session: Session,
    guard: impl Sized,
    payload: P,
    decoder: Decoder,
    config: Arc<EndpointConfig>,
    params: Params,
    args: OpenArgs,
    opened: impl FnOnce(),
) {
    let _guard = guard;
    session.inner.metrics.opened();
    let mut reader = Reader {
        payload,
        decoder,
        chunk: Bytes::new(),
        pos: 0,
        eof: false,
    };

    let outcome = Box::pin(E::open(&session, &params, args)).await;
    opened();
    let (mut live, reason) = match outcome {
        Opened::Open(ep) => {
            let mut live = Live { ep, params };
            let reason = receive(&mut live, &session, &mut reader, &config).await;
            (live, reason)
        }
        Opened::Failed(ep, err) => {
            let mut live = Live { ep, params };
            let reason = if matches!(err, EndpointError::Panic(_)) {
                fail(&mut live, &session, err).await
            } else {
                report(&mut live, &session, err).await;
                receive(&mut live, &session, &mut reader, &config).await
            };
            (live, reason)
        }
        Opened::Refused(err) => {
            // No instance: no handler can run. The session closes with 1011.
            tracing::error!(
                session = %session.id(),
                path = session.path(),
                error = %err,
                "on_open could not create the endpoint"
            );
            close_with(
                &session,
                CloseReason::new(CloseCode::Error, "internal server error"),
            );
            drop(reader);
            flush(&session, config.send_timeout).await;
            session.inner.metrics.closed(CloseCode::Error.into());
            return;
        }
    };
    drop(reader);
    flush(&session, config.send_timeout).await;

    session.inner.metrics.closed(reason.code_u16());
    if let Err(panic) = Box::pin(guarded(live.ep.on_close(&session, &live.params, reason))).await {
        tracing::error!(session = %session.id(), panic, "on_close handler panicked");
    }
}

/// The session is closed: lets the body write what is queued (the close frame last), at most
/// `send_timeout`, after which the peer is dropped; a dropped peer's socket is shut down.
async fn flush(session: &Session, send_timeout: Duration) {
    let out = &session.inner.out;
    if !out.is_aborted() && timeout(send_timeout, out.done()).await.is_err() {
        session
            .inner
            .abort(CloseReason::abnormal("peer stopped reading"));
    }
    session.shutdown_stalled_socket();
}

/// The receive loop; returns why the session ended.
async fn receive<E: Endpoint, P: Input>(
    ep: &mut Live<E>,
    session: &Session,
    reader: &mut Reader<P>,
    config: &EndpointConfig,
) -> CloseReason {
    let mut timers = Timers::new(config);
    let mut track_idle = timers.idle.is_some();
    let limiter: Limiter = config.max_message_rate.map(|rate| {
        let burst = std::num::NonZeroU32::new(rate.messages).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::with_period(rate.per / rate.messages)
            .unwrap_or_else(|| governor::Quota::per_second(burst))
            .allow_burst(burst);
        (rate, governor::RateLimiter::direct(quota))
    });
    let metrics = &session.inner.metrics;
    // The start of a character cut between two parts of a text message taken in parts.
    let mut part_carry: Vec<u8> = Vec::new();
    // One timer for the whole loop, re-armed only when the next deadline moves earlier or it
    // has fired (an idle deadline that moved later is found out when the timer fires).
    let sleep = sleep_until(Instant::now().into());
    let mut sleep = std::pin::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        if !session.is_open() {
            return session.inner.close_reason().unwrap_or_default();
        }
        if let Some(changes) = session.take_changes() {
            if let Some(idle) = changes.idle_timeout {
                if idle.is_some() && !track_idle {
                    // Activity was not tracked until now: count from here.
                    timers.last_received = Instant::now();
                }
                timers.idle = idle;
                track_idle = idle.is_some();
                armed = None; // re-armed below for the new deadline
            }
            let mut limits = reader.decoder.limits();
            if let (Some(n), Some(_)) = (changes.max_text, limits.text) {
                limits.text = Some(n);
            }
            if let (Some(n), Some(_)) = (changes.max_binary, limits.binary) {
                limits.binary = Some(n);
            }
            reader.decoder.set_limits(limits);
        }
        // The fast path: messages that arrived together (a client with many in flight) are
        // handled one after the other without a turn through the `select!`; timers and close
        // requests are looked at again once the chunk is used up.
        let frame = match reader.try_next() {
            Some(frame) => frame,
            None => {
                if let Some(deadline) = timers.next_deadline(session) {
                    if armed.is_none_or(|at| deadline < at) {
                        sleep.as_mut().reset(deadline.into());
                        armed = Some(deadline);
                    }
                }
                let event = tokio::select! {
                    biased;
                    _ = closing(session) => Event::CloseRequested,
                    frame = reader.next() => Event::Frame(frame),
                    _ = &mut sleep, if armed.is_some() => Event::Timer,
                };
                match event {
                    Event::CloseRequested => continue,
                    Event::Timer => {
                        armed = None;
                        if let Some(reason) = Box::pin(on_timer(session, &mut timers)).await {
                            return reason;
                        }
                        continue;
                    }
                    Event::Frame(frame) => frame,
                }
            }
        };
        let msg = match frame {
            Ok(WireEvent::Text(text)) => Message::Text(text),
            Ok(WireEvent::Binary(data)) => Message::Binary(data),
            Ok(WireEvent::Ping(data)) => {
                if track_idle {
                    timers.last_received = Instant::now();
                }
                let _ = session.pong(Bytes::from(data)).await;
                continue;
            }
            Ok(WireEvent::Pong(data)) => {
                timers.pong_due = None;
                if !E::PONG {
                    continue;
                }
                Message::Pong(Bytes::from(data))
            }
            Ok(WireEvent::Close(close)) => return on_peer_close(session, close),
            Ok(WireEvent::Fragment {
                kind,
                payload,
                first,
                fin,
                compressed: false,
            }) => {
                // A handler that takes its messages in parts: one call per frame.
                if first {
                    if let Some(reason) = admit_message(ep, session, &limiter).await {
                        return reason;
                    }
                    metrics.received(kind == DataKind::Text, 0);
                }
                if track_idle {
                    timers.last_received = Instant::now();
                }
                let part = match kind {
                    DataKind::Text => match text_part(&mut part_carry, payload, fin) {
                        Some(text) => Message::Text(text),
                        None => continue, // only the start of a character: it goes with the next
                    },
                    DataKind::Binary => Message::Binary(Bytes::from(payload)),
                };
                let len = match &part {
                    Message::Text(t) => t.len(),
                    Message::Binary(b) => b.len(),
                    Message::Pong(_) => 0,
                };
                metrics.received_bytes(kind == DataKind::Text, len);
                let handled = guarded(ep.ep.on_part(session, &ep.params, part, fin)).await;
                if let Some(reason) = Box::pin(handled_result(ep, session, handled)).await {
                    return reason;
                }
                continue;
            }
            Ok(WireEvent::Chunk {
                kind,
                data,
                first,
                last,
            }) => {
                if !first {
                    continue; // the rest of a message its streaming handler left unread
                }
                if let Some(reason) = admit_message(ep, session, &limiter).await {
                    return reason;
                }
                if track_idle {
                    timers.last_received = Instant::now();
                }
                metrics.received(kind == DataKind::Text, data.len());
                if let Some(reason) =
                    Box::pin(stream(ep, session, reader, &mut timers, kind, data, last)).await
                {
                    return reason;
                }
                armed = None; // the stream may have moved the deadlines
                continue;
            }
            Ok(WireEvent::Compressed { .. } | WireEvent::Fragment { .. }) => {
                // Neither is asked of the decoder here (compressed messages are inflated).
                let err = EndpointError::Protocol("unexpected frame".into());
                return Box::pin(fail(ep, session, err)).await;
            }
            Err(ReadError::Eof) => return on_eof(session),
            Err(ReadError::Wire(err)) => return Box::pin(fail(ep, session, err.into())).await,
        };
        match &msg {
            Message::Text(t) => metrics.received(true, t.len()),
            Message::Binary(b) => metrics.received(false, b.len()),
            Message::Pong(_) => {}
        }
        if limiter.is_some() && !matches!(msg, Message::Pong(_)) {
            if let Some(reason) = admit_message(ep, session, &limiter).await {
                return reason;
            }
        }
        if track_idle && !matches!(msg, Message::Pong(_)) {
            timers.last_received = Instant::now();
        }
        let started = metrics.timed.then(Instant::now);
        let handled = guarded(ep.ep.on_message(session, &ep.params, msg)).await;
        if let Some(started) = started {
            metrics.handler.record(started.elapsed().as_secs_f64());
        }
        match handled {
            Ok(Ok(())) => {}
            Ok(Err(err)) => Box::pin(report(ep, session, err)).await,
            Err(panic) => {
                return Box::pin(fail(ep, session, EndpointError::Panic(panic))).await;
            }
        }
    }
}

type Limiter = Option<(crate::config::Rate, governor::DefaultDirectRateLimiter)>;

/// `max_message_rate`: `Some` (the session closed with 1008) when this message is one too many.
async fn admit_message<E: Endpoint>(
    ep: &mut Live<E>,
    session: &Session,
    limiter: &Limiter,
) -> Option<CloseReason> {
    let (rate, limiter) = limiter.as_ref()?;
    if limiter.check().is_ok() {
        return None;
    }
    let err = EndpointError::TooManyMessages(rate.to_string());
    Some(Box::pin(fail(ep, session, err)).await)
}

/// A handler's outcome: an error goes to `on_error`, a panic closes the session (1011).
async fn handled_result<E: Endpoint>(
    ep: &mut Live<E>,
    session: &Session,
    handled: Result<Result<(), EndpointError>, String>,
) -> Option<CloseReason> {
    match handled {
        Ok(Ok(())) => None,
        Ok(Err(err)) => {
            report(ep, session, err).await;
            None
        }
        Err(panic) => Some(fail(ep, session, EndpointError::Panic(panic)).await),
    }
}

/// One part of a text message handled in parts, whole characters only: a character cut between
/// two frames is carried over (`carry`) to the next part. `None` when nothing whole remains.
fn text_part(carry: &mut Vec<u8>, payload: Vec<u8>, last: bool) -> Option<String> {
    let mut bytes = std::mem::take(carry);
    if bytes.is_empty() {
        bytes = payload;
    } else {
        bytes.extend_from_slice(&payload);
    }
    if !last {
        // The decoder validated every byte so far: only the end may be an unfinished character.
        let valid = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) => e.valid_up_to(),
        };
        *carry = bytes.split_off(valid);
        if bytes.is_empty() {
            return None;
        }
    }
    // SAFETY: validated by the decoder (whole at the last frame); cut at a character boundary.
    Some(unsafe { String::from_utf8_unchecked(bytes) })
}

/// A message handed to a streaming handler as it arrives (`first` is its first chunk, `last`
/// whether that was also its end). Returns why the session ended, if it did.
///
/// The handler runs while this task goes on reading the socket, one chunk at a time and only
/// when the stream has room ([`crate::incoming::DEPTH`] chunks): a handler that does not read
/// holds the socket back. Pings are answered meanwhile, a close or a vanished peer ends the
/// stream with [`EndpointError::Truncated`], and a bad frame ends it with its error (the session
/// then closes with that error's code once the handler returns). The heartbeat goes on, with two
/// rules for the pong the peer may have queued behind its data: while the handler holds the
/// socket back, the pong deadline is pushed back by as long; and each chunk that arrives counts
/// as a pong (a peer that is sending is alive). Once the handler returns, what is left of the
/// message is discarded by the receive loop.
async fn stream<E: Endpoint, P: Input>(
    ep: &mut Live<E>,
    session: &Session,
    reader: &mut Reader<P>,
    timers: &mut Timers,
    kind: DataKind,
    first: Vec<u8>,
    last: bool,
) -> Option<CloseReason> {
    let (tx, complete, incoming) = crate::incoming::Incoming::channel();
    let _ = tx.try_send(Ok(Bytes::from(first)));
    if last {
        complete.store(true, std::sync::atomic::Ordering::Release);
    }
    let mut tx = (!last).then_some(tx);
    let message_kind = match kind {
        DataKind::Text => crate::error::MessageKind::Text,
        DataKind::Binary => crate::error::MessageKind::Binary,
    };
    let mut ended: Option<CloseReason> = None;
    let mut broken: Option<EndpointError> = None;
    let handled = {
        let handler = guarded(ep.ep.on_stream(session, &ep.params, message_kind, incoming));
        let mut handler = std::pin::pin!(handler);
        // Room for the next chunk, reserved before the socket is read.
        let mut permit: Option<OwnedPermit<Result<Bytes, EndpointError>>> = None;
        // The handler dropped its stream: what is left of the message is read and discarded.
        let mut dropped = false;
        loop {
            if let (None, Some(sender), false) = (&permit, &tx, dropped) {
                // Waiting for the handler to read: the socket is held back, and so is the pong
                // deadline (the peer's pong may wait behind the unread data).
                let sender = sender.clone();
                let start = Instant::now();
                tokio::select! {
                    biased;
                    handled = &mut handler => break handled,
                    _ = closed(session) => {
                        // Closed from elsewhere (a handler, another task, shutdown): the
                        // stream ends with Truncated, and the close goes ahead.
                        ended = Some(session.inner.close_reason().unwrap_or_default());
                        tx = None;
                    }
                    reserved = sender.reserve_owned() => {
                        match reserved {
                            Ok(p) => permit = Some(p),
                            Err(_) => dropped = true,
                        }
                        let held = start.elapsed();
                        if let Some(due) = timers.pong_due.as_mut() {
                            *due += held;
                        }
                    }
                }
                continue;
            }
            let deadline = timers.next_deadline(session);
            tokio::select! {
                biased;
                handled = &mut handler => break handled,
                _ = closed(session), if tx.is_some() => {
                    ended = Some(session.inner.close_reason().unwrap_or_default());
                    tx = None;
                    permit = None; // it holds a sender too: the stream ends only without it
                }
                event = reader.next(), if tx.is_some() => {
                    let to_stream: Option<Result<Bytes, EndpointError>> = match event {
                        Ok(WireEvent::Chunk { data, first: false, last, .. }) => {
                            timers.last_received = Instant::now();
                            // Data arriving is as good a sign of life as a pong (which may
                            // be waiting behind it).
                            timers.pong_due = None;
                            session.inner.metrics.received_bytes(kind == DataKind::Text, data.len());
                            if last {
                                complete.store(true, std::sync::atomic::Ordering::Release);
                                tx = None;
                            }
                            Some(Ok(Bytes::from(data)))
                        }
                        Ok(WireEvent::Ping(data)) => {
                            timers.last_received = Instant::now();
                            let _ = session.pong(Bytes::from(data)).await;
                            None
                        }
                        Ok(WireEvent::Pong(_)) => {
                            timers.pong_due = None;
                            None
                        }
                        Ok(WireEvent::Close(close)) => {
                            ended = Some(on_peer_close(session, close));
                            tx = None;
                            Some(Err(EndpointError::Truncated))
                        }
                        Err(ReadError::Eof) => {
                            ended = Some(on_eof(session));
                            tx = None;
                            Some(Err(EndpointError::Truncated))
                        }
                        Err(ReadError::Wire(err)) => {
                            broken = Some(err.clone().into());
                            tx = None;
                            Some(Err(err.into()))
                        }
                        Ok(_) => {
                            // The decoder hands over nothing else inside a message.
                            broken = Some(EndpointError::Protocol("unexpected frame".into()));
                            tx = None;
                            Some(Err(EndpointError::Protocol("unexpected frame".into())))
                        }
                    };
                    if let Some(item) = to_stream {
                        if let Some(p) = permit.take() {
                            p.send(item);
                        }
                    }
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() && tx.is_some() => {
                    if let Some(reason) = Box::pin(on_timer(session, timers)).await {
                        ended = Some(reason);
                        tx = None;
                        permit = None;
                    }
                }
            }
        }
    };
    drop(tx);
    if ended.is_some() || broken.is_some() {
        // The handler's own error is most likely the one its stream gave it.
        if let Err(panic) = handled {
            report(ep, session, EndpointError::Panic(panic)).await;
        }
    } else if let Some(reason) = handled_result(ep, session, handled).await {
        return Some(reason);
    }
    if let Some(err) = broken {
        return Some(fail(ep, session, err).await);
    }
    ended
}

/// Ready once a close has begun (from a handler, another task, or shutdown), or settings
/// changed (`Session::set_max_idle_timeout`, …).
fn closing(session: &Session) -> impl std::future::Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| {
        session.inner.close_waker.register(cx.waker());
        if session.is_open() && !session.has_changes() {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
}

/// Ready once the session is closed (unlike [`closing`], not for settings changes).
fn closed(session: &Session) -> impl std::future::Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| {
        session.inner.close_waker.register(cx.waker());
        if session.is_open() {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
}

/// The peer's close frame: echoed with its code and reason, as Tomcat does (RFC 6455 §5.5.1);
/// an empty close is answered with 1000, so that a browser reports 1000 (as against Tomcat)
/// rather than 1005. `on_close` gets what the peer sent (1005 for an empty close).
fn on_peer_close(session: &Session, close: Option<(u16, String)>) -> CloseReason {
    let echo = match &close {
        Some((code, reason)) => Bytes::from(crate::wire::close::payload(*code, reason)),
        None => Bytes::from(crate::wire::close::payload(crate::wire::close::NORMAL, "")),
    };
    let reason = CloseReason::from_wire(close);
    match session.inner.begin_close(reason.clone(), Some(echo)) {
        Ok(()) => reason,
        Err(_) => session.inner.close_reason().unwrap_or(reason),
    }
}

/// The peer's byte stream ended without a close frame: what is queued is still written (by
/// `flush`), and `on_close` gets 1006.
fn on_eof(session: &Session) -> CloseReason {
    let reason = CloseReason::abnormal("connection lost");
    session
        .inner
        .half_closed(reason.clone())
        .unwrap_or_else(|| session.inner.close_reason().unwrap_or(reason))
}

/// Idle timeout, heartbeat ping, dead-peer detection.
async fn on_timer(session: &Session, timers: &mut Timers) -> Option<CloseReason> {
    let now = Instant::now();
    if timers.end_of_life.is_some_and(|end| now >= end) {
        return Some(close_with(
            session,
            CloseReason::new(CloseCode::Away, "session lifetime reached"),
        ));
    }
    if let Some(due) = timers.pong_due {
        if now >= due {
            let reason = CloseReason::abnormal(format!(
                "no pong within {} ms",
                timers.pong_timeout.as_millis()
            ));
            return Some(session.inner.abort(reason.clone()).unwrap_or(reason));
        }
    }
    if let Some(deadline) = timers.idle_deadline(session) {
        if now >= deadline {
            return Some(close_with(
                session,
                CloseReason::new(CloseCode::Away, "idle timeout"),
            ));
        }
    }
    if let (Some(at), Some(interval)) = (timers.next_ping, timers.ping_interval) {
        if now >= at {
            timers.next_ping = Some(now + interval);
            let due = timers.pong_due.unwrap_or(now + timers.pong_timeout);
            timers.pong_due = Some(due);
            // A peer whose queue is so full that even the ping cannot be queued before the
            // deadline is as dead as one that does not answer.
            if timeout_at(due.into(), session.ping(b"ws-endpoint"))
                .await
                .is_err()
            {
                let reason = CloseReason::abnormal("peer stopped reading");
                return Some(session.inner.abort(reason.clone()).unwrap_or(reason));
            }
        }
    }
    None
}
