//! Rules for uploaded files, checked by the host on each multipart part (or form value) of a
//! *file field*: a body property whose schema, or whose `items` schema, has
//! `"format": "binary"`, a `contentMediaType` or `x-magic-numbers`.
//!
//! - `contentMediaType`: the media types accepted, one or a comma-separated list (as in an
//!   OpenAPI Encoding Object), `image/*` and `*/*` wildcards allowed. A part without a
//!   `Content-Type` is `text/plain` (RFC 7578), and so is a urlencoded value.
//! - `minLength` / `maxLength`: the size in bytes (OpenAPI: a binary string's length is its
//!   number of octets).
//! - `x-magic-numbers: true`: the content must not be empty and its leading bytes must agree
//!   with its declared media type (a JPEG sent as `image/png` is refused).
//!
//! Those keywords are taken out of the schema that validates forms, so the size is counted
//! in bytes exactly once; JSON bodies are still validated against the schema as written.
//! Failures are `validation_error`s at `["files", field]` (`["files", field, i]` in a list).

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::{bounds, FieldError, FieldErrors};

/// The keywords the host enforces itself on file fields.
const FILE_KEYWORDS: [&str; 4] = [
    "contentMediaType",
    "minLength",
    "maxLength",
    "x-magic-numbers",
];

/// What one file field accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileRules {
    /// `contentMediaType` entries as written; empty: any.
    media_types: Vec<String>,
    min_bytes: Option<u64>,
    max_bytes: Option<u64>,
    magic: bool,
}

/// One value a file rule looks at.
pub(crate) struct Upload<'v> {
    pub filename: Option<&'v str>,
    /// Lower-case media type essence.
    pub media_type: Cow<'v, str>,
    pub bytes: &'v [u8],
}

/// File rules by property name.
pub(crate) type RulesByField = Vec<(String, FileRules)>;

/// Takes the file rules out of a body schema: the schema for form validation (`None` when
/// nothing was taken out) and the rules by property name.
pub(crate) fn split_rules(schema: &Value) -> Result<(Option<Value>, RulesByField), String> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Ok((None, Vec::new()));
    };
    let mut stripped = schema.clone();
    let mut rules = Vec::new();
    for (name, sub) in properties {
        let target = if is_file_schema(sub) {
            Some(format!("/properties/{}", escape(name)))
        } else if sub.get("items").is_some_and(is_file_schema) {
            Some(format!("/properties/{}/items", escape(name)))
        } else {
            None
        };
        let Some(pointer) = target else { continue };
        let Some(Value::Object(file_schema)) = stripped.pointer_mut(&pointer) else {
            continue;
        };
        rules.push((name.clone(), rules_of(file_schema, name)?));
        for keyword in FILE_KEYWORDS {
            file_schema.remove(keyword);
        }
    }
    Ok(((!rules.is_empty()).then_some(stripped), rules))
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn is_file_schema(schema: &Value) -> bool {
    schema.get("format").and_then(Value::as_str) == Some("binary")
        || schema.get("contentMediaType").is_some()
        || schema.get("x-magic-numbers").is_some()
}

fn rules_of(schema: &Map<String, Value>, name: &str) -> Result<FileRules, String> {
    let media_types = match schema.get("contentMediaType") {
        None => Vec::new(),
        Some(Value::String(list)) => list
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        Some(_) => {
            return Err(format!(
                "property `{name}`: contentMediaType must be a string such as \"image/png, image/jpeg\""
            ))
        }
    };
    let size = |keyword: &str| match schema.get(keyword) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            format!("property `{name}`: {keyword} must be a non-negative integer (bytes)")
        }),
    };
    let magic = match schema.get("x-magic-numbers") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(format!(
                "property `{name}`: x-magic-numbers must be true or false"
            ))
        }
    };
    Ok(FileRules {
        media_types,
        min_bytes: size("minLength")?,
        max_bytes: size("maxLength")?,
        magic,
    })
}

impl FileRules {
    /// Appends an error for each rule `upload` breaks.
    pub(crate) fn check(
        &self,
        upload: &Upload<'_>,
        field: &str,
        index: Option<usize>,
        out: &mut FieldErrors,
    ) {
        let size = upload.bytes.len() as u64;
        // What messages quote: a part's headers are the client's, of any length.
        let media_type = bounds::bounded_text(&upload.media_type, bounds::MAX_SEGMENT_BYTES);
        let filename = upload
            .filename
            .map(|name| bounds::bounded_text(name, bounds::MAX_TEXT_BYTES));
        let mut push = |msg: String, ctx: Value| {
            out.push_with(|| {
                let mut loc = vec![Value::from("files"), Value::from(field)];
                loc.extend(index.map(Value::from));
                FieldError {
                    kind: "validation_error".to_owned(),
                    loc,
                    msg,
                    input: json!({
                        "filename": filename,
                        "content_type": media_type,
                        "size": size,
                    }),
                    ctx: Some(ctx),
                }
            });
        };
        if !self.media_types.is_empty()
            && !self
                .media_types
                .iter()
                .any(|allowed| media_type_matches(allowed, &upload.media_type))
        {
            push(
                format!(
                    "Invalid content type '{media_type}'. Allowed types: {}",
                    self.media_types.join(", ")
                ),
                json!({"allowed_types": self.media_types, "provided_type": media_type}),
            );
        }
        if let Some(max) = self.max_bytes.filter(|max| size > *max) {
            push(
                format!("File too large. Maximum size is {max} bytes"),
                json!({"max_size": max, "file_size": size}),
            );
        }
        if let Some(min) = self.min_bytes.filter(|min| size < *min) {
            push(
                format!("File too small. Minimum size is {min} bytes"),
                json!({"min_size": min, "file_size": size}),
            );
        }
        if self.magic {
            if upload.bytes.is_empty() {
                push("File buffer is empty".to_owned(), json!({"buffer_size": 0}));
            } else if let Err((msg, detected)) = check_magic(&media_type, upload.bytes) {
                let shown = &upload.bytes[..upload.bytes.len().min(8)];
                let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
                push(
                    msg,
                    json!({"declared_mime": media_type, "detected_type": detected, "magic_bytes": hex}),
                );
            }
        }
    }
}

