//! The safe Rust side of a plugin: the [`Plugin`] trait and the borrowed and
//! owned handles it works with.

use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{offset_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::export::panic_message;
use crate::ffi;
use crate::stream::{ffi_headers, Stream, StreamError, StreamFns};

/// A request handler living in a dynamic library loaded by `spikard-host`.
///
/// Implement this and export it with [`export_plugin!`](crate::export_plugin).
/// All methods are called behind `catch_unwind`: a panic in `handle` turns
/// into a 500 for that request (through the dropped [`Responder`]), a panic
/// in `init` or `bind_route` into a start-up error.
///
/// # Threading
/// `init`, `bind_route` and `shutdown` are called from one thread, never
/// concurrently. `handle`, `cancel` and `cancel_token` are called
/// concurrently from the host's worker threads and must not block: hand slow
/// work to another thread and answer through the [`Responder`] (or write its
/// [`Stream`](crate::Stream)) when it is done.
///
/// # Host versions
/// The SDK declares ABI 1.1 and loads into every 1.x host. On a 1.0 host the
/// 1.1 features report it instead of failing: [`Request`]'s 1.1 properties are
/// `None`, [`Responder::set_cancel_token`] and [`Responder::start_stream`]
/// return a `NotSupported` error, and [`Responder::can_stream`] is false.
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
///         let _ = responder.respond(200, &[("content-type", "text/plain")], b"hello");
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

    /// Like [`cancel`](Plugin::cancel), for a request given a token with
    /// [`Responder::set_cancel_token`]: the host calls this instead of `cancel`
    /// for it (ABI 1.1), so the plugin finds its work by its own key (an
    /// index, a slot) rather than by the request id string. For a stream it
    /// means the client left or the server is stopping: stop writing. Does
    /// nothing by default; a plugin that sets tokens implements it.
    fn cancel_token(&self, _token: u64) {}

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
    /// The host's request, copied up to its `struct_size`: fields a 1.0 host did not
    /// write are zero (empty strings).
    raw: ffi::Request,
    _borrowed: PhantomData<&'a ffi::Request>,
}

impl<'a> Request<'a> {
    /// Wraps a raw request that has every field of this SDK's [`ffi::Request`].
    ///
    /// # Safety
    /// `raw` must be a whole `ffi::Request` of this SDK's size (not a smaller one
    /// from an older writer: use [`Request::from_ptr`] for those), and every
    /// pointer in it valid for `'a`, as the host guarantees for `handle`.
    pub unsafe fn from_raw(raw: &'a ffi::Request) -> Self {
        Request {
            raw: *raw,
            _borrowed: PhantomData,
        }
    }

    /// Reads a request written by any 1.x host: `None` when `ptr` is null or its
    /// `struct_size` is below ABI 1.0's. Fields past the writer's size read as absent.
    ///
    /// # Safety
    /// `ptr` must point to `struct_size` readable bytes (as the host's `struct_size`
    /// field says), with every pointer in it valid for `'a`.
    pub unsafe fn from_ptr(ptr: *const ffi::Request) -> Option<Self> {
        if ptr.is_null() {
            return None;
        }
        // SAFETY: the first field of every 1.x request; no reference to the whole struct.
        let size = unsafe { std::ptr::addr_of!((*ptr).struct_size).read_unaligned() };
        if size < ffi::min_size::REQUEST {
            return None;
        }
        Some(Request {
            // SAFETY: `size` readable bytes, at least the 1.0 prefix; the 1.1 fields are
            // strings and an integer, for which zero is valid.
            raw: unsafe { ffi::read_prefix(ptr, size) },
            _borrowed: PhantomData,
        })
    }

