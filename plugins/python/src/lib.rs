//! `spikard_python`: serves a Python `spikard.App` through the plugin ABI.
//!
//! At `init` the plugin starts CPython, imports the app and registers its
//! routes — with JSON Schemas made from the handlers' type hints — so the
//! host validates every request before Python runs. `async def` handlers
//! run on one long-lived event loop on a thread of its own, `def` handlers
//! on a bounded pool of Python threads; host threads only queue work and
//! never wait for the GIL.
//!
//! Handlers may stream their responses (`StreamingResponse`, generators,
//! Server-Sent Events): the head goes out when the handler returns and the
//! body follows with the host's backpressure, from the loop (async
//! iterators) or in steps on the sync pool (sync iterators); see
//! `stream.rs` and `spikard/_streaming.py`.
//!
//! Faults stay contained: queues are bounded (503 with `Retry-After`),
//! `cancel` stops a request's task or discards its sync call, a watchdog
//! names the handler that blocks the loop, `shutdown` keeps its deadline
//! whatever a handler does, and `faulthandler` prints Python tracebacks on a
//! crash.
//!
//! Settings: `app = "module:attribute"` (required), `python_path` (list,
//! relative to the config file; default: the config's directory), `venv`
//! (default: `$VIRTUAL_ENV`; the interpreter starts as that venv's `python`
//! would), `bridge` (`"queue"`, the default, or
//! `"into_future"`), `sync_workers` (default 4), `max_pending` and
//! `max_pending_bytes` (default: sized from the machine),
//! `loop_stall_warning_ms` (default 100) and `max_json_depth` (default 32).

mod backpressure;
mod event_loop;
mod future_bridge;
mod interpreter;
mod job;
mod mailbox;
mod native;
mod settings;
mod shutdown;
mod source;
mod stream;
mod watchdog;
mod workers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use spikard_abi::{export_plugin, Host, Plugin, Request, Responder, RouteBinding, RouteDecl};

use event_loop::EventLoop;
use future_bridge::FutureBridge;
use job::{Job, Work};
use mailbox::{Entries, Mailbox};
use settings::{BridgeKind, Settings};
use watchdog::{Pulse, Watchdog};
use workers::SyncWorkers;

/// What the plugin knows of one handler.
struct Handler {
    is_async: bool,
    /// The handler takes `request: Request`: its headers and request line
    /// are copied for it (no other request pays for them).
    wants_headers: bool,
    /// `module:qualname`, for log lines.
    label: String,
}

/// How `async def` handlers reach the loop; both reach it for cancellations
/// and shutdown through the mailbox.
enum Bridge {
    Queue,
    IntoFuture(FutureBridge),
}

/// The plugin instance.
pub struct PythonPlugin {
    handlers: Vec<Handler>,
    mailbox: Mailbox,
    bridge: Bridge,
    workers: SyncWorkers,
    event_loop: Mutex<Option<EventLoop>>,
    watchdog: Mutex<Option<Watchdog>>,
    /// Set at shutdown: late requests get a 503 instead of a dead loop.
    stopping: AtomicBool,
}

/// A Python exception as one line for an error message; the full
/// traceback goes to the log at debug level.
fn python_error(py: Python<'_>, err: PyErr) -> String {
    let traceback = err
        .traceback(py)
        .and_then(|tb| tb.format().ok())
        .unwrap_or_default();
    if !traceback.is_empty() {
        tracing::debug!("{traceback}{err}");
    }
    err.to_string().replace('\n', " ")
}

/// The running parts made at start-up.
struct Machinery {
    event_loop: EventLoop,
    mailbox: Mailbox,
    pulse: Arc<Pulse>,
    bridge: Bridge,
    workers: SyncWorkers,
}

