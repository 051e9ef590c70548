//! Requests that cost the host memory in proportion to something the client chose (issue 8
//! item 1, and the deep-JSON and big-body probes): each runs on a host of its own, whose RSS
//! growth is bounded by [`crate::hosts::RSS_BOUND_MB`].

use std::time::Duration;

use serde_json::Value;
use spikard_tests::{HttpResponse, Server};

use crate::hosts::HostSpec;
use crate::wire::{describe, exchange, expect_status, request, send_big, size};
use crate::{Case, Group, Verdict};

/// One group (so one host) per case.
pub fn groups() -> Vec<Group> {
    let cases = [
        Case {
            name: "JSON body with 4,000 unknown keys",
            run: json_4000_keys,
        },
        Case {
            name: "JSON body with 6,000 unknown keys",
            run: json_6000_keys,
        },
        Case {
            name: "15 KB query of unknown keys",
            run: query_unknown_keys,
        },
        Case {
            name: "1 MB multipart of 15,000 unknown fields",
            run: multipart_15000_fields,
        },
        Case {
            name: "JSON nested 100,000 deep",
            run: deep_json,
        },
        Case {
            name: "10 MB body with Content-Length",
            run: ten_mb_with_length,
        },
        Case {
            name: "10 MB chunked body (no Content-Length)",
            run: ten_mb_chunked,
        },
    ];
    cases
        .into_iter()
        .map(|case| Group {
            host: HostSpec::Main,
            cases: vec![case],
            parallel: false,
            measure_rss: true,
        })
        .collect()
}

/// `[server] max_validation_errors` default.
const MAX_ERRORS: usize = 100;

/// Largest 422 body accepted for these cases: 100 errors with bounded inputs fit easily.
const MAX_BODY: usize = 256 << 10;

const WITHIN: Duration = Duration::from_secs(20);

fn json_4000_keys(server: &Server) -> Verdict {
    json_unknown_keys(server, 4000)
}

fn json_6000_keys(server: &Server) -> Verdict {
    json_unknown_keys(server, 6000)
}

fn json_unknown_keys(server: &Server, keys: usize) -> Verdict {
    let fields: Vec<String> = (0..keys).map(|i| format!("\"k{i}\":{i}")).collect();
    let body = format!("{{{}}}", fields.join(","));
    let bytes = request(
        "POST",
        "/strict",
        &[("content-type", b"application/json")],
        body.as_bytes(),
    );
    bounded_422(exchange(server, &bytes, WITHIN), keys)
}

fn query_unknown_keys(server: &Server) -> Verdict {
    let mut query = String::new();
    let mut keys = 0;
    while query.len() < 15_000 {
        query.push_str(&format!("k{keys}=v&"));
        keys += 1;
    }
    let bytes = request("GET", &format!("/strictq?{query}"), &[], b"");
    bounded_422(exchange(server, &bytes, WITHIN), keys)
}

fn multipart_15000_fields(server: &Server) -> Verdict {
    const FIELDS: usize = 15_000;
    let mut body = Vec::with_capacity(1 << 20);
    for i in 0..FIELDS {
        body.extend_from_slice(
            format!(
                "--hostileBoundary\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nvalue{i}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(b"--hostileBoundary--\r\n");
    let bytes = request(
        "POST",
        "/strict",
        &[(
            "content-type",
            b"multipart/form-data; boundary=hostileBoundary",
        )],
        &body,
    );
    bounded_422(exchange(server, &bytes, WITHIN), FIELDS)
}

/// A 422 with at most [`MAX_ERRORS`] errors, `errors_omitted` accounting for the rest of
/// the `found` unknown properties, in a small body.
fn bounded_422(answer: Result<HttpResponse, String>, found: usize) -> Verdict {
    let expected = format!(
        "422, ≤{MAX_ERRORS} errors + errors_omitted = {found} in all, body < {}",
        size(MAX_BODY)
    );
    let response = match answer {
        Ok(response) => response,
        Err(e) => return Verdict::new(expected, e, false),
    };
    let Ok(problem) = serde_json::from_slice::<Value>(&response.body) else {
        return Verdict::new(expected, describe(&response), false);
    };
    let listed = problem
        .get("errors")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let omitted = problem.get("errors_omitted").and_then(Value::as_u64);
    let got = format!(
        "{}, {listed} errors, errors_omitted {}, body {}",
        response.status,
        omitted.map_or("absent".to_owned(), |k| k.to_string()),
        size(response.body.len())
    );
    let ok = response.status == 422
        && listed <= MAX_ERRORS
        && listed + omitted.unwrap_or(0) as usize == found
        && response.body.len() < MAX_BODY;
    Verdict::new(expected, got, ok)
}

fn deep_json(server: &Server) -> Verdict {
    let depth = 100_000;
    let body = "[".repeat(depth) + &"]".repeat(depth);
    let bytes = request(
        "POST",
        "/strict",
        &[("content-type", b"application/json")],
        body.as_bytes(),
    );
    let answer = exchange(server, &bytes, WITHIN);
    let ok = answer
        .as_ref()
        .is_ok_and(|r| crate::wire::slug(r).as_deref() == Some("json-too-deep"));
    let mut verdict = expect_status("400 json-too-deep", 400, answer);
    verdict.ok &= ok;
    verdict
}

const TEN_MB: usize = 10 << 20;

fn ten_mb_with_length(server: &Server) -> Verdict {
    let head = format!(
        "POST /strict HTTP/1.1\r\nhost: hostile\r\nconnection: close\r\n\
content-type: application/json\r\ncontent-length: {TEN_MB}\r\n\r\n"
    );
    let answer = send_big(server, head.as_bytes(), TEN_MB, false);
    expect_status("413 (refused on its Content-Length)", 413, answer)
}

fn ten_mb_chunked(server: &Server) -> Verdict {
    let head = "POST /strict HTTP/1.1\r\nhost: hostile\r\nconnection: close\r\n\
content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let answer = send_big(server, head.as_bytes(), TEN_MB, true);
    expect_status("413 (refused while reading)", 413, answer)
}
