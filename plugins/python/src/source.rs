//! What Python may read of a request beyond its parameters, body and
//! headers: the request line and the ABI 1.1 request properties (client and
//! server addresses, scheme, HTTP version, matched route), for
//! `spikard.Request`.
//!
//! The host's request is borrowed for the duration of `handle` only, so the
//! properties are copied there, into one allocation ([`RequestInfo`]), and
//! only for handlers that take `request: Request`; every other request pays
//! nothing. Python reads them through attributes of the request's source
//! object (the [`PyResponder`](crate::native::PyResponder), or a
//! [`PyRequestSource`] for the `into_future` bridge), converted on access.

use std::net::SocketAddr;
use std::sync::Arc;

use pyo3::prelude::*;
use spikard_abi::Request;

/// The properties, in the order they are packed.
#[derive(Clone, Copy)]
enum Field {
    Method,
    Path,
    Query,
    Client,
    Server,
    Scheme,
    HttpVersion,
    Route,
}

const FIELDS: usize = 8;

/// A copy of a request's line and properties: their text back to back, and
/// where each ends.
pub struct RequestInfo {
    text: Box<str>,
    ends: [u32; FIELDS],
}

impl RequestInfo {
    /// Copies what [`Field`] lists out of the host's request; properties a
    /// 1.0 host does not send are empty.
    pub fn copy(request: &Request<'_>) -> Box<Self> {
        let parts: [&str; FIELDS] = [
            request.method(),
            request.path(),
            request.query(),
            request.client_addr().unwrap_or(""),
            request.local_addr().unwrap_or(""),
            request.scheme().unwrap_or(""),
            request.http_version().unwrap_or(""),
            request.route().unwrap_or(""),
        ];
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; FIELDS];
        for (end, part) in ends.iter_mut().zip(parts) {
            text.push_str(part);
            // A request line past 4 GiB cannot reach a plugin (the host's header limit).
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Box::new(RequestInfo {
            text: text.into_boxed_str(),
            ends,
        })
    }

    /// The bytes this copy holds, for the queues' accounting.
    pub fn size(&self) -> usize {
        self.text.len()
    }

    fn get(&self, field: Field) -> &str {
        let i = field as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.text
            .get(start..self.ends[i] as usize)
            .unwrap_or_default()
    }

    /// A property, `None` when the host did not send it.
    fn property(&self, field: Field) -> Option<&str> {
        Some(self.get(field)).filter(|s| !s.is_empty())
    }
}

/// A request's id and, for handlers that take the request, its
/// [`RequestInfo`].
pub struct Source {
    /// The host's id of the request.
    pub request_id: Arc<str>,
    /// Copied at dispatch when the handler takes `request: Request`.
    pub info: Option<Box<RequestInfo>>,
}

impl Source {
    fn property(&self, field: Field) -> Option<&str> {
        self.info.as_deref().and_then(|info| info.property(field))
    }

    /// `(host, port)` of an address property: `None` when unknown (or not copied).
    fn address(&self, field: Field) -> Option<(String, u16)> {
        let addr: SocketAddr = self.property(field)?.parse().ok()?;
        Some((addr.ip().to_string(), addr.port()))
    }
}

/// A request's source as Python sees it: its id and what was copied of it.
/// The per-request responder ([`PyResponder`](crate::native::PyResponder))
/// is a subclass; the `into_future` bridge, whose responder stays in Rust,
/// hands Python one of these. Every attribute but `request_id` is `None`
/// when unknown: a 1.0 host, or a handler that did not ask for the request
/// (nothing was copied).
#[pyclass(frozen, subclass, name = "RequestSource", module = "spikard._native")]
pub struct PyRequestSource(pub Source);

#[pymethods]
impl PyRequestSource {
    /// The host's id of the request, for logs and cancellation.
    #[getter]
    fn request_id(&self) -> &str {
        &self.0.request_id
    }
    /// `(host, port)` of the client (the TCP peer), or `None`.
    #[getter]
    fn client(&self) -> Option<(String, u16)> {
        self.0.address(Field::Client)
    }
    /// `(host, port)` the connection was accepted on, or `None`.
    #[getter]
    fn server(&self) -> Option<(String, u16)> {
        self.0.address(Field::Server)
    }
    /// `"http"` or `"https"`, as the host serves the request, or `None`.
    #[getter]
    fn scheme(&self) -> Option<&str> {
        self.0.property(Field::Scheme)
    }
    /// `"HTTP/1.1"`, `"HTTP/1.0"`, ..., or `None`.
    #[getter]
    fn http_version(&self) -> Option<&str> {
        self.0.property(Field::HttpVersion)
    }
    /// The matched route's template, e.g. `/items/{id}`, or `None`.
    #[getter]
    fn route(&self) -> Option<&str> {
        self.0.property(Field::Route)
    }
    /// The HTTP method, or `None`.
    #[getter]
    fn method(&self) -> Option<&str> {
        self.0.property(Field::Method)
    }
    /// The percent-encoded path without the query, or `None`.
    #[getter]
    fn path(&self) -> Option<&str> {
        self.0.property(Field::Path)
    }
    /// The raw query string without `?` (`""` when there is none, `None`
    /// when nothing was copied).
    #[getter]
    fn query_string(&self) -> Option<&str> {
        self.0.info.as_deref().map(|info| info.get(Field::Query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(parts: [&str; FIELDS]) -> RequestInfo {
        let mut text = String::new();
        let mut ends = [0u32; FIELDS];
        for (end, part) in ends.iter_mut().zip(parts) {
            text.push_str(part);
            *end = text.len() as u32;
        }
        RequestInfo {
            text: text.into(),
            ends,
        }
    }

    #[test]
    fn fields_come_back_apart() {
        let info = info([
            "GET",
            "/items/7",
            "",
            "[::1]:5000",
            "127.0.0.1:8000",
            "http",
            "HTTP/1.1",
            "/items/{id}",
        ]);
        assert_eq!(info.get(Field::Method), "GET");
        assert_eq!(info.get(Field::Path), "/items/7");
        assert_eq!(info.property(Field::Query), None);
        assert_eq!(info.get(Field::Route), "/items/{id}");
        let source = Source {
            request_id: "r".into(),
            info: Some(Box::new(info)),
        };
        assert_eq!(source.address(Field::Client), Some(("::1".into(), 5000)));
        assert_eq!(
            source.address(Field::Server),
            Some(("127.0.0.1".into(), 8000))
        );
        assert_eq!(source.property(Field::HttpVersion), Some("HTTP/1.1"));
        let bare = Source {
            request_id: "r".into(),
            info: None,
        };
        assert_eq!(
            (bare.address(Field::Client), bare.property(Field::Method)),
            (None, None)
        );
    }
}
