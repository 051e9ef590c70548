"""The runtime the Rust plugin drives: one ``Runtime`` per loaded app.

The plugin (``libspikard_python.so``) embeds CPython, puts its native module
in ``sys.modules["spikard._native"]``, imports the app and then calls:

- ``Runtime(app)``: compiles every route, forwards ``logging`` to the host.
- ``routes()``: ``(method, path, handler_id, schema_json, is_async,
  wants_headers)`` for each route, to register with the host.
- ``new_event_loop()``: the loop the plugin runs forever on its own thread.
- ``startup()`` / ``shutdown()``: a coroutine running the hooks, or ``None``.
- ``dispatch(...)`` on the loop thread for ``async def`` handlers,
  ``call_sync(...)`` on a worker thread for ``def`` handlers, or
  ``coroutine(...)`` (the "into_future" bridge) that resolves to an outcome.
- ``begin_stream(responder, status, headers, source)`` from any thread: the
  "into_future" bridge's answer for a stream outcome.
- ``cancel(request_ids)`` on the loop thread: cancels those requests' tasks.
- ``begin_stop(budget, done)`` on the loop thread at shutdown: cancels every
  request's task, runs the shutdown hooks within ``budget`` seconds, then
  calls ``done()``.
- ``describe_loop()`` from the watchdog thread: what blocks the loop.

Every request ends in one *outcome* ``(kind, status, headers, payload)``:
kind 0 is a response (payload: body bytes), kind 1 a problem the host renders
as Problem Details (payload: the detail text), kind 2 a streamed response
(payload: a :class:`~spikard._streaming.Source`, sent by the runtime's
:class:`~spikard._streaming.Streamer`). :func:`outcome_of` and
:func:`failure_of` are the one place results and exceptions become outcomes.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import http
import inspect
import logging
import os
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Final, Protocol, Union, cast

import msgspec

from . import _json, _process
from ._app import App
from ._background import AfterResponse, bind_loop
from ._invoke import HandlerPlan, handler_location
from ._lifespan import Lifespan
from ._responses import HTTPException, Response, header_list, problem_body
from ._streaming import Source, Streamer, StreamingResponse
from .exceptions import RequestValidationError, validation_problem

__all__ = [
    "HookError",
    "NativeLogHandler",
    "Outcome",
    "Responder",
    "Runtime",
    "failure_of",
    "outcome_of",
]

#: ``(kind, status, headers, payload)``; kind 0: payload is the body (bytes),
#: kind 1: a problem, payload is the detail (str), kind 2: a stream, payload
#: is its source.
Outcome = tuple[int, int, list[tuple[str, str]], Union[bytes, str, Source]]
Headers = list[tuple[str, str]]

RESPONSE: Final = 0
PROBLEM: Final = 1
STREAM: Final = 2

_log = logging.getLogger("spikard")

_JSON: Final[Headers] = [("content-type", "application/json")]
_TEXT: Final[Headers] = [("content-type", "text/plain; charset=utf-8")]
_OCTETS: Final[Headers] = [("content-type", "application/octet-stream")]
_NONE: Final[Headers] = []
#: Results sent as they are, whatever the route's ``response_model``.
_UNCONVERTED: Final = (Response, types.GeneratorType, types.AsyncGeneratorType)
_INTERNAL_ERROR: Final[Outcome] = (PROBLEM, 500, _NONE, "Internal Server Error")
_CANCELLED: Final[Outcome] = (PROBLEM, 503, _NONE, "the request was cancelled")

_EAGER_TASKS: Final = sys.version_info >= (3, 12)
_TASK_CONTEXT: Final = sys.version_info >= (3, 11)

#: How long cancelled tasks get, at shutdown, to run their ``finally``
#: blocks before the hooks start (at most half the budget).
_CANCEL_GRACE: Final = 0.25
#: Cancellations remembered for requests not started yet (into_future).
_EARLY_CANCELS: Final = 1024


class Responder(Protocol):
    """What the plugin hands over per request (``spikard._native.Responder``)."""

    request_id: str

    def respond(self, status: int, headers: Headers, body: bytes) -> None: ...

    def respond_error(self, status: int, detail: str, headers: Headers) -> None: ...

    def start_stream(self, status: int, headers: Headers) -> Any:
        """Sends the head; the stream, or ``None`` when the request is over."""


class HookError(RuntimeError):
    """A start-up or shutdown hook failed; the message names it."""


# ---------------------------------------------------------------------------
# Outcomes


def _enc_hook(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic models nested in containers
    if dump is not None and hasattr(type(obj), "__pydantic_serializer__"):
        return dump(mode="json")
    raise TypeError(f"objects of type {type(obj).__name__} are not JSON serializable")


_encode: Final = msgspec.json.Encoder(enc_hook=_enc_hook).encode


def _json_body(value: Any) -> bytes:
    if hasattr(type(value), "__pydantic_serializer__") and hasattr(value, "model_dump_json"):
        dumped: str = value.model_dump_json()
        return dumped.encode()
    return _encode(value)


def _render(response: Response) -> Outcome:
    status, headers, body = response.rendered()
    return (RESPONSE, status, headers, body)


def outcome_of(plan: HandlerPlan, result: Any) -> Outcome:
    """The outcome of a handler's return value (raises when it cannot be
    encoded; :func:`safe_outcome` turns that into a failure)."""
    convert = plan.response_convert
    if convert is not None and not isinstance(result, _UNCONVERTED):
        result = convert(result)
    cls = type(result)
    if cls is dict or cls is list:
        return (RESPONSE, plan.status_code, _JSON, _encode(result))
    if result is None:
        return (RESPONSE, plan.status_code, _NONE, b"")
    if cls is str:
        return (RESPONSE, plan.status_code, _TEXT, result.encode())
    if isinstance(result, Response):
        if isinstance(result, StreamingResponse):
            return (STREAM, int(result.status_code), result.head(), result.source(plan))
        return _render(result)
    if cls is types.GeneratorType or cls is types.AsyncGeneratorType:
        return (STREAM, plan.status_code, plan.stream_head, Source.of_generator(result, plan))
    if isinstance(result, (bytes, bytearray, memoryview)):
        return (RESPONSE, plan.status_code, _OCTETS, bytes(result))
    if isinstance(result, str):
        return (RESPONSE, plan.status_code, _TEXT, result.encode())
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(f"handler {plan.name} returned an awaitable; declare it `async def`")
    return (RESPONSE, plan.status_code, _JSON, _json_body(result))


def _request_id(source: Any) -> str:
    if isinstance(source, str):
        return source
    try:
        return str(source.request_id)
    except Exception:  # noqa: BLE001 - only for log lines
        return "?"


#: The content type of a validation problem rendered in Python.
_PROBLEM_JSON: Final = [("content-type", "application/problem+json")]


def _http_failure(exc: HTTPException, request: Any) -> Outcome:
    """An ``HTTPException``'s outcome: a text detail as the host's Problem
    Details (kind 1); a structured one (``dict``/``list`` ...) as a Problem
    Details body rendered here, its ``detail`` a JSON value; a status below
    400 as ``{"detail": ...}`` JSON."""
    status = int(exc.status_code)
    detail = exc.detail
    headers = header_list(exc.headers)
    if detail is None:
        try:
            detail = http.HTTPStatus(status).phrase
        except ValueError:
            detail = f"HTTP {status}"
    if not 400 <= status <= 599:
        return (RESPONSE, status, [*_JSON, *headers], _json_body({"detail": detail}))
    if isinstance(detail, str):
        return (PROBLEM, status, headers, detail)
    request_id = _request_id(request) if request else ""
    try:
        body = _json_body(problem_body(status, detail, request_id))
    except Exception:  # noqa: BLE001 - not JSON: its text, as the host would get it
        return (PROBLEM, status, headers, str(detail))
    return (RESPONSE, status, [*_PROBLEM_JSON, *headers], body)


def failure_of(exc: BaseException, plan: HandlerPlan | None, request: Any = "") -> Outcome:
    """The outcome of an exception: ``HTTPException`` as itself, a
    cancellation as 503, anything else logged (with traceback) and 500."""
    if isinstance(exc, RequestValidationError):  # a 422 like the host's (P4)
        body = validation_problem(exc, _request_id(request) if request else "")
        return (RESPONSE, 422, _PROBLEM_JSON, body)
    if isinstance(exc, HTTPException):
        return _http_failure(exc, request)
    if isinstance(exc, asyncio.CancelledError):
        return _CANCELLED
    where = plan.name if plan is not None else "?"
    if plan is not None:
        route = f"{plan.route.method} {plan.route.path}"
    else:
        route = "unknown route"
    _log.error(
        "request %s: %s: handler %s raised %s",
        _request_id(request),
        route,
        where,
        type(exc).__name__,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return _INTERNAL_ERROR


def safe_outcome(plan: HandlerPlan, result: Any, request: Any) -> Outcome:
    """:func:`outcome_of`, with encoding errors as failures."""
    try:
        return outcome_of(plan, result)
    except BaseException as exc:  # noqa: BLE001 - a bad return value is a 500
        return failure_of(exc, plan, request)


def settle(
    plan: HandlerPlan, result: Any, request: Any, after: AfterResponse | None
) -> tuple[Outcome, AfterResponse | None]:
    """:func:`safe_outcome` of a handler's result, with the request's
    ``response: Response`` parameter merged in and a returned
    ``Response(background=...)`` added to the after-response work (made
    here when the route had none)."""
    try:
        outcome = outcome_of(plan, result)
    except BaseException as exc:  # noqa: BLE001 - a bad return value is a 500
        return failure_of(exc, plan, request), after
    if (after is None or after.response is None) and (type(result) is dict or not isinstance(result, Response)):
        return outcome, after  # the common case: nothing more to do
    return with_extras(plan, outcome, result, request, after)


def with_extras(
    plan: HandlerPlan, outcome: Outcome, result: Any, request: Any, after: AfterResponse | None
) -> tuple[Outcome, AfterResponse | None]:
    """The rest of :func:`settle`: the ``response`` parameter merged in, a
    returned ``Response``'s ``background`` added."""
    if after is not None and after.response is not None:
        outcome = merge_response(outcome, after.response, isinstance(result, Response))
    if isinstance(result, Response) and result.background is not None:
        if after is None:
            after = AfterResponse(request, plan.handler_id)
        after.add_background(result.background)
    return outcome, after


