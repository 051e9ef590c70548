//! The process model (issue 10), end to end: a supervisor with worker processes on one
//! shared socket. Both workers serve; a worker killed with SIGKILL under load is logged with
//! its signal and replaced; SIGHUP under load swaps the config (a canned body, or the
//! runtime behind a route: echo-rust → Python) with zero failed requests; an invalid config
//! leaves the old generation serving; SIGTERM drains in-flight requests within the grace
//! period; readiness answers 503 while a worker drains.
//!
//! "Failed" is counted the way HTTP clients count it: a request sent on a reused keep-alive
//! connection that the server closed before sending a single byte back is retried once on a
//! new connection (RFC 9112 §9.3.1; every HTTP client library does this for idempotent
//! requests), because that race — the client sends as the server closes an idle connection
//! — is inherent to HTTP/1.1 and not a lost request. Anything else is a failure. A reload
//! does not even need the retry: draining workers answer with `Connection: close`.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use spikard_tests::{echo_plugin_block, repo_root, RawConn, Server};

/// Grace period of these tests.
const GRACE_MS: u64 = 1000;
/// How long a replacement for a killed worker may take to serve (echo starts in ~20 ms in a
/// debug build; the bound leaves room for a loaded machine).
const REPLACEMENT_BOUND: Duration = Duration::from_secs(5);

/// A config with `processes = 2`, one tokio thread per worker, and `GET /hello` answering
/// `body` through the echo plugin.
fn config(body: &str, extra_server: &str, extra_routes: &str) -> String {
    format!(
        "[server]\nprocesses = 2\nworkers = 1\nshutdown_timeout_ms = {GRACE_MS}\n{extra_server}\n{}\n[[routes]]\nmethod = \"GET\"\npath = \"/hello\"\nplugin = \"echo\"\nhandler = \"respond\"\nsettings = {{ body = \"{body}\" }}\n{extra_routes}",
        echo_plugin_block()
    )
}

