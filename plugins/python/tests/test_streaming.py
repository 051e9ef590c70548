"""Streamed responses in the runtime, with a fake host stream (no plugin):
the pumps, backpressure, cancellation, failures and the SSE encoder.

The fake stream keeps the host's contract: ``write`` takes a chunk while
fewer than ``limit`` bytes are pending, says FULL otherwise and CLOSED once
the request is over; ``on_ready`` callbacks run once, on the loop or on a
"worker" thread, when the reader drains or the stream closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from spikard import App, EventSourceResponse, Response, ServerSentEvent, StreamingResponse
from spikard._runtime import Runtime
from spikard._streaming import PING, Source, encode_chunk
from spikard.sse import encode_event

TAKEN, FULL, CLOSED = 0, 1, 2


class FakeNative:
    def __init__(self) -> None:
        self.records: list[tuple[int, str, str]] = []

    def log(self, level: int, target: str, message: str) -> None:
        self.records.append((level, target, message))

    def log_enabled(self, level: int, target: str) -> bool:
        return level <= 3

    def errors(self) -> list[str]:
        return [m for level, _, m in self.records if level == 1]


class FakeStream:
    """The host's side of one stream."""

    def __init__(self, request_id: str, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.request_id = request_id
        self.loop = loop
        self.limit = limit
        self.pending = 0
        self.chunks: list[bytes] = []
        self.ended = threading.Event()
        self.gone = False
        self.cancelled = False
        self.threads: set[str] = set()
        self._ready: tuple[Callable[[], Any], bool] | None = None
        self._cancel: Callable[[], Any] | None = None
        self._lock = threading.Lock()

    @property
    def closed(self) -> bool:
        return self.ended.is_set() or self.gone or self.cancelled

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def write(self, data: bytes) -> int:
        assert type(data) is bytes
        assert not self.ended.is_set(), "write after end"
        self.threads.add(threading.current_thread().name)
        with self._lock:
            if self.gone or self.cancelled:
                return CLOSED
            if self.pending >= self.limit:
                return FULL
            self.chunks.append(data)
            self.pending += len(data)
            return TAKEN

    def on_ready(self, callback: Callable[[], Any], on_loop: bool) -> None:
        with self._lock:
            assert self._ready is None, "one ready callback at a time"
            self._ready = (callback, on_loop)
            now = self.pending < self.limit // 2 or self.gone or self.cancelled
        if now:
            self._fire()

    def submit(self, callback: Callable[[], Any]) -> None:
        self._run(callback, False)

    def on_cancel(self, callback: Callable[[], Any]) -> None:
        self._cancel = callback
        if self.cancelled:
            self._run(callback, True)

    def end(self) -> None:
        self.ended.set()

    # -- what the host and the client do -----------------------------------

    def read(self) -> None:
        """The client reads everything pending."""
        with self._lock:
            self.pending = 0
        self._fire()

    def disconnect(self) -> None:
        self.gone = True
        self.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        callback, self._cancel = self._cancel, None
        if callback is not None:
            self._run(callback, True)
        self._fire()

    def _fire(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None:
            self._run(*ready)

    def _run(self, callback: Callable[[], Any], on_loop: bool) -> None:
        if on_loop:
            self.loop.call_soon_threadsafe(callback)
        else:
            threading.Thread(target=callback, name="fake-worker", daemon=True).start()


class StreamingResponder:
    def __init__(self, loop: asyncio.AbstractEventLoop, request_id: str = "r-1", limit: int = 64) -> None:
        self.request_id = request_id
        self.loop = loop
        self.limit = limit
        self.head: tuple[int, list[tuple[str, str]]] | None = None
        self.stream: FakeStream | None = None
        self.answers: list[tuple[Any, ...]] = []
        self.over = False
        self.started = threading.Event()

    def start_stream(self, status: int, headers: list[tuple[str, str]]) -> FakeStream | None:
        assert self.head is None and not self.answers
        if self.over:
            return None
        self.head = (status, list(headers))
        self.stream = FakeStream(self.request_id, self.loop, self.limit)
        self.started.set()
        return self.stream

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answers.append(("response", status, headers, body))
        self.started.set()

    def respond_error(self, status: int, detail: str, headers: list[tuple[str, str]]) -> None:
        self.answers.append(("problem", status, detail, headers))
        self.started.set()

    def wait_stream(self) -> FakeStream:
        assert self.started.wait(5), "no head"
        assert self.stream is not None, self.answers
        return self.stream


# -- the app ---------------------------------------------------------------------------

state: dict[str, Any] = {}


def make_app() -> App:
    app = App()

    @app.get("/agen")
    async def agen(n: int = 5) -> AsyncIterator[str]:
        state["produced"] = 0
        try:
            for i in range(n):
                state["produced"] = i + 1
                yield f"{i}\n"
                await asyncio.sleep(0)
        finally:
            state["agen_finally"] = True

    @app.get("/gen", media_type="application/x-ndjson")
    def gen(n: int = 5) -> Iterator[bytes]:
        state["produced"] = 0
        state["gen_threads"] = set()
        try:
            for i in range(n):
                state["produced"] = i + 1
                state["gen_threads"].add(threading.current_thread().name)
                yield json.dumps({"i": i}).encode() + b"\n"
        finally:
            state["gen_finally"] = True

    @app.get("/sync-returns-gen")
    def sync_returns_gen() -> Iterator[str]:
        return (f"{i}," for i in range(3))

    @app.get("/response")
    async def response() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes | str]:
            yield b"bytes,"
            yield "str,"
            yield bytearray(b"bytearray")

        return StreamingResponse(parts(), status_code=201, headers={"x-a": "1"}, media_type="text/csv")

    @app.get("/response-sync")
    async def response_sync() -> StreamingResponse:
        return StreamingResponse(iter(["a", "b", "c"]), media_type="text/plain")

    @app.get("/list")
    def list_content() -> StreamingResponse:
        return StreamingResponse(["x", "y"], headers=[("content-type", "application/octet-stream")])

    @app.get("/bad-item")
    async def bad_item() -> AsyncIterator[Any]:
        try:
            yield "ok"
            yield 42
            yield "never"
        finally:
            state["bad_finally"] = True

    @app.get("/raises")
    def raises() -> Iterator[str]:
        try:
            yield "first"
            raise RuntimeError("midway 4713")
        finally:
            state["raises_finally"] = True

    @app.get("/async-raises")
    async def async_raises() -> AsyncIterator[str]:
        yield "first"
        raise ValueError("midway 4714")

    @app.get("/idle")
    async def idle() -> AsyncIterator[str]:
        try:
            yield "hello"
            await asyncio.sleep(3600)
            yield "never"
        finally:
            state["idle_finally"] = True

    @app.get("/endless-sync")
    def endless_sync() -> Iterator[bytes]:
        try:
            while True:
                state["produced"] = state.get("produced", 0) + 1
                yield b"x" * 10
        finally:
            state["endless_finally"] = True

    @app.get("/sse")
    async def sse() -> EventSourceResponse:
        async def events() -> AsyncIterator[Any]:
            yield ServerSentEvent("one", event="e", id="1")
            yield {"n": 2}
            yield "three\nlines\nhere"
            gate = state["sse_gate"] = asyncio.Event()
            await gate.wait()
            yield ServerSentEvent(comment="late")

        return EventSourceResponse(events(), ping=0.05)

    @app.get("/sse-sync")
    def sse_sync() -> EventSourceResponse:
        def events() -> Iterator[Any]:
            yield "first"
            state["sse_sync_gate"].wait(5)
            yield "second"

        state["sse_sync_gate"] = threading.Event()
        return EventSourceResponse(events(), ping=0.05, headers={"cache-control": "no-store"})

    @app.get("/model", response_model=dict)
    async def model() -> AsyncIterator[str]:
        yield "not converted"

    return app


@pytest.fixture
def native() -> FakeNative:
    return FakeNative()


@pytest.fixture
def rt(native: FakeNative) -> Iterator[Runtime]:
    """A runtime whose loop runs forever on its own thread, as in the plugin."""
    state.clear()
    runtime = Runtime(make_app(), native)
    loop = runtime.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="spikard-loop", daemon=True)
    thread.start()
    loop.call_soon_threadsafe(runtime.bind_loop_thread)
    yield runtime
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
    logging.getLogger().removeHandler(runtime.log_handler)


