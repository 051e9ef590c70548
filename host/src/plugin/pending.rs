//! The request's side of a responder: [`Pending`], the answer a request waits for, and
//! [`ResponseStream`], the body of a streamed answer.
//!
//! Both own the request's responder slot ([`Ticket`]) and give it back when they are
//! dropped: when the answer was taken, when the request timed out (the wait is dropped),
//! when the client left (hyper drops the request's future, or a stream's body) and when the
//! server abandons requests at the end of its grace period (the connection tasks are
//! dropped). A request the plugin had not finished is then cancelled through the plugin's
//! `cancel_token` (when it set a token) or `cancel`, and ready callbacks still registered
//! run: the stream is closed and every later stream call returns `SPK_CLOSED`.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::host_api::Answer;
use super::responders::{Delivery, Ticket};
use super::LoadedPlugin;

/// The answer to one request handed to a plugin, resolved when the plugin answers or
/// starts a stream. Dropping it before (a timeout, a client gone) cancels the request.
pub struct Pending<'a> {
    plugin: &'a Arc<LoadedPlugin>,
    request_id: &'a str,
    /// The request's slot; moves into the [`ResponseStream`] of a streamed answer.
    ticket: Option<Ticket>,
    /// An answer the host made without the plugin (it is shut down).
    early: Option<Answer>,
}

impl<'a> Pending<'a> {
    /// Waiting on `ticket`'s slot.
    pub(super) fn waiting(
        plugin: &'a Arc<LoadedPlugin>,
        request_id: &'a str,
        ticket: Ticket,
    ) -> Self {
        Pending {
            plugin,
            request_id,
            ticket: Some(ticket),
            early: None,
        }
    }

    /// Already answered by the host.
    pub(super) fn answered(
        plugin: &'a Arc<LoadedPlugin>,
        request_id: &'a str,
        answer: Answer,
    ) -> Self {
        Pending {
            plugin,
            request_id,
            ticket: None,
            early: Some(answer),
        }
    }

    /// The answer if it is there already (most plugins answer inside `handle`): no timer
    /// and no await for those.
    pub fn now(&mut self) -> Option<Answer> {
        match self.poll_answer(None) {
            Poll::Ready(answer) => Some(answer),
            Poll::Pending => None,
        }
    }

    fn poll_answer(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Answer> {
        if let Some(answer) = self.early.take() {
            return Poll::Ready(answer);
        }
        let Some(ticket) = &self.ticket else {
            return Poll::Ready(Answer::Invalid(
                "the answer was already taken (a host bug)".into(),
            ));
        };
        match ticket.poll_delivery(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Delivery::Answer(answer)) => Poll::Ready(answer),
            Poll::Ready(Delivery::Head(status, headers)) => {
                let ticket = self.ticket.take().expect("checked above");
                Poll::Ready(Answer::Stream {
                    status,
                    headers,
                    body: ResponseStream {
                        ticket: Some(ticket),
                        plugin: self.plugin.clone(),
                        request_id: self.request_id.into(),
                        trailers: false,
                        done: false,
                    },
                })
            }
        }
    }
}

impl Future for Pending<'_> {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        self.get_mut().poll_answer(Some(cx))
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.plugin.finish(ticket.release(), self.request_id);
        }
    }
}

/// The body of a streamed answer: the chunks the plugin writes, then its trailers (when
/// the client takes them), then the end once the plugin ends the stream. Dropped before
/// that (the client left, the server stopped), it cancels the request.
pub struct ResponseStream {
    ticket: Option<Ticket>,
    plugin: Arc<LoadedPlugin>,
    request_id: Box<str>,
    /// Whether the client asked for trailers (`TE: trailers`).
    trailers: bool,
    /// The end was sent: the plugin ended the stream and every chunk went out.
    done: bool,
}

impl ResponseStream {
    /// Sends the plugin's trailers (else they are dropped): the client said `TE: trailers`.
    pub fn send_trailers(&mut self, yes: bool) {
        self.trailers = yes;
    }
}

impl Body for ResponseStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let Some(ticket) = &this.ticket else {
            return Poll::Ready(None);
        };
        let (frame, ready) = ticket.poll_frame(cx, this.trailers);
        if !ready.is_empty() {
            this.plugin.run_ready(ready);
        }
        // The trailers are the last frame: hyper stops polling after them.
        if let Poll::Ready(None) = &frame {
            this.done = true;
        } else if let Poll::Ready(Some(frame)) = &frame {
            this.done = frame.is_trailers();
        }
        frame.map(|frame| frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.plugin.finish(ticket.release(), &self.request_id);
        }
    }
}

impl fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseStream")
            .field("request_id", &self.request_id)
            .field("trailers", &self.trailers)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
