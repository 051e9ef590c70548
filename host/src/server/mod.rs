//! The HTTP server: the route table as an axum router, served over HTTP/1.1 by hyper on
//! tokio, with a request head limit and graceful shutdown.

mod dispatch;
mod request_id;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

pub use dispatch::Shared;
use request_id::RequestIds;

use crate::config::ServerConfig;
use crate::routes::Route;

impl Shared {
    /// Per-server settings from the config.
    pub fn new(server: &ServerConfig) -> Self {
        Shared {
            problem_base: server.problem_type_base.clone(),
            access_log: server.access_log,
            request_timeout: server.request_timeout,
            ids: RequestIds::new(),
        }
    }
}

/// Builds the router: one axum route per path shape, one method handler per
/// route, Problem Details for unknown paths (404) and methods (405 + Allow).
///
/// Routes of the same shape but different parameter names (`GET /a/{id}`,
/// `PUT /a/{key}`) share one axum path; each route maps the values to its
/// own names by position.
pub fn router(routes: Vec<Route>, shared: Arc<Shared>) -> Result<Router, String> {
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
    let mut router = Router::new();
    for (path, group) in groups {
        let mut allowed: Vec<&str> = group.iter().map(|r| r.method.as_str()).collect();
        if allowed.contains(&"GET") && !allowed.contains(&"HEAD") {
            allowed.push("HEAD");
        }
        let allow: Arc<str> = allowed.join(", ").into();
        let mut methods: MethodRouter = MethodRouter::new();
        for route in &group {
            let filter = MethodFilter::try_from(route.method.clone()).map_err(|_| {
                format!(
                    "{}: method {} is not supported by the router; use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or TRACE",
                    route.origin, route.method
                )
            })?;
            let (route, shared) = (route.clone(), shared.clone());
            methods = methods.on(filter, move |params, request| {
                dispatch::dispatch(route.clone(), shared.clone(), params, request)
            });
        }
        let shared_405 = shared.clone();
        methods = methods.fallback(move |request| {
            dispatch::method_not_allowed(shared_405.clone(), allow.clone(), request)
        });
        router = router.route(&path, methods);
    }
    let shared_404 = shared.clone();
    Ok(router.fallback(move |request| dispatch::not_found(shared_404.clone(), request)))
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers); hyper answers a larger one with
    /// `431 Request Header Fields Too Large` and closes the connection.
    pub max_header_bytes: usize,
    /// Grace period for in-flight requests after a shutdown signal.
    pub grace: Duration,
}

/// hyper's default read buffer (8 KiB + 100 × 4 KiB); it must hold a whole head.
const DEFAULT_READ_BUFFER: usize = 8192 + 4096 * 100;

/// Binds `listen`, serves until SIGINT/SIGTERM, then lets in-flight requests
/// finish for up to `limits.grace`. Returns whether they all finished.
pub async fn serve(listen: SocketAddr, router: Router, limits: Limits) -> Result<bool, String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        format!(
            "cannot listen on {listen}: {e}; choose another address with server.listen or --listen"
        )
    })?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{bound}");

    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_header_size(limits.max_header_bytes);
    if limits.max_header_bytes + 8192 > DEFAULT_READ_BUFFER {
        http.max_buf_size(limits.max_header_bytes + 8192);
    }
    let http = Arc::new(http);
    // Connections watch `stop` to finish gracefully; each holds a clone of `open`, so
    // `open_tx.closed()` resolves when the last one is gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());

    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let (http, router) = (http.clone(), router.clone());
        let (mut stop, open) = (stop_rx.clone(), open_rx.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                tower::Service::call(&mut router.clone(), request)
            });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!("connection ended with an error: {e}");
                        }
                        break;
                    }
                    changed = stop.changed(), if !stopping => {
                        stopping = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(open);
        });
    }

    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    tokio::select! {
        () = open_tx.closed() => Ok(true),
        () = tokio::time::sleep(limits.grace) => {
            tracing::warn!(
                "shutdown deadline of {:?} passed with requests still in flight; they are dropped",
                limits.grace
            );
            Ok(false)
        }
    }
}

/// Accept errors: a connection that failed before it was accepted is the client's business;
/// anything else (out of file descriptors) is logged and retried after a pause, so the
/// loop neither spins nor stops serving.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {error}; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
