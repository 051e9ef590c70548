//! `[server.cors]`, `[routes.cors]`, `[policies.cors]`: which other sites' pages may call a
//! route from a browser (CORS, Fetch standard semantics, as Starlette's `CORSMiddleware` and
//! tower-http's `CorsLayer`). Unlike them, a request from an origin the policy does not
//! allow is refused with a 403 Problem instead of being served without CORS headers, so a
//! misconfigured front end fails loudly and a cross-site form post never reaches the plugin.
//!
//! The table is resolved once at start-up into a [`Cors`] shared by every route it applies
//! to. Per request the pipeline calls [`Cors::check`] (one header lookup when the request
//! has no `Origin`), then [`Cors::decorate`] on the response; an `OPTIONS` request that
//! [`is_preflight`] is answered by [`Cors::preflight`] without reaching the plugin.
//!
//! Origins are compared byte for byte with the `Origin` header (RFC 6454 serialization:
//! lower-case scheme and host, no default port), so the config refuses spellings a browser
//! never sends. The `null` origin (sandboxed iframes, `file://` pages, cross-site redirects)
//! can be produced by any site: only `"*"` lets it through.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

use axum::response::{IntoResponse, Response};
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, HOST, ORIGIN, VARY,
};
use http::{Method, StatusCode};
use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use crate::problem::Problem;

pub use super::Mistake;

/// `max_age` when the table does not set it (seconds).
pub const DEFAULT_MAX_AGE: u64 = 600;
/// The largest `max_age` accepted: a week (browsers cap it lower anyway).
pub const MAX_MAX_AGE: u64 = 86_400 * 7;
/// Request headers a browser may send cross-origin without the server allowing them.
pub const SAFELISTED_HEADERS: [&str; 5] = [
    "accept",
    "accept-language",
    "content-language",
    "content-type",
    "range",
];
/// Longest piece of client input (or of a configured list) quoted in a 403 detail.
const MAX_ECHO: usize = 200;
/// Above this many exact origins the lookup uses a hash set instead of a scan.
const SCAN_LIMIT: usize = 8;

const REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
const ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The table as written. `allow_origins` is required; every other key has a default
/// (`allow_methods`: the methods the routes at the path declare; `allow_headers`,
/// `expose_headers`: none; `allow_credentials`, `allow_private_network`: false;
/// `max_age`: 600 seconds).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    allow_origins: Spanned<Vec<Spanned<String>>>,
    allow_origin_regex: Option<Spanned<String>>,
    allow_methods: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    allow_headers: Vec<Spanned<String>>,
    #[serde(default)]
    expose_headers: Vec<Spanned<String>>,
    allow_credentials: Option<Spanned<bool>>,
    max_age: Option<Spanned<u64>>,
    #[serde(default)]
    allow_private_network: bool,
}

/// A resolved policy, built once at start-up and shared (in an `Arc`) by its routes.
#[derive(Debug)]
pub struct Cors {
    any_origin: bool,
    exact: ExactOrigins,
    patterns: Vec<OriginPattern>,
    regex: Option<Regex>,
    methods: Methods,
    headers: Headers,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
    private_network: bool,
    /// The configured origins as quoted in a preflight's 403 detail.
    origins_text: String,
}

/// What [`Cors::decorate`] needs of a request [`Cors::check`] allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The request's `Origin`, echoed; `None` answers `*` (any origin, no credentials).
    origin: Option<HeaderValue>,
}

/// Exact origins: a scan while few (no hashing), a hash set of bytes beyond.
#[derive(Debug)]
enum ExactOrigins {
    Few(Vec<Box<[u8]>>),
    Many(HashSet<Box<[u8]>>),
}

/// `scheme://<labels>.*.<labels>[:port]`: what precedes and follows the star, which stands
/// for one or more DNS labels.
#[derive(Debug)]
struct OriginPattern {
    head: Box<[u8]>,
    tail: Box<[u8]>,
}

/// One entry of `allow_origins`.
enum OriginRule {
    Any,
    Exact(String),
    Pattern(OriginPattern),
}

#[derive(Debug)]
enum Methods {
    /// `"*"`: the requested method is echoed.
    Any,
    /// Not configured: the methods the routes at the path declare.
    Routes,
    /// The configured list and its pre-joined header value.
    Listed(Vec<Method>, HeaderValue),
}

#[derive(Debug)]
enum Headers {
    /// `"*"`: any requested header.
    Any,
    /// Lower-case names (besides the safelisted ones).
    Listed(Vec<HeaderName>),
}

impl Cors {
    /// Checks the table (`field` is its dotted prefix, e.g. "server.cors") and builds the
    /// runtime policy. `_dir` is unused: the policy names no files.
    pub fn resolve(raw: &RawCors, field: &str, _dir: &Path) -> Result<Cors, Mistake> {
        let credentials = raw.allow_credentials.as_ref().is_some_and(|c| *c.get_ref());
        let (any_origin, exact, patterns) = resolve_origins(raw, field)?;
        if any_origin && credentials {
            let at = raw.allow_credentials.as_ref().map_or(0, |c| c.span().start);
            return Err(mistake(
                at,
                field,
                "allow_credentials",
                "allow_credentials = true with \"*\" in allow_origins: any site could read \
                 credentialed responses; list the origins allowed instead of \"*\""
                    .into(),
            ));
        }
        let regex = raw
            .allow_origin_regex
            .as_ref()
            .map(|r| resolve_regex(r, field))
            .transpose()?;
        let expose = resolve_expose(&raw.expose_headers, credentials, field)?;
        Ok(Cors {
            any_origin,
            origins_text: clip(describe_origins(raw, regex.is_some()).as_bytes()).into_owned(),
            exact: ExactOrigins::new(exact),
            patterns,
            regex,
            methods: resolve_methods(raw.allow_methods.as_ref(), field)?,
            headers: resolve_headers(&raw.allow_headers, field)?,
            expose,
            credentials,
            max_age: resolve_max_age(raw.max_age.as_ref(), field)?,
            private_network: raw.allow_private_network,
        })
    }

