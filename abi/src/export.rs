//! The `extern "C"` glue [`export_plugin!`](crate::export_plugin) wires a
//! [`Plugin`] into: one generic function per vtable entry, each behind
//! `catch_unwind` so no panic ever crosses the boundary.
//!
//! Everything the host wrote (its API table, routes offered, requests) is read
//! with [`ffi::read_prefix`] after checking that its `struct_size` covers ABI
//! 1.0, so any 1.x host works and a field it lacks reads as absent.
//!
//! The instance behind `ctx` is never freed while a call can still reach it:
//! every call passes through a `Gate`, `shutdown` closes the gate, waits
//! for the calls inside to return, and only then drops the plugin. The
//! instance's shell (a few words) stays allocated for the process, so a call
//! that arrives after `shutdown` (a host breaking the contract) is refused
//! instead of reading freed memory.

use std::any::Any;
use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::ffi::{self, ErrorHandle, HostApi, HostHandle, ResponderHandle, Str};
use crate::plugin::{Host, Plugin, Request, Responder, RouteBinding};

/// What `*ctx` points to: the plugin, the API its responders answer through
/// and the gate that keeps the plugin alive while a call is inside it.
struct Instance<P> {
    api: &'static HostApi,
    gate: Gate,
    /// Dropped once, by `shutdown`, after the gate is closed and empty.
    plugin: UnsafeCell<ManuallyDrop<P>>,
}

impl<P: Plugin> Instance<P> {
    /// The instance behind `ctx`.
    ///
    /// # Safety
    /// `ctx` must come from a successful [`init::<P>`]; the shell is never
    /// freed, so the reference is valid for the process.
    unsafe fn from_ctx<'a>(ctx: *mut c_void) -> &'a Self {
        // SAFETY: per the contract.
        unsafe { &*(ctx as *const Instance<P>) }
    }

    /// Runs `f` with the plugin, unless `shutdown` has begun.
    fn with<R>(&self, f: impl FnOnce(&P) -> R) -> Option<R> {
        let _pass = self.gate.enter()?;
        // SAFETY: the plugin is dropped only after the gate is closed and no
        // pass is out, and this pass is out until `f` returns.
        let plugin: &P = unsafe { &*self.plugin.get() };
        Some(f(plugin))
    }
}

/// Counts calls inside the plugin; its top bit says `shutdown` has begun.
struct Gate(AtomicUsize);

const CLOSED: usize = 1 << (usize::BITS - 1);

/// A call inside the plugin; leaving drops it.
struct Pass<'a>(&'a Gate);

impl Gate {
    fn new() -> Self {
        Gate(AtomicUsize::new(0))
    }

    /// Lets a call in, unless the gate is closed.
    fn enter(&self) -> Option<Pass<'_>> {
        let before = self.0.fetch_add(1, Ordering::Acquire);
        if before & CLOSED != 0 {
            self.0.fetch_sub(1, Ordering::Release);
            return None;
        }
        Some(Pass(self))
    }

    /// Closes the gate and waits until every call inside has returned.
    /// Returns false when it was already closed. Calls must not block (the
    /// ABI says so), so the wait is short; it sleeps rather than spins once
    /// it is not.
    fn close(&self) -> bool {
        let before = self.0.fetch_or(CLOSED, Ordering::AcqRel);
        if before & CLOSED != 0 {
            return false;
        }
        let mut waited = 0u32;
        while self.0.load(Ordering::Acquire) != CLOSED {
            waited += 1;
            if waited < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        true
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Release);
    }
}

/// The text of a panic payload, for the error message.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

/// The writer's `struct_size`, the first field of every struct that can grow.
///
/// # Safety
/// `ptr` must be non-null and point to at least one readable `usize`.
unsafe fn struct_size<T>(ptr: *const T) -> usize {
    // SAFETY: per the contract; no reference to the (possibly smaller) struct is formed.
    unsafe { ptr.cast::<usize>().read_unaligned() }
}

/// Copies the host's API table, checked to be a 1.x table of at least ABI 1.0's size,
/// into memory of this SDK's layout that lives for the process (one small allocation per
/// `init`): functions a 1.0 host lacks are `None`. `None` when the table is not usable;
/// no error message can be set then, since `set_error` is in that table.
///
/// # Safety
/// `api` must be null or point to the host's table, `struct_size` bytes long.
unsafe fn read_host_api(api: *const HostApi) -> Option<&'static HostApi> {
    if api.is_null() {
        return None;
    }
    // SAFETY: per the contract.
    let size = unsafe { struct_size(api) };
    if size < ffi::min_size::HOST_API {
        return None;
    }
    // SAFETY: `size` readable bytes, at least the 1.0 prefix; the 1.1 fields are
    // `Option`s of function pointers, for which zero is `None`.
    let table: HostApi = unsafe { ffi::read_prefix(api, size) };
    (table.abi_major == ffi::ABI_MAJOR).then(|| &*Box::leak(Box::new(table)))
}

