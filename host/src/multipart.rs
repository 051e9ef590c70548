//! `multipart/form-data` (RFC 7578) over a body that is already in memory.
//!
//! The server reads every body within its route's limit before parsing, so the parser works
//! on one byte slice: part contents are borrowed, never copied, and the whole body is scanned
//! once. Anything malformed is an `Err` with a reason for the client (a 400), never a panic.

use std::borrow::Cow;

use memchr::memmem;

use serde_json::{Map, Value};

use crate::media_type::MediaType;

/// Longest boundary accepted. RFC 2046 allows 70 characters; real clients stay well under,
/// the slack only avoids refusing an odd one.
const MAX_BOUNDARY: usize = 200;

/// One part of a form: a text field, or a file when it has a `filename`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename` (or decoded `filename*`); present, even empty, for a file upload.
    pub filename: Option<String>,
    /// Its `Content-Type` as sent.
    pub content_type: Option<String>,
    /// Every header of the part in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The content.
    pub body: &'a [u8],
}

/// RFC 7578 §4.4: a part without `Content-Type` is `text/plain`.
pub const DEFAULT_MEDIA_TYPE: &str = "text/plain";

impl Part<'_> {
    /// The media type that applies: the `Content-Type` essence, lower-cased, or `text/plain`.
    pub fn media_type(&self) -> Cow<'_, str> {
        match &self.content_type {
            None => Cow::Borrowed(DEFAULT_MEDIA_TYPE),
            Some(value) => {
                let essence = value.split(';').next().unwrap_or_default().trim();
                if essence.is_empty() {
                    Cow::Borrowed(DEFAULT_MEDIA_TYPE)
                } else if essence.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(essence.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(essence)
                }
            }
        }
    }

    /// An uploaded file as plugins receive it: `filename`, `content_type`, `size` and
    /// `content` (UTF-8 text, or base64 with `"content_encoding": "base64"` when the bytes are
    /// not UTF-8), plus `headers` (`[[name, value], ...]`) when the part carries headers
    /// beyond `Content-Disposition` and `Content-Type`.
    pub fn file_json(&self) -> Value {
        let mut file = Map::new();
        file.insert(
            "filename".into(),
            self.filename.clone().map_or(Value::Null, Value::String),
        );
        file.insert(
            "content_type".into(),
            Value::String(self.media_type().into_owned()),
        );
        file.insert("size".into(), Value::from(self.body.len()));
        match std::str::from_utf8(self.body) {
            Ok(text) => {
                file.insert("content".into(), Value::String(text.to_owned()));
            }
            Err(_) => {
                file.insert("content".into(), Value::String(base64(self.body)));
                file.insert("content_encoding".into(), Value::from("base64"));
            }
        }
        let extra = self
            .headers
            .iter()
            .any(|(name, _)| name != "content-disposition" && name != "content-type");
        if extra {
            let headers = self
                .headers
                .iter()
                .map(|(n, v)| Value::Array(vec![Value::from(n.as_str()), Value::from(v.as_str())]))
                .collect();
            file.insert("headers".into(), Value::Array(headers));
        }
        Value::Object(file)
    }
}

/// The `boundary` parameter of a `multipart/*` content type, when present and usable.
pub fn boundary(media: &MediaType) -> Option<String> {
    let boundary = media.param("boundary")?;
    let usable = !boundary.is_empty()
        && boundary.len() <= MAX_BOUNDARY
        && boundary.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !boundary.ends_with(' ');
    usable.then(|| boundary.to_owned())
}

