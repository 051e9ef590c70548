"""FastAPI's app surface through the real host and plugin
(examples/app_surface_app.py), once per bridge: lifespan order and state,
routers nested twice, exception handlers (sync/async, MRO, status keys),
response classes, structured HTTPException details, redirects, cookies,
the OpenAPI metadata the routes carry; and start-up errors for bad router
or lifespan use."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import (
    BRIDGES,
    BUILD_HINT,
    PLUGIN_DIR,
    Host,
    HostError,
    host_fixture,
    missing_binaries,
    plugin_settings,
    problem,
    run_check,
    start_app_host,
    write_config,
)

pytestmark = pytest.mark.e2e

APP = "examples.app_surface_app:app"


@pytest.fixture(scope="module", params=BRIDGES)
def surface(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Host, Path]]:
    """The app served with ``[openapi]`` on; yields the host and the file
    its lifespan writes the event order to at shutdown (checked by the
    fixture after the module's tests)."""
    if missing_binaries():
        pytest.skip(f"needs {', '.join(missing_binaries())}: {BUILD_HINT}")
    tmp = tmp_path_factory.mktemp(f"surface-{request.param}")
    events = tmp / "events.txt"
    config = write_config(tmp, plugin_settings(APP, request.param))
    config.write_text(config.read_text() + "\n[openapi]\nenabled = true\n")
    host = Host.start(config, {"SPIKARD_TEST_EVENTS_FILE": str(events)})
    try:
        yield host, events
    finally:
        code = host.stop(signal.SIGTERM)
    assert code == 0, host.log
    # Start-up: lifespan first (its state visible to on_startup); shutdown:
    # on_shutdown first, then the lifespan's exit, in the task that entered it.
    assert events.read_text() == "lifespan-enter,startup-sees-db=fake-db,shutdown,lifespan-exit-same-task=True"


def test_lifespan_state_and_order_at_startup(surface: tuple[Host, Path]) -> None:
    host, events = surface
    body = host.get("/state").json()
    assert body == {"db": "fake-db", "events": ["lifespan-enter", "startup-sees-db=fake-db"]}
    assert not events.exists()  # written by the lifespan's exit, at shutdown


def test_lifespan_state_seeds_each_request_state(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    for _ in range(2):
        assert host.get("/state/request").json() == {"db": "fake-db", "leaked": None}


def test_routers_nested_twice(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    assert host.get("/api/v1/items").json() == ["a", "b"]  # path "" under the prefixes
    assert host.get("/api/v1/items/3").json() == {"id": 3}
    created = host.post("/api/v1/items/5/sync")
    assert (created.status, created.json()) == (201, {"touched": 5})
    problem(host.get("/items/3"), 404)  # only under the prefixes
    problem(host.get("/v1/items/3"), 404)
    problem(host.get("/api/v1/items/x"), 422)  # the host still validates


def test_exception_handlers_most_specific_class_wins(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    # NotFoundError has its own (async) handler, from an async and from a sync route.
    for method, path, what in (("GET", "/api/v1/items/0", "item 0"), ("POST", "/api/v1/items/0/sync", "item 0 (sync)")):
        r = host.request(method, path)
        assert r.status == 404, (path, r.body)
        assert r.json() == {"handler": "not_found", "what": what}
        assert r.headers["x-handled"] == "async"
    # OtherError has none: its base class's (sync) handler answers, with the request.
    r = host.post("/api/v1/items/1/sync")
    assert r.status == 400
    assert r.json() == {"handler": "app_error", "type": "OtherError", "path": "/api/v1/items/1/sync", "method": "POST"}


def test_exception_handlers_answer_for_dependencies(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    r = host.get("/guarded/0")  # the router's (sync) dependency raises OtherError
    assert (r.status, r.json()["type"]) == (400, "OtherError")
    r = host.get("/guarded/1")  # the route's async dependency raises NotFoundError
    assert (r.status, r.json()) == (404, {"handler": "not_found", "what": "item 1 (async dependency)"})
    assert host.get("/guarded/2").json() == {"guarded": 2}


def test_exception_handlers_for_status_and_validation(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    r = host.get("/errors/teapot")  # HTTPException(418) -> the handler keyed 418
    assert (r.status, r.content_type, r.text) == (418, "text/plain; charset=utf-8", "short and stout: tea")
    body = problem(host.get("/errors/not-teapot"), 409)  # no handler for 409
    assert body["detail"] == "plain conflict"
    r = host.get("/errors/validation")  # RequestValidationError raised in Python
    assert r.status == 422 and r.content_type == "application/json"
    assert r.json() == {
        "custom": True,
        "errors": [{"type": "value_error", "loc": ["query", "q"], "msg": "bad q", "input": "x"}],
    }
    # The host's own 422 never reaches Python: no custom body.
    assert problem(host.get("/api/v1/items/x"), 422)["errors"][0]["loc"] == ["path", "item_id"]


def test_default_handlers_reused_by_custom_ones(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    r = host.get("/errors/legal")  # a 451 handler delegating to http_exception_handler
    body = problem(r, 451)
    assert body["detail"] == "gone legal" and r.headers["x-legal"] == "1"
    r = host.get("/errors/delegated-validation")  # ... to request_validation_exception_handler
    body = problem(r, 422)
    assert body["title"] == "Request Validation Failed"
    assert body["errors"] == [{"type": "missing", "loc": ["body", "name"], "msg": "Field required", "input": {}}]
    assert {"451:gone legal", "validation"} <= set(host.get("/delegated").json())


def test_exception_handler_returning_no_response_is_a_logged_500(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    r = host.get("/errors/not-a-response")
    problem(r, 500)
    host.wait_for_log(lambda line: r.headers["x-request-id"] in line and "raised TypeError" in line)
    assert "returned dict, not a Response" in host.log


def test_unhandled_exception_is_still_a_logged_500(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    r = host.get("/errors/unhandled")
    problem(r, 500)
    host.wait_for_log(lambda line: r.headers["x-request-id"] in line and "raised TeapotError" in line)


def test_structured_http_exception_details(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    r = host.get("/detail/dict")
    body = problem(r, 409)
    assert body["detail"] == {"code": "duplicate", "ids": [1, 2]}  # a JSON value, not its text
    assert body["title"] == "Conflict" and body["type"].endswith("/conflict")
    r = host.get("/detail/list")
    body = problem(r, 400)
    assert body["detail"] == [{"field": "a"}, {"field": "b"}]
    assert r.headers["x-why"] == "list"
    assert problem(host.get("/detail/none"), 404)["detail"] == "Not Found"


def test_response_classes(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    r = host.get("/html")  # response_class=HTMLResponse: a returned str is HTML
    assert (r.status, r.content_type, r.text) == (200, "text/html; charset=utf-8", "<h1>hi</h1>")
    r = host.get("/html/sync")
    assert (r.status, r.content_type, r.text) == (202, "text/html; charset=utf-8", "<p>sync</p>")
    r = host.get("/text")
    assert (r.content_type, r.text) == ("text/plain; charset=utf-8", "plain")
    r = host.post("/json")
    assert (r.status, r.content_type, r.json(), r.headers["x-made"]) == (201, "application/json", {"made": True}, "1")
    r = host.get("/json/null")
    assert (r.content_type, r.body) == ("application/json", b"null")
    r = host.get("/file")
    assert (r.content_type, r.text) == ("text/plain; charset=utf-8", "file body\n")
    assert r.headers["content-disposition"] == 'attachment; filename="report.txt"'
    assert r.headers["etag"].startswith('"') and "last-modified" in r.headers


def test_redirects(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    r = host.get("/redirect")
    assert (r.status, r.headers["location"], r.body) == (307, "/html", b"")
    r = host.get("/redirect/found")
    assert (r.status, r.headers["location"]) == (302, "/text?x=a%20b")


def test_cookies_and_mutable_headers(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    r = host.get("/cookies")
    cookies = [value for name, value in r.header_list if name == "set-cookie"]
    assert len(cookies) == 2, r.header_list
    session, old = cookies
    assert session.startswith("session=abc;")
    assert {"HttpOnly", "Max-Age=60", "Path=/", "SameSite=strict"} <= {p.strip() for p in session.split(";")}
    assert old.startswith('old="";') and "Max-Age=0" in old
    assert [value for name, value in r.header_list if name == "x-custom"] == ["2"]


def test_openapi_metadata_reaches_the_document(surface: tuple[Host, Path]) -> None:
    host, _ = surface
    doc = host.get("/openapi.json").json()
    assert doc["info"]["title"] == "App surface"
    assert doc["info"]["version"] == "2.0.0"
    assert doc["info"]["description"] == "FastAPI parity checks"
    listed = doc["paths"]["/api/v1/items"]["get"]
    assert listed["tags"] == ["api", "items", "v1"]  # include's, then the routers' inner to outer
    assert listed["description"] == "Every item.\n\nEverything after the form feed is not documented."
    assert listed["responses"]["404"]["description"] == "No such item"  # the router's responses
    one = doc["paths"]["/api/v1/items/{item_id}"]["get"]
    assert (one["summary"], one["operationId"]) == ("One item", "get_one_item")
    assert one["tags"] == ["api", "one", "items", "v1"]
    touch = doc["paths"]["/api/v1/items/{item_id}/sync"]["post"]
    assert touch["deprecated"] is True and "201" in touch["responses"]
    assert list(doc["paths"]["/upload"]["post"]["requestBody"]["content"]) == ["multipart/form-data"]
    html = doc["paths"]["/html"]["get"]["responses"]["200"]
    assert html == {"description": "Successful Response", "content": {"text/html": {"schema": {"type": "string"}}}}


# -- start-up errors ---------------------------------------------------------------------------------


def _check_app(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "surface_bad_app.py").write_text(source)
    settings = plugin_settings("surface_bad_app:app", python_path=[str(apps), str(PLUGIN_DIR)])
    return run_check(write_config(tmp_path, settings))


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("spikard-host: error:")]
    assert len(errors) == 1, result.stderr
    assert "panicked" not in result.stderr
    return errors[0]


ROUTER_HEAD = "from spikard import App, APIRouter\n\napp = App()\n"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (ROUTER_HEAD + "router = APIRouter(prefix='items')\n", "the prefix 'items' must start with '/'"),
        (ROUTER_HEAD + "router = APIRouter(prefix='/items/')\n", "the prefix '/items/' must not end with '/'"),
        (
            ROUTER_HEAD + "router = APIRouter()\n@router.get('/x')\ndef x() -> None: ...\n"
            "app.include_router(router, prefix='/v1/')\n",
            "include_router(prefix=...): the prefix '/v1/' must not end with '/'",
        ),
        (
            ROUTER_HEAD + "router = APIRouter()\n@router.get('')\ndef x() -> None: ...\napp.include_router(router)\n",
            "the prefix and the path are both empty",
        ),
        (ROUTER_HEAD + "@app.get('items')\ndef x() -> None: ...\n", "route path 'items' must start with '/'"),
        (ROUTER_HEAD + "app.include_router(object())\n", "include_router takes an APIRouter"),
        (ROUTER_HEAD + "@app.exception_handler('oops')\ndef h(request, exc): ...\n", "neither an exception class"),
        (
            "from spikard import App\n\ndef lifespan(app):\n    yield\n\napp = App(lifespan=lifespan)\n",
            "is a sync generator function",
        ),
        (
            ROUTER_HEAD + "@app.get('/x', response_model_exclude_none=True)\ndef x() -> None: ...\n",
            "response_model_exclude_none",
        ),
        (ROUTER_HEAD + "@app.middleware('http')\nasync def m(request, call_next): ...\n", "no ASGI/HTTP middleware"),
        (ROUTER_HEAD + "app.mount('/static', object())\n", "[[static]] table"),
        (ROUTER_HEAD + "@app.websocket('/ws')\nasync def ws(websocket): ...\n", "HTTP routes only"),
    ],
)
def test_bad_app_surface_use_stops_the_start(tmp_path: Path, source: str, expected: str) -> None:
    line = _error_line(_check_app(tmp_path, source))
    assert "settings.app" in line and "surface_bad_app" in line, line
    assert expected in line, line


LIFESPAN_FAILS = """
from contextlib import asynccontextmanager
from spikard import App

@asynccontextmanager
async def lifespan(app):
    raise OSError("no database at db:5432")
    yield

app = App(lifespan=lifespan)

@app.get("/")
def root() -> dict:
    return {}
"""

LIFESPAN_NOT_A_MANAGER = """
from spikard import App

async def lifespan(app):
    return None

app = App(lifespan=lifespan)
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (LIFESPAN_FAILS, "failed at start-up: OSError: no database at db:5432"),
        (LIFESPAN_NOT_A_MANAGER, "not an async context manager"),
    ],
)
def test_lifespan_failure_stops_the_start(tmp_path: Path, source: str, expected: str) -> None:
    line = _error_line(_check_app(tmp_path, source))
    assert "lifespan lifespan (" in line and "surface_bad_app.py" in line, line
    assert expected in line, line
    with pytest.raises(HostError, match="exited with 2"):
        start_app_host(tmp_path, "surface_bad_app:app", python_path=[str(tmp_path / "apps"), str(PLUGIN_DIR)])


# -- a FastAPI app with its import lines changed ----------------------------------------------------------

port = host_fixture("examples.fastapi_port_app:app")

TOKEN = {"x-token": "fake-super-secret-token"}


def test_fastapi_tutorial_app_runs_with_its_imports_changed(port: Host) -> None:
    assert port.get("/?token=jessica").json() == {"message": "Hello Bigger Applications!"}
    assert port.get("/users/?token=jessica").json() == [{"username": "Rick"}, {"username": "Morty"}]
    assert port.get("/users/me?token=jessica").json() == {"username": "fakecurrentuser"}
    assert port.get("/items/gun?token=jessica", headers=TOKEN).json() == {"name": "Portal Gun", "item_id": "gun"}
    assert problem(port.get("/items/x?token=jessica", headers=TOKEN), 404)["detail"] == "Item not found"
    forbidden = problem(port.request("PUT", "/items/gun?token=jessica", headers=TOKEN), 403)
    assert forbidden["detail"] == "You can only update the item: plumbus"
    assert port.request("POST", "/admin/?token=jessica", headers=TOKEN).json() == {"message": "Admin getting schwifty"}
    # the app's and the routers' dependencies: the host validates their parameters first
    assert problem(port.get("/"), 422)["errors"][0]["loc"] == ["query", "token"]
    assert problem(port.get("/items/gun?token=jessica"), 422)["errors"][0]["loc"] == ["headers", "x-token"]
    bad = problem(port.get("/items/gun?token=jessica", headers={"x-token": "nope"}), 400)
    assert bad["detail"] == "X-Token header invalid"
    unicorn = port.get("/unicorns/yolo?token=jessica")  # lifespan state + exception handler
    assert (unicorn.status, unicorn.json()) == (418, {"message": "Oops! yolo did something. There goes a rainbow..."})
    # no redirect_slashes: "/items" is not "/items/"
    problem(port.get("/items?token=jessica", headers=TOKEN), 404)
