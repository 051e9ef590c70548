//! Streamed responses (ABI 1.1) through the real host, the echo plugin's `stream` handler
//! and the C plugin's `stream` route: order and exact bodies, chunked framing, trailers,
//! backpressure against a slow reader (bounded memory, FULL seen by the plugin), a client
//! leaving mid-stream (the plugin's cancel runs, the host stays up), compression, the
//! access line at the end, and plugins that answer the 1.0 way beside them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spikard_tests::{echo_plugin_block, repo_root, vm_rss_kib, Server, TempDir, STRICT_C_FLAGS};

/// Chunks of the `/words` route, written 400 ms apart.
const WORDS: [&str; 4] = ["alpha\n", "beta\n", "gamma\n", "delta\n"];
/// The `/big` route: 6400 chunks of 16 KiB, 100 MiB, far more than the host may buffer.
const BIG_COUNT: u64 = 6400;
const BIG_SIZE: u64 = 16 * 1024;

/// Builds the C plugin with the strictest warnings into `dir`.
fn c_plugin(dir: &TempDir) -> PathBuf {
    let mut flags = STRICT_C_FLAGS.to_vec();
    flags.extend(["-shared", "-fPIC"]);
    spikard_tests::compile_c(
        "hello_plugin.c",
        &repo_root().join("abi/include"),
        &dir.path().join("libc_hello.so"),
        &flags,
    )
}

fn route(path: &str, plugin: &str, handler: &str, settings: &str) -> String {
    format!(
        "\n[[routes]]\nmethod = \"GET\"\npath = \"{path}\"\nplugin = \"{plugin}\"\nhandler = \"{handler}\"\nsettings = {settings}\n"
    )
}

/// A host with the echo and C plugins, the access log on and gzip for large responses.
fn start(dir: &TempDir) -> Server {
    let words: Vec<String> = WORDS.iter().map(|w| format!("{w:?}")).collect();
    let config = [
        "[server]\naccess_log = true\nshutdown_timeout_ms = 1000\n[server.compression]\nencodings = [\"gzip\"]\nmin_size = 256\n\n"
            .to_owned(),
        echo_plugin_block(),
        format!(
            "[[plugins]]\nname = \"c\"\nlibrary = \"{}\"\n",
            c_plugin(dir).display()
        ),
        route(
            "/words",
            "echo",
            "stream",
            &format!("{{ chunks = [{}], interval_ms = 400 }}", words.join(", ")),
        ),
        route(
            "/big",
            "echo",
            "stream",
            &format!("{{ count = {BIG_COUNT}, size = {BIG_SIZE} }}"),
        ),
        route("/small", "echo", "stream", "{ count = 3, size = 10 }"),
        route(
            "/endless",
            "echo",
            "stream",
            "{ count = 100000, size = 1024, interval_ms = 10 }",
        ),
        route(
            "/gz",
            "echo",
            "stream",
            "{ count = 64, size = 1024, content_type = \"text/plain; charset=utf-8\" }",
        ),
        route("/hello", "echo", "respond", "{ body = \"hello\" }"),
        route("/c/hello", "c", "hello", "{}"),
        route("/c/stream", "c", "stream", "{}"),
    ]
    .concat();
    Server::start(&config)
}

/// The generated body of `count` chunks of `size`: chunk `i` is the letter `a + i % 26`.
fn generated_byte(offset: u64, size: u64) -> u8 {
    b'a' + ((offset / size) % 26) as u8
}

/// Asserts that `data`, found at `offset` of a generated body, is what the plugin wrote:
/// checked one run of a letter at a time, as the host may frame chunks its own way.
fn assert_generated(mut data: &[u8], mut offset: u64, size: u64) {
    while !data.is_empty() {
        let run = ((size - offset % size) as usize).min(data.len());
        let letter = generated_byte(offset, size);
        assert!(
            data[..run].iter().all(|b| *b == letter),
            "bytes {offset}..{} are not all {:?}",
            offset + run as u64,
            letter as char
        );
        data = &data[run..];
        offset += run as u64;
    }
}