    fn str(&self, s: ffi::Str) -> &'a str {
        // SAFETY: valid for 'a per `from_raw`; the host only passes UTF-8,
        // and a broken host gets an empty string rather than UB.
        std::str::from_utf8(unsafe { s.as_bytes() }).unwrap_or("")
    }

    /// A 1.1 string property: `None` when empty (a 1.0 host, or unknown).
    fn property(&self, s: ffi::Str) -> Option<&'a str> {
        Some(self.str(s)).filter(|s| !s.is_empty())
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
    /// The request body; empty when the route streams it
    /// ([`body_streamed`](Request::body_streamed)).
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

    /// The client's address, `ip:port` (`[ip6]:port`), for logs and per-client
    /// decisions (the peer of the TCP connection: a proxy's address when behind one).
    /// `None` on a 1.0 host or when the host does not know it.
    pub fn client_addr(&self) -> Option<&'a str> {
        self.property(self.raw.client_addr)
    }
    /// The local address the connection was accepted on, `ip:port`, e.g. to tell
    /// listeners apart. `None` on a 1.0 host or when unknown.
    pub fn local_addr(&self) -> Option<&'a str> {
        self.property(self.raw.local_addr)
    }
    /// The scheme the host served the request with (`"http"`; a TLS-terminating proxy in
    /// front is not seen), for building absolute URLs. `None` on a 1.0 host.
    pub fn scheme(&self) -> Option<&'a str> {
        self.property(self.raw.scheme)
    }
    /// The protocol version, `"HTTP/1.1"` or `"HTTP/1.0"`, e.g. to avoid streaming
    /// to a 1.0 client. `None` on a 1.0 host.
    pub fn http_version(&self) -> Option<&'a str> {
        self.property(self.raw.http_version)
    }
    /// The matched route's template, e.g. `/items/{id}`, a low-cardinality label for
    /// metrics and logs. `None` on a 1.0 host.
    pub fn route(&self) -> Option<&'a str> {
        self.property(self.raw.route)
    }
    /// The time left, when `handle` was called, before the host gives up on the answer
    /// (504), so slow work can stop in time. It runs until a response or a stream's head
    /// is sent; a streamed body has no timeout. `None` on a 1.0 host.
    pub fn timeout(&self) -> Option<Duration> {
        let end = offset_of!(ffi::Request, timeout_ms) + size_of::<u64>();
        (self.raw.struct_size >= end).then(|| Duration::from_millis(self.raw.timeout_ms))
    }
    /// Whether the route streams its request body (`stream_body`, ABI 1.1): then
    /// [`body`](Request::body) is empty and the plugin reads the body itself, chunk by chunk,
    /// with [`Responder::read_body`] or [`Responder::body_next`], so a large upload never
    /// has to fit in memory. Always false on a 1.0 host.
    pub fn body_streamed(&self) -> bool {
        self.raw.flags & ffi::request_flags::BODY_STREAMED != 0
    }
}

/// The answer slot of one request: answer it once with
/// [`respond`](Responder::respond) or [`respond_error`](Responder::respond_error),
/// or turn it into a [`Stream`] with [`start_stream`](Responder::start_stream).
/// Dropping it unanswered (including by a panic) answers 500, so a request is
/// never left hanging.
///
/// `Send`: move it to another thread to answer later.
pub struct Responder {
    pub(crate) api: &'static ffi::HostApi,
    pub(crate) raw: *mut ffi::ResponderHandle,
}

// SAFETY: the host documents `respond`/`respond_error` as callable from any
// thread, once; ownership of `raw` moves with the value.
unsafe impl Send for Responder {}

impl fmt::Debug for Responder {
    /// Opaque: a responder is a handle the host checks. Lets results that carry one (a
    /// refused [`Responder::read_body`]) be unwrapped and printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

/// The host refused a response (e.g. an invalid header); the client got a 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the host refused the response; the client got a 500")
    }
}

impl std::error::Error for Refused {}

/// Why [`Responder::set_cancel_token`] did not set the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelTokenError {
    /// The host speaks ABI 1.0: cancellations come to [`Plugin::cancel`] by request id.
    NotSupported,
    /// The host refused it: the request is already over (client gone, server stopping),
    /// so no cancellation will follow.
    Closed,
}

impl fmt::Display for CancelTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CancelTokenError::NotSupported => {
                "cancel tokens are not supported by this host (ABI 1.0); cancel comes by request id"
            }
            CancelTokenError::Closed => "the request is already over",
        })
    }
}

