//! Clients that go away while their request is with the plugin, end to end: the real host,
//! the echo plugin's `delay` handler (3 s, far inside the 10 s request timeout), real sockets.
//!
//! The host serves half-closed clients (a FIN only ends the client's sending), so the sign of
//! a client gone is a reset — what a client that aborts sends. A reset must cancel the
//! request at once (the plugin's `cancel`, an access line with
//! `outcome=client_disconnected`); a half-close or a pipelined next request must not.

use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use spikard_tests::{echo_plugin_block, HttpResponse, RawConn, Server};

/// The delay handler's wait.
const DELAY: Duration = Duration::from_millis(3000);

fn config() -> String {
    format!(
        r#"[server]
request_timeout_ms = 10000

{}
[[routes]]
method = "GET"
path = "/slow"
plugin = "echo"
handler = "delay"
settings = {{ delay_ms = {}, body = "late" }}

[[routes]]
method = "POST"
path = "/slow-upload"
plugin = "echo"
handler = "delay"
settings = {{ delay_ms = {}, body = "late" }}

[[routes]]
method = "GET"
path = "/hello"
plugin = "echo"
handler = "respond"
settings = {{ body = "hello" }}
"#,
        echo_plugin_block(),
        DELAY.as_millis(),
        DELAY.as_millis()
    )
}

/// The host with the echo plugin's debug lines (its "delay cancelled" tells that `cancel` ran).
fn start() -> Server {
    Server::try_start(&config(), &[], |command| {
        command.env("RUST_LOG", "info,spikard_echo=debug");
    })
    .unwrap_or_else(|log| panic!("spikard-host did not start; its log:\n{log}"))
}

/// Time for bytes just sent to reach the host and a request to reach the plugin.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// Closes `conn` with a reset instead of a FIN, as an aborting client does (`SO_LINGER` on
/// with a zero timeout).
fn reset(conn: RawConn) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            conn.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_LINGER): {}",
        std::io::Error::last_os_error()
    );
    drop(conn);
}

/// Waits up to `within` for the log to hold every one of `needles`; the log if it does not.
fn logged_within(server: &Server, needles: &[&str], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let log = server.log();
        if needles.iter().all(|n| log.contains(n)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(log);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The access lines of `path`.
fn access_lines(log: &str, path: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("spikard::access") && l.contains(&format!("path={path} ")))
        .map(str::to_owned)
        .collect()
}

fn read(conn: &mut RawConn) -> HttpResponse {
    conn.read_response(Instant::now() + DELAY + Duration::from_secs(5), 1 << 20)
        .unwrap_or_else(|e| panic!("no response: {e}"))
}

#[test]
fn a_client_that_resets_is_cancelled_at_once() {
    let s = start();
    let mut conn = RawConn::connect(s.addr).expect("connect");
    conn.send(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("send");
    settle();
    reset(conn);
    // Well before the delay (3 s) would answer it, and the request timeout (10 s).
    if let Err(log) = logged_within(
        &s,
        &["delay cancelled", "outcome=client_disconnected"],
        Duration::from_secs(1),
    ) {
        panic!("the reset request was not cancelled within 1 s:\n{log}");
    }
    let log = s.log();
    let lines = access_lines(&log, "/slow");
    assert!(
        lines.len() == 1 && lines[0].contains("outcome=client_disconnected"),
        "one access line, client_disconnected: {lines:?}\n{log}"
    );
    let hello = s.get("/hello");
    assert_eq!((hello.status, hello.text().as_str()), (200, "hello"));
}

#[test]
fn a_client_that_resets_after_sending_its_body_in_pieces_is_cancelled_at_once() {
    let s = start();
    let mut conn = RawConn::connect(s.addr).expect("connect");
    conn.send(b"POST /slow-upload HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n")
        .expect("send head");
    settle();
    conn.send(b"01234").expect("send half the body");
    settle();
    conn.send(b"56789").expect("send the rest");
    settle();
    reset(conn);
    if let Err(log) = logged_within(
        &s,
        &["delay cancelled", "outcome=client_disconnected"],
        Duration::from_secs(1),
    ) {
        panic!("the reset upload was not cancelled within 1 s:\n{log}");
    }
}

#[test]
fn a_client_that_half_closes_still_gets_its_answer() {
    let s = start();
    let mut conn = RawConn::connect(s.addr).expect("connect");
    conn.send(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("send");
    settle();
    conn.stream.shutdown(Shutdown::Write).expect("shutdown");
    let r = read(&mut conn);
    assert_eq!((r.status, r.text().as_str()), (200, "late"));
    let log = s.log();
    assert!(
        !log.contains("client_disconnected") && !log.contains("delay cancelled"),
        "a half-close is not a disconnect:\n{log}"
    );
}

#[test]
fn a_request_pipelined_behind_a_pending_one_is_answered_in_order() {
    let s = start();
    let mut conn = RawConn::connect(s.addr).expect("connect");
    conn.send(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("send");
    settle();
    // Arrives while the first is with the plugin: the host sees the bytes but must not take
    // them for a disconnect, nor answer them first.
    conn.send(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("send the second");
    let first = read(&mut conn);
    assert_eq!((first.status, first.text().as_str()), (200, "late"));
    let second = read(&mut conn);
    assert_eq!((second.status, second.text().as_str()), (200, "hello"));
    // The connection still serves: a third request after both answers.
    conn.send(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .expect("send the third");
    assert_eq!(read(&mut conn).status, 200);
    let log = s.log();
    assert!(
        !log.contains("client_disconnected") && !log.contains("delay cancelled"),
        "a pipelined request is not a disconnect:\n{log}"
    );
}
