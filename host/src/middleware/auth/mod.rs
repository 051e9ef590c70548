//! `[server.auth]`, `[routes.auth]`, `[policies.auth]`: who may call a route. The host checks
//! the credential from the request head — a JWT bearer token ([`jwt`]) or an API key
//! ([`api_key`]) — before it reads the body, so an unauthenticated client never makes the host
//! buffer a body or wake a plugin. A failure is a 401 (403 for a token that lacks required
//! claims) Problem Details with the `WWW-Authenticate` challenge the client needs.
//!
//! When both schemes are configured, a request with an `Authorization` header is decided by
//! the JWT alone (a bad token is refused even if a good API key is sent too); otherwise by the
//! API key; with neither credential the 401 names both ways.

mod api_key;
mod jwt;

use std::path::Path;

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::StatusCode;
use serde::Deserialize;
use toml::Spanned;

use crate::problem::Problem;

pub use super::Mistake;
pub use api_key::{ApiKeyAuth, RawApiKey};
pub use jwt::{JwtAuth, RawJwt};

/// Realm of every challenge: one protection space for the whole API.
const REALM: &str = "api";

/// Longest piece of client input (a JSON error about the token, say) a detail repeats.
const MAX_ECHO: usize = 200;

/// An auth table as written: at least one of `jwt` and `api_key`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `[...auth.jwt]`: bearer tokens.
    pub jwt: Option<Spanned<RawJwt>>,
    /// `[...auth.api_key]`: static keys in a header (or query parameter).
    pub api_key: Option<Spanned<RawApiKey>>,
}

/// The ways one auth policy accepts credentials (see [`Auth::credentials`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// A JWT in `Authorization: Bearer …`.
    pub bearer: bool,
    /// The header an API key comes in.
    pub api_key_header: Option<&'a http::HeaderName>,
    /// The query parameter an API key may also come in.
    pub api_key_query: Option<&'a str>,
}

/// A resolved auth policy: keys loaded and parsed once at start-up, shared (in an `Arc`) by
/// every route it applies to.
#[derive(Debug)]
pub struct Auth {
    jwt: Option<JwtAuth>,
    api_key: Option<ApiKeyAuth>,
}

impl Auth {
    /// Checks the table and loads its keys (`secret_env`, `keys_env`, `public_key_file`
    /// relative to `dir`). `field` is the table's dotted name, e.g. `server.auth`.
    ///
    /// A table with neither `jwt` nor `api_key` has no span of its own: that mistake's offset
    /// is 0, for the caller to replace with the table's position if it has one.
    pub fn resolve(raw: &RawAuth, field: &str, dir: &Path) -> Result<Auth, Mistake> {
        if raw.jwt.is_none() && raw.api_key.is_none() {
            return Err((
                0,
                field.to_owned(),
                format!("names no credential; add a [{field}.jwt] or [{field}.api_key] table (or set it to false to turn auth off)"),
            ));
        }
        let jwt = match &raw.jwt {
            Some(table) => Some(JwtAuth::resolve(
                table.get_ref(),
                table.span().start,
                &format!("{field}.jwt"),
                dir,
            )?),
            None => None,
        };
        let api_key = match &raw.api_key {
            Some(table) => Some(ApiKeyAuth::resolve(
                table.get_ref(),
                table.span().start,
                &format!("{field}.api_key"),
            )?),
            None => None,
        };
        if let (Some(_), Some(keys)) = (&jwt, &api_key) {
            if keys.header() == AUTHORIZATION {
                return Err((
                    raw.api_key.as_ref().map_or(0, |t| t.span().start),
                    format!("{field}.api_key.header"),
                    "`Authorization` carries the JWT when both schemes are on, so an API key there would never be checked; use another header, e.g. \"X-API-Key\"".into(),
                ));
            }
        }
        Ok(Auth { jwt, api_key })
    }

    /// How a client presents credentials under this policy (what the OpenAPI document
    /// declares as the security schemes of the routes it covers).
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials {
            bearer: self.jwt.is_some(),
            api_key_header: self.api_key.as_ref().map(ApiKeyAuth::header),
            api_key_query: self.api_key.as_ref().and_then(ApiKeyAuth::query),
        }
    }

    /// Decides a request from its head. `Ok` is the principal the request runs as:
    /// `{"scheme": "jwt", "claims": {...}}` or `{"scheme": "api_key", "key_index": N}` (the
    /// position of the matching key in the configured list, never the key itself). `Err` is
    /// the 401/403 to answer with, `WWW-Authenticate` included.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<serde_json::Value, Problem> {
        let authorization = headers.get(AUTHORIZATION);
        match (&self.jwt, &self.api_key) {
            (Some(jwt), None) => jwt.authenticate(authorization),
            (None, Some(keys)) => keys.authenticate(headers, query),
            (Some(jwt), Some(keys)) => {
                if authorization.is_some() {
                    return jwt.authenticate(authorization);
                }
                match keys.credential(headers, query) {
                    Some(candidate) => keys.check(&candidate),
                    None => Err(
                        unauthorized("Missing credentials", keys.missing_with_bearer())
                            .with_header(WWW_AUTHENTICATE, jwt.challenge())
                            .with_header(WWW_AUTHENTICATE, keys.challenge()),
                    ),
                }
            }
            (None, None) => unreachable!("resolve refuses a table without a scheme"),
        }
    }
}

/// A 401 Problem (its caller adds the challenge).
fn unauthorized(title: &'static str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", title, detail)
}

/// `text` cut to at most [`MAX_ECHO`] bytes (on a character boundary), for client input a
/// detail repeats.
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_ECHO {
        return text;
    }
    let mut end = MAX_ECHO;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Builds a challenge header value at start-up (configured names are header-safe).
fn static_challenge(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"api\""))
}

/// `'a'`, `'a' and 'b'`, `'a', 'b' and 'c'`: names for a message, joined by `last`.
fn quoted_list<S: AsRef<str>>(names: &[S], last: &str) -> String {
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(if i + 1 == names.len() { last } else { ", " });
        }
        out.push('\'');
        out.push_str(name.as_ref());
        out.push('\'');
    }
    out
}

#[cfg(test)]
mod tests;
