//! Lingering close: after the last response is written and the write side shut down, read
//! and discard what the client still sends until it closes, for a bounded time and byte count.
//!
//! Closing a socket that has unread input makes the kernel answer with a reset, and a reset
//! can destroy a response the client has received but not read yet: a client still uploading
//! a body refused early (413 on `Content-Length`) would see "connection reset" instead of
//! its 413. Draining until the client's own close lets the response through.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Longest a closing connection is drained.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// Most bytes discarded from a closing connection.
pub const LINGER_BYTES: usize = 16 << 20;
/// Bytes read per system call while draining.
const SCRATCH: usize = 16 << 10;

/// Drains `stream` (whose write side is shut down) until the client closes, an error,
/// [`LINGER_TIME`], [`LINGER_BYTES`] or a shutdown signal on `stop`; then drops it.
pub async fn drain(stream: TcpStream, stop: &mut watch::Receiver<bool>) {
    let deadline = tokio::time::sleep_until(Instant::now() + LINGER_TIME);
    tokio::pin!(deadline);
    let mut scratch = vec![0u8; SCRATCH];
    let mut left = LINGER_BYTES;
    loop {
        tokio::select! {
            ready = stream.readable() => if ready.is_err() { return },
            () = &mut deadline => return,
            _ = stop.changed() => return,
        }
        match stream.try_read(&mut scratch) {
            Ok(0) => return,
            Ok(n) if n >= left => return,
            Ok(n) => left -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
