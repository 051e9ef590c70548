//! Translation of jsonschema errors into pydantic-v2-shaped [`FieldError`]s.
//!
//! Clients of the API (and the conformance fixtures) expect FastAPI's error vocabulary
//! (`missing`, `string_too_short`, `greater_than_equal`, ...), not JSON Schema's wording;
//! this module is the single place where that vocabulary lives.
//!
//! Mapping is also where a hostile request could multiply: every quote of the request
//! (`input`, `loc` names, messages) goes through [`bounds`], and once [`FieldErrors`] is
//! full the remaining errors are only counted.

use super::long_keys::Shortened;
use super::{bounds, coerce, formats, patterns, FieldError, FieldErrors};
use jsonschema::error::{TypeKind, ValidationErrorKind as K};
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
        bounds::bounded_string(raw, bounds::MAX_TEXT_BYTES),
        None,
    )
}

/// The `loc` segment of a top-level name: bounded, lowercased for headers.
fn segment(style: &Style, name: &str) -> Value {
    let name = bounds::bounded_text(name, bounds::MAX_SEGMENT_BYTES);
    if style.lowercase {
        Value::String(name.to_ascii_lowercase())
    } else {
        Value::String(name.into_owned())
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

/// `loc` of an instance path: label, then each segment, array indices as numbers, names
/// as the client sent them (stand-ins mapped back) and bounded (see
/// [`bounds::bounded_segment`]).
///
/// Walks the validated instance alongside the pointer because a pointer alone cannot tell
/// index `0` from an object key `"0"`.
fn loc_of(cx: &Mapping<'_>, pointer: &str) -> Vec<Value> {
    let mut loc = vec![Value::from(cx.style.label)];
    let mut current = Some(cx.root);
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
            let key = cx.key(&seg);
            loc.push(if depth == 0 {
                segment(cx.style, key)
            } else {
                bounds::bounded_segment(key)
            });
        }
    }
    loc
}

/// What mapping a jsonschema error needs besides the error itself.
pub(crate) struct Mapping<'a> {
    /// The validated instance, to tell array indices from object keys.
    pub root: &'a Value,
    /// How the source reports errors.
    pub style: &'a Style,
    /// The schema the instance was validated against, to name the pattern of a match the
    /// regex engine could not finish.
    pub schema: &'a Value,
    /// When `root` is a body whose long keys were replaced: the stand-ins, and the body as
    /// sent, which errors quote.
    pub shortened: Option<(&'a Shortened, &'a Value)>,
}

impl Mapping<'_> {
    /// The key a pointer segment names, as the client sent it.
    fn key<'k>(&'k self, segment: &'k str) -> &'k str {
        match self.shortened {
            Some((stand_ins, _)) => stand_ins.original(segment),
            None => segment,
        }
    }

    /// The value an error is about, as the client sent it.
    fn instance<'e>(&'e self, err: &'e ValidationError<'_>) -> &'e Value {
        let Some((_, sent)) = self.shortened else {
            return err.instance();
        };
        let mut current = sent;
        for raw in err.instance_path().as_str().split('/').skip(1) {
            let seg = unescape(raw);
            let next = match current {
                Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                Value::Object(object) => object.get(self.key(&seg)),
                _ => None,
            };
            match next {
                Some(next) => current = next,
                None => return err.instance(),
            }
        }
        current
    }
}

/// Appends the [`FieldError`]s for one jsonschema error, or only counts them once `out` is
/// full (mapping is what costs; see [`FieldErrors`]).
pub(crate) fn push_mapped(err: &ValidationError<'_>, cx: &Mapping<'_>, out: &mut FieldErrors) {
    if let Some(branch) = chosen_branch(err) {
        for inner in branch {
            push_mapped(inner, cx, out);
        }
        return;
    }
    if !out.has_room() {
        out.omit(entries_of(err));
        return;
    }
    let site = Site {
        err,
        loc: loc_of(cx, err.instance_path().as_str()),
        instance: cx.instance(err),
    };
    let error = match err.kind() {
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            return unexpected_properties(site, unexpected, cx, out);
        }
        K::Required { property } => missing(site, property, cx.style),
        K::Type { kind } => {
            let (kind, msg) = type_error(kind, site.instance);
            site.entry(kind, msg.to_owned(), None)
        }
        kind @ (K::MinLength { .. }
        | K::MaxLength { .. }
        | K::MinItems { .. }
        | K::MaxItems { .. }) => length(site, kind),
        kind @ (K::Minimum { .. }
        | K::ExclusiveMinimum { .. }
        | K::Maximum { .. }
        | K::ExclusiveMaximum { .. }
        | K::MultipleOf { .. }) => bound(site, kind),
        K::Enum { options } => enumeration(site, options),
        kind @ (K::Pattern { .. }
        | K::BacktrackLimitExceeded { .. }
        | K::RegexEngineFailure { .. }) => pattern(site, kind, cx.schema),
        K::Format { format } => format_error(site, format, cx.style),
        _ => site.generic(),
    };
    out.push(error);
}