impl Machinery {
    /// Starts the loop with its mailbox, the bridge and the sync pool.
    fn start(runtime: &Bound<'_, PyAny>, settings: &Settings) -> PyResult<Self> {
        let mailbox = Mailbox::new(settings.bounds)?;
        let pulse = Arc::new(Pulse::new());
        let event_loop = EventLoop::start(runtime, |event_loop| {
            let entries = Entries {
                dispatch: runtime.getattr("dispatch")?.unbind(),
                cancel: runtime.getattr("cancel")?.unbind(),
                begin_stop: runtime.getattr("begin_stop")?.unbind(),
                stop: event_loop.getattr("stop")?.unbind(),
            };
            mailbox.attach(event_loop, entries, pulse.clone())
        })?;
        let bridge = match settings.bridge {
            BridgeKind::Queue => Bridge::Queue,
            BridgeKind::IntoFuture => Bridge::IntoFuture(FutureBridge::new(
                event_loop.get(runtime.py()),
                runtime.getattr("coroutine")?.unbind(),
                runtime.getattr("begin_stream")?.unbind(),
                settings.bounds,
            )?),
        };
        let workers = SyncWorkers::start(
            settings.sync_workers,
            settings.sync_bounds,
            runtime.getattr("call_sync")?.unbind(),
        )?;
        stream::install(mailbox.clone(), workers.steps());
        Ok(Machinery {
            event_loop,
            mailbox,
            pulse,
            bridge,
            workers,
        })
    }
}

impl PythonPlugin {
    fn start(host: Host, settings: &Settings) -> Result<Self, String> {
        let library = interpreter::make_libpython_global();
        // SAFETY: a read-only query, callable before initialisation.
        if unsafe { pyo3::ffi::Py_IsInitialized() } != 0 {
            return Err("CPython is already running in this process; configure one python plugin and serve several apps from one App".into());
        }
        native::set_host(host);
        interpreter::initialize(settings)?;
        Python::attach(|py| {
            tracing::info!(
                "embedded {} from {}",
                interpreter::describe(py),
                library.as_deref().unwrap_or("the process")
            );
            let runtime = make_runtime(py, settings)?;
            let handlers = register_routes(host, &runtime)?;
            let machinery =
                Machinery::start(&runtime, settings).map_err(|e| python_error(py, e))?;
            let startup = runtime
                .call_method0("startup")
                .map_err(|e| python_error(py, e))?;
            if !startup.is_none() {
                machinery
                    .event_loop
                    .run(py, &startup)
                    .map_err(|e| format!("a startup hook failed: {}", python_error(py, e)))?;
            }
            let watchdog = match settings.loop_stall_warning {
                Some(threshold) => Some(
                    Watchdog::start(
                        threshold,
                        machinery.mailbox.clone(),
                        machinery.pulse.clone(),
                        runtime.clone().unbind(),
                    )
                    .map_err(|e| format!("cannot start the event loop watchdog: {e}"))?,
                ),
                None => None,
            };
            // Last, once everything is imported: SIGINT back to what it was,
            // so Ctrl-C stops the host like SIGTERM, hooks included.
            py.import("spikard._process")
                .and_then(|p| p.call_method0("restore_sigint"))
                .map_err(|e| python_error(py, e))?;
            log_serving(handlers.len(), settings);
            Ok(PythonPlugin {
                handlers,
                mailbox: machinery.mailbox,
                bridge: machinery.bridge,
                workers: machinery.workers,
                event_loop: Mutex::new(Some(machinery.event_loop)),
                watchdog: Mutex::new(watchdog),
                stopping: AtomicBool::new(false),
            })
        })
    }
}

/// Sets up `sys.path`, the embedded package and crash reporting, imports the
/// app and wraps it in a `spikard._runtime.Runtime`.
fn make_runtime<'py>(py: Python<'py>, settings: &Settings) -> Result<Bound<'py, PyAny>, String> {
    interpreter::configure_paths(py, settings)?;
    let native = native::module(py).map_err(|e| python_error(py, e))?;
    interpreter::install_package(py, native).map_err(|e| python_error(py, e))?;
    // Before the app's imports: a crash in one prints its traceback.
    py.import("spikard._process")
        .and_then(|p| p.call_method0("enable_faulthandler"))
        .map_err(|e| python_error(py, e))?;
    let app = interpreter::import_app(py, settings)?;
    let options = PyDict::new(py);
    let bridge = match settings.bridge {
        BridgeKind::Queue => "queue",
        BridgeKind::IntoFuture => "into_future",
    };
    options
        .set_item("max_json_depth", settings.max_json_depth)
        .and_then(|_| options.set_item("bridge", bridge))
        .map_err(|e| python_error(py, e))?;
    let runtime = py
        .import("spikard._runtime")
        .and_then(|m| m.getattr("Runtime"))
        .and_then(|r| r.call((app,), Some(&options)))
        .map_err(|e| {
            format!(
                "settings.app: the app's routes could not be prepared: {}",
                python_error(py, e)
            )
        })?;
    runtime
        .call_method0("install_process_hooks")
        .map_err(|e| python_error(py, e))?;
    Ok(runtime)
}

