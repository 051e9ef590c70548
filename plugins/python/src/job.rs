//! A request on its way from a host thread to Python: everything copied out
//! of the borrowed `spk_request`, so any thread may run it later.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use spikard_abi::Responder;

use crate::native::{AnswerSlot, PyResponder};
use crate::source::{RequestInfo, Source};

/// One request for a Python handler: what the handler gets, and where the
/// answer goes.
pub struct Job {
    /// The request.
    pub work: Work,
    /// Where the answer goes.
    pub responder: Responder,
}

/// A request's data, copied from the host's borrowed request.
pub struct Work {
    /// The route's index in the runtime's handler table.
    pub handler_id: u64,
    /// The host's validated parameters as JSON.
    pub params_json: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// Raw headers, only for handlers that asked for the request.
    pub headers: Option<Vec<(String, String)>>,
    /// The host's request id (shared, not copied, with whoever tracks it).
    pub request_id: Arc<str>,
    /// The request line and properties, only for handlers that asked for
    /// the request.
    pub info: Option<Box<RequestInfo>>,
}

/// The Python arguments every runtime entry point starts with:
/// `(handler_id, params_json, body, headers)`.
pub type Args<'py> = (
    u64,
    Bound<'py, PyString>,
    Bound<'py, PyBytes>,
    Bound<'py, PyAny>,
);

/// Detail of the 503 a cancelled request is answered with (the client has
/// gone or been answered 504 already; the host discards it).
pub const CANCELLED: &str = "the request was cancelled";

impl Work {
    /// The bytes this request keeps alive while it waits in a queue.
    pub fn size(&self) -> usize {
        let headers = self
            .headers
            .as_ref()
            .map_or(0, |h| h.iter().map(|(n, v)| n.len() + v.len()).sum());
        let info = self.info.as_ref().map_or(0, |i| i.size());
        self.params_json.len() + self.body.len() + headers + info
    }

    /// The Python arguments and the request's source.
    pub fn into_args(self, py: Python<'_>) -> (Args<'_>, Source) {
        let headers = match &self.headers {
            None => py.None().into_bound(py),
            Some(headers) => PyList::new(py, headers)
                .map(Bound::into_any)
                .unwrap_or_else(|_| py.None().into_bound(py)),
        };
        let args = (
            self.handler_id,
            PyString::new(py, &self.params_json),
            PyBytes::new(py, &self.body),
            headers,
        );
        let source = Source {
            request_id: self.request_id,
            info: self.info,
        };
        (args, source)
    }

    /// Calls `entry` with the arguments, answering through `slot`, which
    /// the caller keeps to cancel the call while it runs.
    pub fn run_shared(self, py: Python<'_>, entry: &Bound<'_, PyAny>, slot: Arc<AnswerSlot>) {
        let handler_id = self.handler_id;
        let (args, source) = self.into_args(py);
        call(
            py,
            entry,
            args,
            PyResponder::shared(slot, source, handler_id),
        );
    }
}

impl Job {
    /// The request's id.
    pub fn request_id(&self) -> &str {
        &self.work.request_id
    }

    /// The bytes this job keeps alive while it waits in a queue.
    pub fn size(&self) -> usize {
        self.work.size()
    }

    /// Answers without running the handler: a 503 with `Retry-After` when
    /// `retry_after` is given (overload), a plain 503 otherwise.
    pub fn refuse(self, detail: &str, retry_after: Option<&str>) {
        let headers: &[(&str, &str)] = match &retry_after {
            Some(seconds) => &[("retry-after", seconds)],
            None => &[],
        };
        let _ = self.responder.respond_error(503, detail, headers);
    }

    /// Splits the job into its Python arguments, its responder and its source.
    pub fn into_args(self, py: Python<'_>) -> (Args<'_>, Responder, Source) {
        let (args, source) = self.work.into_args(py);
        (args, self.responder, source)
    }

    /// Calls `entry(handler_id, params_json, body, headers, responder)`; a
    /// Python exception (a bug in the runtime, not the handler) is logged
    /// and answered 500.
    pub fn run(self, py: Python<'_>, entry: &Bound<'_, PyAny>) {
        let handler_id = self.work.handler_id;
        let (args, responder, source) = self.into_args(py);
        call(
            py,
            entry,
            args,
            PyResponder::new(responder, source, handler_id),
        );
    }
}

fn call(
    py: Python<'_>,
    entry: &Bound<'_, PyAny>,
    args: Args<'_>,
    responder: PyClassInitializer<PyResponder>,
) {
    let responder = match Bound::new(py, responder) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot create a responder: {e}");
            return;
        }
    };
    let (id, params, body, headers) = args;
    if let Err(err) = entry.call1((id, params, body, headers, &responder)) {
        let traceback = err
            .traceback(py)
            .and_then(|tb| tb.format().ok())
            .unwrap_or_default();
        tracing::error!("the spikard runtime failed: {err}\n{traceback}");
        responder.get().fail("the request handler failed");
    }
}
