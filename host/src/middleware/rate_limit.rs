//! `[server.rate_limit]`, `[routes.rate_limit]`, `[policies.rate_limit]`: a token bucket per
//! client (GCRA, from `governor`) so one client cannot take the whole server.
//!
//! ```toml
//! per_second = 10        # or per_minute = 100: the sustained rate, may be fractional
//! burst = 20             # bucket size; default ceil(rate per second), at least 1
//! key = "client"         # "client", "header:X-Real-IP" or "claim:sub"
//! max_clients = 100000   # keys tracked at most
//! ```
//!
//! Keys: `client` is the peer address (IPv4 whole, IPv4-mapped IPv6 as IPv4, IPv6 by its
//! /64). `header:<Name>` is for a header your proxy sets (and overwrites), e.g. `X-Real-IP`;
//! a value that is an IP address is keyed like a peer address, anything else by its first
//! 256 bytes; absent or empty, the peer address. `claim:<name>` keys by a claim of the
//! authenticated JWT (API keys by their index); no principal or no such claim, the peer
//! address.
//!
//! One resolved table is one limiter: every route it applies to shares it, so a server-wide
//! limit is one budget per client across all routes.
//!
//! Memory is bounded whatever the number of clients: at most `max_clients` keys are tracked.
//! When the table is full, keys whose bucket is full again (indistinguishable from a fresh
//! client) are dropped, at most once per [`SWEEP_INTERVAL`] so an attacker with many
//! addresses cannot make every request walk the table. If the table is still full, new keys
//! share ONE overflow bucket with the same quota until the sweep frees room; a warning is
//! logged once per such episode.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderName, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::problem::Problem;

pub use super::Mistake;

/// The default `max_clients`: about 10 MB of state at most.
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;
/// The largest `max_clients` accepted (about 1 GB of state).
pub const MAX_MAX_CLIENTS: usize = 10_000_000;
/// Above this rate (per second) a limit does nothing useful.
pub const MAX_PER_SECOND: f64 = 1_000_000.0;
/// The longest time `burst` tokens may take to refill: longer is a mistake, not a policy.
pub const MAX_REFILL: Duration = Duration::from_secs(366 * 24 * 3600);
/// Header and claim values are cut to this many bytes before hashing.
pub const MAX_KEY_BYTES: usize = 256;
/// How often at most a full table is swept for keys that are fresh again.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// The table as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Sustained rate per second (exclusive with `per_minute`).
    pub per_second: Option<Spanned<f64>>,
    /// Sustained rate per minute (exclusive with `per_second`).
    pub per_minute: Option<Spanned<f64>>,
    /// Bucket size.
    pub burst: Option<Spanned<i64>>,
    /// Where the key comes from: "client", "header:<Name>" or "claim:<name>".
    pub key: Option<Spanned<String>>,
    /// How many keys are tracked at most.
    pub max_clients: Option<Spanned<i64>>,
}

/// Where a request's key comes from; decides when the pipeline checks the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The peer address (IPv6 grouped by /64).
    Client,
    /// A request header (set by a trusted proxy); the peer address when absent.
    Header(HeaderName),
    /// A claim of the authenticated JWT (`api_key:<index>` for API keys); the peer address
    /// when there is no principal.
    Claim(String),
}

/// A client's identity in the table: compact, no string formatting for addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    /// The /64 prefix: one host cannot rotate through its addresses.
    V6(u64),
    /// A header value or claim, cut to [`MAX_KEY_BYTES`].
    Text(Box<[u8]>),
    ApiKeyIndex(u64),
}

/// The bounded key table shared by the limiter's state store and [`RateLimit`].
struct Table {
    map: DashMapStateStore<Key>,
    /// The one bucket of new keys while the table is full.
    overflow: InMemoryState,
    cap: usize,
    /// Slots taken: reserved before an insert, released on removal, so `map.len() <= used <= cap`.
    used: AtomicUsize,
    /// True while new keys are sent to the overflow bucket (one warning per episode).
    overflowing: AtomicBool,
}

/// The governor state store over [`Table`].
struct Store(Arc<Table>);

