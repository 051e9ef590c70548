//! `server.pid_file` / `--pid-file`: the serving process (the supervisor, or the only
//! process) writes its pid there once it listens and removes the file when it exits, so
//! scripts can `kill -HUP $(cat FILE)` or run `spikard-host reload --pid-file FILE`.

use std::path::Path;

/// Writes this process's pid to `path` (through a temporary file and a rename, so a reader
/// never sees half a number).
pub fn write(path: &Path) -> Result<(), String> {
    let pid = std::process::id();
    let temp = path.with_extension(format!("tmp{pid}"));
    std::fs::write(&temp, format!("{pid}\n"))
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            format!(
                "cannot write the pid file {}: {e}; fix server.pid_file or --pid-file",
                path.display()
            )
        })
}

/// Removes `path` if it still holds this process's pid (a newer host may have replaced it).
pub fn remove(path: &Path) {
    if read(path).is_ok_and(|pid| pid == std::process::id() as i32) {
        let _ = std::fs::remove_file(path);
    }
}

/// The pid in `path`.
pub fn read(path: &Path) -> Result<i32, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the pid file {}: {e}", path.display()))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|&pid| pid > 0)
        .ok_or_else(|| format!("{} does not hold a process id", path.display()))
}

/// `spikard-host reload --pid-file FILE`: sends SIGHUP to the process named in `path`.
pub fn signal_reload(path: &Path) -> Result<i32, String> {
    let pid = read(path)?;
    // SAFETY: kill sends a signal; errors are reported by the return value.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(format!(
            "cannot signal process {pid} (from {}): {}; is the host running?",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(pid)
}