/// How many entries one jsonschema error becomes.
fn entries_of(err: &ValidationError<'_>) -> usize {
    if let Some(branch) = chosen_branch(err) {
        return branch.iter().map(entries_of).sum();
    }
    match err.kind() {
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            unexpected.len()
        }
        _ => 1,
    }
}

/// The branch whose errors an `anyOf`/`oneOf` failure is reported by, at their own (leaf)
/// locations, instead of one "not valid under any of the schemas" error at the parent.
///
/// An optional model (`{"anyOf": [{"$ref": "#/$defs/Supplier"}, {"type": "null"}]}`) sent as
/// an object with a bad field is a bad *field*, as pydantic reports it
/// (`["body","supplier","name"]`). The branch is chosen when it is the only one left after
/// dropping `null` branches (the value is not null), or else the only one whose type the
/// value has (no type error at the value itself). Otherwise (the value fits several
/// branches, or none) no branch is singled out and the parent error stands: which branch the
/// client meant is a guess (`{"required": ["email"]}` or `{"required": ["phone"]}`).
///
/// Reads only the errors jsonschema already collected for the branches.
fn chosen_branch<'e, 'i>(err: &'e ValidationError<'i>) -> Option<&'e [ValidationError<'static>]> {
    let context = match err.kind() {
        K::AnyOf { context } | K::OneOfNotValid { context } => context,
        _ => return None,
    };
    let at = err.instance_path().as_str();
    let not_null: Vec<&Vec<ValidationError<'static>>> = context
        .iter()
        .filter(|branch| !is_null_branch(branch, at))
        .collect();
    let chosen = match not_null.as_slice() {
        [only] => *only,
        several => {
            let mut typed = several
                .iter()
                .filter(|branch| !branch.iter().any(|e| is_type_error_at(e, at)));
            match (typed.next(), typed.next()) {
                (Some(only), None) => *only,
                _ => return None,
            }
        }
    };
    (!chosen.is_empty()).then_some(chosen.as_slice())
}

