//! The raw `repr(C)` types of ABI v1, field for field the structs of
//! `include/spikard_plugin.h`.
//!
//! Both sides of the boundary use these: the host to read plugin
//! declarations and build requests, the export glue in [`crate::export`] to
//! implement a plugin. Plugin authors normally never touch them; they
//! implement [`crate::Plugin`] instead.
//!
//! Sizes and offsets are frozen for v1.0 by the assertions at the bottom of
//! this file and checked against a C compiler by the cross-crate tests.

use std::ffi::c_void;
use std::marker::PhantomData;

/// `"SPKRDPLG"` read as a little-endian `u64`: the first field of every
/// declaration, so the host can tell a plugin from any other library that
/// happens to export the symbol name.
pub const MAGIC: u64 = 0x474C_5044_524B_5053;
/// Breaking changes bump this and get a new entry symbol.
pub const ABI_MAJOR: u32 = 1;
/// Appending fields bumps this; older readers ignore what they do not know.
/// 1.1 appended request properties to [`Request`], the cancel token and
/// streaming functions to [`HostApi`] and `cancel_token` to [`PluginVTable`].
pub const ABI_MINOR: u32 = 1;
/// The entry symbol of a v1 plugin, NUL-terminated for `dlsym`.
pub const ENTRY_SYMBOL_V1: &[u8] = b"spikard_plugin_v1\0";

/// Return code of a call that succeeded.
pub const OK: i32 = 0;
/// Return code of a call that failed; details went to the error out-parameter.
pub const ERR: i32 = 1;
/// 1.1: `stream_write` did not take the chunk: the stream holds as much as it may; wait
/// for the `stream_on_ready` callback and write it again.
pub const FULL: i32 = 2;
/// 1.1: the request is over (the client left, it timed out, the server is stopping):
/// stop writing; the responder is no longer valid.
pub const CLOSED: i32 = 3;

/// Log levels, most severe first, as in `SPK_LOG_*`.
pub mod level {
    /// Something failed.
    pub const ERROR: u32 = 1;
    /// Something looks wrong.
    pub const WARN: u32 = 2;
    /// Normal operation worth telling an operator.
    pub const INFO: u32 = 3;
    /// Detail for the one debugging.
    pub const DEBUG: u32 = 4;
    /// Everything.
    pub const TRACE: u32 = 5;
}

