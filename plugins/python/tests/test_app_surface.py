"""The app surface's pure logic, without a host: response classes and
headers, status constants, router composition and route metadata,
exception handler lookup and the lifespan's order (through the runtime with
a fake ``spikard._native``)."""

from __future__ import annotations

import asyncio
import datetime
import http
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest

from spikard import (
    APIRouter,
    App,
    Depends,
    Form,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    MutableHeaders,
    NoMatchFound,
    PlainTextResponse,
    RedirectResponse,
    Response,
    UploadFile,
    status,
)
from spikard._exception_handlers import lookup
from spikard._runtime import HookError, Runtime


class FakeNative:
    def log(self, level: int, target: str, message: str) -> None:
        pass

    def log_enabled(self, level: int, target: str) -> bool:
        return False


def run(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.fixture
def runtime_of() -> Iterator[Any]:
    made: list[Runtime] = []

    def make(app: App) -> Runtime:
        runtime = Runtime(app, FakeNative())
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        logging.getLogger().removeHandler(runtime.log_handler)


# -- responses -------------------------------------------------------------------------------------------


def test_mutable_headers_are_case_insensitive_and_keep_repeats() -> None:
    headers = MutableHeaders({"X-A": "1"})
    headers.append("set-cookie", "a=1")
    headers.append("Set-Cookie", "b=2")
    assert headers["x-a"] == "1" and "X-a" in headers and "nope" not in headers
    headers["x-A"] = "2"  # replaces, keeps the position and the first spelling
    assert headers.raw == [("X-A", "2"), ("set-cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert headers.getlist("SET-COOKIE") == ["a=1", "b=2"]
    assert list(headers) == ["x-a", "set-cookie"] and len(headers) == 2
    del headers["set-cookie"]
    assert headers.raw == [("X-A", "2")]
    with pytest.raises(KeyError):
        del headers["set-cookie"]
    assert headers == {"x-a": "2"}
    headers.setdefault("vary", "accept")
    headers.add_vary_header("origin")
    assert headers["vary"] == "accept, origin"


def test_response_classes_render() -> None:
    assert Response({"a": 1}).rendered() == (200, [("content-type", "application/json")], b'{"a":1}')
    assert JSONResponse("s").rendered() == (200, [("content-type", "application/json")], b'"s"')
    assert JSONResponse(None).body == b"null"
    assert Response().rendered() == (200, [], b"")
    assert HTMLResponse("<p>é</p>", 201).rendered() == (
        201,
        [("content-type", "text/html; charset=utf-8")],
        "<p>é</p>".encode(),
    )
    assert PlainTextResponse(b"raw").rendered()[1:] == ([("content-type", "text/plain; charset=utf-8")], b"raw")
    # a content-type in the headers wins
    assert Response("x", headers={"Content-Type": "text/csv"}).rendered()[1] == [("Content-Type", "text/csv")]

    class CSVResponse(Response):  # Starlette's way: a media type and a render()
        media_type = "text/csv"

        def render(self, content: Any) -> bytes:
            return "\n".join(",".join(map(str, row)) for row in content).encode()

    assert CSVResponse([[1, 2], [3, 4]]).rendered() == (
        200,
        [("content-type", "text/csv; charset=utf-8")],
        b"1,2\n3,4",
    )


def test_redirect_response() -> None:
    response = RedirectResponse("/a b?q=ü")
    assert response.rendered() == (307, [("location", "/a%20b?q=%C3%BC")], b"")
    assert RedirectResponse(url="https://x.test/", status_code=status.HTTP_303_SEE_OTHER).status_code == 303


def test_set_and_delete_cookie() -> None:
    response = Response()
    response.set_cookie(
        "s",
        "v",
        max_age=10,
        expires=datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        domain="x.test",
        secure=True,
        httponly=True,
        samesite="none",
        partitioned=True,
    )
    response.delete_cookie("gone", path="/p")
    set_cookie = response.headers.getlist("set-cookie")
    parts = {p.strip() for p in set_cookie[0].split(";")}
    assert {
        "s=v",
        "Max-Age=10",
        "expires=Wed, 02 Jan 2030 03:04:05 GMT",
        "Domain=x.test",
        "Secure",
        "HttpOnly",
        "SameSite=none",
        "Partitioned",
        "Path=/",
    } == parts
    assert set_cookie[1].startswith('gone="";') and "Max-Age=0" in set_cookie[1] and "Path=/p" in set_cookie[1]
    with pytest.raises(ValueError, match="samesite"):
        response.set_cookie("x", samesite="sometimes")  # type: ignore[arg-type]


def test_http_exception_defaults() -> None:
    exc = HTTPException(404)
    assert exc.detail == "Not Found" and exc.headers is None
    assert repr(HTTPException(400, {"a": 1})) == "HTTPException(status_code=400, detail={'a': 1})"
    assert str(HTTPException(599)) == "599: HTTP 599"


def test_status_constants() -> None:
    names = [n for n in dir(status) if n.startswith("HTTP_")]
    assert len(names) > 60
    for name in names:
        code = int(name.split("_")[1])
        assert getattr(status, name) == code
        if code != 306:  # "(Unused)", which http.HTTPStatus leaves out
            http.HTTPStatus(code)
    assert status.HTTP_422_UNPROCESSABLE_ENTITY == status.HTTP_422_UNPROCESSABLE_CONTENT == 422
    assert status.HTTP_413_REQUEST_ENTITY_TOO_LARGE == status.HTTP_413_CONTENT_TOO_LARGE == 413
    assert status.HTTP_418_IM_A_TEAPOT == 418 and status.WS_1000_NORMAL_CLOSURE == 1000
    assert set(status.__all__) >= set(names)


# -- routers ---------------------------------------------------------------------------------------------


def marker(name: str) -> Any:
    return ("dep", name)


def test_routers_compose_like_fastapi() -> None:
    app = App(dependencies=[marker("app")], responses={500: {"description": "Boom"}})
    inner = APIRouter(
        prefix="/items", tags=["items"], dependencies=[marker("inner")], responses={404: {"description": "Gone"}}
    )
    outer = APIRouter(prefix="/v1", tags=["v1"], dependencies=[marker("outer")])

    @inner.get("", tags=["list"], dependencies=[marker("route")])
    def list_items() -> list[int]:
        return []

    @inner.api_route("/{item_id}", methods=["PUT", "patch"], responses={404: {"description": "Not here"}})
    def put_item(item_id: int) -> None: ...

    outer.include_router(inner)
    app.include_router(outer, prefix="/api", tags=["api"], dependencies=[marker("include")])

    @inner.get("/late")  # added after the include: not copied, as in FastAPI
    def late() -> None: ...

    routes = {(r.method, r.path): r for r in app.routes}
    assert set(routes) == {
        ("GET", "/api/v1/items"),
        ("PUT", "/api/v1/items/{item_id}"),
        ("PATCH", "/api/v1/items/{item_id}"),
    }
    listed = routes["GET", "/api/v1/items"]
    assert listed.tags == ["api", "list", "items", "v1"]
    assert [d[1] for d in listed.dependencies] == ["app", "include", "outer", "inner", "route"]
    assert listed.app is app and listed.name == "list_items"
    assert listed.responses == {500: {"description": "Boom"}, 404: {"description": "Gone"}}
    assert routes["PUT", "/api/v1/items/{item_id}"].responses[404] == {"description": "Not here"}
    assert all(r.app is None for r in inner.routes)  # still only in a router
    assert app.url_path_for("put_item", item_id=7) == "/api/v1/items/7"
    with pytest.raises(NoMatchFound):
        app.url_path_for("put_item")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: APIRouter(prefix="items"), "must start with '/'"),
        (lambda: APIRouter(prefix="/items/"), "must not end with '/'"),
        (lambda: App().include_router(APIRouter(), prefix="v1"), "must start with '/'"),
        (lambda: App().get("items")(lambda: None), "must start with '/'"),
        (lambda: App().api_route("/x", methods=[])(lambda: None), "methods is empty"),
        (lambda: App().get("/x", status_code=1000)(lambda: None), "not an HTTP status"),
        (lambda: App().get("/x", response_model_exclude_none=True)(lambda: None), "unexpected route keyword"),
    ],
)
def test_bad_router_use_is_refused(make: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_empty_prefix_and_path_is_refused_when_included() -> None:
    router = APIRouter()
    router.get("")(lambda: None)
    with pytest.raises(ValueError, match="both empty"):
        App().include_router(router)
    app = App()
    app.include_router(router, prefix="/root")
    assert app.routes[0].path == "/root"


def test_route_openapi_metadata() -> None:
    app = App(title="T", version="1")

    @app.get(
        "/items/{item_id}",
        status_code=status.HTTP_202_ACCEPTED,
        tags=["a"],
        summary="S",
        response_description="The item",
        responses={404: {"description": "No"}, "default": {}},
        deprecated=True,
        operation_id="op",
        include_in_schema=False,
    )
    def get_item(item_id: int) -> dict[str, int]:
        """First line.

        More.\f
        hidden
        """
        return {}

    @app.get("/plain")
    def plain() -> None: ...

    @app.get("/page", response_class=HTMLResponse)
    def page() -> str:
        return ""

    route = app.routes[0]
    assert route.openapi == {
        "summary": "S",
        "operationId": "op",
        "status": 202,
        "description": "First line.\n\nMore.",
        "tags": ["a"],
        "deprecated": True,
        "responses": {
            "404": {"description": "No"},
            "default": {"description": "Additional Response"},
            "202": {"description": "The item"},
        },
        "include": False,
    }
    schema = json.loads(route.plan.schema_json)
    assert schema["openapi"] == route.openapi and schema["info"] == {"title": "T", "version": "1"}
    assert app.routes[1].openapi == {}  # nothing said: nothing sent but the app's info
    assert json.loads(app.routes[1].plan.schema_json) == {"info": {"title": "T", "version": "1"}}
    assert app.routes[2].openapi["responses"] == {
        "200": {"description": "Successful Response", "content": {"text/html": {"schema": {"type": "string"}}}}
    }
    assert App().get("/bare")(lambda: None) is not None


# -- exception handlers ---------------------------------------------------------------------------------


class Base(Exception):
    pass


class Child(Base):
    pass


class GrandChild(Child):
    pass


def test_exception_handler_lookup_follows_the_mro() -> None:
    def h(name: str) -> Any:
        return lambda request, exc: name

    handlers: dict[Any, Any] = {Base: h("base"), Child: h("child"), 404: h("404"), HTTPException: h("http")}
    assert lookup(handlers, GrandChild())[0] is Child  # type: ignore[index]
    assert lookup(handlers, Base())[0] is Base  # type: ignore[index]
    assert lookup(handlers, HTTPException(404))[0] == 404  # type: ignore[index]
    assert lookup(handlers, HTTPException(400))[0] is HTTPException  # type: ignore[index]
    assert lookup(handlers, KeyError()) is None
    assert lookup({500: h("500")}, KeyError())[0] == 500  # type: ignore[index]
    assert lookup({500: h("500")}, HTTPException(400)) is None  # 500 is for errors, not HTTPExceptions
    assert lookup({Exception: h("exc")}, KeyError())[0] is Exception  # type: ignore[index]


def test_exception_handlers_wrap_only_apps_that_have_them(runtime_of: Any) -> None:
    plain = App()
    plain.get("/x")(lambda: None)
    assert runtime_of(plain).routes()[0][5] is False  # no headers asked for: nothing added per request

    app = App()
    seen: list[Any] = []

    @app.exception_handler(Child)
    def on_child(request: Any, exc: Child) -> JSONResponse:
        seen.append((request.headers.get("x-a"), type(exc).__name__))
        return JSONResponse({"handled": True}, status_code=409)

    @app.get("/x")
    def x() -> None:
        raise GrandChild("boom")

    runtime = runtime_of(app)
    assert runtime.routes()[0][5] is True  # the handler gets the request's headers
    plan = runtime.plans[0]
    result = plan.invoke("{}", b"", [("x-a", "1")], "req-1")
    assert isinstance(result, JSONResponse) and result.status_code == 409
    assert seen == [("1", "GrandChild")]


# -- lifespan --------------------------------------------------------------------------------------------


def test_lifespan_wraps_the_hooks_and_sets_state(runtime_of: Any) -> None:
    events: list[str] = []
    tasks: list[Any] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        events.append("enter")
        tasks.append(asyncio.current_task())
        yield {"pool": "p"}
        tasks.append(asyncio.current_task())
        events.append("exit")

    app = App(
        lifespan=lifespan,
        on_startup=[lambda: events.append(f"startup:{app.state.pool}")],
        on_shutdown=[lambda: events.append("shutdown")],
    )
    runtime = runtime_of(app)

    async def whole_life() -> None:
        await runtime.startup()
        events.append("serving")
        await runtime.shutdown()

    run(whole_life())
    assert events == ["enter", "startup:p", "serving", "shutdown", "exit"]
    assert tasks[0] is tasks[1]  # entered and exited in one task
    assert app.lifespan_state == {"pool": "p"}


def test_bare_async_generator_lifespan_and_failing_startup_hook(runtime_of: Any) -> None:
    events: list[str] = []

    async def lifespan(app: App) -> AsyncIterator[None]:  # no decorator: wrapped, as Starlette does
        events.append("enter")
        try:
            yield
        finally:
            events.append("exit")

    def broken() -> None:
        raise OSError("disk full")

    app = App(lifespan=lifespan, on_startup=[broken])
    runtime = runtime_of(app)
    with pytest.raises(HookError, match=r"on_startup hook .*broken.* failed: OSError: disk full"):
        run(runtime.startup())
    assert events == ["enter", "exit"]  # the lifespan is left when start-up fails after it
    assert runtime.shutdown() is None  # nothing left to stop


def test_lifespan_failure_at_shutdown_is_a_hook_error(runtime_of: Any) -> None:
    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        yield
        raise RuntimeError("flush failed")

    runtime = runtime_of(App(lifespan=lifespan))

    async def whole_life() -> None:
        await runtime.startup()
        await runtime.shutdown()

    with pytest.raises(HookError, match=r"lifespan .*lifespan \(.* failed at shutdown: RuntimeError: flush failed"):
        run(whole_life())


def test_on_event_is_on_startup_and_on_shutdown() -> None:
    app = App()

    @app.on_event("startup")
    def up() -> None: ...

    app.add_event_handler("shutdown", up)
    assert app.startup_hooks == [up] and app.shutdown_hooks == [up]
    with pytest.raises(ValueError, match="unknown event"):
        app.on_event("later")


def test_included_routers_bring_their_hooks_and_lifespans(runtime_of: Any) -> None:
    events: list[str] = []

    def span(name: str, state: dict[str, Any] | None) -> Any:
        @asynccontextmanager
        async def lifespan(app: App) -> AsyncIterator[dict[str, Any] | None]:
            events.append(f"enter {name}")
            yield state
            events.append(f"exit {name}")

        return lifespan

    inner = APIRouter(
        lifespan=span("inner", {"shared": "inner", "inner": 1}),
        on_startup=[lambda: events.append("inner startup")],
        on_shutdown=[lambda: events.append("inner shutdown")],
    )
    outer = APIRouter(prefix="/o")
    outer.include_router(inner)
    app = App(lifespan=span("app", {"shared": "app"}), on_startup=[lambda: events.append("app startup")])
    app.include_router(outer)
    runtime = runtime_of(app)

    async def whole_life() -> None:
        await runtime.startup()
        await runtime.shutdown()

    run(whole_life())
    assert events == [
        "enter app",
        "enter inner",
        "app startup",
        "inner startup",
        "inner shutdown",
        "exit inner",
        "exit app",
    ]
    assert app.lifespan_state == {"shared": "app", "inner": 1}  # the app's values win


def test_form_routes_document_their_media_types() -> None:
    app = App()

    @app.post("/up")
    async def up(file: UploadFile, note: str = Form()) -> None: ...

    def credentials(username: str = Form(), password: str = Form()) -> str:
        return username

    @app.post("/login")
    def login(user: str = Depends(credentials)) -> None: ...

    @app.post("/json")
    def body(item: dict[str, int]) -> None: ...

    media = [json.loads(r.plan.schema_json).get("openapi", {}).get("body_media_types") for r in app.routes]
    assert media == [["multipart/form-data"], ["application/x-www-form-urlencoded", "multipart/form-data"], None]


class InnerModel(msgspec.Struct):
    a: int


class ErrorModel(msgspec.Struct):
    message: str
    inner: InnerModel


def test_response_models_are_inlined_for_the_document() -> None:
    app = App()
    app.get("/x", responses={404: {"model": ErrorModel, "description": "Missing"}})(lambda: None)
    entry = app.routes[0].openapi["responses"]["404"]
    assert entry["description"] == "Missing"
    schema = entry["content"]["application/json"]["schema"]
    assert "$defs" not in json.dumps(schema)  # no reference left to dangle in the document
    assert schema["properties"]["inner"]["properties"]["a"] == {"type": "integer"}


def test_responses_module_mirrors_fastapi_responses() -> None:
    import spikard
    from spikard import responses

    # fastapi.responses' names, each the class spikard itself exports
    for name in (
        "FileResponse",
        "HTMLResponse",
        "JSONResponse",
        "ORJSONResponse",
        "PlainTextResponse",
        "RedirectResponse",
        "Response",
        "StreamingResponse",
        "UJSONResponse",
    ):
        assert getattr(responses, name) is getattr(spikard, name)
        assert name in responses.__all__
