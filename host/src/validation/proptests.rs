//! Property tests of the parameter parsers (see `crate::proptests` for the conventions):
//! urlencoded pairs and bracket keys, and string-to-JSON coercion.

use std::borrow::Cow;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::coerce::{self, Plan, Types};
use super::urlencoded::{self, Decoded, KeyShape};
use crate::proptests::fixed;

/// What a browser does to one form component: unreserved bytes kept, space as `+`, the
/// rest as `%XX`.
fn form_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The text of a decoded value, valid or not.
fn lossy<'v>(value: &'v Decoded<'_>) -> &'v str {
    match value.text() {
        Ok(text) | Err(text) => text,
    }
}

/// Pieces of query syntax, so that random input hits escapes and brackets often.
const QUERY_TOKENS: &[&str] = &[
    "&",
    "=",
    "+",
    "%",
    "%2",
    "%25",
    "%ff",
    "%FE",
    "%C3%A9",
    "%5B",
    "%5D",
    "[",
    "]",
    "[]",
    "[0]",
    "[1]",
    "[99999999999999999999]",
    "a",
    "tags",
    "é",
    "\u{fffd}",
    " ",
    ";",
];

fn query_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(QUERY_TOKENS), 0..40)
        .prop_map(|tokens| tokens.concat().into_bytes())
}

/// Bounds of a parse: at most one pair per byte, and no more characters out than bytes in
/// (an escape or an invalid byte never decodes to more than one character).
fn check_pairs(raw: &[u8]) -> Result<(), TestCaseError> {
    let pairs = urlencoded::parse(raw);
    prop_assert!(
        pairs.len() <= raw.len(),
        "{} pairs from {} bytes",
        pairs.len(),
        raw.len()
    );
    let chars: usize = pairs
        .iter()
        .map(|(key, value)| key.chars().count() + lossy(value).chars().count())
        .sum();
    prop_assert!(
        chars <= raw.len(),
        "{chars} characters from {} bytes",
        raw.len()
    );
    if !raw.contains(&b'%') && std::str::from_utf8(raw).is_ok() {
        prop_assert!(
            pairs.iter().all(|(_, v)| v.text().is_ok()),
            "UTF-8 input reported as bytes"
        );
    }
    // Whatever the keys, the bracket check answers (and never panics).
    let _ = urlencoded::check_form_indices(raw);
    Ok(())
}

proptest! {
    #![proptest_config(fixed(512))]

    #[test]
    fn urlencoded_arbitrary_bytes_are_bounded(raw in prop::collection::vec(any::<u8>(), 0..1024)) {
        check_pairs(&raw)?;
    }

    #[test]
    fn urlencoded_token_soup_is_bounded(raw in query_soup()) {
        check_pairs(&raw)?;
    }

    #[test]
    fn urlencoded_round_trips(pairs in prop::collection::vec(("\\PC{0,12}", "\\PC{0,24}"), 0..12)) {
        let raw = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k.as_bytes()), form_encode(v.as_bytes())))
            .collect::<Vec<_>>()
            .join("&");
        let parsed = urlencoded::parse(raw.as_bytes());
        prop_assert_eq!(parsed.len(), pairs.len(), "{}", raw);
        for ((key, value), (k, v)) in parsed.iter().zip(&pairs) {
            prop_assert_eq!(key.as_ref(), k.as_str());
            prop_assert_eq!(value, &Decoded::Text(Cow::Borrowed(v.as_str())));
        }
    }

    /// Bytes that are not UTF-8 are reported as such, never silently replaced.
    #[test]
    fn urlencoded_keeps_invalid_bytes_apart(value in prop::collection::vec(any::<u8>(), 0..32)) {
        let raw = format!("k={}", form_encode(&value));
        let parsed = urlencoded::parse(raw.as_bytes());
        prop_assert_eq!(parsed.len(), 1);
        match std::str::from_utf8(&value) {
            Ok(text) => prop_assert_eq!(&parsed[0].1, &Decoded::Text(Cow::Borrowed(text))),
            Err(_) => prop_assert!(parsed[0].1.text().is_err(), "{:?} became {:?}", value, parsed[0].1),
        }
    }

    #[test]
    fn bracket_keys_round_trip(base in "\\PC{1,12}", index in any::<usize>(), key in "\\PC{0,16}") {
        let (append, indexed) = (format!("{base}[]"), format!("{base}[{index}]"));
        prop_assert_eq!(urlencoded::key_shape(&append), KeyShape::Append(&base));
        prop_assert_eq!(urlencoded::key_shape(&indexed), KeyShape::Indexed(&base, index));
        // Whatever it is, a key is classified by its own text.
        match urlencoded::key_shape(&key) {
            KeyShape::Plain(k) => prop_assert_eq!(k, key.as_str()),
            KeyShape::Append(b) => prop_assert_eq!(format!("{b}[]"), key.clone()),
            KeyShape::Indexed(b, _) => prop_assert!(key.starts_with(b) && key.ends_with(']')),
        }
    }

    #[test]
    fn bracket_indices_without_holes_pass(
        order in (1usize..24).prop_flat_map(|n| Just((0..n).collect::<Vec<_>>()).prop_shuffle()),
        hole in any::<prop::sample::Index>(),
    ) {
        let keys: Vec<String> = order.iter().map(|i| format!("items[{i}]")).collect();
        prop_assert_eq!(urlencoded::check_indices(keys.iter().map(String::as_str)), Ok(()));
        // Without one index below the largest, there is a hole.
        let n = order.len();
        if n >= 2 {
            let missing = hole.index(n - 1);
            let holed = keys.iter().filter(|k| **k != format!("items[{missing}]"));
            prop_assert!(urlencoded::check_indices(holed.map(String::as_str)).is_err());
        }
    }
}

