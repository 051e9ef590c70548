//! One request source (path, query, headers, cookies or body) with its compiled schema.
//!
//! Parameters arrive as `name → string(s)`; a [`ParamSource`] knows, from start-up, which
//! properties its schema declares and how to coerce each, so a request costs one pass over
//! its pairs, one jsonschema check, and error mapping only when something is wrong.

use super::bounds;
use super::coerce::{self, Plan, Types};
use super::errors::{self, Mapping, Style};
use super::files::{self, FileRules, Upload};
use super::formats;
use super::lax;
use super::long_keys::KeyShortener;
use super::patterns::{self, Engine};
use super::urlencoded::{key_shape, Decoded, KeyShape};
use super::{FieldError, FieldErrors};
use crate::multipart::Part;
use http::header::HeaderName;
use jsonschema::Validator;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashSet;

/// A compiled schema for one source, plus the coercion plan of each declared property.
pub(crate) struct ParamSource {
    validator: Validator,
    /// The regex engine `validator` runs its patterns on.
    engine: Engine,
    /// The schema `validator` checks, for error messages that quote it (patterns).
    schema: Value,
    /// Replaces long keys of an invalid JSON body before its errors are collected, when the
    /// schema allows it (see [`long_keys`](super::long_keys)).
    shortener: Option<KeyShortener>,
    /// Validates forms when file rules were taken out of the schema (see [`files`]).
    form_validator: Option<(Validator, Value)>,
    props: Vec<Prop>,
    /// `additionalProperties: false`: undeclared parameters are reported, not passed on.
    forbid_extra: bool,
}

/// One declared property (a parameter, or a form field).
pub(crate) struct Prop {
    /// The name as written in the schema; the key in the coerced object.
    pub name: String,
    /// The header this property reads, when the source is `headers` (precomputed, lowercase).
    pub header: Option<HeaderName>,
    pub plan: Plan,
    /// Filled in when the parameter is absent, as pydantic does with defaults.
    default: Option<Value>,
    /// What an uploaded file must satisfy, for a file field of a body.
    file: Option<FileRules>,
}

/// One value of a request field as coercion sees it: the text of a parameter or urlencoded
/// field, or a multipart part (a file when it has a filename).
pub(crate) trait FieldValue {
    /// The value as text (a part's content decoded as UTF-8, lossily); `Err` holds the
    /// lossy text of a parameter whose bytes are not UTF-8, reported as `string_unicode`.
    fn text(&self) -> Result<Cow<'_, str>, &str>;
    /// An uploaded file as plugins receive it (see [`Part::file_json`]).
    fn file(&self) -> Option<Value>;
    /// What file rules check.
    fn upload(&self) -> Upload<'_>;
}

impl FieldValue for Decoded<'_> {
    fn text(&self) -> Result<Cow<'_, str>, &str> {
        Decoded::text(self).map(Cow::Borrowed)
    }

    fn file(&self) -> Option<Value> {
        None
    }

    fn upload(&self) -> Upload<'_> {
        Upload {
            filename: None,
            media_type: Cow::Borrowed(crate::multipart::DEFAULT_MEDIA_TYPE),
            bytes: match self {
                Decoded::Text(text) => text.as_bytes(),
                Decoded::NotUtf8(lossy) => lossy.as_bytes(),
            },
        }
    }
}

impl FieldValue for &Part<'_> {
    fn text(&self) -> Result<Cow<'_, str>, &str> {
        Ok(String::from_utf8_lossy(self.body))
    }

    fn file(&self) -> Option<Value> {
        self.filename.is_some().then(|| self.file_json())
    }

    fn upload(&self) -> Upload<'_> {
        Upload {
            filename: self.filename.as_deref(),
            media_type: self.media_type(),
            bytes: self.body,
        }
    }
}

/// What coercion noted on the way, for after validation.
struct Seen<'p> {
    /// The raw text of values whose type coercion changed (prop, item, text): errors about
    /// them report what the client sent, as pydantic does (`"101"`, not `101`).
    raws: Vec<(usize, Option<usize>, Cow<'p, str>)>,
    /// Uploaded files (prop, item, file): validated as their content, handed on as objects.
    uploads: Vec<(usize, Option<usize>, Value)>,
}

