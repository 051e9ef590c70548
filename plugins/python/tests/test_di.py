"""Dependencies without a host: the route schemas a dependency tree makes,
the compile-time errors, the per-request steps (caching, generators,
overrides) and the after-response work (``AfterResponse``)."""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Annotated, Any

import msgspec
import pytest

from spikard import (
    App,
    BackgroundTasks,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    Security,
    SecurityScopes,
)
from spikard._background import AfterResponse, BackgroundTask
from spikard._invoke import RouteError
from spikard._runtime import merge_response


class Item(msgspec.Struct):
    name: str


class Pager:
    def __init__(self, page: int = 1) -> None:
        self.page = page


class Color(enum.Enum):
    RED = "red"


def _foreign_class(name: str, module: str) -> type:
    """A stand-in for a FastAPI/Starlette class (only its module matters)."""
    return type(name, (), {"__module__": module, "__init__": lambda self, *a, **k: None, "__call__": lambda self: None})


FastDepends = _foreign_class("Depends", "fastapi.params")
FastQuery = _foreign_class("Query", "fastapi.params")
StarletteTasks = _foreign_class("BackgroundTasks", "starlette.background")


def route_of(handler: Any, path: str = "/x", method: str = "GET", app: App | None = None, **options: Any) -> Any:
    app = app or App()
    app.route(method, path, **options)(handler)
    return app.routes[-1]


def plan_of(handler: Any, path: str = "/x", method: str = "GET", app: App | None = None, **options: Any) -> Any:
    return route_of(handler, path, method, app, **options).plan


def call(plan: Any, params: dict[str, Any] | None = None, body: bytes = b"", after: AfterResponse | None = None) -> Any:
    """Invokes a plan like the runtime (awaiting a coroutine)."""
    result = plan.invoke(params or {}, body, None, "req-1", after if after is not None else AfterResponse("req-1"))
    if plan.awaits:
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


# -- schemas ------------------------------------------------------------------------------


def test_parameters_of_dependencies_join_the_route_schema() -> None:
    def paging(skip: int = Query(0, ge=0), limit: int = Query(10, le=100)) -> dict:
        return {"skip": skip, "limit": limit}

    def token(x_token: str = Header()) -> str:
        return x_token

    def h(item_id: int, page: dict = Depends(paging), t: str = Depends(token)) -> Any:
        return item_id, page, t

    plan = plan_of(h, "/items/{item_id}")
    assert plan.schema["query"]["properties"] == {
        "skip": {"type": "integer", "minimum": 0, "default": 0},
        "limit": {"type": "integer", "maximum": 100, "default": 10},
    }
    assert plan.schema["headers"] == {
        "type": "object",
        "properties": {"x-token": {"type": "string"}},
        "required": ["x-token"],
    }
    assert plan.schema["path"]["required"] == ["item_id"]
    params = {"path": {"item_id": 3}, "query": {"skip": 1, "limit": 2}, "headers": {"x-token": "t"}}
    assert call(plan, params) == (3, {"skip": 1, "limit": 2}, "t")


def test_the_same_parameter_in_two_callables_is_read_once() -> None:
    def dep(q: int = 1) -> int:
        return q

    def h(q: int = 1, d: int = Depends(dep)) -> Any:
        return q, d

    plan = plan_of(h)
    assert list(plan.schema["query"]["properties"]) == ["q"]
    assert call(plan, {"query": {"q": 5}}) == (5, 5)


def test_a_parameter_declared_differently_is_an_error() -> None:
    def dep(q: str = "a") -> str:
        return q

    def h(q: int = 1, d: str = Depends(dep)) -> None: ...

    with pytest.raises(RouteError, match=r"query parameter 'q' is declared differently by .*dep .* and .*h .*alike"):
        plan_of(h)


def test_parameter_metadata_goes_into_the_schema() -> None:
    def h(
        q: str = Query(
            "x", alias="item-query", title="Query", description="what to find", examples=["pen"], deprecated=True
        ),
        hidden: int = Query(1, description="not shown", include_in_schema=False),
    ) -> None: ...

    props = plan_of(h).schema["query"]["properties"]
    assert props["item-query"] == {
        "type": "string",
        "title": "Query",
        "description": "what to find",
        "examples": ["pen"],
        "deprecated": True,
        "default": "x",
    }
    assert props["hidden"] == {"type": "integer", "default": 1}


def test_body_of_a_dependency() -> None:
    def name_of(item: Item) -> str:
        return item.name

    def h(name: str = Depends(name_of)) -> str:
        return name

    plan = plan_of(h, method="POST")
    assert plan.schema["body"]["required"] == ["name"]
    assert call(plan, {}, b'{"name": "pen"}') == "pen"


# -- the steps ----------------------------------------------------------------------------


def test_cached_dependency_runs_once_per_request_and_use_cache_false_again() -> None:
    calls: list[int] = []

    def counter() -> int:
        calls.append(1)
        return len(calls)

    def a(c: int = Depends(counter)) -> int:
        return c

    def h(x: int = Depends(a), y: int = Depends(counter), z: int = Depends(counter, use_cache=False)) -> Any:
        return x, y, z

    plan = plan_of(h)
    assert call(plan) == (1, 1, 2)
    assert call(plan) == (3, 3, 4)