def merge_response(outcome: Outcome, temporal: Response, explicit: bool) -> Outcome:
    """FastAPI's "temporal response": the headers and cookies a handler or
    dependency set on its ``response: Response`` parameter join the answer
    (replacing headers of the same name, ``set-cookie`` added), and its
    ``status_code``, when set, is the answer's unless the handler returned a
    ``Response`` itself. Error answers are left as they are."""
    kind, status, headers, payload = outcome
    if kind == PROBLEM:
        return outcome
    extra = temporal.headers.raw
    if extra:
        replaced = {name.lower() for name, _ in extra if name.lower() != "set-cookie"}
        headers = [pair for pair in headers if pair[0].lower() not in replaced] + list(extra)
    if not explicit and temporal.status_code is not None:
        status = int(temporal.status_code)
    return (kind, status, headers, payload)


def answer(
    responder: Responder,
    outcome: Outcome,
    streamer: Streamer | None = None,
    inline: bool = False,
    after: AfterResponse | None = None,
) -> None:
    """Sends an outcome through the responder (a stream through
    ``streamer``; ``inline``: on a sync worker), then runs the request's
    after-response work (``after``: background tasks, generator
    dependencies' teardown, closing uploads; a stream runs it when it
    ends); never raises."""
    kind, status, headers, payload = outcome
    if kind == STREAM:
        if streamer is not None:
            if after is not None:
                payload.after = after  # type: ignore[union-attr]
            streamer.start(responder, status, headers, payload, inline)  # type: ignore[arg-type]
            return
        _log.error("request %s: a streamed response with no streamer", _request_id(responder))
        outcome = _INTERNAL_ERROR
        kind, status, headers, payload = outcome
    try:
        if kind == RESPONSE:
            responder.respond(status, headers, payload)  # type: ignore[arg-type]
        else:
            responder.respond_error(status, payload, headers)  # type: ignore[arg-type]
        if after is not None:
            after.finish()
        return
    except BaseException as exc:  # noqa: BLE001
        _log.error(
            "request %s: the response (status %s) was refused: %s: %s",
            _request_id(responder),
            status,
            type(exc).__name__,
            exc,
        )
    try:  # e.g. an invalid header: answer 500 instead, if still possible
        responder.respond_error(500, "Internal Server Error", [])
    except BaseException:  # noqa: BLE001, S110 - already answered
        pass
    if after is not None:
        after.finish()


