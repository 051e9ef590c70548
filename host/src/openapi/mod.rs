//! OpenAPI 3.1 for every plugin: the host already holds each route's path, query, header,
//! cookie, body and response schemas, so it writes the document itself — whatever language
//! the handlers are in — once at start-up, after the plugins registered their routes, and
//! serves it from memory at `[openapi] path`, with a Swagger UI page at `docs_path`
//! (see [`docs_page`]). Both are answered by the host without a plugin call; no other route
//! pays anything for them.
//!
//! Plugins and config routes describe their operations with an `openapi` object
//! ([`RouteMeta`]); a plugin may declare the document's `info` ([`Info`]). Named models
//! become components ([`components`]); the routes' authentication policies become security
//! schemes ([`security`]).

mod components;
mod docs_page;
mod document;
mod meta;
mod security;
mod served;

use axum::routing::{get, MethodRouter};
use axum::Router;
use bytes::Bytes;
use serde_json::Value;

pub use meta::{Info, RouteMeta};
use served::Served;

use crate::config::OpenApiConfig;
use crate::middleware::compression::Compression;
use crate::routes::Route;
use crate::validation::SchemaSpec;

/// What one route contributes to the document, kept from route building until the
/// document is made (then dropped).
pub struct RouteDoc {
    /// Its parameter and body schemas, as declared.
    pub schemas: SchemaSpec,
    /// Its response schema, as declared.
    pub response: Option<Value>,
    /// Its `openapi` metadata.
    pub meta: RouteMeta,
    /// The `info` its plugin declared with it.
    pub info: Option<Info>,
    /// Whether the plugin reads its body itself (documented as any bytes).
    pub stream_body: bool,
}

/// The document and docs page, built once: the paths and the bytes answered there.
pub struct Endpoints {
    answers: Vec<(String, Served)>,
}

/// Builds the document of `routes` when `[openapi]` is enabled. Takes every route's
/// [`RouteDoc`] (they are not needed afterwards). A route a plugin registered at one of
/// the host's OpenAPI paths is an error naming both.
pub fn build(config: &OpenApiConfig, routes: &mut [Route]) -> Result<Option<Endpoints>, String> {
    let docs: Vec<Option<Box<RouteDoc>>> = routes.iter_mut().map(|r| r.doc.take()).collect();
    if !config.enabled {
        return Ok(None);
    }
    let operations: Vec<document::Operation<'_>> = routes
        .iter()
        .zip(&docs)
        .filter_map(|(route, doc)| {
            Some(document::Operation {
                method: &route.method,
                path: &route.path,
                param_names: &route.param_names,
                doc: doc.as_deref()?,
                auth: route.policies.auth.as_deref(),
                origin: &route.origin,
            })
        })
        .collect();
    let document = document::build(config, &operations);
    let title = document["info"]["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let count = document["paths"].as_object().map_or(0, |paths| {
        paths
            .values()
            .filter_map(Value::as_object)
            .map(|o| o.len())
            .sum::<usize>()
    });
    let bytes = serde_json::to_vec(&document)
        .map_err(|e| format!("[openapi]: cannot write the document: {e}"))?;
    let mut answers = vec![(
        config.path.clone(),
        Served::new(Bytes::from(bytes), "application/json", served::REVALIDATE),
    )];
    if let Some(docs_path) = &config.docs_path {
        answers.extend(docs_page::build(docs_path, &config.path, &title));
    }
    check_paths(config, routes, &answers)?;
    tracing::info!(
        "openapi: {count} operation(s) documented at {}{}",
        config.path,
        config
            .docs_path
            .as_ref()
            .map(|d| format!(", Swagger UI {} at {d}", docs_page::SWAGGER_UI_VERSION))
            .unwrap_or_default()
    );
    Ok(Some(Endpoints { answers }))
}

/// A route (from the config or a plugin) that matches the document's path, the docs page's
/// or one of its assets' is a start-up error naming both: the host answers there.
fn check_paths(
    config: &OpenApiConfig,
    routes: &[Route],
    answers: &[(String, Served)],
) -> Result<(), String> {
    let mine = answers.iter().map(|(path, _)| {
        if *path == config.path {
            ("openapi.path", path, config.path_at.as_ref())
        } else {
            ("openapi.docs_path", path, config.docs_at.as_ref())
        }
    });
    let mine: Vec<_> = mine.collect();
    for route in routes {
        for (field, path, at) in &mine {
            if crate::config::template_matches(&route.path, path) {
                let at = at.map(|a| format!(" ({a})")).unwrap_or_default();
                return Err(format!(
                    "{}: {} {} is at a path the host answers itself: `{path}` is [{field}]{at}; change the route's path or {field}",
                    route.origin, route.method, route.path
                ));
            }
        }
    }
    Ok(())
}

impl Endpoints {
    /// Adds the GET (and HEAD) routes answering the document and the docs page; the docs
    /// page's assets go through the server's compression policy when there is one.
    pub fn add_routes(self, mut router: Router, compression: Option<&Compression>) -> Router {
        for (path, served) in self.answers {
            let mut methods: MethodRouter =
                get(move |headers: http::HeaderMap| std::future::ready(served.respond(&headers)));
            if let Some(compression) = compression {
                methods = methods.layer(compression.layer());
            }
            router = router.route(&path, methods);
        }
        router
    }
}
