//! Clients that hold connections rather than send requests (issue 8 items 2, 3 and 7):
//! slowloris, idle keep-alive, stalled bodies, descriptor exhaustion, half-closed sockets
//! and bodies refused early.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use spikard_tests::{Closed, RawConn, Server};

use crate::hosts::{HostSpec, CONNECTION_TIMEOUT_MS};
use crate::wire::{describe, expect_status, send_big, snippet};
use crate::{Case, Group, Verdict};

/// Half-closed clients and the early 413 (item 7): not time-sensitive, phase A.
pub fn half_close_group() -> Group {
    Group {
        host: HostSpec::Main,
        cases: vec![
            Case {
                name: "half-closed client, GET /hello",
                run: half_closed_hello,
            },
            Case {
                name: "half-closed client, GET /slow (answered 100 ms later)",
                run: half_closed_slow,
            },
            Case {
                name: "2 MB body on a 1 KiB route: early 413",
                run: early_413,
            },
        ],
        parallel: true,
        measure_rss: false,
    }
}

/// The cases that wait for the host's timeouts, each group on its own host, in phase B.
pub fn timing_groups() -> Vec<Group> {
    vec![
        Group {
            host: HostSpec::Main,
            cases: vec![
                Case {
                    name: "slowloris: half a request line",
                    run: half_request_line,
                },
                Case {
                    name: "idle keep-alive connection",
                    run: idle_keep_alive,
                },
                Case {
                    name: "stalled body (10 of 100 bytes)",
                    run: stalled_body,
                },
            ],
            parallel: true,
            measure_rss: false,
        },
        Group {
            host: HostSpec::Main,
            cases: vec![Case {
                name: "200 slowloris sockets trickling headers",
                run: slowloris,
            }],
            parallel: false,
            measure_rss: false,
        },
        Group {
            host: HostSpec::NoFile(NOFILE),
            cases: vec![Case {
                name: "fd lockout: 300 partial heads, RLIMIT_NOFILE 256",
                run: fd_lockout,
            }],
            parallel: false,
            measure_rss: false,
        },
        Group {
            host: HostSpec::MaxConnections(MAX_CONNECTIONS),
            cases: vec![Case {
                name: "connection cap: 48 partial heads, max_connections 32",
                run: connection_cap,
            }],
            parallel: false,
            measure_rss: false,
        },
    ]
}

/// The host's connection timeouts.
const TIMEOUT: Duration = Duration::from_millis(CONNECTION_TIMEOUT_MS);

/// A timeout must fire by this long after it started: the timeout plus a 2 s margin.
const BY: Duration = Duration::from_millis(CONNECTION_TIMEOUT_MS + 2000);

/// A close before this would not be a timeout but a refusal of a slow, legitimate client.
const NOT_BEFORE: Duration = Duration::from_millis(CONNECTION_TIMEOUT_MS / 2);

/// The descriptor limit (soft and hard) of the fd-lockout host.
const NOFILE: u64 = 256;
/// `max_connections` of the connection-cap host.
const MAX_CONNECTIONS: u32 = 32;

/// Connections are opened in bursts of this many, [`PAUSE`] apart: the host's listen backlog
/// is 128 (the standard library's), and a larger burst than the host accepts meanwhile makes
/// the kernel drop SYNs, which delays a connect by a second and blurs the timings.
const BURST: usize = 32;
const PAUSE: Duration = Duration::from_millis(15);

/// Pauses after every [`BURST`]th connection.
fn pace(i: usize) {
    if i % BURST == BURST - 1 {
        std::thread::sleep(PAUSE);
    }
}

/// Waits for the server to close `conn` and judges when: within [`NOT_BEFORE`]..[`BY`].
fn closed_by_timeout(expected: &str, conn: &mut RawConn, since: Instant) -> Verdict {
    match conn.wait_closed(since + BY) {
        Closed::By(sent) => {
            let after = since.elapsed();
            let what = if sent.is_empty() {
                String::new()
            } else {
                format!(" after sending {:?}", snippet(&sent))
            };
            Verdict::new(
                expected,
                format!("closed after {} ms{what}", after.as_millis()),
                after >= NOT_BEFORE,
            )
        }
        Closed::StillOpen => Verdict::new(
            expected,
            format!("still open after {} ms", since.elapsed().as_millis()),
            false,
        ),
    }
}

fn connect(addr: SocketAddr, expected: &str) -> Result<RawConn, Verdict> {
    RawConn::connect(addr).map_err(|e| Verdict::new(expected, format!("connect: {e}"), false))
}

fn half_request_line(server: &Server) -> Verdict {
    let expected = format!(
        "closed {}..{} ms after connecting (header timeout)",
        NOT_BEFORE.as_millis(),
        BY.as_millis()
    );
    let mut conn = match connect(server.addr, &expected) {
        Ok(conn) => conn,
        Err(verdict) => return verdict,
    };
    let since = Instant::now();
    if let Err(e) = conn.send(b"GET /hel") {
        return Verdict::new(expected, format!("send: {e}"), false);
    }
    closed_by_timeout(&expected, &mut conn, since)
}

