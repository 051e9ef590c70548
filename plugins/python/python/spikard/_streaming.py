"""Streamed responses: :class:`StreamingResponse`, handlers that return
generators, and the pumps that move their chunks to the host.

The head (status and headers) is sent as soon as the handler returns; the
body follows chunk by chunk (chunked transfer encoding, no
``content-length``). The host buffers at most 64 KiB of a stream's body;
when that is full its ``write`` does not take the chunk and the pump waits
for the host's ready callback — no thread waits, nothing piles up in
Python, and the producer is not advanced until the chunk is taken:

- async iterators are advanced on the event loop by one task per stream,
  which waits on an ``asyncio`` future the plugin resolves (through the
  loop's mailbox) when the host is ready again;
- sync iterators are advanced on the sync worker pool, one *step* at a
  time: a step writes until the host is full (it then ends, and the host's
  ready callback queues the next step), the iterator ends, or it has run
  for :data:`SLICE` seconds (it then queues itself behind the work waiting
  for the pool). A slow client holds no worker.

When the request is over — the client left, the server is stopping, the
host cancelled it — writes say so (or the cancellation arrives) and the
producer is closed (``aclose()`` / ``close()``, so its ``finally`` blocks
run) without being advanced again. A producer that raises, or yields
something that is neither ``bytes`` nor ``str``, ends the stream and is
logged with the handler's name (the client already has the head).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
import types
from collections.abc import AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, Optional, Protocol

from ._responses import HeadersLike, Response

if TYPE_CHECKING:
    from ._background import AfterResponse
    from ._invoke import HandlerPlan

__all__ = ["SLICE", "Source", "Stream", "Streamer", "StreamingResponse", "encode_chunk"]

_log = logging.getLogger("spikard")

#: What ``Stream.write`` says: the chunk was taken, not taken (the host is
#: full: wait for the ready callback), or the request is over.
TAKEN: Final = 0
FULL: Final = 1
CLOSED: Final = 2

#: How long a sync step writes before it lets waiting work have the worker.
SLICE: Final = 0.01

#: The content type of a handler's generator unless its route declares one.
DEFAULT_MEDIA_TYPE: Final = "text/plain; charset=utf-8"

#: An SSE keep-alive: a comment line (clients ignore it).
PING: Final = b": ping\n\n"


class Stream(Protocol):
    """A started stream (``spikard._native.Stream``): the head is sent."""

    request_id: str

    @property
    def closed(self) -> bool: ...

    def write(self, data: bytes) -> int: ...

    def on_ready(self, callback: Callable[[], Any], on_loop: bool) -> None: ...

    def submit(self, callback: Callable[[], Any]) -> None: ...

    def on_cancel(self, callback: Callable[[], Any]) -> None: ...

    def end(self) -> None: ...


Encoder = Callable[[Any], bytes]


def encode_chunk(item: Any) -> bytes:
    """A chunk as bytes: ``bytes`` as is, ``str`` as UTF-8; a ``TypeError``
    for anything else."""
    if type(item) is bytes:
        return item
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    raise TypeError(f"a streamed chunk must be bytes or str, not {type(item).__name__}")


def _is_source(content: Any) -> bool:
    if isinstance(content, (str, bytes, bytearray, memoryview)):
        return False
    return isinstance(content, (AsyncIterable, Iterable))


class StreamingResponse(Response):
    """A response whose body is sent as it is produced.

    ``content`` is a sync iterator or iterable (a generator, a file object,
    a list) or an async iterator or iterable (an async generator) of
    ``bytes`` or ``str`` chunks (``str`` is sent as UTF-8). ``media_type``
    sets the ``content-type`` (``; charset=utf-8`` is added to ``text/*``);
    a ``content-type`` in ``headers`` wins. Sync iterators are advanced on
    the sync worker pool, async ones on the event loop; either way a chunk
    is produced only when the host has taken the previous one, and the
    producer is closed (its ``finally`` blocks run) when the client leaves.
    The request timeout covers the handler until it returns this; the body
    then streams for as long as it takes.
    """

    __slots__ = ()

    def __init__(
        self,
        content: Iterable[bytes | str] | AsyncIterable[bytes | str],
        status_code: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> None:
        if not _is_source(content):
            raise TypeError(
                f"StreamingResponse content must be an iterator or async iterator of bytes or str, "
                f"not {type(content).__name__}; use Response for a body in one piece"
            )
        super().__init__(content, status_code, headers, media_type, background)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, media_type={self.media_type!r})"

    # -- what the runtime asks of a streamed response ------------------------

    def head(self) -> list[tuple[str, str]]:
        """The headers sent with the status."""
        headers = self.headers.raw
        media_type = self.media_type
        if media_type is None or any(name.lower() == "content-type" for name, _ in headers):
            return list(headers)
        if media_type.startswith("text/") and "charset" not in media_type:
            media_type += "; charset=utf-8"
        return [("content-type", media_type), *headers]

    def encoder(self) -> Encoder:
        """How an item of the content becomes a chunk."""
        return encode_chunk

    def ping_interval(self) -> float | None:
        """Seconds of producer silence after which a keep-alive is written
        (``None``: never)."""
        return None

    def source(self, plan: HandlerPlan | None) -> Source:
        """The content as a :class:`Source` for the pumps."""
        return Source(self.content, self.encoder(), self.ping_interval(), plan)


class Source:
    """What a stream's body comes from: the iterator (sync or async), how an
    item becomes bytes, the keep-alive interval and the handler (for log
    lines), and the request's after-response work (uploads, background
    tasks, generator dependencies), run when the producer is closed."""

    __slots__ = ("after", "encode", "is_async", "iterator", "ping", "plan")

    def __init__(self, content: Any, encode: Encoder, ping: float | None, plan: HandlerPlan | None) -> None:
        iterator: Any
        if isinstance(content, (types.AsyncGeneratorType, types.GeneratorType)):
            iterator = content
        elif isinstance(content, AsyncIterable):
            iterator = content.__aiter__()
        else:
            iterator = iter(content)
        self.iterator: Any = iterator
        self.is_async = hasattr(iterator, "__anext__")
        self.encode = encode
        self.ping = ping
        self.plan = plan
        #: The request's :class:`~spikard._background.AfterResponse`: run
        #: when the stream ends.
        self.after: AfterResponse | None = None

    @classmethod
    def of_generator(cls, generator: Any, plan: HandlerPlan) -> Source:
        """A handler's generator or async generator, sent as it is."""
        return cls(generator, encode_chunk, None, plan)

    def close(self) -> None:
        """Closes a sync producer (its ``finally`` blocks run), then runs the
        request's after-response work; errors are logged."""
        close = getattr(self.iterator, "close", None)
        try:
            if close is not None:
                close()
        except BaseException as exc:  # noqa: BLE001 - a failing finally block
            self._log_close_failure(exc)
        finally:
            after = self.after
            if after is not None:
                self.after = None
                after.finish()

    async def aclose(self) -> None:
        """Closes an async producer (its ``finally`` blocks run), then runs
        the request's after-response work; errors are logged."""
        aclose = getattr(self.iterator, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        except BaseException as exc:  # noqa: BLE001 - a failing finally block, or a second cancel
            self._log_close_failure(exc)
        finally:
            after = self.after
            if after is not None:
                self.after = None
                after.finish()

    def where(self) -> str:
        """``GET /path: handler app:f (app.py:12)``."""
        plan = self.plan
        if plan is None:
            return "handler ?"
        return f"{plan.route.method} {plan.route.path}: handler {plan.name}"

    def log_failure(self, request_id: str, exc: BaseException, chunks: int | None) -> None:
        """Logs a producer that raised or yielded something unsendable
        (``chunks`` sent before), or a head the host refused (``None``)."""
        what = "its stream could not start" if chunks is None else f"its stream was ended after {chunks} chunk(s)"
        _log.error(
            "request %s: %s: %s: %s: %s",
            request_id,
            self.where(),
            what,
            type(exc).__name__,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
        )

    def _log_close_failure(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            return
        _log.error(
            "%s: closing its stream's producer raised %s: %s",
            self.where(),
            type(exc).__name__,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
        )


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Pump:
    """What both pumps share: the stream, the source, a chunk count and the
    keep-alive timer (on the event loop)."""

    __slots__ = ("_timer", "chunks", "finished", "last_write", "source", "stream")

    def __init__(self, stream: Stream, source: Source) -> None:
        self.stream = stream
        self.source = source
        self.chunks = 0
        #: ``time.monotonic()`` of the last chunk taken (the head, at first).
        self.last_write = time.monotonic()
        self.finished = False
        self._timer: asyncio.TimerHandle | None = None

    def start_pinger(self) -> None:
        """On the loop thread: writes a keep-alive whenever the producer has
        been silent for ``source.ping`` seconds."""
        if self.source.ping and not self.finished:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.source.ping, self._tick, loop)

    def stop_pinger(self) -> None:
        """On the loop thread."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.finished:
            return
        interval = self.source.ping or 0.0
        idle = time.monotonic() - self.last_write
        if idle >= interval * 0.99:
            try:
                result = self.stream.write(PING)
            except BaseException:  # noqa: BLE001 - the producer's writes report it
                return
            if result == TAKEN:
                self.last_write = time.monotonic()
                idle = 0.0
            elif result == CLOSED:
                self.closed_while_idle()
                return
            # FULL: the client is behind; no keep-alive is needed.
        self._timer = loop.call_later(max(interval - idle, 0.001), self._tick, loop)

    def closed_while_idle(self) -> None:
        """The keep-alive found the request over while the producer waits."""


class AsyncPump(_Pump):
    """Advances an async source on the event loop, one task per stream."""

    __slots__ = ("task",)

    def __init__(self, stream: Stream, source: Source) -> None:
        super().__init__(stream, source)
        self.task: asyncio.Task[None] | None = None

    def closed_while_idle(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def run(self) -> None:
        """Writes every item until the source ends or the request is over,
        then closes the source and ends the stream."""
        stream, source = self.stream, self.source
        iterator, encode = source.iterator, source.encode
        anext = type(iterator).__anext__
        loop = asyncio.get_running_loop()
        closing = False
        try:
            self.start_pinger()
            while True:
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    break
                data = encode(item)
                if not data:
                    continue
                self.chunks += 1
                while True:
                    result = stream.write(data)
                    if result == TAKEN:
                        self.last_write = time.monotonic()
                        break
                    if result == CLOSED:
                        return
                    waiter = loop.create_future()
                    stream.on_ready(functools.partial(_wake, waiter), True)
                    await waiter
        except asyncio.CancelledError:
            pass  # the request is over: the source is closed below
        except GeneratorExit:
            closing = True  # this coroutine is being closed (its loop is gone): no more awaiting
            raise
        except BaseException as exc:  # noqa: BLE001 - the handler's error ends its stream
            source.log_failure(stream.request_id, exc, self.chunks)
        finally:
            self.finished = True
            self.stop_pinger()
            if not closing:
                await source.aclose()
            stream.end()


class SyncPump(_Pump):
    """Advances a sync source on the sync worker pool, one step at a time."""

    __slots__ = ("pending",)

    def __init__(self, stream: Stream, source: Source) -> None:
        super().__init__(stream, source)
        #: A chunk the host did not take yet (it was full).
        self.pending: bytes | None = None

    def step(self) -> None:
        """On a worker: writes until the host is full (the ready callback
        queues the next step), the source ends, or :data:`SLICE` is used up
        (the next step queues behind waiting work). Never raises."""
        if self.finished:
            return
        stream, source = self.stream, self.source
        iterator, encode = source.iterator, source.encode
        deadline = time.monotonic() + SLICE
        try:
            while True:
                data = self.pending
                if data is None:
                    if stream.closed:  # cancelled: do not advance the producer again
                        break
                    try:
                        item = next(iterator)
                    except StopIteration:
                        break
                    data = encode(item)
                    if not data:
                        continue
                    self.chunks += 1
                result = stream.write(data)
                if result == TAKEN:
                    self.pending = None
                    self.last_write = now = time.monotonic()
                    if now >= deadline:
                        stream.submit(self.step)
                        return
                elif result == FULL:
                    self.pending = data
                    stream.on_ready(self.step, False)
                    return
                else:
                    break
        except BaseException as exc:  # noqa: BLE001 - the handler's error ends its stream
            source.log_failure(stream.request_id, exc, self.chunks)
        self.finish()

    def finish(self) -> None:
        """Closes the source and ends the stream (the keep-alive timer sees
        ``finished`` and stops)."""
        self.finished = True
        self.pending = None
        self.source.close()
        self.stream.end()


class Streamer:
    """Starts streams for one runtime: sends the head, then hands the source
    to the right pump on the right thread. Async pumps are kept in
    ``tasks`` by request id, so cancellations and shutdown reach them."""

    __slots__ = ("_loop", "_tasks")

    def __init__(
        self,
        loop: Callable[[], Optional[asyncio.AbstractEventLoop]],
        tasks: dict[str, asyncio.Future[Any]],
    ) -> None:
        self._loop = loop
        self._tasks = tasks

    def start(
        self,
        responder: Any,
        status: int,
        headers: list[tuple[str, str]],
        source: Source,
        inline: bool = False,
    ) -> None:
        """Sends the head and starts pumping; from any thread holding the
        GIL. ``inline``: the caller is a sync worker, which takes the first
        step of a sync source itself. Never raises."""
        try:
            stream = responder.start_stream(status, headers)
        except BaseException as exc:  # noqa: BLE001 - e.g. a 1.0 host, an invalid header
            source.log_failure(str(getattr(responder, "request_id", "?")), exc, None)
            self._discard(source)
            try:  # unanswered when the headers could not even be read
                responder.respond_error(500, "Internal Server Error", [])
            except BaseException:  # noqa: BLE001, S110 - the host answered already
                pass
            return
        if stream is None:  # the request is over before its head was sent
            self._discard(source)
            return
        if source.is_async:
            self._on_loop(self._run_async, stream, source)
            return
        pump = SyncPump(stream, source)
        if source.ping:
            self._on_loop(pump.start_pinger)
        if inline:
            pump.step()
        else:
            stream.submit(pump.step)

    def _run_async(self, stream: Stream, source: Source) -> None:
        """On the loop thread: the pump's task, kept by request id."""
        loop = asyncio.get_running_loop()
        pump = AsyncPump(stream, source)
        task = pump.task = loop.create_task(pump.run())
        request_id = stream.request_id
        tasks = self._tasks
        tasks[request_id] = task

        def forget(done: asyncio.Future[Any]) -> None:
            if tasks.get(request_id) is done:
                del tasks[request_id]

        task.add_done_callback(forget)
        stream.on_cancel(task.cancel)

    def _discard(self, source: Source) -> None:
        """Closes a source that will never be sent."""
        if source.is_async:
            self._on_loop(_aclose_later, source)
        else:
            source.close()

    def _on_loop(self, function: Callable[..., Any], *args: Any) -> None:
        """Calls ``function(*args)`` on the event loop thread: now when this
        is it, else soon."""
        loop = self._loop()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and (loop is None or running is loop):
            function(*args)
        elif loop is not None:
            loop.call_soon_threadsafe(function, *args)
        else:
            _log.error("no event loop to run %s on", getattr(function, "__qualname__", function))


def _aclose_later(source: Source) -> None:
    asyncio.get_running_loop().create_task(source.aclose())


def is_generator(result: Any) -> bool:
    """Whether a handler's result is a generator or async generator (sent
    as a stream)."""
    return isinstance(result, (types.GeneratorType, types.AsyncGeneratorType))


def is_generator_function(handler: Any) -> bool:
    """Whether ``handler`` is an ``async def`` with ``yield`` (its calls
    start nothing; the loop advances them)."""
    target = handler
    while isinstance(target, functools.partial):
        target = target.func
    return inspect.isasyncgenfunction(target)
