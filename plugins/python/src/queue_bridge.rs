//! The default bridge, built for throughput.
//!
//! A host thread pushes the request onto a queue and, only when the loop
//! has no wake-up pending, writes one byte to a pipe the loop watches. The
//! loop thread then drains every queued request in one callback, under the
//! one GIL acquisition the loop already holds, and starts each coroutine
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
    /// A byte is in the pipe or the drain callback is about to run.
    wake_pending: AtomicBool,
    read_fd: RawFd,
    write_fd: RawFd,
}

/// The queue and its wake-up pipe.
pub struct QueueBridge {
    shared: Arc<Shared>,
}

impl QueueBridge {
    /// Creates the queue and a non-blocking pipe.
    pub fn new() -> std::io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(QueueBridge {
            shared: Arc::new(Shared {
                jobs: Mutex::new(Vec::with_capacity(256)),
                wake_pending: AtomicBool::new(false),
                read_fd: fds[0],
                write_fd: fds[1],
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
        if !self.shared.wake_pending.swap(true, Ordering::AcqRel) {
            // SAFETY: writing one byte to our own non-blocking pipe. A full
            // pipe means a wake-up is pending anyway.
            unsafe {
                libc::write(self.shared.write_fd, [1u8].as_ptr().cast(), 1);
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
        event_loop.call_method1("add_reader", (self.shared.read_fd, drain))?;
        Ok(())
    }
}

/// Runs on the loop thread whenever the pipe is readable.
fn drain(py: Python<'_>, shared: &Shared, dispatch: &Bound<'_, PyAny>) {
    let mut buf = [0u8; 256];
    // SAFETY: reading from our own non-blocking pipe into a local buffer.
    while unsafe { libc::read(shared.read_fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    // Cleared before taking the jobs: a request queued after the take
    // writes a new byte and gets its own callback.
    shared.wake_pending.store(false, Ordering::Release);
    let jobs = std::mem::take(&mut *shared.jobs.lock().unwrap_or_else(|e| e.into_inner()));
    for job in jobs {
        job.run(py, dispatch);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptors once, when nothing uses them.
        unsafe {
            libc::close(self.read_fd);
            libc::close(self.write_fd);
        }
    }
}
