//! Streamed request bodies (ABI 1.1 `body_next`): for a route with `stream_body` the host
//! hands the request over before reading its body and keeps the body in the request's
//! responder slot ([`Inbound`]); the plugin pulls it one chunk at a time.
//!
//! # One read
//! `body_next(responder, on_chunk, user)` takes the body out of the slot and spawns one task
//! on the runtime that waits for the next frame, so `on_chunk` is always called from a host
//! (tokio) thread and never inside `body_next`. Before calling back, the task puts the body
//! back into the slot (or records its end), so the callback may ask for the next chunk at
//! once. A second `body_next` while a read is in flight is a misuse (`ERR`): one at a time.
//! The chunk is borrowed for the callback: nothing is buffered beyond the frame hyper read,
//! so a body of any size costs one chunk of memory at a time.
//!
//! # Limits
//! The host, not the plugin, enforces what the whole body used to: the route's `body_limit`
//! over the bytes read so far (a `Content-Length` over it is refused with 413 before the
//! hand-over, by `crate::server::body::declared_within`); `body_read_timeout_ms` for each
//! chunk's wait; and the body's own framing (a body that ends before its `Content-Length`,
//! or a client that leaves). When one fails, the host answers for the plugin with the
//! same Problem Details as for a body it reads itself (413, 408, 400) — if the plugin has
//! not answered yet — and `on_chunk` gets `SPK_ERR`. A request the host answered that way is
//! one the plugin did not finish: when its slot is reclaimed the plugin's cancel runs.
//!
//! A read in flight when the request ends (timeout, client gone, shutdown) is woken at once
//! ([`Inbound`]'s drop) and calls back with `SPK_ERR`. After the plugin was shut down no
//! callback is made.

use std::ffi::c_void;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use spikard_abi::ffi;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::{lookup, misuse, wake, Phase};
use crate::plugin::host_api::Answer;
use crate::plugin::LoadedPlugin;
use crate::problem::Problem;
use crate::server::body::{timed_out, unreadable};

/// A request body the plugin reads itself, kept in its responder slot until the request
/// ends. Dropping it (the slot reclaimed) wakes a read in flight, which then reports
/// `SPK_ERR`.
pub struct Inbound {
    /// The body; `None` while a read is in flight and once the body is over.
    source: Option<Box<Source>>,
    /// The body ended (`SPK_CLOSED` was delivered) or failed (`SPK_ERR`): no more reads.
    over: bool,
    /// The host answered for the plugin because the body failed: the plugin did not finish
    /// its request, so it hears of the cancellation when the slot is reclaimed.
    refused: bool,
    /// Wakes the read in flight when the request ends.
    abort: Arc<Notify>,
}

/// The body and what bounds it.
struct Source {
    body: Body,
    /// The route's `body_limit`.
    limit: usize,
    /// Bytes read so far.
    read: u64,
    /// The `Content-Length`, to tell a body cut short from other read failures.
    declared: Option<u64>,
    /// `body_read_timeout_ms`: the longest wait for one chunk.
    timeout: Duration,
    /// Where reads run: `body_next` may be called from any plugin thread.
    runtime: Handle,
    /// For the callback: never made once the plugin is shut down.
    plugin: Arc<LoadedPlugin>,
}

/// How the body of a streamed request is bounded.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The route's `body_limit`, in bytes.
    pub limit: usize,
    /// The body's `Content-Length`, if it has one (already checked against `limit`).
    pub declared: Option<u64>,
    /// `body_read_timeout_ms`, applied to each chunk's wait.
    pub timeout: Duration,
}

impl Inbound {
    /// The body of a request to `plugin`, read on `runtime` as the plugin asks for it.
    pub fn new(body: Body, limits: BodyLimits, runtime: Handle, plugin: Arc<LoadedPlugin>) -> Self {
        Inbound {
            source: Some(Box::new(Source {
                body,
                limit: limits.limit,
                read: 0,
                declared: limits.declared,
                timeout: limits.timeout,
                runtime,
                plugin,
            })),
            over: false,
            refused: false,
            abort: Arc::new(Notify::new()),
        }
    }