# ---------------------------------------------------------------------------
# Continuing an eagerly started coroutine as a Task


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], value: Any) -> Generator[Any, Any, Any]:
    """Continues ``coro``, already started and suspended on ``value``: hands
    ``value`` to the task driving us, then forwards what the task sends or
    throws, until ``coro`` returns."""
    while True:
        try:
            sent = yield value
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - forwarded (cancellation included)
            try:
                value = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        if sent is None:
            # What a task always sends: let the C `yield from` do the rest.
            return (yield from coro)
        try:
            value = coro.send(sent)
        except StopIteration as stop:
            return stop.value


async def _finish(
    plan: HandlerPlan, awaitable: Awaitable[Any], request: Any, after: AfterResponse | None = None
) -> tuple[Outcome, AfterResponse | None]:
    """Awaits the handler's rest and makes its outcome (and the request's
    after-response work, see :func:`settle`); a cancellation propagates (the
    task's done callback answers 503)."""
    try:
        result = await awaitable
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure is an answer
        return failure_of(exc, plan, request), after
    return settle(plan, result, request, after)


def _on_done(
    responder: Responder,
    plan: HandlerPlan,
    streamer: Streamer,
    task: asyncio.Future[tuple[Outcome, AfterResponse | None]],
    after: AfterResponse | None = None,
) -> None:
    if task.cancelled():
        answer(responder, _CANCELLED, after=after)
        return
    exc = task.exception()
    if exc is not None:
        answer(responder, failure_of(exc, plan, responder), after=after)
    else:
        outcome, after = task.result()
        answer(responder, outcome, streamer, after=after)


