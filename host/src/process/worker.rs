//! Worker processes: how the supervisor starts one, and how a worker tells it that it is
//! ready (or why it could not start).
//!
//! A worker is the host's own binary re-executed (never a fork of a process that already
//! runs tokio or Python threads) with two inherited descriptors named in its environment:
//! the shared listening socket ([`super::listener::LISTEN_FD_ENV`]) and the write end of a
//! pipe ([`READY_FD_ENV`]). Once the worker accepts connections it writes `R` to the pipe
//! and closes it; when its start-up fails it writes `E` and its one-line error instead and
//! exits with status 2, so the supervisor can log that error once, in its own words. A
//! worker runs in its own process group (a terminal's Ctrl-C reaches only the supervisor,
//! which forwards it once) and gets SIGTERM if the supervisor dies (Linux `PDEATHSIG`).

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::listener::{self, LISTEN_FD_ENV};

/// Names the readiness pipe's write end in a worker's environment.
pub const READY_FD_ENV: &str = "SPIKARD_READY_FD";

/// Set in a worker process.
static IS_WORKER: AtomicBool = AtomicBool::new(false);
/// The readiness pipe, until the worker reports on it.
static REPORT: Mutex<Option<File>> = Mutex::new(None);

/// Whether this process is a worker of a supervisor.
pub fn is_worker() -> bool {
    IS_WORKER.load(Ordering::Relaxed)
}

/// In a worker: takes the inherited listener and readiness pipe out of the environment.
/// `None` when this process is not a worker. Call first thing in `main`, before any thread
/// exists (it removes the variables, so processes a plugin starts do not see them).
pub fn from_env() -> Option<Result<TcpListener, String>> {
    let listen = std::env::var(LISTEN_FD_ENV).ok()?;
    let ready = std::env::var(READY_FD_ENV).ok();
    std::env::remove_var(LISTEN_FD_ENV);
    std::env::remove_var(READY_FD_ENV);
    IS_WORKER.store(true, Ordering::Relaxed);
    if let Some(fd) = ready.and_then(|t| t.parse::<RawFd>().ok()) {
        // SAFETY: F_GETFD only checks that the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            listener::set_cloexec(fd, true);
            // SAFETY: the supervisor passed this pipe's write end to this process to own.
            let file = unsafe { File::from_raw_fd(fd) };
            *REPORT.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
        }
    }
    Some(listener::inherited(&listen))
}

/// In a worker: tells the supervisor it accepts connections now. Does nothing elsewhere.
pub fn report_ready() {
    report(b"R");
}

/// In a worker: hands the supervisor the one-line start-up error. Returns false when this
/// process is not a worker (the caller prints the error itself).
pub fn report_failure(message: &str) -> bool {
    if !is_worker() {
        return false;
    }
    let mut text = b"E".to_vec();
    text.extend_from_slice(message.as_bytes());
    report(&text)
}

fn report(bytes: &[u8]) -> bool {
    let file = REPORT.lock().unwrap_or_else(|e| e.into_inner()).take();
    file.is_some_and(|mut f| f.write_all(bytes).is_ok())
}

/// What the supervisor hears about a worker.
#[derive(Debug)]
pub enum Event {
    /// The worker accepts connections.
    Ready(u32),
    /// The worker could not start: its one-line error (its exit follows).
    Failed(u32, String),
    /// The worker exited (after any `Ready`/`Failed` of it).
    Exited(u32, ExitStatus),
}

/// Starts a worker serving `config` on the listener `listen_fd`; its events arrive on
/// `events`. `reloading`: under `--reload` (see [`super::watch::fresh_sources`]). Returns its
/// pid.
pub fn spawn(
    exe: &Path,
    config: &Path,
    listen_fd: RawFd,
    events: UnboundedSender<Event>,
    reloading: bool,
) -> Result<u32, String> {
    let (read_end, write_end) = pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let ready_fd = write_end.as_raw_fd();
    // SAFETY: getpid is always safe.
    let supervisor = unsafe { libc::getpid() };
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("--config")
        .arg(config)
        .env(LISTEN_FD_ENV, listen_fd.to_string())
        .env(READY_FD_ENV, ready_fd.to_string())
        .process_group(0)
        .kill_on_drop(false);
    if reloading {
        super::watch::fresh_sources(&mut command);
    }
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe calls
    // (fcntl, prctl, getppid, _exit), touching no memory shared with other threads.
    unsafe {
        command.pre_exec(move || {
            if !listener::set_cloexec(listen_fd, false) || !listener::set_cloexec(ready_fd, false) {
                return Err(std::io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                if libc::getppid() != supervisor {
                    libc::_exit(1);
                }
            }
            let _ = supervisor;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start a worker ({}): {e}", exe.display()))?;
    drop(write_end);
    let pid = child.id().unwrap_or(0);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let reader_events = events.clone();
    let reader = std::thread::Builder::new()
        .name("spikard-ready".into())
        .spawn(move || {
            let mut text = Vec::new();
            let _ = File::from(read_end).take(64 << 10).read_to_end(&mut text);
            match text.first() {
                Some(b'R') => {
                    let _ = reader_events.send(Event::Ready(pid));
                }
                Some(b'E') => {
                    let message = String::from_utf8_lossy(&text[1..]).trim().to_owned();
                    let _ = reader_events.send(Event::Failed(pid, message));
                }
                _ => {}
            }
            let _ = done_tx.send(());
        });
    if let Err(e) = reader {
        tracing::warn!("cannot watch worker {pid}'s readiness: {e}");
    }
    tokio::spawn(async move {
        let status = child.wait().await;
        // Ready/Failed first: the pipe's end comes at the latest with the exit.
        let _ = tokio::time::timeout(Duration::from_secs(1), done_rx).await;
        match status {
            Ok(status) => {
                let _ = events.send(Event::Exited(pid, status));
            }
            Err(e) => tracing::error!("cannot wait for worker {pid}: {e}"),
        }
    });
    Ok(pid)
}

/// A pipe whose ends are both close-on-exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
