//! The route table: config routes bound to their plugins and routes plugins
//! registered themselves, checked for clashes, with their validators
//! compiled once.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::config::{self, Config};
use crate::plugin::host_api::Registration;
use crate::plugin::LoadedPlugin;
use crate::validation::patterns::Engine;
use crate::validation::{self, RouteValidator, SchemaSpec};

/// One servable route.
pub struct Route {
    /// HTTP method.
    pub method: http::Method,
    /// Path template.
    pub path: String,
    /// Names of the template's parameters, in order.
    pub param_names: Vec<String>,
    /// The plugin that answers it.
    pub plugin: Arc<LoadedPlugin>,
    /// The plugin's id for it.
    pub handler_id: u64,
    /// What `--check` prints as the handler.
    pub handler: String,
    /// Request validators.
    pub validator: RouteValidator,
    /// Validator of JSON responses, when the route declares one.
    pub response: Option<jsonschema::Validator>,
    /// Largest accepted body.
    pub body_limit: usize,
    /// Deepest nesting accepted in a JSON body.
    pub max_json_depth: usize,
    /// How long the plugin may take to answer before the client gets a 504.
    pub request_timeout: std::time::Duration,
    /// Whether the response carries the request id header.
    pub request_id_header: bool,
    /// The plugin reads the body itself, chunk by chunk (`stream_body`): the host hands the
    /// request over before reading it and enforces `body_limit` as the plugin reads.
    pub stream_body: bool,
    /// The middleware it runs (CORS, auth, rate limit, compression).
    pub policies: config::Applied,
    /// Its schemas and metadata for the OpenAPI document, while `[openapi]` is on; taken
    /// (and dropped) when the document is built at start-up.
    pub doc: Option<Box<crate::openapi::RouteDoc>>,
    /// Where it was declared, for messages.
    pub origin: String,
}

/// A route that cannot be served, and why.
#[derive(Debug)]
pub struct RouteError {
    /// Where the route was declared.
    pub origin: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl std::error::Error for RouteError {}

/// The parameter names of a template, in order.
pub fn param_names(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|s| s.trim_start_matches('*').to_owned())
        .collect()
}

/// The parameter values of `path` (a request path the template matched, as sent, still
/// percent-encoded), in template order: a `{name}` is its segment, a `{*rest}` everything
/// after the segments before it.
///
/// The router decodes these itself, but refuses a value that is not UTF-8 without giving
/// it; the server reads such values from here so that validation can report them
/// (`string_unicode`) with the request's other errors.
pub fn param_values<'p>(template: &str, path: &'p str) -> Vec<&'p str> {
    let mut values = Vec::new();
    let mut rest = Some(path);
    for segment in template.split('/') {
        let Some(remaining) = rest else { break };
        if segment.starts_with("{*") {
            values.push(remaining);
            break;
        }
        let (current, after) = match remaining.split_once('/') {
            Some((current, after)) => (current, Some(after)),
            None => (remaining, None),
        };
        if segment.starts_with('{') {
            values.push(current);
        }
        rest = after;
    }
    values
}

/// The response validator, on the same regex engines as request validation (a plugin's
/// answer often echoes client input).
fn compile_response(
    schema: Option<&Value>,
) -> Result<Option<(jsonschema::Validator, Engine)>, String> {
    schema
        .map(|s| {
            validation::patterns::build(|| jsonschema::options().should_validate_formats(true), s)
                .map_err(|e| format!("the response schema is invalid: {e}"))
        })
        .transpose()
}

/// Tells the operator at start-up which schemas of a route match some `pattern` with the
/// backtracking engine, whose matches can be cut off (a 422 for the client).
fn note_backtracking(origin: &str, validator: &RouteValidator, response: Option<Engine>) {
    let mut sources = validator.backtracking_sources();
    if response == Some(Engine::Backtracking) {
        sources.push("response");
    }
    if !sources.is_empty() {
        tracing::info!(
            "{origin}: the {} schema has a `pattern` with look-around or backreferences; it runs on the backtracking regex engine, cut off after {} steps per match",
            sources.join(", "),
            validation::patterns::BACKTRACK_LIMIT
        );
    }
}

