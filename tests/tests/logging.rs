//! Logging when stderr stops being read (issue 9, item 7): the host keeps answering, its
//! memory stays bounded, SIGTERM still exits promptly, and once stderr is read again the
//! host reports how many log lines it dropped.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use spikard_tests::{echo_plugin_block, host_binary, vm_rss_kib, RawConn, TempDir};

/// Requests sent while stderr is stalled. Each access line carries an 8 KiB path, so an
/// unbounded log buffer would grow by about 8 KiB per request (80 MiB here).
const REQUESTS: usize = 10_000;
/// Growth of resident memory allowed while they are logged: the log queue holds at most
/// 2 MiB, the rest is the allocator's and the test's slack.
const RSS_BOUND_KIB: u64 = 24 * 1024;
const GRACE_MS: u64 = 500;

/// Sends `count` requests for `path` over `connections` kept-alive connections; each gets
/// a 404 (and an access line).
fn hammer(addr: SocketAddr, path: &str, count: usize, connections: usize) {
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let path = path.to_owned();
            std::thread::spawn(move || {
                let mut conn = RawConn::connect(addr).expect("connect");
                let head = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
                for _ in 0..count / connections {
                    conn.send(head.as_bytes()).expect("send");
                    let deadline = Instant::now() + Duration::from_secs(10);
                    let r = conn.read_response(deadline, 1 << 20).expect("a response");
                    assert_eq!(r.status, 404);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("request thread");
    }
}

/// Reads `stderr` until a line contains `needle`, giving up at `deadline`; returns what
/// it read. Reading stops at the match, so the pipe stalls again afterwards.
fn read_until(
    stderr: BufReader<ChildStderr>,
    needle: &'static str,
    deadline: Duration,
) -> (String, BufReader<ChildStderr>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stderr = stderr;
        let mut seen = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            seen.push_str(&line);
            let found = line.contains(needle);
            line.clear();
            if found {
                break;
            }
        }
        let _ = tx.send((seen, stderr));
    });
    rx.recv_timeout(deadline)
        .unwrap_or_else(|_| panic!("stderr never showed {needle:?}"))
}

/// The host process, killed if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_stalled_stderr_costs_dropped_lines_not_memory_or_a_hung_exit() {
    let dir = TempDir::new("stalled-stderr");
    let config = dir.write(
        "spikard.toml",
        &format!(
            "[server]\naccess_log = true\nshutdown_timeout_ms = {GRACE_MS}\n\n{}\n[[routes]]\nmethod = \"GET\"\npath = \"/hello\"\nplugin = \"echo\"\nhandler = \"respond\"\n",
            echo_plugin_block()
        ),
    );
    let mut child = KillOnDrop(
        Command::new(host_binary())
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start spikard-host"),
    );
    let pid = child.0.id();
    let mut stderr = BufReader::new(child.0.stderr.take().expect("stderr piped"));
    // Read up to the address, then stop reading: stderr is a pipe nobody drains.
    let mut line = String::new();
    let addr: SocketAddr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("read stderr") > 0,
            "host exited"
        );
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().parse().expect("address");
        }
    };
    let path = format!("/missing/{}", "x".repeat(8 * 1024));

    // Fill the pipe (64 KiB) and the log queue, then measure.
    hammer(addr, &path, 500, 4);
    let before = vm_rss_kib(pid).expect("VmRSS");
    hammer(addr, &path, REQUESTS, 4);
    let after = vm_rss_kib(pid).expect("VmRSS");
    eprintln!(
        "VmRSS with stderr stalled: {before} KiB before, {after} KiB after {REQUESTS} requests"
    );
    assert!(
        after.saturating_sub(before) < RSS_BOUND_KIB,
        "resident memory grew from {before} KiB to {after} KiB while stderr was stalled"
    );

    // Reading again lets the writer through, and it says what it dropped.
    let (seen, stderr) = read_until(stderr, "log lines dropped", Duration::from_secs(20));
    let report = seen
        .lines()
        .find(|l| l.contains("log lines dropped"))
        .expect("the report line");
    let dropped: u64 = report
        .split("spikard::log: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {report:?}"));
    assert!(
        dropped > 1000,
        "most of the {REQUESTS} lines were dropped: {report}"
    );

    // Stall it again, then stop: the exit must not wait on the pipe.
    hammer(addr, &path, 200, 2);
    let sent = Instant::now();
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let bound = Duration::from_millis(GRACE_MS + 1000);
    let exit = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        if sent.elapsed() > bound + Duration::from_secs(10) {
            panic!("spikard-host did not exit with its stderr stalled");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = sent.elapsed();
    eprintln!("{report}\nexit {exit:?} {took:?} after SIGTERM with stderr stalled");
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert!(took <= bound, "exit took {took:?} with stderr stalled");
    let mut rest = String::new();
    let _ = { stderr }.read_to_string(&mut rest);
    assert!(!rest.is_empty(), "the pipe still held lines");
}
