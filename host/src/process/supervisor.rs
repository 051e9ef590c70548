//! The supervisor: owns the listening socket, keeps N workers running, drains them on
//! SIGTERM/SIGINT and replaces them generation by generation on SIGHUP.
//!
//! It runs no plugin and serves no request; it is a small event loop over worker events
//! ([`Event`]), signals and timers. A worker of the serving generation that exits is logged
//! (pid, exit status or signal, uptime) and replaced — at once when it had been up a while,
//! after an exponential backoff ([`FIRST_BACKOFF`] doubling to [`MAX_BACKOFF`]) when it keeps
//! dying at start-up. When the first generation cannot start, its error is printed and the
//! supervisor exits with status 2. A reload starts the new generation beside the old one and
//! drains the old one only once every new worker is ready; when the new one fails, the old
//! one keeps serving. With `--reload` a change of a watched file ([`super::watch`]) reloads
//! the same way, and a first generation that cannot start waits for the next change instead
//! of exiting.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use super::watch::{Watch, WatchSet};
use super::worker::{self, Event};
use super::{pid_file, reload, signal_name};
use crate::config::Processes;

/// First pause before restarting a worker that died at start-up; doubled each time in a row.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause before restarting a worker that keeps dying at start-up.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A worker that dies before it is ready, or within this time after, counts as failing at
/// start-up (backoff); one that lived longer is replaced at once.
const MIN_UPTIME: Duration = Duration::from_secs(1);
/// How long a new worker may take to become ready (a large Python application imports for
/// a while) before its generation is given up.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Past the grace period, how long the supervisor waits for draining workers (which end
/// themselves within about that) before it kills them.
const KILL_AFTER: Duration = Duration::from_millis(900);
/// Exit status after a second stop signal, as in the single-process host.
const EXIT_SECOND_SIGNAL: u8 = 130;

/// What the supervisor was started with.
pub struct Options {
    /// The binary to run as workers (this one).
    pub exe: PathBuf,
    /// The config file, absolute.
    pub config_file: PathBuf,
    /// The socket every worker shares; closed when stopping, so that once the workers have
    /// closed theirs new clients are refused rather than queued for nobody.
    pub listener: Option<TcpListener>,
    /// `--listen` was given (a reload does not compare addresses then).
    pub listen_override: bool,
    /// `--processes`, which wins over the config on reload too.
    pub processes_override: Option<Processes>,
    /// Workers of the first generation.
    pub processes: usize,
    /// Grace period plus drain delay of the first config.
    pub grace: Duration,
    /// Where to write the supervisor's pid.
    pub pid_file: Option<PathBuf>,
    /// `--reload`: what to watch.
    pub watch: Option<WatchSet>,
}

/// One worker process.
struct Worker {
    generation: u32,
    started: Instant,
    ready: bool,
    /// Told to drain (an old generation, a failed new one, or shutdown): its exit is expected.
    retiring: bool,
    /// Its start-up error, when it reported one.
    error: Option<String>,
}

/// A generation being started (the first one, or by a reload).
struct Starting {
    generation: u32,
    processes: usize,
    grace: Duration,
    deadline: Instant,
}

/// The supervisor's state.
struct Supervisor {
    options: Options,
    addr: SocketAddr,
    events_tx: mpsc::UnboundedSender<Event>,
    workers: HashMap<u32, Worker>,
    /// The generation serving (0 before the first one is ready).
    serving: u32,
    processes: usize,
    grace: Duration,
    next_generation: u32,
    starting: Option<Starting>,
    /// A reload's config check is running.
    checking: bool,
    /// Replacement workers to start, and when.
    restarts: Vec<Instant>,
    failures: u32,
    /// Set at the first stop signal: when stragglers get SIGKILL.
    stopping: Option<Instant>,
    killed_stragglers: bool,
    /// `--reload`'s file watcher.
    watch: Option<Watch>,
    /// Files changed while a reload was under way: reload again once it is done.
    reload_again: bool,
}

