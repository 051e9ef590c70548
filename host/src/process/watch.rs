//! Dev auto-reload (`--reload`): the supervisor reloads, exactly as on SIGHUP, when a file the
//! served config depends on changes.
//!
//! What is watched ([`WatchSet`]) follows one rule for every plugin, whatever its language:
//! the config file, each plugin's library, and each plugin's `watch` list (files and
//! directories, relative to the config file), which defaults to the config file's directory
//! tree. Inside a directory tree only source, library and config files count
//! ([`SOURCE_EXTENSIONS`]); hidden files and directories, editor temp files (`#x#`, `x~`),
//! `__pycache__`, `node_modules`, `target`, `site-packages` and virtual environments (a
//! directory holding `pyvenv.cfg`) do not. A file named explicitly counts whatever its name.
//!
//! Changes are debounced: the reload starts [`DEBOUNCE`] after the last change (at most
//! [`MAX_DELAY`] after the first), so an editor's save, a `git checkout` or a build that
//! writes many files is one reload. Directories are watched one by one rather than with the
//! backend's recursive mode, so that a `.venv` or `target/` inside the tree costs nothing; a
//! directory created later inside a tree is added when it appears. A file is watched through
//! its directory, so that a save that replaces it (write a temp file, rename it over) and a
//! rebuilt library are seen too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::config::Config;

/// Quiet time after the last change before the reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// Longest wait after the first change of a burst that does not stop.
pub const MAX_DELAY: Duration = Duration::from_secs(3);
/// Directories watched at most (each costs an inotify watch); past it a warning names the
/// tree to narrow with `watch`.
const MAX_DIRECTORIES: usize = 4096;
/// The extensions that count inside a watched directory tree.
pub const SOURCE_EXTENSIONS: &[&str] = &[
    "py", "pyi", "pyx", "pxd", "so", "dylib", "dll", "toml", "json", "yaml", "yml", "js", "mjs",
    "cjs", "ts", "rb", "lua", "wasm",
];
/// Directory names never watched inside a tree (besides hidden ones).
const SKIPPED_DIRECTORIES: &[&str] = &["__pycache__", "node_modules", "target", "site-packages"];

/// The files and directory trees one config asks `--reload` to watch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchSet {
    /// Files that count by name: the config, the plugin libraries, files listed in `watch`.
    files: BTreeSet<PathBuf>,
    /// Directory trees whose source files count.
    trees: BTreeSet<PathBuf>,
    /// The config file's directory, to name changed files briefly in the log.
    base: PathBuf,
}

impl WatchSet {
    /// What `config` (read from `config_file`) asks to watch.
    pub fn of(config_file: &Path, config: &Config) -> WatchSet {
        let mut set = WatchSet::default();
        let config_file = normalize_file(config_file);
        set.base = config_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        set.files.insert(config_file);
        for plugin in &config.plugins {
            set.files.insert(normalize_file(&plugin.library));
            match &plugin.watch {
                None => {
                    set.trees.insert(normalize(&plugin.config_dir));
                }
                Some(paths) => {
                    for path in paths {
                        if path.is_dir() {
                            set.trees.insert(normalize(path));
                        } else {
                            set.files.insert(normalize_file(path));
                        }
                    }
                }
            }
        }
        set
    }

    /// Whether a change of `path` should reload.
    fn counts(&self, path: &Path) -> bool {
        self.files.contains(path)
            || self.trees.iter().any(|tree| {
                let Ok(relative) = path.strip_prefix(tree) else {
                    return false;
                };
                let mut names: Vec<&str> = relative
                    .components()
                    .map(|c| c.as_os_str().to_str().unwrap_or("."))
                    .collect();
                let Some(file) = names.pop() else {
                    return false;
                };
                names.iter().all(|name| !skipped_directory(name)) && is_source_file(file)
            })
    }

    /// Whether `dir` is a directory to watch inside one of the trees.
    fn in_tree(&self, dir: &Path) -> bool {
        self.trees.iter().any(|tree| {
            dir.strip_prefix(tree).is_ok_and(|relative| {
                relative
                    .components()
                    .all(|c| !skipped_directory(c.as_os_str().to_str().unwrap_or(".")))
            })
        }) && !dir.join("pyvenv.cfg").exists()
    }

    /// Every directory to watch: the files' directories and the trees' directories.
    fn directories(&self) -> BTreeSet<PathBuf> {
        let mut dirs: BTreeSet<PathBuf> = self
            .files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        for tree in &self.trees {
            if !walk(tree, &mut dirs, &mut Vec::new()) {
                tracing::warn!(
                    "--reload: watching only the first {MAX_DIRECTORIES} directories under {}; list narrower paths in the plugins' `watch`",
                    tree.display()
                );
            }
        }
        dirs
    }

