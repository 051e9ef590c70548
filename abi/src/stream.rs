//! Streamed responses (ABI 1.1): a [`Stream`] is what a [`Responder`](crate::Responder)
//! becomes once [`start_stream`](crate::Responder::start_stream) has sent the head; the
//! body follows chunk by chunk, with backpressure.
//!
//! # Threading
//! - Every call may be made from any thread: `Stream` is `Send`, so hand it to the thread
//!   that produces the body. It is not `Sync`: one owner writes.
//! - Never block in [`Plugin::handle`](crate::Plugin::handle) waiting for the body to
//!   drain: start the stream there (or later) and write from your own thread or from
//!   ready callbacks.
//! - A write never blocks. When the host holds as much of this body as it buffers,
//!   [`Stream::write`] returns [`Written::Full`] and does not take the chunk: register a
//!   callback with [`Stream::on_ready`] and write the same chunk again when it runs.
//! - The ready callback runs on one of the host's (tokio) threads: do not block it either;
//!   send a message to your writer (a channel, a condition variable) and return.
//!
//! # Ending
//! [`Stream::end`] ends the body (with trailers, which the host sends only to clients that
//! asked for them with `TE: trailers`, and, over HTTP/1.1, only those the head declared in
//! a `trailer` header). A `Stream` dropped without `end` ends the body as
//! well, without trailers. [`StreamError::Closed`] from any call means the request is over
//! (the client left, the server is stopping): stop producing; nothing needs ending. Once
//! the head is sent the host's request timeout no longer applies: a stream lasts until it
//! ends, the client leaves or the server stops.
//!
//! # Example
//! A handler that streams from a thread of its own and waits there, never on a host
//! thread, while the host is full:
//! ```
//! use std::sync::mpsc;
//! use spikard_abi::{
//!     export_plugin, Host, Plugin, Request, Responder, RouteBinding, Stream, StreamError, Written,
//! };
//!
//! struct Lines;
//!
//! impl Plugin for Lines {
//!     fn init(_host: Host, _settings_json: &str) -> Result<Self, String> {
//!         Ok(Lines)
//!     }
//!     fn bind_route(&self, _route: &RouteBinding<'_>) -> Result<u64, String> {
//!         Ok(0)
//!     }
//!     fn handle(&self, _request: &Request<'_>, responder: Responder) {
//!         // `handle` must not block: the body is written elsewhere.
//!         std::thread::spawn(move || {
//!             let Ok(mut stream) = responder.start_stream(200, &[("content-type", "text/plain")])
//!             else {
//!                 return; // the request is over, or the host refused the head (it answered)
//!             };
//!             for i in 0..1000 {
//!                 if write_all(&mut stream, format!("line {i}\n").as_bytes()).is_err() {
//!                     return; // Closed: the client left; nothing to end
//!                 }
//!             }
//!             let _ = stream.end(&[]);
//!         });
//!     }
//! }
//!
//! /// Writes one chunk, waiting on this (plugin) thread while the host is full: the ready
//! /// callback only signals, as it runs on a host thread.
//! fn write_all(stream: &mut Stream, chunk: &[u8]) -> Result<(), StreamError> {
//!     loop {
//!         match stream.write(chunk)? {
//!             Written::Taken => return Ok(()),
//!             Written::Full => {
//!                 let (ready, wait) = mpsc::channel();
//!                 stream.on_ready(move || {
//!                     let _ = ready.send(());
//!                 })?;
//!                 let _ = wait.recv();
//!             }
//!         }
//!     }
//! }
//!
//! export_plugin!(Lines, name = "lines", version = "0.1.0");
//! ```

use std::ffi::c_void;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::export::panic_message;
use crate::ffi;

/// The host functions a started stream calls, resolved once when it starts.
#[derive(Clone, Copy)]
pub(crate) struct StreamFns {
    pub(crate) write: ffi::StreamWriteFn,
    pub(crate) on_ready: ffi::StreamOnReadyFn,
    pub(crate) end: ffi::StreamEndFn,
}

impl StreamFns {
    /// The stream functions of `api`, or `None` on a host without them (ABI 1.0).
    pub(crate) fn of(api: &ffi::HostApi) -> Option<(ffi::StreamStartFn, StreamFns)> {
        Some((
            api.stream_start?,
            StreamFns {
                write: api.stream_write?,
                on_ready: api.stream_on_ready?,
                end: api.stream_end?,
            },
        ))
    }
}

