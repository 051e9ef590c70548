//! `spikard._native.Stream`: a streamed response as the Python pumps
//! (`spikard._streaming`) see it, on top of the SDK's [`Stream`].
//!
//! No host thread ever waits for the GIL: the host's ready callback and its
//! cancellation only hand the Python callback the pump registered to the
//! loop's mailbox or the sync pool's queue, which run it with the GIL they
//! already hold. Each stream gets a cancel token (an index into [`STREAMS`])
//! before its head is sent, so a cancellation finds it without a request-id
//! lookup and reaches even a producer that is waiting for its next item.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use spikard_abi::{Responder, Stream, StreamError, Written};

use crate::mailbox::Mailbox;
use crate::native::InFlight;
use crate::workers::{Step, StepQueue};

/// `Stream.write`: the host took the chunk.
const TAKEN: u8 = 0;
/// `Stream.write`: not taken, the host's buffer for this stream is full.
const FULL: u8 = 1;
/// `Stream.write`: the request is over (client gone, stopping, cancelled).
const CLOSED: u8 = 2;

/// Where the Python callbacks of streams run.
struct Scheduler {
    mailbox: Mailbox,
    steps: StepQueue,
}

static SCHEDULER: OnceLock<Scheduler> = OnceLock::new();

/// Live streams by cancel token.
static STREAMS: Mutex<BTreeMap<u64, Weak<Shared>>> = Mutex::new(BTreeMap::new());

/// The next cancel token (never 0, never reused).
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// Makes the loop's mailbox and the sync pool the places stream callbacks
/// run; called once at start-up.
pub fn install(mailbox: Mailbox, steps: StepQueue) {
    let _ = SCHEDULER.set(Scheduler { mailbox, steps });
}

/// `spikard._native.run_on_pool(callback, request_id, handler_id) -> bool`:
/// runs `callback()` (which must not raise) on a sync worker soon, queued
/// like a stream's step: the `def` background tasks of a request served on
/// the event loop, so they never block the loop and shutdown names them.
/// `False` when there is no pool (the plugin is not serving yet).
#[pyfunction]
pub fn run_on_pool(callback: Py<PyAny>, request_id: &str, handler_id: u64) -> bool {
    let Some(scheduler) = SCHEDULER.get() else {
        return false;
    };
    scheduler.steps.submit(Step {
        call: callback,
        request_id: Arc::from(request_id),
        handler_id,
    });
    true
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a callback runs.
#[derive(Clone, Copy)]
enum Target {
    /// On the event loop thread (an async pump's future).
    Loop,
    /// On a sync worker (a sync pump's next step).
    Pool,
}

/// A Python callback to run once, and where.
struct Wake {
    callback: Py<PyAny>,
    target: Target,
}

/// The SDK stream and the in-flight count it holds until it ends.
struct Live {
    stream: Stream,
    _in_flight: InFlight,
}

/// One stream's state, shared by its Python object, the host's ready
/// callback (weakly) and the token table (weakly).
struct Shared {
    token: u64,
    request_id: Arc<str>,
    handler_id: u64,
    /// `None` once ended or closed by the host.
    live: Mutex<Option<Live>>,
    /// The host cancelled the request, or the plugin is stopping.
    cancelled: AtomicBool,
    /// The pump's callback for when the host can take a write again.
    armed: Mutex<Option<Wake>>,
    /// The async pump's `task.cancel`, run on the loop at cancellation.
    on_cancel: Mutex<Option<Py<PyAny>>>,
}

impl Shared {
    /// A stream's state, registered under a fresh token.
    fn new(request_id: Arc<str>, handler_id: u64) -> Arc<Shared> {
        let shared = Arc::new(Shared {
            token: NEXT_TOKEN.fetch_add(1, Ordering::Relaxed),
            request_id,
            handler_id,
            live: Mutex::new(None),
            cancelled: AtomicBool::new(false),
            armed: Mutex::new(None),
            on_cancel: Mutex::new(None),
        });
        lock(&STREAMS).insert(shared.token, Arc::downgrade(&shared));
        shared
    }

    /// Hands `wake` to the loop or the pool; never touches Python.
    fn schedule(&self, wake: Wake) {
        let Some(scheduler) = SCHEDULER.get() else {
            tracing::error!(
                "request {}: a stream callback has nowhere to run",
                self.request_id
            );
            return;
        };
        match wake.target {
            Target::Loop => scheduler.mailbox.call_soon(wake.callback),
            Target::Pool => scheduler.steps.submit(Step {
                call: wake.callback,
                request_id: self.request_id.clone(),
                handler_id: self.handler_id,
            }),
        }
    }

    /// Runs the armed callback, once (the host's ready callback, or a
    /// cancellation).
    fn fire_ready(&self) {
        let armed = lock(&self.armed).take();
        if let Some(wake) = armed {
            self.schedule(wake);
        }
    }

    /// The request is over: writes say `CLOSED` from now on, a waiting
    /// pump wakes up, and an async pump's task is cancelled.
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let on_cancel = lock(&self.on_cancel).take();
        if let Some(callback) = on_cancel {
            self.schedule(Wake {
                callback,
                target: Target::Loop,
            });
        }
        self.fire_ready();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        lock(&STREAMS).remove(&self.token);
    }
}

/// Cancels the stream holding `token` (the host's `cancel_token`); false
/// when there is none (ended already).
pub fn cancel(token: u64) -> bool {
    let shared = lock(&STREAMS).get(&token).and_then(Weak::upgrade);
    match shared {
        Some(shared) => {
            shared.cancel();
            true
        }
        None => false,
    }
}

