//! The responder table: what the `spk_responder*` a plugin answers through really is.
//!
//! A responder is not a pointer to host memory. It is a handle, `generation << INDEX_BITS |
//! index`, naming a slot of one process-wide table; the host checks it on every call. A slot
//! is owned by its request (the [`Ticket`]); the plugin only ever names it. So a second
//! answer, an answer after the request ended (timeout, client gone, shutdown) or an answer
//! on a slot since reused for another request is an error return and one log line, never
//! undefined behaviour; and a responder the plugin never answers does not leak: the request
//! reclaims its slot when it ends, releasing the in-flight [`Permit`] with it.
//!
//! # Hot path
//! One request costs one slot taken from a free list and one answer; no allocation:
//! - the free lists are [`SHARDS`] short `Vec`s of indices behind their own mutex, each
//!   held for one push or pop; a thread uses its own shard (threads are spread round-robin)
//!   and only looks at the others when its shard is empty, so the table grows only to the
//!   number of requests in flight at once;
//! - slots live in segments of doubling size allocated once and never moved or freed, so
//!   finding a slot from a handle is arithmetic and an atomic load, without a lock;
//! - each slot has its own mutex, held for a few field moves (and the copy of a streamed
//!   chunk): the plugin's thread and the request's task are the only ones that touch it.
//!
//! Wakers and ready callbacks are taken out under the slot's lock and called after it is
//! released, so neither can re-enter a locked slot.
//!
//! # Streams
//! `stream_start` turns the slot into a stream: the head goes to the request, which then
//! sends it and reads body chunks from the slot ([`Ticket::poll_frame`]). Writes are taken
//! while fewer than [`STREAM_BUFFER`] bytes are pending; ready callbacks run when the
//! reader has taken the pending bytes below half of that, or when the request ends, each
//! exactly once, always from the request's (tokio) side, never inside the plugin's call.

use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use hyper::body::Frame;
use spikard_abi::ffi;

use super::admission::Permit;
use super::host_api::Answer;

pub mod body_stream;

use body_stream::Inbound;

/// Body bytes a stream may hold before `stream_write` answers `FULL`: a write is taken
/// while fewer are pending, so one chunk may take it past the limit.
pub const STREAM_BUFFER: usize = 64 * 1024;

/// Bits of a handle that hold the slot index; the rest hold its generation.
const INDEX_BITS: u32 = if usize::BITS >= 64 { 32 } else { 20 };
/// The largest generation; generations run 1..=MAX_GENERATION, so a handle is never 0.
const MAX_GENERATION: u32 = if usize::BITS >= 64 {
    u32::MAX
} else {
    (1 << (usize::BITS - INDEX_BITS)) - 1
};
/// Slots in the first segment; segment `k > 0` holds `FIRST_SEGMENT << (k - 1)`.
const FIRST_SEGMENT: usize = 64;
/// Segments enough for every index a handle can hold.
const SEGMENTS: usize = (INDEX_BITS - FIRST_SEGMENT.trailing_zeros() + 1) as usize;
/// Free-list shards; a thread keeps to one.
const SHARDS: usize = 16;

/// The process's responders.
struct Table {
    /// Allocated on first use, never moved or freed.
    segments: [OnceLock<Box<[Slot]>>; SEGMENTS],
    /// Indices never handed out start here.
    next: AtomicUsize,
    /// Indices of free slots.
    free: [Shard; SHARDS],
}

/// One free list, alone on its cache lines so threads using neighbouring shards do not
/// contend on them.
#[repr(align(128))]
struct Shard(Mutex<Vec<u32>>);

static TABLE: Table = Table {
    segments: [const { OnceLock::new() }; SEGMENTS],
    next: AtomicUsize::new(0),
    free: [const { Shard(Mutex::new(Vec::new())) }; SHARDS],
};

/// Hands threads their shard, round-robin.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's free-list shard, chosen on first use.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// One request's slot, on cache lines of its own: slots of requests served by different
/// threads never share one.
#[repr(align(128))]
struct Slot(Mutex<State>);

/// One slot: which request owns it and how far its answer got.
struct State {
    /// The generation of the current (or, when free, the next) handle of this slot.
    generation: u32,
    phase: Phase,
    /// How the previous generation ended and for which plugin: a late call on its handle
    /// is logged as an answer given twice or as one after the request ended.
    previous: Option<(Ended, &'static str)>,
    /// The plugin, for log lines.
    plugin: &'static str,
    /// Released at the answer or when the request ends.
    permit: Option<Permit>,
    /// Set with `set_cancel_token`.
    token: Option<u64>,
    /// The request's task (waiting for the answer, or for body chunks).
    waker: Option<Waker>,
    /// The request body, when its route streams it to the plugin (`body_next`).
    body: Option<Box<Inbound>>,
}

/// Where a slot's request is.
enum Phase {
    /// Not in use.
    Free,
    /// With the plugin, not answered yet.
    Waiting,
    /// Answered whole; the request has not taken the answer yet.
    Answered(Answer),
    /// Answered whole and taken.
    Taken,
    /// Answered with a stream (`stream_start`).
    Streaming(Box<Stream>),
}

/// A streamed body between the plugin's writes and the request's reads.
struct Stream {
    /// Status and headers until the request takes them.
    head: Option<(StatusCode, HeaderMap)>,
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    pending: usize,
    /// Callbacks waiting for room.
    ready: Vec<ReadyCall>,
    /// `stream_end` was called: no more writes; the reader drains `chunks` and stops.
    ended: bool,
    /// From `stream_end`, sent when the client accepts trailers.
    trailers: Option<HeaderMap>,
}

/// How a slot's use ended, for the log line of a late call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The plugin answered (or ended its stream).
    Answered,
    /// The request ended first (timeout, client gone, shutdown).
    Abandoned,
}