def hid(rt: Runtime, path: str) -> int:
    for method, path_, handler_id, _schema, _is_async, _wants in rt.routes():
        if path_ == path and method == "GET":
            return handler_id
    raise KeyError(path)


def q(**query: Any) -> str:
    return json.dumps({"path": {}, "query": query, "headers": {}, "cookies": {}})


def serve(rt: Runtime, path: str, limit: int = 64, request_id: str = "r-1", **query: Any) -> StreamingResponder:
    """Sends a request the way the plugin would: async handlers on the loop,
    sync ones on a worker thread."""
    assert rt.loop is not None
    responder = StreamingResponder(rt.loop, request_id, limit)
    plan = rt.plans[hid(rt, path)]
    if plan.is_async:
        rt.loop.call_soon_threadsafe(rt.dispatch, hid(rt, path), q(**query), b"", None, responder)
    else:
        threading.Thread(
            target=rt.call_sync, args=(hid(rt, path), q(**query), b"", None, responder), name="py-worker"
        ).start()
    return responder


def read_all(stream: FakeStream, timeout: float = 5.0) -> bytes:
    """A client reading as fast as it can until the stream ends."""
    deadline = time.monotonic() + timeout
    while not stream.ended.wait(0.002):
        assert time.monotonic() < deadline, f"the stream did not end; got {stream.body!r}"
        stream.read()
    return stream.body


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


