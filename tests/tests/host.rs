//! The host end to end: the real binary, the real echo plugin, real sockets.

use std::time::{Duration, Instant};

use serde_json::json;
use spikard_tests::{echo_plugin_block, request, Server};

fn config(routes: &str) -> String {
    format!(
        "[server]\nproblem_type_base = \"https://spikard.dev/errors/\"\nbody_limit = 256\nrequest_timeout_ms = 2000\nshutdown_timeout_ms = 5000\n\n{}\n{routes}",
        echo_plugin_block()
    )
}

const ROUTES: &str = r#"
[[routes]]
method = "GET"
path = "/hello"
plugin = "echo"
handler = "respond"
settings = { body = { message = "Hello" }, headers = { x-extra = "yes" } }

[[routes]]
method = "GET"
path = "/items/{item_id}"
plugin = "echo"
handler = "echo"
[routes.params.path]
type = "object"
properties = { item_id = { type = "integer", minimum = 1 } }
required = ["item_id"]
[routes.params.query]
type = "object"
properties = { q = { type = "string", minLength = 2 }, tags = { type = "array", items = { type = "integer" } }, flag = { type = "boolean" } }
required = ["q"]
[routes.params.headers]
type = "object"
properties = { x-token = { type = "string" } }
required = ["x-token"]
[routes.params.cookies]
type = "object"
properties = { session = { type = "string" } }

[[routes]]
method = "PUT"
path = "/items/{key}"
plugin = "echo"
handler = "echo"

[[routes]]
method = "POST"
path = "/items"
plugin = "echo"
handler = "echo"
[routes.body]
type = "object"
properties = { name = { type = "string", minLength = 1 }, price = { type = "number", exclusiveMinimum = 0 } }
required = ["name", "price"]

[[routes]]
method = "POST"
path = "/raw"
plugin = "echo"
handler = "echo"

[[routes]]
method = "POST"
path = "/upload"
plugin = "echo"
handler = "echo"
body_limit = 4096
[routes.body]
type = "object"
properties = { title = { type = "string", minLength = 2 }, count = { type = "integer" }, file = { type = "string", format = "binary", contentMediaType = "text/plain, image/*", maxLength = 64 } }
required = ["file"]

[[routes]]
method = "POST"
path = "/shallow"
plugin = "echo"
handler = "echo"
max_json_depth = 3
[routes.body]
type = "object"

[[routes]]
method = "GET"
path = "/slow"
plugin = "echo"
handler = "delay"
settings = { delay_ms = 300, body = { done = true } }

[[routes]]
method = "GET"
path = "/too-slow"
plugin = "echo"
handler = "delay"
settings = { delay_ms = 5000, body = "late" }

[[routes]]
method = "GET"
path = "/panic"
plugin = "echo"
handler = "fail"
settings = { mode = "panic" }

[[routes]]
method = "GET"
path = "/drop"
plugin = "echo"
handler = "fail"
settings = { mode = "drop" }

[[routes]]
method = "GET"
path = "/teapot"
plugin = "echo"
handler = "fail"
settings = { mode = "problem", status = 418, detail = "short and stout" }
"#;

fn server() -> Server {
    Server::start(&config(ROUTES))
}

fn assert_problem(body: &serde_json::Value, status: u16, slug: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(
        body["type"],
        format!("https://spikard.dev/errors/{slug}"),
        "{body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert!(
        body["request_id"].as_str().is_some_and(|id| id.len() == 36),
        "{body}"
    );
}

