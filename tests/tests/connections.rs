//! Connection limits end to end: the real host with the echo plugin, real sockets, and small
//! timeouts in the config so that each case takes about a second. Slow, idle, half-closed and
//! too many clients must neither hold the server nor lose their answers.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use spikard_tests::{echo_plugin_block, parse_response, HttpResponse, Server};

const ROUTES: &str = r#"
[[routes]]
method = "GET"
path = "/hello"
plugin = "echo"
handler = "respond"
settings = { body = { message = "Hello" } }

[[routes]]
method = "POST"
path = "/echo"
plugin = "echo"
handler = "echo"
body_limit = 1024
"#;

/// A config with these `[server]` keys.
fn config(server: &str) -> String {
    format!(
        "[server]\nproblem_type_base = \"https://spikard.dev/errors/\"\naccess_log = false\n{server}\n{}\n{ROUTES}",
        echo_plugin_block()
    )
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to spikard-host");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Reads one response with a `Content-Length` body from a connection that stays open.
fn read_one(stream: &mut TcpStream) -> HttpResponse {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse_response(&raw[..end + 4]);
            let length: usize = head
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .expect("a content-length");
            if raw.len() >= end + 4 + length {
                return parse_response(&raw[..end + 4 + length]);
            }
        }
        let n = stream.read(&mut chunk).expect("read a response");
        assert!(
            n > 0,
            "closed before a whole response: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// How long after `since` the server closed `stream` (end of stream or reset), discarding
/// what it sends; `None` if it is still open at `since + limit`.
fn closed_after(stream: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut chunk = [0u8; 4096];
    loop {
        let left = (since + limit).saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).expect("set timeout");
        match stream.read(&mut chunk) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(since.elapsed()),
        }
    }
}

fn assert_problem(response: &HttpResponse, status: u16, slug: &str, title: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let body = response.json();
    assert_eq!(
        body["type"],
        format!("https://spikard.dev/errors/{slug}"),
        "{body}"
    );
    assert_eq!(body["title"], title, "{body}");
    assert_eq!(body["status"], status, "{body}");
}

#[test]
fn a_slowloris_head_is_closed_after_the_header_timeout_while_others_are_served() {
    let s = Server::start(&config("header_read_timeout_ms = 600"));
    let started = Instant::now();
    let mut half = connect(s.addr);
    half.write_all(b"GET /hel").unwrap();
    // A head trickled a header line at a time: bytes keep coming, the deadline stays.
    let mut trickled = connect(s.addr);
    trickled
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let mut writer = trickled.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        for _ in 0..100 {
            if writer.write_all(b"x-slow: 1\r\n").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    for _ in 0..5 {
        assert_eq!(s.get("/hello").status, 200, "normal clients are served");
    }
    let limit = Duration::from_secs(10);
    let half_closed = closed_after(&mut half, started, limit).expect("the half head is closed");
    let trickle_closed =
        closed_after(&mut trickled, started, limit).expect("the trickled head is closed");
    trickler.join().unwrap();
    for closed in [half_closed, trickle_closed] {
        assert!(
            closed >= Duration::from_millis(500),
            "closed by the header timeout, not before: {closed:?}"
        );
    }
    assert_eq!(s.get("/hello").status, 200, "still serving");
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout() {
    let s = Server::start(&config(
        "header_read_timeout_ms = 400\nkeepalive_timeout_ms = 1500",
    ));
    let mut c = connect(s.addr);
    let get = b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n";
    c.write_all(get).unwrap();
    assert_eq!(read_one(&mut c).status, 200);
    // Idle for longer than a head may take, shorter than the keep-alive timeout: still open.
    std::thread::sleep(Duration::from_millis(800));
    c.write_all(get).unwrap();
    assert_eq!(
        read_one(&mut c).status,
        200,
        "served on the kept-alive connection"
    );
    let answered = Instant::now();
    let closed = closed_after(&mut c, answered, Duration::from_secs(10))
        .expect("closed after the keep-alive timeout");
    assert!(
        closed >= Duration::from_millis(1200),
        "closed by the keep-alive timeout, not the header timeout: {closed:?}"
    );
}

#[test]
fn a_body_that_stalls_gets_408_and_the_connection_closes() {
    let s = Server::start(&config("body_read_timeout_ms = 500"));
    let mut c = connect(s.addr);
    c.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"a\": ")
        .unwrap();
    let r = read_one(&mut c);
    assert_problem(&r, 408, "request-timeout", "Request Timeout");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        closed_after(&mut c, Instant::now(), Duration::from_secs(10)).is_some(),
        "the connection closes after the 408"
    );
    assert_eq!(s.get("/hello").status, 200, "still serving");
}

#[test]
fn a_half_closed_client_gets_its_answer() {
    let s = Server::start(&config(""));
    for _ in 0..20 {
        let mut c = connect(s.addr);
        c.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut raw = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.read_to_end(&mut raw).expect("read the answer");
        assert_eq!(parse_response(&raw).status, 200);

        let mut c = connect(s.addr);
        c.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n{\"a\": 1}")
            .unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut raw = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.read_to_end(&mut raw).expect("read the answer");
        let r = parse_response(&raw);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.json()["body"],
            serde_json::json!({"a": 1}),
            "{}",
            r.text()
        );
    }
}

