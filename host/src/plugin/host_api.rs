//! The host side of the ABI: the `spk_host_api` table handed to plugins, the
//! per-plugin [`HostHandle`] and the error out-parameter. Responders are handles into the
//! host's responder table ([`super::responders`]). Every function here is `extern "C"`,
//! catches panics and copies what it keeps, as `spikard_plugin.h` promises; structs the
//! plugin wrote are read with [`ffi::read_prefix`] after checking their 1.0 size.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use spikard_abi::ffi::{self, ErrorHandle, HostApi, Str};

use super::log;
use super::pending::ResponseStream;
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
        /// Body, copied.
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

/// Copies a plugin's response into an owned [`Answer`].
///
/// # Safety
/// `response` must be valid for the call.
unsafe fn copy_response(response: *const ffi::Response) -> Answer {
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
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return Answer::Invalid(format!("status {} is not an HTTP status", response.status));
    };
    // SAFETY: borrowed for the call.
    let headers = match unsafe { copy_headers(response.headers, response.headers_len) } {
        Ok(headers) => headers,
        Err(reason) => return Answer::Invalid(reason),
    };
    // SAFETY: borrowed for the call.
    let body = Bytes::copy_from_slice(unsafe { response.body.as_slice() });
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
        // SAFETY: borrowed for the call.
        let answer = catch_unwind(AssertUnwindSafe(|| unsafe { copy_response(response) }))
            .unwrap_or_else(|_| Answer::Invalid("copying the response panicked".into()));
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
    // Streamed request bodies: not offered yet (a plugin sees `None`, as on a 1.0 host).
    body_next: None,
};