#[test]
fn canned_response_with_headers_and_request_id() {
    let s = server();
    let r = s.get("/hello");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"message": "Hello"}));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-extra"), Some("yes"));
    assert_eq!(r.header("x-request-id").map(str::len), Some(36));
    // HEAD is served by the GET route, without a body.
    let r = s.request("HEAD", "/hello", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

#[test]
fn parameters_are_validated_and_coerced_before_the_plugin() {
    let s = server();
    let r = s.request(
        "GET",
        "/items/42?q=hi&tags=1&tags=2&flag=true&extra=x",
        &[("x-token", "secret"), ("cookie", "session=abc; other=1")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["method"], "GET");
    assert_eq!(body["path"], "/items/42");
    assert_eq!(body["params"]["path"], json!({"item_id": 42}));
    assert_eq!(body["params"]["query"]["q"], "hi");
    assert_eq!(body["params"]["query"]["tags"], json!([1, 2]));
    assert_eq!(body["params"]["query"]["flag"], true);
    assert_eq!(body["params"]["headers"], json!({"x-token": "secret"}));
    assert_eq!(body["params"]["cookies"], json!({"session": "abc"}));
    assert_eq!(body["headers"]["x-token"], "secret");
}

#[test]
fn every_validation_error_is_reported_at_once() {
    let s = server();
    let r = s.get("/items/0?tags=x");
    assert_eq!(r.status, 422);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let body = r.json();
    assert_problem(&body, 422, "validation-error");
    assert_eq!(body["title"], "Request Validation Failed");
    let errors = body["errors"].as_array().expect("errors array");
    let locs: Vec<&serde_json::Value> = errors.iter().map(|e| &e["loc"]).collect();
    assert!(locs.contains(&&json!(["path", "item_id"])), "{body}");
    assert!(locs.contains(&&json!(["query", "q"])), "{body}");
    assert!(locs.contains(&&json!(["headers", "x-token"])), "{body}");
    assert!(errors.len() >= 4, "{body}");
    let missing = errors
        .iter()
        .find(|e| e["loc"] == json!(["query", "q"]))
        .unwrap();
    assert_eq!(missing["type"], "missing");
    assert_eq!(
        body["detail"],
        format!("{} validation errors in request", errors.len())
    );
}

#[test]
fn json_bodies_are_validated() {
    let s = server();
    let r = s.post_json("/items", r#"{"name": "Widget", "price": 9.5}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body"], json!({"name": "Widget", "price": 9.5}));

    let r = s.post_json("/items", r#"{"name": "", "price": -1}"#);
    assert_eq!(r.status, 422);
    let body = r.json();
    let locs: Vec<&serde_json::Value> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["loc"])
        .collect();
    assert_eq!(
        locs,
        [&json!(["body", "name"]), &json!(["body", "price"])],
        "{body}"
    );

    let r = s.post_json("/items", r#"{"name": "x", "price": }"#);
    assert_eq!(r.status, 400);
    assert_problem(&r.json(), 400, "malformed-json");

    let r = s.request(
        "POST",
        "/items",
        &[("content-type", "text/plain")],
        b"hello",
    );
    assert_eq!(r.status, 415);
    assert_problem(&r.json(), 415, "unsupported-media-type");

    // Routes without a body schema pass any body through untouched.
    let r = s.request("POST", "/raw", &[("content-type", "text/plain")], b"as is");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], "as is");
}

#[test]
fn form_bodies_are_validated_like_json() {
    let s = server();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = s.request("POST", "/items", &form, b"name=Widget&price=2.5");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["params"]["form"],
        json!({"name": "Widget", "price": 2.5})
    );
    let r = s.request("POST", "/items", &form, b"name=Widget&price=free");
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["loc"], json!(["body", "price"]));
}

#[test]
fn routing_errors_are_problem_details() {
    let s = server();
    let r = s.get("/nowhere");
    assert_eq!(r.status, 404);
    assert_problem(&r.json(), 404, "not-found");

    let r = s.request("DELETE", "/items/3", &[], b"");
    assert_eq!(r.status, 405);
    assert_problem(&r.json(), 405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("GET, PUT, HEAD"));

    // Same shape, other parameter name, other method: its own names.
    let r = s.request("PUT", "/items/abc", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["params"]["path"], json!({"key": "abc"}));
}

