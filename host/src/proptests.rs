//! Property tests of the parsers the host owns (issue 8): whatever the input, a parser must
//! not panic and its output must be bounded by its input; where an encoder is easy to
//! write, parsing what it wrote gives the input back.
//!
//! Every property runs with [`fixed`]: a fixed seed and a bounded number of cases, so each
//! run of `cargo test` checks the same inputs in a few seconds, and a failure reproduces.
//! This module covers multipart and the config; `validation/proptests.rs` covers
//! urlencoded, bracket keys and coercion, `server/dispatch/proptests.rs` the JSON-depth scan.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed};

use crate::media_type::MediaType;
use crate::multipart;

/// The seed of every property test of the host.
pub(crate) const SEED: u64 = 0x5eed_0008;

/// A deterministic config: [`SEED`], `cases` cases, no regression files written.
pub(crate) fn fixed(cases: u32) -> Config {
    Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(SEED),
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..Config::default()
    }
}

/// Pieces of multipart syntax, so that random bodies reach past the first boundary check.
const MULTIPART_TOKENS: &[&str] = &[
    "--XyZ",
    "--XyZ--",
    "\r\n",
    "\r\n\r\n",
    "\r\n--XyZ",
    "Content-Disposition: form-data; name=\"a\"",
    "content-disposition: form-data; name=b; filename=\"f.txt\"",
    "; filename*=UTF-8''na%C3%AFve.txt",
    "; filename*=iso-8859-1''%FF",
    "Content-Type: text/plain",
    "X-Extra: 1",
    " folded",
    ":",
    ";",
    "=",
    "\"",
    "\\",
    " ",
    "\t",
    "x",
    "\u{ff}",
    "--",
    "-",
];

fn multipart_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(MULTIPART_TOKENS), 0..48)
        .prop_map(|tokens| tokens.concat().into_bytes())
}

/// Whether `inner` lies inside `outer` (a borrowed sub-slice, not a copy).
fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (start, end) = (
        outer.as_ptr() as usize,
        outer.as_ptr() as usize + outer.len(),
    );
    let at = inner.as_ptr() as usize;
    inner.is_empty() || (at >= start && at + inner.len() <= end)
}

/// The bounds every parse result must meet: no more parts than bytes, part contents
/// borrowed from the body, headers no longer than the (lossily decoded) body, and the
/// plugin view of each part bounded by its size.
fn check_bounded(body: &[u8], parsed: &Result<Vec<multipart::Part<'_>>, String>) {
    match parsed {
        Ok(parts) => {
            assert!(
                parts.len() <= body.len(),
                "{} parts from {} bytes",
                parts.len(),
                body.len()
            );
            let mut header_bytes = 0;
            for part in parts {
                assert!(
                    within(body, part.body),
                    "part content is not a slice of the body"
                );
                header_bytes += part.name.len()
                    + part.filename.as_ref().map_or(0, String::len)
                    + part
                        .headers
                        .iter()
                        .map(|(n, v)| n.len() + v.len())
                        .sum::<usize>();
                let file = part.file_json().to_string();
                assert!(
                    file.len() <= 8 * part.body.len() + 6 * header_len(part) + 256,
                    "file view of {} bytes is {} bytes",
                    part.body.len(),
                    file.len()
                );
            }
            // A byte that is not UTF-8 becomes U+FFFD (3 bytes); a filename may appear twice.
            assert!(
                header_bytes <= 9 * body.len(),
                "{header_bytes} header bytes from {}",
                body.len()
            );
        }
        Err(message) => assert!(message.len() < 200 + body.len().min(200), "{message}"),
    }
}

fn header_len(part: &multipart::Part<'_>) -> usize {
    part.headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 8)
        .sum::<usize>()
        + part.filename.as_ref().map_or(0, String::len)
}

/// A form field for the round trip: name, content, filename, content type.
type Field = (String, Vec<u8>, Option<String>, Option<String>);

fn field() -> impl Strategy<Value = Field> {
    (
        "[A-Za-z0-9_.\\[\\]-]{1,12}",
        prop::collection::vec(any::<u8>(), 0..200),
        prop::option::of("[A-Za-z0-9 ._()-]{0,16}"),
        prop::option::of(prop::sample::select(vec![
            "text/plain",
            "image/png",
            "application/octet-stream; x=1",
        ])),
    )
        .prop_map(|(name, body, filename, ct)| (name, body, filename, ct.map(str::to_owned)))
}