/// Splits a form body into its parts, in order; the preamble and epilogue are ignored.
///
/// `Err` says what is wrong, for a 400. The boundary must come from [`boundary`] (printable
/// ASCII, so it holds no CR and the delimiter search below stays linear).
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    // "\r\n--boundary": the delimiter before every part after the first, and before the end.
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary.as_bytes());
    let dash_boundary = &delimiter[2..];
    // One searcher for the whole body: linear time whatever the content.
    let delimiters = memmem::Finder::new(&delimiter);

    // `pos` is always at a "--boundary" line.
    let mut pos = if body.starts_with(dash_boundary) {
        0
    } else {
        delimiters
            .find(body)
            .ok_or("the body does not contain the boundary")?
            + 2
    };
    let mut parts = Vec::new();
    loop {
        pos += dash_boundary.len();
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts); // the close delimiter; what follows is the epilogue
        }
        // Transport padding, then the end of the boundary line.
        let padding = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if !rest[padding..].starts_with(b"\r\n") {
            return Err(format!(
                "part {}: the boundary line does not end with CRLF",
                parts.len() + 1
            ));
        }
        pos += padding + 2;
        let number = parts.len() + 1;
        // The delimiter cannot occur inside a part, so the part ends at the next one.
        let end = delimiters
            .find(&body[pos..])
            .map(|at| pos + at)
            .ok_or_else(|| format!("part {number} is not closed by the boundary"))?;
        let region = &body[pos..end];
        // Headers, a blank line, the content; without a blank line there is no content
        // (RFC 2046: `body-part := MIME-part-headers [CRLF *OCTET]`).
        let (head, content) = match find(region, b"\r\n\r\n") {
            _ if region.starts_with(b"\r\n") => (&region[..0], &region[2..]),
            Some(blank) => (&region[..blank], &region[blank + 4..]),
            None => (region.strip_suffix(b"\r\n").unwrap_or(region), &region[..0]),
        };
        parts.push(part(head, content, number)?);
        pos = end + 2;
    }
}

/// Builds a part from its header block and content.
fn part<'a>(head: &[u8], body: &'a [u8], number: usize) -> Result<Part<'a>, String> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in split_lines(head) {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            // Obsolete line folding: the line continues the previous value.
            let Some((_, value)) = headers.last_mut() else {
                return Err(format!("part {number}: a header starts with whitespace"));
            };
            value.push(' ');
            value.push_str(String::from_utf8_lossy(line).trim());
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| format!("part {number}: a header line has no ':'"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(format!("part {number}: a header name is not a token"));
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&line[colon + 1..])
            .trim()
            .to_owned();
        headers.push((name, value));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let disposition = header("content-disposition")
        .ok_or_else(|| format!("part {number} has no Content-Disposition header"))?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(format!(
            "part {number}: Content-Disposition is `{}`, not form-data",
            kind.trim()
        ));
    }
    let params = parameters(params);
    let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let name = param("name")
        .ok_or_else(|| format!("part {number}: Content-Disposition has no name"))?
        .clone();
    // RFC 6266: `filename*` (RFC 8187 encoding) wins over `filename`.
    let filename = param("filename*")
        .and_then(|v| decode_ext_value(v))
        .or_else(|| param("filename").cloned());
    let content_type = header("content-type").map(str::to_owned);
    Ok(Part {
        name,
        filename,
        content_type,
        headers,
        body,
    })
}

