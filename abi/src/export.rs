//! The `extern "C"` glue [`export_plugin!`](crate::export_plugin) wires a
//! [`Plugin`] into: one generic function per vtable entry, each behind
//! `catch_unwind` so no panic ever crosses the boundary.
//!
//! The instance behind `ctx` is never freed while a call can still reach it:
//! every call passes through a [`Gate`], `shutdown` closes the gate, waits
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
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
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
    if api.is_null() || ctx.is_null() {
        return ffi::ERR;
    }
    // SAFETY: the host API table lives for the process.
    let api: &'static HostApi = unsafe { &*api };
    if api.abi_major != ffi::ABI_MAJOR || api.struct_size < ffi::min_size::HOST_API {
        set_error(
            api,
            err,
            &format!(
                "host ABI v{}.{} (table of {} bytes) is not compatible with this plugin's v{}.{}",
                api.abi_major,
                api.abi_minor,
                api.struct_size,
                ffi::ABI_MAJOR,
                ffi::ABI_MINOR
            ),
        );
        return ffi::ERR;
    }
    let host = Host { api, handle: host };
    crate::log::install(host);
    let result = catch_unwind(AssertUnwindSafe(|| {
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
    if binding.is_null() || handler_id.is_null() {
        set_error(instance.api, err, "bind_route called with a null pointer");
        return ffi::ERR;
    }
    // SAFETY: borrowed for the call.
    let raw = unsafe { &*binding };
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
    if request.is_null() {
        drop(responder);
        return;
    }
    // SAFETY: valid for the call.
    let request = unsafe { Request::from_raw(&*request) };
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
