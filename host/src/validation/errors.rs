//! Translation of jsonschema errors into pydantic-v2-shaped [`FieldError`]s.
//!
//! Clients of the API (and the conformance fixtures) expect FastAPI's error vocabulary
//! (`missing`, `string_too_short`, `greater_than_equal`, ...), not JSON Schema's wording;
//! this module is the single place where that vocabulary lives.

use super::{coerce, formats, FieldError};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::types::{JsonType, JsonTypeSet};
use jsonschema::ValidationError;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// How errors of one request source are reported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    /// First `loc` element: `"path"`, `"query"`, `"headers"`, `"cookie"` or `"body"`.
    pub label: &'static str,
    /// Parameter sources report `input: null` for a missing top-level field (FastAPI does);
    /// bodies report the enclosing object.
    pub param: bool,
    /// Header names are case-insensitive, so their `loc` is lowercased.
    pub lowercase: bool,
}

pub(crate) const PATH: Style = Style {
    label: "path",
    param: true,
    lowercase: false,
};
pub(crate) const QUERY: Style = Style {
    label: "query",
    param: true,
    lowercase: false,
};
pub(crate) const HEADERS: Style = Style {
    label: "headers",
    param: true,
    lowercase: true,
};
/// Singular, as FastAPI and every cookie fixture spell it (`["cookie", "session_id"]`).
pub(crate) const COOKIES: Style = Style {
    label: "cookie",
    param: true,
    lowercase: false,
};
pub(crate) const BODY: Style = Style {
    label: "body",
    param: false,
    lowercase: false,
};

impl FieldError {
    fn new(kind: &str, loc: Vec<Value>, msg: String, input: Value, ctx: Option<Value>) -> Self {
        Self {
            kind: kind.to_owned(),
            loc,
            msg,
            input,
            ctx,
        }
    }
}

/// The error for a request that has no body although the route declares one.
pub(crate) fn missing_body() -> FieldError {
    FieldError::new(
        "missing",
        vec![Value::from(BODY.label)],
        "Field required".to_owned(),
        Value::Null,
        None,
    )
}

/// The error for a parameter string that could not be coerced to its schema type.
pub(crate) fn coercion(
    style: &Style,
    name: &str,
    index: Option<usize>,
    raw: &str,
    failure: coerce::Failure,
) -> FieldError {
    let mut loc = vec![Value::from(style.label), segment(style, name)];
    loc.extend(index.map(Value::from));
    FieldError::new(
        failure.kind,
        loc,
        failure.msg.to_owned(),
        Value::String(raw.to_owned()),
        None,
    )
}

fn segment(style: &Style, name: &str) -> Value {
    if style.lowercase {
        Value::String(name.to_ascii_lowercase())
    } else {
        Value::from(name)
    }
}

/// The first property of a JSON pointer (`/a/0` → `a`), used to attribute errors to fields.
pub(crate) fn first_segment(pointer: &str) -> Option<Cow<'_, str>> {
    pointer.split('/').nth(1).map(unescape)
}

fn unescape(raw: &str) -> Cow<'_, str> {
    if raw.contains('~') {
        Cow::Owned(raw.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(raw)
    }
}

/// `loc` of an instance path: label, then each segment, array indices as numbers.
///
/// Walks `root` alongside the pointer because a pointer alone cannot tell index `0` from an
/// object key `"0"`.
fn loc_of(style: &Style, root: &Value, pointer: &str) -> Vec<Value> {
    let mut loc = vec![Value::from(style.label)];
    let mut current = Some(root);
    for (depth, raw) in pointer.split('/').skip(1).enumerate() {
        let seg = unescape(raw);
        let index = match current {
            Some(Value::Array(_)) => seg.parse::<usize>().ok(),
            _ => None,
        };
        if let Some(index) = index {
            current = current.and_then(|node| node.get(index));
            loc.push(Value::from(index));
        } else {
            current = current.and_then(|node| node.get(&*seg));
            loc.push(if depth == 0 {
                segment(style, &seg)
            } else {
                Value::String(seg.into_owned())
            });
        }
    }
    loc
}

