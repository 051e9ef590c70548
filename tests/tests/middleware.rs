//! Host middleware through the real host and echo plugin (issue 11): which routes get which
//! policy (`[server.*]`, `[[policies]]`, route keys), CORS, JWT and API-key authentication
//! (the principal reaching the plugin), rate limits, compression, static files, and config
//! mistakes in any of it.

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use spikard_tests::{echo_plugin_block, run_host, HttpResponse, Server};

const SECRET: &str = "middleware-e2e-secret-0123456789";

fn route(method: &str, path: &str, extra: &str) -> String {
    format!(
        "\n[[routes]]\nmethod = \"{method}\"\npath = \"{path}\"\nplugin = \"echo\"\nhandler = \"echo\"\n{extra}\n"
    )
}

fn config(server: &str, rest: &str) -> String {
    format!(
        "[server]\nproblem_type_base = \"https://spikard.dev/errors/\"\n{server}\n{}{rest}",
        echo_plugin_block()
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn problem(response: &HttpResponse, status: u16, title: &str) -> serde_json::Value {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let body = response.json();
    assert_eq!(body["title"], title, "{body}");
    body
}

#[test]
fn server_policies_apply_to_every_route_and_policies_entries_and_route_keys_override_them() {
    let server_keys = format!(
        "[server.auth.jwt]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\naudience = [\"tests\"]\n\
         [server.auth.api_key]\nkeys = [\"old-key\", \"new-key\"]\n"
    );
    let rest = [
        route("GET", "/private", ""),
        route("GET", "/open/{id}", ""),
        route("POST", "/open/{id}", ""),
        route("GET", "/own", "auth = false"),
        "\n[[policies]]\npath = \"/open/**\"\nmethods = [\"GET\"]\nauth = false\n".to_owned(),
    ]
    .concat();
    let server = Server::start(&config(&server_keys, &rest));

    let anonymous = server.get("/private");
    problem(&anonymous, 401, "Missing credentials");
    let challenges: Vec<&str> = anonymous
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer")),
        "{challenges:?}"
    );
    assert!(
        challenges.iter().any(|c| c.starts_with("ApiKey")),
        "{challenges:?}"
    );

    // The `[[policies]]` entry selects GET under /open only; the route's own key wins.
    assert_eq!(server.get("/open/1").status, 200);
    problem(
        &server.request("POST", "/open/1", &[], b""),
        401,
        "Missing credentials",
    );
    assert_eq!(server.get("/own").status, 200);

    // The principal reaches the plugin; an API key by its index, never the key itself.
    let with_key = server.request("GET", "/private", &[("x-api-key", "new-key")], b"");
    assert_eq!(with_key.status, 200, "{}", with_key.text());
    assert_eq!(
        with_key.json()["params"]["auth"],
        serde_json::json!({"scheme": "api_key", "key_index": 1})
    );
    assert!(
        !with_key.text().contains("\"new-key\"")
            || with_key.json()["headers"]["x-api-key"] == "new-key"
    );
    problem(
        &server.request("GET", "/private", &[("x-api-key", "guess")], b""),
        401,
        "Invalid API key",
    );

    let valid = token(
        serde_json::json!({"sub": "ada", "aud": "tests", "exp": now() + 600, "role": "admin"}),
    );
    let bearer = format!("Bearer {valid}");
    let answer = server.request("GET", "/private", &[("authorization", &bearer)], b"");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let auth = &answer.json()["params"]["auth"];
    assert_eq!(auth["scheme"], "jwt");
    assert_eq!(auth["claims"]["sub"], "ada");
    assert_eq!(auth["claims"]["role"], "admin");

    // JWT decides when an Authorization header is present, even with a good API key.
    let expired = format!(
        "Bearer {}",
        token(serde_json::json!({"sub": "ada", "aud": "tests", "exp": now() - 3600}))
    );
    let refused = server.request(
        "GET",
        "/private",
        &[("authorization", &expired), ("x-api-key", "old-key")],
        b"",
    );
    let body = problem(&refused, 401, "JWT validation failed");
    assert_eq!(body["detail"], "Token has expired");
    assert_eq!(body["type"], "https://spikard.dev/errors/unauthorized");
    let wrong_audience = format!(
        "Bearer {}",
        token(serde_json::json!({"sub": "ada", "aud": "elsewhere", "exp": now() + 600}))
    );
    let body = problem(
        &server.request(
            "GET",
            "/private",
            &[("authorization", &wrong_audience)],
            b"",
        ),
        401,
        "JWT validation failed",
    );
    assert_eq!(body["detail"], "Token audience is invalid");
    problem(
        &server.request("GET", "/private", &[("authorization", "Bearer a.b")], b""),
        401,
        "Malformed JWT token",
    );
}

#[test]
fn authentication_comes_before_the_body_and_validation() {
    let rest = route(
        "POST",
        "/items",
        "auth = { api_key = { keys = [\"k-123\"] } }\n[routes.body]\ntype = \"object\"\nrequired = [\"name\"]",
    );
    let server = Server::start(&config("body_limit = 64", &rest));
    // Invalid and too large, but unauthenticated: 401, not 422 or 413.
    let big = vec![b'x'; 10_000];
    let response = server.request(
        "POST",
        "/items",
        &[("content-type", "application/json")],
        &big,
    );
    problem(&response, 401, "Missing API key");
    let response = server.request(
        "POST",
        "/items",
        &[("content-type", "application/json"), ("x-api-key", "k-123")],
        b"{}",
    );
    assert_eq!(response.status, 422);
}

#[test]
fn cors_actual_requests_preflights_and_refusals() {
    let server_keys = "[server.cors]\nallow_origins = [\"https://app.example.com\", \"https://*.example.org\"]\n\
                       allow_headers = [\"x-custom\"]\nexpose_headers = [\"x-total\"]\nmax_age = 120\n";
    let rest = [
        route("GET", "/items", ""),
        route("POST", "/items", ""),
        route("GET", "/closed", "cors = false"),
    ]
    .concat();
    let server = Server::start(&config(server_keys, &rest));

    let plain = server.get("/items");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("access-control-allow-origin"), None);

    let allowed = server.request(
        "GET",
        "/items",
        &[("origin", "https://app.example.com")],
        b"",
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        allowed.header("access-control-expose-headers"),
        Some("x-total")
    );
    assert!(allowed.header("vary").unwrap_or("").contains("Origin"));

    let pattern = server.request(
        "GET",
        "/items",
        &[("origin", "https://eu.shop.example.org")],
        b"",
    );
    assert_eq!(
        pattern.header("access-control-allow-origin"),
        Some("https://eu.shop.example.org")
    );

    let refused = server.request(
        "GET",
        "/items",
        &[("origin", "https://evil.example.com")],
        b"",
    );
    let body = problem(&refused, 403, "CORS Request Forbidden");
    assert_eq!(
        body["detail"],
        "CORS request from origin 'https://evil.example.com' not allowed"
    );

    // An error answer to an allowed origin still carries the CORS headers.
    let error = server.request(
        "POST",
        "/items",
        &[
            ("origin", "https://app.example.com"),
            ("content-type", "text/csv"),
        ],
        b"a,b",
    );
    assert_eq!(
        error.header("access-control-allow-origin"),
        Some("https://app.example.com"),
        "status {}",
        error.status
    );

    // A path or method no route has: still readable by an allowed origin.
    let missing = server.request(
        "GET",
        "/nowhere",
        &[("origin", "https://app.example.com")],
        b"",
    );
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );

    // The server's own origin is not cross-origin.
    let own = format!("http://{}", server.addr);
    let same = server.request("GET", "/items", &[("origin", &own)], b"");
    assert_eq!(same.status, 200);
    assert_eq!(same.header("access-control-allow-origin"), None);

    let preflight = server.request(
        "OPTIONS",
        "/items",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "X-Custom, Content-Type"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204, "{}", preflight.text());
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let methods = preflight.header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("X-Custom, Content-Type")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("120"));

    for (method, headers) in [("DELETE", "x-custom"), ("POST", "x-other")] {
        let refused = server.request(
            "OPTIONS",
            "/items",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", method),
                ("access-control-request-headers", headers),
            ],
            b"",
        );
        assert_eq!(
            refused.status,
            403,
            "{method} {headers}: {}",
            refused.text()
        );
    }
    // A path whose route has no CORS policy is not opened by a preflight.
    let closed = server.request(
        "OPTIONS",
        "/closed",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "GET"),
        ],
        b"",
    );
    assert_eq!(closed.status, 405);
    assert_eq!(
        server
            .request(
                "GET",
                "/closed",
                &[("origin", "https://evil.example.com")],
                b""
            )
            .status,
        200
    );
}