    /// An actual (non-preflight) request: `Ok(None)` when it is not cross-origin (no
    /// `Origin`, or the request's own origin), `Ok(Some(_))` when the origin is allowed,
    /// a 403 Problem when not.
    pub fn check(&self, headers: &HeaderMap) -> Result<Option<Allowed>, Problem> {
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(None);
        };
        if is_same_origin(origin.as_bytes(), headers) {
            return Ok(None);
        }
        match self.allow(origin) {
            Some(allowed) => Ok(Some(allowed)),
            None => Err(forbidden(origin_detail(origin, "request"))),
        }
    }

    /// Adds the CORS headers of an allowed actual request to its response (any status).
    pub fn decorate(&self, allowed: &Allowed, headers: &mut HeaderMap) {
        match &allowed.origin {
            Some(origin) => {
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                vary_on_origin(headers);
            }
            None => {
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            }
        }
        if self.credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }

    /// Answers a preflight: the complete 204 response when the origin, the method, every
    /// requested header and private-network access (when asked for) are allowed, a 403
    /// Problem saying which is not otherwise. `route_methods` are the methods the routes at
    /// the path declare: the allowed methods when the table sets no `allow_methods`.
    pub fn preflight(
        &self,
        headers: &HeaderMap,
        route_methods: &[Method],
    ) -> Result<Response, Problem> {
        let Some(origin) = headers.get(ORIGIN) else {
            return Err(forbidden(
                "a CORS preflight needs an Origin header".to_string(),
            ));
        };
        let Some(allowed) = self.allow(origin) else {
            return Err(forbidden(self.preflight_origin_detail(origin)));
        };
        let methods = self.allow_method(headers, route_methods)?;
        let requested_headers = self.allow_headers(headers)?;
        let private_network = self.allow_private_network(headers)?;
        let mut response = StatusCode::NO_CONTENT.into_response();
        let out = response.headers_mut();
        out.insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            allowed
                .origin
                .unwrap_or_else(|| HeaderValue::from_static("*")),
        );
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
        if let Some(requested) = requested_headers {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, requested);
        }
        if let Some(max_age) = &self.max_age {
            out.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        if self.credentials {
            out.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if private_network {
            out.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
        }
        out.insert(VARY, HeaderValue::from_static("Origin"));
        Ok(response)
    }

    /// The answer for an origin the policy allows, `None` for one it does not.
    fn allow(&self, origin: &HeaderValue) -> Option<Allowed> {
        if self.any_origin {
            return Some(Allowed { origin: None });
        }
        self.matches(origin.as_bytes()).then(|| Allowed {
            origin: Some(origin.clone()),
        })
    }

    /// Exact origins first, then patterns, then the regex; `null` only through `"*"`.
    fn matches(&self, origin: &[u8]) -> bool {
        if origin == b"null" {
            return false;
        }
        if self.exact.contains(origin) || self.patterns.iter().any(|p| p.matches(origin)) {
            return true;
        }
        match (&self.regex, std::str::from_utf8(origin)) {
            (Some(regex), Ok(text)) => regex.is_match(text),
            _ => false,
        }
    }

    fn preflight_origin_detail(&self, origin: &HeaderValue) -> String {
        if origin.as_bytes() == b"null" {
            return origin_detail(origin, "preflight");
        }
        format!(
            "{}; allowed origins: {}",
            origin_detail(origin, "preflight"),
            self.origins_text
        )
    }

    /// The `Access-Control-Allow-Methods` value when the requested method is allowed.
    fn allow_method(
        &self,
        headers: &HeaderMap,
        route_methods: &[Method],
    ) -> Result<HeaderValue, Problem> {
        let Some(requested) = headers.get(ACCESS_CONTROL_REQUEST_METHOD) else {
            return Err(forbidden(
                "a CORS preflight needs an Access-Control-Request-Method header".to_string(),
            ));
        };
        let method = Method::from_bytes(requested.as_bytes()).ok();
        let listed = |list: &[Method]| method.as_ref().is_some_and(|m| list.contains(m));
        let refused = |allowed: String| {
            forbidden(format!(
                "CORS preflight: method '{}' not allowed; allowed methods: {allowed}",
                clip(requested.as_bytes())
            ))
        };
        match &self.methods {
            Methods::Any if method.is_some() => Ok(requested.clone()),
            Methods::Any => Err(refused("any valid method".into())),
            Methods::Listed(list, value) if listed(list) => Ok(value.clone()),
            Methods::Listed(list, _) => Err(refused(join(list))),
            Methods::Routes if listed(route_methods) => HeaderValue::from_str(&join(route_methods))
                .map_err(|_| refused(join(route_methods))),
            Methods::Routes if route_methods.is_empty() => Err(refused("none".into())),
            Methods::Routes => Err(refused(join(route_methods))),
        }
    }

    /// The `Access-Control-Allow-Headers` value (the request's list, as sent) when every
    /// requested header is allowed; `None` when none was requested.
    fn allow_headers(&self, headers: &HeaderMap) -> Result<Option<HeaderValue>, Problem> {
        let values = headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS);
        let mut count = 0;
        for value in values.iter() {
            for name in list_items(value.as_bytes()) {
                if !self.header_allowed(name) {
                    return Err(forbidden(self.header_detail(name)));
                }
                count += 1;
            }
        }
        if count == 0 {
            return Ok(None);
        }
        let mut values = values.iter();
        match (values.next(), values.next()) {
            (Some(only), None) => Ok(Some(only.clone())),
            _ => Ok(HeaderValue::from_bytes(&join_values(
                headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS),
            ))
            .ok()),
        }
    }

    fn header_allowed(&self, name: &[u8]) -> bool {
        let is = |known: &[u8]| known.eq_ignore_ascii_case(name);
        SAFELISTED_HEADERS.iter().any(|h| is(h.as_bytes()))
            || match &self.headers {
                Headers::Any => true,
                Headers::Listed(list) => list.iter().any(|h| is(h.as_str().as_bytes())),
            }
    }

    fn header_detail(&self, name: &[u8]) -> String {
        let safelisted = SAFELISTED_HEADERS.join(", ");
        let allowed = match &self.headers {
            Headers::Listed(list) if !list.is_empty() => {
                let names: Vec<&str> = list.iter().map(HeaderName::as_str).collect();
                format!(
                    "{} (besides the CORS-safelisted {safelisted})",
                    clip(names.join(", ").as_bytes())
                )
            }
            _ => format!("only the CORS-safelisted {safelisted}"),
        };
        format!(
            "CORS preflight: header '{}' not allowed; allowed headers: {allowed}",
            clip(name)
        )
    }

    /// Whether to answer `Access-Control-Allow-Private-Network: true`; a 403 when the
    /// request asks for private-network access and the policy does not allow it.
    fn allow_private_network(&self, headers: &HeaderMap) -> Result<bool, Problem> {
        let asked = headers
            .get(REQUEST_PRIVATE_NETWORK)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if asked && !self.private_network {
            return Err(forbidden(
                "CORS preflight: private network access not allowed; this resource does not \
                 accept requests from public sites to the private network"
                    .to_string(),
            ));
        }
        Ok(asked)
    }
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method` (a plain `OPTIONS` goes to the routes).
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(ORIGIN)
        && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

impl ExactOrigins {
    fn new(origins: Vec<String>) -> Self {
        let origins = origins
            .into_iter()
            .map(|o| o.into_bytes().into_boxed_slice());
        if origins.len() <= SCAN_LIMIT {
            ExactOrigins::Few(origins.collect())
        } else {
            ExactOrigins::Many(origins.collect())
        }
    }

    fn contains(&self, origin: &[u8]) -> bool {
        match self {
            ExactOrigins::Few(list) => list.iter().any(|o| **o == *origin),
            ExactOrigins::Many(set) => set.contains(origin),
        }
    }
}

impl OriginPattern {
    /// The origin is the head, one or more DNS labels (lower-case letters, digits, '-',
    /// '_'), then the tail.
    fn matches(&self, origin: &[u8]) -> bool {
        let (head, tail) = (&*self.head, &*self.tail);
        if origin.len() <= head.len() + tail.len()
            || !origin.starts_with(head)
            || !origin.ends_with(tail)
        {
            return false;
        }
        origin[head.len()..origin.len() - tail.len()]
            .split(|b| *b == b'.')
            .all(|label| !label.is_empty() && label.iter().all(|b| is_label_byte(*b)))
    }
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

/// The same-origin test: `Origin` is `http://` + `Host`, or `https://` + `Host` behind a
/// proxy that says (X-Forwarded-Proto) the client used https.
fn is_same_origin(origin: &[u8], headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).map(HeaderValue::as_bytes) else {
        return false;
    };
    if let Some(rest) = origin.strip_prefix(b"http://") {
        return rest.eq_ignore_ascii_case(host);
    }
    match origin.strip_prefix(b"https://") {
        Some(rest) => rest.eq_ignore_ascii_case(host) && forwarded_https(headers),
        None => false,
    }
}