/// Schemas a plugin sent with `register_route`, in the config's shape.
fn registered_schemas(schemas: &Value) -> Result<Registered, String> {
    let object = schemas.as_object().cloned().unwrap_or_default();
    let mut spec = SchemaSpec::default();
    let mut response = None;
    let mut body_limit = None;
    let mut request_timeout = None;
    let mut max_json_depth = None;
    let mut request_id = None;
    let mut stream_body = false;
    let mut meta = crate::openapi::RouteMeta::default();
    let mut info = None;
    for (key, value) in object {
        match key.as_str() {
            "path" => spec.path = Some(value),
            "query" => spec.query = Some(value),
            "headers" => spec.headers = Some(value),
            "cookies" => spec.cookies = Some(value),
            "body" => spec.body = Some(value),
            "response" => response = Some(value),
            "body_limit" => {
                body_limit = Some(
                    value
                        .as_u64()
                        .ok_or("body_limit must be a number of bytes")? as usize,
                )
            }
            "request_timeout_ms" => request_timeout = Some(registered_timeout(&value)?),
            "max_json_depth" => max_json_depth = Some(registered_json_depth(&value)?),
            "request_id" => {
                request_id = Some(value.as_bool().ok_or("request_id must be true or false")?)
            }
            "stream_body" => {
                stream_body = value
                    .as_bool()
                    .ok_or("stream_body must be true or false")?;
            }
            "openapi" => meta = crate::openapi::RouteMeta::parse(&value)?,
            "info" => info = Some(crate::openapi::Info::parse(&value)?),
            other => {
                return Err(format!(
                    "unknown schema key `{other}`; use path, query, headers, cookies, body, response, body_limit, request_timeout_ms, max_json_depth, request_id, stream_body, openapi or info"
                ))
            }
        }
    }
    if stream_body && spec.body.is_some() {
        return Err("stream_body: a streamed body reaches the plugin unread, so the host cannot validate it against a `body` schema; drop \"body\" (the plugin checks what it reads) or \"stream_body\"".into());
    }
    Ok(Registered {
        spec,
        response,
        body_limit,
        request_timeout,
        max_json_depth,
        request_id,
        stream_body,
        meta,
        info,
    })
}

/// A registered `request_timeout_ms`, in the range the config key accepts.
fn registered_timeout(value: &Value) -> Result<std::time::Duration, String> {
    value
        .as_u64()
        .filter(|ms| (1..=config::MAX_REQUEST_TIMEOUT_MS).contains(ms))
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| {
            format!(
                "request_timeout_ms must be a whole number of milliseconds from 1 to {}",
                config::MAX_REQUEST_TIMEOUT_MS
            )
        })
}

/// A registered `max_json_depth`, in the range the config key accepts (the JSON
/// parser's own limit caps it).
fn registered_json_depth(value: &Value) -> Result<usize, String> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=config::MAX_JSON_DEPTH).contains(n))
        .ok_or_else(|| {
            format!(
                "max_json_depth must be a whole number from 1 to {} (the JSON parser's own limit)",
                config::MAX_JSON_DEPTH
            )
        })
}

/// What a plugin declared with a route besides its path and method.
struct Registered {
    spec: SchemaSpec,
    response: Option<Value>,
    body_limit: Option<usize>,
    request_timeout: Option<std::time::Duration>,
    /// Overrides `server.max_json_depth`, like a config route's key.
    max_json_depth: Option<usize>,
    /// Overrides `server.request_ids`, like a config route's key.
    request_id: Option<bool>,
    stream_body: bool,
    meta: crate::openapi::RouteMeta,
    info: Option<crate::openapi::Info>,
}