#[test]
fn rate_limits_answer_429_with_retry_after_and_budgets_are_per_table() {
    let rest = [
        route("GET", "/a", ""),
        route("GET", "/b", ""),
        route("GET", "/c", "rate_limit = { per_minute = 1, burst = 1 }"),
        route("GET", "/free", "rate_limit = false"),
    ]
    .concat();
    let server = Server::start(&config(
        "metrics_path = \"/metrics\"\n[server.rate_limit]\nper_second = 0.1\nburst = 3\n",
        &rest,
    ));
    // One server-wide budget of 3 shared by /a and /b.
    assert_eq!(server.get("/a").status, 200);
    assert_eq!(server.get("/b").status, 200);
    assert_eq!(server.get("/a").status, 200);
    let limited = server.get("/b");
    let body = problem(&limited, 429, "Too Many Requests");
    assert_eq!(body["type"], "https://spikard.dev/errors/rate-limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    // A route's own table is its own budget; `false` is no limit.
    assert_eq!(server.get("/c").status, 200);
    assert_eq!(server.get("/c").status, 429);
    for _ in 0..20 {
        assert_eq!(server.get("/free").status, 200);
    }
    // Operators see the refusals by reason.
    let metrics = server.get("/metrics").text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "spikard_rejected_total{reason=\"rate_limited\"} 2"),
        "{metrics}"
    );
}

