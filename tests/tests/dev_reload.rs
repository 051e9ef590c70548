//! `--reload` (issue 10), end to end: the real host under `--reload`, a real socket, the
//! real echo and Python plugins. Editing the Python app file changes the answer; a syntax
//! error keeps the old code serving and logs the error on one line; fixing it reloads
//! again. Editing the config (a canned echo body) reloads too, while editor temp files,
//! `__pycache__` and a log file written beside it do not.

use std::path::Path;
use std::time::{Duration, Instant};

use spikard_tests::{echo_plugin_block, repo_root, Server};

/// How long an edit may take to be served: the debounce, the `--check` child and a new
/// worker importing the app, in a debug build on a busy 2-core machine (it takes about a
/// second when idle).
const RELOAD_BOUND: Duration = Duration::from_secs(15);

/// Starts the host with `--reload` on `config`, with `files` beside it.
fn start(config: &str, files: &[(&str, &str)]) -> Server {
    Server::try_start(config, files, |command| {
        // As a developer's shell has it: CPython writes and trusts bytecode caches, unless
        // the host's `--reload` says otherwise.
        command
            .arg("--reload")
            .env_remove("PYTHONDONTWRITEBYTECODE")
            .env_remove("PYTHONPYCACHEPREFIX");
    })
    .unwrap_or_else(|log| panic!("spikard-host --reload did not start; its log:\n{log}"))
}