/// A plugin's `ready(user)` callback, called once from a host thread.
pub struct ReadyCall {
    ready: ffi::ReadyFn,
    user: *mut c_void,
}

// SAFETY: the ABI lets the host call `ready(user)` from any of its threads; `user` is the
// plugin's pointer, passed back untouched.
unsafe impl Send for ReadyCall {}

impl ReadyCall {
    /// The callback `ready(user)` as the plugin gave it to `stream_on_ready`.
    pub fn new(ready: ffi::ReadyFn, user: *mut c_void) -> Self {
        ReadyCall { ready, user }
    }
}

/// Ready callbacks due to run; [`super::LoadedPlugin`] runs them while the plugin is up.
#[derive(Default)]
#[must_use = "ready callbacks must be run exactly once"]
pub struct ReadyCalls(Vec<ReadyCall>);

impl ReadyCalls {
    /// Whether there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Calls each callback once.
    ///
    /// # Safety
    /// The plugin that registered them must not have been shut down.
    pub unsafe fn run(self) {
        for call in self.0 {
            // SAFETY: per the caller; each call is consumed, so it runs once.
            unsafe { (call.ready)(call.user) };
        }
    }
}

impl fmt::Debug for ReadyCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadyCalls({})", self.0.len())
    }
}

/// What the plugin gave the request: a whole answer, or the head of a stream whose body
/// the request then reads with [`Ticket::poll_frame`].
#[derive(Debug)]
pub enum Delivery {
    /// `respond` or `respond_error` (or a malformed `stream_start`).
    Answer(Answer),
    /// `stream_start`: status and headers.
    Head(StatusCode, HeaderMap),
}

/// What a request learns when it gives its slot back.
#[derive(Debug)]
pub struct Released {
    /// The plugin had not answered or ended its stream: it should hear of the cancellation.
    pub unfinished: bool,
    /// The token the plugin set with `set_cancel_token`.
    pub token: Option<u64>,
    /// Ready callbacks still registered: they run now, the stream being closed.
    pub ready: ReadyCalls,
}

/// A request's ownership of its slot. Dropping it reclaims the slot; use
/// [`Ticket::release`] to learn whether the plugin must be told (and to run its ready
/// callbacks).
#[derive(Debug)]
pub struct Ticket {
    index: u32,
    generation: u32,
}

/// Takes a free slot for a request of the plugin `permit` belongs to. `None` only when
/// every index a handle can hold is in use.
pub fn open(permit: Permit) -> Option<Ticket> {
    let index = take_index()?;
    let mut state = lock(&slot(index)?.0);
    debug_assert!(matches!(state.phase, Phase::Free));
    state.phase = Phase::Waiting;
    state.plugin = permit.plugin();
    state.permit = Some(permit);
    Some(Ticket {
        index: index as u32,
        generation: state.generation,
    })
}

impl Ticket {
    /// The `spk_responder*` the plugin receives.
    pub fn handle(&self) -> *mut ffi::ResponderHandle {
        let raw = ((self.generation as usize) << INDEX_BITS) | self.index as usize;
        raw as *mut ffi::ResponderHandle
    }

    /// Gives the slot the request body its plugin will read with `body_next` (a route with
    /// `stream_body`); done before the plugin's `handle` is called.
    pub fn attach_body(&self, body: Inbound) {
        self.state().body = Some(Box::new(body));
    }

