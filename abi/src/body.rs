//! Streamed request bodies (ABI 1.1): for a route with `stream_body = true` (or
//! `"stream_body": true` in [`RouteDecl::schema_json`](crate::RouteDecl)) the host calls
//! [`Plugin::handle`](crate::Plugin::handle) before reading the body;
//! [`Request::body_streamed`](crate::Request::body_streamed) is true and
//! [`Request::body`](crate::Request::body) is empty. The plugin reads the body one chunk at
//! a time, so a body of any size costs one chunk of memory.
//!
//! # Reading
//! [`Responder::read_body`] reads the whole body: the callback gets each chunk with the
//! responder, returns [`Next::More`] with it to get the next one, and gets the responder
//! back once more at the end to answer. [`Responder::body_next`] asks for one chunk: use it
//! to read at your own pace (e.g. after a worker thread has written the previous chunk
//! somewhere), calling it again when you want the next.
//!
//! # Threading
//! - The callback runs on one of the host's (tokio) threads, never inside the call that
//!   asked for the chunk. It must not block: hand slow work (disk, a database) to a thread of
//!   your own, with the chunk copied and the responder moved there, and ask for the next
//!   chunk from there when it is done.
//! - One read at a time: the responder moves into the call and comes back with the chunk.
//! - The chunk is borrowed for the callback only; copy what you keep.
//!
//! # Failure
//! The host enforces the route's `body_limit` over the bytes read and
//! `body_read_timeout_ms` for each chunk. When the body fails — over the limit, too slow,
//! cut short, the client gone — the host answers the client itself (413, 408, 400; when the
//! plugin has not answered yet) and the callback gets [`BodyChunk::Failed`], without the
//! responder: there is nothing left to answer. The plugin's cancel follows for a request the
//! host answered. The request timeout (504) keeps running while the body is read.
//!
//! # Example
//! ```
//! use spikard_abi::{export_plugin, BodyChunk, Host, Next, Plugin, Request, Responder, RouteBinding};
//!
//! struct Count;
//!
//! impl Plugin for Count {
//!     fn init(_host: Host, _settings_json: &str) -> Result<Self, String> {
//!         Ok(Count)
//!     }
//!     fn bind_route(&self, _route: &RouteBinding<'_>) -> Result<u64, String> {
//!         Ok(0)
//!     }
//!     fn handle(&self, request: &Request<'_>, responder: Responder) {
//!         if !request.body_streamed() {
//!             let n = request.body().len().to_string();
//!             let _ = responder.respond(200, &[], n.as_bytes());
//!             return;
//!         }
//!         let mut bytes = 0usize;
//!         let started = responder.read_body(move |chunk| match chunk {
//!             BodyChunk::Data(data, responder) => {
//!                 bytes += data.len();
//!                 Next::More(responder)
//!             }
//!             BodyChunk::End(responder) => {
//!                 let _ = responder.respond(200, &[], bytes.to_string().as_bytes());
//!                 Next::Stop
//!             }
//!             BodyChunk::Failed => Next::Stop, // the host answered (413, 408, ...)
//!         });
//!         if let Err((error, responder)) = started {
//!             let _ = responder.respond_error(500, &error.to_string(), &[]);
//!         }
//!     }
//! }
//!
//! export_plugin!(Count, name = "count", version = "0.1.0");
//! ```

use std::ffi::c_void;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::export::panic_message;
use crate::ffi;
use crate::Responder;

/// What one read of a streamed body brought, given to the callback.
pub enum BodyChunk<'a> {
    /// The next chunk (never empty), borrowed for the callback, and the responder, for the
    /// next read or the answer.
    Data(&'a [u8], Responder),
    /// The body is complete: answer with the responder.
    End(Responder),
    /// The body failed (over the route's `body_limit`, too slow, cut short, the client gone)
    /// or the request ended while it was read. The host answered the client itself when it
    /// could; there is no responder left to answer with.
    Failed,
}

impl fmt::Debug for BodyChunk<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyChunk::Data(data, _) => write!(f, "Data({} bytes)", data.len()),
            BodyChunk::End(_) => f.write_str("End"),
            BodyChunk::Failed => f.write_str("Failed"),
        }
    }
}

