//! The `extern "C"` glue [`export_plugin!`](crate::export_plugin) wires a
//! [`Plugin`] into: one generic function per vtable entry, each behind
//! `catch_unwind` so no panic ever crosses the boundary.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::ffi::{self, ErrorHandle, HostApi, HostHandle, ResponderHandle, Str};
use crate::plugin::{Host, Plugin, Request, Responder, RouteBinding};

/// What `*ctx` points to: the plugin and the API its responders answer through.
struct Instance<P> {
    plugin: P,
    api: &'static HostApi,
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
            let instance = Box::new(Instance { plugin, api });
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
    let instance = unsafe { &*(ctx as *const Instance<P>) };
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
        instance.plugin.bind_route(&binding)
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
    let instance = unsafe { &*(ctx as *const Instance<P>) };
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
        instance.plugin.handle(&request, responder)
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
    let instance = unsafe { &*(ctx as *const Instance<P>) };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(id) = utf8(request_id, "request id") {
            instance.plugin.cancel(id);
        }
    }));
}

/// `shutdown` of the vtable for plugin `P`: calls [`Plugin::shutdown`] and
/// drops the plugin; `ctx` is invalid afterwards.
///
/// # Safety
/// `ctx` must come from a successful [`init::<P>`] and not be used again.
pub unsafe extern "C" fn shutdown<P: Plugin>(ctx: *mut c_void, deadline_ms: u64) {
    // SAFETY: per the contract, we own the instance again.
    let instance = unsafe { Box::from_raw(ctx as *mut Instance<P>) };
    let _ = catch_unwind(AssertUnwindSafe(move || {
        instance.plugin.shutdown(Duration::from_millis(deadline_ms));
        drop(instance);
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
