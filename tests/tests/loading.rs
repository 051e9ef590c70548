//! Plugin loading through the ABI: a plugin written in C, the layouts the C
//! compiler and Rust agree on, every load failure, `--check`, and config
//! errors. Each failure must be one clear line and exit status 2.

use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use spikard_abi::ffi;
use spikard_tests::{echo_plugin_block, expect_startup_error, repo_root, Server, TempDir};

/// Compiles `tests/c-plugin/hello_plugin.c` with the system C compiler and the strict
/// flags every C plugin of the suite is held to.
fn compile_c(dir: &TempDir, name: &str, defines: &[&str], shared: bool) -> PathBuf {
    let mut flags: Vec<String> = spikard_tests::STRICT_C_FLAGS
        .iter()
        .map(|f| f.to_string())
        .collect();
    if shared {
        flags.extend(["-shared".into(), "-fPIC".into()]);
    }
    flags.extend(defines.iter().map(|d| format!("-D{d}")));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    spikard_tests::compile_c(
        "hello_plugin.c",
        &repo_root().join("abi/include"),
        &dir.path().join(name),
        &flags,
    )
}

fn c_config(library: &Path) -> String {
    format!(
        "[[plugins]]\nname = \"c\"\nlibrary = \"{}\"\n\n[[routes]]\nmethod = \"GET\"\npath = \"/c/{{n}}\"\nplugin = \"c\"\nhandler = \"hello\"\n[routes.params.path]\ntype = \"object\"\nproperties = {{ n = {{ type = \"integer\" }} }}\n",
        library.display()
    )
}

#[test]
fn a_plugin_written_in_c_serves_requests() {
    let dir = TempDir::new("c-plugin");
    let library = compile_c(&dir, "libc_hello.so", &[], true);
    let s = Server::start(&c_config(&library));
    let r = s.get("/c/5");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["hello"], "world");
    assert_eq!(body["handler_id"], 7);
    assert_eq!(body["method"], "GET");
    assert_eq!(body["params"]["path"], json!({"n": 5}));
    assert!(s.log().contains("hello from C"), "{}", s.log());
    assert_eq!(
        s.get("/c/x").status,
        422,
        "validated by the host before C runs"
    );
}

