//! The plugin's `settings` table: which app to serve, where to find it and
//! how to run it. Every error names the setting and the fix, starting with
//! `settings.` so the host shows the full config path.

use std::path::{Path, PathBuf};

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
    /// A virtual environment whose packages are made importable.
    pub venv: Option<PathBuf>,
    /// The async bridge.
    pub bridge: BridgeKind,
    /// Python threads for `def` handlers.
    pub sync_workers: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    app: Option<String>,
    python_path: Option<Vec<String>>,
    venv: Option<String>,
    bridge: Option<String>,
    sync_workers: Option<usize>,
}

/// Default size of the pool for `def` handlers.
pub const DEFAULT_SYNC_WORKERS: usize = 4;

/// Parses the settings JSON; relative paths are relative to `config_dir`.
pub fn parse(json: &str, config_dir: &Path) -> Result<Settings, String> {
    let raw: Raw = serde_json::from_str(json).map_err(|e| {
        format!("settings: {e}; the python plugin takes app, python_path, venv, bridge and sync_workers")
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
    Ok(Settings {
        module,
        attribute,
        python_path,
        venv,
        bridge,
        sync_workers,
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
    }
}