/// The start-up line: what is served and with which bounds.
fn log_serving(routes: usize, settings: &Settings) {
    tracing::info!(
        "serving {routes} route(s) of {}:{} ({:?} bridge, {} sync worker(s); at most {} requests waiting for the loop and {} for the workers, {} bytes each; loop stall warning {})",
        settings.module,
        settings.attribute,
        settings.bridge,
        settings.sync_workers,
        settings.bounds.max_pending,
        settings.sync_bounds.max_pending,
        settings.bounds.max_pending_bytes,
        settings
            .loop_stall_warning
            .map_or("off".into(), |t| format!("after {} ms", t.as_millis()))
    );
}

/// Registers the runtime's routes with the host; the handler table.
fn register_routes(host: Host, runtime: &Bound<'_, PyAny>) -> Result<Vec<Handler>, String> {
    let py = runtime.py();
    let labels: Vec<String> = runtime
        .call_method0("labels")
        .and_then(|l| l.extract())
        .map_err(|e| python_error(py, e))?;
    let mut handlers = Vec::new();
    let routes = runtime
        .call_method0("routes")
        .map_err(|e| python_error(py, e))?;
    for route in routes.try_iter().map_err(|e| python_error(py, e))? {
        let (method, path, handler_id, schema_json, is_async, wants_headers): (
            String,
            String,
            u64,
            String,
            bool,
            bool,
        ) = route
            .and_then(|r| r.extract())
            .map_err(|e| python_error(py, e))?;
        host.register_route(&RouteDecl {
            method: &method,
            path: &path,
            handler_id,
            schema_json: &schema_json,
        })
        .map_err(|e| e.to_string())?;
        if handler_id as usize != handlers.len() {
            return Err(format!(
                "the runtime numbered route {method} {path} {handler_id}, expected {}",
                handlers.len()
            ));
        }
        handlers.push(Handler {
            is_async,
            wants_headers,
            label: labels
                .get(handlers.len())
                .cloned()
                .unwrap_or_else(|| format!("#{handler_id}")),
        });
    }
    Ok(handlers)
}

impl Plugin for PythonPlugin {
    fn init(host: Host, settings_json: &str) -> Result<Self, String> {
        let settings = settings::parse(settings_json, &host.config_dir())?;
        PythonPlugin::start(host, &settings)
    }

    fn bind_route(&self, route: &RouteBinding<'_>) -> Result<u64, String> {
        Err(format!(
            "the python plugin serves the routes its app declares with decorators; remove this [[routes]] entry ({} {}) or add the route to the app",
            route.method, route.path
        ))
    }

    fn handle(&self, request: &Request<'_>, responder: Responder) {
        let id = request.handler_id();
        let Some(handler) = self.handlers.get(id as usize) else {
            let _ = responder.respond_error(500, "unknown handler", &[]);
            return;
        };
        if self.stopping.load(Ordering::Acquire) {
            let _ = responder.respond_error(503, shutdown::SHUTTING_DOWN, &[]);
            return;
        }
        let job = Job {
            work: Work {
                handler_id: id,
                params_json: request.params_json().to_owned(),
                body: request.body().to_vec(),
                headers: handler.wants_headers.then(|| {
                    request
                        .headers()
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect()
                }),
                request_id: request.request_id().into(),
                info: handler
                    .wants_headers
                    .then(|| source::RequestInfo::copy(request)),
            },
            responder,
        };
        if !handler.is_async {
            self.workers.submit(job);
            return;
        }
        match &self.bridge {
            Bridge::Queue => self.mailbox.submit(job),
            Bridge::IntoFuture(bridge) => bridge.submit(job),
        }
    }

    fn cancel(&self, request_id: &str) {
        // A `def` handler's request is in the pool (waiting or running);
        // anything else is the loop's (waiting in the mailbox or a task).
        if !self.workers.cancel(request_id) {
            self.mailbox.cancel(request_id);
        }
    }

    fn cancel_token(&self, token: u64) {
        // Only streams set tokens: the client left, or the server stops.
        stream::cancel(token);
    }

    fn shutdown(&self, deadline: Duration) {
        self.stop(deadline);
    }
}

export_plugin!(
    PythonPlugin,
    name = "spikard_python",
    version = env!("CARGO_PKG_VERSION")
);
