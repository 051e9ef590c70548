//! One request's way through the host: read the body within its limit,
//! check its media type, validate everything, hand it to the plugin, wait
//! for the answer within the timeout, and turn every failure on the way
//! into Problem Details.
//!
//! A streamed answer (`stream_start`) ends the wait: the head is sent at once and the body
//! follows as the plugin writes it ([`streamed`]), chunked, with no request timeout on it
//! (only the client leaving or the server stopping end it early). The route's response
//! schema is not checked on a stream: its body is not there to check when the head leaves.
//! The request's metrics count the head; its access line is written when the body ends.
//!
//! A route with `stream_body` is handed over before its body is read: only a
//! `Content-Length` over the limit is refused first (413). The plugin pulls the body with
//! `body_next` (`crate::plugin::responders::body_stream`), which enforces the limit and the
//! read timeout chunk by chunk and answers 413/408/400 for the plugin when the body fails.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, TRAILER};
use http::StatusCode;
use spikard_abi::ffi;

use super::access::{Access, Outcome};
use super::preflight::Preflight;
use super::request_id::RequestIds;
use super::{streamed, ConnInfo};
use crate::media_type::{is_json_essence, Malformed, MediaType};
use crate::multipart::{self, Part};
use crate::plugin::admission::Permit;
use crate::plugin::host_api::Answer;
use crate::plugin::pending::{Pending, ResponseStream};
use crate::plugin::responders::body_stream::{BodyLimits, Inbound};
use crate::problem::Problem;
use crate::routes::Route;
use crate::validation::{self, Decoded, RequestInput};

/// `params_json` of a request to a route without schemas, path parameters
/// or query.
const NO_PARAMS: &str = r#"{"path":{},"query":{},"headers":{},"cookies":{}}"#;

/// What every request needs besides its route.
pub struct Shared {
    /// Prefix of Problem Details `type` URIs.
    pub problem_base: Option<String>,
    /// Log one line per request.
    pub access_log: bool,
    /// The header a client's request id comes in and the response's id goes out.
    pub request_id_header: http::HeaderName,
    /// Whether responses not answered by a route (404, 405) carry the request id header.
    pub request_ids: bool,
    /// How long the client may take to send a body.
    pub body_read_timeout: Duration,
    /// Request id generator.
    pub ids: RequestIds,
    /// `[server.cors]`: 404 and 405 answers to an allowed origin carry its headers too, so a
    /// browser app can read them.
    pub cors: Option<Arc<crate::middleware::cors::Cors>>,
}

impl Shared {
    /// Renders a problem with this server's `type` base.
    pub fn render(&self, problem: &Problem, request_id: &str) -> Response {
        problem.render(self.problem_base.as_deref(), request_id)
    }
}

/// Serves one request on `route`; never fails: errors become Problem Details.
pub async fn dispatch(
    route: Arc<Route>,
    shared: Arc<Shared>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
) -> Response {
    let request_id = shared
        .ids
        .for_request(request.headers().get(&shared.request_id_header));
    // Written when the response leaves, or when this future is dropped before.
    let access = Access::start(
        shared.access_log,
        request.method(),
        request.uri(),
        &request_id,
    );
    let mut outcome = Outcome::Answered;
    // A HEAD request's streamed body is dropped unsent (axum strips it): that is its end.
    let head_only = request.method() == http::Method::HEAD;
    // A cross-origin request from an origin the route's CORS policy refuses never reaches
    // the plugin; an allowed one gets its CORS headers on every answer, errors included.
    let cors = route.policies.cors.as_deref();
    let mut allowed = None;
    let result = match cors.map(|cors| cors.check(request.headers())) {
        Some(Err(refused)) => Err(refused),
        Some(Ok(origin)) => {
            allowed = origin;
            run(&route, &shared, &request_id, params, request).await
        }
        None => run(&route, &shared, &request_id, params, request).await,
    };
    let (mut response, stream) = match result {
        Ok(Reply::Full(response)) => (response, None),
        Ok(Reply::Stream(head, body)) => (head, Some(body)),
        Err(problem) => {
            crate::middleware::metrics::rejected(&problem);
            if problem.status == StatusCode::GATEWAY_TIMEOUT {
                outcome = Outcome::Timeout;
            }
            (shared.render(&problem, &request_id), None)
        }
    };
    if let (Some(cors), Some(allowed)) = (cors, &allowed) {
        cors.decorate(allowed, response.headers_mut());
    }
    let header = route.request_id_header.then_some(&shared.request_id_header);
    match stream {
        None => access.finish(response, outcome, header),
        Some(body) => {
            let line = access.defer(&mut response, header);
            streamed::response(response, body, line, head_only, request_id, &shared)
        }
    }
}