    /// This request's slot, locked.
    fn state(&self) -> MutexGuard<'static, State> {
        let slot = slot(self.index as usize).expect("a ticket's slot exists");
        let state = lock(&slot.0);
        debug_assert_eq!(state.generation, self.generation);
        state
    }

    /// The plugin's answer once it came: a whole one, or a stream's head (taken once).
    /// With `cx`, the task is woken when it comes; without, this only looks.
    pub fn poll_delivery(&self, cx: Option<&mut Context<'_>>) -> Poll<Delivery> {
        let mut state = self.state();
        let state = &mut *state;
        match &mut state.phase {
            Phase::Answered(_) => match std::mem::replace(&mut state.phase, Phase::Taken) {
                Phase::Answered(answer) => Poll::Ready(Delivery::Answer(answer)),
                _ => unreachable!("matched above"),
            },
            Phase::Streaming(stream) if stream.head.is_some() => {
                let (status, headers) = stream.head.take().expect("checked");
                Poll::Ready(Delivery::Head(status, headers))
            }
            Phase::Waiting => {
                if let Some(cx) = cx {
                    register(&mut state.waker, cx);
                }
                Poll::Pending
            }
            Phase::Streaming(_) | Phase::Taken | Phase::Free => Poll::Ready(Delivery::Answer(
                Answer::Invalid("the answer was already taken (a host bug)".into()),
            )),
        }
    }

    /// The next frame of a streamed body: a chunk, then the trailers (only when
    /// `trailers` says the client takes them), then the end once the plugin ended the
    /// stream. Also the ready callbacks now due, for the caller to run after this returns.
    pub fn poll_frame(
        &self,
        cx: &mut Context<'_>,
        trailers: bool,
    ) -> (Poll<Option<Frame<Bytes>>>, ReadyCalls) {
        let mut state = self.state();
        let state = &mut *state;
        let Phase::Streaming(stream) = &mut state.phase else {
            return (Poll::Ready(None), ReadyCalls::default());
        };
        let frame = if let Some(chunk) = stream.chunks.pop_front() {
            stream.pending -= chunk.len();
            Poll::Ready(Some(Frame::data(chunk)))
        } else if stream.ended {
            match stream.trailers.take() {
                Some(map) if trailers => Poll::Ready(Some(Frame::trailers(map))),
                _ => Poll::Ready(None),
            }
        } else {
            register(&mut state.waker, cx);
            Poll::Pending
        };
        let ready = if stream.pending < STREAM_BUFFER / 2 {
            ReadyCalls(std::mem::take(&mut stream.ready))
        } else {
            ReadyCalls::default()
        };
        (frame, ready)
    }

    /// Gives the slot back: the request is over. Every later call on its handle is an
    /// error; the permit is released if the plugin still held it.
    pub fn release(self) -> Released {
        let released = self.reclaim();
        std::mem::forget(self);
        released
    }

    fn reclaim(&self) -> Released {
        let mut state = self.state();
        let (unfinished, answered) = match &state.phase {
            Phase::Waiting => (true, false),
            Phase::Streaming(stream) => (!stream.ended, stream.ended),
            Phase::Answered(_) | Phase::Taken => (false, true),
            Phase::Free => (false, false),
        };
        // The host answered for the plugin (its streamed body failed): not the plugin's end.
        let body = state.body.take();
        let refused = body.as_ref().is_some_and(|body| body.refused());
        let (unfinished, answered) = (unfinished || refused, answered && !refused);
        let phase = std::mem::replace(&mut state.phase, Phase::Free);
        let ended = if answered {
            Ended::Answered
        } else {
            Ended::Abandoned
        };
        state.previous = Some((ended, state.plugin));
        state.generation = next_generation(state.generation);
        let permit = state.permit.take();
        let token = state.token.take();
        let waker = state.waker.take();
        drop(state);
        // Dropped outside the lock: the answer or pending chunks may be large.
        let ready = match phase {
            Phase::Streaming(mut stream) => ReadyCalls(std::mem::take(&mut stream.ready)),
            _ => ReadyCalls::default(),
        };
        drop((permit, waker, body));
        give_back(self.index);
        Released {
            unfinished,
            token,
            ready,
        }
    }
}

impl Drop for Ticket {
    /// A ticket dropped without [`Ticket::release`]: the slot is reclaimed all the same.
    fn drop(&mut self) {
        let released = self.reclaim();
        if !released.ready.is_empty() {
            tracing::error!(
                "a responder was reclaimed without running its ready callbacks (a host bug)"
            );
        }
        std::mem::forget(released.ready);
    }
}

/// Why a handle names no live request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dead {
    /// Not a handle this host gave out.
    Unknown,
    /// Its request ended; how, when the slot still remembers.
    Over(Option<(Ended, &'static str)>),
}

impl Dead {
    /// Logs one line for `call` on this dead handle.
    fn log(self, call: &str) {
        match self {
            Dead::Unknown => tracing::warn!(
                "{call} with a responder this host never gave out (or a corrupted one); ignored"
            ),
            Dead::Over(Some((Ended::Answered, plugin))) => tracing::warn!(
                plugin,
                "plugin `{plugin}` called {call} on a responder it had already answered; ignored (answer each request once)"
            ),
            Dead::Over(Some((Ended::Abandoned, plugin))) => tracing::debug!(
                plugin,
                "plugin `{plugin}` called {call} after its request ended (timed out, client gone or server stopping); ignored"
            ),
            Dead::Over(None) => tracing::debug!(
                "{call} on a responder whose request ended long ago; ignored"
            ),
        }
    }

    /// The return code of a stream call on this handle: `CLOSED` when the request ended
    /// under the plugin, `ERR` when the plugin had ended it itself or the handle is bogus.
    fn stream_code(self) -> i32 {
        match self {
            Dead::Over(Some((Ended::Answered, _))) | Dead::Unknown => ffi::ERR,
            Dead::Over(_) => ffi::CLOSED,
        }
    }
}

/// The live slot `raw` names, locked.
fn lookup(raw: *mut ffi::ResponderHandle) -> Result<MutexGuard<'static, State>, Dead> {
    let raw = raw as usize;
    let index = raw & ((1usize << INDEX_BITS) - 1);
    let generation = (raw >> INDEX_BITS) as u32;
    // The bits above the index hold at most MAX_GENERATION; 0 is never given out.
    if generation == 0 {
        return Err(Dead::Unknown);
    }
    let state = lock(&slot(index).ok_or(Dead::Unknown)?.0);
    if state.generation == generation {
        return match state.phase {
            Phase::Free => Err(Dead::Unknown),
            _ => Ok(state),
        };
    }
    if next_generation(generation) == state.generation {
        Err(Dead::Over(state.previous))
    } else {
        Err(Dead::Over(None))
    }
}

