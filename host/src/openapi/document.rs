//! Builds the OpenAPI 3.1 document from the routes' schemas and metadata: one Operation per
//! route, a Parameter per property of its path/query/header/cookie schemas, its request body
//! under each media type it accepts, its success response and the host's own error answers
//! (RFC 9457 Problem Details), and the named models as components.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use super::components::Components;
use super::security::Schemes;
use super::{Info, RouteDoc};
use crate::config::OpenApiConfig;

/// The OpenAPI version the document declares.
pub const OPENAPI_VERSION: &str = "3.1.0";
/// `info.title` when neither the config nor a plugin gives one.
const DEFAULT_TITLE: &str = "Spikard API";
/// `info.version` when neither the config nor a plugin gives one (FastAPI's default).
const DEFAULT_VERSION: &str = "0.1.0";
/// Component name of the host's error body.
const PROBLEM: &str = "ProblemDetails";
/// Component name of the host's 422 body.
const VALIDATION_PROBLEM: &str = "ValidationProblemDetails";
/// Component name of one entry of a 422's `errors`.
const VALIDATION_ERROR: &str = "ValidationError";
/// The media type of every error body (`crate::problem::PROBLEM_JSON`).
const PROBLEM_JSON: &str = crate::problem::PROBLEM_JSON;

/// One route as the document sees it.
pub struct Operation<'a> {
    /// HTTP method.
    pub method: &'a http::Method,
    /// The host's path template (`/items/{id}`, `/files/{*rest}`).
    pub path: &'a str,
    /// The template's parameter names, in order.
    pub param_names: &'a [String],
    /// Its schemas and metadata.
    pub doc: &'a RouteDoc,
    /// The authentication policy the host applies to it.
    pub auth: Option<&'a crate::middleware::auth::Auth>,
    /// Where it was declared, for warnings.
    pub origin: &'a str,
}

