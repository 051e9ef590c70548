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
//! - `stream` streams a response (ABI 1.1): `status` (200), `headers`,
//!   `content_type` (`text/plain`), and a body of either `chunks` (strings,
//!   each sent as one chunk as given) or `count` chunks of `size` bytes
//!   (chunk `i` is `size` times the letter `b'a' + i % 26`), one every
//!   `interval_ms` (0). The timer thread writes them, never `handle`; when
//!   the host's buffer is full it waits for the ready callback (no polling),
//!   and it stops when the request closes or is cancelled (through a cancel
//!   token, logged as "stream cancelled"). The end is logged as "stream
//!   ended" with the number of chunks, bytes and FULL answers, also sent as
//!   the trailer `x-echo-full` to clients asking for trailers. On a 1.0 host
//!   the whole body is sent at once instead.
//! - `upload` reads the request body chunk by chunk (ABI 1.1, a route with
//!   `stream_body = true`) and answers JSON `{"bytes": N, "checksum": "…",
//!   "chunks": K}`: the byte count, the FNV-1a 64 hash of the bytes (16 hex
//!   digits) and how many chunks the host delivered; it keeps one chunk at a
//!   time, never the body. When the body fails (over `body_limit`, too slow,
//!   the client gone) the host has answered: it logs "upload failed" and stops;
//!   a cancellation logs "upload cancelled". On a route without `stream_body`
//!   (or a 1.0 host) it answers the same for the whole body at once.
//!
//! The plugin's own `settings.register` lists routes it declares itself during `init`
//! (`register_route`), as a framework plugin does for its application's routes: each entry
//! is `{method, path, handler, settings, schema}`, `schema` being the registration's
//! `schema_json` (schemas, limits, `openapi`, `info`): an object, or its JSON text as a
//! string. Tests use it to reach the host's checks of registered routes.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use spikard_abi::{
    export_plugin, BodyChunk, Host, Next, Plugin, Request, Responder, RouteBinding, RouteDecl,
    Stream, StreamError, Written,
};

/// `settings.status`: an integer from 100 to 999, 200 when absent.
fn parse_status(settings: &Value) -> Result<u16, String> {
    match settings.get("status") {
        None => Ok(200),
        Some(v) => v
            .as_u64()
            .filter(|s| (100..=999).contains(s))
            .map(|s| s as u16)
            .ok_or_else(|| "settings.status must be an integer from 100 to 999".into()),
    }
}

/// `settings.headers`: a table of strings, names lower-cased.
fn parse_headers(settings: &Value) -> Result<Vec<(String, String)>, String> {
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
    Ok(headers)
}

/// Borrows owned header pairs for a call.
fn header_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// A canned answer, prepared once per route so a request only copies bytes.
struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Canned {
    fn from_settings(settings: &Value) -> Result<Self, String> {
        let status = parse_status(settings)?;
        let mut headers = parse_headers(settings)?;
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
        // A refused response already became a 500; nothing more to do.
        let _ = responder.respond(self.status, &header_refs(&self.headers), &self.body);
    }
}

/// The body of a `stream` route.
enum StreamBody {
    /// The strings of `settings.chunks`, one chunk each.
    Chunks(Vec<Vec<u8>>),
    /// `count` chunks of `size` bytes; chunk `i` repeats the letter `b'a' + i % 26`.
    Generated { count: u64, size: usize },
}

/// What a `stream` route sends, prepared once per route.
struct StreamPlan {
    status: u16,
    headers: Vec<(String, String)>,
    body: StreamBody,
    interval: Duration,
}

/// The largest generated chunk, so a typo cannot make the plugin allocate gigabytes.
const MAX_CHUNK: u64 = 16 << 20;