/// Appends the [`FieldError`]s for one jsonschema error; `root` is the validated instance.
pub(crate) fn push_mapped(
    err: &ValidationError<'_>,
    root: &Value,
    style: &Style,
    out: &mut Vec<FieldError>,
) {
    let pointer = err.instance_path().as_str();
    let instance = err.instance();
    let mut loc = loc_of(style, root, pointer);
    let input = || instance.clone().into_owned();
    let validation_error =
        |loc| FieldError::new("validation_error", loc, err.to_string(), input(), None);
    let error = match err.kind() {
        ValidationErrorKind::Required { property } => {
            // `dependencies`/`dependentRequired` reuse the Required kind; only the `required`
            // keyword itself means "this field is missing".
            let from_required = err
                .schema_path()
                .as_str()
                .rsplit('/')
                .next()
                .is_some_and(|keyword| keyword == "required");
            if !from_required {
                validation_error(loc)
            } else {
                let name = property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_owned);
                let at_root = pointer.is_empty();
                loc.push(if at_root {
                    segment(style, &name)
                } else {
                    Value::String(name)
                });
                let input = if style.param && at_root {
                    Value::Null
                } else {
                    input()
                };
                FieldError::new("missing", loc, "Field required".to_owned(), input, None)
            }
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                let mut loc = loc.clone();
                loc.push(Value::String(name.clone()));
                out.push(FieldError::new(
                    "validation_error",
                    loc,
                    "Additional properties are not allowed".to_owned(),
                    input(),
                    Some(json!({"additional_properties": false, "unexpected_field": name})),
                ));
            }
            return;
        }
        ValidationErrorKind::Type { kind } => {
            let (kind, msg) = type_error(kind, instance);
            FieldError::new(kind, loc, msg.to_owned(), input(), None)
        }
        ValidationErrorKind::MinLength { limit } => FieldError::new(
            "string_too_short",
            loc,
            format!(
                "String should have at least {limit} {}",
                plural(*limit, "character")
            ),
            input(),
            Some(json!({ "min_length": limit })),
        ),
        ValidationErrorKind::MaxLength { limit } => FieldError::new(
            "string_too_long",
            loc,
            format!(
                "String should have at most {limit} {}",
                plural(*limit, "character")
            ),
            input(),
            Some(json!({ "max_length": limit })),
        ),
        ValidationErrorKind::Pattern { pattern } => pattern_mismatch(loc, pattern, input()),
        ValidationErrorKind::Minimum { limit } => bound(
            loc,
            "greater_than_equal",
            "greater than or equal to",
            "ge",
            limit,
            input(),
        ),
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            bound(loc, "greater_than", "greater than", "gt", limit, input())
        }
        ValidationErrorKind::Maximum { limit } => bound(
            loc,
            "less_than_equal",
            "less than or equal to",
            "le",
            limit,
            input(),
        ),
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            bound(loc, "less_than", "less than", "lt", limit, input())
        }
        ValidationErrorKind::MultipleOf { multiple_of } => {
            let limit = number_value(&json!(multiple_of));
            FieldError::new(
                "multiple_of",
                loc,
                format!("Input should be a multiple of {limit}"),
                input(),
                Some(json!({ "multiple_of": limit })),
            )
        }
        ValidationErrorKind::Enum { options } => {
            let expected = expected_list(options.as_array().map_or(&[][..], Vec::as_slice));
            FieldError::new(
                "enum",
                loc,
                format!("Input should be {expected}"),
                input(),
                Some(json!({ "expected": expected })),
            )
        }
        ValidationErrorKind::MinItems { limit } => FieldError::new(
            "too_short",
            loc,
            // Always "item": pydantic would pluralise, the fixtures (url_encoded/19) do not.
            format!("List should have at least {limit} item after validation"),
            input(),
            Some(json!({ "min_length": limit })),
        ),
        ValidationErrorKind::MaxItems { limit } => FieldError::new(
            "too_long",
            loc,
            format!(
                "List should have at most {limit} {} after validation",
                plural(*limit, "item")
            ),
            input(),
            Some(json!({ "max_length": limit })),
        ),
        ValidationErrorKind::Format { format } => format_error(loc, format, instance, style),
        _ => validation_error(loc),
    };
    out.push(error);
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

fn pattern_mismatch(loc: Vec<Value>, pattern: &str, input: Value) -> FieldError {
    FieldError::new(
        "string_pattern_mismatch",
        loc,
        format!("String should match pattern '{pattern}'"),
        input,
        Some(json!({ "pattern": pattern })),
    )
}

