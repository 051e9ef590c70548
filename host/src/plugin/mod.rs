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
//! After [`LoadedPlugin::shutdown`] begins, `handle` and `cancel` never call
//! into the plugin again: a request is answered 503 by the host and a cancel
//! is dropped. The server makes sure no request is left to try (see
//! `crate::shutdown`); the flag makes it hold whatever happens.

pub mod admission;
pub mod host_api;
pub mod log;

use std::ffi::c_void;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use spikard_abi::ffi::{self, PluginDecl, Str};
use tokio::sync::oneshot;

use crate::config::PluginConfig;
use admission::{Admission, Permit};
use host_api::{Answer, ErrorSlot, HostHandle, Registration, ResponderSlot, HOST_API};

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

/// A plugin whose library is open and checked but not yet initialised.
struct Library {
    decl: &'static PluginDecl,
    vtable: &'static ffi::PluginVTable,
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
    // SAFETY: non-null and static per the contract; the leading fields are
    // read before the size says the rest may be.
    let decl: &'static PluginDecl = unsafe { &*decl };
    if decl.magic != ffi::MAGIC {
        return Err(fail(format!(
            "its declaration has magic {:#018x}, expected {:#018x}: not a spikard plugin or a corrupt build; rebuild it against spikard-abi",
            decl.magic,
            ffi::MAGIC
        )));
    }
    if decl.abi_major != ffi::ABI_MAJOR {
        return Err(fail(format!(
            "it was built for plugin ABI v{}.{}, this host speaks v{}.{}; rebuild the plugin against ABI v{} or run a host that supports v{}",
            decl.abi_major,
            decl.abi_minor,
            ffi::ABI_MAJOR,
            ffi::ABI_MINOR,
            ffi::ABI_MAJOR,
            decl.abi_major
        )));
    }
    let too_small = |what: &str, size: usize, min: usize| {
        fail(format!(
            "its {what} is {size} bytes, smaller than ABI v1.0's {min}: a broken build; rebuild it against spikard-abi or spikard_plugin.h"
        ))
    };
    if decl.struct_size < ffi::min_size::PLUGIN_DECL {
        return Err(too_small(
            "spk_plugin_decl",
            decl.struct_size,
            ffi::min_size::PLUGIN_DECL,
        ));
    }
    if decl.vtable.is_null() {
        return Err(fail(
            "its declaration has no vtable; set spk_plugin_decl.vtable".into(),
        ));
    }
    // SAFETY: non-null and static per the contract.
    let vtable: &'static ffi::PluginVTable = unsafe { &*decl.vtable };
    if vtable.struct_size < ffi::min_size::PLUGIN_VTABLE {
        return Err(too_small(
            "spk_plugin_vtable",
            vtable.struct_size,
            ffi::min_size::PLUGIN_VTABLE,
        ));
    }
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
            "its vtable lacks the required function(s) {}; only `cancel` may be NULL",
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
        tracing::info!(plugin = %config.name, library = %config.library.display(), "loaded {declared}");
        let plugin = LoadedPlugin {
            name: config.name.clone(),
            declared,
            vtable: VTable {
                bind_route,
                handle,
                cancel: vt.cancel,
                shutdown,
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

    /// Hands a request to the plugin and returns where its answer will arrive. The permit
    /// stays with the request until the plugin answers. After `shutdown` began the plugin is
    /// not called and the answer is a 503.
    pub fn handle(&self, request: &ffi::Request, permit: Permit) -> oneshot::Receiver<Answer> {
        if self.stopped.load(Ordering::Acquire) {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Answer::Problem {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: "the server is shutting down".into(),
                headers: HeaderMap::new(),
            });
            return rx;
        }
        let (responder, answer) = ResponderSlot::open(permit);
        // SAFETY: the ABI contract; the request is borrowed for the call and
        // the responder is owned by the plugin from here on.
        unsafe { (self.vtable.handle)(self.ctx, request, responder) };
        answer
    }

    /// Tells the plugin a request was abandoned, if it wants to know and has
    /// not been shut down.
    pub fn cancel(&self, request_id: &str) {
        if let Some(cancel) = self.vtable.cancel {
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            // SAFETY: the ABI contract.
            unsafe { cancel(self.ctx, Str::new(request_id)) }
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
