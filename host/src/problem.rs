//! RFC 9457 Problem Details: the one shape every error response of the host
//! takes, so clients parse one format whatever went wrong.

use axum::response::{IntoResponse, Response};
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use http::StatusCode;
use serde::Serialize;

use crate::validation::{FieldError, FieldErrors};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response before rendering: status, a stable slug for the
/// `type` URI, a human detail and, for validation, every field error.
#[derive(Debug)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// Last segment of the `type` URI, e.g. `validation-error`.
    pub slug: &'static str,
    /// Short summary, the same for every occurrence of this kind.
    pub title: &'static str,
    /// What went wrong with this request.
    pub detail: String,
    /// Field errors of a 422.
    pub errors: Vec<FieldError>,
    /// How many more field errors the request had than `errors` lists.
    pub errors_omitted: usize,
    /// Other headers the answer needs (`WWW-Authenticate` of a 401, `Vary` of a CORS 403).
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    request_id: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(skip_serializing_if = "is_zero")]
    errors_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Problem {
    /// A problem of the given kind.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            errors_omitted: 0,
            headers: Vec::new(),
        }
    }

    /// 422: the request did not match the route's schemas. When more errors were found
    /// than listed, `detail` says so and `errors_omitted` counts the others.
    pub fn validation(errors: FieldErrors) -> Self {
        let total = errors.total();
        let (errors, errors_omitted) = errors.into_parts();
        let mut detail = format!(
            "{total} validation error{} in request",
            if total == 1 { "" } else { "s" }
        );
        if errors_omitted > 0 {
            match errors.len() {
                1 => detail.push_str("; the first is listed"),
                n => detail.push_str(&format!("; the first {n} are listed")),
            }
        }
        Problem {
            errors,
            errors_omitted,
            ..Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation-error",
                "Request Validation Failed",
                detail,
            )
        }
    }

    /// 404: no route has this path.
    pub fn not_found(path: &str) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("no route matches {path}"),
        )
    }

    /// 405: the path exists for other methods, listed in `Allow`.
    pub fn method_not_allowed(method: &http::Method, allow: &str) -> Self {
        let problem = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method Not Allowed",
            format!("{method} is not allowed here; allowed: {allow}"),
        );
        match HeaderValue::from_str(allow) {
            Ok(value) => problem.with_header(ALLOW, value),
            Err(_) => problem,
        }
    }

    /// 413: the body is larger than the route's limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload Too Large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 415: the body's media type is not one the route accepts.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported Media Type",
            detail,
        )
    }

    /// 400: the request could not be read (malformed JSON, bad encoding).
    pub fn bad_request(slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, slug, title, detail)
    }

    /// 500: the plugin failed; the details go to the log, not the client.
    pub fn plugin_failure() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-server-error",
            "Internal Server Error",
            "the request handler failed; the server log has details under this request id",
        )
    }

    /// 504: the plugin did not answer within the request timeout.
    pub fn timeout(ms: u128) -> Self {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "gateway-timeout",
            "Gateway Timeout",
            format!("the request handler did not answer within {ms} ms"),
        )
    }

    /// 503: the route's plugin already holds its `max_in_flight` requests; the client may
    /// retry in a second. The log names the plugin, the client is not told.
    pub fn overloaded() -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Service Overloaded",
            "the server is handling as many requests for this route as it allows; retry shortly",
        )
        .with_retry_after(1)
    }

    /// The same problem telling the client when to retry (`Retry-After`, in seconds) — a 503
    /// or a 429.
    #[must_use]
    pub fn with_retry_after(self, seconds: u32) -> Self {
        self.with_header(RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// The `Retry-After` seconds the answer will carry, if any.
    #[cfg(test)]
    pub fn retry_after(&self) -> Option<u32> {
        self.headers
            .iter()
            .find(|(name, _)| name == RETRY_AFTER)
            .and_then(|(_, value)| value.to_str().ok()?.parse().ok())
    }

    /// The same problem with one more response header.
    #[must_use]
    pub fn with_header(mut self, name: http::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A status and detail chosen by a plugin through `respond_error`.
    pub fn from_plugin(status: StatusCode, detail: String) -> Self {
        let (slug, title) = kind_of(status);
        Problem::new(status, slug, title, detail)
    }

    /// Renders the response. `type` is `base` + slug, or `about:blank`
    /// (whose title must then be the status phrase) without a base.
    pub fn render(&self, base: Option<&str>, request_id: &str) -> Response {
        let kind;
        let (kind, title) = match base {
            Some(base) => {
                kind = format!("{base}{}", self.slug);
                (kind.as_str(), self.title)
            }
            None => (
                "about:blank",
                self.status.canonical_reason().unwrap_or(self.title),
            ),
        };
        let body = Body {
            kind,
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            request_id,
            errors: &self.errors,
            errors_omitted: self.errors_omitted,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        response
    }
}

/// Slug and title for a status a plugin chose.
fn kind_of(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad-request", "Bad Request"),
        401 => ("unauthorized", "Unauthorized"),
        403 => ("forbidden", "Forbidden"),
        404 => ("not-found", "Not Found"),
        405 => ("method-not-allowed", "Method Not Allowed"),
        409 => ("conflict", "Conflict"),
        410 => ("gone", "Gone"),
        413 => ("payload-too-large", "Payload Too Large"),
        415 => ("unsupported-media-type", "Unsupported Media Type"),
        422 => ("unprocessable-content", "Unprocessable Content"),
        429 => ("too-many-requests", "Too Many Requests"),
        501 => ("not-implemented", "Not Implemented"),
        502 => ("bad-gateway", "Bad Gateway"),
        503 => ("service-unavailable", "Service Unavailable"),
        504 => ("gateway-timeout", "Gateway Timeout"),
        _ if status.is_client_error() => ("client-error", "Client Error"),
        _ => ("internal-server-error", "Internal Server Error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn renders_with_base_and_without() {
        let p = Problem::method_not_allowed(&http::Method::PUT, "GET, POST");
        let r = p.render(Some("https://spikard.dev/errors/"), "abc");
        assert_eq!(r.headers()[ALLOW], "GET, POST");
        assert_eq!(r.headers()[CONTENT_TYPE], PROBLEM_JSON);
        let body = json(r).await;
        assert_eq!(
            body["type"],
            "https://spikard.dev/errors/method-not-allowed"
        );
        assert_eq!(body["status"], 405);
        assert_eq!(body["request_id"], "abc");
        let body = json(Problem::validation(FieldErrors::new(1)).render(None, "")).await;
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Unprocessable Entity");
        assert!(body.get("request_id").is_none());
    }
}
