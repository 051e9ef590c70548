//! `spikard_echo`: the reference plugin, and the smallest honest example of
//! one. Each route of the host's config names one of its handlers:
//!
//! - `echo` answers 200 with a JSON object of the method, path, raw query,
//!   validated `params`, headers and body it received.
//! - `respond` answers with the `status` (default 200), `headers` and `body`
//!   of the route's settings: a string body is sent as is, anything else as
//!   JSON. Conformance tests use it to serve canned responses.
//! - `delay` answers like `respond` after `delay_ms`, from a timer thread:
//!   the proof that a plugin may answer later, from any thread.
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

/// Answers due later, kept by one timer thread in deadline order.
struct Timer {
    queue: Mutex<mpsc::Sender<(Instant, Arc<Canned>, Responder)>>,
}

impl Timer {
    fn start() -> Self {
        let (tx, rx) = mpsc::channel::<(Instant, Arc<Canned>, Responder)>();
        thread::Builder::new()
            .name("spikard-echo-timer".into())
            .spawn(move || {
                // Reverse: the earliest deadline on top. The sequence number
                // keeps entries ordered without comparing responders.
                let mut due = BinaryHeap::new();
                let mut pending = Vec::new();
                let mut seq = 0u64;
                loop {
                    let next = due
                        .peek()
                        .map(|Reverse((at, _)): &Reverse<(Instant, u64)>| *at);
                    let received = match next {
                        None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                        Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                    };
                    match received {
                        Ok((at, canned, responder)) => {
                            seq += 1;
                            due.push(Reverse((at, seq)));
                            pending.push((seq, canned, responder));
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    let now = Instant::now();
                    while let Some(Reverse((at, id))) = due.peek().copied() {
                        if at > now {
                            break;
                        }
                        due.pop();
                        if let Some(i) = pending.iter().position(|(s, _, _)| *s == id) {
                            let (_, canned, responder) = pending.swap_remove(i);
                            canned.send(responder);
                        }
                    }
                }
            })
            .expect("spawn the echo timer thread");
        Timer {
            queue: Mutex::new(tx),
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
                let at = Instant::now() + *delay;
                let queue = self.timer.queue.lock().unwrap_or_else(|e| e.into_inner());
                // If the timer thread is gone the responder comes back and
                // its drop answers 500.
                let _ = queue.send((at, canned.clone(), responder));
            }
            Route::Fail(FailMode::Panic) => panic!("the `fail` handler panics on purpose"),
            Route::Fail(FailMode::Drop) => drop(responder),
            Route::Fail(FailMode::Problem { status, detail }) => {
                let _ = responder.respond_error(*status, detail, &[]);
            }
        }
    }

    fn shutdown(&self, _deadline: Duration) {
        tracing::info!("spikard_echo stopped");
    }
}

export_plugin!(
    Echo,
    name = "spikard_echo",
    version = env!("CARGO_PKG_VERSION")
);