# -- plain streams ---------------------------------------------------------------------


def test_async_generator_streams_in_order_with_default_media_type(rt: Runtime) -> None:
    responder = serve(rt, "/agen", n=50)
    stream = responder.wait_stream()
    assert responder.head == (200, [("content-type", "text/plain; charset=utf-8")])
    assert read_all(stream) == "".join(f"{i}\n" for i in range(50)).encode()
    assert state["agen_finally"] is True
    assert stream.threads == {"spikard-loop"}
    wait_for(lambda: not rt._tasks)


def test_sync_generator_runs_on_workers_with_the_routes_media_type(rt: Runtime) -> None:
    responder = serve(rt, "/gen", n=200)
    stream = responder.wait_stream()
    assert responder.head == (200, [("content-type", "application/x-ndjson")])
    lines = read_all(stream).splitlines()
    assert [json.loads(line)["i"] for line in lines] == list(range(200))
    assert state["gen_finally"] is True
    assert "spikard-loop" not in state["gen_threads"]
    assert "spikard-loop" not in stream.threads


def test_sync_handler_returning_a_generator_expression(rt: Runtime) -> None:
    stream = serve(rt, "/sync-returns-gen").wait_stream()
    assert read_all(stream) == b"0,1,2,"


def test_streaming_response_head_and_chunk_types(rt: Runtime) -> None:
    responder = serve(rt, "/response")
    stream = responder.wait_stream()
    assert read_all(stream) == b"bytes,str,bytearray"
    assert responder.head == (201, [("content-type", "text/csv; charset=utf-8"), ("x-a", "1")])

    responder = serve(rt, "/response-sync", request_id="r-2")
    assert read_all(responder.wait_stream()) == b"abc"
    assert responder.head == (200, [("content-type", "text/plain; charset=utf-8")])

    responder = serve(rt, "/list", request_id="r-3")
    assert read_all(responder.wait_stream()) == b"xy"
    assert responder.head == (200, [("content-type", "application/octet-stream")])


def test_response_model_does_not_touch_a_generator(rt: Runtime) -> None:
    assert read_all(serve(rt, "/model").wait_stream()) == b"not converted"


def test_streaming_response_rejects_a_body_in_one_piece() -> None:
    for content in ("text", b"bytes", 42, None):
        with pytest.raises(TypeError, match="iterator or async iterator"):
            StreamingResponse(content)  # type: ignore[arg-type]
    assert isinstance(StreamingResponse([]), Response)


def test_encode_chunk() -> None:
    assert encode_chunk(b"a") == b"a"
    assert encode_chunk("wörld") == "wörld".encode()
    assert encode_chunk(memoryview(b"mv")) == b"mv"
    with pytest.raises(TypeError, match="bytes or str, not int"):
        encode_chunk(1)


# -- backpressure ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/agen", "/gen"])
def test_a_full_host_stops_the_producer(rt: Runtime, path: str) -> None:
    """With nobody reading, the producer is advanced only until the host is
    full (plus the one chunk it holds); reading lets it go on."""
    responder = serve(rt, path, limit=32, n=1000)
    stream = responder.wait_stream()
    time.sleep(0.2)
    produced = state["produced"]
    assert stream.pending >= stream.limit
    assert produced <= len(stream.chunks) + 1, (produced, len(stream.chunks))
    assert produced < 50
    body = read_all(stream, timeout=20)
    assert len(body.splitlines()) == 1000


