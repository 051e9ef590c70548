//! The one asyncio event loop of the process: created once (uvloop when
//! installed), run forever on a thread of its own, so `async def` handlers
//! share one loop for the life of the process and no host thread ever
//! waits for the GIL. It is stopped through its mailbox and joined with a
//! deadline: a loop blocked by a handler that never returns is left behind.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// The running loop and its thread.
pub struct EventLoop {
    event_loop: Py<PyAny>,
    thread: Option<JoinHandle<()>>,
}

impl EventLoop {
    /// Creates the loop through `runtime.new_event_loop()`, lets `prepare`
    /// register readers on it, and starts it on the `spikard-py-loop` thread
    /// (which `runtime.bind_loop_thread()` records, for the watchdog).
    pub fn start(
        runtime: &Bound<'_, PyAny>,
        prepare: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<()>,
    ) -> PyResult<EventLoop> {
        let event_loop = runtime.call_method0("new_event_loop")?;
        prepare(&event_loop)?;
        let running = event_loop.clone().unbind();
        let owner = runtime.clone().unbind();
        let thread = std::thread::Builder::new()
            .name("spikard-py-loop".into())
            .spawn(move || {
                Python::attach(|py| {
                    let event_loop = running.bind(py);
                    let result = owner
                        .bind(py)
                        .call_method0("bind_loop_thread")
                        .and_then(|_| py.import("asyncio"))
                        .and_then(|a| a.call_method1("set_event_loop", (event_loop,)))
                        .and_then(|_| event_loop.call_method0("run_forever"));
                    if let Err(e) = result {
                        tracing::error!("the event loop stopped with an error: {e}");
                    }
                    let _ = event_loop.call_method0("close");
                })
            })
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
        Ok(EventLoop {
            event_loop: event_loop.unbind(),
            thread: Some(thread),
        })
    }

    /// The loop object.
    pub fn get<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.event_loop.bind(py)
    }

    /// Runs a coroutine on the loop and waits for its result (the wait
    /// releases the GIL, so the loop thread can run it).
    pub fn run<'py>(
        &self,
        py: Python<'py>,
        coroutine: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        py.import("asyncio")?
            .call_method1("run_coroutine_threadsafe", (coroutine, self.get(py)))?
            .call_method0("result")
    }

    /// Joins the loop thread (after the mailbox asked the loop to stop)
    /// until `deadline`; false when it is still running then (left to the
    /// process exit).
    pub fn join_until(&mut self, deadline: Instant) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if thread.is_finished() {
            let _ = thread.join();
            true
        } else {
            false
        }
    }
}
