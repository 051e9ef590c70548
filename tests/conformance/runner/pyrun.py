"""The Python mode's run: load, generate the app, start one host, replay,
report (`conformance (python): ...`)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .fixtures import IN_SCOPE, Unloadable, discover, is_meta_schema, load_case
from .hostproc import Host, StartupError
from .main import (
    FAILED,
    HERE,
    PASSED,
    PROBLEM_BASE,
    REPO,
    SKIPPED,
    SKIPS_FILE,
    UNLOADABLE,
    Result,
    build,
    load_expected,
    load_skips,
    report,
    resolve_case_arg,
    run_one,
)
from .pygen import NotExpressible, python_unsupported
from .pymode import PyCase, read_status, refused_prefix, write_app, write_config
from .tomlgen import self_check

PY_SKIPS_FILE = HERE / "skips-python.toml"
PY_EXPECTED_FILE = HERE / "expected-pass-python.txt"
PY_BUILD_CMD = ["cargo", "build", "-p", "spikard-host", "-p", "spikard-python"]
LABEL = "conformance (python)"

# The echo mode's categories, and those only an application can express.
FEATURE_CATEGORIES = ("di", "lifecycle_hooks", "background", "openapi_schemas", "schemas")
PY_SCOPE = tuple(IN_SCOPE) + FEATURE_CATEGORIES


def load_py_case(root: Path, f: Path, category: str) -> PyCase:
    """A PyCase: the feature categories through features.py, the others as
    the echo mode translates them."""
    if category in FEATURE_CATEGORIES:
        from .features import load_feature_case  # noqa: PLC0415

        return load_feature_case(root, f)
    case = load_case(root, f)
    reason = python_unsupported(case)
    if reason:
        raise NotExpressible(reason)
    problem = self_check(case)  # the handler answers the echo mode's canned answer
    if problem:
        raise Unloadable(problem)
    return PyCase(case)


def run_python(args, root: Path) -> int:
    skips = load_skips(SKIPS_FILE)
    py_skips = load_skips(PY_SKIPS_FILE)
    for k in sorted(set(py_skips) & set(skips)):
        print(f"conformance: warning: {k} is in both skips.toml and skips-python.toml; skips-python.toml wins")
    skips = {**skips, **py_skips}
    expected = load_expected(PY_EXPECTED_FILE)
    files = discover(root)
    categories = {f.relative_to(root).parts[0] for f in files}
    unknown = sorted(set(args.category) - categories)
    if unknown:
        print(f"conformance: no such category: {', '.join(unknown)}")
        return 2
    wanted = {resolve_case_arg(root, c) for c in args.case}
    results: list[Result] = []
    to_run: list[PyCase] = []
    known: set[str] = set()
    for f in files:
        rel = f.relative_to(root).as_posix()
        category = rel.split("/", 1)[0]
        if (args.category and category not in args.category) or (wanted and rel not in wanted):
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            if is_meta_schema(data) and (category in IN_SCOPE or f.name == "schema.json"):
                continue
        except Exception:  # noqa: BLE001 - reported when loaded
            pass
        known.add(rel)
        if category not in PY_SCOPE:
            results.append(Result(rel, category, SKIPPED, "feature not implemented yet"))
            continue
        entry = skips.get(rel)
        if entry and entry.compare is None:
            results.append(Result(rel, category, SKIPPED, entry.reason))
            continue
        try:
            to_run.append(load_py_case(root, f, category))
        except NotExpressible as e:
            results.append(Result(rel, category, UNLOADABLE, f"not expressible in the Python API: {e}"))
        except Unloadable as e:
            results.append(Result(rel, category, UNLOADABLE, str(e)))
        except Exception as e:  # noqa: BLE001 - never crash on a weird case
            results.append(Result(rel, category, UNLOADABLE, f"runner error: {type(e).__name__}: {e}"))
    missing = sorted(wanted - known)
    if missing:
        print(f"conformance: no such case(s): {', '.join(missing)}")
        return 2
    if to_run:
        host_bin, plugin = build(args.no_build, PY_BUILD_CMD, "libspikard_python.so")
        workdir = Path(tempfile.mkdtemp(prefix="spikard-conformance-py-"))
        try:
            results += run_py_cases(to_run, skips, host_bin, plugin, workdir, args)
        finally:
            if args.keep:
                print(f"conformance: generated app and config kept in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    return report(
        results,
        expected,
        args,
        all_selected=not args.category and not wanted,
        label=LABEL,
        scope=PY_SCOPE,
        expected_file=PY_EXPECTED_FILE,
    )


def start(workdir: Path, active, host_bin: Path, plugin: Path, results: list[Result], openapi: bool):
    """Writes the app and config and starts the host; a case the generator
    cannot express, or whose route the host refuses at start-up, is taken
    out and the host started again. Returns (host, port, active, openapi)."""
    by_id = {pc.case.id: pc for _, pc in active}
    for _attempt in range(len(active) + 2):
        refused = write_app(workdir, active)
        for case_id, reason in refused.items():
            pc = by_id[case_id]
            results.append(Result(case_id, pc.case.category, UNLOADABLE, reason))
        active = [(p, pc) for p, pc in active if pc.case.id not in refused]
        if not active:
            return None, 0, active, openapi
        config = write_config(workdir, active, plugin, PROBLEM_BASE, REPO, openapi)
        host = Host(host_bin, config)
        try:
            return host, host.start(), active, openapi
        except StartupError as e:
            output = e.output
            if openapi and "openapi" in output.lower() and refused_prefix(output) is None:
                # This host has no [openapi] table yet: start without it, and
                # the cases that need it say so.
                openapi = False
                for _, pc in active:
                    if pc.needs_openapi:
                        results.append(
                            Result(pc.case.id, pc.case.category, SKIPPED, "needs the host's [openapi] config table")
                        )
                active = [(p, pc) for p, pc in active if not pc.needs_openapi]
                continue
            prefix = refused_prefix(output)
            bad = next((pc for p, pc in active if p == prefix), None)
            if bad is None:
                raise SystemExit(f"conformance: {e}\n{output}\n") from None
            line = next((l for l in output.splitlines() if prefix in l), str(e)).strip()
            line = line.replace(str(workdir) + "/", "")
            results.append(Result(bad.case.id, bad.case.category, FAILED, f"the host refused the app's route: {line[-400:]}"))
            active = [(p, pc) for p, pc in active if pc is not bad]
    raise SystemExit("conformance: the host would not start")


def run_check(pc: PyCase, prefix: str, host: Host, port: int, args) -> Result:
    """A case with its own check (the OpenAPI documents)."""
    case = pc.case
    if not host.alive():
        return Result(case.id, case.category, FAILED, "the host is not running (it exited during the run)")
    try:
        diffs = pc.check(port, prefix, args.timeout)
    except Exception as e:  # noqa: BLE001 - a runner bug fails one case, not the run
        diffs = [f"check failed: {type(e).__name__}: {e}"]
    if args.verbose:
        for d in diffs[1:]:
            print(f"      {case.id}: {d}")
    line = diffs[0] + (f" (+{len(diffs) - 1} more)" if len(diffs) > 1 else "") if diffs else ""
    return Result(case.id, case.category, FAILED if diffs else PASSED, line)


def run_py_cases(cases: list[PyCase], skips, host_bin: Path, plugin: Path, workdir: Path, args) -> list[Result]:
    results: list[Result] = []
    active = [(f"/c{i + 1}", pc) for i, pc in enumerate(cases)]
    openapi = any(pc.needs_openapi for _, pc in active)
    host = None
    try:
        host, port, active, openapi = start(workdir, active, host_bin, plugin, results, openapi)
        if host is None:
            return results
        status = read_status(workdir)
        print(f"conformance: spikard-host (python plugin) listening on 127.0.0.1:{port}; {len(active)} cases", flush=True)
        for prefix, pc in active:
            case = pc.case
            st = status.get(case.id)
            if st is None:
                results.append(Result(case.id, case.category, FAILED, "the app did not record this case (status.json)"))
                continue
            if st.get("status") == "needs":
                results.append(Result(case.id, case.category, SKIPPED, st.get("reason", "needs a missing feature")))
                continue
            if st.get("status") != "ok":
                results.append(
                    Result(case.id, case.category, FAILED, f"the spikard package refused the route: {st.get('reason')}")
                )
                continue
            if pc.check is not None:
                results.append(run_check(pc, prefix, host, port, args))
            else:
                results.append(run_one(case, prefix, host, port, skips, args, pc.followups))
    finally:
        if host is not None:
            host.stop()
            if any(r.outcome == FAILED and "not running" in r.reason for r in results):
                print("conformance: host output (tail):\n" + "\n".join(list(host.tail)[-30:]))
    return results
