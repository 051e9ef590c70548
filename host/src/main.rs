//! `spikard-host`: serves the routes of a `spikard.toml` through plugins.
//!
//! Start-up is all-or-nothing: the config is read, every plugin loaded and
//! initialised, every route bound and its validators compiled before the
//! socket opens. Any failure prints one line naming the file, field and fix
//! and exits with status 2.

mod cli;
mod config;
#[cfg(unix)]
mod crash;
mod logging;
mod media_type;
mod middleware;
mod multipart;
mod openapi;
mod plugin;
mod problem;
#[cfg(unix)]
mod process;
#[cfg(test)]
mod proptests;
mod routes;
mod server;
mod shutdown;
mod validation;

use std::process::ExitCode;
use std::sync::Arc;

use cli::Args;
use plugin::LoadedPlugin;

/// mimalloc: the request path allocates and frees across threads (tokio
/// workers, plugin threads), where glibc's malloc spends ~10% of a core.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status of a start-up failure (bad config, plugin, route, address).
const EXIT_STARTUP: u8 = 2;

fn main() -> ExitCode {
    // First, while this is the only thread: a worker takes its inherited socket and pipe.
    #[cfg(unix)]
    let inherited = process::worker::from_env();
    #[cfg(not(unix))]
    let inherited: Option<Result<std::net::TcpListener, String>> = None;
    let args = match Args::parse(std::env::args_os().skip(1)) {
        Ok(cli::Command::Run(args)) => args,
        #[cfg(unix)]
        Ok(cli::Command::Reload { pid_file }) => {
            return match process::pid_file::signal_reload(&pid_file) {
                Ok(pid) => {
                    println!("sent SIGHUP to spikard-host {pid}: it reloads its config (its log says how it went)");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("spikard-host: {message}");
                    ExitCode::FAILURE
                }
            };
        }
        #[cfg(not(unix))]
        Ok(cli::Command::Reload { .. }) => {
            eprintln!("spikard-host: reload needs a Unix system");
            return ExitCode::FAILURE;
        }
        Ok(cli::Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Version) => {
            println!(
                "spikard-host {} (plugin ABI v{}.{})",
                env!("CARGO_PKG_VERSION"),
                spikard_abi::ffi::ABI_MAJOR,
                spikard_abi::ffi::ABI_MINOR
            );
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("spikard-host: {message}\n\n{}", cli::HELP);
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    logging::init();
    #[cfg(unix)]
    crash::install();
    let result = match inherited {
        Some(Err(message)) => Err(message),
        Some(Ok(listener)) => run(args, Some(listener)),
        None => run(args, None),
    };
    #[cfg(unix)]
    crash::exiting();
    logging::flush(shutdown::FLUSH_BOUND);
    match result {
        Ok(code) => code,
        Err(message) => {
            #[cfg(unix)]
            let reported = process::worker::report_failure(&message);
            #[cfg(not(unix))]
            let reported = false;
            if !reported {
                eprintln!("spikard-host: error: {message}");
            }
            ExitCode::from(EXIT_STARTUP)
        }
    }
}

/// Serves (or checks) the config: as one process, as a supervisor of worker processes, or
/// as a worker on the supervisor's socket (`inherited`).
fn run(args: Args, inherited: Option<std::net::TcpListener>) -> Result<ExitCode, String> {
    let mut config = config::load(&args.config).map_err(|e| e.to_string())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let pid_file = args
        .pid_file
        .clone()
        .or_else(|| config.server.process.pid_file.clone());
    let processes = args
        .processes
        .or(config.server.process.processes)
        .map_or(1, config::Processes::count);
    #[cfg(unix)]
    if inherited.is_none() && !args.check && (processes > 1 || args.reload) {
        return supervise(&args, &config, processes, pid_file);
    }
    #[cfg(not(unix))]
    if args.reload {
        return Err("--reload needs a Unix system".into());
    }
    if inherited.is_some() {
        server::set_worker_pid(std::process::id());
    }
    // Before the plugins load, so that they and every connection share the raised limit.
    let fd_limit = server::FdLimit::raise();

    let mut plugins = Vec::with_capacity(config.plugins.len());
    for (i, pc) in config.plugins.iter().enumerate() {
        let (plugin, registrations) = LoadedPlugin::load(pc, i).map_err(|e| e.to_string())?;
        plugins.push((Arc::new(plugin), registrations));
    }
    let loaded: Vec<Arc<LoadedPlugin>> = plugins.iter().map(|(p, _)| p.clone()).collect();
    let shutdown_plugins = |deadline| {
        for plugin in &loaded {
            plugin.shutdown(deadline);
        }
    };
    let built = routes::build(&config, &plugins)
        .map_err(|e| e.to_string())
        .and_then(|mut routes| {
            let openapi = openapi::build(&config.openapi, &mut routes)?;
            Ok((routes, openapi))
        });
    let (routes, openapi) = match built {
        Ok(built) => built,
        Err(e) => {
            shutdown_plugins(std::time::Duration::ZERO);
            return Err(e);
        }
    };
    drop(plugins);

    if args.check {
        print_check(&config, &loaded, &routes);
        shutdown_plugins(std::time::Duration::ZERO);
        return Ok(ExitCode::SUCCESS);
    }
    if routes.is_empty() {
        tracing::warn!(
            "no routes: every request will get a 404; add [[routes]] to {}",
            config.file.display()
        );
    }

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name("spikard-worker");
    if let Some(workers) = config.server.workers {
        runtime.worker_threads(workers);
    }
    let runtime = runtime
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let shared = Arc::new(server::Shared {
        cors: config.policies.server_cors(),
        ..server::Shared::new(&config.server)
    });
    let router = server::router(
        routes,
        &config.statics,
        config.policies.server_compression().as_deref(),
        shared,
        &config.server.process,
        openapi,
    )?;
    let router = match &config.server.security_headers {
        Some(set) => set.clone().layer(router),
        None => router,
    };
    let limits = server::Limits::new(&config.server, fd_limit);
    limits.log(&config.server);
    let listen = match inherited {
        Some(listener) => server::Listen::Inherited(listener),
        None => server::Listen::Bind(config.server.listen),
    };
    let pid_file = pid_file.filter(|_| matches!(listen, server::Listen::Bind(_)));
    if let Some(path) = &pid_file {
        #[cfg(unix)]
        process::pid_file::write(path)?;
    }
    let stopped = runtime.block_on(async {
        #[cfg(unix)]
        process::ignore_hangup();
        server::serve(listen, router, limits).await
    });
    #[cfg(unix)]
    if let Some(path) = &pid_file {
        process::pid_file::remove(path);
    }
    let stopped = stopped?;
    if !stopped.drained {
        tracing::error!("not shutting plugins down: a request may still be inside one; exiting");
        shutdown::exit_now(shutdown::EXIT_UNCLEAN);
    }
    // No request task is left: plugins get what is left of the grace period.
    if let Err(plugin) = shutdown::stop_plugins(&loaded, stopped.deadline) {
        tracing::error!(
            plugin = %plugin,
            "plugin `{plugin}` did not finish its shutdown by its deadline (+{:?}); exiting without it",
            shutdown::OVERRUN_SLACK
        );
        shutdown::exit_now(shutdown::EXIT_UNCLEAN);
    }
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Runs the supervisor of `processes` workers (see [`process::supervisor`]); with
/// `--reload` it also watches the files the config depends on ([`process::watch`]).
#[cfg(unix)]
fn supervise(
    args: &Args,
    config: &config::Config,
    processes: usize,
    pid_file: Option<std::path::PathBuf>,
) -> Result<ExitCode, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to start workers: {e}"))?;
    let config_file = std::path::absolute(&args.config).unwrap_or_else(|_| args.config.clone());
    let watch = args
        .reload
        .then(|| process::watch::WatchSet::of(&config_file, config));
    let options = process::supervisor::Options {
        exe,
        config_file,
        listener: None,
        listen_override: args.listen.is_some(),
        processes_override: args.processes,
        processes,
        grace: config.server.shutdown_timeout + config.server.process.drain_delay,
        pid_file,
        watch,
    };
    let code = process::supervisor::run(options, config.server.listen)?;
    Ok(ExitCode::from(code))
}

/// What `--check` prints: everything the server would serve.
fn print_check(config: &config::Config, plugins: &[Arc<LoadedPlugin>], routes: &[routes::Route]) {
    println!("config {} is valid", config.file.display());
    println!("listen {}", config.server.listen);
    for (plugin, pc) in plugins.iter().zip(&config.plugins) {
        println!(
            "plugin {} = {} ({}), max_in_flight {}",
            plugin.name,
            plugin.declared,
            pc.library.display(),
            plugin.max_in_flight()
        );
    }
    let width = routes.iter().map(|r| r.path.len()).max().unwrap_or(0);
    for route in routes {
        println!(
            "route  {:<7} {:<width$}  -> {}:{}",
            route.method.as_str(),
            route.path,
            route.plugin.name,
            route.handler
        );
    }
    if config.openapi.enabled {
        println!(
            "openapi {}, docs {}",
            config.openapi.path,
            config.openapi.docs_path.as_deref().unwrap_or("off")
        );
    }
    println!("{} route(s), {} plugin(s)", routes.len(), plugins.len());
}
