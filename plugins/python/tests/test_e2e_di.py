"""Dependencies (``Depends``, ``Security``, route/router/app
``dependencies=``), ``BackgroundTasks`` and the ``response: Response``
parameter, through the real host and plugin (examples/di_app.py), plus the
start-up errors of misused markers (``spikard-host --check``)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import (
    PLUGIN_DIR,
    Host,
    error_locs,
    host_fixture,
    plugin_settings,
    problem,
    run_check,
    write_config,
)

pytestmark = pytest.mark.e2e

host = host_fixture("examples.di_app:app")


def events(host: Host) -> list[str]:
    r = host.get("/di/events")
    assert r.status == 200, r.body
    return r.json()  # type: ignore[no-any-return]


def wait_for(host: Host, check: Callable[[list[str]], bool], timeout: float = 10.0) -> list[str]:
    """The events once ``check`` holds (polling ``/di/events``)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = events(host)
        if check(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"events never matched: {seen}")
        time.sleep(0.02)


def after(seen: list[str], first: str, second: str) -> bool:
    return first in seen and second in seen and seen.index(first) < seen.index(second)


# -- parameters of dependencies ------------------------------------------------------------


def test_dependency_query_parameters_are_validated_by_the_host(host: Host) -> None:
    r = host.get("/di/items?q=pen&skip=2&limit=5")
    assert r.status == 200, r.body
    assert r.json() == {"q": "pen", "skip": 2, "limit": 5}
    assert host.get("/di/items").json() == {"q": None, "skip": 0, "limit": 10}
    body = problem(host.get("/di/items?limit=1000&skip=-1"), 422)
    assert sorted(error_locs(body)) == [["query", "limit"], ["query", "skip"]]
    assert error_locs(problem(host.get("/di/items?limit=ten"), 422)) == [["query", "limit"]]


def test_dependency_parameters_are_documented(tmp_path: Path) -> None:
    config = write_config(tmp_path, plugin_settings("examples.di_app:app"))
    with config.open("a", encoding="utf-8") as file:
        file.write("\n[openapi]\nenabled = true\n")
    server = Host.start(config)
    try:
        assert server.get("/di/documented?search=pen&level=2").json() == {"q": "pen", "level": 2}
        document = server.get("/openapi.json").json()
    finally:
        server.stop()
    items = {p["name"]: p for p in document["paths"]["/di/items"]["get"]["parameters"]}
    assert {"q", "skip", "limit"} <= set(items), items
    assert items["limit"]["schema"]["maximum"] == 100
    documented = {p["name"]: p for p in document["paths"]["/di/documented"]["get"]["parameters"]}
    search = documented["search"]  # the alias is the wire name
    assert search["description"] == "what to look for" and search.get("deprecated") is True, search
    assert search["schema"]["title"] == "Search"
    assert "pen" in str(search.get("examples", search.get("example"))), search
    assert "description" not in documented["level"] and "description" not in documented["level"]["schema"]


def test_class_dependency_with_depends_without_argument(host: Host) -> None:
    assert host.get("/di/pager?page=3").json() == {"page": 3, "size": 10}
    assert error_locs(problem(host.get("/di/pager?size=51"), 422)) == [["query", "size"]]


def test_body_parameter_of_a_dependency(host: Host) -> None:
    assert host.post("/di/body", {"name": "pen"}).json() == {"name": "PEN"}
    assert error_locs(problem(host.post("/di/body", {"name": ""}), 422)) == [["body", "name"]]


def test_request_in_a_dependency(host: Host) -> None:
    r = host.get("/di/request")
    assert r.json() == {"request_id": r.headers["x-request-id"]}


# -- nesting and caching ----------------------------------------------------------------------


def test_nested_dependencies_share_one_call_per_request(host: Host) -> None:
    first = host.get("/di/nested").json()
    assert first["inner"] == first["counter"] == first["handler"]  # counter ran once for all three
    assert first["fresh"] == first["handler"] + 1  # use_cache=False: its own call
    second = host.get("/di/nested").json()
    assert second["handler"] == first["fresh"] + 1  # a new request: a new call


# -- sync and async -----------------------------------------------------------------------------


def test_async_dependency_of_a_sync_handler(host: Host) -> None:
    r = host.get("/di/mixed/sync?n=4", headers={"x-token": "t"})
    assert r.status == 200, r.body
    body = r.json()
    assert (body["token"], body["double"]) == ("t", 8)
    # Off the loop, on the sync worker pool (not the loop's default executor).
    assert body["thread"] != host.get("/di/loop-thread").json()["thread"]
    assert not body["name"].startswith("asyncio"), body


def test_sync_dependency_of_an_async_handler(host: Host) -> None:
    assert host.get("/di/mixed/async?n=5").json() == {"token": "none", "double": 10}
    assert error_locs(problem(host.get("/di/mixed/async?n=x"), 422)) == [["query", "n"]]


