//! Noticing a client that resets its connection while its request is with the service.
//!
//! hyper serves with `half_close(true)`, so that a client that sends its request and then
//! shuts down its write side (`nc -N`, some proxies) still gets its answer. In that mode
//! hyper does not read the socket while a request is with the service (hyper 1.x,
//! `Conn::mid_message_detect_eof`), so a client that aborts would go unnoticed and its
//! request would run on until the request timeout. [`ResetWatch`] looks at the socket
//! meanwhile with a one-byte `MSG_PEEK`, which takes nothing hyper needs:
//!
//! - an error (`ECONNRESET`; `EPIPE` for a reset after the client's FIN): the client is gone;
//! - end of stream (the client's FIN): a half-close; the client still waits for its answer;
//! - a byte: a pipelined next request, or more of this request's body, which hyper reads.
//!
//! After end of stream or a pipelined request the watch rests until the next request (the
//! readiness stays set, so there is nothing to wait on): a client that half-closes or
//! pipelines and then resets is noticed when its answer is written, as before.
//!
//! The watch shares the connection's socket with hyper's I/O — one descriptor, one
//! registration with the runtime — instead of watching a duplicate descriptor, which would
//! cost a `dup`, two `epoll_ctl` and a `close` per connection, and a second descriptor that
//! the connection cap (`limits`) does not count. On the shared registration a request whose
//! head came in one short read finds read readiness already cleared, so watching it costs
//! no system call until the socket has news.

use std::cell::UnsafeCell;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::super::timed_io::Progress;

/// One connection's socket, shared by its two handles, [`Socket`] and [`ResetWatch`].
struct Shared(UnsafeCell<TcpStream>);

// SAFETY: the handles to a `Shared` are made together by `split`, are not `Clone`, and stay in
// the one future of `connection::serve` (only it can use this module's items): a future is
// polled by one thread at a time, and each handle touches the stream only within one of its
// own methods, none of which calls into the other handle. So at most one reference to the
// stream is ever live, on any thread.
unsafe impl Sync for Shared {}

/// Splits `stream` into hyper's I/O and the watch over it.
pub(super) fn split(stream: TcpStream) -> (Socket, ResetWatch) {
    let shared = Arc::new(Shared(UnsafeCell::new(stream)));
    (
        Socket(shared.clone()),
        ResetWatch {
            shared,
            settled: None,
        },
    )
}

/// The socket as hyper's I/O: the stream's own reads and writes.
pub(super) struct Socket(Arc<Shared>);

impl Socket {
    /// The stream, exclusively for the length of one I/O call.
    fn stream(self: Pin<&mut Self>) -> Pin<&mut TcpStream> {
        // SAFETY: see `Shared`; the reference does not outlive the call that asked for it.
        Pin::new(unsafe { &mut *self.0 .0.get() })
    }

    /// The stream back, once hyper and the watch are done with it; `None` cannot happen
    /// (both handles are consumed) but is not worth a panic.
    pub(super) fn rejoin(self, watch: ResetWatch) -> Option<TcpStream> {
        drop(watch);
        Arc::into_inner(self.0).map(|shared| shared.0.into_inner())
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

/// Watches the socket for a reset while a request is with the service; see the module docs.
pub(super) struct ResetWatch {
    shared: Arc<Shared>,
    /// The [`Progress::reads`] at which the peek last found a byte or the end of stream:
    /// nothing more to learn until hyper reads or the next request starts.
    settled: Option<u32>,
}

impl ResetWatch {
    /// Ready with the socket's error once the client has reset the connection while a
    /// request is with the service. Otherwise pending; registered for the socket's news only
    /// while it is watching — when it is not, only hyper can change that, and
    /// `connection::serve` polls the watch right after hyper.
    pub(super) fn poll_reset(
        &mut self,
        progress: &Progress,
        cx: &mut Context<'_>,
    ) -> Poll<io::Error> {
        if !progress.is_serving() {
            return Poll::Pending;
        }
        let reads = progress.reads();
        if self.settled == Some(reads) {
            return Poll::Pending;
        }
        // SAFETY: see `Shared`; the reference does not outlive this call.
        let stream = unsafe { &*self.shared.0.get() };
        let mut byte = [MaybeUninit::uninit()];
        loop {
            match ready!(stream.poll_peek(cx, &mut ReadBuf::uninit(&mut byte))) {
                Ok(_) => {
                    self.settled = Some(reads);
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(e),
            }
        }
    }
}
