//! The `into_future` bridge, the pattern of the seed review: each coroutine
//! becomes a Rust future with `pyo3_async_runtimes::into_future_with_locals`
//! (task locals made once, for the one loop), awaited without holding the
//! GIL on a small tokio runtime of the plugin's own, and its outcome sent
//! through the responder. Kept to measure against the queue bridge.
//!
//! Requests not answered yet are bounded like the queue bridge's waiting
//! ones ([`Gate`]); cancellations reach the task through the loop's mailbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3_async_runtimes::TaskLocals;
use spikard_abi::Responder;

use crate::backpressure::{Gate, RETRY_AFTER};
use crate::job::Job;
use crate::native::{respond_problem, respond_with, InFlight, PyResponder};
use crate::settings::Bounds;
use crate::source::{PyRequestSource, Source};

/// Task locals of the one event loop, created once.
static LOCALS: OnceLock<TaskLocals> = OnceLock::new();

/// The bridge: the runtime's `coroutine` and `begin_stream` entries and a
/// tokio runtime.
pub struct FutureBridge {
    coroutine: Arc<Py<PyAny>>,
    begin_stream: Arc<Py<PyAny>>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    outstanding: Arc<Outstanding>,
}

/// Requests submitted and not answered yet, and the bytes they hold.
struct Outstanding {
    requests: AtomicUsize,
    bytes: AtomicUsize,
    gate: Gate,
}

/// One outstanding request: counted until dropped.
struct Ticket {
    outstanding: Arc<Outstanding>,
    size: usize,
    _in_flight: InFlight,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.outstanding.requests.fetch_sub(1, Ordering::AcqRel);
        self.outstanding
            .bytes
            .fetch_sub(self.size, Ordering::AcqRel);
    }
}

impl FutureBridge {
    /// Binds the bridge to `event_loop`; `coroutine` is `Runtime.coroutine`,
    /// `begin_stream` is `Runtime.begin_stream` (for stream outcomes).
    pub fn new(
        event_loop: &Bound<'_, PyAny>,
        coroutine: Py<PyAny>,
        begin_stream: Py<PyAny>,
        bounds: Bounds,
    ) -> std::io::Result<Self> {
        let _ = LOCALS.set(TaskLocals::new(event_loop.clone()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("spikard-py-future")
            .enable_all()
            .build()?;
        Ok(FutureBridge {
            coroutine: Arc::new(coroutine),
            begin_stream: Arc::new(begin_stream),
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            outstanding: Arc::new(Outstanding {
                requests: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
                gate: Gate::new("the into_future bridge", bounds),
            }),
        })
    }

    /// Counts a request in, or `None` when the bounds are reached.
    fn admit(&self, size: usize) -> Result<Ticket, String> {
        let outstanding = &self.outstanding;
        let pending = outstanding.requests.fetch_add(1, Ordering::AcqRel);
        let bytes = outstanding.bytes.fetch_add(size, Ordering::AcqRel);
        let ticket = Ticket {
            outstanding: outstanding.clone(),
            size,
            _in_flight: InFlight::new(),
        };
        if outstanding.gate.admits(pending, bytes, size) {
            outstanding.gate.admitted();
            Ok(ticket)
        } else {
            Err(outstanding.gate.refused(pending, bytes))
        }
    }

    /// Starts the request's coroutine and answers when it is done; answers
    /// 503 with `Retry-After` when too many are outstanding.
    pub fn submit(&self, job: Job) {
        let ticket = match self.admit(job.size()) {
            Ok(ticket) => ticket,
            Err(detail) => {
                job.refuse(&detail, Some(RETRY_AFTER));
                return;
            }
        };
        let coroutine = self.coroutine.clone();
        let begin_stream = self.begin_stream.clone();
        self.handle.spawn(async move {
            let _ticket = ticket;
            let handler_id = job.work.handler_id;
            let request_id = job.work.request_id.clone();
            let responder = Python::attach(|py| {
                let ((id, params, body, headers), responder, source) = job.into_args(py);
                let future = LOCALS
                    .get()
                    .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("no event loop"))
                    .and_then(|locals| {
                        let request_id = source.request_id.clone();
                        // The request's properties, for a handler that takes the request.
                        let source = match source.info {
                            Some(_) => Some(Bound::new(py, PyRequestSource(source))?),
                            None => None,
                        };
                        let coro = coroutine.bind(py).call1((
                            id,
                            params,
                            body,
                            headers,
                            request_id.as_ref(),
                            source,
                        ))?;
                        pyo3_async_runtimes::into_future_with_locals(locals, coro)
                    });
                (future, responder)
            });
            match responder {
                (Ok(future), responder) => {
                    let outcome = future.await;
                    let stream = StreamEntry {
                        begin_stream: &begin_stream,
                        request_id,
                        handler_id,
                    };
                    Python::attach(|py| answer(py, responder, outcome, stream));
                }
                (Err(err), responder) => {
                    tracing::error!("cannot start the handler: {err}");
                    let _ = responder.respond_error(500, "the request handler failed", &[]);
                }
            }
        });
    }
}

/// What a stream outcome needs: the runtime's entry and the request.
struct StreamEntry<'a> {
    begin_stream: &'a Py<PyAny>,
    request_id: Arc<str>,
    handler_id: u64,
}

