//! The host side of the ABI: the `spk_host_api` table handed to plugins, the
//! per-plugin [`HostHandle`] and the error out-parameter. Responders are handles into the
//! host's responder table ([`super::responders`]). Every function here is `extern "C"`,
//! catches panics and copies what it keeps, as `spikard_plugin.h` promises — except a
//! response body given with a `release` (ABI 1.1), sent from the plugin's memory and
//! released exactly once when dropped; structs the plugin wrote are read with
//! [`ffi::read_prefix`] after checking their 1.0 size.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use spikard_abi::ffi::{self, ErrorHandle, HostApi, Str};

use super::log;
use super::pending::ResponseStream;
use super::responders::body_stream::{self, ChunkCall};
use super::responders::{self, ReadyCall};

/// A route a plugin declared during `init`, not yet checked against the
/// config's routes.
#[derive(Debug, Clone)]
pub struct Registration {
    /// HTTP method as given.
    pub method: String,
    /// Path template as given.
    pub path: String,
    /// The plugin's id for it.
    pub handler_id: u64,
    /// The schema object (`path`, `query`, `headers`, `cookies`, `body`, `response`).
    pub schemas: serde_json::Value,
}

/// What the host keeps per plugin; the `spk_host*` a plugin sees. Leaked:
/// plugins may log from any thread until the process ends.
pub struct HostHandle {
    /// The plugin's config name, attached to its log records.
    pub plugin: String,
    /// The config file's directory, as handed out by `config_dir`.
    config_dir: String,
    /// `Some` while `init` runs: routes declared so far.
    registrations: Mutex<Option<Vec<Registration>>>,
    /// Why a registration was refused, reported when `init` fails.
    refusal: Mutex<Option<String>>,
}

impl HostHandle {
    /// A leaked handle for `plugin`.
    pub fn leak(plugin: &str, config_dir: &std::path::Path) -> &'static HostHandle {
        Box::leak(Box::new(HostHandle {
            plugin: plugin.to_owned(),
            config_dir: config_dir.to_string_lossy().into_owned(),
            registrations: Mutex::new(None),
            refusal: Mutex::new(None),
        }))
    }

    /// The pointer the plugin receives.
    pub fn as_ffi(&'static self) -> *mut ffi::HostHandle {
        (self as *const HostHandle).cast_mut().cast()
    }

    /// Opens registration for the duration of `init`.
    pub fn open_registration(&self) {
        *self.registrations.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    /// Closes registration: the routes declared and the first refusal.
    pub fn close_registration(&self) -> (Vec<Registration>, Option<String>) {
        let routes = self
            .registrations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        let refusal = self
            .refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        (routes, refusal)
    }

    fn refuse(&self, message: String) -> i32 {
        tracing::error!(plugin = %self.plugin, "route refused: {message}");
        let mut refusal = self.refusal.lock().unwrap_or_else(|e| e.into_inner());
        refusal.get_or_insert(message);
        ffi::ERR
    }
}

/// A plugin's answer, sent from whichever thread answered.
#[derive(Debug)]
pub enum Answer {
    /// A response to send as is.
    Response {
        /// Status code.
        status: StatusCode,
        /// Headers, checked.
        headers: HeaderMap,
        /// Body: a copy, or the plugin's own buffer when it gave a `release` (ABI 1.1),
        /// released when the last reference is dropped.
        body: Bytes,
    },
    /// A Problem Details response the host renders.
    Problem {
        /// Status code.
        status: StatusCode,
        /// The plugin's detail text.
        detail: String,
        /// Extra headers, e.g. `www-authenticate`.
        headers: HeaderMap,
    },
    /// The plugin answered with something invalid; the reason is logged and
    /// the client gets a 500.
    Invalid(String),
    /// The host answered for the plugin: the request body it was reading (`body_next`)
    /// failed — over the route's `body_limit` (413), too slow (408), cut short (400).
    Refused(crate::problem::Problem),
    /// The plugin started a stream (`stream_start`): send the head now, the body as it
    /// comes.
    Stream {
        /// Status code.
        status: StatusCode,
        /// Headers, checked; no `content-length` or `transfer-encoding`.
        headers: HeaderMap,
        /// The body, read from the request's responder slot.
        body: ResponseStream,
    },
}

/// The host's error out-parameter: a message slot in host memory.
#[derive(Default)]
pub struct ErrorSlot(Option<String>);