/// A resolved rate limit: one budget per key, shared by every route it applies to.
pub struct RateLimit {
    limiter: RateLimiter<Key, Store, DefaultClock>,
    table: Arc<Table>,
    source: KeySource,
    /// "10 requests per second (burst 20)", for the 429 detail.
    describe: Box<str>,
    epoch: Instant,
    /// Nanoseconds since `epoch` + 1 of the last sweep; 0 = never.
    last_sweep: AtomicU64,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("limit", &self.describe)
            .field("key", &self.source)
            .field("max_clients", &self.table.cap)
            .finish()
    }
}

impl RateLimit {
    /// Checks the table and builds its limiter (empty until requests arrive).
    pub fn resolve(raw: &RawRateLimit, field: &str, _dir: &Path) -> Result<RateLimit, Mistake> {
        let (per_second, rate_text) = rate(raw, field)?;
        let burst = burst(raw, field, per_second)?;
        check_refill(raw, field, per_second, burst)?;
        let period = Duration::from_secs_f64(1.0 / per_second);
        let source = match &raw.key {
            Some(key) => key_source(key, field)?,
            None => KeySource::Client,
        };
        let cap = max_clients(raw, field)?;
        let quota = Quota::with_period(period)
            .expect("a checked rate has a positive period")
            .allow_burst(burst);
        let table = Arc::new(Table {
            map: DashMapStateStore::default(),
            overflow: InMemoryState::default(),
            cap,
            used: AtomicUsize::new(0),
            overflowing: AtomicBool::new(false),
        });
        Ok(RateLimit {
            limiter: RateLimiter::new(quota, Store(table.clone()), DefaultClock::default()),
            table,
            source,
            describe: format!("{rate_text} (burst {burst})").into(),
            epoch: Instant::now(),
            last_sweep: AtomicU64::new(0),
        })
    }

    /// Where the key comes from; the pipeline checks Client/Header limits before
    /// authentication and Claim limits after it.
    pub fn key_source(&self) -> &KeySource {
        &self.source
    }

    /// Takes one token for this request's key; `Err` is the 429 to send (with Retry-After).
    pub fn check(
        &self,
        client: IpAddr,
        headers: &HeaderMap,
        principal: Option<&Value>,
    ) -> Result<(), Problem> {
        let key = self.key(client, headers, principal);
        if self.table.is_full() {
            self.sweep_if_due();
        }
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            self.refusal(wait)
        })
    }

    /// The 429 for a request that must wait `wait`.
    fn refusal(&self, wait: Duration) -> Problem {
        let secs = retry_after_secs(wait);
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too Many Requests",
            format!(
                "rate limit of {} exceeded; retry in {secs} s",
                self.describe
            ),
        )
        .with_retry_after(secs)
    }

    /// This request's key, by the configured source (the client address as fallback).
    fn key(&self, client: IpAddr, headers: &HeaderMap, principal: Option<&Value>) -> Key {
        let found = match &self.source {
            KeySource::Client => None,
            KeySource::Header(name) => headers.get(name).and_then(|v| text_key(v.as_bytes())),
            KeySource::Claim(claim) => principal.and_then(|p| principal_key(p, claim)),
        };
        found.unwrap_or_else(|| ip_key(client))
    }

    /// Drops keys that are fresh again, unless another request did so less than
    /// [`SWEEP_INTERVAL`] ago; ends an overflow episode when room is back.
    fn sweep_if_due(&self) {
        let now = self.epoch.elapsed().as_nanos() as u64 + 1;
        let last = self.last_sweep.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < SWEEP_INTERVAL.as_nanos() as u64 {
            return;
        }
        if self
            .last_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another request is sweeping
        }
        let before = self.table.used.load(Ordering::Relaxed);
        self.limiter.retain_recent();
        if self.table.used.load(Ordering::Relaxed) < before {
            self.limiter.shrink_to_fit();
        }
        if !self.table.is_full() && self.table.overflowing.swap(false, Ordering::Relaxed) {
            tracing::info!(
                limit = %self.describe,
                "rate limit: the client table has room again; new clients get their own bucket"
            );
        }
    }

    /// How many keys are tracked now (never more than `max_clients`).
    #[cfg(test)]
    pub fn tracked_clients(&self) -> usize {
        self.limiter.len()
    }
}