/// What [`Responder::read_body`] does after a chunk.
#[must_use = "Next::More carries the responder: without it the body is not read further"]
pub enum Next {
    /// Read the next chunk, with the responder the chunk came with.
    More(Responder),
    /// Stop reading: the callback answered (or moved the responder elsewhere to answer).
    Stop,
}

/// Why a read of the streamed body could not start; the responder comes back with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The host speaks ABI 1.0: it never streams a body (it is in
    /// [`Request::body`](crate::Request::body)).
    NotSupported,
    /// The host refused the read as a misuse, and logged why: typically, this request's
    /// body is not streamed (its route has no `stream_body`; the body is in
    /// [`Request::body`](crate::Request::body)).
    NotStreamed,
    /// There is nothing left to read: the body already ended or failed, the request was
    /// answered, or it is over (the client left, it timed out, the server is stopping).
    Closed,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyError::NotSupported => {
                "streamed request bodies are not supported by this host (ABI 1.0); the body is in the request"
            }
            BodyError::NotStreamed => {
                "the host refused to read the body: the route does not stream it (see the host's log)"
            }
            BodyError::Closed => "the request body is over, or the request is",
        })
    }
}

impl std::error::Error for BodyError {}

/// A callback waiting for one chunk: a plain one ([`Once`]) or a step of
/// [`Responder::read_body`] ([`Loop`]).
trait OnChunk: Send + 'static {
    /// Runs it with what the read brought.
    fn call(self, chunk: BodyChunk<'_>);
}

/// The callback of [`Responder::body_next`].
struct Once<F>(F);

impl<F> OnChunk for Once<F>
where
    F: for<'a> FnOnce(BodyChunk<'a>) + Send + 'static,
{
    fn call(self, chunk: BodyChunk<'_>) {
        (self.0)(chunk);
    }
}

/// The callback of [`Responder::read_body`]: gives the chunk to the plugin's callback and
/// asks for the next while it says [`Next::More`]. Each chunk comes in a new host callback,
/// so the stack does not grow with the body.
struct Loop<F>(F);

impl<F> OnChunk for Loop<F>
where
    F: for<'a> FnMut(BodyChunk<'a>) -> Next + Send + 'static,
{
    fn call(mut self, chunk: BodyChunk<'_>) {
        let Next::More(responder) = (self.0)(chunk) else {
            return;
        };
        if let Err((_, responder, Loop(mut on_chunk))) = responder.start_read(self) {
            // The request ended between two chunks (or the host refused): the plugin hears
            // of it as a failed body. The responder drops (a 500 if it is still live).
            drop(responder);
            let _ = on_chunk(BodyChunk::Failed);
        }
    }
}

/// What `user` points to while a read is with the host: the callback, and the responder,
/// which travels with it and comes back in the chunk.
struct InFlight<C> {
    api: &'static ffi::HostApi,
    raw: *mut ffi::ResponderHandle,
    callback: C,
}

/// The `on_chunk` given to the host: reclaims the [`InFlight`] behind `user` and runs its
/// callback once, catching a panic (logged; a responder it held answers 500 as it drops) so
/// none crosses into the host.
unsafe extern "C" fn chunk_trampoline<C: OnChunk>(
    user: *mut c_void,
    chunk: ffi::Bytes,
    status: i32,
) {
    if user.is_null() {
        return;
    }
    // SAFETY: `user` is the `Box<InFlight<C>>` leaked by `Responder::start_read`, and the
    // host calls `on_chunk` exactly once for it, so it is reclaimed exactly once.
    let InFlight { api, raw, callback } = *unsafe { Box::from_raw(user.cast::<InFlight<C>>()) };
    let run = move || {
        let chunk = match status {
            // SAFETY: the chunk is borrowed for this call; `OK` and `CLOSED` give the
            // responder back unanswered. After `ERR` it is not rebuilt: the request is over.
            ffi::OK => BodyChunk::Data(unsafe { chunk.as_slice() }, unsafe {
                Responder::from_raw(api, raw)
            }),
            // SAFETY: as above.
            ffi::CLOSED => BodyChunk::End(unsafe { Responder::from_raw(api, raw) }),
            _ => BodyChunk::Failed,
        };
        callback.call(chunk);
    };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(run)) {
        tracing::error!(
            "a request body callback panicked: {}",
            panic_message(payload.as_ref())
        );
    }
}

/// A read that could not start: why, the responder, and the callback, uncalled.
type NotStarted<C> = (BodyError, Responder, C);