/// A client reading a chunked response piece by piece, as it arrives.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response head.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    /// Sends `GET path` over HTTP/1.1 with `headers`.
    fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to spikard-host");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set a read timeout");
        let mut client = Client {
            stream,
            buf: Vec::new(),
        };
        client.send(path, headers);
        client
    }

    fn send(&mut self, path: &str, headers: &[(&str, &str)]) {
        let mut head = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes()).expect("send");
    }

    /// Reads more bytes; false at the end of the connection.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        let n = self
            .stream
            .read(&mut chunk)
            .expect("read from spikard-host");
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads up to and including the next CRLF.
    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(
                self.fill(),
                "the connection closed mid-line: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Header lines up to the empty one.
    fn fields(&mut self) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                return fields;
            }
            let (name, value) = line.split_once(':').expect("a header line");
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }

    fn head(&mut self) -> Head {
        let status_line = self.line();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        Head {
            status,
            headers: self.fields(),
        }
    }

    /// The next chunk of a chunked body; `Err(trailers)` after the last one.
    fn chunk(&mut self) -> Result<Vec<u8>, Vec<(String, String)>> {
        let size_line = self.line();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
        if size == 0 {
            return Err(self.fields());
        }
        while self.buf.len() < size + 2 {
            assert!(self.fill(), "the connection closed mid-chunk");
        }
        let data = self.buf[..size].to_vec();
        assert_eq!(&self.buf[size..size + 2], b"\r\n", "a chunk ends with CRLF");
        self.buf.drain(..size + 2);
        Ok(data)
    }

    /// Reads until the server closes the connection (or resets it); false if it is still
    /// open after `within`.
    fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut sink = [0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.stream.read(&mut sink) {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
        false
    }

    /// The rest of a chunked body and its trailers.
    fn rest(&mut self) -> (Vec<u8>, Vec<(String, String)>) {
        let mut body = Vec::new();
        loop {
            match self.chunk() {
                Ok(data) => body.extend_from_slice(&data),
                Err(trailers) => return (body, trailers),
            }
        }
    }
}

/// Asserts the head of a streamed response: 200, chunked, no content-length.
fn assert_streamed(head: &Head) {
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("transfer-encoding"),
        Some("chunked"),
        "{:?}",
        head.headers
    );
    assert_eq!(head.header("content-length"), None, "{:?}", head.headers);
}

/// The log line containing all of `needles`, waiting up to 10 s for it.
fn log_line(server: &Server, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log();
        if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needles:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The number after `name=` in a log line.
fn field(line: &str, name: &str) -> u64 {
    let needle = format!(" {name}=");
    let at = line
        .find(&needle)
        .unwrap_or_else(|| panic!("{name} in {line}"))
        + needle.len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {line}"))
}

#[test]
fn chunks_arrive_in_order_as_written_and_the_access_line_comes_at_the_end() {
    let dir = TempDir::new("stream-words");
    let s = start(&dir);
    let id = "stream-words-1";
    let mut c = Client::get(
        s.addr,
        "/words",
        &[("te", "trailers"), ("x-request-id", id)],
    );
    let head = c.head();
    assert_streamed(&head);
    assert_eq!(head.header("content-type"), Some("text/plain"));
    assert_eq!(head.header("x-request-id"), Some(id));
    // The head comes before the body is done (the last chunk is 1.2 s away), and so
    // the request's access line is not written yet.
    let first = c.chunk().expect("a first chunk");
    assert!(
        WORDS
            .concat()
            .starts_with(&String::from_utf8_lossy(&first).into_owned()),
        "{first:?}"
    );
    assert!(
        !s.log()
            .lines()
            .any(|l| l.contains("spikard::access") && l.contains(id)),
        "the access line waits for the end of the stream:\n{}",
        s.log()
    );
    let (rest, trailers) = c.rest();
    let body = [first, rest].concat();
    assert_eq!(String::from_utf8(body).unwrap(), WORDS.concat());
    assert_eq!(
        trailers,
        [("x-echo-full".to_owned(), "0".to_owned())],
        "asked for with TE: trailers"
    );
    let access = log_line(&s, &["spikard::access", id]);
    assert!(access.contains("status=200"), "{access}");
    assert!(
        field(&access, "latency_us") >= 1_000_000,
        "the line is written when the stream ends: {access}"
    );
    let ended = log_line(&s, &["stream ended", id]);
    assert_eq!(field(&ended, "chunks"), WORDS.len() as u64, "{ended}");
}

#[test]
fn trailers_reach_only_clients_that_ask_for_them() {
    let dir = TempDir::new("stream-trailers");
    let s = start(&dir);
    let mut c = Client::get(s.addr, "/small", &[]);
    assert_streamed(&c.head());
    let (body, trailers) = c.rest();
    assert_eq!(body, b"aaaaaaaaaabbbbbbbbbbcccccccccc");
    assert!(
        trailers.is_empty(),
        "no TE: trailers, no trailers: {trailers:?}"
    );
}

#[test]
fn a_c_plugin_streams_through_the_c_api() {
    let dir = TempDir::new("stream-c");
    let s = start(&dir);
    let mut c = Client::get(s.addr, "/c/stream", &[("te", "trailers")]);
    let head = c.head();
    assert_streamed(&head);
    assert_eq!(head.header("content-type"), Some("text/plain"));
    let (body, trailers) = c.rest();
    assert_eq!(String::from_utf8(body).unwrap(), "one\ntwo\nthree\n");
    assert_eq!(trailers, [("x-chunks".to_owned(), "3".to_owned())]);
}

#[test]
fn plugins_answering_the_1_0_way_still_work_beside_streams() {
    let dir = TempDir::new("stream-1-0");
    let s = start(&dir);
    let hello = s.get("/hello");
    assert_eq!((hello.status, hello.text().as_str()), (200, "hello"));
    assert_eq!(hello.header("content-length"), Some("5"));
    let c = s.get("/c/hello");
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.json()["hello"], "world");
    assert!(c.header("content-length").is_some());
}

