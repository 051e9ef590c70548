//! The ABI compatibility matrix, through the real host and real libraries built by the
//! system C compiler with `-std=c11 -Wall -Wextra -Wpedantic -Werror`:
//!
//! - the C layouts of the frozen 1.0 header and of the current one match the Rust
//!   definitions, and the 1.0 sizes are `ffi::min_size`;
//! - a plugin built against the frozen 1.0 header (`tests/c-plugin/v1_0/`) loads into this
//!   host and serves: GET, POST with a body, a plugin error, a cancel by request id;
//! - a 1.1 plugin sees the request properties and is cancelled through its token, and the
//!   Rust SDK's plugins declare the current minor;
//! - a plugin of a future minor (1.99, with larger structs) loads and serves, its unknown
//!   fields untouched and the host's missing ones seen as absent;
//! - another major, and structs smaller than 1.0's, are refused with one line, exit 2.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spikard_abi::ffi;
use spikard_tests::{
    compile_c, expect_startup_error, repo_root, RawConn, Server, TempDir, STRICT_C_FLAGS,
};

/// Which `spikard_plugin.h` a C source is built against.
#[derive(Clone, Copy)]
enum Header {
    /// The released 1.0 header, frozen in `tests/c-plugin/v1_0/`.
    Frozen1_0,
    /// `abi/include/spikard_plugin.h`.
    Current,
}

impl Header {
    fn dir(self) -> PathBuf {
        match self {
            Header::Frozen1_0 => repo_root().join("tests/c-plugin/v1_0"),
            Header::Current => repo_root().join("abi/include"),
        }
    }
}

/// Builds `tests/c-plugin/<source>` as a shared library with the strict flags and `defines`.
fn build_plugin(dir: &TempDir, source: &str, header: Header, defines: &[&str]) -> PathBuf {
    let name = format!(
        "lib{}{}.so",
        source.trim_end_matches(".c"),
        defines.join("").replace(['=', '-'], "_")
    );
    let mut flags: Vec<String> = STRICT_C_FLAGS.iter().map(|f| f.to_string()).collect();
    flags.extend(["-shared".into(), "-fPIC".into()]);
    flags.extend(defines.iter().map(|d| format!("-D{d}")));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    compile_c(source, &header.dir(), &dir.path().join(name), &flags)
}

/// A `[[plugins]]` block named `name` for `library`, then `routes`.
fn config(name: &str, library: &Path, extra: &str, routes: &[Route]) -> String {
    let mut out = format!(
        "[[plugins]]\nname = \"{name}\"\nlibrary = \"{}\"\n{extra}\n",
        library.display()
    );
    for route in routes {
        out.push_str(&format!(
            "[[routes]]\nmethod = \"{}\"\npath = \"{}\"\nplugin = \"{name}\"\nhandler = \"{}\"\n{}\n",
            route.method, route.path, route.handler, route.extra
        ));
    }
    out
}

/// One `[[routes]]` entry; `extra` is appended to its table.
struct Route {
    method: &'static str,
    path: &'static str,
    handler: &'static str,
    extra: &'static str,
}

const fn route(method: &'static str, path: &'static str, handler: &'static str) -> Route {
    Route {
        method,
        path,
        handler,
        extra: "",
    }
}

/// A route whose request times out after 300 ms, for the cancel paths.
const fn hang_route(path: &'static str) -> Route {
    Route {
        method: "GET",
        path,
        handler: "hang",
        extra: "request_timeout_ms = 300\n",
    }
}

