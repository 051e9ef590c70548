//! Request validation and coercion, run in Rust before any plugin is called.
//!
//! Each route's JSON Schemas are compiled once at start-up into a [`RouteValidator`]; per
//! request it turns the raw path/query/header/cookie/form strings into typed JSON, checks
//! them and the JSON body, and reports *every* problem in pydantic's error shape so that
//! clients see the same 422 bodies a FastAPI service would give them.

mod coerce;
mod errors;
mod files;
mod formats;
mod source;
mod urlencoded;

// The server rejects a form with holes in `name[i]` indices
// with a 400 before validating.
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
}

/// The parts of a request the validator reads; borrowed, so the server keeps ownership.
pub struct RequestInput<'a> {
    /// Path parameters, already percent-decoded, in route order.
    pub path: &'a [(&'a str, String)],
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
        })
    }

    /// True when the route declares no schema at all: nothing to coerce.
    pub fn is_empty(&self) -> bool {
        self.path.is_none()
            && self.query.is_none()
            && self.headers.is_none()
            && self.cookies.is_none()
            && self.body.is_none()
    }

    /// True when the route declares a body schema (so a request without a body is a 422).
    pub fn has_body_schema(&self) -> bool {
        self.body.is_some()
    }

    /// Coerces and validates one request; `Err` lists every error, ordered path, query,
    /// headers, cookies, body (and by location within a source).
    pub fn validate(&self, input: &RequestInput<'_>) -> Result<Validated, Vec<FieldError>> {
        let mut errors = Vec::new();
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
        path: &[(&str, String)],
        errors: &mut Vec<FieldError>,
    ) -> Map<String, Value> {
        match &self.path {
            Some(source) => {
                let pairs: Vec<Pair<'_>> = path
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(v.as_str())))
                    .collect();
                source.run(&pairs, Extras::Keep, &errors::PATH, errors)
            }
            None => path
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
                .collect(),
        }
    }

    fn query_params(
        &self,
        query: Option<&str>,
        errors: &mut Vec<FieldError>,
    ) -> Map<String, Value> {
        let pairs = urlencoded::parse(query.unwrap_or_default().as_bytes());
        match &self.query {
            Some(source) => source.run(&pairs, Extras::Keep, &errors::QUERY, errors),
            None => {
                let mut object = Map::new();
                for (k, v) in &pairs {
                    source::append(&mut object, k, Value::String(v.to_string()));
                }
                object
            }
        }
    }

    /// Declared headers only: each read by its precomputed lowercase name; repeated header
    /// lines are joined with `", "` (RFC 9110) or, for arrays, split on commas.
    fn header_params(
        &self,
        headers: &http::HeaderMap,
        errors: &mut Vec<FieldError>,
    ) -> Map<String, Value> {
        let Some(source) = &self.headers else {
            return Map::new();
        };
        let mut pairs: Vec<Pair<'_>> = Vec::new();
        for prop in source.props() {
            let Some(name) = &prop.header else { continue };
            let mut values = headers.get_all(name).iter().map(|v| lossy(v.as_bytes()));
            match prop.plan {
                coerce::Plan::Array { .. } => {
                    for value in values {
                        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                            pairs.push((Cow::Borrowed(&prop.name), Cow::Owned(item.to_owned())));
                        }
                    }
                }
                coerce::Plan::Scalar(_) => {
                    let Some(first) = values.next() else { continue };
                    let value = match values.next() {
                        None => first,
                        Some(second) => {
                            let mut joined = format!("{first}, {second}");
                            values.for_each(|v| {
                                joined.push_str(", ");
                                joined.push_str(&v);
                            });
                            Cow::Owned(joined)
                        }
                    };
                    pairs.push((Cow::Borrowed(&prop.name), value));
                }
            }
        }
        source.run(&pairs, Extras::Ignore, &errors::HEADERS, errors)
    }

    /// Declared cookies only, parsed from every `Cookie` header (`a=1; b=2`).
    fn cookie_params(
        &self,
        headers: &http::HeaderMap,
        errors: &mut Vec<FieldError>,
    ) -> Map<String, Value> {
        let Some(source) = &self.cookies else {
            return Map::new();
        };
        let mut pairs: Vec<Pair<'_>> = Vec::new();
        for header in headers.get_all(COOKIE) {
            let text = lossy(header.as_bytes());
            for part in text.split(';') {
                let Some((name, value)) = part.split_once('=') else {
                    continue;
                };
                let name = name.trim();
                let Some(prop) = source.props().iter().find(|p| p.name == name) else {
                    continue;
                };
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                pairs.push((Cow::Borrowed(&prop.name), Cow::Owned(value.to_owned())));
            }
        }
        source.run(&pairs, Extras::Ignore, &errors::COOKIES, errors)
    }

    /// Validates the body; returns the coerced fields when it was a validated form.
    fn body_params(
        &self,
        body: &Body<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Map<String, Value>> {
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

/// Header bytes as text, borrowed when valid UTF-8 (obs-text is replaced, never rejected).
fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests;
