//! Reloading on SIGHUP: what is checked before a new generation of workers starts.
//!
//! The config file is read again and checked by running this binary with `--check` on it,
//! as a child process: that catches config mistakes, a plugin that fails `init` and an
//! application that fails to import, without touching the serving workers. Only a config
//! that passes starts a new generation. Changing `server.listen` needs a restart (the
//! workers share the socket the supervisor bound at start-up); a reload that changes it is
//! logged and served on the old address.

use std::net::SocketAddr;
use std::path::Path;

use crate::config;

/// What a checked config asks of the next generation.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Worker processes.
    pub processes: usize,
    /// Grace period plus drain delay: how long a draining worker may take.
    pub grace: std::time::Duration,
    /// What `--reload` watches under this config.
    pub watch: super::watch::WatchSet,
}

/// Reads and checks `config_file` for a reload; `Err` is the one-line error to log.
/// `listening` is the address the supervisor serves; `processes` overrides the config's
/// `server.processes` when given on the command line; `reloading`: under `--reload`.
pub async fn check(
    exe: &Path,
    config_file: &Path,
    listening: SocketAddr,
    listen_override: bool,
    processes: Option<config::Processes>,
    reloading: bool,
) -> Result<Plan, String> {
    let config = config::load(config_file).map_err(|e| e.to_string())?;
    if !listen_override && !same_address(config.server.listen, listening) {
        tracing::warn!(
            "reload: server.listen changed to {} in {}; changing the address needs a restart, still listening on {listening}",
            config.server.listen,
            config_file.display()
        );
    }
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("--config")
        .arg(config_file)
        .arg("--check")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if reloading {
        super::watch::fresh_sources(&mut command);
    }
    let output = command
        .output()
        .await
        .map_err(|e| format!("cannot run {} --check: {e}", exe.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("spikard-host: error: "))
            .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
            .unwrap_or("the check failed without a message")
            .to_owned();
        return Err(line);
    }
    let count = processes
        .or(config.server.process.processes)
        .map_or(1, config::Processes::count);
    Ok(Plan {
        processes: count.max(1),
        grace: config.server.shutdown_timeout + config.server.process.drain_delay,
        watch: super::watch::WatchSet::of(config_file, &config),
    })
}

/// Whether `configured` names the socket bound at `bound` (port 0 picks any port).
fn same_address(configured: SocketAddr, bound: SocketAddr) -> bool {
    configured.ip() == bound.ip() && (configured.port() == 0 || configured.port() == bound.port())
}
