//! Long object keys of a JSON body, replaced by short stand-ins while jsonschema collects its
//! errors.
//!
//! jsonschema gives every error its instance path as a string of its own, so N errors below
//! a key of K bytes cost N × K: one 100 KB key over 40,000 bad array items (a 300 KB body
//! against a `dict[str, list[int]]` schema) took the host to 4.5 GB. So, before the errors of
//! an invalid body are collected, every key longer than the schema could name is replaced by
//! a stand-in of a few bytes, and the errors are mapped back to the real keys (see
//! `errors::Mapping`).
//!
//! A stand-in validates exactly as the key it replaces when the schema only ever compares
//! keys with names it spells out (`properties`, `required`, `dependentRequired`, object
//! values of `enum`/`const`, ...) and spells out none that long; a schema that looks at the
//! text of keys (`patternProperties`, `propertyNames`) is left alone
//! ([`KeyShortener::for_schema`] decides once, at start-up).

use serde_json::{Map, Value};

/// Keys at most this long are never replaced; longer keys cost more per error than the
/// error itself.
const MIN_REPLACED_BYTES: usize = 256;
/// What every stand-in starts with; keys that already do are replaced too, so that no
/// stand-in can equal a key of the request.
const PREFIX: &str = "\u{0}key";

/// Replaces the long keys of instances of one schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyShortener {
    /// Keys at least this long are replaced: longer than any string the schema contains.
    replace_from: usize,
}

/// An instance with its long keys replaced, and the keys they stand for.
pub(crate) struct Shortened {
    /// The instance to validate.
    pub value: Value,
    /// The original of stand-in `i`.
    originals: Vec<String>,
}

impl KeyShortener {
    /// `None` when stand-ins could validate differently from the keys they replace: the
    /// schema uses `patternProperties` or `propertyNames`, or contains a string that starts
    /// like a stand-in.
    pub(crate) fn for_schema(schema: &Value) -> Option<Self> {
        let mut longest = 0;
        if !scan_schema(schema, &mut longest) {
            return None;
        }
        Some(KeyShortener {
            replace_from: (longest + 1).max(MIN_REPLACED_BYTES + 1),
        })
    }

    /// `value` with its long keys replaced, or `None` when it has none (the common case,
    /// which costs one walk over the keys).
    pub(crate) fn shorten(&self, value: &Value) -> Option<Shortened> {
        if !self.has_long_key(value) {
            return None;
        }
        let mut originals = Vec::new();
        let value = self.replace(value, &mut originals);
        Some(Shortened { value, originals })
    }

    fn replaces(&self, key: &str) -> bool {
        key.len() >= self.replace_from || key.starts_with(PREFIX)
    }

    fn has_long_key(&self, value: &Value) -> bool {
        // An explicit stack: bodies are only as deep as `max_json_depth`, but a schema may be
        // checked against anything.
        let mut pending = vec![value];
        while let Some(value) = pending.pop() {
            match value {
                Value::Object(object) => {
                    for (key, child) in object {
                        if self.replaces(key) {
                            return true;
                        }
                        pending.push(child);
                    }
                }
                Value::Array(items) => pending.extend(items),
                _ => {}
            }
        }
        false
    }

    fn replace(&self, value: &Value, originals: &mut Vec<String>) -> Value {
        match value {
            Value::Object(object) => {
                let mut out = Map::with_capacity(object.len());
                for (key, child) in object {
                    let key = if self.replaces(key) {
                        originals.push(key.clone());
                        format!("{PREFIX}{}", originals.len() - 1)
                    } else {
                        key.clone()
                    };
                    out.insert(key, self.replace(child, originals));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.replace(item, originals))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

impl Shortened {
    /// The key `key` stands for: itself unless it is a stand-in.
    pub(crate) fn original<'k>(&'k self, key: &'k str) -> &'k str {
        key.strip_prefix(PREFIX)
            .and_then(|index| index.parse::<usize>().ok())
            .and_then(|index| self.originals.get(index))
            .map_or(key, String::as_str)
    }
}

/// Whether stand-ins are safe for `schema`; `longest` becomes its longest string or key.
fn scan_schema(schema: &Value, longest: &mut usize) -> bool {
    match schema {
        Value::Object(object) => object.iter().all(|(key, child)| {
            *longest = (*longest).max(key.len());
            key != "patternProperties"
                && key != "propertyNames"
                && !key.starts_with(PREFIX)
                && scan_schema(child, longest)
        }),
        Value::Array(items) => items.iter().all(|item| scan_schema(item, longest)),
        Value::String(text) => {
            *longest = (*longest).max(text.len());
            !text.starts_with(PREFIX)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_long_keys_are_replaced_and_mapped_back() {
        let shortener = KeyShortener::for_schema(&json!({"properties": {"a": {}}})).unwrap();
        assert!(shortener.shorten(&json!({"a": [{"b": 1}]})).is_none());
        let long = "k".repeat(1000);
        let sneaky = format!("{PREFIX}0");
        let value = json!({"a": [{(long.clone()): 1}], (sneaky.clone()): {(long.clone()): 2}});
        let shortened = shortener.shorten(&value).expect("has long keys");
        let keys: Vec<&str> = shortened
            .value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["a", "\u{0}key1"]);
        assert_eq!(shortened.value["a"][0], json!({"\u{0}key0": 1}));
        assert_eq!(shortened.original("\u{0}key0"), long);
        assert_eq!(shortened.original("\u{0}key1"), sneaky);
        assert_eq!(shortened.original("a"), "a");
    }

    #[test]
    fn schemas_that_read_keys_are_left_alone() {
        assert!(KeyShortener::for_schema(&json!({"patternProperties": {"^a": {}}})).is_none());
        assert!(
            KeyShortener::for_schema(&json!({"items": {"propertyNames": {"maxLength": 3}}}))
                .is_none()
        );
        let long_name = "n".repeat(5000);
        let shortener =
            KeyShortener::for_schema(&json!({"required": [long_name.clone()]})).unwrap();
        // A key the schema names is never replaced, so `required` still finds it.
        assert!(shortener.shorten(&json!({(long_name): 1})).is_none());
    }
}