def test_sync_steps_yield_the_worker_after_a_slice(rt: Runtime) -> None:
    """An endless producer with a fast reader never holds one worker for
    longer than a slice: it comes back through submit()."""
    responder = serve(rt, "/endless-sync", limit=1 << 30)
    stream = responder.wait_stream()
    wait_for(lambda: "fake-worker" in stream.threads)  # resubmitted after a slice
    stream.disconnect()
    assert stream.ended.wait(5)
    assert state["endless_finally"] is True


# -- the request ends ------------------------------------------------------------------


def test_disconnect_closes_a_sync_producer_waiting_for_the_host(rt: Runtime) -> None:
    responder = serve(rt, "/gen", limit=16, n=10_000)
    stream = responder.wait_stream()
    wait_for(lambda: stream.pending >= stream.limit)
    stream.disconnect()
    assert stream.ended.wait(5)
    assert state["gen_finally"] is True
    assert state["produced"] < 100


def test_cancel_closes_an_idle_async_producer(rt: Runtime) -> None:
    responder = serve(rt, "/idle")
    stream = responder.wait_stream()
    wait_for(lambda: stream.chunks == [b"hello"])
    stream.cancel()
    assert stream.ended.wait(5)
    wait_for(lambda: state.get("idle_finally") is True)
    wait_for(lambda: not rt._tasks)


def test_the_runtimes_cancel_reaches_a_stream_by_request_id(rt: Runtime) -> None:
    """The request-id path (a 1.0-style cancel) also reaches the pump."""
    responder = serve(rt, "/idle", request_id="r-idle")
    stream = responder.wait_stream()
    wait_for(lambda: "r-idle" in rt._tasks)
    assert rt.loop is not None
    rt.loop.call_soon_threadsafe(rt.cancel, ["r-idle"])
    assert stream.ended.wait(5)
    wait_for(lambda: state.get("idle_finally") is True)


def test_request_over_before_the_head_closes_the_producer(rt: Runtime) -> None:
    assert rt.loop is not None
    responder = StreamingResponder(rt.loop)
    responder.over = True
    rt.call_sync(hid(rt, "/gen"), q(), b"", None, responder)
    assert responder.stream is None and responder.answers == []
    # The generator never started; closing it runs nothing, and nothing leaks.
    assert "gen_finally" not in state


def test_refused_head_is_logged_and_answered(rt: Runtime, native: FakeNative) -> None:
    assert rt.loop is not None

    class Refusing(StreamingResponder):
        def start_stream(self, status: int, headers: list[tuple[str, str]]) -> FakeStream | None:
            raise RuntimeError("streaming is not supported by this host (ABI 1.0)")

    responder = Refusing(rt.loop)
    rt.call_sync(hid(rt, "/raises"), q(), b"", None, responder)
    assert responder.answers == [("problem", 500, "Internal Server Error", [])]
    assert any("could not start" in m and "ABI 1.0" in m for m in native.errors())


# -- failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "sent", "words", "finally_key"),
    [
        ("/bad-item", b"ok", "TypeError: a streamed chunk must be bytes or str, not int", "bad_finally"),
        ("/raises", b"first", "RuntimeError: midway 4713", "raises_finally"),
        ("/async-raises", b"first", "ValueError: midway 4714", None),
    ],
)
def test_a_failing_producer_ends_the_stream_and_is_logged(
    rt: Runtime, native: FakeNative, path: str, sent: bytes, words: str, finally_key: str | None
) -> None:
    responder = serve(rt, path)
    assert read_all(responder.wait_stream()) == sent
    wait_for(lambda: any(words in m for m in native.errors()))
    line = next(m for m in native.errors() if words in m)
    assert "request r-1" in line and f"GET {path}: handler" in line
    assert "after 1 chunk(s)" in line
    if finally_key:
        assert state[finally_key] is True


# -- the into_future bridge ------------------------------------------------------------


