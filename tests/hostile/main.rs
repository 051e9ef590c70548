//! The hostile-input suite: attacks on the real debug host over real sockets on 127.0.0.1.
//!
//! Issue 8 listed requests and clients that could exhaust the host (quadratic validation
//! errors, slowloris, descriptor lockout, lossy integers and bytes, ReDoS, half-closed
//! clients, early 413s); this suite keeps every one of them, and the probes that already
//! passed (smuggling, bad framing, deep JSON, big bodies, pipelining, `Expect`), as a case
//! that must keep passing. Each case asserts its status (or the close), that the host still
//! answers `GET /hello` afterwards and, for resource cases, run on a host of their own, that
//! the host's resident memory grew by less than [`hosts::RSS_BOUND_MB`].
//!
//! It prints one table row per case and ends with the line `N passed, N failed`; the exit
//! status is non-zero when any case failed. Cases of one host run concurrently where they
//! are independent, hosts run concurrently, and every wait has a deadline, so the whole run
//! takes a few seconds. Run it with `cargo test -p spikard-tests --test hostile` after
//! `cargo build --workspace`.

mod connections;
mod hosts;
mod protocol;
mod resources;
mod values;
mod wire;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use hosts::{HostSpec, Setup};
use spikard_tests::Server;

/// What one case expected and what it got.
pub struct Verdict {
    /// The expectation, short enough for a table cell.
    pub expected: String,
    /// What happened instead (or the same thing, on success).
    pub got: String,
    /// Whether `got` meets `expected`.
    pub ok: bool,
}

impl Verdict {
    /// A verdict from its parts.
    pub fn new(expected: impl Into<String>, got: impl Into<String>, ok: bool) -> Verdict {
        Verdict {
            expected: expected.into(),
            got: got.into(),
            ok,
        }
    }
}

/// One attack: a name for the table and the function that runs it against a host.
pub struct Case {
    /// Row label.
    pub name: &'static str,
    /// Runs the attack; never panics on a misbehaving host, reports it instead.
    pub run: fn(&Server) -> Verdict,
}

/// Cases that share one host.
pub struct Group {
    /// The host they run against.
    pub host: HostSpec,
    /// The cases.
    pub cases: Vec<Case>,
    /// Run the cases at the same time (they use separate connections and do not
    /// interfere) rather than one after the other.
    pub parallel: bool,
    /// Measure the host's RSS growth during the case (one case per group: a shared host
    /// would mix the cases' memory).
    pub measure_rss: bool,
}

/// One table row.
struct Outcome {
    name: &'static str,
    expected: String,
    got: String,
    ms: u128,
    rss_mb: Option<f64>,
    ok: bool,
}