/// `respond` and `respond_error`: delivers a whole answer. `OK` when it was valid, `ERR`
/// when it was malformed (the client gets a 500) or the responder is not live.
pub fn answer(raw: *mut ffi::ResponderHandle, call: &str, answer: Answer) -> i32 {
    let rc = if matches!(answer, Answer::Invalid(_)) {
        ffi::ERR
    } else {
        ffi::OK
    };
    let mut state = match lookup(raw) {
        Ok(state) => state,
        Err(dead) => {
            dead.log(call);
            return ffi::ERR;
        }
    };
    if !matches!(state.phase, Phase::Waiting) {
        let plugin = state.plugin;
        drop(state);
        answered_twice(plugin, call);
        return ffi::ERR;
    }
    state.phase = Phase::Answered(answer);
    let permit = state.permit.take();
    let waker = state.waker.take();
    drop(state);
    drop(permit);
    wake(waker);
    rc
}

/// `stream_start`: the head of a streamed answer, or why it is malformed (the client then
/// gets a 500, as for a malformed `respond`).
pub fn stream_start(
    raw: *mut ffi::ResponderHandle,
    head: Result<(StatusCode, HeaderMap), String>,
) -> i32 {
    let mut state = match lookup(raw) {
        Ok(state) => state,
        Err(dead) => {
            dead.log("stream_start");
            return dead.stream_code();
        }
    };
    if !matches!(state.phase, Phase::Waiting) {
        let plugin = state.plugin;
        drop(state);
        answered_twice(plugin, "stream_start");
        return ffi::ERR;
    }
    let (rc, permit) = match head {
        Ok((status, headers)) => {
            state.phase = Phase::Streaming(Box::new(Stream {
                head: Some((status, headers)),
                chunks: VecDeque::new(),
                pending: 0,
                ready: Vec::new(),
                ended: false,
                trailers: None,
            }));
            (ffi::OK, None)
        }
        Err(reason) => {
            state.phase = Phase::Answered(Answer::Invalid(reason));
            (ffi::ERR, state.permit.take())
        }
    };
    let waker = state.waker.take();
    drop(state);
    drop(permit);
    wake(waker);
    rc
}

/// `stream_write`: copies `chunk` into the stream unless it is full.
pub fn stream_write(raw: *mut ffi::ResponderHandle, chunk: &[u8]) -> i32 {
    let mut guard = match running_slot(raw, "stream_write") {
        Ok(guard) => guard,
        Err(code) => return code,
    };
    let state = &mut *guard;
    let Ok(stream) = running(&mut state.phase) else {
        return ffi::ERR; // checked by `running_slot`, under the same lock
    };
    if chunk.is_empty() {
        return ffi::OK;
    }
    if stream.pending >= STREAM_BUFFER {
        return ffi::FULL;
    }
    stream.chunks.push_back(Bytes::copy_from_slice(chunk));
    stream.pending += chunk.len();
    let waker = state.waker.take();
    drop(guard);
    wake(waker);
    ffi::OK
}

/// `stream_on_ready`: `call` runs once the reader has room for more, or the request ends.
pub fn stream_on_ready(raw: *mut ffi::ResponderHandle, call: ReadyCall) -> i32 {
    let mut guard = match running_slot(raw, "stream_on_ready") {
        Ok(guard) => guard,
        Err(code) => return code,
    };
    let state = &mut *guard;
    let Ok(stream) = running(&mut state.phase) else {
        return ffi::ERR; // checked by `running_slot`, under the same lock
    };
    stream.ready.push(call);
    // Room already: the reader's next poll runs it (never this call), so wake the reader.
    let waker = if stream.pending < STREAM_BUFFER / 2 {
        state.waker.take()
    } else {
        None
    };
    drop(guard);
    wake(waker);
    ffi::OK
}

/// `stream_end`: no more chunks; `trailers` follow them (or why they were malformed: the
/// stream ends without them and the call fails).
pub fn stream_end(raw: *mut ffi::ResponderHandle, trailers: Result<HeaderMap, String>) -> i32 {
    let mut guard = match running_slot(raw, "stream_end") {
        Ok(guard) => guard,
        Err(code) => return code,
    };
    let state = &mut *guard;
    let Ok(stream) = running(&mut state.phase) else {
        return ffi::ERR; // checked by `running_slot`, under the same lock
    };
    stream.ended = true;
    let invalid = match trailers {
        Ok(map) => {
            stream.trailers = Some(map).filter(|m| !m.is_empty());
            None
        }
        Err(reason) => Some(reason),
    };
    let plugin = state.plugin;
    let permit = state.permit.take();
    let waker = state.waker.take();
    drop(guard);
    drop(permit);
    wake(waker);
    match invalid {
        None => ffi::OK,
        Some(reason) => {
            tracing::warn!(plugin, "plugin `{plugin}` ended a stream with invalid trailers ({reason}); the body ends without them");
            ffi::ERR
        }
    }
}

/// `set_cancel_token`: a cancellation of this request is then reported with `token`.
pub fn set_cancel_token(raw: *mut ffi::ResponderHandle, token: u64) -> i32 {
    let mut state = match lookup(raw) {
        Ok(state) => state,
        Err(dead) => {
            dead.log("set_cancel_token");
            return ffi::ERR;
        }
    };
    let live = match &state.phase {
        Phase::Waiting => true,
        Phase::Streaming(stream) => !stream.ended,
        _ => false,
    };
    if !live {
        let plugin = state.plugin;
        drop(state);
        tracing::debug!(plugin, "plugin `{plugin}` called set_cancel_token on a responder it had already answered; ignored");
        return ffi::ERR;
    }
    state.token = Some(token);
    ffi::OK
}

