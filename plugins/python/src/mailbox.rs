//! The event loop's mailbox: the one way other threads reach the loop
//! without waiting for the GIL — requests of the queue bridge,
//! cancellations, streams' callbacks (the host's ready and cancel calls for
//! async pumps), the watchdog's pings and the shutdown steps.
//!
//! A thread puts its message in the inbox and, only when the loop has no
//! wake-up pending, signals an eventfd the loop watches. The loop thread then
//! empties the inbox in one callback, under the one GIL acquisition the loop
//! already holds, until it finds it empty (messages arriving meanwhile cost
//! no system call). Requests start eagerly (`Runtime.dispatch`): a handler
//! that never awaits is answered in that same callback, with no task and no
//! extra loop iteration; answers go straight to the host from Python.
//!
//! The request queue is bounded ([`Gate`]); a request cancelled while it
//! still waits is taken out and answered here, so it never starts.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyList};

use crate::backpressure::{Gate, RETRY_AFTER};
use crate::job::{Job, CANCELLED};
use crate::settings::Bounds;
use crate::watchdog::Pulse;

/// What waits for the loop.
#[derive(Default)]
struct Inbox {
    jobs: Vec<Job>,
    /// Bytes the queued jobs hold.
    bytes: usize,
    /// Requests to cancel that were no longer waiting here.
    cancels: Vec<String>,
    /// Python callables to call on the loop (streams' callbacks).
    calls: Vec<Py<PyAny>>,
    ping: bool,
    /// `Runtime.begin_stop(budget_seconds, done)` is due.
    shutdown: Option<(Duration, Arc<Signal>)>,
    /// `loop.stop()` is due.
    stop: bool,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.cancels.is_empty()
            && self.calls.is_empty()
            && !self.ping
            && self.shutdown.is_none()
            && !self.stop
    }
}

struct Shared {
    inbox: Mutex<Inbox>,
    /// The eventfd is signalled or a drain is running: senders need not
    /// signal again.
    wake_pending: AtomicBool,
    event_fd: RawFd,
    gate: Gate,
}

/// The Python callables the drain calls on the loop thread.
pub struct Entries {
    /// `Runtime.dispatch`, for the queue bridge's requests.
    pub dispatch: Py<PyAny>,
    /// `Runtime.cancel(request_ids)`.
    pub cancel: Py<PyAny>,
    /// `Runtime.begin_stop(budget_seconds, done)`.
    pub begin_stop: Py<PyAny>,
    /// `loop.stop`.
    pub stop: Py<PyAny>,
}

/// A one-shot flag another thread waits for with a deadline.
#[derive(Default)]
pub struct Signal {
    set: Mutex<bool>,
    changed: Condvar,
}

