//! The process model.
//!
//! By default (`server.processes` unset or 1) the host is one process, exactly as before:
//! no supervisor, nothing in this module on the request path. With `processes = N > 1` the
//! process the operator starts is a [`supervisor`]: it binds the listening socket
//! ([`listener`]), re-executes its own binary as N [`worker`] processes that inherit that
//! socket and each load the plugins themselves (each its own CPython), restarts a worker that
//! dies, drains them all on SIGTERM/SIGINT, and on SIGHUP [`reload`]s: checks the new config,
//! starts a new generation, waits until it is ready, then drains the old one. [`health`] is
//! the liveness/readiness state the host answers itself; [`pid_file`] lets scripts find the
//! process to signal. `--reload` runs a supervisor even for one worker and [`watch`]es the
//! config, the plugin libraries and the application's source files, reloading on change.

pub mod health;
pub mod listener;
pub mod pid_file;
pub mod reload;
pub mod supervisor;
pub mod watch;
pub mod worker;

/// Logs and otherwise ignores SIGHUP in a process that cannot reload (one process without a
/// supervisor, or a worker): its default action would end the process, which is the last
/// thing an operator running `spikard-host reload` wants. Call inside the runtime.
#[cfg(unix)]
pub fn ignore_hangup() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if worker::is_worker() {
                tracing::warn!("SIGHUP ignored by a worker: send it to the supervisor to reload");
            } else {
                tracing::warn!(
                    "SIGHUP ignored: reloading needs a supervisor; run with server.processes = 2 or more, --processes or --reload"
                );
            }
        }
    });
}

/// Not available on this platform.
#[cfg(not(unix))]
pub fn ignore_hangup() {}

/// The name of signal `signal` (`SIGKILL`), or its number.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}
