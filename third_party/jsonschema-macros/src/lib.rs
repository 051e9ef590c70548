//! Placeholder for `jsonschema-macros` 0.61.x, which is never built here (the `macros`
//! feature of jsonschema is off); see this crate's Cargo.toml for why it exists.