impl StreamPlan {
    fn from_settings(settings: &Value) -> Result<Self, String> {
        let status = parse_status(settings)?;
        let mut headers = parse_headers(settings)?;
        if headers.iter().any(|(n, _)| n == "content-type") {
            return Err("set the `stream` handler's content type with settings.content_type, not settings.headers".into());
        }
        let content_type = match settings.get("content_type") {
            None => "text/plain",
            Some(v) => v.as_str().ok_or("settings.content_type must be a string")?,
        };
        headers.push(("content-type".into(), content_type.to_owned()));
        // HTTP/1.1 sends only the trailers the head declares.
        headers.push(("trailer".into(), "x-echo-full".into()));
        let interval = match settings.get("interval_ms") {
            None => 0,
            Some(v) => v
                .as_u64()
                .ok_or("settings.interval_ms must be an integer (ms)")?,
        };
        Ok(StreamPlan {
            status,
            headers,
            body: StreamPlan::body(settings)?,
            interval: Duration::from_millis(interval),
        })
    }

    fn body(settings: &Value) -> Result<StreamBody, String> {
        let need = "the `stream` handler needs settings.chunks (strings) or settings.count and settings.size (integers), not both";
        match (
            settings.get("chunks"),
            settings.get("count"),
            settings.get("size"),
        ) {
            (Some(chunks), None, None) => {
                let chunks = chunks
                    .as_array()
                    .ok_or("settings.chunks must be an array of strings")?;
                let chunks = chunks
                    .iter()
                    .map(|c| c.as_str().map(|s| s.as_bytes().to_vec()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("settings.chunks must be an array of strings")?;
                Ok(StreamBody::Chunks(chunks))
            }
            (None, Some(count), Some(size)) => {
                let count = count
                    .as_u64()
                    .ok_or("settings.count must be a non-negative integer")?;
                let size = size
                    .as_u64()
                    .filter(|s| (1..=MAX_CHUNK).contains(s))
                    .ok_or(format!(
                        "settings.size must be an integer from 1 to {MAX_CHUNK} (bytes)"
                    ))?;
                Ok(StreamBody::Generated {
                    count,
                    size: size as usize,
                })
            }
            _ => Err(need.into()),
        }
    }

    /// How many chunks the body has.
    fn len(&self) -> u64 {
        match &self.body {
            StreamBody::Chunks(chunks) => chunks.len() as u64,
            StreamBody::Generated { count, .. } => *count,
        }
    }

    /// Chunk `i` (< `len()`).
    fn chunk(&self, i: u64) -> Cow<'_, [u8]> {
        match &self.body {
            StreamBody::Chunks(chunks) => Cow::Borrowed(&chunks[i as usize]),
            StreamBody::Generated { size, .. } => Cow::Owned(vec![b'a' + (i % 26) as u8; *size]),
        }
    }

    /// The whole body at once, for a host that cannot stream (ABI 1.0).
    fn whole_body(&self) -> Vec<u8> {
        (0..self.len())
            .flat_map(|i| self.chunk(i).into_owned())
            .collect()
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
    Stream(Arc<StreamPlan>),
    Upload,
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
            "stream" => Route::Stream(Arc::new(StreamPlan::from_settings(settings)?)),
            "upload" => Route::Upload,
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
                    "no handler named `{other}`; spikard_echo has `echo`, `respond`, `delay`, `fail`, `stream` and `upload`"
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
    /// Stream `plan` to `responder`; the host cancels it by `token` (or by `request_id`
    /// on a 1.0 host).
    Stream {
        request_id: String,
        token: u64,
        plan: Arc<StreamPlan>,
        responder: Responder,
    },
    /// The stream with this token can take a write again (or has closed).
    Ready(u64),
    /// The host gave up on this request: stop its timer or stream, answer it now.
    Cancel(String),
    /// As `Cancel`, for the stream given this cancel token.
    CancelToken(u64),
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

/// A stream being written.
struct Streaming {
    request_id: String,
    plan: Arc<StreamPlan>,
    stream: Stream,
    /// The next chunk to write.
    next: u64,
    bytes: u64,
    /// How many writes the host answered FULL (backpressure seen).
    full: u64,
    /// Waiting for the host's ready callback rather than for a time in the heap.
    waiting: bool,
}

/// What an entry of the deadline heap is for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// The delayed answer with this sequence number.
    Delay(u64),
    /// The next write of the stream with this token.
    Stream(u64),
}

/// At most this many chunks per turn of one stream, so a fast client of one stream does
/// not hold up the timer's other work.
const BURST: usize = 64;

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
        let state = TimerState::new(tx.clone());
        let thread = thread::Builder::new()
            .name("spikard-echo-timer".into())
            .spawn(move || state.run(&rx))
            .expect("spawn the echo timer thread");
        Timer {
            queue: Mutex::new(tx),
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Answers what is pending and ends the thread; the jobs sent before (cancels) are
    /// handled first, as the queue is in order. The thread only waits on its queue, so the
    /// join is short. A second call does nothing.
    fn stop(&self) {
        let _ = self.send(Job::Stop);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Hands a job to the timer thread; the job comes back when the thread is gone.
    fn send(&self, job: Job) -> Result<(), Job> {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.send(job).map_err(|e| e.0)
    }
}

impl Drop for Timer {
    /// The thread holds a sender to its own queue (for ready callbacks), so it would not
    /// see the queue close: stop it explicitly.
    fn drop(&mut self) {
        self.stop();
    }
}

/// The timer thread's state: delayed answers and streams, with one heap of deadlines.
struct TimerState {
    /// Reverse: the earliest deadline on top. Entries whose delay or stream is gone
    /// stay in the heap and are skipped.
    due: BinaryHeap<Reverse<(Instant, Key)>>,
    pending: Vec<Pending>,
    streams: HashMap<u64, Streaming>,
    seq: u64,
    /// For ready callbacks, which post [`Job::Ready`] back to this thread.
    queue: mpsc::Sender<Job>,
}

impl TimerState {
    fn new(queue: mpsc::Sender<Job>) -> Self {
        TimerState {
            due: BinaryHeap::new(),
            pending: Vec::new(),
            streams: HashMap::new(),
            seq: 0,
            queue,
        }
    }

    fn run(mut self, rx: &mpsc::Receiver<Job>) {
        loop {
            let next = self.due.peek().map(|Reverse((at, _))| *at);
            let received = match next {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match received {
                Ok(Job::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.stop();
                    return;
                }
                Ok(job) => self.take(job),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            self.run_due();
        }
    }

    /// Handles one job other than `Stop`.
    fn take(&mut self, job: Job) {
        match job {
            Job::Answer {
                at,
                request_id,
                canned,
                responder,
            } => {
                self.seq += 1;
                self.due.push(Reverse((at, Key::Delay(self.seq))));
                self.pending.push(Pending {
                    seq: self.seq,
                    request_id,
                    canned,
                    responder,
                });
            }
            Job::Stream {
                request_id,
                token,
                plan,
                responder,
            } => self.start_stream(request_id, token, plan, responder),
            Job::Ready(token) => self.ready(token),
            Job::Cancel(request_id) => self.cancel(&request_id),
            Job::CancelToken(token) => self.cancel_stream(token),
            Job::Stop => self.stop(),
        }
    }

    /// Runs what is due: delayed answers and stream writes.
    fn run_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, key))) = self.due.peek().copied() {
            if at > now {
                break;
            }
            self.due.pop();
            match key {
                Key::Delay(seq) => {
                    if let Some(i) = self.pending.iter().position(|p| p.seq == seq) {
                        let p = self.pending.swap_remove(i);
                        p.canned.send(p.responder);
                    }
                }
                Key::Stream(token) => self.pump(token),
            }
        }
    }

    fn start_stream(
        &mut self,
        request_id: String,
        token: u64,
        plan: Arc<StreamPlan>,
        responder: Responder,
    ) {
        if !responder.can_stream() {
            // A 1.0 host: the same body, at once.
            let body = plan.whole_body();
            let _ = responder.respond(plan.status, &header_refs(&plan.headers), &body);
            return;
        }
        let stream = match responder.start_stream(plan.status, &header_refs(&plan.headers)) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::info!(request_id, "stream not started: {e}");
                return;
            }
        };
        self.streams.insert(
            token,
            Streaming {
                request_id,
                plan,
                stream,
                next: 0,
                bytes: 0,
                full: 0,
                waiting: false,
            },
        );
        self.due.push(Reverse((Instant::now(), Key::Stream(token))));
    }

    /// Writes the stream's next chunks: one per `interval`, or up to [`BURST`] at once
    /// without one; on FULL waits for the ready callback; ends the stream after the last.
    fn pump(&mut self, token: u64) {
        let Some(s) = self.streams.get_mut(&token) else {
            return;
        };
        if s.waiting {
            return;
        }
        for _ in 0..BURST {
            if s.next == s.plan.len() {
                self.finish(token);
                return;
            }
            let chunk = s.plan.chunk(s.next);
            match s.stream.write(&chunk) {
                Ok(Written::Taken) => {
                    s.next += 1;
                    s.bytes += chunk.len() as u64;
                    if !s.plan.interval.is_zero() && s.next < s.plan.len() {
                        let at = Instant::now() + s.plan.interval;
                        self.due.push(Reverse((at, Key::Stream(token))));
                        return;
                    }
                }
                Ok(Written::Full) => {
                    s.full += 1;
                    s.waiting = true;
                    let queue = self.queue.clone();
                    let registered = s.stream.on_ready(move || {
                        // On a host thread: only post a message.
                        let _ = queue.send(Job::Ready(token));
                    });
                    if let Err(e) = registered {
                        self.drop_stream(token, e);
                    }
                    return;
                }
                Err(e) => {
                    self.drop_stream(token, e);
                    return;
                }
            }
        }
        self.due.push(Reverse((Instant::now(), Key::Stream(token))));
    }

    /// The host can take writes again (or the stream closed: the next write says so).
    fn ready(&mut self, token: u64) {
        if let Some(s) = self.streams.get_mut(&token) {
            s.waiting = false;
            self.due.push(Reverse((Instant::now(), Key::Stream(token))));
        }
    }

    /// Every chunk was taken: end the body, with the FULL count as a trailer.
    fn finish(&mut self, token: u64) {
        let Some(s) = self.streams.remove(&token) else {
            return;
        };
        let full = s.full.to_string();
        let ended = s.stream.end(&[("x-echo-full", &full)]);
        tracing::info!(
            request_id = %s.request_id,
            chunks = s.next,
            bytes = s.bytes,
            full = s.full,
            "stream ended ({})",
            match ended {
                Ok(()) => "complete".to_owned(),
                Err(e) => e.to_string(),
            }
        );
    }

    /// The host closed the request or refused a call: stop writing.
    fn drop_stream(&mut self, token: u64, error: StreamError) {
        if let Some(s) = self.streams.remove(&token) {
            tracing::info!(
                request_id = %s.request_id,
                chunks = s.next,
                full = s.full,
                "stream stopped: {error}"
            );
        }
    }

    /// The host cancelled the stream with this token (client gone, server stopping):
    /// stop writing; dropping the stream ends it.
    fn cancel_stream(&mut self, token: u64) {
        match self.streams.remove(&token) {
            Some(s) => tracing::info!(
                request_id = %s.request_id,
                chunks = s.next,
                of = s.plan.len(),
                full = s.full,
                "stream cancelled"
            ),
            None => tracing::debug!(token, "cancel for a stream that is over"),
        }
    }

    /// The host gave up on a request (by id: a delay, or a stream on a 1.0 host).
    fn cancel(&mut self, request_id: &str) {
        if let Some(i) = self.pending.iter().position(|p| p.request_id == request_id) {
            let p = self.pending.swap_remove(i);
            tracing::debug!(request_id = %p.request_id, "delay cancelled; answered 503");
            let _ = p
                .responder
                .respond_error(503, "the request was cancelled", &[]);
            return;
        }
        let token = self
            .streams
            .iter()
            .find(|(_, s)| s.request_id == request_id)
            .map(|(token, _)| *token);
        if let Some(token) = token {
            self.cancel_stream(token);
        }
    }

    /// The host is stopping: answer pending delays 503 and end the streams.
    fn stop(&mut self) {
        for p in self.pending.drain(..) {
            let _ = p
                .responder
                .respond_error(503, "the server is shutting down", &[]);
        }
        for (_, s) in self.streams.drain() {
            tracing::info!(request_id = %s.request_id, chunks = s.next, "stream ended by shutdown");
        }
    }
}