# ---------------------------------------------------------------------------
# Logging to the host


def _level_code(levelno: int) -> int:
    if levelno >= logging.ERROR:
        return 1
    if levelno >= logging.WARNING:
        return 2
    if levelno >= logging.INFO:
        return 3
    if levelno >= logging.DEBUG:
        return 4
    return 5


class NativeLogHandler(logging.Handler):
    """Forwards log records to the host's log: the formatted message (with
    traceback) at the record's level, with the logger name as target."""

    def __init__(self, native: Any) -> None:
        super().__init__(logging.NOTSET)
        self._log: Callable[[int, str, str], None] = native.log
        self._log_enabled: Callable[[int, str], bool] = native.log_enabled
        self._enabled: dict[tuple[str, int], bool] = {}
        self.setFormatter(logging.Formatter("%(message)s"))

    def enabled(self, name: str, code: int) -> bool:
        """Whether the host keeps records of this target and level (cached)."""
        key = (name, code)
        on = self._enabled.get(key)
        if on is None:
            on = self._enabled[key] = bool(self._log_enabled(code, name))
        return on

    def handle(self, record: logging.LogRecord) -> bool:
        # No lock: the host's log call is thread-safe.
        if self.filters and not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            code = _level_code(record.levelno)
            if self.enabled(record.name, code):
                self._log(code, record.name, self.format(record))
        except Exception:  # noqa: BLE001
            self.handleError(record)


