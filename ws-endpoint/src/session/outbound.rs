//! A session's outbound queue, bounded in bytes, and the response body that drains it.
//!
//! Frames wait here as an opcode and a payload ([`OutFrame`]); a broadcast puts the same
//! payload `Bytes` in every recipient's queue (no per-session copy or re-encode of the payload).
//! actix-http pulls the response body ([`Body`]) whenever its write buffer has room: small
//! frames are then encoded together into one chunk (several frames per write), and a large
//! payload is handed over in slices of [`SLICE`] bytes, because actix-http copies every chunk
//! it gets into its write buffer.
//!
//! **The budget.** A queue holds at most `max_buffered` bytes (frame headers included), counted
//! from the moment a frame is queued until its last byte has been handed to actix-http. A frame
//! that does not fit waits (a send, up to `send_timeout`) or is refused (a broadcast, which
//! then applies `slow_consumer`); but when the queue is empty a frame of any size is accepted,
//! so that a message larger than the budget can still be sent. So one session's outbound memory
//! is at most `max(max_buffered, largest message) + BATCH + actix-http's write buffer (32 KiB
//! plus one slice of 256 KiB)`. Across the process, the bytes of all queues are capped by
//! [`set_max_buffered_total`](crate::set_max_buffered_total): at the cap, queues that are not
//! empty take nothing more, with the same policies.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex, MutexGuard,
    },
    task::{Context, Poll, Waker},
};

use actix_web::body::{BodySize, MessageBody};
use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::wire::{Header, OpCode, MAX_HEADER};

/// Most bytes of one chunk of a large payload handed to actix-http at a time (it copies each
/// chunk into its write buffer, so this is also what a chunk adds to that buffer): a large
/// message costs one write system call per 256 KiB. Measured on a 1 MiB echo: 64 KiB slices
/// spent about twice the system time per message of 256 KiB ones (on loopback every write runs
/// the receiver's side of TCP too); earlier, 32 KiB slices spent 15 % more than one chunk per
/// message.
pub(crate) const SLICE: usize = 256 * 1024;
/// Frames up to this payload size are copied into the batch; larger ones are handed over as
/// slices of their own `Bytes`.
const INLINE: usize = 4 * 1024;
/// A batch is handed over once it holds this much.
const BATCH: usize = 16 * 1024;
/// The batch buffer's first size; it is kept while the session sends (no allocation per
/// batch: actix-http copies a chunk and drops it at once, so the buffer is ours again), and
/// given back when it grew larger than this and the queue ran empty.
const BATCH_KEEP: usize = 4 * 1024;

/// Default of the process-wide cap on queued outbound bytes: 1 GiB.
pub const DEFAULT_MAX_BUFFERED_TOTAL: usize = 1 << 30;

static TOTAL: AtomicUsize = AtomicUsize::new(0);
static TOTAL_CAP: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_BUFFERED_TOTAL);

/// Caps the bytes queued for sending across all sessions of this process (a server-wide
/// setting; default [`DEFAULT_MAX_BUFFERED_TOTAL`]). When the cap is reached, a queue that is not
/// empty takes no more: sends wait (up to `send_timeout`), broadcasts apply `slow_consumer`.
/// Each session's own `max_buffered` applies as well.
///
/// ```
/// ws_endpoint::set_max_buffered_total(512 << 20);
/// assert_eq!(ws_endpoint::max_buffered_total(), 512 << 20);
/// # ws_endpoint::set_max_buffered_total(ws_endpoint::DEFAULT_MAX_BUFFERED_TOTAL);
/// ```
pub fn set_max_buffered_total(bytes: usize) {
    TOTAL_CAP.store(bytes, Ordering::Relaxed);
}

/// The process-wide cap set by [`set_max_buffered_total`].
pub fn max_buffered_total() -> usize {
    TOTAL_CAP.load(Ordering::Relaxed)
}

/// Bytes queued for sending across all sessions of this process right now.
pub fn buffered_total() -> usize {
    TOTAL.load(Ordering::Relaxed)
}

