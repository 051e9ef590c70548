//! The addresses of the connection a request came on: the rate limiter keys on the client's,
//! plugins get both as request properties (`client_addr`, `local_addr`).
//!
//! Made once per connection (the peer address comes with `accept`; the local one costs a
//! `getsockname` only when the listener is bound to an unspecified address) and shared by
//! its requests: each request's extensions get a clone of the `Arc`, one reference count
//! and a small box in the map axum allocates for every routed request anyway.

use std::net::SocketAddr;
use std::sync::Arc;

/// One connection's addresses, with their text as plugins see it.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's address (an IPv4-mapped IPv6 address as plain IPv4).
    pub peer: Option<SocketAddr>,
    peer_text: String,
    local_text: String,
}

impl ConnInfo {
    /// The shared record of a connection from `peer` accepted on `local`.
    pub fn new(peer: Option<SocketAddr>, local: Option<SocketAddr>) -> Arc<ConnInfo> {
        let peer = peer.map(|p| SocketAddr::new(p.ip().to_canonical(), p.port()));
        let text = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        Arc::new(ConnInfo {
            peer,
            peer_text: text(peer),
            local_text: text(local),
        })
    }

    /// The record a request carries in its extensions (set by the connection).
    pub fn of(extensions: &http::Extensions) -> Option<&ConnInfo> {
        extensions.get::<Arc<ConnInfo>>().map(Arc::as_ref)
    }

    /// `ip:port` (`[ip6]:port`) of the client; empty when unknown.
    pub fn peer_text(&self) -> &str {
        &self.peer_text
    }

    /// `ip:port` (`[ip6]:port`) the connection was accepted on; empty when unknown.
    pub fn local_text(&self) -> &str {
        &self.local_text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_plugins_expect() {
        let v4 = ConnInfo::new(
            Some("[::ffff:10.0.0.7]:5123".parse().unwrap()),
            Some("127.0.0.1:8000".parse().unwrap()),
        );
        assert_eq!(
            v4.peer_text(),
            "10.0.0.7:5123",
            "mapped addresses read as IPv4"
        );
        assert_eq!(v4.local_text(), "127.0.0.1:8000");
        let v6 = ConnInfo::new(Some("[2001:db8::1]:443".parse().unwrap()), None);
        assert_eq!(v6.peer_text(), "[2001:db8::1]:443");
        assert_eq!(v6.local_text(), "");
    }
}
