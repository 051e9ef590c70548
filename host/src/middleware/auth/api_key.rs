//! `[...auth.api_key]`: static keys sent in a header (`X-API-Key` by default) or, when
//! `query` names one, a query parameter. Several keys may be valid at once, so a key can be
//! rotated without downtime. The request's key is compared with every configured key in time
//! that depends only on the lengths (no early exit on the first differing byte, no skipping
//! the remaining keys once one matched), so response timing does not reveal a key's prefix.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use percent_encoding::percent_decode;
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::jwt::env_value;
use super::{static_challenge, unauthorized, Mistake, REALM};
use crate::problem::Problem;

/// The header read when `header` is not set.
pub const DEFAULT_HEADER: &str = "X-API-Key";

/// The API key table as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    /// The valid keys (or use `keys_env`).
    keys: Option<Spanned<Vec<Spanned<String>>>>,
    /// Environment variable holding the valid keys, comma-separated.
    keys_env: Option<Spanned<String>>,
    /// Header carrying the key (default `X-API-Key`).
    header: Option<Spanned<String>>,
    /// Query parameter also accepted (off unless set).
    query: Option<Spanned<String>>,
}

/// The resolved API key scheme.
pub struct ApiKeyAuth {
    keys: Vec<Box<[u8]>>,
    header: HeaderName,
    query: Option<String>,
    /// "Expected 'X-API-Key' header ... with valid API key".
    missing: String,
    /// The same with the bearer token named first, for when both schemes are on.
    missing_with_bearer: String,
    /// `ApiKey realm="api", header="X-API-Key"`.
    challenge: HeaderValue,
}

impl std::fmt::Debug for ApiKeyAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyAuth")
            .field("keys", &self.keys.len())
            .field("header", &self.header)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl ApiKeyAuth {
    /// Checks the table (`at` is its offset, for mistakes about a missing key) and loads the
    /// keys, from `keys_env` at start-up when set.
    pub fn resolve(raw: &RawApiKey, at: usize, field: &str) -> Result<ApiKeyAuth, Mistake> {
        let keys = keys(raw, at, field)?;
        let (header, header_text) = match &raw.header {
            None => (
                HeaderName::from_static("x-api-key"),
                DEFAULT_HEADER.to_owned(),
            ),
            Some(name) => {
                let parsed = HeaderName::from_bytes(name.get_ref().as_bytes()).map_err(|_| {
                    (
                        name.span().start,
                        format!("{field}.header"),
                        format!("`{}` is not a valid header name; use letters, digits and '-', e.g. \"X-API-Key\"", name.get_ref()),
                    )
                })?;
                (parsed, name.get_ref().clone())
            }
        };
        let query = match &raw.query {
            Some(name) if name.get_ref().is_empty() => {
                return Err((name.span().start, format!("{field}.query"), "is empty; name the query parameter, e.g. \"api_key\", or remove it to accept the header only".into()))
            }
            Some(name) => Some(name.get_ref().clone()),
            None => None,
        };
        let bearer = "'Authorization: Bearer <token>' header";
        let (missing, missing_with_bearer) = match &query {
            Some(q) => (
                format!("Expected '{header_text}' header or '{q}' query parameter with valid API key"),
                format!("Expected {bearer}, '{header_text}' header or '{q}' query parameter with valid API key"),
            ),
            None => (
                format!("Expected '{header_text}' header with valid API key"),
                format!("Expected {bearer} or '{header_text}' header with valid API key"),
            ),
        };
        Ok(ApiKeyAuth {
            keys,
            challenge: static_challenge(format!(
                "ApiKey realm=\"{REALM}\", header=\"{header_text}\""
            )),
            header,
            query,
            missing,
            missing_with_bearer,
        })
    }

    /// The header the key is read from.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The query parameter a key may also come in, when `query` names one.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The detail of the 401 for a request with neither credential when the JWT scheme is
    /// on too: "Expected 'Authorization: Bearer <token>' header or 'X-API-Key' header ...".
    pub fn missing_with_bearer(&self) -> &str {
        &self.missing_with_bearer
    }

    /// The challenge of an API-key 401: `ApiKey realm="api", header="X-API-Key"`.
    pub fn challenge(&self) -> HeaderValue {
        self.challenge.clone()
    }

    /// Decides a request by its key (the header first, then the query parameter).
    pub fn authenticate(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Value, Problem> {
        match self.credential(headers, query) {
            Some(candidate) => self.check(&candidate),
            None => Err(unauthorized("Missing API key", self.missing.clone())
                .with_header(WWW_AUTHENTICATE, self.challenge())),
        }
    }

    /// The key the request sent, if any (empty counts as none). Borrowed from the request
    /// unless the query parameter needed decoding.
    pub fn credential<'r>(
        &self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Option<Cow<'r, [u8]>> {
        if let Some(value) = headers.get(&self.header) {
            if !value.is_empty() {
                return Some(Cow::Borrowed(value.as_bytes()));
            }
        }
        let name = self.query.as_deref()?;
        query_param(query?, name).filter(|v| !v.is_empty())
    }

    /// The principal for a sent key, or the 401 "Invalid API key".
    pub fn check(&self, candidate: &[u8]) -> Result<Value, Problem> {
        match self.find(candidate) {
            Some(index) => {
                let mut principal = Map::with_capacity(2);
                principal.insert("scheme".into(), Value::from("api_key"));
                principal.insert("key_index".into(), Value::from(index));
                Ok(Value::Object(principal))
            }
            None => Err(
                unauthorized("Invalid API key", "The provided API key is not valid")
                    .with_header(WWW_AUTHENTICATE, self.challenge()),
            ),
        }
    }

    /// Index of the configured key equal to `candidate`; every key is compared in full.
    fn find(&self, candidate: &[u8]) -> Option<usize> {
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            let equal = constant_time_eq(candidate, key);
            if equal && found.is_none() {
                found = Some(index);
            }
        }
        found
    }
}

