//! Cross-cutting HTTP policies the host applies to every route, whatever plugin serves it:
//! one module per policy, each declared in `spikard.toml`. [`policy`] decides which of them
//! a route gets (server-wide defaults, `[[policies]]` selected by path and method, the
//! route's own keys).

pub mod auth;
pub mod compression;
pub mod cors;
pub mod metrics;
pub mod policy;
pub mod rate_limit;
pub mod security_headers;
pub mod static_files;

/// A config mistake: byte offset in the file, field, message (the config turns it into
/// its file:line error).
pub type Mistake = (usize, String, String);
