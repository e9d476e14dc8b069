//! The server's connection future, run by its response body: no task of its own.
//!
//! actix-http's dispatcher reads the socket, feeds the request payload and then pulls the
//! response body, all in one poll of its task. [`Driven`] is that body: each time it is pulled
//! it first polls the connection future (`connection::run`: the decoder, the handlers, the
//! timers) if something woke it, then hands over what the outbound queue holds. A message read
//! from the socket is so decoded, handled and its reply encoded and written in the same poll of
//! the same task, with no wake-up of a second task in between (what a hand-written actix-ws loop
//! pays per message: the dispatcher wakes the loop's task, which wakes the dispatcher).
//!
//! Two things the dispatcher does not do are done by a keeper task per worker thread:
//! - **Stalled peers.** actix-http pulls the body only while its write buffer has room, so the
//!   body of a peer that stopped reading is not pulled, and the connection future's timers
//!   (send timeout, heartbeat) or a close from another task would never be acted on. When a
//!   body has handed data over and not been pulled since, a wake-up of its connection future
//!   also wakes the keeper, which polls that future: it is the future that then drops the peer
//!   (`Session::shutdown_stalled_socket`). A connection whose body actix-http pulls again at
//!   once (small messages, a fast reader) does not wake the keeper; one that waits on the socket
//!   now and then (large messages, back-pressure) may have some of its wake-ups handled there.
//!   With `h1_allow_half_closed(false)` (not actix-web's default) actix-http stops pulling the
//!   body once the peer half-closes; a send that then waits for room is not timed out until the
//!   kernel gives up on the peer.
//! - **The end.** When the body ends (everything written, or the connection failed) or is
//!   dropped while the connection future has not finished (`on_close` still to run, or running),
//!   the future is handed to the keeper, which runs it to its end.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll, Wake, Waker},
};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use futures_util::{stream::FuturesUnordered, task::AtomicWaker, Stream, StreamExt as _};

use crate::session::{outbound::Dropped, Body};

type Job = Pin<Box<dyn Future<Output = ()>>>;

/// The connection future's waker: records that it was woken, and wakes whoever pulls the body
/// (and the keeper, while actix-http is not pulling it).
struct Signal {
    woken: AtomicBool,
    waker: AtomicWaker,
    /// The body's last pull handed data over: actix-http pulls again only once its write buffer
    /// has room (the socket took what it had), so a wake-up rings the keeper's bell too.
    handed_over: AtomicBool,
    /// The body is gone: the keeper runs the future, with its own wakers.
    adopted: AtomicBool,
    /// In the keeper's list (read and written on the worker's thread only; here rather than
    /// in [`Task`] so that a pull touches one allocation, not two).
    watched: AtomicBool,
    bell: Arc<Bell>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.waker.wake();
        // SeqCst with the store of `handed_over` and the load of `woken` in `poll_next`: a
        // wake-up that comes as the body hands data over is seen by one side or the other.
        if self.handed_over.load(Ordering::SeqCst) {
            self.bell.ring();
        }
    }
}

/// The waker of the request payload: marks the connection future woken without waking the
/// dispatcher, which feeds the payload only from its own poll and pulls the body right after.
/// While actix-http is not pulling the body (its write buffer full) the keeper is rung instead:
/// the future goes on reading, so that a peer that writes but does not read fills the queue
/// and meets the send timeout.
struct Quiet(Arc<Signal>);

impl Wake for Quiet {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.woken.store(true, Ordering::SeqCst);
        if self.0.handed_over.load(Ordering::SeqCst) {
            self.0.bell.ring();
        }
    }
}

/// The request payload (the peer's bytes), polled with the [`Quiet`] waker while the body
/// runs the connection future, and with the caller's once the keeper has adopted it.
pub(crate) struct Payload {
    payload: actix_http::Payload,
    waker: Waker,
    signal: Arc<Signal>,
}

impl crate::connection::Input for Payload {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let quiet = Context::from_waker(&self.waker);
        let mut cx = if self.signal.adopted.load(Ordering::Relaxed) {
            Context::from_waker(cx.waker())
        } else {
            quiet
        };
        match Pin::new(&mut self.payload).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(chunk)),
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A connection future and its waker.
struct Task {
    job: Cell<Option<Job>>,
    signal: Arc<Signal>,
    waker: Waker,
}