#[test]
fn c_and_rust_agree_on_every_struct_layout() {
    let dir = TempDir::new("layout");
    let probe = compile_c(&dir, "layout_probe", &["LAYOUT_PROBE"], false);
    let output = Command::new(&probe).output().expect("run the layout probe");
    let printed = String::from_utf8_lossy(&output.stdout);
    let c: std::collections::HashMap<&str, usize> = printed
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let rust: &[(&str, usize)] = &[
        ("spk_str", size_of::<ffi::Str>()),
        ("spk_bytes", size_of::<ffi::Bytes>()),
        ("spk_header", size_of::<ffi::Header>()),
        ("spk_request", size_of::<ffi::Request>()),
        (
            "spk_request.handler_id",
            offset_of!(ffi::Request, handler_id),
        ),
        (
            "spk_request.request_id",
            offset_of!(ffi::Request, request_id),
        ),
        ("spk_request.method", offset_of!(ffi::Request, method)),
        ("spk_request.path", offset_of!(ffi::Request, path)),
        ("spk_request.query", offset_of!(ffi::Request, query)),
        ("spk_request.headers", offset_of!(ffi::Request, headers)),
        (
            "spk_request.headers_len",
            offset_of!(ffi::Request, headers_len),
        ),
        (
            "spk_request.params_json",
            offset_of!(ffi::Request, params_json),
        ),
        ("spk_request.body", offset_of!(ffi::Request, body)),
        ("spk_response", size_of::<ffi::Response>()),
        ("spk_response.status", offset_of!(ffi::Response, status)),
        ("spk_response.headers", offset_of!(ffi::Response, headers)),
        (
            "spk_response.headers_len",
            offset_of!(ffi::Response, headers_len),
        ),
        ("spk_response.body", offset_of!(ffi::Response, body)),
        ("spk_route_decl", size_of::<ffi::RouteDecl>()),
        ("spk_route_decl.method", offset_of!(ffi::RouteDecl, method)),
        ("spk_route_decl.path", offset_of!(ffi::RouteDecl, path)),
        (
            "spk_route_decl.handler_id",
            offset_of!(ffi::RouteDecl, handler_id),
        ),
        (
            "spk_route_decl.schema_json",
            offset_of!(ffi::RouteDecl, schema_json),
        ),
        ("spk_route_binding", size_of::<ffi::RouteBinding>()),
        (
            "spk_route_binding.handler",
            offset_of!(ffi::RouteBinding, handler),
        ),
        (
            "spk_route_binding.settings_json",
            offset_of!(ffi::RouteBinding, settings_json),
        ),
        ("spk_host_api", size_of::<ffi::HostApi>()),
        (
            "spk_host_api.abi_major",
            offset_of!(ffi::HostApi, abi_major),
        ),
        ("spk_host_api.log", offset_of!(ffi::HostApi, log)),
        (
            "spk_host_api.log_enabled",
            offset_of!(ffi::HostApi, log_enabled),
        ),
        (
            "spk_host_api.register_route",
            offset_of!(ffi::HostApi, register_route),
        ),
        ("spk_host_api.respond", offset_of!(ffi::HostApi, respond)),
        (
            "spk_host_api.respond_error",
            offset_of!(ffi::HostApi, respond_error),
        ),
        (
            "spk_host_api.set_error",
            offset_of!(ffi::HostApi, set_error),
        ),
        (
            "spk_host_api.config_dir",
            offset_of!(ffi::HostApi, config_dir),
        ),
        ("spk_plugin_vtable", size_of::<ffi::PluginVTable>()),
        (
            "spk_plugin_vtable.init",
            offset_of!(ffi::PluginVTable, init),
        ),
        (
            "spk_plugin_vtable.bind_route",
            offset_of!(ffi::PluginVTable, bind_route),
        ),
        (
            "spk_plugin_vtable.handle",
            offset_of!(ffi::PluginVTable, handle),
        ),
        (
            "spk_plugin_vtable.cancel",
            offset_of!(ffi::PluginVTable, cancel),
        ),
        (
            "spk_plugin_vtable.shutdown",
            offset_of!(ffi::PluginVTable, shutdown),
        ),
        ("spk_plugin_decl", size_of::<ffi::PluginDecl>()),
        (
            "spk_plugin_decl.abi_major",
            offset_of!(ffi::PluginDecl, abi_major),
        ),
        (
            "spk_plugin_decl.abi_minor",
            offset_of!(ffi::PluginDecl, abi_minor),
        ),
        (
            "spk_plugin_decl.struct_size",
            offset_of!(ffi::PluginDecl, struct_size),
        ),
        ("spk_plugin_decl.name", offset_of!(ffi::PluginDecl, name)),
        (
            "spk_plugin_decl.version",
            offset_of!(ffi::PluginDecl, version),
        ),
        (
            "spk_plugin_decl.vtable",
            offset_of!(ffi::PluginDecl, vtable),
        ),
    ];
    assert_eq!(c.len(), rust.len(), "the probe printed:\n{printed}");
    for (name, size) in rust {
        assert_eq!(
            c.get(name),
            Some(size),
            "{name}: C says {:?}, Rust {size}",
            c.get(name)
        );
    }
    // The header's constants are the crate's.
    let header = spikard_abi::C_HEADER;
    assert!(header
        .contains(&format!("#define SPIKARD_ABI_MAGIC {:#X}ULL", ffi::MAGIC).replace("0X", "0x")));
    assert!(header.contains(&format!("#define SPIKARD_ABI_MAJOR {}u", ffi::ABI_MAJOR)));
    assert!(header.contains(&format!("#define SPIKARD_ABI_MINOR {}u", ffi::ABI_MINOR)));
}

