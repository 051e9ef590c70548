//! Request validation and coercion, run in Rust before any plugin is called.
//!
//! Each route's JSON Schemas are compiled once at start-up into a [`RouteValidator`]; per
//! request it turns the raw path/query/header/cookie/form strings into typed JSON, checks
//! them and the JSON body, and reports *every* problem in pydantic's error shape so that
//! clients see the same 422 bodies a FastAPI service would give them.

mod bounds;
mod coerce;
mod collected;
mod errors;
mod files;
mod formats;
mod lax;
mod long_keys;
mod numbers;
pub mod patterns;
mod source;
mod urlencoded;

pub use collected::{FieldErrors, DEFAULT_MAX_ERRORS};

// The server rejects a form with holes in `name[i]` indices
// with a 400 before validating.
/// JSON bodies are held to the range plugins can decode.
pub use numbers::{find_out_of_range, MAX_INT_DIGITS};
/// Path parameter values reach validation percent-decoded, undecodable bytes flagged.
pub use urlencoded::Decoded;
pub use urlencoded::{check_form_indices, check_indices};

use crate::multipart::Part;
use http::header::COOKIE;
use serde_json::{Map, Value};
use source::{Extras, ParamSource};
use std::borrow::Cow;
use urlencoded::Pair;

/// Per-source JSON Schemas of one route, as written in the config (each param source is an
/// object schema: `{"type":"object","properties":{...},"required":[...]}`).
#[derive(Debug, Default, Clone)]
pub struct SchemaSpec {
    /// Schema of the path parameters.
    pub path: Option<Value>,
    /// Schema of the query parameters.
    pub query: Option<Value>,
    /// Schema of the declared headers (property names match case-insensitively).
    pub headers: Option<Value>,
    /// Schema of the declared cookies.
    pub cookies: Option<Value>,
    /// Schema of the body, JSON, urlencoded or multipart form.
    pub body: Option<Value>,
}

/// Compiled validators for one route, built once at start-up and shared by all requests.
pub struct RouteValidator {
    path: Option<ParamSource>,
    query: Option<ParamSource>,
    headers: Option<ParamSource>,
    cookies: Option<ParamSource>,
    body: Option<ParamSource>,
    /// Errors listed per request; more are only counted (`[server] max_validation_errors`).
    max_errors: usize,
}

/// The parts of a request the validator reads; borrowed, so the server keeps ownership.
pub struct RequestInput<'a> {
    /// Path parameters, percent-decoded, in route order; bytes that are not UTF-8 are a
    /// `string_unicode` error.
    pub path: &'a [(&'a str, Decoded<'a>)],
    /// Raw query string (without `?`), not decoded.
    pub query: Option<&'a str>,
    /// Request headers (cookies are read from its `Cookie` entries).
    pub headers: &'a http::HeaderMap,
    /// The body as the server classified it from its content type.
    pub body: Body<'a>,
}

/// A request body, as far as validation is concerned.
pub enum Body<'a> {
    /// No body was sent.
    None,
    /// A JSON body, already parsed by the server.
    Json(&'a Value),
    /// A raw `application/x-www-form-urlencoded` body.
    Form(&'a [u8]),
    /// The parts of a `multipart/form-data` body.
    Multipart(&'a [Part<'a>]),
}

/// The outcome of a successful validation, handed to the plugin.
pub struct Validated {
    /// `{"path":{..},"query":{..},"headers":{..},"cookies":{..}}` plus `"form":{..}` when a
    /// urlencoded or multipart body was validated. Values coerced to their schema types;
    /// uploaded files as objects (see [`Part::file_json`]).
    pub params: Value,
}