/// The slot of `raw` with its stream running, locked; otherwise the code the call returns
/// (after logging a dead handle or the misuse).
fn running_slot(
    raw: *mut ffi::ResponderHandle,
    call: &'static str,
) -> Result<MutexGuard<'static, State>, i32> {
    let mut guard = lookup(raw).map_err(|dead| {
        dead.log(call);
        dead.stream_code()
    })?;
    if let Err(why) = running(&mut guard.phase) {
        let plugin = guard.plugin;
        drop(guard);
        misuse(plugin, call, why);
        return Err(ffi::ERR);
    }
    Ok(guard)
}

/// The stream a stream call may use, or why it may not.
fn running(phase: &mut Phase) -> Result<&mut Stream, &'static str> {
    match phase {
        Phase::Streaming(stream) if !stream.ended => Ok(stream),
        Phase::Streaming(_) => Err("after stream_end"),
        Phase::Waiting => Err("before stream_start"),
        _ => Err("on a responder answered with respond"),
    }
}

fn answered_twice(plugin: &str, call: &str) {
    tracing::warn!(
        plugin,
        "plugin `{plugin}` called {call} on a responder it had already answered; ignored (answer each request once)"
    );
}

fn misuse(plugin: &str, call: &str, why: &str) {
    tracing::warn!(plugin, "plugin `{plugin}` called {call} {why}; refused");
}

/// Stores the task's waker unless the same one is there.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

fn next_generation(generation: u32) -> u32 {
    if generation == MAX_GENERATION {
        1
    } else {
        generation + 1
    }
}

/// A slot by index, if its segment exists.
fn slot(index: usize) -> Option<&'static Slot> {
    let (segment, offset) = locate(index)?;
    TABLE.segments[segment].get()?.get(offset)
}

/// The segment and offset of `index`.
fn locate(index: usize) -> Option<(usize, usize)> {
    if index < FIRST_SEGMENT {
        return Some((0, index));
    }
    let k = (usize::BITS - 1 - (index / FIRST_SEGMENT).leading_zeros()) as usize + 1;
    let start = FIRST_SEGMENT << (k - 1);
    (k < SEGMENTS).then_some((k, index - start))
}

/// A free index: from this thread's shard, another's, or a fresh one.
fn take_index() -> Option<usize> {
    let home = shard();
    for i in 0..SHARDS {
        if let Some(index) = lock(&TABLE.free[(home + i) % SHARDS].0).pop() {
            return Some(index as usize);
        }
    }
    let index = TABLE.next.fetch_add(1, Ordering::Relaxed);
    let (segment, _) = locate(index).filter(|_| index >> INDEX_BITS == 0)?;
    TABLE.segments[segment].get_or_init(|| {
        let len = if segment == 0 {
            FIRST_SEGMENT
        } else {
            FIRST_SEGMENT << (segment - 1)
        };
        (0..len).map(|_| Slot(Mutex::new(State::free()))).collect()
    });
    Some(index)
}

/// Puts a reclaimed index on this thread's shard.
fn give_back(index: u32) {
    lock(&TABLE.free[shard()].0).push(index);
}

