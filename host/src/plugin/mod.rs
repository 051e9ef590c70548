//! Loading plugin libraries and calling through their vtables.
//!
//! [`LoadedPlugin`] is the only place the host touches a plugin's function
//! pointers. Loading checks, in order: the file opens, it exports
//! `spikard_plugin_v1`, the declaration has the magic, major version 1 and
//! large enough structs, and the required functions are present. Each
//! failure is a [`LoadError`] naming the library, the config field and the
//! fix. Libraries are never unloaded: a plugin's threads may outlive
//! `shutdown`, and unloading code that is still running is undefined.
//!
//! Any minor version of major 1 loads: the declaration and the vtable are
//! copied with [`ffi::read_prefix`] up to the plugin's `struct_size`, so a 1.0
//! plugin's missing 1.1 fields read as `None` and a later minor's extra
//! trailing fields are never looked at. No reference is ever formed over the
//! plugin's structs, whose real size only their `struct_size` tells.
//!
//! After [`LoadedPlugin::shutdown`] begins, `handle`, `cancel` and stream ready
//! callbacks never call into the plugin again: a request is answered 503 by the
//! host, a cancel or a callback is dropped. The server makes sure no request is
//! left to try (see `crate::shutdown`); the flag makes it hold whatever happens.
//!
//! Requests and their answers go through the responder table ([`responders`]);
//! the request's side of it, and the cancellation when a request ends
//! unanswered, is [`pending`].

pub mod admission;
pub mod host_api;
pub mod log;
pub mod pending;
pub mod responders;

use std::ffi::c_void;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use spikard_abi::ffi::{self, PluginDecl, Str};

use crate::config::PluginConfig;
use admission::{Admission, Permit};
use host_api::{Answer, ErrorSlot, HostHandle, Registration, HOST_API};
use pending::Pending;
use responders::{ReadyCalls, Released};

