//! Crash visibility: what the host can say when the process dies under it.
//!
//! A plugin runs inside the host's process, so a segfault in a C extension, an `abort()` or
//! a plugin calling `exit()` ends the host too; the host cannot survive it (a worker process
//! model will restart crashed processes). What it can do is leave a line on stderr so the
//! operator sees that it crashed and why, instead of a log that just stops:
//!
//! - a fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) writes
//!   `spikard-host: fatal signal SIGSEGV ...`, then hands the signal on to the handler that
//!   was there before (Rust's stack-overflow report) and finally to the default action, so
//!   the exit status and core dump are the signal's. A handler a plugin installs later
//!   (Python's `faulthandler`, which prints the Python tracebacks) runs first and chains
//!   back here.
//! - `exit()` called while the host was not stopping logs
//!   `exit() called by a plugin while the host was serving` and flushes the log.
//!
//! It cannot see `_exit()` (Python's `os._exit`) or SIGKILL (the OOM killer): nothing runs
//! in the process then. Log lines still queued when a fatal signal arrives are lost; the
//! signal handler only writes its own line, with `write(2)`, which is async-signal-safe.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Signals that end the process, with their names and messages (built once, so the
/// handler only writes bytes).
const FATAL: [(libc::c_int, &str); 5] = [
    (libc::SIGSEGV, "SIGSEGV (invalid memory access)"),
    (libc::SIGBUS, "SIGBUS (bus error)"),
    (libc::SIGILL, "SIGILL (illegal instruction)"),
    (libc::SIGFPE, "SIGFPE (arithmetic fault)"),
    (libc::SIGABRT, "SIGABRT (abort)"),
];

/// Per fatal signal: the message to write and the action that was installed before ours.
struct Previous {
    message: Vec<u8>,
    action: libc::sigaction,
}

/// Indexed like [`FATAL`]; set once before the handlers are installed.
static PREVIOUS: OnceLock<Vec<Previous>> = OnceLock::new();

/// Set when the host itself decides to exit, so the exit hook stays quiet.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Installs the fatal-signal handlers and the exit hook. Call once, before plugins load, so
/// handlers they install (Python's `faulthandler`) chain to these.
pub fn install() {
    let mut previous = Vec::with_capacity(FATAL.len());
    for (signal, name) in FATAL {
        let message = format!(
            "spikard-host: fatal signal {name}: the process is ending; a plugin or the host crashed (a Python plugin's traceback, if any, is above)\n"
        )
        .into_bytes();
        // SAFETY: reading the current action with a null new action.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) };
        previous.push(Previous { message, action });
    }
    if PREVIOUS.set(previous).is_err() {
        return;
    }
    for (signal, _) in FATAL {
        // SAFETY: a zeroed sigaction with our handler, SA_SIGINFO and SA_ONSTACK (the
        // alternate stack Rust sets up for its threads, for stack overflows).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    // SAFETY: registering a plain function; it runs at most once, at exit.
    unsafe { libc::atexit(on_exit) };
}

/// The host is about to exit on its own: `exit()` from now on is not a plugin's doing.
pub fn exiting() {
    EXITING.store(true, Ordering::Relaxed);
}

/// Writes the line, runs the previous handler, then the default action.
extern "C" fn on_fatal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let Some(previous) = PREVIOUS.get() else {
        return;
    };
    let Some(i) = FATAL.iter().position(|(s, _)| *s == signal) else {
        return;
    };
    let previous = &previous[i];
    // SAFETY: write(2) is async-signal-safe; the message is a static-lifetime buffer.
    unsafe { libc::write(2, previous.message.as_ptr().cast(), previous.message.len()) };
    let handler = previous.action.sa_sigaction;
    if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
        // SAFETY: calling the handler that was installed before ours, as the kernel would
        // have, with the same arguments and the flavour its flags say.
        unsafe {
            if previous.action.sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(handler);
                f(signal, info, context);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                f(signal);
            }
        }
    }
    // SAFETY: async-signal-safe calls: the default action, raised again; it is delivered
    // when this handler returns (a fault re-executes and hits it too).
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// `exit()` while the host was not stopping: a plugin ended the process.
extern "C" fn on_exit() {
    if EXITING.load(Ordering::Relaxed) {
        return;
    }
    tracing::error!("exit() called by a plugin while the host was serving: the process is ending");
    crate::logging::flush(crate::shutdown::FLUSH_BOUND);
}