#[test]
fn an_http_1_0_client_gets_the_whole_stream() {
    let dir = TempDir::new("stream-http10");
    let s = start(&dir);
    let mut stream = TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /small HTTP/1.0\r\nhost: test\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let response = spikard_tests::parse_response(&raw);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("transfer-encoding"),
        None,
        "HTTP/1.0 has no chunked coding"
    );
    assert_eq!(response.body, b"aaaaaaaaaabbbbbbbbbbcccccccccc");
}

#[test]
fn a_stream_is_compressed_when_the_client_accepts_gzip() {
    let dir = TempDir::new("stream-gzip");
    let s = start(&dir);
    let response = s.request("GET", "/gz", &[("accept-encoding", "gzip")], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.header("content-length"), None);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&response.body[..])
        .read_to_end(&mut plain)
        .expect("a complete gzip stream");
    let expected: Vec<u8> = (0..64 * 1024).map(|i| generated_byte(i, 1024)).collect();
    assert_eq!(plain.len(), expected.len());
    assert!(plain == expected, "the decompressed body is the stream");
    assert!(response.body.len() < expected.len() / 10, "compressed");
}

#[test]
fn a_slow_reader_gets_backpressure_not_a_growing_host() {
    let dir = TempDir::new("stream-slow");
    let s = start(&dir);
    // Warm the host up (threads, buffers, the plugin's first stream) before measuring.
    let mut warm = Client::get(s.addr, "/small", &[]);
    warm.head();
    warm.rest();
    let pid = s.pid();
    let baseline = vm_rss_kib(pid).expect("the host's RSS");
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = vm_rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let id = "stream-slow-1";
    // Socket buffers hold a few MiB at most (the client's does not grow while it does
    // not read), far less than the 100 MiB: the rest is up to the host and the plugin.
    let mut c = Client::get(s.addr, "/big", &[("x-request-id", id)]);
    let head = c.head();
    assert_streamed(&head);
    // Read nothing for a while: the plugin runs into FULL and waits for the host.
    std::thread::sleep(Duration::from_secs(2));
    let at_pause = peak.load(Ordering::Relaxed);
    let mut offset = 0u64;
    let trailers = loop {
        match c.chunk() {
            Ok(data) => {
                assert_generated(&data, offset, BIG_SIZE);
                offset += data.len() as u64;
            }
            Err(trailers) => break trailers,
        }
    };
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(offset, BIG_COUNT * BIG_SIZE, "the whole body");
    assert!(trailers.is_empty(), "no TE: trailers: {trailers:?}");
    let grown_kib = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    let grown_at_pause = at_pause.saturating_sub(baseline);
    assert!(
        grown_kib < 64 * 1024,
        "a 100 MiB stream to a slow reader grew the host by {grown_kib} KiB ({grown_at_pause} KiB while the reader paused)"
    );
    let ended = log_line(&s, &["stream ended", id]);
    eprintln!(
        "slow reader: host RSS +{grown_kib} KiB at peak (+{grown_at_pause} KiB while paused), \
         plugin saw FULL {} times",
        field(&ended, "full")
    );
    assert!(field(&ended, "full") > 0, "the plugin saw FULL: {ended}");
    assert_eq!(field(&ended, "bytes"), BIG_COUNT * BIG_SIZE, "{ended}");
}

#[test]
fn a_client_leaving_mid_stream_cancels_the_plugin_and_the_host_stays_up() {
    let dir = TempDir::new("stream-leave");
    let mut s = start(&dir);
    let id = "stream-leave-1";
    let mut c = Client::get(s.addr, "/endless", &[("x-request-id", id)]);
    assert_streamed(&c.head());
    for _ in 0..3 {
        c.chunk().expect("a chunk");
    }
    drop(c);
    let cancelled = log_line(&s, &["stream cancelled", id]);
    assert!(field(&cancelled, "chunks") < 100000, "{cancelled}");
    assert!(s.is_running());
    let hello = s.get("/hello");
    assert_eq!((hello.status, hello.text().as_str()), (200, "hello"));
    // Another stream still works after the cancelled one.
    let mut again = Client::get(s.addr, "/small", &[]);
    assert_streamed(&again.head());
    assert_eq!(again.rest().0, b"aaaaaaaaaabbbbbbbbbbcccccccccc");
}

#[test]
fn shutdown_cancels_a_stream_in_progress_and_the_host_exits() {
    let dir = TempDir::new("stream-stop");
    let mut s = start(&dir);
    let id = "stream-stop-1";
    let mut c = Client::get(s.addr, "/endless", &[("x-request-id", id)]);
    assert_streamed(&c.head());
    c.chunk().expect("a chunk");
    s.signal("TERM");
    // The grace period (1 s) passes, the stream is cancelled, the process exits.
    let status = s.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", s.log());
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "the client's connection ends"
    );
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.contains(id) && l.contains("stream cancelled")),
        "the plugin's cancel ran:\n{log}"
    );
}
