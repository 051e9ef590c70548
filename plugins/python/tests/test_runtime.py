"""The runtime the Rust plugin drives, with a fake ``spikard._native`` (no host).

These pin the contract: eager start of async handlers, the task fallback,
the outcome of every return value and exception, the sync and into_future
bridges, hooks and the logging bridge.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import msgspec
import pydantic
import pytest

from spikard import App, Header, HTTPException, Query, Request, Response, _runtime
from spikard._runtime import HookError, NativeLogHandler, Runtime


class FakeNative:
    def __init__(self, enabled_up_to: int = 3) -> None:
        self.enabled_up_to = enabled_up_to
        self.records: list[tuple[int, str, str]] = []
        self.enabled_calls: list[tuple[int, str]] = []

    def log(self, level: int, target: str, message: str) -> None:
        self.records.append((level, target, message))

    def log_enabled(self, level: int, target: str) -> bool:
        self.enabled_calls.append((level, target))
        return level <= self.enabled_up_to


class FakeResponder:
    def __init__(self, request_id: str = "req-1") -> None:
        self.request_id = request_id
        self.answers: list[tuple[Any, ...]] = []
        self.thread: str | None = None
        self.event = threading.Event()

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._once(("response", status, list(headers), bytes(body)))

    def respond_error(self, status: int, detail: str, headers: list[tuple[str, str]]) -> None:
        self._once(("problem", status, detail, list(headers)))

    def _once(self, answer: tuple[Any, ...]) -> None:
        if self.answers:
            raise RuntimeError("this request was already answered")
        assert isinstance(answer[1], int)
        self.answers.append(answer)
        self.thread = threading.current_thread().name
        self.event.set()

    @property
    def answer(self) -> tuple[Any, ...]:
        assert len(self.answers) == 1, self.answers
        return self.answers[0]

    def json(self) -> Any:
        kind, status, headers, body = self.answer
        assert kind == "response"
        assert ("content-type", "application/json") in headers
        return json.loads(body)


class Item(msgspec.Struct):
    name: str
    price: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


class User(pydantic.BaseModel):
    name: str


class PublicUser(msgspec.Struct):
    name: str


request_tag: contextvars.ContextVar[str] = contextvars.ContextVar("request_tag", default="unset")


def make_app() -> App:
    app = App()

    @app.get("/now")
    async def now() -> dict[str, str]:
        return {"how": "now"}

    @app.get("/sleep0")
    async def sleep0() -> dict[str, str]:
        await asyncio.sleep(0)
        return {"how": "sleep0"}

    @app.get("/sleep")
    async def sleep(seconds: float = 0.05) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/raise-before")
    async def raise_before() -> None:
        raise HTTPException(418, "before", headers={"x-why": "teapot"})

    @app.get("/raise-after")
    async def raise_after() -> None:
        await asyncio.sleep(0.001)
        raise HTTPException(409, "after")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret 4711")

    @app.get("/crash-after")
    async def crash_after() -> None:
        await asyncio.sleep(0)
        raise ValueError("secret 4712")

    @app.get("/cancelled")
    async def cancelled() -> None:
        await asyncio.sleep(0)
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(10)

    @app.get("/catch-thrown")
    async def catch_thrown() -> dict[str, str]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        loop.call_soon(future.set_exception, KeyError("thrown-in"))
        try:
            await future
        except KeyError as exc:
            return {"caught": str(exc)}
        return {"caught": "nothing"}

    @app.get("/ctx/set")
    async def ctx_set(tag: str) -> dict[str, str]:
        request_tag.set(tag)
        return {"tag": request_tag.get()}

    @app.get("/ctx/set-sleep")
    async def ctx_set_sleep(tag: str) -> dict[str, str]:
        request_tag.set(tag)
        await asyncio.sleep(0.001)
        return {"tag": request_tag.get()}

    @app.get("/ctx/get")
    async def ctx_get() -> dict[str, str]:
        return {"tag": request_tag.get()}

    @app.get("/sync/{n}")
    def sync(n: int, q: str | None = Query(None), x_token: str = Header("none")) -> dict[str, Any]:
        return {"n": n, "q": q, "token": x_token, "thread": threading.current_thread().name}

    @app.get("/sync-crash")
    def sync_crash() -> None:
        raise KeyError("sync secret")

    @app.post("/echo", status_code=201)
    async def echo(item: Item) -> Item:
        return item

    @app.get("/request")
    async def with_request(request: Request) -> dict[str, Any]:
        return {"id": request.request_id, "h": request.headers.get("x-a")}

    @app.get("/model", response_model=PublicUser)
    async def model() -> dict[str, str]:
        return {"name": "ann", "password": "secret"}

    return app


PARAMS = json.dumps({"path": {}, "query": {}, "headers": {}, "cookies": {}})


def q(**query: Any) -> str:
    return json.dumps({"path": {}, "query": query, "headers": {}, "cookies": {}})


@pytest.fixture
def native() -> FakeNative:
    return FakeNative()


@pytest.fixture(params=["default", "manual"])
def rt(request: pytest.FixtureRequest, native: FakeNative) -> Iterator[Runtime]:
    runtime = Runtime(make_app(), native)
    if request.param == "manual":
        runtime._start = runtime._start_manual  # the Python 3.11 path, on every version
    yield runtime
    logging.getLogger().removeHandler(runtime.log_handler)


def handler_id(rt: Runtime, path: str, method: str = "GET") -> int:
    for method_, path_, hid, _schema, _is_async, _wants in rt.routes():
        if path_ == path and method_ == method:
            return hid
    raise KeyError(path)


def run(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def settle(responder: FakeResponder, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not responder.answers:
        assert asyncio.get_running_loop().time() < deadline, "no answer"
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.01)  # a second answer would show up here


# -- construction ----------------------------------------------------------------------


def test_runtime_needs_an_app(native: FakeNative) -> None:
    with pytest.raises(TypeError, match=r"expected a spikard\.App"):
        Runtime(object(), native)  # type: ignore[arg-type]


def test_routes(rt: Runtime) -> None:
    routes = rt.routes()
    assert all(isinstance(r, tuple) and len(r) == 6 for r in routes)
    by_path = {r[1]: r for r in routes}
    method, path, hid, schema_json, is_async, wants_headers = by_path["/sync/{n}"]
    assert (method, hid, is_async, wants_headers) == ("GET", routes.index(by_path["/sync/{n}"]), False, False)
    schema = json.loads(schema_json)
    assert schema["path"]["required"] == ["n"]
    assert schema["headers"]["properties"]["x-token"]["default"] == "none"
    assert by_path["/now"][3:] == ("{}", True, False)
    assert by_path["/request"][5] is True
    assert [r[2] for r in routes] == list(range(len(routes)))


# -- dispatch: eager start -------------------------------------------------------------


def test_never_awaiting_handler_answers_inside_dispatch(rt: Runtime) -> None:
    async def main() -> None:
        responder = FakeResponder()
        created: list[Any] = []
        loop = asyncio.get_running_loop()
        original = loop.create_task

        def spy(coro: Any, **kw: Any) -> Any:
            created.append(coro)
            return original(coro, **kw)

        loop.create_task = spy  # type: ignore[method-assign]
        tasks_before = len(asyncio.all_tasks())
        rt.dispatch(handler_id(rt, "/now"), PARAMS, b"", None, responder)
        # Answered before dispatch returned: no task, no loop round trip.
        assert responder.answer[:2] == ("response", 200)
        assert responder.json() == {"how": "now"}
        assert created == []
        assert len(asyncio.all_tasks()) == tasks_before

    run(main())


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/sleep0", {}, {"how": "sleep0"}),
        ("/sleep", {"seconds": 0.05}, {"slept": 0.05}),
        ("/catch-thrown", {}, {"caught": "'thrown-in'"}),
    ],
)
def test_suspending_handler_continues_as_a_task(rt: Runtime, path: str, query: dict[str, Any], expected: Any) -> None:
    async def main() -> None:
        responder = FakeResponder()
        rt.dispatch(handler_id(rt, path), q(**query), b"", None, responder)
        assert responder.answers == []
        await settle(responder)
        assert responder.json() == expected
        assert not rt._tasks  # the reference is dropped once done

    run(main())


def test_many_concurrent_sleeps_overlap(rt: Runtime) -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        responders = [FakeResponder(f"r{i}") for i in range(200)]
        start = loop.time()
        for responder in responders:
            rt.dispatch(handler_id(rt, "/sleep"), q(seconds=0.05), b"", None, responder)
        await asyncio.gather(*(settle(r, 5) for r in responders))
        assert all(r.json() == {"slept": 0.05} for r in responders)
        return loop.time() - start

    assert run(main()) < 1.0  # 200 x 0.05 s one after another would be 10 s


def test_raise_before_and_after_await(rt: Runtime) -> None:
    async def main() -> None:
        before = FakeResponder()
        rt.dispatch(handler_id(rt, "/raise-before"), PARAMS, b"", None, before)
        assert before.answer == ("problem", 418, "before", [("x-why", "teapot")])
        after = FakeResponder()
        rt.dispatch(handler_id(rt, "/raise-after"), PARAMS, b"", None, after)
        assert after.answers == []
        await settle(after)
        assert after.answer == ("problem", 409, "after", [])

    run(main())


def test_crashes_are_500_and_logged_with_traceback(rt: Runtime, native: FakeNative) -> None:
    async def main() -> None:
        for path, secret in (("/crash", "secret 4711"), ("/crash-after", "secret 4712")):
            responder = FakeResponder(f"rid-{path}")
            rt.dispatch(handler_id(rt, path), PARAMS, b"", None, responder)
            await settle(responder)
            assert responder.answer == ("problem", 500, "Internal Server Error", [])
            errors = [m for level, target, m in native.records if level == 1 and target == "spikard"]
            assert any(
                secret in m and "Traceback (most recent call last)" in m and f"rid-{path}" in m for m in errors
            ), errors

    run(main())


def test_cancelled_task_answers_503(rt: Runtime) -> None:
    async def main() -> None:
        responder = FakeResponder()
        rt.dispatch(handler_id(rt, "/cancelled"), PARAMS, b"", None, responder)
        await settle(responder)
        assert responder.answer == ("problem", 503, "the request was cancelled", [])

    run(main())


def test_task_cancelled_from_outside_answers_503(rt: Runtime) -> None:
    async def main() -> None:
        responder = FakeResponder("r-cancel")
        rt.dispatch(handler_id(rt, "/sleep"), q(seconds=5), b"", None, responder)
        assert list(rt._tasks) == ["r-cancel"]
        rt.cancel(["r-cancel", "not-running"])  # what the host's cancel becomes
        await settle(responder)
        assert responder.answer == ("problem", 503, "the request was cancelled", [])
        assert not rt._tasks

    run(main())


def test_context_variables_do_not_leak_between_requests(rt: Runtime) -> None:
    async def main() -> None:
        for path in ("/ctx/set", "/ctx/set-sleep"):
            setter = FakeResponder()
            rt.dispatch(handler_id(rt, path), q(tag="mine"), b"", None, setter)
            await settle(setter)
            assert setter.json() == {"tag": "mine"}
            getter = FakeResponder()
            rt.dispatch(handler_id(rt, "/ctx/get"), PARAMS, b"", None, getter)
            assert getter.json() == {"tag": "unset"}
        assert request_tag.get() == "unset"

    run(main())


def test_bad_handler_id_is_500(rt: Runtime) -> None:
    async def main() -> None:
        responder = FakeResponder()
        rt.dispatch(10_000, PARAMS, b"", None, responder)
        assert responder.answer[:2] == ("problem", 500)

    run(main())


def test_dispatch_body_and_status(rt: Runtime) -> None:
    async def main() -> None:
        responder = FakeResponder()
        rt.dispatch(handler_id(rt, "/echo", "POST"), PARAMS, b'{"name": "pen", "price": 2}', None, responder)
        kind, status, headers, body = responder.answer
        assert (kind, status) == ("response", 201)
        assert json.loads(body) == {"name": "pen", "price": 2.0}

    run(main())


def test_request_object_gets_headers_and_id(rt: Runtime) -> None:
    async def main() -> None:
        responder = FakeResponder("abc-123")
        rt.dispatch(handler_id(rt, "/request"), PARAMS, b"", [("x-a", "1")], responder)
        assert responder.json() == {"id": "abc-123", "h": "1"}

    run(main())


def test_response_model_filters(rt: Runtime) -> None:
    async def main() -> None:
        responder = FakeResponder()
        rt.dispatch(handler_id(rt, "/model"), PARAMS, b"", None, responder)
        assert responder.json() == {"name": "ann"}

    run(main())


def test_responder_refusal_is_logged_not_raised(rt: Runtime, native: FakeNative) -> None:
    class Refusing(FakeResponder):
        def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            raise ValueError("invalid header")

    async def main() -> None:
        responder = Refusing()
        rt.dispatch(handler_id(rt, "/now"), PARAMS, b"", None, responder)  # must not raise
        assert responder.answer[:2] == ("problem", 500)
        assert any("refused" in m for _, _, m in native.records)

    run(main())


# -- call_sync -------------------------------------------------------------------------------


def test_call_sync_on_worker_threads(rt: Runtime) -> None:
    hid = handler_id(rt, "/sync/{n}")
    responders = [FakeResponder(f"s{i}") for i in range(8)]
    params = json.dumps({"path": {"n": 5}, "query": {"q": "x"}, "headers": {"x-token": "t"}, "cookies": {}})
    threads = [
        threading.Thread(target=rt.call_sync, args=(hid, params, b"", None, r), name=f"py-worker-{i}")
        for i, r in enumerate(responders)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    for i, responder in enumerate(responders):
        body = responder.json()
        assert body == {"n": 5, "q": "x", "token": "t", "thread": f"py-worker-{i}"}


def test_call_sync_crash(rt: Runtime, native: FakeNative) -> None:
    responder = FakeResponder("sync-rid")
    rt.call_sync(handler_id(rt, "/sync-crash"), PARAMS, b"", None, responder)
    assert responder.answer == ("problem", 500, "Internal Server Error", [])
    assert any("sync secret" in m and "sync-rid" in m for _, _, m in native.records)


# -- into_future bridge --------------------------------------------------------------------------


def test_coroutine_bridge_outcomes(rt: Runtime) -> None:
    async def main() -> None:
        outcome = await rt.coroutine(handler_id(rt, "/sleep"), q(seconds=0.01), b"", None)
        assert outcome[:3] == (0, 200, [("content-type", "application/json")])
        assert json.loads(outcome[3]) == {"slept": 0.01}
        assert await rt.coroutine(handler_id(rt, "/raise-after"), PARAMS, b"", None) == (1, 409, [], "after")
        assert await rt.coroutine(handler_id(rt, "/crash-after"), PARAMS, b"", None, "rid") == (
            1,
            500,
            [],
            "Internal Server Error",
        )
        assert await rt.coroutine(handler_id(rt, "/cancelled"), PARAMS, b"", None) == (
            1,
            503,
            [],
            "the request was cancelled",
        )
        assert (await rt.coroutine(99999, PARAMS, b"", None))[:2] == (1, 500)
        outcome = await rt.coroutine(handler_id(rt, "/request"), PARAMS, b"", [("x-a", "v")], "the-id")
        assert json.loads(outcome[3]) == {"id": "the-id", "h": "v"}

    run(main())


# -- the principal (request.auth) and route timeouts, on every entry point ------------------


def test_auth_reaches_handlers_through_every_entry_point(native: FakeNative) -> None:
    app = App()

    @app.get("/who", timeout=2.5)
    async def who(request: Request) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"auth": request.auth}

    @app.get("/who-sync")
    def who_sync(n: int, request: Request) -> dict[str, Any]:
        return {"auth": request.auth, "n": n}

    runtime = Runtime(app, native)
    try:
        principal = {"scheme": "jwt", "claims": {"sub": "s", "exp": 2000000000, "nested": {"a": [1, 2]}}}
        # A member a newer host may add ("tenant") is ignored.
        params = json.dumps(
            {"path": {}, "query": {"n": 4}, "headers": {}, "cookies": {}, "auth": principal, "tenant": "t"}
        )
        routes = {path: json.loads(schema) for _m, path, _id, schema, _a, _w in runtime.routes()}
        assert routes == {"/who": {"request_timeout_ms": 2500}, "/who-sync": {"query": routes["/who-sync"]["query"]}}

        async def main() -> None:
            responder = FakeResponder()
            runtime.dispatch(0, params, b"", None, responder)
            await settle(responder)
            assert responder.json() == {"auth": principal}
            outcome = await runtime.coroutine(0, params, b"", None, "rid")
            assert json.loads(outcome[3]) == {"auth": principal}
            outcome = await runtime.coroutine(0, PARAMS, b"", None, "rid2")
            assert json.loads(outcome[3]) == {"auth": None}

        run(main())
        responder = FakeResponder()
        runtime.call_sync(1, params, b"", None, responder)
        assert responder.json() == {"auth": principal, "n": 4}
    finally:
        logging.getLogger().removeHandler(runtime.log_handler)


# -- outcomes of return values ------------------------------------------------------------------------


def outcome(result: Any, status: int = 200) -> Any:
    app = App()
    app.get("/", status_code=status)(lambda: result)
    return _runtime.outcome_of(app.routes[0].plan, result)


JSON = [("content-type", "application/json")]


def test_outcome_of_return_values() -> None:
    assert outcome({"a": 1}) == (0, 200, JSON, b'{"a":1}')
    assert outcome([1, 2], 201) == (0, 201, JSON, b"[1,2]")
    assert outcome(Item("p", 1.0)) == (0, 200, JSON, b'{"name":"p","price":1.0}')
    assert outcome(Point(1, 2)) == (0, 200, JSON, b'{"x":1,"y":2}')
    assert outcome(User(name="u")) == (0, 200, JSON, b'{"name":"u"}')
    assert outcome([User(name="u")]) == (0, 200, JSON, b'[{"name":"u"}]')
    assert outcome("héllo") == (0, 200, [("content-type", "text/plain; charset=utf-8")], "héllo".encode())
    assert outcome(b"\x00") == (0, 200, [("content-type", "application/octet-stream")], b"\x00")
    assert outcome(None, 204) == (0, 204, [], b"")


def test_outcome_of_responses() -> None:
    assert outcome(Response({"ok": True}, 202, {"x-a": "1"})) == (
        0,
        202,
        [("content-type", "application/json"), ("x-a", "1")],
        b'{"ok":true}',
    )
    assert outcome(Response("<p>", media_type="text/html")) == (
        0,
        200,
        [("content-type", "text/html; charset=utf-8")],
        b"<p>",
    )
    assert outcome(Response(b"x", headers=[("Content-Type", "image/png")])) == (
        0,
        200,
        [("Content-Type", "image/png")],
        b"x",
    )
    assert outcome(Response(status_code=304, headers={"etag": "e"})) == (0, 304, [("etag", "e")], b"")
    assert outcome(Response(User(name="p"))) == (0, 200, JSON, b'{"name":"p"}')


def test_failure_of_exceptions(native: FakeNative) -> None:
    f = _runtime.failure_of
    assert f(HTTPException(404), None) == (1, 404, [], "Not Found")
    kind, status, headers, body = f(HTTPException(400, {"a": 1}), None, "r-1")  # structured: a JSON value
    assert (kind, status, headers) == (0, 400, [("content-type", "application/problem+json")])
    assert json.loads(body) == {
        "type": "https://spikard.dev/errors/bad-request",
        "title": "Bad Request",
        "status": 400,
        "detail": {"a": 1},
        "request_id": "r-1",
    }
    assert f(HTTPException(401, "no", {"www-authenticate": "Bearer"}), None) == (
        1,
        401,
        [("www-authenticate", "Bearer")],
        "no",
    )
    kind, status, headers, body = f(HTTPException(302, "moved", {"location": "/x"}), None)
    assert (kind, status) == (0, 302) and ("location", "/x") in headers
    assert f(asyncio.CancelledError(), None) == (1, 503, [], "the request was cancelled")
    assert f(KeyError("k"), None) == (1, 500, [], "Internal Server Error")


def test_unencodable_result_is_500(native: FakeNative) -> None:
    app = App()
    app.get("/")(lambda: object())
    assert _runtime.safe_outcome(app.routes[0].plan, object(), "r") == (1, 500, [], "Internal Server Error")


# -- hooks ------------------------------------------------------------------------------------------------


def test_hooks(native: FakeNative) -> None:
    events: list[str] = []

    async def a() -> None:
        await asyncio.sleep(0)
        events.append("async")

    app = App(on_startup=[lambda: events.append("sync")])
    app.on_startup(a)
    rt = Runtime(app, native)
    try:
        assert rt.shutdown() is None
        startup = rt.startup()
        assert startup is not None
        run(startup)
        assert events == ["sync", "async"]

        @app.on_shutdown
        def boom() -> None:
            raise OSError("disk full")

        with pytest.raises(HookError, match=r"on_shutdown hook .*boom.*OSError: disk full"):
            run(rt.shutdown())
    finally:
        logging.getLogger().removeHandler(rt.log_handler)


# -- logging ------------------------------------------------------------------------------------------------


def test_logging_bridge(native: FakeNative) -> None:
    Runtime(App(), native)
    try:
        root = logging.getLogger()
        assert root.level == logging.INFO  # the lowest level FakeNative keeps (3 = INFO)
        assert sum(isinstance(h, NativeLogHandler) for h in root.handlers) == 1
        Runtime(App(), native)  # a second runtime replaces, not duplicates, the handler
        assert sum(isinstance(h, NativeLogHandler) for h in root.handlers) == 1
        native.records.clear()
        log = logging.getLogger("app.db")
        log.warning("w %s", 1)
        log.info("i")
        log.debug("d")  # below the root level
        log.setLevel(logging.DEBUG)
        log.debug("d2")  # reaches the handler; the host says no to level 4
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed")
        assert native.records[:2] == [(2, "app.db", "w 1"), (3, "app.db", "i")]
        assert native.records[2][:2] == (1, "app.db")
        assert native.records[2][2].startswith("failed\nTraceback (most recent call last)")
        assert "ValueError: bad" in native.records[2][2]
        assert len(native.records) == 3
        calls = len(native.enabled_calls)
        log.warning("again")
        assert len(native.enabled_calls) == calls  # cached per (target, level)
    finally:
        for handler in list(logging.getLogger().handlers):
            if isinstance(handler, NativeLogHandler):
                logging.getLogger().removeHandler(handler)
        logging.getLogger("app.db").setLevel(logging.NOTSET)


def test_root_level_follows_host(native: FakeNative) -> None:
    for up_to, level in (
        (5, logging.DEBUG),
        (4, logging.DEBUG),
        (2, logging.WARNING),
        (1, logging.ERROR),
        (0, logging.CRITICAL),
    ):
        rt = Runtime(App(), FakeNative(up_to))
        try:
            assert logging.getLogger().level == level
        finally:
            logging.getLogger().removeHandler(rt.log_handler)


# -- event loops ------------------------------------------------------------------------------------------------


def test_new_event_loop(native: FakeNative, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPIKARD_LOOP", raising=False)
    rt = Runtime(App(), native)
    try:
        loop = rt.new_event_loop()
        try:
            try:
                import uvloop  # noqa: F401

                assert type(loop).__module__.startswith("uvloop")
            except ImportError:
                assert isinstance(loop, asyncio.AbstractEventLoop)
        finally:
            loop.close()
        monkeypatch.setenv("SPIKARD_LOOP", "asyncio")
        loop = rt.new_event_loop()
        try:
            assert type(loop).__module__.startswith("asyncio")
            assert rt.loop is loop
        finally:
            loop.close()
    finally:
        logging.getLogger().removeHandler(rt.log_handler)


def test_dispatch_on_uvloop(native: FakeNative) -> None:
    uvloop = pytest.importorskip("uvloop")
    rt = Runtime(make_app(), native)
    rt._start = rt._start_manual
    loop = uvloop.new_event_loop()
    rt._loop = loop

    async def main() -> None:
        now, later = FakeResponder(), FakeResponder()
        rt.dispatch(handler_id(rt, "/now"), PARAMS, b"", None, now)
        assert now.json() == {"how": "now"}
        rt.dispatch(handler_id(rt, "/sleep"), q(seconds=0.01), b"", None, later)
        await settle(later)
        assert later.json() == {"slept": 0.01}

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        logging.getLogger().removeHandler(rt.log_handler)


def test_dispatch_from_another_thread_via_call_soon_threadsafe(native: FakeNative) -> None:
    """How the plugin drives it: a loop running forever on its own thread."""
    rt = Runtime(make_app(), native)
    loop = rt.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="spikard-loop", daemon=True)
    thread.start()
    try:
        responders = [FakeResponder(str(i)) for i in range(50)]
        for i, responder in enumerate(responders):
            path = "/now" if i % 2 else "/sleep0"
            loop.call_soon_threadsafe(rt.dispatch, handler_id(rt, path), PARAMS, b"", None, responder)
        for responder in responders:
            assert responder.event.wait(5)
            assert responder.thread == "spikard-loop"
            assert responder.answer[1] == 200
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        logging.getLogger().removeHandler(rt.log_handler)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks exist from Python 3.12 on")
def test_default_path_is_an_eager_task_on_312(native: FakeNative) -> None:
    rt = Runtime(make_app(), native)
    try:
        assert rt._start == rt._start_eager_task
    finally:
        logging.getLogger().removeHandler(rt.log_handler)


# -- faults: cancellation, shutdown, stalls, Request.json() ------------------------------------------------


def test_cancel_before_the_coroutine_starts_on_into_future(native: FakeNative) -> None:
    rt = Runtime(make_app(), native, bridge="into_future")
    try:
        rt.cancel(["r-early"])  # the host's cancel may overtake the task's start

        async def main() -> None:
            cancelled = await rt.coroutine(handler_id(rt, "/sleep"), q(seconds=5), b"", None, "r-early")
            assert cancelled == (1, 503, [], "the request was cancelled")
            assert not rt._early_cancels
            normal = await rt.coroutine(handler_id(rt, "/sleep"), q(seconds=0.01), b"", None, "r-other")
            assert normal[1] == 200
            assert not rt._tasks

        run(main())
    finally:
        logging.getLogger().removeHandler(rt.log_handler)


def test_begin_stop_cancels_tasks_runs_hooks_then_says_done(native: FakeNative) -> None:
    events: list[str] = []
    app = make_app()

    @app.on_shutdown
    async def goodbye() -> None:
        await asyncio.sleep(0)
        events.append("hook")

    rt = Runtime(app, native)

    async def main() -> None:
        responder = FakeResponder("r-long")
        rt.dispatch(handler_id(rt, "/sleep"), q(seconds=30), b"", None, responder)
        done = asyncio.Event()
        rt.begin_stop(2.0, lambda: (events.append("done"), done.set()))
        await asyncio.wait_for(done.wait(), 2)
        assert responder.answer == ("problem", 503, "the request was cancelled", [])
        assert events == ["hook", "done"]

    try:
        run(main())
    finally:
        logging.getLogger().removeHandler(rt.log_handler)


def test_begin_stop_abandons_hooks_that_outlive_the_budget(native: FakeNative) -> None:
    app = App()

    @app.on_shutdown
    async def slow() -> None:
        await asyncio.sleep(30)

    rt = Runtime(app, native)

    async def main() -> None:
        done = asyncio.Event()
        started = asyncio.get_running_loop().time()
        rt.begin_stop(0.1, done.set)
        await asyncio.wait_for(done.wait(), 2)
        assert asyncio.get_running_loop().time() - started < 1.0

    try:
        run(main())
        assert any("on_shutdown hooks did not finish within" in m for _, _, m in native.records)
    finally:
        logging.getLogger().removeHandler(rt.log_handler)


def test_describe_loop_names_the_blocking_handler(native: FakeNative) -> None:
    app = App()
    blocking = threading.Event()
    release = threading.Event()

    @app.get("/block")
    async def block() -> None:
        blocking.set()
        release.wait(5)  # blocks the loop thread, as time.sleep would

    rt = Runtime(app, native)
    loop = rt.new_event_loop()
    thread = threading.Thread(target=lambda: (rt.bind_loop_thread(), loop.run_forever()), daemon=True)
    thread.start()
    try:
        loop.call_soon_threadsafe(rt.dispatch, 0, PARAMS, b"", None, FakeResponder())
        assert blocking.wait(5)
        described = rt.describe_loop()
        assert described.startswith(
            "handler test_runtime:test_describe_loop_names_the_blocking_handler.<locals>.block (at "
        )
        assert " in block; now at " in described and "threading.py" in described
    finally:
        release.set()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        logging.getLogger().removeHandler(rt.log_handler)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"a": [1, 2', "the request body is not valid JSON: "),
        (b"[" * 33 + b"]" * 33, "the request body nests arrays and objects deeper than the limit of 32 levels"),
    ],
)
def test_request_json_errors_are_400s(native: FakeNative, body: bytes, detail: str) -> None:
    rt = Runtime(App(), native)  # configures the limit (32) without the native check
    try:
        with pytest.raises(HTTPException) as caught:
            Request(None, "{}", body).json()
        assert caught.value.status_code == 400
        assert str(caught.value.detail).startswith(detail)
        assert isinstance(caught.value, ValueError)
        assert Request(None, "{}", b"[" * 32 + b"]" * 32).json() is not None
    finally:
        logging.getLogger().removeHandler(rt.log_handler)
