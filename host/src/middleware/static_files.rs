//! `[[static]]`: directories served as files under URL prefixes, next to the plugin routes.
//!
//! Each entry mounts one directory at one prefix. Files are served by tower-http's
//! [`ServeDir`] (Content-Type from the extension, `Last-Modified`, a strong `ETag`,
//! conditional requests, single byte ranges, HEAD) wrapped so the answers fit the host:
//!
//! - every error is a Problem Details answer rendered by the host's `refuse` closure (404 for
//!   a missing file or a refused path, 405 with `Allow: GET, HEAD`, 412, 416, 500), never
//!   ServeDir's empty bodies;
//! - `cache_control` is added to the file answers (200, 206, 304);
//! - `If-Range` is honoured (ServeDir ignores it): a stale validator gets the whole file;
//! - a Range with another unit than `bytes`, a Range on HEAD, and a multi-range Range are
//!   ignored (200 with the whole file) as RFC 9110 §14.2 allows, instead of ServeDir's 416;
//! - no path leaves the directory: ServeDir refuses `..`, absolute and undecodable paths,
//!   and the [`Confined`] backend resolves every path it is asked for (symlinks included)
//!   and answers "not found" when the real path is outside the directory.
//!
//! Never served: directory listings and precompressed variants (`.gz`, `.br` files beside
//! the originals are ordinary files here, never chosen by `Accept-Encoding`).
//!
//! Mounted with `Router::nest_service`, which strips the prefix: `/public` and `/public/`
//! both reach the service as `/`, so both serve the index (no redirect for the bare prefix;
//! `/public/docs` still redirects to `/public/docs/`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_RANGE, ETAG, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use http::request::Parts;
use http::{Method, StatusCode};
use serde::Deserialize;
use toml::Spanned;
use tower::Service;
use tower_http::services::fs::{DefaultServeDirFallback, ServeDir, ServeFileSystemResponseBody};

use crate::problem::Problem;

pub use super::Mistake;

/// Renders a Problem for one request; the server's closure adds the request id, the `type`
/// base and the access log line, so this module never needs to know about them. The parts
/// it gets carry the URI as the client sent it (prefix included).
pub type Refuse = Arc<dyn Fn(Problem, &Parts) -> Response + Send + Sync>;

/// One `[[static]]` entry as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawStatic {
    /// URL prefix, e.g. `"/public"`.
    pub prefix: Spanned<String>,
    /// Directory served, relative to the config file's directory.
    pub dir: Spanned<String>,
    /// Serve `index.html` for a directory request (default true).
    #[serde(default)]
    pub index: Option<bool>,
    /// `Cache-Control` of every file answer (200, 206, 304); none by default.
    #[serde(default)]
    pub cache_control: Option<Spanned<String>>,
}

/// A checked `[[static]]` entry: what the router mounts at `prefix`.
#[derive(Debug, Clone)]
pub struct StaticMount {
    /// The URL prefix (starts with `/`, no trailing slash), for `Router::nest_service`.
    pub prefix: String,
    /// The directory, canonical (symlinks resolved at start-up).
    root: PathBuf,
    /// Whether a directory request serves its `index.html`.
    index: bool,
    /// `Cache-Control` added to file answers.
    cache_control: Option<HeaderValue>,
}

/// Characters a prefix may hold besides ASCII letters and digits: the URL path characters
/// that need no percent-encoding (RFC 3986 `pchar` minus `%`), and `/`. `{`, `}` and `*`
/// (route syntax) are not among them.
const PREFIX_PUNCTUATION: &str = "-._~!$&'()+,;=:@/";

impl StaticMount {
    /// Checks one entry: the prefix's shape, that `dir` is an existing directory (that does
    /// not hold the config file's directory: the config and the application's sources must
    /// not become downloadable), and that `cache_control` is a valid header value.
    pub fn resolve(raw: &RawStatic, field: &str, dir: &Path) -> Result<StaticMount, Mistake> {
        let prefix = check_prefix(raw.prefix.get_ref())
            .map_err(|message| (raw.prefix.span().start, format!("{field}.prefix"), message))?;
        let root = check_dir(raw.dir.get_ref(), dir)
            .map_err(|message| (raw.dir.span().start, format!("{field}.dir"), message))?;
        let cache_control = match &raw.cache_control {
            None => None,
            Some(value) => Some(check_cache_control(value.get_ref()).map_err(|message| {
                (
                    value.span().start,
                    format!("{field}.cache_control"),
                    message,
                )
            })?),
        };
        Ok(StaticMount {
            prefix,
            root,
            index: raw.index.unwrap_or(true),
            cache_control,
        })
    }

