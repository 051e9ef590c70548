//! A request on its way from a host thread to Python: everything copied out
//! of the borrowed `spk_request`, so any thread may run it later.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use spikard_abi::Responder;

use crate::native::PyResponder;

/// One request for a Python handler.
pub struct Job {
    /// The route's index in the runtime's handler table.
    pub handler_id: u64,
    /// The host's validated parameters as JSON.
    pub params_json: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// Raw headers, only for handlers that asked for the request.
    pub headers: Option<Vec<(String, String)>>,
    /// Where the answer goes.
    pub responder: Responder,
    /// The host's request id.
    pub request_id: String,
}

/// The Python arguments every runtime entry point starts with:
/// `(handler_id, params_json, body, headers)`.
pub type Args<'py> = (
    u64,
    Bound<'py, PyString>,
    Bound<'py, PyBytes>,
    Bound<'py, PyAny>,
);

impl Job {
    /// Splits the job into its Python arguments and its responder.
    pub fn into_args(self, py: Python<'_>) -> (Args<'_>, Responder, String) {
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
        (args, self.responder, self.request_id)
    }

    /// Calls `entry(handler_id, params_json, body, headers, responder)`; a
    /// Python exception (a bug in the runtime, not the handler) is logged
    /// and answered 500.
    pub fn run(self, py: Python<'_>, entry: &Bound<'_, PyAny>) {
        let ((id, params, body, headers), responder, request_id) = self.into_args(py);
        let responder = match Bound::new(py, PyResponder::new(responder, request_id)) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot create a responder: {e}");
                return;
            }
        };
        if let Err(err) = entry.call1((id, params, body, headers, &responder)) {
            let traceback = err
                .traceback(py)
                .and_then(|tb| tb.format().ok())
                .unwrap_or_default();
            tracing::error!("the spikard runtime failed: {err}\n{traceback}");
            responder.get().fail("the request handler failed");
        }
    }
}