impl ErrorSlot {
    /// The pointer the plugin receives.
    pub fn as_ffi(&mut self) -> *mut ErrorHandle {
        (self as *mut ErrorSlot).cast()
    }

    /// The message, or `fallback` when the plugin set none.
    pub fn message_or(self, fallback: &str) -> String {
        self.0
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| fallback.to_owned())
    }
}

/// Reads a borrowed string from a plugin, replacing invalid UTF-8.
///
/// # Safety
/// `s` must be valid for the call, as the ABI requires.
unsafe fn text(s: Str) -> String {
    // SAFETY: per the contract.
    unsafe { s.to_str_lossy().into_owned() }
}

unsafe extern "C" fn host_log(host: *mut ffi::HostHandle, level: u32, target: Str, message: Str) {
    guarded("log", (), || {
        if host.is_null() {
            return;
        }
        // SAFETY: every host pointer is a leaked HostHandle.
        let host = unsafe { &*(host as *const HostHandle) };
        // SAFETY: borrowed for the call.
        let (target, message) = unsafe { (target.to_str_lossy(), message.to_str_lossy()) };
        let target = if target.is_empty() {
            host.plugin.as_str()
        } else {
            &target
        };
        log::emit(&host.plugin, target, level, &message);
    });
}

unsafe extern "C" fn host_log_enabled(host: *mut ffi::HostHandle, level: u32, target: Str) -> i32 {
    guarded("log_enabled", 0, || {
        if host.is_null() {
            return 0;
        }
        // SAFETY: every host pointer is a leaked HostHandle.
        let host = unsafe { &*(host as *const HostHandle) };
        // SAFETY: borrowed for the call.
        let target = unsafe { target.to_str_lossy() };
        let target = if target.is_empty() {
            host.plugin.as_str()
        } else {
            &target
        };
        i32::from(log::enabled(target, level))
    })
}

unsafe extern "C" fn host_register_route(
    host: *mut ffi::HostHandle,
    decl: *const ffi::RouteDecl,
) -> i32 {
    guarded("register_route", ffi::ERR, || {
        if host.is_null() {
            return ffi::ERR;
        }
        // SAFETY: every host pointer is a leaked HostHandle.
        let host = unsafe { &*(host as *const HostHandle) };
        if decl.is_null() {
            return host.refuse("register_route called with a null route".into());
        }
        // SAFETY: borrowed for the call; `struct_size` leads every version of the struct.
        let size = unsafe { std::ptr::addr_of!((*decl).struct_size).read() };
        if size < ffi::min_size::ROUTE_DECL {
            return host.refuse(format!(
                "spk_route_decl of {size} bytes is smaller than ABI v1.0's {}",
                ffi::min_size::ROUTE_DECL
            ));
        }
        // SAFETY: `size` readable bytes, at least the 1.0 size.
        let decl = unsafe { ffi::read_prefix(decl, size) };
        // SAFETY: borrowed for the call.
        let (method, path, schema) =
            unsafe { (text(decl.method), text(decl.path), text(decl.schema_json)) };
        let schemas = if schema.trim().is_empty() {
            serde_json::json!({})
        } else {
            match serde_json::from_str::<serde_json::Value>(&schema) {
                Ok(v) if v.is_object() => v,
                Ok(_) => {
                    return host.refuse(format!(
                        "{method} {path}: schema_json must be a JSON object"
                    ))
                }
                Err(e) => {
                    return host.refuse(format!("{method} {path}: schema_json is not JSON: {e}"))
                }
            }
        };
        let mut registrations = host.registrations.lock().unwrap_or_else(|e| e.into_inner());
        let Some(routes) = registrations.as_mut() else {
            drop(registrations);
            return host.refuse(format!(
                "{method} {path}: routes can only be registered during init"
            ));
        };
        routes.push(Registration {
            method,
            path,
            handler_id: decl.handler_id,
            schemas,
        });
        ffi::OK
    })
}

/// Runs the body of an `extern "C"` function, turning a panic into `fallback` and one log
/// line: no unwinding ever crosses into the plugin.
fn guarded<T>(call: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a non-string panic");
        // The logger itself may be what panicked: a second panic must not escape either.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            tracing::error!("the host's {call} panicked: {message} (a host bug)");
        }));
        fallback
    })
}