def install_logging(native: Any) -> NativeLogHandler:
    """Routes the root logger to the host (replacing an earlier instance)
    and sets its level to the lowest the host keeps for target ``root``."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, NativeLogHandler):
            root.removeHandler(existing)
    handler = NativeLogHandler(native)
    root.addHandler(handler)
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        if handler.enabled("root", _level_code(level)):
            root.setLevel(level)
            break
    else:
        root.setLevel(logging.CRITICAL)
    logging.captureWarnings(True)
    return handler


# ---------------------------------------------------------------------------
# The runtime


class Runtime:
    """Serves one ``App`` for the Rust plugin. See the module docs."""

    def __init__(
        self,
        app: App,
        native: Any = None,
        *,
        max_json_depth: int = _json.DEFAULT_MAX_DEPTH,
        bridge: str = "queue",
    ) -> None:
        if not isinstance(app, App):
            raise TypeError(f"expected a spikard.App, got {type(app).__name__}")
        self.plans: list[HandlerPlan] = app.compile()
        for handler_id, plan in enumerate(self.plans):
            plan.handler_id = handler_id
        if native is None:
            native = sys.modules.get(f"{__package__}._native")
            if native is None:
                raise RuntimeError(
                    "spikard._native is missing: the runtime runs inside libspikard_python.so "
                    "(pass native= to use it elsewhere)"
                )
        self.app = app
        self.native = native
        self.log_handler = install_logging(native)
        _json.configure(max_json_depth, getattr(native, "json_error", None))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        #: The task of every request that suspended, by request id.
        self._tasks: dict[str, asyncio.Future[Any]] = {}
        #: Ids cancelled before their coroutine started (into_future only:
        #: there the task starts after the cancellation may arrive).
        self._early_cancels: dict[str, None] | None = {} if bridge == "into_future" else None
        self._stopping: asyncio.Task[None] | None = None
        self._codes = _code_labels(app, self.plans)
        self._start = self._start_eager_task if _EAGER_TASKS else self._start_manual
        self._streamer = Streamer(lambda: self._loop, self._tasks)
        bind_loop(lambda: self._loop, self._tasks)  # where after-response work runs and is kept

    # -- set-up -------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, int, str, bool, bool]]:
        """``(method, path, handler_id, schema_json, is_async, wants_headers)``."""
        return [
            (p.route.method, p.route.path, i, p.schema_json, p.is_async, p.wants_request)
            for i, p in enumerate(self.plans)
        ]

    def labels(self) -> list[str]:
        """``module:qualname`` of each handler, by handler id, for log lines."""
        return [_label(p.route.handler) for p in self.plans]

    def install_process_hooks(self) -> None:
        """Process-wide hooks, for the plugin only: a log line before
        ``os._exit`` ends the process (naming the handler that called it)."""
        _process.hook_os_exit(self.describe_frame)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """A new event loop: uvloop's when importable (``SPIKARD_LOOP=asyncio``
        forces asyncio's, ``SPIKARD_LOOP=uvloop`` requires uvloop)."""
        choice = os.environ.get("SPIKARD_LOOP", "auto").strip().lower()
        loop: asyncio.AbstractEventLoop | None = None
        if choice != "asyncio":
            try:
                import uvloop
            except ImportError:
                if choice == "uvloop":
                    raise
            else:
                loop = uvloop.new_event_loop()
        if loop is None:
            loop = asyncio.new_event_loop()
        self._loop = loop
        return loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop made by :meth:`new_event_loop`, if any."""
        return self._loop

    def bind_loop_thread(self) -> None:
        """Records the calling thread as the loop's (for :meth:`describe_loop`)."""
        self._loop_thread = threading.get_ident()

    # -- faults -------------------------------------------------------------

    def describe_frame(self, frame: types.FrameType | None) -> str:
        """``handler app:spin (at app.py:12 in spin)``: the innermost handler
        or hook on ``frame``'s stack, the line it is at and, when deeper,
        the line ``frame`` is at (``; now at threading.py:331 in wait``)."""
        if frame is None:
            return "code with no Python frame (C code or an idle loop)"
        codes = self._codes
        current: types.FrameType | None = frame
        while current is not None:
            label = codes.get(current.f_code)
            if label is not None:
                deeper = "" if current is frame else f"; now {_where(frame)}"
                return f"{label} ({_where(current)}{deeper})"
            current = current.f_back
        return f"code {_where(frame)}"

    def describe_loop(self) -> str:
        """What the loop thread runs now (from another thread)."""
        ident = self._loop_thread
        frame = sys._current_frames().get(ident) if ident is not None else None
        return self.describe_frame(frame)

    def cancel(self, request_ids: list[str]) -> None:
        """Cancels the tasks of these requests (on the loop thread): each
        handler sees ``CancelledError`` where it awaits, its ``finally``
        blocks run, and the request is answered 503 (the host, which asked,
        discards it)."""
        tasks = self._tasks
        early = self._early_cancels
        for request_id in request_ids:
            task = tasks.get(request_id)
            if task is not None:
                task.cancel()
            elif early is not None:
                early[request_id] = None
                if len(early) > _EARLY_CANCELS:
                    del early[next(iter(early))]

    def begin_stop(self, budget: float, done: Callable[[], Any]) -> None:
        """Shutdown, on the loop thread: cancels every request's task, gives
        them a moment for their ``finally`` blocks, runs the shutdown hooks
        with the rest of ``budget`` seconds, then calls ``done()``."""
        loop = self._loop or asyncio.get_running_loop()
        try:
            self._stopping = loop.create_task(self._stop(budget, done))
        except BaseException:
            done()
            raise

    async def _stop(self, budget: float, done: Callable[[], Any]) -> None:
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + budget
            tasks = [task for task in self._tasks.values() if not task.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=min(_CANCEL_GRACE, budget / 2))
                for task in pending:
                    _log.warning(
                        "handler %s still running at shutdown (it went on after being cancelled); abandoned",
                        _task_label(task),
                    )
            hooks = self.shutdown()
            if hooks is not None:
                left = max(deadline - loop.time(), 0.0)
                try:
                    await asyncio.wait_for(hooks, left)
                except asyncio.TimeoutError:
                    _log.error("on_shutdown hooks did not finish within %d ms; abandoned", left * 1000)
                except HookError as exc:
                    _log.error("%s", exc)
        except BaseException as exc:  # noqa: BLE001 - shutdown goes on
            _log.error("shutdown failed: %s: %s", type(exc).__name__, exc)
        finally:
            done()

    def startup(self) -> Coroutine[Any, Any, None] | None:
        """A coroutine entering the app's lifespan, then running the start-up
        hooks in order, or ``None`` when there is nothing to run."""
        app = self.app
        hooks = list(app.startup_hooks)
        if not hooks and app.lifespan is None and not app.exception_handlers:
            return None
        return self._start_app(hooks)

    async def _start_app(self, hooks: list[Callable[[], Any]]) -> None:
        app = self.app
        app._loop = asyncio.get_running_loop()  # async exception handlers of `def` routes run on it
        if app.lifespan is not None:
            lifespan = Lifespan(app, app.lifespan)
            self._lifespan: Lifespan | None = lifespan
            try:
                await lifespan.enter()
            except Exception as exc:
                self._lifespan = None
                raise _hook_error("lifespan", lifespan.where, "failed at start-up", exc) from exc
        try:
            await _run_hooks(hooks, "on_startup")
        except BaseException:
            await self._exit_lifespan()
            raise

    def shutdown(self) -> Coroutine[Any, Any, None] | None:
        """A coroutine running the shutdown hooks in order, then leaving the
        app's lifespan, or ``None`` when there is nothing to run."""
        hooks = list(self.app.shutdown_hooks)
        if not hooks and getattr(self, "_lifespan", None) is None:
            return None
        return self._stop_app(hooks)

    async def _stop_app(self, hooks: list[Callable[[], Any]]) -> None:
        try:
            if hooks:
                await _run_hooks(hooks, "on_shutdown")
        finally:
            await self._exit_lifespan()

    async def _exit_lifespan(self) -> None:
        lifespan: Lifespan | None = getattr(self, "_lifespan", None)
        self._lifespan = None
        if lifespan is None:
            return
        try:
            await lifespan.exit()
        except Exception as exc:
            raise _hook_error("lifespan", lifespan.where, "failed at shutdown", exc) from exc

    # -- requests -----------------------------------------------------------

    def dispatch(
        self,
        handler_id: int,
        params_json: str,
        body: bytes,
        headers: Headers | None,
        responder: Responder,
    ) -> None:
        """Serves an ``async def`` handler; call on the loop thread. Starts
        the coroutine at once and answers right away when it finishes
        without suspending; otherwise it goes on as a task. Never raises."""
        plan = None
        after: AfterResponse | None = None
        try:
            plan = self.plans[handler_id]
            request_id = responder  # the request's source (RequestSource): id, client, scheme ...
            if plan.after:
                after = AfterResponse(responder, handler_id)
                coro = plan.invoke(params_json, body, headers, request_id, after)
            else:
                coro = plan.invoke(params_json, body, headers, request_id)
        except BaseException as exc:  # noqa: BLE001
            answer(responder, failure_of(exc, plan, responder), after=after)
            return
        if not plan.awaits:  # no coroutine: the result is final
            outcome, after = settle(plan, coro, responder, after)
            answer(responder, outcome, self._streamer, after=after)
            return
        self._start(plan, coro, responder, after)

    def _start_manual(
        self, plan: HandlerPlan, coro: Any, responder: Responder, after: AfterResponse | None = None
    ) -> None:
        # The first step runs in a copy of the context, as a task's would, so
        # context variables set by one request never leak into the next.
        context = contextvars.copy_context()
        try:
            suspended_on = context.run(coro.send, None)
        except StopIteration as stop:
            outcome, after = settle(plan, stop.value, responder, after)
            answer(responder, outcome, self._streamer, after=after)
            return
        except BaseException as exc:  # noqa: BLE001
            answer(responder, failure_of(exc, plan, responder), after=after)
            return
        try:
            loop = self._loop or asyncio.get_running_loop()
            rest = _finish(plan, _resume(coro, suspended_on), responder, after)
            if _TASK_CONTEXT:
                task = cast(Any, loop).create_task(rest, context=context)
            else:  # Python 3.10: the task copies the context current at creation
                task = context.run(loop.create_task, rest)
        except BaseException as exc:  # noqa: BLE001 - e.g. no running loop
            coro.close()
            answer(responder, failure_of(exc, plan, responder), after=after)
            return
        self._track(task, responder, plan, after)

    def _start_eager_task(
        self, plan: HandlerPlan, coro: Any, responder: Responder, after: AfterResponse | None = None
    ) -> None:
        # Python >= 3.12: an eager task runs its first step now, as a real
        # task (asyncio.current_task(), timeouts and TaskGroups work).
        try:
            loop = self._loop or asyncio.get_running_loop()
            task: asyncio.Task[tuple[Outcome, AfterResponse | None]] = asyncio.Task(  # type: ignore[call-arg,unused-ignore]
                _finish(plan, coro, responder, after), loop=loop, eager_start=True
            )
        except BaseException as exc:  # noqa: BLE001
            coro.close()
            answer(responder, failure_of(exc, plan, responder), after=after)
            return
        if task.done():
            _on_done(responder, plan, self._streamer, task, after)
            return
        self._track(task, responder, plan, after)

    def _track(
        self,
        task: asyncio.Future[tuple[Outcome, AfterResponse | None]],
        responder: Responder,
        plan: HandlerPlan,
        after: AfterResponse | None = None,
    ) -> None:
        # Kept by request id, for `cancel`, until done; one callback answers.
        request_id = responder.request_id
        self._tasks[request_id] = task
        task.add_done_callback(functools.partial(self._task_done, request_id, responder, plan, after))

    def _task_done(
        self,
        request_id: str,
        responder: Responder,
        plan: HandlerPlan,
        after: AfterResponse | None,
        task: asyncio.Future[tuple[Outcome, AfterResponse | None]],
    ) -> None:
        tasks = self._tasks
        if tasks.get(request_id) is task:
            del tasks[request_id]
        _on_done(responder, plan, self._streamer, task, after)

    def call_sync(
        self,
        handler_id: int,
        params_json: str,
        body: bytes,
        headers: Headers | None,
        responder: Responder,
    ) -> None:
        """Serves a ``def`` handler; call on a worker thread holding the GIL.
        Never raises; always answers (then runs the after-response work on
        this thread)."""
        plan = None
        after: AfterResponse | None = None
        try:
            plan = self.plans[handler_id]
            request_id = responder  # the request's source (RequestSource): id, client, scheme ...
            if plan.after:
                after = AfterResponse(responder, handler_id)
                result = plan.invoke(params_json, body, headers, request_id, after)
            else:
                result = plan.invoke(params_json, body, headers, request_id)
            outcome = outcome_of(plan, result)
            if after is not None or (type(result) is not dict and isinstance(result, Response)):
                outcome, after = with_extras(plan, outcome, result, responder, after)
        except BaseException as exc:  # noqa: BLE001
            outcome = failure_of(exc, plan, responder)
        answer(responder, outcome, self._streamer, inline=True, after=after)

    async def coroutine(
        self,
        handler_id: int,
        params_json: str,
        body: bytes,
        headers: Headers | None,
        request_id: str = "",
        source: Any = None,
    ) -> Outcome:
        """The "into_future" bridge: resolves to the request's outcome.
        Never raises (a cancellation resolves to a 503 outcome). The
        after-response work runs once the bridge has sent the outcome (on
        the loop's next turn), or when a streamed one ends."""
        early = self._early_cancels
        if early and request_id in early:
            del early[request_id]
            return _CANCELLED
        tasks = self._tasks
        task = asyncio.current_task() if request_id else None
        if task is not None:
            tasks[request_id] = task
        plan = None
        after: AfterResponse | None = None
        try:
            plan = self.plans[handler_id]
            if plan.after:
                after = AfterResponse(source or request_id, handler_id)
                result = plan.invoke(params_json, body, headers, source or request_id, after)
            else:
                result = plan.invoke(params_json, body, headers, source or request_id)
            if plan.awaits:
                result = await result
        except BaseException as exc:  # noqa: BLE001
            outcome = failure_of(exc, plan, request_id)
            if after is not None:
                asyncio.get_running_loop().call_soon(after.finish)
            return outcome
        finally:
            if task is not None and tasks.get(request_id) is task:
                del tasks[request_id]
        outcome, after = settle(plan, result, request_id, after)
        if after is not None:
            if outcome[0] == STREAM:
                outcome[3].after = after  # type: ignore[union-attr]
            else:
                asyncio.get_running_loop().call_soon(after.finish)
        return outcome

    def begin_stream(self, responder: Responder, status: int, headers: Headers, source: Source) -> None:
        """The "into_future" bridge's answer for a stream outcome (from the
        bridge's thread): sends the head and starts the pump. Never raises."""
        self._streamer.start(responder, status, headers, source)


