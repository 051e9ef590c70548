//! Logging to stderr without a system call per line.
//!
//! An access log line per request is what operators expect, but writing
//! each line straight to stderr costs a `write(2)` under a lock on the
//! request path. Lines go into a shared buffer instead; a background thread
//! writes it out every few milliseconds, or at once when it grows large, and
//! [`flush`] empties it before the process exits. Errors are never delayed
//! past the next flush tick.

use std::io::Write;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
const TICK: Duration = Duration::from_millis(20);
/// Buffer size that triggers an immediate write.
const HIGH_WATER: usize = 64 * 1024;

struct Buffer {
    bytes: Mutex<Vec<u8>>,
    full: Condvar,
}

fn buffer() -> &'static Buffer {
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    BUFFER.get_or_init(|| {
        std::thread::Builder::new()
            .name("spikard-log".into())
            .spawn(|| loop {
                let buffer = buffer();
                let guard = buffer.bytes.lock().unwrap_or_else(|e| e.into_inner());
                let (mut guard, _) = buffer
                    .full
                    .wait_timeout(guard, TICK)
                    .unwrap_or_else(|e| e.into_inner());
                if guard.is_empty() {
                    continue;
                }
                let pending = std::mem::replace(&mut *guard, Vec::with_capacity(HIGH_WATER));
                drop(guard);
                let _ = std::io::stderr().lock().write_all(&pending);
            })
            .expect("spawn the log writer thread");
        Buffer {
            bytes: Mutex::new(Vec::with_capacity(HIGH_WATER)),
            full: Condvar::new(),
        }
    })
}

/// Writes everything buffered so far; call before exiting.
pub fn flush() {
    let pending = std::mem::take(&mut *buffer().bytes.lock().unwrap_or_else(|e| e.into_inner()));
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(&pending);
    let _ = stderr.flush();
}

/// One formatted event on its way into the buffer.
pub struct LineWriter {
    line: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let buffer = buffer();
        let mut bytes = buffer.bytes.lock().unwrap_or_else(|e| e.into_inner());
        bytes.extend_from_slice(&self.line);
        if bytes.len() >= HIGH_WATER {
            buffer.full.notify_one();
        }
    }
}

/// The `MakeWriter` for `tracing_subscriber::fmt`.
pub struct BufferedStderr;

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            line: Vec::with_capacity(256),
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filtering (default `info`),
/// plain text to stderr through the buffer.
pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(BufferedStderr)
        .with_ansi(false)
        .init();
}