/// Copies and checks borrowed headers.
///
/// # Safety
/// `headers` must point to `len` headers valid for the call (or be null).
unsafe fn copy_headers(headers: *const ffi::Header, len: usize) -> Result<HeaderMap, String> {
    let raw: &[ffi::Header] = if headers.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: per the contract.
        unsafe { std::slice::from_raw_parts(headers, len) }
    };
    let too_many = || format!("{} headers are more than a response may have", raw.len());
    let mut map = HeaderMap::try_with_capacity(raw.len() + 1).map_err(|_| too_many())?;
    for header in raw {
        // SAFETY: borrowed for the call.
        let (name, value) = unsafe { (header.name.as_bytes(), header.value.as_bytes()) };
        let name = HeaderName::from_bytes(name)
            .map_err(|_| format!("invalid header name {:?}", String::from_utf8_lossy(name)))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("invalid value for header {name}"))?;
        map.try_append(name, value).map_err(|_| too_many())?;
    }
    Ok(map)
}

/// A response body the plugin keeps (`spk_response.release`, ABI 1.1): the host sends it
/// from the plugin's memory, and dropping this (when hyper has written the body, or when the
/// answer is refused or never sent) gives it back through `release(release_data)`. Dropped
/// exactly once, so `release` runs exactly once, and nothing reads the buffer after it.
struct PluginBody {
    /// The plugin's buffer, readable until `release`.
    body: ffi::Bytes,
    /// Gives the buffer back.
    release: ffi::ReleaseFn,
    /// `release`'s argument.
    data: *mut c_void,
}

// SAFETY: the ABI makes the buffer readable from any thread until `release`, and `release`
// callable from any thread.
unsafe impl Send for PluginBody {}

impl AsRef<[u8]> for PluginBody {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: readable and unchanged until `release`, which runs only when `self` drops.
        unsafe { self.body.as_slice() }
    }
}

impl Drop for PluginBody {
    fn drop(&mut self) {
        // SAFETY: the plugin's function with its pointer, called once since this value is
        // dropped once; the buffer is not read afterwards (`Bytes` dropped its last view).
        unsafe { (self.release)(self.data) }
    }
}

/// The body of a response the plugin wrote: its own buffer, wrapped without a copy, when it
/// gave a `release` (covered by its `struct_size`: `read_prefix` leaves `None` otherwise);
/// else a copy. Taken before anything else is checked, so that every later refusal of the
/// response releases the buffer by dropping what this returns.
///
/// # Safety
/// `response.body` must be readable for the call and, with a `release`, until `release`.
unsafe fn response_body(response: &ffi::Response) -> Bytes {
    match response.release {
        Some(release) => Bytes::from_owner(PluginBody {
            body: response.body,
            release,
            data: response.release_data,
        }),
        // SAFETY: borrowed for the call.
        None => Bytes::copy_from_slice(unsafe { response.body.as_slice() }),
    }
}

/// Turns a plugin's response into an owned [`Answer`]: headers copied and checked, the
/// body copied or, with a `release`, kept where it is (and released by every answer that
/// does not send it).
///
/// # Safety
/// `response` must be valid for the call.
unsafe fn take_response(response: *const ffi::Response) -> Answer {
    if response.is_null() {
        return Answer::Invalid("respond called with a null response".into());
    }
    // SAFETY: borrowed for the call; `struct_size` leads every version of the struct.
    let size = unsafe { std::ptr::addr_of!((*response).struct_size).read() };
    if size < ffi::min_size::RESPONSE {
        return Answer::Invalid(format!(
            "spk_response of {size} bytes is smaller than ABI v1.0's {}",
            ffi::min_size::RESPONSE
        ));
    }
    // SAFETY: `size` readable bytes, at least the 1.0 size.
    let response = unsafe { ffi::read_prefix(response, size) };
    // SAFETY: per the contract. From here on every return releases the body (by drop).
    let body = unsafe { response_body(&response) };
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return Answer::Invalid(format!("status {} is not an HTTP status", response.status));
    };
    // SAFETY: borrowed for the call.
    let headers = match unsafe { copy_headers(response.headers, response.headers_len) } {
        Ok(headers) => headers,
        Err(reason) => return Answer::Invalid(reason),
    };
    Answer::Response {
        status,
        headers,
        body,
    }
}