/// A streamed response body, after its head was sent: write chunks, then
/// [`end`](Stream::end) it (dropping it ends it too). See the [module docs](self) for the
/// threading and backpressure rules.
pub struct Stream {
    fns: StreamFns,
    raw: *mut ffi::ResponderHandle,
    /// The host said the request is over: no call reaches it any more, not even the end.
    closed: bool,
}

// SAFETY: the host documents the stream functions as callable from any thread for a
// responder the plugin holds; ownership of `raw` moves with the value, and `&mut self`
// on every call keeps one caller at a time.
unsafe impl Send for Stream {}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// What [`Stream::write`] did with a chunk.
#[must_use = "a Full chunk was not sent: write it again once the ready callback runs"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The host copied the chunk; it will be sent.
    Taken,
    /// Not taken: the host holds as much of this body as it buffers. Call
    /// [`Stream::on_ready`] and write the same chunk again when the callback runs.
    Full,
}

/// Why a stream call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// The request is over: the client left or the server is stopping. Stop producing;
    /// the host has reclaimed the response, nothing needs ending.
    Closed,
    /// The host speaks ABI 1.0 and cannot stream; check
    /// [`Responder::can_stream`](crate::Responder::can_stream) and answer with
    /// [`respond`](crate::Responder::respond) instead.
    NotSupported,
    /// The host refused the call as a misuse (an invalid status or header in the head or
    /// the trailers, or a stream already ended); it logged why.
    Misuse,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamError::Closed => "the request is over (client gone or server stopping)",
            StreamError::NotSupported => {
                "streaming is not supported by this host (ABI 1.0); answer with respond"
            }
            StreamError::Misuse => "the host refused the stream call (see its log)",
        })
    }
}

impl std::error::Error for StreamError {}

impl StreamError {
    /// The error of a stream call's return code other than `OK` and `FULL`.
    pub(crate) fn from_code(rc: i32) -> StreamError {
        if rc == ffi::CLOSED {
            StreamError::Closed
        } else {
            StreamError::Misuse
        }
    }
}

/// A boxed ready callback: the `user` pointer handed to the host is a `Box` of this.
type ReadyCallback = Box<dyn FnOnce() + Send + 'static>;

/// The `ready` function given to the host: reclaims the box behind `user` and runs the
/// callback once, catching a panic (logged) so none crosses into the host.
unsafe extern "C" fn ready_trampoline(user: *mut c_void) {
    if user.is_null() {
        return;
    }
    // SAFETY: `user` is the `Box<ReadyCallback>` leaked by `Stream::on_ready`, and the
    // host calls `ready` exactly once for it, so it is reclaimed exactly once.
    let callback = unsafe { Box::from_raw(user.cast::<ReadyCallback>()) };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(callback)) {
        tracing::error!(
            "a stream ready callback panicked: {}",
            panic_message(payload.as_ref())
        );
    }
}

/// Borrows `(name, value)` pairs as ABI headers for one call.
pub(crate) fn ffi_headers(headers: &[(&str, &str)]) -> Vec<ffi::Header> {
    headers
        .iter()
        .map(|(n, v)| ffi::Header {
            name: ffi::Str::new(n),
            value: ffi::Str::new(v),
        })
        .collect()
}

impl Stream {
    /// A stream whose head the host accepted.
    pub(crate) fn started(fns: StreamFns, raw: *mut ffi::ResponderHandle) -> Stream {
        Stream {
            fns,
            raw,
            closed: false,
        }
    }

