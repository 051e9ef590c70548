//! `spikard.toml`: parsing, checking and resolving the operator's config.
//!
//! Every mistake is reported as one [`ConfigError`] naming the file, line,
//! field and fix, because an operator reading a start-up failure should not
//! need the source code to correct it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::validation::SchemaSpec;

mod openapi;
mod policies;

pub use openapi::OpenApiConfig;
pub use policies::{Applied, Level, Policies};

/// The resolved configuration the server runs on.
#[derive(Debug)]
pub struct Config {
    /// The file it came from, for messages.
    pub file: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[[plugins]]`, in file order.
    pub plugins: Vec<PluginConfig>,
    /// `[[routes]]`, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[server.<policy>]` and `[[policies]]`: the middleware every route may get.
    pub policies: Policies,
    /// `[[static]]`: directories served under URL prefixes.
    pub statics: Vec<crate::middleware::static_files::StaticMount>,
    /// `[openapi]`: the OpenAPI document and docs page the host serves (off by default).
    pub openapi: OpenApiConfig,
}

/// `[server]`: how the host listens and behaves for every route.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; `--listen` overrides it.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Prefix of Problem Details `type` URIs; `None` means `about:blank`.
    pub problem_type_base: Option<String>,
    /// One log line per request at INFO, target `spikard::access`.
    pub access_log: bool,
    /// How long a plugin may take to answer before the client gets a 504 (a route's
    /// `request_timeout_ms` overrides it).
    pub request_timeout: Duration,
    /// The header a client's request id is read from and the response's id is written to
    /// (`request_id_header`, default `x-request-id`).
    pub request_id_header: http::HeaderName,
    /// Whether responses carry the request id header (`request_ids`, default true; a
    /// route's `request_id` overrides it).
    pub request_ids: bool,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// Async worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// Largest request head (request line and headers) in bytes; larger gets a 431.
    pub max_header_bytes: usize,
    /// Deepest nesting of arrays and objects a JSON body may have.
    pub max_json_depth: usize,
    /// Most validation errors listed in one 422; the others are counted (`errors_omitted`).
    pub max_validation_errors: usize,
    /// How long a client may hold a connection without making progress.
    pub connections: ConnectionConfig,
    /// How the host runs: one process, or a supervisor and its worker processes.
    pub process: ProcessConfig,
    /// `[server.security_headers]`: headers added to every response; `None` when off.
    pub security_headers:
        Option<std::sync::Arc<crate::middleware::security_headers::SecurityHeaders>>,
}

/// `[server]` keys of the process model (see `crate::process`): worker processes, the pid
/// file for scripts that signal the host, the host-answered health paths and the time a
/// draining worker keeps serving while it reports not ready.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessConfig {
    /// Worker processes; `None` means one process without a supervisor (the default).
    pub processes: Option<Processes>,
    /// Where the serving process writes its pid; relative to the config file.
    pub pid_file: Option<PathBuf>,
    /// Liveness path answered by the host (200 while the process serves).
    pub health_path: Option<String>,
    /// Readiness path answered by the host (200 while serving, 503 while draining).
    pub ready_path: Option<String>,
    /// Prometheus metrics path answered by the host (`crate::middleware::metrics`).
    pub metrics_path: Option<String>,
    /// After a stop signal, how long the process keeps accepting and serving while its
    /// readiness path answers 503, so a load balancer takes it out first. Default zero.
    pub drain_delay: Duration,
}

/// `server.processes`: a count, or one per core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processes {
    /// Exactly this many (at least 1).
    Count(usize),
    /// One per core (`"auto"`).
    Auto,
}

impl Processes {
    /// Parses `"auto"` or a count of at least 1 (for `--processes`).
    pub fn parse(text: &str) -> Result<Processes, String> {
        if text.trim() == "auto" {
            return Ok(Processes::Auto);
        }
        match text.trim().parse::<usize>() {
            Ok(n @ 1..=MAX_PROCESSES) => Ok(Processes::Count(n)),
            _ => Err(format!(
                "`{text}` is not a process count; write a number from 1 to {MAX_PROCESSES} or \"auto\" (one per core)"
            )),
        }
    }