    /// The service answering everything under the prefix. It expects the paths
    /// `Router::nest_service` hands over: the prefix already removed (`/public/a.txt` arrives
    /// as `/a.txt`; `/public` and `/public/` both as `/`). `refuse` renders each error.
    pub fn service(&self, refuse: Refuse) -> StaticService {
        let files = ServeDir::with_backend(&self.root, Confined::new(self.root.clone()))
            .append_index_html_on_directories(self.index)
            .redirect_path_prefix(self.prefix.clone())
            .ignore_multi_range_requests(true);
        StaticService {
            files,
            shared: Arc::new(Shared {
                prefix: self.prefix.clone().into_boxed_str(),
                cache_control: self.cache_control.clone(),
            }),
            refuse,
        }
    }
}

/// The prefix rules: `/name[/name…]`, no trailing slash, not `/` alone, no empty, `.` or
/// `..` segment, only characters that need no percent-encoding.
fn check_prefix(prefix: &str) -> Result<String, String> {
    let example = "use a path such as \"/public\" or \"/assets/v1\"";
    if prefix == "/" {
        return Err(format!(
            "\"/\" would let the static files take over every path, routes included; {example}"
        ));
    }
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?} must start with '/'; {example}"));
    }
    if prefix.ends_with('/') {
        return Err(format!(
            "{prefix:?} must not end with '/'; write {:?} (requests for the prefix with and without the slash both reach the mount)",
            prefix.trim_end_matches('/')
        ));
    }
    if let Some(bad) = prefix
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !PREFIX_PUNCTUATION.contains(*c))
    {
        return Err(format!(
            "{prefix:?} holds {bad:?}; a prefix is a literal path of letters, digits and {PREFIX_PUNCTUATION:?} (no `{{name}}`, `*` or percent-encoding); {example}"
        ));
    }
    if prefix[1..]
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(format!(
            "{prefix:?} has an empty, `.` or `..` segment; {example}"
        ));
    }
    Ok(prefix.to_owned())
}

/// Resolves `dir` against the config file's directory and checks it is a directory that
/// does not contain the config file. Returns its canonical path.
fn check_dir(dir: &str, config_dir: &Path) -> Result<PathBuf, String> {
    if dir.is_empty() {
        return Err(
            "is empty; name the directory to serve, e.g. \"static\" (relative to the config file's directory)"
                .into(),
        );
    }
    let config_dir = if config_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        config_dir
    };
    let resolved = config_dir.join(dir);
    let root = std::fs::canonicalize(&resolved).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => format!(
            "{} does not exist; create the directory or fix `dir` (a relative path is relative to the config file's directory)",
            resolved.display()
        ),
        _ => format!("{} cannot be opened ({err}); fix its permissions or `dir`", resolved.display()),
    })?;
    if !root.is_dir() {
        return Err(format!(
            "{} is not a directory; `dir` names the directory whose files are served",
            resolved.display()
        ));
    }
    if std::fs::canonicalize(config_dir).is_ok_and(|config| config.starts_with(&root)) {
        return Err(format!(
            "{} holds the config file's directory: the config and the application would be downloadable; serve a directory of its own, e.g. \"static\"",
            resolved.display()
        ));
    }
    Ok(root)
}

/// A `Cache-Control` value must be a non-empty header value of visible ASCII and spaces.
fn check_cache_control(value: &str) -> Result<HeaderValue, String> {
    let usable =
        !value.trim().is_empty() && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    match HeaderValue::from_str(value) {
        Ok(header) if usable => Ok(header),
        _ => Err(format!(
            "{value:?} is not a valid Cache-Control value; use visible ASCII and spaces, e.g. \"public, max-age=3600\" (or leave the key out)"
        )),
    }
}

/// What every request of one mount reads: built once, shared by reference count.
#[derive(Debug)]
struct Shared {
    prefix: Box<str>,
    cache_control: Option<HeaderValue>,
}

/// The per-mount service (see [`StaticMount::service`]).
#[derive(Clone)]
pub struct StaticService {
    files: ServeDir<DefaultServeDirFallback, Confined>,
    shared: Arc<Shared>,
    refuse: Refuse,
}

