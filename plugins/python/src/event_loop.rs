//! The one asyncio event loop of the process: created once (uvloop when
//! installed), run forever on a thread of its own, so `async def` handlers
//! share one loop for the life of the process and no host thread ever
//! waits for the GIL.

use std::thread::JoinHandle;

use pyo3::prelude::*;

/// The running loop and its thread.
pub struct EventLoop {
    event_loop: Py<PyAny>,
    thread: Option<JoinHandle<()>>,
}

impl EventLoop {
    /// Creates the loop through `runtime.new_event_loop()`, lets `prepare`
    /// register readers on it, and starts it on the `spikard-py-loop` thread.
    pub fn start(
        runtime: &Bound<'_, PyAny>,
        prepare: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<()>,
    ) -> PyResult<EventLoop> {
        let event_loop = runtime.call_method0("new_event_loop")?;
        prepare(&event_loop)?;
        let running = event_loop.clone().unbind();
        let thread = std::thread::Builder::new()
            .name("spikard-py-loop".into())
            .spawn(move || {
                Python::attach(|py| {
                    let event_loop = running.bind(py);
                    let result = py
                        .import("asyncio")
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

    /// Stops the loop and joins its thread.
    pub fn stop(&mut self, py: Python<'_>) {
        let event_loop = self.get(py);
        if let Ok(stop) = event_loop.getattr("stop") {
            let _ = event_loop.call_method1("call_soon_threadsafe", (stop,));
        }
        if let Some(thread) = self.thread.take() {
            py.detach(|| {
                let _ = thread.join();
            });
        }
    }
}
