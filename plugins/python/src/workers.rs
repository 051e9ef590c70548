//! The pool of Python threads that runs `def` handlers, so a blocking
//! handler never stalls the event loop or a host thread. Each worker keeps
//! the GIL while requests are queued.
//!
//! The queue is bounded ([`Gate`]). The pool knows what each worker runs,
//! so a cancellation takes a waiting request out (it never starts) or
//! answers a running one at once (its result is discarded when it comes),
//! and shutdown names the handlers it has to abandon.
//!
//! The pool also runs the *steps* of streamed responses from sync
//! iterators ([`Step`]): each writes until the host is full, then the
//! host's ready callback queues the next one, so a slow client holds no
//! worker. Steps are not bounded by the gate (a stream has at most one
//! queued) and workers alternate between steps and new requests.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::backpressure::{Gate, RETRY_AFTER};
use crate::job::{Job, Work, CANCELLED};
use crate::native::AnswerSlot;
use crate::settings::Bounds;

/// A call in progress on one worker.
struct Running {
    request_id: Arc<str>,
    handler_id: u64,
    since: Instant,
    /// `None` for a stream's step (its request was answered with the head).
    slot: Option<Arc<AnswerSlot>>,
}

/// The next step of a streamed response: a Python callable (a sync pump's
/// `step`) that never raises.
pub struct Step {
    /// The callable.
    pub call: Py<PyAny>,
    /// The stream's request.
    pub request_id: Arc<str>,
    /// The handler that made the stream, for shutdown's log.
    pub handler_id: u64,
}

/// What a worker takes from the queue.
enum Task {
    Request(Work, Arc<AnswerSlot>),
    Step(Step),
}

struct Pool {
    jobs: VecDeque<Job>,
    /// Bytes the queued jobs hold.
    bytes: usize,
    /// Streams' steps waiting for a worker.
    steps: VecDeque<Step>,
    /// Whether the next worker to look prefers a step over a request.
    steps_turn: bool,
    /// What each worker runs.
    running: Vec<Option<Running>>,
    stopping: bool,
}

struct Shared {
    pool: Mutex<Pool>,
    ready: Condvar,
    gate: Gate,
}

/// A handler the pool had to leave running.
pub struct Abandoned {
    /// The handler's index.
    pub handler_id: u64,
    /// How long it has been running.
    pub running_for: Duration,
    /// The worker thread's name.
    pub thread: String,
}

