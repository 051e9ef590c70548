//! Command-line arguments. Three flags do not need a parser crate.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Usage text for `--help` and argument errors.
pub const HELP: &str = "\
usage: spikard-host [--config FILE] [--listen ADDR] [--check]

  --config FILE   the spikard.toml to serve (default: ./spikard.toml)
  --listen ADDR   override server.listen, e.g. 127.0.0.1:0 for any free port
  --check         load the config and every plugin, print the routes, exit
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
}

/// Arguments of a run.
pub struct Args {
    /// The config file.
    pub config: PathBuf,
    /// `--listen`, overriding the config.
    pub listen: Option<SocketAddr>,
    /// `--check`: validate and exit.
    pub check: bool,
}

impl Args {
    /// Parses arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
        let mut config = None;
        let mut listen = None;
        let mut check = false;
        let mut args = args.into_iter();
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
                "--help" | "-h" => return Ok(Command::Help),
                "--version" | "-V" => return Ok(Command::Version),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(Command::Run(Args {
            config: config.unwrap_or_else(|| PathBuf::from("spikard.toml")),
            listen,
            check,
        }))
    }
}
