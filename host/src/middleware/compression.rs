//! `[server.compression]`, `[routes.compression]`, `[policies.compression]`: response
//! compression (zstd, br, gzip) by tower-http's `CompressionLayer`, applied per route.
//!
//! ```toml
//! encodings = ["zstd", "br", "gzip"]   # which may be used (default all three); the client's
//!                                      # q-values choose among them, not this order
//! min_size = 1024                      # smaller responses are sent as they are; or "4KiB"
//! quality = "default"                  # "fastest" | "default" | "best" | a level
//! ```
//!
//! A response is compressed when it is at least `min_size` bytes (one without a known size,
//! i.e. streamed, counts as large), is not of an already-compressed or streaming media type
//! (see [`NEVER_COMPRESSED`]), and has no `Content-Encoding` or `Content-Range` yet
//! (tower-http checks those two itself). Compressed responses get `Vary: Accept-Encoding`.
//!
//! Note: following RFC 9110 §12.5.3, tower-http answers 406 when the client refuses every
//! encoding on offer, identity included (`Accept-Encoding: identity;q=0` or `*;q=0` with
//! nothing acceptable).

use std::path::Path;

use http::{header, StatusCode};
use hyper::body::Body;
use serde::Deserialize;
use toml::Spanned;
use tower_http::compression::{CompressionLayer, CompressionLevel};

pub use super::Mistake;

/// The default `min_size`: below about 1 KiB compression saves little and costs a frame.
pub const DEFAULT_MIN_SIZE: u64 = 1024;

/// Media types never compressed (compared case-insensitively to the type before any
/// parameters): already compressed formats gain nothing, and streams (SSE, gRPC) must not
/// be held back by the compressor's buffer. An entry ending in `*` is a prefix.
/// `application/octet-stream` is NOT here: it may well be compressible.
pub const NEVER_COMPRESSED: [&str; 19] = [
    "image/*",
    "video/*",
    "audio/*",
    "font/woff",
    "font/woff2",
    "application/font-woff",
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/zstd",
    "application/x-bzip2",
    "application/x-xz",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/vnd.rar",
    "application/pdf",
    "application/grpc*",
    "text/event-stream",
    "multipart/x-mixed-replace",
];

/// Images that are text and compress well.
const COMPRESSIBLE_IMAGES: [&str; 1] = ["image/svg+xml"];

/// The encodings this build supports, in the order used in messages.
const ENCODINGS: [&str; 3] = ["zstd", "br", "gzip"];

/// The integer quality levels each encoding accepts.
const LEVELS: [(&str, i64, i64); 3] = [("gzip", 1, 9), ("br", 0, 11), ("zstd", 1, 22)];

/// The table as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    /// Which encodings may be used.
    pub encodings: Option<Spanned<Vec<Spanned<String>>>>,
    /// Bytes: an integer or a string such as "4KiB".
    pub min_size: Option<Spanned<toml::Value>>,
    /// "fastest", "default", "best" or an integer level.
    pub quality: Option<Spanned<toml::Value>>,
}

/// A resolved compression policy, cheap to clone into each route's layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    zstd: bool,
    br: bool,
    gzip: bool,
    min_size: u64,
    quality: CompressionLevel,
}

/// Which responses to compress: large enough, of a compressible media type, with a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compressible {
    min_size: u64,
}

impl Compression {
    /// Checks the table.
    pub fn resolve(raw: &RawCompression, field: &str, _dir: &Path) -> Result<Compression, Mistake> {
        let (zstd, br, gzip) = encodings(raw, field)?;
        let min_size = match &raw.min_size {
            Some(value) => min_size(value, field)?,
            None => DEFAULT_MIN_SIZE,
        };
        let quality = match &raw.quality {
            Some(value) => quality(value, field, [zstd, br, gzip])?,
            None => CompressionLevel::Default,
        };
        Ok(Compression {
            zstd,
            br,
            gzip,
            min_size,
            quality,
        })
    }

    /// The tower-http layer for routes with this policy (the lead applies it per route with
    /// axum's `Handler::layer`).
    pub fn layer(&self) -> CompressionLayer<Compressible> {
        CompressionLayer::new()
            .zstd(self.zstd)
            .br(self.br)
            .gzip(self.gzip)
            .quality(self.quality)
            .compress_when(Compressible {
                min_size: self.min_size,
            })
    }
}

