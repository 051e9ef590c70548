//! The access log: one line per request (target `spikard::access`), written exactly once —
//! when the response leaves, or, for a request whose future is dropped before it has one
//! (the connection died, or the server stopped waiting at shutdown), when it is dropped. A
//! streamed response's line is written when its body ends or is dropped ([`StreamLine`]).
//!
//! The common path costs what it did before: the method and URI are kept only while the
//! access log is on, and the line is written by `tracing` into the bounded log queue.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use axum::response::Response;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};

/// This process's pid when it is a worker of a supervisor (0 otherwise): its access lines
/// then say `worker=PID`, so requests can be counted per worker.
static WORKER_PID: AtomicU32 = AtomicU32::new(0);

/// Marks this process as a worker: its access lines name its pid.
pub fn set_worker_pid(pid: u32) {
    WORKER_PID.store(pid, Ordering::Relaxed);
}

/// `Some(pid)` in a worker; a `None` field is left out of the line.
fn worker() -> Option<u32> {
    Some(WORKER_PID.load(Ordering::Relaxed)).filter(|&pid| pid != 0)
}

/// How a request that has a response ended, when it is worth saying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The response came from the pipeline or the plugin.
    Answered,
    /// The plugin did not answer within the request timeout (the client got a 504).
    Timeout,
}

/// One request's access line, pending until [`Access::finish`] or drop.
pub struct Access<'a> {
    request_id: &'a str,
    /// Kept only when the access log is on.
    line: Option<(Method, Uri)>,
    started: Instant,
    finished: bool,
}

impl<'a> Access<'a> {
    /// Starts the line of a request; `on` is the server's `access_log` setting.
    pub fn start(on: bool, method: &Method, uri: &Uri, request_id: &'a str) -> Self {
        Access {
            request_id,
            line: on.then(|| (method.clone(), uri.clone())),
            started: Instant::now(),
            finished: false,
        }
    }

    /// Tags the response with the request id (in `header`, unless the route or server
    /// turned that off: `None`) and writes the line.
    pub fn finish(
        mut self,
        mut response: Response,
        outcome: Outcome,
        header: Option<&HeaderName>,
    ) -> Response {
        self.finished = true;
        self.tag(&mut response, header);
        if let Some((method, uri)) = &self.line {
            let outcome = (outcome == Outcome::Timeout).then_some("timeout");
            emit(
                method,
                uri,
                Some(response.status().as_u16()),
                self.started,
                self.request_id,
                outcome,
            );
        }
        response
    }

    /// Tags the head of a streamed response like [`Access::finish`] and returns the line,
    /// written when the body ends: the stream's whole time is the request's latency.
    pub fn defer(mut self, response: &mut Response, header: Option<&HeaderName>) -> StreamLine {
        self.finished = true;
        self.tag(response, header);
        StreamLine {
            line: self
                .line
                .take()
                .map(|(method, uri)| (method, uri, Box::from(self.request_id))),
            status: response.status().as_u16(),
            started: self.started,
            ended: false,
        }
    }

    fn tag(&self, response: &mut Response, header: Option<&HeaderName>) {
        if let Some(name) = header {
            if let Ok(value) = HeaderValue::from_str(self.request_id) {
                response.headers_mut().insert(name.clone(), value);
            }
        }
    }
}

impl Drop for Access<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some((method, uri)) = &self.line {
            emit(
                method,
                uri,
                None,
                self.started,
                self.request_id,
                Some(abandoned()),
            );
        }
    }
}

/// The access line of a streamed response, written when it is dropped: with its status,
/// and `outcome=client_disconnected` (or `shutdown`) unless the body was sent to its end.
pub struct StreamLine {
    /// Method, URI and request id; kept only when the access log is on.
    line: Option<(Method, Uri, Box<str>)>,
    status: u16,
    started: Instant,
    ended: bool,
}

impl StreamLine {
    /// The whole body was sent.
    pub fn ended(&mut self) {
        self.ended = true;
    }
}

impl Drop for StreamLine {
    fn drop(&mut self) {
        if let Some((method, uri, request_id)) = &self.line {
            let outcome = (!self.ended).then(abandoned);
            emit(
                method,
                uri,
                Some(self.status),
                self.started,
                request_id,
                outcome,
            );
        }
    }
}

/// Why a request ended without its answer being sent.
fn abandoned() -> &'static str {
    if super::stop::abandoning() {
        "shutdown"
    } else {
        "client_disconnected"
    }
}

/// Writes one access line; fields that are `None` are left out.
fn emit(
    method: &Method,
    uri: &Uri,
    status: Option<u16>,
    started: Instant,
    request_id: &str,
    outcome: Option<&str>,
) {
    tracing::info!(
        target: "spikard::access",
        method = %method,
        path = %uri.path(),
        status,
        latency_us = started.elapsed().as_micros() as u64,
        request_id = %request_id,
        outcome = outcome.map(tracing::field::display),
        worker = worker(),
    );
}