/// Compiles and runs the layout probe against `header`; its `name value` lines.
fn probe(dir: &TempDir, header: Header, tag: &str) -> HashMap<String, usize> {
    let exe = dir.path().join(format!("probe-{tag}"));
    compile_c("layout_probe.c", &header.dir(), &exe, STRICT_C_FLAGS);
    let output = Command::new(&exe).output().expect("run the layout probe");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The sizes and offsets of ABI 1.0, as Rust lays out the current structs (a 1.0 field
/// keeps its offset forever), with the 1.0 struct sizes from `ffi::min_size`.
fn rust_layout_1_0() -> Vec<(&'static str, usize)> {
    macro_rules! at {
        ($t:ty, $c:literal, $($f:ident),*) => {
            [$((concat!($c, ".", stringify!($f)), offset_of!($t, $f))),*]
        };
    }
    let mut out = vec![
        ("spk_str", size_of::<ffi::Str>()),
        ("spk_bytes", size_of::<ffi::Bytes>()),
        ("spk_header", size_of::<ffi::Header>()),
        ("spk_request", ffi::min_size::REQUEST),
        ("spk_response", ffi::min_size::RESPONSE),
        ("spk_route_decl", ffi::min_size::ROUTE_DECL),
        ("spk_route_binding", ffi::min_size::ROUTE_BINDING),
        ("spk_host_api", ffi::min_size::HOST_API),
        ("spk_plugin_vtable", ffi::min_size::PLUGIN_VTABLE),
        ("spk_plugin_decl", ffi::min_size::PLUGIN_DECL),
    ];
    out.extend(at!(
        ffi::Request,
        "spk_request",
        handler_id,
        request_id,
        method,
        path,
        query,
        headers,
        headers_len,
        params_json,
        body
    ));
    out.extend(at!(
        ffi::Response,
        "spk_response",
        status,
        headers,
        headers_len,
        body
    ));
    out.extend(at!(
        ffi::RouteDecl,
        "spk_route_decl",
        method,
        path,
        handler_id,
        schema_json
    ));
    out.extend(at!(
        ffi::RouteBinding,
        "spk_route_binding",
        method,
        path,
        handler,
        settings_json
    ));
    out.extend(at!(
        ffi::HostApi,
        "spk_host_api",
        abi_major,
        abi_minor,
        log,
        log_enabled,
        register_route,
        respond,
        respond_error,
        set_error,
        config_dir
    ));
    out.extend(at!(
        ffi::PluginVTable,
        "spk_plugin_vtable",
        init,
        bind_route,
        handle,
        cancel,
        shutdown
    ));
    out.extend(at!(
        ffi::PluginDecl,
        "spk_plugin_decl",
        abi_major,
        abi_minor,
        struct_size,
        name,
        version,
        vtable
    ));
    out
}

/// What ABI 1.1 appended, as Rust lays it out, with the current struct sizes.
fn rust_layout_1_1() -> Vec<(&'static str, usize)> {
    vec![
        ("minor", ffi::ABI_MINOR as usize),
        ("spk_request", size_of::<ffi::Request>()),
        ("spk_response", size_of::<ffi::Response>()),
        ("spk_route_decl", size_of::<ffi::RouteDecl>()),
        ("spk_route_binding", size_of::<ffi::RouteBinding>()),
        ("spk_host_api", size_of::<ffi::HostApi>()),
        ("spk_plugin_vtable", size_of::<ffi::PluginVTable>()),
        ("spk_plugin_decl", size_of::<ffi::PluginDecl>()),
        (
            "spk_request.client_addr",
            offset_of!(ffi::Request, client_addr),
        ),
        (
            "spk_request.local_addr",
            offset_of!(ffi::Request, local_addr),
        ),
        ("spk_request.scheme", offset_of!(ffi::Request, scheme)),
        (
            "spk_request.http_version",
            offset_of!(ffi::Request, http_version),
        ),
        ("spk_request.route", offset_of!(ffi::Request, route)),
        (
            "spk_request.timeout_ms",
            offset_of!(ffi::Request, timeout_ms),
        ),
        (
            "spk_host_api.set_cancel_token",
            offset_of!(ffi::HostApi, set_cancel_token),
        ),
        (
            "spk_host_api.stream_start",
            offset_of!(ffi::HostApi, stream_start),
        ),
        (
            "spk_host_api.stream_write",
            offset_of!(ffi::HostApi, stream_write),
        ),
        (
            "spk_host_api.stream_on_ready",
            offset_of!(ffi::HostApi, stream_on_ready),
        ),
        (
            "spk_host_api.stream_end",
            offset_of!(ffi::HostApi, stream_end),
        ),
        (
            "spk_plugin_vtable.cancel_token",
            offset_of!(ffi::PluginVTable, cancel_token),
        ),
        ("SPK_OK", ffi::OK as usize),
        ("SPK_ERR", ffi::ERR as usize),
        ("SPK_FULL", ffi::FULL as usize),
        ("SPK_CLOSED", ffi::CLOSED as usize),
    ]
}

fn assert_layout(c: &HashMap<String, usize>, rust: &[(&str, usize)], header: &str) {
    for (name, value) in rust {
        assert_eq!(
            c.get(*name),
            Some(value),
            "{header}: {name}: C says {:?}, Rust {value}",
            c.get(*name)
        );
    }
}

#[test]
fn the_frozen_and_current_headers_lay_out_as_rust_does() {
    let dir = TempDir::new("abi-layout");
    let frozen = probe(&dir, Header::Frozen1_0, "1.0");
    assert_eq!(frozen.get("minor"), Some(&0), "the frozen header is 1.0");
    assert_layout(&frozen, &rust_layout_1_0(), "frozen 1.0 header");
    assert_eq!(
        frozen.len(),
        rust_layout_1_0().len() + 1,
        "the probe printed more than 1.0 has: {frozen:?}"
    );

    let current = probe(&dir, Header::Current, "current");
    let mut expected: HashMap<&str, usize> = rust_layout_1_0().into_iter().collect();
    // A later minor only grows a struct and appends fields: every 1.0 offset stays.
    expected.extend(rust_layout_1_1());
    let expected: Vec<(&str, usize)> = expected.into_iter().collect();
    assert_layout(&current, &expected, "current header");
    assert_eq!(current.len(), expected.len(), "{current:?}");
}

/// The x-request-id of a response.
fn request_id(r: &spikard_tests::HttpResponse) -> String {
    r.header("x-request-id")
        .expect("responses carry x-request-id")
        .to_owned()
}

#[test]
fn a_plugin_built_against_the_frozen_1_0_header_serves() {
    let dir = TempDir::new("abi-v1_0");
    let library = build_plugin(&dir, "v1_0_plugin.c", Header::Frozen1_0, &[]);
    let mut info = route("GET", "/v10/info/{n}", "info");
    info.extra =
        "[routes.params.path]\ntype = \"object\"\nproperties = { n = { type = \"integer\" } }\n";
    let routes = [
        info,
        route("POST", "/v10/echo", "echo"),
        route("GET", "/v10/fail", "fail"),
        hang_route("/v10/hang"),
    ];
    // One place in flight: a cancelled request must give it back.
    let s = Server::start(&config("old", &library, "max_in_flight = 1", &routes));
    assert!(
        s.log().contains("loaded c_v1_0 1.0.0 (ABI 1.0)"),
        "{}",
        s.log()
    );

    let r = s.get("/v10/info/5?x=1");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["plugin"], "v1_0");
    assert_eq!(body["method"], "GET");
    assert_eq!(body["path"], "/v10/info/5");
    assert_eq!(body["query"], "x=1");
    assert_eq!(body["params"]["path"]["n"], 5);
    // It reads the 1.0 prefix of a larger request and host table, knowing nothing more.
    assert_eq!(body["request_struct_size"], size_of::<ffi::Request>());
    assert_eq!(body["api_struct_size"], size_of::<ffi::HostApi>());
    assert_eq!(body["api_minor"], ffi::ABI_MINOR);

    let r = s.request(
        "POST",
        "/v10/echo",
        &[("content-type", "text/plain")],
        b"a body from the client",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.text(), "a body from the client");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("x-body-len"), Some("22"));

    let r = s.get("/v10/fail");
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.header("x-reason"), Some("v1.0 refusal"));
    assert_eq!(r.json()["detail"], "the v1.0 plugin says no");

    let started = Instant::now();
    let r = s.get("/v10/hang");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    s.wait_for_log(&format!("v1.0 cancel {}", request_id(&r)));
    // Its place among max_in_flight = 1 came back.
    assert_eq!(s.get("/v10/info/6").status, 200, "{}", s.log());
    assert!(!s.log().contains("panicked"), "{}", s.log());
}