impl Task {
    /// Polls the connection future if something woke it since it was last polled. A future
    /// that panics is not polled again (it is dropped on the way out).
    fn run(&self) {
        if !self.signal.woken.swap(false, Ordering::SeqCst) {
            return;
        }
        let Some(mut job) = self.job.take() else {
            return;
        };
        if job
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
            .is_pending()
        {
            self.job.set(Some(job));
        }
    }

    /// The body is done with: an unfinished future goes to the keeper.
    fn hand_off(&self) {
        self.signal.handed_over.store(false, Ordering::SeqCst);
        if let Some(job) = self.job.take() {
            self.signal.adopted.store(true, Ordering::SeqCst);
            keeper(|k| k.adopt(job));
        }
    }
}

/// The response body of a server connection: drains the session's outbound queue, and runs the
/// connection future whenever it is pulled (see the module docs).
pub(crate) struct Driven {
    body: Body,
    task: Rc<Task>,
    /// The task's signal, reached without going through the task: most pulls need no more.
    signal: Arc<Signal>,
}

impl Driven {
    /// `job` makes the connection future from the request payload. Must be called on an
    /// actix worker (inside its `LocalSet`): the upgrade handler.
    pub(crate) fn new<F: Future<Output = ()> + 'static>(
        body: Body,
        payload: actix_http::Payload,
        job: impl FnOnce(Payload) -> F,
    ) -> Self {
        let mut bell = None;
        keeper(|k| {
            k.start();
            bell = Some(k.bell.clone());
        });
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(true), // the first pull runs `on_open`
            waker: AtomicWaker::new(),
            handed_over: AtomicBool::new(false),
            adopted: AtomicBool::new(false),
            watched: AtomicBool::new(false),
            bell: bell.unwrap_or_default(),
        });
        let payload = Payload {
            payload,
            waker: Waker::from(Arc::new(Quiet(signal.clone()))),
            signal: signal.clone(),
        };
        let task = Rc::new(Task {
            job: Cell::new(Some(Box::pin(job(payload)))),
            waker: Waker::from(signal.clone()),
            signal: signal.clone(),
        });
        Self { body, task, signal }
    }
}

impl MessageBody for Driven {
    type Error = Dropped;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let signal = &this.signal;
        if signal.handed_over.load(Ordering::Relaxed) {
            signal.handed_over.store(false, Ordering::SeqCst);
        }
        signal.waker.register(cx.waker());
        // (A plain load on x86; `run` swaps it.)
        if signal.woken.load(Ordering::SeqCst) {
            let task = &this.task;
            crate::session::outbound::pulling(this.body.outbound(), || task.run());
        }
        let pulled = Pin::new(&mut this.body).poll_next(cx);
        match &pulled {
            Poll::Ready(Some(Ok(_))) => {
                signal.handed_over.store(true, Ordering::SeqCst);
                if !signal.watched.swap(true, Ordering::Relaxed) {
                    keeper(|k| k.watch(this.task.clone()));
                }
                if signal.woken.load(Ordering::SeqCst) {
                    // Woken as the data was handed over: whoever pulls next, or the keeper.
                    signal.bell.ring();
                }
            }
            Poll::Ready(_) => {
                // Ended: the future usually finishes now (`on_close`), else the keeper runs it.
                this.task.run();
                this.task.hand_off();
            }
            Poll::Pending => {}
        }
        pulled
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        self.task.hand_off();
    }
}

/// An adopted future whose panic ends it alone, not the keeper.
fn guard(job: Job) -> Job {
    Box::pin(async move {
        if let Err(panic) =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(job)).await
        {
            log_panic(panic);
        }
    })
}

fn log_panic(panic: Box<dyn std::any::Any + Send>) {
    tracing::error!(
        panic = crate::connection::panic_message(panic),
        "a WebSocket connection's future panicked"
    );
}

/// Rung (from any thread) when a connection future whose body is not being pulled is woken.
#[derive(Default)]
struct Bell {
    rung: AtomicBool,
    waker: AtomicWaker,
}