    /// Whether the host answered the request for the plugin (the body failed).
    pub fn refused(&self) -> bool {
        self.refused
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        // A permit is stored when no read waits; no read is ever started after the drop.
        self.abort.notify_one();
    }
}

/// A plugin's `on_chunk(user, chunk, status)`, called once from a host thread.
pub struct ChunkCall {
    on_chunk: ffi::BodyChunkFn,
    user: *mut c_void,
}

// SAFETY: the ABI lets the host call `on_chunk(user, ...)` from any of its threads; `user` is
// the plugin's pointer, passed back untouched.
unsafe impl Send for ChunkCall {}

impl ChunkCall {
    /// The callback as the plugin gave it to `body_next`.
    pub fn new(on_chunk: ffi::BodyChunkFn, user: *mut c_void) -> Self {
        ChunkCall { on_chunk, user }
    }

    /// Calls it once with `chunk` (borrowed for the call) and `status`, unless `plugin` has
    /// been shut down.
    fn run(self, plugin: &LoadedPlugin, chunk: &[u8], status: i32) {
        if plugin.stopped.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: the plugin's callback and pointer, called once (consumed), while the
        // plugin is up; the chunk lives until the call returns.
        unsafe { (self.on_chunk)(self.user, ffi::Bytes::new(chunk), status) }
    }
}

/// What one read brought.
enum Step {
    /// A chunk of the body, within the limit.
    Data(Bytes),
    /// The end of the body.
    End,
    /// The body failed; the client gets this problem (unless the plugin answered).
    Failed(Problem),
    /// The request ended while the read waited.
    Over,
}

