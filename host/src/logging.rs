//! Logging to stderr off the request path, in bounded memory.
//!
//! An access log line per request is what operators expect, but writing each line straight
//! to stderr costs a `write(2)` under a lock on the request path, and a stderr nobody reads
//! (a stalled pipe) would then stall every request. So a formatted line goes into a bounded
//! queue (a lock-free channel plus a byte count: no system call, no shared lock) and one
//! writer thread writes the queue out in batches every [`TICK`], or sooner when it fills.
//!
//! When the queue is full (the writer is stuck on a stderr that is not being read) new lines
//! are dropped and counted; once a write succeeds again the writer reports
//! `N log lines dropped`. [`flush`] waits at most a given time, so exiting never hangs on
//! a stalled stderr. The writer uses file descriptor 2 directly, not `std::io::stderr`, so a
//! blocked write holds no lock that a panic message or `eprintln!` would wait on.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the queue when nothing else wakes the writer.
const TICK: Duration = Duration::from_millis(20);
/// Most lines the queue holds.
const MAX_LINES: usize = 16 * 1024;
/// Most bytes the queue holds; a burst beyond it is dropped, not buffered.
const MAX_BYTES: usize = 2 << 20;
/// Queued bytes that wake the writer before its tick.
const HIGH_WATER: usize = 256 << 10;
/// Bytes the writer gathers into one `write`.
const BATCH: usize = 256 << 10;

/// What travels to the writer thread.
enum Message {
    /// One formatted line (or several, for a multi-line event).
    Line(Vec<u8>),
    /// Everything queued before this has been written: say so.
    Flush(mpsc::Sender<()>),
}

/// The queue and its accounting, shared by every thread that logs.
struct Queue {
    tx: SyncSender<Message>,
    /// Bytes of the lines in the queue.
    bytes: AtomicUsize,
    /// Lines dropped since the last report.
    dropped: AtomicU64,
    writer: Thread,
}

fn queue() -> &'static Queue {
    static QUEUE: OnceLock<Queue> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel(MAX_LINES);
        let writer = std::thread::Builder::new()
            .name("spikard-log".into())
            .spawn(move || write_loop(&rx))
            .expect("spawn the log writer thread");
        Queue {
            tx,
            bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            writer: writer.thread().clone(),
        }
    })
}

impl Queue {
    /// Queues a line without blocking; drops (and counts) it when the queue is full.
    fn push(&self, line: Vec<u8>) {
        let len = line.len();
        let before = self.bytes.fetch_add(len, Ordering::Relaxed);
        if before + len > MAX_BYTES {
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) => {
                if before < HIGH_WATER && before + len >= HIGH_WATER {
                    self.writer.unpark();
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.bytes.fetch_sub(len, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Standard error as a file, written without `std::io::stderr`'s lock.
#[cfg(unix)]
struct Stderr(std::mem::ManuallyDrop<std::fs::File>);

#[cfg(unix)]
impl Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
fn stderr_file() -> impl Write {
    use std::os::fd::FromRawFd;
    // SAFETY: fd 2 is open for the life of the process; ManuallyDrop never closes it.
    Stderr(std::mem::ManuallyDrop::new(unsafe {
        std::fs::File::from_raw_fd(2)
    }))
}

#[cfg(not(unix))]
fn stderr_file() -> impl Write {
    std::io::stderr()
}

/// The writer thread: drains the queue every tick (or when woken) and writes it in batches.
fn write_loop(rx: &Receiver<Message>) {
    let queue = queue();
    let mut out = stderr_file();
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
    loop {
        std::thread::park_timeout(TICK);
        let mut acks = Vec::new();
        let mut written_ok = true;
        while let Ok(message) = rx.try_recv() {
            match message {
                Message::Line(line) => {
                    queue.bytes.fetch_sub(line.len(), Ordering::Relaxed);
                    batch.extend_from_slice(&line);
                    if batch.len() >= BATCH {
                        written_ok &= write_batch(&mut out, &mut batch);
                    }
                }
                Message::Flush(ack) => {
                    written_ok &= write_batch(&mut out, &mut batch);
                    acks.push(ack);
                }
            }
        }
        written_ok &= write_batch(&mut out, &mut batch);
        if written_ok {
            report_dropped(&mut out, queue);
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Writes and clears `batch`; false when stderr refused it (its lines count as dropped).
fn write_batch(out: &mut impl Write, batch: &mut Vec<u8>) -> bool {
    if batch.is_empty() {
        return true;
    }
    let ok = out.write_all(batch).is_ok();
    if !ok {
        let lines = batch.iter().filter(|&&b| b == b'\n').count().max(1);
        queue().dropped.fetch_add(lines as u64, Ordering::Relaxed);
    }
    batch.clear();
    ok
}

/// Writes `N log lines dropped` when lines were dropped since the last report.
fn report_dropped(out: &mut impl Write, queue: &Queue) {
    let dropped = queue.dropped.swap(0, Ordering::Relaxed);
    if dropped == 0 {
        return;
    }
    let mut line = String::new();
    let mut time = tracing_subscriber::fmt::format::Writer::new(&mut line);
    let _ = tracing_subscriber::fmt::time::FormatTime::format_time(
        &tracing_subscriber::fmt::time::SystemTime,
        &mut time,
    );
    let _ = writeln!(
        line,
        "  WARN spikard::log: {dropped} log lines dropped: stderr was not read fast enough"
    );
    if out.write_all(line.as_bytes()).is_err() {
        queue.dropped.fetch_add(dropped, Ordering::Relaxed);
    }
}

/// Writes everything queued so far, waiting at most `bound`; call before exiting. A stderr
/// that is not being read costs `bound`, not a hang: what could not be written is lost.
pub fn flush(bound: Duration) {
    let deadline = Instant::now() + bound;
    let queue = queue();
    let (ack_tx, ack_rx) = mpsc::channel();
    let mut message = Message::Flush(ack_tx);
    loop {
        match queue.tx.try_send(message) {
            Ok(()) => break,
            Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                message = back;
                queue.writer.unpark();
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return,
        }
    }
    queue.writer.unpark();
    let _ = ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
}

/// One formatted event on its way into the queue.
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
        if !self.line.is_empty() {
            queue().push(std::mem::take(&mut self.line));
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
/// plain text to stderr through the queue.
pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(BufferedStderr)
        .with_ansi(false)
        .init();
}
