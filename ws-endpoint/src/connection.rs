//! The per-connection task: on_open, the receive loop, limits, timers, and exactly one on_close.

use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::FutureExt as _;
use tokio::time::{sleep_until, timeout_at};

use crate::{
    close::{CloseCode, CloseReason},
    config::EndpointConfig,
    endpoint::Endpoint,
    error::{EndpointError, SendError},
    frame::{Frame, FrameReader, ReadError},
    message::Incoming,
    registry,
    session::{echo_close, send_close, Session},
};

/// Removes the session from the registry however the task ends (even if it is dropped).
struct Registered(crate::session::SessionId);

impl Drop for Registered {
    fn drop(&mut self) {
        registry::unregister(self.0);
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

async fn guarded<T>(fut: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(panic_message)
}

/// Hands an error to `on_error`, or logs it when the endpoint has none.
async fn report<E: Endpoint>(ep: &mut E, session: &Session, err: EndpointError) {
    if matches!(err, EndpointError::Send(SendError::Closed)) && !session.is_open() {
        return; // a reply after the handler itself closed the session: nothing to report
    }
    if E::ON_ERROR {
        if let Err(panic) = guarded(ep.on_error(session, err)).await {
            tracing::error!(session = %session.id(), panic, "on_error handler panicked");
        }
    } else {
        crate::__private::log_error(session, &err);
    }
}

/// Starts a server-side close; returns the reason `on_close` will see.
async fn close_with(session: &Session, reason: CloseReason) -> CloseReason {
    match session.inner.begin_close(reason.clone()) {
        Ok(sender) => {
            send_close(&session.inner, sender, reason.clone()).await;
            reason
        }
        Err(_) => session.inner.close_reason().unwrap_or(reason),
    }
}

/// `on_error(err)`, then close with `code`.
async fn fail<E: Endpoint>(
    ep: &mut E,
    session: &Session,
    err: EndpointError,
    code: CloseCode,
) -> CloseReason {
    let text = match &err {
        EndpointError::MessageTooBig { limit, .. } => {
            format!("message too big: the limit is {limit} bytes")
        }
        EndpointError::Panic(_) => "internal server error".to_owned(),
        other => other.to_string(),
    };
    report(ep, session, err).await;
    close_with(session, CloseReason::new(code, text)).await
}

enum Event {
    Frame(Result<Frame, ReadError>),
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
        }
    }

    fn idle_deadline(&self, session: &Session) -> Option<Instant> {
        self.idle
            .map(|idle| self.last_received.max(session.last_sent()) + idle)
    }

    fn next_deadline(&self, session: &Session) -> Option<Instant> {
        [self.idle_deadline(session), self.next_ping, self.pong_due]
            .into_iter()
            .flatten()
            .min()
    }
}

pub(crate) async fn run<E: Endpoint>(
    session: Session,
    mut reader: FrameReader,
    config: Arc<EndpointConfig>,
    args: E::OpenArgs,
) {
    let _registered = Registered(session.id());

    let mut ep = match std::panic::catch_unwind(E::create) {
        Ok(ep) => ep,
        Err(panic) => {
            tracing::error!(
                panic = panic_message(panic),
                "creating the endpoint panicked"
            );
            close_with(
                &session,
                CloseReason::new(CloseCode::Error, "internal server error"),
            )
            .await;
            return;
        }
    };

    let opened = Box::pin(guarded(ep.on_open(&session, args))).await;
    let reason = match opened {
        Ok(Ok(())) => receive(&mut ep, &session, &mut reader, &config).await,
        Ok(Err(err)) => {
            report(&mut ep, &session, err).await;
            receive(&mut ep, &session, &mut reader, &config).await
        }
        Err(panic) => {
            fail(
                &mut ep,
                &session,
                EndpointError::Panic(panic),
                CloseCode::Error,
            )
            .await
        }
    };
    drop(reader);

    if let Err(panic) = Box::pin(guarded(ep.on_close(&session, reason))).await {
        tracing::error!(session = %session.id(), panic, "on_close handler panicked");
    }
}