/// Binds the config's routes and adds the plugins' own, in that order.
/// `plugins[i]` is the loaded form of `config.plugins[i]`, with the routes
/// it registered during `init`.
pub fn build(
    config: &Config,
    plugins: &[(Arc<LoadedPlugin>, Vec<Registration>)],
) -> Result<Vec<Route>, RouteError> {
    let mut routes: Vec<Route> = Vec::new();
    let server_limit = config.server.body_limit;

    for (i, rc) in config.routes.iter().enumerate() {
        let origin = format!("{} (routes[{i}])", rc.at);
        let fail = |message: String| RouteError {
            origin: origin.clone(),
            message,
        };
        let plugin = &plugins[rc.plugin].0;
        let handler_id = plugin
            .bind(rc.method.as_str(), &rc.path, &rc.handler, &rc.settings_json)
            .map_err(|e| {
                fail(format!(
                    "routes[{i}].handler: plugin `{}` refused handler `{}`: {e}",
                    plugin.name, rc.handler
                ))
            })?;
        let validator = RouteValidator::compile(&rc.schemas)
            .map_err(|e| fail(format!("routes[{i}].params/body: {e}")))?
            .with_max_errors(config.server.max_validation_errors);
        let response = compile_response(rc.response.as_ref())
            .map_err(|e| fail(format!("routes[{i}].response: {e}")))?;
        note_backtracking(&origin, &validator, response.as_ref().map(|(_, e)| *e));
        let response = response.map(|(validator, _)| validator);
        let policies = config
            .policies
            .for_route(&rc.policies, &rc.method, &rc.path);
        let request_timeout = rc
            .request_timeout
            .or(policies.request_timeout)
            .unwrap_or(config.server.request_timeout);
        routes.push(Route {
            method: rc.method.clone(),
            path: rc.path.clone(),
            param_names: param_names(&rc.path),
            plugin: plugin.clone(),
            handler_id,
            handler: rc.handler.clone(),
            validator,
            response,
            body_limit: rc.body_limit.unwrap_or(server_limit),
            max_json_depth: rc.max_json_depth.unwrap_or(config.server.max_json_depth),
            request_timeout,
            request_id_header: rc.request_id.unwrap_or(config.server.request_ids),
            stream_body: rc.stream_body,
            policies,
            doc: config.openapi.enabled.then(|| {
                Box::new(crate::openapi::RouteDoc {
                    schemas: rc.schemas.clone(),
                    response: rc.response.clone(),
                    meta: rc.openapi.clone(),
                    info: None,
                    stream_body: rc.stream_body,
                })
            }),
            origin: origin.clone(),
        });
    }

    for (plugin, registrations) in plugins {
        for reg in registrations {
            let origin = format!(
                "route {} {} registered by plugin `{}`",
                reg.method, reg.path, plugin.name
            );
            let fail = |message: String| RouteError {
                origin: origin.clone(),
                message,
            };
            let method = http::Method::from_bytes(reg.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| fail(format!("`{}` is not an HTTP method", reg.method)))?;
            config::check_path(&reg.path).map_err(fail)?;
            let Registered {
                spec,
                response,
                body_limit,
                request_timeout,
                max_json_depth,
                request_id,
                stream_body,
                meta,
                info,
            } = registered_schemas(&reg.schemas).map_err(fail)?;
            let validator = RouteValidator::compile(&spec)
                .map_err(fail)?
                .with_max_errors(config.server.max_validation_errors);
            let compiled = compile_response(response.as_ref()).map_err(fail)?;
            note_backtracking(&origin, &validator, compiled.as_ref().map(|(_, e)| *e));
            let doc = config.openapi.enabled.then(|| {
                Box::new(crate::openapi::RouteDoc {
                    schemas: spec,
                    response,
                    meta,
                    info,
                    stream_body,
                })
            });
            let response = compiled.map(|(validator, _)| validator);
            let policies = config
                .policies
                .for_route(&config::Level::default(), &method, &reg.path);
            let request_timeout = request_timeout
                .or(policies.request_timeout)
                .unwrap_or(config.server.request_timeout);
            routes.push(Route {
                method,
                path: reg.path.clone(),
                param_names: param_names(&reg.path),
                plugin: plugin.clone(),
                handler_id: reg.handler_id,
                handler: format!("#{}", reg.handler_id),
                validator,
                response,
                body_limit: body_limit.unwrap_or(server_limit),
                max_json_depth: max_json_depth.unwrap_or(config.server.max_json_depth),
                request_timeout,
                request_id_header: request_id.unwrap_or(config.server.request_ids),
                stream_body,
                policies,
                doc,
                origin,
            });
        }
    }

    check_clashes(&routes)?;
    Ok(routes)
}