#[test]
fn a_1_1_plugin_sees_the_request_properties_and_its_cancel_token() {
    let dir = TempDir::new("abi-v1_1");
    let library = build_plugin(&dir, "props_plugin.c", Header::Current, &[]);
    let mut props = route("GET", "/props/{id}", "props");
    props.extra = "request_timeout_ms = 4000\n";
    let s = Server::start(&config(
        "props",
        &library,
        "",
        &[props, hang_route("/props-hang")],
    ));
    assert!(
        s.log().contains(&format!(
            "loaded c_props 1.1.0 (ABI {}.{})",
            ffi::ABI_MAJOR,
            ffi::ABI_MINOR
        )),
        "{}",
        s.log()
    );

    let r = s.get("/props/42");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["method"], "GET");
    assert_eq!(body["route"], "/props/{id}");
    assert_eq!(body["scheme"], "http");
    assert_eq!(body["http_version"], "HTTP/1.1");
    assert_eq!(body["local_addr"], s.addr.to_string());
    let client = body["client_addr"].as_str().expect("client_addr is set");
    let client: std::net::SocketAddr = client.parse().expect("client_addr is ip:port");
    assert_eq!(client.ip(), s.addr.ip());
    assert_ne!(client.port(), s.addr.port());
    let left = body["timeout_ms"].as_u64().expect("timeout_ms is set");
    assert!((3000..=4000).contains(&left), "timeout_ms {left}");
    assert_eq!(body["request_struct_size"], size_of::<ffi::Request>());
    assert_eq!(body["api_struct_size"], size_of::<ffi::HostApi>());
    assert_eq!(body["api_minor"], ffi::ABI_MINOR);

    // HEAD on a GET route reaches the plugin as method HEAD; the host drops the body.
    let r = s.request("HEAD", "/props/1", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-method"), Some("HEAD"));
    assert!(r.body.is_empty());

    // An HTTP/1.0 client is told as such.
    let mut conn = RawConn::connect(s.addr).expect("connect");
    conn.send(b"GET /props/2 HTTP/1.0\r\nhost: x\r\n\r\n")
        .expect("send");
    let r = conn
        .read_response(Instant::now() + Duration::from_secs(10), 1 << 20)
        .expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["http_version"], "HTTP/1.0");

    // The cancellation of a request with a token goes to cancel_token, not cancel.
    let r = s.get("/props-hang");
    assert_eq!(r.status, 504, "{}", r.text());
    s.wait_for_log("props cancel_token 1000");
    assert!(
        s.log().contains("props set_cancel_token 1000 -> 0"),
        "{}",
        s.log()
    );
    assert!(!s.log().contains("props cancel by id"), "{}", s.log());
}

