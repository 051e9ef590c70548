//! `spikard._native`: what Python code may call in the plugin — the host's
//! logger, the per-request [`PyResponder`] (and the [`PyStream`] it may
//! become) and the host's JSON checks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use spikard_abi::{Host, Responder};

use crate::source::{PyRequestSource, Source};
use crate::stream::{self, PyStream};

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

/// Counts one request as in flight for as long as it lives (the
/// `into_future` bridge's requests, which have no [`AnswerSlot`]).
pub struct InFlight(());

impl InFlight {
    /// Counts a request.
    pub fn new() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a request's answer goes: the host's responder until someone
/// answers, shared by the Python [`PyResponder`] and, for a `def` handler
/// that is running, the sync pool, so a cancellation can answer it at once.
pub struct AnswerSlot {
    responder: Mutex<Option<Responder>>,
    /// The request was cancelled and answered for it: a late answer from
    /// the handler is discarded silently.
    cancelled: AtomicBool,
}

impl AnswerSlot {
    /// Holds `responder`; counts the request as in flight until answered.
    pub fn new(responder: Responder) -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        AnswerSlot {
            responder: Mutex::new(Some(responder)),
            cancelled: AtomicBool::new(false),
        }
    }

    /// The responder, once.
    fn take(&self) -> Option<Responder> {
        let responder = self
            .responder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if responder.is_some() {
            IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        }
        responder
    }

    /// Answers 503 for a cancelled request, unless answered already; the
    /// handler's own answer, when it comes, is discarded.
    pub fn cancel(&self, detail: &str) -> bool {
        self.cancelled.store(true, Ordering::Release);
        match self.take() {
            Some(responder) => {
                let _ = responder.respond_error(503, detail, &[]);
                true
            }
            None => false,
        }
    }
}

