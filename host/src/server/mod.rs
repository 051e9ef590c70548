//! The HTTP server: the route table as an axum router, served on tokio with
//! graceful shutdown.

mod dispatch;
mod request_id;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{MethodFilter, MethodRouter};
use axum::serve::ListenerExt;
use axum::Router;

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

/// Binds `listen`, serves until SIGINT/SIGTERM, then lets in-flight requests
/// finish for up to `grace`. Returns whether they all finished.
pub async fn serve(listen: SocketAddr, router: Router, grace: Duration) -> Result<bool, String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        format!(
            "cannot listen on {listen}: {e}; choose another address with server.listen or --listen"
        )
    })?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{bound}");
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        let _ = signalled_tx.send(());
    });
    let deadline = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => {
            result.map_err(|e| format!("server error: {e}"))?;
            Ok(true)
        }
        _ = deadline => {
            tracing::warn!("shutdown deadline of {grace:?} passed with requests still in flight; they are dropped");
            Ok(false)
        }
    }
}