impl tower_http::compression::Predicate for Compressible {
    fn should_compress<B: Body>(&self, response: &http::Response<B>) -> bool {
        has_body(response.status())
            && large_enough(response, self.min_size)
            && response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(compressible_type)
    }
}

/// 1xx, 204 and 304 answers carry no body to compress.
fn has_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// At least `min_size` bytes (and never empty); an unknown size (a stream) counts as large.
fn large_enough<B: Body>(response: &http::Response<B>, min_size: u64) -> bool {
    let size = response.body().size_hint().exact().or_else(|| {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    });
    size.is_none_or(|size| size > 0 && size >= min_size)
}

/// False for the media types of [`NEVER_COMPRESSED`] (parameters ignored).
fn compressible_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if COMPRESSIBLE_IMAGES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(essence))
    {
        return true;
    }
    !NEVER_COMPRESSED
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => starts_with_ignore_case(essence, prefix),
            None => pattern.eq_ignore_ascii_case(essence),
        })
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// `encodings`: a non-empty list of known names (zstd, br, gzip), default all.
fn encodings(raw: &RawCompression, field: &str) -> Result<(bool, bool, bool), Mistake> {
    let Some(list) = &raw.encodings else {
        return Ok((true, true, true));
    };
    let field = format!("{field}.encodings");
    if list.get_ref().is_empty() {
        return Err((
            list.span().start,
            field,
            "encodings is empty; list at least one of \"zstd\", \"br\", \"gzip\" (or write compression = false to turn it off)".into(),
        ));
    }
    let mut on = [false; 3];
    for name in list.get_ref() {
        let text = name.get_ref().trim();
        let Some(i) = ENCODINGS.iter().position(|e| e.eq_ignore_ascii_case(text)) else {
            return Err((
                name.span().start,
                field,
                format!("`{text}` is not an encoding this server supports; use \"zstd\", \"br\" or \"gzip\""),
            ));
        };
        on[i] = true;
    }
    Ok((on[0], on[1], on[2]))
}

/// `min_size`: an integer number of bytes or a size such as "4KiB".
fn min_size(value: &Spanned<toml::Value>, field: &str) -> Result<u64, Mistake> {
    let mistake = |message: String| (value.span().start, format!("{field}.min_size"), message);
    match value.get_ref() {
        toml::Value::Integer(n) => u64::try_from(*n)
            .map_err(|_| mistake("min_size must be 0 or more bytes, e.g. 1024 or \"4KiB\"".into())),
        toml::Value::String(text) => crate::config::parse_size(text).map_err(mistake),
        _ => Err(mistake(
            "min_size must be a number of bytes or a size such as \"4KiB\"".into(),
        )),
    }
}

/// `quality`: a named level, or an integer valid for every encoding that is on.
fn quality(
    value: &Spanned<toml::Value>,
    field: &str,
    on: [bool; 3],
) -> Result<CompressionLevel, Mistake> {
    let mistake = |message: String| (value.span().start, format!("{field}.quality"), message);
    match value.get_ref() {
        toml::Value::String(text) => match text.trim() {
            "fastest" => Ok(CompressionLevel::Fastest),
            "default" => Ok(CompressionLevel::Default),
            "best" => Ok(CompressionLevel::Best),
            other => Err(mistake(format!(
                "`{other}` is not a quality; use \"fastest\", \"default\", \"best\" or an integer level"
            ))),
        },
        toml::Value::Integer(level) => {
            check_level(*level, on).map_err(mistake)?;
            Ok(CompressionLevel::Precise(*level as i32))
        }
        _ => Err(mistake(
            "quality must be \"fastest\", \"default\", \"best\" or an integer level".into(),
        )),
    }
}

