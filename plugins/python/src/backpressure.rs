//! Bounded queues: a request that would make a queue exceed its bounds is
//! answered `503` with `Retry-After` instead of growing memory, and each
//! overload episode is logged once when it starts and once when it ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::settings::Bounds;

/// Seconds a refused client is asked to wait.
pub const RETRY_AFTER: &str = "1";

/// The bounds of one queue and the log of its overload episodes.
pub struct Gate {
    /// Names the queue in log lines and in the 503's detail.
    what: &'static str,
    bounds: Bounds,
    refusing: AtomicBool,
    refused: AtomicU64,
}

impl Gate {
    /// A gate for the queue named `what` (e.g. "the event loop's queue").
    pub fn new(what: &'static str, bounds: Bounds) -> Self {
        Gate {
            what,
            bounds,
            refusing: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        }
    }

    /// Whether one more job of `size` bytes fits beside `pending` jobs of
    /// `bytes` bytes. The first job always fits, whatever its size.
    pub fn admits(&self, pending: usize, bytes: usize, size: usize) -> bool {
        pending == 0
            || (pending < self.bounds.max_pending
                && bytes.saturating_add(size) <= self.bounds.max_pending_bytes)
    }

    /// Records a refusal; logs the start of an episode. Returns the 503's
    /// detail.
    pub fn refused(&self, pending: usize, bytes: usize) -> String {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if !self.refusing.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "{} is full ({pending} requests, {bytes} bytes waiting; settings.max_pending = {}, max_pending_bytes = {}): new requests get 503 with Retry-After until it drains",
                self.what,
                self.bounds.max_pending,
                self.bounds.max_pending_bytes
            );
        }
        format!(
            "the server is overloaded: {} holds {pending} waiting requests; retry later",
            self.what
        )
    }

    /// Records an admission; logs the end of an episode. One relaxed load
    /// when there is none.
    pub fn admitted(&self) {
        if self.refusing.load(Ordering::Relaxed) && self.refusing.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                "{} accepts requests again after refusing {} with 503",
                self.what,
                self.refused.swap(0, Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_count_and_bytes_but_always_admit_one() {
        let gate = Gate::new(
            "q",
            Bounds {
                max_pending: 2,
                max_pending_bytes: 100,
            },
        );
        assert!(gate.admits(0, 0, 1000));
        assert!(gate.admits(1, 50, 50));
        assert!(!gate.admits(1, 50, 51));
        assert!(!gate.admits(2, 0, 0));
        assert!(gate.refused(2, 0).contains("q holds 2 waiting requests"));
        assert!(gate.refusing.load(Ordering::Relaxed));
        gate.admitted();
        assert!(!gate.refusing.load(Ordering::Relaxed));
    }
}