impl Responder {
    /// Asks the host for the next chunk of this request's streamed body (see the
    /// [module docs](crate::body)): `on_chunk` runs once, later, on a host thread, with the
    /// chunk and this responder, the end of the body and this responder, or
    /// [`BodyChunk::Failed`]. It must not block.
    ///
    /// On `Err` nothing was started and `on_chunk` is dropped uncalled; the responder comes
    /// back to answer with (after [`BodyError::Closed`] the request may be over already: an
    /// answer is then refused, harmlessly).
    pub fn body_next<F>(self, on_chunk: F) -> Result<(), (BodyError, Responder)>
    where
        F: for<'a> FnOnce(BodyChunk<'a>) + Send + 'static,
    {
        self.start_read(Once(on_chunk))
            .map_err(|(error, responder, _)| (error, responder))
    }

    /// Reads this request's whole streamed body (see the [module docs](crate::body)):
    /// `on_chunk` runs on a host thread for each chunk, with the responder — return
    /// [`Next::More`] with it for the next chunk — then once with [`BodyChunk::End`] (answer
    /// then) or [`BodyChunk::Failed`]. It must not block; to read at your own pace use
    /// [`body_next`](Responder::body_next).
    ///
    /// `Err` when the first read could not start, with the responder to answer with. If a
    /// later read cannot start (the request ended between two chunks), `on_chunk` gets
    /// [`BodyChunk::Failed`].
    pub fn read_body<F>(self, on_chunk: F) -> Result<(), (BodyError, Responder)>
    where
        F: for<'a> FnMut(BodyChunk<'a>) -> Next + Send + 'static,
    {
        self.start_read(Loop(on_chunk))
            .map_err(|(error, responder, _)| (error, responder))
    }

    /// Hands `callback` to the host's `body_next`; gives it back when the read could not
    /// start.
    fn start_read<C: OnChunk>(self, callback: C) -> Result<(), NotStarted<C>> {
        let Some(next) = self.api.body_next else {
            return Err((BodyError::NotSupported, self, callback));
        };
        let this = std::mem::ManuallyDrop::new(self);
        let (api, raw) = (this.api, this.raw);
        let user = Box::into_raw(Box::new(InFlight { api, raw, callback }));
        // SAFETY: an unanswered responder of this host; `user` stays valid until the
        // trampoline reclaims it.
        let rc = unsafe { next(raw, Some(chunk_trampoline::<C>), user.cast()) };
        if rc == ffi::OK {
            return Ok(());
        }
        // Refused: the host keeps no reference to `user` and never calls back.
        // SAFETY: leaked just above and not handed over.
        let in_flight = unsafe { Box::from_raw(user) };
        let error = if rc == ffi::CLOSED {
            BodyError::Closed
        } else {
            BodyError::NotStreamed
        };
        // SAFETY: the responder was not consumed: the host refused the call.
        let responder = unsafe { Responder::from_raw(api, raw) };
        Err((error, responder, in_flight.callback))
    }
}