impl StreamEntry<'_> {
    /// Hands the responder to `Runtime.begin_stream`, which sends the head
    /// and starts the pump; a failure there is answered 500.
    fn begin(
        self,
        py: Python<'_>,
        responder: Responder,
        status: u16,
        headers: Py<PyAny>,
        source: Py<PyAny>,
    ) {
        let responder = match Bound::new(
            py,
            PyResponder::new(
                responder,
                Source {
                    request_id: self.request_id,
                    info: None,
                },
                self.handler_id,
            ),
        ) {
            Ok(responder) => responder,
            Err(e) => {
                tracing::error!("cannot create a responder: {e}");
                return;
            }
        };
        if let Err(e) = self
            .begin_stream
            .bind(py)
            .call1((&responder, status, headers, source))
        {
            tracing::error!("cannot start the stream: {e}");
            responder.get().fail("the request handler failed");
        }
    }
}

/// Sends an outcome `(kind, status, headers, payload)`: kind 0 is a
/// response with a bytes body, kind 1 Problem Details with a detail string,
/// kind 2 a stream (payload: its source, for `Runtime.begin_stream`).
fn answer(
    py: Python<'_>,
    responder: Responder,
    outcome: PyResult<Py<PyAny>>,
    stream: StreamEntry<'_>,
) {
    let result = outcome.and_then(|outcome| {
        let outcome = outcome.bind(py);
        let kind: u8 = outcome.get_item(0)?.extract()?;
        let status: u16 = outcome.get_item(1)?.extract()?;
        let headers = outcome.get_item(2)?;
        let payload = outcome.get_item(3)?;
        Ok((kind, status, headers.unbind(), payload.unbind()))
    });
    match result {
        Ok((0, status, headers, payload)) => {
            let body = match payload.into_bound(py).cast_into::<PyBytes>() {
                Ok(body) => body,
                Err(_) => {
                    let _ = responder.respond_error(500, "the handler's body is not bytes", &[]);
                    return;
                }
            };
            if let Err(e) = respond_with(responder, status, headers.bind(py), body) {
                tracing::error!("cannot answer: {e}");
            }
        }
        Ok((2, status, headers, payload)) => stream.begin(py, responder, status, headers, payload),
        Ok((_, status, headers, payload)) => {
            let detail: String = payload.bind(py).extract().unwrap_or_default();
            if let Err(e) = respond_problem(responder, status, &detail, headers.bind(py)) {
                tracing::error!("cannot answer: {e}");
            }
        }
        Err(err) => {
            tracing::error!("the handler's coroutine failed: {err}");
            let _ = responder.respond_error(500, "the request handler failed", &[]);
        }
    }
}

impl FutureBridge {
    /// Stops the tokio runtime without waiting for stragglers.
    pub fn stop(&self) {
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            runtime.shutdown_background();
        }
    }
}
