//! `[server] metrics_path`: request metrics in the Prometheus text format (version 0.0.4),
//! answered by the host itself (off by default).
//!
//! Hand-written on plain atomics rather than a metrics crate: the label sets are known at
//! start-up (one per configured or plugin-registered route, plus one per method for paths no
//! route matches), so each route gets a pre-built [`RouteMetrics`] that its handler closure
//! holds by `&'static` reference. Recording a request is then two `Instant` reads and four
//! relaxed `fetch_add`s/`fetch_sub`s on that route's own counters (in flight up and down,
//! status class, latency bucket and latency sum): no map lookup, no lock, no allocation, and
//! no counter shared by all routes (the in-flight gauge is summed over routes at scrape
//! time). The `metrics` and `prometheus-client` crates both key counters by label set at run
//! time (a map or an `Arc` per handle), which is the cost this avoids.
//!
//! The route label is the route's *template* (`/items/{id}`), never the raw path, and
//! requests no route matches (404, 405) count under `route="unmatched"` with the method
//! folded to the standard ones or `OTHER`, so the number of series is bounded by the config.
//! Requests the host answers itself (health, readiness, this endpoint) are not counted.
//! Rejections and plugin failures are process-wide counters fed by the request pipeline.
//! Every process keeps its own numbers: with `processes >= 2` each scrape is answered by
//! whichever worker accepted the connection, and reports that worker only.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, StatusCode};

use crate::problem::Problem;

/// Upper bounds of the latency histogram's buckets, in microseconds (0.5 ms to 10 s; the
/// last bucket, `+Inf`, is implicit).
const BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Status classes counted: 1xx to 5xx.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Methods that get their own `unmatched` series; any other counts as `OTHER`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

