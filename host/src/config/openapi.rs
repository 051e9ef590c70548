//! `[openapi]`: whether the host serves an OpenAPI document of its routes and a docs page,
//! where, and what the document's `info` says (see `crate::openapi`).

use serde::Deserialize;
use toml::Spanned;

use super::{Location, ResolvedProcess, RouteConfig, Source};
use crate::config::ConfigError;

/// Where the document is served unless `[openapi] path` says otherwise (FastAPI's path).
pub const DEFAULT_PATH: &str = "/openapi.json";
/// Where the docs page is served unless `[openapi] docs_path` says otherwise.
pub const DEFAULT_DOCS_PATH: &str = "/docs";

/// The resolved `[openapi]` table. Off by default: its paths could shadow an application's.
#[derive(Debug, Clone, Default)]
pub struct OpenApiConfig {
    /// Whether the document (and docs page) are served.
    pub enabled: bool,
    /// The document's path (default `/openapi.json`).
    pub path: String,
    /// The docs page's path (default `/docs`); `None` when `docs_path = false`.
    pub docs_path: Option<String>,
    /// `info.title`, over what plugins declare.
    pub title: Option<String>,
    /// `info.version`, over what plugins declare.
    pub version: Option<String>,
    /// `info.description`, over what plugins declare.
    pub description: Option<String>,
    /// Where `path` is written (or the table, or the file), for collision messages.
    pub path_at: Option<Location>,
    /// Where `docs_path` is written (or the table), for collision messages.
    pub docs_at: Option<Location>,
}

/// `[openapi]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOpenApi {
    enabled: Option<bool>,
    path: Option<Spanned<String>>,
    docs_path: Option<Spanned<RawDocsPath>>,
    title: Option<String>,
    version: Option<String>,
    description: Option<String>,
}

/// `docs_path = "/docs"` or `docs_path = false`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDocsPath {
    Path(String),
    Switch(bool),
}

/// Checks `[openapi]` (when present) against the other host-answered paths and the config's
/// routes and static mounts; routes plugins register are checked when routes are built
/// (`crate::openapi::check_paths`).
pub(super) fn resolve(
    source: &Source<'_>,
    raw: Option<Spanned<RawOpenApi>>,
    process: &ResolvedProcess,
    routes: &[RouteConfig],
    statics: &[crate::middleware::static_files::StaticMount],
) -> Result<OpenApiConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(OpenApiConfig {
            path: DEFAULT_PATH.into(),
            docs_path: Some(DEFAULT_DOCS_PATH.into()),
            ..OpenApiConfig::default()
        });
    };
    let table_at = raw.span().start;
    let raw = raw.into_inner();
    let (path, path_offset) = match &raw.path {
        None => (DEFAULT_PATH.to_owned(), table_at),
        Some(p) => (p.get_ref().clone(), p.span().start),
    };
    check_plain(source, path_offset, "openapi.path", &path)?;
    let (docs_path, docs_offset) = match &raw.docs_path {
        None => (Some(DEFAULT_DOCS_PATH.to_owned()), table_at),
        Some(d) => match d.get_ref() {
            RawDocsPath::Path(p) => (Some(p.clone()), d.span().start),
            RawDocsPath::Switch(false) => (None, d.span().start),
            RawDocsPath::Switch(true) => {
                return source.error(
                    d.span().start,
                    "openapi.docs_path",
                    format!(
                    "write a path such as \"{DEFAULT_DOCS_PATH}\", or false to serve no docs page"
                ),
                )
            }
        },
    };
    if let Some(docs) = &docs_path {
        check_plain(source, docs_offset, "openapi.docs_path", docs)?;
        if *docs == path {
            return source.error(
                docs_offset,
                "openapi.docs_path",
                "is the same path as openapi.path; give the docs page its own path",
            );
        }
    }
    let config = OpenApiConfig {
        enabled: raw.enabled.unwrap_or(false),
        path,
        docs_path,
        title: raw.title,
        version: raw.version,
        description: raw.description,
        path_at: Some(source.at(path_offset)),
        docs_at: Some(source.at(docs_offset)),
    };
    if config.enabled {
        let mine = [
            ("openapi.path", path_offset, Some(&config.path)),
            ("openapi.docs_path", docs_offset, config.docs_path.as_ref()),
        ];
        for (field, offset, path) in mine {
            let Some(path) = path else { continue };
            check_against_others(source, (field, offset, path), process, routes, statics)?;
        }
    }
    Ok(config)
}

