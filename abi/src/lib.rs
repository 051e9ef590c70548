//! The stable C ABI between `spikard-host` and its plugins, and the safe
//! Rust side of it.
//!
//! A plugin is a shared library exporting `spikard_plugin_v1`. Rust authors
//! implement [`Plugin`] and call [`export_plugin!`]; C authors include
//! `include/spikard_plugin.h`; the host uses [`ffi`] to load and drive them.
//! `abi/README.md` states the version, ownership and threading rules.
//!
//! The SDK speaks ABI 1.1 and loads into any 1.x host: request properties
//! ([`Request::client_addr`], [`Request::route`], ...), cancel tokens
//! ([`Responder::set_cancel_token`], [`Plugin::cancel_token`]) and streamed
//! responses ([`Responder::start_stream`], [`Stream`]) and streamed request
//! bodies ([`Request::body_streamed`], [`Responder::read_body`]) report a 1.0
//! host as `None`, false or a `NotSupported` error instead of failing.

#![warn(missing_docs)]

pub mod body;
pub mod export;
pub mod ffi;
pub mod log;
mod plugin;
pub mod stream;

pub use body::{BodyChunk, BodyError, Next};
pub use plugin::{
    CancelTokenError, Host, Plugin, Refused, Request, Responder, RouteBinding, RouteDecl,
    RouteRefused,
};
pub use stream::{Stream, StreamError, Written};

/// The C header, for tools and tests that compile C plugins.
pub const C_HEADER: &str = include_str!("../include/spikard_plugin.h");
