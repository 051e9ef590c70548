//! `shutdown(deadline)`: the deadline is the time left, and the call
//! returns within it (plus [`JOIN_MARGIN`]) whatever the handlers do,
//! without ever taking the GIL on the host's thread:
//!
//! 0. Streamed responses are ended (their producers closed).
//! 1. Requests still running (e.g. cancelled ones in their `finally`
//!    blocks, or `def` handlers whose results will be discarded) may finish
//!    until the deadline less the hooks' share ([`hooks_share`]).
//! 2. Then what waits in a queue is answered 503 (it never starts), and a
//!    `def` handler still running has its request answered 503 (its result
//!    is discarded when it comes).
//! 3. The loop, reached through its mailbox, cancels the tasks still
//!    running (their `finally` blocks run) and runs the `on_shutdown` hooks
//!    with what is left of the deadline. A loop that a handler keeps blocked
//!    never gets to it: the log names the handler, and the hooks are skipped
//!    rather than waited for.
//! 4. The loop is stopped and the loop thread and the sync workers are
//!    joined until the deadline; what still runs then is named in the log
//!    and left to the process exit.
//!
//! A deadline under [`FLOOR`] counts as `FLOOR`, so the hooks still get a
//! moment when the host has no time left to give (`--check`, a failed
//! start); the host allows a plugin 200 ms past its deadline.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::{native, Bridge, PythonPlugin};

/// The least deadline the plugin works with.
pub const FLOOR: Duration = Duration::from_millis(100);

/// For a thread that was asked to stop at the deadline to notice it.
const JOIN_MARGIN: Duration = Duration::from_millis(50);

/// The share of the deadline kept for cancelling tasks and running the
/// hooks: half, at least 200 ms (all of a shorter deadline), at most 1 s.
fn hooks_share(deadline: Duration) -> Duration {
    (deadline / 2)
        .max(Duration::from_millis(200))
        .min(Duration::from_secs(1))
        .min(deadline)
}

/// Detail of the 503 for requests cut short by the shutdown.
pub const SHUTTING_DOWN: &str = "the server is shutting down";

impl PythonPlugin {
    /// Whether no request waits or runs.
    fn idle(&self) -> bool {
        native::IN_FLIGHT.load(Ordering::Acquire) == 0
            && self.mailbox.pending() == 0
            && self.workers.idle()
    }

    /// The shutdown sequence of the module docs.
    pub(crate) fn stop(&self, deadline: Duration) {
        let started = Instant::now();
        let deadline = deadline.max(FLOOR);
        let until = started + deadline;
        let drain_until = until - hooks_share(deadline);
        self.stopping.store(true, Ordering::Release);
        // Streams last until their producer ends: the server stopping ends
        // them now (their producers are closed, their `finally` blocks run).
        let streams = crate::stream::cancel_all();
        if streams > 0 {
            tracing::info!("shutdown: ending {streams} streamed response(s)");
        }

        while !self.idle() && Instant::now() < drain_until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let cut =
            self.mailbox.refuse_pending(SHUTTING_DOWN) + self.workers.refuse_all(SHUTTING_DOWN);
        let running = native::IN_FLIGHT.load(Ordering::Acquire);
        if cut + running > 0 {
            tracing::warn!(
                "shutdown: {cut} request(s) answered 503 after {} ms, {running} still running being cancelled",
                started.elapsed().as_millis()
            );
        }

        let hooks_ran = self.stop_loop_work(until);
        let mut watchdog = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(watchdog) = &mut watchdog {
            watchdog.stop();
        }
        self.mailbox.stop_loop();
        let join_until = until.max(Instant::now()) + JOIN_MARGIN;
        if let Some(mut event_loop) = self
            .event_loop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // A blocked loop was reported above; only a silent one here.
            if !event_loop.join_until(join_until) && hooks_ran {
                tracing::warn!(
                    "the event loop thread did not stop; it is left to the process exit"
                );
            }
        }
        for abandoned in self.workers.stop(SHUTTING_DOWN, join_until) {
            tracing::warn!(
                "handler {} still running at shutdown (for {} ms on {}); abandoned",
                self.label(abandoned.handler_id),
                abandoned.running_for.as_millis(),
                abandoned.thread
            );
        }
        if let Bridge::IntoFuture(bridge) = &self.bridge {
            bridge.stop();
        }
        tracing::info!(
            "python plugin stopped in {} ms",
            started.elapsed().as_millis()
        );
    }

    /// Step 3: the loop cancels its tasks and runs the hooks. False when it
    /// did not finish by `until` (a blocked loop: logged here).
    fn stop_loop_work(&self, until: Instant) -> bool {
        // Python's own timeouts end a little earlier, so it can say what it
        // abandoned.
        let budget = until.saturating_duration_since(Instant::now()).mul_f64(0.9);
        let done = self.mailbox.shutdown(budget);
        if done.wait_until(until) {
            return true;
        }
        let watchdog = self.watchdog.lock().unwrap_or_else(|e| e.into_inner());
        match watchdog.as_ref().map(|w| w.stall(Duration::ZERO)) {
            Some(Some(stall)) => tracing::error!(
                "{} still running at shutdown, blocking the event loop for {} ms; abandoned, and on_shutdown hooks not run",
                stall.culprit.as_deref().unwrap_or("a handler the watchdog could not name"),
                stall.since.elapsed().as_millis()
            ),
            Some(None) => tracing::error!(
                "the event loop did not finish cancelling requests and running the on_shutdown hooks by the deadline; abandoned"
            ),
            None => tracing::error!(
                "the event loop did not finish cancelling requests and running the on_shutdown hooks by the deadline (loop_stall_warning_ms = 0, so the blocking handler is not named); abandoned"
            ),
        }
        false
    }

    /// A handler's `module:qualname`.
    fn label(&self, handler_id: u64) -> &str {
        self.handlers
            .get(handler_id as usize)
            .map_or("?", |h| h.label.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hooks_keep_a_share_of_every_deadline() {
        let ms = Duration::from_millis;
        assert_eq!(hooks_share(ms(100)), ms(100));
        assert_eq!(hooks_share(ms(300)), ms(200));
        assert_eq!(hooks_share(ms(1000)), ms(500));
        assert_eq!(hooks_share(ms(10_000)), ms(1000));
    }
}