/// What a route's pipeline produced.
enum Reply {
    /// A whole response.
    Full(Response),
    /// The head of a streamed response (its body empty) and the body to send after it.
    Stream(Response, ResponseStream),
}

/// The body as the validator sees it.
enum Parsed<'b> {
    Empty,
    Json(serde_json::Value),
    Form,
    Multipart(Vec<Part<'b>>),
    Opaque,
}

/// Whether JSON text nests arrays and objects deeper than `max` levels (`{}` is one level).
/// A byte scan that only tracks strings and brackets, so it is cheap and runs before the
/// parser; malformed JSON is left for the parser to report.
fn json_too_deep(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Reads and classifies the body for a route with a body schema.
fn parse_body<'b>(
    route: &Route,
    headers: &http::HeaderMap,
    body: &'b [u8],
) -> Result<Parsed<'b>, Problem> {
    if !route.validator.has_body_schema() {
        return Ok(Parsed::Opaque);
    }
    let media = match MediaType::of(headers) {
        None => None,
        Some(Ok(media)) => Some(media),
        Some(Err(Malformed(why))) => {
            return Err(Problem::bad_request(
                "malformed-content-type",
                "Malformed Content-Type",
                format!("the Content-Type header cannot be read: {why}"),
            ))
        }
    };
    // No Content-Type: JSON, as the README documents.
    let essence = media
        .as_ref()
        .map_or("application/json", MediaType::essence);
    if essence == "multipart/form-data" {
        // Checked even without a body: the header itself is unusable.
        let boundary = media
            .as_ref()
            .and_then(multipart::boundary)
            .ok_or_else(|| {
                Problem::bad_request(
                    "missing-boundary",
                    "Missing Multipart Boundary",
                    "multipart/form-data requires a 'boundary' parameter in Content-Type (1 to 200 printable ASCII characters)",
                )
            })?;
        if body.is_empty() {
            return Ok(Parsed::Empty);
        }
        let malformed = |m: String| {
            Problem::bad_request(
                "malformed-multipart",
                "Malformed Multipart",
                format!("Failed to parse multipart/form-data: {m}"),
            )
        };
        let parts = multipart::parse(body, &boundary).map_err(malformed)?;
        validation::check_indices(parts.iter().map(|p| p.name.as_str())).map_err(malformed)?;
        return Ok(Parsed::Multipart(parts));
    }
    if body.is_empty() {
        return Ok(Parsed::Empty);
    }
    if is_json_essence(essence) {
        let charset = media.as_ref().and_then(|m| m.param("charset"));
        if let Some(charset) =
            charset.filter(|c| !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("utf8"))
        {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-charset",
                "Unsupported Charset",
                format!(
                    "Unsupported charset '{}' for JSON. Only UTF-8 is supported.",
                    charset.to_ascii_lowercase()
                ),
            ));
        }
        if json_too_deep(body, route.max_json_depth) {
            return Err(Problem::bad_request(
                "json-too-deep",
                "JSON Nesting Too Deep",
                format!(
                    "the request body nests arrays and objects deeper than the limit of {} levels",
                    route.max_json_depth
                ),
            ));
        }
        let value = serde_json::from_slice(body).map_err(|e| {
            Problem::bad_request(
                "malformed-json",
                "Malformed JSON",
                format!("the request body is not valid JSON: {e}"),
            )
        })?;
        // What serde_json refused before it kept numbers exact; plugins cannot hold these.
        if let Some(number) = validation::find_out_of_range(&value) {
            return Err(Problem::bad_request(
                "malformed-json",
                "Malformed JSON",
                format!(
                    "the request body holds a number out of range, {number}: integers may have at most {} digits, other numbers must fit a 64-bit float",
                    validation::MAX_INT_DIGITS
                ),
            ));
        }
        return Ok(Parsed::Json(value));
    }
    if essence == "application/x-www-form-urlencoded" {
        validation::check_form_indices(body).map_err(|m| {
            Problem::bad_request(
                "malformed-form",
                "Malformed Form",
                format!("Failed to parse URL-encoded form data: {m}"),
            )
        })?;
        return Ok(Parsed::Form);
    }
    Err(Problem::unsupported_media_type(format!(
        "Unsupported media type `{essence}`; this route accepts application/json, application/x-www-form-urlencoded or multipart/form-data"
    )))
}

