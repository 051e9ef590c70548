//! The plugin's `settings` table: which app to serve, where to find it and
//! how to run it. Every error names the setting and the fix, starting with
//! `settings.` so the host shows the full config path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How `async def` handlers reach the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeKind {
    /// Requests queued for the loop thread, drained in batches under one GIL
    /// acquisition, coroutines started eagerly. The default.
    Queue,
    /// Each coroutine turned into a Rust future with
    /// `pyo3_async_runtimes::into_future_with_locals` and awaited on a tokio
    /// runtime of the plugin's own.
    IntoFuture,
}

/// Checked settings.
#[derive(Debug)]
pub struct Settings {
    /// `module.path` of `module.path:attribute`.
    pub module: String,
    /// `attribute` of `module.path:attribute`.
    pub attribute: String,
    /// Directories put first on `sys.path`, absolute.
    pub python_path: Vec<PathBuf>,
    /// The virtual environment the interpreter runs in, as its own `python`
    /// would (see `interpreter::initialize`).
    pub venv: Option<PathBuf>,
    /// The async bridge.
    pub bridge: BridgeKind,
    /// Python threads for `def` handlers.
    pub sync_workers: usize,
    /// Bounds of the event loop's queue (and of the `into_future`
    /// bridge's outstanding requests); a request that does not fit is
    /// answered 503.
    pub bounds: Bounds,
    /// Bounds of the sync pool's queue: `max_pending` when set, else
    /// [`SYNC_PENDING_PER_WORKER`] per worker (at most `bounds`), so a full
    /// queue drains in about 64 handler durations.
    pub sync_bounds: Bounds,
    /// The event loop blocked longer than this is logged, naming the
    /// handler; `None` turns the watchdog off (`loop_stall_warning_ms = 0`).
    pub loop_stall_warning: Option<Duration>,
    /// Nesting limit of `Request.json()`, the host's `server.max_json_depth`
    /// for bodies it parses itself.
    pub max_json_depth: usize,
}

/// How much work may wait in one queue before new requests are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Requests waiting.
    pub max_pending: usize,
    /// Bytes of their bodies and parameters.
    pub max_pending_bytes: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    app: Option<String>,
    python_path: Option<Vec<String>>,
    venv: Option<String>,
    bridge: Option<String>,
    sync_workers: Option<usize>,
    max_pending: Option<usize>,
    max_pending_bytes: Option<usize>,
    loop_stall_warning_ms: Option<u64>,
    max_json_depth: Option<usize>,
}

/// Default size of the pool for `def` handlers.
pub const DEFAULT_SYNC_WORKERS: usize = 4;

/// Default depth of the sync pool's queue per worker.
pub const SYNC_PENDING_PER_WORKER: usize = 64;

/// Default `loop_stall_warning_ms`: asyncio's own slow-callback threshold.
pub const DEFAULT_LOOP_STALL_WARNING_MS: u64 = 100;

/// Default `max_json_depth`, the host's default `server.max_json_depth`.
pub const DEFAULT_MAX_JSON_DEPTH: usize = 32;

/// The host's largest `max_json_depth`.
const MAX_JSON_DEPTH: usize = 127;

/// Default bounds, sized from the machine: 256 requests per core (at least
/// 512, at most 8192) and 1/64 of the physical memory (32 MiB to 256 MiB),
/// so a stalled loop or pool costs a bounded share of the machine.
pub fn default_bounds() -> Bounds {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: sysconf only reads system configuration.
    let memory = unsafe {
        let pages = libc::sysconf(libc::_SC_PHYS_PAGES);
        let page = libc::sysconf(libc::_SC_PAGESIZE);
        if pages > 0 && page > 0 {
            (pages as u64).saturating_mul(page as u64)
        } else {
            0
        }
    };
    Bounds {
        max_pending: (cores * 256).clamp(512, 8192),
        max_pending_bytes: usize::try_from(memory / 64)
            .unwrap_or(usize::MAX)
            .clamp(32 << 20, 256 << 20),
    }
}

