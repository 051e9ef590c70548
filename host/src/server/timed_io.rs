//! A connection's socket with deadlines on what the client owes: a whole request head within
//! the header timeout, the first byte of the next request within the keep-alive timeout, and,
//! while a streamed answer is sent, taking some of it within the keep-alive timeout whenever
//! the socket is full (a stream may idle for as long as its plugin likes; a client that stops
//! reading may not hold it).
//!
//! hyper's own `header_read_timeout` starts when it begins waiting for a head (right after the
//! previous response), so it measures the idle time between requests and the time to send a
//! head as one span: with it, a kept-alive connection could idle only as long as a head may
//! take. Here the two are separate phases, told apart by the bytes the socket sees and by the
//! service, which reports when a request starts and when its answer is ready ([`Progress`]).
//!
//! A deadline that passes fails the pending read or write with `TimedOut`; hyper then ends the
//! connection (silently: there is no request to answer).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What the service has done on one connection, shared with its socket: the service sees
/// requests start and answers become ready; the socket sees bytes.
#[derive(Debug, Default)]
pub struct Progress {
    /// `FRESH`, `SERVING`, `ANSWERED`, `SEEN` or `STREAMING`.
    state: AtomicU8,
    /// Moves on when a request starts and when a read brings more of a request's body: the
    /// reset watch (`connection::reset`) peeks again once it has, since what it saw in the
    /// socket may have been taken by hyper.
    reads: AtomicU32,
    /// The server is stopping: answers from now on close their connection.
    draining: AtomicBool,
}

/// No request has reached the service yet.
const FRESH: u8 = 0;
/// A request is being served: no connection deadline (the body and plugin have their own).
const SERVING: u8 = 1;
/// The answer is ready; the socket has not seen it yet.
const ANSWERED: u8 = 2;
/// The socket has seen the answer; nothing new.
const SEEN: u8 = 3;
/// The answer's head is out and its body is streamed: no deadline while the client takes
/// what is written; the reset watch still watches. Ends with `ANSWERED` when the body does.
const STREAMING: u8 = 4;

impl Progress {
    /// A request head was parsed and handed to the service.
    pub fn request_started(&self) {
        self.state.store(SERVING, Ordering::Relaxed);
        self.read_more();
    }

    /// The service produced its response; hyper writes it next. For a streamed response,
    /// called when its body ends.
    pub fn answer_ready(&self) {
        self.state.store(ANSWERED, Ordering::Relaxed);
    }

    /// The service produced the head of a streamed response; its body follows for as long
    /// as the plugin writes it, then [`Progress::answer_ready`].
    pub fn streaming(&self) {
        self.state.store(STREAMING, Ordering::Relaxed);
    }

    /// Whether no request has reached the service yet (the connection owes nobody an answer).
    pub fn is_fresh(&self) -> bool {
        self.state.load(Ordering::Relaxed) == FRESH
    }

    /// Whether a request is with the service, its answer not ready yet or being streamed:
    /// the time hyper, serving half-closed clients, does not read the socket unless it wants
    /// more body.
    pub fn is_serving(&self) -> bool {
        matches!(self.state.load(Ordering::Relaxed), SERVING | STREAMING)
    }

    /// The server is stopping: every answer from now on says `Connection: close`.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether answers should close their connection (see [`Progress::drain`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// A number that changes when a request starts or a read brings more of its body: while
    /// a request is served, equal numbers mean hyper has taken nothing from the socket.
    pub fn reads(&self) -> u32 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Moves [`Progress::reads`] on. Only the connection's task writes, so no atomic
    /// read-modify-write is needed.
    fn read_more(&self) {
        let reads = self.reads.load(Ordering::Relaxed);
        self.reads.store(reads.wrapping_add(1), Ordering::Relaxed);
    }

    /// The service's news for the socket, each answer reported once.
    fn news(&self) -> u8 {
        match self.state.load(Ordering::Relaxed) {
            ANSWERED => {
                self.state.store(SEEN, Ordering::Relaxed);
                ANSWERED
            }
            other => other,
        }
    }
}

/// The time limits a [`TimedIo`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From accept, or from the first byte of a later request, to the end of its head.
    pub header: Duration,
    /// From an answer to the first byte of the next request.
    pub keepalive: Duration,
}

/// Where the connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// A request is with the service.
    Serving,
    /// A streamed answer is being sent: a write the client does not take within the
    /// keep-alive timeout ends the connection.
    Sending,
    /// Answered; writing the answer or waiting for the next request.
    Idle,
}