fn idle_keep_alive(server: &Server) -> Verdict {
    let expected = format!(
        "closed {}..{} ms after the response (keep-alive timeout)",
        NOT_BEFORE.as_millis(),
        BY.as_millis()
    );
    let mut conn = match connect(server.addr, &expected) {
        Ok(conn) => conn,
        Err(verdict) => return verdict,
    };
    if let Err(e) = conn.send(b"GET /hello HTTP/1.1\r\nhost: hostile\r\n\r\n") {
        return Verdict::new(expected, format!("send: {e}"), false);
    }
    match conn.read_response(Instant::now() + Duration::from_secs(5), 1 << 20) {
        Ok(response) if response.status == 200 => {}
        Ok(response) => return Verdict::new(expected, describe(&response), false),
        Err(e) => return Verdict::new(expected, e, false),
    }
    closed_by_timeout(&expected, &mut conn, Instant::now())
}

fn stalled_body(server: &Server) -> Verdict {
    let expected = format!(
        "408 request-timeout {}..{} ms after the head, then the close",
        NOT_BEFORE.as_millis(),
        BY.as_millis()
    );
    let mut conn = match connect(server.addr, &expected) {
        Ok(conn) => conn,
        Err(verdict) => return verdict,
    };
    let request = b"POST /strict HTTP/1.1\r\nhost: hostile\r\ncontent-type: application/json\r\n\
content-length: 100\r\n\r\n{\"name\":\"";
    let since = Instant::now();
    if let Err(e) = conn.send(request) {
        return Verdict::new(expected, format!("send: {e}"), false);
    }
    let response = match conn.read_response(since + BY, 1 << 20) {
        Ok(response) => response,
        Err(e) => {
            return Verdict::new(
                expected,
                format!("after {} ms: {e}", since.elapsed().as_millis()),
                false,
            )
        }
    };
    let after = since.elapsed();
    let slug = crate::wire::slug(&response);
    let closed = matches!(
        conn.wait_closed(Instant::now() + Duration::from_secs(2)),
        Closed::By(_)
    );
    Verdict::new(
        &expected,
        format!(
            "{} after {} ms, {}",
            describe(&response),
            after.as_millis(),
            if closed { "then closed" } else { "left open" }
        ),
        response.status == 408
            && slug.as_deref() == Some("request-timeout")
            && after >= NOT_BEFORE
            && closed,
    )
}

/// 200 connections each send part of a head and then one more byte every 250 ms. Meanwhile
/// a normal request must be answered before the header timeout (nothing waits for them),
/// and each must be closed within [`BY`] of its connect.
fn slowloris(server: &Server) -> Verdict {
    const SOCKETS: usize = 200;
    let expected = format!(
        "GET /hello meanwhile: 200 in < {} ms; each of {SOCKETS} closed within {} ms of its connect",
        TIMEOUT.as_millis(),
        BY.as_millis()
    );
    let mut open: Vec<(TcpStream, Instant)> = Vec::with_capacity(SOCKETS);
    for i in 0..SOCKETS {
        let attempt = TcpStream::connect(server.addr).and_then(|mut s| {
            let connected = Instant::now();
            s.write_all(
                format!("GET /hello HTTP/1.1\r\nhost: hostile\r\nx-slow-{i}: ").as_bytes(),
            )?;
            s.set_nonblocking(true)?;
            Ok((s, connected))
        });
        pace(i);
        match attempt {
            Ok(socket) => open.push(socket),
            Err(e) => return Verdict::new(expected, format!("slowloris socket {i}: {e}"), false),
        }
    }
    std::thread::scope(|scope| {
        let normal = scope.spawn(|| {
            let started = Instant::now();
            let answer = crate::hosts::hello(server, BY);
            (answer, started.elapsed())
        });
        let (closed, longest) = trickle_until_closed(&mut open);
        let (answer, latency) = normal.join().expect("normal request thread");
        let normal_ok = answer.is_ok() && latency < TIMEOUT;
        let got = format!(
            "GET /hello {} in {} ms; {closed}/{SOCKETS} closed, longest {} ms after its connect",
            answer.err().unwrap_or_else(|| "200".into()),
            latency.as_millis(),
            longest.as_millis()
        );
        Verdict::new(
            &expected,
            got,
            normal_ok && closed == SOCKETS && longest <= BY,
        )
    })
}

