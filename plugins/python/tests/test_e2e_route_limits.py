"""A route's ``max_json_depth=`` and ``request_id=`` reach the host, through
the real host and plugin: a route (decorator, ``add_api_route`` or an
included ``APIRouter``) with ``max_json_depth=2`` gets a 400
``json-too-deep`` for a body nested three deep, one with
``request_id=False`` answers without the request id header; bad values stop
the server at start-up with a line naming the route and its file."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import (
    BUILD_HINT,
    PLUGIN_DIR,
    Host,
    missing_binaries,
    plugin_settings,
    problem,
    run_check,
    start_app_host,
    write_config,
)

pytestmark = pytest.mark.e2e

APP = """\
from typing import Any

from spikard import APIRouter, App

app = App()
router = APIRouter(prefix="/r")


@app.post("/shallow", max_json_depth=2)
async def shallow(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


@app.post("/default")
async def default(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


async def also_shallow(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


app.add_api_route("/added", also_shallow, methods=["POST"], max_json_depth=2)


@router.get("/quiet", request_id=False)
def quiet() -> dict[str, str]:
    return {"ok": "quiet"}


@router.get("/loud", request_id=True)
def loud() -> dict[str, str]:
    return {"ok": "loud"}


app.include_router(router)
"""


def write_app(tmp: Path, name: str, source: str) -> list[str]:
    """Writes ``source`` as module ``name`` and returns the ``python_path``
    that finds it and spikard."""
    apps = tmp / "apps"
    apps.mkdir(exist_ok=True)
    (apps / f"{name}.py").write_text(source, encoding="utf-8")
    return [str(apps), str(PLUGIN_DIR)]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    if missing_binaries():
        pytest.skip(f"needs {', '.join(missing_binaries())}: {BUILD_HINT}")
    tmp = tmp_path_factory.mktemp("route-limits")
    python_path = write_app(tmp, "route_limits_app", APP)
    running = start_app_host(tmp, "route_limits_app:app", python_path=python_path)
    try:
        yield running
    finally:
        running.stop()


def nested(depth: int) -> str:
    """A JSON object nested ``depth`` levels deep."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("path", ["/shallow", "/added"])
def test_route_json_depth(host: Host, path: str) -> None:
    ok = host.post(path, nested(2), JSON)
    assert (ok.status, ok.json()) == (200, {"a": {}}), ok.body
    body = problem(host.post(path, nested(3), JSON), 400)
    assert body["type"] == "https://spikard.dev/errors/json-too-deep", body
    assert "limit of 2 levels" in body["detail"], body


def test_other_routes_keep_the_server_depth(host: Host) -> None:
    assert host.post("/default", nested(3), JSON).status == 200
    problem(host.post("/default", nested(33), JSON), 400)  # server.max_json_depth = 32


def test_route_request_id(host: Host) -> None:
    quiet = host.get("/r/quiet", {"x-request-id": "q-1"})
    assert (quiet.status, quiet.json()) == (200, {"ok": "quiet"})
    assert "x-request-id" not in quiet.headers, quiet.headers
    loud = host.get("/r/loud", {"x-request-id": "l-1"})
    assert loud.headers.get("x-request-id") == "l-1"
    plain = host.post("/default", "{}", {**JSON, "x-request-id": "d-1"})
    assert plain.headers.get("x-request-id") == "d-1"


def check_app(tmp_path: Path, decorator: str) -> subprocess.CompletedProcess[str]:
    source = f"from spikard import App\n\napp = App()\n\n\n{decorator}\nasync def bad() -> dict:\n    return {{}}\n"
    python_path = write_app(tmp_path, "bad_limits_app", source)
    return run_check(write_config(tmp_path, plugin_settings("bad_limits_app:app", python_path=python_path)))


@pytest.mark.parametrize(
    ("decorator", "message"),
    [
        ("@app.post('/x', max_json_depth=0)", "max_json_depth=0 is out of range; give 1 to 127"),
        ("@app.post('/x', max_json_depth=128)", "max_json_depth=128 is out of range; give 1 to 127"),
        ("@app.post('/x', max_json_depth='8')", "max_json_depth='8' is a str"),
        ("@app.post('/x', max_json_depth=True)", "max_json_depth=True is a bool"),
        ("@app.post('/x', request_id='no')", "request_id='no' is a str; give True or False"),
    ],
)
def test_bad_values_stop_the_server(tmp_path: Path, decorator: str, message: str) -> None:
    if missing_binaries():
        pytest.skip(f"needs {', '.join(missing_binaries())}: {BUILD_HINT}")
    result = check_app(tmp_path, decorator)
    assert result.returncode == 2, (result.stdout, result.stderr)
    line = next(line for line in result.stderr.splitlines() if line.startswith("spikard-host: error:"))
    assert "route POST /x: handler bad" in line and "bad_limits_app.py" in line, line
    assert message in line, line