/// What a browser sends for `fields` under `boundary`.
fn encode_form(boundary: &str, fields: &[Field]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, content, filename, content_type) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(filename) = filename {
            body.extend_from_slice(format!("; filename=\"{filename}\"").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(fixed(512))]

    #[test]
    fn multipart_arbitrary_bytes_are_bounded(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let parsed = multipart::parse(&body, "XyZ");
        check_bounded(&body, &parsed);
    }

    #[test]
    fn multipart_token_soup_is_bounded(body in multipart_soup()) {
        let parsed = multipart::parse(&body, "XyZ");
        check_bounded(&body, &parsed);
    }

    #[test]
    fn multipart_truncations_and_mutations_are_bounded(
        fields in prop::collection::vec(field(), 1..5),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut body = encode_form("XyZ", &fields);
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        body.truncate(cut.index(body.len() + 1));
        let parsed = multipart::parse(&body, "XyZ");
        check_bounded(&body, &parsed);
    }

    #[test]
    fn multipart_round_trips(
        boundary in "[A-Za-z0-9'()+_,./:=?-]{1,70}",
        fields in prop::collection::vec(field(), 0..6),
    ) {
        let delimiter = format!("\r\n--{boundary}");
        prop_assume!(fields.iter().all(|(_, content, _, _)| {
            !contains(&[b"\r\n", content.as_slice(), b"\r\n"].concat(), delimiter.as_bytes())
        }));
        let body = encode_form(&boundary, &fields);
        let parts = multipart::parse(&body, &boundary)
            .map_err(|e| TestCaseError::fail(format!("{e} for {:?}", String::from_utf8_lossy(&body))))?;
        prop_assert_eq!(parts.len(), fields.len());
        for (part, (name, content, filename, content_type)) in parts.iter().zip(&fields) {
            prop_assert_eq!(&part.name, name);
            prop_assert_eq!(part.body, content.as_slice());
            prop_assert_eq!(&part.filename, filename);
            prop_assert_eq!(&part.content_type, content_type);
        }
    }

    #[test]
    fn boundary_of_any_content_type_is_usable(text in "\\PC{0,80}") {
        if let Ok(media) = MediaType::parse(&text) {
            if let Some(boundary) = multipart::boundary(&media) {
                prop_assert!(!boundary.is_empty() && boundary.len() <= 200, "{boundary:?}");
                prop_assert!(boundary.bytes().all(|b| (0x20..0x7f).contains(&b)), "{boundary:?}");
            }
        }
    }

    #[test]
    fn boundary_round_trips(boundary in "[A-Za-z0-9'()+_,./:=?-]{1,70}", quoted in any::<bool>()) {
        let token = boundary.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.'+".contains(&b));
        let text = if quoted || !token {
            format!("multipart/form-data; charset=utf-8; boundary=\"{boundary}\"")
        } else {
            format!("multipart/form-data; boundary={boundary}")
        };
        let media = MediaType::parse(&text).map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert_eq!(multipart::boundary(&media), Some(boundary));
    }
}

/// Keys of a config table: name, whether the table needs it, and values, the first valid
/// and the others not. Generated tables hold each key at most once and mostly valid values,
/// so that most configs get past TOML and serde into the host's own checks.
type Keys = &'static [(&'static str, bool, &'static [&'static str])];

const SERVER_KEYS: Keys = &[
    (
        "listen",
        false,
        &["\"127.0.0.1:0\"", "\"nowhere\"", "\"[::1]:99999\"", "7"],
    ),
    (
        "body_limit",
        false,
        &[
            "\"64KiB\"",
            "\"12XB\"",
            "-1",
            "0",
            "99999999999999999999",
            "\"\"",
            "\"1.5MB\"",
        ],
    ),
    ("max_json_depth", false, &["8", "0", "128", "-3"]),
    ("workers", false, &["1", "0", "100000"]),
    ("max_header_bytes", false, &["\"16KiB\"", "1", "\"1GiB\""]),
    (
        "header_read_timeout_ms",
        false,
        &["1000", "0", "99999999999"],
    ),
    ("keepalive_timeout_ms", false, &["30000", "0", "\"1s\""]),
    ("body_read_timeout_ms", false, &["30000", "0", "-1"]),
    ("max_connections", false, &["100", "0", "10000000"]),
    ("max_validation_errors", false, &["100", "0", "10001"]),
    (
        "request_timeout_ms",
        false,
        &["100", "1.5", "\"x\"", "0", "3600001"],
    ),
    (
        "request_id_header",
        false,
        &["\"x-request-id\"", "\"bad name\"", "\"\"", "1"],
    ),
    ("request_ids", false, &["false", "\"no\""]),
    (
        "problem_type_base",
        false,
        &["\"https://example.com/errors/\"", "\"\"", "1"],
    ),
];

const PLUGIN_KEYS: Keys = &[
    ("name", true, &["\"echo\"", "\"\"", "\"other\""]),
    (
        "library",
        true,
        &["\"spikard_echo\"", "\"./missing.so\"", "\"\""],
    ),
    ("settings", false, &["{ a = 1 }", "\"x\""]),
];