    /// How many worker processes this means on this machine.
    pub fn count(self) -> usize {
        match self {
            Processes::Count(n) => n,
            Processes::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Most worker processes accepted; more is a typo, not a policy.
pub const MAX_PROCESSES: usize = 1024;

/// `[server]` keys that bound what one client connection may hold: time to send a request
/// head, idle time between requests, time to send a body, and how many connections are open
/// at once. Without them a few slow or idle sockets hold memory and file descriptors for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// The whole request head (request line and headers) must arrive within this time, counted
    /// from the connection's accept or from the first byte of a later request.
    pub header_read_timeout: Duration,
    /// A kept-alive connection idle this long between requests is closed.
    pub keepalive_timeout: Duration,
    /// The whole request body must arrive within this time; else 408 and the connection closes.
    pub body_read_timeout: Duration,
    /// Most connections open at once; at the cap the host stops accepting until one closes.
    pub max_connections: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            header_read_timeout: Duration::from_millis(DEFAULT_HEADER_READ_TIMEOUT_MS),
            keepalive_timeout: Duration::from_millis(DEFAULT_KEEPALIVE_TIMEOUT_MS),
            body_read_timeout: Duration::from_millis(DEFAULT_BODY_READ_TIMEOUT_MS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// One `[[plugins]]` entry.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The name routes use to refer to it.
    pub name: String,
    /// The resolved library path.
    pub library: PathBuf,
    /// The `settings` table as JSON, handed to the plugin's `init`.
    pub settings_json: String,
    /// Where it is declared, for messages.
    pub at: Location,
    /// The config file's absolute directory, for relative paths in settings.
    pub config_dir: PathBuf,
    /// How many requests the plugin may hold at once before the host answers 503
    /// (default: `crate::plugin::admission::default_max_in_flight`).
    pub max_in_flight: usize,
    /// `watch`: the files and directories `--reload` watches for this plugin, absolute
    /// (`None`: the config file's directory tree).
    pub watch: Option<Vec<PathBuf>>,
}

/// Largest `max_in_flight` accepted; more is a typo, not a policy.
pub const MAX_MAX_IN_FLIGHT: usize = 10_000_000;

/// One `[[routes]]` entry.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Upper-case HTTP method.
    pub method: http::Method,
    /// Path template with `{name}` segments.
    pub path: String,
    /// Index into [`Config::plugins`].
    pub plugin: usize,
    /// The plugin's handler name.
    pub handler: String,
    /// The route's `settings` table as JSON, handed to `bind_route`.
    pub settings_json: String,
    /// Parameter and body schemas.
    pub schemas: SchemaSpec,
    /// JSON Schema the plugin's JSON responses must match.
    pub response: Option<Value>,
    /// Overrides `server.body_limit` for this route.
    pub body_limit: Option<usize>,
    /// Overrides `server.max_json_depth` for this route.
    pub max_json_depth: Option<usize>,
    /// Overrides `server.request_timeout_ms` for this route.
    pub request_timeout: Option<Duration>,
    /// Overrides `server.request_ids` (the response's request id header) for this route.
    pub request_id: Option<bool>,
    /// `stream_body`: the plugin reads the body itself, chunk by chunk (ABI 1.1 `body_next`),
    /// instead of receiving it whole; never together with a `body` schema.
    pub stream_body: bool,
    /// The route's own policy keys (`cors`, `auth`, `rate_limit`, `compression`).
    pub policies: Level,
    /// `openapi = { … }`: how the route appears in the OpenAPI document.
    pub openapi: crate::openapi::RouteMeta,
    /// Where it is declared, for messages.
    pub at: Location,
}

/// A place in the config file.
#[derive(Debug, Clone)]
pub struct Location {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A config mistake: where, which field, what is wrong and how to fix it.
#[derive(Debug)]
pub struct ConfigError {
    /// Where it is, when known.
    pub at: Option<Location>,
    /// The file, when `at` is unknown.
    pub file: PathBuf,
    /// The field, e.g. `routes[2].path`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(f, "{at}: ")?,
            None => write!(f, "{}: ", self.file.display())?,
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    plugins: Vec<Spanned<RawPlugin>>,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    policies: Vec<Spanned<policies::RawPolicy>>,
    #[serde(default, rename = "static")]
    statics: Vec<Spanned<crate::middleware::static_files::RawStatic>>,
    #[serde(default)]
    openapi: Option<Spanned<openapi::RawOpenApi>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    body_limit: Option<Spanned<ByteSize>>,
    problem_type_base: Option<String>,
    access_log: Option<bool>,
    request_timeout_ms: Option<Spanned<u64>>,
    request_id_header: Option<Spanned<String>>,
    request_ids: Option<bool>,
    shutdown_timeout_ms: Option<u64>,
    workers: Option<Spanned<usize>>,
    max_header_bytes: Option<Spanned<ByteSize>>,
    max_json_depth: Option<Spanned<usize>>,
    max_validation_errors: Option<Spanned<usize>>,
    header_read_timeout_ms: Option<Spanned<u64>>,
    keepalive_timeout_ms: Option<Spanned<u64>>,
    body_read_timeout_ms: Option<Spanned<u64>>,
    max_connections: Option<Spanned<u64>>,
    processes: Option<Spanned<RawProcesses>>,
    pid_file: Option<String>,
    health_path: Option<Spanned<String>>,
    ready_path: Option<Spanned<String>>,
    metrics_path: Option<Spanned<String>>,
    drain_delay_ms: Option<Spanned<u64>>,
    security_headers: Option<crate::middleware::security_headers::RawSecurityHeaders>,
    cors: Option<crate::middleware::policy::Toggle<crate::middleware::cors::RawCors>>,
    auth: Option<crate::middleware::policy::Toggle<crate::middleware::auth::RawAuth>>,
    rate_limit:
        Option<crate::middleware::policy::Toggle<crate::middleware::rate_limit::RawRateLimit>>,
    compression:
        Option<crate::middleware::policy::Toggle<crate::middleware::compression::RawCompression>>,
}

/// `processes = 2` or `processes = "auto"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawProcesses {
    Count(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: Spanned<String>,
    library: Spanned<String>,
    #[serde(default)]
    settings: Option<toml::Table>,
    #[serde(default)]
    max_in_flight: Option<Spanned<usize>>,
    #[serde(default)]
    watch: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    method: Spanned<String>,
    path: Spanned<String>,
    plugin: Spanned<String>,
    handler: Spanned<String>,
    #[serde(default)]
    settings: Option<toml::Table>,
    #[serde(default)]
    params: Option<RawParams>,
    #[serde(default)]
    body: Option<Spanned<SchemaSource>>,
    #[serde(default)]
    response: Option<Spanned<SchemaSource>>,
    #[serde(default)]
    body_limit: Option<Spanned<ByteSize>>,
    #[serde(default)]
    max_json_depth: Option<Spanned<usize>>,
    #[serde(default)]
    request_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    request_id: Option<bool>,
    #[serde(default)]
    stream_body: Option<Spanned<bool>>,
    #[serde(default)]
    openapi: Option<Spanned<toml::Table>>,
    cors: Option<crate::middleware::policy::Toggle<crate::middleware::cors::RawCors>>,
    auth: Option<crate::middleware::policy::Toggle<crate::middleware::auth::RawAuth>>,
    rate_limit:
        Option<crate::middleware::policy::Toggle<crate::middleware::rate_limit::RawRateLimit>>,
    compression:
        Option<crate::middleware::policy::Toggle<crate::middleware::compression::RawCompression>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    path: Option<Spanned<SchemaSource>>,
    query: Option<Spanned<SchemaSource>>,
    headers: Option<Spanned<SchemaSource>>,
    cookies: Option<Spanned<SchemaSource>>,
}

/// A schema written inline as a table, or the path of a `.json` file
/// relative to the config file.
#[derive(Deserialize)]
#[serde(untagged)]
enum SchemaSource {
    File(String),
    Inline(toml::Table),
}

/// A size in bytes: an integer, or a string such as `"64KiB"` or `"1MB"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl ByteSize {
    fn bytes(&self) -> Result<usize, String> {
        match self {
            ByteSize::Bytes(n) => Ok(*n as usize),
            ByteSize::Text(t) => parse_size(t).map(|n| n as usize),
        }
    }
}

/// A size as the config writes it: `1048576`, `"64KiB"`, `"1 MB"` (B, KB, KiB, MB, MiB, GB,
/// GiB); the one parser of every size key, policies' included.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("`{text}` is not a size; write e.g. 1048576, \"64KiB\" or \"1MiB\"")
    })?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}`; use B, KB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    Ok(n.saturating_mul(factor))
}

/// The default address, as documented in the README.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// The default body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// The default request head limit: 16 KiB, as Node.js (8 KiB refuses real browsers with
/// many cookies or large tokens).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 << 10;
/// The smallest head limit accepted: a request line and a few headers must fit.
pub const MIN_HEADER_BYTES: usize = 1024;
/// The default JSON nesting limit.
pub const DEFAULT_MAX_JSON_DEPTH: usize = 32;
/// The JSON parser refuses deeper input whatever the limit.
pub const MAX_JSON_DEPTH: usize = 127;
/// The most validation errors a 422 may list: more is a response no client reads.
pub const MAX_VALIDATION_ERRORS: usize = 10_000;
/// Default time a plugin has to answer: 30 s.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Longest request timeout accepted: one hour; longer is a mistake, not a policy.
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 3_600_000;
/// The default request id header.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";
/// Default time for a request head to arrive: 10 s, generous for real clients on slow
/// links, short enough that slowloris sockets do not pile up.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Default idle time between requests on a kept-alive connection: 30 s.
pub const DEFAULT_KEEPALIVE_TIMEOUT_MS: u64 = 30_000;
/// Default time for a whole request body to arrive: 30 s.
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 30_000;
/// Longest connection timeout accepted: one hour; longer is a mistake, not a policy.
pub const MAX_CONNECTION_TIMEOUT_MS: u64 = 3_600_000;
/// Default cap on open connections (lowered at start-up to what the fd limit allows).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Largest `max_connections` accepted: Linux's default per-process fd ceiling (`nr_open`).
pub const MAX_MAX_CONNECTIONS: usize = 1 << 20;

/// Converts byte offsets into [`Location`]s for one file.
struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn at(&self, offset: usize) -> Location {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        Location {
            file: self.file.to_path_buf(),
            line,
            column,
        }
    }

    fn error<T>(
        &self,
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            at: Some(self.at(offset)),
            file: self.file.to_path_buf(),
            field: field.into(),
            message: message.into(),
        })
    }
}

/// Reads and checks a config file.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        at: None,
        file: file.to_path_buf(),
        field: String::new(),
        message: format!("cannot read the config file: {e}; pass an existing file with --config"),
    })?;
    parse(file, &text)
}

/// Checks config text as if read from `file` (which anchors relative paths).
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let source = Source { file, text };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| source.at(s.start));
        ConfigError {
            at,
            file: file.to_path_buf(),
            field: String::new(),
            message: e.message().trim_end().to_owned() + "; see the config reference in README.md",
        }
    })?;
    // `spikard.toml` given as a bare name has the parent "", which is the current directory.
    let base = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let process = resolve_process(&source, base, &raw.server)?;
    let server_policies = policies::resolve(
        &source,
        policies::RawKeys {
            cors: raw.server.cors.as_ref(),
            auth: raw.server.auth.as_ref(),
            rate_limit: raw.server.rate_limit.as_ref(),
            compression: raw.server.compression.as_ref(),
        },
        &raw.policies,
        base,
    )?;
    let mut server = resolve_server(&source, raw.server)?;

    let mut plugins: Vec<PluginConfig> = Vec::new();
    for (i, plugin) in raw.plugins.into_iter().enumerate() {
        let span = plugin.span();
        let plugin = plugin.into_inner();
        let field = format!("plugins[{i}]");
        let name = plugin.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return source.error(
                plugin.name.span().start,
                format!("{field}.name"),
                "is empty; give the plugin a name that routes can refer to",
            );
        }
        if plugins.iter().any(|p| p.name == name) {
            return source.error(
                plugin.name.span().start,
                format!("{field}.name"),
                format!(
                    "a plugin named `{name}` is already declared; give each plugin a unique name"
                ),
            );
        }
        let library = resolve_library(base, plugin.library.get_ref());
        let max_in_flight = match plugin.max_in_flight {
            None => crate::plugin::admission::default_max_in_flight(),
            Some(n) if (1..=MAX_MAX_IN_FLIGHT).contains(n.get_ref()) => n.into_inner(),
            Some(n) => {
                return source.error(
                    n.span().start,
                    format!("{field}.max_in_flight"),
                    format!("must be between 1 and {MAX_MAX_IN_FLIGHT}; it bounds the requests the plugin holds at once"),
                )
            }
        };
        let config_dir = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        let mut watch = None;
        if let Some(entries) = plugin.watch {
            let mut paths = Vec::with_capacity(entries.len());
            for entry in entries {
                if entry.get_ref().trim().is_empty() {
                    return source.error(
                        entry.span().start,
                        format!("{field}.watch"),
                        "has an empty entry; list files or directories, relative to this file, that --reload should watch",
                    );
                }
                paths.push(config_dir.join(entry.get_ref()));
            }
            watch = Some(paths);
        }
        plugins.push(PluginConfig {
            name,
            library,
            settings_json: table_json(plugin.settings),
            at: source.at(span.start),
            config_dir,
            max_in_flight,
            watch,
        });
    }

    let mut routes: Vec<RouteConfig> = Vec::new();
    for (i, route) in raw.routes.into_iter().enumerate() {
        let span = route.span();
        let route = route.into_inner();
        let field = format!("routes[{i}]");
        let method_text = route.method.get_ref().trim().to_ascii_uppercase();
        let method = http::Method::from_bytes(method_text.as_bytes())
            .ok()
            .filter(|_| {
                !method_text.is_empty() && method_text.bytes().all(|b| b.is_ascii_alphabetic())
            });
        let Some(method) = method else {
            return source.error(route.method.span().start, format!("{field}.method"), format!("`{}` is not an HTTP method; use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS", route.method.get_ref()));
        };
        let path = route.path.get_ref().clone();
        if let Err(message) = check_path(&path) {
            return source.error(route.path.span().start, format!("{field}.path"), message);
        }
        let plugin_name = route.plugin.get_ref();
        let Some(plugin) = plugins.iter().position(|p| &p.name == plugin_name) else {
            let known: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
            return source.error(
                route.plugin.span().start,
                format!("{field}.plugin"),
                format!(
                    "no plugin named `{plugin_name}`; declare it under [[plugins]] (declared: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        };
        if let Some(other) = routes
            .iter()
            .find(|r| r.method == method && same_shape(&r.path, &path))
        {
            return source.error(span.start, field, format!("duplicate route {method} {path}: already declared at line {}; remove one or change its method or path", other.at.line));
        }
        let mut schemas = SchemaSpec::default();
        if let Some(params) = route.params {
            let slots = [
                (params.path, &mut schemas.path, "params.path"),
                (params.query, &mut schemas.query, "params.query"),
                (params.headers, &mut schemas.headers, "params.headers"),
                (params.cookies, &mut schemas.cookies, "params.cookies"),
            ];
            for (raw, slot, name) in slots {
                if let Some(raw) = raw {
                    *slot = Some(schema_value(
                        &source,
                        base,
                        raw,
                        &format!("{field}.{name}"),
                    )?);
                }
            }
        }
        let stream_body = route.stream_body.as_ref().is_some_and(|s| *s.get_ref());
        if let Some(body) = route.body {
            if let Some(stream) = route.stream_body.as_ref().filter(|s| *s.get_ref()) {
                return source.error(
                    stream.span().start,
                    format!("{field}.stream_body"),
                    "a streamed body reaches the plugin unread, so the host cannot validate it against the route's `body` schema; remove `body` (the plugin checks what it reads) or `stream_body`",
                );
            }
            schemas.body = Some(schema_value(&source, base, body, &format!("{field}.body"))?);
        }
        let response = match route.response {
            None => None,
            Some(raw) => Some(schema_value(
                &source,
                base,
                raw,
                &format!("{field}.response"),
            )?),
        };
        let body_limit = match route.body_limit {
            None => None,
            Some(limit) => match limit.get_ref().bytes() {
                Ok(n) => Some(n),
                Err(message) => {
                    return source.error(limit.span().start, format!("{field}.body_limit"), message)
                }
            },
        };
        let max_json_depth = match route.max_json_depth {
            None => None,
            Some(depth) => Some(json_depth(
                &source,
                depth,
                &format!("{field}.max_json_depth"),
            )?),
        };
        let request_timeout = match route.request_timeout_ms {
            None => None,
            Some(ms) => Some(request_timeout(
                &source,
                &ms,
                &format!("{field}.request_timeout_ms"),
            )?),
        };
        let policies = policies::resolve_level(
            &source,
            policies::RawKeys {
                cors: route.cors.as_ref(),
                auth: route.auth.as_ref(),
                rate_limit: route.rate_limit.as_ref(),
                compression: route.compression.as_ref(),
            },
            &field,
            base,
        )?;
        let openapi = openapi::route_meta(&source, route.openapi, &field)?;
        routes.push(RouteConfig {
            method,
            path,
            plugin,
            handler: route.handler.get_ref().clone(),
            settings_json: table_json(route.settings),
            schemas,
            response,
            body_limit,
            max_json_depth,
            request_timeout,
            request_id: route.request_id,
            stream_body,
            policies,
            openapi,
            at: source.at(span.start),
        });
    }

    check_health_paths(&source, &process, &routes)?;
    let statics = resolve_statics(&source, &raw.statics, base)?;
    let openapi = openapi::resolve(&source, raw.openapi, &process, &routes, &statics)?;
    server.process = process.config;

    Ok(Config {
        file: file.to_path_buf(),
        server,
        plugins,
        routes,
        policies: server_policies,
        statics,
        openapi,
    })
}

/// `[[static]]` mounts, each checked on its own (the router checks them against routes).
fn resolve_statics(
    source: &Source<'_>,
    raw: &[Spanned<crate::middleware::static_files::RawStatic>],
    base: &Path,
) -> Result<Vec<crate::middleware::static_files::StaticMount>, ConfigError> {
    let mut mounts: Vec<crate::middleware::static_files::StaticMount> = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        let field = format!("static[{i}]");
        let mount =
            crate::middleware::static_files::StaticMount::resolve(entry.get_ref(), &field, base)
                .or_else(|(offset, field, message)| source.error(offset, field, message))?;
        if let Some(other) = mounts.iter().position(|m| m.prefix == mount.prefix) {
            return source.error(
                entry.span().start,
                format!("{field}.prefix"),
                format!(
                    "`{}` is already mounted by static[{other}]; give each mount its own prefix",
                    mount.prefix
                ),
            );
        }
        mounts.push(mount);
    }
    Ok(mounts)
}

/// [`ProcessConfig`] with where its health paths are written, for collision messages.
struct ResolvedProcess {
    config: ProcessConfig,
    /// (field, byte offset, path) of `health_path` and `ready_path`.
    paths: Vec<(&'static str, usize, String)>,
}

/// The process-model keys of `[server]`.
fn resolve_process(
    source: &Source<'_>,
    base: &Path,
    raw: &RawServer,
) -> Result<ResolvedProcess, ConfigError> {
    let processes = match &raw.processes {
        None => None,
        Some(p) => {
            let parsed = match p.get_ref() {
                RawProcesses::Count(n) => Processes::parse(&n.to_string()),
                RawProcesses::Text(t) => Processes::parse(t),
            };
            match parsed {
                Ok(n) => Some(n),
                Err(message) => return source.error(p.span().start, "server.processes", message),
            }
        }
    };
    let mut paths = Vec::new();
    for (field, value) in [
        ("server.health_path", &raw.health_path),
        ("server.ready_path", &raw.ready_path),
        ("server.metrics_path", &raw.metrics_path),
    ] {
        let Some(value) = value else { continue };
        let path = value.get_ref().clone();
        if !path.starts_with('/') || path.contains(['{', '}', '?', '#']) || path.contains("//") {
            return source.error(
                value.span().start,
                field,
                format!(
                    "`{path}` must be a plain absolute path without parameters, e.g. \"/healthz\""
                ),
            );
        }
        if let Some((other, _, _)) = paths.iter().find(|(_, _, p)| *p == path) {
            return source.error(
                value.span().start,
                field,
                format!("is the same path as {other}; give each host-answered path its own"),
            );
        }
        paths.push((field, value.span().start, path));
    }
    let drain_delay = match &raw.drain_delay_ms {
        None => Duration::ZERO,
        Some(ms) => match *ms.get_ref() {
            n @ 0..=MAX_CONNECTION_TIMEOUT_MS => Duration::from_millis(n),
            _ => {
                return source.error(
                    ms.span().start,
                    "server.drain_delay_ms",
                    format!("must be between 0 and {MAX_CONNECTION_TIMEOUT_MS} milliseconds; the default is 0"),
                )
            }
        },
    };
    let path_of = |field: &str| {
        paths
            .iter()
            .find(|(f, _, _)| *f == field)
            .map(|(_, _, p)| p.clone())
    };
    Ok(ResolvedProcess {
        config: ProcessConfig {
            processes,
            pid_file: raw.pid_file.as_ref().map(|f| base.join(f)),
            health_path: path_of("server.health_path"),
            ready_path: path_of("server.ready_path"),
            metrics_path: path_of("server.metrics_path"),
            drain_delay,
        },
        paths,
    })
}

/// A health path that a configured route would also match is a start-up error naming both:
/// the host answers it first, so the route could never be reached.
fn check_health_paths(
    source: &Source<'_>,
    process: &ResolvedProcess,
    routes: &[RouteConfig],
) -> Result<(), ConfigError> {
    for (field, offset, path) in &process.paths {
        for (i, route) in routes.iter().enumerate() {
            if template_matches(&route.path, path) {
                return source.error(
                    *offset,
                    *field,
                    format!(
                        "`{path}` is also matched by routes[{i}] {} {} (line {}); choose a health path no route serves",
                        route.method, route.path, route.at.line
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Whether the route template `template` matches the literal request path `path`.
pub(crate) fn template_matches(template: &str, path: &str) -> bool {
    let mut want = path.split('/');
    for segment in template.split('/') {
        if segment.starts_with("{*") {
            return want.next().is_some_and(|s| !s.is_empty());
        }
        match want.next() {
            Some(s) if segment.starts_with('{') => {
                if s.is_empty() {
                    return false;
                }
            }
            Some(s) if s == segment => {}
            _ => return false,
        }
    }
    want.next().is_none()
}

fn resolve_server(source: &Source<'_>, raw: RawServer) -> Result<ServerConfig, ConfigError> {
    let connections = resolve_connections(source, &raw)?;
    let listen = match raw.listen {
        None => DEFAULT_LISTEN.parse().expect("the default address parses"),
        Some(text) => match parse_listen(text.get_ref()) {
            Ok(addr) => addr,
            Err(message) => return source.error(text.span().start, "server.listen", message),
        },
    };
    let body_limit = match raw.body_limit {
        None => DEFAULT_BODY_LIMIT,
        Some(limit) => match limit.get_ref().bytes() {
            Ok(n) => n,
            Err(message) => return source.error(limit.span().start, "server.body_limit", message),
        },
    };
    let workers = match raw.workers {
        Some(w) if *w.get_ref() == 0 => {
            return source.error(
                w.span().start,
                "server.workers",
                "must be at least 1; leave it out for one worker per core",
            )
        }
        w => w.map(Spanned::into_inner),
    };
    let max_header_bytes = match raw.max_header_bytes {
        None => DEFAULT_MAX_HEADER_BYTES,
        Some(limit) => match limit.get_ref().bytes() {
            Ok(n) if n >= MIN_HEADER_BYTES => n,
            Ok(_) => {
                return source.error(
                    limit.span().start,
                    "server.max_header_bytes",
                    format!("must be at least {MIN_HEADER_BYTES}; the default is \"16KiB\""),
                )
            }
            Err(message) => {
                return source.error(limit.span().start, "server.max_header_bytes", message)
            }
        },
    };
    let max_json_depth = match raw.max_json_depth {
        None => DEFAULT_MAX_JSON_DEPTH,
        Some(depth) => json_depth(source, depth, "server.max_json_depth")?,
    };
    let max_validation_errors = validation_errors(source, raw.max_validation_errors.as_ref())?;
    let request_timeout = match &raw.request_timeout_ms {
        None => Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
        Some(ms) => request_timeout(source, ms, "server.request_timeout_ms")?,
    };
    let request_id_header = request_id_header(source, raw.request_id_header.as_ref())?;
    let security_headers = match &raw.security_headers {
        None => None,
        Some(table) => match crate::middleware::security_headers::SecurityHeaders::resolve(table) {
            Ok(set) => Some(std::sync::Arc::new(set)),
            Err((offset, field, message)) => return source.error(offset, field, message),
        },
    };
    Ok(ServerConfig {
        listen,
        body_limit,
        problem_type_base: raw.problem_type_base.filter(|b| !b.is_empty()),
        access_log: raw.access_log.unwrap_or(true),
        request_timeout,
        request_id_header,
        request_ids: raw.request_ids.unwrap_or(true),
        shutdown_timeout: Duration::from_millis(raw.shutdown_timeout_ms.unwrap_or(10_000)),
        workers,
        max_header_bytes,
        max_json_depth,
        max_validation_errors,
        connections,
        process: ProcessConfig::default(),
        security_headers,
    })
}

/// A request timeout, server-wide or per route: 1 ms to one hour.
fn request_timeout(
    source: &Source<'_>,
    ms: &Spanned<u64>,
    field: &str,
) -> Result<Duration, ConfigError> {
    match *ms.get_ref() {
        n @ 1..=MAX_REQUEST_TIMEOUT_MS => Ok(Duration::from_millis(n)),
        _ => source.error(
            ms.span().start,
            field,
            format!("must be between 1 and {MAX_REQUEST_TIMEOUT_MS} milliseconds (one hour); the default is {DEFAULT_REQUEST_TIMEOUT_MS}"),
        ),
    }
}

/// `server.request_id_header`: a header name, kept lower-case; default `x-request-id`.
fn request_id_header(
    source: &Source<'_>,
    raw: Option<&Spanned<String>>,
) -> Result<http::HeaderName, ConfigError> {
    let Some(name) = raw else {
        return Ok(http::HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER));
    };
    http::HeaderName::from_bytes(name.get_ref().trim().as_bytes()).or_else(|_| {
        source.error(
            name.span().start,
            "server.request_id_header",
            format!(
                "`{}` is not a header name; write e.g. \"{DEFAULT_REQUEST_ID_HEADER}\" (letters, digits and -)",
                name.get_ref()
            ),
        )
    })
}

/// `server.max_validation_errors`: 1 to [`MAX_VALIDATION_ERRORS`], default
/// [`DEFAULT_MAX_ERRORS`](crate::validation::DEFAULT_MAX_ERRORS).
fn validation_errors(
    source: &Source<'_>,
    raw: Option<&Spanned<usize>>,
) -> Result<usize, ConfigError> {
    match raw {
        None => Ok(crate::validation::DEFAULT_MAX_ERRORS),
        Some(n) => match *n.get_ref() {
            n @ 1..=MAX_VALIDATION_ERRORS => Ok(n),
            _ => source.error(
                n.span().start,
                "server.max_validation_errors",
                format!(
                    "must be between 1 and {MAX_VALIDATION_ERRORS}; the default is {}",
                    crate::validation::DEFAULT_MAX_ERRORS
                ),
            ),
        },
    }
}

/// The connection keys of `[server]`; each must be at least 1 and not absurdly large.
fn resolve_connections(
    source: &Source<'_>,
    raw: &RawServer,
) -> Result<ConnectionConfig, ConfigError> {
    let timeout = |value: &Option<Spanned<u64>>, field: &str, default: u64| {
        match value {
        None => Ok(Duration::from_millis(default)),
        Some(ms) => match *ms.get_ref() {
            n @ 1..=MAX_CONNECTION_TIMEOUT_MS => Ok(Duration::from_millis(n)),
            _ => source.error(
                ms.span().start,
                format!("server.{field}"),
                format!("must be between 1 and {MAX_CONNECTION_TIMEOUT_MS} milliseconds (one hour); the default is {default}"),
            ),
        },
    }
    };
    let max_connections = match &raw.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(n) => match usize::try_from(*n.get_ref()) {
            Ok(n @ 1..=MAX_MAX_CONNECTIONS) => n,
            _ => {
                return source.error(
                    n.span().start,
                    "server.max_connections",
                    format!("must be between 1 and {MAX_MAX_CONNECTIONS}; the default is {DEFAULT_MAX_CONNECTIONS} (lowered at start-up to what the fd limit allows)"),
                )
            }
        },
    };
    Ok(ConnectionConfig {
        header_read_timeout: timeout(
            &raw.header_read_timeout_ms,
            "header_read_timeout_ms",
            DEFAULT_HEADER_READ_TIMEOUT_MS,
        )?,
        keepalive_timeout: timeout(
            &raw.keepalive_timeout_ms,
            "keepalive_timeout_ms",
            DEFAULT_KEEPALIVE_TIMEOUT_MS,
        )?,
        body_read_timeout: timeout(
            &raw.body_read_timeout_ms,
            "body_read_timeout_ms",
            DEFAULT_BODY_READ_TIMEOUT_MS,
        )?,
        max_connections,
    })
}

fn json_depth(
    source: &Source<'_>,
    depth: Spanned<usize>,
    field: &str,
) -> Result<usize, ConfigError> {
    match *depth.get_ref() {
        n @ 1..=MAX_JSON_DEPTH => Ok(n),
        _ => source.error(
            depth.span().start,
            field,
            format!("must be between 1 and {MAX_JSON_DEPTH} (the JSON parser's own limit)"),
        ),
    }
}

/// Parses `host:port` (also `[::1]:port`), for the config and `--listen`.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            format!("`{text}` is not an address; write host:port, e.g. \"127.0.0.1:8000\"")
        })
}

/// A library path: with a `/` it is relative to the config file; a bare
/// name like `spikard_echo` means `libspikard_echo.so` beside the
/// `spikard-host` executable, so one config works for debug and release
/// builds and for an installed host with its plugins.
fn resolve_library(base: &Path, library: &str) -> PathBuf {
    if library.contains('/') {
        base.join(library)
    } else {
        let file = format!(
            "{}{library}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(&file)))
            .unwrap_or_else(|| PathBuf::from(file))
    }
}

fn table_json(table: Option<toml::Table>) -> String {
    match table {
        None => "{}".to_owned(),
        Some(table) => serde_json::to_string(&table).unwrap_or_else(|_| "{}".to_owned()),
    }
}

fn schema_value(
    source: &Source<'_>,
    base: &Path,
    raw: Spanned<SchemaSource>,
    field: &str,
) -> Result<Value, ConfigError> {
    let offset = raw.span().start;
    match raw.into_inner() {
        SchemaSource::Inline(table) => serde_json::to_value(table)
            .or_else(|e| source.error(offset, field, format!("cannot convert to JSON: {e}"))),
        SchemaSource::File(path) => {
            let full = base.join(&path);
            let text = std::fs::read_to_string(&full).or_else(|e| {
                source.error(
                    offset,
                    field,
                    format!(
                        "cannot read schema file {}: {e}; give a path relative to the config file",
                        full.display()
                    ),
                )
            })?;
            serde_json::from_str(&text).or_else(|e| {
                source.error(
                    offset,
                    field,
                    format!("schema file {} is not JSON: {e}", full.display()),
                )
            })
        }
    }
}

/// Checks a path template: absolute, `{name}` segments with identifier
/// names used once, no empty segments except a trailing slash.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with '/'; write \"/{path}\""));
    }
    let mut names: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() && i + 1 != segments.len() {
            return Err(format!(
                "`{path}` has an empty segment (`//`); remove the extra '/'"
            ));
        }
        if segment.contains('{') || segment.contains('}') {
            let name = segment
                .strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|s| s.strip_prefix('*').unwrap_or(s));
            let valid = name.is_some_and(|n| {
                !n.is_empty()
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !n.starts_with(|c: char| c.is_ascii_digit())
            });
            if !valid {
                return Err(format!("`{segment}` in `{path}` is not a parameter; a parameter is a whole segment like {{item_id}}"));
            }
            let name = name.unwrap_or_default();
            if segment.starts_with("{*") && i + 1 != segments.len() {
                return Err(format!(
                    "catch-all `{segment}` must be the last segment of `{path}`"
                ));
            }
            if names.contains(&name) {
                return Err(format!(
                    "parameter `{name}` appears twice in `{path}`; rename one"
                ));
            }
            names.push(name);
        }
    }
    Ok(())
}

