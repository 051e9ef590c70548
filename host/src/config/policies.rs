//! The middleware keys of the config: `[server.<policy>]`, `[[policies]]` entries and each
//! route's own keys, each table resolved once (see [`crate::middleware::policy`] for how a
//! route picks its value), and the `[[static]]` mounts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::middleware::auth::{Auth, RawAuth};
use crate::middleware::compression::{Compression, RawCompression};
use crate::middleware::cors::{Cors, RawCors};
use crate::middleware::policy::{pick, resolve_setting, Selector, Setting, Toggle};
use crate::middleware::rate_limit::{RateLimit, RawRateLimit};
use crate::middleware::Mistake;

/// The policy keys of one table as written (the server's, a `[[policies]]` entry's or a
/// route's); each is `false` or its own table.
#[derive(Default, Clone, Copy)]
pub struct RawKeys<'a> {
    /// `cors`.
    pub cors: Option<&'a Toggle<RawCors>>,
    /// `auth`.
    pub auth: Option<&'a Toggle<RawAuth>>,
    /// `rate_limit`.
    pub rate_limit: Option<&'a Toggle<RawRateLimit>>,
    /// `compression`.
    pub compression: Option<&'a Toggle<RawCompression>>,
}

/// One `[[policies]]` entry as written.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    path: Option<Spanned<String>>,
    methods: Option<Spanned<Vec<String>>>,
    cors: Option<Toggle<RawCors>>,
    auth: Option<Toggle<RawAuth>>,
    rate_limit: Option<Toggle<RawRateLimit>>,
    compression: Option<Toggle<RawCompression>>,
    request_timeout_ms: Option<Spanned<u64>>,
}

/// One level's policies, each resolved once.
#[derive(Debug, Default, Clone)]
pub struct Level {
    cors: Setting<Cors>,
    auth: Setting<Auth>,
    rate_limit: Setting<RateLimit>,
    compression: Setting<Compression>,
}

/// What one route runs: the policies that apply to it after precedence.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    /// Cross-origin rules; preflights at the route's path follow them too.
    pub cors: Option<Arc<Cors>>,
    /// Who may call the route.
    pub auth: Option<Arc<Auth>>,
    /// How often a client may call it (one budget per resolved table).
    pub rate_limit: Option<Arc<RateLimit>>,
    /// How its responses are compressed.
    pub compression: Option<Arc<Compression>>,
    /// A `[[policies]]` entry's `request_timeout_ms` (a route's own key wins over it).
    pub request_timeout: Option<Duration>,
}

/// Every level of the config: the server's and the `[[policies]]` entries, in file order.
#[derive(Debug, Default, Clone)]
pub struct Policies {
    server: Level,
    entries: Vec<(Selector, Level, Option<Duration>)>,
}

impl Policies {
    /// `[server.cors]`, which answers the host makes without a route (404, 405) also follow.
    pub fn server_cors(&self) -> Option<Arc<Cors>> {
        self.server.cors.clone().flatten()
    }

    /// `[server.compression]`, which static mounts also get.
    pub fn server_compression(&self) -> Option<Arc<Compression>> {
        self.server.compression.clone().flatten()
    }

    /// What a route gets, given its own keys (`Level::default()` for a plugin's route).
    pub fn for_route(&self, own: &Level, method: &http::Method, template: &str) -> Applied {
        fn one<T>(
            policies: &Policies,
            own: &Setting<T>,
            of: impl Fn(&Level) -> &Setting<T>,
            method: &http::Method,
            template: &str,
        ) -> Option<Arc<T>> {
            let entries: Vec<(Selector, Setting<T>)> = policies
                .entries
                .iter()
                .map(|(selector, level, _)| (selector.clone(), of(level).clone()))
                .collect();
            pick(own, &entries, of(&policies.server), method, template)
        }
        let request_timeout = self
            .entries
            .iter()
            .rev()
            .find(|(selector, _, timeout)| timeout.is_some() && selector.matches(method, template))
            .and_then(|(_, _, timeout)| *timeout);
        Applied {
            cors: one(self, &own.cors, |l| &l.cors, method, template),
            auth: one(self, &own.auth, |l| &l.auth, method, template),
            rate_limit: one(self, &own.rate_limit, |l| &l.rate_limit, method, template),
            compression: one(self, &own.compression, |l| &l.compression, method, template),
            request_timeout,
        }
    }
}

/// Resolves one table's keys; `field` is its dotted prefix (`server`, `routes[2]`).
pub fn resolve_level(
    source: &Source<'_>,
    keys: RawKeys<'_>,
    field: &str,
    dir: &Path,
) -> Result<Level, ConfigError> {
    let fail =
        |(offset, field, message): Mistake| source.error::<()>(offset, field, message).unwrap_err();
    Ok(Level {
        cors: resolve_setting(keys.cors, |raw| {
            Cors::resolve(raw, &format!("{field}.cors"), dir)
        })
        .map_err(fail)?,
        auth: resolve_setting(keys.auth, |raw| {
            Auth::resolve(raw, &format!("{field}.auth"), dir)
        })
        .map_err(fail)?,
        rate_limit: resolve_setting(keys.rate_limit, |raw| {
            RateLimit::resolve(raw, &format!("{field}.rate_limit"), dir)
        })
        .map_err(fail)?,
        compression: resolve_setting(keys.compression, |raw| {
            Compression::resolve(raw, &format!("{field}.compression"), dir)
        })
        .map_err(fail)?,
    })
}

/// Resolves the server's keys and every `[[policies]]` entry.
pub fn resolve(
    source: &Source<'_>,
    server: RawKeys<'_>,
    entries: &[Spanned<RawPolicy>],
    dir: &Path,
) -> Result<Policies, ConfigError> {
    let mut policies = Policies {
        server: resolve_level(source, server, "server", dir)?,
        entries: Vec::new(),
    };
    for (i, entry) in entries.iter().enumerate() {
        let field = format!("policies[{i}]");
        let raw = entry.get_ref();
        let selector = Selector::new(
            raw.path.as_ref().map(|p| p.get_ref().as_str()),
            raw.methods.as_ref().map(|m| m.get_ref().as_slice()),
        )
        .map_err(|message| {
            let (offset, key) = match (&raw.path, &raw.methods) {
                (Some(p), _) if Selector::new(Some(p.get_ref()), None).is_err() => {
                    (p.span().start, "path")
                }
                (_, Some(m)) => (m.span().start, "methods"),
                _ => (entry.span().start, "path"),
            };
            source
                .error::<()>(offset, format!("{field}.{key}"), message)
                .unwrap_err()
        })?;
        let keys = RawKeys {
            cors: raw.cors.as_ref(),
            auth: raw.auth.as_ref(),
            rate_limit: raw.rate_limit.as_ref(),
            compression: raw.compression.as_ref(),
        };
        let level = resolve_level(source, keys, &field, dir)?;
        let timeout = match &raw.request_timeout_ms {
            None => None,
            Some(ms) => Some(super::request_timeout(
                source,
                ms,
                &format!("{field}.request_timeout_ms"),
            )?),
        };
        if raw.cors.is_none()
            && raw.auth.is_none()
            && raw.rate_limit.is_none()
            && raw.compression.is_none()
            && timeout.is_none()
        {
            return source.error(
                entry.span().start,
                field,
                "sets no policy; add cors, auth, rate_limit, compression or request_timeout_ms (or remove the entry)",
            );
        }
        policies.entries.push((selector, level, timeout));
    }
    Ok(policies)
}
