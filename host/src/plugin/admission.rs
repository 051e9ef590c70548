//! Backpressure: at most `max_in_flight` requests of one plugin are in its hands at once.
//!
//! A request holds a [`Permit`] from the moment the host hands it over until the plugin
//! answers it (`respond`, `respond_error`, `stream_end`) or the request ends (timeout, client
//! gone, shutdown), whichever comes first: the permit lives in the request's responder slot
//! (see [`super::responders`]), which the host reclaims when the request ends. Beyond the
//! limit the host answers `503` with `Retry-After` without calling the plugin: overload
//! costs a refused request, never unbounded queues inside the plugin.
//!
//! A streamed response holds its permit until the plugin ends the stream or the client
//! leaves: a long stream is a request in the plugin's hands.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Requests per core a plugin may hold by default: generous for plugins that answer from
/// their own threads (a timer, an event loop), small enough that a stalled plugin holds a
/// bounded amount of request memory.
pub const DEFAULT_PER_CORE: usize = 1024;

/// The default `max_in_flight`: [`DEFAULT_PER_CORE`] × the cores this process may use.
pub fn default_max_in_flight() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    DEFAULT_PER_CORE.saturating_mul(cores)
}

/// One plugin's in-flight count. Leaked (plugins live for the process), so permits are a
/// plain reference and releasing one is a single atomic subtraction.
#[derive(Debug)]
pub struct Admission {
    plugin: String,
    max: usize,
    in_flight: AtomicUsize,
    /// Set while refusing, so the warning is logged once per episode.
    saturated: AtomicBool,
}

/// A request the plugin holds; dropping it (when the plugin answers) frees the slot.
#[derive(Debug)]
pub struct Permit(&'static Admission);

impl Admission {
    /// A leaked admission counter for `plugin` allowing `max` requests at once.
    pub fn leak(plugin: &str, max: usize) -> &'static Admission {
        Box::leak(Box::new(Admission {
            plugin: plugin.to_owned(),
            max: max.max(1),
            in_flight: AtomicUsize::new(0),
            saturated: AtomicBool::new(false),
        }))
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A permit, or `None` when the plugin already holds `max` requests.
    pub fn try_acquire(&'static self) -> Option<Permit> {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        if before >= self.max {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            if !self.saturated.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    plugin = %self.plugin,
                    "plugin `{}` holds its max_in_flight of {} requests; answering 503 until it answers some",
                    self.plugin,
                    self.max
                );
            }
            return None;
        }
        if self.saturated.load(Ordering::Relaxed) {
            self.saturated.store(false, Ordering::Relaxed);
        }
        Some(Permit(self))
    }
}

impl Permit {
    /// The name of the plugin this permit counts against, for the log lines about its
    /// responders.
    pub fn plugin(&self) -> &'static str {
        &self.0.plugin
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_bounded_and_returned_on_drop() {
        let admission = Admission::leak("test", 2);
        let a = admission.try_acquire().expect("first");
        let b = admission.try_acquire().expect("second");
        assert!(admission.try_acquire().is_none(), "a third is refused");
        drop(a);
        let c = admission.try_acquire().expect("a freed slot is reused");
        assert!(admission.try_acquire().is_none());
        drop((b, c));
        assert_eq!(admission.in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_default_scales_with_the_machine() {
        assert!(default_max_in_flight() >= DEFAULT_PER_CORE);
    }
}
