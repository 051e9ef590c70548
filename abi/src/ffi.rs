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
pub const ABI_MINOR: u32 = 0;
/// The entry symbol of a v1 plugin, NUL-terminated for `dlsym`.
pub const ENTRY_SYMBOL_V1: &[u8] = b"spikard_plugin_v1\0";

/// Return code of a call that succeeded.
pub const OK: i32 = 0;
/// Return code of a call that failed; details went to the error out-parameter.
pub const ERR: i32 = 1;

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
#[derive(Debug)]
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
}

/// A response, borrowed for the duration of `respond` (`spk_response`).
#[repr(C)]
#[derive(Debug)]
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
}

/// A route a plugin declares during `init` (`spk_route_decl`).
#[repr(C)]
#[derive(Debug)]
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
#[derive(Debug)]
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

/// Functions the host offers a plugin (`spk_host_api`), valid for the
/// process. Every pointer is non-null in a table the host hands out.
#[repr(C)]
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

/// The functions a plugin provides (`spk_plugin_vtable`). The host
/// treats a null required pointer as an invalid plugin.
#[repr(C)]
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
}

/// The static declaration returned by `spikard_plugin_v1` (`spk_plugin_decl`).
#[repr(C)]
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
pub mod min_size {
    use super::*;
    /// [`PluginDecl`] in v1.0.
    pub const PLUGIN_DECL: usize = std::mem::size_of::<PluginDecl>();
    /// [`PluginVTable`] in v1.0.
    pub const PLUGIN_VTABLE: usize = std::mem::size_of::<PluginVTable>();
    /// [`HostApi`] in v1.0.
    pub const HOST_API: usize = std::mem::size_of::<HostApi>();
    /// [`Request`] in v1.0.
    pub const REQUEST: usize = std::mem::size_of::<Request>();
    /// [`Response`] in v1.0.
    pub const RESPONSE: usize = std::mem::size_of::<Response>();
    /// [`RouteDecl`] in v1.0.
    pub const ROUTE_DECL: usize = std::mem::size_of::<RouteDecl>();
    /// [`RouteBinding`] in v1.0.
    pub const ROUTE_BINDING: usize = std::mem::size_of::<RouteBinding>();
}

// Freeze the v1.0 layout on 64-bit targets: changing any of these is a
// breaking change and needs ABI v2. The C compiler check lives in
// tests/tests/c_plugin.rs.
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Str>() == 16);
    assert!(size_of::<Header>() == 32);
    assert!(size_of::<Request>() == 128);
    assert!(offset_of!(Request, handler_id) == 8);
    assert!(offset_of!(Request, request_id) == 16);
    assert!(offset_of!(Request, headers) == 80);
    assert!(offset_of!(Request, params_json) == 96);
    assert!(offset_of!(Request, body) == 112);
    assert!(size_of::<Response>() == 48);
    assert!(offset_of!(Response, status) == 8);
    assert!(offset_of!(Response, body) == 32);
    assert!(size_of::<RouteDecl>() == 64);
    assert!(size_of::<RouteBinding>() == 72);
    assert!(size_of::<HostApi>() == 72);
    assert!(size_of::<PluginVTable>() == 48);
    assert!(size_of::<PluginDecl>() == 64);
    assert!(offset_of!(PluginDecl, vtable) == 56);
};