/// A borrowed UTF-8 string (`spk_str`): pointer and length, no NUL.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Str {
    /// First byte, or null for the empty string.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl Str {
    /// The empty string, `{NULL, 0}`.
    pub const EMPTY: Str = Str {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// Borrows a Rust string for the duration of a call.
    pub const fn new(s: &str) -> Str {
        Str {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The bytes behind the pointer.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive `'a` (or be
    /// null with any length treated as empty).
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    /// The string behind the pointer, with invalid UTF-8 replaced so a
    /// misbehaving peer can never cause undefined behaviour.
    ///
    /// # Safety
    /// As for [`Str::as_bytes`].
    pub unsafe fn to_str_lossy<'a>(self) -> std::borrow::Cow<'a, str> {
        // SAFETY: forwarded to the caller.
        String::from_utf8_lossy(unsafe { self.as_bytes() })
    }
}

/// A borrowed byte buffer (`spk_bytes`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Bytes {
    /// First byte, or null when empty.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl Bytes {
    /// No bytes.
    pub const EMPTY: Bytes = Bytes {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// Borrows a slice for the duration of a call.
    pub const fn new(b: &[u8]) -> Bytes {
        Bytes {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }

    /// The bytes behind the pointer.
    ///
    /// # Safety
    /// As for [`Str::as_bytes`].
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        // SAFETY: same contract as `Str`.
        unsafe {
            Str {
                ptr: self.ptr,
                len: self.len,
            }
            .as_bytes()
        }
    }
}

/// One header (`spk_header`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Header name; lower-case in requests.
    pub name: Str,
    /// Header value.
    pub value: Str,
}

/// Opaque per-plugin host object (`spk_host`), valid for the process.
#[repr(C)]
pub struct HostHandle {
    _private: [u8; 0],
    _not_send: PhantomData<*mut u8>,
}

/// Opaque per-request answer slot (`spk_responder`), consumed by `respond`.
#[repr(C)]
pub struct ResponderHandle {
    _private: [u8; 0],
    _not_send: PhantomData<*mut u8>,
}

/// Opaque error out-parameter (`spk_error`).
#[repr(C)]
pub struct ErrorHandle {
    _private: [u8; 0],
    _not_send: PhantomData<*mut u8>,
}

/// A request, borrowed for the duration of `handle` (`spk_request`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// `size_of::<Request>()` of the writer.
    pub struct_size: usize,
    /// The id the plugin chose when the route was bound or registered.
    pub handler_id: u64,
    /// Unique per request; echoed in the `x-request-id` response header.
    pub request_id: Str,
    /// The HTTP method.
    pub method: Str,
    /// The percent-encoded path, without the query.
    pub path: Str,
    /// The raw query string without `?`.
    pub query: Str,
    /// Request headers, names lower-case.
    pub headers: *const Header,
    /// Number of headers.
    pub headers_len: usize,
    /// Validated, coerced parameters as a JSON object.
    pub params_json: Str,
    /// The request body.
    pub body: Bytes,
    // --- 1.1 (read only when `struct_size` covers them) ---
    /// The client's address, `ip:port` (`[ip6]:port`); empty when unknown.
    pub client_addr: Str,
    /// The address the connection was accepted on, `ip:port`; empty when unknown.
    pub local_addr: Str,
    /// `"http"` or `"https"` (as the host serves it; a proxy's TLS is not seen here).
    pub scheme: Str,
    /// `"HTTP/1.1"`, `"HTTP/1.0"`, ...
    pub http_version: Str,
    /// The matched route's template, e.g. `/items/{id}`.
    pub route: Str,
    /// Milliseconds left, at the call, before the host gives up on the answer (504).
    pub timeout_ms: u64,
    /// Bit flags about the request ([`request_flags`]).
    pub flags: u64,
}

/// Bits of [`Request::flags`] (1.1).
pub mod request_flags {
    /// The body is not in `body`: the route streams its request body, read it with the host
    /// API's `body_next`.
    pub const BODY_STREAMED: u64 = 1;
}

/// A response, borrowed for the duration of `respond` (`spk_response`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Response {
    /// `size_of::<Response>()` of the writer.
    pub struct_size: usize,
    /// HTTP status code, 100..=999.
    pub status: u16,
    /// Response headers.
    pub headers: *const Header,
    /// Number of headers.
    pub headers_len: usize,
    /// Response body.
    pub body: Bytes,
    // --- 1.1 ---
    /// Optional: the body buffer stays the plugin's and is not copied; the host calls
    /// `release(release_data)` exactly once, from any thread, when it no longer needs it
    /// (also when `respond` fails). Without it the host copies `body` during `respond`.
    pub release: Option<ReleaseFn>,
    /// Passed to `release`.
    pub release_data: *mut c_void,
}

/// A callback the host calls once with the plugin's pointer, to give back a buffer (1.1).
pub type ReleaseFn = unsafe extern "C" fn(*mut c_void);

/// A route a plugin declares during `init` (`spk_route_decl`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RouteDecl {
    /// `size_of::<RouteDecl>()` of the writer.
    pub struct_size: usize,
    /// HTTP method.
    pub method: Str,
    /// Path template with `{name}` segments.
    pub path: Str,
    /// Passed back in [`Request::handler_id`].
    pub handler_id: u64,
    /// JSON object of schemas (`path`, `query`, `headers`, `cookies`,
    /// `body`, `response`), or empty.
    pub schema_json: Str,
}

/// A config route offered to the plugin (`spk_route_binding`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RouteBinding {
    /// `size_of::<RouteBinding>()` of the writer.
    pub struct_size: usize,
    /// HTTP method.
    pub method: Str,
    /// Path template.
    pub path: Str,
    /// The route's `handler` field.
    pub handler: Str,
    /// The route's `settings` table as JSON.
    pub settings_json: Str,
}

/// `log` in [`HostApi`].
pub type LogFn = unsafe extern "C" fn(*mut HostHandle, u32, Str, Str);
/// `log_enabled` in [`HostApi`].
pub type LogEnabledFn = unsafe extern "C" fn(*mut HostHandle, u32, Str) -> i32;
/// `register_route` in [`HostApi`].
pub type RegisterRouteFn = unsafe extern "C" fn(*mut HostHandle, *const RouteDecl) -> i32;
/// `respond` in [`HostApi`].
pub type RespondFn = unsafe extern "C" fn(*mut ResponderHandle, *const Response) -> i32;
/// `respond_error` in [`HostApi`].
pub type RespondErrorFn =
    unsafe extern "C" fn(*mut ResponderHandle, u16, Str, *const Header, usize) -> i32;