impl Service<Request> for StaticService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // ServeDir without a fallback is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (parts, _body) = request.into_parts();
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let method = parts.method.clone();
            let response = refuse_as_sent(&self.refuse, &self.shared, parts, |_| {
                Problem::method_not_allowed(&method, "GET, HEAD")
            });
            return Box::pin(std::future::ready(Ok(response)));
        }
        let ranged = usable_range(&parts);
        // A second ServeDir call is needed only when If-Range may turn a ranged answer into
        // a whole one: clone the service only then.
        let again = (ranged && parts.headers.contains_key(IF_RANGE)).then(|| self.files.clone());
        let first = self.files.try_call(file_request(&parts, ranged));
        let shared = Arc::clone(&self.shared);
        let refuse = Arc::clone(&self.refuse);
        Box::pin(async move {
            let mut answer = first.await;
            let stale =
                matches!(&answer, Ok(response) if !if_range_holds(&parts.headers, response));
            if let (Some(mut files), true) = (again, stale) {
                answer = files.try_call(file_request(&parts, false)).await;
            }
            Ok(finish(answer, parts, &shared, &refuse))
        })
    }
}

/// Whether the request's Range goes to ServeDir: only on GET (RFC 9110 §14.2 defines ranges
/// for GET alone) and only in bytes, the one unit served; any other is ignored (200).
fn usable_range(parts: &Parts) -> bool {
    parts.method == Method::GET
        && parts
            .headers
            .get(RANGE)
            .is_some_and(|range| range.as_bytes().starts_with(b"bytes="))
}

/// The request ServeDir sees: method, path and the headers it reads (conditionals and,
/// when usable, Range). Without conditionals this copies no header and allocates no map.
fn file_request(parts: &Parts, ranged: bool) -> http::Request<()> {
    let mut request = http::Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    let headers = request.headers_mut();
    for name in [IF_MATCH, IF_NONE_MATCH] {
        copy_list(&parts.headers, headers, name);
    }
    for name in [IF_MODIFIED_SINCE, IF_UNMODIFIED_SINCE] {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    if ranged {
        if let Some(value) = parts.headers.get(RANGE) {
            headers.insert(RANGE, value.clone());
        }
    }
    request
}

/// Copies a list header (`If-None-Match`, `If-Match`); several lines are one list (RFC 9110
/// §5.3), while ServeDir reads only the first line, so they are joined.
fn copy_list(from: &HeaderMap, to: &mut HeaderMap, name: HeaderName) {
    let mut lines = from.get_all(&name).iter();
    let Some(first) = lines.next() else {
        return;
    };
    let rest: Vec<&HeaderValue> = lines.collect();
    if rest.is_empty() {
        to.insert(name, first.clone());
        return;
    }
    let mut joined = first.as_bytes().to_vec();
    for line in rest {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(line.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        to.insert(name, value);
    }
}

/// RFC 9110 §13.1.5: a ranged answer stands only if `If-Range` (when sent) matches the
/// file's current `ETag` (strong comparison: a weak tag never matches) or is exactly its
/// `Last-Modified` date; otherwise the whole file is sent. Answers other than 206 and 416
/// are not ranged and stand as they are.
fn if_range_holds(
    request: &HeaderMap,
    answer: &http::Response<ServeFileSystemResponseBody>,
) -> bool {
    let status = answer.status();
    if status != StatusCode::PARTIAL_CONTENT && status != StatusCode::RANGE_NOT_SATISFIABLE {
        return true;
    }
    let Some(condition) = request.get(IF_RANGE) else {
        return true;
    };
    let condition = condition.as_bytes().trim_ascii();
    let validator = if condition.starts_with(b"\"") {
        answer.headers().get(ETAG)
    } else if condition.starts_with(b"W/") {
        return false;
    } else {
        answer.headers().get(LAST_MODIFIED)
    };
    validator.is_some_and(|value| value.as_bytes() == condition)
}

/// Turns ServeDir's answer into the host's: file answers get `Cache-Control`; its empty
/// errors become Problems; I/O errors it passes up are logged and become 404 (missing,
/// forbidden, escaping) or 500.
fn finish(
    answer: io::Result<http::Response<ServeFileSystemResponseBody>>,
    parts: Parts,
    shared: &Shared,
    refuse: &Refuse,
) -> Response {
    let response = match answer {
        Ok(response) => response,
        Err(err) if is_missing(&err) => {
            return refuse_as_sent(refuse, shared, parts, Problem::not_found)
        }
        Err(err) => {
            tracing::error!(path = %parts.uri.path(), prefix = %shared.prefix, error = %err, "static file could not be read");
            return refuse_as_sent(refuse, shared, parts, |_| read_failure());
        }
    };
    match response.status() {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED => {
            let mut response = response.map(Body::new);
            if let Some(value) = &shared.cache_control {
                response.headers_mut().insert(CACHE_CONTROL, value.clone());
            }
            response
        }
        status if status.is_redirection() => response.map(Body::new),
        StatusCode::NOT_FOUND => refuse_as_sent(refuse, shared, parts, Problem::not_found),
        StatusCode::PRECONDITION_FAILED => {
            refuse_as_sent(refuse, shared, parts, |_| precondition_failed())
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let length = response.headers().get(CONTENT_RANGE).cloned();
            refuse_as_sent(refuse, shared, parts, |_| match length {
                Some(length) => range_not_satisfiable().with_header(CONTENT_RANGE, length),
                None => range_not_satisfiable(),
            })
        }
        _ => refuse_as_sent(refuse, shared, parts, |_| read_failure()),
    }
}

/// Refuses the request through the host's closure, with the URI as the client sent it
/// (the prefix put back in front of what `nest_service` left), so the Problem's detail and
/// the access log name the real path. `problem` gets that path.
fn refuse_as_sent(
    refuse: &Refuse,
    shared: &Shared,
    mut parts: Parts,
    problem: impl FnOnce(&str) -> Problem,
) -> Response {
    let tail = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let sent = format!("{}{tail}", shared.prefix);
    let mut uri = parts.uri.clone().into_parts();
    if let Ok(path_and_query) = http::uri::PathAndQuery::try_from(sent) {
        uri.path_and_query = Some(path_and_query);
        if let Ok(uri) = http::Uri::from_parts(uri) {
            parts.uri = uri;
        }
    }
    let problem = problem(parts.uri.path());
    refuse(problem, &parts)
}

/// The I/O errors that mean "no such file here" (ServeDir's own rule): missing, not
/// readable, a file used as a directory, a symlink loop, or outside the directory.
fn is_missing(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
    ) || matches!(err.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP))
}

