//! A streamed response as hyper sends it: the plugin's stream ([`ResponseStream`]) as the
//! body, with what must happen when it ends or is dropped — the access line (with the
//! stream's whole time as latency, `outcome=client_disconnected` or `shutdown` when it did
//! not reach its end) and the release of a client's request id kept in flight until then.
//!
//! hyper sends the body chunked (HTTP/1.1; an HTTP/1.0 client gets it close-delimited),
//! with the plugin's trailers when the client sent `TE: trailers` and the head declared
//! their names in `Trailer`. The compression layer wraps this body like any other and
//! flushes its encoder whenever the stream waits for the plugin, so each chunk leaves
//! compressed as it comes. After the head no request timeout applies; a client that stops
//! reading stalls hyper's writes, and the connection's keep-alive timeout then ends it
//! (`timed_io`). A client that resets the connection is noticed at once, even while the
//! stream idles (the connection's reset watch keeps watching until the body ends); one that
//! only closes its side is noticed at the next write. Either way the plugin is cancelled.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::header::TE;
use hyper::body::{Frame, SizeHint};

use super::access::StreamLine;
use super::connection::Streaming;
use super::request_id::RequestId;
use super::Shared;
use crate::plugin::pending::ResponseStream;

/// `head` with `body` streamed after it. `line` is written when the body ends (a HEAD
/// request's body is never sent: its end is now); a client's `request_id` stays in flight
/// until then.
pub fn response(
    head: Response,
    body: ResponseStream,
    mut line: StreamLine,
    head_only: bool,
    request_id: RequestId<'_>,
    shared: &Arc<Shared>,
) -> Response {
    if head_only {
        line.ended();
    }
    // The plugin may still be cancelled by this id until the stream ends: nobody else may
    // take it before.
    let (id, registered) = request_id.detach();
    let held = registered.then(|| HeldId {
        shared: shared.clone(),
        id,
    });
    let mut response = head.map(|_| {
        Body::new(Streamed {
            body,
            line,
            _held: held,
        })
    });
    response.extensions_mut().insert(Streaming);
    response
}

/// Whether the client takes trailers: `TE: trailers` (RFC 9110 §10.1.4).
pub fn accepts_trailers(headers: &http::HeaderMap) -> bool {
    headers.get_all(TE).iter().any(|value| {
        value.to_str().is_ok_and(|text| {
            text.split(',').any(|item| {
                item.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("trailers")
            })
        })
    })
}

/// The body hyper polls. Fields drop in order: the stream first (cancelling the plugin's
/// work if unfinished, by the id the plugin knows), then the access line, the id last.
struct Streamed {
    body: ResponseStream,
    line: StreamLine,
    _held: Option<HeldId>,
}

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if this.body.is_end_stream() {
            this.line.ended();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client's request id kept in flight by a stream; released when dropped.
struct HeldId {
    shared: Arc<Shared>,
    id: String,
}

impl Drop for HeldId {
    fn drop(&mut self) {
        self.shared.ids.release(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_taken_only_when_asked_for() {
        let te = |values: &[&str]| {
            let mut headers = http::HeaderMap::new();
            for v in values {
                headers.append(TE, v.parse().unwrap());
            }
            accepts_trailers(&headers)
        };
        assert!(te(&["trailers"]));
        assert!(te(&["gzip;q=0.5, Trailers"]));
        assert!(te(&["gzip", "trailers"]));
        assert!(!te(&["gzip"]));
        assert!(!te(&[]));
        assert!(!te(&["trailersx"]));
    }
}