/// One validation problem, serialised as pydantic v2 / FastAPI report it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FieldError {
    /// Pydantic error type: `"missing"`, `"int_parsing"`, `"string_too_short"`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Where: `["query","q"]`, `["body","items",0,"name"]`, `["headers","x-token"]`,
    /// `["cookie","session"]`, `["path","id"]`.
    pub loc: Vec<Value>,
    /// Pydantic's wording, e.g. `"Field required"`.
    pub msg: String,
    /// The offending input (for `missing`: the enclosing object, or null for parameters).
    pub input: Value,
    /// Constraint details, e.g. `{"min_length":3}`, `{"gt":0}`, `{"pattern":"^a"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl RouteValidator {
    /// Compiles every schema of `spec`.
    ///
    /// `Err` is a human message saying which source's schema is invalid and why, meant for
    /// a configuration error at start-up.
    pub fn compile(spec: &SchemaSpec) -> Result<Self, String> {
        let compile = |name: &str, schema: &Option<Value>| {
            schema
                .as_ref()
                .map(|s| ParamSource::compile(name, s))
                .transpose()
        };
        Ok(Self {
            path: compile("path", &spec.path)?,
            query: compile("query", &spec.query)?,
            headers: compile("headers", &spec.headers)?,
            cookies: compile("cookies", &spec.cookies)?,
            body: compile("body", &spec.body)?,
            max_errors: DEFAULT_MAX_ERRORS,
        })
    }

    /// Lists at most `max_errors` errors per request (at least one); the rest are counted.
    #[must_use]
    pub fn with_max_errors(mut self, max_errors: usize) -> Self {
        self.max_errors = max_errors.max(1);
        self
    }

    /// True when the route declares no schema at all: nothing to coerce.
    pub fn is_empty(&self) -> bool {
        self.path.is_none()
            && self.query.is_none()
            && self.headers.is_none()
            && self.cookies.is_none()
            && self.body.is_none()
    }

    /// The sources (`"query"`, `"body"`, ...) whose schema has a pattern that needs the
    /// backtracking regex engine (see [`patterns`]), for the start-up log.
    pub fn backtracking_sources(&self) -> Vec<&'static str> {
        [
            ("path", &self.path),
            ("query", &self.query),
            ("headers", &self.headers),
            ("cookies", &self.cookies),
            ("body", &self.body),
        ]
        .into_iter()
        .filter(|(_, source)| {
            source
                .as_ref()
                .is_some_and(|s| s.engine() == patterns::Engine::Backtracking)
        })
        .map(|(name, _)| name)
        .collect()
    }

    /// True when the route declares a body schema (so a request without a body is a 422).
    pub fn has_body_schema(&self) -> bool {
        self.body.is_some()
    }

    /// Coerces and validates one request; `Err` lists the errors, ordered path, query,
    /// headers, cookies, body (and by location within a source), at most `max_errors` of
    /// them, and counts the others.
    pub fn validate(&self, input: &RequestInput<'_>) -> Result<Validated, FieldErrors> {
        let mut errors = FieldErrors::new(self.max_errors);
        let path = self.path_params(input.path, &mut errors);
        let query = self.query_params(input.query, &mut errors);
        let headers = self.header_params(input.headers, &mut errors);
        let cookies = self.cookie_params(input.headers, &mut errors);
        let form = self.body_params(&input.body, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut params = Map::new();
        params.insert("path".to_owned(), Value::Object(path));
        params.insert("query".to_owned(), Value::Object(query));
        params.insert("headers".to_owned(), Value::Object(headers));
        params.insert("cookies".to_owned(), Value::Object(cookies));
        if let Some(form) = form {
            params.insert("form".to_owned(), Value::Object(form));
        }
        Ok(Validated {
            params: Value::Object(params),
        })
    }

    fn path_params(
        &self,
        path: &[(&str, Decoded<'_>)],
        errors: &mut FieldErrors,
    ) -> Map<String, Value> {
        let pairs: Vec<Pair<'_>> = path
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.reborrow()))
            .collect();
        match &self.path {
            Some(source) => source.run(&pairs, Extras::Keep, &errors::PATH, errors),
            None => as_strings(&pairs, &errors::PATH, errors),
        }
    }

    fn query_params(&self, query: Option<&str>, errors: &mut FieldErrors) -> Map<String, Value> {
        let pairs = urlencoded::parse(query.unwrap_or_default().as_bytes());
        match &self.query {
            Some(source) => source.run(&pairs, Extras::Keep, &errors::QUERY, errors),
            None => as_strings(&pairs, &errors::QUERY, errors),
        }
    }

    /// Declared headers only: each read by its precomputed lowercase name; repeated header
    /// lines are joined with `", "` (RFC 9110) or, for arrays, split on commas.
    fn header_params(
        &self,
        headers: &http::HeaderMap,
        errors: &mut FieldErrors,
    ) -> Map<String, Value> {
        let Some(source) = &self.headers else {
            return Map::new();
        };
        let mut pairs: Vec<Pair<'_>> = Vec::new();
        for prop in source.props() {
            let Some(name) = &prop.header else { continue };
            let values = headers.get_all(name).iter();
            let key = || Cow::Borrowed(prop.name.as_str());
            match prop.plan {
                coerce::Plan::Array { .. } => {
                    for value in values.map(|v| Decoded::from_bytes(v.as_bytes())) {
                        let Decoded::Text(value) = value else {
                            pairs.push((key(), value));
                            continue;
                        };
                        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                            let item = Cow::Owned(item.to_owned());
                            pairs.push((key(), Decoded::Text(item)));
                        }
                    }
                }
                coerce::Plan::Scalar(_) => {
                    if let Some(value) = joined_header(values) {
                        pairs.push((key(), value));
                    }
                }
            }
        }
        source.run(&pairs, Extras::Ignore, &errors::HEADERS, errors)
    }

    /// Declared cookies only, parsed from every `Cookie` header (`a=1; b=2`).
    fn cookie_params(
        &self,
        headers: &http::HeaderMap,
        errors: &mut FieldErrors,
    ) -> Map<String, Value> {
        let Some(source) = &self.cookies else {
            return Map::new();
        };
        let mut pairs: Vec<Pair<'_>> = Vec::new();
        for header in headers.get_all(COOKIE) {
            for part in header.as_bytes().split(|&b| b == b';') {
                let Some(eq) = part.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let name = part[..eq].trim_ascii();
                let Some(prop) = source.props().iter().find(|p| p.name.as_bytes() == name) else {
                    continue;
                };
                let value = part[eq + 1..].trim_ascii();
                let value = value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value);
                pairs.push((Cow::Borrowed(&prop.name), Decoded::from_bytes(value)));
            }
        }
        source.run(&pairs, Extras::Ignore, &errors::COOKIES, errors)
    }

    /// Validates the body; returns the coerced fields when it was a validated form.
    fn body_params(&self, body: &Body<'_>, errors: &mut FieldErrors) -> Option<Map<String, Value>> {
        let source = self.body.as_ref()?;
        match body {
            Body::None => {
                errors.push(errors::missing_body());
                None
            }
            Body::Json(value) => {
                source.check_value(value, &errors::BODY, errors);
                None
            }
            Body::Form(raw) => {
                let pairs = urlencoded::parse(raw);
                Some(source.run(&pairs, Extras::Keep, &errors::BODY, errors))
            }
            Body::Multipart(parts) => {
                let pairs: Vec<(Cow<'_, str>, &Part<'_>)> = parts
                    .iter()
                    .map(|part| (Cow::Borrowed(part.name.as_str()), part))
                    .collect();
                Some(source.run(&pairs, Extras::Keep, &errors::BODY, errors))
            }
        }
    }
}

