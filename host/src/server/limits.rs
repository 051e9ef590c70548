//! What bounds the server's resources: the limits [`super::serve`] runs with, the process's
//! open-file limit (raised at start-up) and the connection cap that fits inside it.
//!
//! Every connection holds a file descriptor. With more connections allowed than descriptors,
//! `accept` fails with EMFILE and new clients are locked out while old sockets linger; with the
//! cap below the fd limit, the host stops accepting instead, and the header and keep-alive
//! timeouts free slots, so clients wait a little rather than for ever.

use std::time::Duration;

use crate::config::{ConnectionConfig, ServerConfig};

/// Descriptors kept free beyond those open at start-up, for what opens files later: plugin
/// threads, log files, the runtime, a lingering close.
const FD_MARGIN: usize = 64;

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers); hyper answers a larger one with
    /// `431 Request Header Fields Too Large` and closes the connection.
    pub max_header_bytes: usize,
    /// Grace period for in-flight requests after a shutdown signal.
    pub grace: Duration,
    /// After a shutdown signal, how long to keep accepting while readiness answers 503.
    pub drain_delay: Duration,
    /// The `[server]` connection keys as configured.
    pub connections: ConnectionConfig,
    /// The connection cap in force: `connections.max_connections`, lowered to fit the fd limit.
    pub max_connections: usize,
    /// The open-file limit, when known.
    pub fd_limit: Option<FdLimit>,
}

impl Limits {
    /// The limits for `server`; call after the plugins are loaded, so the descriptors they
    /// hold count against the fd limit before the connection cap is set.
    pub fn new(server: &ServerConfig, fd_limit: Option<FdLimit>) -> Self {
        let fd_limit = fd_limit.map(FdLimit::with_open_now);
        let configured = server.connections.max_connections;
        let max_connections = match fd_limit {
            Some(fd) => configured.min(fd.connections_allowed()),
            None => configured,
        };
        Limits {
            max_header_bytes: server.max_header_bytes,
            grace: server.shutdown_timeout,
            drain_delay: server.process.drain_delay,
            connections: server.connections,
            max_connections,
            fd_limit,
        }
    }

    /// Logs the limits in force in one line (and why `max_connections` was lowered).
    pub fn log(&self, server: &ServerConfig) {
        let c = &self.connections;
        let cap = if self.max_connections < c.max_connections {
            format!(
                "{} (server.max_connections {} lowered to fit the open-file limit; raise the hard limit, e.g. `ulimit -Hn` or systemd LimitNOFILE=, to allow more)",
                self.max_connections, c.max_connections
            )
        } else {
            self.max_connections.to_string()
        };
        let fd = match self.fd_limit {
            Some(fd) if fd.before < fd.soft => format!(
                "{} (raised from {}; {} open at start-up, {} kept in reserve)",
                fd.soft,
                fd.before,
                fd.open_at_start,
                fd.reserve()
            ),
            Some(fd) => format!(
                "{} ({} open at start-up, {} kept in reserve)",
                fd.soft,
                fd.open_at_start,
                fd.reserve()
            ),
            None => "unknown".to_owned(),
        };
        tracing::info!(
            "limits: max_connections {cap}; header_read_timeout {:?}; keepalive_timeout {:?}; body_read_timeout {:?}; request_timeout {:?}; body_limit {} B; max_header_bytes {} B; open files {fd}",
            c.header_read_timeout,
            c.keepalive_timeout,
            c.body_read_timeout,
            server.request_timeout,
            server.body_limit,
            self.max_header_bytes,
        );
    }
}

/// The process's open-file limit (`RLIMIT_NOFILE`).
#[derive(Debug, Clone, Copy)]
pub struct FdLimit {
    /// The soft limit in force: descriptors are numbered below it.
    pub soft: usize,
    /// The soft limit the process started with.
    pub before: usize,
    /// Descriptors open when the cap was computed.
    pub open_at_start: usize,
}

impl FdLimit {
    /// Raises the soft limit to the hard limit (the default soft limit, often 1024, is far
    /// below what a server needs and raising it needs no privilege). `None` where the limit
    /// cannot be read.
    #[cfg(unix)]
    pub fn raise() -> Option<FdLimit> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        let before = limit.rlim_cur;
        let target = if limit.rlim_max == libc::RLIM_INFINITY {
            // An unlimited hard limit still stops at the kernel's per-process ceiling.
            kernel_ceiling().unwrap_or(before)
        } else {
            limit.rlim_max
        };
        if target > before {
            let raised = libc::rlimit {
                rlim_cur: target,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit reads the struct it is given.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit.rlim_cur = target;
            } else {
                tracing::warn!(
                    "cannot raise the open-file limit from {before} to {target}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        let count = |n: libc::rlim_t| usize::try_from(n).unwrap_or(usize::MAX);
        Some(FdLimit {
            soft: count(limit.rlim_cur),
            before: count(before),
            open_at_start: 0,
        })
    }

    /// Not available on this platform.
    #[cfg(not(unix))]
    pub fn raise() -> Option<FdLimit> {
        None
    }

    /// This limit with the descriptors open now counted in.
    pub fn with_open_now(self) -> FdLimit {
        FdLimit {
            open_at_start: open_fds().unwrap_or(0),
            ..self
        }
    }

    /// Descriptors not available to connections.
    pub fn reserve(&self) -> usize {
        self.open_at_start + FD_MARGIN
    }

    /// How many connections fit beside the reserve (at least one).
    pub fn connections_allowed(&self) -> usize {
        self.soft.saturating_sub(self.reserve()).max(1)
    }
}

/// Linux's per-process ceiling on the fd limit (`fs.nr_open`).
#[cfg(unix)]
fn kernel_ceiling() -> Option<libc::rlim_t> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How many descriptors the process has open (Linux; `None` elsewhere).
fn open_fds() -> Option<usize> {
    // The directory handle itself is one of them.
    Some(
        std::fs::read_dir("/proc/self/fd")
            .ok()?
            .count()
            .saturating_sub(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_reserve_and_never_reaches_zero() {
        let fd = FdLimit {
            soft: 1024,
            before: 1024,
            open_at_start: 36,
        };
        assert_eq!(fd.reserve(), 36 + FD_MARGIN);
        assert_eq!(fd.connections_allowed(), 1024 - 36 - FD_MARGIN);
        let tiny = FdLimit { soft: 50, ..fd };
        assert_eq!(tiny.connections_allowed(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn raising_reaches_the_hard_limit_and_counts_open_descriptors() {
        let fd = FdLimit::raise()
            .expect("RLIMIT_NOFILE is readable")
            .with_open_now();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(fd.soft as libc::rlim_t, limit.rlim_cur);
        assert!(limit.rlim_max == libc::RLIM_INFINITY || limit.rlim_cur == limit.rlim_max);
        assert!(fd.open_at_start >= 3, "stdin, stdout and stderr at least");
    }
}