async fn run(
    route: &Route,
    shared: &Shared,
    request_id: &str,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
) -> Result<Reply, Problem> {
    let (parts, body) = request.into_parts();
    let path_values = path_values(route, &params, parts.uri.path())?;
    let principal = super::gate::pass(route, &parts)?;
    let (body, inbound) = if route.stream_body {
        let limits = BodyLimits {
            limit: route.body_limit,
            declared: super::body::declared_within(&parts.headers, route.body_limit)?,
            timeout: shared.body_read_timeout,
        };
        let runtime = tokio::runtime::Handle::current();
        let inbound = Inbound::new(body, limits, runtime, route.plugin.clone());
        (axum::body::Bytes::new(), Some(inbound))
    } else {
        let body = super::body::read(
            body,
            &parts.headers,
            route.body_limit,
            shared.body_read_timeout,
        )
        .await?;
        (body, None)
    };

    let parsed = parse_body(route, &parts.headers, &body)?;
    let input = RequestInput {
        path: &path_values,
        query: parts.uri.query(),
        headers: &parts.headers,
        body: match &parsed {
            Parsed::Json(value) => validation::Body::Json(value),
            Parsed::Form => validation::Body::Form(&body),
            Parsed::Multipart(parts) => validation::Body::Multipart(parts),
            Parsed::Empty | Parsed::Opaque => validation::Body::None,
        },
    };
    let params_json: Cow<'static, str> = if route.validator.is_empty()
        && path_values.is_empty()
        && input.query.is_none_or(str::is_empty)
        && principal.is_none()
    {
        // Nothing to validate or report: the common case of a plain route.
        Cow::Borrowed(NO_PARAMS)
    } else {
        let mut validated = route
            .validator
            .validate(&input)
            .map_err(Problem::validation)?;
        if let (Some(principal), Some(params)) = (principal, validated.params.as_object_mut()) {
            params.insert("auth".to_owned(), principal);
        }
        Cow::Owned(serde_json::to_string(&validated.params).unwrap_or_else(|_| "{}".into()))
    };

    let permit = route.plugin.admit().ok_or_else(Problem::overloaded)?;
    // Dropping `pending` unanswered (the timeout below, or this future dropped when the
    // client leaves or the server abandons it) cancels the plugin's work.
    let pending = hand_over(
        route,
        permit,
        request_id,
        &parts,
        &params_json,
        &body,
        inbound,
    );
    let Some(answer) = await_answer(pending, route.request_timeout).await else {
        tracing::warn!(plugin = %route.plugin.name, request_id, "no answer within {:?}", route.request_timeout);
        return Err(Problem::timeout(route.request_timeout.as_millis()));
    };
    answer_to_reply(route, shared, request_id, &parts, answer)
}

/// Turns the plugin's answer into the response (or the head and body of a stream).
fn answer_to_reply(
    route: &Route,
    shared: &Shared,
    request_id: &str,
    parts: &http::request::Parts,
    answer: Answer,
) -> Result<Reply, Problem> {
    match answer {
        Answer::Response {
            status,
            headers,
            body,
        } => {
            if let Some(schema) = &route.response {
                check_response(schema, &headers, &body).map_err(|message| {
                    tracing::error!(plugin = %route.plugin.name, request_id, "response does not match the route's response schema: {message}");
                    Problem::plugin_failure()
                })?;
            }
            let mut response = (status, body).into_response();
            *response.headers_mut() = headers;
            Ok(Reply::Full(response))
        }
        Answer::Stream {
            status,
            headers,
            mut body,
        } => {
            let trailers = streamed::accepts_trailers(&parts.headers);
            if trailers && !headers.contains_key(TRAILER) {
                tracing::debug!(plugin = %route.plugin.name, request_id, "streamed head without a Trailer header: trailers, if any, are not sent (declare their names in it)");
            }
            body.send_trailers(trailers);
            let mut head = Response::new(Body::empty());
            *head.status_mut() = status;
            *head.headers_mut() = headers;
            Ok(Reply::Stream(head, body))
        }
        Answer::Problem {
            status,
            detail,
            headers,
        } => {
            if status == StatusCode::SERVICE_UNAVAILABLE {
                // Overload is answered per request but reported per episode by whoever
                // refused (the plugin's queues, the host's max_in_flight): one ERROR line per
                // refused request would flood the log exactly when the server is busiest.
                tracing::debug!(plugin = %route.plugin.name, request_id, "plugin answered 503: {detail}");
            } else if status.is_server_error() {
                tracing::error!(plugin = %route.plugin.name, request_id, status = status.as_u16(), "plugin error: {detail}");
            }
            let mut response = shared.render(&Problem::from_plugin(status, detail), request_id);
            for (name, value) in &headers {
                if name != CONTENT_TYPE {
                    response.headers_mut().append(name, value.clone());
                }
            }
            Ok(Reply::Full(response))
        }
        Answer::Invalid(reason) => {
            tracing::error!(plugin = %route.plugin.name, request_id, "invalid response from the plugin: {reason}");
            Err(Problem::plugin_failure())
        }
        Answer::Refused(problem) => Err(problem),
    }
}

