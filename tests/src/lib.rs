//! Test harness for end-to-end tests: starts the real `spikard-host` binary
//! on a config written to a temporary directory, waits for it to log its
//! address, and talks HTTP/1.1 to it over a real socket.
//!
//! The binaries come from the workspace's target directory; run
//! `cargo build --workspace` before `cargo test` (the README's test command
//! does both).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `target/<profile>`: where cargo put the test executable's siblings.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test-exe>
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable in target/<profile>/deps")
        .to_path_buf()
}

/// The host binary under test.
pub fn host_binary() -> PathBuf {
    let path = target_dir().join("spikard-host");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        path.display()
    );
    path
}

/// A plugin library built by the workspace, e.g. `spikard_echo`.
pub fn plugin_library(name: &str) -> PathBuf {
    let path = target_dir().join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a unique directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("spikard-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file inside it (creating its directories) and returns the file's path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create temp subdirectory");
        }
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The flags every C plugin of the compatibility matrix is built with: a warning is a
/// failure, so the header stays clean for the strictest C11 user.
pub const STRICT_C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];

/// Compiles `tests/c-plugin/<source>` with the system C compiler (`$CC`, else `cc`) into
/// `out`, with `include` as the directory of `spikard_plugin.h` (the current
/// `abi/include` or a frozen copy) and `flags` (warnings, `-D` defines, `-shared -fPIC`
/// for a plugin). Panics with the compiler's output when it fails. Returns `out`.
pub fn compile_c(source: &str, include: &Path, out: &Path, flags: &[&str]) -> PathBuf {
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(flags)
        .arg("-I")
        .arg(include)
        .arg(repo_root().join("tests/c-plugin").join(source))
        .arg("-o")
        .arg(out);
    let output = cc.output().expect("run the C compiler (cc)");
    assert!(
        output.status.success(),
        "cc {source} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out.to_path_buf()
}

/// The `[[plugins]]` block for the echo plugin under the name `echo`.
pub fn echo_plugin_block() -> String {
    format!(
        "[[plugins]]\nname = \"echo\"\nlibrary = \"{}\"\n",
        plugin_library("spikard_echo").display()
    )
}

/// A running host; killed on drop.
pub struct Server {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    dir: TempDir,
}

/// What a host run that ended produced.
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// Runs the host to completion with `args` (e.g. `--check`) on `config`.
pub fn run_host(config: &str, args: &[&str]) -> Finished {
    let dir = TempDir::new("run");
    let path = dir.write("spikard.toml", config);
    run_host_file(&path, args)
}

/// Runs `--check` on a config and expects what every start-up error must be: exit status 2
/// and one `spikard-host: error:` line containing all `needles`, no panic. Returns the line.
pub fn expect_startup_error(config: &str, needles: &[&str]) -> String {
    let run = run_host(config, &["--check"]);
    assert_eq!(
        run.status.code(),
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("spikard-host: error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{}", run.stderr))
        .to_owned();
    for needle in needles {
        assert!(line.contains(needle), "{needle:?} not in {line:?}");
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    line
}

/// Runs the host to completion on an existing config file.
pub fn run_host_file(config: &Path, args: &[&str]) -> Finished {
    let output = Command::new(host_binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("run spikard-host");
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Server {
    /// Starts the host on `config` (written to a temp dir, with any extra
    /// files), on a free port, and waits until it listens.
    pub fn start(config: &str) -> Server {
        Server::start_with_files(config, &[])
    }

    /// Like [`Server::start`], writing `files` beside the config first.
    pub fn start_with_files(config: &str, files: &[(&str, &str)]) -> Server {
        Server::try_start(config, files, |_| {}).unwrap_or_else(|log| {
            panic!("spikard-host did not start; its log:\n{log}");
        })
    }

    /// Like [`Server::start_with_files`], letting `customize` adjust the command first (e.g.
    /// a `pre_exec` that lowers a resource limit); `Err` carries the host's log when it did
    /// not come up (a config it refuses, a crash), so a caller can report or retry.
    pub fn try_start(
        config: &str,
        files: &[(&str, &str)],
        customize: impl FnOnce(&mut Command),
    ) -> Result<Server, String> {
        let dir = TempDir::new("server");
        for (name, contents) in files {
            dir.write(name, contents);
        }
        let path = dir.write("spikard.toml", config);
        let mut command = Command::new(host_binary());
        command
            .arg("--config")
            .arg(&path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        customize(&mut command);
        let mut child = command.spawn().expect("start spikard-host");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let (Some(tx), Ok(addr)) = (tx.take(), rest.trim().parse::<SocketAddr>()) {
                        let _ = tx.send(addr);
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        // The log thread drops the sender at EOF, so a host that exits early ends the wait.
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(50));
                let log = log.lock().unwrap().clone();
                return Err(log);
            }
        };
        Ok(Server {
            child: Some(child),
            addr,
            log,
            dir,
        })
    }

    /// The config file the host runs on (rewrite it, then SIGHUP, to test a reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("spikard.toml")
    }

    /// The host's process id, e.g. to read its memory use with [`vm_rss_kib`].
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends one request and reads the whole response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        request(self.addr, method, path, headers, body)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"")
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &str) -> HttpResponse {
        self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
    }

    /// Everything the host logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (or panics after 10 s).
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("log never contained {needle:?}:\n{}", self.log());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends a signal (e.g. `"TERM"`) to the host.
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit (or panics after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "spikard-host did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?} (status {})",
                String::from_utf8_lossy(&self.body),
                self.status
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect to spikard-host");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    let mut has_length = false;
    for (name, value) in headers {
        has_length |= name.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !has_length && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    // The server may answer (413) before reading a large body and close.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

/// Parses a complete HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("incomplete response: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// Resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`); `None` once the
/// process is gone or on a system without procfs. The hostile suite bounds its growth.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How a connection ended when the client waited for the server to close it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The server closed it (FIN, or a reset), after sending these bytes (often none).
    By(Vec<u8>),
    /// Still open at the deadline.
    StillOpen,
}

/// A raw client connection that keeps whatever the server sent beyond one response, so
/// pipelined and kept-alive responses can be read one by one, and that can report how and
/// when the server closed it. Every read is bounded by a deadline and a byte budget.
pub struct RawConn {
    /// The socket, for writes and shutdowns by the caller.
    pub stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl RawConn {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> std::io::Result<RawConn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        Ok(RawConn {
            stream,
            buf: Vec::new(),
            eof: false,
        })
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream
            .set_write_timeout(Some(Duration::from_secs(10)))?;
        self.stream.write_all(bytes)
    }

    /// Reads more bytes into the buffer before `deadline`; `Ok(0)` at end of stream.
    fn fill(&mut self, deadline: Instant) -> Result<usize, String> {
        if self.eof {
            return Ok(0);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err("timed out".into())
            }
            Err(e) => Err(format!("read error: {e}")),
        }
    }

    /// Reads exactly one response (a `1xx` is one too): the head, then a body delimited by
    /// `Content-Length`, chunked coding, or the close. `Err` says what came instead: no
    /// answer before `deadline`, a close or reset before a whole response, or more than
    /// `max` bytes.
    pub fn read_response(&mut self, deadline: Instant, max: usize) -> Result<HttpResponse, String> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill_for("a response head", deadline, max)?;
        };
        let head = parse_response(&self.buf[..head_end]);
        let no_body = head.status < 200 || head.status == 204 || head.status == 304;
        let length = head
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"));
        let body = if no_body {
            self.buf.drain(..head_end);
            Vec::new()
        } else if chunked {
            let mut at = head_end;
            let mut body = Vec::new();
            loop {
                let line = loop {
                    if let Some(i) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    self.fill_for("a chunk size", deadline, max)?;
                };
                let text = String::from_utf8_lossy(&self.buf[at..at + line]).into_owned();
                let size = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| format!("bad chunk size line {text:?}"))?;
                at += line + 2;
                if size == 0 {
                    // No trailers expected: the final CRLF.
                    while self.buf.len() < at + 2 {
                        self.fill_for("the end of a chunked body", deadline, max)?;
                    }
                    at += 2;
                    break;
                }
                while self.buf.len() < at + size + 2 {
                    self.fill_for("a chunk", deadline, max)?;
                }
                body.extend_from_slice(&self.buf[at..at + size]);
                at += size + 2;
            }
            self.buf.drain(..at);
            body
        } else if let Some(length) = length {
            if length > max {
                return Err(format!("a response body of {length} bytes (over {max})"));
            }
            while self.buf.len() < head_end + length {
                self.fill_for("the response body", deadline, max)?;
            }
            let body = self.buf[head_end..head_end + length].to_vec();
            self.buf.drain(..head_end + length);
            body
        } else {
            while !self.eof {
                self.fill_for_close(deadline, max)?;
            }
            let body = self.buf[head_end..].to_vec();
            self.buf.clear();
            body
        };
        Ok(HttpResponse { body, ..head })
    }

    fn fill_for(&mut self, what: &str, deadline: Instant, max: usize) -> Result<(), String> {
        if self.buf.len() > max {
            return Err(format!("more than {max} bytes before {what}"));
        }
        match self.fill(deadline) {
            Ok(0) if self.buf.is_empty() => Err("the connection closed without a response".into()),
            Ok(0) => Err(format!(
                "the connection closed before {what} ({} bytes received)",
                self.buf.len()
            )),
            Ok(_) => Ok(()),
            Err(e) if e == "timed out" => Err(format!(
                "{what} did not come before the deadline ({} bytes received)",
                self.buf.len()
            )),
            Err(e) => Err(format!(
                "{e} before {what} ({} bytes received)",
                self.buf.len()
            )),
        }
    }

    fn fill_for_close(&mut self, deadline: Instant, max: usize) -> Result<(), String> {
        if self.buf.len() > max {
            return Err(format!("more than {max} bytes before the close"));
        }
        self.fill(deadline)
            .map(drop)
            .map_err(|e| format!("{e} while reading a body delimited by the close"))
    }

    /// Waits until the server closes the connection or `deadline` passes, keeping (at most
    /// 1 MiB of) whatever it sends meanwhile. A reset counts as closed.
    pub fn wait_closed(&mut self, deadline: Instant) -> Closed {
        loop {
            match self.fill(deadline) {
                Ok(0) => return Closed::By(std::mem::take(&mut self.buf)),
                Ok(_) if self.buf.len() > 1 << 20 => return Closed::StillOpen,
                Ok(_) => {}
                Err(e) if e == "timed out" => return Closed::StillOpen,
                Err(_) => return Closed::By(std::mem::take(&mut self.buf)),
            }
        }
    }
}
