//! The safe Rust side of a plugin: the [`Plugin`] trait and the borrowed and
//! owned handles it works with.

use std::fmt;
use std::time::Duration;

use crate::ffi;

/// A request handler living in a dynamic library loaded by `spikard-host`.
///
/// Implement this and export it with [`export_plugin!`](crate::export_plugin).
/// All methods are called behind `catch_unwind`: a panic in `handle` turns
/// into a 500 for that request (through the dropped [`Responder`]), a panic
/// in `init` or `bind_route` into a start-up error.
///
/// # Threading
/// `init`, `bind_route` and `shutdown` are called from one thread, never
/// concurrently. `handle` and `cancel` are called concurrently from the
/// host's worker threads and must not block: hand slow work to another
/// thread and answer through the [`Responder`] when it is done.
///
/// # Example
/// ```
/// use spikard_abi::{export_plugin, Host, Plugin, Request, Responder, RouteBinding};
///
/// struct Hello;
///
/// impl Plugin for Hello {
///     fn init(_host: Host, _settings_json: &str) -> Result<Self, String> {
///         Ok(Hello)
///     }
///     fn bind_route(&self, route: &RouteBinding<'_>) -> Result<u64, String> {
///         match route.handler {
///             "hello" => Ok(0),
///             other => Err(format!("no handler named `{other}`; this plugin has `hello`")),
///         }
///     }
///     fn handle(&self, _request: &Request<'_>, responder: Responder) {
///         responder.respond(200, &[("content-type", "text/plain")], b"hello");
///     }
/// }
///
/// export_plugin!(Hello, name = "hello", version = "0.1.0");
/// ```
pub trait Plugin: Send + Sync + Sized + 'static {
    /// Creates the plugin from its `settings` table (as JSON). Routes the
    /// plugin knows itself are declared here through [`Host::register_route`].
    fn init(host: Host, settings_json: &str) -> Result<Self, String>;

    /// Accepts a route of the host's config that names this plugin and
    /// returns the id that requests to it will carry.
    fn bind_route(&self, route: &RouteBinding<'_>) -> Result<u64, String>;

    /// Handles one request. The request is borrowed for this call only; the
    /// responder may be moved to another thread and answered later.
    fn handle(&self, request: &Request<'_>, responder: Responder);

    /// The client went away, the request timed out or the server is
    /// stopping before it was answered. Advisory: the responder must still be
    /// answered (or dropped); stop the work and answer now if you can. Never
    /// called after [`shutdown`](Plugin::shutdown).
    fn cancel(&self, _request_id: &str) {}

    /// The host is stopping: every request it still waited for has been
    /// cancelled, and no `handle` or `cancel` follows. Answer or drop
    /// outstanding work within `deadline` (the time the host has left; it
    /// exits when it is up). The plugin is dropped when this returns.
    fn shutdown(&self, _deadline: Duration) {}
}

/// The host, as seen by a plugin: routes registration and logging.
///
/// Cheap to copy and valid for the life of the process.
#[derive(Clone, Copy)]
pub struct Host {
    pub(crate) api: &'static ffi::HostApi,
    pub(crate) handle: *mut ffi::HostHandle,
}

// SAFETY: the host documents `log`, `log_enabled` and the responder calls as
// callable from any thread; the handle is an immutable per-plugin object.
unsafe impl Send for Host {}
// SAFETY: see `Send`.
unsafe impl Sync for Host {}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("abi_major", &self.api.abi_major)
            .field("abi_minor", &self.api.abi_minor)
            .finish()
    }
}

/// A route a plugin declares itself, e.g. from decorators in user code.
#[derive(Debug, Clone, Copy)]
pub struct RouteDecl<'a> {
    /// HTTP method, e.g. `"GET"`.
    pub method: &'a str,
    /// Path template with `{name}` segments.
    pub path: &'a str,
    /// The id requests to this route will carry.
    pub handler_id: u64,
    /// JSON object with optional `path`, `query`, `headers`, `cookies`,
    /// `body` and `response` schemas; empty for none.
    pub schema_json: &'a str,
}

