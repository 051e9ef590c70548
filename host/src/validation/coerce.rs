//! String-to-JSON coercion for parameters (path, query, headers, cookies, form fields).
//!
//! Those values always arrive as text, while their schemas say `integer`, `boolean`, ...;
//! a [`Plan`] is derived once per property at start-up so that per request coercion is a
//! cheap match on a few bits.

use super::numbers::{self, NotInteger};
use serde_json::{Map, Number, Value};

/// A set of JSON types a value may take (bit flags, cheap to copy and test).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Types(u8);

impl Types {
    pub(crate) const STRING: Self = Self(1);
    pub(crate) const INTEGER: Self = Self(1 << 1);
    pub(crate) const NUMBER: Self = Self(1 << 2);
    pub(crate) const BOOLEAN: Self = Self(1 << 3);
    pub(crate) const NULL: Self = Self(1 << 4);
    pub(crate) const ARRAY: Self = Self(1 << 5);
    pub(crate) const OBJECT: Self = Self(1 << 6);

    /// No type information at all: the value is kept as a string.
    pub(crate) fn is_unconstrained(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn has(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    fn add(&mut self, other: Self) {
        self.0 |= other.0;
    }

    fn from_name(name: &str) -> Self {
        match name {
            "string" => Self::STRING,
            "integer" => Self::INTEGER,
            "number" => Self::NUMBER,
            "boolean" => Self::BOOLEAN,
            "null" => Self::NULL,
            "array" => Self::ARRAY,
            "object" => Self::OBJECT,
            _ => Self::default(),
        }
    }

    fn of_value(value: &Value) -> Self {
        match value {
            Value::Null => Self::NULL,
            Value::Bool(_) => Self::BOOLEAN,
            Value::Number(n) if numbers::is_integer(n) => Self::INTEGER,
            Value::Number(_) => Self::NUMBER,
            Value::String(_) => Self::STRING,
            Value::Array(_) => Self::ARRAY,
            Value::Object(_) => Self::OBJECT,
        }
    }
}

/// How to turn the raw string value(s) of one property into JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// One value (the last one when a key is repeated), coerced to one of `Types`.
    Scalar(Types),
    /// Every value of the key, each optionally split on `separator`, items coerced to `items`.
    Array {
        items: Types,
        separator: Option<Box<str>>,
    },
}

/// Why a string could not be coerced: a pydantic error type and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub kind: &'static str,
    pub msg: &'static str,
}

pub(crate) const INT_PARSING: Failure = Failure {
    kind: "int_parsing",
    msg: "Input should be a valid integer, unable to parse string as an integer",
};
pub(crate) const INT_PARSING_SIZE: Failure = Failure {
    kind: "int_parsing_size",
    msg: "Unable to parse input string as an integer, exceeded maximum size",
};
pub(crate) const FLOAT_PARSING: Failure = Failure {
    kind: "float_parsing",
    msg: "Input should be a valid number, unable to parse string as a number",
};
pub(crate) const BOOL_PARSING: Failure = Failure {
    kind: "bool_parsing",
    msg: "Input should be a valid boolean, unable to interpret input",
};
const DICT_TYPE: Failure = Failure {
    kind: "dict_type",
    msg: "Input should be a valid dictionary",
};
const LIST_TYPE: Failure = Failure {
    kind: "list_type",
    msg: "Input should be a valid list",
};
const NONE_REQUIRED: Failure = Failure {
    kind: "none_required",
    msg: "Input should be None",
};
/// Bytes that are not UTF-8 once percent-decoded (or as sent, in a header or cookie).
pub(crate) const STRING_UNICODE: Failure = Failure {
    kind: "string_unicode",
    msg: "Input should be a valid string, unable to parse raw data as a unicode string",
};

/// Nesting bound for `$ref`/`anyOf` chasing, so a self-referencing schema cannot loop.
const MAX_DEPTH: usize = 16;