impl std::error::Error for CancelTokenError {}

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
        self.send(status, headers, ffi::Bytes::new(body), None)
    }

    /// Answers like [`respond`](Responder::respond), but hands `body` itself to the host
    /// instead of having it copied (ABI 1.1): the host sends the bytes straight from it and
    /// drops it, exactly once, when it is done with them — after the body is written, or
    /// at once when the response is refused (an invalid header or status, a second answer,
    /// a request already over). For large bodies (a `Vec<u8>` built for the answer, a
    /// `bytes::Bytes`, a memory map, a Python `bytes` object) this saves a copy of every
    /// byte.
    ///
    /// `body` is dropped on any thread, possibly before this returns, possibly on a host
    /// thread after: its `Drop` must not block (hand heavy clean-up to your own thread),
    /// and `as_ref` must give the same bytes for as long as it lives (it is called once).
    /// On a 1.0 host, which copies, the body is dropped when this returns.
    pub fn respond_owned<B>(
        self,
        status: u16,
        headers: &[(&str, &str)],
        body: B,
    ) -> Result<(), Refused>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        if !takes_owned_bodies(self.api) {
            return self.respond(status, headers, body.as_ref());
        }
        // Boxed first, so the bytes are borrowed from where they stay until the release.
        let owned = Box::into_raw(Box::new(body));
        // SAFETY: just allocated; only the release takes the box back.
        let bytes = ffi::Bytes::new(unsafe { (*owned).as_ref() });
        let release = Release {
            release: release_box::<B>,
            data: owned.cast(),
        };
        self.send(status, headers, bytes, Some(release))
    }

    /// Sends a whole response: `body` borrowed for the call, or with `release`, the host's
    /// to release once.
    fn send(
        self,
        status: u16,
        headers: &[(&str, &str)],
        body: ffi::Bytes,
        release: Option<Release>,
    ) -> Result<(), Refused> {
        let headers = ffi_headers(headers);
        let response = ffi::Response {
            struct_size: std::mem::size_of::<ffi::Response>(),
            status,
            headers: headers.as_ptr(),
            headers_len: headers.len(),
            body,
            release: release.as_ref().map(|r| r.release),
            release_data: release.map_or(std::ptr::null_mut(), |r| r.data),
        };
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: consumed exactly once (ManuallyDrop skips the Drop answer); a 1.1 host
        // calls `release` once whatever it answers.
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

    /// Gives this request a token of the plugin's choosing (e.g. a key into its own
    /// table): a cancellation then calls [`Plugin::cancel_token`] with it instead of
    /// [`Plugin::cancel`] with the request id. Set it before handing the work off, so a
    /// cancellation cannot miss it.
    pub fn set_cancel_token(&self, token: u64) -> Result<(), CancelTokenError> {
        let set = self
            .api
            .set_cancel_token
            .ok_or(CancelTokenError::NotSupported)?;
        // SAFETY: an unanswered responder of this host.
        match unsafe { set(self.raw, token) } {
            ffi::OK => Ok(()),
            _ => Err(CancelTokenError::Closed),
        }
    }

    /// Whether the host can stream a response (ABI 1.1): check it before
    /// [`start_stream`](Responder::start_stream) to answer a 1.0 host with
    /// [`respond`](Responder::respond) instead.
    pub fn can_stream(&self) -> bool {
        StreamFns::of(self.api).is_some()
    }

    /// Sends the head (`status`, `headers`; no `content-length`: the body is chunked) and
    /// returns the [`Stream`] to write the body to, from any thread.
    ///
    /// Errors: [`StreamError::NotSupported`] on a 1.0 host, which then gets a 500 problem
    /// saying so (check [`can_stream`](Responder::can_stream) first to fall back);
    /// [`StreamError::Closed`] when the request is already over;
    /// [`StreamError::Misuse`] when the host refused the head (not an HTTP status, a
    /// status without a body such as 1xx, 204 or 304, an invalid header): as with
    /// [`respond`](Responder::respond), the client got a 500 and the reason is in the
    /// host's log. `content-length` and `transfer-encoding` headers are dropped: the host
    /// frames the body.
    pub fn start_stream(
        self,
        status: u16,
        headers: &[(&str, &str)],
    ) -> Result<Stream, StreamError> {
        let Some((start, fns)) = StreamFns::of(self.api) else {
            let _ = self.respond_error(
                500,
                "this handler streams its response, which needs a host with plugin ABI 1.1",
                &[],
            );
            return Err(StreamError::NotSupported);
        };
        let headers = ffi_headers(headers);
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: consumed exactly once (the stream or the host's answer owns it now);
        // everything borrowed for the call.
        let rc = unsafe { start(this.raw, status, headers.as_ptr(), headers.len()) };
        if rc == ffi::OK {
            Ok(Stream::started(fns, this.raw))
        } else {
            Err(StreamError::from_code(rc))
        }
    }
}

/// A body handed to the host with [`Responder::respond_owned`]: the host's to release.
struct Release {
    release: ffi::ReleaseFn,
    data: *mut c_void,
}

/// Whether the host releases plugin-owned response bodies (`spk_response.release`): every
/// 1.1 host does, and only a 1.1 or later host writes a host API table larger than 1.0's.
/// A 1.0 host ignores the field, copies the body and never calls it.
fn takes_owned_bodies(api: &ffi::HostApi) -> bool {
    api.struct_size > ffi::min_size::HOST_API
}

/// The `release` of [`Responder::respond_owned`]: drops the boxed body. A panic in its
/// `Drop` is caught and logged: it must not unwind into the host.
unsafe extern "C" fn release_box<B>(data: *mut c_void) {
    // SAFETY: `data` is the `Box<B>` leaked by `respond_owned`; the host calls this once.
    let body = unsafe { Box::from_raw(data.cast::<B>()) };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(body))) {
        tracing::error!(
            "dropping a response body handed to the host panicked: {}",
            panic_message(payload.as_ref())
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request as a host of `struct_size` bytes wrote it, with every 1.1 property set
    /// in memory (a 1.0 writer's bytes past its size must never be read).
    fn raw(struct_size: usize) -> ffi::Request {
        let s = ffi::Str::new;
        ffi::Request {
            struct_size,
            handler_id: 3,
            request_id: s("rid"),
            method: s("GET"),
            path: s("/items/1"),
            query: s(""),
            headers: std::ptr::null(),
            headers_len: 0,
            params_json: s("{}"),
            body: ffi::Bytes::EMPTY,
            client_addr: s("127.0.0.1:5000"),
            local_addr: s("127.0.0.1:8000"),
            scheme: s("http"),
            http_version: s("HTTP/1.1"),
            route: s("/items/{id}"),
            timeout_ms: 1500,
            flags: 0,
        }
    }

    #[test]
    fn a_1_1_request_has_its_properties() {
        let raw = raw(size_of::<ffi::Request>());
        // SAFETY: a whole request whose strings are 'static.
        let r = unsafe { Request::from_ptr(&raw) }.unwrap();
        assert_eq!(r.client_addr(), Some("127.0.0.1:5000"));
        assert_eq!(r.local_addr(), Some("127.0.0.1:8000"));
        assert_eq!(r.scheme(), Some("http"));
        assert_eq!(r.http_version(), Some("HTTP/1.1"));
        assert_eq!(r.route(), Some("/items/{id}"));
        assert_eq!(r.timeout(), Some(Duration::from_millis(1500)));
        assert_eq!((r.handler_id(), r.path()), (3, "/items/1"));
    }

    #[test]
    fn a_1_0_request_reads_as_absent_past_its_size() {
        let raw = raw(ffi::min_size::REQUEST);
        // SAFETY: as above; only the 1.0 prefix is read.
        let r = unsafe { Request::from_ptr(&raw) }.unwrap();
        assert_eq!(r.request_id(), "rid");
        assert_eq!(r.client_addr(), None);
        assert_eq!(r.local_addr(), None);
        assert_eq!(r.scheme(), None);
        assert_eq!(r.http_version(), None);
        assert_eq!(r.route(), None);
        assert_eq!(r.timeout(), None);
    }

    mod owned_bodies {
        //! `respond_owned` against stand-in host tables: what the host is given, and when the
        //! body is dropped, on a 1.1 host (when the host releases it) and on a 1.0 one.

        use std::cell::RefCell;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use super::*;

        /// A body that counts its drops.
        struct Counted(Vec<u8>, &'static AtomicUsize);

        impl AsRef<[u8]> for Counted {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl Drop for Counted {
            fn drop(&mut self) {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
        }

        thread_local! {
            /// What the stand-in `respond` was given: the response, and the body's bytes
            /// as read during the call.
            static SEEN: RefCell<Option<(ffi::Response, Vec<u8>)>> = const { RefCell::new(None) };
        }

        fn record(response: *const ffi::Response) -> ffi::Response {
            // SAFETY: the SDK's response, whole, valid for the call.
            let response = unsafe { *response };
            // SAFETY: borrowed for the call.
            let bytes = unsafe { response.body.as_slice() }.to_vec();
            SEEN.with(|seen| *seen.borrow_mut() = Some((response, bytes)));
            response
        }

        /// A host that takes the answer (and keeps the body to release later).
        unsafe extern "C" fn keep(_: *mut ffi::ResponderHandle, r: *const ffi::Response) -> i32 {
            record(r);
            ffi::OK
        }

        /// A host that refuses the answer, releasing the body before returning.
        unsafe extern "C" fn refuse(_: *mut ffi::ResponderHandle, r: *const ffi::Response) -> i32 {
            let response = record(r);
            if let Some(release) = response.release {
                // SAFETY: released once, as the host does.
                unsafe { release(response.release_data) };
            }
            ffi::ERR
        }

        unsafe extern "C" fn log(_: *mut ffi::HostHandle, _: u32, _: ffi::Str, _: ffi::Str) {}
        unsafe extern "C" fn log_enabled(_: *mut ffi::HostHandle, _: u32, _: ffi::Str) -> i32 {
            0
        }
        unsafe extern "C" fn register_route(
            _: *mut ffi::HostHandle,
            _: *const ffi::RouteDecl,
        ) -> i32 {
            ffi::ERR
        }
        unsafe extern "C" fn respond_error(
            _: *mut ffi::ResponderHandle,
            _: u16,
            _: ffi::Str,
            _: *const ffi::Header,
            _: usize,
        ) -> i32 {
            ffi::ERR
        }
        unsafe extern "C" fn set_error(_: *mut ffi::ErrorHandle, _: ffi::Str) {}
        unsafe extern "C" fn config_dir(_: *mut ffi::HostHandle) -> ffi::Str {
            ffi::Str::EMPTY
        }

        /// A host table of `struct_size` bytes answering with `respond`.
        fn host(struct_size: usize, respond: ffi::RespondFn) -> &'static ffi::HostApi {
            Box::leak(Box::new(ffi::HostApi {
                struct_size,
                abi_major: 1,
                abi_minor: u32::from(struct_size > ffi::min_size::HOST_API),
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
                body_next: None,
            }))
        }

        fn responder(api: &'static ffi::HostApi) -> Responder {
            // SAFETY: the stand-in host never dereferences the handle.
            unsafe { Responder::from_raw(api, std::ptr::dangling_mut()) }
        }

        fn seen() -> (ffi::Response, Vec<u8>) {
            SEEN.with(|seen| seen.borrow_mut().take())
                .expect("respond was called")
        }

        #[test]
        fn a_1_1_host_gets_the_buffer_itself_and_its_release_drops_it_once() {
            let drops: &'static AtomicUsize = Box::leak(Box::default());
            let body = Counted(b"zero copy".to_vec(), drops);
            let at = body.0.as_ptr();
            let api = host(size_of::<ffi::HostApi>(), keep);
            assert_eq!(responder(api).respond_owned(200, &[], body), Ok(()));
            let (response, bytes) = seen();
            assert_eq!(
                (response.body.ptr, response.body.len),
                (at, 9),
                "not copied"
            );
            assert_eq!(bytes, b"zero copy");
            assert_eq!(drops.load(Ordering::SeqCst), 0, "the host still holds it");
            let release = response.release.expect("a release");
            // SAFETY: the host's one release.
            unsafe { release(response.release_data) };
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        }

        #[test]
        fn a_refused_answer_is_released_by_the_host_not_the_sdk() {
            let drops: &'static AtomicUsize = Box::leak(Box::default());
            let api = host(size_of::<ffi::HostApi>(), refuse);
            let body = Counted(b"no".to_vec(), drops);
            assert_eq!(responder(api).respond_owned(200, &[], body), Err(Refused));
            assert_eq!(
                drops.load(Ordering::SeqCst),
                1,
                "dropped once, by the release"
            );
        }

        #[test]
        fn a_1_0_host_copies_and_the_body_is_dropped_when_respond_owned_returns() {
            let drops: &'static AtomicUsize = Box::leak(Box::default());
            let api = host(ffi::min_size::HOST_API, keep);
            let body = Counted(b"copied".to_vec(), drops);
            assert_eq!(responder(api).respond_owned(200, &[], body), Ok(()));
            let (response, bytes) = seen();
            assert!(response.release.is_none(), "a 1.0 host would never call it");
            assert_eq!(bytes, b"copied", "readable during the call");
            assert_eq!(drops.load(Ordering::SeqCst), 1);
        }

        #[test]
        fn respond_still_borrows() {
            let api = host(size_of::<ffi::HostApi>(), keep);
            assert_eq!(responder(api).respond(204, &[], b""), Ok(()));
            let (response, _) = seen();
            assert!(response.release.is_none() && response.release_data.is_null());
        }
    }

    #[test]
    fn a_request_smaller_than_1_0_or_null_is_refused() {
        let raw = raw(ffi::min_size::REQUEST - 8);
        // SAFETY: a readable struct; refused by its size before anything else is read.
        assert!(unsafe { Request::from_ptr(&raw) }.is_none());
        // SAFETY: null is checked first.
        assert!(unsafe { Request::from_ptr(std::ptr::null()) }.is_none());
    }
}