#[test]
fn compression_is_negotiated_and_skips_small_bodies() {
    let big = "spikard ".repeat(400);
    let rest = format!(
        "\n[[routes]]\nmethod = \"GET\"\npath = \"/big\"\nplugin = \"echo\"\nhandler = \"respond\"\n\
         settings = {{ body = \"{big}\", headers = {{ content-type = \"text/plain\" }} }}\n\
         \n[[routes]]\nmethod = \"GET\"\npath = \"/small\"\nplugin = \"echo\"\nhandler = \"respond\"\n\
         settings = {{ body = \"tiny\", headers = {{ content-type = \"text/plain\" }} }}\n"
    );
    let server = Server::start(&config(
        "[server.compression]\nencodings = [\"gzip\", \"br\"]\nmin_size = 256\n",
        &rest,
    ));
    let gz = server.request("GET", "/big", &[("accept-encoding", "gzip")], b"");
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(gz
        .header("vary")
        .unwrap_or("")
        .to_ascii_lowercase()
        .contains("accept-encoding"));
    assert!(gz.body.len() < big.len() / 4, "{} bytes", gz.body.len());
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, big);
    // zstd is not among the encodings: the client gets what it also accepts, or nothing.
    let zstd = server.request("GET", "/big", &[("accept-encoding", "zstd")], b"");
    assert_eq!(zstd.header("content-encoding"), None);
    assert_eq!(zstd.text(), big);
    let small = server.request("GET", "/small", &[("accept-encoding", "gzip")], b"");
    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(small.text(), "tiny");
}