/// Derives the coercion plan of one property schema; `root` resolves local `$ref`s.
pub(crate) fn plan_for(schema: &Value, root: &Value) -> Plan {
    let mut found = Found::default();
    collect(schema, root, 0, &mut found);
    if found.types.has(Types::ARRAY) {
        let mut items = Found::default();
        if let Some(item_schema) = found.items {
            collect(item_schema, root, 0, &mut items);
        }
        Plan::Array {
            items: items.types,
            separator: found.separator.map(Into::into),
        }
    } else {
        Plan::Scalar(found.types)
    }
}

#[derive(Default)]
struct Found<'s> {
    types: Types,
    items: Option<&'s Value>,
    separator: Option<&'s str>,
    /// Schema nodes already read: a node reached again (through `$ref`s and `anyOf`s that
    /// point back at each other) adds nothing, so the walk is linear in the schema's size
    /// instead of exponential in its nesting.
    visited: std::collections::HashSet<*const Value>,
}

fn collect<'s>(schema: &'s Value, root: &'s Value, depth: usize, found: &mut Found<'s>) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    if depth > MAX_DEPTH || !found.visited.insert(schema) {
        return;
    }
    if let Some(target) = obj
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
    {
        collect(target, root, depth + 1, found);
    }
    if found.items.is_none() {
        found.items = obj.get("items");
    }
    if found.separator.is_none() {
        found.separator = separator_of(obj);
    }
    match obj.get("type") {
        Some(Value::String(name)) => found.types.add(Types::from_name(name)),
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(Value::as_str)
            .for_each(|name| found.types.add(Types::from_name(name))),
        _ => {
            if let Some(Value::Array(options)) = obj.get("enum") {
                options
                    .iter()
                    .for_each(|v| found.types.add(Types::of_value(v)));
            }
            if let Some(constant) = obj.get("const") {
                found.types.add(Types::of_value(constant));
            }
            for keyword in ["anyOf", "oneOf", "allOf"] {
                if let Some(Value::Array(subs)) = obj.get(keyword) {
                    subs.iter()
                        .for_each(|sub| collect(sub, root, depth + 1, found));
                }
            }
        }
    }
}

/// The delimiter that packs several array items into one value: the `separator` keyword,
/// or OpenAPI's `style` (`pipeDelimited`, `spaceDelimited`, `form` with `explode: false`).
fn separator_of(obj: &Map<String, Value>) -> Option<&str> {
    if let Some(sep) = obj.get("separator").and_then(Value::as_str) {
        return (!sep.is_empty()).then_some(sep);
    }
    match obj.get("style").and_then(Value::as_str) {
        Some("pipeDelimited") => Some("|"),
        Some("spaceDelimited") => Some(" "),
        Some("form") if obj.get("explode") == Some(&Value::Bool(false)) => Some(","),
        _ => None,
    }
}

/// Coerces one raw string to the first type of `types` that accepts it.
///
/// Order: string (kept as is; also when the schema gives no type), then empty-string rules
/// (`""` is `false` for booleans and `null` for nullable types), integer, number, boolean,
/// object (JSON text). The failure reported is that of the most specific declared type.
pub(crate) fn coerce(raw: &str, types: Types) -> Result<Value, Failure> {
    if types.is_unconstrained() || types.has(Types::STRING) {
        return Ok(Value::String(raw.to_owned()));
    }
    let text = raw.trim();
    if text.is_empty() {
        if types.has(Types::BOOLEAN) {
            return Ok(Value::Bool(false));
        }
        if types.has(Types::NULL) {
            return Ok(Value::Null);
        }
    }
    let mut int_failure = INT_PARSING;
    if types.has(Types::INTEGER) {
        match numbers::integer(text) {
            Ok(n) => return Ok(Value::Number(n)),
            Err(NotInteger::TooLong) => int_failure = INT_PARSING_SIZE,
            Err(NotInteger::Syntax) => {}
        }
    }
    if types.has(Types::NUMBER) {
        if let Some(n) = parse_number(text) {
            return Ok(Value::Number(n));
        }
    }
    if types.has(Types::BOOLEAN) {
        if let Some(b) = parse_bool(text) {
            return Ok(Value::Bool(b));
        }
    }
    if types.has(Types::OBJECT) {
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
            return Ok(v);
        }
    }
    if types.has(Types::ARRAY) {
        if let Ok(v @ Value::Array(_)) = serde_json::from_str::<Value>(text) {
            return Ok(v);
        }
    }
    Err(if types.has(Types::INTEGER) {
        int_failure
    } else if types.has(Types::NUMBER) {
        FLOAT_PARSING
    } else if types.has(Types::BOOLEAN) {
        BOOL_PARSING
    } else if types.has(Types::OBJECT) {
        DICT_TYPE
    } else if types.has(Types::ARRAY) {
        LIST_TYPE
    } else {
        NONE_REQUIRED
    })
}