/// The stop and reload signals.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

/// What woke the loop.
enum Wake {
    Event(Event),
    Checked(Result<reload::Plan, String>),
    Stop(&'static str),
    Reload,
    /// Watched files changed (`--reload`): what changed, for the log.
    Changed(String),
    Timer,
}

/// Binds `listen`, runs the supervisor until its workers are gone; returns the process exit
/// status.
pub fn run(mut options: Options, listen: SocketAddr) -> Result<u8, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the supervisor's runtime: {e}"))?;
    runtime.block_on(async move {
        options.listener = Some(super::listener::bind(listen)?);
        let failed = |e: std::io::Error| format!("cannot handle signals: {e}");
        let mut signals = Signals {
            interrupt: signal(SignalKind::interrupt()).map_err(failed)?,
            terminate: signal(SignalKind::terminate()).map_err(failed)?,
            hangup: signal(SignalKind::hangup()).map_err(failed)?,
        };
        // Before the first generation starts: an edit made once it serves is seen.
        let watch = options.watch.take().map(Watch::start).transpose()?;
        let (events_tx, events) = mpsc::unbounded_channel();
        let addr = options
            .listener
            .as_ref()
            .ok_or("no listening socket")?
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        let mut supervisor = Supervisor {
            addr,
            events_tx,
            workers: HashMap::new(),
            serving: 0,
            processes: options.processes,
            grace: options.grace,
            next_generation: 1,
            starting: None,
            checking: false,
            restarts: Vec::new(),
            failures: 0,
            stopping: None,
            killed_stragglers: false,
            watch,
            reload_again: false,
            options,
        };
        let (processes, grace) = (supervisor.processes, supervisor.grace);
        supervisor.start_generation(processes, grace)?;
        supervisor.run(&mut signals, events).await
    })
}

impl Supervisor {
    async fn run(
        &mut self,
        signals: &mut Signals,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) -> Result<u8, String> {
        let (checked_tx, mut checked) = mpsc::unbounded_channel();
        loop {
            let timer = self.next_timer();
            let wake = tokio::select! {
                Some(event) = events.recv() => Wake::Event(event),
                Some(result) = checked.recv() => Wake::Checked(result),
                _ = signals.interrupt.recv() => Wake::Stop("SIGINT"),
                _ = signals.terminate.recv() => Wake::Stop("SIGTERM"),
                _ = signals.hangup.recv() => Wake::Reload,
                Some(what) = changed(&mut self.watch) => Wake::Changed(what),
                () = sleep_until(timer) => Wake::Timer,
            };
            let exit = match wake {
                Wake::Event(event) => self.on_event(event),
                Wake::Checked(result) => {
                    self.on_checked(result);
                    None
                }
                Wake::Stop(name) => self.on_stop(name),
                Wake::Reload => {
                    self.on_reload(&checked_tx);
                    None
                }
                Wake::Changed(what) => {
                    self.on_changed(&what, &checked_tx);
                    None
                }
                Wake::Timer => self.on_timer(),
            };
            if self.reload_again && !self.reloading() && self.stopping.is_none() {
                self.reload_again = false;
                self.begin_reload("files changed during the last reload", &checked_tx);
            }
            if let Some(code) = exit {
                if let Some(path) = &self.options.pid_file {
                    pid_file::remove(path);
                }
                return Ok(code);
            }
        }
    }

    /// Starts `processes` workers of a new generation; it serves once all are ready.
    fn start_generation(&mut self, processes: usize, grace: Duration) -> Result<(), String> {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.starting = Some(Starting {
            generation,
            processes,
            grace,
            deadline: Instant::now() + READY_TIMEOUT,
        });
        for _ in 0..processes {
            self.spawn(generation)?;
        }
        tracing::info!("starting generation {generation}: {processes} worker process(es)");
        Ok(())
    }

