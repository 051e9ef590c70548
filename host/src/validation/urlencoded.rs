//! `application/x-www-form-urlencoded` parsing, shared by query strings and form bodies, and
//! [`Decoded`], the one shape of every parameter value: text, or bytes that are not UTF-8.
//!
//! Splitting on `&` and `=` is done here; each component's escapes are decoded by
//! `percent_encoding`. `form_urlencoded::parse` (same split, same decoding) is not used
//! because it replaces invalid UTF-8 with U+FFFD without saying so, and the host must answer
//! such bytes with a 422 (`string_unicode`) rather than pass altered text on. Values that
//! need no decoding are borrowed from the request, as most query strings are plain.

use percent_encoding::percent_decode;
use std::borrow::Cow;

/// A parameter value after percent-decoding (or as sent, for headers and cookies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// UTF-8 text, borrowed when nothing needed decoding.
    Text(Cow<'a, str>),
    /// Bytes that are not UTF-8, as text with U+FFFD in place of each bad sequence: only
    /// for the error report, never handed on.
    NotUtf8(String),
}

impl<'a> Decoded<'a> {
    /// Raw bytes as they are (a header or cookie value).
    pub fn from_bytes(bytes: &'a [u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Decoded::Text(Cow::Borrowed(text)),
            Err(_) => Decoded::NotUtf8(String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    /// Decoded bytes, borrowed from the request when nothing was decoded.
    pub(crate) fn from_cow(bytes: Cow<'a, [u8]>) -> Self {
        match bytes {
            Cow::Borrowed(bytes) => Self::from_bytes(bytes),
            Cow::Owned(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Decoded::Text(Cow::Owned(text)),
                Err(err) => Decoded::NotUtf8(String::from_utf8_lossy(err.as_bytes()).into_owned()),
            },
        }
    }

    /// A percent-encoded component where `+` is a plus (a path segment). Malformed escapes
    /// are kept as written.
    pub fn percent_decoded(raw: &'a str) -> Self {
        Self::from_cow(percent_decode(raw.as_bytes()).into())
    }

    /// A borrowed view, for handing the same value on without copying it.
    pub fn reborrow(&self) -> Decoded<'_> {
        match self {
            Decoded::Text(text) => Decoded::Text(Cow::Borrowed(text)),
            Decoded::NotUtf8(lossy) => Decoded::NotUtf8(lossy.clone()),
        }
    }

    /// The text, or `Err` with the lossy text of bytes that are not UTF-8.
    pub fn text(&self) -> Result<&str, &str> {
        match self {
            Decoded::Text(text) => Ok(text),
            Decoded::NotUtf8(lossy) => Err(lossy),
        }
    }
}

/// One decoded `key=value` pair. The key is lossy text; a pair whose key or value is not
/// UTF-8 has a [`Decoded::NotUtf8`] value, so it is reported under its (lossy) key.
pub(crate) type Pair<'a> = (Cow<'a, str>, Decoded<'a>);

/// Splits a raw query string or form body into decoded pairs, in request order.
///
/// `+` is a space, `%XX` is a byte, malformed escapes are kept literally; no input makes
/// parsing fail.
pub(crate) fn parse(raw: &[u8]) -> Vec<Pair<'_>> {
    raw.split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = match segment.iter().position(|&b| b == b'=') {
                Some(i) => (&segment[..i], &segment[i + 1..]),
                None => (segment, &segment[segment.len()..]),
            };
            match (decode(key), decode(value)) {
                (Decoded::Text(key), value) => (key, value),
                (Decoded::NotUtf8(key), value) => {
                    let lossy = match value {
                        Decoded::Text(text) => text.into_owned(),
                        Decoded::NotUtf8(lossy) => lossy,
                    };
                    (Cow::Owned(key), Decoded::NotUtf8(lossy))
                }
            }
        })
        .collect()
}

/// Plus- and percent-decodes one component, borrowing when nothing needs decoding.
fn decode(raw: &[u8]) -> Decoded<'_> {
    if !raw.contains(&b'+') {
        return Decoded::from_cow(percent_decode(raw).into());
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    Decoded::from_cow(Cow::Owned(percent_decode(&spaced).collect()))
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

    fn text(value: &str) -> Decoded<'_> {
        Decoded::Text(Cow::Borrowed(value))
    }

    #[test]
    fn decodes_plus_percent_and_borrows_plain() {
        let pairs = parse(b"a=hello+world&b=test%26value%3D123&c=plain&flag&=x&d=%2B1+%2b");
        assert_eq!(pairs[0], ("a".into(), text("hello world")));
        assert_eq!(pairs[1].1, text("test&value=123"));
        assert!(matches!(pairs[2].1, Decoded::Text(Cow::Borrowed("plain"))));
        assert!(matches!(pairs[2].0, Cow::Borrowed("c")));
        assert_eq!(pairs[3], ("flag".into(), text("")));
        assert_eq!(pairs[4], ("".into(), text("x")));
        assert_eq!(pairs[5].1, text("+1 +"));
        assert_eq!(parse(b"caf%C3%A9=%E2%82%AC")[0], ("café".into(), text("€")));
    }

    #[test]
    fn malformed_escapes_are_kept_and_bad_utf8_is_flagged() {
        let pairs = parse(b"a=%zz%4&b=%ff%fe&c=%&d=ok+%ff");
        assert_eq!(pairs[0].1, text("%zz%4"));
        assert_eq!(pairs[1].1, Decoded::NotUtf8("\u{fffd}\u{fffd}".into()));
        assert_eq!(pairs[2].1, text("%"));
        assert_eq!(pairs[3].1, Decoded::NotUtf8("ok \u{fffd}".into()));
        // A literal U+FFFD sent as UTF-8 is text like any other.
        assert_eq!(parse(b"e=%EF%BF%BD")[0].1, text("\u{fffd}"));
        // A bad key taints its pair, which is reported under the lossy key.
        assert_eq!(
            parse(b"%ff=1")[0],
            ("\u{fffd}".into(), Decoded::NotUtf8("1".into()))
        );
    }

    #[test]
    fn raw_bytes_and_path_segments() {
        assert_eq!(Decoded::from_bytes(b"plain"), text("plain"));
        assert_eq!(
            Decoded::from_bytes(b"caf\xe9"),
            Decoded::NotUtf8("caf\u{fffd}".into())
        );
        assert_eq!(Decoded::percent_decoded("a+b%20c"), text("a+b c"));
        assert_eq!(
            Decoded::percent_decoded("%ff"),
            Decoded::NotUtf8("\u{fffd}".into())
        );
        assert_eq!(Decoded::percent_decoded("%C3%A9").text(), Ok("é"));
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