/// The first (client-facing) entry of X-Forwarded-Proto is `https`.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get(X_FORWARDED_PROTO)
        .and_then(|v| list_items(v.as_bytes()).next())
        .is_some_and(|proto| proto.eq_ignore_ascii_case(b"https"))
}

/// Adds `Origin` to `Vary` unless it is already there (or `Vary: *`), keeping one value.
fn vary_on_origin(headers: &mut HeaderMap) {
    let existing = headers.get_all(VARY);
    if existing.iter().next().is_none() {
        headers.insert(VARY, HeaderValue::from_static("Origin"));
        return;
    }
    let covered = existing
        .iter()
        .flat_map(|v| list_items(v.as_bytes()))
        .any(|t| t.eq_ignore_ascii_case(b"origin") || t == b"*");
    if covered {
        return;
    }
    let mut joined = join_values(existing);
    joined.extend_from_slice(b", Origin");
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(VARY, value);
    }
}

/// The items of a comma-separated header value, trimmed, empty ones skipped.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

/// Several header lines of one field as one comma-separated value.
fn join_values(values: http::header::GetAll<'_, HeaderValue>) -> Vec<u8> {
    let mut joined = Vec::new();
    for value in values {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    joined
}

fn join(methods: &[Method]) -> String {
    let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    names.join(", ")
}

/// The 403 every refusal is: the answer varies with `Origin`, so caches must key on it.
fn forbidden(detail: String) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "cors-forbidden",
        "CORS Request Forbidden",
        detail,
    )
    .with_header(VARY, HeaderValue::from_static("Origin"))
}

/// "CORS request from origin '…' not allowed" (or `Origin 'null' is not allowed`).
fn origin_detail(origin: &HeaderValue, kind: &str) -> String {
    if origin.as_bytes() == b"null" {
        return "Origin 'null' is not allowed".to_string();
    }
    format!(
        "CORS {kind} from origin '{}' not allowed",
        clip(origin.as_bytes())
    )
}

/// At most [`MAX_ECHO`] bytes of `text`, decoded lossily, with "…" when cut.
fn clip(text: &[u8]) -> Cow<'_, str> {
    if text.len() <= MAX_ECHO {
        return String::from_utf8_lossy(text);
    }
    let mut cut = String::from_utf8_lossy(&text[..MAX_ECHO]).into_owned();
    cut.push('…');
    Cow::Owned(cut)
}

fn mistake(at: usize, field: &str, key: &str, message: String) -> Mistake {
    (at, format!("{field}.{key}"), message)
}

/// `allow_origins`: whether `"*"` is among them, the exact origins, the patterns.
fn resolve_origins(
    raw: &RawCors,
    field: &str,
) -> Result<(bool, Vec<String>, Vec<OriginPattern>), Mistake> {
    let list = &raw.allow_origins;
    if list.get_ref().is_empty() {
        return Err(mistake(
            list.span().start,
            field,
            "allow_origins",
            "at least one origin is required, e.g. [\"https://app.example.com\"] (or \"*\" for any site)"
                .into(),
        ));
    }
    let (mut any, mut exact, mut patterns) = (false, Vec::new(), Vec::new());
    for origin in list.get_ref() {
        match parse_origin(origin.get_ref()) {
            Ok(OriginRule::Any) => any = true,
            Ok(OriginRule::Exact(text)) if !exact.contains(&text) => exact.push(text),
            Ok(OriginRule::Exact(_)) => {}
            Ok(OriginRule::Pattern(pattern)) => patterns.push(pattern),
            Err(message) => {
                return Err(mistake(
                    origin.span().start,
                    field,
                    "allow_origins",
                    message,
                ))
            }
        }
    }
    Ok((any, exact, patterns))
}