/// The worker pids the supervisor logged as ready for the first generation.
fn first_workers(server: &Server) -> Vec<u32> {
    server.wait_for_log("worker process(es) ready (pids [");
    let log = server.log();
    let list = log
        .split("worker process(es) ready (pids [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("pid list");
    list.split(',')
        .map(|p| p.trim().parse().expect("pid"))
        .collect()
}

/// The distinct `worker=PID` values of the access lines logged so far.
fn pids_in_access_log(log: &str) -> BTreeSet<u32> {
    log.lines()
        .filter(|l| l.contains("spikard::access"))
        .filter_map(|l| l.split("worker=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// What one load thread saw.
#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    /// Stale keep-alive connections retried (not failures).
    retried: u64,
    failures: Vec<String>,
    /// Response bodies in order (status 200 only).
    bodies: Vec<String>,
}

/// One request on `conn` (opened when `None`); `Err` says why it failed, `Ok(None)` that it
/// was sent on a reused connection the server closed without a byte of answer (retry it).
fn one(
    addr: std::net::SocketAddr,
    conn: &mut Option<RawConn>,
    keep_alive: bool,
) -> Result<Option<(u16, String)>, String> {
    let reused = conn.is_some();
    if conn.is_none() {
        *conn = Some(RawConn::connect(addr).map_err(|e| format!("connect: {e}"))?);
    }
    let c = conn.as_mut().expect("connected");
    let head = if keep_alive {
        "GET /hello HTTP/1.1\r\nhost: x\r\n\r\n"
    } else {
        "GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    };
    let sent = c.send(head.as_bytes());
    let answer = match sent {
        Ok(()) => c.read_response(Instant::now() + Duration::from_secs(10), 1 << 20),
        Err(e) => Err(format!("send: {e} (0 bytes received)")),
    };
    match answer {
        Ok(response) => {
            let closing = !keep_alive
                || response
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            if closing {
                *conn = None;
            }
            Ok(Some((response.status, response.text())))
        }
        Err(e) => {
            *conn = None;
            let nothing_came = e.contains("without a response") || e.contains("(0 bytes received)");
            if reused && nothing_came {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// Sends `GET /hello` in a loop until `stop` (or 30 s), on one kept-alive connection or a
/// new connection per request.
fn load(addr: std::net::SocketAddr, keep_alive: bool, stop: Arc<AtomicBool>) -> JoinHandle<Tally> {
    std::thread::spawn(move || {
        let mut tally = Tally::default();
        let mut conn = None;
        let give_up = Instant::now() + Duration::from_secs(30);
        while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
            let mut result = one(addr, &mut conn, keep_alive);
            if matches!(result, Ok(None)) {
                tally.retried += 1;
                result = one(addr, &mut conn, keep_alive);
            }
            match result {
                Ok(Some((200, body))) => {
                    tally.ok += 1;
                    tally.bodies.push(body);
                }
                Ok(Some((status, body))) => tally.failures.push(format!("status {status}: {body}")),
                Ok(None) => tally.failures.push("closed twice without an answer".into()),
                Err(e) => {
                    tally.failures.push(e);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        tally
    })
}

/// Runs `clients` load threads (half keep-alive, half new connections) around `during`.
fn under_load(server: &Server, clients: usize, during: impl FnOnce()) -> Vec<Tally> {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|i| load(server.addr, i % 2 == 0, stop.clone()))
        .collect();
    during();
    stop.store(true, Ordering::Relaxed);
    threads
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .collect()
}

#[test]
fn both_workers_serve_and_access_lines_name_them() {
    let server = Server::start(&config("hi", "", ""));
    let workers: BTreeSet<u32> = first_workers(&server).into_iter().collect();
    assert_eq!(workers.len(), 2, "{}", server.log());
    assert!(
        !workers.contains(&server.pid()),
        "the supervisor serves nothing"
    );
    // New connections from a few threads: the shared accept queue hands them to both.
    let tallies = under_load(&server, 4, || {
        std::thread::sleep(Duration::from_millis(800))
    });
    let ok: u64 = tallies.iter().map(|t| t.ok).sum();
    assert!(ok > 20, "{tallies:?}");
    assert!(tallies.iter().all(|t| t.failures.is_empty()), "{tallies:?}");
    std::thread::sleep(Duration::from_millis(100));
    let seen = pids_in_access_log(&server.log());
    assert_eq!(
        seen, workers,
        "requests served by {seen:?}; workers {workers:?}"
    );
}

#[test]
fn a_killed_worker_is_logged_and_replaced_under_load() {
    const CLIENTS: usize = 4;
    let server = Server::start(&config("hi", "", ""));
    let workers = first_workers(&server);
    let mut victim = workers[0];
    let mut replacement = None;
    let tallies = under_load(&server, CLIENTS, || {
        std::thread::sleep(Duration::from_millis(400));
        // The busiest worker: it holds kept-alive connections with requests in flight.
        let log = server.log();
        victim = *workers
            .iter()
            .max_by_key(|pid| log.matches(&format!("worker={pid}")).count())
            .expect("workers");
        // SAFETY: kill sends a signal to the worker process this test started.
        assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
        let killed = Instant::now();
        server.wait_for_log(&format!("worker {victim} exited (signal SIGKILL)"));
        let deadline = killed + REPLACEMENT_BOUND;
        while Instant::now() < deadline {
            let log = server.log();
            let started = log
                .split("started to replace one that exited")
                .next()
                .and_then(|before| before.rsplit("worker ").next())
                .and_then(|pid| pid.trim().parse::<u32>().ok());
            if let Some(pid) = started {
                if log.contains(&format!("worker {pid} ready (replacement")) {
                    replacement = Some(pid);
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(1200));
    });
    let log = server.log();
    let replacement = replacement
        .unwrap_or_else(|| panic!("no replacement ready within {REPLACEMENT_BOUND:?}:\n{log}"));
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    let ok: u64 = tallies.iter().map(|t| t.ok).sum();
    let retried: u64 = tallies.iter().map(|t| t.retried).sum();
    eprintln!("{ok} ok, {retried} reset connections retried, failures {failures:?}");
    // Each client has at most one request in flight: at most CLIENTS were on the victim,
    // whether the client saw the reset as a failure or (nothing received) retried it.
    assert!(
        failures.len() + retried as usize <= CLIENTS,
        "{failures:?}, {retried} retried"
    );
    assert!(ok > 50, "{tallies:?}");
    // The exit line names the pid, the signal and the uptime.
    let line = log
        .lines()
        .find(|l| l.contains(&format!("worker {victim} exited (signal SIGKILL) after")))
        .expect("exit line");
    assert!(line.contains("starting a replacement"), "{line}");
    // The replacement serves: new connections reach it.
    let mut served = false;
    for _ in 0..400 {
        let mut conn = None;
        assert!(matches!(
            one(server.addr, &mut conn, false),
            Ok(Some((200, _)))
        ));
        if pids_in_access_log(&server.log()).contains(&replacement) {
            served = true;
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    served |= pids_in_access_log(&server.log()).contains(&replacement);
    assert!(
        served,
        "replacement {replacement} never served:\n{}",
        server.log()
    );
}

/// Rewrites the config, sends SIGHUP under load, and checks that no request failed and that
/// the answers switched from `old` to `new` (as each load thread saw them, in order).
fn reload_under_load(server: &Server, new_config: &str, old: &str, new: &str, wait_for: Duration) {
    let tallies = under_load(server, 6, || {
        std::thread::sleep(Duration::from_millis(400));
        std::fs::write(server.config_path(), new_config).expect("rewrite the config");
        server.signal("HUP");
        let deadline = Instant::now() + wait_for;
        while Instant::now() < deadline && !server.log().contains("reload: generation 2 ready") {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            server.log().contains("reload: generation 2 ready"),
            "{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(800));
    });
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    let sent: u64 = tallies.iter().map(|t| t.ok).sum();
    let retried: u64 = tallies.iter().map(|t| t.retried).sum();
    eprintln!(
        "{sent} answered, {} failed, {retried} stale keep-alive retries",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}\n{}", server.log());
    // A draining worker answers busy clients with `Connection: close` instead of closing
    // under them, so not even the retry a client library would make is needed.
    assert_eq!(retried, 0, "stale keep-alive connections at the reload");
    for tally in &tallies {
        let first = tally.bodies.first().expect("answers before the reload");
        let last = tally.bodies.last().expect("answers after the reload");
        assert!(first.contains(old), "first answer {first:?}");
        assert!(last.contains(new), "last answer {last:?}");
        // Once a thread saw the new config it never sees the old one again... except on a
        // kept-alive connection to an old worker still finishing; so only check the order.
        let switched = tally
            .bodies
            .iter()
            .position(|b| b.contains(new))
            .expect("new");
        assert!(tally.bodies[..switched].iter().all(|b| b.contains(old)));
    }
}

#[test]
fn sighup_under_load_swaps_the_config_with_zero_failed_requests() {
    let server = Server::start(&config("old-body", "", ""));
    let old_workers = first_workers(&server);
    reload_under_load(
        &server,
        &config("new-body", "", ""),
        "old-body",
        "new-body",
        Duration::from_secs(10),
    );
    for pid in old_workers {
        server.wait_for_log(&format!(
            "worker {pid} (generation 1) exited (exit status 0) after draining"
        ));
    }
}

#[test]
fn sighup_swaps_a_route_from_echo_to_python_with_zero_failed_requests() {
    let python = spikard_tests::target_dir().join("libspikard_python.so");
    let venv = repo_root().join(".venv");
    if !python.exists() || !venv.exists() {
        eprintln!(
            "skipped: needs the Python plugin and .venv (cargo build --workspace; see README)"
        );
        return;
    }
    let server = Server::start(&config("from-echo", "", ""));
    let app_dir = server.config_path().parent().expect("dir").to_path_buf();
    std::fs::write(
        app_dir.join("swapapp.py"),
        "from spikard import App\n\napp = App()\n\n\n@app.get(\"/hello\")\nasync def hello() -> dict[str, str]:\n    return {\"from\": \"from-python\"}\n",
    )
    .expect("write the app");
    let python_config = format!(
        "[server]\nprocesses = 2\nworkers = 1\nshutdown_timeout_ms = {GRACE_MS}\n\n[[plugins]]\nname = \"py\"\nlibrary = \"{}\"\nsettings = {{ app = \"swapapp:app\", python_path = [\"{}\", \"{}\"], venv = \"{}\" }}\n",
        python.display(),
        app_dir.display(),
        repo_root().join("plugins/python").display(),
        venv.display()
    );
    reload_under_load(
        &server,
        &python_config,
        "from-echo",
        "from-python",
        Duration::from_secs(60),
    );
}

#[test]
fn an_invalid_config_leaves_the_old_generation_serving() {
    let server = Server::start(&config("still-old", "", ""));
    // Valid TOML, but the plugin refuses the handler: only `--check` (loading the plugin)
    // finds that.
    let broken =
        config("new", "", "").replace("handler = \"respond\"", "handler = \"no_such_handler\"");
    std::fs::write(server.config_path(), broken).expect("rewrite");
    server.signal("HUP");
    server.wait_for_log("reload refused: ");
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("reload refused: "))
        .expect("line");
    assert!(
        line.contains("spikard.toml") && line.contains("no_such_handler"),
        "{line}"
    );
    assert!(line.contains("still serving generation 1"), "{line}");
    let mut conn = None;
    assert!(
        matches!(one(server.addr, &mut conn, false), Ok(Some((200, body))) if body == "still-old")
    );
    // A TOML mistake: refused too, with its file:line.
    std::fs::write(server.config_path(), "[server\n").expect("rewrite");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log().matches("reload refused: ").count() < 2 {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.log().contains("spikard.toml:1:"), "{}", server.log());
    let mut conn = None;
    assert!(
        matches!(one(server.addr, &mut conn, false), Ok(Some((200, body))) if body == "still-old")
    );
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_within_the_grace_period() {
    let slow = "[[routes]]\nmethod = \"GET\"\npath = \"/slow\"\nplugin = \"echo\"\nhandler = \"delay\"\nsettings = { delay_ms = 600, body = \"slow-done\" }\n";
    let mut server = Server::start(&config("hi", "", slow));
    first_workers(&server);
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || {
        let mut conn = RawConn::connect(addr).expect("connect");
        conn.send(b"GET /slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .expect("send");
        conn.read_response(Instant::now() + Duration::from_secs(10), 1 << 20)
    });
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10));
    let took = sent.elapsed();
    let response = in_flight
        .join()
        .expect("thread")
        .expect("the in-flight request is answered");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "slow-done")
    );
    assert_eq!(status.signal(), None, "{status:?}\n{}", server.log());
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(
        took <= Duration::from_millis(GRACE_MS + 1000),
        "exited after {took:?}\n{}",
        server.log()
    );
    assert!(server.log().contains("SIGTERM: stopping 2 worker(s)"));
}

#[test]
fn readiness_is_503_while_draining_and_liveness_stays_200() {
    let extra = "health_path = \"/healthz\"\nready_path = \"/ready\"\ndrain_delay_ms = 1500\nproblem_type_base = \"https://example.com/errors/\"\n";
    let mut server = Server::start(&config("hi", extra, ""));
    first_workers(&server);
    let get = |path: &str| {
        let mut conn = RawConn::connect(server.addr).expect("connect");
        conn.send(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .expect("send");
        conn.read_response(Instant::now() + Duration::from_secs(5), 1 << 20)
            .expect("response")
    };
    assert_eq!(get("/ready").status, 200);
    assert_eq!(get("/healthz").status, 200);
    server.signal("TERM");
    server.wait_for_log("draining: readiness answers 503");
    std::thread::sleep(Duration::from_millis(100));
    let ready = get("/ready");
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(
        ready.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(ready.json()["type"], "https://example.com/errors/draining");
    assert_eq!(get("/healthz").status, 200);
    // Routes are still served while the load balancer takes the process out.
    assert_eq!(get("/hello").text(), "hi");
    let status = server.wait_exit(Duration::from_millis(1500 + GRACE_MS + 1500));
    assert_eq!(status.code(), Some(0), "{}", server.log());
}

#[test]
fn a_first_generation_that_cannot_start_exits_2_with_its_error_once() {
    let broken =
        config("x", "", "").replace("handler = \"respond\"", "handler = \"no_such_handler\"");
    let run = spikard_tests::run_host(&broken, &["--listen", "127.0.0.1:0"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("spikard-host: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(errors[0].contains("no_such_handler"), "{}", errors[0]);
}