#[test]
fn static_files_with_validators_and_problem_details() {
    let rest = format!(
        "{}\n[[static]]\nprefix = \"/assets\"\ndir = \"public\"\ncache_control = \"public, max-age=60\"\n",
        route("GET", "/api", "")
    );
    let server = Server::start_with_files(
        &config("", &rest),
        &[
            ("public/hello.txt", "Hello from disk"),
            ("public/docs/index.html", "<h1>docs</h1>"),
            ("secret.txt", "not served"),
        ],
    );
    let file = server.get("/assets/hello.txt");
    assert_eq!(file.status, 200);
    assert_eq!(file.text(), "Hello from disk");
    assert_eq!(file.header("content-type"), Some("text/plain"));
    assert_eq!(file.header("cache-control"), Some("public, max-age=60"));
    let etag = file.header("etag").expect("an ETag").to_owned();
    let again = server.request("GET", "/assets/hello.txt", &[("if-none-match", &etag)], b"");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let part = server.request("GET", "/assets/hello.txt", &[("range", "bytes=0-4")], b"");
    assert_eq!(part.status, 206);
    assert_eq!(part.text(), "Hello");
    assert_eq!(server.get("/assets/docs/").text(), "<h1>docs</h1>");
    let missing = server.get("/assets/nope.txt");
    problem(&missing, 404, "Not Found");
    for escape in [
        "/assets/../secret.txt",
        "/assets/%2e%2e/secret.txt",
        "/assets/..%2fsecret.txt",
    ] {
        let response = server.get(escape);
        assert!(
            response.status == 404 || response.status == 400,
            "{escape}: {}",
            response.status
        );
        assert!(!response.text().contains("not served"), "{escape}");
    }
    assert_eq!(
        server.request("POST", "/assets/hello.txt", &[], b"").status,
        405
    );
    assert_eq!(server.get("/api").status, 200);
}

#[test]
fn mistakes_in_any_policy_name_the_file_line_and_field() {
    let cases = [
        (
            "[server.cors]\nallow_origin = [\"https://a.example\"]\n",
            "unknown field",
            4,
        ),
        (
            "[server.cors]\nallow_origins = [\"*\"]\nallow_credentials = true\n",
            "server.cors.allow_credentials",
            5,
        ),
        (
            "[server.auth.jwt]\nalgorithm = \"HS257\"\nsecret = \"x\"\n",
            "server.auth.jwt.algorithm",
            4,
        ),
        (
            "[server.auth.jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"missing.pem\"\n",
            "missing.pem",
            5,
        ),
        (
            "[server.rate_limit]\nper_second = 0\n",
            "server.rate_limit.per_second",
            4,
        ),
        (
            "[server.compression]\nencodings = [\"lzma\"]\n",
            "server.compression.encodings",
            4,
        ),
    ];
    for (server_keys, needle, line) in cases {
        let finished = run_host(&config(server_keys, &route("GET", "/x", "")), &["--check"]);
        assert_eq!(
            finished.status.code(),
            Some(2),
            "{server_keys}\n{}",
            finished.stderr
        );
        assert!(
            finished.stderr.contains(needle),
            "{needle}: {}",
            finished.stderr
        );
        assert!(
            finished.stderr.contains(&format!("spikard.toml:{line}:")),
            "line {line}: {}",
            finished.stderr
        );
    }
    let bad_policy = config(
        "",
        &format!(
            "{}\n[[policies]]\npath = \"admin/**\"\nauth = false\n",
            route("GET", "/x", "")
        ),
    );
    let finished = run_host(&bad_policy, &["--check"]);
    assert_eq!(finished.status.code(), Some(2), "{}", finished.stderr);
    assert!(
        finished.stderr.contains("policies[0].path"),
        "{}",
        finished.stderr
    );
    let empty_policy = config(
        "",
        &format!("{}\n[[policies]]\npath = \"/x\"\n", route("GET", "/x", "")),
    );
    let finished = run_host(&empty_policy, &["--check"]);
    assert!(
        finished.stderr.contains("sets no policy"),
        "{}",
        finished.stderr
    );
    let clash = config(
        "",
        &format!(
            "{}\n[[static]]\nprefix = \"/x\"\ndir = \".\"\n",
            route("GET", "/x/{id}", "")
        ),
    );
    let finished = run_host(&clash, &["--check"]);
    assert_ne!(finished.status.code(), Some(0), "{}", finished.stderr);
    assert!(finished.stderr.contains("static"), "{}", finished.stderr);
}