/// An integer level must be in range for every encoding that is on (gzip 1-9, br 0-11,
/// zstd 1-22).
fn check_level(level: i64, on: [bool; 3]) -> Result<(), String> {
    let active: Vec<(&str, i64, i64)> = LEVELS
        .iter()
        .copied()
        .filter(|(name, _, _)| on[ENCODINGS.iter().position(|e| e == name).expect("known")])
        .collect();
    let Some((name, low, high)) = active
        .iter()
        .copied()
        .find(|(_, low, high)| !(*low..=*high).contains(&level))
    else {
        return Ok(());
    };
    let low_all = active.iter().map(|a| a.1).max().expect("at least one");
    let high_all = active.iter().map(|a| a.2).min().expect("at least one");
    let names: Vec<&str> = active.iter().map(|a| a.0).collect();
    Err(format!(
        "quality {level} is out of range for {name} ({low}-{high}); with encodings {names:?} an integer quality must be within {low_all}-{high_all}, or use \"fastest\", \"default\" or \"best\""
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body as AxumBody;
    use axum::routing::get;
    use axum::Router;
    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::BodyExt;
    use hyper::body::Frame;
    use std::io::Read;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tower::ServiceExt;

    fn resolve(text: &str) -> Result<Compression, Mistake> {
        let raw: RawCompression = toml::from_str(text).expect("toml");
        Compression::resolve(&raw, "server.compression", Path::new("."))
    }

    /// Text that compresses well and is above the default minimum.
    fn big_text() -> String {
        (0..400)
            .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog\n"))
            .collect()
    }

    /// A router whose routes answer with the given media type and body.
    fn router(compression: &Compression) -> Router {
        let text = big_text();
        let typed = move |ct: &'static str, body: String| {
            move || {
                let body = body.clone();
                async move {
                    Response::builder()
                        .header(header::CONTENT_TYPE, ct)
                        .body(AxumBody::from(body))
                        .unwrap()
                }
            }
        };
        Router::new()
            .route(
                "/text",
                get(typed("text/plain; charset=utf-8", text.clone())),
            )
            .route("/small", get(typed("text/plain", "tiny".into())))
            .route("/png", get(typed("image/png", text.clone())))
            .route("/svg", get(typed("image/svg+xml", text.clone())))
            .route("/sse", get(typed("text/event-stream", text.clone())))
            .route(
                "/grpc",
                get(typed("application/grpc-web+proto", text.clone())),
            )
            .route(
                "/octets",
                get(typed("application/octet-stream", text.clone())),
            )
            .route(
                "/encoded",
                get(|| async {
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/plain")
                        .header(header::CONTENT_ENCODING, "gzip")
                        .body(AxumBody::from(big_text()))
                        .unwrap()
                }),
            )
            .route(
                "/stream",
                get(|| async {
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/plain")
                        .body(AxumBody::new(Chunks(vec!["ab".into(); 3])))
                        .unwrap()
                }),
            )
            .layer(compression.layer())
    }

    /// A streamed body: its size is unknown until the end.
    struct Chunks(Vec<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    async fn get_with(
        app: &Router,
        path: &str,
        accept: Option<&str>,
    ) -> (http::HeaderMap, Vec<u8>, StatusCode) {
        let mut request = Request::get(path);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT_ENCODING, accept);
        }
        let response = app
            .clone()
            .oneshot(request.body(AxumBody::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (headers, body, status)
    }

    fn encoding(headers: &http::HeaderMap) -> Option<&str> {
        headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap())
    }

    fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            None => out.extend_from_slice(body),
            Some("gzip") => {
                flate2::read::GzDecoder::new(body)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Some("br") => {
                brotli::Decompressor::new(body, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Some("zstd") => out = zstd::stream::decode_all(body).unwrap(),
            Some(other) => panic!("unexpected encoding {other}"),
        }
        out
    }

    fn vary_has_accept_encoding(headers: &http::HeaderMap) -> bool {
        headers.get_all(header::VARY).iter().any(|v| {
            v.to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("accept-encoding")
        })
    }

    #[tokio::test]
    async fn the_client_q_values_choose_the_encoding_and_bodies_round_trip() {
        let app = router(&resolve("").unwrap());
        let cases = [
            ("gzip", Some("gzip")),
            ("br", Some("br")),
            ("zstd", Some("zstd")),
            ("gzip;q=0.5, br;q=0.9, zstd;q=0.1", Some("br")),
            ("gzip, zstd;q=0.2", Some("gzip")),
            ("*", Some("zstd")),
            ("br;q=0, *;q=0.5", Some("zstd")),
            ("identity", None),
            ("deflate", None),
        ];
        for (accept, expected) in cases {
            let (headers, body, status) = get_with(&app, "/text", Some(accept)).await;
            assert_eq!(status, StatusCode::OK, "{accept}");
            assert_eq!(encoding(&headers), expected, "{accept}");
            assert_eq!(decode(expected, &body), big_text().as_bytes(), "{accept}");
            if expected.is_some() {
                assert!(vary_has_accept_encoding(&headers), "{accept}");
                assert!(
                    body.len() < big_text().len() / 4,
                    "{accept}: not compressed"
                );
                assert!(headers.get(header::CONTENT_LENGTH).is_none());
            }
        }
        let (headers, body, _) = get_with(&app, "/text", None).await;
        assert_eq!(encoding(&headers), None);
        assert_eq!(body, big_text().as_bytes());
    }

    #[tokio::test]
    async fn small_already_compressed_and_streaming_types_are_left_alone() {
        let app = router(&resolve("").unwrap());
        for path in ["/small", "/png", "/sse", "/grpc", "/encoded"] {
            let (headers, body, _) = get_with(&app, path, Some("gzip, br, zstd")).await;
            let expected_encoding = if path == "/encoded" {
                Some("gzip")
            } else {
                None
            };
            assert_eq!(encoding(&headers), expected_encoding, "{path}");
            let expected = if path == "/small" {
                "tiny".to_owned()
            } else {
                big_text()
            };
            assert_eq!(body, expected.as_bytes(), "{path}");
        }
        for path in ["/svg", "/octets"] {
            let (headers, body, _) = get_with(&app, path, Some("gzip")).await;
            assert_eq!(encoding(&headers), Some("gzip"), "{path}");
            assert_eq!(decode(Some("gzip"), &body), big_text().as_bytes(), "{path}");
        }
    }

    #[tokio::test]
    async fn a_stream_without_a_size_counts_as_large() {
        let app = router(&resolve("").unwrap());
        let (headers, body, _) = get_with(&app, "/stream", Some("gzip")).await;
        assert_eq!(encoding(&headers), Some("gzip"));
        assert_eq!(decode(Some("gzip"), &body), b"ababab");
    }

    #[tokio::test]
    async fn min_size_sets_the_threshold() {
        let app = router(&resolve("min_size = 4").unwrap());
        let (headers, body, _) = get_with(&app, "/small", Some("gzip")).await;
        assert_eq!(encoding(&headers), Some("gzip"));
        assert_eq!(decode(Some("gzip"), &body), b"tiny");
        let app = router(&resolve("min_size = \"1MiB\"").unwrap());
        let (headers, _, _) = get_with(&app, "/text", Some("gzip")).await;
        assert_eq!(encoding(&headers), None);
    }

    #[tokio::test]
    async fn only_the_configured_encodings_are_chosen() {
        let app = router(&resolve("encodings = [\"gzip\"]\nquality = \"best\"").unwrap());
        for accept in ["zstd, br, gzip;q=0.1", "*"] {
            let (headers, body, _) = get_with(&app, "/text", Some(accept)).await;
            assert_eq!(encoding(&headers), Some("gzip"), "{accept}");
            assert_eq!(decode(Some("gzip"), &body), big_text().as_bytes());
        }
        let (headers, body, status) = get_with(&app, "/text", Some("zstd, br")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(encoding(&headers), None);
        assert_eq!(body, big_text().as_bytes());
        // Nothing acceptable, identity refused: tower-http answers 406 (RFC 9110 §12.5.3).
        let (headers, _, status) = get_with(&app, "/text", Some("br, identity;q=0")).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
        assert!(vary_has_accept_encoding(&headers));
    }

    #[tokio::test]
    async fn integer_qualities_compress() {
        let app = router(&resolve("encodings = [\"zstd\", \"br\"]\nquality = 11").unwrap());
        let (headers, body, _) = get_with(&app, "/text", Some("br")).await;
        assert_eq!(encoding(&headers), Some("br"));
        assert_eq!(decode(Some("br"), &body), big_text().as_bytes());
        let app = router(&resolve("quality = 1").unwrap());
        let (headers, body, _) = get_with(&app, "/text", Some("zstd")).await;
        assert_eq!(encoding(&headers), Some("zstd"));
        assert_eq!(decode(Some("zstd"), &body), big_text().as_bytes());
    }

    #[test]
    fn media_types() {
        for t in [
            "image/png",
            "IMAGE/JPEG",
            "video/mp4",
            "audio/ogg",
            "font/woff2",
            "application/zip",
            "application/pdf",
            "application/grpc",
            "application/grpc+proto",
            "application/grpc-web",
            "text/event-stream; charset=utf-8",
            "application/zstd",
        ] {
            assert!(!compressible_type(t), "{t}");
        }
        for t in [
            "text/html",
            "application/json",
            "image/svg+xml; charset=utf-8",
            "application/octet-stream",
            "application/problem+json",
            "font/ttf",
            "",
        ] {
            assert!(compressible_type(t), "{t}");
        }
        let mut response = Response::new(String::new());
        let predicate = Compressible { min_size: 0 };
        use tower_http::compression::Predicate as _;
        assert!(!predicate.should_compress(&response), "empty body");
        *response.body_mut() = "x".into();
        assert!(predicate.should_compress(&response));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        assert!(!predicate.should_compress(&response));
    }

    #[test]
    fn config_defaults_and_mistakes() {
        let c = resolve("").unwrap();
        assert_eq!(
            c,
            Compression {
                zstd: true,
                br: true,
                gzip: true,
                min_size: 1024,
                quality: CompressionLevel::Default
            }
        );
        let c = resolve("encodings = [\"br\"]\nmin_size = \"4KiB\"\nquality = 11").unwrap();
        assert_eq!(
            c,
            Compression {
                zstd: false,
                br: true,
                gzip: false,
                min_size: 4096,
                quality: CompressionLevel::Precise(11)
            }
        );
        assert_eq!(
            resolve("quality = \"fastest\"").unwrap().quality,
            CompressionLevel::Fastest
        );
        assert_eq!(
            resolve("quality = 9").unwrap().quality,
            CompressionLevel::Precise(9)
        );
        assert_eq!(
            resolve("encodings = [\"br\"]\nquality = 0")
                .unwrap()
                .quality,
            CompressionLevel::Precise(0)
        );

        let mistake = |text: &str| resolve(text).unwrap_err();
        let (_, field, message) = mistake("encodings = [\"gzip\", \"deflate\"]");
        assert_eq!(field, "server.compression.encodings");
        assert!(
            message.contains("`deflate`") && message.contains("\"zstd\", \"br\" or \"gzip\""),
            "{message}"
        );
        let (_, _, message) = mistake("encodings = []");
        assert!(message.contains("empty"), "{message}");
        let (_, field, message) = mistake("quality = 10");
        assert_eq!(field, "server.compression.quality");
        assert!(
            message.contains("gzip (1-9)") && message.contains("within 1-9"),
            "{message}"
        );
        let (_, _, message) = mistake("encodings = [\"zstd\", \"br\"]\nquality = 15");
        assert!(
            message.contains("br (0-11)") && message.contains("within 1-11"),
            "{message}"
        );
        let (_, _, message) = mistake("encodings = [\"zstd\"]\nquality = 0");
        assert!(message.contains("zstd (1-22)"), "{message}");
        let (_, _, message) = mistake("quality = \"max\"");
        assert!(message.contains("not a quality"), "{message}");
        let (_, _, message) = mistake("quality = 1.5");
        assert!(message.contains("integer level"), "{message}");
        let (_, field, _) = mistake("min_size = -1");
        assert_eq!(field, "server.compression.min_size");
        let (_, _, message) = mistake("min_size = \"4 parsecs\"");
        assert!(message.contains("unknown size unit"), "{message}");
        let (_, _, message) = mistake("min_size = \"big\"");
        assert!(message.contains("not a size"), "{message}");
        assert!(toml::from_str::<RawCompression>("level = 3").is_err());
    }
}