/// `set_error` in [`HostApi`].
pub type SetErrorFn = unsafe extern "C" fn(*mut ErrorHandle, Str);
/// `config_dir` in [`HostApi`].
pub type ConfigDirFn = unsafe extern "C" fn(*mut HostHandle) -> Str;
/// `set_cancel_token` (1.1).
pub type SetCancelTokenFn = unsafe extern "C" fn(*mut ResponderHandle, u64) -> i32;
/// `stream_start` (1.1).
pub type StreamStartFn =
    unsafe extern "C" fn(*mut ResponderHandle, u16, *const Header, usize) -> i32;
/// `stream_write` (1.1).
pub type StreamWriteFn = unsafe extern "C" fn(*mut ResponderHandle, Bytes) -> i32;
/// A callback the host calls once with the pointer the plugin gave (1.1).
pub type ReadyFn = unsafe extern "C" fn(*mut c_void);
/// `stream_on_ready` (1.1).
/// `ready` is an `Option` because C may pass NULL; the host refuses that with `ERR`.
pub type StreamOnReadyFn =
    unsafe extern "C" fn(*mut ResponderHandle, Option<ReadyFn>, *mut c_void) -> i32;
/// `on_chunk(user, chunk, status)` of `body_next` (1.1): `status` is `OK` with a chunk
/// (borrowed for the call), `CLOSED` at the end of the body (empty chunk), or `ERR` when
/// the body failed (too large — the host answers 413 itself —, timed out, client gone).
pub type BodyChunkFn = unsafe extern "C" fn(*mut c_void, Bytes, i32);
/// `body_next` (1.1).
pub type BodyNextFn =
    unsafe extern "C" fn(*mut ResponderHandle, Option<BodyChunkFn>, *mut c_void) -> i32;
/// `stream_end` (1.1).
pub type StreamEndFn = unsafe extern "C" fn(*mut ResponderHandle, *const Header, usize) -> i32;

/// Functions the host offers a plugin (`spk_host_api`), valid for the
/// process. Every pointer is non-null in a table the host hands out.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HostApi {
    /// `size_of::<HostApi>()` of the host.
    pub struct_size: usize,
    /// The host's ABI major version.
    pub abi_major: u32,
    /// The host's ABI minor version.
    pub abi_minor: u32,
    /// Forward a log record.
    pub log: LogFn,
    /// Would a record at this level and target be kept?
    pub log_enabled: LogEnabledFn,
    /// Declare a route (during `init` only).
    pub register_route: RegisterRouteFn,
    /// Answer a request, once.
    pub respond: RespondFn,
    /// Answer with Problem Details, once.
    pub respond_error: RespondErrorFn,
    /// Fill an error out-parameter.
    pub set_error: SetErrorFn,
    /// The config file's directory, for relative paths in settings.
    pub config_dir: ConfigDirFn,
    // --- 1.1 (present when `struct_size` covers them; `None` otherwise) ---
    /// Gives the request a token of the plugin's choosing, passed back to the vtable's
    /// `cancel_token` instead of the request id to `cancel`.
    pub set_cancel_token: Option<SetCancelTokenFn>,
    /// Starts a streamed response: status and headers now, body chunks with `stream_write`.
    pub stream_start: Option<StreamStartFn>,
    /// Writes one chunk (copied): `OK`, `FULL` (not taken; wait for the ready callback),
    /// `CLOSED` (the request is over) or `ERR`.
    pub stream_write: Option<StreamWriteFn>,
    /// Asks for one call of `ready(user)` when the stream can take a write again or is
    /// closed; made from a host thread, never from inside this call.
    pub stream_on_ready: Option<StreamOnReadyFn>,
    /// Ends the stream, with optional trailers; the responder is invalid afterwards.
    pub stream_end: Option<StreamEndFn>,
    /// Asks for the next chunk of a streamed request body (`flags` has
    /// [`request_flags::BODY_STREAMED`]): the host calls `on_chunk` once, from a host
    /// thread, never inside this call.
    pub body_next: Option<BodyNextFn>,
}

/// `init` in [`PluginVTable`].
pub type InitFn = unsafe extern "C" fn(
    *const HostApi,
    *mut HostHandle,
    Str,
    *mut *mut c_void,
    *mut ErrorHandle,
) -> i32;
/// `bind_route` in [`PluginVTable`].
pub type BindRouteFn =
    unsafe extern "C" fn(*mut c_void, *const RouteBinding, *mut u64, *mut ErrorHandle) -> i32;
