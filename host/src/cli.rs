//! Command-line arguments. A few flags and one subcommand do not need a parser crate.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Usage text for `--help` and argument errors.
pub const HELP: &str = "\
usage: spikard-host [--config FILE] [--listen ADDR] [--processes N] [--pid-file FILE] [--reload] [--check]
       spikard-host reload --pid-file FILE

  --config FILE     the spikard.toml to serve (default: ./spikard.toml)
  --listen ADDR     override server.listen, e.g. 127.0.0.1:0 for any free port
  --processes N     override server.processes: worker processes (a number or \"auto\");
                    more than 1 runs a supervisor that restarts and reloads them
  --pid-file FILE   override server.pid_file: write the serving process's pid there
  --reload          development: reload (as on SIGHUP) when the config, a plugin library
                    or a source file of the application changes
  --check           load the config and every plugin, print the routes, exit
  reload            send SIGHUP to the host whose pid is in --pid-file: it re-reads its
                    config and replaces its workers without dropping a request
  --version       print the version and plugin ABI version
  --help          print this text

Logs go to stderr; filter them with RUST_LOG (e.g. RUST_LOG=info,spikard::access=off).
";

/// What to do.
pub enum Command {
    /// Serve (or check) a config.
    Run(Args),
    /// Print usage.
    Help,
    /// Print the version.
    Version,
    /// `reload --pid-file FILE`: signal a running supervisor to reload.
    Reload {
        /// The pid file the supervisor wrote.
        pid_file: PathBuf,
    },
}

/// Arguments of a run.
pub struct Args {
    /// The config file.
    pub config: PathBuf,
    /// `--listen`, overriding the config.
    pub listen: Option<SocketAddr>,
    /// `--check`: validate and exit.
    pub check: bool,
    /// `--processes`, overriding the config.
    pub processes: Option<crate::config::Processes>,
    /// `--pid-file`, overriding the config.
    pub pid_file: Option<PathBuf>,
    /// `--reload`: watch files and reload on change (development).
    pub reload: bool,
}

impl Args {
    /// Parses arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
        let mut config = None;
        let mut listen = None;
        let mut check = false;
        let mut processes = None;
        let mut pid_file = None;
        let mut reload = false;
        let mut watch = false;
        let mut args = args.into_iter().peekable();
        if args.peek().is_some_and(|a| a == "reload") {
            args.next();
            reload = true;
        }
        while let Some(arg) = args.next() {
            let arg = arg.to_string_lossy().into_owned();
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next().map(|v| v.to_string_lossy().into_owned()))
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--config" | "-c" => config = Some(PathBuf::from(value("--config")?)),
                "--listen" | "-l" => {
                    let text = value("--listen")?;
                    listen = Some(
                        crate::config::parse_listen(&text).map_err(|e| format!("--listen: {e}"))?,
                    );
                }
                "--check" => check = true,
                "--reload" => watch = true,
                "--processes" | "-p" => {
                    let text = value("--processes")?;
                    processes = Some(
                        crate::config::Processes::parse(&text)
                            .map_err(|e| format!("--processes: {e}"))?,
                    );
                }
                "--pid-file" => pid_file = Some(PathBuf::from(value("--pid-file")?)),
                "--help" | "-h" => return Ok(Command::Help),
                "--version" | "-V" => return Ok(Command::Version),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if reload {
            return match pid_file {
                Some(pid_file) => Ok(Command::Reload { pid_file }),
                None => Err(
                    "reload needs --pid-file FILE (the server.pid_file of the running host)".into(),
                ),
            };
        }
        Ok(Command::Run(Args {
            config: config.unwrap_or_else(|| PathBuf::from("spikard.toml")),
            listen,
            check,
            processes,
            pid_file,
            reload: watch,
        }))
    }
}