    /// Offers one body chunk; the host copies it. Never blocks: [`Written::Full`] means
    /// it was not taken (see [`on_ready`](Stream::on_ready)). An empty chunk sends
    /// nothing.
    pub fn write(&mut self, chunk: &[u8]) -> Result<Written, StreamError> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        // SAFETY: a started, unended responder of this host; the chunk is borrowed for
        // the call and copied by the host.
        let rc = unsafe { (self.fns.write)(self.raw, ffi::Bytes::new(chunk)) };
        match rc {
            ffi::OK => Ok(Written::Taken),
            ffi::FULL => Ok(Written::Full),
            other => Err(self.fail(other)),
        }
    }

    /// Asks the host to call `ready` once, from one of its threads, when the stream can
    /// take a write again or has closed (a write then says which). Never called inside
    /// this call. Register one callback at a time, after a [`Written::Full`]. `ready`
    /// must not block: it runs on a host thread. On `Err` the callback is dropped
    /// without being called.
    pub fn on_ready<F: FnOnce() + Send + 'static>(&mut self, ready: F) -> Result<(), StreamError> {
        if self.closed {
            return Err(StreamError::Closed);
        }
        let user = Box::into_raw(Box::new(Box::new(ready) as ReadyCallback));
        // SAFETY: a started, unended responder; `user` stays valid until the trampoline
        // reclaims it.
        let rc = unsafe { (self.fns.on_ready)(self.raw, Some(ready_trampoline), user.cast()) };
        if rc == ffi::OK {
            return Ok(());
        }
        // Refused: the host keeps no reference to `user` and never calls it.
        // SAFETY: leaked just above and not handed over.
        drop(unsafe { Box::from_raw(user) });
        Err(self.fail(rc))
    }

    /// Ends the body, with trailers (`&[]` for none), which reach only clients that asked
    /// for them with `TE: trailers`; over HTTP/1.1 only those the head named in a `trailer`
    /// header are sent. `Err(Closed)`: the request was already over.
    pub fn end(self, trailers: &[(&str, &str)]) -> Result<(), StreamError> {
        let mut this = std::mem::ManuallyDrop::new(self);
        if this.closed {
            return Err(StreamError::Closed);
        }
        let trailers = ffi_headers(trailers);
        // SAFETY: ended exactly once (ManuallyDrop skips the Drop end); borrowed for the call.
        let rc = unsafe { (this.fns.end)(this.raw, trailers.as_ptr(), trailers.len()) };
        if rc == ffi::OK {
            Ok(())
        } else {
            Err(this.fail(rc))
        }
    }

    /// Records a failure code; `CLOSED` makes every later call a no-op.
    fn fail(&mut self, rc: i32) -> StreamError {
        let error = StreamError::from_code(rc);
        if error == StreamError::Closed {
            self.closed = true;
        }
        error
    }
}