#[test]
fn the_rust_sdk_declares_and_serves_the_current_minor() {
    let config = format!(
        "{}\n[[routes]]\nmethod = \"POST\"\npath = \"/echo\"\nplugin = \"echo\"\nhandler = \"echo\"\n",
        spikard_tests::echo_plugin_block()
    );
    let s = Server::start(&config);
    assert!(
        s.log().contains(&format!(
            "loaded spikard_echo 0.1.0 (ABI {}.{})",
            ffi::ABI_MAJOR,
            ffi::ABI_MINOR
        )),
        "{}",
        s.log()
    );
    let r = s.post_json("/echo", "{\"a\":1}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body"]["a"], 1);
}

#[test]
fn a_relative_config_file_name_gives_an_absolute_config_dir() {
    let dir = TempDir::new("abi-config-dir");
    let library = build_plugin(&dir, "props_plugin.c", Header::Current, &[]);
    let config = config("props", &library, "", &[route("GET", "/p/{id}", "props")]);
    // `--config spikard.toml` from the config's own directory: a bare file name.
    let s = Server::try_start(&config, &[], |cmd| {
        let file = cmd
            .get_args()
            .skip_while(|a| *a != "--config")
            .nth(1)
            .map(PathBuf::from)
            .expect("the harness passes --config");
        cmd.current_dir(file.parent().expect("the config is in a directory"))
            .arg("--config")
            .arg("spikard.toml");
    })
    .unwrap_or_else(|log| panic!("spikard-host did not start:\n{log}"));
    let r = s.get("/p/1");
    assert_eq!(r.status, 200, "{}", r.text());
    let config_dir = r.json()["config_dir"]
        .as_str()
        .expect("config_dir")
        .to_owned();
    let expected = s
        .config_path()
        .parent()
        .expect("a directory")
        .canonicalize()
        .expect("canonical");
    assert!(Path::new(&config_dir).is_absolute(), "{config_dir:?}");
    assert_eq!(
        Path::new(&config_dir).canonicalize().ok(),
        Some(expected),
        "{config_dir:?}"
    );
}