    /// "app.py changed", "app.py and 2 other files changed".
    fn describe(&self, paths: &BTreeSet<PathBuf>) -> String {
        let Some(first) = paths.iter().next() else {
            return "files changed".to_owned();
        };
        let name = first.strip_prefix(&self.base).unwrap_or(first).display();
        match paths.len() {
            1 => format!("{name} changed"),
            2 => format!("{name} and 1 other file changed"),
            n => format!("{name} and {} other files changed", n - 1),
        }
    }
}

/// Adds `root` and its subdirectories worth watching to `dirs`; also collects the source
/// files found in `files`. False when [`MAX_DIRECTORIES`] cut the walk short.
fn walk(root: &Path, dirs: &mut BTreeSet<PathBuf>, files: &mut Vec<PathBuf>) -> bool {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dirs.len() >= MAX_DIRECTORIES {
            return false;
        }
        if dir != root && dir.join("pyvenv.cfg").exists() {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        dirs.insert(dir);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_str().unwrap_or(".");
            // `file_type` does not follow symbolic links: linked directories (and cycles)
            // are not walked.
            match entry.file_type() {
                Ok(kind) if kind.is_dir() && !skipped_directory(name) => stack.push(entry.path()),
                Ok(kind) if kind.is_file() && is_source_file(name) => files.push(entry.path()),
                _ => {}
            }
        }
    }
    true
}

/// Hidden directories, caches, build output and installed packages.
fn skipped_directory(name: &str) -> bool {
    name.starts_with('.') || SKIPPED_DIRECTORIES.contains(&name)
}

/// A source, library or config file, not an editor's temp or backup file.
fn is_source_file(name: &str) -> bool {
    if name.starts_with('.') || name.starts_with('#') || name.ends_with('~') {
        return false;
    }
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| SOURCE_EXTENSIONS.contains(&e))
}

/// `path` absolute, symbolic links resolved where it exists (events name resolved paths).
fn normalize(path: &Path) -> PathBuf {
    // The directory of `--config spikard.toml` is the empty path: the current one.
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// A file's path with its directory normalized (the file itself may be replaced or absent).
fn normalize_file(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => normalize(dir).join(name),
        _ => absolute,
    }
}

/// The running watcher: debounced changes come out, new watch sets (after a reload that
/// changed the config) go in.
pub struct Watch {
    changes: mpsc::UnboundedReceiver<String>,
    updates: mpsc::UnboundedSender<WatchSet>,
}

impl Watch {
    /// Starts watching `set`. Call inside the supervisor's runtime.
    pub fn start(set: WatchSet) -> Result<Watch, String> {
        let (raw_tx, raw) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let _ = raw_tx.send(event);
        })
        .map_err(|e| format!("--reload: cannot watch files: {e}"))?;
        let mut watching = Watching {
            watcher,
            set: WatchSet::default(),
            directories: BTreeSet::new(),
        };
        watching.update(set);
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let (updates, updates_rx) = mpsc::unbounded_channel();
        tokio::spawn(watching.run(raw, updates_rx, changes_tx));
        Ok(Watch { changes, updates })
    }

    /// The next debounced change, described for the log ("app.py changed").
    pub async fn changed(&mut self) -> Option<String> {
        self.changes.recv().await
    }

    /// Watches what a reloaded config asks for from now on.
    pub fn update(&self, set: WatchSet) {
        let _ = self.updates.send(set);
    }
}

/// The watcher's state, owned by its task.
struct Watching {
    watcher: notify::RecommendedWatcher,
    set: WatchSet,
    directories: BTreeSet<PathBuf>,
}

