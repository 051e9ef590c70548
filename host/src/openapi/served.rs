//! Bytes the host answers itself from memory (the document, the docs page and its assets),
//! with an `ETag` computed once so that a client's `If-None-Match` gets a 304 without the
//! body.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, StatusCode};

/// `Cache-Control` of what may change when the config or the plugins change: revalidate
/// with the `ETag` every time.
pub const REVALIDATE: &str = "no-cache";
/// `Cache-Control` of an asset whose path names its version: it never changes.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One answer held in memory.
#[derive(Clone)]
pub struct Served {
    body: Bytes,
    content_type: HeaderValue,
    etag: HeaderValue,
    cache_control: HeaderValue,
    csp: Option<HeaderValue>,
}

impl Served {
    /// `body` served as `content_type` with the given `Cache-Control`.
    pub fn new(body: Bytes, content_type: &'static str, cache_control: &'static str) -> Served {
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(&body)))
            .expect("hex digits in quotes are a header value");
        Served {
            body,
            content_type: HeaderValue::from_static(content_type),
            etag,
            cache_control: HeaderValue::from_static(cache_control),
            csp: None,
        }
    }

    /// The same, with this `Content-Security-Policy` (which the security headers layer then
    /// leaves alone).
    pub fn with_csp(mut self, csp: &'static str) -> Served {
        self.csp = Some(HeaderValue::from_static(csp));
        self
    }

    /// The answer to a GET or HEAD with these request headers: 304 when the client's
    /// `If-None-Match` names this `ETag`, else 200 with the body.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let fresh = request
            .get_all(IF_NONE_MATCH)
            .iter()
            .any(|value| matches_etag(value, &self.etag));
        let (status, body) = if fresh {
            (StatusCode::NOT_MODIFIED, Body::empty())
        } else {
            (StatusCode::OK, Body::from(self.body.clone()))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        if !fresh {
            headers.insert(CONTENT_TYPE, self.content_type.clone());
        }
        headers.insert(ETAG, self.etag.clone());
        headers.insert(CACHE_CONTROL, self.cache_control.clone());
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if let Some(csp) = &self.csp {
            headers.insert(CONTENT_SECURITY_POLICY, csp.clone());
        }
        response
    }
}

/// Whether an `If-None-Match` value (`*`, or a list of entity tags, weak or strong) names
/// `etag` (weak comparison, as RFC 9110 §13.1.2 asks for GET).
fn matches_etag(value: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let ours = etag.to_str().unwrap_or_default();
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

/// 64-bit FNV-1a: a stable fingerprint of the bytes for the `ETag` (not a security hash).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_gets_a_304() {
        let served = Served::new(Bytes::from_static(b"{}"), "application/json", REVALIDATE);
        let ok = served.respond(&HeaderMap::new());
        assert_eq!(ok.status(), StatusCode::OK);
        let etag = ok.headers()[ETAG].clone();
        for sent in [
            etag.to_str().unwrap().to_owned(),
            format!("\"x\", W/{}", etag.to_str().unwrap()),
            "*".into(),
        ] {
            let mut request = HeaderMap::new();
            request.insert(IF_NONE_MATCH, HeaderValue::from_str(&sent).unwrap());
            assert_eq!(
                served.respond(&request).status(),
                StatusCode::NOT_MODIFIED,
                "{sent}"
            );
        }
        let mut request = HeaderMap::new();
        request.insert(IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert_eq!(served.respond(&request).status(), StatusCode::OK);
    }
}
