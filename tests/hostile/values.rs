//! Values that the host used to alter or choke on (issue 8 items 4-6): integers past 64 bits,
//! bytes that are not UTF-8, and patterns with nested quantifiers.

use std::time::{Duration, Instant};

use serde_json::Value;
use spikard_tests::{HttpResponse, Server};

use crate::hosts::HostSpec;
use crate::wire::{describe, exchange, request, snippet};
use crate::{Case, Group, Verdict};

/// Big integers and undecodable bytes, one host, one after the other.
pub fn group() -> Group {
    Group {
        host: HostSpec::Main,
        cases: vec![
            Case {
                name: "big int in the path",
                run: int_path,
            },
            Case {
                name: "big int in the query",
                run: int_query,
            },
            Case {
                name: "big int in a JSON body",
                run: int_body,
            },
            Case {
                name: "big int over a big `maximum`",
                run: int_over_maximum,
            },
            Case {
                name: "%ff in a path parameter",
                run: ff_path,
            },
            Case {
                name: "%ff in a query parameter",
                run: ff_query,
            },
            Case {
                name: "%ff in an undeclared query parameter",
                run: ff_undeclared_query,
            },
            Case {
                name: "raw 0xff in a header parameter",
                run: ff_header,
            },
            Case {
                name: "raw 0xff in a cookie parameter",
                run: ff_cookie,
            },
        ],
        parallel: false,
        measure_rss: false,
    }
}

/// ReDoS on a host of its own: a host that spins on it has a worker pinned until killed,
/// which must not slow the other cases down.
pub fn redos_group() -> Group {
    Group {
        host: HostSpec::Main,
        cases: vec![
            Case {
                name: "ReDoS: ^(a+)+$ on 40 a's and a !",
                run: redos_nested,
            },
            Case {
                name: "ReDoS: ^(a+)+\\1$ (backtracking engine) on 40 a's and a !",
                run: redos_backreference,
            },
        ],
        parallel: false,
        measure_rss: false,
    }
}

const WITHIN: Duration = Duration::from_secs(5);

/// 10^23 - 1: past u64, and not a double (it would become 1e23).
const BIG: &str = "99999999999999999999999";

fn int_path(server: &Server) -> Verdict {
    let bytes = request("GET", &format!("/int/{BIG}"), &[], b"");
    echoed_exactly(exchange(server, &bytes, WITHIN), "/params/path/n")
}

fn int_query(server: &Server) -> Verdict {
    let bytes = request("GET", &format!("/int/1?q={BIG}"), &[], b"");
    echoed_exactly(exchange(server, &bytes, WITHIN), "/params/query/q")
}