/// The whole document as JSON.
pub fn build(config: &OpenApiConfig, operations: &[Operation<'_>]) -> Value {
    let mut components = Components::default();
    components.insert_fixed(PROBLEM, problem_schema());
    components.insert_fixed(VALIDATION_ERROR, validation_error_schema());
    components.insert_fixed(VALIDATION_PROBLEM, validation_problem_schema());
    let included: Vec<&Operation<'_>> = operations.iter().filter(|o| o.doc.meta.include).collect();
    let ids = operation_ids(&included);
    let mut schemes = Schemes::default();
    let mut paths = Map::new();
    for (operation, id) in included.iter().zip(ids) {
        // Templates of one shape (`/a/{id}`, `/a/{key}`) are one path to OpenAPI: each is
        // documented under the first one's names (the host maps values by position).
        let first = included
            .iter()
            .find(|o| crate::config::same_shape(o.path, operation.path))
            .unwrap_or(operation);
        let item = paths
            .entry(document_path(first.path))
            .or_insert_with(|| json!({}));
        let mut object = operation_object(operation, first.param_names, &id, &mut components);
        if let (Some(auth), Some(object)) = (operation.auth, object.as_object_mut()) {
            object.insert("security".into(), schemes.requirement(auth.credentials()));
        }
        if let Some(item) = item.as_object_mut() {
            item.insert(operation.method.as_str().to_ascii_lowercase(), object);
        }
    }
    let mut components = json!({"schemas": components.into_map()});
    let schemes = schemes.into_map();
    if !schemes.is_empty() {
        components["securitySchemes"] = schemes.into();
    }
    json!({
        "openapi": OPENAPI_VERSION,
        "info": info(config, operations),
        "paths": paths,
        "components": components,
    })
}

/// `info`: the config's keys, else the first route's `info`, else the defaults. A later
/// route with a different `info` is ignored with one warning.
fn info(config: &OpenApiConfig, operations: &[Operation<'_>]) -> Value {
    let mut declared = operations
        .iter()
        .filter_map(|o| o.doc.info.as_ref().map(|i| (i, o.origin)));
    let first: Option<&Info> = declared.next().map(|(i, _)| i);
    if let Some((_, origin)) = first.and_then(|first| declared.find(|(i, _)| *i != first)) {
        tracing::warn!(
            "openapi: {origin} declares an `info` different from the first route's; the first one is used"
        );
    }
    let pick = |own: &Option<String>, theirs: Option<&Option<String>>| {
        own.clone().or_else(|| theirs.and_then(Clone::clone))
    };
    let title =
        pick(&config.title, first.map(|i| &i.title)).unwrap_or_else(|| DEFAULT_TITLE.into());
    let version =
        pick(&config.version, first.map(|i| &i.version)).unwrap_or_else(|| DEFAULT_VERSION.into());
    let mut info = json!({"title": title, "version": version});
    if let Some(description) = pick(&config.description, first.map(|i| &i.description)) {
        info["description"] = Value::String(description);
    }
    info
}

/// The document's key for a template: the host's `{*rest}` is OpenAPI's `{rest}`.
fn document_path(template: &str) -> String {
    template.replace("{*", "{")
}

/// Each operation's id: its own when unique, else generated from method and path
/// (`get_items_item_id`), made unique with a suffix. Declared ids are reserved first, so a
/// generated one never takes them; a declared id used twice is warned about and suffixed.
fn operation_ids(operations: &[&Operation<'_>]) -> Vec<String> {
    let mut used: HashSet<String> = operations
        .iter()
        .filter_map(|o| o.doc.meta.operation_id.clone())
        .collect();
    let mut declared_seen: HashSet<&str> = HashSet::new();
    let mut ids = Vec::with_capacity(operations.len());
    for operation in operations {
        let base = match &operation.doc.meta.operation_id {
            Some(id) if declared_seen.insert(id.as_str()) => {
                ids.push(id.clone());
                continue;
            }
            Some(id) => {
                tracing::warn!(
                    "openapi: operationId `{id}` of {} is already used by another route; it is documented with a suffix",
                    operation.origin
                );
                id.clone()
            }
            None => generated_id(operation.method, operation.path),
        };
        let mut id = base.clone();
        let mut n = 2;
        while !used.insert(id.clone()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        ids.push(id);
    }
    ids
}

/// `GET /items/{item_id}` → `get_items_item_id`; `GET /` → `get_root`.
fn generated_id(method: &http::Method, path: &str) -> String {
    let words: Vec<String> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let method = method.as_str().to_ascii_lowercase();
    if words.is_empty() {
        format!("{method}_root")
    } else {
        format!("{method}_{}", words.join("_"))
    }
}

/// One Operation Object.
fn operation_object(
    operation: &Operation<'_>,
    path_names: &[String],
    id: &str,
    components: &mut Components,
) -> Value {
    let doc = operation.doc;
    let meta = &doc.meta;
    let mut object = Map::new();
    object.insert("operationId".into(), id.into());
    if let Some(summary) = &meta.summary {
        object.insert("summary".into(), summary.clone().into());
    }
    if let Some(description) = &meta.description {
        object.insert("description".into(), description.clone().into());
    }
    if !meta.tags.is_empty() {
        object.insert("tags".into(), json!(meta.tags));
    }
    if meta.deprecated {
        object.insert("deprecated".into(), true.into());
    }
    let parameters = parameters(operation, path_names, id, components);
    if !parameters.is_empty() {
        object.insert("parameters".into(), parameters.into());
    }
    if let Some(body) = request_body(doc, id, components) {
        object.insert("requestBody".into(), body);
    }
    object.insert("responses".into(), responses(doc, id, components).into());
    object.into()
}

/// Parameter Objects: the template's parameters first, in template order, named as the
/// document's path names them (`path_names`; a string when the path schema does not describe
/// one), then one per property of the query, header and cookie schemas.
fn parameters(
    operation: &Operation<'_>,
    path_names: &[String],
    id: &str,
    components: &mut Components,
) -> Vec<Value> {
    let schemas = &operation.doc.schemas;
    let mut path_properties = Map::new();
    let mut out = Vec::new();
    let sources = [
        ("path", &schemas.path),
        ("query", &schemas.query),
        ("header", &schemas.headers),
        ("cookie", &schemas.cookies),
    ];
    for (location, schema) in sources {
        let Some(schema) = schema else { continue };
        let hoisted = components.hoist(schema, &format!("{id}_{location}"));
        let inline = &hoisted.inline;
        let Some(properties) = inline.get("properties").and_then(Value::as_object) else {
            continue;
        };
        if location == "path" {
            path_properties = properties.clone();
            continue;
        }
        let required: Vec<&str> = inline
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, property) in properties {
            out.push(parameter(
                name,
                location,
                required.contains(&name.as_str()),
                property,
            ));
        }
    }
    let string = json!({"type": "string"});
    let path = operation
        .param_names
        .iter()
        .zip(path_names)
        .map(|(own, shown)| {
            let schema = path_properties.get(own).unwrap_or(&string);
            parameter(shown, "path", true, schema)
        });
    path.chain(out).collect()
}

/// One Parameter Object, with `description`, `deprecated` and examples lifted from the
/// property's schema.
fn parameter(name: &str, location: &str, required: bool, schema: &Value) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), name.into());
    object.insert("in".into(), location.into());
    object.insert("required".into(), required.into());
    if let Some(description) = schema.get("description").and_then(Value::as_str) {
        object.insert("description".into(), description.into());
    }
    if schema.get("deprecated").and_then(Value::as_bool) == Some(true) {
        object.insert("deprecated".into(), true.into());
    }
    match schema.get("examples").and_then(Value::as_array) {
        Some(examples) if !examples.is_empty() => {
            let named: Map<String, Value> = examples
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("example{}", i + 1), json!({"value": v})))
                .collect();
            object.insert("examples".into(), named.into());
        }
        _ => {
            if let Some(example) = schema.get("example") {
                object.insert("example".into(), example.clone());
            }
        }
    }
    object.insert("schema".into(), schema.clone());
    object.into()
}

