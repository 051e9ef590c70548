//! Cross-cutting HTTP policies the host applies to every route, whatever plugin serves it:
//! one module per policy, each declared in `spikard.toml`.

pub mod metrics;
pub mod security_headers;