/// Copies a problem answer (`respond_error`).
///
/// # Safety
/// `detail` and `headers` must be valid for the call.
unsafe fn copy_problem(
    status: u16,
    detail: Str,
    headers: *const ffi::Header,
    headers_len: usize,
) -> Answer {
    let status = match StatusCode::from_u16(status) {
        Ok(s) if s.is_client_error() || s.is_server_error() => s,
        _ => {
            return Answer::Invalid(format!(
                "respond_error with status {status}, which is not an error status"
            ))
        }
    };
    // SAFETY: borrowed for the call.
    let headers = match unsafe { copy_headers(headers, headers_len) } {
        Ok(headers) => headers,
        Err(reason) => return Answer::Invalid(reason),
    };
    Answer::Problem {
        status,
        // SAFETY: borrowed for the call.
        detail: unsafe { text(detail) },
        headers,
    }
}

/// Copies and checks a stream's head: a status that may have a body and headers, without
/// the framing ones (the host sends the body chunked).
///
/// # Safety
/// `headers` must be valid for the call.
unsafe fn copy_head(
    status: u16,
    headers: *const ffi::Header,
    headers_len: usize,
) -> Result<(StatusCode, HeaderMap), String> {
    let status = StatusCode::from_u16(status)
        .map_err(|_| format!("stream_start with status {status}, which is not an HTTP status"))?;
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(format!(
            "stream_start with status {status}, which has no body; answer with respond"
        ));
    }
    // SAFETY: borrowed for the call.
    let mut headers = unsafe { copy_headers(headers, headers_len) }?;
    // The body's length is unknown: hyper frames it (chunked for HTTP/1.1).
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    Ok((status, headers))
}

unsafe extern "C" fn host_respond(
    responder: *mut ffi::ResponderHandle,
    response: *const ffi::Response,
) -> i32 {
    guarded("respond", ffi::ERR, || {
        // SAFETY: borrowed for the call (a body with a `release`: until the release). A panic
        // after the body was taken drops it, which releases it.
        let answer = catch_unwind(AssertUnwindSafe(|| unsafe { take_response(response) }))
            .unwrap_or_else(|_| Answer::Invalid("reading the response panicked".into()));
        responders::answer(responder, "respond", answer)
    })
}

unsafe extern "C" fn host_respond_error(
    responder: *mut ffi::ResponderHandle,
    status: u16,
    detail: Str,
    headers: *const ffi::Header,
    headers_len: usize,
) -> i32 {
    guarded("respond_error", ffi::ERR, || {
        let answer = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: borrowed for the call.
            unsafe { copy_problem(status, detail, headers, headers_len) }
        }))
        .unwrap_or_else(|_| Answer::Invalid("copying the error panicked".into()));
        responders::answer(responder, "respond_error", answer)
    })
}

unsafe extern "C" fn host_set_error(err: *mut ErrorHandle, message: Str) {
    guarded("set_error", (), || {
        if err.is_null() {
            return;
        }
        // SAFETY: every error pointer the host hands out is an ErrorSlot
        // living on the host's stack for the duration of the plugin call.
        let slot = unsafe { &mut *(err as *mut ErrorSlot) };
        // SAFETY: borrowed for the call.
        slot.0 = Some(unsafe { text(message) });
    });
}

unsafe extern "C" fn host_config_dir(host: *mut ffi::HostHandle) -> Str {
    if host.is_null() {
        return Str::EMPTY;
    }
    // SAFETY: every host pointer is a leaked HostHandle, so the string lives
    // for the process.
    let host = unsafe { &*(host as *const HostHandle) };
    Str::new(&host.config_dir)
}

unsafe extern "C" fn host_set_cancel_token(
    responder: *mut ffi::ResponderHandle,
    token: u64,
) -> i32 {
    guarded("set_cancel_token", ffi::ERR, || {
        responders::set_cancel_token(responder, token)
    })
}

unsafe extern "C" fn host_stream_start(
    responder: *mut ffi::ResponderHandle,
    status: u16,
    headers: *const ffi::Header,
    headers_len: usize,
) -> i32 {
    guarded("stream_start", ffi::ERR, || {
        let head = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: borrowed for the call.
            unsafe { copy_head(status, headers, headers_len) }
        }))
        .unwrap_or_else(|_| Err("copying the stream's head panicked".into()));
        responders::stream_start(responder, head)
    })
}