    fn spawn(&mut self, generation: u32) -> Result<u32, String> {
        let listener = self
            .options
            .listener
            .as_ref()
            .ok_or("the listening socket is closed (stopping)")?;
        let pid = worker::spawn(
            &self.options.exe,
            &self.options.config_file,
            super::listener::fd_of(listener),
            self.events_tx.clone(),
            self.watch.is_some(),
        )?;
        tracing::debug!("worker {pid} started (generation {generation})");
        self.workers.insert(
            pid,
            Worker {
                generation,
                started: Instant::now(),
                ready: false,
                retiring: false,
                error: None,
            },
        );
        Ok(pid)
    }

    fn on_event(&mut self, event: Event) -> Option<u8> {
        match event {
            Event::Ready(pid) => {
                self.on_ready(pid);
                None
            }
            Event::Failed(pid, message) => {
                if let Some(worker) = self.workers.get_mut(&pid) {
                    worker.error = Some(message);
                }
                None
            }
            Event::Exited(pid, status) => self.on_exit(pid, status),
        }
    }

    fn on_ready(&mut self, pid: u32) {
        let Some(worker) = self.workers.get_mut(&pid) else {
            return;
        };
        worker.ready = true;
        let generation = worker.generation;
        if worker.retiring {
            return;
        }
        if generation == self.serving {
            tracing::info!("worker {pid} ready (replacement, generation {generation})");
            return;
        }
        let Some(starting) = &self.starting else {
            return;
        };
        if generation != starting.generation {
            return;
        }
        let mut pids: Vec<u32> = self
            .workers
            .iter()
            .filter(|(_, w)| w.generation == generation && w.ready && !w.retiring)
            .map(|(pid, _)| *pid)
            .collect();
        if pids.len() < starting.processes {
            return;
        }
        pids.sort_unstable();
        let (processes, grace) = (starting.processes, starting.grace);
        self.starting = None;
        let old = self.serving;
        self.serving = generation;
        self.processes = processes;
        self.grace = grace;
        self.restarts.clear();
        self.failures = 0;
        if old == 0 {
            tracing::info!("listening on http://{}", self.addr);
            tracing::info!(
                "supervisor {}: {processes} worker process(es) ready (pids {pids:?})",
                std::process::id()
            );
            if let Some(path) = &self.options.pid_file {
                if let Err(e) = pid_file::write(path) {
                    tracing::error!("{e}");
                }
            }
        } else {
            tracing::info!(
                "reload: generation {generation} ready (pids {pids:?}); draining generation {old}"
            );
            self.retire(|w| w.generation != generation, libc::SIGTERM);
        }
    }

    fn on_exit(&mut self, pid: u32, status: ExitStatus) -> Option<u8> {
        let worker = self.workers.remove(&pid)?;
        let uptime = worker.started.elapsed();
        let how = describe(status);
        if self.stopping.is_some() {
            tracing::info!("worker {pid} exited ({how}) after {uptime:.1?}");
            return self.workers.is_empty().then(|| self.stop_status());
        }
        if worker.retiring {
            tracing::info!(
                "worker {pid} (generation {}) exited ({how}) after draining",
                worker.generation
            );
            return None;
        }
        let error = worker.error.clone();
        if self
            .starting
            .as_ref()
            .is_some_and(|s| s.generation == worker.generation)
        {
            return self.generation_failed(pid, &how, error);
        }
        let failing = !worker.ready || uptime < MIN_UPTIME;
        let delay = if failing {
            self.failures += 1;
            backoff(self.failures)
        } else {
            self.failures = 0;
            Duration::ZERO
        };
        let because = error.map(|e| format!(": {e}")).unwrap_or_default();
        tracing::error!(
            "worker {pid} exited ({how}) after {uptime:.1?}{because}; starting a replacement{}",
            if delay.is_zero() {
                String::new()
            } else {
                format!(" in {delay:?} (it keeps failing at start-up)")
            }
        );
        self.restarts.push(Instant::now() + delay);
        None
    }