#[test]
fn each_load_failure_names_the_library_field_and_fix() {
    let dir = TempDir::new("broken");
    let missing = dir.path().join("libnothing.so");
    expect_startup_error(
        &c_config(&missing),
        &[
            "plugins[0].library",
            "libnothing.so",
            "no such file",
            "build",
        ],
    );

    let not_a_library = dir.write("libtext.so", "not an ELF file");
    expect_startup_error(
        &c_config(&not_a_library),
        &["plugins[0].library", "cannot be loaded as a shared library"],
    );

    let cases: &[(&str, &[&str])] = &[
        (
            "BROKEN_NO_SYMBOL",
            &[
                "does not export `spikard_plugin_v1`",
                "not a spikard ABI v1 plugin",
            ],
        ),
        ("BROKEN_MAGIC", &["magic", "not a spikard plugin"]),
        (
            "BROKEN_MAJOR",
            &[
                "built for plugin ABI v2.",
                "this host loads ABI v1.x plugins",
                "rebuild the plugin against ABI v1",
            ],
        ),
        (
            "BROKEN_SMALL_VTABLE",
            &[
                "spk_plugin_vtable is 16 bytes",
                "smaller than ABI v1.0's 48",
            ],
        ),
        (
            "BROKEN_INIT",
            &[
                "init failed",
                "refuses to start (BROKEN_INIT)",
                "plugins[0].settings",
            ],
        ),
    ];
    for (define, needles) in cases {
        let library = compile_c(&dir, &format!("lib{define}.so"), &[define], true);
        let line = expect_startup_error(&c_config(&library), needles);
        assert!(
            line.contains("spikard.toml:1:1"),
            "names the config location: {line}"
        );
    }
}

#[test]
fn a_plugin_refusing_a_route_names_the_route() {
    let config = format!(
        "{}\n[[routes]]\nmethod = \"GET\"\npath = \"/x\"\nplugin = \"echo\"\nhandler = \"nope\"\n",
        echo_plugin_block()
    );
    expect_startup_error(
        &config,
        &[
            "spikard.toml:5:1",
            "routes[0].handler",
            "refused handler `nope`",
            "spikard_echo has `echo`",
        ],
    );
}

#[test]
fn config_errors_name_line_field_and_fix() {
    expect_startup_error(
        "[server]\nlisten = \"127.0.0.1:1\"\nworkerz = 2\n",
        &["spikard.toml:3:1", "workerz"],
    );
    expect_startup_error(
        &format!("{}\n[[routes]]\nmethod = \"GET\"\npath = \"items\"\nplugin = \"echo\"\nhandler = \"echo\"\n", echo_plugin_block()),
        &["routes[0].path", "must start with '/'"],
    );
    let route = "\n[[routes]]\nmethod = \"GET\"\npath = \"/a/{x}\"\nplugin = \"echo\"\nhandler = \"echo\"\n";
    expect_startup_error(
        &format!(
            "{}{route}{}",
            echo_plugin_block(),
            route.replace("{x}", "{y}")
        ),
        &[
            "routes[1]",
            "duplicate route GET /a/{y}",
            "already declared at line 5",
        ],
    );
    expect_startup_error(
        &format!("{}\n[[routes]]\nmethod = \"GET\"\npath = \"/a\"\nplugin = \"echo\"\nhandler = \"echo\"\n[routes.params.query]\ntype = \"bogus\"\n", echo_plugin_block()),
        &["routes[0].params/body"],
    );
    let run = spikard_tests::run_host_file(Path::new("/nonexistent/spikard.toml"), &["--check"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        run.stderr
            .contains("/nonexistent/spikard.toml: cannot read the config file"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_prints_what_would_be_served() {
    let example = repo_root().join("config/echo.toml");
    let run = spikard_tests::run_host_file(&example, &["--check"]);
    assert_eq!(run.status.code(), Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("config/echo.toml is valid"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("plugin echo = spikard_echo 0.1.0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with("route  GET")
            && l.contains("/hello")
            && l.ends_with("echo:respond")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("4 route(s), 1 plugin(s)"),
        "{}",
        run.stdout
    );
}