/// The JSON body reaches the echo plugin as sent; it is parsed (and so must stay exact) by
/// the host's validator and by the plugin, which echoes it.
fn int_body(server: &Server) -> Verdict {
    let body = format!(r#"{{"b":{BIG}}}"#);
    let bytes = request(
        "POST",
        "/intbody",
        &[("content-type", b"application/json")],
        body.as_bytes(),
    );
    echoed_exactly(exchange(server, &bytes, WITHIN), "/body/b")
}

/// 10^23 is over `maximum` 10^23 - 1; as doubles both are 1e23 and it would pass.
fn int_over_maximum(server: &Server) -> Verdict {
    let bytes = request("GET", "/int/1?m=100000000000000000000000", &[], b"");
    let expected = r#"422 less_than_equal at ["query","m"]"#;
    match exchange(server, &bytes, WITHIN) {
        Ok(response) => {
            let (ok, got) = has_error(&response, "less_than_equal", &["query", "m"]);
            Verdict::new(expected, got, ok)
        }
        Err(e) => Verdict::new(expected, e, false),
    }
}

fn echoed_exactly(answer: Result<HttpResponse, String>, pointer: &str) -> Verdict {
    let expected = format!("200, {pointer} = {BIG} exactly");
    let response = match answer {
        Ok(response) => response,
        Err(e) => return Verdict::new(expected, e, false),
    };
    if response.status != 200 {
        return Verdict::new(expected, describe(&response), false);
    }
    let Ok(echo) = serde_json::from_slice::<Value>(&response.body) else {
        return Verdict::new(expected, describe(&response), false);
    };
    match echo.pointer(pointer) {
        // With arbitrary precision a number prints as it was sent; a double prints 1e23.
        Some(value) => {
            let text = value.to_string();
            Verdict::new(expected, format!("200, {text}"), text == BIG)
        }
        None => Verdict::new(
            expected,
            format!("200 without {pointer}: {}", snippet(&response.body)),
            false,
        ),
    }
}

fn ff_path(server: &Server) -> Verdict {
    undecodable(server, "/utf/%ff", &[], &["path", "s"])
}

fn ff_query(server: &Server) -> Verdict {
    undecodable(server, "/utf/ok?s=%ff", &[], &["query", "s"])
}

fn ff_undeclared_query(server: &Server) -> Verdict {
    undecodable(server, "/utf/ok?zz=%ff", &[], &["query", "zz"])
}

fn ff_header(server: &Server) -> Verdict {
    undecodable(
        server,
        "/utf/ok",
        &[("x-s", b"a\xffb")],
        &["headers", "x-s"],
    )
}

fn ff_cookie(server: &Server) -> Verdict {
    undecodable(
        server,
        "/utf/ok",
        &[("cookie", b"c=a\xffb")],
        &["cookie", "c"],
    )
}

/// Expects a 422 `string_unicode` error at `loc`.
fn undecodable(server: &Server, target: &str, headers: &[(&str, &[u8])], loc: &[&str]) -> Verdict {
    let expected = format!("422 string_unicode at {}", loc_text(loc));
    let bytes = request("GET", target, headers, b"");
    match exchange(server, &bytes, WITHIN) {
        Ok(response) => {
            let (ok, got) = has_error(&response, "string_unicode", loc);
            Verdict::new(expected, got, ok)
        }
        Err(e) => Verdict::new(expected, e, false),
    }
}

/// `["query","s"]`, as the errors print it.
fn loc_text(loc: &[&str]) -> String {
    Value::from(loc.to_vec()).to_string()
}

/// Whether a 422 lists an error of `kind` at `loc`; and a description of what came.
fn has_error(response: &HttpResponse, kind: &str, loc: &[&str]) -> (bool, String) {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let errors = body
        .as_ref()
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_array);
    let Some(errors) = errors else {
        // An echo: show what the plugin was handed instead of the whole body.
        let got = match body.as_ref().and_then(|b| b.get("params")) {
            Some(params) => format!(
                "{}, params {}",
                response.status,
                snippet(params.to_string().as_bytes())
            ),
            None => describe(response),
        };
        return (false, got);
    };
    let want: Vec<Value> = loc.iter().map(|s| Value::from(*s)).collect();
    let found = errors.iter().any(|e| {
        e.get("type").and_then(Value::as_str) == Some(kind)
            && e.get("loc").and_then(Value::as_array) == Some(&want)
    });
    let listed: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| {
            format!(
                "{} at {}",
                e.get("type").and_then(Value::as_str).unwrap_or("?"),
                e.get("loc").map(Value::to_string).unwrap_or_default()
            )
        })
        .collect();
    (
        response.status == 422 && found,
        format!("{} {}", response.status, listed.join("; ")),
    )
}

/// Bound on the answer: a linear engine answers in microseconds; a backtracking one needs
/// about 2^40 steps for this value.
const REDOS_WITHIN: Duration = Duration::from_secs(3);

fn redos_nested(server: &Server) -> Verdict {
    redos(server, "s")
}

fn redos_backreference(server: &Server) -> Verdict {
    redos(server, "t")
}

fn redos(server: &Server, param: &str) -> Verdict {
    let expected = format!("422 within {} ms", REDOS_WITHIN.as_millis());
    let value = "a".repeat(40) + "!";
    let bytes = request("GET", &format!("/re?{param}={value}"), &[], b"");
    let started = Instant::now();
    match exchange(server, &bytes, REDOS_WITHIN) {
        Ok(response) => Verdict::new(
            expected,
            format!(
                "{} in {} ms",
                describe(&response),
                started.elapsed().as_millis()
            ),
            response.status == 422,
        ),
        Err(e) => Verdict::new(
            expected,
            format!("after {} ms: {e}", started.elapsed().as_millis()),
            false,
        ),
    }
}
