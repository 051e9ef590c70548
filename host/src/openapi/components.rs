//! `components.schemas`: named models, each once. A route's schema may carry its models in
//! `$defs` (or draft-07 `definitions`); they move into the document's components and the
//! route's references are rewritten to point there, so a model several routes use appears
//! once. The same name with a different schema gets a suffixed name (`Item_2`).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

/// Where hoisted schemas live in the document.
const PREFIX: &str = "#/components/schemas/";

/// The keywords whose members are named subschemas at a schema's root.
const DEF_KEYWORDS: [&str; 2] = ["$defs", "definitions"];

/// Keywords whose values are data, not schemas: a `$ref` key inside them is not a reference.
const DATA_KEYWORDS: [&str; 5] = ["const", "enum", "default", "examples", "example"];

/// The component schemas of one document, filled route by route.
#[derive(Default)]
pub struct Components {
    /// Final name → schema, in the order they were added.
    schemas: Map<String, Value>,
    /// The name a route gave a model → (its final name, the schema as the route wrote it),
    /// for each component of that name: a later model of the same name and text reuses it.
    seen: HashMap<String, Vec<(String, Value)>>,
    /// Every final name handed out (some are filled in after their references).
    taken: HashSet<String>,
}

/// A route schema after hoisting.
pub struct Hoisted {
    /// The schema without its `$defs`, references rewritten.
    pub inline: Value,
    /// A reference to the whole schema as a component, when it refers to itself (`#`,
    /// `#/properties/…`) and so cannot be placed inline in the document.
    pub root_ref: Option<Value>,
}

impl Hoisted {
    /// What the document places where the schema is used.
    pub fn schema(&self) -> &Value {
        self.root_ref.as_ref().unwrap_or(&self.inline)
    }
}

impl Components {
    /// Adds one of the host's own schemas under a fixed name (before any route's, so a
    /// route's model of the same name gets a suffix instead).
    pub fn insert_fixed(&mut self, name: &str, schema: Value) {
        self.seen
            .entry(name.to_owned())
            .or_default()
            .push((name.to_owned(), schema.clone()));
        self.taken.insert(name.to_owned());
        self.schemas.insert(name.to_owned(), schema);
    }

    /// Moves `schema`'s root `$defs` into the components and rewrites its references;
    /// `fallback_name` names the schema itself when it has to become a component and has
    /// no `title`.
    pub fn hoist(&mut self, schema: &Value, fallback_name: &str) -> Hoisted {
        let mut root = schema.clone();
        let mut defs: Vec<(&'static str, String, Value)> = Vec::new();
        if let Some(object) = root.as_object_mut() {
            for keyword in DEF_KEYWORDS {
                if let Some(Value::Object(members)) = object.remove(keyword) {
                    defs.extend(members.into_iter().map(|(name, s)| (keyword, name, s)));
                }
            }
        }
        let mut names: HashMap<(&str, String), String> = HashMap::new();
        let mut fresh: Vec<(String, Value)> = Vec::new();
        for (keyword, name, def) in &defs {
            let (final_name, is_new) = self.name_for(name, def);
            if is_new {
                fresh.push((final_name.clone(), def.clone()));
            }
            names.insert((keyword, name.clone()), final_name);
        }
        let needs_root = refers_to_root(&root) || defs.iter().any(|(_, _, d)| refers_to_root(d));
        let root_name = needs_root.then(|| {
            let base = root
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or(fallback_name)
                .to_owned();
            self.name_for(&base, schema)
        });
        let target = |reference: &str| -> Option<String> {
            let pointer = reference.strip_prefix('#')?;
            for keyword in DEF_KEYWORDS {
                if let Some(rest) = pointer
                    .strip_prefix('/')
                    .and_then(|p| p.strip_prefix(keyword))
                    .and_then(|p| p.strip_prefix('/'))
                {
                    let (segment, tail) = rest.split_once('/').map_or((rest, ""), |(s, t)| (s, t));
                    let name = unescape(segment);
                    if let Some(final_name) = names.get(&(keyword, name)) {
                        let tail = if tail.is_empty() {
                            String::new()
                        } else {
                            format!("/{tail}")
                        };
                        return Some(format!("{PREFIX}{final_name}{tail}"));
                    }
                    return None;
                }
            }
            root_name
                .as_ref()
                .map(|(name, _)| format!("{PREFIX}{name}{pointer}"))
        };
        rewrite_refs(&mut root, &target);
        for (name, mut def) in fresh {
            rewrite_refs(&mut def, &target);
            self.schemas.insert(name, def);
        }
        let root_ref = match root_name {
            Some((name, is_new)) => {
                if is_new {
                    self.schemas.insert(name.clone(), root.clone());
                }
                Some(serde_json::json!({ "$ref": format!("{PREFIX}{name}") }))
            }
            None => None,
        };
        Hoisted {
            inline: root,
            root_ref,
        }
    }

    /// The component name for a route's model `name` with schema `def`: the existing one
    /// when the same name and text were seen before, else the first free of `Name`,
    /// `Name_2`, `Name_3`… (and whether it is new).
    ///
    /// Models are compared as their routes wrote them: two routes whose `Item` texts are
    /// equal share one component even if an `Item` refers to a model that one of them
    /// renamed — a case no schema generator produces for one application.
    fn name_for(&mut self, name: &str, def: &Value) -> (String, bool) {
        let same_name = self.seen.entry(name.to_owned()).or_default();
        if let Some((existing, _)) = same_name.iter().find(|(_, original)| original == def) {
            return (existing.clone(), false);
        }
        let base = sanitize(name);
        let mut candidate = base.clone();
        let mut n = 2;
        while self.taken.contains(&candidate) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        same_name.push((candidate.clone(), def.clone()));
        self.taken.insert(candidate.clone());
        (candidate, true)
    }

    /// The `components.schemas` object.
    pub fn into_map(self) -> Map<String, Value> {
        self.schemas
    }
}

/// A component name OpenAPI accepts (`^[a-zA-Z0-9._-]+$`): other characters become `_`.
fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "Schema".to_owned()
    } else {
        cleaned
    }
}

