//! `[server] metrics_path` through the real host and echo plugin (issue 11): after a known
//! mix of requests the Prometheus text counts exactly those requests, by route template and
//! status class, with rejections by reason; unmatched paths fold into `route="unmatched"`.
//! (The same endpoint is parsed with `prometheus_client`'s parser in
//! plugins/python/tests/test_e2e_metrics.py.)

use spikard_tests::{echo_plugin_block, run_host, HttpResponse, Server};

const ROUTES: &str = r#"
[[routes]]
method = "GET"
path = "/hello"
plugin = "echo"
handler = "respond"
settings = { body = { message = "Hello" } }

[[routes]]
method = "GET"
path = "/items/{id}"
plugin = "echo"
handler = "echo"

[[routes]]
method = "POST"
path = "/items"
plugin = "echo"
handler = "echo"
body_limit = "1KiB"
[routes.body]
type = "object"
required = ["name"]
"#;

fn config(server: &str) -> String {
    format!("[server]\n{server}\n{}{ROUTES}", echo_plugin_block())
}

/// The value of the sample written exactly as `series` (name and labels), if listed.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

fn scrape(server: &Server) -> String {
    let response: HttpResponse = server.get("/metrics");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.text()
}

#[test]
fn counters_equal_the_requests_sent() {
    let server = Server::start(&config("metrics_path = \"/metrics\""));
    let before = scrape(&server);
    assert_eq!(sample(&before, "spikard_requests_in_flight"), Some(0.0));
    assert_eq!(
        sample(
            &before,
            "spikard_request_duration_seconds_count{method=\"GET\",route=\"/hello\"}"
        ),
        Some(0.0),
        "configured routes are listed before their first request"
    );

    for _ in 0..3 {
        assert_eq!(server.get("/hello").status, 200);
    }
    for id in ["1", "2"] {
        assert_eq!(server.get(&format!("/items/{id}")).status, 200);
    }
    for path in ["/nowhere", "/items/1/deeper"] {
        assert_eq!(server.get(path).status, 404);
    }
    assert_eq!(server.request("DELETE", "/hello", &[], b"").status, 405);
    for _ in 0..2 {
        assert_eq!(server.post_json("/items", "{}").status, 422);
    }
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(4096));
    assert_eq!(server.post_json("/items", &big).status, 413);
    assert_eq!(server.post_json("/items", "{\"name\": \"a\"}").status, 200);

    let text = scrape(&server);
    let count = |series: &str| sample(&text, series).unwrap_or(0.0);
    let total = |method: &str, route: &str, class: &str| {
        count(&format!(
            "spikard_requests_total{{method=\"{method}\",route=\"{route}\",status_class=\"{class}\"}}"
        ))
    };
    assert_eq!(total("GET", "/hello", "2xx"), 3.0, "{text}");
    assert_eq!(total("GET", "/items/{id}", "2xx"), 2.0, "{text}");
    assert_eq!(total("POST", "/items", "4xx"), 3.0, "{text}");
    assert_eq!(total("POST", "/items", "2xx"), 1.0, "{text}");
    assert_eq!(total("GET", "unmatched", "4xx"), 2.0, "{text}");
    assert_eq!(total("DELETE", "unmatched", "4xx"), 1.0, "{text}");
    assert!(
        !text.contains("/nowhere") && !text.contains("/items/1"),
        "{text}"
    );
    assert!(
        !text.contains("route=\"/metrics\""),
        "scrapes are not counted"
    );

    let histogram =
        |route: &str, method: &str, suffix: &str| {
            count(&format!(
            "spikard_request_duration_seconds_{suffix}{{method=\"{method}\",route=\"{route}\"{}}}",
            if suffix == "bucket" { ",le=\"+Inf\"" } else { "" }
        ))
        };
    assert_eq!(histogram("/hello", "GET", "count"), 3.0, "{text}");
    assert_eq!(histogram("/hello", "GET", "bucket"), 3.0, "{text}");
    assert_eq!(histogram("/items", "POST", "count"), 4.0, "{text}");
    assert!(histogram("/hello", "GET", "sum") > 0.0, "{text}");

    let rejected = |reason: &str| count(&format!("spikard_rejected_total{{reason=\"{reason}\"}}"));
    assert_eq!(rejected("validation"), 2.0, "{text}");
    assert_eq!(rejected("body_too_large"), 1.0, "{text}");
    assert_eq!(rejected("timeout"), 0.0, "{text}");
    assert_eq!(count("spikard_requests_in_flight"), 0.0, "{text}");
}

#[test]
fn off_by_default() {
    let server = Server::start(&config(""));
    assert_eq!(server.get("/metrics").status, 404);
}

#[test]
fn a_metrics_path_a_route_serves_is_refused_naming_both() {
    let run = run_host(&config("metrics_path = \"/hello\""), &["--check"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or_default();
    assert!(line.contains("spikard.toml:2"), "{line}");
    assert!(line.contains("server.metrics_path"), "{line}");
    assert!(line.contains("GET /hello"), "{line}");

    let run = run_host(
        &config("health_path = \"/m\"\nmetrics_path = \"/m\""),
        &["--check"],
    );
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("server.metrics_path: is the same path as server.health_path"),
        "{}",
        run.stderr
    );
}
