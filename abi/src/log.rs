//! Forwards a plugin's `tracing` events to the host's logger, so plugin logs
//! share the host's format, filter and destination.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::ffi::level;
use crate::plugin::Host;

/// A `tracing` layer that sends every event to [`Host::log`], asking the
/// host's filter through [`Host::log_enabled`] first.
#[derive(Debug, Clone, Copy)]
pub struct HostLogLayer {
    host: Host,
}

impl HostLogLayer {
    /// A layer logging through `host`.
    pub fn new(host: Host) -> Self {
        HostLogLayer { host }
    }
}

fn level_code(level: &Level) -> u32 {
    match *level {
        Level::ERROR => level::ERROR,
        Level::WARN => level::WARN,
        Level::INFO => level::INFO,
        Level::DEBUG => level::DEBUG,
        Level::TRACE => level::TRACE,
    }
}

/// Collects `message` and the other fields as `key=value`.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }
}

impl<S: Subscriber> Layer<S> for HostLogLayer {
    fn register_callsite(
        &self,
        _metadata: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // The host's filter may change what it keeps; ask per event.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.host
            .log_enabled(level_code(metadata.level()), metadata.target())
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let metadata = event.metadata();
        self.host
            .log(level_code(metadata.level()), metadata.target(), &message.0);
    }
}

/// Makes [`HostLogLayer`] the plugin's global subscriber, once. A plugin
/// that installed its own subscriber first keeps it.
pub(crate) fn install(host: Host) {
    let subscriber = tracing_subscriber::registry().with(HostLogLayer::new(host));
    let _ = tracing::subscriber::set_global_default(subscriber);
}