impl Drop for AnswerSlot {
    fn drop(&mut self) {
        // Dropping the responder answers 500 (the Rust SDK's rule).
        if self
            .responder
            .get_mut()
            .map(|s| s.is_some())
            .unwrap_or(false)
        {
            IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A slot of the responder's own, or one shared with the sync pool.
enum Slot {
    Own(AnswerSlot),
    Shared(Arc<AnswerSlot>),
}

impl std::ops::Deref for Slot {
    type Target = AnswerSlot;
    fn deref(&self) -> &AnswerSlot {
        match self {
            Slot::Own(slot) => slot,
            Slot::Shared(slot) => slot,
        }
    }
}

/// A request's answer slot, as Python sees it: answer once, from any thread.
/// Dropped unanswered (e.g. collected after a bug), it answers 500. After a
/// cancellation answered the request, the handler's answer is discarded.
///
/// It is also the request's source (a [`PyRequestSource`] subclass):
/// `request_id`, and what was copied of the request for a handler that takes
/// `request: Request` (`client`, `scheme`, `method`, ...).
#[pyclass(frozen, extends = PyRequestSource, name = "Responder", module = "spikard._native")]
pub struct PyResponder {
    slot: Slot,
    /// The handler's index: a stream's steps on the sync pool carry it, for
    /// the shutdown log.
    handler_id: u64,
}

impl PyResponder {
    /// Wraps a responder; counts the request as in flight until answered.
    pub fn new(
        responder: Responder,
        source: Source,
        handler_id: u64,
    ) -> PyClassInitializer<PyResponder> {
        Self::with_slot(Slot::Own(AnswerSlot::new(responder)), source, handler_id)
    }

    /// Answers through a slot the sync pool shares, so it can cancel it.
    pub fn shared(
        slot: Arc<AnswerSlot>,
        source: Source,
        handler_id: u64,
    ) -> PyClassInitializer<PyResponder> {
        Self::with_slot(Slot::Shared(slot), source, handler_id)
    }

    fn with_slot(slot: Slot, source: Source, handler_id: u64) -> PyClassInitializer<PyResponder> {
        PyClassInitializer::from(PyRequestSource(source))
            .add_subclass(PyResponder { slot, handler_id })
    }

    /// The responder, or `None` when a cancellation answered already (the
    /// caller then drops its answer), or an error for a second answer.
    fn take(&self) -> PyResult<Option<Responder>> {
        match self.slot.take() {
            Some(responder) => Ok(Some(responder)),
            None if self.slot.cancelled.load(Ordering::Acquire) => Ok(None),
            None => Err(PyRuntimeError::new_err("this request was already answered")),
        }
    }

    /// Answers 500 unless answered already (after a failed Python call).
    pub fn fail(&self, detail: &str) {
        if let Some(responder) = self.slot.take() {
            let _ = responder.respond_error(500, detail, &[]);
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

/// Answers `responder` with `(status, headers, body)`, headers as Python pairs. A body of
/// [`OWNED_BODY_MIN`] bytes or more is not copied: the host sends it from the `bytes`
/// object, which it keeps alive until it is done ([`PyBody`]).
pub fn respond_with(
    responder: Responder,
    status: u16,
    headers: &Bound<'_, PyAny>,
    body: Bound<'_, PyBytes>,
) -> PyResult<()> {
    let pairs = header_pairs(headers)?;
    let headers = borrowed(&pairs)?;
    let answered = if body.as_bytes().len() < OWNED_BODY_MIN {
        // Copying lets Python free (and reuse) the object at once; see `OWNED_BODY_MIN`.
        responder.respond(status, &headers, body.as_bytes())
    } else {
        responder.respond_owned(status, &headers, PyBody::new(body))
    };
    answered.map_err(|e| PyRuntimeError::new_err(e.to_string()))
}

/// Bodies from this size on are handed to the host without a copy ([`PyBody`]); smaller
/// ones are copied during `respond`.
///
/// Why so large: most bodies are made for their response (JSON encoded per request), and
/// those are faster copied — Python then frees the object at once and its allocator reuses
/// warm memory, where a handed-over object lives until the host has written it (measured,
/// `wrk -c50`, fresh `bytes` per request: copying is 5% faster at 16 KiB, 12% at 64 KiB,
/// 47% at 256 KiB, 14% at 1 MiB). Handing over wins only for objects that outlive the
/// request anyway (module constants: 4–23% faster), which the plugin cannot tell apart;
/// from 1 MiB on it is used regardless, so that a large shared body is not held twice
/// for every response in flight.
pub const OWNED_BODY_MIN: usize = 1024 * 1024;

/// A response body handed to the host without a copy: a strong reference to the `bytes`
/// object, whose buffer the host sends from (a `bytes` object never changes nor moves).
///
/// The host drops it when done, on whichever thread that is. On a thread attached to the
/// interpreter (a refused answer, released inside `respond`) that is a plain decref. On a
/// host thread, which never holds the GIL, pyo3 (0.30, with its default reference pool)
/// does not take the GIL: `Py::drop` queues the decref in its pool, which the next pyo3
/// call on a Python thread (every request's answer is one) applies under the GIL. So no
/// Python code (not even a `bytes` subclass's `__del__`) runs on a host thread.
pub struct PyBody {
    ptr: *const u8,
    len: usize,
    /// Keeps the buffer alive; only dropped, never used, off the GIL.
    _owner: Py<PyBytes>,
}

// SAFETY: `Py<PyBytes>` is `Send`, and the pointer is into the immutable buffer it keeps
// alive, readable from any thread.
unsafe impl Send for PyBody {}

impl PyBody {
    /// Keeps `bytes` alive and borrows its buffer.
    pub fn new(bytes: Bound<'_, PyBytes>) -> Self {
        let buffer = bytes.as_bytes();
        PyBody {
            ptr: buffer.as_ptr(),
            len: buffer.len(),
            _owner: bytes.unbind(),
        }
    }
}

impl AsRef<[u8]> for PyBody {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the buffer of the `bytes` object `_owner` keeps alive; it never changes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
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
    fn respond(
        &self,
        status: u16,
        headers: &Bound<'_, PyAny>,
        body: Bound<'_, PyBytes>,
    ) -> PyResult<()> {
        match self.take()? {
            Some(responder) => respond_with(responder, status, headers, body),
            None => Ok(()),
        }
    }

    /// `respond_error(status, detail, headers)`: Problem Details by the host.
    fn respond_error(&self, status: u16, detail: &str, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        match self.take()? {
            Some(responder) => respond_problem(responder, status, detail, headers),
            None => Ok(()),
        }
    }

    /// `start_stream(status, headers) -> Stream | None`: sends the head of a
    /// streamed response; `None` when the request is over already (or was
    /// cancelled and answered). Raises when the host refuses the head (it
    /// answered 500) or for a second answer.
    fn start_stream(
        slf: &Bound<'_, Self>,
        status: u16,
        headers: &Bound<'_, PyAny>,
    ) -> PyResult<Option<PyStream>> {
        let pairs = header_pairs(headers)?;
        let borrowed = borrowed(&pairs)?;
        let this = slf.get();
        match this.take()? {
            Some(responder) => stream::start(
                responder,
                status,
                &borrowed,
                slf.as_super().get().0.request_id.clone(),
                this.handler_id,
            ),
            None => Ok(None),
        }
    }
}

/// `_native.json_error(body, max_depth)`: why `body` is not JSON the host
/// would accept, as `(slug, detail)` in the host's words, or `None`. The
/// same checks, in the same order, as the host's own body parsing: nesting
/// deeper than `max_depth` first (counted outside strings, so no parser
/// recursion), then syntax.
#[pyfunction]
fn json_error(body: &[u8], max_depth: usize) -> Option<(&'static str, String)> {
    if json_too_deep(body, max_depth) {
        return Some((
            "json-too-deep",
            format!(
                "the request body nests arrays and objects deeper than the limit of {max_depth} levels"
            ),
        ));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .err()
        .map(|e| {
            (
                "malformed-json",
                format!("the request body is not valid JSON: {e}"),
            )
        })
}

/// Whether arrays and objects nest deeper than `max` (brackets inside
/// strings do not count; malformed input is the parser's to report).
fn json_too_deep(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Builds the `spikard._native` module.
pub fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let module = PyModule::new(py, "spikard._native")?;
    module.add_function(wrap_pyfunction!(log, &module)?)?;
    module.add_function(wrap_pyfunction!(log_enabled, &module)?)?;
    module.add_function(wrap_pyfunction!(json_error, &module)?)?;
    module.add_function(wrap_pyfunction!(stream::run_on_pool, &module)?)?;
    module.add_class::<PyRequestSource>()?;
    module.add_class::<PyResponder>()?;
    module.add_class::<PyStream>()?;
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_in_the_hosts_words() {
        assert_eq!(json_error(br#"{"a": [1, {"b": "[[["}]}"#, 3), None);
        let (slug, detail) = json_error(b"[[[[1]]]]", 3).unwrap();
        assert_eq!(slug, "json-too-deep");
        assert!(detail.ends_with("limit of 3 levels"), "{detail}");
        let (slug, detail) = json_error(b"{\"a\": }", 32).unwrap();
        assert_eq!(slug, "malformed-json");
        assert!(
            detail.starts_with("the request body is not valid JSON: expected value"),
            "{detail}"
        );
        assert!(json_error(br#"{"a": "\\", "b": [[]]}"#, 2).is_some());
    }
}