/// `handle` in [`PluginVTable`].
pub type HandleFn = unsafe extern "C" fn(*mut c_void, *const Request, *mut ResponderHandle);
/// `cancel` in [`PluginVTable`].
pub type CancelFn = unsafe extern "C" fn(*mut c_void, Str);
/// `shutdown` in [`PluginVTable`].
pub type ShutdownFn = unsafe extern "C" fn(*mut c_void, u64);
/// `cancel_token` (1.1).
pub type CancelTokenFn = unsafe extern "C" fn(*mut c_void, u64);

/// The functions a plugin provides (`spk_plugin_vtable`). The host
/// treats a null required pointer as an invalid plugin.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PluginVTable {
    /// `size_of::<PluginVTable>()` of the plugin.
    pub struct_size: usize,
    /// Create the instance.
    pub init: Option<InitFn>,
    /// Accept a config route.
    pub bind_route: Option<BindRouteFn>,
    /// Handle a request.
    pub handle: Option<HandleFn>,
    /// Optional: advisory cancellation.
    pub cancel: Option<CancelFn>,
    /// Stop.
    pub shutdown: Option<ShutdownFn>,
    // --- 1.1 ---
    /// Optional: cancellation of a request that was given a token with
    /// `set_cancel_token`; called instead of `cancel` for such requests.
    pub cancel_token: Option<CancelTokenFn>,
}

/// The static declaration returned by `spikard_plugin_v1` (`spk_plugin_decl`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PluginDecl {
    /// Always [`MAGIC`].
    pub magic: u64,
    /// The plugin's ABI major version.
    pub abi_major: u32,
    /// The plugin's ABI minor version.
    pub abi_minor: u32,
    /// `size_of::<PluginDecl>()` of the plugin.
    pub struct_size: usize,
    /// Plugin name, for logs and errors.
    pub name: Str,
    /// Plugin version, for logs.
    pub version: Str,
    /// The function table.
    pub vtable: *const PluginVTable,
}

// SAFETY: a declaration is immutable static data pointing at other static
// data (string literals, a static vtable); sharing it between threads is sound.
unsafe impl Sync for PluginDecl {}
// SAFETY: the table holds only function pointers and plain integers.
unsafe impl Sync for HostApi {}

/// The signature of `spikard_plugin_v1`.
pub type EntryV1 = unsafe extern "C" fn() -> *const PluginDecl;

/// The sizes every v1 reader may rely on: a struct smaller than this is
/// invalid. They are the v1.0 sizes and never change; later minors only grow
/// the structs beyond them.
/// The struct sizes of ABI v1.0, frozen: the smallest a reader accepts from any 1.x writer.
/// Computed from verbatim copies of the 1.0 structs in [`v1_0`], so they stay right on every
/// target whatever later minors append.
pub mod min_size {
    use super::v1_0;
    use std::mem::size_of;
    /// `spk_plugin_decl` 1.0.
    pub const PLUGIN_DECL: usize = size_of::<v1_0::PluginDecl>();
    /// `spk_plugin_vtable` 1.0.
    pub const PLUGIN_VTABLE: usize = size_of::<v1_0::PluginVTable>();
    /// `spk_host_api` 1.0.
    pub const HOST_API: usize = size_of::<v1_0::HostApi>();
    /// `spk_request` 1.0.
    pub const REQUEST: usize = size_of::<v1_0::Request>();
    /// `spk_response` 1.0.
    pub const RESPONSE: usize = size_of::<v1_0::Response>();
    /// `spk_route_decl` 1.0.
    pub const ROUTE_DECL: usize = size_of::<v1_0::RouteDecl>();
    /// `spk_route_binding` 1.0.
    pub const ROUTE_BINDING: usize = size_of::<v1_0::RouteBinding>();
}