/// Cancels every stream not ended yet (shutdown); returns how many.
pub fn cancel_all() -> usize {
    let live: Vec<Arc<Shared>> = lock(&STREAMS).values().filter_map(Weak::upgrade).collect();
    for shared in &live {
        shared.cancel();
    }
    live.len()
}

/// Sends the head of `responder`'s response and returns its stream, or
/// `None` when the request is already over. The stream's cancel token is
/// set first, so no cancellation can slip between the head and the pump.
/// An error means the host refused the head (it answered 500 itself).
pub fn start(
    responder: Responder,
    status: u16,
    headers: &[(&str, &str)],
    request_id: Arc<str>,
    handler_id: u64,
) -> PyResult<Option<PyStream>> {
    let shared = Shared::new(request_id, handler_id);
    // Refused only when the request is over (start_stream then says so) or
    // by a 1.0 host (which cannot stream either).
    let _ = responder.set_cancel_token(shared.token);
    match responder.start_stream(status, headers) {
        Ok(stream) => {
            *lock(&shared.live) = Some(Live {
                stream,
                _in_flight: InFlight::new(),
            });
            Ok(Some(PyStream { shared }))
        }
        Err(StreamError::Closed) => Ok(None),
        Err(e) => Err(PyRuntimeError::new_err(e.to_string())),
    }
}

/// A started stream: the head is sent, the body goes through `write`.
/// Every method may be called from any Python thread; callbacks run on the
/// event loop or a sync worker, never on a host thread.
#[pyclass(frozen, name = "Stream", module = "spikard._native")]
pub struct PyStream {
    shared: Arc<Shared>,
}

#[pymethods]
impl PyStream {
    /// `write(data) -> int`: 0 taken, 1 not taken (the host is full: call
    /// `on_ready` and write it again then), 2 the request is over.
    fn write(&self, data: &[u8]) -> PyResult<u8> {
        if self.shared.is_cancelled() {
            return Ok(CLOSED);
        }
        let mut live = lock(&self.shared.live);
        let Some(current) = live.as_mut() else {
            return Ok(CLOSED);
        };
        match current.stream.write(data) {
            Ok(Written::Taken) => Ok(TAKEN),
            Ok(Written::Full) => Ok(FULL),
            Err(StreamError::Closed) => {
                *live = None;
                Ok(CLOSED)
            }
            Err(e) => Err(PyRuntimeError::new_err(e.to_string())),
        }
    }

    /// `on_ready(callback, on_loop)`: `callback()` runs once, on the event
    /// loop (`on_loop`) or a sync worker, when the host can take a write
    /// again or the request is over (at once when it is over already). One
    /// at a time, after a write that was not taken.
    fn on_ready(&self, callback: Py<PyAny>, on_loop: bool) -> PyResult<()> {
        let target = if on_loop { Target::Loop } else { Target::Pool };
        let shared = &self.shared;
        *lock(&shared.armed) = Some(Wake { callback, target });
        if shared.is_cancelled() {
            shared.fire_ready();
            return Ok(());
        }
        let mut live = lock(&shared.live);
        let Some(current) = live.as_mut() else {
            drop(live);
            shared.fire_ready();
            return Ok(());
        };
        let weak = Arc::downgrade(shared);
        let registered = current.stream.on_ready(move || {
            if let Some(shared) = weak.upgrade() {
                shared.fire_ready();
            }
        });
        match registered {
            Ok(()) => Ok(()),
            Err(StreamError::Closed) => {
                *live = None;
                drop(live);
                shared.fire_ready();
                Ok(())
            }
            Err(e) => {
                drop(live);
                lock(&shared.armed).take();
                Err(PyRuntimeError::new_err(e.to_string()))
            }
        }
    }

    /// `submit(callback)`: runs `callback()` on a sync worker soon (a sync
    /// pump's first step, or its next one after a time slice).
    fn submit(&self, callback: Py<PyAny>) {
        self.shared.schedule(Wake {
            callback,
            target: Target::Pool,
        });
    }

    /// `on_cancel(callback)`: `callback()` runs on the event loop when the
    /// request is cancelled (at once when it was already); dropped when the
    /// stream ends first.
    fn on_cancel(&self, callback: Py<PyAny>) {
        let shared = &self.shared;
        *lock(&shared.on_cancel) = Some(callback);
        if shared.is_cancelled() {
            let callback = lock(&shared.on_cancel).take();
            if let Some(callback) = callback {
                shared.schedule(Wake {
                    callback,
                    target: Target::Loop,
                });
            }
        }
    }

    /// `end()`: ends the body (idempotent; nothing to do once the host
    /// closed it) and drops the callbacks still registered.
    fn end(&self) {
        let shared = &self.shared;
        lock(&STREAMS).remove(&shared.token);
        let live = lock(&shared.live).take();
        let armed = lock(&shared.armed).take();
        let on_cancel = lock(&shared.on_cancel).take();
        drop((armed, on_cancel));
        if let Some(live) = live {
            // Closed: the request ended first; nothing to end.
            let _ = live.stream.end(&[]);
        }
    }

    /// Whether writes would say the request is over (or it was ended).
    #[getter]
    fn closed(&self) -> bool {
        self.shared.is_cancelled() || lock(&self.shared.live).is_none()
    }

    /// The host's id of the request.
    #[getter]
    fn request_id(&self) -> &str {
        &self.shared.request_id
    }
}