/// The pool.
pub struct SyncWorkers {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl SyncWorkers {
    /// Starts `count` threads calling `call_sync` (`Runtime.call_sync`),
    /// with at most `bounds` waiting.
    pub fn start(count: usize, bounds: Bounds, call_sync: Py<PyAny>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            pool: Mutex::new(Pool {
                jobs: VecDeque::new(),
                bytes: 0,
                steps: VecDeque::new(),
                steps_turn: false,
                running: (0..count).map(|_| None).collect(),
                stopping: false,
            }),
            ready: Condvar::new(),
            gate: Gate::new("the sync handler pool's queue", bounds),
        });
        let call_sync = Arc::new(call_sync);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let (shared, call_sync) = (shared.clone(), call_sync.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("spikard-py-sync-{i}"))
                    .spawn(move || work(&shared, i, &call_sync))?,
            );
        }
        Ok(SyncWorkers {
            shared,
            threads: Mutex::new(threads),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.shared.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where streams queue their steps.
    pub fn steps(&self) -> StepQueue {
        StepQueue(self.shared.clone())
    }

    /// Queues a request for the next free worker; a full queue answers it
    /// 503 with `Retry-After`.
    pub fn submit(&self, job: Job) {
        let size = job.size();
        let mut pool = self.lock();
        if !self.shared.gate.admits(pool.jobs.len(), pool.bytes, size) {
            let detail = self.shared.gate.refused(pool.jobs.len(), pool.bytes);
            drop(pool);
            job.refuse(&detail, Some(RETRY_AFTER));
            return;
        }
        pool.bytes += size;
        pool.jobs.push_back(job);
        drop(pool);
        self.shared.gate.admitted();
        self.shared.ready.notify_one();
    }

    /// Cancels `request_id` if the pool has it: a waiting request is taken
    /// out and answered 503, a running one is answered 503 now and its
    /// result discarded. Returns whether the pool had it.
    pub fn cancel(&self, request_id: &str) -> bool {
        let mut pool = self.lock();
        if let Some(i) = pool.jobs.iter().position(|j| j.request_id() == request_id) {
            let job = pool.jobs.remove(i).expect("found above");
            pool.bytes -= job.size();
            drop(pool);
            job.refuse(CANCELLED, None);
            return true;
        }
        let slot = pool
            .running
            .iter()
            .flatten()
            .find(|r| &*r.request_id == request_id)
            .and_then(|r| r.slot.clone());
        drop(pool);
        match slot {
            Some(slot) => {
                slot.cancel(CANCELLED);
                true
            }
            None => false,
        }
    }

    /// Whether no request waits or runs.
    pub fn idle(&self) -> bool {
        let pool = self.lock();
        pool.jobs.is_empty() && pool.steps.is_empty() && pool.running.iter().all(Option::is_none)
    }

    /// Answers every waiting request 503 with `detail` (they never start)
    /// and every running one too (their results are discarded).
    pub fn refuse_all(&self, detail: &str) -> usize {
        let (jobs, slots) = {
            let mut pool = self.lock();
            pool.bytes = 0;
            let slots: Vec<Arc<AnswerSlot>> = pool
                .running
                .iter()
                .flatten()
                .filter_map(|r| r.slot.clone())
                .collect();
            (std::mem::take(&mut pool.jobs), slots)
        };
        let mut n = jobs.len();
        for job in jobs {
            job.refuse(detail, None);
        }
        for slot in slots {
            n += usize::from(slot.cancel(detail));
        }
        n
    }

    /// Stops the workers: waiting requests are refused with `detail`,
    /// threads are joined until `deadline`, and the calls still running then
    /// are returned (their threads are left to the process exit).
    pub fn stop(&self, detail: &str, deadline: Instant) -> Vec<Abandoned> {
        self.refuse_all(detail);
        self.lock().stopping = true;
        self.shared.ready.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        while Instant::now() < deadline && threads.iter().any(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let pool = self.lock();
        let mut abandoned = Vec::new();
        for (i, thread) in threads.into_iter().enumerate() {
            if thread.is_finished() {
                let _ = thread.join();
                continue;
            }
            if let Some(running) = pool.running.get(i).and_then(Option::as_ref) {
                abandoned.push(Abandoned {
                    handler_id: running.handler_id,
                    running_for: running.since.elapsed(),
                    thread: thread.thread().name().unwrap_or("?").to_owned(),
                });
            }
        }
        abandoned
    }
}

/// A handle the streams queue their steps on (cheap to clone).
#[derive(Clone)]
pub struct StepQueue(Arc<Shared>);

impl StepQueue {
    /// Queues a stream's step for the next free worker (from any thread;
    /// never touches Python).
    pub fn submit(&self, step: Step) {
        self.0
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .steps
            .push_back(step);
        self.0.ready.notify_one();
    }
}

/// Takes the next request or step for worker `me` (alternating between the
/// two queues while both have work) and records it as running; `None` when
/// both are empty.
fn next(pool: &mut Pool, me: usize) -> Option<Task> {
    let take_step = !pool.steps.is_empty() && (pool.steps_turn || pool.jobs.is_empty());
    pool.steps_turn = !take_step;
    if take_step {
        let step = pool.steps.pop_front()?;
        pool.running[me] = Some(Running {
            request_id: step.request_id.clone(),
            handler_id: step.handler_id,
            since: Instant::now(),
            slot: None,
        });
        return Some(Task::Step(step));
    }
    let Job { work, responder } = pool.jobs.pop_front()?;
    pool.bytes -= work.size();
    // The responder moves into a slot the pool shares with Python.
    let slot = Arc::new(AnswerSlot::new(responder));
    pool.running[me] = Some(Running {
        request_id: work.request_id.clone(),
        handler_id: work.handler_id,
        since: Instant::now(),
        slot: Some(slot.clone()),
    });
    Some(Task::Request(work, slot))
}

impl Task {
    /// Runs the request's handler through `call_sync`, or the step.
    fn run(self, py: Python<'_>, call_sync: &Bound<'_, PyAny>) {
        match self {
            Task::Request(work, slot) => work.run_shared(py, call_sync, slot),
            Task::Step(step) => {
                if let Err(e) = step.call.bind(py).call0() {
                    tracing::error!("request {}: a stream step failed: {e}", step.request_id);
                }
            }
        }
    }
}

fn work(shared: &Shared, me: usize, call_sync: &Py<PyAny>) {
    let lock = || shared.pool.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let first = {
            let mut pool = lock();
            loop {
                if let Some(first) = next(&mut pool, me) {
                    break first;
                }
                if pool.stopping {
                    return;
                }
                pool = shared.ready.wait(pool).unwrap_or_else(|e| e.into_inner());
            }
        };
        // One GIL acquisition for as long as there is work. Jobs are taken
        // one at a time, so while a handler blocks (and releases the GIL)
        // the other workers take the rest.
        Python::attach(|py| {
            let call_sync = call_sync.bind(py);
            let mut current = Some(first);
            while let Some(task) = current {
                task.run(py, call_sync);
                let mut pool = lock();
                pool.running[me] = None;
                current = if pool.stopping {
                    None
                } else {
                    next(&mut pool, me)
                };
            }
        });
    }
}
