"""Return values, HTTPException, crashes, logging and C-extension imports,
through the real host and plugin (examples/returns_app.py)."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from conftest import Host, host_fixture, problem

pytestmark = pytest.mark.e2e

host = host_fixture("examples.returns_app:app")

JSON = "application/json"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/dict", {"a": 1, "b": [1, 2], "c": None}),
        ("/list", [1, 2, 3]),
        ("/struct", {"name": "pen", "price": 1.5}),
        ("/dataclass", {"x": 1, "y": 2}),
        ("/pydantic", {"name": "ann", "age": 7}),
        ("/pydantic-list", [{"name": "ann", "age": 7}, {"name": "bob", "age": 8}]),
        ("/response-model", {"name": "ann"}),
    ],
)
def test_json_results(host: Host, path: str, expected: object) -> None:
    r = host.get(path)
    assert r.status == 200, r.body
    assert r.content_type == JSON
    assert r.json() == expected
    assert r.headers["x-request-id"]


def test_str(host: Host) -> None:
    r = host.get("/str")
    assert r.status == 200
    assert r.content_type == "text/plain; charset=utf-8"
    assert r.text == "hello, wörld"


def test_bytes(host: Host) -> None:
    r = host.get("/bytes")
    assert r.content_type == "application/octet-stream"
    assert r.body == b"\x00\x01binary"


def test_none(host: Host) -> None:
    r = host.get("/none")
    assert (r.status, r.body) == (200, b"")
    r = host.request("DELETE", "/things/3")
    assert (r.status, r.body) == (204, b"")


def test_decorator_status(host: Host) -> None:
    r = host.post("/created")
    assert (r.status, r.json()) == (201, {"created": True})


def test_response_objects(host: Host) -> None:
    r = host.get("/response/json")
    assert (r.status, r.content_type, r.headers["x-custom"], r.json()) == (202, JSON, "yes", {"ok": True})
    r = host.get("/response/media-type")
    assert r.content_type == "application/vnd.test+json"
    assert (r.headers["x-a"], r.headers["x-b"], r.json()) == ("1", "2", {"k": 1})
    r = host.get("/response/text")
    assert (r.content_type, r.text) == ("text/html; charset=utf-8", "<h1>hi</h1>")
    r = host.get("/response/empty")
    assert (r.status, r.headers["etag"], r.body) == (304, '"abc"', b"")
    r = host.get("/response/redirect")
    assert (r.status, r.headers["location"]) == (307, "/hello")


def test_head_is_served_by_get(host: Host) -> None:
    r = host.request("HEAD", "/dict")
    assert (r.status, r.body) == (200, b"")


def test_http_exception_with_headers(host: Host) -> None:
    r = host.get("/http-error")
    body = problem(r, 401)
    assert body["detail"] == "token expired"
    assert body["type"] == "https://spikard.dev/errors/unauthorized"
    assert body["title"] == "Unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_http_exception_defaults_and_structured_detail(host: Host) -> None:
    assert problem(host.get("/http-error/default"), 404)["detail"] == "Not Found"
    body = problem(host.get("/http-error/after-await"), 409)
    assert body["detail"] == {"reason": "conflict", "id": 3}  # a JSON value, as FastAPI's detail


@pytest.mark.parametrize(
    ("path", "secret", "exception"),
    [
        ("/crash", "secret internals 4711", "RuntimeError"),
        ("/crash/sync", "unsupported operand", "TypeError"),
        ("/crash/after-await", "late secret 4712", "ValueError"),
        ("/crash/unencodable", "not JSON serializable", "TypeError"),
    ],
)
def test_crash_is_500_without_internals(host: Host, path: str, secret: str, exception: str) -> None:
    r = host.get(path)
    body = problem(r, 500)
    text = r.text
    assert secret not in text and "Traceback" not in text and exception not in text
    # The traceback is in the host log.
    host.wait_for_log(secret)
    assert "Traceback (most recent call last)" in host.log
    # ... and the server keeps serving.
    assert host.get("/hello").json() == {"message": "Hello"}
    assert body["status"] == 500


def test_failure_log_names_the_request(host: Host) -> None:
    r = host.get("/crash")
    problem(r, 500)
    request_id = r.headers["x-request-id"]
    line = host.wait_for_log(lambda line: request_id in line and "raised RuntimeError" in line)
    assert "GET /crash" in line


def test_invalid_response_header_is_500(host: Host) -> None:
    problem(host.get("/bad-header"), 500)
    assert host.get("/hello").status == 200


def test_logging_reaches_host_log_with_logger_name(host: Host) -> None:
    r = host.get("/log")
    assert r.json() == {"logged": True}
    warning = host.wait_for_log("warning from python handler w-1")
    assert "examples.returns" in warning and "WARN" in warning
    info = host.wait_for_log("info from python handler i-1")
    assert "examples.returns" in info and "INFO" in info
    assert "debug record that the host filters out" not in host.log  # RUST_LOG=info


def test_logged_exception_carries_traceback(host: Host) -> None:
    assert host.get("/log/exception").status == 200
    host.wait_for_log("handled failure with traceback")
    host.wait_for_log("KeyError: 'boom-key'")


def test_c_extensions_import_in_handlers(host: Host) -> None:
    r = host.get("/imports")
    assert r.status == 200, r.body
    body = r.json()
    assert body["names"] == ["msgspec", "_ctypes", "_decimal"]
    assert body["decimal"] == "3.305"
    for optional in ("orjson", "pydantic_core", "uvloop"):
        if importlib.util.find_spec(optional) is not None:  # installed in the test venv
            assert optional in body["extras"]
    assert body["python"][0] == 3


def test_event_loop_is_uvloop_when_installed(host: Host) -> None:
    loop = host.get("/loop").json()["loop"]
    forced = os.environ.get("SPIKARD_LOOP", "").strip().lower()
    if forced != "asyncio" and importlib.util.find_spec("uvloop") is not None and sys.platform != "win32":
        assert loop.startswith("uvloop"), loop
    else:
        assert loop.startswith("asyncio"), loop


def test_unknown_route_and_method(host: Host) -> None:
    problem(host.get("/no/such/route"), 404)
    r = host.request("PUT", "/dict")
    problem(r, 405)
    assert "GET" in r.headers["allow"]