/// A JSON Pointer segment as written in a URI fragment: percent-decoded, `~1` → `/`,
/// `~0` → `~`.
fn unescape(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .replace("~1", "/")
        .replace("~0", "~")
}

/// Whether a local reference in `schema` points into the schema itself rather than into
/// its `$defs`: `#`, `#/properties/…`.
fn refers_to_root(schema: &Value) -> bool {
    let mut found = false;
    visit_refs(schema, &mut |reference| {
        if let Some(pointer) = reference.strip_prefix('#') {
            let into_defs = DEF_KEYWORDS.iter().any(|k| {
                pointer
                    .strip_prefix('/')
                    .and_then(|p| p.strip_prefix(k))
                    .is_some_and(|rest| rest.starts_with('/'))
            });
            if !into_defs {
                found = true;
            }
        }
    });
    found
}

/// Calls `f` with every `$ref` string in `value` that is a schema keyword.
fn visit_refs(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::Object(object) => {
            for (key, member) in object {
                if key == "$ref" {
                    if let Some(reference) = member.as_str() {
                        f(reference);
                    }
                } else if !DATA_KEYWORDS.contains(&key.as_str()) {
                    visit_refs(member, f);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| visit_refs(item, f)),
        _ => {}
    }
}

/// Replaces every `$ref` for which `target` gives a new value.
fn rewrite_refs(value: &mut Value, target: &impl Fn(&str) -> Option<String>) {
    match value {
        Value::Object(object) => {
            for (key, member) in object.iter_mut() {
                if key == "$ref" {
                    if let Some(new) = member.as_str().and_then(target) {
                        *member = Value::String(new);
                    }
                } else if !DATA_KEYWORDS.contains(&key.as_str()) {
                    rewrite_refs(member, target);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_refs(item, target)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defs_move_to_components_once_and_collisions_get_a_suffix() {
        let mut c = Components::default();
        let item = json!({"type": "object", "properties": {"tag": {"$ref": "#/$defs/Tag"}}});
        let first =
            json!({"$ref": "#/$defs/Item", "$defs": {"Item": item, "Tag": {"type": "string"}}});
        let h = c.hoist(&first, "a_body");
        assert_eq!(h.schema(), &json!({"$ref": "#/components/schemas/Item"}));
        // The same models again: reused. A different `Tag`: suffixed, and the second route's
        // `Item` (whose text is the same) keeps pointing at the shared one.
        let again = c.hoist(&first, "b_body");
        assert_eq!(again.schema(), h.schema());
        let other = json!({"type": "array", "items": {"$ref": "#/$defs/Tag"}, "$defs": {"Tag": {"type": "integer"}}});
        let h = c.hoist(&other, "c_body");
        assert_eq!(
            h.inline["items"],
            json!({"$ref": "#/components/schemas/Tag_2"})
        );
        let map = c.into_map();
        assert_eq!(map.keys().collect::<Vec<_>>(), ["Item", "Tag", "Tag_2"]);
        assert_eq!(
            map["Item"]["properties"]["tag"]["$ref"],
            "#/components/schemas/Tag"
        );
        assert_eq!(map["Tag_2"], json!({"type": "integer"}));
    }

    #[test]
    fn self_references_make_the_root_a_component() {
        let mut c = Components::default();
        let tree = json!({"title": "Node", "type": "object",
            "properties": {"children": {"type": "array", "items": {"$ref": "#"}},
                           "first": {"$ref": "#/properties/children/items"}}});
        let h = c.hoist(&tree, "x_body");
        assert_eq!(h.schema(), &json!({"$ref": "#/components/schemas/Node"}));
        let map = c.into_map();
        assert_eq!(
            map["Node"]["properties"]["children"]["items"]["$ref"],
            "#/components/schemas/Node"
        );
        assert_eq!(
            map["Node"]["properties"]["first"]["$ref"],
            "#/components/schemas/Node/properties/children/items"
        );
    }

    #[test]
    fn names_are_sanitized_and_data_is_left_alone() {
        let mut c = Components::default();
        c.insert_fixed("ProblemDetails", json!({"type": "object"}));
        let s = json!({"$defs": {"Page[Item]": {"type": "object"}, "ProblemDetails": {"type": "string"}},
            "properties": {"p": {"$ref": "#/$defs/Page%5BItem%5D"}, "q": {"$ref": "#/$defs/ProblemDetails"},
                           "d": {"const": {"$ref": "#/$defs/ProblemDetails"}}}});
        let h = c.hoist(&s, "b");
        assert_eq!(
            h.inline["properties"]["p"]["$ref"],
            "#/components/schemas/Page_Item_"
        );
        assert_eq!(
            h.inline["properties"]["q"]["$ref"],
            "#/components/schemas/ProblemDetails_2"
        );
        assert_eq!(
            h.inline["properties"]["d"]["const"]["$ref"],
            "#/$defs/ProblemDetails"
        );
        assert!(h.root_ref.is_none());
    }
}
