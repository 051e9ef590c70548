//! Validation errors stay bounded through the real host (issue 8): requests that break a
//! schema thousands of times get a small 422 listing at most `max_validation_errors` entries
//! and counting the rest in `errors_omitted`, without the host's memory growing with
//! (errors × request size); `pattern` constraints cannot pin a worker.

use serde_json::{json, Value};
use spikard_tests::{echo_plugin_block, vm_rss_kib, HttpResponse, Server};

/// The host's RSS may grow by at most this much over one hostile request (a debug build's
/// allocator keeps some freed memory; the unbounded host grew by gigabytes).
const MAX_RSS_GROWTH_KIB: u64 = 48 * 1024;
/// The same for a body that breaks its schema 100,000 times: jsonschema collects every error
/// before the host counts them, a few hundred bytes each.
const MAX_RSS_GROWTH_100K_ERRORS_KIB: u64 = 128 * 1024;

const ROUTES: &str = r#"
[[routes]]
method = "GET"
path = "/hello"
plugin = "echo"
handler = "respond"
settings = { body = { message = "Hello" } }

[[routes]]
method = "POST"
path = "/items"
plugin = "echo"
handler = "echo"
[routes.body]
type = "object"
properties = { name = { type = "string", minLength = 1 }, price = { type = "number" } }
required = ["name", "price"]
additionalProperties = false

[[routes]]
method = "GET"
path = "/search"
plugin = "echo"
handler = "echo"
[routes.params.query]
type = "object"
properties = { q = { type = "string" } }
additionalProperties = false

[[routes]]
method = "POST"
path = "/dict"
plugin = "echo"
handler = "echo"
[routes.body]
type = "object"
additionalProperties = { type = "array", items = { type = "integer" } }

[[routes]]
method = "POST"
path = "/patterns/plain"
plugin = "echo"
handler = "echo"
[routes.body]
type = "array"
items = { type = "string", pattern = "^(a+)+$" }

[[routes]]
method = "POST"
path = "/patterns/backref"
plugin = "echo"
handler = "echo"
[routes.body]
type = "array"
items = { type = "string", pattern = '^(a|a)+\1$' }
"#;

fn start(server_keys: &str) -> Server {
    let server = Server::start(&format!(
        "[server]\nbody_limit = \"1MiB\"\naccess_log = false\n{server_keys}\n{}\n{ROUTES}",
        echo_plugin_block()
    ));
    // Warm up every worker, so that RSS deltas are the hostile request's own.
    for _ in 0..8 {
        assert_eq!(
            server
                .post_json("/items", r#"{"name": "w", "price": 1}"#)
                .status,
            200
        );
    }
    server
}

/// Sends one request, reporting the RSS of the host before and after it; asserts the host
/// still serves `/hello` afterwards.
fn measured(server: &Server, what: &str, send: impl FnOnce() -> HttpResponse) -> HttpResponse {
    measured_within(server, what, MAX_RSS_GROWTH_KIB, send)
}

/// [`measured`] with another bound on the growth of the host's RSS.
fn measured_within(
    server: &Server,
    what: &str,
    max_growth_kib: u64,
    send: impl FnOnce() -> HttpResponse,
) -> HttpResponse {
    let before = vm_rss_kib(server.pid()).expect("host RSS");
    let response = send();
    let after = vm_rss_kib(server.pid()).expect("host still running");
    eprintln!(
        "{what}: {} with a {} byte body; host RSS {} KiB -> {} KiB",
        response.status,
        response.body.len(),
        before,
        after
    );
    assert!(
        after.saturating_sub(before) < max_growth_kib,
        "{what}: RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(
        server.get("/hello").status,
        200,
        "{what}: host unusable after"
    );
    response
}

/// The 422's body, checked to list `listed` errors and count `omitted` more, under
/// `max_bytes`.
fn bounded_422(response: &HttpResponse, listed: usize, omitted: u64, max_bytes: usize) -> Value {
    assert_eq!(response.status, 422, "{}", response.text());
    assert!(
        response.body.len() < max_bytes,
        "422 body is {} bytes",
        response.body.len()
    );
    let problem = response.json();
    assert_eq!(problem["errors"].as_array().map(Vec::len), Some(listed));
    assert_eq!(problem["errors_omitted"], json!(omitted), "{problem}");
    let total = listed as u64 + omitted;
    assert_eq!(
        problem["detail"],
        json!(format!(
            "{total} validation errors in request; the first {listed} are listed"
        ))
    );
    problem
}

fn unknown_keys(n: usize) -> String {
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!("Widget"));
    body.insert("price".into(), json!(9.5));
    for i in 0..n {
        body.insert(format!("unexpected_{i:05}"), json!(i));
    }
    Value::Object(body).to_string()
}