/// One `allow_origins` entry: `"*"`, an origin, or an origin whose host has a `*` label.
fn parse_origin(text: &str) -> Result<OriginRule, String> {
    if text == "*" {
        return Ok(OriginRule::Any);
    }
    if text.eq_ignore_ascii_case("null") {
        return Err(
            "the \"null\" origin is sent by sandboxed iframes, file:// pages and \
                    redirected requests, which any site can produce: it is not safe to allow; \
                    remove it"
                .into(),
        );
    }
    let shape = || {
        format!("{text:?} is not an origin; write scheme://host[:port], e.g. \"https://app.example.com\"")
    };
    let (scheme, rest) = text.split_once("://").ok_or_else(shape)?;
    check_scheme(scheme).ok_or_else(shape)?;
    if let Some(end) = rest.find(['/', '?', '#']) {
        return Err(format!(
            "{text:?} has a path; an origin is scheme://host[:port] only, without a trailing slash: write \"{scheme}://{}\"",
            &rest[..end]
        ));
    }
    if rest.contains('@') {
        return Err(format!(
            "{text:?} has user info; an origin is scheme://host[:port] only"
        ));
    }
    let (host, port) = split_port(rest).ok_or_else(shape)?;
    check_port(text, scheme, host, port)?;
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{text:?}: browsers send origins in lower case and they are compared byte for byte; write {:?}",
            text.to_ascii_lowercase()
        ));
    }
    host_rule(text, scheme, host, port)
}

/// A scheme: a letter, then letters, digits, '+', '-', '.'.
fn check_scheme(scheme: &str) -> Option<()> {
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(())
}

/// Host and optional port (`[v6]:port` included).
fn split_port(rest: &str) -> Option<(&str, Option<&str>)> {
    if rest.starts_with('[') {
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        return match after.strip_prefix(':') {
            Some(port) => Some((&rest[..=end], Some(port))),
            None if after.is_empty() => Some((rest, None)),
            None => None,
        };
    }
    match rest.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port))),
        None => Some((rest, None)),
    }
}

/// A port is 1..=65535 in canonical digits, and not the scheme's default (browsers omit it).
fn check_port(text: &str, scheme: &str, host: &str, port: Option<&str>) -> Result<(), String> {
    let Some(port) = port else { return Ok(()) };
    let number = port
        .parse::<u16>()
        .ok()
        .filter(|n| *n > 0 && n.to_string() == port);
    let Some(number) = number else {
        return Err(format!(
            "{text:?} has an invalid port {port:?}; use a number from 1 to 65535"
        ));
    };
    let default = matches!((scheme, number), ("http", 80) | ("https", 443));
    if default {
        return Err(format!(
            "{text:?}: browsers leave the default port out of the Origin header; write \"{scheme}://{host}\""
        ));
    }
    Ok(())
}

/// An exact origin, or a pattern when one label of the host is `*`.
fn host_rule(
    text: &str,
    scheme: &str,
    host: &str,
    port: Option<&str>,
) -> Result<OriginRule, String> {
    if host.starts_with('[') {
        let ok = host.len() > 2
            && host[1..host.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        return if ok {
            Ok(OriginRule::Exact(text.to_string()))
        } else {
            Err(format!("{text:?} has an invalid IPv6 host"))
        };
    }
    let labels: Vec<&str> = host.split('.').collect();
    let bad_label = |l: &str| l.is_empty() || (l != "*" && !l.bytes().all(is_label_byte));
    if let Some(label) = labels.iter().find(|l| bad_label(l)) {
        return Err(format!(
            "{text:?} has an invalid host label {label:?}; use letters, digits, '-' (and '*' for a whole label in a pattern)"
        ));
    }
    let stars: Vec<usize> = (0..labels.len()).filter(|i| labels[*i] == "*").collect();
    match stars.as_slice() {
        [] => Ok(OriginRule::Exact(text.to_string())),
        [star] if *star + 1 < labels.len() => {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let before: String = labels[..*star].iter().map(|l| format!("{l}.")).collect();
            let after: String = labels[star + 1..].iter().map(|l| format!(".{l}")).collect();
            Ok(OriginRule::Pattern(OriginPattern {
                head: format!("{scheme}://{before}").into_bytes().into(),
                tail: format!("{after}{port}").into_bytes().into(),
            }))
        }
        [_] => Err(format!(
            "{text:?}: '*' must be followed by a domain, e.g. \"{scheme}://*.example.com\""
        )),
        _ => Err(format!(
            "{text:?} has more than one '*'; one '*' already stands for one or more labels"
        )),
    }
}

/// `allow_origin_regex`, anchored at both ends.
fn resolve_regex(raw: &Spanned<String>, field: &str) -> Result<Regex, Mistake> {
    Regex::new(&format!("^(?:{})$", raw.get_ref())).map_err(|e| {
        mistake(
            raw.span().start,
            field,
            "allow_origin_regex",
            format!(
                "not a valid regular expression ({e}); write one the `regex` crate accepts, \
                 e.g. \"^https://.*\\\\.example\\\\.com$\""
            ),
        )
    })
}

/// `allow_methods`: `"*"`, a list of method tokens (case-sensitive), or absent.
fn resolve_methods(
    raw: Option<&Spanned<Vec<Spanned<String>>>>,
    field: &str,
) -> Result<Methods, Mistake> {
    let Some(raw) = raw else {
        return Ok(Methods::Routes);
    };
    let mut list: Vec<Method> = Vec::new();
    for name in raw.get_ref() {
        let text = name.get_ref();
        if text == "*" {
            return Ok(Methods::Any);
        }
        let method = parse_method(text)
            .map_err(|message| mistake(name.span().start, field, "allow_methods", message))?;
        if !list.contains(&method) {
            list.push(method);
        }
    }
    if list.is_empty() {
        return Err(mistake(
            raw.span().start,
            field,
            "allow_methods",
            "an empty list allows no preflighted request; list methods (e.g. [\"GET\", \"POST\"]), \
             or leave the key out to allow the methods the routes declare"
                .into(),
        ));
    }
    let value = HeaderValue::from_str(&join(&list)).expect("method tokens are header-safe");
    Ok(Methods::Listed(list, value))
}

fn parse_method(text: &str) -> Result<Method, String> {
    let method = Method::from_bytes(text.as_bytes()).map_err(|_| {
        format!("{text:?} is not a valid method; use a token such as \"GET\" or \"POST\", or \"*\"")
    })?;
    let standard = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ];
    let upper = text.to_ascii_uppercase();
    if upper != text && standard.contains(&upper.as_str()) {
        return Err(format!(
            "{text:?}: methods are case-sensitive and browsers send {upper:?}; write {upper:?}"
        ));
    }
    Ok(method)
}

