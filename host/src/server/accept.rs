//! Accepting connections within the cap.
//!
//! Each open connection holds a permit, taken *before* `accept`: at the cap the host stops
//! accepting and new clients wait in the kernel's listen backlog until a connection closes
//! (the header and keep-alive timeouts see that one does), with one warning per episode.
//! Accept errors that are not the client's (out of descriptors) back off briefly, so the
//! loop neither spins nor sleeps long, and are logged at most once a second with a count.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// First pause after a failed accept; doubled on each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// Longest pause after a failed accept.
const MAX_BACKOFF: Duration = Duration::from_millis(100);
/// At most one accept-error line per this period.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Connections the kernel queues while the host is at its cap or busy. tokio's default (128)
/// makes a burst of clients beyond it retransmit their SYNs after 1 s, 3 s, ...; the kernel
/// caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with a listen backlog of [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, so a restart
/// does not wait for the old sockets' TIME_WAIT).
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The listener with its connection cap.
pub struct Acceptor {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    max: usize,
    /// In an episode at the cap (warned, not yet back below the re-arm level).
    at_cap: bool,
    errors: AcceptErrors,
}

impl Acceptor {
    /// Accepts on `listener`, at most `max` connections open at once.
    pub fn new(listener: TcpListener, max: usize) -> Self {
        Acceptor {
            listener,
            permits: Arc::new(Semaphore::new(max)),
            max,
            at_cap: false,
            errors: AcceptErrors::default(),
        }
    }

    /// The next connection, its client's address and the permit it holds while open.
    /// Cancel-safe.
    pub async fn next(&mut self) -> (TcpStream, std::net::SocketAddr, OwnedSemaphorePermit) {
        let permit = self.permit().await;
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.errors.recovered();
                    return (stream, peer, permit);
                }
                Err(e) => self.errors.failed(&e).await,
            }
        }
    }

    /// A free slot, waiting for one at the cap.
    async fn permit(&mut self) -> OwnedSemaphorePermit {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            if self.at_cap && self.open() <= self.max - (self.max / 10).max(1) {
                self.at_cap = false;
                tracing::info!(
                    "open connections back below max_connections ({}): accepting at once again",
                    self.max
                );
            }
            return permit;
        }
        if !self.at_cap {
            self.at_cap = true;
            tracing::warn!(
                "at max_connections ({}): new connections wait; raise server.max_connections or the fd limit",
                self.max
            );
        }
        match self.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }

    /// Connections open now.
    fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

/// Failed accepts since the last report, and the current pause.
#[derive(Debug)]
struct AcceptErrors {
    backoff: Duration,
    unreported: u64,
    last_report: Option<Instant>,
}

impl Default for AcceptErrors {
    fn default() -> Self {
        AcceptErrors {
            backoff: FIRST_BACKOFF,
            unreported: 0,
            last_report: None,
        }
    }
}

impl AcceptErrors {
    /// A connection that failed before it was accepted is the client's business; anything
    /// else (out of descriptors, out of memory) is counted, reported at most once a second,
    /// and followed by a short pause that grows while the failures go on.
    async fn failed(&mut self, error: &io::Error) {
        use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
        if matches!(
            error.kind(),
            ConnectionAborted | ConnectionRefused | ConnectionReset
        ) {
            return;
        }
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last_report
            .is_none_or(|at| now.duration_since(at) >= REPORT_EVERY)
        {
            let hint = if matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                "out of file descriptors: new connections wait; lower server.max_connections or raise the fd limit"
            } else {
                "retrying"
            };
            tracing::error!(
                "accepting a connection failed ({} time(s) since the last report): {error}; {hint}",
                self.unreported
            );
            self.unreported = 0;
            self.last_report = Some(now);
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// An accept succeeded: the next failure starts with a short pause again.
    fn recovered(&mut self) {
        self.backoff = FIRST_BACKOFF;
        if self.unreported > 0 {
            tracing::warn!(
                "accepting connections again after {} more failure(s)",
                self.unreported
            );
            self.unreported = 0;
        }
    }
}