/// How a data frame's payload is (to be) compressed (permessage-deflate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deflate {
    /// Not decided yet: the queue applies its session's agreement when the frame is pushed.
    Auto,
    /// Sent as it is, RSV1 clear (control frames, small messages, no agreement, or a message
    /// the application asked to send uncompressed).
    Plain,
    /// Already compressed: RSV1 set.
    Done,
    /// To be compressed by the writer with the session's own context (context takeover),
    /// in queue order.
    Context,
}

/// How a session compresses what it sends: its permessage-deflate agreement and settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SendDeflate {
    pub(crate) level: u32,
    pub(crate) window_bits: u8,
    pub(crate) min_size: usize,
    /// Keep the context across messages (the client allowed it and the endpoint asked for it).
    pub(crate) context_takeover: bool,
}

impl SendDeflate {
    /// The key under which sessions share a compressed payload (a broadcast compresses once
    /// per key); `None` with context takeover, where each session compresses in its own context.
    fn shared_key(&self) -> Option<(u32, u8, usize)> {
        (!self.context_takeover).then_some((self.level, self.window_bits, self.min_size))
    }

    /// Decides an `Auto` frame: compressed now (shared compressor), left to the writer (own
    /// context), or plain.
    fn apply(&self, mut frame: OutFrame) -> OutFrame {
        if frame.deflate != Deflate::Auto {
            return frame;
        }
        frame.deflate = Deflate::Plain;
        if !matches!(frame.opcode, OpCode::Text | OpCode::Binary)
            || frame.payload.len() < self.min_size
        {
            return frame;
        }
        if self.context_takeover {
            frame.deflate = Deflate::Context;
            return frame;
        }
        let compressed =
            crate::wire::deflate::compress_shared(self.level, self.window_bits, &frame.payload);
        // Without context, a message that does not shrink can go as it is.
        if compressed.len() < frame.payload.len() {
            frame.payload = Bytes::from(compressed);
            frame.deflate = Deflate::Done;
        }
        frame
    }
}

/// A frame waiting to be written: the first header byte's fields and the payload.
#[derive(Clone)]
pub(crate) struct OutFrame {
    pub(crate) opcode: OpCode,
    pub(crate) deflate: Deflate,
    pub(crate) payload: Bytes,
    /// The message's last frame (false only for the parts of a message sent in parts).
    pub(crate) fin: bool,
}

impl OutFrame {
    pub(crate) fn new(opcode: OpCode, payload: Bytes) -> Self {
        Self {
            opcode,
            deflate: if opcode.is_control() {
                Deflate::Plain
            } else {
                Deflate::Auto
            },
            payload,
            fin: true,
        }
    }

    /// The same frame, never compressed.
    pub(crate) fn plain(mut self) -> Self {
        self.deflate = Deflate::Plain;
        self
    }

    /// The frame of a whole message (a broadcast's, a reply's): the payload `Bytes` as they are.
    pub(crate) fn message(msg: crate::message::Message) -> Self {
        use crate::message::Message;
        match msg {
            Message::Text(text) => Self::new(OpCode::Text, Bytes::from(text.into_bytes())),
            Message::Binary(data) => Self::new(OpCode::Binary, data),
            Message::Pong(data) => Self::new(OpCode::Pong, data),
        }
    }

    /// Bytes this frame counts for in the budget.
    fn size(&self) -> usize {
        let n = self.payload.len();
        n + match n {
            0..=125 => 2,
            126..=65535 => 4,
            _ => 10,
        }
    }

    fn header(&self, out: &mut BytesMut, mask: Option<[u8; 4]>) {
        let mut raw = [0u8; MAX_HEADER];
        let n = Header {
            fin: self.fin,
            // RSV1 marks a compressed message on its first frame only.
            rsv1: self.deflate == Deflate::Done && self.opcode != OpCode::Continuation,
            opcode: self.opcode,
            mask,
            len: self.payload.len() as u64,
        }
        .encode(&mut raw);
        // All of `raw` is copied when there is room (a fixed-size copy, no call to memmove for
        // a few bytes), of which the header's `n` count.
        match out.spare_capacity_mut().get_mut(..MAX_HEADER) {
            Some(spare) => {
                for (to, from) in spare.iter_mut().zip(raw) {
                    to.write(from);
                }
                // SAFETY: the `n <= MAX_HEADER` bytes past the length were just written.
                unsafe { out.set_len(out.len() + n) };
            }
            None => out.extend_from_slice(&raw[..n]),
        }
    }
}