fn main() -> ExitCode {
    // Behave like a libtest binary towards `cargo test` arguments: `--list` names the suite,
    // and a name filter that does not match it (`cargo test --workspace some_test`) skips it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("hostile: test");
        return ExitCode::SUCCESS;
    }
    // libtest options that take a value in the next argument: that value is no filter.
    const VALUED: [&str; 7] = [
        "--test-threads",
        "--skip",
        "--format",
        "--color",
        "--logfile",
        "--shuffle-seed",
        "-Z",
    ];
    let filters: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with('-') && (*i == 0 || !VALUED.contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a)
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| "hostile".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    hosts::raise_own_fd_limit();
    let setup = Setup::detect();
    if let Some(note) = &setup.note {
        println!("note: {note}");
    }
    // Phase A: probes and resource attacks; phase B: the time-sensitive connection cases,
    // after phase A's hosts are gone so that their CPU use cannot delay them.
    let phases = [
        vec![
            protocol::group(),
            values::group(),
            values::redos_group(),
            connections::half_close_group(),
        ]
        .into_iter()
        .chain(resources::groups())
        .collect::<Vec<_>>(),
        connections::timing_groups(),
    ];
    let mut outcomes: Vec<Outcome> = Vec::new();
    for phase in &phases {
        std::thread::scope(|scope| {
            let runs: Vec<_> = phase
                .iter()
                .map(|group| scope.spawn(|| run_group(group, &setup)))
                .collect();
            for run in runs {
                outcomes.extend(run.join().expect("a group runner panicked"));
            }
        });
    }
    print_table(&outcomes);
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    println!(
        "(every case also requires GET /hello → 200 afterwards; RSS bound {} MB; total {} ms)",
        hosts::RSS_BOUND_MB,
        started.elapsed().as_millis()
    );
    println!("{} passed, {} failed", outcomes.len() - failed, failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Starts the group's host and runs its cases.
fn run_group(group: &Group, setup: &Setup) -> Vec<Outcome> {
    let server = match hosts::start(&group.host, setup) {
        Ok(server) => server,
        Err(log) => {
            let first = log.lines().rev().find(|l| !l.trim().is_empty());
            return group
                .cases
                .iter()
                .map(|case| Outcome {
                    name: case.name,
                    expected: "a host to attack".into(),
                    got: format!("the host did not start: {}", first.unwrap_or("(no log)")),
                    ms: 0,
                    rss_mb: None,
                    ok: false,
                })
                .collect();
        }
    };
    hosts::warm_up(&server);
    if group.parallel {
        std::thread::scope(|scope| {
            let runs: Vec<_> = group
                .cases
                .iter()
                .map(|case| scope.spawn(|| run_case(&server, case, group.measure_rss)))
                .collect();
            runs.into_iter()
                .map(|r| r.join().expect("a case panicked"))
                .collect()
        })
    } else {
        group
            .cases
            .iter()
            .map(|case| run_case(&server, case, group.measure_rss))
            .collect()
    }
}

/// Runs one case, then checks memory and that the host still answers.
fn run_case(server: &Server, case: &Case, measure_rss: bool) -> Outcome {
    let watch = measure_rss.then(|| hosts::RssWatch::start(server.pid()));
    let started = Instant::now();
    let mut verdict = (case.run)(server);
    let ms = started.elapsed().as_millis();
    let mut rss_mb = None;
    let mut host_killed = false;
    if let Some(watch) = watch {
        let report = watch.finish();
        rss_mb = Some(report.delta_mb);
        if report.killed {
            host_killed = true;
            verdict.ok = false;
            verdict.got = format!(
                "the suite killed the host at RSS +{:.0} MB (bound {} MB); the case saw: {}",
                report.delta_mb,
                hosts::RSS_BOUND_MB,
                verdict.got
            );
        } else if report.delta_mb >= hosts::RSS_BOUND_MB as f64 {
            verdict.ok = false;
            verdict.got = format!(
                "{}; RSS grew {:.1} MB, over the {} MB bound",
                verdict.got,
                report.delta_mb,
                hosts::RSS_BOUND_MB
            );
        }
    }
    if !host_killed {
        if let Err(e) = hosts::hello(server, Duration::from_secs(5)) {
            verdict.ok = false;
            verdict.got = format!("{}; then GET /hello: {e}", verdict.got);
        }
    }
    Outcome {
        name: case.name,
        expected: verdict.expected,
        got: verdict.got,
        ms,
        rss_mb,
        ok: verdict.ok,
    }
}

/// The results as a Markdown table, so that it can be pasted into a note as it is.
fn print_table(outcomes: &[Outcome]) {
    println!();
    println!("| case | expected | got | time ms | RSS delta MB | ok |");
    println!("|---|---|---|---:|---:|---|");
    for o in outcomes {
        let rss = o.rss_mb.map_or("-".to_owned(), |mb| format!("{mb:.1}"));
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            o.name,
            cell(&o.expected),
            cell(&o.got),
            o.ms,
            rss,
            if o.ok { "ok" } else { "FAIL" }
        );
    }
    println!();
}

/// A table cell: pipes escaped, line breaks flattened, at most 400 characters.
fn cell(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .replace('|', "\\|");
    if flat.chars().count() > 400 {
        flat.chars().take(400).collect::<String>() + "…"
    } else {
        flat
    }
}
