//! pydantic's lax mode: the body schema a pydantic model is checked with.
//!
//! pydantic (and so FastAPI) decodes a JSON body laxly: `"5"` and `5.0` are an `int`,
//! `"yes"` and `1` a `bool`, `"2024-01-01"` and `1700000000` a `datetime`. The schema
//! pydantic generates describes the strict types, so checking a body against it as is
//! refuses requests the model takes. A plugin marks such a schema with [`KEYWORD`]
//! (`"x-spikard-lax": "pydantic"`, on the body schema or any sub-schema); the host then
//! validates with a widened copy, made once at start-up, whose every leaf accepts at least
//! what pydantic's lax mode accepts. The model still decodes the body and has the last
//! word: what the widened schema lets through and pydantic refuses becomes a 422 from the
//! plugin with pydantic's own errors. The schema as written (what OpenAPI documents) is
//! left alone.
//!
//! Widening keeps every constraint that still applies (`minimum`, `maxLength`, `pattern`,
//! `required`, `additionalProperties`, ...: they only constrain values of their own JSON
//! type) and drops those pydantic enforces differently: `format` (pydantic parses dates,
//! UUIDs, URLs itself and takes more than RFC 3339), `uniqueItems` (a `set` drops
//! duplicates), non-string `enum`/`const` (an `IntEnum` takes `"1"`); `oneOf` becomes
//! `anyOf` (widened branches may overlap; pydantic picks a discriminated branch by tag).

use serde_json::{Map, Value};
use std::borrow::Cow;

/// The keyword marking a schema (and what it references) as decoded by a lax library.
pub(crate) const KEYWORD: &str = "x-spikard-lax";
/// The only library whose lax mode the host knows.
const PYDANTIC: &str = "pydantic";
/// Schemas nest at most this deep here; deeper ones are left as written (no stack overflow
/// on a hostile plugin's schema; pydantic still decodes them).
const MAX_DEPTH: usize = 64;

/// The schema to validate with: `schema` widened where it is marked, borrowed as is
/// when nothing is marked.
pub(crate) fn widened(schema: &Value) -> Cow<'_, Value> {
    if !marked(schema, 0) {
        return Cow::Borrowed(schema);
    }
    let mut copy = schema.clone();
    let mut refs = Vec::new();
    walk(&mut copy, false, &mut refs, 0);
    // Definitions referenced from a marked sub-schema are decoded by the same library,
    // whether or not they carry the mark themselves (an embedded body hoists them).
    let mut done: Vec<String> = Vec::new();
    while let Some(name) = refs.pop() {
        if done.contains(&name) {
            continue;
        }
        if let Some(def) = definition(&mut copy, &name) {
            walk(def, true, &mut refs, 0);
        }
        done.push(name);
    }
    Cow::Owned(copy)
}

/// True when `schema` carries the mark anywhere.
fn marked(schema: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match schema {
        Value::Object(map) => {
            map.get(KEYWORD).and_then(Value::as_str) == Some(PYDANTIC)
                || map.values().any(|v| marked(v, depth + 1))
        }
        Value::Array(items) => items.iter().any(|v| marked(v, depth + 1)),
        _ => false,
    }
}

/// `#/$defs/Name` (or `#/definitions/Name`) of the root.
fn definition<'s>(root: &'s mut Value, name: &str) -> Option<&'s mut Value> {
    let (table, key) = name.split_once('/')?;
    root.get_mut(table)?.get_mut(key)
}

/// Widens every schema under a mark; `refs` collects the definitions a marked schema
/// references (`"$defs/Name"`).
fn walk(node: &mut Value, lax: bool, refs: &mut Vec<String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Value::Object(map) = node else { return };
    let lax = lax || map.get(KEYWORD).and_then(Value::as_str) == Some(PYDANTIC);
    if lax {
        widen(map);
        if let Some(target) = map.get("$ref").and_then(Value::as_str) {
            if let Some(name) = local_definition(target) {
                refs.push(name.to_owned());
            }
        }
    }
    for (key, child) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Value::Object(children) = child {
                    for sub in children.values_mut() {
                        walk(sub, lax, refs, depth + 1);
                    }
                }
            }
            "anyOf" | "allOf" | "oneOf" | "prefixItems" | "items" => match child {
                Value::Array(children) => {
                    for sub in children {
                        walk(sub, lax, refs, depth + 1);
                    }
                }
                sub => walk(sub, lax, refs, depth + 1),
            },
            "additionalProperties"
            | "additionalItems"
            | "unevaluatedProperties"
            | "unevaluatedItems"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames" => walk(child, lax, refs, depth + 1),
            _ => {}
        }
    }
}

/// `$defs/Name` of a local reference `#/$defs/Name` (or `#/definitions/Name`).
fn local_definition(target: &str) -> Option<&str> {
    let path = target.strip_prefix("#/")?;
    let (table, name) = path.split_once('/')?;
    (matches!(table, "$defs" | "definitions") && !name.is_empty() && !name.contains('/'))
        .then_some(path)
}