    /// A worker of the generation being started died before it was ready.
    fn generation_failed(&mut self, pid: u32, how: &str, error: Option<String>) -> Option<u8> {
        let generation = self.starting.take()?.generation;
        self.retire(|w| w.generation == generation, libc::SIGKILL);
        let error =
            error.unwrap_or_else(|| format!("worker {pid} exited ({how}) before it was ready"));
        if self.serving == 0 && self.watch.is_some() {
            tracing::error!("{error}; waiting for a change of a watched file to try again");
            return None;
        }
        if self.serving == 0 {
            eprintln!("spikard-host: error: {error}");
            crate::logging::flush(crate::shutdown::FLUSH_BOUND);
            self.kill_all(libc::SIGKILL);
            return Some(crate::EXIT_STARTUP);
        }
        tracing::error!(
            "reload failed: {error}; still serving generation {}",
            self.serving
        );
        None
    }

    fn on_reload(&mut self, checked: &mpsc::UnboundedSender<Result<reload::Plan, String>>) {
        if self.stopping.is_some() {
            return;
        }
        if self.reloading() {
            tracing::warn!("SIGHUP: a reload is already under way; send it again once it is done");
            return;
        }
        self.begin_reload("SIGHUP", checked);
    }

    /// `--reload`: watched files changed (`what` says which).
    fn on_changed(
        &mut self,
        what: &str,
        checked: &mpsc::UnboundedSender<Result<reload::Plan, String>>,
    ) {
        if self.stopping.is_some() {
            return;
        }
        if self.reloading() {
            tracing::info!("{what}; reloading again once the reload under way is done");
            self.reload_again = true;
            return;
        }
        self.begin_reload(what, checked);
    }

    /// Whether a reload's check or new generation is under way.
    fn reloading(&self) -> bool {
        self.checking || self.starting.is_some()
    }

    /// Checks the config file again (as a child `--check`); `on_checked` takes it from there.
    fn begin_reload(
        &mut self,
        why: &str,
        checked: &mpsc::UnboundedSender<Result<reload::Plan, String>>,
    ) {
        tracing::info!("{why}: reloading {}", self.options.config_file.display());
        self.checking = true;
        let exe = self.options.exe.clone();
        let file = self.options.config_file.clone();
        let (addr, listen_override, processes) = (
            self.addr,
            self.options.listen_override,
            self.options.processes_override,
        );
        let checked = checked.clone();
        let reloading = self.watch.is_some();
        tokio::spawn(async move {
            let result =
                reload::check(&exe, &file, addr, listen_override, processes, reloading).await;
            let _ = checked.send(result);
        });
    }

    fn on_checked(&mut self, result: Result<reload::Plan, String>) {
        self.checking = false;
        if self.stopping.is_some() {
            return;
        }
        match result {
            Err(error) => tracing::error!("reload refused: {error}; {}", self.still_serving()),
            Ok(plan) => {
                if let Some(watch) = &self.watch {
                    watch.update(plan.watch.clone());
                }
                if let Err(e) = self.start_generation(plan.processes, plan.grace) {
                    tracing::error!("reload failed: {e}; {}", self.still_serving());
                    if let Some(starting) = self.starting.take() {
                        self.retire(|w| w.generation == starting.generation, libc::SIGKILL);
                    }
                }
            }
        }
    }

    fn on_stop(&mut self, name: &str) -> Option<u8> {
        if self.stopping.is_some() {
            tracing::warn!("second signal ({name}): exiting now");
            // Their second signal: each worker exits at once too.
            self.kill_all(libc::SIGTERM);
            return Some(EXIT_SECOND_SIGNAL);
        }
        let grace = self
            .grace
            .max(self.starting.as_ref().map_or(Duration::ZERO, |s| s.grace));
        tracing::info!(
            "{name}: stopping {} worker(s); in-flight requests get {grace:?}",
            self.workers.len()
        );
        self.stopping = Some(Instant::now() + grace + KILL_AFTER);
        self.options.listener = None;
        self.starting = None;
        self.restarts.clear();
        self.kill_all(libc::SIGTERM);
        self.workers.is_empty().then(|| self.stop_status())
    }