fn set_error(api: &HostApi, err: *mut ErrorHandle, message: &str) {
    if !err.is_null() {
        // SAFETY: `err` came from the host for this call; the message is borrowed.
        unsafe { (api.set_error)(err, Str::new(message)) }
    }
}

fn utf8<'a>(s: Str, what: &str) -> Result<&'a str, String> {
    // SAFETY: the host passes strings valid for the call.
    std::str::from_utf8(unsafe { s.as_bytes() }).map_err(|_| format!("{what} is not valid UTF-8"))
}

/// `init` of the vtable for plugin `P`.
///
/// # Safety
/// Called by the host as documented in `spikard_plugin.h`.
pub unsafe extern "C" fn init<P: Plugin>(
    api: *const HostApi,
    host: *mut HostHandle,
    settings_json: Str,
    ctx: *mut *mut c_void,
    err: *mut ErrorHandle,
) -> i32 {
    // SAFETY: the host's table, as documented.
    let Some(api) = (unsafe { read_host_api(api) }) else {
        return ffi::ERR;
    };
    if ctx.is_null() {
        set_error(api, err, "init called with a null ctx out-pointer");
        return ffi::ERR;
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        let host = Host { api, handle: host };
        crate::log::install(host);
        let settings = utf8(settings_json, "settings")?;
        P::init(host, settings)
    }));
    match result {
        Ok(Ok(plugin)) => {
            let instance = Box::new(Instance {
                api,
                gate: Gate::new(),
                plugin: UnsafeCell::new(ManuallyDrop::new(plugin)),
            });
            // SAFETY: `ctx` is a valid out-pointer from the host.
            unsafe { *ctx = Box::into_raw(instance).cast() };
            ffi::OK
        }
        Ok(Err(message)) => {
            set_error(api, err, &message);
            ffi::ERR
        }
        Err(payload) => {
            set_error(
                api,
                err,
                &format!("init panicked: {}", panic_message(payload.as_ref())),
            );
            ffi::ERR
        }
    }
}

/// A route binding the host offered, copied with [`ffi::read_prefix`]; `Err` names
/// what is wrong with it.
///
/// # Safety
/// `binding` must be null or point to `struct_size` readable bytes.
unsafe fn read_binding(binding: *const ffi::RouteBinding) -> Result<ffi::RouteBinding, String> {
    if binding.is_null() {
        return Err("bind_route called with a null binding".into());
    }
    // SAFETY: per the contract.
    let size = unsafe { struct_size(binding) };
    if size < ffi::min_size::ROUTE_BINDING {
        return Err(format!(
            "the host's spk_route_binding is {size} bytes, smaller than ABI 1.0's {}",
            ffi::min_size::ROUTE_BINDING
        ));
    }
    // SAFETY: `size` readable bytes, at least the 1.0 prefix.
    Ok(unsafe { ffi::read_prefix(binding, size) })
}

/// `bind_route` of the vtable for plugin `P`.
///
/// # Safety
/// `ctx` must come from a successful [`init::<P>`].
pub unsafe extern "C" fn bind_route<P: Plugin>(
    ctx: *mut c_void,
    binding: *const ffi::RouteBinding,
    handler_id: *mut u64,
    err: *mut ErrorHandle,
) -> i32 {
    // SAFETY: per the contract, `ctx` is our instance.
    let instance = unsafe { Instance::<P>::from_ctx(ctx) };
    if handler_id.is_null() {
        set_error(
            instance.api,
            err,
            "bind_route called with a null handler_id",
        );
        return ffi::ERR;
    }
    // SAFETY: borrowed for the call, `struct_size` bytes.
    let raw = match unsafe { read_binding(binding) } {
        Ok(raw) => raw,
        Err(message) => {
            set_error(instance.api, err, &message);
            return ffi::ERR;
        }
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let binding = RouteBinding {
            method: utf8(raw.method, "method")?,
            path: utf8(raw.path, "path")?,
            handler: utf8(raw.handler, "handler")?,
            settings_json: utf8(raw.settings_json, "settings")?,
        };
        instance
            .with(|plugin| plugin.bind_route(&binding))
            .unwrap_or_else(|| Err("the plugin has been shut down".into()))
    }));
    match result {
        Ok(Ok(id)) => {
            // SAFETY: valid out-pointer from the host.
            unsafe { *handler_id = id };
            ffi::OK
        }
        Ok(Err(message)) => {
            set_error(instance.api, err, &message);
            ffi::ERR
        }
        Err(payload) => {
            let message = format!("bind_route panicked: {}", panic_message(payload.as_ref()));
            set_error(instance.api, err, &message);
            ffi::ERR
        }
    }
}