# -- generator dependencies ------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_yield_teardown_runs_after_the_response(host: Host, flavor: str) -> None:
    key = f"hold-{flavor}-{time.monotonic_ns()}"
    r = host.get(f"/di/yield/{flavor}/{key}")
    assert r.status == 200, r.body
    body = r.json()
    assert body["resource"].endswith(f"resource {key}")
    assert f"teardown start {key}" not in body["events"]  # not while the handler ran
    # The response is here although the teardown waits for the release.
    seen = wait_for(host, lambda e: f"teardown start {key}" in e)
    assert f"teardown end {key}" not in seen
    host.post(f"/di/release/{key}")
    wait_for(host, lambda e: after(e, f"teardown start {key}", f"teardown end {key}"))


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_yield_teardown_sees_the_handlers_exception(host: Host, flavor: str) -> None:
    key = f"fail-{flavor}-{time.monotonic_ns()}"
    problem(host.get(f"/di/yield/{flavor}/{key}?fail=value"), 500)
    wait_for(host, lambda e: after(e, f"caught ValueError {key}", f"teardown end {key}"))
    key = f"http-{flavor}-{time.monotonic_ns()}"
    body = problem(host.get(f"/di/yield/{flavor}/{key}?fail=http"), 404)
    assert body["detail"] == "not here"
    wait_for(host, lambda e: after(e, f"caught HTTPException {key}", f"teardown end {key}"))


def test_yield_teardown_runs_when_the_handler_is_cancelled(host: Host) -> None:
    key = f"slow-{time.monotonic_ns()}"
    problem(host.get(f"/di/yield/slow/{key}"), 504)
    seen = wait_for(host, lambda e: f"teardown end {key}" in e)
    assert f"enter async {key}" in seen


def test_yield_teardown_of_a_streamed_response_runs_when_the_stream_ends(host: Host) -> None:
    key = f"stream-{time.monotonic_ns()}"
    r = host.get(f"/di/yield/stream/{key}")
    assert r.status == 200, r.body
    assert r.text == f"resource {key}\n0 teardown events\n"
    wait_for(host, lambda e: f"teardown end {key}" in e)


# -- overrides ------------------------------------------------------------------------------


def test_dependency_overrides_are_read_per_request(host: Host) -> None:
    try:
        assert host.get("/di/user").json() == {"user": "real user"}
        host.post("/di/override/fake")
        assert host.get("/di/user").json() == {"user": "fake user"}
        host.post("/di/override/async")  # an async override of a def route's dependency
        assert host.get("/di/user").json() == {"user": "async fake user"}
    finally:
        host.post("/di/override/clear")
    assert host.get("/di/user").json() == {"user": "real user"}


# -- route, router and app dependencies --------------------------------------------------------


def test_route_dependency_runs_before_the_handler(host: Host) -> None:
    ok = host.get("/di/guarded", headers={"x-key": "secret"})
    assert ok.status == 200, ok.body
    assert ok.json()["ok"] is True
    assert problem(host.get("/di/guarded", headers={"x-key": "nope"}), 403)["detail"] == "wrong key"
    # The route dependency's header is part of the route's schema: the host refuses its absence.
    assert error_locs(problem(host.get("/di/guarded"), 422)) == [["headers", "x-key"]]


def test_app_and_router_dependencies(host: Host) -> None:
    before = host.get("/di/guarded", headers={"x-key": "secret"}).json()["app_dependency_calls"]
    r = host.get("/di/guarded", headers={"x-key": "secret"})
    assert r.json()["app_dependency_calls"] == before + 1
    assert r.headers["x-app-dependency"] == "ran"
    r = host.get("/di/router/hello", headers={"x-key": "secret"})
    assert r.status == 200, r.body
    assert r.json() == {"hello": "router"}
    assert r.headers["x-router-dependency"] == "ran" and r.headers["x-app-dependency"] == "ran"
    assert problem(host.get("/di/router/hello", headers={"x-key": "bad"}), 403)


def test_security_scopes_accumulate(host: Host) -> None:
    assert host.get("/di/secure").json() == {"scopes": ["items:read", "me"]}


# -- background tasks ----------------------------------------------------------------------------


def test_background_tasks_run_in_order_after_the_response(host: Host) -> None:
    kind = f"hold{time.monotonic_ns()}"
    r = host.post(f"/di/background/{kind}")
    assert r.status == 200, r.body
    assert r.json() == {"queued": 7}
    # The answer came while the sixth task still waits for the release.
    seen = wait_for(host, lambda e: f"task after failure {kind}" in e)
    assert f"task released {kind}" not in seen
    host.post(f"/di/release/{kind}")
    seen = wait_for(host, lambda e: f"task released {kind}" in e)
    mine = [e for e in seen if e.endswith(kind) or e == "task from dependency"]
    assert mine[-5:] == [
        "task from dependency",
        f"task sync {kind}",
        f"task async {kind}",
        f"task after failure {kind}",
        f"task released {kind}",
    ]
    # The def tasks of an async route ran off the loop.
    assert host.get(f"/di/threads/{kind}").json()["thread"] not in (None, host.get("/di/loop-thread").json()["thread"])
    request_id = r.headers["x-request-id"]
    line = host.wait_for_log(lambda text: request_id in text and "background task failing_task raised" in text)
    assert "RuntimeError: background task failed" in line