/// The lines of one header as one value, joined with `", "` (RFC 9110); borrowed when there
/// is one line. Not UTF-8 when any line is not: obs-text is refused for declared headers.
fn joined_header<'h>(
    mut values: http::header::ValueIter<'h, http::HeaderValue>,
) -> Option<Decoded<'h>> {
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Decoded::from_bytes(first.as_bytes()));
    };
    let mut bytes = first.as_bytes().to_vec();
    for value in std::iter::once(second).chain(values) {
        bytes.extend_from_slice(b", ");
        bytes.extend_from_slice(value.as_bytes());
    }
    Some(Decoded::from_cow(Cow::Owned(bytes)))
}

/// The pairs of a source without a schema, passed on as strings (repeated keys as arrays);
/// values whose bytes are not UTF-8 are reported instead.
fn as_strings(
    pairs: &[Pair<'_>],
    style: &errors::Style,
    out: &mut FieldErrors,
) -> Map<String, Value> {
    let mut object = Map::new();
    for (key, value) in pairs {
        match value {
            Decoded::Text(text) => {
                source::append(&mut object, key, Value::String(text.to_string()))
            }
            Decoded::NotUtf8(lossy) => {
                out.push_with(|| errors::coercion(style, key, None, lossy, coerce::STRING_UNICODE))
            }
        }
    }
    object
}

/// How many errors of a response schema the log line of a refused response describes.
const MAX_RESPONSE_ERRORS: usize = 10;

/// Why a plugin's JSON response breaks its route's response schema, for the log line that
/// goes with the 500: its first errors, each cut to a bounded size. `None` when it matches.
///
/// A plugin that echoes a hostile request must not turn one bad response into megabytes of
/// log, so neither the number of errors nor their text grows with the response.
pub fn response_mismatch(schema: &jsonschema::Validator, value: &Value) -> Option<String> {
    if schema.is_valid(value) {
        return None;
    }
    let described: Vec<String> = schema
        .iter_errors(value)
        .take(MAX_RESPONSE_ERRORS)
        .map(|e| {
            format!(
                "{} at {}",
                bounds::bounded_message(&e),
                bounds::bounded_text(e.instance_path().as_str(), bounds::MAX_TEXT_BYTES)
            )
        })
        .collect();
    Some(described.join("; "))
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