/// What to do with pairs no property declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extras {
    /// Pass them on as strings (query, path, form).
    Keep,
    /// Drop them (headers, cookies: a request carries many the route never asked for).
    Ignore,
}

impl ParamSource {
    /// Compiles `schema`; `Err` is a human message naming `source`.
    pub(crate) fn compile(source: &str, schema: &Value) -> Result<Self, String> {
        let build = |schema: &Value| {
            let options = || {
                jsonschema::options()
                    .should_validate_formats(true)
                    .with_format("uuid", formats::is_uuid)
                    .with_format("duration", formats::is_duration)
            };
            patterns::build(options, schema).map_err(|err| {
                let at = err.instance_path().as_str();
                if at.is_empty() {
                    format!("invalid {source} schema: {err}")
                } else {
                    format!("invalid {source} schema at {at}: {err}")
                }
            })
        };
        // A body a lax library decodes is checked with the widened schema (see [`lax`]);
        // coercion plans, file rules and long keys still read the schema as written.
        let checked = if source == "body" {
            lax::widened(schema)
        } else {
            Cow::Borrowed(schema)
        };
        let (validator, engine) = build(&checked)?;
        let (form_schema, file_rules) = if source == "body" {
            files::split_rules(schema).map_err(|e| format!("invalid {source} schema: {e}"))?
        } else {
            (None, Vec::new())
        };
        let form_validator = match form_schema {
            Some(form_schema) => {
                let form_schema = lax::widened(&form_schema).into_owned();
                Some((build(&form_schema)?.0, form_schema))
            }
            None => None,
        };
        let props = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .iter()
                    .map(|(name, sub)| Prop {
                        name: name.clone(),
                        header: HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok(),
                        plan: coerce::plan_for(sub, schema),
                        default: sub.get("default").cloned(),
                        file: file_rules
                            .iter()
                            .find(|(n, _)| n == name)
                            .map(|(_, rules)| rules.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            validator,
            engine,
            schema: checked.into_owned(),
            shortener: KeyShortener::for_schema(schema),
            form_validator,
            props,
            forbid_extra: schema.get("additionalProperties") == Some(&Value::Bool(false)),
        })
    }

    /// The regex engine of the schema's patterns, for the start-up log.
    pub(crate) fn engine(&self) -> Engine {
        self.engine
    }

    /// The declared properties, for sources that look values up by name (headers, cookies).
    pub(crate) fn props(&self) -> &[Prop] {
        &self.props
    }

    /// Validates an already-typed value (a JSON body) as is.
    pub(crate) fn check_value(&self, value: &Value, style: &Style, out: &mut FieldErrors) {
        if self.validator.is_valid(value) {
            return;
        }
        let start = out.mark();
        let shortened = self.shortener.and_then(|s| s.shorten(value));
        let cx = Mapping {
            root: shortened.as_ref().map_or(value, |s| &s.value),
            style,
            schema: &self.schema,
            shortened: shortened.as_ref().map(|s| (s, value)),
        };
        for err in self.validator.iter_errors(cx.root) {
            errors::push_mapped(&err, &cx, out);
        }
        errors::sort(out.since(start));
    }

    /// Coerces `pairs` by the declared properties, validates the result, and returns it.
    ///
    /// A value that cannot be coerced is reported once (e.g. `int_parsing`) and left out of
    /// the validated object, so it does not also produce `missing` or type errors. Uploaded
    /// files are validated as their content (or as their file object when the schema wants
    /// an object) and returned as file objects.
    pub(crate) fn run<V: FieldValue>(
        &self,
        pairs: &[(Cow<'_, str>, V)],
        extras: Extras,
        style: &Style,
        out: &mut FieldErrors,
    ) -> Map<String, Value> {
        let start = out.mark();
        let matches: Vec<Option<(usize, Option<usize>)>> =
            pairs.iter().map(|(key, _)| self.lookup(key)).collect();
        let mut object = Map::new();
        let mut failed: Vec<&str> = Vec::new();
        let mut seen = Seen {
            raws: Vec::new(),
            uploads: Vec::new(),
        };
        for (index, prop) in self.props.iter().enumerate() {
            let mut values = pairs
                .iter()
                .zip(&matches)
                .filter_map(|((_, value), m)| match m {
                    Some((p, order)) if *p == index => Some((*order, value)),
                    _ => None,
                });
            let coerced = match &prop.plan {
                Plan::Scalar(types) => match values.next_back() {
                    None => continue,
                    Some((_, value)) => {
                        coerce_scalar(value, *types, index, prop, style, out, &mut seen)
                    }
                },
                Plan::Array { items, separator } => {
                    let mut raws: Vec<(Option<usize>, &V)> = values.collect();
                    if raws.is_empty() {
                        continue;
                    }
                    // `tags[2]=c&tags[0]=a` lists by index; plain repeats keep request order.
                    raws.sort_by_key(|(order, _)| order.unwrap_or(usize::MAX));
                    let spec = ArraySpec {
                        items: *items,
                        separator: separator.as_deref(),
                        index,
                        prop,
                    };
                    coerce_array(&raws, &spec, style, out, &mut seen)
                }
            };
            match coerced {
                Ok(value) => {
                    object.insert(prop.name.clone(), value);
                }
                Err(()) => failed.push(&prop.name),
            }
        }
        let undeclared = pairs
            .iter()
            .zip(&matches)
            .filter(|(_, m)| m.is_none())
            .map(|(pair, _)| pair);
        let keep_extras = extras == Extras::Keep;
        if keep_extras {
            report_undecodable(undeclared.clone(), style, out);
        }
        if keep_extras && self.forbid_extra {
            append_forbidden(&mut object, undeclared.clone(), out);
        }

        let (validator, schema) = match &self.form_validator {
            Some((validator, schema)) => (validator, schema),
            None => (&self.validator, &self.schema),
        };
        let mut object = Value::Object(object);
        if !validator.is_valid(&object) {
            let schema_errors = out.mark();
            let cx = Mapping {
                root: &object,
                style,
                schema,
                shortened: None,
            };
            for err in validator.iter_errors(&object) {
                if !blames_failed(&err, &failed) {
                    errors::push_mapped(&err, &cx, out);
                }
            }
            if !seen.raws.is_empty() {
                self.report_raw_inputs(&seen.raws, &object, style, out.since(schema_errors));
            }
        }
        errors::sort(out.since(start));

        let Value::Object(object) = &mut object else {
            unreachable!("built as an object above")
        };
        let mut object = std::mem::take(object);
        if keep_extras && !self.forbid_extra {
            undeclared.for_each(|(k, v)| append_extra(&mut object, k, v));
        }
        for prop in &self.props {
            if let Some(default) = &prop.default {
                if !object.contains_key(&prop.name) && !failed.contains(&prop.name.as_str()) {
                    object.insert(prop.name.clone(), default.clone());
                }
            }
        }
        for (index, item, file) in seen.uploads {
            let slot = match (object.get_mut(&self.props[index].name), item) {
                (Some(slot), None) => Some(slot),
                (Some(Value::Array(list)), Some(i)) => list.get_mut(i),
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = file;
            }
        }
        object
    }

    /// Gives schema errors about coerced values the text the client sent as `input`.
    fn report_raw_inputs(
        &self,
        raws: &[(usize, Option<usize>, Cow<'_, str>)],
        object: &Value,
        style: &Style,
        errors: &mut [FieldError],
    ) {
        for err in errors {
            if err.loc.first().and_then(Value::as_str) != Some(style.label) {
                continue;
            }
            let Some(name) = err.loc.get(1).and_then(Value::as_str) else {
                continue;
            };
            let Some(index) = self.props.iter().position(|p| {
                if style.lowercase {
                    p.name.eq_ignore_ascii_case(name)
                } else {
                    p.name == name
                }
            }) else {
                continue;
            };
            let of_prop = || raws.iter().filter(|(p, _, _)| *p == index);
            let raw = match err.loc.get(2..) {
                Some([]) => match of_prop().find(|(_, item, _)| item.is_none()) {
                    Some((_, _, text)) => Some(raw_input(text)),
                    None => {
                        // A list whose every item was coerced: the list as sent.
                        let items: Vec<Value> = of_prop()
                            .filter(|(_, item, _)| item.is_some())
                            .map(|(_, _, text)| Value::from(text.as_ref()))
                            .collect();
                        let length = object
                            .get(&self.props[index].name)
                            .and_then(Value::as_array)
                            .map(Vec::len);
                        (!items.is_empty() && length == Some(items.len()))
                            .then(|| bounds::bounded_input(&Value::Array(items)))
                    }
                },
                Some([Value::Number(n)]) => of_prop()
                    .find(|(_, item, _)| item.is_some() && (*item).map(|i| i as u64) == n.as_u64())
                    .map(|(_, _, text)| raw_input(text)),
                _ => None,
            };
            if let Some(raw) = raw {
                err.input = raw;
            }
        }
    }

    /// The property a key addresses, and its array index when written `name[i]`.
    fn lookup(&self, key: &str) -> Option<(usize, Option<usize>)> {
        if let Some(i) = self.props.iter().position(|p| p.name == key) {
            return Some((i, None));
        }
        let (base, order) = match key_shape(key) {
            KeyShape::Plain(_) => return None,
            KeyShape::Append(base) => (base, None),
            KeyShape::Indexed(base, i) => (base, Some(i)),
        };
        self.props
            .iter()
            .position(|p| p.name == base)
            .map(|i| (i, order))
    }
}

/// The validated view of an uploaded file: its content, or the file object when the schema
/// wants an object and not a string.
fn file_view<V: FieldValue>(value: &V, file: &Value, types: Types) -> Value {
    if types.has(Types::OBJECT) && !types.has(Types::STRING) {
        file.clone()
    } else {
        Value::String(text_or_lossy(value))
    }
}

/// The text a client sent, as the `input` of an error about it (bounded).
fn raw_input(text: &str) -> Value {
    bounds::bounded_string(text, bounds::MAX_TEXT_BYTES)
}

fn coerce_scalar<'p, V: FieldValue>(
    value: &'p V,
    types: Types,
    index: usize,
    prop: &Prop,
    style: &Style,
    out: &mut FieldErrors,
    seen: &mut Seen<'p>,
) -> Result<Value, ()> {
    if let Some(rules) = &prop.file {
        rules.check(&value.upload(), &prop.name, None, out);
    }
    if let Some(file) = value.file() {
        let view = file_view(value, &file, types);
        seen.uploads.push((index, None, file));
        return Ok(view);
    }
    let raw = match value.text() {
        Ok(raw) => raw,
        Err(lossy) => {
            out.push_with(|| {
                errors::coercion(style, &prop.name, None, lossy, coerce::STRING_UNICODE)
            });
            return Err(());
        }
    };
    match coerce::coerce(&raw, types) {
        Ok(coerced) => {
            if !coerced.is_string() {
                seen.raws.push((index, None, raw));
            }
            Ok(coerced)
        }
        Err(failure) => {
            out.push_with(|| errors::coercion(style, &prop.name, None, &raw, failure));
            Err(())
        }
    }
}

/// One array property being coerced.
struct ArraySpec<'s> {
    items: Types,
    separator: Option<&'s str>,
    index: usize,
    prop: &'s Prop,
}

fn coerce_array<'p, V: FieldValue>(
    raws: &[(Option<usize>, &'p V)],
    spec: &ArraySpec<'_>,
    style: &Style,
    out: &mut FieldErrors,
    seen: &mut Seen<'p>,
) -> Result<Value, ()> {
    let prop = spec.prop;
    let mut list = Vec::with_capacity(raws.len());
    let mut ok = true;
    let mut item = 0;
    for (_, value) in raws {
        if let Some(rules) = &prop.file {
            rules.check(&value.upload(), &prop.name, Some(item), out);
        }
        if let Some(file) = value.file() {
            list.push(file_view(*value, &file, spec.items));
            seen.uploads.push((spec.index, Some(item), file));
            item += 1;
            continue;
        }
        let pieces: Vec<Cow<'p, str>> = match value.text() {
            Ok(Cow::Borrowed(text)) => coerce::split_items(text, spec.separator)
                .map(Cow::Borrowed)
                .collect(),
            Ok(Cow::Owned(text)) => coerce::split_items(&text, spec.separator)
                .map(|piece| Cow::Owned(piece.to_owned()))
                .collect(),
            Err(lossy) => {
                // Not split: where the separators are in bytes that are not text is moot.
                ok = false;
                out.push_with(|| {
                    errors::coercion(style, &prop.name, Some(item), lossy, coerce::STRING_UNICODE)
                });
                item += 1;
                continue;
            }
        };
        for piece in pieces {
            match coerce::coerce(&piece, spec.items) {
                Ok(coerced) => {
                    if !coerced.is_string() {
                        seen.raws.push((spec.index, Some(item), piece));
                    }
                    list.push(coerced);
                }
                Err(failure) => {
                    ok = false;
                    out.push_with(|| {
                        errors::coercion(style, &prop.name, Some(item), &piece, failure)
                    });
                }
            }
            item += 1;
        }
    }
    if ok {
        Ok(Value::Array(list))
    } else {
        Err(())
    }
}

/// The text of a value, or the lossy text of one that is not UTF-8.
fn text_or_lossy<V: FieldValue>(value: &V) -> String {
    match value.text() {
        Ok(text) => text.into_owned(),
        Err(lossy) => lossy.to_owned(),
    }
}

/// Passes an undeclared value on: a file object or the text. One that is not UTF-8 is left
/// out; [`report_undecodable`] has reported it.
fn append_extra<V: FieldValue>(object: &mut Map<String, Value>, key: &str, value: &V) {
    let value = match (value.file(), value.text()) {
        (Some(file), _) => file,
        (None, Ok(text)) => Value::String(text.into_owned()),
        (None, Err(_)) => return,
    };
    append(object, key, value);
}

/// Puts undeclared values into `object` for the schema to refuse (`additionalProperties:
/// false`), each name becoming one error. Past the errors `out` still lists, the names are
/// only counted: 15,000 unknown form fields cost a count, not 15,000 more map entries and
/// their copies inside the validator's error.
fn append_forbidden<'v, 'k: 'v, V: FieldValue + 'v>(
    object: &mut Map<String, Value>,
    undeclared: impl Iterator<Item = &'v (Cow<'k, str>, V)>,
    out: &mut FieldErrors,
) {
    let room = out.room();
    let mut listed: HashSet<&str> = HashSet::new();
    let mut beyond: HashSet<&str> = HashSet::new();
    for (key, value) in undeclared {
        if listed.contains(key.as_ref()) || listed.len() < room {
            listed.insert(key.as_ref());
            append_extra(object, key, value);
        } else {
            beyond.insert(key.as_ref());
        }
    }
    out.omit(beyond.len());
}

/// Reports undeclared values whose bytes are not UTF-8: they would reach the plugin as
/// altered text, so they are refused like declared ones (`string_unicode`).
fn report_undecodable<'v, 'k: 'v, V: FieldValue + 'v>(
    undeclared: impl Iterator<Item = &'v (Cow<'k, str>, V)>,
    style: &Style,
    out: &mut FieldErrors,
) {
    for (key, value) in undeclared {
        if let Err(lossy) = value.text() {
            out.push_with(|| errors::coercion(style, key, None, lossy, coerce::STRING_UNICODE));
        }
    }
}

/// True when a schema error concerns a property whose coercion already failed.
fn blames_failed(err: &jsonschema::ValidationError<'_>, failed: &[&str]) -> bool {
    if failed.is_empty() {
        return false;
    }
    let pointer = err.instance_path().as_str();
    match errors::first_segment(pointer) {
        Some(first) => failed.contains(&first.as_ref()),
        None => match err.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                property.as_str().is_some_and(|name| failed.contains(&name))
            }
            _ => false,
        },
    }
}

/// Adds a parameter, turning a repeated key into an array (`a=1&a=2` → `["1","2"]`).
pub(crate) fn append(object: &mut Map<String, Value>, key: &str, value: Value) {
    match object.get_mut(key) {
        None => {
            object.insert(key.to_owned(), value);
        }
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}