#[test]
fn bodies_over_the_limit_get_413() {
    let s = server();
    let big = format!(r#"{{"name": "{}", "price": 1}}"#, "x".repeat(400));
    let r = s.post_json("/items", &big);
    assert_eq!(r.status, 413);
    assert_problem(&r.json(), 413, "payload-too-large");
    // Without a Content-Length the limit is enforced while reading.
    let chunked = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let mut stream = std::net::TcpStream::connect(s.addr).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "POST /raw HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n{chunked}"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert_eq!(spikard_tests::parse_response(&raw).status, 413);
}

#[test]
fn plugin_failures_are_500s_and_the_server_stays_up() {
    let s = server();
    for path in ["/panic", "/drop"] {
        let r = s.get(path);
        assert_eq!(r.status, 500, "{path}");
        let body = r.json();
        assert_problem(&body, 500, "internal-server-error");
        assert!(
            !body.to_string().contains("on purpose"),
            "no internals in the body: {body}"
        );
    }
    s.wait_for_log("handler panicked");
    let r = s.get("/teapot");
    assert_eq!(r.status, 418);
    assert_eq!(r.json()["detail"], "short and stout");
    assert_eq!(
        s.get("/hello").status,
        200,
        "still serving after the failures"
    );
}

#[test]
fn a_plugin_that_does_not_answer_in_time_gets_504() {
    let s = server();
    let r = s.get("/too-slow");
    assert_eq!(r.status, 504);
    assert_problem(&r.json(), 504, "gateway-timeout");
}

#[test]
fn requests_answered_later_from_another_thread_run_concurrently() {
    let s = server();
    let started = Instant::now();
    let addr = s.addr;
    let workers: Vec<_> = (0..40)
        .map(|_| std::thread::spawn(move || request(addr, "GET", "/slow", &[], b"")))
        .collect();
    for worker in workers {
        let r = worker.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), json!({"done": true}));
    }
    // 40 sequential answers would take 12 s; overlapping ones well under.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn access_log_and_plugin_logs_reach_the_host_log() {
    let s = server();
    let r = s.get("/hello");
    let id = r.header("x-request-id").unwrap().to_owned();
    s.wait_for_log(&id);
    let log = s.log();
    let line = log.lines().find(|l| l.contains(&id)).unwrap();
    assert!(
        line.contains("spikard::access")
            && line.contains("status=200")
            && line.contains("path=/hello"),
        "{line}"
    );
    // The plugin's own tracing event, forwarded with its target.
    assert!(
        log.lines()
            .any(|l| l.contains("spikard_echo ready") && l.contains("spikard_echo")),
        "{log}"
    );
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut s = server();
    let addr = s.addr;
    let in_flight = std::thread::spawn(move || request(addr, "GET", "/slow", &[], b""));
    std::thread::sleep(Duration::from_millis(100));
    s.signal("TERM");
    let r = in_flight.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight request finished");
    let status = s.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(
        s.log().contains("spikard_echo stopped"),
        "plugin shutdown ran:\n{}",
        s.log()
    );
}

/// One form part: name, `(filename, content type)` for a file, content.
type FormPart<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