/// A branch that failed only because the value is not `null` (`{"type": "null"}`).
fn is_null_branch(branch: &[ValidationError<'_>], at: &str) -> bool {
    let [only] = branch else { return false };
    only.instance_path().as_str() == at
        && match only.kind() {
            K::Type {
                kind: TypeKind::Single(JsonType::Null),
            } => true,
            K::Type {
                kind: TypeKind::Multiple(set),
            } => set.len() == 1 && set.contains(JsonType::Null),
            _ => false,
        }
}

/// A type error about the value at `at` itself (not one of its members).
fn is_type_error_at(err: &ValidationError<'_>, at: &str) -> bool {
    matches!(err.kind(), K::Type { .. }) && err.instance_path().as_str() == at
}

/// One jsonschema error being mapped: the error, its `loc` and the value it is about.
struct Site<'e, 'i> {
    err: &'e ValidationError<'i>,
    loc: Vec<Value>,
    /// The failing value as the client sent it.
    instance: &'e Value,
}

impl Site<'_, '_> {
    /// The failing value, bounded.
    fn input(&self) -> Value {
        bounds::bounded_input(self.instance)
    }

    /// An entry at this site with the failing value as `input`.
    fn entry(self, kind: &str, msg: String, ctx: Option<Value>) -> FieldError {
        let input = self.input();
        FieldError::new(kind, self.loc, msg, input, ctx)
    }

    /// jsonschema's own wording, for kinds pydantic has no name for.
    fn generic(self) -> FieldError {
        let msg = bounds::bounded_message(self.err);
        self.entry("validation_error", msg, None)
    }
}

/// `missing`, for the `required` keyword (`dependencies`/`dependentRequired` reuse the
/// Required kind; only `required` itself means "this field is missing").
fn missing(mut site: Site<'_, '_>, property: &Value, style: &Style) -> FieldError {
    let from_required = site
        .err
        .schema_path()
        .as_str()
        .rsplit('/')
        .next()
        .is_some_and(|keyword| keyword == "required");
    if !from_required {
        return site.generic();
    }
    let at_root = site.err.instance_path().as_str().is_empty();
    site.loc.push(match property.as_str() {
        Some(name) if at_root => segment(style, name),
        Some(name) => bounds::bounded_segment(name),
        None => bounds::bounded_segment(&property.to_string()),
    });
    // Parameters report `null` for a missing top-level field (FastAPI does); bodies report
    // the enclosing object, bounded.
    let input = if style.param && at_root {
        Value::Null
    } else {
        site.input()
    };
    FieldError::new(
        "missing",
        site.loc,
        "Field required".to_owned(),
        input,
        None,
    )
}

/// One entry per unexpected property, as many as `out` lists; its `input` is that property's
/// value (bounded), not the enclosing object.
fn unexpected_properties(
    site: Site<'_, '_>,
    unexpected: &[String],
    cx: &Mapping<'_>,
    out: &mut FieldErrors,
) {
    let object = site.instance;
    let listed = unexpected.len().min(out.room());
    for name in &unexpected[..listed] {
        let name = cx.key(name);
        let mut loc = site.loc.clone();
        let name_value = bounds::bounded_segment(name);
        loc.push(name_value.clone());
        out.push(FieldError::new(
            "validation_error",
            loc,
            "Additional properties are not allowed".to_owned(),
            object.get(name).map_or(Value::Null, bounds::bounded_input),
            Some(json!({"additional_properties": false, "unexpected_field": name_value})),
        ));
    }
    out.omit(unexpected.len() - listed);
}

/// `string_too_short`, `string_too_long`, `too_short`, `too_long`.
fn length(site: Site<'_, '_>, kind: &K) -> FieldError {
    match kind {
        K::MinLength { limit } => site.entry(
            "string_too_short",
            format!(
                "String should have at least {limit} {}",
                plural(*limit, "character")
            ),
            Some(json!({ "min_length": limit })),
        ),
        K::MaxLength { limit } => site.entry(
            "string_too_long",
            format!(
                "String should have at most {limit} {}",
                plural(*limit, "character")
            ),
            Some(json!({ "max_length": limit })),
        ),
        K::MinItems { limit } => site.entry(
            "too_short",
            // Always "item": pydantic would pluralise, the fixtures (url_encoded/19) do not.
            format!("List should have at least {limit} item after validation"),
            Some(json!({ "min_length": limit })),
        ),
        K::MaxItems { limit } => site.entry(
            "too_long",
            format!(
                "List should have at most {limit} {} after validation",
                plural(*limit, "item")
            ),
            Some(json!({ "max_length": limit })),
        ),
        _ => site.generic(),
    }
}

/// `greater_than_equal`, `greater_than`, `less_than_equal`, `less_than`, `multiple_of`.
fn bound(site: Site<'_, '_>, kind: &K) -> FieldError {
    let (kind, relation, ctx_key, limit) = match kind {
        K::Minimum { limit } => (
            "greater_than_equal",
            "greater than or equal to",
            "ge",
            limit,
        ),
        K::ExclusiveMinimum { limit } => ("greater_than", "greater than", "gt", limit),
        K::Maximum { limit } => ("less_than_equal", "less than or equal to", "le", limit),
        K::ExclusiveMaximum { limit } => ("less_than", "less than", "lt", limit),
        K::MultipleOf { multiple_of } => {
            let limit = number_value(&json!(multiple_of));
            return site.entry(
                "multiple_of",
                format!("Input should be a multiple of {limit}"),
                Some(json!({ "multiple_of": limit })),
            );
        }
        _ => return site.generic(),
    };
    let limit = number_value(limit);
    let mut ctx = serde_json::Map::new();
    ctx.insert(ctx_key.to_owned(), limit.clone());
    site.entry(
        kind,
        format!("Input should be {relation} {limit}"),
        Some(Value::Object(ctx)),
    )
}

/// `enum`, listing the options as pydantic does.
fn enumeration(site: Site<'_, '_>, options: &Value) -> FieldError {
    let expected = expected_list(options.as_array().map_or(&[][..], Vec::as_slice));
    site.entry(
        "enum",
        format!("Input should be {expected}"),
        Some(json!({ "expected": expected })),
    )
}

/// `string_pattern_mismatch`; also for a match the regex engine gave up on (backtrack limit
/// or engine failure), which says so instead of claiming a mismatch.
fn pattern(site: Site<'_, '_>, kind: &K, schema: &Value) -> FieldError {
    match kind {
        K::Pattern { pattern } => pattern_mismatch(site.loc, pattern, site.instance),
        _ => {
            let pattern = pattern_at(schema, site.err.schema_path().as_str());
            let msg = match &pattern {
                Some(p) => format!(
                    "String could not be checked against pattern '{p}': the match needs more than {} backtracking steps",
                    patterns::BACKTRACK_LIMIT
                ),
                None => format!(
                    "String could not be checked against its pattern: the match needs more than {} backtracking steps",
                    patterns::BACKTRACK_LIMIT
                ),
            };
            let ctx = json!({ "pattern": pattern, "backtrack_limit": patterns::BACKTRACK_LIMIT });
            site.entry("string_pattern_mismatch", msg, Some(ctx))
        }
    }
}

/// The pattern a keyword location names: the `pattern` keyword's value, or the key of a
/// `patternProperties` entry.
fn pattern_at(schema: &Value, schema_path: &str) -> Option<String> {
    if let Some(Value::String(pattern)) = schema.pointer(schema_path) {
        return Some(pattern.clone());
    }
    let (parent, key) = schema_path.rsplit_once('/')?;
    parent
        .ends_with("/patternProperties")
        .then(|| unescape(key).into_owned())
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

fn pattern_mismatch(loc: Vec<Value>, pattern: &str, instance: &Value) -> FieldError {
    FieldError::new(
        "string_pattern_mismatch",
        loc,
        format!("String should match pattern '{pattern}'"),
        bounds::bounded_input(instance),
        Some(json!({ "pattern": pattern })),
    )
}

/// A limit as pydantic prints it: integral floats without `.0` (`1`, not `1.0`), other
/// floats in their shortest form (`0.1`, not `0.10` as a schema may spell it), integers
/// exactly at any size.
pub(crate) fn number_value(value: &Value) -> Value {
    match value.as_f64() {
        Some(f) if value.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
            // Exact: integral and within f64's contiguous integer range.
            #[allow(clippy::cast_possible_truncation)]
            Value::from(f as i64)
        }
        Some(f) if value.is_f64() => {
            serde_json::Number::from_f64(f).map_or_else(|| value.clone(), Value::Number)
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

/// The pydantic error of a string `format`; emails are reported as pydantic's pattern.
fn format_error(site: Site<'_, '_>, format: &str, style: &Style) -> FieldError {
    let instance = site.instance;
    let text = instance.as_str().unwrap_or_default();
    let with_reason = |prefix: &str, reason: Option<&str>| match reason {
        Some(reason) => format!("{prefix}, {reason}"),
        None => prefix.to_owned(),
    };
    let (kind, msg, ctx) = match format {
        "email" | "idn-email" => {
            return pattern_mismatch(site.loc, formats::EMAIL_PATTERN, instance)
        }
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
    site.entry(kind, msg, ctx)
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
        let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(number_value(&parse("0.10")).to_string(), "0.1");
        assert_eq!(number_value(&parse("1e2")).to_string(), "100");
        let big = "123456789012345678901234567890";
        assert_eq!(number_value(&parse(big)).to_string(), big);
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
        let loc_of = |style: &Style, root: &Value, pointer: &str| {
            let cx = Mapping {
                root,
                style,
                schema: &Value::Null,
                shortened: None,
            };
            loc_of(&cx, pointer)
        };
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
