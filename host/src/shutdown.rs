//! The end of the process, in an order that is sound by construction and bounded in time.
//!
//! 1. The first SIGINT/SIGTERM stops accepting; in-flight requests get the grace period
//!    (`shutdown_timeout_ms`).
//! 2. When it ends, every request task still alive is aborted and awaited: each dropped
//!    request cancels its plugin request while the plugin is alive (`server::stop`).
//! 3. Only then is each plugin's `shutdown` called, with the time left of the grace period
//!    (at least [`PLUGIN_FLOOR`]); after it no `handle` or `cancel` reaches the plugin
//!    (`plugin::LoadedPlugin`). The calls run on their own thread: a plugin that has not
//!    returned [`OVERRUN_SLACK`] after its deadline is abandoned, logged, and the process
//!    exits with [`EXIT_UNCLEAN`].
//! 4. The log is flushed for at most [`FLUSH_BOUND`].
//!
//! A second signal at any point exits at once with [`EXIT_SECOND_SIGNAL`]. So the process
//! ends within the grace period plus about a second, whatever its plugins or its stderr do.

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::logging;
use crate::plugin::LoadedPlugin;

/// Exit status after a second signal: 128 + SIGINT, what a shell reports for a process
/// stopped by Ctrl-C, for SIGINT and SIGTERM alike.
pub const EXIT_SECOND_SIGNAL: i32 = 130;
/// Exit status when shutdown could not be completed (a plugin's `shutdown` overran its
/// deadline, or a request task could not be stopped).
pub const EXIT_UNCLEAN: i32 = 1;
/// The least time a plugin's `shutdown` is given, even when the grace period is used up,
/// so it can still run its own shutdown hooks.
pub const PLUGIN_FLOOR: Duration = Duration::from_millis(300);
/// How long past its deadline a plugin's `shutdown` may take before it is abandoned.
pub const OVERRUN_SLACK: Duration = Duration::from_millis(200);
/// The longest the final log flush waits for a stderr that is not being read.
pub const FLUSH_BOUND: Duration = Duration::from_millis(200);

/// Calls every plugin's `shutdown` in order on one thread, giving each the time left until
/// `deadline` (at least [`PLUGIN_FLOOR`] from now for the whole sequence). Returns the name
/// of a plugin that did not return in time; the caller then exits without waiting for it.
pub fn stop_plugins(plugins: &[Arc<LoadedPlugin>], deadline: Instant) -> Result<(), String> {
    if plugins.is_empty() {
        return Ok(());
    }
    let deadline = deadline.max(Instant::now() + PLUGIN_FLOOR);
    let current = Arc::new(Mutex::new(String::new()));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let (list, in_shutdown) = (plugins.to_vec(), current.clone());
    let spawned = std::thread::Builder::new()
        .name("spikard-shutdown".into())
        .spawn(move || {
            for plugin in list {
                *in_shutdown.lock().unwrap_or_else(|e| e.into_inner()) = plugin.name.clone();
                plugin.shutdown(deadline.saturating_duration_since(Instant::now()));
            }
            let _ = done_tx.send(());
        });
    if let Err(e) = spawned {
        return Err(format!("(no thread to run plugin shutdown: {e})"));
    }
    let wait = deadline.saturating_duration_since(Instant::now()) + OVERRUN_SLACK;
    match done_rx.recv_timeout(wait) {
        Ok(()) => Ok(()),
        Err(_) => Err(current.lock().unwrap_or_else(|e| e.into_inner()).clone()),
    }
}

/// Flushes the log (at most [`FLUSH_BOUND`]) and ends the process now, without running
/// exit handlers or destructors that could touch a plugin still running on another thread.
pub fn exit_now(code: i32) -> ! {
    logging::flush(FLUSH_BOUND);
    // SAFETY: `_exit` ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}