#[test]
fn a_plugin_of_a_future_minor_loads_and_serves() {
    let dir = TempDir::new("abi-future");
    let library = build_plugin(&dir, "future_plugin.c", Header::Current, &[]);
    let s = Server::start(&config(
        "future",
        &library,
        "",
        &[
            route("GET", "/future", "hello"),
            route("POST", "/future", "hello"),
            hang_route("/future-hang"),
        ],
    ));
    assert!(
        s.log().contains("loaded c_future 1.99.0 (ABI 1.99)"),
        "{}",
        s.log()
    );

    let r = s.get("/future");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["plugin"], "future");
    assert_eq!(body["route"], "/future");
    assert_eq!(body["request_struct_size"], size_of::<ffi::Request>());
    assert_eq!(body["api_struct_size"], size_of::<ffi::HostApi>());
    assert_eq!(body["api_minor"], ffi::ABI_MINOR);
    // What this host does not have reads as absent on the plugin's side.
    assert_eq!(body["tenant"], "");
    assert_eq!(body["push_promise"], "absent");

    let r = s.post_json("/future", "{\"n\":1}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["method"], "POST");
    assert_eq!(r.json()["body_len"], 7);

    // Its cancel_token sits at the 1.1 offset of a larger vtable; the host finds it there
    // and never touches the appended function (which aborts).
    let r = s.get("/future-hang");
    assert_eq!(r.status, 504, "{}", r.text());
    s.wait_for_log("future cancel_token 7000");
    assert_eq!(s.get("/future").status, 200, "{}", s.log());
}

/// Expects `library` to be refused: `--check` exits 2 with one error line holding
/// `needles`, and a real start ends the same way without serving.
fn expect_refused(library: &Path, needles: &[&str]) {
    let config = config("bad", library, "", &[route("GET", "/x", "hello")]);
    let mut all = vec!["plugins[0].library", "spikard.toml:1:1"];
    all.extend_from_slice(needles);
    expect_startup_error(&config, &all);
    let log = match Server::try_start(&config, &[], |_| {}) {
        Ok(_) => panic!("the host served a plugin it must refuse"),
        Err(log) => log,
    };
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("spikard-host: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line:\n{log}");
    for needle in &all {
        assert!(
            errors[0].contains(needle),
            "{needle:?} not in {:?}",
            errors[0]
        );
    }
}

#[test]
fn another_major_is_refused_with_one_line() {
    let dir = TempDir::new("abi-major");
    let library = build_plugin(
        &dir,
        "future_plugin.c",
        Header::Current,
        &["FUTURE_MAJOR=2"],
    );
    expect_refused(
        &library,
        &[
            "built for plugin ABI v2.99",
            "this host loads ABI v1.x plugins",
            "rebuild the plugin against ABI v1",
            "or run a host that supports ABI v2",
        ],
    );
}

#[test]
fn structs_smaller_than_1_0_are_refused_naming_the_struct() {
    let dir = TempDir::new("abi-small");
    let decl = build_plugin(&dir, "future_plugin.c", Header::Current, &["SMALL_DECL"]);
    expect_refused(
        &decl,
        &[
            &format!(
                "its spk_plugin_decl is {} bytes, smaller than ABI v1.0's {}: a broken build",
                offset_of!(ffi::PluginDecl, vtable),
                ffi::min_size::PLUGIN_DECL
            ),
            "rebuild it",
        ],
    );
    let vtable = build_plugin(&dir, "future_plugin.c", Header::Current, &["SMALL_VTABLE"]);
    expect_refused(
        &vtable,
        &[
            &format!(
                "its spk_plugin_vtable is {} bytes, smaller than ABI v1.0's {}: a broken build",
                offset_of!(ffi::PluginVTable, shutdown),
                ffi::min_size::PLUGIN_VTABLE
            ),
            "rebuild it",
        ],
    );
}