const ROUTE_KEYS: Keys = &[
    ("method", true, &["\"GET\"", "\"get\"", "\"FOO\"", "\"\"", "1"]),
    ("path", true, &[
        "\"/items/{id}\"",
        "\"/a/{id}/{id}\"",
        "\"no-slash\"",
        "\"/{*rest}/x\"",
        "\"/\"",
        "\"/{}\"",
        "\"/\\u00e9/{x}\"",
    ]),
    ("plugin", true, &["\"echo\"", "\"missing\""]),
    ("handler", true, &["\"echo\"", "\"\""]),
    ("body_limit", false, &["\"1KiB\"", "0", "\"x\""]),
    ("max_json_depth", false, &["8", "0", "200"]),
    ("request_timeout_ms", false, &["50", "0", "\"x\""]),
    ("request_id", false, &["false", "1"]),
    ("stream_body", false, &["true", "false", "\"yes\""]),
    ("body", false, &[
        "{ type = \"object\", additionalProperties = false }",
        "\"schemas/missing.json\"",
        "{ type = 7 }",
        "{ properties = { q = { type = \"string\", pattern = \"(\" } } }",
        "{ \"$ref\" = \"#/nowhere\" }",
    ]),
    ("response", false, &["{ type = \"object\" }", "\"../outside.json\""]),
    ("params", false, &[
        "{ path = { type = \"object\", properties = { id = { type = \"integer\" } }, required = [\"id\"] } }",
        "{ query = { type = \"object\", properties = { q = { type = \"string\", pattern = \"^(a+)+$\" } } } }",
        "{ headers = { properties = { x-a = { type = \"array\", items = { type = \"integer\" } } } } }",
        "{ cookies = 1 }",
        "{ query = { properties = { n = { type = \"integer\", maximum = 9223372036854775807 } } } }",
        "{ unknown = {} }",
    ]),
    ("settings", false, &["{ a = 1 }", "1"]),
];

/// Lines that no config should hold.
const NOISE: &[&str] = &[
    "unknown = 1",
    "[unknown]",
    "= =",
    "[",
    "x = '''",
    "\"\u{e9}\" = 1",
];

/// One table: a header line, then the keys of `keys` (optional ones six times in ten), each
/// with its valid value six times in seven.
fn table(header: &'static str, keys: Keys) -> impl Strategy<Value = String> {
    let lines: Vec<_> = keys
        .iter()
        .map(|&(key, required, values)| {
            let value = prop_oneof![6 => Just(values[0]), 1 => prop::sample::select(values)];
            let value = if required {
                value.prop_map(Some).boxed()
            } else {
                prop::option::weighted(0.6, value).boxed()
            };
            value.prop_map(move |value| value.map(|v| format!("{key} = {v}")))
        })
        .collect();
    lines.prop_map(move |lines| {
        std::iter::once(header.to_owned())
            .chain(lines.into_iter().flatten())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// A config: maybe `[server]`, a few plugins and routes, and one time in ten a line of noise.
fn config_text() -> impl Strategy<Value = String> {
    let noise = prop_oneof![
        3 => prop::sample::select(NOISE).prop_map(str::to_owned),
        1 => "\\PC{0,16}",
    ];
    (
        prop::option::of(table("[server]", SERVER_KEYS)),
        prop::collection::vec(table("[[plugins]]", PLUGIN_KEYS), 0..3),
        prop::collection::vec(table("[[routes]]", ROUTE_KEYS), 0..4),
        prop::option::weighted(0.1, (any::<prop::sample::Index>(), noise)),
        any::<bool>(),
    )
        .prop_map(|(server, plugins, routes, noise, crlf)| {
            let mut lines: Vec<String> = server
                .into_iter()
                .chain(plugins)
                .chain(routes)
                .flat_map(|table| table.lines().map(str::to_owned).collect::<Vec<_>>())
                .collect();
            if let Some((at, line)) = noise {
                lines.insert(at.index(lines.len() + 1), line);
            }
            lines.join(if crlf { "\r\n" } else { "\n" })
        })
}

/// Config errors are one line that starts with the file (`file:line:col: field: fix`).
fn check_config(text: &str) -> Result<(), TestCaseError> {
    let file = Path::new("/nonexistent-spikard-proptest/spikard.toml");
    if let Err(error) = crate::config::parse(file, text) {
        let message = error.to_string();
        prop_assert!(!message.contains('\n'), "not one line: {message:?}");
        prop_assert!(
            message.starts_with(&file.display().to_string()),
            "{message:?}"
        );
        prop_assert!(
            message.len() <= 4 * text.len() + 2048,
            "{} bytes",
            message.len()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(fixed(256))]

    #[test]
    fn config_of_arbitrary_text_never_panics(text in "\\PC{0,400}") {
        check_config(&text)?;
    }

    #[test]
    fn config_of_config_lines_never_panics(text in config_text()) {
        check_config(&text)?;
    }
}