#[test]
fn a_body_refused_on_content_length_reaches_the_client_as_413_not_a_reset() {
    let s = Server::start(&config(""));
    let body = vec![b'a'; 2 << 20];
    for _ in 0..5 {
        // The client sends all 2 MB before it reads: the host answers early and must drain
        // the rest instead of resetting the connection under the answer.
        let mut c = connect(s.addr);
        c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&body)
            .expect("the whole body is taken, not refused with a reset");
        let mut raw = Vec::new();
        c.read_to_end(&mut raw)
            .expect("the answer, then an orderly close rather than a reset");
        assert_problem(
            &parse_response(&raw),
            413,
            "payload-too-large",
            "Payload Too Large",
        );
    }
    assert_eq!(s.get("/hello").status, 200, "still serving");
}

#[test]
fn at_max_connections_a_new_client_waits_for_a_slot_the_header_timeout_frees() {
    let s = Server::start(&config(
        "max_connections = 5\nheader_read_timeout_ms = 1000",
    ));
    let mut idle: Vec<TcpStream> = (0..5).map(|_| connect(s.addr)).collect();
    // Let the host accept them all.
    std::thread::sleep(Duration::from_millis(200));
    let waiting = Instant::now();
    let r = s.get("/hello");
    assert_eq!(r.status, 200, "served once a slot is free");
    assert!(
        waiting.elapsed() >= Duration::from_millis(500),
        "it waited for a slot: {:?}",
        waiting.elapsed()
    );
    s.wait_for_log("at max_connections (5): new connections wait; raise server.max_connections or the fd limit");
    for c in &mut idle {
        assert!(closed_after(c, waiting, Duration::from_secs(10)).is_some());
    }
    let warnings = s.log().matches("at max_connections (5)").count();
    assert_eq!(warnings, 1, "one warning per episode:\n{}", s.log());
}

#[test]
fn shutdown_closes_idle_and_half_sent_connections_at_once() {
    // Long timeouts and grace period: the exit must not wait for any of them.
    let mut s = Server::start(&config(
        "shutdown_timeout_ms = 20000\nheader_read_timeout_ms = 15000\nkeepalive_timeout_ms = 15000",
    ));
    let mut kept = connect(s.addr);
    kept.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_one(&mut kept).status, 200);
    let mut half = connect(s.addr);
    half.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let mut fresh = connect(s.addr);
    std::thread::sleep(Duration::from_millis(200));
    s.signal("TERM");
    let status = s.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    let now = Instant::now();
    for c in [&mut kept, &mut half, &mut fresh] {
        assert!(closed_after(c, now, Duration::from_secs(1)).is_some());
    }
}

/// Runs the host with the open-file limit (soft and hard) at `limit`.
#[cfg(target_os = "linux")]
fn start_with_fd_limit(config: &str, limit: libc::rlim_t) -> Server {
    use std::os::unix::process::CommandExt;
    Server::try_start(config, &[], |command| {
        // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
        unsafe {
            command.pre_exec(move || {
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    })
    .unwrap_or_else(|log| panic!("spikard-host did not start; its log:\n{log}"))
}

/// Opens `n` connections that each send part of a head and never finish it.
fn partial_heads(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut c = connect(addr);
            let _ = c.write_all(b"GET /hello HTTP/1.1\r\nx-pad: ");
            c
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn under_a_low_fd_limit_the_cap_fits_and_new_clients_are_served_after_the_header_timeout() {
    let s = start_with_fd_limit(&config("header_read_timeout_ms = 1000"), 256);
    s.wait_for_log("(server.max_connections 10000 lowered to fit the open-file limit");
    // More sockets than the host has descriptors.
    let attackers = partial_heads(s.addr, 300);
    std::thread::sleep(Duration::from_millis(300));
    let r = s.get("/hello");
    assert_eq!(
        r.status, 200,
        "a new client is served once timeouts free slots"
    );
    s.wait_for_log("at max_connections (");
    assert!(
        !s.log().contains("Too many open files"),
        "the cap keeps accept within the fd limit:\n{}",
        s.log()
    );
    drop(attackers);
}

#[cfg(target_os = "linux")]
#[test]
fn out_of_descriptors_accept_backs_off_logs_once_a_second_and_recovers() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let s = Server::start(&config("header_read_timeout_ms = 1500"));
    // Something else took the descriptors: the limit drops under the connection cap.
    let lowered = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", s.pid()))
        .arg("--nofile=64:64")
        .status()
        .expect("run prlimit");
    assert!(lowered.success());
    let started = Instant::now();
    let attackers = partial_heads(s.addr, 100);
    std::thread::sleep(Duration::from_millis(300));
    let r = s.get("/hello");
    assert_eq!(
        r.status, 200,
        "served once the header timeout frees descriptors"
    );
    let elapsed = started.elapsed();
    s.wait_for_log("Too many open files");
    let reports = s.log().matches("accepting a connection failed (").count();
    assert!(
        reports as u64 <= elapsed.as_secs() + 2,
        "{reports} reports in {elapsed:?}:\n{}",
        s.log()
    );
    drop(attackers);
}