impl Table {
    fn is_full(&self) -> bool {
        self.used.load(Ordering::Relaxed) >= self.cap
    }

    /// Takes a slot for a new key, unless the table is full.
    fn reserve(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// A new key found the table full: it shares the overflow bucket.
    fn note_overflow(&self) {
        if !self.overflowing.load(Ordering::Relaxed)
            && !self.overflowing.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                max_clients = self.cap,
                "rate limit: the client table is full of active clients; new clients share one \
                 overflow bucket until room is back (raise max_clients if this is normal traffic)"
            );
        }
    }
}

/// The theoretical arrival time a state holds (0 = fresh). A measuring function that
/// returns `Err` leaves the state as it is, so this only reads it.
fn tat_of(state: &InMemoryState) -> Nanos {
    state
        .measure_and_replace(&NotKeyed::NonKey, |tat| {
            Err::<((), Nanos), Nanos>(tat.unwrap_or_default())
        })
        .unwrap_err()
}

impl StateStore for Store {
    type Key = Key;

    fn measure_and_replace<T, F, E>(&self, key: &Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let table = &*self.0;
        if let Some(state) = table.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if !table.reserve() {
            table.note_overflow();
            return table.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let mut inserted = false;
        let state = table.map.entry(key.clone()).or_insert_with(|| {
            inserted = true;
            InMemoryState::default()
        });
        if !inserted {
            // Another request inserted the same key meanwhile: give the slot back.
            table.used.fetch_sub(1, Ordering::AcqRel);
        }
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl ShrinkableKeyedStateStore<Key> for Store {
    fn retain_recent(&self, drop_below: Nanos) {
        let table = &*self.0;
        table.map.retain(|_, state| {
            let keep = tat_of(state) > drop_below;
            if !keep {
                table.used.fetch_sub(1, Ordering::AcqRel);
            }
            keep
        });
    }

    fn shrink_to_fit(&self) {
        self.0.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.0.map.len()
    }

    fn is_empty(&self) -> bool {
        self.0.map.is_empty()
    }
}

/// The peer address as a key: IPv4 (also when mapped into IPv6) whole, IPv6 by its /64.
fn ip_key(ip: IpAddr) -> Key {
    match ip {
        IpAddr::V4(v4) => Key::V4(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::V4(u32::from(v4)),
            None => Key::V6((u128::from(v6) >> 64) as u64),
        },
    }
}

/// A header or claim value as a key: an IP address is keyed like a peer address (so
/// `X-Real-IP` groups IPv6 by /64 too), anything else by its first [`MAX_KEY_BYTES`] bytes.
/// Empty = absent.
fn text_key(bytes: &[u8]) -> Option<Key> {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    if let Some(ip) = std::str::from_utf8(trimmed)
        .ok()
        .and_then(|s| s.parse::<IpAddr>().ok())
    {
        return Some(ip_key(ip));
    }
    Some(Key::Text(
        trimmed[..trimmed.len().min(MAX_KEY_BYTES)].into(),
    ))
}

/// The key of an authenticated principal: a JWT claim (strings as they are, other values as
/// JSON text) or the API key's index. `None` when the claim is absent or null.
fn principal_key(principal: &Value, claim: &str) -> Option<Key> {
    match principal.get("scheme")?.as_str()? {
        "jwt" => match principal.get("claims")?.get(claim)? {
            Value::Null => None,
            Value::String(text) => text_key(text.as_bytes()),
            other => text_key(other.to_string().as_bytes()),
        },
        "api_key" => principal.get("key_index")?.as_u64().map(Key::ApiKeyIndex),
        _ => None,
    }
}

/// Seconds until a token is available, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.clamp(1, u64::from(u32::MAX)) as u32
}

/// The rate per second and its wording ("10 requests per second").
fn rate(raw: &RawRateLimit, field: &str) -> Result<(f64, String), Mistake> {
    let (value, name, unit, seconds) = match (&raw.per_second, &raw.per_minute) {
        (Some(_), Some(minute)) => {
            return Err((
                minute.span().start,
                format!("{field}.per_minute"),
                "per_second and per_minute are both set; keep one of them".into(),
            ))
        }
        (None, None) => {
            return Err((
                first_span(raw),
                format!("{field}.per_second"),
                "a rate limit needs its rate: add per_second = <n> or per_minute = <n>".into(),
            ))
        }
        (Some(second), None) => (second, "per_second", "second", 1.0),
        (None, Some(minute)) => (minute, "per_minute", "minute", 60.0),
    };
    let n = *value.get_ref();
    let per_second = n / seconds;
    if !n.is_finite() || n <= 0.0 {
        return Err((
            value.span().start,
            format!("{field}.{name}"),
            format!("{name} must be a number above 0 (e.g. 10, or 0.5 for one request every 2 {unit}s); to turn the limit off write rate_limit = false"),
        ));
    }
    if per_second > MAX_PER_SECOND {
        return Err((
            value.span().start,
            format!("{field}.{name}"),
            format!("{name} = {n} is above {MAX_PER_SECOND} requests per second, which limits nothing; lower it or remove the rate limit"),
        ));
    }
    let plural = if n == 1.0 { "request" } else { "requests" };
    Ok((per_second, format!("{n} {plural} per {unit}")))
}

/// `burst`, or ceil(rate per second) (at least 1).
fn burst(raw: &RawRateLimit, field: &str, per_second: f64) -> Result<NonZeroU32, Mistake> {
    let Some(burst) = &raw.burst else {
        let n = (per_second.ceil() as u32).max(1);
        return Ok(NonZeroU32::new(n).expect("at least 1"));
    };
    u32::try_from(*burst.get_ref())
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| {
            (
                burst.span().start,
                format!("{field}.burst"),
                format!(
                    "burst must be a whole number from 1 to {} (how many requests may come at once)",
                    u32::MAX
                ),
            )
        })
}

/// Refuses a bucket that would take more than [`MAX_REFILL`] to refill (and would overflow
/// the limiter's nanosecond arithmetic).
fn check_refill(
    raw: &RawRateLimit,
    field: &str,
    per_second: f64,
    burst: NonZeroU32,
) -> Result<(), Mistake> {
    if f64::from(burst.get()) / per_second <= MAX_REFILL.as_secs_f64() {
        return Ok(());
    }
    let (span, name) = match (&raw.burst, &raw.per_second, &raw.per_minute) {
        (Some(b), _, _) => (b.span().start, "burst"),
        (None, Some(s), _) => (s.span().start, "per_second"),
        (None, None, Some(m)) => (m.span().start, "per_minute"),
        (None, None, None) => (0, "per_second"),
    };
    Err((
        span,
        format!("{field}.{name}"),
        "burst / rate is more than a year to refill the bucket; raise the rate or lower burst"
            .into(),
    ))
}

/// Parses `key`: "client", "header:<Name>" or "claim:<name>".
fn key_source(key: &Spanned<String>, field: &str) -> Result<KeySource, Mistake> {
    let text = key.get_ref().trim();
    let mistake = |message: String| (key.span().start, format!("{field}.key"), message);
    if text == "client" {
        return Ok(KeySource::Client);
    }
    if let Some(name) = text.strip_prefix("header:") {
        return HeaderName::from_bytes(name.trim().as_bytes())
            .map(KeySource::Header)
            .map_err(|_| {
                mistake(format!(
                    "`{}` is not a valid header name; write e.g. key = \"header:X-Real-IP\"",
                    name.trim()
                ))
            });
    }
    if let Some(claim) = text.strip_prefix("claim:") {
        let claim = claim.trim();
        if claim.is_empty() {
            return Err(mistake(
                "the claim name is missing; write e.g. key = \"claim:sub\"".into(),
            ));
        }
        return Ok(KeySource::Claim(claim.to_owned()));
    }
    Err(mistake(format!(
        "`{text}` is not a key; use \"client\" (the peer address), \"header:<Name>\" (a header set by your proxy) or \"claim:<name>\" (a claim of the authenticated token)"
    )))
}

/// `max_clients`, 1..=[`MAX_MAX_CLIENTS`], default [`DEFAULT_MAX_CLIENTS`].
fn max_clients(raw: &RawRateLimit, field: &str) -> Result<usize, Mistake> {
    let Some(max) = &raw.max_clients else {
        return Ok(DEFAULT_MAX_CLIENTS);
    };
    match usize::try_from(*max.get_ref()) {
        Ok(n) if (1..=MAX_MAX_CLIENTS).contains(&n) => Ok(n),
        _ => Err((
            max.span().start,
            format!("{field}.max_clients"),
            format!("max_clients must be a whole number from 1 to {MAX_MAX_CLIENTS} (how many clients are tracked at once)"),
        )),
    }
}

/// The offset of the first key written in the table, for a mistake about a missing key.
fn first_span(raw: &RawRateLimit) -> usize {
    [
        raw.burst.as_ref().map(|s| s.span().start),
        raw.key.as_ref().map(|s| s.span().start),
        raw.max_clients.as_ref().map(|s| s.span().start),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn resolve(text: &str) -> Result<RateLimit, Mistake> {
        let raw: RawRateLimit = toml::from_str(text).expect("toml");
        RateLimit::resolve(&raw, "server.rate_limit", Path::new("."))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn hit(limit: &RateLimit, client: &str) -> Result<(), Problem> {
        limit.check(ip(client), &HeaderMap::new(), None)
    }

    #[test]
    fn burst_is_allowed_then_429_with_retry_after() {
        let limit = resolve("per_second = 1\nburst = 3").unwrap();
        for _ in 0..3 {
            hit(&limit, "10.0.0.1").unwrap();
        }
        let problem = hit(&limit, "10.0.0.1").unwrap_err();
        assert_eq!(problem.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(problem.slug, "rate-limited");
        assert_eq!(problem.title, "Too Many Requests");
        assert_eq!(problem.retry_after(), Some(1));
        assert_eq!(
            problem.detail,
            "rate limit of 1 request per second (burst 3) exceeded; retry in 1 s"
        );
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let limit = resolve("per_second = 10\nburst = 1").unwrap();
        hit(&limit, "10.0.0.1").unwrap();
        hit(&limit, "10.0.0.1").unwrap_err();
        std::thread::sleep(Duration::from_millis(150));
        hit(&limit, "10.0.0.1").unwrap();
    }

    #[test]
    fn fractional_rates_and_per_minute() {
        let limit = resolve("per_second = 0.5").unwrap();
        hit(&limit, "10.0.0.1").unwrap();
        let problem = hit(&limit, "10.0.0.1").unwrap_err();
        assert_eq!(problem.retry_after(), Some(2));
        assert!(problem.detail.contains("0.5 requests per second (burst 1)"));

        let limit = resolve("per_minute = 6\nburst = 2").unwrap();
        hit(&limit, "10.0.0.1").unwrap();
        hit(&limit, "10.0.0.1").unwrap();
        let problem = hit(&limit, "10.0.0.1").unwrap_err();
        assert_eq!(problem.retry_after(), Some(10));
        assert!(problem.detail.contains("6 requests per minute (burst 2)"));

        // Default burst: ceil(rate per second).
        let limit = resolve("per_second = 2.5").unwrap();
        for _ in 0..3 {
            hit(&limit, "10.0.0.1").unwrap();
        }
        hit(&limit, "10.0.0.1").unwrap_err();
    }

    #[test]
    fn clients_have_separate_buckets() {
        let limit = resolve("per_second = 1").unwrap();
        hit(&limit, "10.0.0.1").unwrap();
        hit(&limit, "10.0.0.1").unwrap_err();
        hit(&limit, "10.0.0.2").unwrap();
        hit(&limit, "2001:db8::1").unwrap();
        assert_eq!(limit.tracked_clients(), 3);
    }

    #[test]
    fn ipv6_is_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        let limit = resolve("per_second = 1").unwrap();
        hit(&limit, "2001:db8:0:1::1").unwrap();
        hit(&limit, "2001:db8:0:1:ffff:ffff:ffff:ffff").unwrap_err();
        hit(&limit, "2001:db8:0:2::1").unwrap();
        hit(&limit, "192.0.2.7").unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        limit.check(mapped, &HeaderMap::new(), None).unwrap_err();
    }

    #[test]
    fn header_keys_fall_back_to_the_client() {
        let limit = resolve("per_second = 1\nkey = \"header:X-Api-Client\"").unwrap();
        assert_eq!(
            limit.key_source(),
            &KeySource::Header(HeaderName::from_static("x-api-client"))
        );
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-api-client", HeaderValue::from_str(value).unwrap());
            headers
        };
        let client = ip("10.0.0.1");
        limit.check(client, &with("alpha"), None).unwrap();
        limit.check(client, &with("alpha"), None).unwrap_err();
        limit.check(client, &with("beta"), None).unwrap();
        // Absent or empty: the client address.
        limit.check(client, &HeaderMap::new(), None).unwrap();
        limit.check(client, &with("  "), None).unwrap_err();
        // An address in the header is keyed as an address (IPv6 by /64).
        limit.check(client, &with("2001:db8::1"), None).unwrap();
        limit.check(client, &with("2001:db8::2"), None).unwrap_err();
        // Values are cut to 256 bytes: the same first 256 bytes are the same key.
        let long = "x".repeat(MAX_KEY_BYTES);
        limit
            .check(client, &with(&format!("{long}1")), None)
            .unwrap();
        limit
            .check(client, &with(&format!("{long}2")), None)
            .unwrap_err();
    }

    #[test]
    fn claim_keys_api_keys_and_fallback() {
        let limit = resolve("per_second = 1\nkey = \"claim:sub\"").unwrap();
        assert_eq!(limit.key_source(), &KeySource::Claim("sub".into()));
        let client = ip("10.0.0.1");
        let headers = HeaderMap::new();
        let alice = json!({"scheme": "jwt", "claims": {"sub": "alice"}});
        let bob = json!({"scheme": "jwt", "claims": {"sub": "bob"}});
        let numeric = json!({"scheme": "jwt", "claims": {"sub": 42}});
        let no_sub = json!({"scheme": "jwt", "claims": {"iss": "x"}});
        let key0 = json!({"scheme": "api_key", "key_index": 0});
        let key1 = json!({"scheme": "api_key", "key_index": 1});
        limit.check(client, &headers, Some(&alice)).unwrap();
        limit.check(client, &headers, Some(&alice)).unwrap_err();
        limit.check(client, &headers, Some(&bob)).unwrap();
        limit.check(client, &headers, Some(&numeric)).unwrap();
        limit.check(client, &headers, Some(&numeric)).unwrap_err();
        limit.check(client, &headers, Some(&key0)).unwrap();
        limit.check(client, &headers, Some(&key0)).unwrap_err();
        limit.check(client, &headers, Some(&key1)).unwrap();
        // No principal, or no such claim: the client address.
        limit.check(client, &headers, None).unwrap();
        limit.check(client, &headers, Some(&no_sub)).unwrap_err();
        // A claim "api_key:0"-like string is not API key 0.
        let lookalike = json!({"scheme": "jwt", "claims": {"sub": "api_key:1"}});
        limit.check(client, &headers, Some(&lookalike)).unwrap();
    }

    #[test]
    fn a_full_table_sends_new_clients_to_one_overflow_bucket() {
        let limit = resolve("per_second = 1\nburst = 1\nmax_clients = 2").unwrap();
        hit(&limit, "10.0.0.1").unwrap();
        hit(&limit, "10.0.0.2").unwrap();
        // New clients now share one bucket: the first gets its token, the next is refused.
        hit(&limit, "10.0.0.3").unwrap();
        hit(&limit, "10.0.0.4").unwrap_err();
        assert!(limit.table.overflowing.load(Ordering::Relaxed));
        // Tracked clients keep their own bucket (empty here), and memory stays bounded.
        hit(&limit, "10.0.0.1").unwrap_err();
        for n in 0..1000u32 {
            let _ = limit.check(
                IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + n)),
                &HeaderMap::new(),
                None,
            );
            assert!(limit.tracked_clients() <= 2);
        }
        assert_eq!(limit.tracked_clients(), 2);
    }

