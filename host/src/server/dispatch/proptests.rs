//! Property tests of the JSON-depth scan that runs before the JSON parser (see
//! `crate::proptests` for the conventions): on any JSON text it must count nesting exactly
//! as the parser does, and so refuse what the parser would and nothing else.

use proptest::prelude::*;
use serde_json::Value;

use super::json_too_deep;
use crate::config::MAX_JSON_DEPTH;
use crate::proptests::fixed;

/// JSON values whose strings hold brackets, quotes and backslashes, the scan's traps.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[\\[\\]{}\"\\\\a-z:, ]{0,8}".prop_map(Value::String),
        "\\PC{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(12, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[\\[\\]{}\"\\\\a-z]{0,6}", inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Nesting of arrays and objects: `{}` and `[]` are 1, scalars 0.
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `value` inside `levels` arrays or single-key objects, chosen by `kinds`.
fn wrap(value: &Value, levels: usize, kinds: &[bool]) -> String {
    let mut text = value.to_string();
    for level in 0..levels {
        text = if kinds[level % kinds.len()] {
            format!("[{text}]")
        } else {
            format!("{{\"k\\\"[\":{text}}}")
        };
    }
    text
}

proptest! {
    #![proptest_config(fixed(512))]

    #[test]
    fn scan_of_arbitrary_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..512), max in 0usize..8) {
        // Deeper limits refuse less.
        if json_too_deep(&body, max + 1) {
            prop_assert!(json_too_deep(&body, max));
        }
    }

    #[test]
    fn scan_counts_depth_exactly(value in value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&value).expect("serialisable")
        } else {
            value.to_string()
        };
        let depth = depth(&value);
        for max in 0..=depth + 1 {
            prop_assert_eq!(json_too_deep(text.as_bytes(), max), depth > max, "max {} on {}", max, text);
        }
    }

    /// At the hard limit the scan and serde_json agree: the scan refuses exactly what the
    /// parser cannot parse, so no body reaches the parser's recursion limit.
    #[test]
    fn scan_agrees_with_the_parser(
        value in value(),
        extra in 110usize..140,
        kinds in prop::collection::vec(any::<bool>(), 1..8),
    ) {
        let levels = extra.saturating_sub(depth(&value));
        let text = wrap(&value, levels, &kinds);
        let refused = json_too_deep(text.as_bytes(), MAX_JSON_DEPTH);
        let unparsable = serde_json::from_str::<Value>(&text).is_err();
        prop_assert_eq!(refused, unparsable, "depth {}", depth(&value) + levels);
    }
}