/// Polls `GET /hello` until `body_of` its answer is `want`.
fn wait_for(server: &Server, want: &str, body_of: impl Fn(&[u8]) -> String) {
    let deadline = Instant::now() + RELOAD_BOUND;
    loop {
        let response = server.get("/hello");
        if response.status == 200 && body_of(&response.body) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET /hello never answered {want:?} (last: {} {:?}); log:\n{}",
            response.status,
            response.text(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the log holds `count` lines containing `needle`; returns the last of them.
fn wait_for_lines(server: &Server, needle: &str, count: usize) -> String {
    let deadline = Instant::now() + RELOAD_BOUND;
    loop {
        let log = server.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
        if lines.len() >= count {
            return lines[count - 1].to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "never {count} log line(s) with {needle:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Python app answering `GET /hello` with `{"version": version}`.
fn app(version: &str) -> String {
    format!(
        "from spikard import App\n\napp = App()\n\n\n@app.get(\"/hello\")\nasync def hello() -> dict[str, str]:\n    return {{\"version\": \"{version}\"}}\n"
    )
}

fn version(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The Python plugin and venv, or `None` (the test is skipped) when they are not built.
fn python_config() -> Option<String> {
    let python = spikard_tests::target_dir().join("libspikard_python.so");
    let venv = repo_root().join(".venv");
    if !python.exists() || !venv.exists() {
        eprintln!(
            "skipped: needs the Python plugin and .venv (cargo build --workspace; see README)"
        );
        return None;
    }
    // The app sits beside the config: the default `watch` (the config's directory) covers
    // it, and `python_path = ["."]` is relative to the config file.
    Some(format!(
        "[server]\nworkers = 1\nshutdown_timeout_ms = 1000\n\n[[plugins]]\nname = \"py\"\nlibrary = \"{}\"\nsettings = {{ app = \"devapp:app\", python_path = [\".\", \"{}\"], venv = \"{}\" }}\n",
        python.display(),
        repo_root().join("plugins/python").display(),
        venv.display()
    ))
}

#[test]
fn editing_the_python_app_reloads_and_a_syntax_error_keeps_the_old_code_serving() {
    let Some(config) = python_config() else {
        return;
    };
    // Every version has the same length, and the first edit keeps the modification time:
    // CPython would trust a cached .pyc of the old source (same size, same modification
    // second) if `--reload` children read bytecode caches.
    let server = start(&config, &[("devapp.py", &app("one"))]);
    let app_file = server.config_path().with_file_name("devapp.py");
    assert_eq!(version(&server.get("/hello").body), "one");

    // The edit keeps the file's modification time, as an edit within the same second does.
    let modified = std::fs::metadata(&app_file)
        .and_then(|m| m.modified())
        .expect("app file time");
    std::fs::write(&app_file, app("two")).expect("edit the app");
    std::fs::File::options()
        .write(true)
        .open(&app_file)
        .and_then(|f| f.set_modified(modified))
        .expect("keep the modification time");
    wait_for(&server, "two", version);
    assert!(
        wait_for_lines(&server, ": reloading ", 1).contains("devapp.py changed: reloading"),
        "{}",
        server.log()
    );

    let broken = app("bad").replace("async def hello()", "async def hello(");
    std::fs::write(&app_file, broken).expect("break the app");
    let refused = wait_for_lines(&server, "reload refused: ", 1);
    assert!(
        refused.contains("syntax error in")
            && refused.contains("devapp.py")
            && refused.contains("still serving generation 2"),
        "{refused}"
    );
    assert_eq!(version(&server.get("/hello").body), "two");

    std::fs::write(&app_file, app("six")).expect("fix the app");
    wait_for(&server, "six", version);
}

#[test]
fn an_app_that_fails_at_first_start_is_served_once_fixed() {
    let Some(config) = python_config() else {
        return;
    };
    // The first import fails after leaving a marker (not a source file: no change); a
    // thread waits for the marker, then fixes the app. The host must log the failure, wait
    // instead of exiting, and serve the fixed app (it then logs `listening on`).
    let failing = "import os\n\nopen(os.path.join(os.path.dirname(__file__), \"imported.txt\"), \"w\").close()\nraise RuntimeError(\"boom at import\")\n";
    let server = Server::try_start(&config, &[("devapp.py", failing)], |command| {
        command.arg("--reload");
        let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
        let at = args.iter().position(|a| a == "--config").expect("--config");
        let dir = Path::new(&args[at + 1])
            .parent()
            .expect("dir")
            .to_path_buf();
        std::thread::spawn(move || {
            let deadline = Instant::now() + RELOAD_BOUND;
            while !dir.join("imported.txt").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::fs::write(dir.join("devapp.py"), app("fixed")).expect("fix the app");
        });
    })
    .unwrap_or_else(|log| panic!("the fixed app was never served; log:\n{log}"));
    assert_eq!(version(&server.get("/hello").body), "fixed");
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("boom at import")
            && l.contains("waiting for a change of a watched file")),
        "{log}"
    );
}

/// A config serving `GET /hello` with the canned `body` through the echo plugin.
fn echo_config(body: &str) -> String {
    format!(
        "[server]\nworkers = 1\nshutdown_timeout_ms = 1000\n\n{}\n[[routes]]\nmethod = \"GET\"\npath = \"/hello\"\nplugin = \"echo\"\nhandler = \"respond\"\nsettings = {{ body = \"{body}\" }}\n",
        echo_plugin_block()
    )
}

#[test]
fn editing_the_config_reloads_and_temp_files_caches_and_logs_do_not() {
    let server = start(&echo_config("first"), &[]);
    let text = |body: &[u8]| String::from_utf8_lossy(body).into_owned();
    wait_for(&server, "first", text);
    let dir = server.config_path().parent().expect("dir").to_path_buf();
    let write = |name: &str| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, "x").expect("write");
    };
    // What editors, CPython and a redirected log leave beside the config: none of it is a
    // change, so the reload names the config alone ("X and N other files changed" would
    // list them). A rebuilt echo library would be a legitimate reload of its own.
    for name in [
        ".spikard.toml.swp",
        "spikard.toml~",
        "#spikard.toml#",
        "4913",
        "server.log",
        "__pycache__/app.cpython-312.pyc",
        ".git/index",
    ] {
        write(name);
    }
    std::fs::write(server.config_path(), echo_config("second")).expect("edit the config");
    wait_for(&server, "second", text);
    let log = server.log();
    let reloads: Vec<&str> = log.lines().filter(|l| l.contains(": reloading ")).collect();
    assert!(
        reloads
            .iter()
            .any(|l| l.contains("spikard.toml changed: reloading")),
        "{log}"
    );
    for line in reloads {
        // What changed, before the config path: the config itself, or (a build running
        // beside the test) the echo library.
        let what = line.split(": reloading ").next().unwrap_or(line);
        assert!(
            what.ends_with(" spikard.toml changed") || what.contains("libspikard_echo"),
            "{line}"
        );
    }
}
