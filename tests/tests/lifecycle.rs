//! The end of the process, end to end (issue 9): a request still in flight when the grace
//! period ends is cancelled while its plugin is alive, then the plugin is shut down, and the
//! host exits cleanly within the grace period plus a second — with the Rust SDK, a C plugin
//! and the Python plugin. Also: a second signal exits at once, SIGINT behaves like SIGTERM,
//! a plugin whose `shutdown` hangs is abandoned, overload is a 503 with `Retry-After`, and
//! a request that times out or is abandoned still gets its access-log line.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use spikard_tests::{echo_plugin_block, repo_root, request, Server, TempDir};

/// The grace period of these tests.
const GRACE_MS: u64 = 300;
/// The bound the host promises: it exits within the grace period plus a second.
const EXIT_BOUND: Duration = Duration::from_millis(GRACE_MS + 1000);

/// Starts a host whose log includes the plugins' debug records (the echo plugin logs each
/// cancellation at debug).
fn start(config: &str, files: &[(&str, &str)]) -> Server {
    Server::try_start(config, files, |command| {
        command.env("RUST_LOG", "info,spikard_echo=debug");
    })
    .unwrap_or_else(|log| panic!("spikard-host did not start; its log:\n{log}"))
}

/// Sends `GET path` from a thread; the answer (if any) comes back through the handle.
fn in_flight(server: &Server, path: &str) -> std::thread::JoinHandle<Option<u16>> {
    let addr = server.addr;
    let path = path.to_owned();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .ok()?;
        let head = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).ok()?;
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw);
        text.split(' ').nth(1)?.parse().ok()
    })
}

/// Signals the host and waits for its exit, which must come within `bound`.
fn stop(server: &mut Server, signal: &str, bound: Duration) -> (ExitStatus, Duration) {
    let sent = Instant::now();
    server.signal(signal);
    let status = server.wait_exit(bound);
    let took = sent.elapsed();
    eprintln!("SIG{signal}: {status:?} after {took:?}");
    (status, took)
}

fn assert_clean_exit(status: ExitStatus, took: Duration, log: &str) {
    assert_eq!(
        status.signal(),
        None,
        "killed by a signal: {status:?}\n{log}"
    );
    assert_eq!(status.code(), Some(0), "exit status\n{log}");
    assert!(took <= EXIT_BOUND, "exited after {took:?}\n{log}");
}

/// Asserts that `first` is logged, and before `then`.
fn assert_logged_in_order(log: &str, first: &str, then: &str) {
    let a = log
        .find(first)
        .unwrap_or_else(|| panic!("no {first:?} in the log:\n{log}"));
    let b = log
        .find(then)
        .unwrap_or_else(|| panic!("no {then:?} in the log:\n{log}"));
    assert!(a < b, "{first:?} must come before {then:?}:\n{log}");
}

/// Waits until the host logs that it has handed a request over (its access line is
/// written only at the end, so wait for the plugin to hold it instead: a short sleep).
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

fn echo_config(extra_server: &str, routes: &str) -> String {
    format!(
        "[server]\nshutdown_timeout_ms = {GRACE_MS}\nrequest_timeout_ms = 30000\n{extra_server}\n{}\n{routes}",
        echo_plugin_block()
    )
}

const SLOW_ROUTE: &str = r#"
[[routes]]
method = "GET"
path = "/slow"
plugin = "echo"
handler = "delay"
settings = { delay_ms = 20000, body = "late" }

[[routes]]
method = "GET"
path = "/hello"
plugin = "echo"
handler = "respond"
settings = { body = "hello" }
"#;

#[test]
fn rust_plugin_request_in_flight_at_the_end_of_grace_is_cancelled_before_shutdown() {
    let mut s = start(&echo_config("", SLOW_ROUTE), &[]);
    let client = in_flight(&s, "/slow");
    settle();
    let (status, took) = stop(&mut s, "TERM", EXIT_BOUND + Duration::from_secs(5));
    let log = s.log();
    assert_clean_exit(status, took, &log);
    // The plugin's `cancel` (which reads its instance) ran, and before its `shutdown`.
    assert_logged_in_order(&log, "delay cancelled", "spikard_echo stopped");
    assert!(
        log.contains("outcome=shutdown") && log.contains("path=/slow"),
        "the abandoned request has its access line:\n{log}"
    );
    assert_eq!(
        client.join().unwrap(),
        None,
        "the connection was closed without an answer"
    );
}

