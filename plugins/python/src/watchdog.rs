//! Event-loop stall detection, always on and cheap: a thread of its own
//! pings the loop through its mailbox every quarter of the threshold and
//! times the answer. Only when an answer is late by half the threshold does
//! it take the GIL, once, to see what the loop thread is running
//! (`Runtime.describe_loop`: the handler and the line). A stall longer than
//! the threshold is logged when it ends, with its length; one still going
//! on is logged after 1 s and then at every doubling, so a handler that
//! never returns is reported without flooding the log.
//!
//! Limits: a C extension that blocks while holding the GIL is named only
//! once it lets go (the watchdog waits for the GIL to look).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::mailbox::Mailbox;

/// The loop's answers to pings; the mailbox's drain calls [`Pulse::pong`].
pub struct Pulse {
    epoch: Instant,
    /// Microseconds since `epoch` + 1 of the last answer; 0: none since the
    /// last ping.
    answered: AtomicU64,
}

impl Pulse {
    /// A pulse with no answer yet.
    pub fn new() -> Self {
        Pulse {
            epoch: Instant::now(),
            answered: AtomicU64::new(0),
        }
    }

    /// The loop thread got the ping.
    pub fn pong(&self) {
        let us = self.epoch.elapsed().as_micros() as u64 + 1;
        self.answered.store(us, Ordering::Release);
    }

    fn reset(&self) {
        self.answered.store(0, Ordering::Release);
    }

    fn answered_at(&self) -> Option<Instant> {
        match self.answered.load(Ordering::Acquire) {
            0 => None,
            us => Some(self.epoch + Duration::from_micros(us - 1)),
        }
    }
}

/// What is blocking the loop now, as far as the watchdog knows.
#[derive(Debug, Clone)]
pub struct Stall {
    /// When the unanswered ping was sent.
    pub since: Instant,
    /// `handler app:spin (at app.py:12 in spin)`, once looked up.
    pub culprit: Option<String>,
}

struct State {
    stop: AtomicBool,
    stall: Mutex<Option<Stall>>,
}

/// The watchdog thread.
pub struct Watchdog {
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching: pings go through `mailbox`, answers come back in
    /// `pulse`, `runtime.describe_loop()` names the culprit.
    pub fn start(
        threshold: Duration,
        mailbox: Mailbox,
        pulse: Arc<Pulse>,
        runtime: Py<PyAny>,
    ) -> std::io::Result<Self> {
        let state = Arc::new(State {
            stop: AtomicBool::new(false),
            stall: Mutex::new(None),
        });
        let watched = state.clone();
        let thread = std::thread::Builder::new()
            .name("spikard-py-watchdog".into())
            .spawn(move || watch(&watched, threshold, &mailbox, &pulse, &runtime))?;
        Ok(Watchdog {
            state,
            thread: Some(thread),
        })
    }

    /// The stall going on now, if the loop has not answered for `at_least`.
    pub fn stall(&self, at_least: Duration) -> Option<Stall> {
        self.state
            .stall
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|s| s.since.elapsed() >= at_least)
    }

    /// Stops watching (the loop is about to stop: its silence is no stall).
    /// Does not wait for the thread, which may be waiting for the GIL.
    pub fn stop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
        }
    }
}

/// The loop's answers, as the watchdog thread sees them.
fn watch(
    state: &State,
    threshold: Duration,
    mailbox: &Mailbox,
    pulse: &Pulse,
    runtime: &Py<PyAny>,
) {
    let tick = (threshold / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    let first_report = (threshold * 10).max(Duration::from_secs(1));
    let mut sent: Option<Instant> = None;
    let mut culprit: Option<String> = None;
    let mut next_report = first_report;
    loop {
        std::thread::park_timeout(tick);
        if state.stop.load(Ordering::Acquire) {
            return;
        }
        let Some(at) = sent else {
            pulse.reset();
            sent = Some(Instant::now());
            mailbox.ping();
            continue;
        };
        if let Some(answered) = pulse.answered_at() {
            let blocked = answered.saturating_duration_since(at);
            if blocked >= threshold {
                tracing::warn!(
                    "the event loop was blocked for {} ms by {}; async handlers waited meanwhile",
                    blocked.as_millis(),
                    culprit
                        .as_deref()
                        .unwrap_or("code the watchdog could not see")
                );
            }
            *state.stall.lock().unwrap_or_else(|e| e.into_inner()) = None;
            (sent, culprit, next_report) = (None, None, first_report);
            continue;
        }
        let age = at.elapsed();
        if age < threshold / 2 {
            continue;
        }
        if culprit.is_none() {
            culprit = Some(describe(runtime));
        }
        *state.stall.lock().unwrap_or_else(|e| e.into_inner()) = Some(Stall {
            since: at,
            culprit: culprit.clone(),
        });
        if age >= next_report {
            tracing::warn!(
                "the event loop has been blocked for {} ms by {} and still is; async handlers wait",
                age.as_millis(),
                culprit.as_deref().unwrap_or("?")
            );
            next_report *= 2;
        }
    }
}

/// What the loop thread runs now (takes the GIL).
fn describe(runtime: &Py<PyAny>) -> String {
    Python::attach(|py| {
        runtime
            .bind(py)
            .call_method0("describe_loop")
            .and_then(|d| d.extract::<String>())
            .unwrap_or_else(|e| format!("code the watchdog could not name ({e})"))
    })
}