fn multipart_body(parts: &[FormPart<'_>]) -> Vec<u8> {
    let mut body = b"preamble\r\n".to_vec();
    for (name, file, content) in parts {
        body.extend_from_slice(b"--b0undary\r\n");
        let disposition = match file {
            Some((filename, media_type)) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {media_type}\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--b0undary--\r\n");
    body
}

#[test]
fn multipart_uploads_are_parsed_validated_and_handed_over() {
    let s = server();
    let multipart = [("content-type", "multipart/form-data; boundary=b0undary")];
    let body = multipart_body(&[
        ("title", None, b"holiday"),
        ("count", None, b"3"),
        ("file", Some(("notes.txt", "text/plain")), b"hello\r\nworld"),
    ]);
    let r = s.request("POST", "/upload", &multipart, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let echoed = r.json();
    assert_eq!(
        echoed["params"]["form"],
        json!({
            "title": "holiday",
            "count": 3,
            "file": {"filename": "notes.txt", "content_type": "text/plain", "size": 12, "content": "hello\r\nworld"},
        })
    );
    // The plugin also gets the raw body, untouched.
    assert_eq!(echoed["body"], String::from_utf8(body).unwrap());

    // Binary files arrive base64-encoded.
    let png = b"\x89PNG\r\n\x1a\n";
    let r = s.request(
        "POST",
        "/upload",
        &multipart,
        &multipart_body(&[("file", Some(("a.png", "image/png")), png)]),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["params"]["form"]["file"],
        json!({"filename": "a.png", "content_type": "image/png", "size": 8,
               "content": "iVBORw0KGgo=", "content_encoding": "base64"})
    );

    // Field errors, file rules and a missing file are all 422s.
    let r = s.request(
        "POST",
        "/upload",
        &multipart,
        &multipart_body(&[
            ("title", None, b"x"),
            ("count", None, b"many"),
            ("file", Some(("run.sh", "application/x-sh")), b"#!/bin/sh"),
        ]),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let errors = r.json()["errors"].clone();
    let found: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["loc"].clone()))
        .collect();
    assert_eq!(
        found,
        [
            ("int_parsing".to_owned(), json!(["body", "count"])),
            ("string_too_short".to_owned(), json!(["body", "title"])),
            ("validation_error".to_owned(), json!(["files", "file"])),
        ]
    );
    let r = s.request("POST", "/upload", &multipart, b"--b0undary--\r\n");
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"][0]["loc"], json!(["body", "file"]));

    // An unusable request is a 400 Problem Details.
    let r = s.request(
        "POST",
        "/upload",
        &[("content-type", "multipart/form-data")],
        b"",
    );
    assert_eq!(r.status, 400);
    assert_problem(&r.json(), 400, "missing-boundary");
    let r = s.request(
        "POST",
        "/upload",
        &multipart,
        b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end",
    );
    assert_eq!(r.status, 400);
    assert_problem(&r.json(), 400, "malformed-multipart");
}

#[test]
fn request_heads_over_the_limit_get_431() {
    let s = server();
    // Larger than the old 8 KiB habit, within the 16 KiB default.
    let big = "t".repeat(12_000);
    let r = s.request("GET", "/hello", &[("x-token", &big)], b"");
    assert_eq!(r.status, 200);
    let huge = "t".repeat(20_000);
    let r = s.request("GET", "/hello", &[("x-token", &huge)], b"");
    assert_eq!(r.status, 431);
    assert_eq!(s.get("/hello").status, 200, "still serving");

    // A configured limit.
    let s = Server::start(
        &config(ROUTES).replace("[server]\n", "[server]\nmax_header_bytes = \"2KiB\"\n"),
    );
    let r = s.request("GET", "/hello", &[("x-token", &"t".repeat(2_100))], b"");
    assert_eq!(r.status, 431);
    let r = s.request("GET", "/hello", &[("x-token", &"t".repeat(1_500))], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn json_nesting_is_limited() {
    let s = server();
    let nested = |depth: usize| {
        format!(
            "{}{}",
            r#"{"a":"#.repeat(depth - 1) + "{}",
            "}".repeat(depth - 1)
        )
    };
    // The route's own limit.
    assert_eq!(s.post_json("/shallow", &nested(3)).status, 200);
    let r = s.post_json("/shallow", &nested(4));
    assert_eq!(r.status, 400);
    assert_problem(&r.json(), 400, "json-too-deep");
    // The server default, 32: deeper is refused before validation.
    assert_eq!(s.post_json("/items", &nested(32)).status, 422);
    let r = s.post_json("/items", &nested(33));
    assert_eq!(r.status, 400);
    assert_problem(&r.json(), 400, "json-too-deep");
}

#[test]
fn a_body_shorter_than_its_content_length_is_a_400() {
    use std::io::{Read, Write};
    let s = server();
    let mut stream = std::net::TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /items HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"name\": \"x\"}}"
    )
    .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let r = spikard_tests::parse_response(&raw);
    assert_eq!(r.status, 400);
    assert_problem(&r.json(), 400, "content-length-mismatch");
    assert_eq!(r.json()["title"], "Content-Length header mismatch");
}