/// 412: `If-Match` or `If-Unmodified-Since` failed.
fn precondition_failed() -> Problem {
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
        "Precondition Failed",
        "the file does not match If-Match, or changed after If-Unmodified-Since",
    )
}

/// 416: the byte range selects nothing of the file; `Content-Range` gives its length.
fn range_not_satisfiable() -> Problem {
    Problem::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range-not-satisfiable",
        "Range Not Satisfiable",
        "the Range header is malformed or selects no byte of the file; Content-Range gives the file's length",
    )
}

/// 500: the file exists but could not be read; the log has the error.
fn read_failure() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal-server-error",
        "Internal Server Error",
        "the file could not be read; the server log has details",
    )
}

/// ServeDir's file-system backend, confined to one directory: every path ServeDir asks for
/// is resolved (`canonicalize`: symlinks followed, `..` removed) and refused as "not found"
/// unless the real path is inside the canonical root. Symlinks that stay inside the
/// directory work; symlinks that leave it answer 404. The file opened is the resolved
/// path. Limit: a path component replaced by a symlink between the check and the open (a
/// race only someone who can write into the directory can run) is not caught.
#[derive(Clone, Debug)]
struct Confined {
    root: Arc<Path>,
}

impl Confined {
    /// A backend serving only what lies under `root`, which must be canonical.
    fn new(root: PathBuf) -> Self {
        Confined { root: root.into() }
    }
}

/// `path`'s real location if it lies under `root`, else a NotFound error.
fn confine(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let real = std::fs::canonicalize(path)?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the path resolves outside the static directory",
        ))
    }
}

/// Runs blocking file-system work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)))
}

impl tower_http::services::fs::Backend for Confined {
    type File = ConfinedFile;
    type Metadata = std::fs::Metadata;
    type OpenFuture = Pin<Box<dyn Future<Output = io::Result<ConfinedFile>> + Send>>;
    type MetadataFuture = Pin<Box<dyn Future<Output = io::Result<std::fs::Metadata>> + Send>>;

    fn open(&self, path: PathBuf) -> Self::OpenFuture {
        let root = Arc::clone(&self.root);
        Box::pin(async move {
            let file = blocking(move || std::fs::File::open(confine(&root, &path)?)).await?;
            Ok(ConfinedFile(tokio::fs::File::from_std(file)))
        })
    }

    fn metadata(&self, path: PathBuf) -> Self::MetadataFuture {
        let root = Arc::clone(&self.root);
        Box::pin(blocking(move || std::fs::metadata(confine(&root, &path)?)))
    }
}

/// A file opened by [`Confined`].
#[derive(Debug)]
struct ConfinedFile(tokio::fs::File);

impl tokio::io::AsyncRead for ConfinedFile {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncSeek for ConfinedFile {
    fn start_seek(mut self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        Pin::new(&mut self.0).start_seek(position)
    }

    fn poll_complete(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Pin::new(&mut self.0).poll_complete(cx)
    }
}

impl tower_http::services::fs::File for ConfinedFile {
    type Metadata = std::fs::Metadata;
    type MetadataFuture<'a> =
        Pin<Box<dyn Future<Output = io::Result<std::fs::Metadata>> + Send + 'a>>;