def test_background_tasks_of_a_def_route(host: Host) -> None:
    r = host.post("/di/background-sync")
    assert r.status == 200, r.body
    wait_for(host, lambda e: after(e, "task async from def route", "sync from def route"))


def test_background_of_a_returned_response(host: Host) -> None:
    r = host.get("/di/response-background")
    assert (r.status, r.text) == (200, "ok")
    wait_for(host, lambda e: "task of a Response" in e)


# -- the response parameter ----------------------------------------------------------------------


def test_response_parameter_headers_cookies_status(host: Host) -> None:
    r = host.post("/di/response")
    assert r.status == 201, r.body
    assert r.json() == {"created": True}
    assert r.headers["x-from-handler"] == "yes" and r.headers["x-from-dependency"] == "yes"
    assert r.headers["content-type"] == "application/json"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("session=abc") and "HttpOnly" in cookie


def test_response_parameter_with_a_returned_response_keeps_its_status(host: Host) -> None:
    r = host.get("/di/response/explicit")
    assert r.status == 200, r.body
    assert r.json() == {"explicit": True}
    assert r.headers["x-temporal"] == "yes"


def test_response_parameter_is_not_merged_into_errors(host: Host) -> None:
    r = host.get("/di/response/error")
    problem(r, 409)
    assert "x-temporal" not in r.headers


# -- start-up errors ----------------------------------------------------------------------------

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[0-9:.]+Z\s+(TRACE|DEBUG|INFO|WARN|ERROR) ")

FAKE_FASTAPI = {
    "fastapi/__init__.py": "from .params import Depends, Query\n",
    "fastapi/params.py": (
        "class Depends:\n    def __init__(self, dependency=None):\n        self.dependency = dependency\n\n"
        "class Query:\n    def __init__(self, default=None):\n        self.default = default\n"
    ),
}


def check_app(tmp_path: Path, source: str, files: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    apps = tmp_path / "apps"
    for name, text in {**(files or {}), "bad_app.py": source}.items():
        path = apps / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    settings = plugin_settings("bad_app:app", python_path=[str(apps), str(PLUGIN_DIR)])
    return run_check(write_config(tmp_path, settings))


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("spikard-host: error:")]
    assert len(errors) == 1, result.stderr
    assert all(line in errors or LOG_LINE.match(line) for line in lines), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return errors[0]


def test_default_of_the_wrong_type(tmp_path: Path) -> None:
    line = error_line(
        check_app(
            tmp_path,
            "from spikard import App\n\napp = App()\n\n"
            "@app.get('/items')\ndef items(limit: int = 'ten') -> dict:\n    return {}\n",
        )
    )
    assert "items (" in line and "bad_app.py:5" in line, line  # the decorator line
    assert "'limit'" in line and "does not match the type int" in line, line


def test_default_of_a_dependency_breaking_its_rules(tmp_path: Path) -> None:
    line = error_line(
        check_app(
            tmp_path,
            "from spikard import App, Depends, Query\n\napp = App()\n\n"
            "def paging(limit: int = Query(500, le=100)) -> int:\n    return limit\n\n"
            "@app.get('/items')\ndef items(limit: int = Depends(paging)) -> dict:\n    return {}\n",
        )
    )
    assert "dependency paging (" in line and "bad_app.py:5" in line and "'limit'" in line, line
    assert "does not match" in line and "<= 100" in line, line


def test_fastapi_depends_is_refused(tmp_path: Path) -> None:
    line = error_line(
        check_app(
            tmp_path,
            "from fastapi import Depends\nfrom spikard import App\n\napp = App()\n\n"
            "def user() -> str:\n    return 'u'\n\n"
            "@app.get('/me')\ndef me(name: str = Depends(user)) -> dict:\n    return {}\n",
            FAKE_FASTAPI,
        )
    )
    assert "me (" in line and "'name'" in line, line
    assert "fastapi.params.Depends" in line and "use spikard.Depends" in line and "change the import" in line, line


def test_fastapi_query_in_annotated_is_refused(tmp_path: Path) -> None:
    line = error_line(
        check_app(
            tmp_path,
            "from typing import Annotated\nfrom fastapi import Query\nfrom spikard import App\n\napp = App()\n\n"
            "@app.get('/s')\ndef search(q: Annotated[str, Query()]) -> dict:\n    return {}\n",
            FAKE_FASTAPI,
        )
    )
    assert "'q'" in line and "fastapi.params.Query" in line and "spikard.Query" in line, line


def test_dependency_cycle_is_refused(tmp_path: Path) -> None:
    line = error_line(
        check_app(
            tmp_path,
            "from __future__ import annotations\nfrom spikard import App, Depends\n\napp = App()\n\n"
            "def a(x=Depends(lambda: None)) -> int:\n    return 1\n\n"
            "def b(y: int = Depends(a)) -> int:\n    return y\n\n"
            "def c(z: int = Depends(b)) -> int:\n    return z\n\n"
            "a.__defaults__ = (Depends(c),)\n\n"
            "@app.get('/x')\ndef x(v: int = Depends(a)) -> dict:\n    return {}\n",
        )
    )
    assert "cycle" in line and "break it" in line, line
