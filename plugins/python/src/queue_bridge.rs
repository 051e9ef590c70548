//! The default bridge, built for throughput.
//!
//! A host thread pushes the request onto a queue and, only when the loop
//! has no wake-up pending, signals an eventfd the loop watches. The loop
//! thread then drains the queue in one callback, under the one GIL
//! acquisition the loop already holds, until it finds it empty (requests
//! arriving meanwhile cost no system call), and starts each coroutine
//! eagerly (`Runtime.dispatch`): a handler that never awaits is answered in
//! that same callback, with no task and no extra loop iteration. Answers go
//! straight to the host's `respond` from Python.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyCFunction;

use crate::job::Job;

struct Shared {
    jobs: Mutex<Vec<Job>>,
    /// The eventfd is signalled or a drain is running: producers need not
    /// signal again.
    wake_pending: AtomicBool,
    event_fd: RawFd,
}

/// The queue and its wake-up pipe.
pub struct QueueBridge {
    shared: Arc<Shared>,
}

impl QueueBridge {
    /// Creates the queue and a non-blocking eventfd.
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: creating a descriptor we own.
        let event_fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if event_fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(QueueBridge {
            shared: Arc::new(Shared {
                jobs: Mutex::new(Vec::with_capacity(256)),
                wake_pending: AtomicBool::new(false),
                event_fd,
            }),
        })
    }

    /// Queues a request; called on host threads, never touches Python.
    pub fn submit(&self, job: Job) {
        self.shared
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job);
        if !self.shared.wake_pending.swap(true, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: an 8-byte write to our own non-blocking eventfd.
            unsafe {
                libc::write(self.shared.event_fd, (&one as *const u64).cast(), 8);
            }
        }
    }

    /// Registers the drain callback on `event_loop`; `dispatch` is
    /// `Runtime.dispatch`.
    pub fn attach(&self, event_loop: &Bound<'_, PyAny>, dispatch: Py<PyAny>) -> PyResult<()> {
        let py = event_loop.py();
        let shared = self.shared.clone();
        let drain = PyCFunction::new_closure(py, Some(c"spikard_drain"), None, move |args, _| {
            let py = args.py();
            drain(py, &shared, dispatch.bind(py));
        })?;
        event_loop.call_method1("add_reader", (self.shared.event_fd, drain))?;
        Ok(())
    }
}

/// Runs on the loop thread whenever the eventfd is signalled.
fn drain(py: Python<'_>, shared: &Shared, dispatch: &Bound<'_, PyAny>) {
    let mut count: u64 = 0;
    // SAFETY: an 8-byte read from our own non-blocking eventfd (resets it).
    unsafe {
        libc::read(shared.event_fd, (&mut count as *mut u64).cast(), 8);
    }
    let take = || std::mem::take(&mut *shared.jobs.lock().unwrap_or_else(|e| e.into_inner()));
    loop {
        let jobs = take();
        if jobs.is_empty() {
            shared.wake_pending.store(false, Ordering::SeqCst);
            // A request queued before that store saw a pending wake-up and
            // did not signal: look once more before sleeping.
            if shared
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
                || shared.wake_pending.swap(true, Ordering::SeqCst)
            {
                return;
            }
            continue;
        }
        for job in jobs {
            job.run(py, dispatch);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptors once, when nothing uses them.
        unsafe {
            libc::close(self.event_fd);
        }
    }
}
