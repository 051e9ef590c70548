//! `[server.security_headers]`: response headers a production API sets on every answer
//! (off by default). When the table is present the defaults of [`DEFAULTS`] are on; each key
//! of the table sets (or replaces) one header, and `false` leaves a default out. A header the
//! response already has — set by the plugin or by the pipeline — is never overwritten.
//!
//! Applied as one `tower` map-response layer around the whole router, so plugin routes,
//! host-answered paths (health, 404, 405) and Problem Details all get them. Per response it
//! costs one header-map lookup per configured header and, when absent, one insert of a
//! pre-built name and value (reference-counted clones, no parsing).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use axum::Router;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use toml::Spanned;

/// The headers that are on when the table is present, unless it says `false` for them.
/// `strict-transport-security` is not among them: it only makes sense behind TLS, so it is
/// sent only when configured.
pub const DEFAULTS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cross-origin-resource-policy", "same-origin"),
];

/// Headers that describe the message's framing or the connection: the host and hyper own
/// them, so a policy may not set them.
const REFUSED: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// The table as written: header name → string value, or `false` to leave a default out.
pub type RawSecurityHeaders = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

pub use super::Mistake;

/// The resolved set, built once at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    /// Checks the table: names must be valid header names (not framing ones), values valid
    /// header values (visible ASCII and spaces) or `false`.
    pub fn resolve(raw: &RawSecurityHeaders) -> Result<Self, Mistake> {
        let mut chosen: Vec<(HeaderName, Option<HeaderValue>)> = DEFAULTS
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_static(n),
                    Some(HeaderValue::from_static(v)),
                )
            })
            .collect();
        for (name, value) in raw {
            let field = format!("server.security_headers.{}", name.get_ref());
            let header = HeaderName::from_bytes(name.get_ref().as_bytes()).map_err(|_| {
                (
                    name.span().start,
                    field.clone(),
                    format!(
                        "`{}` is not a valid header name; use letters, digits and '-', e.g. \"x-frame-options\"",
                        name.get_ref()
                    ),
                )
            })?;
            if REFUSED.contains(&header.as_str()) {
                return Err((
                    name.span().start,
                    field,
                    format!("`{header}` frames the message and is set by the host; remove it from the table"),
                ));
            }
            let value = match value.get_ref() {
                toml::Value::Boolean(false) => None,
                toml::Value::String(text) => Some(HeaderValue::from_str(text).map_err(|_| {
                    (
                        value.span().start,
                        field.clone(),
                        format!("{text:?} is not a valid header value; use visible ASCII characters and spaces only"),
                    )
                })?),
                _ => {
                    return Err((
                        value.span().start,
                        field,
                        "must be a string (the header's value) or false (leave a default header out)".into(),
                    ))
                }
            };
            match chosen.iter_mut().find(|(n, _)| *n == header) {
                Some(slot) => slot.1 = value,
                None => chosen.push((header, value)),
            }
        }
        Ok(SecurityHeaders {
            headers: chosen
                .into_iter()
                .filter_map(|(n, v)| v.map(|v| (n, v)))
                .collect(),
        })
    }

    /// Adds each header the response does not already have.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }

    /// Wraps the whole router (routes and fallbacks: call it last) so every response gets them.
    pub fn layer(self: Arc<Self>, router: Router) -> Router {
        router.layer(tower::util::MapResponseLayer::new(
            move |mut response: Response| {
                self.apply(response.headers_mut());
                response
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<SecurityHeaders, Mistake> {
        let raw: RawSecurityHeaders = toml::from_str(text).expect("toml");
        SecurityHeaders::resolve(&raw)
    }

    fn names(set: &SecurityHeaders) -> Vec<&str> {
        set.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn an_empty_table_gives_the_defaults() {
        let set = resolve("").unwrap();
        assert_eq!(names(&set), DEFAULTS.map(|(n, _)| n).to_vec());
    }

    #[test]
    fn keys_replace_add_and_remove() {
        let set = resolve(
            "x-frame-options = \"SAMEORIGIN\"\nStrict-Transport-Security = \"max-age=63072000\"\ncontent-security-policy = false\n",
        )
        .unwrap();
        let got: Vec<(&str, &str)> = set
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert!(got.contains(&("x-frame-options", "SAMEORIGIN")));
        assert!(got.contains(&("strict-transport-security", "max-age=63072000")));
        assert!(!got.iter().any(|(n, _)| *n == "content-security-policy"));
        assert_eq!(got.len(), DEFAULTS.len());
    }

    #[test]
    fn bad_names_values_and_framing_headers_are_refused() {
        let (_, field, message) = resolve("\"bad name\" = \"x\"").unwrap_err();
        assert_eq!(field, "server.security_headers.bad name");
        assert!(message.contains("not a valid header name"), "{message}");
        let (_, _, message) = resolve("x-a = \"line\\nbreak\"").unwrap_err();
        assert!(message.contains("not a valid header value"), "{message}");
        let (_, _, message) = resolve("x-a = true").unwrap_err();
        assert!(message.contains("must be a string"), "{message}");
        let (_, _, message) = resolve("content-length = \"1\"").unwrap_err();
        assert!(message.contains("set by the host"), "{message}");
    }

    #[test]
    fn headers_the_response_has_are_kept() {
        let set = resolve("").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
        set.apply(&mut headers);
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
}