/// The counters of one (method, route) pair.
pub struct RouteMetrics {
    method: String,
    route: String,
    in_flight: AtomicI64,
    by_class: [AtomicU64; 5],
    /// Per bucket (not cumulative; summed at scrape), the last one being `+Inf`.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl RouteMetrics {
    fn new(method: &str, route: &str) -> Self {
        RouteMetrics {
            method: method.to_owned(),
            route: route.to_owned(),
            in_flight: AtomicI64::new(0),
            by_class: Default::default(),
            buckets: Default::default(),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Starts timing one request; record its answer with [`Timer::finish`]. A request
    /// dropped before its answer (the client went away) only leaves the in-flight gauge.
    pub fn start(&'static self) -> Timer {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Timer {
            route: self,
            started: Instant::now(),
        }
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
}

/// One request being timed.
pub struct Timer {
    route: &'static RouteMetrics,
    started: Instant,
}

impl Timer {
    /// Counts the answer's status class and latency.
    pub fn finish(self, status: StatusCode) {
        let route = self.route;
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        route.by_class[class].fetch_add(1, Ordering::Relaxed);
        let bucket = BUCKETS_US
            .iter()
            .position(|&le| micros <= le)
            .unwrap_or(BUCKETS_US.len());
        route.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        route.sum_us.fetch_add(micros, Ordering::Relaxed);
        // `self` drops here and leaves the in-flight gauge.
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.route.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why the pipeline refused a request before (or instead of) the plugin's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Validation,
    BodyTooLarge,
    BodyTimeout,
    Timeout,
    Overloaded,
    Malformed,
    UnsupportedMediaType,
    PluginError,
    Unauthenticated,
    Forbidden,
    CorsRefused,
    RateLimited,
}

const REASONS: [(Reason, &str); 12] = [
    (Reason::Validation, "validation"),
    (Reason::BodyTooLarge, "body_too_large"),
    (Reason::BodyTimeout, "body_timeout"),
    (Reason::Timeout, "timeout"),
    (Reason::Overloaded, "overloaded"),
    (Reason::Malformed, "malformed"),
    (Reason::UnsupportedMediaType, "unsupported_media_type"),
    (Reason::PluginError, "plugin_error"),
    (Reason::Unauthenticated, "unauthenticated"),
    (Reason::Forbidden, "forbidden"),
    (Reason::CorsRefused, "cors"),
    (Reason::RateLimited, "rate_limited"),
];

/// Process-wide rejection counters, in the order of [`REASONS`].
static REJECTED: [AtomicU64; REASONS.len()] = [const { AtomicU64::new(0) }; REASONS.len()];

/// Counts a problem the pipeline answered a routed request with (one relaxed `fetch_add`;
/// the error path only). 404 and 405 are not rejections: they count as `unmatched`.
pub fn rejected(problem: &Problem) {
    let reason = match problem.status {
        StatusCode::UNPROCESSABLE_ENTITY => Reason::Validation,
        StatusCode::PAYLOAD_TOO_LARGE => Reason::BodyTooLarge,
        StatusCode::REQUEST_TIMEOUT => Reason::BodyTimeout,
        StatusCode::GATEWAY_TIMEOUT => Reason::Timeout,
        StatusCode::SERVICE_UNAVAILABLE => Reason::Overloaded,
        StatusCode::BAD_REQUEST => Reason::Malformed,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Reason::UnsupportedMediaType,
        StatusCode::INTERNAL_SERVER_ERROR => Reason::PluginError,
        StatusCode::UNAUTHORIZED => Reason::Unauthenticated,
        StatusCode::FORBIDDEN if problem.slug == "cors-forbidden" => Reason::CorsRefused,
        StatusCode::FORBIDDEN => Reason::Forbidden,
        StatusCode::TOO_MANY_REQUESTS => Reason::RateLimited,
        _ => return,
    };
    if let Some(i) = REASONS.iter().position(|(r, _)| *r == reason) {
        REJECTED[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Every route's counters, built once when the router is; they live as long as the process.
pub struct Metrics {
    routes: Vec<&'static RouteMetrics>,
    unmatched: Unmatched,
}

/// The `unmatched` counters, one per method in [`METHODS`] and one for any other.
#[derive(Clone, Copy)]
pub struct Unmatched(&'static [&'static RouteMetrics]);

impl Unmatched {
    /// The `unmatched` counters of a method.
    pub fn of(self, method: &Method) -> &'static RouteMetrics {
        let i = METHODS
            .iter()
            .position(|m| *m == method.as_str())
            .unwrap_or(METHODS.len());
        self.0[i]
    }
}

/// Answers one routed request through `answer`, counting it on `metrics` when metrics are on.
pub async fn timed(
    metrics: Option<&'static RouteMetrics>,
    answer: impl std::future::Future<Output = Response>,
) -> Response {
    let Some(metrics) = metrics else {
        return answer.await;
    };
    let timer = metrics.start();
    let response = answer.await;
    timer.finish(response.status());
    response
}

impl Metrics {
    /// An empty registry; add routes with [`Metrics::route`].
    pub fn new() -> Self {
        let leak = |m: &str| -> &'static RouteMetrics {
            Box::leak(Box::new(RouteMetrics::new(m, "unmatched")))
        };
        let unmatched: Vec<&'static RouteMetrics> =
            METHODS.iter().copied().chain(["OTHER"]).map(leak).collect();
        Metrics {
            routes: Vec::new(),
            unmatched: Unmatched(unmatched.leak()),
        }
    }

    /// The counters of one route, created now (once per route, at start-up; leaked so that
    /// handlers hold them without reference counting).
    pub fn route(&mut self, method: &Method, template: &str) -> &'static RouteMetrics {
        let metrics: &'static RouteMetrics =
            Box::leak(Box::new(RouteMetrics::new(method.as_str(), template)));
        self.routes.push(metrics);
        metrics
    }

    /// The counters of requests no route matches.
    pub fn unmatched(&self) -> Unmatched {
        self.unmatched
    }

    /// The scrape answer.
    pub fn response(&self) -> Response {
        (
            StatusCode::OK,
            [
                (CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
                (CACHE_CONTROL, "no-store"),
            ],
            self.render(),
        )
            .into_response()
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096 + 2048 * self.routes.len());
        let all = || self.routes.iter().chain(self.unmatched.0);
        // Configured routes are always listed (zeros included); `unmatched` once seen.
        let listed = || {
            self.routes
                .iter()
                .chain(self.unmatched.0.iter().filter(|m| m.count() > 0))
        };

        out.push_str("# HELP spikard_requests_total Requests answered, by method, route template and status class.\n# TYPE spikard_requests_total counter\n");
        for m in all() {
            for (class, counter) in CLASSES.iter().zip(&m.by_class) {
                let n = counter.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "spikard_requests_total{{method=\"{}\",route=\"{}\",status_class=\"{class}\"}} {n}",
                        escape(&m.method),
                        escape(&m.route)
                    );
                }
            }
        }

        out.push_str("# HELP spikard_request_duration_seconds Time from routing to the response head, by method and route template.\n# TYPE spikard_request_duration_seconds histogram\n");
        for m in listed() {
            let labels = format!(
                "method=\"{}\",route=\"{}\"",
                escape(&m.method),
                escape(&m.route)
            );
            let mut cumulative = 0u64;
            for (i, bucket) in m.buckets.iter().enumerate() {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = BUCKETS_US
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |&us| seconds(us));
                let _ = writeln!(
                    out,
                    "spikard_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "spikard_request_duration_seconds_sum{{{labels}}} {}",
                seconds(m.sum_us.load(Ordering::Relaxed))
            );
            let _ = writeln!(
                out,
                "spikard_request_duration_seconds_count{{{labels}}} {cumulative}"
            );
        }

        let in_flight: i64 = all().map(|m| m.in_flight.load(Ordering::Relaxed)).sum();
        let _ = writeln!(
            out,
            "# HELP spikard_requests_in_flight Requests routed and not yet answered.\n# TYPE spikard_requests_in_flight gauge\nspikard_requests_in_flight {}",
            in_flight.max(0)
        );

        out.push_str("# HELP spikard_rejected_total Requests the host refused or failed before or instead of the plugin's answer, by reason.\n# TYPE spikard_rejected_total counter\n");
        for ((_, name), counter) in REASONS.iter().zip(&REJECTED) {
            let _ = writeln!(
                out,
                "spikard_rejected_total{{reason=\"{name}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }

        let _ = writeln!(
            out,
            "# HELP spikard_plugin_errors_total Plugin failures (no or invalid answer) and plugin timeouts.\n# TYPE spikard_plugin_errors_total counter\nspikard_plugin_errors_total{{kind=\"failure\"}} {}\nspikard_plugin_errors_total{{kind=\"timeout\"}} {}",
            REJECTED[reason_index(Reason::PluginError)].load(Ordering::Relaxed),
            REJECTED[reason_index(Reason::Timeout)].load(Ordering::Relaxed),
        );
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn reason_index(reason: Reason) -> usize {
    REASONS
        .iter()
        .position(|(r, _)| *r == reason)
        .unwrap_or_default()
}

/// Microseconds as seconds, exactly (`0.0025`).
fn seconds(us: u64) -> String {
    let text = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(500), "0.0005");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(0), "0");
    }

    #[test]
    fn a_request_lands_in_its_class_and_bucket() {
        let mut metrics = Metrics::new();
        let route = metrics.route(&Method::GET, "/items/{id}");
        route.start().finish(StatusCode::NOT_FOUND);
        let timer = route.start();
        let text = metrics.render();
        assert!(text.contains("spikard_requests_in_flight 1\n"), "{text}");
        drop(timer);
        let text = metrics.render();
        assert!(text.contains("spikard_requests_in_flight 0\n"), "{text}");
        assert!(text.contains(
            "spikard_requests_total{method=\"GET\",route=\"/items/{id}\",status_class=\"4xx\"} 1\n"
        ));
        assert!(text.contains(
            "spikard_request_duration_seconds_bucket{method=\"GET\",route=\"/items/{id}\",le=\"+Inf\"} 1\n"
        ));
        assert!(!text.contains("unmatched"), "unmatched appears once seen");
        metrics
            .unmatched()
            .of(&Method::from_bytes(b"BREW").unwrap())
            .start()
            .finish(StatusCode::NOT_FOUND);
        assert!(metrics.render().contains(
            "spikard_requests_total{method=\"OTHER\",route=\"unmatched\",status_class=\"4xx\"} 1\n"
        ));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("/plain"), "/plain");
    }
}
