"""Command line, skip list, expected-pass list, the run itself and the report."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import compare as cmp
from .fixtures import IN_SCOPE, NOT_IMPLEMENTED_REASON, Case, Unloadable, discover, is_meta_schema, load_case
from .hostproc import Host, StartupError
from .rawhttp import HttpError, exchange
from .tomlgen import Layout, self_check, write_config

HERE = Path(__file__).resolve().parent.parent  # tests/conformance
REPO = HERE.parent.parent
SKIPS_FILE = HERE / "skips.toml"
EXPECTED_FILE = HERE / "expected-pass.txt"
PROBLEM_BASE = "https://spikard.dev/errors/"
BUILD_CMD = ["cargo", "build", "-p", "spikard-host", "-p", "spikard-echo"]

COMPARE_MODES = (None, "status", "error-loc")
PASSED, FAILED, UNLOADABLE, SKIPPED = "passed", "failed", "unloadable", "skipped"


@dataclass
class Result:
    id: str
    category: str
    outcome: str
    reason: str = ""  # skip/unloadable reason, or the one-line diff
    relaxed: str = ""  # "mode: reason" from the skip list when compared partly
    soft: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


@dataclass
class SkipEntry:
    case: str
    reason: str
    # None: not run. "status": run, compare status and headers only.
    # "error-loc": run, match validation errors on `loc` only (not `type`).
    compare: str | None


def load_skips(path: Path) -> dict[str, SkipEntry]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SystemExit(f"conformance: cannot read {path}: {e}")
    entries: dict[str, SkipEntry] = {}
    problems = []
    for i, raw in enumerate(data.get("skip", [])):
        case = raw.get("case")
        reason = raw.get("reason")
        mode = raw.get("compare")
        if not isinstance(case, str) or not case:
            problems.append(f"skip[{i}]: `case` is missing")
            continue
        if not isinstance(reason, str) or not reason.strip():
            problems.append(f"skip[{i}] ({case}): every skip needs a `reason`")
            continue
        if mode not in COMPARE_MODES:
            problems.append(f"skip[{i}] ({case}): `compare` must be \"status\" or \"error-loc\", or left out")
            continue
        if case in entries:
            problems.append(f"skip[{i}] ({case}): listed twice")
            continue
        extra = set(raw) - {"case", "reason", "compare"}
        if extra:
            problems.append(f"skip[{i}] ({case}): unknown key(s) {', '.join(sorted(extra))}")
            continue
        entries[case] = SkipEntry(case, " ".join(reason.split()), mode)
    if problems:
        raise SystemExit("conformance: " + path.name + ":\n  " + "\n  ".join(problems))
    return entries


def load_expected(path: Path) -> set[str]:
    if not path.exists():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {l.strip() for l in lines if l.strip() and not l.lstrip().startswith("#")}


def target_dir() -> Path:
    env = os.environ.get("CARGO_TARGET_DIR")
    base = Path(env) if env else REPO / "target"
    if not base.is_absolute():
        base = REPO / base
    return base / "debug"


def build(skip_build: bool, build_cmd: list[str] = BUILD_CMD, library: str = "libspikard_echo.so") -> tuple[Path, Path]:
    """Builds (unless told not to) and returns the host binary and the plugin library."""
    host = target_dir() / "spikard-host"
    plugin = target_dir() / library
    command = f"(cd {REPO} && {' '.join(build_cmd)})"
    if not skip_build:
        if shutil.which("cargo") is None:
            if not (host.exists() and plugin.exists()):
                raise SystemExit(f"conformance: cargo is not installed; build the host and plugin with: {command}")
            print("conformance: cargo not found; using the binaries already built", flush=True)
        else:
            print(f"conformance: building: {' '.join(build_cmd)}", flush=True)
            started = time.monotonic()
            proc = subprocess.run(build_cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                tail = proc.stdout.decode("utf-8", "replace").splitlines()[-40:]
                raise SystemExit(
                    "conformance: the build failed:\n  " + "\n  ".join(tail) + f"\nconformance: fix it, then: {command}"
                )
            print(f"conformance: built in {time.monotonic() - started:.0f}s", flush=True)
    for f in (host, plugin):
        if not f.exists():
            raise SystemExit(f"conformance: {f} is missing; build it with: {command}")
    return host, plugin


def resolve_case_arg(root: Path, text: str) -> str:
    p = Path(text)
    for candidate in (p, root / p, Path.cwd() / p):
        try:
            return candidate.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return p.as_posix().lstrip("./")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="tests/conformance/run",
        description="Replays the Spikard fixture cases against the real spikard-host (one process, "
        "one generated config, the echo plugin's `respond` handler).",
    )
    ap.add_argument("fixtures", metavar="FIXTURES_DIR", help="e.g. ../shared/spikard-fixtures/testing_data")
    ap.add_argument("--category", action="append", default=[], metavar="C", help="only this category (repeatable)")
    ap.add_argument("--case", action="append", default=[], metavar="FILE", help="only this case file (repeatable)")
    ap.add_argument(
        "--update-expected",
        action="store_true",
        help="rewrite expected-pass.txt (with --python: expected-pass-python.txt) from this run",
    )
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build; use target/debug as is")
    ap.add_argument("--keep", action="store_true", help="keep the generated config directory and print its path")
    ap.add_argument("--timeout", type=float, default=15.0, help="seconds per request (default 15)")
    ap.add_argument("-v", "--verbose", action="store_true", help="all diffs, notes and soft mismatches")
    ap.add_argument(
        "--python",
        action="store_true",
        help="Python mode: generate a spikard app per case and serve it through the Python plugin "
        "(skips-python.toml, expected-pass-python.txt)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def on_term(signum, frame):  # run the finally blocks: the host gets stopped
        raise SystemExit(130)

    signal.signal(signal.SIGTERM, on_term)

    root = Path(args.fixtures)
    if not root.is_dir():
        print(f"conformance: {root} is not a directory", file=sys.stderr)
        return 2
    root = root.resolve()
    if args.python:
        from .pyrun import run_python  # noqa: PLC0415

        return run_python(args, root)
    skips = load_skips(SKIPS_FILE)
    expected = load_expected(EXPECTED_FILE)

    files = discover(root)
    categories = {f.relative_to(root).parts[0] for f in files}
    unknown = sorted(set(args.category) - categories)
    if unknown:
        print(f"conformance: no such category: {', '.join(unknown)} (have: {', '.join(sorted(categories))})", file=sys.stderr)
        return 2
    wanted_cases = {resolve_case_arg(root, c) for c in args.case}
    results: list[Result] = []
    to_run: list[Case] = []
    known_ids: set[str] = set()
    for f in files:
        rel = f.relative_to(root).as_posix()
        category = rel.split("/", 1)[0]
        if args.category and category not in args.category:
            continue
        if wanted_cases and rel not in wanted_cases:
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            if is_meta_schema(data) and category in IN_SCOPE:
                continue  # a category's meta-schema, not a case
            if is_meta_schema(data) and f.name == "schema.json":
                continue
        except Exception:  # noqa: BLE001 - unreadable files are reported below
            pass
        known_ids.add(rel)
        if category not in IN_SCOPE:
            results.append(Result(rel, category, SKIPPED, NOT_IMPLEMENTED_REASON))
            continue
        entry = skips.get(rel)
        if entry and entry.compare is None:
            results.append(Result(rel, category, SKIPPED, entry.reason))
            continue
        try:
            to_run.append(load_case(root, f))
        except Unloadable as e:
            results.append(Result(rel, category, UNLOADABLE, str(e)))
        except Exception as e:  # noqa: BLE001 - never crash on a weird case
            results.append(Result(rel, category, UNLOADABLE, f"runner error: {type(e).__name__}: {e}"))
    missing = sorted(wanted_cases - known_ids)
    if missing:
        print(f"conformance: no such case(s): {', '.join(missing)}", file=sys.stderr)
        return 2
    for stale in sorted(k for k in skips if (root / k).parent.is_dir() and not (root / k).is_file()):
        print(f"conformance: warning: skips.toml names {stale}, which does not exist")

    if to_run:
        host_bin, plugin = build(args.no_build)
        workdir = Path(tempfile.mkdtemp(prefix="spikard-conformance-"))
        try:
            results += run_cases(to_run, skips, host_bin, plugin, workdir, args)
        finally:
            if args.keep:
                print(f"conformance: generated config kept in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    return report(results, expected, args, all_selected=not args.category and not wanted_cases)


def run_cases(cases: list[Case], skips, host_bin: Path, plugin: Path, workdir: Path, args) -> list[Result]:
    results: list[Result] = []
    active = []
    for i, c in enumerate(cases):
        try:
            problem = self_check(c)
        except Exception as e:  # noqa: BLE001 - a runner bug fails one case, not the run
            problem = f"runner error: {type(e).__name__}: {e}"
        if problem:
            results.append(Result(c.id, c.category, UNLOADABLE, problem))
        else:
            active.append((f"/c{i + 1}", c))
    if not active:
        return results
    host = None
    try:
        for _attempt in range(len(active) + 1):
            config, layout = write_config(workdir, active, plugin, PROBLEM_BASE)
            host = Host(host_bin, config)
            try:
                port = host.start()
                break
            except StartupError as e:
                # A route or static mount the host refuses (a schema it cannot
                # compile, a path it rejects, a key it does not know) makes
                # that one case unloadable; the host is started without it.
                bad, line = refused_case(e, layout, workdir)
                if bad is None:
                    raise SystemExit(f"conformance: {e}\n{e.output}\n")
                case = next(c for _, c in active if c.id == bad)
                results.append(Result(case.id, case.category, UNLOADABLE, f"the host refused its config: {line}"))
                active = [(p, c) for p, c in active if c.id != bad]
                if not active:
                    return results
        else:
            raise SystemExit("conformance: the host would not start")

        print(f"conformance: spikard-host listening on 127.0.0.1:{port}; {len(active)} cases", flush=True)
        for prefix, case in active:
            results.append(run_one(case, prefix, host, port, skips, args))
    finally:
        if host is not None:
            host.stop()
            if not host.alive() and host.proc is not None and host.proc.returncode not in (0, -15, None):
                if any(r.outcome == FAILED and "not running" in r.reason for r in results):
                    print("conformance: host output (tail):\n" + "\n".join(list(host.tail)[-30:]))
    return results


def run_one(case: Case, prefix: str, host: Host, port: int, skips, args, followups=()) -> Result:
    """Sends one case's request (after its warm-up requests) and compares
    the answer; `followups` are (method, path, status, JSON body) requests
    checked after it (the Python mode's background state)."""
    entry = skips.get(case.id)
    mode = entry.compare if entry else None
    relaxed = f"{mode}: {entry.reason}" if entry and mode else ""
    if not host.alive():
        return Result(case.id, case.category, FAILED, "the host is not running (it exited during the run)")
    try:
        req = case.request
        warmup_diff = run_warmup(case, prefix, port, args.timeout)
        if warmup_diff:
            return Result(case.id, case.category, FAILED, warmup_diff, relaxed, notes=case.notes)
        resp = exchange(
            "127.0.0.1",
            port,
            req.method,
            prefix + req.target,
            req.headers,
            req.body,
            timeout=args.timeout,
            half_close=req.explicit_length,
        )
        verdict = cmp.compare(case, resp, mode)
        if verdict.ok:
            verdict.diffs += run_followups(followups, prefix, port, args.timeout)
        outcome = PASSED if verdict.ok else FAILED
        # Soft statistics measure the host, so cases whose expectations
        # contradict the other fixtures (compared partly) stay out.
        soft = {} if relaxed else verdict.soft
        if args.verbose and not verdict.ok and len(verdict.diffs) > 1:
            for d in verdict.diffs[1:]:
                print(f"      {case.id}: {d}")
        if args.verbose and case.notes:
            for n in case.notes:
                print(f"      note {case.id}: {n}")
        return Result(case.id, case.category, outcome, verdict.line() if not verdict.ok else "", relaxed, soft, case.notes)
    except HttpError as e:
        return Result(case.id, case.category, FAILED, f"request failed: {e}", relaxed, notes=case.notes)
    except Exception as e:  # noqa: BLE001 - a runner bug fails one case, not the run
        tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
        return Result(case.id, case.category, FAILED, f"runner error: {type(e).__name__}: {e} ({tb})", relaxed)


def run_followups(followups, prefix: str, port: int, timeout: float) -> list[str]:
    """Each follow-up request must get its status and JSON body (a list of
    differences; polled for up to 2 s, as background work runs after the
    response)."""
    diffs: list[str] = []
    for method, path, status, body in followups:
        deadline = time.monotonic() + 2.0
        while True:
            resp = exchange("127.0.0.1", port, method, prefix + path, [], None, timeout=timeout)
            got: object = None
            try:
                got = json.loads(resp.body.decode("utf-8"))
            except ValueError:
                got = resp.body.decode("utf-8", "replace")
            if resp.status == status and cmp.matches(body, got):
                break
            if time.monotonic() > deadline:
                diffs.append(f"follow-up {method} {path}: expected {status} {cmp.short(body)}, got {resp.status} {cmp.short(got)}")
                break
            time.sleep(0.05)
    return diffs


def refused_case(error: StartupError, layout: Layout, workdir: Path) -> tuple[str | None, str]:
    """(case id, the host's message) for a start-up error that points into
    one case's part of the generated config: by its line in spikard.toml
    (an unknown key, a bad value), else by `routes[i]` or `static[i]`."""
    lines = error.output.splitlines()
    owner = None
    message = next((l for l in lines if "spikard.toml:" in l or "routes[" in l or "static[" in l), str(error))
    m = re.search(r"spikard\.toml:(\d+):", error.output)
    if m:
        owner = layout.owner_of_line(int(m.group(1)))
    for pattern, owners in ((r"\broutes\[(\d+)\]", layout.routes), (r"\bstatic\[(\d+)\]", layout.statics)):
        if owner is None:
            m = re.search(pattern, error.output)
            if m and int(m.group(1)) < len(owners):
                owner = owners[int(m.group(1))]
    message = message.replace(str(workdir) + "/", "")
    message = re.sub(r"^.*?error:\s*", "", message)
    return owner, message.strip()


def run_warmup(case: Case, prefix: str, port: int, timeout: float) -> str:
    """Sends a rate-limited case's warm-up requests (the case's own request,
    `count` times, `sleep_ms` apart, then that pause once more before the
    case's request); returns the first difference, or "" when each got the
    expected status."""
    w = case.warmup
    if w is None:
        return ""
    req = case.request
    for i in range(w.count):
        try:
            resp = exchange(
                "127.0.0.1",
                port,
                req.method,
                prefix + req.target,
                req.headers,
                req.body,
                timeout=timeout,
                half_close=req.explicit_length,
            )
        except HttpError as e:
            return f"warm-up request {i + 1}/{w.count} failed: {e}"
        if resp.status != w.expect_status:
            return f"warm-up request {i + 1}/{w.count}: status expected {w.expect_status}, got {resp.status}"
        if w.sleep_ms:
            time.sleep(w.sleep_ms / 1000)
    return ""


def report(
    results: list[Result],
    expected: set[str],
    args,
    all_selected: bool,
    label: str = "conformance",
    scope: tuple = IN_SCOPE,
    expected_file: Path = EXPECTED_FILE,
) -> int:
    """Prints the tables and lists; returns the exit status (1 on a regression
    against `expected_file`). The last line is `{label}: P passed, ...`."""
    IN_SCOPE = scope  # noqa: N806 - the categories in scope of this mode
    EXPECTED_FILE = expected_file  # noqa: N806
    by_cat: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        by_cat[r.category][r.outcome] += 1
    cats = [c for c in IN_SCOPE if c in by_cat] + sorted(c for c in by_cat if c not in IN_SCOPE)
    out = print
    out("")
    header = f"{'category':<20} {'cases':>5} {'passed':>6} {'failed':>6} {'unloadable':>10} {'skipped':>7}"
    out(header)
    out("-" * len(header))
    totals = Counter()
    for c in cats:
        n = by_cat[c]
        total = sum(n.values())
        totals.update(n)
        scope = "" if c in IN_SCOPE else "  (not in scope)"
        out(f"{c:<20} {total:>5} {n[PASSED]:>6} {n[FAILED]:>6} {n[UNLOADABLE]:>10} {n[SKIPPED]:>7}{scope}")
    out("-" * len(header))
    out(f"{'total':<20} {sum(totals.values()):>5} {totals[PASSED]:>6} {totals[FAILED]:>6} {totals[UNLOADABLE]:>10} {totals[SKIPPED]:>7}")

    skipped = [r for r in results if r.outcome == SKIPPED]
    if skipped:
        out("\nSkipped, with reasons:")
        ni = Counter(r.category for r in skipped if r.reason == NOT_IMPLEMENTED_REASON)
        if ni:
            out(f"  {NOT_IMPLEMENTED_REASON}: " + ", ".join(f"{c} ({n})" for c, n in sorted(ni.items())))
        # "needs <feature>" (the Python mode: a feature the package lacks yet)
        # by feature, with the categories and cases it holds back.
        needs: dict[str, list[str]] = defaultdict(list)
        for r in skipped:
            if r.reason.startswith("needs "):
                needs[r.reason].append(r.id)
        for reason, ids in sorted(needs.items()):
            cats = Counter(i.split("/", 1)[0] for i in ids)
            out(f"  {reason}: " + ", ".join(f"{c} ({n})" for c, n in sorted(cats.items())))
            out("      " + ", ".join(sorted(ids)))
        for r in sorted(
            (r for r in skipped if r.reason != NOT_IMPLEMENTED_REASON and not r.reason.startswith("needs ")),
            key=lambda r: r.id,
        ):
            out(f"  {r.id}: {r.reason}")
    relaxed = sorted((r for r in results if r.relaxed), key=lambda r: r.id)
    if relaxed:
        out("\nCompared partly (skips.toml; status = status and headers only, error-loc = errors by loc only):")
        for r in relaxed:
            out(f"  {r.id} [{r.outcome}]: {r.relaxed}")
    unloadable = sorted((r for r in results if r.outcome == UNLOADABLE), key=lambda r: r.id)
    if unloadable:
        out("\nUnloadable:")
        for r in unloadable:
            out(f"  {r.id}: {r.reason}")
    failed = sorted((r for r in results if r.outcome == FAILED), key=lambda r: r.id)
    if failed:
        out("\nFailures:")
        for r in failed:
            out(f"  FAIL {r.id}: {r.reason}")
            for n in r.notes:
                out(f"         note: {n}")

    soft = defaultdict(list)
    for r in results:
        for k, items in (r.soft or {}).items():
            soft[k] += [(ok, f"{r.id}: {d}") for ok, d in items]
    if any(soft.values()):
        out("\nSoft statistics (reported, not failures; cases compared partly are left out):")
        labels = {
            "msg": "validation error msg",
            "input": "validation error input",
            "ctx": "validation error ctx",
            "detail": "Problem Details detail",
        }
        for k in cmp.SOFT_KEYS:
            items = soft.get(k, [])
            if items:
                ok = sum(1 for good, _ in items if good)
                out(f"  {labels[k]:<24} {ok:>4}/{len(items):<4} match")
                if args.verbose:
                    for good, d in items:
                        if not good:
                            out(f"      {d}")

    in_scope = [r for r in results if r.category in IN_SCOPE]
    p = sum(1 for r in in_scope if r.outcome == PASSED)
    f = sum(1 for r in in_scope if r.outcome == FAILED)
    u = sum(1 for r in in_scope if r.outcome == UNLOADABLE)
    s = sum(1 for r in in_scope if r.outcome == SKIPPED)
    if p + f:
        out(
            f"\nIn scope: {p}/{p + f} run cases pass ({100.0 * p / (p + f):.1f}%); "
            f"{p}/{p + f + s} loadable cases including skipped ({100.0 * p / (p + f + s):.1f}%); {u} unloadable"
        )

    # Regressions against the expected-pass list.
    ran = {r.id: r for r in results}
    passed_ids = {r.id for r in results if r.outcome == PASSED}
    regressions = sorted(i for i in expected if i in ran and ran[i].outcome in (FAILED, UNLOADABLE))
    not_run = sorted(i for i in expected if i in ran and ran[i].outcome == SKIPPED)
    new_passes = sorted(passed_ids - expected)
    if all_selected:
        gone = sorted(i for i in expected if i not in ran)
        if gone:
            out(f"\nwarning: {len(gone)} case(s) in {EXPECTED_FILE.name} are not in the fixtures: {', '.join(gone[:5])}")
    if not_run:
        out(f"\nwarning: expected passes now skipped: {', '.join(not_run)}")
    if regressions:
        out(f"\nREGRESSIONS: {len(regressions)} case(s) in {EXPECTED_FILE.name} no longer pass:")
        for i in regressions:
            out(f"  {i}: {ran[i].reason}")
    if args.update_expected:
        selected = set(ran)
        new = sorted((expected - selected) | passed_ids)
        EXPECTED_FILE.write_text("".join(l + "\n" for l in new), encoding="utf-8")
        out(f"\n{EXPECTED_FILE.name} rewritten: {len(new)} case(s)")
    elif new_passes:
        out(f"\n{len(new_passes)} case(s) pass but are not in {EXPECTED_FILE.name}; record them with --update-expected")

    n_p = sum(1 for r in results if r.outcome == PASSED)
    n_f = sum(1 for r in results if r.outcome == FAILED)
    n_u = sum(1 for r in results if r.outcome == UNLOADABLE)
    n_s = sum(1 for r in results if r.outcome == SKIPPED)
    out(f"{label}: {n_p} passed, {n_f} failed, {n_u} unloadable, {n_s} skipped")
    return 1 if regressions and not args.update_expected else 0
