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
mod multipart;
mod plugin;
mod problem;
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
    let args = match Args::parse(std::env::args_os().skip(1)) {
        Ok(cli::Command::Run(args)) => args,
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
    let result = run(args);
    #[cfg(unix)]
    crash::exiting();
    logging::flush(shutdown::FLUSH_BOUND);
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("spikard-host: error: {message}");
            ExitCode::from(EXIT_STARTUP)
        }
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let mut config = config::load(&args.config).map_err(|e| e.to_string())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
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
    let routes = match routes::build(&config, &plugins) {
        Ok(routes) => routes,
        Err(e) => {
            shutdown_plugins(std::time::Duration::ZERO);
            return Err(e.to_string());
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
    let shared = Arc::new(server::Shared::new(&config.server));
    let router = server::router(routes, shared)?;
    let limits = server::Limits::new(&config.server, fd_limit);
    limits.log(&config.server);
    let stopped = runtime.block_on(server::serve(config.server.listen, router, limits))?;
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
    println!("{} route(s), {} plugin(s)", routes.len(), plugins.len());
}