impl Drop for Stream {
    /// Ends the body without trailers, unless the host already closed the request.
    fn drop(&mut self) {
        if !self.closed {
            // SAFETY: not ended yet (`end` forgets `self`).
            unsafe { (self.fns.end)(self.raw, std::ptr::null(), 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    //! The SDK side of streaming against a scripted fake host: codes map to results, the
    //! ready box is reclaimed exactly once, a dropped stream ends, a closed one does not.
    use super::*;
    use crate::Responder;
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, Mutex};

    /// What the fake host saw, per responder handle (each test uses its own).
    #[derive(Default)]
    struct Seen {
        calls: Vec<&'static str>,
        writes: Vec<Vec<u8>>,
        codes: VecDeque<i32>,
        ready: Option<(ffi::ReadyFn, usize)>,
    }

    static SEEN: Mutex<Option<HashMap<usize, Seen>>> = Mutex::new(None);

    fn with_seen<R>(h: *mut ffi::ResponderHandle, f: impl FnOnce(&mut Seen) -> R) -> R {
        let mut all = SEEN.lock().unwrap();
        f(all
            .get_or_insert_with(HashMap::new)
            .entry(h as usize)
            .or_default())
    }

    /// The next scripted code for `h` (OK when none is left).
    fn next(h: *mut ffi::ResponderHandle, call: &'static str) -> i32 {
        with_seen(h, |s| {
            s.calls.push(call);
            s.codes.pop_front().unwrap_or(ffi::OK)
        })
    }

    unsafe extern "C" fn log(_: *mut ffi::HostHandle, _: u32, _: ffi::Str, _: ffi::Str) {}
    unsafe extern "C" fn log_enabled(_: *mut ffi::HostHandle, _: u32, _: ffi::Str) -> i32 {
        0
    }
    unsafe extern "C" fn register_route(_: *mut ffi::HostHandle, _: *const ffi::RouteDecl) -> i32 {
        ffi::ERR
    }
    unsafe extern "C" fn respond(h: *mut ffi::ResponderHandle, _: *const ffi::Response) -> i32 {
        next(h, "respond")
    }
    unsafe extern "C" fn respond_error(
        h: *mut ffi::ResponderHandle,
        _: u16,
        _: ffi::Str,
        _: *const ffi::Header,
        _: usize,
    ) -> i32 {
        next(h, "respond_error")
    }
    unsafe extern "C" fn set_error(_: *mut ffi::ErrorHandle, _: ffi::Str) {}
    unsafe extern "C" fn config_dir(_: *mut ffi::HostHandle) -> ffi::Str {
        ffi::Str::EMPTY
    }
    unsafe extern "C" fn set_cancel_token(h: *mut ffi::ResponderHandle, _: u64) -> i32 {
        next(h, "set_cancel_token")
    }
    unsafe extern "C" fn stream_start(
        h: *mut ffi::ResponderHandle,
        _: u16,
        _: *const ffi::Header,
        _: usize,
    ) -> i32 {
        next(h, "stream_start")
    }
    unsafe extern "C" fn stream_write(h: *mut ffi::ResponderHandle, b: ffi::Bytes) -> i32 {
        // SAFETY: borrowed for the call.
        let bytes = unsafe { b.as_slice() }.to_vec();
        let rc = next(h, "stream_write");
        if rc == ffi::OK {
            with_seen(h, |s| s.writes.push(bytes));
        }
        rc
    }
    unsafe extern "C" fn stream_on_ready(
        h: *mut ffi::ResponderHandle,
        ready: Option<ffi::ReadyFn>,
        user: *mut c_void,
    ) -> i32 {
        let rc = next(h, "stream_on_ready");
        if rc == ffi::OK {
            let ready = ready.expect("the SDK always passes a callback");
            with_seen(h, |s| s.ready = Some((ready, user as usize)));
        }
        rc
    }
    unsafe extern "C" fn stream_end(
        h: *mut ffi::ResponderHandle,
        _: *const ffi::Header,
        _: usize,
    ) -> i32 {
        next(h, "stream_end")
    }

    /// A 1.1 host table; `struct_size` says how much of it the "host" wrote.
    fn api(struct_size: usize) -> &'static ffi::HostApi {
        let full = ffi::HostApi {
            struct_size,
            abi_major: 1,
            abi_minor: 1,
            log,
            log_enabled,
            register_route,
            respond,
            respond_error,
            set_error,
            config_dir,
            set_cancel_token: Some(set_cancel_token),
            stream_start: Some(stream_start),
            stream_write: Some(stream_write),
            stream_on_ready: Some(stream_on_ready),
            stream_end: Some(stream_end),
            body_next: None,
        };
        // SAFETY: a whole table; the read stops at `struct_size` as the SDK's init does.
        Box::leak(Box::new(unsafe { ffi::read_prefix(&full, struct_size) }))
    }

    fn responder(api: &'static ffi::HostApi, handle: usize, codes: &[i32]) -> Responder {
        let h = handle as *mut ffi::ResponderHandle;
        with_seen(h, |s| s.codes = codes.iter().copied().collect());
        // SAFETY: a fake handle only this test uses.
        unsafe { Responder::from_raw(api, h) }
    }

    fn calls(handle: usize) -> Vec<&'static str> {
        with_seen(handle as *mut _, |s| s.calls.clone())
    }

    #[test]
    fn full_then_ready_then_end() {
        let api = api(std::mem::size_of::<ffi::HostApi>());
        let r = responder(api, 0x10, &[ffi::OK, ffi::OK, ffi::FULL]);
        assert!(r.can_stream());
        let mut s = r
            .start_stream(200, &[("content-type", "text/plain")])
            .unwrap();
        assert_eq!(s.write(b"one"), Ok(Written::Taken));
        assert_eq!(s.write(b"two"), Ok(Written::Full), "FULL is not an error");
        let (tx, rx) = std::sync::mpsc::channel();
        s.on_ready(move || tx.send("ready").unwrap()).unwrap();
        let (ready, user) = with_seen(0x10 as *mut _, |s| s.ready.take()).unwrap();
        // The host calls it from one of its threads.
        std::thread::spawn(move || unsafe { ready(user as *mut c_void) })
            .join()
            .unwrap();
        assert_eq!(rx.recv().unwrap(), "ready");
        assert_eq!(s.write(b"two"), Ok(Written::Taken));
        s.end(&[("x-done", "1")]).unwrap();
        assert_eq!(
            calls(0x10),
            [
                "stream_start",
                "stream_write",
                "stream_write",
                "stream_on_ready",
                "stream_write",
                "stream_end"
            ]
        );
        assert_eq!(
            with_seen(0x10 as *mut _, |s| s.writes.clone()),
            [b"one".to_vec(), b"two".to_vec()]
        );
    }

    #[test]
    fn a_dropped_stream_ends_and_a_closed_one_calls_nothing_more() {
        let api = api(std::mem::size_of::<ffi::HostApi>());
        drop(responder(api, 0x20, &[]).start_stream(200, &[]).unwrap());
        assert_eq!(calls(0x20), ["stream_start", "stream_end"]);

        let mut s = responder(api, 0x21, &[ffi::OK, ffi::CLOSED])
            .start_stream(200, &[])
            .unwrap();
        assert_eq!(s.write(b"x"), Err(StreamError::Closed));
        assert_eq!(s.write(b"x"), Err(StreamError::Closed));
        assert_eq!(s.on_ready(|| ()), Err(StreamError::Closed));
        drop(s);
        assert_eq!(
            calls(0x21),
            ["stream_start", "stream_write"],
            "nothing after CLOSED"
        );
    }

    #[test]
    fn a_refused_ready_callback_is_freed_not_called() {
        let api = api(std::mem::size_of::<ffi::HostApi>());
        let mut s = responder(api, 0x30, &[ffi::OK, ffi::ERR])
            .start_stream(200, &[])
            .unwrap();
        let witness = Arc::new(());
        let held = witness.clone();
        assert_eq!(s.on_ready(move || drop(held)), Err(StreamError::Misuse));
        assert_eq!(
            Arc::strong_count(&witness),
            1,
            "the boxed callback was dropped"
        );
    }

    #[test]
    fn a_panicking_ready_callback_does_not_unwind_into_the_host() {
        let api = api(std::mem::size_of::<ffi::HostApi>());
        let mut s = responder(api, 0x40, &[]).start_stream(200, &[]).unwrap();
        s.on_ready(|| panic!("boom")).unwrap();
        let (ready, user) = with_seen(0x40 as *mut _, |s| s.ready.take()).unwrap();
        // SAFETY: the pointer the SDK registered, called once.
        unsafe { ready(user as *mut c_void) };
    }

    #[test]
    fn head_errors_map_to_types() {
        let api = api(std::mem::size_of::<ffi::HostApi>());
        let e = responder(api, 0x50, &[ffi::ERR])
            .start_stream(1000, &[])
            .unwrap_err();
        assert_eq!(e, StreamError::Misuse);
        let e = responder(api, 0x51, &[ffi::CLOSED])
            .start_stream(200, &[])
            .unwrap_err();
        assert_eq!(e, StreamError::Closed);
        assert_eq!(
            calls(0x50),
            ["stream_start"],
            "the host answered; no second answer"
        );
    }

    #[test]
    fn a_1_0_host_reports_not_supported_and_gets_an_answer() {
        let api = api(ffi::min_size::HOST_API);
        let r = responder(api, 0x60, &[]);
        assert!(!r.can_stream());
        assert_eq!(
            r.set_cancel_token(7),
            Err(crate::CancelTokenError::NotSupported)
        );
        assert_eq!(
            r.start_stream(200, &[]).unwrap_err(),
            StreamError::NotSupported
        );
        assert_eq!(
            calls(0x60),
            ["respond_error"],
            "a 500 saying why, nothing of 1.1 called"
        );
    }

    #[test]
    fn cancel_token_codes_map_to_types() {
        let api = api(std::mem::size_of::<ffi::HostApi>());
        let r = responder(api, 0x70, &[ffi::OK, ffi::ERR]);
        assert_eq!(r.set_cancel_token(1), Ok(()));
        assert_eq!(r.set_cancel_token(2), Err(crate::CancelTokenError::Closed));
        r.respond(204, &[], b"").unwrap();
    }
}
