//! The benchmark workloads as plain axum handlers: the ceiling of what an
//! HTTP server does on this machine, to compare the others with.
//!
//! `axum-ceiling ADDR BIG_JSON` serves on ADDR (e.g. `127.0.0.1:8000`) and
//! answers `GET /big` with the JSON document of the file BIG_JSON, parsed
//! once and serialized on every request like the other apps do.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Item {
    name: String,
    price: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ItemQuery {
    q: Option<String>,
}

async fn hello() -> Json<Value> {
    Json(json!({"message": "Hello"}))
}

async fn create_item(Json(item): Json<Item>) -> Response {
    let mut errors = Vec::new();
    if item.name.is_empty() {
        errors.push(json!({"loc": ["body", "name"], "msg": "must not be empty"}));
    }
    if !(item.price > 0.0) {
        errors.push(json!({"loc": ["body", "price"], "msg": "must be greater than 0"}));
    }
    if !errors.is_empty() {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"errors": errors}))).into_response();
    }
    (StatusCode::CREATED, Json(item)).into_response()
}

async fn get_item(Path(item_id): Path<i64>, Query(query): Query<ItemQuery>) -> Json<Value> {
    Json(json!({"item_id": item_id, "q": query.q}))
}

async fn big(State(big): State<Arc<Value>>) -> Json<Arc<Value>> {
    Json(big)
}

async fn sleep() -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    Json(json!({"slept": true}))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(big_path)) = (args.next(), args.next()) else {
        eprintln!("usage: axum-ceiling ADDR BIG_JSON");
        std::process::exit(2);
    };
    let big_doc: Value = serde_json::from_str(&std::fs::read_to_string(&big_path).expect("read BIG_JSON"))
        .expect("BIG_JSON is JSON");
    let app = Router::new()
        .route("/hello", get(hello))
        // Every axum handler is an async fn; one that never awaits is the
        // closest thing to a sync handler.
        .route("/hello-sync", get(hello))
        .route("/items", post(create_item))
        .route("/items/{item_id}", get(get_item))
        .route("/big", get(big))
        .route("/sleep", get(sleep))
        .with_state(Arc::new(big_doc));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .unwrap();
}