/// The ABI 1.0 structs exactly as released, never to change: what [`min_size`] measures.
#[allow(dead_code)]
pub mod v1_0 {
    use super::{
        BindRouteFn, Bytes, CancelFn, ConfigDirFn, HandleFn, Header, InitFn, LogEnabledFn, LogFn,
        RegisterRouteFn, RespondErrorFn, RespondFn, SetErrorFn, ShutdownFn, Str,
    };
    /// `spk_request` 1.0.
    #[repr(C)]
    pub struct Request {
        struct_size: usize,
        handler_id: u64,
        request_id: Str,
        method: Str,
        path: Str,
        query: Str,
        headers: *const Header,
        headers_len: usize,
        params_json: Str,
        body: Bytes,
    }
    /// `spk_response` 1.0.
    #[repr(C)]
    pub struct Response {
        struct_size: usize,
        status: u16,
        headers: *const Header,
        headers_len: usize,
        body: Bytes,
    }
    /// `spk_route_decl` 1.0.
    #[repr(C)]
    pub struct RouteDecl {
        struct_size: usize,
        method: Str,
        path: Str,
        handler_id: u64,
        schema_json: Str,
    }
    /// `spk_route_binding` 1.0.
    #[repr(C)]
    pub struct RouteBinding {
        struct_size: usize,
        method: Str,
        path: Str,
        handler: Str,
        settings_json: Str,
    }
    /// `spk_host_api` 1.0.
    #[repr(C)]
    pub struct HostApi {
        struct_size: usize,
        abi_major: u32,
        abi_minor: u32,
        log: LogFn,
        log_enabled: LogEnabledFn,
        register_route: RegisterRouteFn,
        respond: RespondFn,
        respond_error: RespondErrorFn,
        set_error: SetErrorFn,
        config_dir: ConfigDirFn,
    }
    /// `spk_plugin_vtable` 1.0.
    #[repr(C)]
    pub struct PluginVTable {
        struct_size: usize,
        init: Option<InitFn>,
        bind_route: Option<BindRouteFn>,
        handle: Option<HandleFn>,
        cancel: Option<CancelFn>,
        shutdown: Option<ShutdownFn>,
    }
    /// `spk_plugin_decl` 1.0.
    #[repr(C)]
    pub struct PluginDecl {
        magic: u64,
        abi_major: u32,
        abi_minor: u32,
        struct_size: usize,
        name: Str,
        version: Str,
        vtable: *const super::PluginVTable,
    }
}

/// Reads a struct another build wrote, knowing only that it is at least ABI 1.0's size:
/// the writer's first `struct_size` bytes (at most the reader's own size) are copied and
/// every field past them keeps its zero default (`None`, 0, empty). No reference of the
/// reader's type is ever formed over the writer's memory, which may be smaller.
///
/// # Safety
/// `ptr` must point to `struct_size` readable bytes, `struct_size` must be at least the
/// 1.0 size of `T`, and every field of `T` past its 1.0 prefix must accept all-zero bytes
/// (`Option` of a function pointer, integers, [`Str`], [`Bytes`]).
pub unsafe fn read_prefix<T: Copy>(ptr: *const T, struct_size: usize) -> T {
    let mut out = std::mem::MaybeUninit::<T>::zeroed();
    let n = struct_size.min(std::mem::size_of::<T>());
    // SAFETY: `ptr` has `struct_size` ≥ n readable bytes; `out` has size_of::<T>() ≥ n.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), out.as_mut_ptr().cast::<u8>(), n);
        out.assume_init()
    }
}

// Freeze the layouts on 64-bit targets: v1.0's sizes (the frozen copies) and the offsets of
// every field, so a 1.1 field can only ever be appended. The C compiler check lives in
// tests/tests/loading.rs (C plugins built from the current and the frozen 1.0 header).
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Str>() == 16);
    assert!(size_of::<Header>() == 32);
    assert!(min_size::REQUEST == 128);
    assert!(offset_of!(Request, handler_id) == 8);
    assert!(offset_of!(Request, request_id) == 16);
    assert!(offset_of!(Request, headers) == 80);
    assert!(offset_of!(Request, params_json) == 96);
    assert!(offset_of!(Request, body) == 112);
    assert!(offset_of!(Request, client_addr) == 128);
    assert!(offset_of!(Request, timeout_ms) == 208);
    assert!(offset_of!(Request, flags) == 216);
    assert!(size_of::<Request>() == 224);
    assert!(min_size::RESPONSE == 48);
    assert!(offset_of!(Response, release) == 48);
    assert!(size_of::<Response>() == 64);
    assert!(offset_of!(Response, status) == 8);
    assert!(offset_of!(Response, body) == 32);
    assert!(min_size::ROUTE_DECL == 64);
    assert!(size_of::<RouteDecl>() == 64);
    assert!(min_size::ROUTE_BINDING == 72);
    assert!(size_of::<RouteBinding>() == 72);
    assert!(min_size::HOST_API == 72);
    assert!(offset_of!(HostApi, set_cancel_token) == 72);
    assert!(size_of::<HostApi>() == 120);
    assert!(min_size::PLUGIN_VTABLE == 48);
    assert!(offset_of!(PluginVTable, cancel_token) == 48);
    assert!(size_of::<PluginVTable>() == 56);
    assert!(min_size::PLUGIN_DECL == 64);
    assert!(size_of::<PluginDecl>() == 64);
    assert!(offset_of!(PluginDecl, vtable) == 56);
};