/// Why a frame was not queued.
pub(crate) enum Refused {
    /// The budget is used up; try again when the writer has made room.
    Full(OutFrame),
    /// A message is being sent in parts and the frames waiting behind it use up the budget:
    /// try again when that message has ended (time spent here is not the socket's fault).
    Behind(OutFrame),
    /// The session is closing or closed.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Sends are taken.
    Open,
    /// No more sends; write what is queued, then end the body (the connection closes).
    Finish,
    /// Drop everything; end the body with an error (the connection is dropped).
    Abort,
}

struct Queue {
    frames: VecDeque<OutFrame>,
    /// The kind of the message being sent in parts, while it is open.
    open: Option<OpCode>,
    /// Data frames queued while a message is open: they follow it, in order, once it ends.
    held: VecDeque<OutFrame>,
    /// Their bytes (part of `bytes`): the open message's own parts are not kept waiting by
    /// what waits behind them.
    held_bytes: usize,
    /// The rest of a large payload being handed over in slices, and its frame's budget size.
    large: Option<(Bytes, usize)>,
    /// Queued bytes plus those of the frame being handed over.
    bytes: usize,
    end: End,
    writer: Option<Waker>,
    /// Whether actix-http still holds the body (and so the connection).
    body_alive: bool,
    /// The body has ended (finished or failed) or was dropped.
    done: bool,
    done_waker: Option<Waker>,
}

/// Counts a sender as waiting for room until it is done or dropped (a send timeout cancels
/// it): the body wakes waiters only when there are some.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The queue shared by the session handles (senders) and the response body (the writer).
pub(crate) struct Outbound {
    q: Mutex<Queue>,
    budget: usize,
    /// The session's permessage-deflate agreement, if any.
    deflate: Option<SendDeflate>,
    /// Senders waiting for room.
    space: Notify,
    /// Senders waiting for a message sent in parts to end.
    ended: Notify,
    waiting: AtomicUsize,
}

