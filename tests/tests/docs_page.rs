//! The `[openapi]` docs page in a real browser (issue 13): headless Chromium (Debian's
//! `chromium`, which .ci/run installs) loads `/docs` from the real host and echo plugin with
//! nothing but loopback, runs the embedded Swagger UI under the page's own
//! Content-Security-Policy, and the dumped DOM must show every documented operation with its
//! summary. A screenshot goes to target/test-artifacts/docs.png for people to look at.
//!
//! Without chromium the test is skipped, except under CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spikard_tests::{echo_plugin_block, target_dir, Server, TempDir};

const CONFIG: &str = r#"
[openapi]
enabled = true
title = "Shop API"
version = "3.1.4"

[[routes]]
method = "GET"
path = "/items/{item_id}"
plugin = "echo"
handler = "echo"
openapi = { summary = "Read one item", tags = ["items"] }
[routes.params.path]
type = "object"
properties = { item_id = { type = "integer", description = "The item's id" } }
required = ["item_id"]

[[routes]]
method = "POST"
path = "/items"
plugin = "echo"
handler = "echo"
openapi = { summary = "Create an item", tags = ["items"], status = 201 }
[routes.body]
type = "object"
properties = { name = { type = "string" } }
required = ["name"]

[[routes]]
method = "DELETE"
path = "/orders/{order_id}"
plugin = "echo"
handler = "echo"
openapi = { summary = "Cancel an order", tags = ["orders"], deprecated = true }
"#;

/// Debian's chromium, if installed.
fn chromium() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("chromium"))
        .find(|p| p.exists())
}

/// Runs headless chromium on `url` with `extra` flags and a fresh profile; its stdout.
fn run_chromium(chromium: &Path, url: &str, extra: &[&str]) -> String {
    let profile = TempDir::new("chromium-profile");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stdout }, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("reader thread")
}

#[test]
fn swagger_ui_renders_every_operation_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing under CI: .ci/run installs Debian's chromium"
        );
        eprintln!("skipped: no chromium (apt-get install chromium)");
        return;
    };
    let server = Server::start(&format!("{}{CONFIG}", echo_plugin_block()));
    let url = format!("http://{}/docs", server.addr);

    let dom = run_chromium(&chromium, &url, &["--dump-dom"]);
    assert!(dom.contains("swagger-ui"), "the page did not load:\n{dom}");
    for path in ["/items/{item_id}", "/items", "/orders/{order_id}"] {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "operation {path} not rendered:\n{dom}"
        );
    }
    for text in [
        "Read one item",
        "Create an item",
        "Cancel an order",
        "Shop API",
        "3.1.4",
        "orders",
    ] {
        assert!(dom.contains(text), "{text:?} not rendered:\n{dom}");
    }
    assert!(
        dom.contains("opblock-deprecated"),
        "the deprecated operation is not marked:\n{dom}"
    );

    let artifacts = target_dir()
        .parent()
        .expect("target/<profile> is inside target/")
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("create target/test-artifacts");
    let shot = artifacts.join("docs.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &chromium,
        &url,
        &[
            "--window-size=1280,1000",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