def _label(handler: Callable[..., Any]) -> str:
    """``module:qualname`` of a handler or hook."""
    target = inspect.unwrap(handler)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    module = getattr(target, "__module__", None)
    return f"{module}:{name}" if module else str(name)


def _code_labels(app: App, plans: list[HandlerPlan]) -> dict[types.CodeType, str]:
    """The code object of every handler and hook, to recognise them on a
    thread's stack: ``handler app:spin``, ``on_shutdown hook app:close``."""
    labels: dict[types.CodeType, str] = {}

    def add(function: Callable[..., Any], kind: str) -> None:
        target = inspect.unwrap(function)
        code = getattr(target, "__code__", None) or getattr(getattr(target, "__call__", None), "__code__", None)  # noqa: B004 - a callable object's method
        if isinstance(code, types.CodeType):
            labels.setdefault(code, f"{kind} {_label(function)}")

    for plan in plans:
        add(plan.route.handler, "handler")
    for hook in app.startup_hooks:
        add(hook, "on_startup hook")
    for hook in app.shutdown_hooks:
        add(hook, "on_shutdown hook")
    return labels


def _where(frame: types.FrameType) -> str:
    """``at app.py:12 in spin``."""
    return f"at {_short_path(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}"


def _short_path(path: str) -> str:
    """``path`` relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def _task_label(task: asyncio.Future[Any]) -> str:
    """The handler a request's task runs (for shutdown's log)."""
    get_coro = getattr(task, "get_coro", None)
    coro = get_coro() if get_coro is not None else None
    frame = getattr(coro, "cr_frame", None)
    plan = frame.f_locals.get("plan") if frame is not None else None
    if plan is None and frame is not None:  # a stream's pump
        pump = frame.f_locals.get("self")
        plan = getattr(getattr(pump, "source", None), "plan", None)
    if isinstance(plan, HandlerPlan):
        return _label(plan.route.handler)
    return getattr(coro, "__qualname__", None) or repr(task)


async def _run_hooks(hooks: list[Callable[[], Any]], kind: str) -> None:
    for hook in hooks:
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            raise _hook_error(f"{kind} hook", handler_location(hook), "failed", exc) from exc


def _hook_error(kind: str, where: str, what: str, exc: BaseException) -> HookError:
    """Logs a failed hook or lifespan (with traceback) and returns the
    one-line error: ``on_startup hook f (app.py:3) failed: OSError: ...``."""
    _log.error("%s %s %s", kind, where, what, exc_info=(type(exc), exc, exc.__traceback__))
    message = str(exc).replace("\n", " ")
    return HookError(f"{kind} {where} {what}: {type(exc).__name__}: {message}")