/// Parses an integer the way pydantic does (sign, leading zeros and `"12.000"` allowed),
/// exactly at any size up to [`numbers::MAX_INT_DIGITS`] digits.
pub(crate) fn parse_int(text: &str) -> Option<Number> {
    numbers::integer(text).ok()
}

/// Parses a finite number exactly as written; integer literals stay integers so `"42"` is
/// `42`, not `42.0`.
pub(crate) fn parse_number(text: &str) -> Option<Number> {
    numbers::number(text)
}

/// Pydantic's boolean words, case-insensitive.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["true", "1", "yes", "on", "t", "y"];
    const FALSE: [&str; 6] = ["false", "0", "no", "off", "f", "n"];
    let text = text.trim();
    if TRUE.iter().any(|w| w.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if FALSE.iter().any(|w| w.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

/// Splits one raw array value on the plan's separator (an empty value holds no items).
pub(crate) fn split_items<'v, 's>(
    raw: &'v str,
    separator: Option<&'s str>,
) -> impl Iterator<Item = &'v str> + use<'v, 's> {
    let (whole, parts) = match separator {
        Some(sep) if !raw.is_empty() => (None, Some(raw.split(sep))),
        Some(_) => (None, None),
        None => (Some(raw), None),
    };
    whole.into_iter().chain(parts.into_iter().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scalar(schema: Value) -> Types {
        match plan_for(&schema, &schema) {
            Plan::Scalar(t) => t,
            other => panic!("expected scalar plan, got {other:?}"),
        }
    }

    #[test]
    fn integers() {
        let t = Types::INTEGER;
        assert_eq!(coerce("42", t), Ok(json!(42)));
        assert_eq!(coerce("-10", t), Ok(json!(-10)));
        assert_eq!(coerce("0123", t), Ok(json!(123)));
        assert_eq!(coerce(" +7 ", t), Ok(json!(7)));
        assert_eq!(coerce("3.000", t), Ok(json!(3)));
        assert_eq!(
            coerce("9007199254740991", t),
            Ok(json!(9_007_199_254_740_991_i64))
        );
        assert_eq!(coerce("18446744073709551615", t), Ok(json!(u64::MAX)));
        let exact = |text: &str| Ok(Value::Number(text.parse().unwrap()));
        assert_eq!(
            coerce("100000000000000000000000", t),
            exact("100000000000000000000000")
        );
        assert_eq!(
            coerce("-99999999999999999999999", t),
            exact("-99999999999999999999999")
        );
        assert_eq!(coerce(&"9".repeat(5000), t), Err(INT_PARSING_SIZE));
        let int_or_number = scalar(json!({"type": ["integer", "number"]}));
        assert_eq!(coerce("1.5", int_or_number), Ok(json!(1.5)));
        assert_eq!(coerce("7", int_or_number), Ok(json!(7)));
        for bad in ["baz", "", "1.5", "1e3", "-", "0x10", "1_000", "inf"] {
            assert_eq!(coerce(bad, t), Err(INT_PARSING), "{bad:?}");
        }
    }

    #[test]
    fn numbers() {
        let t = Types::NUMBER;
        assert_eq!(coerce("95.5", t), Ok(json!(95.5)));
        assert_eq!(coerce("42", t), Ok(json!(42)));
        assert_eq!(coerce("1e-10", t), Ok(json!(1e-10)));
        assert_eq!(coerce("1e300", t).map(|v| v.as_f64()), Ok(Some(1e300)));
        assert_eq!(
            coerce("12345678901234567890123", t),
            Ok(Value::Number("12345678901234567890123".parse().unwrap()))
        );
        assert_eq!(coerce(&"9".repeat(400), t), Err(FLOAT_PARSING));
        for bad in ["abc", "", "inf", "NaN", "infinity", "1e999", "1,5"] {
            assert_eq!(coerce(bad, t), Err(FLOAT_PARSING), "{bad:?}");
        }
    }

    #[test]
    fn booleans() {
        let t = Types::BOOLEAN;
        for yes in ["true", "True", "1", "yes", "ON", "t", "y"] {
            assert_eq!(coerce(yes, t), Ok(json!(true)), "{yes}");
        }
        for no in ["false", "FALSE", "0", "no", "off", "f", "n", ""] {
            assert_eq!(coerce(no, t), Ok(json!(false)), "{no}");
        }
        assert_eq!(coerce("maybe", t), Err(BOOL_PARSING));
    }

    #[test]
    fn strings_unions_and_nullables() {
        assert_eq!(coerce("", Types::STRING), Ok(json!("")));
        assert_eq!(coerce(" 42 ", Types::default()), Ok(json!(" 42 ")));
        let int_or_null = scalar(json!({"type": ["integer", "null"]}));
        assert_eq!(coerce("", int_or_null), Ok(Value::Null));
        assert_eq!(coerce("5", int_or_null), Ok(json!(5)));
        assert_eq!(coerce("x", int_or_null), Err(INT_PARSING));
        let any_of = scalar(json!({"anyOf": [{"type": "number"}, {"type": "null"}]}));
        assert_eq!(coerce("2.5", any_of), Ok(json!(2.5)));
        let str_or_int = scalar(json!({"type": ["integer", "string"]}));
        assert_eq!(coerce("5", str_or_int), Ok(json!("5")));
        let int_enum = scalar(json!({"enum": [1, 2, 3]}));
        assert_eq!(coerce("2", int_enum), Ok(json!(2)));
        let obj = scalar(json!({"type": "object"}));
        assert_eq!(coerce(r#"{"a":1}"#, obj), Ok(json!({"a": 1})));
        assert_eq!(coerce("nope", obj), Err(DICT_TYPE));
        assert_eq!(coerce("x", Types::NULL), Err(NONE_REQUIRED));
    }

    #[test]
    fn array_plans() {
        let schema = json!({
            "properties": {"ids": {"$ref": "#/$defs/Ids"}},
            "$defs": {"Ids": {"type": "array", "items": {"type": "integer"}, "separator": "|"}}
        });
        assert_eq!(
            plan_for(&schema["properties"]["ids"], &schema),
            Plan::Array {
                items: Types::INTEGER,
                separator: Some("|".into())
            }
        );
        let styled = json!({"type": ["array", "null"], "style": "spaceDelimited"});
        assert_eq!(
            plan_for(&styled, &styled),
            Plan::Array {
                items: Types::default(),
                separator: Some(" ".into())
            }
        );
        let looped = json!({"$ref": "#"});
        assert_eq!(plan_for(&looped, &looped), Plan::Scalar(Types::default()));
    }

    #[test]
    fn schemas_that_point_back_at_themselves_are_read_once() {
        // 12 branches back to the root, 16 levels deep: 12^16 walks without the visited set.
        let mut branches = vec![json!({"type": "integer"})];
        branches.extend(std::iter::repeat_n(json!({"$ref": "#"}), 12));
        let schema = json!({ "anyOf": branches });
        assert_eq!(plan_for(&schema, &schema), Plan::Scalar(Types::INTEGER));
    }

    #[test]
    fn splitting() {
        let split = |raw, sep| split_items(raw, sep).collect::<Vec<_>>();
        assert_eq!(split("a,b", None), ["a,b"]);
        assert_eq!(split("a|b|c", Some("|")), ["a", "b", "c"]);
        assert_eq!(split("", Some("|")), Vec::<&str>::new());
        assert_eq!(split("", None), [""]);
    }
}
