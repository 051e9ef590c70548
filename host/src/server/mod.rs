//! The HTTP server: the route table as an axum router, served over HTTP/1.1 by hyper on
//! tokio, with connection limits (see [`limits`]) and graceful shutdown.

mod accept;
mod access;
pub(crate) mod body;
mod conn_info;
mod connection;
mod dispatch;
mod gate;
mod limits;
mod linger;
mod preflight;
mod request_id;
mod stop;
mod streamed;
mod timed_io;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use tokio::sync::watch;

pub use accept::bind;
pub use access::set_worker_pid;
pub use conn_info::ConnInfo;
pub use dispatch::Shared;
pub use limits::{FdLimit, Limits};
use request_id::RequestIds;
pub use stop::Stopped;

use crate::config::{ProcessConfig, ServerConfig};
use crate::middleware::compression::Compression;
use crate::middleware::cors;
use crate::middleware::metrics::{self, Metrics};
use crate::middleware::static_files::{self, StaticMount};
use crate::routes::Route;
use preflight::Preflight;

impl Shared {
    /// Per-server settings from the config.
    pub fn new(server: &ServerConfig) -> Self {
        Shared {
            problem_base: server.problem_type_base.clone(),
            access_log: server.access_log,
            request_id_header: server.request_id_header.clone(),
            request_ids: server.request_ids,
            body_read_timeout: server.connections.body_read_timeout,
            ids: RequestIds::new(),
            cors: None,
        }
    }
}

/// Builds the router: one axum route per path shape, one method handler per
/// route, Problem Details for unknown paths (404) and methods (405 + Allow), CORS preflights
/// answered by the host at paths whose routes have a CORS policy, and the `[[static]]`
/// mounts, and the OpenAPI document and docs page when `[openapi]` is on.
///
/// Routes of the same shape but different parameter names (`GET /a/{id}`,
/// `PUT /a/{key}`) share one axum path; each route maps the values to its
/// own names by position.
pub fn router(
    routes: Vec<Route>,
    statics: &[StaticMount],
    static_compression: Option<&Compression>,
    shared: Arc<Shared>,
    process: &ProcessConfig,
    openapi: Option<crate::openapi::Endpoints>,
) -> Result<Router, String> {
    let mut groups: Vec<(String, Vec<Arc<Route>>)> = Vec::new();
    for route in routes {
        let route = Arc::new(route);
        match groups
            .iter_mut()
            .find(|(path, _)| crate::config::same_shape(path, &route.path))
        {
            Some((_, group)) => group.push(route),
            None => groups.push((route.path.clone(), vec![route])),
        }
    }
    check_static_prefixes(statics, &groups)?;
    let mut metrics = process.metrics_path.as_ref().map(|_| Metrics::new());
    let unmatched = metrics.as_ref().map(Metrics::unmatched);
    let mut router = Router::new();
    for (path, group) in groups {
        let mut allowed: Vec<&str> = group.iter().map(|r| r.method.as_str()).collect();
        if allowed.contains(&"GET") && !allowed.contains(&"HEAD") {
            allowed.push("HEAD");
        }
        let allow: Arc<str> = allowed.join(", ").into();
        let preflight = Preflight::for_group(&group);
        let mut methods: MethodRouter = MethodRouter::new();
        for route in &group {
            let filter = MethodFilter::try_from(route.method.clone()).map_err(|_| {
                format!(
                    "{}: method {} is not supported by the router; use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or TRACE",
                    route.origin, route.method
                )
            })?;
            let counters = metrics
                .as_mut()
                .map(|m| m.route(&route.method, &route.path));
            let compression = route.policies.compression.clone();
            let (route, shared) = (route.clone(), shared.clone());
            methods = match preflight
                .clone()
                .filter(|_| route.method == http::Method::OPTIONS)
            {
                // The route answers OPTIONS itself, except CORS preflights.
                Some(preflight) => with_compression(
                    methods,
                    filter,
                    move |params, request: axum::extract::Request| {
                        let (route, shared) = (route.clone(), shared.clone());
                        async move {
                            if cors::is_preflight(request.method(), request.headers()) {
                                return dispatch::preflight(&shared, &preflight, &request);
                            }
                            metrics::timed(
                                counters,
                                Box::pin(dispatch::dispatch(route, shared, params, request)),
                            )
                            .await
                        }
                    },
                    compression.as_deref(),
                ),
                // The pipeline's future is large (a few KiB of state across its awaits);
                // boxed here, the wrappers around it (metrics, axum's own box) move a
                // pointer instead of copying it twice per request (callgrind: −880
                // instructions per `hello`).
                None => with_compression(
                    methods,
                    filter,
                    move |params, request| {
                        metrics::timed(
                            counters,
                            Box::pin(dispatch::dispatch(
                                route.clone(),
                                shared.clone(),
                                params,
                                request,
                            )),
                        )
                    },
                    compression.as_deref(),
                ),
            };
        }
        let shared_405 = shared.clone();
        methods = methods.fallback(move |request: axum::extract::Request| {
            let counters = unmatched.map(|u| u.of(request.method()));
            let preflight = preflight
                .clone()
                .filter(|_| cors::is_preflight(request.method(), request.headers()));
            let shared = shared_405.clone();
            let allow = allow.clone();
            async move {
                match preflight {
                    Some(preflight) => dispatch::preflight(&shared, &preflight, &request),
                    None => {
                        metrics::timed(
                            counters,
                            dispatch::method_not_allowed(shared, allow, request),
                        )
                        .await
                    }
                }
            }
        });
        router = router.route(&path, methods);
    }
    router = health_routes(router, &shared, process);
    if let Some(openapi) = openapi {
        router = openapi.add_routes(router, static_compression);
    }
    if let (Some(path), Some(metrics)) = (&process.metrics_path, metrics) {
        let metrics = Arc::new(metrics);
        router = router.route(
            path,
            axum::routing::get(move || std::future::ready(metrics.response())),
        );
    }
    for mount in statics {
        let shared = shared.clone();
        let refuse: static_files::Refuse =
            Arc::new(move |problem, parts| dispatch::refuse_parts(&shared, &problem, parts));
        let files = mount.service(refuse);
        router = match static_compression {
            Some(compression) => router.nest_service(
                &mount.prefix,
                tower::Layer::layer(&compression.layer(), files),
            ),
            None => router.nest_service(&mount.prefix, files),
        };
    }
    let shared_404 = shared.clone();
    Ok(router.fallback(move |request: axum::extract::Request| {
        let counters = unmatched.map(|u| u.of(request.method()));
        metrics::timed(counters, dispatch::not_found(shared_404.clone(), request))
    }))
}

