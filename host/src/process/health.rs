//! Liveness and readiness, answered by the host itself (never by a plugin), on the paths
//! `server.health_path` and `server.ready_path` (both off by default: a fixed path could
//! collide with an application's routes).
//!
//! Liveness is 200 whenever the process answers at all. Readiness is 200 while the process
//! serves and 503 (Problem Details, slug `draining`) from the first stop signal on: with
//! `server.drain_delay_ms` the process keeps accepting and serving for that long while a
//! load balancer's probe sees 503 and takes it out, and only then stops accepting. Before a
//! process is ready it does not accept connections at all, so a probe cannot reach it.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;

use crate::problem::Problem;

/// Set at the first stop signal.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// The process has begun to stop: readiness answers 503 from now on.
pub fn set_draining() {
    DRAINING.store(true, Ordering::Relaxed);
}

/// Whether the process has begun to stop.
pub fn is_draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// The liveness answer: 200 `{"status":"ok"}`.
pub fn live() -> Response {
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// The readiness answer: 200 `{"status":"ready"}`, or a 503 Problem Details while draining.
pub fn ready(problem_base: Option<&str>, request_id: &str) -> Response {
    if !is_draining() {
        return json(StatusCode::OK, r#"{"status":"ready"}"#);
    }
    let mut response = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "draining",
        "Service Draining",
        "this process is shutting down; send new requests elsewhere",
    )
    .render(problem_base, request_id);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

fn json(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