impl Bell {
    fn ring(&self) {
        self.rung.store(true, Ordering::SeqCst);
        self.waker.wake();
    }
}

/// Per worker thread: runs connection futures whose body is gone, and those of bodies
/// actix-http is not pulling.
struct Keeper {
    running: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    adopted: RefCell<Vec<Job>>,
    /// Bodies whose last pull handed data over (some may have been pulled since).
    watched: RefCell<Vec<Rc<Task>>>,
    /// `watched`'s length at which it is pruned next.
    prune_at: Cell<usize>,
    bell: Arc<Bell>,
}

thread_local! {
    static KEEPER: Rc<Keeper> = Rc::new(Keeper {
        running: Cell::new(false),
        waker: RefCell::new(None),
        adopted: RefCell::new(Vec::new()),
        watched: RefCell::new(Vec::new()),
        prune_at: Cell::new(64),
        bell: Arc::default(),
    });
}

/// `f` with this thread's keeper; nothing once the thread is being torn down.
fn keeper(f: impl FnOnce(&Rc<Keeper>)) {
    let _ = KEEPER.try_with(f);
}

/// Marks the keeper stopped when its task is dropped (its runtime shut down): the next
/// connection on this thread starts a new one. What it held belonged to the old runtime.
struct Running(Rc<Keeper>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.set(false);
        self.0.waker.borrow_mut().take();
        let adopted = std::mem::take(&mut *self.0.adopted.borrow_mut());
        let watched = std::mem::take(&mut *self.0.watched.borrow_mut());
        drop(adopted);
        for task in watched {
            task.signal.watched.store(false, Ordering::Relaxed);
        }
    }
}

impl Keeper {
    fn start(self: &Rc<Self>) {
        if self.running.replace(true) {
            return;
        }
        let running = Running(self.clone());
        actix_web::rt::spawn(async move {
            let keeper = &running.0;
            let mut jobs: FuturesUnordered<Job> = FuturesUnordered::new();
            std::future::poll_fn(|cx| {
                *keeper.waker.borrow_mut() = Some(cx.waker().clone());
                keeper.bell.waker.register(cx.waker());
                if keeper.bell.rung.swap(false, Ordering::SeqCst) {
                    keeper.look();
                }
                jobs.extend(keeper.adopted.borrow_mut().drain(..).map(guard));
                while let Poll::Ready(Some(())) = jobs.poll_next_unpin(cx) {}
                if keeper.bell.rung.load(Ordering::SeqCst) {
                    // Rung again meanwhile: once more, after the worker's other tasks.
                    cx.waker().wake_by_ref();
                }
                Poll::<()>::Pending
            })
            .await;
        });
    }

    fn adopt(&self, job: Job) {
        if !self.running.get() {
            return; // its runtime is gone (dropped with the job)
        }
        self.adopted.borrow_mut().push(job);
        let waker = self.waker.borrow().clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn watch(&self, task: Rc<Task>) {
        let mut watched = self.watched.borrow_mut();
        if watched.len() >= self.prune_at.get() {
            // Amortised: the list never holds many more than the bodies handing data over.
            watched.retain(|t| {
                let keep = t.signal.handed_over.load(Ordering::SeqCst);
                t.signal.watched.store(keep, Ordering::Relaxed);
                keep
            });
            self.prune_at.set((watched.len() * 2).max(64));
        }
        watched.push(task);
    }

    /// The bell rang: the connection futures of bodies not being pulled that were woken are
    /// polled here; bodies pulled since they were watched leave the list.
    fn look(&self) {
        let watched = std::mem::take(&mut *self.watched.borrow_mut());
        let mut kept = Vec::with_capacity(watched.len());
        for task in watched {
            if !task.signal.handed_over.load(Ordering::SeqCst) {
                task.signal.watched.store(false, Ordering::Relaxed);
                continue;
            }
            // A panic outside the handlers (they are caught already) ends that connection only.
            if let Err(panic) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.run()))
            {
                log_panic(panic);
            }
            kept.push(task);
        }
        // Tasks watched meanwhile (by bodies pulled while this ran) are kept too.
        let mut watched = self.watched.borrow_mut();
        kept.append(&mut watched);
        *watched = kept;
    }
}