/// `allowed` (`image/png`, `image/*`, `*/*`) against a lower-case essence.
fn media_type_matches(allowed: &str, actual: &str) -> bool {
    let allowed = allowed.split(';').next().unwrap_or_default().trim();
    if allowed == "*/*" || allowed == "*" {
        return true;
    }
    match allowed.strip_suffix("/*") {
        Some(kind) => actual
            .split_once('/')
            .is_some_and(|(k, _)| k.eq_ignore_ascii_case(kind)),
        None => allowed.eq_ignore_ascii_case(actual),
    }
}

/// File signatures (leading bytes) of common types.
const SIGNATURES: &[(&str, &[u8])] = &[
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/gif", b"GIF87a"),
    ("image/gif", b"GIF89a"),
    ("image/webp", b"RIFF"), // and "WEBP" at offset 8, checked below
    ("image/tiff", b"II*\x00"),
    ("image/tiff", b"MM\x00*"),
    ("application/pdf", b"%PDF"),
    ("application/zip", b"PK\x03\x04"),
    ("application/gzip", b"\x1f\x8b"),
    ("application/x-rar-compressed", b"Rar!\x1a\x07"),
    ("application/x-7z-compressed", b"7z\xbc\xaf\x27\x1c"),
];

/// Alternative names of the types above.
fn canonical(media_type: &str) -> &str {
    match media_type {
        "image/jpg" | "image/pjpeg" => "image/jpeg",
        "application/x-pdf" => "application/pdf",
        "application/x-zip-compressed" | "application/x-zip" => "application/zip",
        "application/x-gzip" => "application/gzip",
        "application/vnd.rar" => "application/x-rar-compressed",
        other => other,
    }
}

/// Containers that are zip files inside (office documents, jars, epubs, ...).
fn is_zip_based(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.openxmlformats-officedocument.")
        || media_type.starts_with("application/vnd.oasis.opendocument.")
        || matches!(
            media_type,
            "application/java-archive"
                | "application/epub+zip"
                | "application/vnd.android.package-archive"
        )
}

fn detect(bytes: &[u8]) -> Option<&'static str> {
    SIGNATURES
        .iter()
        .find(|(media_type, signature)| {
            bytes.starts_with(signature)
                && (*media_type != "image/webp" || bytes.get(8..12) == Some(b"WEBP"))
        })
        .map(|(media_type, _)| *media_type)
}