/// A plugin library that failed to load or initialise.
#[derive(Debug)]
pub struct LoadError {
    /// `plugins[i]` plus location, for the message.
    pub origin: String,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl std::error::Error for LoadError {}

/// The functions of a plugin's v1 vtable, copied out once.
#[derive(Clone, Copy)]
struct VTable {
    bind_route: ffi::BindRouteFn,
    handle: ffi::HandleFn,
    cancel: Option<ffi::CancelFn>,
    shutdown: ffi::ShutdownFn,
    /// 1.1: cancellation by the token the plugin gave with `set_cancel_token`; `None` for a
    /// 1.0 plugin (its vtable ends before it) or one that leaves it NULL.
    cancel_token: Option<ffi::CancelTokenFn>,
}

/// A loaded and initialised plugin.
pub struct LoadedPlugin {
    /// The config name.
    pub name: String,
    /// The name and version the library declares, for logs.
    pub declared: String,
    vtable: VTable,
    ctx: *mut c_void,
    /// In-flight requests and their limit.
    admission: &'static Admission,
    /// Set when `shutdown` begins; no call reaches the plugin afterwards.
    stopped: AtomicBool,
}

// SAFETY: the ABI requires `handle` and `cancel` to be callable concurrently
// from any thread; `bind_route` and `shutdown` are only called from the
// start-up/shutdown thread, as the header documents.
unsafe impl Send for LoadedPlugin {}
// SAFETY: see `Send`.
unsafe impl Sync for LoadedPlugin {}

/// A plugin whose library is open and checked but not yet initialised: its declaration
/// and vtable as copied by [`ffi::read_prefix`] (fields past the plugin's minor are zero).
struct Library {
    decl: PluginDecl,
    vtable: ffi::PluginVTable,
}

fn open(config: &PluginConfig, index: usize) -> Result<Library, LoadError> {
    let path = &config.library;
    let origin = format!(
        "{} (plugins[{index}].library = {})",
        config.at,
        path.display()
    );
    let fail = |message: String| LoadError {
        origin: origin.clone(),
        message,
    };
    if !path.exists() {
        return Err(fail(format!(
            "no such file; build the plugin (for the bundled ones: `cargo build --release`) or correct plugins[{index}].library (a path relative to the config file, or a bare name like \"spikard_echo\" for a library beside spikard-host)"
        )));
    }
    let library = open_library(path).map_err(|e| {
        fail(format!("cannot be loaded as a shared library: {e}; point plugins[{index}].library at a plugin built for this platform"))
    })?;
    // SAFETY: looking up a symbol has no side effects; its type is checked
    // through the magic number below before anything else is trusted.
    let entry = unsafe { library.get::<ffi::EntryV1>(ffi::ENTRY_SYMBOL_V1) }.map_err(|_| {
        fail(format!(
            "does not export `spikard_plugin_v1`, so it is not a spikard ABI v1 plugin; point plugins[{index}].library at a plugin built with spikard-abi or abi/include/spikard_plugin.h"
        ))
    })?;
    // SAFETY: calling the entry point is the plugin contract.
    let decl = unsafe { entry() };
    // Never unload: see the module docs.
    std::mem::forget(library);
    if decl.is_null() {
        return Err(fail(
            "`spikard_plugin_v1` returned NULL; it must return its static declaration".into(),
        ));
    }
    // SAFETY: non-null and static per the contract. Only the fields every version starts
    // with are read, by value, before `struct_size` says how much more there is.
    let (magic, abi_major, abi_minor, decl_size) = unsafe {
        (
            std::ptr::addr_of!((*decl).magic).read(),
            std::ptr::addr_of!((*decl).abi_major).read(),
            std::ptr::addr_of!((*decl).abi_minor).read(),
            std::ptr::addr_of!((*decl).struct_size).read(),
        )
    };
    if magic != ffi::MAGIC {
        return Err(fail(format!(
            "its declaration has magic {magic:#018x}, expected {:#018x}: not a spikard plugin or a corrupt build; rebuild it against spikard-abi",
            ffi::MAGIC
        )));
    }
    if abi_major != ffi::ABI_MAJOR {
        return Err(fail(format!(
            "it was built for plugin ABI v{abi_major}.{abi_minor}, this host loads ABI v{major}.x plugins (it speaks v{major}.{minor}); rebuild the plugin against ABI v{major} (spikard-abi or abi/include/spikard_plugin.h of this host) or run a host that supports ABI v{abi_major}",
            major = ffi::ABI_MAJOR,
            minor = ffi::ABI_MINOR,
        )));
    }
    let too_small = |what: &str, size: usize, min: usize| {
        fail(format!(
            "its {what} is {size} bytes, smaller than ABI v1.0's {min}: a broken build; rebuild it against spikard-abi or spikard_plugin.h"
        ))
    };
    if decl_size < ffi::min_size::PLUGIN_DECL {
        return Err(too_small(
            "spk_plugin_decl",
            decl_size,
            ffi::min_size::PLUGIN_DECL,
        ));
    }
    // SAFETY: the plugin's declaration has `decl_size` bytes, at least the 1.0 size.
    let decl: PluginDecl = unsafe { ffi::read_prefix(decl, decl_size) };
    if decl.vtable.is_null() {
        return Err(fail(
            "its declaration has no vtable; set spk_plugin_decl.vtable".into(),
        ));
    }
    // SAFETY: non-null and static per the contract; `struct_size` is its first field in
    // every version.
    let vtable_size = unsafe { std::ptr::addr_of!((*decl.vtable).struct_size).read() };
    if vtable_size < ffi::min_size::PLUGIN_VTABLE {
        return Err(too_small(
            "spk_plugin_vtable",
            vtable_size,
            ffi::min_size::PLUGIN_VTABLE,
        ));
    }
    // SAFETY: the vtable has `vtable_size` bytes, at least the 1.0 size.
    let vtable: ffi::PluginVTable = unsafe { ffi::read_prefix(decl.vtable, vtable_size) };
    let missing: Vec<&str> = [
        ("init", vtable.init.is_none()),
        ("bind_route", vtable.bind_route.is_none()),
        ("handle", vtable.handle.is_none()),
        ("shutdown", vtable.shutdown.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if !missing.is_empty() {
        return Err(fail(format!(
            "its vtable lacks the required function(s) {}; only `cancel` and `cancel_token` may be NULL",
            missing.join(", ")
        )));
    }
    Ok(Library { decl, vtable })
}

#[cfg(unix)]
fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // RTLD_NOW: a missing symbol is a start-up error, not a crash later.
    // SAFETY: running a library's initialisers is what loading a plugin means.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
}

#[cfg(not(unix))]
fn open_library(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // SAFETY: as above.
    unsafe { libloading::Library::new(path) }
}

/// Reads a plugin string, tolerating bad UTF-8.
fn lossy(s: Str) -> String {
    // SAFETY: declaration strings are static per the contract.
    unsafe { s.to_str_lossy().into_owned() }
}

impl LoadedPlugin {
    /// Opens, checks and initialises the plugin; returns it with the routes
    /// it registered during `init`.
    pub fn load(
        config: &PluginConfig,
        index: usize,
    ) -> Result<(LoadedPlugin, Vec<Registration>), LoadError> {
        let library = open(config, index)?;
        let origin = format!("{} (plugins[{index}], plugin `{}`)", config.at, config.name);
        let declared = format!(
            "{} {}",
            lossy(library.decl.name),
            lossy(library.decl.version)
        );
        let vt = library.vtable;
        let (Some(init), Some(bind_route), Some(handle), Some(shutdown)) =
            (vt.init, vt.bind_route, vt.handle, vt.shutdown)
        else {
            unreachable!("checked in open");
        };
        let host = HostHandle::leak(&config.name, &config.config_dir);
        host.open_registration();
        let mut ctx: *mut c_void = std::ptr::null_mut();
        let mut error = ErrorSlot::default();
        // SAFETY: the ABI contract; settings are borrowed for the call.
        let rc = unsafe {
            init(
                &HOST_API,
                host.as_ffi(),
                Str::new(&config.settings_json),
                &mut ctx,
                error.as_ffi(),
            )
        };
        let (registrations, refusal) = host.close_registration();
        if rc != ffi::OK {
            let message = match refusal {
                Some(refusal) => format!("a route it registered was refused: {refusal}"),
                None => error.message_or("init failed without a message"),
            };
            // A message naming `settings.<field>` gets the full config path.
            let message = match message.strip_prefix("settings") {
                Some(rest) if rest.starts_with(['.', ':', ' ']) => {
                    format!("{declared}: init failed: plugins[{index}].settings{rest}")
                }
                _ => format!("{declared}: init failed: {message}; check plugins[{index}].settings"),
            };
            return Err(LoadError { origin, message });
        }
        if let Some(refusal) = refusal {
            return Err(LoadError {
                origin,
                message: format!("{declared}: a route it registered was refused: {refusal}"),
            });
        }
        tracing::info!(
            plugin = %config.name,
            library = %config.library.display(),
            "loaded {declared} (ABI {}.{})",
            library.decl.abi_major,
            library.decl.abi_minor
        );
        let plugin = LoadedPlugin {
            name: config.name.clone(),
            declared,
            vtable: VTable {
                bind_route,
                handle,
                cancel: vt.cancel,
                shutdown,
                cancel_token: vt.cancel_token,
            },
            ctx,
            admission: Admission::leak(&config.name, config.max_in_flight),
            stopped: AtomicBool::new(false),
        };
        Ok((plugin, registrations))
    }

    /// Offers a config route to the plugin; returns its handler id.
    pub fn bind(
        &self,
        method: &str,
        path: &str,
        handler: &str,
        settings_json: &str,
    ) -> Result<u64, String> {
        let binding = ffi::RouteBinding {
            struct_size: std::mem::size_of::<ffi::RouteBinding>(),
            method: Str::new(method),
            path: Str::new(path),
            handler: Str::new(handler),
            settings_json: Str::new(settings_json),
        };
        let mut id = 0u64;
        let mut error = ErrorSlot::default();
        // SAFETY: the ABI contract; everything is borrowed for the call.
        let rc = unsafe { (self.vtable.bind_route)(self.ctx, &binding, &mut id, error.as_ffi()) };
        if rc == ffi::OK {
            Ok(id)
        } else {
            Err(error.message_or("the plugin refused the route without a message"))
        }
    }

    /// A place among the plugin's in-flight requests, or `None` when it holds its
    /// `max_in_flight` already (the caller answers 503).
    pub fn admit(&self) -> Option<Permit> {
        self.admission.try_acquire()
    }

    /// The plugin's `max_in_flight`.
    pub fn max_in_flight(&self) -> usize {
        self.admission.max()
    }

    /// Hands a request to the plugin and returns the answer to wait for. The permit
    /// stays with the request's responder slot until the plugin answers or the request
    /// ends (dropping the [`Pending`] ends it and cancels the plugin's work). After
    /// `shutdown` began the plugin is not called and the answer is a 503. `body` is the
    /// request body of a route with `stream_body` (the request's `flags` say so), which the
    /// plugin reads with `body_next` from the request's responder slot.
    pub fn handle<'a>(
        self: &'a Arc<Self>,
        request: &ffi::Request,
        request_id: &'a str,
        permit: Permit,
        body: Option<responders::body_stream::Inbound>,
    ) -> Pending<'a> {
        let refuse = |detail: &str| {
            let answer = Answer::Problem {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: detail.into(),
                headers: HeaderMap::new(),
            };
            Pending::answered(self, request_id, answer)
        };
        if self.stopped.load(Ordering::Acquire) {
            return refuse("the server is shutting down");
        }
        let Some(ticket) = responders::open(permit) else {
            tracing::error!(plugin = %self.name, "every responder handle is in use; answering 503");
            return refuse("the server holds too many requests");
        };
        if let Some(body) = body {
            ticket.attach_body(body);
        }
        // SAFETY: the ABI contract; the request is borrowed for the call and the
        // responder is a handle the host checks on every use.
        unsafe { (self.vtable.handle)(self.ctx, request, ticket.handle()) };
        Pending::waiting(self, request_id, ticket)
    }