fn bound(
    loc: Vec<Value>,
    kind: &str,
    relation: &str,
    ctx_key: &str,
    limit: &Value,
    input: Value,
) -> FieldError {
    let limit = number_value(limit);
    let mut ctx = serde_json::Map::new();
    ctx.insert(ctx_key.to_owned(), limit.clone());
    FieldError::new(
        kind,
        loc,
        format!("Input should be {relation} {limit}"),
        input,
        Some(Value::Object(ctx)),
    )
}

/// A limit as pydantic prints it: integral floats without `.0` (`1`, not `1.0`).
pub(crate) fn number_value(value: &Value) -> Value {
    match value.as_f64() {
        Some(f) if value.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            // Exact: integral and within f64's contiguous integer range.
            #[allow(clippy::cast_possible_truncation)]
            Value::from(f as i64)
        }
        _ => value.clone(),
    }
}

/// Enum options as pydantic lists them: `'a', 'b' or 'c'`.
fn expected_list(options: &[Value]) -> String {
    let items: Vec<String> = options.iter().map(python_repr).collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn python_repr(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        Value::Number(_) => number_value(value).to_string(),
        other => other.to_string(),
    }
}

/// Pydantic's type error for a value of the wrong JSON type.
///
/// A string where a number/boolean is expected is a `*_parsing` error when the text does
/// not even parse (what pydantic's lax mode reports), otherwise a `*_type` error.
fn type_error(kind: &TypeKind, instance: &Value) -> (&'static str, &'static str) {
    let expected = match kind {
        TypeKind::Single(ty) => *ty,
        TypeKind::Multiple(set) => primary_type(*set),
    };
    match (expected, instance) {
        (JsonType::Integer, Value::String(s)) if coerce::parse_int(s).is_none() => {
            (coerce::INT_PARSING.kind, coerce::INT_PARSING.msg)
        }
        (JsonType::Integer, Value::Number(_)) => (
            "int_from_float",
            "Input should be a valid integer, got a number with a fractional part",
        ),
        (JsonType::Integer, _) => ("int_type", "Input should be a valid integer"),
        (JsonType::Number, Value::String(s)) if coerce::parse_number(s).is_none() => {
            (coerce::FLOAT_PARSING.kind, coerce::FLOAT_PARSING.msg)
        }
        (JsonType::Number, _) => ("float_type", "Input should be a valid number"),
        (JsonType::Boolean, Value::String(s)) if coerce::parse_bool(s).is_none() => {
            (coerce::BOOL_PARSING.kind, coerce::BOOL_PARSING.msg)
        }
        (JsonType::Boolean, Value::Number(_)) => {
            (coerce::BOOL_PARSING.kind, coerce::BOOL_PARSING.msg)
        }
        (JsonType::Boolean, _) => ("bool_type", "Input should be a valid boolean"),
        (JsonType::String, _) => ("string_type", "Input should be a valid string"),
        (JsonType::Array, _) => ("list_type", "Input should be a valid list"),
        (JsonType::Object, _) => (
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        ),
        (JsonType::Null, _) => ("none_required", "Input should be None"),
    }
}

/// The type a union error is reported against: the first non-null one, most specific first.
fn primary_type(set: JsonTypeSet) -> JsonType {
    [
        JsonType::Integer,
        JsonType::Number,
        JsonType::Boolean,
        JsonType::String,
        JsonType::Array,
        JsonType::Object,
    ]
    .into_iter()
    .find(|ty| set.contains(*ty))
    .unwrap_or(JsonType::Null)
}