/// A type list for a parameter schema.
fn type_names() -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::subsequence(
        vec![
            "string", "integer", "number", "boolean", "null", "array", "object",
        ],
        0..4,
    )
}

/// The scalar types of a `{"type": [...]}` schema.
fn types_of(names: &[&str]) -> Types {
    let schema = json!({ "type": names });
    match coerce::plan_for(&schema, &schema) {
        Plan::Scalar(types) => types,
        Plan::Array { items, .. } => items,
    }
}

/// Schemas built from the keywords coercion reads, nested and self-referencing.
fn schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        type_names().prop_map(|names| json!({ "type": names })),
        Just(json!({ "$ref": "#" })),
        Just(json!({ "$ref": "#/$defs/a" })),
        Just(json!({ "$ref": "#/nowhere" })),
        Just(json!({ "enum": [1, "a", null, true, 1.5, [], {}] })),
        Just(json!({ "const": 7 })),
        Just(json!({ "separator": "|", "style": "form", "explode": false })),
        Just(json!(true)),
        Just(json!("type")),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|subs| json!({ "anyOf": subs })),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|subs| json!({ "oneOf": subs })),
            inner
                .clone()
                .prop_map(|items| json!({ "type": "array", "items": items })),
            (inner.clone(), inner).prop_map(|(a, s)| json!({ "$defs": { "a": a }, "allOf": [s] })),
        ]
    })
}

proptest! {
    #![proptest_config(fixed(512))]

    /// Any text, any declared types: an answer (value or pydantic failure), no panic, and a
    /// value no larger than the text it came from (as JSON: escapes at most 6 bytes each).
    #[test]
    fn coercion_never_panics_and_is_bounded(raw in "\\PC{0,64}|[-+ 0-9.eE]{0,32}", names in type_names()) {
        let types = types_of(&names);
        if let Ok(value) = coerce::coerce(&raw, types) {
            let size = value.to_string().len();
            prop_assert!(size <= 6 * raw.len() + 8, "{raw:?} became {size} bytes");
        }
    }

    /// Integers arrive exactly, whatever their size or sign, zeros and blanks around them.
    #[test]
    fn integers_are_exact(
        sign in prop::sample::select(vec!["", "+", "-"]),
        zeros in "0{0,3}",
        digits in "[1-9][0-9]{0,80}",
        blanks in " {0,2}",
        point_zeros in prop::option::of("0{1,3}"),
    ) {
        let fraction = point_zeros.map_or(String::new(), |z| format!(".{z}"));
        let text = format!("{blanks}{sign}{zeros}{digits}{fraction}{blanks}");
        let expected = format!("{}{digits}", if sign == "-" { "-" } else { "" });
        match coerce::coerce(&text, Types::INTEGER) {
            Ok(Value::Number(n)) => prop_assert_eq!(n.to_string(), expected.clone(), "from {:?}", text),
            other => prop_assert!(false, "{:?} gave {:?}", text, other),
        }
        prop_assert_eq!(coerce::parse_int(&text).map(|n| n.to_string()), Some(expected));
    }

    #[test]
    fn numbers_round_trip(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        for text in [format!("{x}"), format!("{x:e}"), format!("{x:E}")] {
            let n = coerce::parse_number(&text);
            prop_assert_eq!(n.as_ref().and_then(serde_json::Number::as_f64), Some(x), "from {}", text);
        }
    }

    #[test]
    fn booleans_read_pydantic_words(
        word in prop::sample::select(vec![
            ("true", true), ("1", true), ("yes", true), ("on", true), ("t", true), ("y", true),
            ("false", false), ("0", false), ("no", false), ("off", false), ("f", false), ("n", false),
        ]),
        upper in prop::collection::vec(any::<bool>(), 5),
        blanks in " {0,2}",
    ) {
        let cased: String = word
            .0
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        prop_assert_eq!(coerce::parse_bool(&format!("{blanks}{cased}{blanks}")), Some(word.1));
    }

    #[test]
    fn separated_items_round_trip(raw in "\\PC{1,40}", separator in prop::sample::select(vec![",", "|", " ", "::"])) {
        let items: Vec<&str> = coerce::split_items(&raw, Some(separator)).collect();
        prop_assert!(items.len() <= raw.len() + 1);
        prop_assert_eq!(items.join(separator), raw.clone());
        prop_assert_eq!(coerce::split_items(&raw, None).collect::<Vec<_>>(), vec![raw.as_str()]);
    }

    /// Plans come from any schema, including self-referencing ones, without looping.
    #[test]
    fn plans_of_any_schema(schema in schema()) {
        let _ = coerce::plan_for(&schema, &schema);
        if let Some(object) = schema.as_object() {
            for sub in object.values() {
                let _ = coerce::plan_for(sub, &schema);
            }
        }
    }
}