impl Signal {
    /// Sets the flag and wakes the waiter.
    pub fn set(&self) {
        *self.set.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Waits until the flag is set (true) or `deadline` passes (false).
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        while !*set {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            set = self
                .changed
                .wait_timeout(set, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// The inbox and its wake-up descriptor; cheap to clone.
#[derive(Clone)]
pub struct Mailbox {
    shared: Arc<Shared>,
}

impl Mailbox {
    /// Creates the inbox, bounded by `bounds`, and a non-blocking eventfd.
    pub fn new(bounds: Bounds) -> std::io::Result<Self> {
        // SAFETY: creating a descriptor we own.
        let event_fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if event_fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mailbox {
            shared: Arc::new(Shared {
                inbox: Mutex::new(Inbox {
                    jobs: Vec::with_capacity(256),
                    ..Inbox::default()
                }),
                wake_pending: AtomicBool::new(false),
                event_fd,
                gate: Gate::new("the event loop's queue", bounds),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self) {
        if !self.shared.wake_pending.swap(true, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: an 8-byte write to our own non-blocking eventfd.
            unsafe {
                libc::write(self.shared.event_fd, (&one as *const u64).cast(), 8);
            }
        }
    }

    /// Queues a request (host threads; never touches Python). A full queue
    /// answers it 503 with `Retry-After`.
    pub fn submit(&self, job: Job) {
        let size = job.size();
        let mut inbox = self.lock();
        if !self.shared.gate.admits(inbox.jobs.len(), inbox.bytes, size) {
            let detail = self.shared.gate.refused(inbox.jobs.len(), inbox.bytes);
            drop(inbox);
            job.refuse(&detail, Some(RETRY_AFTER));
            return;
        }
        inbox.bytes += size;
        inbox.jobs.push(job);
        drop(inbox);
        self.shared.gate.admitted();
        self.wake();
    }

    /// Cancels a request: one still waiting here is taken out and answered
    /// 503 (it never starts); otherwise the loop cancels its task, if any.
    pub fn cancel(&self, request_id: &str) {
        let mut inbox = self.lock();
        if let Some(i) = inbox.jobs.iter().position(|j| j.request_id() == request_id) {
            let job = inbox.jobs.remove(i);
            inbox.bytes -= job.size();
            drop(inbox);
            job.refuse(CANCELLED, None);
            return;
        }
        inbox.cancels.push(request_id.to_owned());
        drop(inbox);
        self.wake();
    }

    /// Calls `callback()` on the loop thread soon (from any thread; never
    /// touches Python). Not bounded: each stream has at most one callback
    /// of each kind outstanding.
    pub fn call_soon(&self, callback: Py<PyAny>) {
        self.lock().calls.push(callback);
        self.wake();
    }

    /// The watchdog's ping: the drain answers it through the pulse.
    pub fn ping(&self) {
        self.lock().ping = true;
        self.wake();
    }

    /// Asks the loop to cancel what runs and run the shutdown hooks within
    /// `budget`; the returned signal is set when that is done.
    pub fn shutdown(&self, budget: Duration) -> Arc<Signal> {
        let done = Arc::new(Signal::default());
        self.lock().shutdown = Some((budget, done.clone()));
        self.wake();
        done
    }

    /// Asks the loop to stop.
    pub fn stop_loop(&self) {
        self.lock().stop = true;
        self.wake();
    }

    /// Requests still waiting for the loop.
    pub fn pending(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Answers every waiting request 503 with `detail`; they never start.
    pub fn refuse_pending(&self, detail: &str) -> usize {
        let jobs = {
            let mut inbox = self.lock();
            inbox.bytes = 0;
            std::mem::take(&mut inbox.jobs)
        };
        let n = jobs.len();
        for job in jobs {
            job.refuse(detail, None);
        }
        n
    }

    /// Registers the drain callback on `event_loop`.
    pub fn attach(
        &self,
        event_loop: &Bound<'_, PyAny>,
        entries: Entries,
        pulse: Arc<Pulse>,
    ) -> PyResult<()> {
        let py = event_loop.py();
        let mailbox = self.clone();
        let drain = PyCFunction::new_closure(py, Some(c"spikard_drain"), None, move |args, _| {
            mailbox.drain(args.py(), &entries, &pulse);
        })?;
        event_loop.call_method1("add_reader", (self.shared.event_fd, drain))?;
        Ok(())
    }

    /// Runs on the loop thread whenever the eventfd is signalled.
    fn drain(&self, py: Python<'_>, entries: &Entries, pulse: &Pulse) {
        let shared = &*self.shared;
        let mut count: u64 = 0;
        // SAFETY: an 8-byte read from our own non-blocking eventfd (resets it).
        unsafe {
            libc::read(shared.event_fd, (&mut count as *mut u64).cast(), 8);
        }
        let take = || {
            let mut inbox = self.lock();
            inbox.bytes = 0;
            std::mem::take(&mut *inbox)
        };
        loop {
            let inbox = take();
            if inbox.is_empty() {
                shared.wake_pending.store(false, Ordering::SeqCst);
                // A message sent before that store saw a pending wake-up and
                // did not signal: look once more before sleeping.
                if self.lock().is_empty() || shared.wake_pending.swap(true, Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            if inbox.ping {
                pulse.pong();
            }
            if !inbox.jobs.is_empty() {
                let dispatch = entries.dispatch.bind(py);
                for job in inbox.jobs {
                    job.run(py, dispatch);
                }
            }
            for callback in inbox.calls {
                if let Err(e) = callback.bind(py).call0() {
                    tracing::error!("a stream callback failed: {e}");
                }
            }
            if !inbox.cancels.is_empty() {
                let call = PyList::new(py, &inbox.cancels)
                    .and_then(|ids| entries.cancel.bind(py).call1((ids,)));
                if let Err(e) = call {
                    tracing::error!("cancelling requests failed: {e}");
                }
            }
            if let Some((budget, done)) = inbox.shutdown {
                begin_stop(py, entries, budget, done);
            }
            if inbox.stop {
                if let Err(e) = entries.stop.bind(py).call0() {
                    tracing::error!("stopping the event loop failed: {e}");
                }
            }
        }
    }
}

/// Starts `Runtime.begin_stop` with a `done` callable that sets `done`.
fn begin_stop(py: Python<'_>, entries: &Entries, budget: Duration, done: Arc<Signal>) {
    let signal = done.clone();
    let call = PyCFunction::new_closure(py, Some(c"spikard_stopped"), None, move |_, _| {
        signal.set();
    })
    .and_then(|callback| {
        entries
            .begin_stop
            .bind(py)
            .call1((budget.as_secs_f64(), callback))
    });
    if let Err(e) = call {
        tracing::error!("shutting the runtime down failed: {e}");
        done.set();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptor once, when nothing uses it.
        unsafe {
            libc::close(self.event_fd);
        }
    }
}