/// The route's path parameters by name, percent-decoded. The router refuses a value that is
/// not UTF-8 without giving it; such values are read from the path as sent instead, so that
/// validation reports them (`string_unicode` at `["path", name]`) with the other errors.
fn path_values<'r>(
    route: &'r Route,
    params: &'r Result<RawPathParams, RawPathParamsRejection>,
    path: &'r str,
) -> Result<Vec<(&'r str, Decoded<'r>)>, Problem> {
    let names = route.param_names.iter().map(String::as_str);
    match params {
        Ok(params) => Ok(names
            .zip(params.iter().map(|(_, v)| Decoded::Text(Cow::Borrowed(v))))
            .collect()),
        Err(RawPathParamsRejection::InvalidUtf8InPathParam(_)) => Ok(names
            .zip(
                crate::routes::param_values(&route.path, path)
                    .into_iter()
                    .map(Decoded::percent_decoded),
            )
            .collect()),
        Err(e) => Err(Problem::bad_request(
            "invalid-path",
            "Invalid Path",
            format!("the path could not be decoded: {e}"),
        )),
    }
}

/// The plugin's answer within `timeout`, or `None` (the wait, dropped, cancelled the
/// request). A plugin that answered inside `handle` (most Rust and C handlers) costs no
/// timer and no await.
async fn await_answer(mut pending: Pending<'_>, timeout: Duration) -> Option<Answer> {
    if let Some(answer) = pending.now() {
        return Some(answer);
    }
    tokio::time::timeout(timeout, pending).await.ok()
}

/// The request line's version as plugins see it.
fn version_text(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Builds the borrowed `spk_request` and calls the plugin. Synchronous so
/// the raw pointers never live across an `.await`. `inbound` is a streamed body (then
/// `body` is empty and the request's flags say `BODY_STREAMED`).
fn hand_over<'a>(
    route: &'a Route,
    permit: Permit,
    request_id: &'a str,
    parts: &http::request::Parts,
    params_json: &str,
    body: &[u8],
    inbound: Option<Inbound>,
) -> Pending<'a> {
    // Headers borrowed as they are; only values that are not UTF-8 are
    // copied (lossily) into `converted`, whose strings' buffers stay put
    // until the call returns even when the vector grows.
    let mut converted: Vec<String> = Vec::new();
    let headers: Vec<ffi::Header> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = match value.to_str() {
                Ok(text) => ffi::Str::new(text),
                Err(_) => {
                    converted.push(String::from_utf8_lossy(value.as_bytes()).into_owned());
                    converted
                        .last()
                        .map_or(ffi::Str::EMPTY, |s| ffi::Str::new(s))
                }
            };
            ffi::Header {
                name: ffi::Str::new(name.as_str()),
                value,
            }
        })
        .collect();
    let conn = ConnInfo::of(&parts.extensions);
    let request = ffi::Request {
        struct_size: std::mem::size_of::<ffi::Request>(),
        handler_id: route.handler_id,
        request_id: ffi::Str::new(request_id),
        method: ffi::Str::new(parts.method.as_str()),
        path: ffi::Str::new(parts.uri.path()),
        query: ffi::Str::new(parts.uri.query().unwrap_or("")),
        headers: headers.as_ptr(),
        headers_len: headers.len(),
        params_json: ffi::Str::new(params_json),
        body: ffi::Bytes::new(body),
        client_addr: ffi::Str::new(conn.map_or("", ConnInfo::peer_text)),
        local_addr: ffi::Str::new(conn.map_or("", ConnInfo::local_text)),
        scheme: ffi::Str::new("http"),
        http_version: ffi::Str::new(version_text(parts.version)),
        route: ffi::Str::new(&route.path),
        // The timer starts when `handle` returns: all of it is left.
        timeout_ms: u64::try_from(route.request_timeout.as_millis()).unwrap_or(u64::MAX),
        flags: if inbound.is_some() {
            ffi::request_flags::BODY_STREAMED
        } else {
            0
        },
    };
    route.plugin.handle(&request, request_id, permit, inbound)
}

