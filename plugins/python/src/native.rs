//! `spikard._native`: what Python code may call in the plugin — the host's
//! logger and the per-request [`PyResponder`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use spikard_abi::{Host, Responder};

static HOST: OnceLock<Host> = OnceLock::new();

/// Requests handed to Python and not answered yet; shutdown waits for them.
pub static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Remembers the host for `log` and `log_enabled`.
pub fn set_host(host: Host) {
    let _ = HOST.set(host);
}

/// `_native.log(level, target, message)`: one record to the host's log.
#[pyfunction]
fn log(level: u32, target: &str, message: &str) {
    if let Some(host) = HOST.get() {
        host.log(level, target, message);
    }
}

/// `_native.log_enabled(level, target)`: would the host keep such a record?
#[pyfunction]
fn log_enabled(level: u32, target: &str) -> bool {
    HOST.get().is_some_and(|h| h.log_enabled(level, target))
}

/// A request's answer slot, as Python sees it: answer once, from any thread.
/// Dropped unanswered (e.g. collected after a bug), it answers 500.
#[pyclass(frozen, name = "Responder", module = "spikard._native")]
pub struct PyResponder {
    slot: Mutex<Option<Responder>>,
    /// The host's id of the request, for logs.
    #[pyo3(get)]
    request_id: String,
}

impl PyResponder {
    /// Wraps a responder; counts the request as in flight until answered.
    pub fn new(responder: Responder, request_id: String) -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        PyResponder {
            slot: Mutex::new(Some(responder)),
            request_id,
        }
    }

    fn take(&self) -> PyResult<Responder> {
        self.slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .inspect(|_| {
                IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
            })
            .ok_or_else(|| PyRuntimeError::new_err("this request was already answered"))
    }

    /// Answers 500 unless answered already (after a failed Python call).
    pub fn fail(&self, detail: &str) {
        if let Ok(responder) = self.take() {
            let _ = responder.respond_error(500, detail, &[]);
        }
    }
}

impl Drop for PyResponder {
    fn drop(&mut self) {
        if self.slot.get_mut().map(|s| s.is_some()).unwrap_or(false) {
            IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Borrows `(name, value)` string pairs from a Python sequence of 2-tuples.
pub fn header_pairs<'py>(
    headers: &Bound<'py, PyAny>,
) -> PyResult<Vec<(Bound<'py, PyString>, Bound<'py, PyString>)>> {
    let mut pairs = Vec::new();
    if headers.is_none() {
        return Ok(pairs);
    }
    for item in headers.try_iter()? {
        let item = item?;
        let pair = item.cast::<PyTuple>()?;
        pairs.push((
            pair.get_item(0)?.cast_into::<PyString>()?,
            pair.get_item(1)?.cast_into::<PyString>()?,
        ));
    }
    Ok(pairs)
}

/// Borrows the pairs' text as `(&str, &str)` for one host call.
fn borrowed<'a>(
    pairs: &'a [(Bound<'_, PyString>, Bound<'_, PyString>)],
) -> PyResult<Vec<(&'a str, &'a str)>> {
    pairs
        .iter()
        .map(|(name, value)| Ok((name.to_str()?, value.to_str()?)))
        .collect()
}

/// Answers `responder` with `(status, headers, body)`, headers as Python pairs.
pub fn respond_with(
    responder: Responder,
    status: u16,
    headers: &Bound<'_, PyAny>,
    body: &[u8],
) -> PyResult<()> {
    let pairs = header_pairs(headers)?;
    responder
        .respond(status, &borrowed(&pairs)?, body)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Answers `responder` with Problem Details.
pub fn respond_problem(
    responder: Responder,
    status: u16,
    detail: &str,
    headers: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let pairs = header_pairs(headers)?;
    responder
        .respond_error(status, detail, &borrowed(&pairs)?)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

#[pymethods]
impl PyResponder {
    /// `respond(status, headers, body)`.
    fn respond(&self, status: u16, headers: &Bound<'_, PyAny>, body: &[u8]) -> PyResult<()> {
        respond_with(self.take()?, status, headers, body)
    }

    /// `respond_error(status, detail, headers)`: Problem Details by the host.
    fn respond_error(&self, status: u16, detail: &str, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        respond_problem(self.take()?, status, detail, headers)
    }
}

/// Builds the `spikard._native` module.
pub fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let module = PyModule::new(py, "spikard._native")?;
    module.add_function(wrap_pyfunction!(log, &module)?)?;
    module.add_function(wrap_pyfunction!(log_enabled, &module)?)?;
    module.add_class::<PyResponder>()?;
    Ok(module)
}