/// Whether non-empty `bytes` agree with `declared`: a recognised signature must be the
/// declared type's (`application/octet-stream` accepts any), and a declared type whose
/// signature is known must have it. `Err` holds the message and the detected type.
fn check_magic(declared: &str, bytes: &[u8]) -> Result<(), (String, Option<&'static str>)> {
    let declared_canonical = canonical(declared);
    let expects_signature = SIGNATURES.iter().any(|(t, _)| *t == declared_canonical);
    match detect(bytes) {
        Some(detected) => {
            let agrees = detected == declared_canonical
                || declared_canonical == "application/octet-stream"
                || (detected == "application/zip" && is_zip_based(declared_canonical));
            if agrees {
                Ok(())
            } else {
                Err((
                    format!("File type mismatch: MIME type is {declared} but magic numbers indicate {detected}"),
                    Some(detected),
                ))
            }
        }
        None if expects_signature => Err((
            format!("File type mismatch: MIME type is {declared} but the content does not start with its magic numbers"),
            None,
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload<'a>(media_type: &'a str, bytes: &'a [u8]) -> Upload<'a> {
        Upload {
            filename: Some("f"),
            media_type: Cow::Borrowed(media_type),
            bytes,
        }
    }

    fn errors(rules: &FileRules, upload: &Upload<'_>) -> Vec<(String, Value)> {
        let mut out = FieldErrors::new(100);
        rules.check(upload, "file", None, &mut out);
        out.into_parts()
            .0
            .into_iter()
            .map(|e| (e.msg, e.ctx.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn rules_are_taken_out_of_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "doc": {"type": "string", "format": "binary", "maxLength": 10, "contentMediaType": "application/pdf, image/*"},
                "pics": {"type": "array", "maxItems": 3, "items": {"type": "string", "contentMediaType": "image/png", "x-magic-numbers": true}},
                "note": {"type": "string", "maxLength": 5},
            }
        });
        let (stripped, rules) = split_rules(&schema).unwrap();
        let stripped = stripped.unwrap();
        assert_eq!(
            stripped["properties"]["doc"],
            json!({"type": "string", "format": "binary"})
        );
        assert_eq!(
            stripped["properties"]["pics"],
            json!({"type": "array", "maxItems": 3, "items": {"type": "string"}})
        );
        assert_eq!(stripped["properties"]["note"], schema["properties"]["note"]);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].0, "doc");
        assert_eq!(rules[0].1.media_types, ["application/pdf", "image/*"]);
        assert_eq!(rules[0].1.max_bytes, Some(10));
        assert!(rules[1].1.magic);
        assert_eq!(
            split_rules(&json!({"type": "object"})).unwrap(),
            (None, vec![])
        );
        let bad = json!({"properties": {"f": {"format": "binary", "x-magic-numbers": "yes"}}});
        assert!(split_rules(&bad).is_err());
        let bad = json!({"properties": {"f": {"format": "binary", "maxLength": -1}}});
        assert!(split_rules(&bad).is_err());
    }

    #[test]
    fn media_types_sizes_and_magic() {
        let rules = FileRules {
            media_types: vec!["image/jpeg".into(), "image/png".into(), "image/gif".into()],
            ..FileRules::default()
        };
        let errs = errors(&rules, &upload("application/x-sh", b"#!/bin/sh"));
        assert_eq!(
            errs[0].0,
            "Invalid content type 'application/x-sh'. Allowed types: image/jpeg, image/png, image/gif"
        );
        assert!(errors(&rules, &upload("image/png", b"x")).is_empty());
        let wildcard = FileRules {
            media_types: vec!["image/*".into()],
            ..FileRules::default()
        };
        assert!(errors(&wildcard, &upload("image/webp", b"")).is_empty());
        assert_eq!(errors(&wildcard, &upload("text/plain", b"")).len(), 1);

        let sized = FileRules {
            min_bytes: Some(2),
            max_bytes: Some(4),
            ..FileRules::default()
        };
        assert!(errors(&sized, &upload("text/plain", b"abcd")).is_empty());
        assert_eq!(
            errors(&sized, &upload("text/plain", b"abcde"))[0].0,
            "File too large. Maximum size is 4 bytes"
        );
        assert_eq!(
            errors(&sized, &upload("text/plain", b"a"))[0].0,
            "File too small. Minimum size is 2 bytes"
        );

        let magic = FileRules {
            magic: true,
            ..FileRules::default()
        };
        assert_eq!(
            errors(&magic, &upload("text/plain", b"")),
            vec![("File buffer is empty".to_owned(), json!({"buffer_size": 0}))]
        );
        assert!(errors(&magic, &upload("image/png", b"\x89PNG\r\n\x1a\n")).is_empty());
        assert!(errors(&magic, &upload("image/jpg", b"\xff\xd8\xff\xe0")).is_empty());
        assert!(errors(&magic, &upload("application/pdf", b"%PDF")).is_empty());
        assert!(errors(&magic, &upload("text/plain", b"hello")).is_empty());
        assert!(errors(&magic, &upload("application/octet-stream", b"\xff\xd8\xff")).is_empty());
        assert!(errors(
            &magic,
            &upload(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                b"PK\x03\x04rest"
            )
        )
        .is_empty());
        let spoofed = errors(&magic, &upload("image/png", b"\xff\xd8\xff\xe0"));
        assert_eq!(
            spoofed,
            vec![(
                "File type mismatch: MIME type is image/png but magic numbers indicate image/jpeg"
                    .to_owned(),
                json!({"declared_mime": "image/png", "detected_type": "image/jpeg", "magic_bytes": "ffd8ffe0"})
            )]
        );
        assert_eq!(errors(&magic, &upload("image/png", b"not a png")).len(), 1);
        assert_eq!(errors(&magic, &upload("text/plain", b"%PDF-1.7")).len(), 1);
        assert_eq!(
            errors(&magic, &upload("image/webp", b"RIFF0000WAVE")).len(),
            1
        );
        assert!(errors(&magic, &upload("image/webp", b"RIFF0000WEBPVP8")).is_empty());
    }

    #[test]
    fn errors_are_located_under_files() {
        let rules = FileRules {
            max_bytes: Some(0),
            ..FileRules::default()
        };
        let mut out = FieldErrors::new(100);
        rules.check(&upload("text/plain", b"x"), "docs", Some(1), &mut out);
        let (out, _) = out.into_parts();
        assert_eq!(out[0].kind, "validation_error");
        assert_eq!(out[0].loc, vec![json!("files"), json!("docs"), json!(1)]);
        assert_eq!(
            out[0].input,
            json!({"filename": "f", "content_type": "text/plain", "size": 1})
        );
    }
}
