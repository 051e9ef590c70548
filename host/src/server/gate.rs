//! The policies a request passes after routing and before its body is read: a rate limit
//! keyed by the client (or a header), authentication, then a rate limit keyed by a claim of
//! the authenticated principal. Refused requests cost no body read, no validation and no
//! plugin call.

use std::net::{IpAddr, Ipv4Addr};

use super::ConnInfo;
use crate::middleware::rate_limit::KeySource;
use crate::problem::Problem;
use crate::routes::Route;

/// Checks the route's rate limit and authentication; the principal, when the route
/// authenticates, goes to the plugin as `params_json.auth`.
pub fn pass(
    route: &Route,
    parts: &http::request::Parts,
) -> Result<Option<serde_json::Value>, Problem> {
    let policies = &route.policies;
    let client = || {
        ConnInfo::of(&parts.extensions)
            .and_then(|c| c.peer)
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
    };
    let limit = policies.rate_limit.as_deref();
    let by_claim = limit.is_some_and(|l| matches!(l.key_source(), KeySource::Claim(_)));
    if let Some(limit) = limit.filter(|_| !by_claim) {
        limit.check(client(), &parts.headers, None)?;
    }
    let principal = match &policies.auth {
        Some(auth) => Some(auth.authenticate(&parts.headers, parts.uri.query())?),
        None => None,
    };
    if let Some(limit) = limit.filter(|_| by_claim) {
        limit.check(client(), &parts.headers, principal.as_ref())?;
    }
    Ok(principal)
}