def test_class_dependency_and_annotated_depends() -> None:
    def h(p: Annotated[Pager, Depends()]) -> int:
        return p.page

    plan = plan_of(h)
    assert plan.schema["query"]["properties"]["page"] == {"type": "integer", "default": 1}
    assert call(plan, {"query": {"page": 4}}) == 4


def test_async_dependency_makes_a_def_route_run_on_the_loop() -> None:
    async def token() -> str:
        await asyncio.sleep(0)
        return "t"

    def h(t: str = Depends(token)) -> str:
        return t

    plan = plan_of(h)
    assert plan.is_async and plan.awaits
    assert call(plan) == "t"


def test_a_route_without_dependencies_keeps_its_plain_invoker() -> None:
    def h(q: int = 1) -> int:
        return q

    plan = plan_of(h)
    assert not plan.after and plan.invoke.__name__ == "invoke"
    assert plan.invoke({"query": {"q": 2}}, b"", None, "") == 2


def test_security_scopes_accumulate_from_the_handler_down() -> None:
    def scopes(security_scopes: SecurityScopes) -> str:
        return security_scopes.scope_str

    def me(s: str = Security(scopes, scopes=["me"])) -> str:
        return s

    def h(s: str = Security(me, scopes=["items"])) -> str:
        return s

    assert call(plan_of(h)) == "items me"


def test_request_response_and_background_tasks_in_dependencies() -> None:
    def dep(request: Request, response: Response, tasks: BackgroundTasks) -> str:
        response.headers["x-dep"] = "1"
        tasks.add_task(print)
        return request.request_id

    def h(rid: str = Depends(dep), tasks: BackgroundTasks = None, response: Response = None) -> Any:  # type: ignore[assignment]
        response.status_code = 201
        return rid, len(tasks.tasks)

    plan = plan_of(h)
    assert plan.wants_request
    after = AfterResponse("req-1")
    assert call(plan, after=after) == ("req-1", 1)
    assert after.response.headers["x-dep"] == "1" and after.response.status_code == 201


def test_route_and_app_dependencies_run_first_and_are_validated() -> None:
    order: list[str] = []

    def app_dep() -> None:
        order.append("app")

    def route_dep(x_key: str = Header()) -> None:
        order.append("route")
        if x_key != "k":
            raise HTTPException(403)

    app = App(dependencies=[Depends(app_dep)])

    def h() -> str:
        order.append("handler")
        return "ok"

    plan = plan_of(h, app=app, dependencies=[Depends(route_dep)])
    assert plan.schema["headers"]["required"] == ["x-key"]
    assert call(plan, {"headers": {"x-key": "k"}}) == "ok"
    assert order == ["app", "route", "handler"]
    with pytest.raises(HTTPException):
        call(plan, {"headers": {"x-key": "no"}})


def test_overrides_are_read_per_request() -> None:
    def user() -> str:
        return "real"

    def h(u: str = Depends(user)) -> str:
        return u

    app = App()
    plan = plan_of(h, app=app)
    assert call(plan) == "real"
    app.dependency_overrides[user] = lambda: "fake"
    assert call(plan) == "fake"

    async def async_fake() -> str:
        return "async fake"

    app.dependency_overrides[user] = async_fake
    assert call(plan) == "async fake"
    app.dependency_overrides.clear()
    assert call(plan) == "real"


def test_overrides_set_before_compiling_join_the_schema() -> None:
    def user() -> str:
        return "real"

    def fake(name: str = Query("anon")) -> str:
        return name

    def h(u: str = Depends(user)) -> str:
        return u

    app = App()
    app.dependency_overrides[user] = fake
    plan = plan_of(h, app=app)
    assert plan.schema["query"]["properties"]["name"] == {"type": "string", "default": "anon"}
    assert call(plan, {"query": {"name": "x"}}) == "x"
    app.dependency_overrides.clear()
    assert call(plan) == "real"


# -- start-up errors ----------------------------------------------------------------------


def test_default_of_the_wrong_type() -> None:
    def h(limit: int = "ten") -> None: ...  # type: ignore[assignment]

    message = r"handler .*h \(.*test_di.py:\d+\): query parameter 'limit': its default 'ten' does not match"
    with pytest.raises(RouteError, match=message):
        plan_of(h)


@pytest.mark.parametrize(
    "default",
    [None, 3],
)
def test_defaults_that_match(default: Any) -> None:
    def h(limit: int = default, color: Color = Color.RED, tags: list[str] = [], ratio: float = 1) -> None: ...  # noqa: B006

    plan_of(h)


def test_default_breaking_the_rules() -> None:
    def h(limit: int = Query(500, le=100)) -> None: ...

    with pytest.raises(RouteError, match=r"'limit': its default 500 does not match .*<= 100"):
        plan_of(h)


