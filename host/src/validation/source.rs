//! One request source (path, query, headers, cookies or body) with its compiled schema.
//!
//! Parameters arrive as `name → string(s)`; a [`ParamSource`] knows, from start-up, which
//! properties its schema declares and how to coerce each, so a request costs one pass over
//! its pairs, one jsonschema check, and error mapping only when something is wrong.

use super::coerce::{self, Plan};
use super::errors::{self, Style};
use super::formats;
use super::urlencoded::{key_shape, KeyShape, Pair};
use super::FieldError;
use http::header::HeaderName;
use jsonschema::Validator;
use serde_json::{Map, Value};

/// A compiled schema for one source, plus the coercion plan of each declared property.
pub(crate) struct ParamSource {
    validator: Validator,
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
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .with_format("uuid", formats::is_uuid)
            .build(schema)
            .map_err(|err| {
                let at = err.instance_path().as_str();
                if at.is_empty() {
                    format!("invalid {source} schema: {err}")
                } else {
                    format!("invalid {source} schema at {at}: {err}")
                }
            })?;
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
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            validator,
            props,
            forbid_extra: schema.get("additionalProperties") == Some(&Value::Bool(false)),
        })
    }

    /// The declared properties, for sources that look values up by name (headers, cookies).
    pub(crate) fn props(&self) -> &[Prop] {
        &self.props
    }

    /// Validates an already-typed value (a JSON body) as is.
    pub(crate) fn check_value(&self, value: &Value, style: &Style, out: &mut Vec<FieldError>) {
        if self.validator.is_valid(value) {
            return;
        }
        let start = out.len();
        for err in self.validator.iter_errors(value) {
            errors::push_mapped(&err, value, style, out);
        }
        errors::sort(&mut out[start..]);
    }

    /// Coerces `pairs` by the declared properties, validates the result, and returns it.
    ///
    /// A value that cannot be coerced is reported once (e.g. `int_parsing`) and left out of
    /// the validated object, so it does not also produce `missing` or type errors.
    pub(crate) fn run(
        &self,
        pairs: &[Pair<'_>],
        extras: Extras,
        style: &Style,
        out: &mut Vec<FieldError>,
    ) -> Map<String, Value> {
        let start = out.len();
        let matches: Vec<Option<(usize, Option<usize>)>> =
            pairs.iter().map(|(key, _)| self.lookup(key)).collect();
        let mut object = Map::new();
        let mut failed: Vec<&str> = Vec::new();
        for (index, prop) in self.props.iter().enumerate() {
            let mut values = pairs
                .iter()
                .zip(&matches)
                .filter_map(|((_, value), m)| match m {
                    Some((p, order)) if *p == index => Some((*order, value.as_ref())),
                    _ => None,
                });
            let coerced = match &prop.plan {
                Plan::Scalar(types) => match values.next_back() {
                    None => continue,
                    Some((_, raw)) => coerce::coerce(raw, *types)
                        .map_err(|f| out.push(errors::coercion(style, &prop.name, None, raw, f))),
                },
                Plan::Array { items, separator } => {
                    let mut raws: Vec<(Option<usize>, &str)> = values.collect();
                    if raws.is_empty() {
                        continue;
                    }
                    // `tags[2]=c&tags[0]=a` lists by index; plain repeats keep request order.
                    raws.sort_by_key(|(order, _)| order.unwrap_or(usize::MAX));
                    coerce_array(&raws, *items, separator.as_deref(), prop, style, out)
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
        if keep_extras && self.forbid_extra {
            undeclared
                .clone()
                .for_each(|(k, v)| append(&mut object, k, v));
        }

        let mut object = Value::Object(object);
        if !self.validator.is_valid(&object) {
            for err in self.validator.iter_errors(&object) {
                if !blames_failed(&err, &failed) {
                    errors::push_mapped(&err, &object, style, out);
                }
            }
        }
        errors::sort(&mut out[start..]);

        let Value::Object(object) = &mut object else {
            unreachable!("built as an object above")
        };
        let mut object = std::mem::take(object);
        if keep_extras && !self.forbid_extra {
            undeclared.for_each(|(k, v)| append(&mut object, k, v));
        }
        for prop in &self.props {
            if let Some(default) = &prop.default {
                if !object.contains_key(&prop.name) && !failed.contains(&prop.name.as_str()) {
                    object.insert(prop.name.clone(), default.clone());
                }
            }
        }
        object
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

fn coerce_array(
    raws: &[(Option<usize>, &str)],
    items: coerce::Types,
    separator: Option<&str>,
    prop: &Prop,
    style: &Style,
    out: &mut Vec<FieldError>,
) -> Result<Value, ()> {
    let mut list = Vec::with_capacity(raws.len());
    let mut ok = true;
    let pieces = raws
        .iter()
        .flat_map(|(_, raw)| coerce::split_items(raw, separator));
    for (index, piece) in pieces.enumerate() {
        match coerce::coerce(piece, items) {
            Ok(value) => list.push(value),
            Err(failure) => {
                ok = false;
                out.push(errors::coercion(
                    style,
                    &prop.name,
                    Some(index),
                    piece,
                    failure,
                ));
            }
        }
    }
    if ok {
        Ok(Value::Array(list))
    } else {
        Err(())
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

/// Adds a string parameter, turning a repeated key into an array (`a=1&a=2` → `["1","2"]`).
pub(crate) fn append(object: &mut Map<String, Value>, key: &str, value: &str) {
    let value = Value::String(value.to_owned());
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