#[cfg(test)]
mod tests {
    //! The SDK side of streamed bodies against a scripted fake host: the responder travels
    //! with each read and comes back, `read_body` asks again after `More` and stops after
    //! `Stop`, the end and failures reach the callback, refused reads give the responder and
    //! free the callback, a 1.0 host reports `NotSupported`.
    use super::*;
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, Mutex};

    /// What the fake host saw and holds, per responder handle (each test uses its own).
    #[derive(Default)]
    struct Seen {
        calls: Vec<&'static str>,
        codes: VecDeque<i32>,
        pending: Option<(ffi::BodyChunkFn, usize)>,
    }

    static SEEN: Mutex<Option<HashMap<usize, Seen>>> = Mutex::new(None);

    fn with_seen<R>(h: usize, f: impl FnOnce(&mut Seen) -> R) -> R {
        let mut all = SEEN.lock().unwrap();
        f(all.get_or_insert_with(HashMap::new).entry(h).or_default())
    }

    unsafe extern "C" fn log(_: *mut ffi::HostHandle, _: u32, _: ffi::Str, _: ffi::Str) {}
    unsafe extern "C" fn log_enabled(_: *mut ffi::HostHandle, _: u32, _: ffi::Str) -> i32 {
        0
    }
    unsafe extern "C" fn register_route(_: *mut ffi::HostHandle, _: *const ffi::RouteDecl) -> i32 {
        ffi::ERR
    }
    unsafe extern "C" fn respond(h: *mut ffi::ResponderHandle, _: *const ffi::Response) -> i32 {
        with_seen(h as usize, |s| s.calls.push("respond"));
        ffi::OK
    }
    unsafe extern "C" fn respond_error(
        h: *mut ffi::ResponderHandle,
        _: u16,
        _: ffi::Str,
        _: *const ffi::Header,
        _: usize,
    ) -> i32 {
        with_seen(h as usize, |s| s.calls.push("respond_error"));
        ffi::OK
    }
    unsafe extern "C" fn set_error(_: *mut ffi::ErrorHandle, _: ffi::Str) {}
    unsafe extern "C" fn config_dir(_: *mut ffi::HostHandle) -> ffi::Str {
        ffi::Str::EMPTY
    }
    unsafe extern "C" fn body_next(
        h: *mut ffi::ResponderHandle,
        on_chunk: Option<ffi::BodyChunkFn>,
        user: *mut c_void,
    ) -> i32 {
        with_seen(h as usize, |s| {
            s.calls.push("body_next");
            let rc = s.codes.pop_front().unwrap_or(ffi::OK);
            if rc == ffi::OK {
                assert!(s.pending.is_none(), "one read at a time");
                s.pending = Some((on_chunk.expect("a callback"), user as usize));
            }
            rc
        })
    }

    /// A host table of `struct_size` bytes (1.0's: no `body_next`).
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
            set_cancel_token: None,
            stream_start: None,
            stream_write: None,
            stream_on_ready: None,
            stream_end: None,
            body_next: Some(body_next),
        };
        // SAFETY: a whole table; the read stops at `struct_size` as the SDK's init does.
        Box::leak(Box::new(unsafe { ffi::read_prefix(&full, struct_size) }))
    }

    fn responder(handle: usize, codes: &[i32]) -> Responder {
        with_seen(handle, |s| s.codes = codes.iter().copied().collect());
        let api = api(std::mem::size_of::<ffi::HostApi>());
        // SAFETY: a fake handle only this test uses.
        unsafe { Responder::from_raw(api, handle as *mut ffi::ResponderHandle) }
    }

    /// Delivers the pending read of `handle` as the host would, from another thread.
    fn deliver(handle: usize, chunk: &'static [u8], status: i32) {
        let (on_chunk, user) = with_seen(handle, |s| s.pending.take()).expect("a read pending");
        std::thread::spawn(move || {
            // SAFETY: the callback and pointer the SDK gave, called once.
            unsafe { on_chunk(user as *mut c_void, ffi::Bytes::new(chunk), status) }
        })
        .join()
        .unwrap();
    }

    fn calls(handle: usize) -> Vec<&'static str> {
        with_seen(handle, |s| s.calls.clone())
    }

    #[test]
    fn read_body_reads_to_the_end_and_hands_the_responder_back() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        responder(0x100, &[])
            .read_body(move |chunk| {
                log.lock().unwrap().push(format!("{chunk:?}"));
                match chunk {
                    BodyChunk::Data(_, responder) => Next::More(responder),
                    BodyChunk::End(responder) => {
                        responder.respond(200, &[], b"done").unwrap();
                        Next::Stop
                    }
                    BodyChunk::Failed => Next::Stop,
                }
            })
            .unwrap();
        deliver(0x100, b"abc", ffi::OK);
        deliver(0x100, b"de", ffi::OK);
        deliver(0x100, b"", ffi::CLOSED);
        assert_eq!(
            *seen.lock().unwrap(),
            ["Data(3 bytes)", "Data(2 bytes)", "End"]
        );
        assert_eq!(
            calls(0x100),
            ["body_next", "body_next", "body_next", "respond"]
        );
    }

    #[test]
    fn a_failed_body_gives_no_responder_and_answers_nothing() {
        let failed = Arc::new(Mutex::new(false));
        let flag = failed.clone();
        responder(0x200, &[])
            .body_next(move |chunk| {
                *flag.lock().unwrap() = matches!(chunk, BodyChunk::Failed);
            })
            .unwrap();
        deliver(0x200, b"", ffi::ERR);
        assert!(*failed.lock().unwrap());
        assert_eq!(calls(0x200), ["body_next"], "no answer after SPK_ERR");
    }

    #[test]
    fn stop_ends_the_reading_and_the_callback_keeps_the_responder() {
        let kept = Arc::new(Mutex::new(None));
        let slot = kept.clone();
        responder(0x300, &[])
            .read_body(move |chunk| {
                if let BodyChunk::Data(_, responder) = chunk {
                    *slot.lock().unwrap() = Some(responder);
                }
                Next::Stop
            })
            .unwrap();
        deliver(0x300, b"first", ffi::OK);
        assert_eq!(calls(0x300), ["body_next"], "no second read after Stop");
        let responder = kept.lock().unwrap().take().unwrap();
        responder.respond_error(400, "no thanks", &[]).unwrap();
        assert_eq!(calls(0x300), ["body_next", "respond_error"]);
    }

    #[test]
    fn a_refused_first_read_returns_the_responder_and_frees_the_callback() {
        let witness = Arc::new(());
        let held = witness.clone();
        let (error, responder) = responder(0x400, &[ffi::ERR])
            .body_next(move |_| drop(held))
            .unwrap_err();
        assert_eq!(error, BodyError::NotStreamed);
        assert_eq!(Arc::strong_count(&witness), 1, "the callback was dropped");
        responder.respond(200, &[], b"whole").unwrap();
        let (error, responder) = self::responder(0x401, &[ffi::CLOSED])
            .read_body(|_| Next::Stop)
            .unwrap_err();
        assert_eq!(error, BodyError::Closed);
        drop(responder);
        assert_eq!(calls(0x401), ["body_next", "respond_error"]);
    }

    #[test]
    fn a_read_refused_between_chunks_reaches_the_callback_as_failed() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        responder(0x500, &[ffi::OK, ffi::CLOSED])
            .read_body(move |chunk| {
                log.lock().unwrap().push(format!("{chunk:?}"));
                match chunk {
                    BodyChunk::Data(_, responder) => Next::More(responder),
                    _ => Next::Stop,
                }
            })
            .unwrap();
        deliver(0x500, b"x", ffi::OK);
        assert_eq!(*seen.lock().unwrap(), ["Data(1 bytes)", "Failed"]);
    }

    #[test]
    fn a_panicking_callback_does_not_unwind_into_the_host_and_its_responder_answers() {
        responder(0x600, &[])
            .body_next(|chunk| {
                let _responder = chunk;
                panic!("boom");
            })
            .unwrap();
        deliver(0x600, b"x", ffi::OK);
        assert_eq!(calls(0x600), ["body_next", "respond_error"], "a 500");
    }

    #[test]
    fn body_streamed_is_read_from_the_flags_of_a_1_1_request_only() {
        let s = ffi::Str::new;
        let request = |struct_size| ffi::Request {
            struct_size,
            handler_id: 0,
            request_id: s("rid"),
            method: s("POST"),
            path: s("/up"),
            query: s(""),
            headers: std::ptr::null(),
            headers_len: 0,
            params_json: s("{}"),
            body: ffi::Bytes::EMPTY,
            client_addr: s(""),
            local_addr: s(""),
            scheme: s(""),
            http_version: s(""),
            route: s(""),
            timeout_ms: 0,
            flags: ffi::request_flags::BODY_STREAMED,
        };
        let v1_1 = request(std::mem::size_of::<ffi::Request>());
        // SAFETY: whole requests with 'static strings; a 1.0 one is read up to its size.
        assert!(unsafe { crate::Request::from_ptr(&v1_1) }
            .unwrap()
            .body_streamed());
        let v1_0 = request(ffi::min_size::REQUEST);
        // SAFETY: as above.
        assert!(!unsafe { crate::Request::from_ptr(&v1_0) }
            .unwrap()
            .body_streamed());
    }

    #[test]
    fn a_1_0_host_reports_not_supported() {
        let api = api(ffi::min_size::HOST_API);
        // SAFETY: a fake handle only this test uses.
        let responder = unsafe { Responder::from_raw(api, 0x700 as *mut ffi::ResponderHandle) };
        let (error, responder) = responder.body_next(|_| ()).unwrap_err();
        assert_eq!(error, BodyError::NotSupported);
        responder.respond(200, &[], b"").unwrap();
        assert_eq!(calls(0x700), ["respond"], "no 1.1 call on a 1.0 host");
    }
}
