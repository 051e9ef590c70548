//! How the server stops: the signals that start it and the request tasks it must end.
//!
//! The first SIGINT or SIGTERM stops accepting and gives in-flight requests the grace
//! period; a second one exits at once (status [`crate::shutdown::EXIT_SECOND_SIGNAL`]).
//! When the grace period ends with requests still in flight, every connection task is
//! aborted and *awaited*: dropping a request future (or a streamed body) gives its responder
//! slot back and cancels its plugin request (`plugin::pending`) while the plugin is still
//! alive, and only once every future is gone may the plugins be shut down.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

/// How long aborted request tasks get to be dropped. Dropping one only cancels its plugin
/// request (which must not block), so this is ample; a task still there after it is stuck
/// inside a plugin call.
pub const ABORT_BOUND: Duration = Duration::from_millis(200);

/// Set when the server abandons its in-flight requests, so their access lines say
/// `outcome=shutdown` rather than `client_disconnected`.
static ABANDONING: AtomicBool = AtomicBool::new(false);

/// Whether the server is abandoning in-flight requests (the grace period is over).
pub fn abandoning() -> bool {
    ABANDONING.load(Ordering::Relaxed)
}

/// What [`super::serve`] reports when it returns.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// The end of the grace period: plugins' `shutdown` gets the time left until then.
    pub deadline: Instant,
    /// Every request task is gone (finished, or aborted and dropped), so no call into a
    /// plugin can happen any more. False when a task could not be dropped in time.
    pub drained: bool,
}

/// SIGINT and SIGTERM, which mean the same: stop.
pub struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes over SIGINT and SIGTERM. A handler a plugin installed for them during `init`
    /// (CPython installs one for SIGINT) is removed first, so it is not chained to and
    /// Ctrl-C stops the server exactly like SIGTERM.
    pub fn install() -> Result<Signals, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            take_over(libc::SIGINT, "SIGINT");
            take_over(libc::SIGTERM, "SIGTERM");
            let failed = |e: std::io::Error| format!("cannot handle SIGINT/SIGTERM: {e}");
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt()).map_err(failed)?,
                terminate: signal(SignalKind::terminate()).map_err(failed)?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Waits for the next SIGINT or SIGTERM; returns its name.
    pub async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }

    /// From now on a signal ends the process at once: shutdown has begun and the operator
    /// does not want to wait for it.
    pub fn exit_on_next(mut self) {
        tokio::spawn(async move {
            let name = self.next().await;
            tracing::warn!("second signal ({name}): exiting now");
            crate::shutdown::exit_now(crate::shutdown::EXIT_SECOND_SIGNAL);
        });
    }
}

/// Resets `signal` to its default action when a handler function is installed (by a
/// plugin), so tokio's handler, installed next, does not chain to it. Ignored signals stay
/// as they are for tokio to handle.
#[cfg(unix)]
fn take_over(signal: libc::c_int, name: &str) {
    // SAFETY: sigaction with a null new action only reads the current one.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } != 0 {
        return;
    }
    if current.sa_sigaction == libc::SIG_DFL || current.sa_sigaction == libc::SIG_IGN {
        return;
    }
    tracing::debug!("a plugin installed a {name} handler; the host takes {name} over");
    // SAFETY: installing the default action is always valid.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
}

/// The connection tasks, so they can be aborted and awaited at the end of the grace period.
#[derive(Default)]
pub struct Connections {
    tasks: JoinSet<()>,
}

impl Connections {
    /// Spawns a connection task (and forgets those that have finished).
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        while self.tasks.try_join_next().is_some() {}
        self.tasks.spawn(task);
    }

    /// Aborts every connection task and waits until all are dropped, at most `bound`.
    /// Dropping a request future cancels its plugin request and writes its access line
    /// (`outcome=shutdown`). Returns whether they were all dropped.
    pub async fn abandon(mut self, bound: Duration) -> bool {
        ABANDONING.store(true, Ordering::Relaxed);
        self.tasks.abort_all();
        let all_dropped = async { while self.tasks.join_next().await.is_some() {} };
        let drained = tokio::time::timeout(bound, all_dropped).await.is_ok();
        if !drained {
            tracing::error!(
                "{} request task(s) could not be stopped within {bound:?} (stuck inside a plugin call?)",
                self.tasks.len()
            );
        }
        drained
    }
}