impl Host {
    /// The host's ABI version, `(major, minor)`: check the minor before
    /// relying on anything added after v1.0.
    pub fn abi_version(&self) -> (u32, u32) {
        (self.api.abi_major, self.api.abi_minor)
    }

    /// Declares a route. Only valid during [`Plugin::init`].
    ///
    /// On `Err`, return an error from `init`: the host has recorded why the
    /// route was refused and reports that as the start-up error.
    pub fn register_route(&self, route: &RouteDecl<'_>) -> Result<(), RouteRefused> {
        let decl = ffi::RouteDecl {
            struct_size: std::mem::size_of::<ffi::RouteDecl>(),
            method: ffi::Str::new(route.method),
            path: ffi::Str::new(route.path),
            handler_id: route.handler_id,
            schema_json: ffi::Str::new(route.schema_json),
        };
        // SAFETY: the decl outlives the call; the API is the host's.
        let rc = unsafe { (self.api.register_route)(self.handle, &decl) };
        if rc == ffi::OK {
            Ok(())
        } else {
            Err(RouteRefused)
        }
    }

    /// The absolute directory of the host's config file: resolve relative
    /// paths in settings against it, as operators expect.
    pub fn config_dir(&self) -> std::path::PathBuf {
        // SAFETY: the host returns a string valid for the process.
        let dir = unsafe { (self.api.config_dir)(self.handle).to_str_lossy() };
        std::path::PathBuf::from(dir.into_owned())
    }

    /// Sends one log record to the host's logger.
    pub fn log(&self, level: u32, target: &str, message: &str) {
        // SAFETY: strings borrowed for the call; the API is the host's.
        unsafe {
            (self.api.log)(
                self.handle,
                level,
                ffi::Str::new(target),
                ffi::Str::new(message),
            )
        }
    }

    /// Whether a record at `level` for `target` would be kept; check it
    /// before formatting an expensive message.
    pub fn log_enabled(&self, level: u32, target: &str) -> bool {
        // SAFETY: string borrowed for the call.
        unsafe { (self.api.log_enabled)(self.handle, level, ffi::Str::new(target)) != 0 }
    }
}

/// The host refused a route in [`Host::register_route`]; it logged and
/// recorded the reason and will report it when `init` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefused;

impl fmt::Display for RouteRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the host refused the route (it reports why)")
    }
}

impl std::error::Error for RouteRefused {}

/// A config route offered to [`Plugin::bind_route`].
#[derive(Debug, Clone, Copy)]
pub struct RouteBinding<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Path template.
    pub path: &'a str,
    /// The route's `handler` field.
    pub handler: &'a str,
    /// The route's `settings` table as JSON (`"{}"` when absent).
    pub settings_json: &'a str,
}

/// A request, borrowed for the duration of [`Plugin::handle`]. Copy what you
/// need before answering later from another thread.
pub struct Request<'a> {
    raw: &'a ffi::Request,
}

impl<'a> Request<'a> {
    /// Wraps a raw request.
    ///
    /// # Safety
    /// Every pointer in `raw` must be valid for `'a`, as the host guarantees
    /// for the duration of `handle`.
    pub unsafe fn from_raw(raw: &'a ffi::Request) -> Self {
        Request { raw }
    }

