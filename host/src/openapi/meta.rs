//! What a route says about itself for the document: the `openapi` object of a plugin's
//! route registration (or a config route's `openapi = { … }` table) and the `info` object
//! a plugin registers with its routes. Both are checked once, at start-up, so a typo is a
//! start-up error rather than a silently odd document.

use serde_json::{Map, Value};

/// The keys of a route's `openapi` object, for the unknown-key message.
const ROUTE_KEYS: &str = "summary, description, tags, operationId, deprecated, status, responses, body_media_types or include";

/// A route's documentation metadata (decision 1 of issue 13); every key is optional.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMeta {
    /// One-line summary of the operation.
    pub summary: Option<String>,
    /// Longer description (CommonMark).
    pub description: Option<String>,
    /// Tags grouping operations in the docs page.
    pub tags: Vec<String>,
    /// The operation's id; generated from method and path when absent.
    pub operation_id: Option<String>,
    /// Whether the operation is marked deprecated.
    pub deprecated: bool,
    /// The success status the `response` schema is documented under (default 200).
    pub status: Option<u16>,
    /// Responses in OpenAPI's Responses shape, merged over the generated ones.
    pub responses: Map<String, Value>,
    /// Media types the request body is documented under (default `application/json`).
    pub body_media_types: Vec<String>,
    /// `false` leaves the route out of the document.
    pub include: bool,
}

impl Default for RouteMeta {
    /// A route that says nothing about itself: documented, with generated values.
    fn default() -> Self {
        RouteMeta {
            summary: None,
            description: None,
            tags: Vec::new(),
            operation_id: None,
            deprecated: false,
            status: None,
            responses: Map::new(),
            body_media_types: Vec::new(),
            include: true,
        }
    }
}

/// The document's `info` as a plugin declares it with a route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// `info.title`.
    pub title: Option<String>,
    /// `info.version`.
    pub version: Option<String>,
    /// `info.description`.
    pub description: Option<String>,
}

impl RouteMeta {
    /// Reads an `openapi` object, refusing unknown keys and values of the wrong type with a
    /// message that names the key and what it should be.
    pub fn parse(value: &Value) -> Result<RouteMeta, String> {
        let object = value
            .as_object()
            .ok_or("openapi must be an object, e.g. {\"summary\": \"Read an item\"}")?;
        let mut meta = RouteMeta::default();
        for (key, value) in object {
            match key.as_str() {
                "summary" => meta.summary = Some(string(key, value)?),
                "description" => meta.description = Some(string(key, value)?),
                "operationId" => {
                    let id = string(key, value)?;
                    if id.is_empty() {
                        return Err("openapi.operationId must not be empty".into());
                    }
                    meta.operation_id = Some(id);
                }
                "tags" => meta.tags = strings(key, value)?,
                "deprecated" => meta.deprecated = boolean(key, value)?,
                "include" => meta.include = boolean(key, value)?,
                "status" => {
                    let status = value
                        .as_u64()
                        .filter(|s| (100..=599).contains(s))
                        .ok_or("openapi.status must be an HTTP status code from 100 to 599")?;
                    meta.status = Some(status as u16);
                }
                "responses" => meta.responses = responses(value)?,
                "body_media_types" => {
                    let types = strings(key, value)?;
                    if types.is_empty() {
                        return Err("openapi.body_media_types must list at least one media type, e.g. [\"application/json\"]".into());
                    }
                    if let Some(bad) = types.iter().find(|t| t.parse::<mime::Mime>().is_err()) {
                        return Err(format!("openapi.body_media_types: `{bad}` is not a media type; write e.g. \"multipart/form-data\""));
                    }
                    meta.body_media_types = types;
                }
                other => return Err(format!("unknown openapi key `{other}`; use {ROUTE_KEYS}")),
            }
        }
        Ok(meta)
    }
}

impl Info {
    /// Reads an `info` object: `title`, `version` and `description`, all strings.
    pub fn parse(value: &Value) -> Result<Info, String> {
        let object = value
            .as_object()
            .ok_or("info must be an object, e.g. {\"title\": \"Items\", \"version\": \"1.0\"}")?;
        let mut info = Info::default();
        for (key, value) in object {
            let slot = match key.as_str() {
                "title" => &mut info.title,
                "version" => &mut info.version,
                "description" => &mut info.description,
                other => {
                    return Err(format!(
                        "unknown info key `{other}`; use title, version or description"
                    ))
                }
            };
            *slot = Some(
                value
                    .as_str()
                    .ok_or_else(|| format!("info.{key} must be a string"))?
                    .to_owned(),
            );
        }
        Ok(info)
    }
}