/// `allow_headers`: `"*"` or header names (stored lower-case).
fn resolve_headers(raw: &[Spanned<String>], field: &str) -> Result<Headers, Mistake> {
    if raw.iter().any(|h| h.get_ref() == "*") {
        return Ok(Headers::Any);
    }
    let names = header_names(raw, field, "allow_headers")?;
    Ok(Headers::Listed(names))
}

/// `expose_headers` as one pre-joined value (`None` when empty).
fn resolve_expose(
    raw: &[Spanned<String>],
    credentials: bool,
    field: &str,
) -> Result<Option<HeaderValue>, Mistake> {
    if let Some(star) = raw.iter().find(|h| h.get_ref() == "*") {
        if credentials {
            return Err(mistake(
                star.span().start,
                field,
                "expose_headers",
                "with allow_credentials = true browsers read \"*\" as a header named '*', not as \
                 any header; list the headers to expose"
                    .into(),
            ));
        }
        return Ok(Some(HeaderValue::from_static("*")));
    }
    let names = header_names(raw, field, "expose_headers")?;
    if names.is_empty() {
        return Ok(None);
    }
    let joined: Vec<&str> = names.iter().map(HeaderName::as_str).collect();
    Ok(Some(
        HeaderValue::from_str(&joined.join(", ")).expect("header names are header-safe"),
    ))
}

fn header_names(
    raw: &[Spanned<String>],
    field: &str,
    key: &str,
) -> Result<Vec<HeaderName>, Mistake> {
    let mut names: Vec<HeaderName> = Vec::new();
    for name in raw {
        let header = HeaderName::from_bytes(name.get_ref().as_bytes()).map_err(|_| {
            mistake(
                name.span().start,
                field,
                key,
                format!(
                    "{:?} is not a valid header name; use letters, digits and '-', e.g. \"x-custom-header\"",
                    name.get_ref()
                ),
            )
        })?;
        if !names.contains(&header) {
            names.push(header);
        }
    }
    Ok(names)
}

/// `max_age` as a pre-built header value; `None` for 0 (header omitted).
fn resolve_max_age(
    raw: Option<&Spanned<u64>>,
    field: &str,
) -> Result<Option<HeaderValue>, Mistake> {
    let seconds = raw.map_or(DEFAULT_MAX_AGE, |s| *s.get_ref());
    if seconds > MAX_MAX_AGE {
        return Err(mistake(
            raw.map_or(0, |s| s.span().start),
            field,
            "max_age",
            format!(
                "{seconds} seconds is more than a week; use at most {MAX_MAX_AGE} (browsers cap it \
                 lower anyway: Firefox 86400, Chromium 7200)"
            ),
        ));
    }
    Ok((seconds > 0).then(|| HeaderValue::from(seconds)))
}

