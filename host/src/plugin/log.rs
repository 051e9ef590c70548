//! Plugin log records as real `tracing` events, with the plugin's own target
//! (e.g. a Python logger name), so `RUST_LOG=app.db=debug` filters them like
//! host events.
//!
//! `tracing` wants a static callsite per target and level; plugin targets are
//! only known at run time, so one callsite is made and leaked for each
//! `(target, level)` pair the first time it is seen. Targets are few (module
//! or logger names), so the leak is bounded.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use tracing::callsite::{Callsite, Identifier};
use tracing::field::{FieldSet, Value};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};

use spikard_abi::ffi::level;

/// A callsite made at run time for one plugin target and level.
struct DynamicCallsite {
    metadata: OnceLock<Metadata<'static>>,
}

impl Callsite for DynamicCallsite {
    fn set_interest(&self, _interest: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        self.metadata
            .get()
            .expect("metadata is set before registration")
    }
}

const FIELDS: &[&str] = &["message", "plugin"];

type Key = (String, u32);

fn callsites() -> &'static RwLock<HashMap<Key, &'static DynamicCallsite>> {
    static CALLSITES: OnceLock<RwLock<HashMap<Key, &'static DynamicCallsite>>> = OnceLock::new();
    CALLSITES.get_or_init(Default::default)
}

fn tracing_level(code: u32) -> Level {
    match code {
        level::ERROR => Level::ERROR,
        level::WARN => Level::WARN,
        level::INFO => Level::INFO,
        level::DEBUG => Level::DEBUG,
        _ => Level::TRACE,
    }
}

fn callsite(target: &str, code: u32) -> &'static DynamicCallsite {
    let key = (target.to_owned(), code.clamp(level::ERROR, level::TRACE));
    if let Some(site) = callsites()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return site;
    }
    let mut map = callsites().write().unwrap_or_else(|e| e.into_inner());
    if let Some(site) = map.get(&key) {
        return site;
    }
    let site: &'static DynamicCallsite = Box::leak(Box::new(DynamicCallsite {
        metadata: OnceLock::new(),
    }));
    let target: &'static str = Box::leak(key.0.clone().into_boxed_str());
    let _ = site.metadata.set(Metadata::new(
        "plugin log",
        target,
        tracing_level(key.1),
        None,
        None,
        None,
        FieldSet::new(FIELDS, Identifier(site)),
        Kind::EVENT,
    ));
    tracing::callsite::register(site);
    map.insert(key, site);
    site
}

/// Whether the host's filter keeps a record of `plugin` at this level and target.
pub fn enabled(target: &str, code: u32) -> bool {
    let metadata = callsite(target, code).metadata();
    tracing::dispatcher::get_default(|d| d.enabled(metadata))
}

/// Emits one plugin log record.
pub fn emit(plugin: &str, target: &str, code: u32, message: &str) {
    let metadata = callsite(target, code).metadata();
    if !tracing::dispatcher::get_default(|d| d.enabled(metadata)) {
        return;
    }
    let fields = metadata.fields();
    let mut names = fields.iter();
    let (Some(message_field), Some(plugin_field)) = (names.next(), names.next()) else {
        return;
    };
    let values: [(&tracing::field::Field, Option<&dyn Value>); 2] = [
        (&message_field, Some(&message as &dyn Value)),
        (&plugin_field, Some(&plugin as &dyn Value)),
    ];
    Event::dispatch(metadata, &fields.value_set(&values));
}