/// What the `upload` handler learns of a body: its size, chunk count and FNV-1a 64 hash.
struct Upload {
    bytes: u64,
    chunks: u64,
    hash: u64,
}

impl Upload {
    fn new() -> Self {
        Upload {
            bytes: 0,
            chunks: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    fn add(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        self.chunks += 1;
        for &b in chunk {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn answer(&self, responder: Responder) {
        let body = json!({
            "bytes": self.bytes,
            "checksum": format!("{:016x}", self.hash),
            "chunks": self.chunks,
        });
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let _ = responder.respond(200, &[("content-type", "application/json")], &bytes);
    }
}

/// A lock, also after a panic elsewhere poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `upload` handler: reads a streamed body chunk by chunk on the host's threads (each
/// callback only hashes one chunk and asks for the next) and answers at its end. `token` is
/// the request's cancel token, kept in `uploads` until the body ends or a cancel comes.
fn upload(
    request: &Request<'_>,
    responder: Responder,
    token: u64,
    uploads: &Arc<Mutex<HashMap<u64, String>>>,
) {
    let mut sum = Upload::new();
    if !request.body_streamed() {
        sum.add(request.body());
        sum.answer(responder);
        return;
    }
    let request_id = request.request_id().to_owned();
    // Set before reading: the cancellation of a failed body comes by token.
    if responder.set_cancel_token(token).is_ok() {
        lock(uploads).insert(token, request_id.clone());
    }
    let live = uploads.clone();
    let started = responder.read_body(move |chunk| match chunk {
        BodyChunk::Data(data, responder) => {
            sum.add(data);
            Next::More(responder)
        }
        BodyChunk::End(responder) => {
            lock(&live).remove(&token);
            tracing::info!(
                request_id,
                bytes = sum.bytes,
                chunks = sum.chunks,
                "upload complete"
            );
            sum.answer(responder);
            Next::Stop
        }
        BodyChunk::Failed => {
            // The host answered (413, 408, ...) or the client left; its cancel follows.
            tracing::info!(
                request_id,
                bytes = sum.bytes,
                chunks = sum.chunks,
                "upload failed"
            );
            Next::Stop
        }
    });
    if let Err((error, responder)) = started {
        lock(uploads).remove(&token);
        let _ = responder.respond_error(500, &format!("cannot read the body: {error}"), &[]);
    }
}

/// The plugin instance.
pub struct Echo {
    routes: RwLock<Vec<Route>>,
    timer: Timer,
    /// The cancel token of the next stream.
    next_token: AtomicU64,
    /// Uploads being read, by cancel token: a cancellation of one is logged here.
    uploads: Arc<Mutex<HashMap<u64, String>>>,
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

/// Declares the routes of `settings.register` with the host; they take handler ids from 0,
/// before any config route binds.
fn register_routes(host: &Host, settings_json: &str) -> Result<Vec<Route>, String> {
    let settings: Value =
        serde_json::from_str(settings_json).map_err(|e| format!("settings are not JSON: {e}"))?;
    let Some(entries) = settings.get("register") else {
        return Ok(Vec::new());
    };
    let entries = entries
        .as_array()
        .ok_or("settings.register must be a list of routes")?;
    let mut routes = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let text = |key: &str| {
            entry
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("settings.register[{i}].{key} must be a string"))
        };
        let (method, path, handler) = (text("method")?, text("path")?, text("handler")?);
        let route_settings = entry.get("settings").cloned().unwrap_or_else(|| json!({}));
        let route = Route::bind(handler, &route_settings)
            .map_err(|e| format!("settings.register[{i}]: {e}"))?;
        let schema = match entry.get("schema") {
            Some(Value::String(text)) => text.clone(),
            Some(object) => object.to_string(),
            None => String::new(),
        };
        host.register_route(&RouteDecl {
            method,
            path,
            handler_id: routes.len() as u64,
            schema_json: &schema,
        })
        .map_err(|_| format!("settings.register[{i}]: the host refused the route"))?;
        routes.push(route);
    }
    Ok(routes)
}

impl Plugin for Echo {
    fn init(host: Host, settings_json: &str) -> Result<Self, String> {
        let routes = register_routes(&host, settings_json)?;
        tracing::info!("spikard_echo ready");
        Ok(Echo {
            routes: RwLock::new(routes),
            timer: Timer::start(),
            next_token: AtomicU64::new(1),
            uploads: Arc::default(),
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
            Route::Upload => {
                let token = self.next_token.fetch_add(1, Ordering::Relaxed);
                upload(request, responder, token, &self.uploads);
            }
            Route::Stream(plan) => {
                let token = self.next_token.fetch_add(1, Ordering::Relaxed);
                // Set before the timer has the responder, so no cancellation is missed. On a
                // 1.0 host (NotSupported) cancellations come by request id instead.
                let _ = responder.set_cancel_token(token);
                let job = Job::Stream {
                    request_id: request.request_id().to_owned(),
                    token,
                    plan: plan.clone(),
                    responder,
                };
                let _ = self.timer.send(job);
            }
            Route::Fail(FailMode::Panic) => panic!("the `fail` handler panics on purpose"),
            Route::Fail(FailMode::Drop) => drop(responder),
            Route::Fail(FailMode::Problem { status, detail }) => {
                let _ = responder.respond_error(*status, detail, &[]);
            }
        }
    }

    /// Stops the request's timer and answers it (or stops its stream on a 1.0 host);
    /// requests of other handlers were answered inside `handle`, so there is nothing
    /// else to stop.
    fn cancel(&self, request_id: &str) {
        let _ = self.timer.send(Job::Cancel(request_id.to_owned()));
    }

    /// Stops the stream given this token: the client left or the server is stopping.
    fn cancel_token(&self, token: u64) {
        let upload = lock(&self.uploads).remove(&token);
        if let Some(request_id) = upload {
            tracing::info!(request_id, "upload cancelled");
            return;
        }
        let _ = self.timer.send(Job::CancelToken(token));
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

#[cfg(test)]
mod tests {
    use super::Upload;

    #[test]
    fn the_upload_hash_is_fnv_1a_64_over_every_chunk() {
        let mut whole = Upload::new();
        whole.add(b"");
        assert_eq!(whole.hash, 0xcbf2_9ce4_8422_2325, "the offset basis");
        whole.add(b"a");
        assert_eq!(whole.hash, 0xaf63_dc4c_8601_ec8c, "the published vector");
        let mut split = Upload::new();
        split.add(b"fo");
        split.add(b"obar");
        assert_eq!(split.hash, 0x8594_4171_f739_67e8, "FNV-1a 64 of \"foobar\"");
        assert_eq!((split.bytes, split.chunks), (6, 2));
    }
}
