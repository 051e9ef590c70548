//! Serving one accepted connection: hyper's HTTP/1.1 over a [`TimedIo`] socket (header and
//! keep-alive deadlines), the router as its service, a watch for a client that resets the
//! connection while its request is served ([`reset`]), graceful shutdown, and a lingering
//! close once hyper is done.

mod reset;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::Router;
use http::header::{HeaderValue, CONNECTION};
use http::StatusCode;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::linger;
use super::timed_io::{Progress, TimedIo, Timeouts};
use super::ConnInfo;

/// Serves `stream` until the client leaves, a deadline passes or `stop` says the server is
/// shutting down; then, if the client may still be sending, drains it (see [`linger`]).
///
/// A client that resets the connection while its request is with the service ends it at
/// once: dropping hyper's connection drops the request's future, which tells the plugin to
/// cancel and logs the request as `client_disconnected`.
///
/// On shutdown (and when a reload drains an old worker generation) every answer from then on
/// says `Connection: close`, and for [`DRAIN_WINDOW`] a kept-alive or new connection may still
/// send one request, answered that way: closing a connection between requests races with a
/// client that is sending its next one at that moment, which it would see fail. After the
/// window hyper closes the idle ones; a request in flight finishes. A connection that never
/// had a request reach the service (an idle new socket, a half-sent head) is closed then.
pub async fn serve(
    stream: TcpStream,
    conn: Arc<ConnInfo>,
    http: &http1::Builder,
    router: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) {
    let progress = Arc::new(Progress::default());
    let (socket, mut reset) = reset::split(stream);
    let io = TokioIo::new(TimedIo::new(socket, progress.clone(), timeouts));
    let service = Tracked {
        router,
        progress: progress.clone(),
        conn,
    };
    let mut connection = http.serve_connection(io, service);
    let mut stopping = false;
    // Armed when the stop comes: the end of the window in which requests are still taken.
    let window = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(window);
    let mut window_open = false;
    let result = loop {
        // `biased`: hyper first. The watch, when it is not watching, returns Pending without
        // registering for any wake-up; that is sound because what makes it watch — a request
        // reaching the service, hyper reading more of a body — happens only inside hyper's
        // poll, so the watch, polled right after it on every wake-up, sees it at once.
        tokio::select! {
            biased;
            result = &mut connection => break result,
            error = std::future::poll_fn(|cx| reset.poll_reset(&progress, cx)) => {
                tracing::debug!("client reset the connection while its request was served: {error}");
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                progress.drain();
                window.as_mut().reset(tokio::time::Instant::now() + DRAIN_WINDOW);
                window_open = true;
            }
            () = &mut window, if window_open => {
                window_open = false;
                if progress.is_fresh() {
                    return;
                }
                Pin::new(&mut connection).graceful_shutdown();
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection ended: {e}");
    }
    let (socket, ending) = connection.into_parts().io.into_inner().into_parts();
    let Some(stream) = socket.rejoin(reset) else {
        return;
    };
    // Only a connection hyper closed in order (response flushed, write side shut down) whose
    // client has not closed may have input in flight that would turn the close into a reset.
    if ending.shut_down && ending.timed_out.is_none() && !ending.read_eof && !stopping {
        linger::drain(stream, &mut stop).await;
    }
}

/// How long a stopping connection still takes a request (answered with `Connection: close`)
/// before hyper closes it between requests; see [`serve`]. A busy client sends its next
/// request within microseconds; an idle one that sends later meets the usual race.
const DRAIN_WINDOW: Duration = Duration::from_millis(500);

/// The router as hyper's service, telling the socket when a request starts and when its
/// answer is ready.
#[derive(Clone)]
struct Tracked {
    router: Router,
    progress: Arc<Progress>,
    /// The connection's addresses, given to each request.
    conn: Arc<ConnInfo>,
}

impl hyper::service::Service<http::Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut request: http::Request<Incoming>) -> Answer {
        self.progress.request_started();
        request.extensions_mut().insert(self.conn.clone());
        Answer {
            inner: tower::Service::call(&mut self.router.clone(), request),
            progress: self.progress.clone(),
        }
    }
}

/// The router's response future; reports the answer to [`Progress`] when it is ready (for a
/// streamed response: when its body ends).
struct Answer {
    inner: RouteFuture<Infallible>,
    progress: Arc<Progress>,
}

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut response) = ready!(Pin::new(&mut self.inner).poll(cx));
        if response.status() == StatusCode::REQUEST_TIMEOUT || self.progress.is_draining() {
            // RFC 9110 §15.5.9: the server closes the connection after a 408 (the rest of the
            // request is still on its way and cannot be told apart from a next request); and
            // a stopping server says so in every answer, so that clients open a new
            // connection (to the next generation of workers, on a reload) instead of
            // racing the close.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if response.extensions_mut().remove::<Streaming>().is_some() {
            // The head only: the body follows for as long as the plugin writes it, and the
            // reset watch keeps watching until it ends.
            self.progress.streaming();
            let progress = self.progress.clone();
            return Poll::Ready(Ok(response.map(|body| {
                axum::body::Body::new(StreamEnd {
                    body,
                    progress: Some(progress),
                })
            })));
        }
        self.progress.answer_ready();
        Poll::Ready(Ok(response))
    }
}

/// Marks a response whose body is a plugin's stream (set by `super::streamed`): the
/// connection treats the request as served until the body ends.
#[derive(Debug, Clone, Copy)]
pub struct Streaming;

/// A streamed body that reports its end (or its drop) to [`Progress`] as the answer.
struct StreamEnd {
    body: axum::body::Body,
    progress: Option<Arc<Progress>>,
}

impl StreamEnd {
    fn ended(&mut self) {
        if let Some(progress) = self.progress.take() {
            progress.answer_ready();
        }
    }
}

impl hyper::body::Body for StreamEnd {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if frame.is_none() || self.body.is_end_stream() {
            self.ended();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        self.ended();
    }
}
