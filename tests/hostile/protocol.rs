//! HTTP/1.1 framing probes that the host passed when issue 8 was filed, kept so they stay
//! passing: request smuggling, conflicting lengths, obsolete folding, control bytes,
//! pipelining and `Expect: 100-continue`.

use std::time::{Duration, Instant};

use spikard_tests::{Closed, RawConn, Server};

use crate::hosts::HostSpec;
use crate::wire::{describe, exchange, expect_status, request};
use crate::{Case, Group, Verdict};

/// The probes, on one host, one after the other.
pub fn group() -> Group {
    Group {
        host: HostSpec::Main,
        cases: vec![
            Case {
                name: "smuggling: Content-Length + Transfer-Encoding",
                run: cl_and_te,
            },
            Case {
                name: "two different Content-Length headers",
                run: double_content_length,
            },
            Case {
                name: "obs-fold header line",
                run: obs_fold,
            },
            Case {
                name: "NUL byte in a header value",
                run: nul_in_header,
            },
            Case {
                name: "control byte 0x01 in a header value",
                run: control_in_header,
            },
            Case {
                name: "pipelining: 3 requests in one write",
                run: pipelining,
            },
            Case {
                name: "Expect: 100-continue",
                run: expect_continue,
            },
            Case {
                name: "Expect: 100-continue over the body limit",
                run: expect_continue_too_large,
            },
        ],
        parallel: false,
        measure_rss: false,
    }
}

const WITHIN: Duration = Duration::from_secs(5);

/// A chunked request whose `Content-Length` would frame it differently: RFC 9112 §6.1 lets
/// the server process it as chunked, but it must close the connection afterwards, so the
/// request hidden behind it is never answered.
fn cl_and_te(server: &Server) -> Verdict {
    let expected = "one answer, then the close; the hidden GET /smuggled unanswered";
    let bytes = b"POST /strict HTTP/1.1\r\nhost: hostile\r\ncontent-type: application/json\r\n\
content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n\
GET /smuggled HTTP/1.1\r\nhost: hostile\r\n\r\n";
    let deadline = Instant::now() + WITHIN;
    let mut conn = match RawConn::connect(server.addr) {
        Ok(conn) => conn,
        Err(e) => return Verdict::new(expected, format!("connect: {e}"), false),
    };
    if let Err(e) = conn.send(bytes) {
        return Verdict::new(expected, format!("send: {e}"), false);
    }
    let first = match conn.read_response(deadline, 1 << 20) {
        Ok(response) => response,
        Err(e) => return Verdict::new(expected, e, false),
    };
    match conn.wait_closed(deadline) {
        Closed::By(rest) if rest.is_empty() => {
            Verdict::new(expected, format!("{}, then closed", describe(&first)), true)
        }
        Closed::By(rest) => Verdict::new(
            expected,
            format!(
                "{}, then also answered: {:?}",
                describe(&first),
                crate::wire::snippet(&rest)
            ),
            false,
        ),
        Closed::StillOpen => Verdict::new(
            expected,
            format!(
                "{}, and the connection stayed open (a second request would be served)",
                describe(&first)
            ),
            false,
        ),
    }
}

fn double_content_length(server: &Server) -> Verdict {
    let bytes = b"POST /strict HTTP/1.1\r\nhost: hostile\r\nconnection: close\r\n\
content-type: application/json\r\ncontent-length: 2\r\ncontent-length: 12\r\n\r\n{}";
    expect_status("400", 400, exchange(server, bytes, WITHIN))
}

fn obs_fold(server: &Server) -> Verdict {
    let bytes = b"GET /hello HTTP/1.1\r\nhost: hostile\r\nx-fold: a\r\n folded\r\nconnection: close\r\n\r\n";
    expect_status("400", 400, exchange(server, bytes, WITHIN))
}

fn nul_in_header(server: &Server) -> Verdict {
    let bytes = request("GET", "/hello", &[("x-nul", b"a\0b")], b"");
    expect_status("400", 400, exchange(server, &bytes, WITHIN))
}

fn control_in_header(server: &Server) -> Verdict {
    let bytes = request("GET", "/hello", &[("x-ctl", b"a\x01b")], b"");
    expect_status("400", 400, exchange(server, &bytes, WITHIN))
}

fn pipelining(server: &Server) -> Verdict {
    let expected = "200, 200, 200 in order on one connection";
    let one = b"GET /hello HTTP/1.1\r\nhost: hostile\r\n\r\n";
    let deadline = Instant::now() + WITHIN;
    let mut conn = match RawConn::connect(server.addr) {
        Ok(conn) => conn,
        Err(e) => return Verdict::new(expected, format!("connect: {e}"), false),
    };
    if let Err(e) = conn.send(&one.repeat(3)) {
        return Verdict::new(expected, format!("send: {e}"), false);
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        match conn.read_response(deadline, 1 << 20) {
            Ok(response) => got.push(response.status.to_string()),
            Err(e) => {
                got.push(e);
                break;
            }
        }
    }
    let ok = got.len() == 3 && got.iter().all(|s| s == "200");
    Verdict::new(expected, got.join(", "), ok)
}

/// The host (hyper) sends `100 Continue` when the route starts reading the body.
fn expect_continue(server: &Server) -> Verdict {
    let expected = "100 Continue, then (body sent) 200";
    let body = br#"{"name":"widget"}"#;
    let head = format!(
        "POST /strict HTTP/1.1\r\nhost: hostile\r\nconnection: close\r\ncontent-type: application/json\r\n\
expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let deadline = Instant::now() + WITHIN;
    let mut conn = match RawConn::connect(server.addr) {
        Ok(conn) => conn,
        Err(e) => return Verdict::new(expected, format!("connect: {e}"), false),
    };
    if let Err(e) = conn.send(head.as_bytes()) {
        return Verdict::new(expected, format!("send: {e}"), false);
    }
    let interim = match conn.read_response(deadline, 1 << 20) {
        Ok(response) => response,
        Err(e) => return Verdict::new(expected, format!("no 100 Continue: {e}"), false),
    };
    if interim.status != 100 {
        return Verdict::new(expected, describe(&interim), false);
    }
    if let Err(e) = conn.send(body) {
        return Verdict::new(expected, format!("100, then send: {e}"), false);
    }
    match conn.read_response(deadline, 1 << 20) {
        Ok(response) => Verdict::new(
            expected,
            format!("100, then {}", describe(&response)),
            response.status == 200,
        ),
        Err(e) => Verdict::new(expected, format!("100, then {e}"), false),
    }
}

/// Refused on its `Content-Length` before the client sends the body it announced.
fn expect_continue_too_large(server: &Server) -> Verdict {
    let head = "POST /small HTTP/1.1\r\nhost: hostile\r\nconnection: close\r\n\
expect: 100-continue\r\ncontent-length: 2097152\r\n\r\n";
    let answer = exchange(server, head.as_bytes(), WITHIN);
    expect_status("413 without a 100 Continue", 413, answer)
}
