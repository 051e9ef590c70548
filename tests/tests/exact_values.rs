//! Exact values end to end, through the real host and the echo plugin: integers of any size
//! arrive as the digits that were sent, schema bounds on them compare exactly, and bytes
//! that are not UTF-8 in a path, query, declared header, cookie or form field are a 422
//! `string_unicode` naming where they were, never silently replaced.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use spikard_tests::{echo_plugin_block, parse_response, HttpResponse, Server};

const BIG: &str = "99999999999999999999999";

fn config() -> String {
    format!(
        r#"[server]
problem_type_base = "https://spikard.dev/errors/"
request_timeout_ms = 5000

{}
[[routes]]
method = "GET"
path = "/int/{{n}}"
plugin = "echo"
handler = "echo"
[routes.params.path]
type = "object"
properties = {{ n = {{ type = "integer" }} }}
required = ["n"]
[routes.params.query]
type = "object"
properties = {{ threshold = {{ type = "integer" }}, ratio = {{ type = "number" }} }}
[routes.params.headers]
type = "object"
properties = {{ x-n = {{ type = "integer" }} }}
[routes.params.cookies]
type = "object"
properties = {{ n = {{ type = "integer" }} }}

[[routes]]
method = "POST"
path = "/bounded"
plugin = "echo"
handler = "echo"
body = "bounded.json"

[[routes]]
method = "GET"
path = "/text/{{name}}"
plugin = "echo"
handler = "echo"
[routes.params.path]
type = "object"
properties = {{ name = {{ type = "string" }} }}
[routes.params.query]
type = "object"
properties = {{ q = {{ type = "string" }} }}
[routes.params.headers]
type = "object"
properties = {{ x-name = {{ type = "string" }} }}
[routes.params.cookies]
type = "object"
properties = {{ session = {{ type = "string" }} }}

[[routes]]
method = "GET"
path = "/open/{{id}}/{{*rest}}"
plugin = "echo"
handler = "echo"

[[routes]]
method = "POST"
path = "/form"
plugin = "echo"
handler = "echo"
[routes.body]
type = "object"
properties = {{ name = {{ type = "string" }}, n = {{ type = "integer" }} }}
"#,
        echo_plugin_block()
    )
}

/// TOML cannot hold integers past i64, so the big bounds come from a JSON schema file.
const BOUNDED: &str = r#"{
  "type": "object",
  "properties": {
    "n": {"type": "integer", "maximum": 100000000000000000000000},
    "floor": {"type": "integer", "exclusiveMinimum": 18446744073709551616},
    "f": {"type": "number"}
  }
}"#;

fn start() -> Server {
    Server::start_with_files(&config(), &[("bounded.json", BOUNDED)])
}

/// Sends a request written byte for byte (headers that are not UTF-8 included).
fn send_raw(addr: SocketAddr, head_and_body: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect to spikard-host");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set timeout");
    stream.write_all(head_and_body).expect("send request");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

/// `GET target` with extra header lines (raw bytes, each without the CRLF).
fn get_raw(server: &Server, target: &[u8], header_lines: &[&[u8]]) -> HttpResponse {
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for line in header_lines {
        request.extend_from_slice(line);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    send_raw(server.addr, &request)
}

fn number(text: &str) -> Value {
    serde_json::from_str(text).expect("a JSON number")
}

fn problem(response: &HttpResponse, status: u16) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    response.json()
}

/// The `(type, loc, input)` of each error of a 422.
fn errors(response: &HttpResponse) -> Vec<(String, Value, Value)> {
    let body = problem(response, 422);
    body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            assert_eq!(
                e["msg"],
                "Input should be a valid string, unable to parse raw data as a unicode string",
                "{e}"
            );
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["loc"].clone(),
                e["input"].clone(),
            )
        })
        .collect()
}

fn unicode(loc: Value, input: &str) -> (String, Value, Value) {
    ("string_unicode".to_owned(), loc, json!(input))
}