impl Source {
    /// The next non-empty chunk of the body, its end, or why it failed.
    async fn next(&mut self) -> Step {
        loop {
            let frame = match tokio::time::timeout(self.timeout, self.body.frame()).await {
                Err(_) => return Step::Failed(timed_out(self.timeout)),
                Ok(None) => return Step::End,
                Ok(Some(Err(e))) => return Step::Failed(unreadable(&e, self.declared, self.limit)),
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers of a chunked body are not passed on: the ABI has no place for them.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            self.read += data.len() as u64;
            if self.read > self.limit as u64 {
                return Step::Failed(Problem::payload_too_large(self.limit));
            }
            return Step::Data(data);
        }
    }
}

/// `body_next`: starts reading the next chunk of the streamed body of `raw`'s request.
/// `OK`: `call` will run once, from a host thread. `CLOSED`: the body is over (ended or
/// failed) or the request was answered or ended; `call` will not run. `ERR`: a misuse (the
/// route does not stream its body, a read is already in flight, not a live responder).
pub fn body_next(raw: *mut ffi::ResponderHandle, call: ChunkCall) -> i32 {
    let mut guard = match lookup(raw) {
        Ok(state) => state,
        Err(dead) => {
            dead.log("body_next");
            return dead.stream_code();
        }
    };
    let state = &mut *guard;
    let plugin = state.plugin;
    let live = match &state.phase {
        Phase::Waiting => true,
        Phase::Streaming(stream) => !stream.ended,
        _ => false,
    };
    let Some(inbound) = state.body.as_deref_mut() else {
        drop(guard);
        misuse(
            plugin,
            "body_next",
            "on a request whose body is not streamed (its route has no stream_body: the body is in the request)",
        );
        return ffi::ERR;
    };
    if inbound.over || !live {
        return ffi::CLOSED;
    }
    let Some(source) = inbound.source.take() else {
        drop(guard);
        misuse(
            plugin,
            "body_next",
            "while the previous read is in flight (ask for the next chunk from the callback)",
        );
        return ffi::ERR;
    };
    let abort = inbound.abort.clone();
    drop(guard);
    let runtime = source.runtime.clone();
    // The task's JoinHandle is not needed: the task ends by itself within the chunk timeout,
    // or at once when the request ends.
    drop(runtime.spawn(read(raw as usize, source, call, abort)));
    ffi::OK
}

/// One read: waits for the next chunk (or the request's end), settles the slot, calls back.
async fn read(handle: usize, mut source: Box<Source>, call: ChunkCall, abort: Arc<Notify>) {
    let step = tokio::select! {
        step = source.next() => step,
        () = abort.notified() => Step::Over,
    };
    let plugin = source.plugin.clone();
    let (status, chunk) = settle(handle as *mut ffi::ResponderHandle, source, step);
    call.run(&plugin, &chunk, status);
}

/// Records what a read brought in the request's slot: the body back for the next read, or
/// its end; on a failure, the host's answer unless the plugin answered. Returns what to call
/// back with. A request already over gets `SPK_ERR`, whatever the read brought.
fn settle(raw: *mut ffi::ResponderHandle, source: Box<Source>, step: Step) -> (i32, Bytes) {
    let Ok(mut guard) = lookup(raw) else {
        // The request ended (answered and sent, timed out, client gone, shutdown).
        return (ffi::ERR, Bytes::new());
    };
    let state = &mut *guard;
    let plugin = state.plugin;
    let Some(inbound) = state.body.as_deref_mut() else {
        return (ffi::ERR, Bytes::new());
    };
    let problem = match step {
        Step::Data(chunk) => {
            inbound.source = Some(source);
            return (ffi::OK, chunk);
        }
        Step::End => {
            inbound.over = true;
            return (ffi::CLOSED, Bytes::new());
        }
        Step::Over => {
            inbound.over = true;
            return (ffi::ERR, Bytes::new());
        }
        Step::Failed(problem) => problem,
    };
    inbound.over = true;
    if !matches!(state.phase, Phase::Waiting) {
        drop(guard);
        tracing::debug!(
            plugin,
            "streamed request body failed after the plugin answered: {}",
            problem.detail
        );
        return (ffi::ERR, Bytes::new());
    }
    let (status, detail) = (problem.status.as_u16(), problem.detail.clone());
    inbound.refused = true;
    state.phase = Phase::Answered(Answer::Refused(problem));
    let permit = state.permit.take();
    let waker = state.waker.take();
    drop(guard);
    tracing::debug!(
        plugin,
        status,
        "streamed request body failed; the host answers: {detail}"
    );
    drop((permit, source));
    wake(waker);
    (ffi::ERR, Bytes::new())
}

#[cfg(test)]
mod tests {
    //! `body_next` as a plugin calls it (through `HOST_API`) on requests without a streamed
    //! body, and on handles that are not live: every refusal is a return code, never a
    //! callback. Reads of real bodies are tested end to end (tests/tests/upload.rs), with a
    //! loaded plugin.

    use super::*;
    use crate::plugin::admission::Admission;
    use crate::plugin::host_api::HOST_API;
    use crate::plugin::responders::open;

    unsafe extern "C" fn never(_: *mut c_void, _: ffi::Bytes, _: i32) {
        panic!("no callback is due");
    }

    fn next(handle: *mut ffi::ResponderHandle, on_chunk: Option<ffi::BodyChunkFn>) -> i32 {
        // SAFETY: the handle is checked by the host; the callback is never called.
        unsafe { (HOST_API.body_next.unwrap())(handle, on_chunk, std::ptr::null_mut()) }
    }

    #[test]
    fn body_next_is_refused_without_a_streamed_body_or_a_live_responder() {
        let admission = Admission::leak("test", 10);
        let ticket = open(admission.try_acquire().unwrap()).unwrap();
        let handle = ticket.handle();
        assert_eq!(next(handle, Some(never)), ffi::ERR, "no streamed body");
        assert_eq!(next(handle, None), ffi::ERR, "a NULL callback");
        let released = ticket.release();
        assert!(released.unfinished);
        assert_eq!(
            next(handle, Some(never)),
            ffi::CLOSED,
            "the request is over"
        );
        let bogus = 0xdead_beef_usize as *mut ffi::ResponderHandle;
        assert_eq!(next(bogus, Some(never)), ffi::ERR);
    }
}