fn shard() -> usize {
    SHARD.with(|shard| {
        if shard.get() == usize::MAX {
            shard.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        shard.get()
    })
}

impl State {
    fn free() -> Self {
        State {
            generation: 1,
            phase: Phase::Free,
            previous: None,
            plugin: "",
            permit: None,
            token: None,
            waker: None,
            body: None,
        }
    }
}

/// A lock, also after a panic elsewhere poisoned it: every update of a slot leaves it
/// consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    //! The table through the functions plugins call (`HOST_API`), as a plugin would use
    //! them, and the request's side as dispatch uses it. Tests run in parallel on the one
    //! process-wide table, so nothing here assumes which index a slot gets.

    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    use super::*;
    use crate::plugin::admission::Admission;
    use crate::plugin::host_api::HOST_API;

    fn respond(handle: *mut ffi::ResponderHandle, status: u16, body: &[u8]) -> i32 {
        let header = ffi::Header {
            name: ffi::Str::new("content-type"),
            value: ffi::Str::new("text/plain"),
        };
        let response = ffi::Response {
            struct_size: std::mem::size_of::<ffi::Response>(),
            status,
            headers: &header,
            headers_len: 1,
            body: ffi::Bytes::new(body),
            release: None,
            release_data: std::ptr::null_mut(),
        };
        // SAFETY: a valid response borrowed for the call; the handle is checked by the host.
        unsafe { (HOST_API.respond)(handle, &response) }
    }

    fn respond_error(handle: *mut ffi::ResponderHandle, status: u16) -> i32 {
        // SAFETY: borrowed for the call; the handle is checked by the host.
        unsafe {
            (HOST_API.respond_error)(handle, status, ffi::Str::new("no"), std::ptr::null(), 0)
        }
    }

    fn start(handle: *mut ffi::ResponderHandle) -> i32 {
        let header = ffi::Header {
            name: ffi::Str::new("content-type"),
            value: ffi::Str::new("text/plain"),
        };
        // SAFETY: borrowed for the call.
        unsafe { (HOST_API.stream_start.unwrap())(handle, 200, &header, 1) }
    }

    fn write(handle: *mut ffi::ResponderHandle, chunk: &[u8]) -> i32 {
        // SAFETY: borrowed for the call.
        unsafe { (HOST_API.stream_write.unwrap())(handle, ffi::Bytes::new(chunk)) }
    }

    fn end(handle: *mut ffi::ResponderHandle, trailers: &[(&str, &str)]) -> i32 {
        let trailers: Vec<ffi::Header> = trailers
            .iter()
            .map(|(n, v)| ffi::Header {
                name: ffi::Str::new(n),
                value: ffi::Str::new(v),
            })
            .collect();
        // SAFETY: borrowed for the call.
        unsafe { (HOST_API.stream_end.unwrap())(handle, trailers.as_ptr(), trailers.len()) }
    }

    fn token(handle: *mut ffi::ResponderHandle, token: u64) -> i32 {
        // SAFETY: the handle is checked by the host.
        unsafe { (HOST_API.set_cancel_token.unwrap())(handle, token) }
    }

    static READY_CALLS: AtomicUsize = AtomicUsize::new(0);

    /// A ready callback counting its calls into the `AtomicUsize` behind `user`.
    unsafe extern "C" fn count_ready(user: *mut c_void) {
        // SAFETY: every test passes a pointer to a live AtomicUsize.
        unsafe { &*(user as *const AtomicUsize) }.fetch_add(1, Ordering::SeqCst);
    }

    fn on_ready(handle: *mut ffi::ResponderHandle, counter: &'static AtomicUsize) -> i32 {
        let user = (counter as *const AtomicUsize).cast_mut().cast();
        // SAFETY: the callback and its pointer stay valid for the process.
        unsafe { (HOST_API.stream_on_ready.unwrap())(handle, Some(count_ready), user) }
    }

    /// A plugin allowing one request at a time, so a permit still held is visible.
    fn one_at_a_time() -> &'static Admission {
        Admission::leak("test", 1)
    }

    /// Counts wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn delivered(ticket: &Ticket) -> Delivery {
        match ticket.poll_delivery(None) {
            Poll::Ready(delivery) => delivery,
            Poll::Pending => panic!("nothing delivered"),
        }
    }

    #[test]
    fn a_second_answer_is_refused_and_the_first_is_kept() {
        let admission = one_at_a_time();
        let ticket = open(admission.try_acquire().unwrap()).unwrap();
        let handle = ticket.handle();
        assert!(!handle.is_null());
        assert_eq!(respond(handle, 201, b"first"), ffi::OK);
        assert!(
            admission.try_acquire().is_some(),
            "the permit is released at the answer"
        );
        assert_eq!(respond(handle, 200, b"second"), ffi::ERR);
        assert_eq!(respond_error(handle, 500), ffi::ERR);
        assert_eq!(start(handle), ffi::ERR);
        assert_eq!(token(handle, 1), ffi::ERR);
        match delivered(&ticket) {
            Delivery::Answer(Answer::Response { status, body, .. }) => {
                assert_eq!((status.as_u16(), &body[..]), (201, &b"first"[..]));
            }
            other => panic!("{other:?}"),
        }
        let released = ticket.release();
        assert!(!released.unfinished && released.ready.is_empty());
        assert_eq!(
            respond(handle, 200, b"third"),
            ffi::ERR,
            "after the request ended"
        );
        assert_eq!(
            write(handle, b"x"),
            ffi::ERR,
            "a stream call on a handle its plugin answered is a misuse, not a closed stream"
        );
    }

    #[test]
    fn a_late_answer_is_refused_and_an_unanswered_slot_is_reclaimed() {
        let admission = one_at_a_time();
        let ticket = open(admission.try_acquire().unwrap()).unwrap();
        let handle = ticket.handle();
        assert!(
            admission.try_acquire().is_none(),
            "the request holds the permit"
        );
        assert_eq!(token(handle, 42), ffi::OK);
        let released = ticket.release();
        assert!(
            released.unfinished,
            "never answered: the plugin must hear of it"
        );
        assert_eq!(released.token, Some(42));
        assert!(
            admission.try_acquire().is_some(),
            "the permit is released when the request ends"
        );
        assert_eq!(respond(handle, 200, b"late"), ffi::ERR);
        assert_eq!(respond_error(handle, 503), ffi::ERR);
        assert_eq!(token(handle, 1), ffi::ERR);
        assert_eq!(start(handle), ffi::CLOSED);
        assert_eq!(write(handle, b"late"), ffi::CLOSED);
        assert_eq!(end(handle, &[]), ffi::CLOSED);
        assert_eq!(on_ready(handle, &READY_CALLS), ffi::CLOSED);
    }

    #[test]
    fn a_reused_slot_does_not_answer_to_its_old_handle() {
        let admission = Admission::leak("test", 10);
        let first = open(admission.try_acquire().unwrap()).unwrap();
        let old = first.handle();
        let (index, generation) = (first.index, first.generation);
        let _ = first.release();
        // This thread's shard hands the slot straight back, unless a test on another
        // thread sharing the shard took it meanwhile: then reuse is tried until it comes.
        let mut held = Vec::new();
        let second = loop {
            let ticket = open(admission.try_acquire().unwrap()).unwrap();
            if ticket.index == index {
                break ticket;
            }
            held.push(ticket);
            assert!(held.len() < 9, "the freed slot never came back");
        };
        assert_ne!(second.generation, generation);
        assert_ne!(second.handle(), old);
        assert_eq!(respond(old, 200, b"stale"), ffi::ERR);
        assert!(
            second.poll_delivery(None).is_pending(),
            "untouched by the stale call"
        );
        assert_eq!(respond(second.handle(), 200, b"fresh"), ffi::OK);
        assert!(matches!(
            delivered(&second),
            Delivery::Answer(Answer::Response { .. })
        ));
        for ticket in held {
            let _ = ticket.release();
        }
        let _ = second.release();
    }

    #[test]
    fn handles_never_given_out_are_refused() {
        for raw in [
            0usize,
            1,
            0xdead_beef,
            usize::MAX,
            8,
            (7usize << INDEX_BITS) | 0x7fff_0000,
        ] {
            let handle = raw as *mut ffi::ResponderHandle;
            assert_eq!(respond(handle, 200, b""), ffi::ERR, "{raw:#x}");
            assert_eq!(write(handle, b"x"), ffi::ERR, "{raw:#x}");
            assert_eq!(token(handle, 1), ffi::ERR, "{raw:#x}");
        }
    }

    #[test]
    fn a_malformed_answer_is_delivered_as_invalid() {
        let admission = Admission::leak("test", 10);
        let ticket = open(admission.try_acquire().unwrap()).unwrap();
        assert_eq!(respond(ticket.handle(), 42, b""), ffi::ERR);
        assert!(matches!(
            delivered(&ticket),
            Delivery::Answer(Answer::Invalid(_))
        ));
        let ticket2 = open(admission.try_acquire().unwrap()).unwrap();
        // SAFETY: borrowed for the call.
        let rc =
            unsafe { (HOST_API.stream_start.unwrap())(ticket2.handle(), 204, std::ptr::null(), 0) };
        assert_eq!(rc, ffi::ERR, "a 204 has no body to stream");
        assert!(matches!(
            delivered(&ticket2),
            Delivery::Answer(Answer::Invalid(_))
        ));
        let _ = (ticket.release(), ticket2.release());
    }

    #[test]
    fn a_stream_is_bounded_and_calls_back_once_below_half() {
        static CALLED: AtomicUsize = AtomicUsize::new(0);
        let admission = one_at_a_time();
        let ticket = open(admission.try_acquire().unwrap()).unwrap();
        let handle = ticket.handle();
        assert_eq!(write(handle, b"early"), ffi::ERR, "not started");
        assert_eq!(start(handle), ffi::OK);
        assert_eq!(start(handle), ffi::ERR, "started twice");
        match delivered(&ticket) {
            Delivery::Head(status, headers) => {
                assert_eq!(status, StatusCode::OK);
                assert_eq!(headers["content-type"], "text/plain");
            }
            other => panic!("{other:?}"),
        }
        let chunk = vec![b'x'; 16 * 1024];
        let mut taken = 0;
        while write(handle, &chunk) == ffi::OK {
            taken += 1;
            assert!(taken <= 4, "the buffer is bounded");
        }
        assert_eq!(taken, 4, "taken while under 64 KiB");
        assert_eq!(write(handle, &chunk), ffi::FULL);
        assert_eq!(on_ready(handle, &CALLED), ffi::OK);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut ran = 0;
        for n in 1..=4 {
            let (frame, ready) = ticket.poll_frame(&mut cx, true);
            let Poll::Ready(Some(frame)) = frame else {
                panic!("chunk {n}")
            };
            assert_eq!(frame.into_data().unwrap().len(), chunk.len());
            if !ready.is_empty() {
                // SAFETY: the test's own callback.
                unsafe { ready.run() };
                ran = n;
            }
        }
        assert_eq!(
            ran, 3,
            "called back once pending fell below half (16 KiB left)"
        );
        assert_eq!(CALLED.load(Ordering::SeqCst), 1);
        let (frame, ready) = ticket.poll_frame(&mut cx, true);
        assert!(frame.is_pending() && ready.is_empty());
        assert_eq!(write(handle, b"tail"), ffi::OK);
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "a write wakes the reader"
        );
        assert_eq!(
            token(handle, 9),
            ffi::OK,
            "a running stream may still get a token"
        );
        assert_eq!(end(handle, &[("x-checksum", "abc")]), ffi::OK);
        assert!(
            admission.try_acquire().is_some(),
            "stream_end releases the permit"
        );
        assert_eq!(end(handle, &[]), ffi::ERR, "ended twice");
        assert_eq!(write(handle, b"more"), ffi::ERR, "after the end");
        let (frame, _) = ticket.poll_frame(&mut cx, true);
        let Poll::Ready(Some(frame)) = frame else {
            panic!("the tail")
        };
        assert_eq!(&frame.into_data().unwrap()[..], b"tail");
        let (frame, _) = ticket.poll_frame(&mut cx, true);
        let Poll::Ready(Some(frame)) = frame else {
            panic!("the trailers")
        };
        assert_eq!(frame.into_trailers().unwrap()["x-checksum"], "abc");
        let (frame, _) = ticket.poll_frame(&mut cx, true);
        assert!(matches!(frame, Poll::Ready(None)));
        let released = ticket.release();
        assert!(!released.unfinished, "the plugin ended it");
        assert_eq!(write(handle, b"x"), ffi::ERR);
    }

    #[test]
    fn trailers_are_dropped_for_clients_that_did_not_ask() {
        let admission = Admission::leak("test", 10);
        let ticket = open(admission.try_acquire().unwrap()).unwrap();
        let handle = ticket.handle();
        assert_eq!(start(handle), ffi::OK);
        assert_eq!(end(handle, &[("x-checksum", "abc")]), ffi::OK);
        let _ = delivered(&ticket);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let (frame, _) = ticket.poll_frame(&mut cx, false);
        assert!(matches!(frame, Poll::Ready(None)));
        let _ = ticket.release();
    }

    #[test]
    fn ready_callbacks_run_when_the_request_ends_and_never_inside_the_call() {
        static CALLED: AtomicUsize = AtomicUsize::new(0);
        let admission = Admission::leak("test", 10);
        let ticket = open(admission.try_acquire().unwrap()).unwrap();
        let handle = ticket.handle();
        assert_eq!(start(handle), ffi::OK);
        let _ = delivered(&ticket);
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(ticket.poll_frame(&mut cx, false).0.is_pending());
        // Room already: not called now, but the reader is woken to call it.
        assert_eq!(on_ready(handle, &CALLED), ffi::OK);
        assert_eq!(CALLED.load(Ordering::SeqCst), 0);
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(token(handle, 5), ffi::OK);
        // The client leaves before the reader polls again.
        let released = ticket.release();
        assert!(released.unfinished);
        assert_eq!(released.token, Some(5));
        // SAFETY: the test's own callback.
        unsafe { released.ready.run() };
        assert_eq!(CALLED.load(Ordering::SeqCst), 1, "exactly once");
        assert_eq!(write(handle, b"x"), ffi::CLOSED);
        assert_eq!(on_ready(handle, &CALLED), ffi::CLOSED);
        assert_eq!(CALLED.load(Ordering::SeqCst), 1);
    }

    /// A waker whose wake panics: the host function that wakes must not unwind into the
    /// plugin.
    struct PanickingWaker;

    impl Wake for PanickingWaker {
        fn wake(self: Arc<Self>) {
            panic!("waking failed");
        }
    }

    #[test]
    fn a_panic_inside_a_host_function_does_not_unwind_into_the_plugin() {
        let admission = Admission::leak("test", 10);
        let ticket = open(admission.try_acquire().unwrap()).unwrap();
        let waker = Waker::from(Arc::new(PanickingWaker));
        let mut cx = Context::from_waker(&waker);
        assert!(ticket.poll_delivery(Some(&mut cx)).is_pending());
        // The answer is stored and the lock released before the wake, which panics.
        assert_eq!(respond(ticket.handle(), 200, b"ok"), ffi::ERR);
        assert!(matches!(
            delivered(&ticket),
            Delivery::Answer(Answer::Response { .. })
        ));
        let _ = ticket.release();
    }

    #[test]
    fn a_panicking_logger_does_not_unwind_into_the_plugin() {
        struct Panics;
        impl tracing::Subscriber for Panics {
            fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
                tracing::span::Id::from_u64(1)
            }
            fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
            fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
            fn event(&self, _: &tracing::Event<'_>) {
                panic!("the logger failed");
            }
            fn enter(&self, _: &tracing::span::Id) {}
            fn exit(&self, _: &tracing::span::Id) {}
        }
        let host = crate::plugin::host_api::HostHandle::leak("test", std::path::Path::new("/"));
        tracing::subscriber::with_default(Panics, || {
            // SAFETY: a leaked host handle and strings borrowed for the call.
            unsafe {
                (HOST_API.log)(
                    host.as_ffi(),
                    ffi::level::ERROR,
                    ffi::Str::new("app"),
                    ffi::Str::new("hello"),
                )
            };
        });
    }

    #[test]
    fn the_table_covers_every_index_a_handle_holds() {
        assert_eq!(locate(0), Some((0, 0)));
        assert_eq!(locate(63), Some((0, 63)));
        assert_eq!(locate(64), Some((1, 0)));
        assert_eq!(locate(127), Some((1, 63)));
        assert_eq!(locate(128), Some((2, 0)));
        let last = (1usize << INDEX_BITS) - 1;
        let (segment, offset) = locate(last).unwrap();
        assert_eq!(segment, SEGMENTS - 1);
        assert_eq!(offset, (FIRST_SEGMENT << (SEGMENTS - 2)) - 1);
        assert_eq!(locate(last + 1), None);
        assert_eq!(next_generation(MAX_GENERATION), 1, "a handle is never 0");
    }

    #[test]
    fn the_host_api_is_complete() {
        assert_eq!(HOST_API.struct_size, std::mem::size_of::<ffi::HostApi>());
        assert_eq!(
            (HOST_API.abi_major, HOST_API.abi_minor),
            (ffi::ABI_MAJOR, ffi::ABI_MINOR)
        );
        assert!(HOST_API.set_cancel_token.is_some());
        assert!(HOST_API.stream_start.is_some());
        assert!(HOST_API.stream_write.is_some());
        assert!(HOST_API.stream_on_ready.is_some());
        assert!(HOST_API.stream_end.is_some());
        assert!(HOST_API.body_next.is_some());
    }
}
