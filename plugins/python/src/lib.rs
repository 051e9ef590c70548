//! `spikard_python`: serves a Python `spikard.App` through the plugin ABI.
//!
//! At `init` the plugin starts CPython, imports the app and registers its
//! routes — with JSON Schemas made from the handlers' type hints — so the
//! host validates every request before Python runs. `async def` handlers
//! run on one long-lived event loop on a thread of its own, `def` handlers
//! on a bounded pool of Python threads; host threads only queue work and
//! never wait for the GIL.
//!
//! Settings: `app = "module:attribute"` (required), `python_path` (list,
//! relative to the config file; default: the config's directory), `venv`
//! (default: `$VIRTUAL_ENV`), `bridge` (`"queue"`, the default, or
//! `"into_future"`), `sync_workers` (default 4).

mod event_loop;
mod future_bridge;
mod interpreter;
mod job;
mod native;
mod queue_bridge;
mod settings;
mod workers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use spikard_abi::{export_plugin, Host, Plugin, Request, Responder, RouteBinding, RouteDecl};

use event_loop::EventLoop;
use future_bridge::FutureBridge;
use job::Job;
use queue_bridge::QueueBridge;
use settings::{BridgeKind, Settings};
use workers::SyncWorkers;

/// What the plugin knows of one handler.
struct Handler {
    is_async: bool,
    wants_headers: bool,
}

enum Bridge {
    Queue(QueueBridge),
    IntoFuture(FutureBridge),
}

/// The plugin instance.
pub struct PythonPlugin {
    runtime: Py<PyAny>,
    handlers: Vec<Handler>,
    bridge: Bridge,
    workers: SyncWorkers,
    event_loop: Mutex<Option<EventLoop>>,
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

impl PythonPlugin {
    fn start(host: Host, settings: &Settings) -> Result<Self, String> {
        let library = interpreter::make_libpython_global();
        // SAFETY: a read-only query, callable before initialisation.
        if unsafe { pyo3::ffi::Py_IsInitialized() } != 0 {
            return Err("CPython is already running in this process; configure one python plugin and serve several apps from one App".into());
        }
        native::set_host(host);
        Python::initialize();
        Python::attach(|py| {
            tracing::info!(
                "embedded {} from {}",
                interpreter::describe(py),
                library.as_deref().unwrap_or("the process")
            );
            interpreter::configure_paths(py, settings)?;
            let native = native::module(py).map_err(|e| python_error(py, e))?;
            interpreter::install_package(py, native).map_err(|e| python_error(py, e))?;
            let app = interpreter::import_app(py, settings)?;
            let runtime = py
                .import("spikard._runtime")
                .and_then(|m| m.getattr("Runtime"))
                .and_then(|r| r.call1((app,)))
                .map_err(|e| {
                    format!(
                        "settings.app: the app's routes could not be prepared: {}",
                        python_error(py, e)
                    )
                })?;

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
                });
            }

            let start = |kind: BridgeKind| -> PyResult<(EventLoop, Bridge, SyncWorkers)> {
                let queue = if kind == BridgeKind::Queue {
                    Some(QueueBridge::new()?)
                } else {
                    None
                };
                let event_loop = EventLoop::start(&runtime, |event_loop| match &queue {
                    Some(queue) => queue.attach(event_loop, runtime.getattr("dispatch")?.unbind()),
                    None => Ok(()),
                })?;
                let bridge = match queue {
                    Some(queue) => Bridge::Queue(queue),
                    None => Bridge::IntoFuture(FutureBridge::new(
                        event_loop.get(py),
                        runtime.getattr("coroutine")?.unbind(),
                    )?),
                };
                let workers = SyncWorkers::start(
                    settings.sync_workers,
                    runtime.getattr("call_sync")?.unbind(),
                )?;
                Ok((event_loop, bridge, workers))
            };
            let (event_loop, bridge, workers) =
                start(settings.bridge).map_err(|e| python_error(py, e))?;
            let startup = runtime
                .call_method0("startup")
                .map_err(|e| python_error(py, e))?;
            if !startup.is_none() {
                event_loop
                    .run(py, &startup)
                    .map_err(|e| format!("a startup hook failed: {}", python_error(py, e)))?;
            }
            tracing::info!(
                "serving {} route(s) of {}:{} ({:?} bridge, {} sync worker(s))",
                handlers.len(),
                settings.module,
                settings.attribute,
                settings.bridge,
                settings.sync_workers
            );
            Ok(PythonPlugin {
                runtime: runtime.unbind(),
                handlers,
                bridge,
                workers,
                event_loop: Mutex::new(Some(event_loop)),
                stopping: AtomicBool::new(false),
            })
        })
    }
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
            let _ = responder.respond_error(503, "the server is shutting down", &[]);
            return;
        }
        let job = Job {
            handler_id: id,
            params_json: request.params_json().to_owned(),
            body: request.body().to_vec(),
            headers: handler.wants_headers.then(|| {
                request
                    .headers()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect()
            }),
            responder,
            request_id: request.request_id().to_owned(),
        };
        if handler.is_async {
            match &self.bridge {
                Bridge::Queue(queue) => queue.submit(job),
                Bridge::IntoFuture(bridge) => bridge.submit(job),
            }
        } else {
            self.workers.submit(job);
        }
    }

    fn shutdown(&self, deadline: Duration) {
        self.stopping.store(true, Ordering::Release);
        let until = Instant::now() + deadline;
        while native::IN_FLIGHT.load(Ordering::Acquire) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = native::IN_FLIGHT.load(Ordering::Acquire);
        if left > 0 {
            tracing::warn!(
                "{left} request(s) still running at shutdown; their answers are dropped"
            );
        }
        let Some(mut event_loop) = self
            .event_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        Python::attach(|py| {
            match self.runtime.bind(py).call_method0("shutdown") {
                Ok(hooks) if !hooks.is_none() => {
                    if let Err(e) = event_loop.run(py, &hooks) {
                        tracing::error!("a shutdown hook failed: {}", python_error(py, e));
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!("shutdown failed: {}", python_error(py, e)),
            }
            event_loop.stop(py);
            py.detach(|| self.workers.stop());
        });
        if let Bridge::IntoFuture(bridge) = &self.bridge {
            bridge.stop();
        }
        tracing::info!("python plugin stopped");
    }
}

export_plugin!(
    PythonPlugin,
    name = "spikard_python",
    version = env!("CARGO_PKG_VERSION")
);
