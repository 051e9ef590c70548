//! The hosts the attacks run against: their config, how they are started (optionally with a
//! low descriptor limit), the `/hello` liveness check and the memory watch.

use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use spikard_tests::{echo_plugin_block, run_host_file, vm_rss_kib, RawConn, Server, TempDir};

/// A resource case fails when the host's RSS grows by this much or more.
pub const RSS_BOUND_MB: u64 = 40;

/// Past this growth the suite kills the host rather than let it take the machine down (an
/// unbounded host reached 17 GB on the multipart case).
const RSS_KILL_MB: u64 = 512;

/// `[server]` timeouts of every host, in ms: header read, keep-alive idle, body read.
pub const CONNECTION_TIMEOUT_MS: u64 = 1000;

/// The keys of the connection work (issue 8 item 2/3); a host that does not know them yet
/// is run without them, and the cases that need them fail.
const CONNECTION_KEYS: [&str; 4] = [
    "header_read_timeout_ms",
    "keepalive_timeout_ms",
    "body_read_timeout_ms",
    "max_connections",
];

/// Which host a group needs.
#[derive(Debug, Clone, Copy)]
pub enum HostSpec {
    /// The attack config as is.
    Main,
    /// With `max_connections` set.
    MaxConnections(u32),
    /// Started with soft and hard `RLIMIT_NOFILE` set to this.
    NoFile(u64),
}

/// Whether the host binary accepts the connection keys, decided once per run.
pub struct Setup {
    connection_keys: bool,
    /// Why the suite runs without them, printed before the table.
    pub note: Option<String>,
}

impl Setup {
    /// Checks the attack config with `--check`; when the host refuses one of the connection
    /// keys, falls back to a config without them.
    pub fn detect() -> Setup {
        let dir = TempDir::new("hostile-check");
        dir.write(INT_QUERY_FILE, INT_QUERY_SCHEMA);
        let path = dir.write("spikard.toml", &config(&HostSpec::Main, true));
        let checked = run_host_file(&path, &["--check"]);
        if checked.status.success() {
            return Setup {
                connection_keys: true,
                note: None,
            };
        }
        let refusal = checked.stderr.trim().to_owned();
        if CONNECTION_KEYS.iter().any(|k| refusal.contains(k)) {
            Setup {
                connection_keys: false,
                note: Some(format!(
                    "the host refuses the connection keys ({refusal}); running without them"
                )),
            }
        } else {
            Setup {
                connection_keys: true,
                note: Some(format!("the host refuses the attack config: {refusal}")),
            }
        }
    }
}

/// The attack config: routes for every case, a 2 MiB body limit, 1 s connection timeouts.
pub fn config(spec: &HostSpec, connection_keys: bool) -> String {
    let mut server = String::from(
        "[server]\nproblem_type_base = \"https://spikard.dev/errors/\"\nbody_limit = \"2MiB\"\n\
         request_timeout_ms = 5000\nshutdown_timeout_ms = 1000\naccess_log = false\n",
    );
    if connection_keys {
        let t = CONNECTION_TIMEOUT_MS;
        server.push_str(&format!(
            "header_read_timeout_ms = {t}\nkeepalive_timeout_ms = {t}\nbody_read_timeout_ms = {t}\n"
        ));
        if let HostSpec::MaxConnections(n) = spec {
            server.push_str(&format!("max_connections = {n}\n"));
        }
    }
    format!("{server}\n{}\n{ROUTES}", echo_plugin_block())
}

/// Where [`INT_QUERY_SCHEMA`] is written, beside the config.
const INT_QUERY_FILE: &str = "int_query.json";

/// A query schema whose `maximum` does not fit in 64 bits nor exactly in a double.
pub const INT_QUERY_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "q": {"type": "integer"},
    "m": {"type": "integer", "maximum": 99999999999999999999999}
  }
}"#;

const ROUTES: &str = r#"
[[routes]]
method = "GET"
path = "/hello"
plugin = "echo"
handler = "respond"
settings = { body = { message = "Hello" } }

[[routes]]
method = "GET"
path = "/slow"
plugin = "echo"
handler = "delay"
settings = { delay_ms = 100, body = { done = true } }

# Unknown properties are errors: JSON, urlencoded and multipart bodies.
[[routes]]
method = "POST"
path = "/strict"
plugin = "echo"
handler = "echo"
[routes.body]
type = "object"
properties = { name = { type = "string" } }
additionalProperties = false

