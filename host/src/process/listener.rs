//! The listening socket the workers share.
//!
//! The supervisor binds the socket once and every worker of every generation inherits the
//! same descriptor (its number in [`LISTEN_FD_ENV`]): one socket, one accept queue. The
//! alternative, `SO_REUSEPORT` with a socket per worker, spreads connections evenly by hash
//! but gives each socket its own queue, and connections already queued on a socket when its
//! worker closes it are reset: every reload would drop a few. With one shared queue a
//! draining worker just stops taking connections from it and the new generation (already
//! accepting) takes the rest; nothing queued is lost. The README has the measurements.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

/// Names the inherited listening descriptor in a worker's environment.
pub const LISTEN_FD_ENV: &str = "SPIKARD_LISTEN_FD";

/// Binds `addr` for the workers (with the server's backlog and `SO_REUSEADDR`). Call inside
/// a tokio runtime; the socket comes back as a std listener, detached from it.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let listener = crate::server::bind(addr)
        .and_then(|l| l.into_std())
        .map_err(|e| {
            format!(
                "cannot listen on {addr}: {e}; choose another address with server.listen or --listen"
            )
        })?;
    Ok(listener)
}

/// The descriptor number a worker is told to use.
pub fn fd_of(listener: &TcpListener) -> RawFd {
    listener.as_raw_fd()
}

/// In a worker: the listening socket named by [`LISTEN_FD_ENV`] (`None` when not set, i.e.
/// not a worker). It is made close-on-exec again, so processes a plugin starts do not hold
/// the server's socket.
pub fn inherited(fd_text: &str) -> Result<TcpListener, String> {
    let fd: RawFd = fd_text
        .parse()
        .map_err(|_| format!("{LISTEN_FD_ENV}={fd_text} is not a descriptor number"))?;
    // SAFETY: F_GETFD on any integer is harmless; it fails for a descriptor that is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(format!(
            "{LISTEN_FD_ENV}={fd} is not an open descriptor: {}",
            io::Error::last_os_error()
        ));
    }
    // SAFETY: the supervisor passed this open descriptor to this process to own.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    set_cloexec(fd, true);
    listener
        .set_nonblocking(true)
        .and_then(|()| listener.local_addr().map(drop))
        .map_err(|e| format!("{LISTEN_FD_ENV}={fd} is not a listening socket: {e}"))?;
    Ok(listener)
}

/// Sets or clears `FD_CLOEXEC` on `fd`. Only async-signal-safe calls: usable in `pre_exec`.
pub fn set_cloexec(fd: RawFd, on: bool) -> bool {
    // SAFETY: fcntl on a descriptor number; errors are reported by the return value.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 {
            return false;
        }
        let flags = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        libc::fcntl(fd, libc::F_SETFD, flags) == 0
    }
}