/// Parses the settings JSON; relative paths are relative to `config_dir`.
pub fn parse(json: &str, config_dir: &Path) -> Result<Settings, String> {
    let raw: Raw = serde_json::from_str(json).map_err(|e| {
        format!("settings: {e}; the python plugin takes app, python_path, venv, bridge, sync_workers, max_pending, max_pending_bytes, loop_stall_warning_ms and max_json_depth")
    })?;
    let app = raw.app.ok_or(
        "settings.app is missing; name the App to serve, e.g. app = \"examples.app:app\" (module:attribute)",
    )?;
    let (module, attribute) = match app.split_once(':') {
        Some((m, a)) if !m.trim().is_empty() && !a.trim().is_empty() => {
            (m.trim().to_owned(), a.trim().to_owned())
        }
        _ => {
            return Err(format!(
            "settings.app = {app:?} is not module:attribute; write e.g. app = \"examples.app:app\""
        ))
        }
    };
    let python_path = match raw.python_path {
        None => vec![config_dir.to_path_buf()],
        Some(paths) => paths.iter().map(|p| config_dir.join(p)).collect(),
    };
    let venv = raw
        .venv
        .map(|v| config_dir.join(v))
        .or_else(|| std::env::var_os("VIRTUAL_ENV").map(PathBuf::from));
    if let Some(venv) = &venv {
        if !venv.is_dir() {
            return Err(format!(
                "settings.venv: {} is not a directory; create the virtual environment (python3 -m venv {}) or fix settings.venv / VIRTUAL_ENV",
                venv.display(),
                venv.display()
            ));
        }
    }
    let bridge = match raw.bridge.as_deref() {
        None | Some("queue") => BridgeKind::Queue,
        Some("into_future") => BridgeKind::IntoFuture,
        Some(other) => {
            return Err(format!(
                "settings.bridge = {other:?} is unknown; use \"queue\" (the default) or \"into_future\""
            ))
        }
    };
    let sync_workers = match raw.sync_workers {
        None => DEFAULT_SYNC_WORKERS,
        Some(0) => return Err("settings.sync_workers must be at least 1".into()),
        Some(n) => n,
    };
    let defaults = default_bounds();
    let bounds = Bounds {
        max_pending: match raw.max_pending {
            None => defaults.max_pending,
            Some(0) => return Err("settings.max_pending must be at least 1 (requests waiting per queue before new ones get a 503)".into()),
            Some(n) => n,
        },
        max_pending_bytes: match raw.max_pending_bytes {
            None => defaults.max_pending_bytes,
            Some(n) if n < 1024 => return Err("settings.max_pending_bytes must be at least 1024 (bytes of bodies waiting per queue before new requests get a 503)".into()),
            Some(n) => n,
        },
    };
    let sync_bounds = Bounds {
        max_pending: match raw.max_pending {
            Some(_) => bounds.max_pending,
            None => bounds
                .max_pending
                .min(sync_workers.saturating_mul(SYNC_PENDING_PER_WORKER)),
        },
        ..bounds
    };
    let loop_stall_warning = match raw.loop_stall_warning_ms {
        None => Some(Duration::from_millis(DEFAULT_LOOP_STALL_WARNING_MS)),
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
    };
    let max_json_depth = match raw.max_json_depth {
        None => DEFAULT_MAX_JSON_DEPTH,
        Some(n) if (1..=MAX_JSON_DEPTH).contains(&n) => n,
        Some(_) => {
            return Err(format!(
                "settings.max_json_depth must be between 1 and {MAX_JSON_DEPTH}; use the host's server.max_json_depth"
            ))
        }
    };
    Ok(Settings {
        module,
        attribute,
        python_path,
        venv,
        bridge,
        sync_workers,
        bounds,
        sync_bounds,
        loop_stall_warning,
        max_json_depth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_and_paths() {
        let s = parse(
            r#"{"app": "examples.app:app", "python_path": ["../py"]}"#,
            Path::new("/etc/spk"),
        )
        .unwrap();
        assert_eq!(
            (s.module.as_str(), s.attribute.as_str()),
            ("examples.app", "app")
        );
        assert_eq!(s.python_path, [PathBuf::from("/etc/spk/../py")]);
        assert_eq!(s.bridge, BridgeKind::Queue);
    }

    #[test]
    fn errors_name_the_setting() {
        let dir = Path::new("/");
        assert!(parse("{}", dir)
            .unwrap_err()
            .starts_with("settings.app is missing"));
        assert!(parse(r#"{"app": "nocolon"}"#, dir)
            .unwrap_err()
            .starts_with("settings.app ="));
        assert!(parse(r#"{"app": "a:b", "bridge": "x"}"#, dir)
            .unwrap_err()
            .starts_with("settings.bridge"));
        assert!(parse(r#"{"app": "a:b", "venv": "/nonexistent/venv"}"#, dir)
            .unwrap_err()
            .starts_with("settings.venv"));
        assert!(parse(r#"{"app": "a:b", "bogus": 1}"#, dir)
            .unwrap_err()
            .contains("unknown field `bogus`"));
        for bad in [
            r#"{"app": "a:b", "max_pending": 0}"#,
            r#"{"app": "a:b", "max_pending_bytes": 10}"#,
            r#"{"app": "a:b", "max_json_depth": 0}"#,
            r#"{"app": "a:b", "max_json_depth": 128}"#,
        ] {
            let field = bad.split('"').nth(5).unwrap();
            assert!(
                parse(bad, dir)
                    .unwrap_err()
                    .starts_with(&format!("settings.{field}")),
                "{bad}"
            );
        }
    }

    #[test]
    fn fault_settings_and_their_defaults() {
        let dir = Path::new("/");
        let s = parse(r#"{"app": "a:b"}"#, dir).unwrap();
        assert_eq!(s.bounds, default_bounds());
        assert!(s.bounds.max_pending >= 512 && s.bounds.max_pending_bytes >= 32 << 20);
        assert_eq!(s.sync_bounds.max_pending, 4 * SYNC_PENDING_PER_WORKER);
        assert_eq!(s.loop_stall_warning, Some(Duration::from_millis(100)));
        assert_eq!(s.max_json_depth, 32);
        let s = parse(
            r#"{"app": "a:b", "max_pending": 3, "max_pending_bytes": 4096, "loop_stall_warning_ms": 0, "max_json_depth": 5}"#,
            dir,
        )
        .unwrap();
        assert_eq!(
            s.bounds,
            Bounds {
                max_pending: 3,
                max_pending_bytes: 4096
            }
        );
        assert_eq!(s.sync_bounds, s.bounds);
        assert_eq!((s.loop_stall_warning, s.max_json_depth), (None, 5));
    }
}
