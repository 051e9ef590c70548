//! The `Content-Type` of a request or a plugin's response, read one way everywhere.
//!
//! Parsing is the `mime` crate's (RFC 9110 media types: tokens, quoted parameter values that
//! may hold `;`), so the body parser, the multipart boundary and the response check agree on
//! what a header says. Type, subtype and parameter names compare case-insensitively.

use http::header::CONTENT_TYPE;
use http::HeaderMap;

/// A parsed media type: `essence` (`type/subtype`, lower-case) plus its parameters.
#[derive(Debug, Clone)]
pub struct MediaType(mime::Mime);

/// Why a `Content-Type` could not be read: the header is not a media type at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl MediaType {
    /// Parses one header value.
    pub fn parse(text: &str) -> Result<Self, Malformed> {
        text.trim()
            .parse::<mime::Mime>()
            .map(MediaType)
            .map_err(|e| Malformed(format!("`{text}` is not a media type ({e})")))
    }

    /// The `Content-Type` of `headers`: `None` when absent, `Err` when it is not a media type
    /// (including bytes that are not visible ASCII).
    pub fn of(headers: &HeaderMap) -> Option<Result<Self, Malformed>> {
        let value = headers.get(CONTENT_TYPE)?;
        Some(match value.to_str() {
            Ok(text) => Self::parse(text),
            Err(_) => Err(Malformed(
                "the Content-Type header holds bytes that are not visible ASCII".to_owned(),
            )),
        })
    }

    /// `type/subtype`, lower-case, without parameters.
    pub fn essence(&self) -> &str {
        self.0.essence_str()
    }

    /// A parameter's value (quotes removed), by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.0
            .params()
            .find(|(key, _)| key.as_str().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// `application/json` or any `application/*+json`.
    pub fn is_json(&self) -> bool {
        is_json_essence(self.essence())
    }
}

/// Whether a lower-case essence names JSON: `application/json` or `application/*+json`.
pub fn is_json_essence(essence: &str) -> bool {
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essence_is_lower_case_and_parameters_are_found_by_any_case() {
        let media = MediaType::parse("Application/JSON; Charset=UTF-8").unwrap();
        assert_eq!(media.essence(), "application/json");
        assert!(media.is_json());
        assert_eq!(
            media
                .param("charset")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("utf-8")
        );
    }

    #[test]
    fn quoted_values_may_hold_separators() {
        let media = MediaType::parse(r#"multipart/form-data; boundary="a;b c""#).unwrap();
        assert_eq!(media.essence(), "multipart/form-data");
        assert_eq!(media.param("boundary"), Some("a;b c"));
    }

    #[test]
    fn suffixes_and_garbage() {
        assert!(MediaType::parse("application/vnd.api+json")
            .unwrap()
            .is_json());
        assert!(!MediaType::parse("application/jsonx").unwrap().is_json());
        assert!(MediaType::parse("not a media type").is_err());
        assert!(MediaType::parse("").is_err());
    }
}
