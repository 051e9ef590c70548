//! `spikard_echo`: the reference plugin, and the smallest honest example of
//! one. Each route of the host's config names one of its handlers:
//!
//! - `echo` answers 200 with a JSON object of the method, path, raw query,
//!   validated `params`, headers and body it received.
//! - `respond` answers with the `status` (default 200), `headers` and `body`
//!   of the route's settings: a string body is sent as is, anything else as
//!   JSON. Conformance tests use it to serve canned responses.
//! - `delay` answers like `respond` after `delay_ms`, from a timer thread:
//!   the proof that a plugin may answer later, from any thread. A request the
//!   host cancels (timeout, client gone, shutdown) leaves the timer at once
//!   and is answered 503, as the ABI asks; shutdown answers what is left.
//! - `fail` shows what the host does when a handler misbehaves: `mode` is
//!   `"panic"` (a 500), `"drop"` (the responder is dropped unanswered: a 500)
//!   or `"problem"` (a Problem Details answer with `status` and `detail`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use spikard_abi::{export_plugin, Host, Plugin, Request, Responder, RouteBinding};

/// A canned answer, prepared once per route so a request only copies bytes.
struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Canned {
    fn from_settings(settings: &Value) -> Result<Self, String> {
        let status = match settings.get("status") {
            None => 200,
            Some(v) => v
                .as_u64()
                .filter(|s| (100..=999).contains(s))
                .ok_or("settings.status must be an integer from 100 to 999")?
                as u16,
        };
        let mut headers = Vec::new();
        if let Some(map) = settings.get("headers") {
            let map = map.as_object().ok_or("settings.headers must be a table")?;
            for (name, value) in map {
                let value = value
                    .as_str()
                    .ok_or_else(|| format!("settings.headers.{name} must be a string"))?;
                headers.push((name.to_ascii_lowercase(), value.to_owned()));
            }
        }
        let has_type = headers.iter().any(|(n, _)| n == "content-type");
        let body = match settings.get("body") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(text)) => {
                if !has_type {
                    headers.push(("content-type".into(), "text/plain; charset=utf-8".into()));
                }
                text.clone().into_bytes()
            }
            Some(other) => {
                if !has_type {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                serde_json::to_vec(other).map_err(|e| e.to_string())?
            }
        };
        Ok(Canned {
            status,
            headers,
            body,
        })
    }

    fn send(&self, responder: Responder) {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // A refused response already became a 500; nothing more to do.
        let _ = responder.respond(self.status, &headers, &self.body);
    }
}

enum FailMode {
    Panic,
    Drop,
    Problem { status: u16, detail: String },
}

/// What one bound route does.
enum Route {
    Echo,
    Respond(Canned),
    Delay(Arc<Canned>, Duration),
    Fail(FailMode),
}

impl Route {
    fn bind(handler: &str, settings: &Value) -> Result<Self, String> {
        Ok(match handler {
            "echo" => Route::Echo,
            "respond" => Route::Respond(Canned::from_settings(settings)?),
            "delay" => {
                let ms = settings
                    .get("delay_ms")
                    .and_then(Value::as_u64)
                    .ok_or("the `delay` handler needs settings.delay_ms (an integer)")?;
                Route::Delay(
                    Arc::new(Canned::from_settings(settings)?),
                    Duration::from_millis(ms),
                )
            }
            "fail" => Route::Fail(match settings.get("mode").and_then(Value::as_str) {
                Some("panic") => FailMode::Panic,
                Some("drop") => FailMode::Drop,
                Some("problem") => FailMode::Problem {
                    status: settings.get("status").and_then(Value::as_u64).unwrap_or(500) as u16,
                    detail: settings
                        .get("detail")
                        .and_then(Value::as_str)
                        .unwrap_or("the handler failed")
                        .to_owned(),
                },
                _ => return Err("the `fail` handler needs settings.mode = \"panic\", \"drop\" or \"problem\"".into()),
            }),
            other => {
                return Err(format!(
                    "no handler named `{other}`; spikard_echo has `echo`, `respond`, `delay` and `fail`"
                ))
            }
        })
    }
}

/// What the timer thread is asked to do.
enum Job {
    /// Answer `responder` with `canned` at `at`; `request_id` names it for [`Job::Cancel`].
    Answer {
        at: Instant,
        request_id: String,
        canned: Arc<Canned>,
        responder: Responder,
    },
    /// The host gave up on this request: stop its timer and answer it now.
    Cancel(String),
    /// The host is stopping: answer everything pending and end the thread.
    Stop,
}

/// An answer waiting for its time.
struct Pending {
    seq: u64,
    request_id: String,
    canned: Arc<Canned>,
    responder: Responder,
}

