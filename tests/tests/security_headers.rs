//! `[server.security_headers]` through the real host and echo plugin (issue 11): off by
//! default; when on, every response — plugin answers, Problem Details, host-answered paths —
//! carries the configured set, and a header the plugin set itself is kept.

use spikard_tests::{echo_plugin_block, run_host, Server};

const ROUTES: &str = r#"
[[routes]]
method = "GET"
path = "/hello"
plugin = "echo"
handler = "respond"
settings = { body = { message = "Hello" } }

[[routes]]
method = "GET"
path = "/framed"
plugin = "echo"
handler = "respond"
settings = { body = "x", headers = { x-frame-options = "SAMEORIGIN" } }

[[routes]]
method = "POST"
path = "/items"
plugin = "echo"
handler = "echo"
[routes.body]
type = "object"
required = ["name"]
"#;

fn config(server: &str) -> String {
    format!("[server]\n{server}\n{}{ROUTES}", echo_plugin_block())
}

/// The defaults, as a client sees them.
const DEFAULTS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cross-origin-resource-policy", "same-origin"),
];

#[test]
fn off_by_default() {
    let server = Server::start(&config(""));
    let response = server.get("/hello");
    assert_eq!(response.status, 200);
    for (name, _) in DEFAULTS {
        assert_eq!(response.header(name), None, "{name} sent while off");
    }
    assert_eq!(response.header("strict-transport-security"), None);
}

#[test]
fn every_response_gets_the_defaults_and_plugin_headers_win() {
    let server = Server::start(&format!(
        "[server]\nhealth_path = \"/healthz\"\n[server.security_headers]\n{}{ROUTES}",
        echo_plugin_block()
    ));
    let answers = [
        ("plugin 200", server.get("/hello")),
        ("404", server.get("/nowhere")),
        ("422", server.post_json("/items", "{}")),
        ("health", server.get("/healthz")),
    ];
    for (what, response) in &answers {
        for (name, value) in DEFAULTS {
            assert_eq!(response.header(name), Some(value), "{what}: {name}");
        }
        assert_eq!(
            response.header("strict-transport-security"),
            None,
            "{what}: HSTS only when configured"
        );
    }
    assert_eq!(answers[1].1.status, 404);
    assert_eq!(answers[2].1.status, 422);
    let framed = server.get("/framed");
    assert_eq!(framed.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(framed.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn the_set_is_configurable() {
    let server = Server::start(&config(
        "[server.security_headers]\nstrict-transport-security = \"max-age=63072000; includeSubDomains\"\ncontent-security-policy = false\nx-frame-options = \"SAMEORIGIN\"\npermissions-policy = \"geolocation=()\"",
    ));
    let response = server.get("/hello");
    assert_eq!(
        response.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
    assert_eq!(response.header("content-security-policy"), None);
    assert_eq!(response.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(
        response.header("permissions-policy"),
        Some("geolocation=()")
    );
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
}

#[test]
fn mistakes_are_start_up_errors_naming_file_line_and_field() {
    for (table, field, says) in [
        (
            "\"x frame\" = \"DENY\"",
            "server.security_headers.x frame",
            "not a valid header name",
        ),
        (
            "x-frame-options = \"DE\\nNY\"",
            "server.security_headers.x-frame-options",
            "not a valid header value",
        ),
        (
            "x-frame-options = 1",
            "server.security_headers.x-frame-options",
            "must be a string",
        ),
        (
            "content-length = \"3\"",
            "server.security_headers.content-length",
            "set by the host",
        ),
    ] {
        let text = format!(
            "[server.security_headers]\n{table}\n{}",
            echo_plugin_block()
        );
        let run = run_host(&text, &["--check"]);
        assert_eq!(run.status.code(), Some(2), "{table}: {}", run.stderr);
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or_default();
        assert!(line.contains("spikard.toml:2"), "{table}: {line}");
        assert!(line.contains(field), "{table}: {line}");
        assert!(line.contains(says), "{table}: {line}");
    }
}