    fn metadata(&self) -> Self::MetadataFuture<'_> {
        Box::pin(self.0.metadata())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{ACCEPT_RANGES, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
    use tower::ServiceExt;

    /// A directory under the system temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        /// `base/` (the config file's directory) holding `secret.txt`, `outside/secret.txt`
        /// and `root/` (the served directory) with a few files and symlinks.
        fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let base = std::env::temp_dir().join(format!(
                "spikard-static-{name}-{}-{nanos}",
                std::process::id()
            ));
            let scratch = Scratch(base);
            let files: [(&str, &str); 10] = [
                ("secret.txt", "top secret"),
                ("outside/secret.txt", "outside secret"),
                ("root/hello.txt", "Hello from static storage"),
                ("root/index.html", "<!doctype html><h1>Welcome</h1>"),
                ("root/docs/index.html", "<h1>Docs</h1>"),
                ("root/styles/main.css", "h1 { color: #336699; }"),
                ("root/app.js", "console.log(1)"),
                ("root/data.json", "{\"a\":1}"),
                ("root/logo.svg", "<svg/>"),
                ("root/blob.weird", "??"),
            ];
            for (path, content) in files {
                scratch.write(path, content);
            }
            scratch
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.0.join(relative)
        }

        fn write(&self, relative: &str, content: &str) {
            let path = self.path(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }

        #[cfg(unix)]
        fn symlink(&self, target: &Path, link: &str) {
            std::os::unix::fs::symlink(target, self.path(link)).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn raw(text: &str) -> RawStatic {
        toml::from_str(text).expect("toml")
    }

    fn mount(scratch: &Scratch, extra: &str) -> StaticMount {
        let text = format!("prefix = \"/public\"\ndir = \"root\"\n{extra}");
        StaticMount::resolve(&raw(&text), "static[0]", &scratch.0).expect("resolves")
    }

    fn refuse() -> Refuse {
        Arc::new(|problem: Problem, _parts: &Parts| {
            problem.render(Some("https://errors.example/"), "req-1")
        })
    }

    fn service(scratch: &Scratch, extra: &str) -> StaticService {
        mount(scratch, extra).service(refuse())
    }

    fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    async fn send(
        service: &StaticService,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let response = service
            .clone()
            .oneshot(request(method, path, headers))
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn get(
        service: &StaticService,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        send(service, Method::GET, path, headers).await
    }

    /// Asserts a Problem Details 404 naming `shown`.
    fn assert_not_found(answer: &(StatusCode, HeaderMap, String), shown: &str) {
        let (status, headers, body) = answer;
        assert_eq!(*status, StatusCode::NOT_FOUND, "{shown}: {body}");
        assert_eq!(headers[CONTENT_TYPE], "application/problem+json", "{shown}");
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["type"], "https://errors.example/not-found");
        assert_eq!(problem["request_id"], "req-1");
        assert!(
            problem["detail"].as_str().unwrap().ends_with(shown),
            "{body}"
        );
        assert!(
            !body.contains("top secret") && !body.contains("outside secret"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_file_is_served_with_its_type_validators_and_cache_control() {
        let scratch = Scratch::new("plain");
        let files = service(&scratch, "cache_control = \"public, max-age=60\"");
        let (status, headers, body) = get(&files, "/hello.txt", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "Hello from static storage");
        assert_eq!(headers[CONTENT_TYPE], "text/plain");
        assert_eq!(headers[CONTENT_LENGTH], "25");
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=60");
        assert_eq!(headers[ACCEPT_RANGES], "bytes");
        assert!(headers.contains_key(LAST_MODIFIED));
        // ServeDir's strong ETag: "<mtime secs hex>.<nanos, 8 hex>-<size hex>".
        let etag = headers[ETAG].to_str().unwrap();
        assert!(
            etag.starts_with('"') && etag.contains('.') && etag.ends_with("-19\""),
            "{etag}"
        );

        let (status, headers, body) = send(&files, Method::HEAD, "/hello.txt", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "");
        assert_eq!(headers[CONTENT_LENGTH], "25");
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=60");
    }

    #[tokio::test]
    async fn content_types_come_from_the_extension() {
        let scratch = Scratch::new("types");
        let files = service(&scratch, "");
        for (path, expected) in [
            ("/index.html", "text/html"),
            ("/styles/main.css", "text/css"),
            ("/app.js", "text/javascript"),
            ("/data.json", "application/json"),
            ("/logo.svg", "image/svg+xml"),
            ("/blob.weird", "application/octet-stream"),
        ] {
            let (status, headers, _) = get(&files, path, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[CONTENT_TYPE], expected, "{path}");
            assert!(!headers.contains_key(CACHE_CONTROL), "{path}");
        }
    }

    #[tokio::test]
    async fn directories_serve_their_index_and_redirect_without_a_slash() {
        let scratch = Scratch::new("index");
        let files = service(&scratch, "");
        // `/public/` and `/public` both reach the mounted service as `/`.
        let (status, headers, body) = get(&files, "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "<!doctype html><h1>Welcome</h1>");
        assert_eq!(headers[CONTENT_TYPE], "text/html");
        let (status, _, body) = get(&files, "/docs/", &[]).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "<h1>Docs</h1>"));
        let (status, headers, _) = get(&files, "/docs?x=1", &[]).await;
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(headers[LOCATION], "/public/docs/?x=1");
        // A file asked for as a directory, and a directory without index.html.
        assert_not_found(&get(&files, "/hello.txt/", &[]).await, "/public/hello.txt/");
        std::fs::create_dir(scratch.path("root/empty")).unwrap();
        assert_not_found(&get(&files, "/empty/", &[]).await, "/public/empty/");

        let files = service(&scratch, "index = false");
        assert_not_found(&get(&files, "/", &[]).await, "/public/");
        assert_not_found(&get(&files, "/docs/", &[]).await, "/public/docs/");
        assert_not_found(&get(&files, "/docs", &[]).await, "/public/docs");
        let (status, _, _) = get(&files, "/docs/index.html", &[]).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn if_none_match_answers_304_before_if_modified_since() {
        let scratch = Scratch::new("etag");
        let files = service(&scratch, "cache_control = \"no-cache\"");
        let (_, headers, _) = get(&files, "/hello.txt", &[]).await;
        let etag = headers[ETAG].to_str().unwrap().to_owned();
        let modified = headers[LAST_MODIFIED].to_str().unwrap().to_owned();
        let weak = format!("W/{etag}");
        let listed = format!("\"other\", {etag}");
        for condition in [etag.as_str(), weak.as_str(), "*", listed.as_str()] {
            let (status, headers, body) =
                get(&files, "/hello.txt", &[("if-none-match", condition)]).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{condition}");
            assert_eq!(body, "");
            assert_eq!(headers[ETAG], etag.as_str());
            assert_eq!(headers[LAST_MODIFIED], modified.as_str());
            assert_eq!(headers[CACHE_CONTROL], "no-cache");
        }
        // A list split over two header lines is one list.
        let (status, _, _) = get(
            &files,
            "/hello.txt",
            &[("if-none-match", "\"other\""), ("if-none-match", &etag)],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        // If-None-Match wins over If-Modified-Since, whichever way it goes.
        let (status, _, body) = get(
            &files,
            "/hello.txt",
            &[
                ("if-none-match", "\"other\""),
                ("if-modified-since", &modified),
            ],
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "Hello from static storage")
        );
        let (status, _, _) = get(&files, "/hello.txt", &[("if-modified-since", &modified)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        let (status, _, _) = get(
            &files,
            "/hello.txt",
            &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        // HEAD too.
        let (status, _, _) = send(
            &files,
            Method::HEAD,
            "/hello.txt",
            &[("if-none-match", &etag)],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        // A failed If-Match is a 412 Problem.
        let (status, headers, _) = get(&files, "/hello.txt", &[("if-match", "\"other\"")]).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
        let (status, _, _) = get(&files, "/hello.txt", &[("if-match", &etag)]).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn byte_ranges_answer_206_and_416() {
        let scratch = Scratch::new("range");
        let files = service(&scratch, "cache_control = \"public, max-age=5\"");
        let (status, headers, body) = get(&files, "/hello.txt", &[("range", "bytes=0-4")]).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::PARTIAL_CONTENT, "Hello")
        );
        assert_eq!(headers[CONTENT_RANGE], "bytes 0-4/25");
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=5");
        let (status, _, body) = get(&files, "/hello.txt", &[("range", "bytes=-7")]).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::PARTIAL_CONTENT, "storage")
        );

        let (status, headers, body) =
            get(&files, "/hello.txt", &[("range", "bytes=100-200")]).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(headers[CONTENT_RANGE], "bytes */25");
        assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
        assert!(body.contains("range-not-satisfiable"), "{body}");
        assert!(!headers.contains_key(CACHE_CONTROL));

        // Ignored: several ranges, another unit, a Range on HEAD.
        for (method, range) in [
            (Method::GET, "bytes=0-1, 3-4"),
            (Method::GET, "items=0-1"),
            (Method::HEAD, "bytes=0-4"),
        ] {
            let (status, headers, _) =
                send(&files, method.clone(), "/hello.txt", &[("range", range)]).await;
            assert_eq!(status, StatusCode::OK, "{method} {range}");
            assert_eq!(headers[CONTENT_LENGTH], "25");
        }
    }

    #[tokio::test]
    async fn if_range_keeps_the_range_only_for_the_current_file() {
        let scratch = Scratch::new("ifrange");
        let files = service(&scratch, "");
        let (_, headers, _) = get(&files, "/hello.txt", &[]).await;
        let etag = headers[ETAG].to_str().unwrap().to_owned();
        let modified = headers[LAST_MODIFIED].to_str().unwrap().to_owned();
        let weak = format!("W/{etag}");
        for (condition, expected) in [
            (etag.as_str(), StatusCode::PARTIAL_CONTENT),
            (modified.as_str(), StatusCode::PARTIAL_CONTENT),
            ("\"stale\"", StatusCode::OK),
            (weak.as_str(), StatusCode::OK),
            ("Thu, 01 Jan 1970 00:00:00 GMT", StatusCode::OK),
        ] {
            let (status, _, body) = get(
                &files,
                "/hello.txt",
                &[("range", "bytes=0-4"), ("if-range", condition)],
            )
            .await;
            assert_eq!(status, expected, "{condition}");
            let whole = if expected == StatusCode::OK {
                "Hello from static storage"
            } else {
                "Hello"
            };
            assert_eq!(body, whole, "{condition}");
        }
        // An unsatisfiable range with a stale If-Range is the whole file, not a 416.
        let (status, _, _) = get(
            &files,
            "/hello.txt",
            &[("range", "bytes=100-"), ("if-range", "\"stale\"")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn other_methods_are_405_with_allow() {
        let scratch = Scratch::new("method");
        let files = service(&scratch, "");
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let (status, headers, body) = send(&files, method.clone(), "/hello.txt", &[]).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(headers[ALLOW], "GET, HEAD");
            assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
            assert!(body.contains("method-not-allowed"), "{body}");
        }
    }

    #[tokio::test]
    async fn missing_files_and_traversal_attempts_are_404_problems() {
        let scratch = Scratch::new("traversal");
        let files = service(&scratch, "");
        assert_not_found(
            &get(&files, "/missing.txt", &[]).await,
            "/public/missing.txt",
        );
        for path in [
            "/../secret.txt",
            "/docs/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E%2Fsecret.txt",
            "/..%2fsecret.txt",
            "/docs/..%5c..%5csecret.txt",
            "/..%5csecret.txt",
            "//etc/passwd",
            "/%2fetc%2fpasswd",
            &format!("/{}", scratch.path("secret.txt").display()),
            "/hello.txt%00.html",
            "/%00",
            "/%ff%fe",
        ] {
            let answer = get(&files, path, &[]).await;
            assert_not_found(&answer, &format!("/public{path}"));
        }
    }

    #[tokio::test]
    async fn refuse_gets_the_uri_as_the_client_sent_it() {
        let scratch = Scratch::new("refuse");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let refuse: Refuse = Arc::new(move |problem: Problem, parts: &Parts| {
            record.lock().unwrap().push(parts.uri.to_string());
            problem.render(None, "")
        });
        let files = mount(&scratch, "").service(refuse);
        let (status, _, _) = get(&files, "/missing.txt?v=2", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = send(&files, Method::POST, "/", &[]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _, _) = get(&files, "/hello.txt", &[("range", "bytes=99-")]).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(
            *seen.lock().unwrap(),
            ["/public/missing.txt?v=2", "/public/", "/public/hello.txt"]
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_leaving_the_directory_are_404_and_inner_ones_work() {
        let scratch = Scratch::new("symlink");
        scratch.symlink(&scratch.path("secret.txt"), "root/leak.txt");
        scratch.symlink(Path::new("../secret.txt"), "root/relative-leak.txt");
        scratch.symlink(&scratch.path("outside"), "root/outdir");
        std::fs::create_dir(scratch.path("root/trap")).unwrap();
        scratch.symlink(&scratch.path("secret.txt"), "root/trap/index.html");
        scratch.symlink(Path::new("hello.txt"), "root/alias.txt");
        scratch.symlink(&scratch.path("root/docs"), "root/manual");
        scratch.symlink(Path::new("loop"), "root/loop");
        let files = service(&scratch, "");
        for path in [
            "/leak.txt",
            "/relative-leak.txt",
            "/outdir/secret.txt",
            "/trap/",
            "/loop",
        ] {
            assert_not_found(&get(&files, path, &[]).await, &format!("/public{path}"));
            let (status, _, body) = send(&files, Method::HEAD, path, &[]).await;
            assert_eq!(
                (status, body.contains("top secret")),
                (StatusCode::NOT_FOUND, false),
                "HEAD {path}"
            );
        }
        let (status, headers, body) = get(&files, "/alias.txt", &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "Hello from static storage")
        );
        assert_eq!(headers[CONTENT_TYPE], "text/plain");
        let (status, _, body) = get(&files, "/manual/", &[]).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "<h1>Docs</h1>"));
    }

    #[tokio::test]
    async fn nest_service_strips_the_prefix_before_the_service_sees_the_path() {
        let scratch = Scratch::new("nest");
        let mount = mount(&scratch, "cache_control = \"public, max-age=60\"");
        let router = axum::Router::new().nest_service(&mount.prefix, mount.service(refuse()));
        let call = |path: &'static str| {
            let router = router.clone();
            async move {
                let response = router
                    .oneshot(request(Method::GET, path, &[]))
                    .await
                    .unwrap();
                let status = response.status();
                let headers = response.headers().clone();
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (status, headers, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let (status, headers, body) = call("/public/hello.txt").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "Hello from static storage")
        );
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=60");
        for path in ["/public/", "/public"] {
            let (status, _, body) = call(path).await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, "<!doctype html><h1>Welcome</h1>"),
                "{path}"
            );
        }
        let (status, headers, _) = call("/public/docs").await;
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(headers[LOCATION], "/public/docs/");
        assert_not_found(&call("/public/missing.txt").await, "/public/missing.txt");
        assert_not_found(
            &call("/public/../secret.txt").await,
            "/public/../secret.txt",
        );
    }

    fn mistake(scratch: &Scratch, text: &str) -> (String, String) {
        let (_, field, message) =
            StaticMount::resolve(&raw(text), "static[2]", &scratch.0).unwrap_err();
        (field, message)
    }

    #[test]
    fn config_mistakes_name_the_field_and_the_fix() {
        let scratch = Scratch::new("config");
        let mount = mount(&scratch, "");
        assert_eq!(mount.prefix, "/public");
        assert!(mount.index && mount.cache_control.is_none());
        assert_eq!(
            mount.root,
            std::fs::canonicalize(scratch.path("root")).unwrap()
        );

        for prefix in [
            "/",
            "public",
            "/public/",
            "/{name}",
            "/a/*",
            "/a//b",
            "/a/../b",
            "/caf%C3%A9",
            "/a b",
        ] {
            let (field, message) =
                mistake(&scratch, &format!("prefix = {prefix:?}\ndir = \"root\""));
            assert_eq!(field, "static[2].prefix", "{prefix}");
            assert!(message.contains("\"/public\""), "{prefix}: {message}");
        }
        let (field, message) = mistake(&scratch, "prefix = \"/p\"\ndir = \"nope\"");
        assert_eq!(field, "static[2].dir");
        assert!(
            message.contains(&scratch.path("nope").display().to_string()),
            "{message}"
        );
        assert!(message.contains("does not exist"), "{message}");
        let (field, message) = mistake(&scratch, "prefix = \"/p\"\ndir = \"root/hello.txt\"");
        assert_eq!(field, "static[2].dir");
        assert!(message.contains("is not a directory"), "{message}");
        for dir in [".", "", ".."] {
            let (field, message) = mistake(&scratch, &format!("prefix = \"/p\"\ndir = {dir:?}"));
            assert_eq!(field, "static[2].dir", "{dir:?}");
            assert!(
                message.contains("a directory of its own") || message.contains("is empty"),
                "{message}"
            );
        }
        for value in ["", " ", "public\nmax-age=1", "max-age=1 é"] {
            let (field, message) = mistake(
                &scratch,
                &format!("prefix = \"/p\"\ndir = \"root\"\ncache_control = {value:?}"),
            );
            assert_eq!(field, "static[2].cache_control", "{value:?}");
            assert!(
                message.contains("not a valid Cache-Control value"),
                "{message}"
            );
        }
        let absolute = scratch.path("outside");
        let text = format!(
            "prefix = \"/p\"\ndir = {:?}\nindex = false",
            absolute.display().to_string()
        );
        let mount = StaticMount::resolve(&raw(&text), "static[0]", &scratch.0).unwrap();
        assert!(!mount.index);
        assert!(
            toml::from_str::<RawStatic>("prefix = \"/p\"\ndir = \"root\"\nlisting = true").is_err()
        );
    }
}