/// The Request Body Object: the body schema under each media type the route accepts; a
/// streamed body (no schema) as any bytes.
fn request_body(doc: &RouteDoc, id: &str, components: &mut Components) -> Option<Value> {
    let (schema, default_type) = match &doc.schemas.body {
        Some(body) => (
            components
                .hoist(body, &format!("{id}_body"))
                .schema()
                .clone(),
            if has_file_field(body) {
                "multipart/form-data"
            } else {
                "application/json"
            },
        ),
        None if doc.stream_body => (json!({}), "application/octet-stream"),
        None => return None,
    };
    let types: Vec<&str> = if doc.meta.body_media_types.is_empty() {
        vec![default_type]
    } else {
        doc.meta
            .body_media_types
            .iter()
            .map(String::as_str)
            .collect()
    };
    let content: Map<String, Value> = types
        .into_iter()
        .map(|t| (t.to_owned(), json!({"schema": schema})))
        .collect();
    Some(json!({"required": true, "content": content}))
}

/// Whether a body schema has a file field (the host's rule: a property, or its `items`,
/// with `format: binary`, a `contentMediaType` or `x-magic-numbers`): such a body arrives as
/// `multipart/form-data`, its default media type when the route names none.
fn has_file_field(body: &Value) -> bool {
    let is_file = |schema: &Value| {
        schema.get("format").and_then(Value::as_str) == Some("binary")
            || schema.get("contentMediaType").is_some()
            || schema.get("x-magic-numbers").is_some()
    };
    body.get("properties")
        .and_then(Value::as_object)
        .is_some_and(|properties| {
            properties
                .values()
                .any(|p| is_file(p) || p.get("items").is_some_and(is_file))
        })
}

/// The Responses Object: the success status (with the `response` schema, or an empty one),
/// 422 when the route validates anything, the Problem Details ranges, and the route's own
/// `responses` merged over them.
fn responses(doc: &RouteDoc, id: &str, components: &mut Components) -> Map<String, Value> {
    let status = doc.meta.status.unwrap_or(200);
    let mut success = Map::new();
    success.insert("description".into(), reason(status).into());
    if !matches!(status, 100..=199 | 204 | 205 | 304) {
        let schema = match &doc.response {
            Some(response) => components
                .hoist(response, &format!("{id}_response"))
                .schema()
                .clone(),
            None => json!({}),
        };
        success.insert(
            "content".into(),
            json!({"application/json": {"schema": schema}}),
        );
    }
    let mut out = Map::new();
    out.insert(status.to_string(), success.into());
    let s = &doc.schemas;
    let validates = [&s.path, &s.query, &s.headers, &s.cookies, &s.body]
        .iter()
        .any(|schema| schema.is_some());
    if validates {
        out.insert(
            "422".into(),
            problem_response(
                "Validation Error: the request did not match the route's schemas",
                VALIDATION_PROBLEM,
            ),
        );
    }
    out.insert(
        "4XX".into(),
        problem_response("Client error, as RFC 9457 Problem Details", PROBLEM),
    );
    out.insert(
        "5XX".into(),
        problem_response("Server error, as RFC 9457 Problem Details", PROBLEM),
    );
    for (key, given) in &doc.meta.responses {
        let mut given = given.as_object().cloned().unwrap_or_default();
        // A model the route documents itself (FastAPI's `responses={404: {"model": X}}`)
        // may carry `$defs` too.
        if let Some(Value::Object(content)) = given.get_mut("content") {
            for media in content.values_mut() {
                if let Some(schema) = media.get_mut("schema") {
                    *schema = components
                        .hoist(schema, &format!("{id}_{key}_response"))
                        .schema()
                        .clone();
                }
            }
        }
        // Merged in place: a generated response keeps its position and its description
        // unless the route gives one.
        match out.get_mut(key) {
            Some(Value::Object(generated)) => generated.extend(given),
            _ => {
                if !given.contains_key("description") {
                    let status = key.parse::<u16>().unwrap_or(0);
                    given.insert("description".into(), reason(status).into());
                }
                out.insert(key.clone(), given.into());
            }
        }
    }
    out
}