/// Answers due later, kept by one timer thread in deadline order.
struct Timer {
    queue: Mutex<mpsc::Sender<Job>>,
    /// Joined by [`Timer::stop`], so that `shutdown` returns only once every pending
    /// request (and every cancel sent before it) has been answered.
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Timer {
    fn start() -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = thread::Builder::new()
            .name("spikard-echo-timer".into())
            .spawn(move || Timer::run(&rx))
            .expect("spawn the echo timer thread");
        Timer {
            queue: Mutex::new(tx),
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Answers what is pending and ends the thread; the jobs sent before (cancels) are
    /// handled first, as the queue is in order. The thread only waits on its queue, so the
    /// join is short.
    fn stop(&self) {
        let _ = self.send(Job::Stop);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Hands a job to the timer thread; false when the thread is gone.
    fn send(&self, job: Job) -> Result<(), Job> {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.send(job).map_err(|e| e.0)
    }

    fn run(rx: &mpsc::Receiver<Job>) {
        // Reverse: the earliest deadline on top. The sequence number keeps
        // entries ordered without comparing responders; entries whose
        // request was cancelled stay in the heap and are skipped.
        let mut due: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut seq = 0u64;
        loop {
            let next = due.peek().map(|Reverse((at, _))| *at);
            let received = match next {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match received {
                Ok(Job::Answer {
                    at,
                    request_id,
                    canned,
                    responder,
                }) => {
                    seq += 1;
                    due.push(Reverse((at, seq)));
                    pending.push(Pending {
                        seq,
                        request_id,
                        canned,
                        responder,
                    });
                }
                Ok(Job::Cancel(request_id)) => {
                    if let Some(i) = pending.iter().position(|p| p.request_id == request_id) {
                        let p = pending.swap_remove(i);
                        tracing::debug!(request_id = %p.request_id, "delay cancelled; answered 503");
                        let _ = p
                            .responder
                            .respond_error(503, "the request was cancelled", &[]);
                    }
                }
                Ok(Job::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    for p in pending.drain(..) {
                        let _ = p
                            .responder
                            .respond_error(503, "the server is shutting down", &[]);
                    }
                    return;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            while let Some(Reverse((at, id))) = due.peek().copied() {
                if at > now {
                    break;
                }
                due.pop();
                if let Some(i) = pending.iter().position(|p| p.seq == id) {
                    let p = pending.swap_remove(i);
                    p.canned.send(p.responder);
                }
            }
        }
    }
}

/// The plugin instance.
pub struct Echo {
    routes: RwLock<Vec<Route>>,
    timer: Timer,
}

fn echo(request: &Request<'_>, responder: Responder) {
    let mut headers = Map::new();
    for (name, value) in request.headers() {
        headers.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    let body = request.body();
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    let params: Value = serde_json::from_str(request.params_json()).unwrap_or(Value::Null);
    let answer = json!({
        "method": request.method(),
        "path": request.path(),
        "query": request.query(),
        "params": params,
        "headers": headers,
        "body": body,
    });
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    let _ = responder.respond(200, &[("content-type", "application/json")], &bytes);
}

impl Plugin for Echo {
    fn init(_host: Host, _settings_json: &str) -> Result<Self, String> {
        tracing::info!("spikard_echo ready");
        Ok(Echo {
            routes: RwLock::new(Vec::new()),
            timer: Timer::start(),
        })
    }

    fn bind_route(&self, binding: &RouteBinding<'_>) -> Result<u64, String> {
        let settings: Value = serde_json::from_str(binding.settings_json)
            .map_err(|e| format!("settings are not JSON: {e}"))?;
        let route = Route::bind(binding.handler, &settings)?;
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        routes.push(route);
        Ok((routes.len() - 1) as u64)
    }

    fn handle(&self, request: &Request<'_>, responder: Responder) {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let Some(route) = routes.get(request.handler_id() as usize) else {
            let _ = responder.respond_error(500, "unknown handler id", &[]);
            return;
        };
        match route {
            Route::Echo => echo(request, responder),
            Route::Respond(canned) => canned.send(responder),
            Route::Delay(canned, delay) => {
                let job = Job::Answer {
                    at: Instant::now() + *delay,
                    request_id: request.request_id().to_owned(),
                    canned: canned.clone(),
                    responder,
                };
                // If the timer thread is gone the job comes back and the
                // responder's drop answers 500.
                let _ = self.timer.send(job);
            }
            Route::Fail(FailMode::Panic) => panic!("the `fail` handler panics on purpose"),
            Route::Fail(FailMode::Drop) => drop(responder),
            Route::Fail(FailMode::Problem { status, detail }) => {
                let _ = responder.respond_error(*status, detail, &[]);
            }
        }
    }

    /// Stops the request's timer and answers it; requests of other handlers
    /// were answered inside `handle`, so there is nothing else to stop.
    fn cancel(&self, request_id: &str) {
        let _ = self.timer.send(Job::Cancel(request_id.to_owned()));
    }

    fn shutdown(&self, _deadline: Duration) {
        // Answering is immediate, so no deadline is needed.
        self.timer.stop();
        tracing::info!("spikard_echo stopped");
    }
}

export_plugin!(
    Echo,
    name = "spikard_echo",
    version = env!("CARGO_PKG_VERSION")
);