    fn str(&self, s: ffi::Str) -> &'a str {
        // SAFETY: valid for 'a per `from_raw`; the host only passes UTF-8,
        // and a broken host gets an empty string rather than UB.
        std::str::from_utf8(unsafe { s.as_bytes() }).unwrap_or("")
    }

    /// The id chosen in `bind_route` or `register_route`.
    pub fn handler_id(&self) -> u64 {
        self.raw.handler_id
    }
    /// Unique per request; the host also sends it as `x-request-id`.
    pub fn request_id(&self) -> &'a str {
        self.str(self.raw.request_id)
    }
    /// The HTTP method.
    pub fn method(&self) -> &'a str {
        self.str(self.raw.method)
    }
    /// The percent-encoded path, without the query.
    pub fn path(&self) -> &'a str {
        self.str(self.raw.path)
    }
    /// The raw query string, without `?`.
    pub fn query(&self) -> &'a str {
        self.str(self.raw.query)
    }
    /// Validated and coerced parameters as a JSON object with `path`,
    /// `query`, `headers`, `cookies` (and `form`) members.
    pub fn params_json(&self) -> &'a str {
        self.str(self.raw.params_json)
    }
    /// The request body.
    pub fn body(&self) -> &'a [u8] {
        // SAFETY: valid for 'a per `from_raw`.
        unsafe { self.raw.body.as_slice() }
    }
    /// The request headers as `(lower-case name, value)` pairs.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + '_ {
        let headers: &'a [ffi::Header] = if self.raw.headers.is_null() {
            &[]
        } else {
            // SAFETY: valid for 'a per `from_raw`.
            unsafe { std::slice::from_raw_parts(self.raw.headers, self.raw.headers_len) }
        };
        headers
            .iter()
            .map(move |h| (self.str(h.name), self.str(h.value)))
    }
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// The answer slot of one request: answer it once with
/// [`respond`](Responder::respond) or [`respond_error`](Responder::respond_error).
/// Dropping it unanswered (including by a panic) answers 500, so a request is
/// never left hanging.
///
/// `Send`: move it to another thread to answer later.
pub struct Responder {
    api: &'static ffi::HostApi,
    raw: *mut ffi::ResponderHandle,
}

// SAFETY: the host documents `respond`/`respond_error` as callable from any
// thread, once; ownership of `raw` moves with the value.
unsafe impl Send for Responder {}

/// The host refused a response (e.g. an invalid header); the client got a 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the host refused the response; the client got a 500")
    }
}

impl std::error::Error for Refused {}

impl Responder {
    /// Takes ownership of a raw responder.
    ///
    /// # Safety
    /// `raw` must be an unanswered responder handed out by the host that
    /// owns `api`, and nobody else may answer it.
    pub unsafe fn from_raw(api: &'static ffi::HostApi, raw: *mut ffi::ResponderHandle) -> Self {
        Responder { api, raw }
    }

    /// Answers with a status, headers and body (all copied by the host).
    pub fn respond(
        self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Refused> {
        let headers = ffi_headers(headers);
        let response = ffi::Response {
            struct_size: std::mem::size_of::<ffi::Response>(),
            status,
            headers: headers.as_ptr(),
            headers_len: headers.len(),
            body: ffi::Bytes::new(body),
        };
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: consumed exactly once (ManuallyDrop skips the Drop answer).
        let rc = unsafe { (this.api.respond)(this.raw, &response) };
        if rc == ffi::OK {
            Ok(())
        } else {
            Err(Refused)
        }
    }

    /// Answers with an RFC 9457 Problem Details body the host builds, with
    /// `status` (400..=599), a `detail` for the client and extra headers
    /// such as `www-authenticate`.
    pub fn respond_error(
        self,
        status: u16,
        detail: &str,
        headers: &[(&str, &str)],
    ) -> Result<(), Refused> {
        let headers = ffi_headers(headers);
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: consumed exactly once; everything borrowed for the call.
        let rc = unsafe {
            (this.api.respond_error)(
                this.raw,
                status,
                ffi::Str::new(detail),
                headers.as_ptr(),
                headers.len(),
            )
        };
        if rc == ffi::OK {
            Ok(())
        } else {
            Err(Refused)
        }
    }
}

/// Borrows `(name, value)` pairs as ABI headers for one call.
fn ffi_headers(headers: &[(&str, &str)]) -> Vec<ffi::Header> {
    headers
        .iter()
        .map(|(n, v)| ffi::Header {
            name: ffi::Str::new(n),
            value: ffi::Str::new(v),
        })
        .collect()
}

impl Drop for Responder {
    fn drop(&mut self) {
        // SAFETY: not answered yet (answering forgets `self`).
        unsafe {
            (self.api.respond_error)(
                self.raw,
                500,
                ffi::Str::new("the handler finished without answering"),
                std::ptr::null(),
                0,
            );
        }
    }
}