/// A response whose body is one of the host's Problem Details components.
fn problem_response(description: &str, component: &str) -> Value {
    json!({
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": format!("#/components/schemas/{component}")}}},
    })
}

/// A status's reason phrase, for a response's required `description`.
fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Response")
}

/// The host's error body (`crate::problem`).
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "An RFC 9457 Problem Details object: the body of every error answer.",
        "properties": {
            "type": {"type": "string", "description": "URI reference naming the kind of problem"},
            "title": {"type": "string", "description": "Short summary of the kind of problem"},
            "status": {"type": "integer", "description": "The HTTP status"},
            "detail": {"type": "string", "description": "What went wrong with this request"},
            "request_id": {"type": "string", "description": "The request's id (also in the request id header)"}
        },
        "required": ["type", "title", "status"]
    })
}

/// One entry of a 422's `errors` (`crate::validation::FieldError`).
fn validation_error_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "type": {"type": "string", "description": "Error type, e.g. missing or int_parsing"},
            "loc": {
                "type": "array",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "description": "Where: the source (path, query, headers, cookie, body, files) then the field"
            },
            "msg": {"type": "string"},
            "input": {"description": "The value as sent (cut when large)"},
            "ctx": {"type": "object"}
        },
        "required": ["type", "loc", "msg"]
    })
}

