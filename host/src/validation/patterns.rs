//! The regex engines behind `pattern` and `patternProperties`, chosen so that no request
//! value can make a pattern occupy a worker thread.
//!
//! Every schema is first compiled with the `regex` crate's engine, whose matching time is
//! linear in the length of the value. A schema with a pattern that engine cannot compile
//! (look-around, backreferences) is compiled with fancy-regex instead: its patterns without
//! those features are still handed to the linear engine, and the backtracking of the others
//! is cut off after [`BACKTRACK_LIMIT`] steps per match. A match cut off that decides the
//! outcome is reported by jsonschema as `BacktrackLimitExceeded`, which the host answers
//! with a 422 entry (see `errors::pattern_error`), never a 500 or a spinning thread.

use jsonschema::{PatternOptions, ValidationError, ValidationOptions, Validator};
use serde_json::Value;

/// Backtracking steps one fancy-regex match may take (fancy-regex's own default is a
/// million). Legitimate look-around and backreference patterns on values of a few KB take
/// far fewer; a catastrophic one stops here after well under a millisecond of work.
pub const BACKTRACK_LIMIT: usize = 10_000;

/// Which engine a built validator runs its patterns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The `regex` crate only: linear time.
    Linear,
    /// fancy-regex with [`BACKTRACK_LIMIT`]: some pattern needs look-around or backreferences.
    Backtracking,
}

/// Builds a validator for `schema` from the options `options` makes (called once per
/// engine tried), on the linear engine when every pattern allows it.
///
/// The error, when neither engine accepts the schema, is the backtracking build's: it
/// compiles every pattern the host ever accepted, so its message names the real mistake.
pub fn build<'a>(
    options: impl Fn() -> ValidationOptions<'a>,
    schema: &Value,
) -> Result<(Validator, Engine), ValidationError<'static>> {
    if let Ok(validator) = options()
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
    {
        return Ok((validator, Engine::Linear));
    }
    options()
        .with_pattern_options(PatternOptions::fancy_regex().backtrack_limit(BACKTRACK_LIMIT))
        .build(schema)
        .map(|validator| (validator, Engine::Backtracking))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn built(schema: &Value) -> (Validator, Engine) {
        build(jsonschema::options, schema).expect("schema compiles")
    }

    #[test]
    fn plain_patterns_use_the_linear_engine() {
        let (validator, engine) = built(&json!({"pattern": "^(a+)+$"}));
        assert_eq!(engine, Engine::Linear);
        assert!(validator.is_valid(&json!("aaaa")));
        // Exponential for a backtracking engine; immediate for this one.
        assert!(!validator.is_valid(&json!(format!("{}!", "a".repeat(5000)))));
    }

    #[test]
    fn look_around_falls_back_and_is_cut_off() {
        let (validator, engine) = built(&json!({"pattern": "^(a|a)+(?<!b)$"}));
        assert_eq!(engine, Engine::Backtracking);
        assert!(validator.is_valid(&json!("aaa")));
        assert!(!validator.is_valid(&json!("aab")));
        let hostile = json!(format!("{}!", "a".repeat(30)));
        let kinds: Vec<String> = validator
            .iter_errors(&hostile)
            .map(|e| format!("{:?}", e.kind()))
            .collect();
        assert_eq!(kinds.len(), 1, "{kinds:?}");
        assert!(kinds[0].starts_with("BacktrackLimitExceeded"), "{kinds:?}");
    }

    #[test]
    fn invalid_patterns_are_still_errors() {
        assert!(build(jsonschema::options, &json!({"pattern": "("})).is_err());
    }
}