unsafe extern "C" fn host_stream_write(
    responder: *mut ffi::ResponderHandle,
    chunk: ffi::Bytes,
) -> i32 {
    guarded("stream_write", ffi::ERR, || {
        // SAFETY: borrowed for the call; copied before it returns.
        responders::stream_write(responder, unsafe { chunk.as_slice() })
    })
}

unsafe extern "C" fn host_stream_on_ready(
    responder: *mut ffi::ResponderHandle,
    ready: Option<ffi::ReadyFn>,
    user: *mut c_void,
) -> i32 {
    guarded("stream_on_ready", ffi::ERR, || {
        let Some(ready) = ready else {
            tracing::warn!("stream_on_ready called with a NULL callback; refused");
            return ffi::ERR;
        };
        responders::stream_on_ready(responder, ReadyCall::new(ready, user))
    })
}

unsafe extern "C" fn host_stream_end(
    responder: *mut ffi::ResponderHandle,
    trailers: *const ffi::Header,
    trailers_len: usize,
) -> i32 {
    guarded("stream_end", ffi::ERR, || {
        let trailers = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: borrowed for the call.
            unsafe { copy_headers(trailers, trailers_len) }
        }))
        .unwrap_or_else(|_| Err("copying the trailers panicked".into()));
        responders::stream_end(responder, trailers)
    })
}

unsafe extern "C" fn host_body_next(
    responder: *mut ffi::ResponderHandle,
    on_chunk: Option<ffi::BodyChunkFn>,
    user: *mut c_void,
) -> i32 {
    guarded("body_next", ffi::ERR, || {
        let Some(on_chunk) = on_chunk else {
            tracing::warn!("body_next called with a NULL callback; refused");
            return ffi::ERR;
        };
        body_stream::body_next(responder, ChunkCall::new(on_chunk, user))
    })
}

/// The table every plugin receives: ABI 1.1, every function present.
pub static HOST_API: HostApi = HostApi {
    struct_size: std::mem::size_of::<HostApi>(),
    abi_major: ffi::ABI_MAJOR,
    abi_minor: ffi::ABI_MINOR,
    log: host_log,
    log_enabled: host_log_enabled,
    register_route: host_register_route,
    respond: host_respond,
    respond_error: host_respond_error,
    set_error: host_set_error,
    config_dir: host_config_dir,
    set_cancel_token: Some(host_set_cancel_token),
    stream_start: Some(host_stream_start),
    stream_write: Some(host_stream_write),
    stream_on_ready: Some(host_stream_on_ready),
    stream_end: Some(host_stream_end),
    body_next: Some(host_body_next),
};

#[cfg(test)]
mod tests {
    //! Plugin-owned response bodies (`spk_response.release`) through `HOST_API.respond`, as a
    //! plugin calls it, and the request's side as dispatch takes the answer: the body is sent
    //! from the plugin's buffer, and `release` runs exactly once on every path.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Poll;

    use super::*;
    use crate::plugin::admission::Admission;
    use crate::plugin::responders::{open, Delivery, Ticket};

    static BODY: &[u8] = b"the plugin's own bytes";

    /// A release counting its calls into the `AtomicUsize` behind `data`.
    unsafe extern "C" fn count_release(data: *mut c_void) {
        // SAFETY: every test passes a leaked AtomicUsize.
        unsafe { &*(data as *const AtomicUsize) }.fetch_add(1, Ordering::SeqCst);
    }