    fn on_timer(&mut self) -> Option<u8> {
        let now = Instant::now();
        if let Some(deadline) = self.stopping {
            if now >= deadline {
                tracing::error!(
                    "{} worker(s) still running past the grace period: killing them",
                    self.workers.len()
                );
                self.killed_stragglers = true;
                self.kill_all(libc::SIGKILL);
                return Some(self.stop_status());
            }
            return None;
        }
        if let Some(starting) = &self.starting {
            if now >= starting.deadline {
                let generation = starting.generation;
                self.starting = None;
                self.retire(|w| w.generation == generation, libc::SIGKILL);
                let error =
                    format!("generation {generation} was not ready within {READY_TIMEOUT:?}");
                if self.serving == 0 && self.watch.is_some() {
                    tracing::error!("{error}; waiting for a change of a watched file to try again");
                    return None;
                }
                if self.serving == 0 {
                    eprintln!("spikard-host: error: {error}");
                    return Some(crate::EXIT_STARTUP);
                }
                tracing::error!(
                    "reload failed: {error}; still serving generation {}",
                    self.serving
                );
            }
        }
        let due = self.restarts.iter().filter(|&&at| at <= now).count();
        self.restarts.retain(|&at| at > now);
        for _ in 0..due {
            match self.spawn(self.serving) {
                Ok(pid) => tracing::info!("worker {pid} started to replace one that exited"),
                Err(e) => {
                    self.failures += 1;
                    let delay = backoff(self.failures);
                    tracing::error!("{e}; retrying in {delay:?}");
                    self.restarts.push(now + delay);
                }
            }
        }
        None
    }

    /// "still serving generation 3" (or, under `--reload` before any generation started,
    /// "waiting for the next change").
    fn still_serving(&self) -> String {
        if self.serving == 0 {
            "nothing is serving yet; waiting for the next change".to_owned()
        } else {
            format!("still serving generation {}", self.serving)
        }
    }

    /// The earliest moment something is due.
    fn next_timer(&self) -> Option<Instant> {
        let restarts = self.restarts.iter().min().copied();
        let starting = self.starting.as_ref().map(|s| s.deadline);
        [self.stopping, restarts, starting]
            .into_iter()
            .flatten()
            .min()
    }

    /// Marks the workers `which` selects as retiring and sends them `signal`.
    fn retire(&mut self, which: impl Fn(&Worker) -> bool, signal: libc::c_int) {
        for (pid, worker) in &mut self.workers {
            if !worker.retiring && which(worker) {
                worker.retiring = true;
                send(*pid, signal);
            }
        }
    }

    fn kill_all(&mut self, signal: libc::c_int) {
        for (pid, worker) in &mut self.workers {
            worker.retiring = true;
            send(*pid, signal);
        }
    }

    fn stop_status(&self) -> u8 {
        if self.killed_stragglers {
            1
        } else {
            tracing::info!("stopped");
            0
        }
    }
}

/// The pause before the `failures`-th restart in a row of a worker failing at start-up.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

fn send(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill sends a signal; a worker that is already gone makes it fail harmlessly.
        unsafe { libc::kill(pid, signal) };
    }
}

/// "exit status 2", "signal SIGKILL", "signal SIGSEGV, core dumped".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) if status.core_dumped() => {
            format!("signal {}, core dumped", signal_name(signal))
        }
        (None, Some(signal)) => format!("signal {}", signal_name(signal)),
        _ => format!("{status}"),
    }
}

/// The next change `watch` reports; never, without `--reload`.
async fn changed(watch: &mut Option<Watch>) -> Option<String> {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }
}
