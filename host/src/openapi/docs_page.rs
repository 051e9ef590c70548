//! The docs page at `[openapi] docs_path`: Swagger UI, from files embedded in the binary
//! at build time (host/assets/swagger-ui-VERSION, vendored from the npm package
//! `swagger-ui-dist`), so the page needs no network and names no CDN.
//!
//! Swagger UI because it is what FastAPI users find at `/docs`, it lets them try requests
//! from the page, and its dist is two files (JS and CSS, 1.9 MB) — Redoc only reads, and
//! Scalar's bundle is over twice the size and loads its fonts from a CDN by default.
//! Vendored rather than taken from crates.io: `swagger-ui-dist` (5.34.1) ships the files but
//! only behind its own axum routes (no cache headers, the request URI copied into the page
//! unescaped, 2.2 MB of source maps compiled in, no access to the bytes);
//! `utoipa-swagger-ui-vendored` ships a zip (a zip reader and an unpack at start-up);
//! `scalar_api_reference` brings rust-embed and a 4.9 MB bundle.
//!
//! The assets live under a path that names their version and are cached for good
//! (`immutable`); the page itself is revalidated with its `ETag`. All its links are relative,
//! so the page also works behind a proxy that mounts the host under a prefix. The page has
//! no inline script and carries its own Content-Security-Policy: scripts, styles and
//! requests from this host only.

use bytes::Bytes;

use super::served::{Served, IMMUTABLE, REVALIDATE};

/// The vendored Swagger UI version (`swagger-ui-dist` on npm).
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

static BUNDLE: &[u8] = include_bytes!("../../assets/swagger-ui-5.35.0/swagger-ui-bundle.js");
static CSS: &[u8] = include_bytes!("../../assets/swagger-ui-5.35.0/swagger-ui.css");
static FAVICON: &[u8] = include_bytes!("../../assets/swagger-ui-5.35.0/favicon-32x32.png");
/// The host's own start-up script for Swagger UI.
static INIT: &[u8] = include_bytes!("swagger-init.js");

/// The page's policy: everything from this host, inline styles (Swagger UI sets style
/// attributes) and `data:` images (its icons); nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page and its assets, each with the path it is served at.
pub fn build(docs_path: &str, document_path: &str, title: &str) -> Vec<(String, Served)> {
    let dir = format!(
        "{}/swagger-ui-{SWAGGER_UI_VERSION}",
        docs_path.trim_end_matches('/')
    );
    // The start-up script is ours and may change without Swagger UI's version: its name
    // carries its fingerprint instead.
    let init_path = format!("{dir}/init-{:08x}.js", super::served::fnv1a(INIT) as u32);
    let assets = [
        (
            format!("{dir}/swagger-ui-bundle.js"),
            BUNDLE,
            "text/javascript; charset=utf-8",
        ),
        (
            format!("{dir}/swagger-ui.css"),
            CSS,
            "text/css; charset=utf-8",
        ),
        (format!("{dir}/favicon-32x32.png"), FAVICON, "image/png"),
        (init_path, INIT, "text/javascript; charset=utf-8"),
    ];
    let link = |path: &str| escape(&relative(docs_path, path));
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="icon" type="image/png" href="{favicon}">
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui" data-url="{document}"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"#,
        title = escape(title),
        favicon = link(&assets[2].0),
        css = link(&assets[1].0),
        document = link(document_path),
        bundle = link(&assets[0].0),
        init = link(&assets[3].0),
    );
    let mut served = vec![(
        docs_path.to_owned(),
        Served::new(Bytes::from(page), "text/html; charset=utf-8", REVALIDATE).with_csp(CSP),
    )];
    served.extend(assets.into_iter().map(|(path, bytes, content_type)| {
        (
            path,
            Served::new(Bytes::from_static(bytes), content_type, IMMUTABLE),
        )
    }));
    served
}

/// `target` relative to the page at `page` (both absolute paths): `/docs` → `/openapi.json`
/// is `openapi.json`; `/api/v1/docs` → `/api/openapi.json` is `../openapi.json`.
fn relative(page: &str, target: &str) -> String {
    let dir: Vec<&str> = page
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir)
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let to: Vec<&str> = target.split('/').filter(|s| !s.is_empty()).collect();
    let (folders, _) = to.split_at(to.len().saturating_sub(1));
    let common = dir.iter().zip(folders).take_while(|(a, b)| a == b).count();
    let mut out = "../".repeat(dir.len() - common);
    out.push_str(&to[common..].join("/"));
    if out.is_empty() || !out.starts_with('.') && out.contains(':') {
        out.insert_str(0, "./");
    }
    out
}

/// Text for HTML content and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_page() {
        assert_eq!(relative("/docs", "/openapi.json"), "openapi.json");
        assert_eq!(
            relative("/docs", "/docs/swagger-ui-1/a.js"),
            "docs/swagger-ui-1/a.js"
        );
        assert_eq!(
            relative("/api/v1/docs", "/api/openapi.json"),
            "../openapi.json"
        );
        assert_eq!(
            relative("/api/docs", "/other/openapi.json"),
            "../other/openapi.json"
        );
        assert_eq!(relative("/a/docs", "/a/docs/x/y.js"), "docs/x/y.js");
        assert_eq!(relative("/docs", "/a:b"), "./a:b");
    }

    #[test]
    fn page_names_its_assets_and_escapes_the_title() {
        let served = build("/docs", "/openapi.json", "<Items & Co>");
        let paths: Vec<&str> = served.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths[0], "/docs");
        assert!(paths.contains(&"/docs/swagger-ui-5.35.0/swagger-ui-bundle.js"));
        let page = served[0].1.respond(&http::HeaderMap::new());
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        assert!(page.headers().contains_key("content-security-policy"));
    }
}