/// The configured origins as a 403 detail quotes them.
fn describe_origins(raw: &RawCors, regex: bool) -> String {
    let origins: Vec<&str> = raw
        .allow_origins
        .get_ref()
        .iter()
        .map(|o| o.get_ref().as_str())
        .collect();
    let mut text = origins.join(", ");
    if regex {
        text.push_str(" and origins matching allow_origin_regex");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawCors {
        toml::from_str(text).expect("toml")
    }

    fn cors(text: &str) -> Cors {
        Cors::resolve(&raw(text), "server.cors", Path::new(".")).expect("valid policy")
    }

    fn refused(text: &str) -> (String, String) {
        let (at, field, message) =
            Cors::resolve(&raw(text), "server.cors", Path::new(".")).unwrap_err();
        assert!(at < text.len(), "offset {at} inside the text");
        (field, message)
    }

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn from(origin: &str) -> HeaderMap {
        request(&[("host", "api.local:8000"), ("origin", origin)])
    }

    fn preflight(origin: &str, method: &str, extra: &[(&str, &str)]) -> HeaderMap {
        let mut headers = from(origin);
        headers.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(method).unwrap(),
        );
        for (name, value) in extra {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn allowed(policy: &Cors, origin: &str) -> bool {
        match policy.check(&from(origin)) {
            Ok(Some(_)) => true,
            Err(problem) => {
                assert_eq!(problem.status, StatusCode::FORBIDDEN);
                false
            }
            Ok(None) => panic!("{origin} was taken as same-origin"),
        }
    }

    fn decorated(policy: &Cors, origin: &str, response: &[(&str, &str)]) -> HeaderMap {
        let allowed = policy.check(&from(origin)).unwrap().expect("cross-origin");
        let mut headers = request(response);
        policy.decorate(&allowed, &mut headers);
        headers
    }

    fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
        headers.get(name).map(|v| v.to_str().unwrap())
    }

    const EXAMPLE: &str = "allow_origins = [\"https://example.com\"]\n";

    #[test]
    fn exact_origins_are_case_sensitive_and_byte_for_byte() {
        let policy = cors("allow_origins = [\"https://example.com\", \"http://localhost:3000\"]");
        assert!(allowed(&policy, "https://example.com"));
        assert!(allowed(&policy, "http://localhost:3000"));
        assert!(!allowed(&policy, "https://EXAMPLE.COM"));
        assert!(!allowed(&policy, "https://example.com/"));
        assert!(!allowed(&policy, "https://example.com:443"));
        assert!(!allowed(&policy, "http://example.com"));
        assert!(!allowed(&policy, "http://localhost:3001"));
    }

    #[test]
    fn many_exact_origins_use_the_set() {
        let list: Vec<String> = (0..20)
            .map(|i| format!("\"https://a{i}.example.com\""))
            .collect();
        let policy = cors(&format!("allow_origins = [{}]", list.join(", ")));
        assert!(matches!(policy.exact, ExactOrigins::Many(_)));
        assert!(allowed(&policy, "https://a17.example.com"));
        assert!(!allowed(&policy, "https://a20.example.com"));
    }

    #[test]
    fn a_disallowed_origin_gets_a_403_with_vary() {
        let policy = cors(EXAMPLE);
        let problem = policy
            .check(&from("https://malicious-site.com"))
            .unwrap_err();
        assert_eq!(problem.status, StatusCode::FORBIDDEN);
        assert_eq!(problem.slug, "cors-forbidden");
        assert_eq!(problem.title, "CORS Request Forbidden");
        assert_eq!(
            problem.detail,
            "CORS request from origin 'https://malicious-site.com' not allowed"
        );
        assert_eq!(
            problem.headers,
            vec![(VARY, HeaderValue::from_static("Origin"))]
        );
        let rendered = problem.render(None, "");
        assert_eq!(rendered.headers()[VARY], "Origin");
    }

    #[test]
    fn long_origins_are_cut_in_details() {
        let policy = cors(EXAMPLE);
        let origin = format!("https://{}.com", "a".repeat(5000));
        let problem = policy.check(&from(&origin)).unwrap_err();
        assert!(problem.detail.len() < 300, "{}", problem.detail.len());
        assert!(problem.detail.contains('…'));
        let headers = preflight(
            "https://example.com",
            "GET",
            &[("access-control-request-headers", &"x".repeat(1000))],
        );
        let problem = cors(EXAMPLE)
            .preflight(&headers, &[Method::GET])
            .unwrap_err();
        assert!(problem.detail.len() < 500, "{}", problem.detail);
    }

    #[test]
    fn the_null_origin() {
        let policy = cors(EXAMPLE);
        let problem = policy.check(&from("null")).unwrap_err();
        assert_eq!(problem.detail, "Origin 'null' is not allowed");
        let regex = cors("allow_origins = [\"https://example.com\"]\nallow_origin_regex = \".*\"");
        assert!(allowed(&regex, "https://anything.org"));
        assert!(!allowed(&regex, "null"), "a regex never lets null in");
        let problem = policy.preflight(&preflight("null", "GET", &[]), &[Method::GET]);
        assert_eq!(problem.unwrap_err().detail, "Origin 'null' is not allowed");
        let (field, message) = refused("allow_origins = [\"null\"]");
        assert_eq!(field, "server.cors.allow_origins");
        assert!(message.contains("not safe to allow"), "{message}");
    }

    #[test]
    fn wildcard_answers_star_without_vary() {
        let policy = cors("allow_origins = [\"*\"]");
        assert!(allowed(&policy, "https://anything.example"));
        assert!(allowed(&policy, "null"));
        let headers = decorated(&policy, "https://anything.example", &[]);
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&headers, "vary"), None);
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
        assert_eq!(header(&headers, "access-control-expose-headers"), None);
    }

    #[test]
    fn patterns_stand_for_one_or_more_labels() {
        let policy =
            cors("allow_origins = [\"https://*.example.com\", \"http://*.dev.test:8080\"]");
        assert!(allowed(&policy, "https://a.example.com"));
        assert!(allowed(&policy, "https://a.b.example.com"));
        assert!(allowed(&policy, "http://x-1.dev.test:8080"));
        for origin in [
            "https://example.com",
            "https://.example.com",
            "https://evil.com/x.example.com",
            "https://evil.com?.example.com",
            "https://user@a.example.com",
            "https://a.example.com.evil.com",
            "https://a.example.com:8443",
            "http://a.example.com",
            "https://A.example.com",
            "https://a..example.com",
            "https://evilexample.com",
            "http://x.dev.test",
        ] {
            assert!(!allowed(&policy, origin), "{origin}");
        }
        let inner = cors("allow_origins = [\"https://api.*.example.com\"]");
        assert!(allowed(&inner, "https://api.eu.example.com"));
        assert!(allowed(&inner, "https://api.eu.west.example.com"));
        assert!(!allowed(&inner, "https://api.example.com"));
        assert!(!allowed(&inner, "https://web.eu.example.com"));
    }

    #[test]
    fn the_regex_is_anchored_and_used_after_the_lists() {
        let policy = cors(
            "allow_origins = [\"https://example.com\"]\nallow_origin_regex = \"https://.*\\\\.example\\\\.org\"",
        );
        assert!(allowed(&policy, "https://example.com"));
        assert!(allowed(&policy, "https://a.example.org"));
        assert!(!allowed(&policy, "https://a.example.org.evil.com"));
        assert!(!allowed(&policy, "xhttps://a.example.org"));
        let (field, message) =
            refused("allow_origins = [\"https://example.com\"]\nallow_origin_regex = \"(\"");
        assert_eq!(field, "server.cors.allow_origin_regex");
        assert!(
            message.contains("not a valid regular expression"),
            "{message}"
        );
    }

    #[test]
    fn same_origin_and_no_origin_pass_through() {
        let policy = cors(EXAMPLE);
        assert_eq!(
            policy.check(&request(&[("host", "api.local")])).unwrap(),
            None
        );
        assert_eq!(policy.check(&from("http://api.local:8000")).unwrap(), None);
        assert!(policy.check(&from("https://api.local:8000")).is_err());
        let behind_proxy = request(&[
            ("host", "api.example.net"),
            ("origin", "https://api.example.net"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(policy.check(&behind_proxy).unwrap(), None);
        let no_host = request(&[("origin", "http://api.local:8000")]);
        assert!(policy.check(&no_host).is_err());
    }

    #[test]
    fn credentials_and_expose_headers_are_added() {
        let policy = cors(
            "allow_origins = [\"https://example.com\"]\nallow_credentials = true\nexpose_headers = [\"X-Total-Count\", \"x-request-id\"]",
        );
        let headers = decorated(&policy, "https://example.com", &[]);
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some("https://example.com")
        );
        assert_eq!(
            header(&headers, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(
            header(&headers, "access-control-expose-headers"),
            Some("x-total-count, x-request-id")
        );
        assert_eq!(header(&headers, "vary"), Some("Origin"));
    }

    #[test]
    fn vary_is_appended_once() {
        let policy = cors(EXAMPLE);
        let headers = decorated(
            &policy,
            "https://example.com",
            &[("vary", "Accept-Encoding")],
        );
        let vary: Vec<_> = headers.get_all(VARY).iter().collect();
        assert_eq!(vary, ["Accept-Encoding, Origin"]);
        let headers = decorated(
            &policy,
            "https://example.com",
            &[("vary", "accept-encoding, origin")],
        );
        assert_eq!(header(&headers, "vary"), Some("accept-encoding, origin"));
        let headers = decorated(
            &policy,
            "https://example.com",
            &[("vary", "a"), ("vary", "b")],
        );
        let vary: Vec<_> = headers.get_all(VARY).iter().collect();
        assert_eq!(vary, ["a, b, Origin"]);
        let headers = decorated(&policy, "https://example.com", &[("vary", "*")]);
        assert_eq!(header(&headers, "vary"), Some("*"));
    }

    #[test]
    fn is_preflight_needs_options_origin_and_method() {
        let headers = preflight("https://example.com", "PUT", &[]);
        assert!(is_preflight(&Method::OPTIONS, &headers));
        assert!(!is_preflight(&Method::PUT, &headers));
        assert!(!is_preflight(
            &Method::OPTIONS,
            &from("https://example.com")
        ));
        let no_origin = request(&[("access-control-request-method", "PUT")]);
        assert!(!is_preflight(&Method::OPTIONS, &no_origin));
    }

    #[test]
    fn an_allowed_preflight_gets_every_header() {
        let policy = cors(
            "allow_origins = [\"https://example.com\"]\nallow_methods = [\"GET\", \"POST\", \"DELETE\"]\nallow_headers = [\"X-Custom-Header\"]\nallow_credentials = true\nmax_age = 3600",
        );
        let headers = preflight(
            "https://example.com",
            "DELETE",
            &[(
                "access-control-request-headers",
                "x-custom-header,content-type",
            )],
        );
        let response = policy.preflight(&headers, &[Method::GET]).unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let out = response.headers();
        assert_eq!(
            header(out, "access-control-allow-origin"),
            Some("https://example.com")
        );
        assert_eq!(
            header(out, "access-control-allow-methods"),
            Some("GET, POST, DELETE")
        );
        assert_eq!(
            header(out, "access-control-allow-headers"),
            Some("x-custom-header,content-type")
        );
        assert_eq!(header(out, "access-control-max-age"), Some("3600"));
        assert_eq!(
            header(out, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(header(out, "access-control-allow-private-network"), None);
        assert_eq!(header(out, "vary"), Some("Origin"));
    }

    #[tokio::test]
    async fn a_preflight_has_no_body() {
        let response = cors(EXAMPLE)
            .preflight(
                &preflight("https://example.com", "GET", &[]),
                &[Method::GET],
            )
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert!(body.is_empty());
    }

    #[test]
    fn preflight_defaults() {
        let policy = cors(EXAMPLE);
        let routes = [Method::GET, Method::PUT];
        let response = policy
            .preflight(&preflight("https://example.com", "PUT", &[]), &routes)
            .unwrap();
        let out = response.headers();
        assert_eq!(
            header(out, "access-control-allow-methods"),
            Some("GET, PUT")
        );
        assert_eq!(header(out, "access-control-allow-headers"), None);
        assert_eq!(header(out, "access-control-max-age"), Some("600"));
        assert_eq!(header(out, "access-control-allow-credentials"), None);
        let problem = policy
            .preflight(&preflight("https://example.com", "DELETE", &[]), &routes)
            .unwrap_err();
        assert_eq!(
            problem.detail,
            "CORS preflight: method 'DELETE' not allowed; allowed methods: GET, PUT"
        );
        let zero = cors("allow_origins = [\"https://example.com\"]\nmax_age = 0");
        let response = zero
            .preflight(&preflight("https://example.com", "GET", &[]), &routes)
            .unwrap();
        assert_eq!(header(response.headers(), "access-control-max-age"), None);
    }

    #[test]
    fn preflight_refusals_say_what_is_not_allowed() {
        let policy = cors(
            "allow_origins = [\"https://example.com\"]\nallow_methods = [\"GET\", \"POST\"]\nallow_headers = [\"x-allowed\"]",
        );
        let refuse = |headers: HeaderMap| policy.preflight(&headers, &[]).unwrap_err();
        let problem = refuse(preflight("https://evil.com", "GET", &[]));
        assert_eq!(problem.status, StatusCode::FORBIDDEN);
        assert_eq!(
            problem.detail,
            "CORS preflight from origin 'https://evil.com' not allowed; allowed origins: https://example.com"
        );
        assert_eq!(
            problem.headers,
            vec![(VARY, HeaderValue::from_static("Origin"))]
        );
        let problem = refuse(preflight("https://example.com", "DELETE", &[]));
        assert_eq!(
            problem.detail,
            "CORS preflight: method 'DELETE' not allowed; allowed methods: GET, POST"
        );
        let problem = refuse(preflight("https://example.com", "get", &[]));
        assert!(
            problem.detail.contains("method 'get'"),
            "{}",
            problem.detail
        );
        let problem = refuse(preflight(
            "https://example.com",
            "POST",
            &[(
                "access-control-request-headers",
                "x-allowed, x-custom-header",
            )],
        ));
        assert!(
            problem.detail.starts_with(
                "CORS preflight: header 'x-custom-header' not allowed; allowed headers: x-allowed"
            ),
            "{}",
            problem.detail
        );
        let problem = refuse(preflight(
            "https://example.com",
            "POST",
            &[("access-control-request-private-network", "true")],
        ));
        assert!(
            problem
                .detail
                .contains("private network access not allowed"),
            "{}",
            problem.detail
        );
    }

    #[test]
    fn safelisted_headers_are_always_allowed() {
        let policy = cors(EXAMPLE);
        let headers = preflight(
            "https://example.com",
            "POST",
            &[(
                "access-control-request-headers",
                "Content-Type, accept, accept-language, content-language, range",
            )],
        );
        let response = policy.preflight(&headers, &[Method::POST]).unwrap();
        assert_eq!(
            header(response.headers(), "access-control-allow-headers"),
            Some("Content-Type, accept, accept-language, content-language, range")
        );
        let headers = preflight(
            "https://example.com",
            "POST",
            &[(
                "access-control-request-headers",
                "content-type, authorization",
            )],
        );
        let problem = policy.preflight(&headers, &[Method::POST]).unwrap_err();
        assert!(
            problem.detail.contains("header 'authorization'"),
            "{}",
            problem.detail
        );
        assert!(
            problem.detail.contains("only the CORS-safelisted"),
            "{}",
            problem.detail
        );
    }

    #[test]
    fn header_names_are_case_insensitive_and_lines_joined() {
        let policy = cors("allow_origins = [\"https://example.com\"]\nallow_headers = [\"X-Custom-Header\", \"x-b\"]");
        let headers = preflight(
            "https://example.com",
            "GET",
            &[
                ("access-control-request-headers", "x-custom-header"),
                ("access-control-request-headers", "X-B"),
            ],
        );
        let response = policy.preflight(&headers, &[Method::GET]).unwrap();
        assert_eq!(
            header(response.headers(), "access-control-allow-headers"),
            Some("x-custom-header, X-B")
        );
    }

    #[test]
    fn stars_echo_the_request() {
        let policy = cors(
            "allow_origins = [\"https://example.com\"]\nallow_methods = [\"*\"]\nallow_headers = [\"*\"]\nallow_credentials = true",
        );
        let headers = preflight(
            "https://example.com",
            "PURGE",
            &[(
                "access-control-request-headers",
                "x-anything, authorization",
            )],
        );
        let response = policy.preflight(&headers, &[]).unwrap();
        let out = response.headers();
        assert_eq!(header(out, "access-control-allow-methods"), Some("PURGE"));
        assert_eq!(
            header(out, "access-control-allow-headers"),
            Some("x-anything, authorization")
        );
        let any = cors("allow_origins = [\"*\"]");
        let response = any
            .preflight(&preflight("https://a.org", "GET", &[]), &[Method::GET])
            .unwrap();
        assert_eq!(
            header(response.headers(), "access-control-allow-origin"),
            Some("*")
        );
    }

    #[test]
    fn private_network_preflights() {
        let policy =
            cors("allow_origins = [\"https://example.com\"]\nallow_private_network = true");
        let asked = preflight(
            "https://example.com",
            "GET",
            &[("access-control-request-private-network", "true")],
        );
        let response = policy.preflight(&asked, &[Method::GET]).unwrap();
        assert_eq!(
            header(response.headers(), "access-control-allow-private-network"),
            Some("true")
        );
        let plain = preflight("https://example.com", "GET", &[]);
        let response = policy.preflight(&plain, &[Method::GET]).unwrap();
        assert_eq!(
            header(response.headers(), "access-control-allow-private-network"),
            None
        );
    }

    #[test]
    fn origin_mistakes() {
        let cases = [
            ("allow_origins = []", "at least one origin is required"),
            ("allow_origins = [\"example.com\"]", "not an origin"),
            (
                "allow_origins = [\"https://example.com/\"]",
                "without a trailing slash: write \"https://example.com\"",
            ),
            (
                "allow_origins = [\"https://example.com/app\"]",
                "has a path",
            ),
            ("allow_origins = [\"https://u@example.com\"]", "user info"),
            (
                "allow_origins = [\"https://Example.com\"]",
                "write \"https://example.com\"",
            ),
            (
                "allow_origins = [\"https://example.com:443\"]",
                "default port",
            ),
            (
                "allow_origins = [\"https://example.com:99999\"]",
                "invalid port",
            ),
            ("allow_origins = [\"https://\"]", "invalid host label"),
            (
                "allow_origins = [\"https://a*.example.com\"]",
                "invalid host label",
            ),
            (
                "allow_origins = [\"https://*\"]",
                "must be followed by a domain",
            ),
            (
                "allow_origins = [\"https://*.*.example.com\"]",
                "more than one '*'",
            ),
            ("allow_origins = [\"*://example.com\"]", "not an origin"),
        ];
        for (text, expected) in cases {
            let (field, message) = refused(text);
            assert_eq!(field, "server.cors.allow_origins", "{text}");
            assert!(message.contains(expected), "{text}: {message}");
        }
        cors("allow_origins = [\"http://[::1]:8080\", \"capacitor://localhost\"]");
    }

    #[test]
    fn other_mistakes_name_their_field() {
        let cases = [
            ("allow_origins = [\"*\"]\nallow_credentials = true", "allow_credentials", "any site could read credentialed responses"),
            ("allow_origins = [\"https://a.com\"]\nallow_methods = [\"GE T\"]", "allow_methods", "not a valid method"),
            ("allow_origins = [\"https://a.com\"]\nallow_methods = [\"get\"]", "allow_methods", "write \"GET\""),
            ("allow_origins = [\"https://a.com\"]\nallow_methods = []", "allow_methods", "allows no preflighted request"),
            ("allow_origins = [\"https://a.com\"]\nallow_headers = [\"x bad\"]", "allow_headers", "not a valid header name"),
            ("allow_origins = [\"https://a.com\"]\nexpose_headers = [\"x:bad\"]", "expose_headers", "not a valid header name"),
            ("allow_origins = [\"https://a.com\"]\nexpose_headers = [\"*\"]\nallow_credentials = true", "expose_headers", "list the headers"),
            ("allow_origins = [\"https://a.com\"]\nmax_age = 604801", "max_age", "at most 604800"),
        ];
        for (text, key, expected) in cases {
            let (field, message) = refused(text);
            assert_eq!(field, format!("server.cors.{key}"), "{text}");
            assert!(message.contains(expected), "{text}: {message}");
        }
        cors("allow_origins = [\"https://a.com\"]\nmax_age = 604800");
    }

    #[test]
    fn mistakes_point_at_the_entry() {
        let text = "allow_origins = [\"https://a.com\", \"https://b.com/\"]\nmax_age = 999999";
        let (at, _, _) = Cors::resolve(&raw(text), "routes[3].cors", Path::new(".")).unwrap_err();
        assert!(
            text[at..].starts_with("\"https://b.com/\""),
            "{}",
            &text[at..]
        );
        let text = "allow_origins = [\"https://a.com\"]\nmax_age = 999999";
        let (at, field, _) =
            Cors::resolve(&raw(text), "routes[3].cors", Path::new(".")).unwrap_err();
        assert_eq!(field, "routes[3].cors.max_age");
        assert!(text[at..].starts_with("999999"), "{}", &text[at..]);
    }

    #[test]
    fn the_table_is_strict() {
        assert!(toml::from_str::<RawCors>("allow_origins = [\"*\"]\nallow_origin = 1").is_err());
        assert!(toml::from_str::<RawCors>("allow_methods = [\"GET\"]").is_err());
        assert!(toml::from_str::<RawCors>("allow_origins = [\"*\"]\nmax_age = -1").is_err());
    }

    #[test]
    fn the_policy_is_shareable() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Cors>();
        shareable::<Allowed>();
    }
}
