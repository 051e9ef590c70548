//! Request ids and per-route request timeouts, end to end through the echo plugin (issue
//! 11): a client's usable `X-Request-Id` is kept — in the response header, the access line
//! and the id the plugin is handed (its own log lines name it) — an unusable or duplicate
//! one is replaced by a generated UUID, the header can be renamed or turned off per route
//! and server-wide, and a route's `request_timeout_ms` overrides the server's. Routes a
//! plugin registers take the same per-route `request_id` (and `max_json_depth`) keys in
//! their schema object.

use std::time::Duration;

use spikard_tests::{echo_plugin_block, expect_startup_error, run_host, Server};

/// The routes of these tests; `server` is the `[server]` table's body.
fn config(server: &str) -> String {
    format!(
        "[server]\nrequest_timeout_ms = 5000\n{server}\n\n{}\n\
[[routes]]\nmethod = \"GET\"\npath = \"/echo\"\nplugin = \"echo\"\nhandler = \"echo\"\n\n\
[[routes]]\nmethod = \"GET\"\npath = \"/quiet\"\nplugin = \"echo\"\nhandler = \"echo\"\nrequest_id = false\n\n\
[[routes]]\nmethod = \"GET\"\npath = \"/loud\"\nplugin = \"echo\"\nhandler = \"echo\"\nrequest_id = true\n\n\
[[routes]]\nmethod = \"GET\"\npath = \"/slow\"\nplugin = \"echo\"\nhandler = \"delay\"\nsettings = {{ delay_ms = 20000, body = \"late\" }}\nrequest_timeout_ms = 200\n\n\
[[routes]]\nmethod = \"GET\"\npath = \"/patient\"\nplugin = \"echo\"\nhandler = \"delay\"\nsettings = {{ delay_ms = 400, body = \"done\" }}\n\n\
[[routes]]\nmethod = \"GET\"\npath = \"/hold\"\nplugin = \"echo\"\nhandler = \"delay\"\nsettings = {{ delay_ms = 1500, body = \"held\" }}\n",
        echo_plugin_block()
    )
}

/// A host on [`config`] whose log includes the echo plugin's debug lines (it logs each
/// cancelled request with the id it was handed).
fn start(server: &str) -> Server {
    Server::try_start(&config(server), &[], |command| {
        command.env("RUST_LOG", "info,spikard_echo=debug");
    })
    .unwrap_or_else(|log| panic!("spikard-host did not start; its log:\n{log}"))
}

/// `8-4-4-4-12` lower-case hex with version 4 and the RFC 4122 variant.
fn is_uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

/// The access line naming `id`, once it is written.
fn access_line(server: &Server, id: &str) -> String {
    let needle = format!("request_id={id}");
    for _ in 0..100 {
        let log = server.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("spikard::access") && l.contains(&needle))
        {
            return line.to_owned();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no access line with {needle}:\n{}", server.log());
}

#[test]
fn generated_ids_are_uuids_in_the_header_the_body_and_the_log() {
    let s = start("");
    let a = s.get("/echo");
    let b = s.get("/echo");
    let (a_id, b_id) = (
        a.header("x-request-id").unwrap(),
        b.header("x-request-id").unwrap(),
    );
    assert!(is_uuid_v4(a_id) && is_uuid_v4(b_id), "{a_id} {b_id}");
    assert_ne!(a_id, b_id);
    assert!(access_line(&s, a_id).contains("status=200"));
    let missing = s.get("/nowhere");
    assert_eq!(missing.status, 404);
    let id = missing.header("x-request-id").unwrap();
    assert!(is_uuid_v4(id), "{id}");
    assert_eq!(
        missing.json()["request_id"],
        id,
        "the Problem Details name it too"
    );
}

#[test]
fn a_usable_client_id_is_kept_and_reaches_the_plugin() {
    let s = start("");
    let r = s.request("GET", "/echo", &[("X-Request-Id", "trace-123.abc/Z")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("trace-123.abc/Z"));
    assert!(access_line(&s, "trace-123.abc/Z").contains("status=200"));

    // The plugin is handed the same id: it logs it when the host cancels the request.
    let r = s.request("GET", "/slow", &[("x-request-id", "slow-trace-7")], b"");
    assert_eq!(r.status, 504);
    assert_eq!(r.header("x-request-id"), Some("slow-trace-7"));
    assert_eq!(r.json()["request_id"], "slow-trace-7");
    s.wait_for_log("delay cancelled");
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains("delay cancelled") && l.contains("slow-trace-7")),
        "the plugin's own line names the client's id:\n{log}"
    );
    assert!(access_line(&s, "slow-trace-7").contains("outcome=timeout"));
}

#[test]
fn unusable_client_ids_are_replaced() {
    let s = start("");
    let too_long = "a".repeat(129);
    let longest = "b".repeat(128);
    for bad in ["has space", "tab\there", too_long.as_str(), "caf\u{e9}"] {
        let r = s.request("GET", "/echo", &[("x-request-id", bad)], b"");
        assert_eq!(r.status, 200);
        let id = r.header("x-request-id").unwrap();
        assert!(is_uuid_v4(id), "{bad:?} was replaced by {id}");
    }
    let r = s.request("GET", "/echo", &[("x-request-id", &longest)], b"");
    assert_eq!(r.header("x-request-id"), Some(longest.as_str()));
}