/// The host's 422 body: Problem Details with `errors`.
fn validation_problem_schema() -> Value {
    let mut schema = problem_schema();
    schema["description"] = "Problem Details of a request that did not validate: every error found (up to the host's limit).".into();
    schema["properties"]["errors"] = json!({
        "type": "array",
        "items": {"$ref": format!("#/components/schemas/{VALIDATION_ERROR}")}
    });
    schema["properties"]["errors_omitted"] = json!({
        "type": "integer",
        "description": "How many more errors were found than listed"
    });
    schema["required"] = json!(["type", "title", "status", "errors"]);
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::RouteMeta;
    use crate::validation::SchemaSpec;

    fn doc(schemas: SchemaSpec, response: Option<Value>, meta: Value) -> RouteDoc {
        RouteDoc {
            schemas,
            response,
            meta: RouteMeta::parse(&meta).unwrap(),
            info: None,
            stream_body: false,
        }
    }

    #[test]
    fn ids_paths_and_parameters() {
        let get = http::Method::GET;
        let spec = SchemaSpec {
            path: Some(
                json!({"type": "object", "properties": {"item_id": {"type": "integer", "description": "The id", "deprecated": true}}}),
            ),
            query: Some(
                json!({"type": "object", "properties": {"q": {"type": "string", "examples": ["a", "b"]}}, "required": ["q"]}),
            ),
            ..SchemaSpec::default()
        };
        let d1 = doc(spec, None, json!({}));
        let d2 = doc(
            SchemaSpec::default(),
            None,
            json!({"operationId": "get_items_item_id"}),
        );
        let names = vec!["item_id".to_owned()];
        let rest = vec!["rest".to_owned()];
        let ops = [
            Operation {
                method: &get,
                path: "/items/{item_id}",
                param_names: &names,
                auth: None,
                doc: &d1,
                origin: "a",
            },
            Operation {
                method: &get,
                path: "/files/{*rest}",
                param_names: &rest,
                auth: None,
                doc: &d2,
                origin: "b",
            },
        ];
        let d = build(&OpenApiConfig::default(), &ops);
        let op = &d["paths"]["/items/{item_id}"]["get"];
        assert_eq!(op["operationId"], "get_items_item_id_2");
        assert_eq!(
            op["parameters"][0],
            json!({"name": "item_id", "in": "path", "required": true,
            "description": "The id", "deprecated": true, "schema": {"type": "integer", "description": "The id", "deprecated": true}})
        );
        assert_eq!(op["parameters"][1]["required"], true);
        assert_eq!(op["parameters"][1]["examples"]["example2"]["value"], "b");
        assert!(op["responses"]["422"].is_object());
        let files = &d["paths"]["/files/{rest}"]["get"];
        assert_eq!(files["operationId"], "get_items_item_id");
        assert_eq!(files["parameters"][0]["name"], "rest");
        assert!(files["responses"].get("422").is_none());
        assert_eq!(
            d["info"],
            json!({"title": "Spikard API", "version": "0.1.0"})
        );
    }

    #[test]
    fn body_responses_and_merge() {
        let post = http::Method::POST;
        let spec = SchemaSpec {
            body: Some(json!({"type": "object"})),
            ..SchemaSpec::default()
        };
        let d1 = doc(
            spec,
            Some(json!({"type": "object"})),
            json!({
                "status": 201, "body_media_types": ["multipart/form-data", "application/x-www-form-urlencoded"],
                "responses": {"201": {"description": "Made"}, "404": {"content": {"application/json": {"schema": {"$ref": "#/$defs/Missing", "$defs": {"Missing": {"type": "object"}}}}}}}, "include": true
            }),
        );
        let hidden = doc(SchemaSpec::default(), None, json!({"include": false}));
        let upload = doc(
            SchemaSpec {
                body: Some(
                    json!({"properties": {"f": {"type": "array", "items": {"format": "binary"}}}}),
                ),
                ..SchemaSpec::default()
            },
            None,
            json!({}),
        );
        let ops = [
            Operation {
                method: &post,
                path: "/",
                param_names: &[],
                auth: None,
                doc: &d1,
                origin: "a",
            },
            Operation {
                method: &post,
                path: "/hidden",
                param_names: &[],
                auth: None,
                doc: &hidden,
                origin: "b",
            },
            Operation {
                method: &post,
                path: "/upload",
                param_names: &[],
                auth: None,
                doc: &upload,
                origin: "c",
            },
        ];
        let d = build(&OpenApiConfig::default(), &ops);
        let op = &d["paths"]["/"]["post"];
        assert_eq!(op["operationId"], "post_root");
        let content = op["requestBody"]["content"].as_object().unwrap();
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["multipart/form-data", "application/x-www-form-urlencoded"]
        );
        assert_eq!(op["responses"]["201"]["description"], "Made");
        let order: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        assert_eq!(order, ["201", "422", "4XX", "5XX", "404"]);
        assert_eq!(
            op["responses"]["201"]["content"]["application/json"]["schema"],
            json!({"type": "object"})
        );
        assert_eq!(op["responses"]["404"]["description"], "Not Found");
        assert_eq!(
            op["responses"]["404"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Missing"
        );
        assert!(d["paths"].get("/hidden").is_none());
        let upload = &d["paths"]["/upload"]["post"]["requestBody"]["content"];
        assert!(upload["multipart/form-data"].is_object(), "{upload}");
    }

    #[test]
    fn templates_of_one_shape_share_the_first_ones_names() {
        let (get, put) = (http::Method::GET, http::Method::PUT);
        let keyed = SchemaSpec {
            path: Some(json!({"properties": {"key": {"type": "integer"}}})),
            ..SchemaSpec::default()
        };
        let (plain, keyed) = (
            doc(SchemaSpec::default(), None, json!({})),
            doc(keyed, None, json!({})),
        );
        let (id, key) = (vec!["id".to_owned()], vec!["key".to_owned()]);
        let ops = [
            Operation {
                method: &get,
                path: "/a/{id}",
                param_names: &id,
                auth: None,
                doc: &plain,
                origin: "a",
            },
            Operation {
                method: &put,
                path: "/a/{key}",
                param_names: &key,
                auth: None,
                doc: &keyed,
                origin: "b",
            },
        ];
        let d = build(&OpenApiConfig::default(), &ops);
        assert_eq!(d["paths"].as_object().unwrap().len(), 1);
        let put = &d["paths"]["/a/{id}"]["put"];
        assert_eq!(put["operationId"], "put_a_key");
        assert_eq!(
            put["parameters"][0],
            json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}})
        );
    }
}