/// Compiles `tests/c-plugin/hello_plugin.c` as a shared library with `defines`.
fn compile_c_plugin(dir: &TempDir, defines: &[&str]) -> PathBuf {
    let out = dir.path().join("libc_hello.so");
    let root = repo_root();
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(["-std=c11", "-Wall", "-Werror", "-shared", "-fPIC", "-I"])
        .arg(root.join("abi/include"))
        .arg(root.join("tests/c-plugin/hello_plugin.c"))
        .arg("-o")
        .arg(&out);
    for define in defines {
        cc.arg(format!("-D{define}"));
    }
    let output = cc.output().expect("run the C compiler (cc)");
    assert!(
        output.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn c_config(library: &Path) -> String {
    format!(
        "[server]\nshutdown_timeout_ms = {GRACE_MS}\nrequest_timeout_ms = 30000\n\n[[plugins]]\nname = \"c\"\nlibrary = \"{}\"\n\n[[routes]]\nmethod = \"GET\"\npath = \"/hang\"\nplugin = \"c\"\nhandler = \"hang\"\n",
        library.display()
    )
}

#[test]
fn c_plugin_request_in_flight_at_the_end_of_grace_is_cancelled_before_shutdown() {
    let dir = TempDir::new("c-lifecycle");
    let library = compile_c_plugin(&dir, &[]);
    let mut s = start(&c_config(&library), &[]);
    let client = in_flight(&s, "/hang");
    settle();
    let (status, took) = stop(&mut s, "TERM", EXIT_BOUND + Duration::from_secs(5));
    let log = s.log();
    assert_clean_exit(status, took, &log);
    assert_logged_in_order(&log, "hang cancelled", "C plugin stopped");
    assert_eq!(client.join().unwrap(), None);
}

/// The Python test app: one `async def` and one `def` handler that sleep far past the grace
/// period.
const SLEEPY_APP: &str = r#"
import asyncio
import time

from spikard import App

app = App()


@app.get("/async-sleep")
async def async_sleep() -> dict:
    await asyncio.sleep(30)
    return {"slept": True}


@app.get("/sync-sleep")
def sync_sleep() -> dict:
    time.sleep(30)
    return {"slept": True}
"#;

fn python_config(dir_hint: &str) -> String {
    let root = repo_root();
    let venv = root.join(".venv");
    assert!(
        venv.is_dir(),
        "{} is missing: create it as README.md says (python3 -m venv .venv && .venv/bin/pip install -r plugins/python/requirements.txt)",
        venv.display()
    );
    let library = spikard_tests::plugin_library("spikard_python");
    format!(
        "[server]\nshutdown_timeout_ms = {GRACE_MS}\nrequest_timeout_ms = 60000\n\n[[plugins]]\nname = \"py\"\nlibrary = \"{}\"\nsettings = {{ app = \"sleepy_app:app\", python_path = [\"{dir_hint}\", \"{}\"], venv = \"{}\" }}\n",
        library.display(),
        root.join("plugins/python").display(),
        venv.display()
    )
}

fn python_request_in_flight_at_the_end_of_grace(path: &str) {
    let mut s = start(&python_config("."), &[("sleepy_app.py", SLEEPY_APP)]);
    let client = in_flight(&s, path);
    settle();
    let (status, took) = stop(&mut s, "TERM", EXIT_BOUND + Duration::from_secs(10));
    let log = s.log();
    assert_clean_exit(status, took, &log);
    assert!(log.contains("outcome=shutdown"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    let _ = client.join();
}

#[test]
fn python_async_request_in_flight_at_the_end_of_grace_exits_cleanly() {
    python_request_in_flight_at_the_end_of_grace("/async-sleep");
}

#[test]
fn python_sync_request_in_flight_at_the_end_of_grace_exits_cleanly() {
    python_request_in_flight_at_the_end_of_grace("/sync-sleep");
}

#[test]
fn a_second_signal_exits_at_once() {
    for (first, second) in [("TERM", "TERM"), ("INT", "INT"), ("TERM", "INT")] {
        // A long grace period: only the second signal can end it early.
        let config = echo_config("", SLOW_ROUTE).replace(
            &format!("shutdown_timeout_ms = {GRACE_MS}"),
            "shutdown_timeout_ms = 30000",
        );
        let mut s = start(&config, &[]);
        let _client = in_flight(&s, "/slow");
        settle();
        s.signal(first);
        s.wait_for_log("shutting down");
        let (status, _) = stop(&mut s, second, Duration::from_secs(3));
        let log = s.log();
        assert_eq!(status.code(), Some(130), "{first} then {second}:\n{log}");
        assert!(log.contains("second signal"), "{log}");
        assert!(log.contains("exiting now"), "{log}");
    }
}

#[test]
fn sigint_stops_like_sigterm() {
    let mut s = start(&echo_config("", SLOW_ROUTE), &[]);
    assert_eq!(s.get("/hello").status, 200);
    let (status, took) = stop(&mut s, "INT", EXIT_BOUND + Duration::from_secs(5));
    let log = s.log();
    assert_clean_exit(status, took, &log);
    assert!(log.contains("spikard_echo stopped"), "{log}");
}

#[test]
fn a_plugin_whose_shutdown_hangs_is_abandoned() {
    let dir = TempDir::new("c-slow-shutdown");
    let library = compile_c_plugin(&dir, &["SLOW_SHUTDOWN_MS=20000"]);
    let mut s = start(&c_config(&library), &[]);
    let (status, took) = stop(&mut s, "TERM", Duration::from_secs(5));
    let log = s.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(took <= EXIT_BOUND, "exited after {took:?}\n{log}");
    assert!(
        log.contains("plugin `c` did not finish its shutdown"),
        "{log}"
    );
}

#[test]
fn overload_is_a_503_with_retry_after_and_the_plugin_is_not_called() {
    let config = format!(
        "[server]\nproblem_type_base = \"https://spikard.dev/errors/\"\nrequest_timeout_ms = 30000\n\n{}max_in_flight = 2\n\n[[routes]]\nmethod = \"GET\"\npath = \"/slow\"\nplugin = \"echo\"\nhandler = \"delay\"\nsettings = {{ delay_ms = 1500, body = \"done\" }}\n",
        echo_plugin_block()
    );
    let s = start(&config, &[]);
    let held: Vec<_> = (0..2).map(|_| in_flight(&s, "/slow")).collect();
    settle();
    let refused = s.get("/slow");
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    let body = refused.json();
    assert_eq!(body["type"], "https://spikard.dev/errors/overloaded");
    assert_eq!(body["status"], 503);
    s.wait_for_log("max_in_flight of 2");
    for client in held {
        assert_eq!(
            client.join().unwrap(),
            Some(200),
            "admitted requests finish"
        );
    }
    assert_eq!(s.get("/slow").status, 200, "slots are free again");
}

#[test]
fn a_request_that_times_out_is_cancelled_and_logged_as_a_timeout() {
    let config = format!(
        "[server]\nrequest_timeout_ms = 300\n\n{}\n[[routes]]\nmethod = \"GET\"\npath = \"/slow\"\nplugin = \"echo\"\nhandler = \"delay\"\nsettings = {{ delay_ms = 20000, body = \"late\" }}\n",
        echo_plugin_block()
    );
    let s = start(&config, &[]);
    let r = s.get("/slow");
    assert_eq!(r.status, 504);
    let id = r.header("x-request-id").unwrap().to_owned();
    s.wait_for_log("outcome=timeout");
    s.wait_for_log("delay cancelled");
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("spikard::access") && l.contains(&id))
        .unwrap_or_else(|| panic!("no access line for {id}:\n{log}"));
    assert!(
        line.contains("status=504") && line.contains("outcome=timeout"),
        "{line}"
    );
    // The cancelled request gave its in-flight slot back: the route still serves.
    assert_eq!(request(s.addr, "GET", "/slow", &[], b"").status, 504);
}

fn c_route(library: &Path, handler: &str) -> String {
    format!(
        "[[plugins]]\nname = \"c\"\nlibrary = \"{}\"\n\n[[routes]]\nmethod = \"GET\"\npath = \"/{handler}\"\nplugin = \"c\"\nhandler = \"{handler}\"\n",
        library.display()
    )
}

#[test]
fn a_plugin_crash_leaves_a_line_in_the_log() {
    let dir = TempDir::new("c-crash");
    let library = compile_c_plugin(&dir, &[]);
    let mut s = start(&c_route(&library, "crash"), &[]);
    assert_eq!(in_flight(&s, "/crash").join().unwrap(), None);
    let status = s.wait_exit(Duration::from_secs(10));
    assert_eq!(status.signal(), Some(11), "ended by SIGSEGV: {status:?}");
    s.wait_for_log("fatal signal SIGSEGV");
}

#[test]
fn a_plugin_calling_exit_leaves_a_line_in_the_log() {
    let dir = TempDir::new("c-exit");
    let library = compile_c_plugin(&dir, &[]);
    let mut s = start(&c_route(&library, "exit"), &[]);
    assert_eq!(in_flight(&s, "/exit").join().unwrap(), None);
    let status = s.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(3), "{status:?}");
    s.wait_for_log("exit() called by a plugin");
}

#[test]
fn sigint_is_the_hosts_even_when_a_plugin_installed_a_handler() {
    let dir = TempDir::new("c-sigint");
    let library = compile_c_plugin(&dir, &["GRAB_SIGINT"]);
    let mut s = start(&c_config(&library), &[]);
    let (status, took) = stop(&mut s, "INT", EXIT_BOUND + Duration::from_secs(5));
    let log = s.log();
    assert_clean_exit(status, took, &log);
    assert!(log.contains("C plugin stopped"), "{log}");
}

#[test]
fn max_in_flight_is_checked_and_shown_by_check() {
    let bad = spikard_tests::run_host(
        &format!("{}max_in_flight = 0\n", echo_plugin_block()),
        &["--check"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("plugins[0].max_in_flight") && bad.stderr.contains("between 1 and"),
        "{}",
        bad.stderr
    );
    let good = spikard_tests::run_host(
        &format!("{}max_in_flight = 7\n", echo_plugin_block()),
        &["--check"],
    );
    assert!(good.status.success(), "{}", good.stderr);
    assert!(good.stdout.contains("max_in_flight 7"), "{}", good.stdout);
}