#[test]
fn a_client_id_already_in_flight_is_not_reused() {
    let s = start("");
    let addr = s.addr;
    let first = std::thread::spawn(move || {
        spikard_tests::request(addr, "GET", "/hold", &[("x-request-id", "dup-1")], b"")
    });
    // Let the first request reach the plugin (it answers after 1.5 s).
    std::thread::sleep(Duration::from_millis(400));
    let second = s.request("GET", "/hold", &[("x-request-id", "dup-1")], b"");
    let first = first.join().unwrap();
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.header("x-request-id"), Some("dup-1"));
    let id = second.header("x-request-id").unwrap();
    assert!(is_uuid_v4(id), "the duplicate got its own id, not {id}");
    // Free again once the first has finished.
    let third = s.request("GET", "/echo", &[("x-request-id", "dup-1")], b"");
    assert_eq!(third.header("x-request-id"), Some("dup-1"));
}

#[test]
fn the_header_can_be_renamed_and_turned_off() {
    let s = start("request_id_header = \"X-Trace-Id\"");
    let r = s.request(
        "GET",
        "/echo",
        &[("x-trace-id", "t-1"), ("x-request-id", "r-1")],
        b"",
    );
    assert_eq!(r.header("x-trace-id"), Some("t-1"));
    assert_eq!(r.header("x-request-id"), None);
    assert!(access_line(&s, "t-1").contains("status=200"));

    let r = s.request("GET", "/quiet", &[("x-trace-id", "t-2")], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-trace-id"),
        None,
        "request_id = false on the route"
    );
    assert!(
        access_line(&s, "t-2").contains("status=200"),
        "still logged"
    );

    let off = start("request_ids = false");
    for path in ["/echo", "/nowhere"] {
        let r = off.request("GET", path, &[("x-request-id", "external-id")], b"");
        assert_eq!(r.header("x-request-id"), None, "{path}");
    }
    let r = off.get("/loud");
    assert!(
        is_uuid_v4(r.header("x-request-id").unwrap()),
        "request_id = true on the route"
    );
}

#[test]
fn registered_routes_take_request_id_and_max_json_depth() {
    let register = |method: &str, path: &str, schema: &str| {
        format!("[[plugins.settings.register]]\nmethod = \"{method}\"\npath = \"{path}\"\nhandler = \"echo\"\nschema = '{schema}'\n")
    };
    let config = format!(
        "[server]\nproblem_type_base = \"https://spikard.dev/errors/\"\n\n{}{}{}{}",
        echo_plugin_block(),
        register(
            "POST",
            "/shallow",
            r#"{"max_json_depth": 2, "body": {"type": "object"}}"#
        ),
        register("GET", "/quiet", r#"{"request_id": false}"#),
        register("GET", "/plain", "{}"),
    );
    let s = Server::start(&config);
    assert_eq!(s.post_json("/shallow", r#"{"a":{}}"#).status, 200);
    let r = s.post_json("/shallow", r#"{"a":{"b":{}}}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let problem = r.json();
    assert_eq!(
        problem["type"], "https://spikard.dev/errors/json-too-deep",
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("limit of 2 levels"),
        "{problem}"
    );

    let quiet = s.request("GET", "/quiet", &[("x-request-id", "q-1")], b"");
    assert_eq!(quiet.status, 200, "{}", quiet.text());
    assert_eq!(quiet.header("x-request-id"), None, "request_id false");
    let plain = s.request("GET", "/plain", &[("x-request-id", "p-1")], b"");
    assert_eq!(
        plain.header("x-request-id"),
        Some("p-1"),
        "the server default"
    );

    let bad = format!(
        "{}{}",
        echo_plugin_block(),
        register("POST", "/deep", r#"{"max_json_depth": 500}"#)
    );
    expect_startup_error(
        &bad,
        &[
            "route POST /deep registered by plugin `echo`",
            "max_json_depth must be a whole number from 1 to 127",
        ],
    );
}

#[test]
fn a_route_timeout_overrides_the_servers() {
    let s = start("");
    let slow = s.get("/slow");
    assert_eq!(slow.status, 504, "the route's 200 ms");
    assert_eq!(slow.json()["status"], 504);
    let patient = s.get("/patient");
    assert_eq!(patient.status, 200, "the server's 5 s: {}", patient.text());
    assert_eq!(patient.text(), "done");
}

#[test]
fn bad_timeouts_and_header_names_are_config_errors() {
    let route = format!(
        "{}\n[[routes]]\nmethod = \"GET\"\npath = \"/a\"\nplugin = \"echo\"\nhandler = \"echo\"\nrequest_timeout_ms = 0\n",
        echo_plugin_block()
    );
    let done = run_host(&route, &["--check"]);
    assert_eq!(done.status.code(), Some(2), "{}", done.stderr);
    assert!(
        done.stderr.contains(
            ":10:22: routes[0].request_timeout_ms: must be between 1 and 3600000 milliseconds"
        ),
        "{}",
        done.stderr
    );
    let done = run_host("[server]\nrequest_id_header = \"\"\n", &["--check"]);
    assert_eq!(done.status.code(), Some(2), "{}", done.stderr);
    assert!(
        done.stderr.contains(":2:21: server.request_id_header: "),
        "{}",
        done.stderr
    );
}