/// Validates a JSON response against the route's response schema.
fn check_response(
    schema: &jsonschema::Validator,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let json = matches!(MediaType::of(headers), Some(Ok(media)) if media.is_json());
    if !json {
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    match validation::response_mismatch(schema, &value) {
        None => Ok(()),
        Some(why) => Err(why),
    }
}

/// The answer to a path no route has.
pub async fn not_found(shared: Arc<Shared>, request: Request<Body>) -> Response {
    let problem = Problem::not_found(request.uri().path());
    refuse(&shared, &problem, &request)
}

/// The answer to a method a path does not have.
pub async fn method_not_allowed(
    shared: Arc<Shared>,
    allow: Arc<str>,
    request: Request<Body>,
) -> Response {
    let problem = Problem::method_not_allowed(request.method(), &allow);
    refuse(&shared, &problem, &request)
}

/// A request refused before reaching a route: rendered, tagged and logged
/// like any other.
fn refuse(shared: &Shared, problem: &Problem, request: &Request<Body>) -> Response {
    let headers = request.headers();
    answer_unrouted(shared, request.method(), request.uri(), headers, |id| {
        let mut response = shared.render(problem, id);
        if let Some(cors) = &shared.cors {
            if let Ok(Some(allowed)) = cors.check(headers) {
                cors.decorate(&allowed, response.headers_mut());
            }
        }
        response
    })
}

/// [`refuse`] for a request known by its parts (the static file service's errors).
pub fn refuse_parts(shared: &Shared, problem: &Problem, parts: &http::request::Parts) -> Response {
    answer_unrouted(shared, &parts.method, &parts.uri, &parts.headers, |id| {
        shared.render(problem, id)
    })
}

/// A CORS preflight, answered by the host (see [`super::preflight`]).
pub fn preflight(shared: &Shared, preflight: &Preflight, request: &Request<Body>) -> Response {
    let headers = request.headers();
    answer_unrouted(
        shared,
        request.method(),
        request.uri(),
        headers,
        |id| match preflight
            .policy(headers)
            .preflight(headers, preflight.methods())
        {
            Ok(response) => response,
            Err(problem) => shared.render(&problem, id),
        },
    )
}

/// An answer the host makes without a route's pipeline, with its request id and access line.
fn answer_unrouted(
    shared: &Shared,
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    answer: impl FnOnce(&str) -> Response,
) -> Response {
    let request_id = shared
        .ids
        .for_request(headers.get(&shared.request_id_header));
    let access = Access::start(shared.access_log, method, uri, &request_id);
    let header = shared.request_ids.then_some(&shared.request_id_header);
    access.finish(answer(&request_id), Outcome::Answered, header)
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_is_counted_outside_strings() {
        assert!(!json_too_deep(b"{}", 1));
        assert!(!json_too_deep(b"[1, {}]", 2));
        assert!(json_too_deep(b"[1, {}]", 1));
        assert!(!json_too_deep(br#"{"a": "[[[{{{"}"#, 1));
        assert!(!json_too_deep(br#"{"a": "\"[[[{{{"}"#, 1));
        assert!(json_too_deep(br#"{"a": "\\", "b": [[]]}"#, 2));
        assert!(
            !json_too_deep(b"]]]]{}", 1),
            "malformed input is the parser's to report"
        );
    }

    #[test]
    fn the_largest_depth_limit_is_within_the_parsers() {
        let max = crate::config::MAX_JSON_DEPTH;
        let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(!json_too_deep(nested(max).as_bytes(), max));
        assert!(json_too_deep(nested(max + 1).as_bytes(), max));
        assert!(serde_json::from_str::<serde_json::Value>(&nested(max)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&nested(max + 1)).is_err());
    }
}
