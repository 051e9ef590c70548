//! How much of a request an error response may repeat.
//!
//! A validation error quotes what the client sent (`input`), where it sent it (`loc`) and,
//! for some kinds, a message that embeds the value. Quoted whole, a 1 MB body with 15,000
//! unexpected fields became 15,000 copies of itself; here every quote is cut to a fixed
//! size, reading no more of the value than it keeps, so an error costs the same whatever
//! the request holds.

use serde_json::Value;
use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Longest string quoted in full, in bytes.
pub(crate) const MAX_TEXT_BYTES: usize = 1024;
/// Longest JSON text of an array or object quoted in full, in bytes.
pub(crate) const MAX_CONTAINER_BYTES: usize = 2048;
/// Longest `loc` segment (a property name) quoted in full, in bytes.
pub(crate) const MAX_SEGMENT_BYTES: usize = 256;
/// Longest message, in bytes (some jsonschema messages embed the failing value).
pub(crate) const MAX_MESSAGE_BYTES: usize = 2048;
/// Appended wherever something was cut.
pub(crate) const ELLIPSIS: &str = "…";

/// The `input` of an error, as a client sees it:
///
/// - `null` and booleans: as sent;
/// - a string of up to [`MAX_TEXT_BYTES`] bytes: as sent; a longer one: its first bytes (up to
///   that many, cut at a character boundary) followed by `…`;
/// - a number: as sent, unless its text is longer than [`MAX_TEXT_BYTES`] (exact integers
///   can have thousands of digits): then a string of its first digits followed by `…`;
/// - an array or object whose JSON text is at most [`MAX_CONTAINER_BYTES`] bytes: as sent; a
///   larger one becomes a *string*: the first bytes of its JSON text (cut at a character
///   boundary) followed by `…` — a preview that says what the value looked like, not a value
///   to parse.
///
/// Costs at most that many bytes of work, whatever the size of `value`.
pub(crate) fn bounded_input(value: &Value) -> Value {
    match value {
        Value::String(text) => bounded_string(text, MAX_TEXT_BYTES),
        Value::Number(_) => whole_or_preview(value, MAX_TEXT_BYTES),
        Value::Array(_) | Value::Object(_) => whole_or_preview(value, MAX_CONTAINER_BYTES),
        other => other.clone(),
    }
}

/// `value` when its JSON text fits in `limit` bytes, else a string of that text's first
/// bytes followed by `…`; reads no more of `value` than that.
fn whole_or_preview(value: &Value, limit: usize) -> Value {
    let mut preview = Limited::new(limit);
    if serde_json::to_writer(&mut preview, value).is_ok() {
        value.clone()
    } else {
        Value::String(preview.into_cut())
    }
}

/// `text` as a JSON string, cut to `limit` bytes plus `…` when longer.
pub(crate) fn bounded_string(text: &str, limit: usize) -> Value {
    Value::String(bounded_text(text, limit).into_owned())
}

/// `text`, or its first `limit` bytes (at a character boundary) followed by `…`.
pub(crate) fn bounded_text(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    let mut cut = String::with_capacity(limit + ELLIPSIS.len());
    cut.push_str(&text[..floor_char_boundary(text, limit)]);
    cut.push_str(ELLIPSIS);
    Cow::Owned(cut)
}

/// A `loc` segment: a property or parameter name, cut past [`MAX_SEGMENT_BYTES`].
pub(crate) fn bounded_segment(name: &str) -> Value {
    bounded_string(name, MAX_SEGMENT_BYTES)
}

/// `message` rendered, stopping (and ending in `…`) past [`MAX_MESSAGE_BYTES`]: rendering a
/// message that embeds a large value stops as soon as the limit is reached.
pub(crate) fn bounded_message(message: &impl fmt::Display) -> String {
    let mut text = Limited::new(MAX_MESSAGE_BYTES);
    if write!(text, "{message}").is_ok() {
        text.into_whole()
    } else {
        text.into_cut()
    }
}