fn string(key: &str, value: &Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("openapi.{key} must be a string"))
}

fn boolean(key: &str, value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("openapi.{key} must be true or false"))
}

fn strings(key: &str, value: &Value) -> Result<Vec<String>, String> {
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| format!("openapi.{key} must be a list of strings"))
}

/// `responses`: an object keyed by status code (`"404"`), range (`"4XX"`) or `"default"`,
/// each value a Response Object (an object).
fn responses(value: &Value) -> Result<Map<String, Value>, String> {
    let object = value.as_object().ok_or(
        "openapi.responses must be an object keyed by status, e.g. {\"404\": {\"description\": \"Not found\"}}",
    )?;
    for (status, response) in object {
        if !is_response_key(status) {
            return Err(format!("openapi.responses: `{status}` is not a status code; use e.g. \"404\", \"4XX\" or \"default\""));
        }
        let Some(response) = response.as_object() else {
            return Err(format!(
                "openapi.responses.{status} must be an object, e.g. {{\"description\": \"Not found\"}}"
            ));
        };
        if let Some(d) = response.get("description").filter(|d| !d.is_string()) {
            return Err(format!(
                "openapi.responses.{status}.description must be a string, not {d}"
            ));
        }
    }
    Ok(object.clone())
}

/// `"100"`…`"599"`, `"1XX"`…`"5XX"` or `"default"`.
fn is_response_key(key: &str) -> bool {
    if key == "default" {
        return true;
    }
    let b = key.as_bytes();
    b.len() == 3
        && (b'1'..=b'5').contains(&b[0])
        && ((b[1].is_ascii_digit() && b[2].is_ascii_digit()) || &b[1..] == b"XX")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_key_and_defaults() {
        let meta = RouteMeta::parse(&json!({
            "summary": "s", "description": "d", "tags": ["a", "b"], "operationId": "op",
            "deprecated": true, "status": 201, "include": false,
            "responses": {"404": {"description": "gone"}, "4XX": {}, "default": {}},
            "body_media_types": ["multipart/form-data"]
        }))
        .unwrap();
        assert_eq!(meta.summary.as_deref(), Some("s"));
        assert_eq!(meta.tags, ["a", "b"]);
        assert_eq!(meta.status, Some(201));
        assert!(meta.deprecated && !meta.include);
        assert_eq!(meta.responses.len(), 3);
        assert!(RouteMeta::parse(&json!({})).unwrap().include);
    }

    #[test]
    fn wrong_types_are_named() {
        for (value, needle) in [
            (json!({"summary": 1}), "openapi.summary must be a string"),
            (
                json!({"tags": "a"}),
                "openapi.tags must be a list of strings",
            ),
            (
                json!({"tags": [1]}),
                "openapi.tags must be a list of strings",
            ),
            (
                json!({"deprecated": "yes"}),
                "openapi.deprecated must be true or false",
            ),
            (
                json!({"status": 700}),
                "openapi.status must be an HTTP status",
            ),
            (
                json!({"responses": {"nope": {}}}),
                "`nope` is not a status code",
            ),
            (
                json!({"responses": {"404": "x"}}),
                "openapi.responses.404 must be an object",
            ),
            (json!({"body_media_types": []}), "at least one media type"),
            (
                json!({"body_media_types": ["json"]}),
                "`json` is not a media type",
            ),
            (json!({"operationId": ""}), "must not be empty"),
            (json!({"sumary": "x"}), "unknown openapi key `sumary`"),
            (json!([]), "openapi must be an object"),
        ] {
            let e = RouteMeta::parse(&value).unwrap_err();
            assert!(e.contains(needle), "{value}: {e}");
        }
    }

    #[test]
    fn info_keys() {
        let info = Info::parse(&json!({"title": "T", "version": "1"})).unwrap();
        assert_eq!(info.title.as_deref(), Some("T"));
        assert_eq!(info.description, None);
        assert!(Info::parse(&json!({"title": 3}))
            .unwrap_err()
            .contains("info.title must be a string"));
        assert!(Info::parse(&json!({"name": "x"}))
            .unwrap_err()
            .contains("unknown info key `name`"));
    }
}