/// Sends one byte every 250 ms on each socket still open, until the server closed all of
/// them or [`BY`] has passed since the last connect; returns how many were closed and the
/// longest time one stayed open.
fn trickle_until_closed(open: &mut Vec<(TcpStream, Instant)>) -> (usize, Duration) {
    let total = open.len();
    let last_connect = open.iter().map(|(_, at)| *at).max();
    let Some(deadline) = last_connect.map(|at| at + BY) else {
        return (0, Duration::ZERO);
    };
    let mut longest = Duration::ZERO;
    let mut next_byte = Instant::now() + Duration::from_millis(250);
    let mut scratch = [0u8; 1024];
    while !open.is_empty() && Instant::now() < deadline {
        let trickle = Instant::now() >= next_byte;
        if trickle {
            next_byte += Duration::from_millis(250);
        }
        open.retain_mut(|(stream, connected)| {
            let closed = match stream.read(&mut scratch) {
                Ok(0) => true,
                Ok(_) => false, // an answer (e.g. 408); the close follows
                Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                Err(_) => true,
            } || (trickle && stream.write(b"a").is_err());
            if closed {
                longest = longest.max(connected.elapsed());
            }
            !closed
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    // Those still open count as open for at least this long.
    for (_, connected) in open.iter() {
        longest = longest.max(connected.elapsed());
    }
    (total - open.len(), longest)
}

fn fd_lockout(server: &Server) -> Verdict {
    locked_out(server, 300)
}

fn connection_cap(server: &Server) -> Verdict {
    locked_out(server, 3 * MAX_CONNECTIONS as usize / 2)
}

/// Holds `attackers` connections that sent part of a head (more than the host may hold),
/// then shows that a new client is still served once the header timeout frees slots.
fn locked_out(server: &Server, attackers: usize) -> Verdict {
    let expected = format!(
        "a new client answered 200 within {} ms while {attackers} partial heads are held",
        BY.as_millis()
    );
    let connecting = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut held = Vec::with_capacity(attackers);
    for i in 0..attackers {
        let one = Instant::now();
        let attempt = TcpStream::connect(server.addr).and_then(|mut s| {
            s.write_all(b"GET /hello HTTP/1.1\r\nhost: hostile\r\nx-partial: ")?;
            Ok(s)
        });
        slowest = slowest.max(one.elapsed());
        pace(i);
        match attempt {
            Ok(stream) => held.push(stream),
            Err(e) => return Verdict::new(expected, format!("attacker {i}: {e}"), false),
        }
    }
    let attack = format!(
        "(heads sent in {} ms, slowest connect {} ms)",
        connecting.elapsed().as_millis(),
        slowest.as_millis()
    );
    let started = Instant::now();
    let answer = crate::hosts::hello(server, BY);
    let after = started.elapsed();
    drop(held);
    match answer {
        Ok(()) => Verdict::new(
            expected,
            format!("200 after {} ms {attack}", after.as_millis()),
            true,
        ),
        Err(e) => Verdict::new(
            expected,
            format!("after {} ms: {e} {attack}", after.as_millis()),
            false,
        ),
    }
}

fn half_closed_hello(server: &Server) -> Verdict {
    half_closed(server, "/hello")
}

fn half_closed_slow(server: &Server) -> Verdict {
    half_closed(server, "/slow")
}

/// The half-close and early-413 failures were intermittent: each is tried this many times.
const TRIES: usize = 5;

/// Runs `attempt` [`TRIES`] times; the verdict of the first failure, or of the last try.
fn every_try(attempt: impl Fn() -> Verdict) -> Verdict {
    let mut last = None;
    for i in 1..=TRIES {
        let mut verdict = attempt();
        if !verdict.ok {
            verdict.got = format!("try {i} of {TRIES}: {}", verdict.got);
            return verdict;
        }
        last = Some(verdict);
    }
    let mut verdict = last.expect("TRIES > 0");
    verdict.got = format!("{} ({TRIES} of {TRIES} tries)", verdict.got);
    verdict
}

/// Sends a whole request, then shuts down the write side (`nc -N`): the answer must come.
fn half_closed(server: &Server, path: &str) -> Verdict {
    every_try(|| {
        let expected = "200 after the client's FIN";
        let mut conn = match connect(server.addr, expected) {
            Ok(conn) => conn,
            Err(verdict) => return verdict,
        };
        let request = format!("GET {path} HTTP/1.1\r\nhost: hostile\r\n\r\n");
        if let Err(e) = conn.send(request.as_bytes()) {
            return Verdict::new(expected, format!("send: {e}"), false);
        }
        if let Err(e) = conn.stream.shutdown(Shutdown::Write) {
            return Verdict::new(expected, format!("shutdown: {e}"), false);
        }
        let answer = conn.read_response(Instant::now() + Duration::from_secs(5), 1 << 20);
        expect_status(expected, 200, answer)
    })
}

/// The client keeps uploading the body it announced while the host refuses it on its
/// `Content-Length`: the 413 must be readable, not lost to a reset.
fn early_413(server: &Server) -> Verdict {
    every_try(|| {
        let len = 2 << 20;
        let head = format!(
            "POST /small HTTP/1.1\r\nhost: hostile\r\nconnection: close\r\ncontent-length: {len}\r\n\r\n"
        );
        let answer = send_big(server, head.as_bytes(), len, false);
        expect_status("413 read before the close", 413, answer)
    })
}
