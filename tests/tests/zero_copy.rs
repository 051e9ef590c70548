//! Response bodies a plugin keeps (`spk_response.release`, ABI 1.1), through the real host
//! and a real C plugin (`tests/c-plugin/owned_plugin.c`, built with the strict flags) whose
//! bodies are malloc'ed blocks: `release` frees them, counts its calls and poisons the
//! bytes first, so a body read after its release would show.
//!
//! The host must send the body as the plugin gave it and call `release` exactly once on
//! every path: a sent body (whole, large, compressed, a HEAD answer), a client that leaves
//! mid-body, a refused response (invalid header, invalid status: released before `respond`
//! returns), a second answer, and an answer after the request ended.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use spikard_tests::{compile_c, repo_root, RawConn, Server, TempDir, STRICT_C_FLAGS};

/// Builds the plugin into `dir`.
fn build(dir: &TempDir) -> PathBuf {
    let mut flags = STRICT_C_FLAGS.to_vec();
    flags.extend(["-shared", "-fPIC"]);
    compile_c(
        "owned_plugin.c",
        &repo_root().join("abi/include"),
        &dir.path().join("libowned_plugin.so"),
        &flags,
    )
}

/// The host serving every handler of the plugin; `/late` times out after 300 ms and
/// `/gz` compresses with gzip.
fn start() -> (Server, TempDir) {
    let dir = TempDir::new("zero-copy");
    let library = build(&dir);
    let mut config = format!(
        "[[plugins]]\nname = \"owned\"\nlibrary = \"{}\"\n",
        library.display()
    );
    for (path, handler, extra) in [
        ("/owned", "owned", ""),
        (
            "/gz",
            "owned",
            "compression = { encodings = [\"gzip\"], min_size = 16 }\n",
        ),
        ("/bad-header", "bad_header", ""),
        ("/bad-status", "bad_status", ""),
        ("/twice", "twice", ""),
        ("/late", "late", "request_timeout_ms = 300\n"),
        ("/stats", "stats", ""),
    ] {
        config.push_str(&format!(
            "[[routes]]\nmethod = \"GET\"\npath = \"{path}\"\nplugin = \"owned\"\nhandler = \"{handler}\"\n{extra}\n"
        ));
    }
    (Server::start(&config), dir)
}

/// `n` bytes of the plugin's pattern.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The plugin's counters: bodies given with a release, releases, and bad releases.
fn stats(s: &Server) -> (u64, u64, u64) {
    let v = s.get("/stats").json();
    let n = |k: &str| v[k].as_u64().unwrap();
    (n("given"), n("released"), n("bad"))
}

/// Waits until every body given was released (a body is released once the host wrote it,
/// which may be just after the client read it), then checks none was released twice.
fn all_released(s: &Server) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (given, released, bad) = stats(s);
        assert_eq!(bad, 0, "a release of a block not live (a second release?)");
        assert!(released <= given, "{released} releases of {given} bodies");
        if released == given {
            return given;
        }
        assert!(
            Instant::now() < deadline,
            "{given} bodies given, {released} released"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn owned_bodies_are_sent_as_given_and_released_once() {
    let (s, _dir) = start();
    for size in [0, 1, 1000, 100_000, 4 << 20] {
        let r = s.get(&format!("/owned?size={size}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
        assert!(r.body == pattern(size), "the body of {size} bytes differs");
    }
    // HEAD: the body is never written, only released.
    let r = s.request("HEAD", "/owned?size=5000", &[], b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    // Compressed from the plugin's buffer.
    let r = s.request("GET", "/gz?size=20000", &[("accept-encoding", "gzip")], b"");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert!(plain == pattern(20_000));
    assert_eq!(all_released(&s), 7);
}

#[test]
fn concurrent_owned_bodies_are_each_released_once() {
    let (s, _dir) = start();
    let addr = s.addr;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..25 {
                    let size = 1 + (t * 25 + i) * 997 % 70_000;
                    let r = spikard_tests::request(
                        addr,
                        "GET",
                        &format!("/owned?size={size}"),
                        &[],
                        b"",
                    );
                    assert_eq!(r.status, 200);
                    assert!(r.body == pattern(size), "body of {size} bytes differs");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(all_released(&s), 200);
}

#[test]
fn a_client_leaving_mid_body_still_gets_the_body_released() {
    let (s, _dir) = start();
    for _ in 0..3 {
        let mut conn = RawConn::connect(s.addr).unwrap();
        conn.send(b"GET /owned?size=33554432 HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        // Read the head and a little of the 32 MiB, then leave.
        let mut some = [0u8; 4096];
        conn.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let n = conn.stream.read(&mut some).unwrap();
        assert!(some[..n].starts_with(b"HTTP/1.1 200"));
        drop(conn);
    }
    assert_eq!(all_released(&s), 3);
}

#[test]
fn refused_answers_release_their_body_before_respond_returns() {
    let (s, _dir) = start();
    assert_eq!(s.get("/bad-header").status, 500);
    s.wait_for_log("owned bad_header rc=1 released_in_call=1");
    assert_eq!(s.get("/bad-status").status, 500);
    s.wait_for_log("owned bad_status rc=1 released_in_call=1");
    // The first answer is sent; the second is refused and released at once.
    let r = s.get("/twice");
    assert_eq!((r.status, r.body.as_slice()), (200, &pattern(26)[..]));
    s.wait_for_log("owned twice rc=1 released_in_call=1");
    // Answered after the request timed out (from the plugin's cancel_token).
    assert_eq!(s.get("/late").status, 504);
    s.wait_for_log("owned late rc=1 released_in_call=1");
    assert_eq!(all_released(&s), 5);
    let log = s.log();
    assert!(
        !log.contains("owned first rc="),
        "the first answer was taken:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}