thread_local! {
    /// The queue whose body this thread is pulling right now (see [`pulling`]).
    static PULLING: std::cell::Cell<*const Outbound> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// Runs `f` (the connection future) just before the body of `out` is pulled on this thread:
/// frames queued to `out` meanwhile wake nobody, since the pull that follows takes them.
pub(crate) fn pulling<R>(out: &Outbound, f: impl FnOnce() -> R) -> R {
    struct Reset(*const Outbound);
    impl Drop for Reset {
        fn drop(&mut self) {
            PULLING.with(|p| p.set(self.0));
        }
    }
    let _reset = Reset(PULLING.with(|p| p.replace(out)));
    f()
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Outbound {
    pub(crate) fn new(budget: usize, deflate: Option<SendDeflate>) -> Self {
        Self {
            deflate,
            q: Mutex::new(Queue {
                frames: VecDeque::new(),
                open: None,
                held: VecDeque::new(),
                held_bytes: 0,
                large: None,
                bytes: 0,
                end: End::Open,
                writer: None,
                body_alive: false,
                done: false,
                done_waker: None,
            }),
            budget,
            space: Notify::new(),
            ended: Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The body's waker, to wake after queueing: none while this thread is about to pull the
    /// body anyway ([`pulling`]).
    fn writer_to_wake(&self, q: &mut Queue) -> Option<Waker> {
        if PULLING.with(|p| std::ptr::eq(p.get(), self)) {
            None
        } else {
            q.writer.take()
        }
    }

    /// Whether permessage-deflate was agreed.
    pub(crate) fn compresses(&self) -> bool {
        self.deflate.is_some()
    }

    /// Queues a frame if the budget has room (or the queue is empty). Never waits. An `Auto`
    /// frame is compressed first (outside the lock) as the session's agreement says.
    pub(crate) fn push(&self, frame: OutFrame) -> Result<(), Refused> {
        let frame = match self.deflate {
            Some(d) => d.apply(frame),
            None if frame.deflate == Deflate::Auto => frame.plain(),
            None => frame,
        };
        let size = frame.size();
        let waker = {
            let mut q = lock(&self.q);
            if q.end != End::Open {
                return Err(Refused::Closed);
            }
            let behind = q.open.is_some() && !frame.opcode.is_control();
            if q.bytes > 0
                && (q.bytes + size > self.budget
                    || TOTAL.load(Ordering::Relaxed) + size > TOTAL_CAP.load(Ordering::Relaxed))
            {
                return Err(if behind {
                    Refused::Behind(frame)
                } else {
                    Refused::Full(frame)
                });
            }
            q.bytes += size;
            TOTAL.fetch_add(size, Ordering::Relaxed);
            if behind {
                q.held_bytes += size;
                q.held.push_back(frame);
                return Ok(());
            }
            q.frames.push_back(frame);
            self.writer_to_wake(&mut q)
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues one part of a message sent in parts (its opcode is set here: the message's kind
    /// first, continuations after), if the budget has room. The first part opens the message:
    /// other data frames wait behind it until the last part.
    ///
    /// `first`: this part opens its message; while another message in parts is still open (its
    /// last part not queued yet) it is refused with `Behind`, so two messages never merge.
    pub(crate) fn push_part(
        &self,
        mut frame: OutFrame,
        kind: OpCode,
        first: bool,
    ) -> Result<(), Refused> {
        let size = frame.size();
        let waker = {
            let mut q = lock(&self.q);
            if q.end != End::Open {
                return Err(Refused::Closed);
            }
            if first && q.open.is_some() {
                return Err(Refused::Behind(frame));
            }
            let own = q.bytes - q.held_bytes;
            if own > 0
                && (own + size > self.budget
                    || TOTAL.load(Ordering::Relaxed) + size > TOTAL_CAP.load(Ordering::Relaxed))
            {
                return Err(Refused::Full(frame));
            }
            frame.opcode = if q.open.is_some() {
                OpCode::Continuation
            } else {
                kind
            };
            q.open = (!frame.fin).then_some(kind);
            q.bytes += size;
            TOTAL.fetch_add(size, Ordering::Relaxed);
            q.frames.push_back(frame);
            if q.open.is_none() {
                // The message is complete: what waited behind it follows.
                let held = std::mem::take(&mut q.held);
                q.held_bytes = 0;
                q.frames.extend(held);
            }
            self.writer_to_wake(&mut q)
        };
        if let Some(w) = waker {
            w.wake();
        }
        if !self.message_open() {
            self.ended.notify_waiters();
        }
        Ok(())
    }

    /// Notified when a message sent in parts ends or the queue stops taking frames.
    pub(crate) fn ended_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.ended.notified()
    }

    /// The compressor settings (level, window) for a message this session sends in parts:
    /// `Some` when permessage-deflate was agreed without context takeover.
    pub(crate) fn shared_deflate(&self) -> Option<(u32, u8)> {
        self.deflate
            .filter(|d| !d.context_takeover)
            .map(|d| (d.level, d.window_bits))
    }

    /// Whether a message sent in parts is open.
    pub(crate) fn message_open(&self) -> bool {
        lock(&self.q).open.is_some()
    }

    /// Ready once no message sent in parts is open (or the queue stopped taking frames).
    pub(crate) async fn message_ended(&self) {
        loop {
            let notified = self.ended.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let q = lock(&self.q);
                if q.open.is_none() || q.end != End::Open {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Queues a frame, waiting for room; `Err(Closed)` if the session closes meanwhile.
    /// The caller bounds the wait (`send_timeout`).
    /// `Err(None)`: closed; `Err(Some(frame))`: a message in parts opened meanwhile and the
    /// frame now waits behind it (the caller waits for that without a timeout).
    pub(crate) async fn push_wait(&self, mut frame: OutFrame) -> Result<(), Option<OutFrame>> {
        let _waiting = Waiting::new(&self.waiting);
        loop {
            let notified = self.space.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.push(frame) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed) => return Err(None),
                Err(Refused::Behind(f)) => return Err(Some(f)),
                Err(Refused::Full(f)) => frame = f,
            }
            notified.await;
        }
    }

    /// [`push_part`](Self::push_part), waiting for room; `Err(())` if the session closes
    /// meanwhile. The caller bounds the wait (`send_timeout`), except while `first` waits for
    /// another message in parts to end.
    pub(crate) async fn push_part_wait(
        &self,
        mut frame: OutFrame,
        kind: OpCode,
        first: bool,
    ) -> Result<(), ()> {
        let _waiting = Waiting::new(&self.waiting);
        loop {
            let space = self.space.notified();
            let mut space = std::pin::pin!(space);
            space.as_mut().enable();
            match self.push_part(frame, kind, first) {
                Ok(()) => return Ok(()),
                Err(Refused::Closed) => return Err(()),
                Err(Refused::Behind(f)) => {
                    frame = f;
                    self.message_ended().await;
                    continue;
                }
                Err(Refused::Full(f)) => frame = f,
            }
            space.await;
        }
    }

    /// Queues a last frame (the close frame) whatever the budget, and stops taking sends: the
    /// body ends once it is written. `false` if the queue was already closing.
    pub(crate) fn finish(&self, last: Option<OutFrame>) -> bool {
        let waker = {
            let mut q = lock(&self.q);
            if q.end != End::Open {
                return false;
            }
            if let Some(frame) = last {
                let size = frame.size();
                q.bytes += size;
                TOTAL.fetch_add(size, Ordering::Relaxed);
                q.frames.push_back(frame);
            }
            q.end = End::Finish;
            // Data waiting behind an unfinished message in parts is never sent.
            let held: usize = q.held.drain(..).map(|f| f.size()).sum();
            q.held_bytes = 0;
            q.bytes -= held;
            TOTAL.fetch_sub(held, Ordering::Relaxed);
            self.writer_to_wake(&mut q)
        };
        if let Some(w) = waker {
            w.wake();
        }
        self.space.notify_waiters();
        self.ended.notify_waiters();
        true
    }

    /// Drops what is queued and fails the body, so that actix-http drops the connection.
    pub(crate) fn abort(&self) {
        let waker = {
            let mut q = lock(&self.q);
            if q.end == End::Abort {
                return;
            }
            q.end = End::Abort;
            // Everything queued goes, the payload being sliced too: a peer that never lets
            // actix-http pull the body again must not keep it counted (or allocated).
            let mut queued: usize = q.frames.drain(..).map(|f| f.size()).sum();
            queued += q.held.drain(..).map(|f| f.size()).sum::<usize>();
            q.held_bytes = 0;
            if let Some((_, size)) = q.large.take() {
                queued += size;
            }
            q.bytes -= queued;
            TOTAL.fetch_sub(queued, Ordering::Relaxed);
            self.writer_to_wake(&mut q)
        };
        if let Some(w) = waker {
            w.wake();
        }
        self.space.notify_waiters();
        self.ended.notify_waiters();
    }

    pub(crate) fn is_aborted(&self) -> bool {
        lock(&self.q).end == End::Abort
    }

    /// Whether actix-http still holds the body: the connection is still there.
    pub(crate) fn body_alive(&self) -> bool {
        lock(&self.q).body_alive
    }

    /// Ready once the body has ended (everything written, or failed) or was dropped.
    pub(crate) fn done(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let mut q = lock(&self.q);
            if q.done || !q.body_alive {
                Poll::Ready(())
            } else {
                q.done_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    /// Queued bytes.
    pub(crate) fn buffered(&self) -> usize {
        lock(&self.q).bytes
    }

    fn release(&self, q: &mut Queue, bytes: usize) {
        if bytes > 0 {
            q.bytes -= bytes;
            TOTAL.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

/// The WebSocket connection's response body: what actix-http writes to the socket.
pub(crate) struct Body {
    out: std::sync::Arc<Outbound>,
    batch: BytesMut,
    failed: bool,
    /// A client's body: every frame masked with a fresh random key (RFC 6455 §5.3), its payload
    /// copied into the batch (a shared payload cannot be masked in place).
    masked: bool,
    /// The session's own compressor (context takeover), made at its first compressed message.
    deflater: Option<Box<crate::wire::deflate::Deflater>>,
}

impl Body {
    pub(crate) fn new(out: std::sync::Arc<Outbound>) -> Self {
        lock(&out.q).body_alive = true;
        Self {
            out,
            batch: BytesMut::new(),
            failed: false,
            masked: false,
            deflater: None,
        }
    }

    /// The queue this body drains.
    pub(crate) fn outbound(&self) -> &Outbound {
        &self.out
    }

    /// The body of a client connection: frames masked.
    pub(crate) fn masked(out: std::sync::Arc<Outbound>) -> Self {
        let mut body = Self::new(out);
        body.masked = true;
        body
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        let waker = {
            let mut q = lock(&self.out.q);
            q.body_alive = false;
            q.done = true;
            if let Some((_, size)) = q.large.take() {
                self.out.release(&mut q, size);
            }
            let queued: usize = q.frames.drain(..).map(|f| f.size()).sum::<usize>()
                + q.held.drain(..).map(|f| f.size()).sum::<usize>();
            q.held_bytes = 0;
            self.out.release(&mut q, queued);
            if q.end == End::Open {
                q.end = End::Abort;
            }
            q.done_waker.take()
        };
        self.out.space.notify_waiters();
        self.out.ended.notify_waiters();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Compresses a frame in the session's own context (kept across messages).
fn compress_in_context(
    deflater: &mut Option<Box<crate::wire::deflate::Deflater>>,
    agreed: Option<SendDeflate>,
    mut frame: OutFrame,
) -> OutFrame {
    let Some(d) = agreed else {
        return frame.plain();
    };
    let deflater = deflater.get_or_insert_with(|| {
        Box::new(crate::wire::deflate::Deflater::new(d.level, d.window_bits))
    });
    let mut out = Vec::with_capacity(frame.payload.len() / 2 + 16);
    deflater.compress(&frame.payload, &mut out);
    frame.payload = Bytes::from(out);
    frame.deflate = Deflate::Done;
    frame
}

/// A broadcast's frame, compressed at most once for all recipients that agreed on the same
/// parameters without context takeover (they get the same `Bytes`).
pub(crate) struct Shared {
    frame: OutFrame,
    compressed: Vec<((u32, u8, usize), OutFrame)>,
}

impl Shared {
    pub(crate) fn new(frame: OutFrame) -> Self {
        Self {
            frame,
            compressed: Vec::new(),
        }
    }

    /// The frame for the queue `out`.
    pub(crate) fn for_queue(&mut self, out: &Outbound) -> OutFrame {
        let Some((d, key)) = out.deflate.and_then(|d| d.shared_key().map(|k| (d, k))) else {
            // No agreement (sent plain), or the session's own context (compressed by its writer).
            return self.frame.clone();
        };
        if let Some((_, f)) = self.compressed.iter().find(|(k, _)| *k == key) {
            return f.clone();
        }
        let f = d.apply(self.frame.clone());
        self.compressed.push((key, f.clone()));
        f
    }
}

/// The body failed on purpose: the peer is dead or stalled.
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebSocket peer dropped (dead or not reading)")
    }
}

impl std::error::Error for Dropped {}

impl MessageBody for Body {
    type Error = Dropped;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let mut q = lock(&this.out.q);
        if q.end == End::Abort {
            this.failed = true;
            q.done = true;
            let w = q.done_waker.take();
            drop(q);
            if let Some(w) = w {
                w.wake();
            }
            return Poll::Ready(Some(Err(Dropped)));
        }
        if let Some((rest, size)) = q.large.as_mut() {
            let n = rest.len().min(SLICE);
            let chunk = rest.split_to(n);
            if rest.is_empty() {
                let size = *size;
                q.large = None;
                this.out.release(&mut q, size);
                drop(q);
                this.wake_senders();
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        let mut released = 0;
        while this.batch.len() < BATCH {
            let Some(mut frame) = q.frames.pop_front() else {
                break;
            };
            let size = frame.size();
            if frame.deflate == Deflate::Context {
                // In queue order, so that the peer's inflater sees the context we built.
                frame = compress_in_context(&mut this.deflater, this.out.deflate, frame);
            }
            if this.masked {
                let key: [u8; 4] = rand::random();
                this.batch.reserve(MAX_HEADER + frame.payload.len());
                frame.header(&mut this.batch, Some(key));
                let start = this.batch.len();
                this.batch.extend_from_slice(&frame.payload);
                crate::wire::apply_mask(&mut this.batch[start..], key, 0);
                released += size;
                continue;
            }
            this.batch
                .reserve(MAX_HEADER + frame.payload.len().min(INLINE));
            frame.header(&mut this.batch, None);
            if frame.payload.len() <= INLINE {
                this.batch.extend_from_slice(&frame.payload);
                released += size;
            } else {
                q.large = Some((frame.payload, size));
                break;
            }
        }
        this.out.release(&mut q, released);
        if !this.batch.is_empty() {
            drop(q);
            if released > 0 {
                this.wake_senders();
            }
            return Poll::Ready(Some(Ok(this.batch.split().freeze())));
        }
        if q.end == End::Finish {
            q.done = true;
            let w = q.done_waker.take();
            drop(q);
            if let Some(w) = w {
                w.wake();
            }
            return Poll::Ready(None);
        }
        match &q.writer {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.writer = Some(cx.waker().clone()),
        }
        drop(q);
        if this.batch.capacity() > BATCH_KEEP {
            this.batch = BytesMut::new();
        }
        Poll::Pending
    }
}

impl Body {
    fn wake_senders(&self) {
        if self.out.waiting.load(Ordering::Acquire) > 0 {
            self.out.space.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{pin::pin, sync::Arc};

    fn poll(body: &mut Pin<&mut Body>) -> Poll<Option<Result<Bytes, Dropped>>> {
        let waker = futures_util::task::noop_waker();
        body.as_mut().poll_next(&mut Context::from_waker(&waker))
    }

    fn text(n: usize) -> OutFrame {
        OutFrame::new(OpCode::Text, Bytes::from(vec![b'a'; n]))
    }

    #[test]
    fn budget_counts_bytes_and_an_empty_queue_takes_any_size() {
        let out = Arc::new(Outbound::new(1000, None));
        let body = Body::new(out.clone());
        let mut body = pin!(body);
        assert!(out.push(text(5000)).is_ok()); // empty queue: accepted whatever its size
        assert!(matches!(out.push(text(10)), Err(Refused::Full(_))));
        // header + first slice of nothing: the header goes in the batch, the payload after
        let Poll::Ready(Some(Ok(head))) = poll(&mut body) else {
            panic!()
        };
        assert_eq!(head.len(), 4);
        let Poll::Ready(Some(Ok(payload))) = poll(&mut body) else {
            panic!()
        };
        assert_eq!(payload.len(), 5000);
        assert_eq!(out.buffered(), 0);
        for _ in 0..10 {
            assert!(out.push(text(90)).is_ok());
        }
        assert_eq!(out.buffered(), 920);
        assert!(matches!(out.push(text(90)), Err(Refused::Full(_))));
        // several frames in one chunk
        let Poll::Ready(Some(Ok(batch))) = poll(&mut body) else {
            panic!()
        };
        assert_eq!(batch.len(), 920);
        assert!(poll(&mut body).is_pending());
    }

    #[test]
    fn large_payloads_go_in_slices_and_finish_ends_the_body() {
        let out = Arc::new(Outbound::new(1 << 20, None));
        let body = Body::new(out.clone());
        let mut body = pin!(body);
        out.push(OutFrame::new(OpCode::Binary, Bytes::from(vec![1; 300_000])))
            .ok()
            .unwrap();
        assert!(out.finish(Some(OutFrame::new(
            OpCode::Close,
            Bytes::from_static(&[3, 232])
        ))));
        assert!(matches!(out.push(text(1)), Err(Refused::Closed)));
        let mut sizes = Vec::new();
        while let Poll::Ready(Some(Ok(chunk))) = poll(&mut body) {
            sizes.push(chunk.len());
        }
        assert_eq!(sizes, vec![10, SLICE, 300_000 - SLICE, 4]);
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert_eq!(out.buffered(), 0);
    }

    #[test]
    fn abort_releases_a_payload_being_sliced() {
        let out = Arc::new(Outbound::new(1 << 20, None));
        let body = Body::new(out.clone());
        let mut body = pin!(body);
        out.push(OutFrame::new(OpCode::Binary, Bytes::from(vec![0; 600_000])))
            .ok()
            .unwrap();
        let Poll::Ready(Some(Ok(_header))) = poll(&mut body) else {
            panic!()
        };
        let Poll::Ready(Some(Ok(_slice))) = poll(&mut body) else {
            panic!()
        };
        assert_eq!(out.buffered(), 600_000 + 10);
        out.abort(); // the body is not polled again (a stalled peer)
        assert_eq!(out.buffered(), 0);
    }

    fn agreement(level: u32, context_takeover: bool) -> Option<SendDeflate> {
        Some(SendDeflate {
            level,
            window_bits: 15,
            min_size: 64,
            context_takeover,
        })
    }

    #[test]
    fn a_broadcast_is_compressed_once_per_agreement() {
        let doc = Bytes::from("{\"event\":\"tick\",\"value\":42} ".repeat(100));
        let same: Vec<Outbound> = (0..3)
            .map(|_| Outbound::new(1 << 20, agreement(6, false)))
            .collect();
        let other = Outbound::new(1 << 20, agreement(1, false));
        let keep = Outbound::new(1 << 20, agreement(6, true));
        let plain = Outbound::new(1 << 20, None);
        let mut shared = Shared::new(OutFrame::new(OpCode::Text, doc.clone()));
        let frames: Vec<OutFrame> = same.iter().map(|o| shared.for_queue(o)).collect();
        // one compression, the same bytes for all three
        assert!(frames.iter().all(|f| f.deflate == Deflate::Done));
        assert!(frames[0].payload.len() * 5 < doc.len());
        assert!(frames
            .iter()
            .all(|f| f.payload.as_ptr() == frames[0].payload.as_ptr()));
        // another level: compressed again, separately
        let f = shared.for_queue(&other);
        assert_eq!(f.deflate, Deflate::Done);
        assert_ne!(f.payload.as_ptr(), frames[0].payload.as_ptr());
        assert_eq!(shared.compressed.len(), 2);
        // context takeover: left to that session's writer; no agreement: the payload as it is
        assert_eq!(shared.for_queue(&keep).deflate, Deflate::Auto);
        let p = shared.for_queue(&plain);
        assert_eq!(p.payload.as_ptr(), doc.as_ptr());
        // pushed, the plain one goes out with RSV1 clear and the takeover one compressed
        for (model, rsv1) in [(&plain, false), (&keep, true)] {
            let out = Arc::new(Outbound::new(1 << 20, model.deflate));
            let body = Body::new(out.clone());
            let mut body = pin!(body);
            out.push(shared.for_queue(&out)).ok().unwrap();
            let Poll::Ready(Some(Ok(bytes))) = poll(&mut body) else {
                panic!()
            };
            assert_eq!(bytes[0] & 0x40 != 0, rsv1);
        }
    }

    #[test]
    fn small_and_control_frames_are_never_compressed() {
        let out = Arc::new(Outbound::new(1 << 20, agreement(6, false)));
        let body = Body::new(out.clone());
        let mut body = pin!(body);
        out.push(text(10)).ok().unwrap();
        out.push(OutFrame::new(OpCode::Ping, Bytes::from(vec![b'a'; 125])))
            .ok()
            .unwrap();
        out.push(text(1000).plain()).ok().unwrap();
        out.push(text(1000)).ok().unwrap();
        let Poll::Ready(Some(Ok(batch))) = poll(&mut body) else {
            panic!()
        };
        // text(10) plain, ping plain, text(1000) plain on request, text(1000) compressed
        assert_eq!(batch[0], 0x81);
        assert_eq!(batch[12], 0x89);
        assert_eq!(batch[12 + 127], 0x81);
        let last = 12 + 127 + 4 + 1000;
        assert_eq!(batch[last], 0xC1);
        assert!(batch.len() - last < 40);
    }

    #[test]
    fn abort_fails_the_body_and_frees_the_queue() {
        let out = Arc::new(Outbound::new(1 << 20, None));
        let body = Body::new(out.clone());
        let mut body = pin!(body);
        out.push(text(10)).ok().unwrap();
        out.abort();
        assert_eq!(out.buffered(), 0);
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Err(Dropped)))));
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
    }
}