[[routes]]
method = "GET"
path = "/strictq"
plugin = "echo"
handler = "echo"
[routes.params.query]
type = "object"
properties = { q = { type = "string" } }
additionalProperties = false

[[routes]]
method = "POST"
path = "/small"
plugin = "echo"
handler = "echo"
body_limit = 1024

[[routes]]
method = "GET"
path = "/int/{n}"
plugin = "echo"
handler = "echo"
[routes.params]
query = "int_query.json"
[routes.params.path]
type = "object"
properties = { n = { type = "integer" } }
required = ["n"]

[[routes]]
method = "POST"
path = "/intbody"
plugin = "echo"
handler = "echo"
[routes.body]
type = "object"
properties = { b = { type = "integer" } }
required = ["b"]

[[routes]]
method = "GET"
path = "/utf/{s}"
plugin = "echo"
handler = "echo"
[routes.params.path]
type = "object"
properties = { s = { type = "string" } }
required = ["s"]
[routes.params.query]
type = "object"
properties = { s = { type = "string" } }
[routes.params.headers]
type = "object"
properties = { x-s = { type = "string" } }
[routes.params.cookies]
type = "object"
properties = { c = { type = "string" } }

# Nested quantifiers; the second also needs a backtracking engine (a backreference).
[[routes]]
method = "GET"
path = "/re"
plugin = "echo"
handler = "echo"
[routes.params.query]
type = "object"
properties = { s = { type = "string", pattern = "^(a+)+$" }, t = { type = "string", pattern = "^(a+)+\\1$" } }
"#;

/// Starts the host a group needs.
pub fn start(spec: &HostSpec, setup: &Setup) -> Result<Server, String> {
    let text = config(spec, setup.connection_keys);
    let files = [(INT_QUERY_FILE, INT_QUERY_SCHEMA)];
    match *spec {
        HostSpec::NoFile(limit) => Server::try_start(&text, &files, |command| {
            // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }),
        _ => Server::try_start(&text, &files, |_| {}),
    }
}

/// One request before the cases, so that lazily allocated state is in the RSS baseline.
pub fn warm_up(server: &Server) {
    for _ in 0..3 {
        let _ = hello(server, Duration::from_secs(5));
    }
}

/// `GET /hello` on a fresh connection: `Err` says what came instead of a 200 `Hello`.
pub fn hello(server: &Server, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut conn = RawConn::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(b"GET /hello HTTP/1.1\r\nhost: hostile\r\nconnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let response = conn.read_response(deadline, 64 << 10)?;
    if response.status == 200 && response.text().contains("Hello") {
        Ok(())
    } else {
        Err(format!(
            "{} {}",
            response.status,
            crate::wire::snippet(&response.body)
        ))
    }
}

/// Raises this process's soft descriptor limit to the hard one: the connection cases hold
/// several hundred sockets at once.
pub fn raise_own_fd_limit() {
    let mut rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit) == 0 {
            rlimit.rlim_cur = rlimit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit);
        }
    }
}

/// Samples the host's RSS every few ms during a case, keeping the peak; kills the host past
/// [`RSS_KILL_MB`] of growth.
pub struct RssWatch {
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<(u64, bool)>,
    baseline: u64,
}

/// What an [`RssWatch`] saw.
pub struct RssReport {
    /// Peak RSS minus the RSS before the case, in MB (10^6 bytes).
    pub delta_mb: f64,
    /// Whether the host was killed for growing past the kill limit.
    pub killed: bool,
}

impl RssWatch {
    /// Starts watching process `pid` from its current RSS.
    pub fn start(pid: u32) -> RssWatch {
        let baseline = vm_rss_kib(pid).unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = baseline;
            // Bounded: a case never runs past a minute.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Some(rss) = vm_rss_kib(pid) else {
                    return (peak, false);
                };
                peak = peak.max(rss);
                if peak.saturating_sub(baseline) > RSS_KILL_MB * 1_000_000 / 1024 {
                    // SAFETY: a signal to the host this suite started.
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    }
                    return (peak, true);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // One last sample: the case may have ended between two.
            (peak.max(vm_rss_kib(pid).unwrap_or(0)), false)
        });
        RssWatch {
            stop,
            sampler,
            baseline,
        }
    }

    /// Stops watching.
    pub fn finish(self) -> RssReport {
        self.stop.store(true, Ordering::Relaxed);
        let (peak, killed) = self.sampler.join().expect("RSS sampler");
        RssReport {
            delta_mb: peak.saturating_sub(self.baseline) as f64 * 1024.0 / 1e6,
            killed,
        }
    }
}