def test_into_future_outcome_then_begin_stream(native: FakeNative) -> None:
    state.clear()
    rt = Runtime(make_app(), native, bridge="into_future")
    loop = rt.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="spikard-loop", daemon=True)
    thread.start()
    try:
        future = asyncio.run_coroutine_threadsafe(rt.coroutine(hid(rt, "/agen"), q(n=3), b"", None, "r-f"), loop)
        kind, status, headers, source = future.result(5)
        assert (kind, status, headers) == (2, 200, [("content-type", "text/plain; charset=utf-8")])
        assert isinstance(source, Source) and source.is_async
        responder = StreamingResponder(loop, "r-f")
        rt.begin_stream(responder, status, headers, source)  # from the bridge's thread
        assert read_all(responder.wait_stream()) == b"0\n1\n2\n"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        logging.getLogger().removeHandler(rt.log_handler)


def test_async_generator_handlers_are_served_on_the_loop(rt: Runtime) -> None:
    routes = {r[1]: r for r in rt.routes()}
    assert routes["/agen"][4] is True  # is_async: the loop
    assert routes["/gen"][4] is False  # the pool


# -- Server-Sent Events ----------------------------------------------------------------


def test_sse_events_and_pings(rt: Runtime) -> None:
    responder = serve(rt, "/sse", limit=4096)
    stream = responder.wait_stream()
    assert responder.head == (
        200,
        [("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("x-accel-buffering", "no")],
    )
    first = b'id: 1\nevent: e\ndata: one\n\ndata: {"n":2}\n\ndata: three\ndata: lines\ndata: here\n\n'
    wait_for(lambda: stream.body.startswith(first))
    wait_for(lambda: stream.body.count(PING) >= 2)  # idle: keep-alives every 0.05 s
    stream.read()
    assert rt.loop is not None
    rt.loop.call_soon_threadsafe(state["sse_gate"].set)
    body = read_all(stream)
    assert body.endswith(b": late\n\n")
    assert body[len(first) :].replace(PING, b"") == b": late\n\n"


def test_sse_from_a_sync_iterator_pings_while_it_blocks(rt: Runtime) -> None:
    responder = serve(rt, "/sse-sync")
    stream = responder.wait_stream()
    assert responder.head is not None
    assert ("cache-control", "no-store") in responder.head[1]
    assert ("cache-control", "no-cache") not in responder.head[1]
    wait_for(lambda: stream.body.count(PING) >= 2)
    assert stream.body.startswith(b"data: first\n\n")
    state["sse_sync_gate"].set()
    body = read_all(stream)
    assert body.endswith(b"data: second\n\n")


def test_sse_encoder() -> None:
    assert encode_event("hi") == b"data: hi\n\n"
    assert encode_event("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode_event("") == b"data: \n\n"
    assert encode_event({"k": [1, "é"]}) == 'data: {"k":[1,"é"]}\n\n'.encode()
    assert encode_event([1, 2]) == b"data: [1,2]\n\n"
    event = ServerSentEvent(data="x\ny", event="update", id="7", retry=2500, comment="note\nmore")
    assert event.encode() == b": note\n: more\nid: 7\nevent: update\nretry: 2500\ndata: x\ndata: y\n\n"
    assert ServerSentEvent(comment="keep").encode() == b": keep\n\n"
    assert ServerSentEvent({"a": 1}).encode() == b'data: {"a":1}\n\n'
    assert ServerSentEvent(data="", event="e").encode() == b"event: e\ndata: \n\n"
    assert ServerSentEvent("x") == ServerSentEvent(data="x")
    with pytest.raises(TypeError, match="ServerSentEvent, dict, list or str, not int"):
        encode_event(3)
    with pytest.raises(TypeError, match="not bytes"):
        encode_event(b"raw")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event": "a\nb"},
        {"id": "1\r2"},
        {"id": "nul\0"},
        {"retry": -1},
        {"retry": 1.5},
        {"retry": True},
    ],
)
def test_sse_rejects_fields_that_would_break_the_format(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ServerSentEvent("x", **kwargs)


def test_event_source_response_options() -> None:
    response = EventSourceResponse(iter([]), ping=None)
    assert response.ping is None and response.ping_interval() is None
    assert EventSourceResponse(iter([]), ping=0).ping is None
    assert EventSourceResponse(iter([]), 2).ping == 2.0
    with pytest.raises(ValueError, match="ping"):
        EventSourceResponse(iter([]), ping=-1)
    response = EventSourceResponse(iter([]), headers={"Content-Type": "text/event-stream; charset=utf-8"})
    assert response.head() == [
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
        ("Content-Type", "text/event-stream; charset=utf-8"),
    ]
