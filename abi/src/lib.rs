//! The stable C ABI between `spikard-host` and its plugins, and the safe
//! Rust side of it.
//!
//! A plugin is a shared library exporting `spikard_plugin_v1`. Rust authors
//! implement [`Plugin`] and call [`export_plugin!`]; C authors include
//! `include/spikard_plugin.h`; the host uses [`ffi`] to load and drive them.
//! `abi/README.md` states the version, ownership and threading rules.

#![warn(missing_docs)]

pub mod export;
pub mod ffi;
pub mod log;
mod plugin;

pub use plugin::{
    Host, Plugin, Refused, Request, Responder, RouteBinding, RouteDecl, RouteRefused,
};

/// The C header, for tools and tests that compile C plugins.
pub const C_HEADER: &str = include_str!("../include/spikard_plugin.h");