    /// A release counter that lives for the process (a late release must not dangle).
    fn counter() -> &'static AtomicUsize {
        Box::leak(Box::new(AtomicUsize::new(0)))
    }

    /// A whole 1.1 response whose body is [`BODY`], released into `released`.
    fn owned(status: u16, header: &ffi::Header, released: &'static AtomicUsize) -> ffi::Response {
        ffi::Response {
            struct_size: std::mem::size_of::<ffi::Response>(),
            status,
            headers: header,
            headers_len: 1,
            body: ffi::Bytes::new(BODY),
            release: Some(count_release),
            release_data: (released as *const AtomicUsize).cast_mut().cast(),
        }
    }

    fn header(name: &'static str) -> ffi::Header {
        ffi::Header {
            name: ffi::Str::new(name),
            value: ffi::Str::new("text/plain"),
        }
    }

    fn respond(handle: *mut ffi::ResponderHandle, response: &ffi::Response) -> i32 {
        // SAFETY: the response and its body are 'static; the handle is checked by the host.
        unsafe { (HOST_API.respond)(handle, response) }
    }

    fn open_ticket() -> Ticket {
        open(Admission::leak("test", 4).try_acquire().unwrap()).unwrap()
    }

    fn delivered(ticket: &Ticket) -> Answer {
        match ticket.poll_delivery(None) {
            Poll::Ready(Delivery::Answer(answer)) => answer,
            other => panic!("no whole answer: {other:?}"),
        }
    }

    #[test]
    fn an_owned_body_is_sent_in_place_and_released_once_when_dropped() {
        let released = counter();
        let ticket = open_ticket();
        let content_type = header("content-type");
        assert_eq!(
            respond(ticket.handle(), &owned(200, &content_type, released)),
            ffi::OK
        );
        let Answer::Response { body, .. } = delivered(&ticket) else {
            panic!("not a response");
        };
        assert_eq!(body.as_ptr(), BODY.as_ptr(), "not copied");
        assert_eq!(&body[..], BODY);
        let view = body.clone();
        drop(body);
        assert_eq!(released.load(Ordering::SeqCst), 0, "a view is still alive");
        drop(view);
        assert_eq!(released.load(Ordering::SeqCst), 1);
        drop(ticket.release());
        assert_eq!(released.load(Ordering::SeqCst), 1, "exactly once");
    }

    #[test]
    fn a_refused_response_releases_its_body_before_respond_returns() {
        let bad_name = header("bad header\n");
        let good = header("content-type");
        for (why, response) in [
            ("bad header", owned(200, &bad_name, counter())),
            ("bad status", owned(42, &good, counter())),
        ] {
            let ticket = open_ticket();
            assert_eq!(respond(ticket.handle(), &response), ffi::ERR, "{why}");
            // SAFETY: `owned` leaked the counter.
            let released = unsafe { &*(response.release_data as *const AtomicUsize) };
            assert_eq!(released.load(Ordering::SeqCst), 1, "{why}");
            assert!(matches!(delivered(&ticket), Answer::Invalid(_)), "{why}");
            drop(ticket.release());
            assert_eq!(released.load(Ordering::SeqCst), 1, "{why}: exactly once");
        }
    }

    #[test]
    fn an_answer_on_a_dead_responder_releases_its_body() {
        let content_type = header("content-type");
        // Answered twice: the first answer is kept, the second body given back.
        let ticket = open_ticket();
        let first = counter();
        let second = counter();
        assert_eq!(
            respond(ticket.handle(), &owned(200, &content_type, first)),
            ffi::OK
        );
        assert_eq!(
            respond(ticket.handle(), &owned(201, &content_type, second)),
            ffi::ERR
        );
        assert_eq!(second.load(Ordering::SeqCst), 1);
        assert_eq!(
            first.load(Ordering::SeqCst),
            0,
            "the first is still to send"
        );
        // The request ends without sending it (client gone): released with the slot.
        drop(ticket.release());
        assert_eq!(first.load(Ordering::SeqCst), 1);
        // After the request ended, and on a handle the host never gave out.
        let ticket = open_ticket();
        let handle = ticket.handle();
        drop(ticket.release());
        for handle in [handle, std::ptr::null_mut()] {
            let late = counter();
            assert_eq!(respond(handle, &owned(200, &content_type, late)), ffi::ERR);
            assert_eq!(late.load(Ordering::SeqCst), 1);
        }
        // SAFETY: a null response is refused before anything is read.
        assert_eq!(
            unsafe { (HOST_API.respond)(std::ptr::null_mut(), std::ptr::null()) },
            ffi::ERR
        );
    }

    #[test]
    fn a_1_0_response_is_copied_and_its_bytes_past_1_0_are_not_read() {
        let released = counter();
        let content_type = header("content-type");
        let response = ffi::Response {
            struct_size: ffi::min_size::RESPONSE,
            ..owned(200, &content_type, released)
        };
        let ticket = open_ticket();
        assert_eq!(respond(ticket.handle(), &response), ffi::OK);
        let Answer::Response { body, .. } = delivered(&ticket) else {
            panic!("not a response");
        };
        assert_ne!(
            body.as_ptr(),
            BODY.as_ptr(),
            "a 1.0 writer's body is copied"
        );
        assert_eq!(&body[..], BODY);
        drop(body);
        drop(ticket.release());
        assert_eq!(
            released.load(Ordering::SeqCst),
            0,
            "no release in a 1.0 response"
        );
    }
}