/// The receive loop; returns why the session ended.
async fn receive<E: Endpoint>(
    ep: &mut E,
    session: &Session,
    reader: &mut FrameReader,
    config: &EndpointConfig,
) -> CloseReason {
    let mut timers = Timers::new(config);
    let track_idle = timers.idle.is_some();
    // One timer for the whole loop, re-armed only when the next deadline moves earlier or it
    // has fired (an idle deadline that moved later is found out when the timer fires).
    let sleep = sleep_until(Instant::now().into());
    let mut sleep = std::pin::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        if !session.is_open() {
            return session.inner.close_reason().unwrap_or_default();
        }
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
        let frame = match event {
            Event::CloseRequested => continue,
            Event::Timer => {
                armed = None;
                if let Some(reason) = Box::pin(on_timer(session, &mut timers)).await {
                    return reason;
                }
                continue;
            }
            Event::Frame(frame) => frame,
        };
        let outcome = match frame {
            Ok(Frame::Text(text)) => {
                if track_idle {
                    timers.last_received = Instant::now();
                }
                ep.on_message(session, Incoming::Text(text))
            }
            Ok(Frame::Binary(data)) => {
                if track_idle {
                    timers.last_received = Instant::now();
                }
                ep.on_message(session, Incoming::Binary(data))
            }
            Ok(Frame::Ping(data)) => {
                if track_idle {
                    timers.last_received = Instant::now();
                }
                let _ = session.pong(data).await;
                continue;
            }
            Ok(Frame::Pong(data)) => {
                timers.pong_due = None;
                if !E::PONG {
                    continue;
                }
                ep.on_message(session, Incoming::Pong(data))
            }
            Ok(Frame::Close(wire)) => {
                if let Some(reason) = Box::pin(on_peer_close(session, wire)).await {
                    return reason;
                }
                continue;
            }
            Err(err) => return Box::pin(on_read_error(ep, session, err)).await,
        };
        match guarded(outcome).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => Box::pin(report(ep, session, err)).await,
            Err(panic) => {
                let err = EndpointError::Panic(panic);
                return Box::pin(fail(ep, session, err, CloseCode::Error)).await;
            }
        }
    }
}

/// Ready once a close has begun (from a handler, another task, or shutdown).
fn closing(session: &Session) -> impl std::future::Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| {
        session.inner.close_waker.register(cx.waker());
        if session.is_open() {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
}

/// The peer's close frame: echo its code, and end unless a close was already under way.
async fn on_peer_close(
    session: &Session,
    wire: Option<actix_ws::CloseReason>,
) -> Option<CloseReason> {
    let reason = CloseReason::from_actix(wire.clone());
    match session.inner.begin_close(reason.clone()) {
        Ok(Some(sender)) => {
            // Echo the peer's code (RFC 6455 §5.5.1); an empty close echoes empty.
            let echo = wire.map(|w| actix_ws::CloseReason {
                code: w.code,
                description: None,
            });
            echo_close(&session.inner, sender, echo).await;
            Some(reason)
        }
        Ok(None) => Some(reason),
        Err(_) => None,
    }
}

async fn on_read_error<E: Endpoint>(ep: &mut E, session: &Session, err: ReadError) -> CloseReason {
    match err {
        ReadError::Eof => {
            let reason = CloseReason::abnormal("connection lost");
            session
                .inner
                .abort(reason.clone())
                .unwrap_or_else(|| session.inner.close_reason().unwrap_or(reason))
        }
        ReadError::TooBig { size, limit } => {
            let err = EndpointError::MessageTooBig { size, limit };
            fail(ep, session, err, CloseCode::Size).await
        }
        ReadError::InvalidUtf8 => {
            fail(ep, session, EndpointError::InvalidUtf8, CloseCode::Invalid).await
        }
        ReadError::Unsupported(kind) => {
            let err = EndpointError::Unsupported(kind);
            fail(ep, session, err, CloseCode::Unsupported).await
        }
        ReadError::Protocol(msg) => {
            fail(
                ep,
                session,
                EndpointError::Protocol(msg),
                CloseCode::Protocol,
            )
            .await
        }
    }
}

/// Idle timeout, heartbeat ping, dead-peer detection.
async fn on_timer(session: &Session, timers: &mut Timers) -> Option<CloseReason> {
    let now = Instant::now();
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
            return Some(
                close_with(session, CloseReason::new(CloseCode::Away, "idle timeout")).await,
            );
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