/// The largest index `<= at` that is a character boundary of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A writer that keeps the first `limit` bytes and then fails, which stops whoever is
/// writing (serde_json's serializer, `write!`) instead of letting it finish.
struct Limited {
    buf: Vec<u8>,
    limit: usize,
}

impl Limited {
    fn new(limit: usize) -> Self {
        Limited {
            buf: Vec::new(),
            limit,
        }
    }

    /// Takes `bytes`; `false` (nothing more wanted) once the limit is passed.
    fn take(&mut self, bytes: &[u8]) -> bool {
        let room = self.limit - self.buf.len();
        if bytes.len() <= room {
            self.buf.extend_from_slice(bytes);
            true
        } else {
            self.buf.extend_from_slice(&bytes[..room]);
            false
        }
    }

    /// Everything written, when it all fit.
    fn into_whole(self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// What fit, cut at a character boundary, followed by `…`.
    fn into_cut(self) -> String {
        let end = match std::str::from_utf8(&self.buf) {
            Ok(_) => self.buf.len(),
            // Only the last character can be incomplete.
            Err(e) => e.valid_up_to(),
        };
        let mut text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        text.push_str(ELLIPSIS);
        text
    }
}

impl std::io::Write for Limited {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.take(bytes) {
            Ok(bytes.len())
        } else {
            Err(std::io::Error::other("preview limit reached"))
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Write for Limited {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if self.take(text.as_bytes()) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn small_values_are_kept() {
        for value in [
            json!(null),
            json!(true),
            json!(12.5),
            json!("short"),
            json!({"a": [1, 2, {"b": "c"}]}),
        ] {
            assert_eq!(bounded_input(&value), value);
        }
    }

    #[test]
    fn long_strings_are_cut_at_a_character_boundary() {
        let text = "é".repeat(MAX_TEXT_BYTES); // 2 bytes each
        let Value::String(cut) = bounded_input(&json!(text)) else {
            panic!("a string stays a string")
        };
        assert!(cut.ends_with(ELLIPSIS));
        assert_eq!(cut.len(), MAX_TEXT_BYTES + ELLIPSIS.len());
        assert!(cut.trim_end_matches(ELLIPSIS).chars().all(|c| c == 'é'));
        let exact = "x".repeat(MAX_TEXT_BYTES);
        assert_eq!(bounded_input(&json!(exact)), json!(exact));
    }

    #[test]
    fn large_containers_become_a_preview_of_their_json() {
        let object: serde_json::Map<String, Value> =
            (0..5000).map(|i| (format!("k{i}"), json!(i))).collect();
        let Value::String(preview) = bounded_input(&Value::Object(object)) else {
            panic!("a cut container is a string")
        };
        assert!(preview.starts_with(r#"{"k0":0,"k1":1,"#), "{preview}");
        assert!(preview.ends_with(ELLIPSIS));
        assert!(preview.len() <= MAX_CONTAINER_BYTES + ELLIPSIS.len());
        let multibyte = json!(["€".repeat(2000)]);
        let Value::String(preview) = bounded_input(&multibyte) else {
            panic!("a cut container is a string")
        };
        assert!(preview.len() <= MAX_CONTAINER_BYTES + ELLIPSIS.len());
    }

    #[test]
    fn huge_numbers_become_a_preview() {
        let digits = "7".repeat(4000);
        let number: Value = serde_json::from_str(&digits).expect("an integer");
        assert_eq!(
            bounded_input(&number),
            json!(format!("{}…", &digits[..MAX_TEXT_BYTES]))
        );
    }

    #[test]
    fn segments_and_messages_are_bounded() {
        let name = "n".repeat(100_000);
        let Value::String(segment) = bounded_segment(&name) else {
            panic!("a segment is a string")
        };
        assert_eq!(segment.len(), MAX_SEGMENT_BYTES + ELLIPSIS.len());
        assert_eq!(bounded_message(&"short message"), "short message");
        let long = bounded_message(&format_args!("{} is bad", "v".repeat(1 << 20)));
        assert_eq!(long.len(), MAX_MESSAGE_BYTES + ELLIPSIS.len());
    }
}