/// How the socket's use ended, for the decision to linger after hyper is done.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ending {
    /// The phase whose deadline passed, if one did.
    pub timed_out: Option<Phase>,
    /// The client closed its side (a read returned end of stream).
    pub read_eof: bool,
    /// hyper flushed its output and shut the write side down.
    pub shut_down: bool,
}

/// A stream with the connection's deadlines; see the module docs.
pub struct TimedIo<T> {
    inner: T,
    progress: std::sync::Arc<Progress>,
    timeouts: Timeouts,
    phase: Phase,
    /// When the current phase's time is up; `None` while serving.
    deadline: Option<Instant>,
    /// Armed at or before `deadline`; moved later lazily, when it fires, so that a request on
    /// a kept-alive connection costs no timer update.
    sleep: Pin<Box<Sleep>>,
    ending: Ending,
}

impl<T> TimedIo<T> {
    /// Wraps a freshly accepted stream: its first head is due within the header timeout.
    pub fn new(inner: T, progress: std::sync::Arc<Progress>, timeouts: Timeouts) -> Self {
        let deadline = Instant::now() + timeouts.header;
        TimedIo {
            inner,
            progress,
            timeouts,
            phase: Phase::Head,
            deadline: Some(deadline),
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            ending: Ending::default(),
        }
    }

    /// The stream back, and how its use ended.
    pub fn into_parts(self) -> (T, Ending) {
        (self.inner, self.ending)
    }

    /// Follows the service: no deadline while it serves, the keep-alive one once it answered.
    fn sync(&mut self) {
        match self.progress.news() {
            SERVING if self.phase != Phase::Serving => {
                self.phase = Phase::Serving;
                self.deadline = None;
            }
            STREAMING if self.phase != Phase::Sending => {
                self.phase = Phase::Sending;
                self.deadline = None;
            }
            ANSWERED => self.enter(Phase::Idle),
            _ => {}
        }
    }

    /// Starts `phase` with its full time from now.
    fn enter(&mut self, phase: Phase) {
        let limit = match phase {
            Phase::Head => self.timeouts.header,
            Phase::Idle => self.timeouts.keepalive,
            Phase::Serving | Phase::Sending => {
                self.phase = phase;
                self.deadline = None;
                return;
            }
        };
        self.phase = phase;
        self.deadline = Some(Instant::now() + limit);
    }

    /// Ready (with the error to return) once the current deadline has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(deadline) = self.deadline else {
            return Poll::Pending;
        };
        if self.sleep.deadline() > deadline {
            self.sleep.as_mut().reset(deadline);
        }
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            if self.sleep.deadline() >= deadline {
                break;
            }
            self.sleep.as_mut().reset(deadline);
        }
        self.ending.timed_out = Some(self.phase);
        let message = match self.phase {
            Phase::Head => format!(
                "no complete request head within the header read timeout of {:?}",
                self.timeouts.header
            ),
            Phase::Sending => format!(
                "the client took nothing of a streamed answer for the keep-alive timeout of {:?}",
                self.timeouts.keepalive
            ),
            _ => format!(
                "idle for the keep-alive timeout of {:?}",
                self.timeouts.keepalive
            ),
        };
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, message))
    }

    /// A write made progress: an answer still being written keeps the connection alive, and
    /// a stream owes nothing until a write waits again.
    fn wrote(&mut self, n: usize) {
        if n > 0 {
            match self.phase {
                Phase::Idle => self.enter(Phase::Idle),
                Phase::Sending => self.deadline = None,
                Phase::Head | Phase::Serving => {}
            }
        }
    }

    /// A write must wait for the client: a stream's client owes a read from now on.
    fn write_waits(&mut self) {
        if self.phase == Phase::Sending && self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.timeouts.keepalive);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.sync();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() == before {
                    this.ending.read_eof = true;
                } else if this.phase == Phase::Idle {
                    // The first byte of the next request: its head is now due.
                    this.enter(Phase::Head);
                } else if matches!(this.phase, Phase::Serving | Phase::Sending) {
                    // More of the body (or a pipelined request): bytes the reset watch saw
                    // may be these.
                    this.progress.read_more();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.sync();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.wrote(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.write_waits();
                this.poll_deadline(cx).map(Err)
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.sync();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.wrote(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.write_waits();
                this.poll_deadline(cx).map(Err)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.poll_deadline(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Ready(Ok(())) => {
                this.ending.shut_down = true;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.poll_deadline(cx).map(Err),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}