/// Whether two templates match the same requests (`/a/{x}` and `/a/{y}` do).
pub fn same_shape(a: &str, b: &str) -> bool {
    fn shape(p: &str) -> impl Iterator<Item = &str> {
        p.split('/').map(|s| {
            if s.starts_with("{*") {
                "{*}"
            } else if s.starts_with('{') {
                "{}"
            } else {
                s
            }
        })
    }
    shape(a).eq(shape(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("t.toml"), text).unwrap_err().to_string()
    }

    const PLUGIN: &str = "[[plugins]]\nname = \"echo\"\nlibrary = \"spikard_echo\"\n";

    #[test]
    fn unknown_key_names_line() {
        let e = err("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
        assert!(e.starts_with("t.toml:3:1:"), "{e}");
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn a_streamed_body_cannot_have_a_body_schema() {
        let route = "[[routes]]\nmethod=\"POST\"\npath=\"/up\"\nplugin=\"echo\"\nhandler=\"upload\"\nstream_body = true\n";
        let c = parse(Path::new("t.toml"), &format!("{PLUGIN}{route}")).unwrap();
        assert!(c.routes[0].stream_body);
        let e = err(&format!(
            "{PLUGIN}{route}[routes.body]\ntype = \"object\"\n"
        ));
        assert!(e.starts_with("t.toml:9:15: routes[0].stream_body"), "{e}");
        assert!(e.contains("`body` schema"), "{e}");
        let off = format!(
            "{PLUGIN}{}[routes.body]\ntype = \"object\"\n",
            route.replace("true", "false")
        );
        assert!(!parse(Path::new("t.toml"), &off).unwrap().routes[0].stream_body);
    }

    #[test]
    fn bad_path_and_duplicate_route() {
        let e = err(&format!("{PLUGIN}[[routes]]\nmethod=\"GET\"\npath=\"items\"\nplugin=\"echo\"\nhandler=\"echo\"\n"));
        assert!(e.contains("t.toml:6:6: routes[0].path"), "{e}");
        let route =
            "[[routes]]\nmethod=\"GET\"\npath=\"/a/{x}\"\nplugin=\"echo\"\nhandler=\"echo\"\n";
        let e = err(&format!("{PLUGIN}{route}{}", route.replace("{x}", "{y}")));
        assert!(
            e.contains("routes[1]: duplicate route GET /a/{y}: already declared at line 4"),
            "{e}"
        );
    }

    #[test]
    fn plugin_watch_is_relative_to_the_config_and_refuses_empty_entries() {
        let config = parse(
            Path::new("/srv/app/spikard.toml"),
            &format!("{PLUGIN}watch = [\"src\", \"/opt/lib.py\"]\n"),
        )
        .expect("valid");
        assert_eq!(
            config.plugins[0].watch,
            Some(vec![
                PathBuf::from("/srv/app/src"),
                PathBuf::from("/opt/lib.py")
            ])
        );
        let config = parse(Path::new("/srv/app/spikard.toml"), PLUGIN).expect("valid");
        assert_eq!(config.plugins[0].watch, None);
        let e = err(&format!("{PLUGIN}watch = [\"src\", \" \"]\n"));
        assert!(e.contains("t.toml:4:17: plugins[0].watch"), "{e}");
    }

    #[test]
    fn unknown_plugin_lists_declared() {
        let e = err(&format!(
            "{PLUGIN}[[routes]]\nmethod=\"GET\"\npath=\"/\"\nplugin=\"py\"\nhandler=\"x\"\n"
        ));
        assert!(
            e.contains("routes[0].plugin: no plugin named `py`") && e.contains("declared: echo"),
            "{e}"
        );
    }

    #[test]
    fn sizes_and_defaults() {
        let c = parse(
            Path::new("/etc/s.toml"),
            "[server]\nbody_limit = \"64KiB\"\n",
        )
        .unwrap();
        assert_eq!(c.server.body_limit, 65536);
        assert_eq!(c.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.server.max_header_bytes, 16384);
        assert_eq!(c.server.max_json_depth, 32);
        assert!(err("[server]\nbody_limit = \"3 parsecs\"\n").contains("server.body_limit"));
    }

    #[test]
    fn header_and_depth_limits() {
        let c = parse(
            Path::new("s.toml"),
            &format!("[server]\nmax_header_bytes = \"8KiB\"\nmax_json_depth = 10\n{PLUGIN}[[routes]]\nmethod=\"POST\"\npath=\"/\"\nplugin=\"echo\"\nhandler=\"echo\"\nmax_json_depth = 4\n"),
        )
        .unwrap();
        assert_eq!(c.server.max_header_bytes, 8192);
        assert_eq!(c.server.max_json_depth, 10);
        assert_eq!(c.routes[0].max_json_depth, Some(4));
        assert!(err("[server]\nmax_header_bytes = 100\n")
            .contains("server.max_header_bytes: must be at least 1024"));
        assert!(err("[server]\nmax_json_depth = 0\n")
            .contains("server.max_json_depth: must be between 1 and 127"));
        assert!(err("[server]\nmax_json_depth = 500\n").contains("server.max_json_depth"));
    }

    #[test]
    fn validation_error_limit() {
        let c = parse(Path::new("s.toml"), "").unwrap();
        assert_eq!(c.server.max_validation_errors, 100);
        let c = parse(Path::new("s.toml"), "[server]\nmax_validation_errors = 5\n").unwrap();
        assert_eq!(c.server.max_validation_errors, 5);
        for bad in ["0", "10001"] {
            let e = err(&format!("[server]\n\nmax_validation_errors = {bad}\n"));
            assert!(
                e.starts_with("t.toml:3:")
                    && e.contains("server.max_validation_errors: must be between 1 and 10000"),
                "{e}"
            );
        }
    }

    #[test]
    fn request_ids_and_timeouts() {
        let c = parse(Path::new("s.toml"), "").unwrap();
        assert_eq!(c.server.request_id_header.as_str(), "x-request-id");
        assert!(c.server.request_ids);
        assert_eq!(c.server.request_timeout, Duration::from_secs(30));
        let c = parse(
            Path::new("s.toml"),
            &format!("[server]\nrequest_id_header = \"X-Trace-Id\"\nrequest_ids = false\nrequest_timeout_ms = 900\n{PLUGIN}[[routes]]\nmethod=\"GET\"\npath=\"/\"\nplugin=\"echo\"\nhandler=\"echo\"\nrequest_timeout_ms = 50\nrequest_id = true\n"),
        )
        .unwrap();
        assert_eq!(c.server.request_id_header.as_str(), "x-trace-id");
        assert!(!c.server.request_ids);
        assert_eq!(c.server.request_timeout, Duration::from_millis(900));
        assert_eq!(c.routes[0].request_timeout, Some(Duration::from_millis(50)));
        assert_eq!(c.routes[0].request_id, Some(true));
        let e = err("[server]\nrequest_id_header = \"x request\"\n");
        assert!(
            e.starts_with(
                "t.toml:2:21: server.request_id_header: `x request` is not a header name"
            ),
            "{e}"
        );
        for bad in ["0", "3600001"] {
            let e = err(&format!("[server]\nrequest_timeout_ms = {bad}\n"));
            assert!(
                e.starts_with(
                    "t.toml:2:22: server.request_timeout_ms: must be between 1 and 3600000"
                ),
                "{e}"
            );
            let e = err(&format!("{PLUGIN}[[routes]]\nmethod=\"GET\"\npath=\"/\"\nplugin=\"echo\"\nhandler=\"echo\"\nrequest_timeout_ms = {bad}\n"));
            assert!(
                e.starts_with(
                    "t.toml:9:22: routes[0].request_timeout_ms: must be between 1 and 3600000"
                ),
                "{e}"
            );
        }
        assert!(err(&format!("{PLUGIN}[[routes]]\nmethod=\"GET\"\npath=\"/\"\nplugin=\"echo\"\nhandler=\"echo\"\nrequest_id = \"no\"\n")).starts_with("t.toml:9:"));
    }

    #[test]
    fn path_rules() {
        assert!(check_path("/items/{item_id}").is_ok());
        assert!(check_path("/files/{*rest}").is_ok());
        assert!(check_path("/a/{x}/b/{x}").is_err());
        assert!(check_path("/a/x{y}").is_err());
        assert!(check_path("/a//b").is_err());
        assert!(same_shape("/a/{x}", "/a/{y}"));
        assert!(!same_shape("/a/{x}", "/a/b"));
    }

    #[test]
    fn connection_limits() {
        let c = parse(Path::new("s.toml"), "").unwrap();
        assert_eq!(c.server.connections, ConnectionConfig::default());
        assert_eq!(
            c.server.connections.header_read_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(c.server.connections.max_connections, 10_000);
        let c = parse(
            Path::new("s.toml"),
            "[server]\nheader_read_timeout_ms = 500\nkeepalive_timeout_ms = 700\nbody_read_timeout_ms = 900\nmax_connections = 5\n",
        )
        .unwrap();
        assert_eq!(
            c.server.connections,
            ConnectionConfig {
                header_read_timeout: Duration::from_millis(500),
                keepalive_timeout: Duration::from_millis(700),
                body_read_timeout: Duration::from_millis(900),
                max_connections: 5,
            }
        );
        let e = err("[server]\nheader_read_timeout_ms = 0\n");
        assert!(
            e.starts_with(
                "t.toml:2:26: server.header_read_timeout_ms: must be between 1 and 3600000"
            ),
            "{e}"
        );
        assert!(err("[server]\nkeepalive_timeout_ms = 86400000\n")
            .contains("server.keepalive_timeout_ms: must be between 1 and 3600000"));
        assert!(err("[server]\nbody_read_timeout_ms = 0\n").contains("server.body_read_timeout_ms"));
        assert!(err("[server]\nmax_connections = 0\n")
            .contains("server.max_connections: must be between 1 and 1048576"));
        assert!(err("[server]\nmax_connections = -1\n").starts_with("t.toml:2:19"));
    }

    #[test]
    fn process_keys() {
        let c = parse(Path::new("/etc/s.toml"), "").unwrap();
        assert_eq!(c.server.process, ProcessConfig::default());
        let c = parse(
            Path::new("/etc/s.toml"),
            "[server]\nprocesses = 3\npid_file = \"run/host.pid\"\nhealth_path = \"/healthz\"\nready_path = \"/ready\"\ndrain_delay_ms = 250\n",
        )
        .unwrap();
        let p = &c.server.process;
        assert_eq!(p.processes, Some(Processes::Count(3)));
        assert_eq!(p.pid_file.as_deref(), Some(Path::new("/etc/run/host.pid")));
        assert_eq!(p.health_path.as_deref(), Some("/healthz"));
        assert_eq!(p.ready_path.as_deref(), Some("/ready"));
        assert_eq!(p.drain_delay, Duration::from_millis(250));
        let c = parse(Path::new("s.toml"), "[server]\nprocesses = \"auto\"\n").unwrap();
        assert!(c.server.process.processes.unwrap().count() >= 1);
        for bad in ["0", "-1", "\"many\"", "5000"] {
            let e = err(&format!("[server]\nprocesses = {bad}\n"));
            assert!(e.starts_with("t.toml:2:13: server.processes: "), "{e}");
        }
        assert!(err("[server]\nhealth_path = \"healthz\"\n").contains("server.health_path"));
        assert!(err("[server]\nhealth_path = \"/h\"\nready_path = \"/h\"\n")
            .contains("server.ready_path"));
    }

    #[test]
    fn a_health_path_a_route_matches_is_refused_naming_both() {
        let routes = format!("{PLUGIN}[[routes]]\nmethod=\"GET\"\npath=\"/{{name}}\"\nplugin=\"echo\"\nhandler=\"echo\"\n");
        let e = err(&format!("[server]\nready_path = \"/ready\"\n{routes}"));
        assert!(
            e.starts_with("t.toml:2:14: server.ready_path: `/ready` is also matched by routes[0] GET /{name} (line 6)"),
            "{e}"
        );
        assert!(parse(
            Path::new("t.toml"),
            &format!("[server]\nready_path = \"/a/b\"\n{routes}")
        )
        .is_ok());
        assert!(template_matches("/files/{*rest}", "/files/a/b"));
        assert!(!template_matches("/files/{*rest}", "/files"));
        assert!(template_matches("/healthz", "/healthz"));
        assert!(!template_matches("/a/{x}", "/a"));
    }
}