impl Watching {
    fn update(&mut self, set: WatchSet) {
        if set == self.set {
            return;
        }
        let wanted = set.directories();
        for gone in self.directories.difference(&wanted) {
            let _ = self.watcher.unwatch(gone);
        }
        let mut watched = BTreeSet::new();
        for dir in wanted {
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(e) => tracing::warn!("--reload: cannot watch {}: {e}", dir.display()),
            }
        }
        tracing::info!(
            "--reload: watching {} file(s) by name and the source files of {} tree(s) ({} directories); a change reloads after {DEBOUNCE:?} of quiet",
            set.files.len(),
            set.trees.len(),
            watched.len()
        );
        self.directories = watched;
        self.set = set;
    }

    async fn run(
        mut self,
        mut raw: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
        mut updates: mpsc::UnboundedReceiver<WatchSet>,
        changes: mpsc::UnboundedSender<String>,
    ) {
        let mut pending = BTreeSet::new();
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        loop {
            let due = first.map(|first| (last + DEBOUNCE).min(first + MAX_DELAY));
            tokio::select! {
                event = raw.recv() => match event {
                    None => return,
                    Some(Ok(event)) => {
                        let before = pending.len();
                        self.on_event(event, &mut pending);
                        if pending.len() > before {
                            last = Instant::now();
                            first.get_or_insert(last);
                        }
                    }
                    Some(Err(e)) => tracing::warn!("--reload: watching files: {e}"),
                },
                update = updates.recv() => match update {
                    None => return,
                    Some(set) => self.update(set),
                },
                () = sleep_until(due) => {
                    first = None;
                    let summary = self.set.describe(&pending);
                    pending.clear();
                    if changes.send(summary).is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Adds the paths of `event` that count to `pending`; watches directories created in a
    /// tree.
    fn on_event(&mut self, event: notify::Event, pending: &mut BTreeSet<PathBuf>) {
        match event.kind {
            // Reading a file (every import does) is no change; closing one written is.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return,
            _ => {}
        }
        if event.need_rescan() {
            // The backend lost events (its queue overflowed): something changed.
            pending.insert(self.set.base.join("(lost file events)"));
            return;
        }
        let created = matches!(
            event.kind,
            EventKind::Create(CreateKind::Folder | CreateKind::Any)
        );
        for path in event.paths {
            if created && path.is_dir() && self.set.in_tree(&path) {
                self.watch_new_directory(&path, pending);
            } else if self.set.counts(&path) {
                pending.insert(path);
            }
        }
    }

    /// Watches a directory created inside a tree (and what is already below it); source files
    /// that arrived before the watch did count as changes.
    fn watch_new_directory(&mut self, dir: &Path, pending: &mut BTreeSet<PathBuf>) {
        let mut dirs = BTreeSet::new();
        let mut files = Vec::new();
        walk(dir, &mut dirs, &mut files);
        for dir in dirs {
            if self.directories.len() >= MAX_DIRECTORIES {
                break;
            }
            // Watching again a directory deleted and created anew is what re-arms it.
            if self
                .watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .is_ok()
            {
                self.directories.insert(dir);
            }
        }
        pending.extend(files.into_iter().filter(|f| self.set.counts(f)));
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Where a `--reload` child's Python looks for cached bytecode: nowhere that exists.
const NO_BYTECODE_CACHE: &str = "/nonexistent/spikard-reload-no-pycache";

/// Makes a `--reload` child (a worker, or the `--check` of a reload) compile interpreted
/// sources afresh. CPython trusts a cached `.pyc` whose source has the same size and
/// modification second, so an edit that keeps a file's length within the second it was last
/// imported would otherwise serve the old code; the environment below makes an embedded
/// CPython neither read nor write bytecode caches (other runtimes ignore it).
pub fn fresh_sources(command: &mut tokio::process::Command) {
    command
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONPYCACHEPREFIX", NO_BYTECODE_CACHE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> WatchSet {
        WatchSet {
            files: [
                PathBuf::from("/p/spikard.toml"),
                PathBuf::from("/lib/libx.so"),
            ]
            .into(),
            trees: [PathBuf::from("/p")].into(),
            base: PathBuf::from("/p"),
        }
    }

    #[test]
    fn source_files_in_a_tree_count_and_caches_temp_files_and_venvs_do_not() {
        let set = set();
        for path in [
            "/p/spikard.toml",
            "/lib/libx.so",
            "/p/app.py",
            "/p/pkg/sub/models.py",
            "/p/schemas/item.json",
        ] {
            assert!(set.counts(Path::new(path)), "{path}");
        }
        for path in [
            "/lib/other.so",
            "/elsewhere/app.py",
            "/p/__pycache__/app.cpython-312.pyc",
            "/p/pkg/__pycache__/x.py",
            "/p/.app.py.swp",
            "/p/.#app.py",
            "/p/#app.py#",
            "/p/app.py~",
            "/p/4913",
            "/p/app.py___jb_tmp___",
            "/p/server.log",
            "/p/.venv/lib/python3.12/site-packages/x.py",
            "/p/venv/lib/python3.12/site-packages/x.py",
            "/p/target/debug/libx.so",
            "/p/node_modules/x/index.js",
            "/p",
        ] {
            assert!(!set.counts(Path::new(path)), "{path}");
        }
    }

    #[test]
    fn a_burst_is_named_by_its_first_file_and_a_count() {
        let set = set();
        let one: BTreeSet<PathBuf> = [PathBuf::from("/p/app.py")].into();
        assert_eq!(set.describe(&one), "app.py changed");
        let three: BTreeSet<PathBuf> = ["/p/a.py", "/p/b.py", "/q/c.py"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(set.describe(&three), "a.py and 2 other files changed");
    }
}