/// A route's `openapi = { … }` table, checked like a plugin's `openapi` object (see
/// `crate::openapi::RouteMeta`); the error points at the table.
pub(super) fn route_meta(
    source: &Source<'_>,
    table: Option<Spanned<toml::Table>>,
    route_field: &str,
) -> Result<crate::openapi::RouteMeta, ConfigError> {
    let Some(table) = table else {
        return Ok(crate::openapi::RouteMeta::default());
    };
    let offset = table.span().start;
    let field = format!("{route_field}.openapi");
    let value = serde_json::to_value(table.into_inner())
        .or_else(|e| source.error(offset, &field, format!("cannot convert to JSON: {e}")))?;
    crate::openapi::RouteMeta::parse(&value).or_else(|message| source.error(offset, field, message))
}

/// A plain absolute path: no parameters, query, fragment or empty segment.
fn check_plain(
    source: &Source<'_>,
    offset: usize,
    field: &str,
    path: &str,
) -> Result<(), ConfigError> {
    if !path.starts_with('/') || path.contains(['{', '}', '?', '#']) || path.contains("//") {
        return source.error(
            offset,
            field,
            format!(
                "`{path}` must be a plain absolute path without parameters, e.g. \"/openapi.json\""
            ),
        );
    }
    Ok(())
}

/// One of `[openapi]`'s paths against the health and metrics paths, the config's routes and
/// the `[[static]]` prefixes: two answers for one path is a mistake.
fn check_against_others(
    source: &Source<'_>,
    (field, offset, path): (&str, usize, &str),
    process: &ResolvedProcess,
    routes: &[RouteConfig],
    statics: &[crate::middleware::static_files::StaticMount],
) -> Result<(), ConfigError> {
    if let Some((other, _, _)) = process.paths.iter().find(|(_, _, p)| p == path) {
        return source.error(
            offset,
            field,
            format!("`{path}` is also {other}; give each host-answered path its own"),
        );
    }
    for (i, route) in routes.iter().enumerate() {
        if super::template_matches(&route.path, path) {
            return source.error(
                offset,
                field,
                format!(
                    "`{path}` is also matched by routes[{i}] {} {} (line {}); choose a path no route serves, or move the route",
                    route.method, route.path, route.at.line
                ),
            );
        }
    }
    // The path under a mount, or (for the docs page's assets) a mount under the path.
    let under = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if let Some(mount) = statics
        .iter()
        .find(|m| under(path, &m.prefix) || under(&m.prefix, path))
    {
        return source.error(
            offset,
            field,
            format!(
                "`{path}` overlaps the static files mounted at {}; choose a path outside them",
                mount.prefix
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;

    #[test]
    fn defaults_keys_and_mistakes() {
        let c = parse(Path::new("t.toml"), "").unwrap();
        assert!(!c.openapi.enabled);
        assert_eq!(c.openapi.path, "/openapi.json");
        assert_eq!(c.openapi.docs_path.as_deref(), Some("/docs"));
        let c = parse(
            Path::new("t.toml"),
            "[openapi]\nenabled = true\npath = \"/api.json\"\ndocs_path = false\ntitle = \"T\"\nversion = \"1\"\ndescription = \"D\"\n",
        )
        .unwrap();
        let o = &c.openapi;
        assert!(o.enabled && o.docs_path.is_none());
        assert_eq!(
            (o.path.as_str(), o.title.as_deref()),
            ("/api.json", Some("T"))
        );
        let err = |text: &str| parse(Path::new("t.toml"), text).unwrap_err().to_string();
        assert!(err("[openapi]\npath = \"/a/{x}\"\n").starts_with("t.toml:2:8: openapi.path: "));
        assert!(err("[openapi]\ndocs_path = \"/openapi.json\"\n")
            .contains("openapi.docs_path: is the same path as openapi.path"));
        assert!(err("[openapi]\nenable = true\n").starts_with("t.toml:2:1:"));
        // A route's `openapi` table is checked whether or not [openapi] is on.
        let route = "[[plugins]]\nname = \"e\"\nlibrary = \"x\"\n[[routes]]\nmethod = \"GET\"\npath = \"/\"\nplugin = \"e\"\nhandler = \"h\"\nopenapi = { tags = \"x\" }\n";
        assert!(
            err(route).starts_with("t.toml:9:11: routes[0].openapi: openapi.tags must be a list")
        );
        let ok = route.replace("tags = \"x\"", "tags = [\"x\"], include = false");
        let c = parse(Path::new("t.toml"), &ok).unwrap();
        assert_eq!(c.routes[0].openapi.tags, ["x"]);
        assert!(!c.routes[0].openapi.include);
    }
}