/// Widens one schema object (not its children).
fn widen(map: &mut Map<String, Value>) {
    let format = map.get("format").and_then(Value::as_str).map(str::to_owned);
    if let Some(types) = map.get("type").map(type_names) {
        let mut wide = types.clone();
        for ty in &types {
            let extra: &[&str] = match ty.as_str() {
                "integer" => &["number", "string", "boolean"],
                "number" => &["string", "boolean"],
                "boolean" => &["integer", "number", "string"],
                // Dates, times and durations also come as (unix) numbers.
                "string" if is_temporal(format.as_deref()) => &["integer", "number"],
                _ => &[],
            };
            for add in extra {
                if !wide.iter().any(|t| t == add) {
                    wide.push((*add).to_owned());
                }
            }
        }
        if wide.len() != types.len() {
            map.insert(
                "type".to_owned(),
                Value::Array(wide.into_iter().map(Value::String).collect()),
            );
        }
    }
    if format.as_deref().is_some_and(|f| f != "binary") {
        map.remove("format");
    }
    map.remove("uniqueItems");
    if map
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|options| options.iter().any(|o| !o.is_string()))
    {
        map.remove("enum");
    }
    if map.get("const").is_some_and(|c| !c.is_string()) {
        map.remove("const");
    }
    if !map.contains_key("anyOf") {
        if let Some(branches) = map.remove("oneOf") {
            map.insert("anyOf".to_owned(), branches);
        }
    }
}

/// The names of a `type` keyword (one name or a list).
fn type_names(value: &Value) -> Vec<String> {
    match value {
        Value::String(name) => vec![name.clone()],
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn is_temporal(format: Option<&str>) -> bool {
    matches!(format, Some("date-time" | "date" | "time" | "duration"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unmarked_schemas_are_borrowed() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        assert!(matches!(widened(&schema), Cow::Borrowed(_)));
    }

    #[test]
    fn leaves_widen_and_constraints_stay() {
        let schema = json!({
            "x-spikard-lax": "pydantic",
            "type": "object",
            "required": ["n"],
            "properties": {
                "n": {"type": "integer", "minimum": 1},
                "f": {"type": "number"},
                "b": {"type": "boolean"},
                "s": {"type": "string", "maxLength": 3},
                "at": {"type": "string", "format": "date-time"},
                "id": {"type": "string", "format": "uuid"},
                "tags": {"type": "array", "items": {"type": "integer"}, "uniqueItems": true},
                "kind": {"enum": [1, 2], "type": "integer"},
                "name": {"enum": ["a", "b"], "type": "string"},
                "pick": {"oneOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}
            },
            "$defs": {"A": {"type": "object", "properties": {"q": {"type": "integer"}}}}
        });
        let wide = widened(&schema).into_owned();
        let props = &wide["properties"];
        assert_eq!(
            props["n"],
            json!({"type": ["integer", "number", "string", "boolean"], "minimum": 1})
        );
        assert_eq!(props["f"]["type"], json!(["number", "string", "boolean"]));
        assert_eq!(
            props["b"]["type"],
            json!(["boolean", "integer", "number", "string"])
        );
        assert_eq!(props["s"], json!({"type": "string", "maxLength": 3}));
        assert_eq!(
            props["at"],
            json!({"type": ["string", "integer", "number"]})
        );
        assert_eq!(props["id"], json!({"type": "string"}));
        assert!(props["tags"].get("uniqueItems").is_none());
        assert!(props["kind"].get("enum").is_none());
        assert_eq!(props["name"]["enum"], json!(["a", "b"]));
        assert!(props["pick"].get("oneOf").is_none());
        assert_eq!(
            wide["$defs"]["A"]["properties"]["q"]["type"],
            json!(["integer", "number", "string", "boolean"])
        );
        assert_eq!(wide["required"], json!(["n"]));
    }

    #[test]
    fn only_marked_members_and_their_definitions_widen() {
        // An embedded body: one pydantic member, one msgspec member, definitions hoisted.
        let schema = json!({
            "type": "object",
            "properties": {
                "p": {"x-spikard-lax": "pydantic", "$ref": "#/$defs/P"},
                "m": {"type": "object", "properties": {"n": {"type": "integer"}}}
            },
            "$defs": {
                "P": {"type": "object", "properties": {"n": {"type": "integer"}, "c": {"$ref": "#/$defs/C"}}},
                "C": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        });
        let wide = widened(&schema).into_owned();
        assert_eq!(
            wide["properties"]["m"]["properties"]["n"]["type"],
            json!("integer")
        );
        assert_eq!(
            wide["$defs"]["P"]["properties"]["n"]["type"],
            json!(["integer", "number", "string", "boolean"])
        );
        assert_eq!(
            wide["$defs"]["C"]["properties"]["ok"]["type"],
            json!(["boolean", "integer", "number", "string"])
        );
    }

    #[test]
    fn hostile_depth_is_bounded() {
        let mut schema = json!({"type": "integer"});
        for _ in 0..(MAX_DEPTH * 2) {
            schema = json!({"items": schema});
        }
        schema["x-spikard-lax"] = json!("pydantic");
        let _ = widened(&schema);
    }
}