/// Two routes for the same method and path shape, or paths the router
/// cannot tell apart, are an error naming both.
fn check_clashes(routes: &[Route]) -> Result<(), RouteError> {
    let mut shapes: matchit::Router<usize> = matchit::Router::new();
    let mut first_of_shape: Vec<(String, usize)> = Vec::new();
    for (i, route) in routes.iter().enumerate() {
        if let Some(other) = routes[..i]
            .iter()
            .find(|r| r.method == route.method && config::same_shape(&r.path, &route.path))
        {
            return Err(RouteError {
                origin: route.origin.clone(),
                message: format!(
                    "{} {} clashes with the same route at {}; remove one or change its path",
                    route.method, route.path, other.origin
                ),
            });
        }
        if first_of_shape
            .iter()
            .any(|(p, _)| config::same_shape(p, &route.path))
        {
            continue;
        }
        if let Err(e) = shapes.insert(route.path.as_str(), i) {
            let other = match &e {
                matchit::InsertError::Conflict { with } => first_of_shape
                    .iter()
                    .find(|(p, _)| p == with)
                    .map(|(_, j)| routes[*j].origin.clone())
                    .unwrap_or_else(|| with.clone()),
                _ => String::from("the route table"),
            };
            return Err(RouteError {
                origin: route.origin.clone(),
                message: format!("path {} cannot be routed next to {other}: {e}", route.path),
            });
        }
        first_of_shape.push((route.path.clone(), i));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_order() {
        assert_eq!(param_names("/a/{x}/b/{y}"), ["x", "y"]);
        assert_eq!(param_names("/f/{*rest}"), ["rest"]);
        assert!(param_names("/plain").is_empty());
    }

    #[test]
    fn values_in_order_still_encoded() {
        assert_eq!(param_values("/a/{x}/b/{y}", "/a/1/b/%ff"), ["1", "%ff"]);
        assert_eq!(param_values("/f/{*rest}", "/f/x/y%2Fz/"), ["x/y%2Fz/"]);
        assert_eq!(param_values("/i/{id}/", "/i/caf%C3%A9/"), ["caf%C3%A9"]);
        assert_eq!(param_values("/{a}/{*b}", "/1/2"), ["1", "2"]);
        assert!(param_values("/plain", "/plain").is_empty());
        // A path the template does not match yields what aligns, never a panic.
        assert_eq!(param_values("/a/{x}/{y}", "/a"), Vec::<&str>::new());
    }

    #[test]
    fn registered_schema_keys() {
        let r = registered_schemas(&serde_json::json!({
            "query": {"type": "object"}, "response": {}, "body_limit": 10, "request_timeout_ms": 250
        }))
        .unwrap();
        assert!(r.spec.query.is_some() && r.spec.body.is_none());
        assert!(r.response.is_some());
        assert_eq!(r.body_limit, Some(10));
        assert_eq!(
            r.request_timeout,
            Some(std::time::Duration::from_millis(250))
        );
        assert!(registered_schemas(&serde_json::json!({"bogus": 1})).is_err());
        assert!(
            registered_schemas(&serde_json::json!({"stream_body": true}))
                .unwrap()
                .stream_body
        );
        assert!(registered_schemas(&serde_json::json!({"stream_body": "yes"})).is_err());
        let both = registered_schemas(&serde_json::json!({"stream_body": true, "body": {}}));
        assert!(both.is_err_and(|e| e.starts_with("stream_body:") && e.contains("body")));
        assert!(registered_schemas(&serde_json::json!({"request_timeout_ms": 0})).is_err());
        let limits = registered_schemas(&serde_json::json!({
            "max_json_depth": 2, "request_id": false
        }))
        .unwrap();
        assert_eq!(limits.max_json_depth, Some(2));
        assert_eq!(limits.request_id, Some(false));
        for bad in [
            serde_json::json!({"max_json_depth": 0}),
            serde_json::json!({"max_json_depth": 128}),
            serde_json::json!({"max_json_depth": "2"}),
        ] {
            assert!(registered_schemas(&bad).is_err_and(|e| e.starts_with("max_json_depth must")));
        }
        assert!(registered_schemas(&serde_json::json!({"request_id": "no"}))
            .is_err_and(|e| e == "request_id must be true or false"));
        let documented = registered_schemas(&serde_json::json!({
            "openapi": {"summary": "s", "include": false}, "info": {"title": "T"}
        }))
        .unwrap();
        assert_eq!(documented.meta.summary.as_deref(), Some("s"));
        assert!(!documented.meta.include);
        assert_eq!(documented.info.unwrap().title.as_deref(), Some("T"));
        assert!(
            registered_schemas(&serde_json::json!({"openapi": {"tags": "x"}}))
                .is_err_and(|e| e == "openapi.tags must be a list of strings")
        );
        assert!(registered_schemas(&serde_json::json!({"info": []})).is_err());
    }
}