/// Adds a route's handler, behind its compression layer when it has one.
fn with_compression<H, T>(
    methods: MethodRouter,
    filter: MethodFilter,
    handler: H,
    compression: Option<&Compression>,
) -> MethodRouter
where
    H: axum::handler::Handler<T, ()>,
    T: 'static,
{
    match compression {
        Some(compression) => methods.on(filter, handler.layer(compression.layer())),
        None => methods.on(filter, handler),
    }
}

/// A `[[static]]` prefix that a route's path would fall under is refused: which of the two
/// answers would depend on the router's precedence, not on the config.
fn check_static_prefixes(
    statics: &[StaticMount],
    groups: &[(String, Vec<Arc<Route>>)],
) -> Result<(), String> {
    for mount in statics {
        let inside = |path: &str| {
            path == mount.prefix
                || path
                    .strip_prefix(mount.prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if let Some((path, group)) = groups.iter().find(|(path, _)| inside(path)) {
            return Err(format!(
                "static files are mounted at {} but {} is under it ({}); move the mount or the route",
                mount.prefix, path, group[0].origin
            ));
        }
    }
    Ok(())
}

/// The liveness and readiness paths, answered by the host (see [`crate::process::health`]);
/// the config refuses a path a route also matches. Probes get no access line.
fn health_routes(mut router: Router, shared: &Arc<Shared>, process: &ProcessConfig) -> Router {
    if let Some(path) = &process.health_path {
        router = router.route(
            path,
            axum::routing::get(|| async { crate::process::health::live() }),
        );
    }
    if let Some(path) = &process.ready_path {
        let shared = shared.clone();
        router = router.route(
            path,
            axum::routing::get(move || {
                let shared = shared.clone();
                async move {
                    let id = shared.ids.next();
                    crate::process::health::ready(shared.problem_base.as_deref(), &id)
                }
            }),
        );
    }
    router
}

/// Where the server's connections come from.
pub enum Listen {
    /// Bind this address: the host is one process.
    Bind(SocketAddr),
    /// A listening socket inherited from the supervisor: the host is one of its workers.
    Inherited(std::net::TcpListener),
}

/// hyper's default read buffer (8 KiB + 100 × 4 KiB); it must hold a whole head.
const DEFAULT_READ_BUFFER: usize = 8192 + 4096 * 100;

/// hyper's HTTP/1.1 settings for every connection.
fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_header_size(limits.max_header_bytes);
    if limits.max_header_bytes + 8192 > DEFAULT_READ_BUFFER {
        http.max_buf_size(limits.max_header_bytes + 8192);
    }
    // A client that sends its request and shuts down its write side still gets the answer.
    http.half_close(true);
    // The header and keep-alive deadlines are the socket's (`timed_io`): hyper's own header
    // timer would also bound the idle time between requests.
    http.header_read_timeout(None);
    http
}

/// Listens (binds, or takes the supervisor's socket), serves until SIGINT/SIGTERM — then,
/// with readiness reporting 503, keeps accepting for `limits.drain_delay` — then stops
/// accepting and lets in-flight requests finish for up to `limits.grace`; those still running
/// then are aborted and awaited (see [`stop`]). When it returns, no request task is left
/// unless [`Stopped::drained`] says otherwise.
pub async fn serve(listen: Listen, router: Router, limits: Limits) -> Result<Stopped, String> {
    let listener = match listen {
        Listen::Bind(addr) => accept::bind(addr).map_err(|e| {
            format!(
                "cannot listen on {addr}: {e}; choose another address with server.listen or --listen"
            )
        })?,
        Listen::Inherited(listener) => tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("cannot use the supervisor's listening socket: {e}"))?,
    };
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let mut acceptor = accept::Acceptor::new(listener, limits.max_connections);
    if crate::process::worker::is_worker() {
        tracing::info!("worker {} accepting on http://{bound}", std::process::id());
        crate::process::worker::report_ready();
    } else {
        tracing::info!("listening on http://{bound}");
    }

    let http = Arc::new(http1(&limits));
    let timeouts = timed_io::Timeouts {
        header: limits.connections.header_read_timeout,
        keepalive: limits.connections.keepalive_timeout,
    };
    // Connections watch `stop` to finish gracefully; each holds a clone of `open`, so
    // `open_tx.closed()` resolves when the last one is gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());

    let mut signals = Some(stop::Signals::install()?);
    let mut connections = stop::Connections::default();
    // Set at the stop signal: accepting goes on until then (the drain delay).
    let mut stop_accepting: Option<tokio::time::Instant> = None;
    loop {
        let (stream, peer, permit) = tokio::select! {
            next = acceptor.next() => next,
            _ = next_signal(&mut signals) => {
                crate::process::health::set_draining();
                if let Some(signals) = signals.take() {
                    signals.exit_on_next();
                }
                if limits.drain_delay.is_zero() {
                    break;
                }
                tracing::info!(
                    "draining: readiness answers 503; still accepting for {:?}",
                    limits.drain_delay
                );
                stop_accepting = Some(tokio::time::Instant::now() + limits.drain_delay);
                continue;
            }
            () = sleep_until(stop_accepting) => break,
        };
        let _ = stream.set_nodelay(true);
        // The listener's address is the connection's unless it listens on every address.
        let local = if bound.ip().is_unspecified() {
            stream.local_addr().ok()
        } else {
            Some(bound)
        };
        let conn = ConnInfo::new(Some(peer), local);
        let (http, router) = (http.clone(), router.clone());
        let (stop, open) = (stop_rx.clone(), open_rx.clone());
        connections.spawn(async move {
            connection::serve(stream, conn, &http, router, timeouts, stop).await;
            drop((permit, open));
        });
    }
    crate::process::health::set_draining();
    if let Some(signals) = signals.take() {
        signals.exit_on_next();
    }
    let deadline = std::time::Instant::now() + limits.grace;

    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    drop(acceptor);
    let _ = stop_tx.send(true);
    drop(open_rx);
    tokio::select! {
        () = open_tx.closed() => Ok(Stopped { deadline, drained: true }),
        () = tokio::time::sleep_until(deadline.into()) => {
            tracing::warn!(
                "shutdown deadline of {:?} passed with requests still in flight; cancelling them",
                limits.grace
            );
            let drained = connections.abandon(stop::ABORT_BOUND).await;
            Ok(Stopped { deadline, drained })
        }
    }
}

/// The next stop signal; never, once the signals were handed to the second-signal watcher.
async fn next_signal(signals: &mut Option<stop::Signals>) {
    match signals {
        Some(signals) => {
            signals.next().await;
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`; never without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