fn split_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(head);
    std::iter::from_fn(move || {
        let current = rest?;
        match find(current, b"\r\n") {
            Some(i) => {
                rest = Some(&current[i + 2..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
    .filter(|line| !line.is_empty())
}

/// RFC 9110 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `; key=value; key="quoted value"` → `(lower-case key, value)` pairs. A quoted value ends at
/// its closing quote; `\"` and `\\` are escapes, any other backslash is kept (old browsers
/// send Windows paths as filenames). Lenient: a missing closing quote takes the rest.
fn parameters(text: &str) -> Vec<(String, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b';' || bytes[i].is_ascii_whitespace()) {
            i += 1;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b';' {
            i += 1;
        }
        let key = text[key_start..i].trim().to_ascii_lowercase();
        if i >= bytes.len() || bytes[i] == b';' {
            if !key.is_empty() {
                out.push((key, String::new()));
            }
            continue;
        }
        i += 1; // '='
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let mut value = Vec::new();
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' && matches!(bytes.get(i + 1), Some(b'"' | b'\\')) {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
            i += 1; // the closing quote (or past the end)
            while i < bytes.len() && bytes[i] != b';' {
                i += 1;
            }
            String::from_utf8_lossy(&value).into_owned()
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b';' {
                i += 1;
            }
            text[start..i].trim().to_owned()
        };
        if !key.is_empty() {
            out.push((key, value));
        }
    }
    out
}

/// An RFC 8187 `ext-value` (`UTF-8''na%C3%AFve.txt`); `None` when it is not one.
fn decode_ext_value(value: &str) -> Option<String> {
    let mut pieces = value.splitn(3, '\'');
    let charset = pieces.next()?;
    let _language = pieces.next()?;
    let encoded = pieces.next()?.as_bytes();
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        match (encoded[i], hex(encoded.get(i + 1)), hex(encoded.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                bytes.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&b| b as char).collect())
    } else {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The first `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memmem::find(hay, needle)
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CT: &str = "multipart/form-data; boundary=XyZ";

    fn form(parts: &[&str]) -> Vec<u8> {
        let mut body = Vec::new();
        for part in parts {
            body.extend_from_slice(b"--XyZ\r\n");
            body.extend_from_slice(part.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body
    }

    /// The boundary of a `Content-Type` value; `None` also when the value is no media type.
    fn boundary(content_type: &str) -> Option<String> {
        MediaType::parse(content_type)
            .ok()
            .and_then(|media| super::boundary(&media))
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary(CT).as_deref(), Some("XyZ"));
        assert_eq!(
            boundary("multipart/form-data; charset=utf-8; BOUNDARY=\"a b;c\"").as_deref(),
            Some("a b;c")
        );
        assert_eq!(
            boundary("multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxk").as_deref(),
            Some("----WebKitFormBoundary7MA4YWxk")
        );
        for bad in [
            "multipart/form-data",
            "multipart/form-data;",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; boundary=\"ends with space \"",
            "multipart/form-data; charset=utf-8",
        ] {
            assert_eq!(boundary(bad), None, "{bad}");
        }
        let long = format!("multipart/form-data; boundary={}", "a".repeat(201));
        assert_eq!(boundary(&long), None);
    }

    #[test]
    fn fields_and_files() {
        let body = form(&[
            "Content-Disposition: form-data; name=\"username\"\r\n\r\njohn",
            "content-disposition: form-data; name=\"avatar\"; filename=\"me.png\"\r\nContent-Type: image/png\r\n\r\n\u{89}PNG",
            "Content-Disposition: form-data; name=\"empty\"\r\n\r\n",
            "Content-Disposition: form-data; name=\"multi\"\r\n\r\nline 1\r\nline 2",
        ]);
        let parts = parse(&body, "XyZ").unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].name, "username");
        assert_eq!(parts[0].body, b"john");
        assert_eq!(parts[0].filename, None);
        assert_eq!(parts[0].media_type(), "text/plain");
        assert_eq!(parts[1].filename.as_deref(), Some("me.png"));
        assert_eq!(parts[1].content_type.as_deref(), Some("image/png"));
        assert_eq!(parts[1].body, "\u{89}PNG".as_bytes());
        assert_eq!(parts[2].body, b"");
        assert_eq!(parts[3].body, b"line 1\r\nline 2");
    }

    #[test]
    fn preamble_epilogue_padding_and_binary() {
        let mut body = b"preamble\r\n--XyZ  \r\nContent-Disposition: form-data; name=\"f\"; filename=\"b.bin\"\r\n\r\n".to_vec();
        body.extend_from_slice(&[0, 255, 13, 10, 45, 45, 88]); // "\0\xff\r\n--X": almost a delimiter
        body.extend_from_slice(b"\r\n--XyZ--\r\nepilogue --XyZ garbage");
        let parts = parse(&body, "XyZ").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body, &[0, 255, 13, 10, 45, 45, 88]);
        let file = parts[0].file_json();
        assert_eq!(file["content_encoding"], "base64");
        assert_eq!(file["content"], "AP8NCi0tWA==");
        assert_eq!(file["size"], 7);
    }

    #[test]
    fn a_part_without_a_blank_line_has_no_content() {
        let parts = parse(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n\r\n--XyZ--",
            "XyZ",
        )
        .unwrap();
        assert_eq!((parts[0].name.as_str(), parts[0].body), ("a", &b""[..]));
        assert_eq!((parts[1].name.as_str(), parts[1].body), ("b", &b""[..]));
    }

    #[test]
    fn empty_form() {
        assert_eq!(parse(b"--XyZ--\r\n", "XyZ").unwrap(), vec![]);
        assert_eq!(parse(b"--XyZ--", "XyZ").unwrap(), vec![]);
    }

    #[test]
    fn disposition_parameters() {
        let body = form(&[
            "Content-Disposition: form-data; name=\"a \\\"q\\\"\"; filename=\"C:\\dir\\x.txt\"\r\nX-Custom: f2\r\n\r\n1",
            "Content-Disposition: form-data; name=b; filename=\"fallback.txt\"; filename*=UTF-8''na%C3%AFve.txt\r\n\r\n2",
            "Content-Disposition: form-data;\r\n name=\"folded\"\r\n\r\n3",
        ]);
        let parts = parse(&body, "XyZ").unwrap();
        assert_eq!(parts[0].name, "a \"q\"");
        assert_eq!(parts[0].filename.as_deref(), Some("C:\\dir\\x.txt"));
        assert_eq!(parts[1].name, "b");
        assert_eq!(parts[1].filename.as_deref(), Some("naïve.txt"));
        assert_eq!(parts[2].name, "folded");
        let file = parts[0].file_json();
        assert_eq!(file["content"], "1");
        assert_eq!(
            file["headers"],
            json!([
                [
                    "content-disposition",
                    "form-data; name=\"a \\\"q\\\"\"; filename=\"C:\\dir\\x.txt\""
                ],
                ["x-custom", "f2"]
            ])
        );
        assert!(parts[1].file_json().get("headers").is_none());
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"no boundary here",
            b"--XyZ",
            b"--XyZ\r\n",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunclosed",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ",
            b"--XyZjunk\r\n\r\n\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"",
            b"--XyZ\r\n\r\nno headers\r\n--XyZ--",
            b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--",
            b"--XyZ\r\nno colon\r\n\r\nx\r\n--XyZ--",
            b"--XyZ\r\n bad fold\r\n\r\nx\r\n--XyZ--",
            b"--XyZ\r\nBad Name: x\r\n\r\nx\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--XyZ--",
        ];
        for (i, body) in cases.iter().enumerate() {
            let result = parse(body, "XyZ");
            // The unterminated quote is accepted leniently (it takes the rest of the value).
            if i == cases.len() - 1 {
                assert!(result.is_ok(), "{result:?}");
            } else {
                assert!(result.is_err(), "case {i}: {result:?}");
            }
        }
        // Arbitrary bytes, truncations of a valid body, and a boundary-like flood.
        let valid =
            form(&["Content-Disposition: form-data; name=\"a\"; filename=\"x\"\r\n\r\nabc"]);
        for end in 0..valid.len() {
            let _ = parse(&valid[..end], "XyZ");
        }
        let mut seed = 0x2545_f491_u32;
        for _ in 0..2000 {
            let noise: Vec<u8> = (0..64)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    b"-\r\nXyZ:=;\"a "[(seed % 12) as usize]
                })
                .collect();
            let _ = parse(&noise, "XyZ");
        }
        let flood = b"\r\n--XyZ".repeat(10_000);
        assert!(parse(&flood[2..], "XyZ").is_err());
    }

    #[test]
    fn near_miss_delimiters_stay_content() {
        // Content full of "\r\n--a" (a prefix of the delimiter "\r\n--ab") is content.
        let near_misses = b"\r\n--a".repeat(50_000);
        let mut body = b"--ab\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n".to_vec();
        body.extend_from_slice(&near_misses);
        body.extend_from_slice(b"\r\n--ab--\r\n");
        let parts = parse(&body, "ab").unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body, &near_misses[..]);
        assert_eq!(find(b"x\r\n--a\r\n--ab", b"\r\n--ab"), Some(6));
        assert_eq!(find(b"\r\n-", b"\r\n--ab"), None);
    }

    #[test]
    fn base64_encodes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }
}