#[test]
fn thousands_of_unknown_keys_get_a_small_422() {
    let server = start("");
    for n in [4000, 6000] {
        let body = unknown_keys(n);
        let response = measured(&server, &format!("{n} unknown keys"), || {
            server.post_json("/items", &body)
        });
        let problem = bounded_422(&response, 100, n as u64 - 100, 40_000);
        assert_eq!(
            problem["errors"][0],
            json!({"type": "validation_error", "loc": ["body", "unexpected_00000"],
                   "msg": "Additional properties are not allowed", "input": 0,
                   "ctx": {"additional_properties": false, "unexpected_field": "unexpected_00000"}})
        );
    }
}

#[test]
fn a_big_query_string_gets_a_small_422() {
    let server = start("");
    let mut query = String::from("/search?q=x");
    let mut keys = 0;
    while query.len() < 15_000 {
        query.push_str(&format!("&k{keys}=v"));
        keys += 1;
    }
    let response = measured(&server, "15 KB query", || server.get(&query));
    bounded_422(&response, 100, (keys - 100) as u64, 40_000);
}

#[test]
fn fifteen_thousand_multipart_fields_get_a_small_422() {
    let server = start("");
    let mut body = Vec::new();
    for i in 0..15_000 {
        body.extend_from_slice(
            format!(
                "--XyZ\r\ncontent-disposition: form-data; name=\"f{i:05}\"\r\n\r\nvalue {i:04}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    assert!(
        body.len() > 1_000_000 && body.len() <= 1 << 20,
        "{}",
        body.len()
    );
    let response = measured(&server, "15,000 multipart fields", || {
        server.request(
            "POST",
            "/items",
            &[("content-type", "multipart/form-data; boundary=XyZ")],
            &body,
        )
    });
    // `name` and `price` missing, 15,000 unexpected fields.
    bounded_422(&response, 100, 15_002 - 100, 40_000);
}

#[test]
fn many_errors_below_a_long_key_get_a_small_422() {
    let server = start("");
    // One 500 KB key over 100,000 bad items: each error's path would repeat the key.
    let key = "k".repeat(500_000);
    let body = json!({ (key.clone()): vec!["a"; 100_000] }).to_string();
    let response = measured_within(
        &server,
        "500 KB key over 100,000 bad items",
        MAX_RSS_GROWTH_100K_ERRORS_KIB,
        || server.post_json("/dict", &body),
    );
    let problem = bounded_422(&response, 100, 99_900, 60_000);
    assert_eq!(
        problem["errors"][0]["loc"],
        json!(["body", format!("{}…", &key[..256]), 0])
    );
}

#[test]
fn the_limit_is_configurable() {
    let server = start("max_validation_errors = 3");
    let response = server.post_json("/items", &unknown_keys(10));
    bounded_422(&response, 3, 7, 2_000);
    let response = server.post_json("/items", &unknown_keys(3));
    let problem = response.json();
    assert_eq!(problem["errors"].as_array().map(Vec::len), Some(3));
    assert!(problem.get("errors_omitted").is_none(), "{problem}");
    assert_eq!(problem["detail"], "3 validation errors in request");

    let refused = spikard_tests::run_host(
        &format!(
            "[server]\nmax_validation_errors = 0\n{}",
            echo_plugin_block()
        ),
        &["--check"],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        refused
            .stderr
            .contains(":2:25: server.max_validation_errors: must be between 1 and 10000"),
        "{}",
        refused.stderr
    );
}

#[test]
fn catastrophic_patterns_answer_promptly() {
    let server = start("");
    // The client waits 30 s at most (the harness's read timeout): a spinning worker fails.
    let hostile: Vec<String> = (0..200)
        .map(|i| format!("{}!", "a".repeat(30 + i % 7)))
        .collect();
    let body = json!(hostile).to_string();
    // The linear engine decides `^(a+)+$` at once: plain mismatches, 100 listed.
    let response = measured(&server, "ReDoS ^(a+)+$", || {
        server.post_json("/patterns/plain", &body)
    });
    let problem = bounded_422(&response, 100, 100, 40_000);
    assert_eq!(
        problem["errors"][0]["msg"],
        "String should match pattern '^(a+)+$'"
    );
    // The backreference needs the backtracking engine, cut off at its limit.
    let response = measured(&server, "ReDoS ^(a|a)+\\1$", || {
        server.post_json("/patterns/backref", &body)
    });
    assert_eq!(response.status, 422, "{}", response.text());
    let problem = response.json();
    let error = &problem["errors"][0];
    assert_eq!(error["type"], "string_pattern_mismatch");
    assert_eq!(error["loc"], json!(["body", 0]));
    assert!(
        error["msg"].as_str().is_some_and(
            |m| m.starts_with(r"String could not be checked against pattern '^(a|a)+\1$'")
        ),
        "{error}"
    );
    // Values the patterns accept still pass.
    let ok = server.post_json("/patterns/plain", r#"["aaaa"]"#);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let ok = server.post_json("/patterns/backref", r#"["aaa"]"#);
    assert_eq!(ok.status, 200, "{}", ok.text());
}