    /// Ends the plugin's side of a request whose responder slot was given back: runs the
    /// ready callbacks it still had registered and, when the plugin had not finished it,
    /// cancels it.
    pub fn finish(&self, released: Released, request_id: &str) {
        self.run_ready(released.ready);
        if released.unfinished {
            self.cancel(request_id, released.token);
        }
    }

    /// Runs a stream's due ready callbacks, unless the plugin has been shut down.
    pub fn run_ready(&self, calls: ReadyCalls) {
        if calls.is_empty() || self.stopped.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: registered by this plugin, which is not shut down; each runs once.
        unsafe { calls.run() }
    }

    /// Tells the plugin a request was abandoned (timeout, client gone, shutdown), if it
    /// wants to know and has not been shut down: by the request's cancel token through
    /// `cancel_token` when the plugin set one and has that function, else by id through
    /// `cancel`.
    pub fn cancel(&self, request_id: &str, token: Option<u64>) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        match (token, self.vtable.cancel_token, self.vtable.cancel) {
            // SAFETY: the ABI contract.
            (Some(token), Some(cancel_token), _) => unsafe { cancel_token(self.ctx, token) },
            // SAFETY: the ABI contract.
            (_, _, Some(cancel)) => unsafe { cancel(self.ctx, Str::new(request_id)) },
            _ => {}
        }
    }

    /// Stops the plugin, giving it `deadline`; no `handle` or `cancel` reaches it from now
    /// on. The caller makes sure no request task is left that could be inside one. Called
    /// at most once; later calls do nothing.
    pub fn shutdown(&self, deadline: Duration) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
        // SAFETY: the ABI contract; called once, after the last request.
        unsafe { (self.vtable.shutdown)(self.ctx, ms) }
    }
}