    #[test]
    fn keys_that_are_fresh_again_are_dropped_when_the_table_is_full() {
        // One token every 200 ms: a used bucket is droppable 400 ms later.
        let limit = resolve("per_second = 5\nburst = 1\nmax_clients = 2").unwrap();
        hit(&limit, "10.0.0.1").unwrap();
        hit(&limit, "10.0.0.2").unwrap();
        hit(&limit, "10.0.0.3").unwrap(); // overflow bucket
        assert!(limit.table.overflowing.load(Ordering::Relaxed));
        // After the buckets refilled and the sweep interval passed, a sweep frees room.
        std::thread::sleep(Duration::from_millis(450));
        hit(&limit, "10.0.0.4").unwrap();
        assert_eq!(limit.tracked_clients(), 1);
        assert!(!limit.table.overflowing.load(Ordering::Relaxed));
        hit(&limit, "10.0.0.4").unwrap_err(); // its own bucket now
        hit(&limit, "10.0.0.5").unwrap();
        assert_eq!(limit.tracked_clients(), 2);
    }

    #[test]
    fn the_cap_holds_under_concurrency() {
        let limit = Arc::new(resolve("per_second = 1000\nmax_clients = 8").unwrap());
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let limit = limit.clone();
                std::thread::spawn(move || {
                    for n in 0..2000u32 {
                        let addr = Ipv6Addr::from((u128::from(t * 100_000 + n % 50)) << 64);
                        let _ = limit.check(IpAddr::V6(addr), &HeaderMap::new(), None);
                        assert!(limit.tracked_clients() <= 8);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let used = limit.table.used.load(Ordering::Relaxed);
        assert!(used <= 8);
        assert_eq!(used, limit.tracked_clients());
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RateLimit>();
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn config_mistakes() {
        let mistake = |text: &str| resolve(text).unwrap_err();
        let (_, field, message) = mistake("per_second = 1\nper_minute = 60");
        assert_eq!(field, "server.rate_limit.per_minute");
        assert!(message.contains("keep one"), "{message}");
        let (offset, field, message) = mistake("burst = 5");
        assert_eq!(field, "server.rate_limit.per_second");
        assert_eq!(offset, 8);
        assert!(message.contains("per_second = <n>"), "{message}");
        for text in [
            "per_second = 0",
            "per_second = -1",
            "per_minute = -0.5",
            "per_second = nan",
            "per_second = inf",
        ] {
            let (_, _, message) = mistake(text);
            assert!(message.contains("above 0"), "{text}: {message}");
        }
        let (_, _, message) = mistake("per_second = 2e6");
        assert!(message.contains("limits nothing"), "{message}");
        let (_, field, _) = mistake("per_second = 1\nburst = 0");
        assert_eq!(field, "server.rate_limit.burst");
        let (_, field, _) = mistake("per_second = 1\nburst = -3");
        assert_eq!(field, "server.rate_limit.burst");
        let (_, field, message) = mistake("per_second = 0.000001\nburst = 100");
        assert_eq!(field, "server.rate_limit.burst");
        assert!(message.contains("more than a year"), "{message}");
        for bad in ["ip", "header:", "header:bad name", "claim:", "Client"] {
            let (_, field, message) = mistake(&format!("per_second = 1\nkey = \"{bad}\""));
            assert_eq!(field, "server.rate_limit.key", "{bad}");
            assert!(
                message.contains("not a valid header name")
                    || message.contains("claim name is missing")
                    || message.contains("is not a key"),
                "{bad}: {message}"
            );
        }
        for bad in ["0", "-1", "10000001"] {
            let (_, field, _) = mistake(&format!("per_second = 1\nmax_clients = {bad}"));
            assert_eq!(field, "server.rate_limit.max_clients");
        }
        assert!(toml::from_str::<RawRateLimit>("per_second = 1\nrate = 2").is_err());
        assert!(toml::from_str::<RawRateLimit>("per_second = \"10\"").is_err());
    }
}
