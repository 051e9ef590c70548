//! Raw requests: built byte by byte (so that they can carry what a client library refuses to
//! send), sent on a fresh connection, and the answers summarised for the table.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;
use spikard_tests::{HttpResponse, RawConn, Server};

/// Largest response a case reads before calling it unbounded.
pub const MAX_RESPONSE: usize = 8 << 20;

/// An HTTP/1.1 request with `connection: close`, the given header lines (values as raw
/// bytes) and `content-length` when there is a body or the method carries one.
pub fn request(method: &str, target: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nhost: hostile\r\nconnection: close\r\n")
        .into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Sends `bytes` on a new connection and reads one response within `within`.
pub fn exchange(server: &Server, bytes: &[u8], within: Duration) -> Result<HttpResponse, String> {
    let deadline = Instant::now() + within;
    let mut conn = RawConn::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(bytes).map_err(|e| format!("send: {e}"))?;
    conn.read_response(deadline, MAX_RESPONSE)
}

/// Sends a head announcing a large body, then streams `len` bytes of it (chunked when
/// `chunked`) from another thread while this one reads the answer, as a client uploading a
/// file does. The writer stops at the first write error (the server closed).
pub fn send_big(
    server: &Server,
    head: &[u8],
    len: usize,
    chunked: bool,
) -> Result<HttpResponse, String> {
    let mut conn = RawConn::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    conn.send(head).map_err(|e| format!("send head: {e}"))?;
    let mut writer = conn.stream.try_clone().map_err(|e| format!("clone: {e}"))?;
    let _ = writer.set_write_timeout(Some(Duration::from_secs(10)));
    let uploader = std::thread::spawn(move || {
        let chunk = vec![b'7'; 64 << 10];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            let framed = if chunked {
                writer
                    .write_all(format!("{n:x}\r\n").as_bytes())
                    .and_then(|()| writer.write_all(&chunk[..n]))
                    .and_then(|()| writer.write_all(b"\r\n"))
            } else {
                writer.write_all(&chunk[..n])
            };
            if framed.is_err() {
                return;
            }
            sent += n;
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n");
        }
    });
    let answer = conn.read_response(Instant::now() + Duration::from_secs(15), 1 << 20);
    // Unblocks the uploader if the server stopped reading without closing.
    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
    let _ = uploader.join();
    answer
}

/// The first 160 characters of a body, for messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut short: String = text.chars().take(160).collect();
    if text.chars().count() > 160 {
        short.push('…');
    }
    short
}

/// The last segment of a Problem Details `type` (its slug), when the body is one.
pub fn slug(response: &HttpResponse) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    let kind = body.get("type")?.as_str()?;
    Some(kind.rsplit('/').next().unwrap_or(kind).to_owned())
}

/// `status slug (size)`, or `status body…` when it is not Problem Details.
pub fn describe(response: &HttpResponse) -> String {
    match slug(response) {
        Some(slug) => format!("{} {slug} ({})", response.status, size(response.body.len())),
        None => format!("{} {}", response.status, snippet(&response.body)),
    }
}

/// A byte count as B, KiB or MiB.
pub fn size(bytes: usize) -> String {
    if bytes < 1 << 10 {
        format!("{bytes} B")
    } else if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}

/// Expects a single status: `got` is the description, `ok` whether it matched.
pub fn expect_status(
    expected: &str,
    status: u16,
    answer: Result<HttpResponse, String>,
) -> crate::Verdict {
    match answer {
        Ok(response) => {
            crate::Verdict::new(expected, describe(&response), response.status == status)
        }
        Err(e) => crate::Verdict::new(expected, e, false),
    }
}