#[test]
fn big_integers_reach_the_plugin_exactly_from_every_source() {
    let server = start();
    let cookie = format!("cookie: n=-{BIG}");
    let header = format!("x-n: 0{BIG}");
    let target = format!("/int/{BIG}?threshold=-{BIG}&ratio=0.1000000000000000000001");
    let response = get_raw(
        &server,
        target.as_bytes(),
        &[header.as_bytes(), cookie.as_bytes()],
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let echoed = response.json();
    let params = &echoed["params"];
    assert_eq!(params["path"]["n"], number(BIG));
    assert_eq!(params["query"]["threshold"], number(&format!("-{BIG}")));
    assert_eq!(params["headers"]["x-n"], number(BIG));
    assert_eq!(params["cookies"]["n"], number(&format!("-{BIG}")));
    assert_eq!(
        params["query"]["ratio"].to_string(),
        "0.1000000000000000000001"
    );
    // The digits themselves went over the wire, not a float such as 1e+23.
    assert!(response.text().contains(&format!("\"n\":{BIG}")));
    assert!(!response.text().contains("e+23"));
}

#[test]
fn json_bodies_keep_their_numbers_and_bounds_compare_exactly() {
    let server = start();
    let body = format!(r#"{{"n": {BIG}, "floor": 18446744073709551617, "f": 1.5, "g": 1e300}}"#);
    let response = server.post_json("/bounded", &body);
    assert_eq!(response.status, 200, "{}", response.text());
    let echoed = response.json();
    assert_eq!(echoed["body"]["n"], number(BIG));
    assert_eq!(echoed["body"]["floor"], number("18446744073709551617"));
    assert_eq!(echoed["body"]["f"].to_string(), "1.5");
    assert_eq!(echoed["body"]["g"].as_f64(), Some(1e300));

    // 2^64 is the same f64 as 2^64 + 1; the bound must tell them apart.
    let response = server.post_json(
        "/bounded",
        r#"{"n": 100000000000000000000001, "floor": 18446744073709551616}"#,
    );
    let body = problem(&response, 422);
    let found: Vec<(Value, Value, Value, Value)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].clone(),
                e["loc"].clone(),
                e["ctx"].clone(),
                e["msg"].clone(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                json!("greater_than"),
                json!(["body", "floor"]),
                json!({"gt": number("18446744073709551616")}),
                json!("Input should be greater than 18446744073709551616"),
            ),
            (
                json!("less_than_equal"),
                json!(["body", "n"]),
                json!({"le": number("100000000000000000000000")}),
                json!("Input should be less than or equal to 100000000000000000000000"),
            ),
        ]
    );
    assert_eq!(
        body["errors"][1]["input"],
        number("100000000000000000000001")
    );

    // Beyond what a float or a Python int can hold: refused as before.
    for out_of_range in ["1e400".to_owned(), format!("[{}]", "9".repeat(5000))] {
        let response = server.post_json("/bounded", &format!(r#"{{"f": {out_of_range}}}"#));
        let body = problem(&response, 400);
        assert!(
            body["detail"].as_str().unwrap().contains("out of range"),
            "{body}"
        );
    }
}

#[test]
fn undecodable_bytes_are_422_at_their_location() {
    let server = start();
    // One of each at once: every error of the request is reported.
    let response = get_raw(
        &server,
        b"/text/caf%E9?q=%ff&extra=ok%80",
        &[b"x-name: caf\xe9", b"cookie: a=1; session=\xff\xfe"],
    );
    assert_eq!(
        errors(&response),
        [
            unicode(json!(["path", "name"]), "caf\u{fffd}"),
            unicode(json!(["query", "extra"]), "ok\u{fffd}"),
            unicode(json!(["query", "q"]), "\u{fffd}"),
            unicode(json!(["headers", "x-name"]), "caf\u{fffd}"),
            unicode(json!(["cookie", "session"]), "\u{fffd}\u{fffd}"),
        ]
    );

    // A route without schemas: path parameters and query values still have to be text.
    let response = get_raw(&server, b"/open/%ff/a/b%fe?x=%C3", &[]);
    assert_eq!(
        errors(&response),
        [
            unicode(json!(["path", "id"]), "\u{fffd}"),
            unicode(json!(["path", "rest"]), "a/b\u{fffd}"),
            unicode(json!(["query", "x"]), "\u{fffd}"),
        ]
    );

    // Urlencoded form fields, declared or not.
    let response = server.request(
        "POST",
        "/form",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"name=%ff&n=1&other=%fe",
    );
    assert_eq!(
        errors(&response),
        [
            unicode(json!(["body", "name"]), "\u{fffd}"),
            unicode(json!(["body", "other"]), "\u{fffd}"),
        ]
    );
}

#[test]
fn decodable_values_and_undeclared_headers_still_pass() {
    let server = start();
    let response = get_raw(
        &server,
        b"/text/caf%C3%A9?q=%E2%82%AC+%EF%BF%BD",
        &[
            b"x-name: plain",
            b"x-undeclared: caf\xe9",
            b"cookie: other=\xff",
        ],
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let echoed = response.json();
    assert_eq!(echoed["params"]["path"]["name"], "café");
    // A U+FFFD the client sent as UTF-8 is text like any other.
    assert_eq!(echoed["params"]["query"]["q"], "€ \u{fffd}");
    // Undeclared headers reach the plugin as before (lossily: the ABI carries text).
    assert_eq!(echoed["headers"]["x-undeclared"], "caf\u{fffd}");

    let response = server.get(&format!("/open/1/x?n={BIG}"));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["params"]["query"]["n"],
        BIG,
        "undeclared: a string"
    );
}