def test_fastapi_markers_are_refused() -> None:
    def user() -> str:
        return "u"

    def h(u: str = FastDepends(user)) -> None: ...

    with pytest.raises(RouteError, match=r"parameter 'u': its default is fastapi.params.Depends .*use spikard.Depends"):
        plan_of(h)

    def g(q: Annotated[str, FastQuery()]) -> None: ...

    with pytest.raises(RouteError, match=r"Annotated metadata is fastapi.params.Query.*spikard.Query"):
        plan_of(g)


def test_starlette_classes_are_refused() -> None:
    def h(tasks: StarletteTasks) -> None: ...  # type: ignore[valid-type]

    with pytest.raises(RouteError, match=r"annotated starlette.background.BackgroundTasks .*spikard.BackgroundTasks"):
        plan_of(h)


def test_cycle_and_route_dependency_errors() -> None:
    def a(x: Any = None) -> None: ...

    def b(y: Any = Depends(a)) -> None: ...

    a.__defaults__ = (Depends(b),)

    def h(z: Any = Depends(a)) -> None: ...

    with pytest.raises(RouteError, match="cycle"):
        plan_of(h)

    def g() -> None: ...

    with pytest.raises(RouteError, match=r"dependencies=\[...\] holds 'nope'"):
        plan_of(g, dependencies=["nope"])


# -- after the response -------------------------------------------------------------------


def test_generator_teardown_after_the_response_in_reverse_order() -> None:
    log: list[str] = []

    def outer() -> Any:
        log.append("enter outer")
        yield "o"
        log.append("exit outer")

    def inner(o: str = Depends(outer)) -> Any:
        log.append("enter inner")
        try:
            yield o + "i"
        finally:
            log.append("exit inner")

    def h(v: str = Depends(inner)) -> str:
        log.append("handler")
        return v

    after = AfterResponse("r")
    assert call(plan_of(h), after=after) == "oi"
    assert log == ["enter outer", "enter inner", "handler"]
    after.finish()
    assert log[3:] == ["exit inner", "exit outer"]


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_handler_exception_is_thrown_into_the_generator(flavor: str) -> None:
    seen: list[str] = []

    def sync_dep() -> Any:
        try:
            yield 1
        except ValueError as exc:
            seen.append(f"caught {exc}")
            raise

    async def async_dep() -> Any:
        try:
            yield 1
        except ValueError as exc:
            seen.append(f"caught {exc}")
            raise

    dep = sync_dep if flavor == "sync" else async_dep

    def h(v: int = Depends(dep)) -> None:
        raise ValueError("boom")

    plan = plan_of(h)
    after = AfterResponse("r")

    async def request_then_teardown() -> None:  # one loop, as in the runtime
        with pytest.raises(ValueError):
            result = plan.invoke({}, b"", None, "r", after)
            if plan.awaits:
                await result
        await after.run_async()

    asyncio.run(request_then_teardown())
    assert seen == ["caught boom"]


def test_background_tasks_run_in_order_and_a_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []

    async def later(x: str) -> None:
        log.append(x)

    def fail() -> None:
        raise RuntimeError("nope")

    after = AfterResponse("req-9")
    tasks = after.background()
    tasks.add_task(log.append, "one")
    tasks.add_task(later, "two")
    tasks.add_task(fail)
    tasks.add_task(log.append, "three")
    after.add_background(BackgroundTask(log.append, "four"))
    with caplog.at_level(logging.ERROR, logger="spikard"):
        after.run_sync()
    assert log == ["one", "two", "three", "four"]
    assert "request req-9: background task" in caplog.text and "fail raised" in caplog.text
    assert "RuntimeError: nope" in caplog.text


def test_async_run_of_background_tasks() -> None:
    log: list[str] = []

    async def later(x: str) -> None:
        log.append(x)

    after = AfterResponse()
    after.background().add_task(log.append, "sync")
    after.background().add_task(later, "async")
    asyncio.run(after.run_async())
    assert log == ["sync", "async"]


def test_merge_of_the_temporal_response() -> None:
    temporal = Response()
    temporal.status_code = None  # type: ignore[assignment]
    temporal.headers["x-a"] = "1"
    temporal.headers["content-type"] = "application/vnd.x+json"
    temporal.set_cookie("s", "v")
    outcome = (0, 200, [("content-type", "application/json"), ("set-cookie", "t=1")], b"{}")
    _, status, headers, _ = merge_response(outcome, temporal, explicit=False)
    assert status == 200
    assert headers == [
        ("set-cookie", "t=1"),
        ("x-a", "1"),
        ("content-type", "application/vnd.x+json"),
        ("set-cookie", "s=v; Path=/; SameSite=lax"),
    ]
    temporal.status_code = 201
    assert merge_response(outcome, temporal, explicit=False)[1] == 201
    assert merge_response(outcome, temporal, explicit=True)[1] == 200  # a returned Response keeps its status
    problem = (1, 404, [], "no")
    assert merge_response(problem, temporal, explicit=False) == problem


def test_a_fastapi_security_object_as_dependency_is_refused() -> None:
    bearer = _foreign_class("OAuth2PasswordBearer", "fastapi.security.oauth2")()

    def h(token: str = Depends(bearer)) -> None: ...

    with pytest.raises(RouteError, match=r"is fastapi.security.oauth2.OAuth2PasswordBearer from another framework"):
        plan_of(h)
