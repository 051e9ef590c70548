//! Reading a request body within its size limit and its time: refused on `Content-Length`
//! before reading when it announces too much (413), cut off while reading when it sends too
//! much (413), too little (400) or too slowly (408).
//!
//! A route with `stream_body` is not read here: only its `Content-Length` is checked
//! ([`declared_within`]) and the plugin reads the body itself
//! (`crate::plugin::responders::body_stream`), which answers with the same problems.

use std::time::Duration;

use axum::body::{Body, Bytes};
use http::header::CONTENT_LENGTH;
use http::StatusCode;

use crate::problem::Problem;

/// The whole body of a request with these `headers`, at most `limit` bytes, arrived within
/// `timeout`.
pub async fn read(
    body: Body,
    headers: &http::HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Problem> {
    let declared = declared_within(headers, limit)?;
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(unreadable(&e, declared, limit)),
        Err(_) => Err(timed_out(timeout)),
    }
}

/// The body's `Content-Length`, if it announces one, or 413 when that is over `limit`: a
/// body known to be too large is refused before a byte of it is read.
pub fn declared_within(headers: &http::HeaderMap, limit: usize) -> Result<Option<u64>, Problem> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Problem::payload_too_large(limit));
    }
    Ok(declared)
}

/// The 408 of a body (or, streamed, a chunk of it) that did not arrive within `timeout`.
pub fn timed_out(timeout: Duration) -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        "Request Timeout",
        format!(
            "the request body did not arrive within {} ms; the connection is closed",
            timeout.as_millis()
        ),
    )
}

/// Why reading the body failed, as the client's problem: 413 over the limit, 400 when it
/// ended before its `Content-Length` (`declared`) or could not be read.
pub fn unreadable(error: &axum::Error, declared: Option<u64>, limit: usize) -> Problem {
    if std::error::Error::source(error).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
    {
        Problem::payload_too_large(limit)
    } else if let Some(declared) = declared.filter(|_| ended_early(error)) {
        Problem::bad_request(
            "content-length-mismatch",
            "Content-Length header mismatch",
            format!(
                "Content-Length header does not match actual body size: the connection ended before the {declared} bytes it announced"
            ),
        )
    } else {
        Problem::bad_request(
            "unreadable-body",
            "Bad Request",
            format!("the request body could not be read: {error}"),
        )
    }
}

/// Whether reading the body failed because the client stopped sending (end of stream before
/// the announced length) rather than for another reason.
fn ended_early(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
        {
            return true;
        }
        cause = e.source();
    }
    false
}