fn format_error(loc: Vec<Value>, format: &str, instance: &Value, style: &Style) -> FieldError {
    let text = instance.as_str().unwrap_or_default();
    let input = instance.clone();
    let with_reason = |prefix: &str, reason: Option<&str>| match reason {
        Some(reason) => format!("{prefix}, {reason}"),
        None => prefix.to_owned(),
    };
    let (kind, msg, ctx) = match format {
        "email" | "idn-email" => return pattern_mismatch(loc, formats::EMAIL_PATTERN, input),
        "uuid" => {
            // The fixtures give the uuid crate's reason for parameters only (validation_errors/11
            // vs json_bodies/20).
            let reason = if style.param {
                formats::uuid_reason(text)
            } else {
                None
            };
            (
                "uuid_parsing",
                with_reason("Input should be a valid UUID", reason.as_deref()),
                None,
            )
        }
        "date" => (
            "date_parsing",
            with_reason(
                "Input should be a valid date in the format YYYY-MM-DD",
                formats::date_reason(text),
            ),
            None,
        ),
        "date-time" => (
            "datetime_parsing",
            with_reason(
                "Input should be a valid datetime",
                formats::datetime_reason(text),
            ),
            None,
        ),
        "time" => (
            "time_parsing",
            with_reason(
                "Input should be in a valid time format",
                formats::time_text_reason(text),
            ),
            None,
        ),
        "duration" => (
            "time_delta_parsing",
            "Input should be a valid timedelta, invalid duration format".to_owned(),
            None,
        ),
        "ipv4" => (
            "ip_v4_address",
            "Input is not a valid IPv4 address".to_owned(),
            None,
        ),
        "ipv6" => (
            "ip_v6_address",
            "Input is not a valid IPv6 address".to_owned(),
            None,
        ),
        "uri" | "iri" | "uri-reference" | "iri-reference" => (
            "url_parsing",
            with_reason(
                "Input should be a valid URL",
                Some(formats::url_reason(text)),
            ),
            None,
        ),
        other => (
            "value_error",
            format!("Value error, Input is not a valid {other}"),
            Some(json!({ "format": other })),
        ),
    };
    FieldError::new(kind, loc, msg, input, ctx)
}

/// Deterministic error order inside one source: by `loc`, indices numerically.
///
/// jsonschema's order follows keyword layout; FastAPI's follows fields, so sorting by
/// location is the stable common ground (and what the multi-error fixtures show).
pub(crate) fn sort(errors: &mut [FieldError]) {
    errors.sort_by(|a, b| compare_loc(&a.loc, &b.loc));
}

fn compare_loc(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let ord = match (x, y) {
            (Value::Number(x), Value::Number(y)) => x
                .as_u64()
                .unwrap_or(u64::MAX)
                .cmp(&y.as_u64().unwrap_or(u64::MAX)),
            (Value::Number(_), _) => Ordering::Less,
            (_, Value::Number(_)) => Ordering::Greater,
            (Value::String(x), Value::String(y)) => x.cmp(y),
            _ => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_pydantic() {
        assert_eq!(number_value(&json!(1.0)), json!(1));
        assert_eq!(number_value(&json!(0.01)), json!(0.01));
        assert_eq!(number_value(&json!(-3)), json!(-3));
        assert_eq!(number_value(&json!(1e300)), json!(1e300));
    }

    #[test]
    fn enum_lists() {
        assert_eq!(
            expected_list(&[json!("alexnet"), json!("resnet"), json!("lenet")]),
            "'alexnet', 'resnet' or 'lenet'"
        );
        assert_eq!(expected_list(&[json!(1), json!(2.0)]), "1 or 2");
        assert_eq!(expected_list(&[json!(true)]), "True");
        assert_eq!(expected_list(&[]), "");
    }

    #[test]
    fn loc_walks_the_instance() {
        let root = json!({"items": [{"0": {"a/b": 1}}]});
        assert_eq!(
            loc_of(&BODY, &root, "/items/0/0/a~1b"),
            vec![
                json!("body"),
                json!("items"),
                json!(0),
                json!("0"),
                json!("a/b")
            ]
        );
        assert_eq!(
            loc_of(&HEADERS, &json!({}), "/X-Token"),
            vec![json!("headers"), json!("x-token")]
        );
    }

    #[test]
    fn sorting_is_by_location() {
        let err = |loc: Value| {
            FieldError::new(
                "x",
                loc.as_array().cloned().unwrap_or_default(),
                String::new(),
                Value::Null,
                None,
            )
        };
        let mut errors = vec![
            err(json!(["body", "name"])),
            err(json!(["body", "items", 10])),
            err(json!(["body", "items", 2])),
            err(json!(["body"])),
        ];
        sort(&mut errors);
        let locs: Vec<_> = errors.iter().map(|e| Value::from(e.loc.clone())).collect();
        assert_eq!(
            locs,
            vec![
                json!(["body"]),
                json!(["body", "items", 2]),
                json!(["body", "items", 10]),
                json!(["body", "name"])
            ]
        );
    }
}