/// `a == b` in time that depends on `a.len()` only: every byte of `a` is compared (against
/// `b` repeated), differences are OR-ed together, and the length check joins at the end.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if b.is_empty() {
        return a.is_empty();
    }
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b.iter().cycle()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// The first value of parameter `name` in a raw query string, `+`- and percent-decoded.
fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, [u8]>> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(key).as_ref() == name.as_bytes()).then(|| form_decode(value))
    })
}

/// `+` as space, `%XX` as a byte; borrowed when there is nothing to decode.
fn form_decode(raw: &str) -> Cow<'_, [u8]> {
    if !raw.contains('+') {
        return percent_decode(raw.as_bytes()).into();
    }
    let spaced: Vec<u8> = raw
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    Cow::Owned(percent_decode(&spaced).collect())
}

/// `keys` or `keys_env` (exactly one): a non-empty list of non-empty keys a client can send.
fn keys(raw: &RawApiKey, at: usize, field: &str) -> Result<Vec<Box<[u8]>>, Mistake> {
    let (offset, field, list) = match (&raw.keys, &raw.keys_env) {
        (Some(keys), None) => (
            keys.span().start,
            format!("{field}.keys"),
            keys.get_ref().iter().map(|k| k.get_ref().clone()).collect::<Vec<_>>(),
        ),
        (None, Some(var)) => {
            let field = format!("{field}.keys_env");
            let value = env_value(var, &field)?;
            (var.span().start, field, value.split(',').map(|k| k.trim().to_owned()).collect())
        }
        (Some(keys), Some(_)) => {
            return Err((keys.span().start, format!("{field}.keys"), "`keys` and `keys_env` are both set; keep one of them".into()))
        }
        (None, None) => {
            return Err((at, format!("{field}.keys"), "is missing; add `keys_env = \"API_KEYS\"` (comma-separated, read at start-up) or `keys = [\"...\"]`".into()))
        }
    };
    if list.is_empty() {
        return Err((offset, field, "is empty; list at least one key".into()));
    }
    for (i, key) in list.iter().enumerate() {
        if key.is_empty() {
            return Err((
                offset,
                field,
                format!(
                    "key {} is empty; remove it (an empty key would let anyone in)",
                    i + 1
                ),
            ));
        }
        if key.bytes().any(|b| b.is_ascii_control()) || key.trim() != key {
            return Err((offset, field, format!("key {} has spaces at its ends or control characters, which no client can send in a header; remove them", i + 1)));
        }
    }
    Ok(list
        .into_iter()
        .map(|k| k.into_bytes().into_boxed_slice())
        .collect())
}
