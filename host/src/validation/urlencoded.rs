//! `application/x-www-form-urlencoded` parsing, shared by query strings and form bodies.
//!
//! Written by hand (rather than pulling `form_urlencoded`) so that values which need no
//! decoding are borrowed from the request instead of copied: most query strings are plain.

use std::borrow::Cow;

/// One decoded `key=value` pair; borrowed when the raw text needed no decoding.
pub(crate) type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Splits a raw query string or form body into decoded pairs, in request order.
///
/// `+` is a space, `%XX` is a byte, malformed escapes are kept literally and invalid UTF-8
/// is replaced (lossy) so that no input can make parsing fail.
pub(crate) fn parse(raw: &[u8]) -> Vec<Pair<'_>> {
    raw.split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = match segment.iter().position(|&b| b == b'=') {
                Some(i) => (&segment[..i], &segment[i + 1..]),
                None => (segment, &segment[segment.len()..]),
            };
            (decode(key), decode(value))
        })
        .collect()
}

/// Percent- and plus-decodes one component, borrowing when nothing needs decoding.
fn decode(raw: &[u8]) -> Cow<'_, str> {
    if !raw.iter().any(|&b| b == b'+' || b == b'%') {
        return String::from_utf8_lossy(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (raw.get(i + 1).and_then(hex), raw.get(i + 2).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(err) => Cow::Owned(String::from_utf8_lossy(err.as_bytes()).into_owned()),
    }
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

/// How a form/query key addresses a field: `tags`, `tags[]` (append) or `tags[2]` (indexed).
///
/// Browsers and PHP/Rails/qs-style clients send arrays with bracket suffixes; recognising them
/// lets a schema property `tags` receive every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyShape<'k> {
    /// The key as written.
    Plain(&'k str),
    /// `name[]`: one more element of array `name`.
    Append(&'k str),
    /// `name[i]`: element `i` of array `name`.
    Indexed(&'k str, usize),
}

/// Classifies a decoded key (see [`KeyShape`]).
pub(crate) fn key_shape(key: &str) -> KeyShape<'_> {
    let Some(inner) = key.strip_suffix(']') else {
        return KeyShape::Plain(key);
    };
    let Some(open) = inner.rfind('[') else {
        return KeyShape::Plain(key);
    };
    let (base, index) = (&inner[..open], &inner[open + 1..]);
    if base.is_empty() {
        return KeyShape::Plain(key);
    }
    if index.is_empty() {
        return KeyShape::Append(base);
    }
    if index.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = index.parse() {
            return KeyShape::Indexed(base, i);
        }
    }
    KeyShape::Plain(key)
}

/// Checks that indexed form keys (`items[0]`, `items[1]`, ...) leave no holes.
///
/// A sparse array cannot be represented faithfully, so the server should answer 400
/// `"Failed to parse URL-encoded form data: {message}"` when this returns `Err(message)`;
/// e.g. `items[0]=a&items[2]=b` gives `"missing index, expected: 1 got 2"`. Costs one byte
/// scan when the body has no brackets.
pub fn check_form_indices(body: &[u8]) -> Result<(), String> {
    let has_bracket = body.contains(&b'[')
        || body
            .windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'5' && (w[2] == b'B' || w[2] == b'b'));
    if !has_bracket {
        return Ok(());
    }
    let pairs = parse(body);
    check_indices(pairs.iter().map(|(key, _)| key.as_ref()))
}

/// Checks that indexed keys (`items[0]`, `items[1]`, ...) leave no holes; see
/// [`check_form_indices`]. For forms whose keys are already decoded (multipart).
pub fn check_indices<'k>(keys: impl Iterator<Item = &'k str>) -> Result<(), String> {
    let mut indexed: Vec<(&str, usize)> = keys
        .filter_map(|key| match key_shape(key) {
            KeyShape::Indexed(base, i) => Some((base, i)),
            _ => None,
        })
        .collect();
    indexed.sort_unstable();
    indexed.dedup();
    let mut expected = 0;
    let mut current: Option<&str> = None;
    for (base, index) in indexed {
        if current != Some(base) {
            current = Some(base);
            expected = 0;
        }
        if index != expected {
            return Err(format!("missing index, expected: {expected} got {index}"));
        }
        expected += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_percent_and_borrows_plain() {
        let pairs = parse(b"a=hello+world&b=test%26value%3D123&c=plain&flag&=x");
        assert_eq!(pairs[0], ("a".into(), "hello world".into()));
        assert_eq!(pairs[1].1, "test&value=123");
        assert!(matches!(pairs[2].1, Cow::Borrowed("plain")));
        assert_eq!(pairs[3], ("flag".into(), "".into()));
        assert_eq!(pairs[4], ("".into(), "x".into()));
    }

    #[test]
    fn malformed_escapes_and_bad_utf8_never_panic() {
        let pairs = parse(b"a=%zz%4&b=%ff%fe&c=%");
        assert_eq!(pairs[0].1, "%zz%4");
        assert_eq!(pairs[1].1, "\u{fffd}\u{fffd}");
        assert_eq!(pairs[2].1, "%");
    }

    #[test]
    fn key_shapes() {
        assert_eq!(key_shape("tags"), KeyShape::Plain("tags"));
        assert_eq!(key_shape("tags[]"), KeyShape::Append("tags"));
        assert_eq!(key_shape("tags[3]"), KeyShape::Indexed("tags", 3));
        assert_eq!(key_shape("user[name]"), KeyShape::Plain("user[name]"));
        assert_eq!(key_shape("[]"), KeyShape::Plain("[]"));
        assert_eq!(
            key_shape("a[99999999999999999999999]"),
            KeyShape::Plain("a[99999999999999999999999]")
        );
    }

    #[test]
    fn form_index_holes_are_reported() {
        assert_eq!(
            check_form_indices(b"items[0]=first&items[2]=third&items[5]=sixth"),
            Err("missing index, expected: 1 got 2".to_owned())
        );
        assert!(check_form_indices(b"items%5B1%5D=b&items%5B0%5D=a").is_ok());
        assert!(check_form_indices(b"tags[]=a&tags[]=b&x=1").is_ok());
    }
}