/// `handle` of the vtable for plugin `P`.
///
/// # Safety
/// `ctx` must come from a successful [`init::<P>`]; `request` and
/// `responder` as documented in `spikard_plugin.h`.
pub unsafe extern "C" fn handle<P: Plugin>(
    ctx: *mut c_void,
    request: *const ffi::Request,
    responder: *mut ResponderHandle,
) {
    // SAFETY: per the contract.
    let instance = unsafe { Instance::<P>::from_ctx(ctx) };
    // SAFETY: an unanswered responder of this host; we own it now.
    let responder = unsafe { Responder::from_raw(instance.api, responder) };
    // SAFETY: valid for the call, `struct_size` bytes.
    let Some(request) = (unsafe { Request::from_ptr(request) }) else {
        tracing::error!("handle called with a null request or one smaller than ABI 1.0's");
        drop(responder); // answers 500
        return;
    };
    // A panic drops the responder while unwinding, which answers 500.
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut responder = Some(responder);
        let served = instance.with(|plugin| {
            if let Some(responder) = responder.take() {
                plugin.handle(&request, responder);
            }
        });
        if let (None, Some(responder)) = (served, responder) {
            let _ = responder.respond_error(503, "the plugin has been shut down", &[]);
        }
    }));
    if let Err(payload) = result {
        tracing::error!(
            request_id = request.request_id(),
            "handler panicked: {}",
            panic_message(payload.as_ref())
        );
    }
}

/// `cancel` of the vtable for plugin `P`.
///
/// # Safety
/// `ctx` must come from a successful [`init::<P>`].
pub unsafe extern "C" fn cancel<P: Plugin>(ctx: *mut c_void, request_id: Str) {
    // SAFETY: per the contract.
    let instance = unsafe { Instance::<P>::from_ctx(ctx) };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(id) = utf8(request_id, "request id") {
            // After shutdown there is nothing left to cancel.
            let _ = instance.with(|plugin| plugin.cancel(id));
        }
    }));
}

/// `cancel_token` of the vtable for plugin `P` (ABI 1.1): the host calls it instead of
/// `cancel` for a request given a token with
/// [`Responder::set_cancel_token`](crate::Responder::set_cancel_token).
///
/// # Safety
/// `ctx` must come from a successful [`init::<P>`].
pub unsafe extern "C" fn cancel_token<P: Plugin>(ctx: *mut c_void, token: u64) {
    // SAFETY: per the contract.
    let instance = unsafe { Instance::<P>::from_ctx(ctx) };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // After shutdown there is nothing left to cancel.
        let _ = instance.with(|plugin| plugin.cancel_token(token));
    }));
}

/// `shutdown` of the vtable for plugin `P`: closes the gate, waits for the
/// calls inside to return, calls [`Plugin::shutdown`] and drops the plugin.
/// Later calls through `ctx` are refused (see the module docs); a second
/// `shutdown` does nothing.
///
/// # Safety
/// `ctx` must come from a successful [`init::<P>`].
pub unsafe extern "C" fn shutdown<P: Plugin>(ctx: *mut c_void, deadline_ms: u64) {
    // SAFETY: per the contract.
    let instance = unsafe { Instance::<P>::from_ctx(ctx) };
    if !instance.gate.close() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the gate is closed and empty: nothing else can reach the
        // plugin, and `close` returned true only once, so it is dropped once.
        let plugin = unsafe { &mut *instance.plugin.get() };
        plugin.shutdown(Duration::from_millis(deadline_ms));
        // SAFETY: as above; the plugin is never touched again.
        unsafe { ManuallyDrop::drop(plugin) };
    }));
}

/// Exports a [`Plugin`](crate::Plugin) as a spikard plugin library: defines
/// the `spikard_plugin_v1` symbol and its static declaration and vtable.
///
/// The declaration says ABI 1.1 ([`ffi::ABI_MINOR`](crate::ffi::ABI_MINOR)) with the
/// 1.1 vtable (its `cancel_token` entry calls [`Plugin::cancel_token`](crate::Plugin));
/// the plugin still loads into 1.0 hosts, which ignore what they do not know.
///
/// Use it once per `cdylib`; see [`Plugin`](crate::Plugin) for an example.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty, name = $name:expr, version = $version:expr $(,)?) => {
        const _: () = {
            static VTABLE: $crate::ffi::PluginVTable = $crate::ffi::PluginVTable {
                struct_size: ::std::mem::size_of::<$crate::ffi::PluginVTable>(),
                init: Some($crate::export::init::<$plugin>),
                bind_route: Some($crate::export::bind_route::<$plugin>),
                handle: Some($crate::export::handle::<$plugin>),
                cancel: Some($crate::export::cancel::<$plugin>),
                shutdown: Some($crate::export::shutdown::<$plugin>),
                cancel_token: Some($crate::export::cancel_token::<$plugin>),
            };
            static DECL: $crate::ffi::PluginDecl = $crate::ffi::PluginDecl {
                magic: $crate::ffi::MAGIC,
                abi_major: $crate::ffi::ABI_MAJOR,
                abi_minor: $crate::ffi::ABI_MINOR,
                struct_size: ::std::mem::size_of::<$crate::ffi::PluginDecl>(),
                name: $crate::ffi::Str::new($name),
                version: $crate::ffi::Str::new($version),
                vtable: &VTABLE,
            };
            /// The entry point `spikard-host` looks up.
            #[no_mangle]
            pub extern "C" fn spikard_plugin_v1() -> *const $crate::ffi::PluginDecl {
                &DECL
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    unsafe extern "C" fn log(_: *mut HostHandle, _: u32, _: Str, _: Str) {}
    unsafe extern "C" fn log_enabled(_: *mut HostHandle, _: u32, _: Str) -> i32 {
        0
    }
    unsafe extern "C" fn register_route(_: *mut HostHandle, _: *const ffi::RouteDecl) -> i32 {
        ffi::ERR
    }
    unsafe extern "C" fn respond(_: *mut ResponderHandle, _: *const ffi::Response) -> i32 {
        ffi::ERR
    }
    unsafe extern "C" fn respond_error(
        _: *mut ResponderHandle,
        _: u16,
        _: Str,
        _: *const ffi::Header,
        _: usize,
    ) -> i32 {
        ffi::ERR
    }
    unsafe extern "C" fn set_error(_: *mut ErrorHandle, _: Str) {}
    unsafe extern "C" fn config_dir(_: *mut HostHandle) -> Str {
        Str::EMPTY
    }
    unsafe extern "C" fn set_cancel_token(_: *mut ResponderHandle, _: u64) -> i32 {
        ffi::OK
    }

    fn table(struct_size: usize, abi_major: u32) -> HostApi {
        HostApi {
            struct_size,
            abi_major,
            abi_minor: 0,
            log,
            log_enabled,
            register_route,
            respond,
            respond_error,
            set_error,
            config_dir,
            set_cancel_token: Some(set_cancel_token),
            stream_start: None,
            stream_write: None,
            stream_on_ready: None,
            stream_end: None,
            body_next: None,
        }
    }

    #[test]
    fn any_1_x_host_table_is_accepted_and_read_only_up_to_its_size() {
        let v1_0 = table(ffi::min_size::HOST_API, 1);
        // SAFETY: a readable table; the SDK reads only its first `struct_size` bytes.
        let api = unsafe { read_host_api(&v1_0) }.expect("a 1.0 host is accepted");
        assert!(
            api.set_cancel_token.is_none(),
            "past a 1.0 table's size: absent"
        );
        let v1_1 = table(std::mem::size_of::<HostApi>(), 1);
        // SAFETY: as above.
        let api = unsafe { read_host_api(&v1_1) }.expect("a 1.1 host is accepted");
        assert!(api.set_cancel_token.is_some());
    }

    #[test]
    fn a_host_table_of_another_major_or_too_small_is_refused() {
        // SAFETY: readable tables, refused by their header fields.
        unsafe {
            assert!(read_host_api(&table(std::mem::size_of::<HostApi>(), 2)).is_none());
            assert!(read_host_api(&table(ffi::min_size::HOST_API - 8, 1)).is_none());
            assert!(read_host_api(std::ptr::null()).is_none());
        }
    }

    #[test]
    fn a_closed_gate_refuses_calls() {
        let gate = Gate::new();
        drop(gate.enter().expect("open"));
        assert!(gate.close(), "the first close closes it");
        assert!(gate.enter().is_none(), "no call after close");
        assert!(!gate.close(), "a second close is a no-op");
    }

    #[test]
    fn close_waits_for_the_calls_inside() {
        let gate = Arc::new(Gate::new());
        let left = Arc::new(AtomicBool::new(false));
        let pass = gate.enter().expect("open");
        let (g, l) = (gate.clone(), left.clone());
        let closer = std::thread::spawn(move || {
            g.close();
            l.load(Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(50));
        left.store(true, Ordering::SeqCst);
        drop(pass);
        assert!(
            closer.join().unwrap(),
            "close returned only after the call inside had left"
        );
    }
}
