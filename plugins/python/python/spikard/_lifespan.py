"""The app's lifespan: FastAPI's ``lifespan=`` async context manager.

``App(lifespan=lifespan)`` where ``lifespan(app)`` returns an async context
manager (``@asynccontextmanager async def lifespan(app): ...; yield; ...``,
or a bare async generator function): it is entered on the event loop before
the first request, before the ``on_startup`` hooks, and exited at shutdown,
after the ``on_shutdown`` hooks. It runs in a task of its own from entry to
exit, as under Starlette, so a task group or cancel scope opened around the
``yield`` stays in one task. A ``dict`` it yields is the lifespan state: its
items become attributes of ``app.state`` and ``app.lifespan_state``, and
each request's ``request.state`` starts with them (a shallow copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import App

__all__ = ["Lifespan", "LifespanFactory", "check_lifespan", "merge_lifespans", "request_state"]

#: ``lifespan(app)`` -> an async context manager.
LifespanFactory = Callable[[Any], Any]


def handler_location(function: Any) -> str:
    """``name (file:line)`` of the lifespan function, for messages."""
    from ._schemas import handler_location as location

    return location(function)


#: What the running app's lifespan yielded: each request's ``request.state``
#: starts as a shallow copy of it, as under Starlette (one app per process).
_STATE: dict[str, Any] = {}


def request_state() -> dict[str, Any]:
    """A shallow copy of the lifespan state, for a new ``request.state``."""
    return dict(_STATE) if _STATE else {}


def check_lifespan(lifespan: Any) -> LifespanFactory | None:
    """``lifespan`` as a factory of async context managers (a bare async
    generator function is wrapped, as Starlette does); a ``TypeError``
    naming the fix for anything else."""
    if lifespan is None:
        return None
    if inspect.isasyncgenfunction(lifespan):
        return contextlib.asynccontextmanager(lifespan)
    if inspect.isgeneratorfunction(lifespan):
        raise TypeError(
            f"lifespan {handler_location(lifespan)} is a sync generator function; "
            "make it `async def` and decorate it with @contextlib.asynccontextmanager"
        )
    if not callable(lifespan):
        raise TypeError(
            f"lifespan={lifespan!r} is not callable; pass a function taking the app and returning an async "
            "context manager (@contextlib.asynccontextmanager async def lifespan(app): ... yield ...)"
        )
    return lifespan  # type: ignore[no-any-return]


def merge_lifespans(outer: LifespanFactory | None, inner: LifespanFactory) -> LifespanFactory:
    """One lifespan entering ``outer`` then ``inner`` (an included
    router's), leaving them in reverse; their yielded dicts are merged,
    ``outer``'s winning (FastAPI's ``_merge_lifespan_context``)."""
    if outer is None:
        return inner

    @contextlib.asynccontextmanager
    async def merged(app: Any) -> Any:
        async with outer(app) as outer_state, inner(app) as inner_state:
            if outer_state is None and inner_state is None:
                yield None
            else:
                yield {**(inner_state or {}), **(outer_state or {})}

    merged.__wrapped__ = outer  # type: ignore[attr-defined]  # messages name the app's lifespan
    return merged


class Lifespan:
    """One run of an app's lifespan: :meth:`enter` at start-up,
    :meth:`exit` at shutdown; both raise what the lifespan raised."""

    def __init__(self, app: App, factory: LifespanFactory) -> None:
        self.app = app
        self.factory = factory
        self.where = handler_location(factory)
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    async def enter(self) -> None:
        """Enters the context manager in a task of its own and waits until
        it has yielded (or failed)."""
        loop = asyncio.get_running_loop()
        manager = self.factory(self.app)
        if not (hasattr(manager, "__aenter__") and hasattr(manager, "__aexit__")):
            if inspect.iscoroutine(manager):
                manager.close()
            raise TypeError(
                f"lifespan {self.where} returned {type(manager).__name__}, not an async context manager; "
                "decorate it with @contextlib.asynccontextmanager"
            )
        started: asyncio.Future[Any] = loop.create_future()
        self._stop = asyncio.Event()
        self._task = loop.create_task(self._run(manager, started))
        state = await started
        if isinstance(state, Mapping):
            _STATE.clear()
            _STATE.update(state)
            self.app.lifespan_state.update(state)
            for key, value in state.items():
                setattr(self.app.state, str(key), value)

    async def _run(self, manager: Any, started: asyncio.Future[Any]) -> None:
        try:
            state = await manager.__aenter__()
        except BaseException as exc:  # noqa: BLE001 - handed to enter()
            if not started.done():
                started.set_exception(exc)
            return
        started.set_result(state)
        assert self._stop is not None
        try:
            await self._stop.wait()
        except asyncio.CancelledError:
            await manager.__aexit__(asyncio.CancelledError, asyncio.CancelledError(), None)
            raise
        await manager.__aexit__(None, None, None)

    async def exit(self) -> None:
        """Lets the lifespan run past its ``yield`` and waits for it."""
        task, stop = self._task, self._stop
        self._task = None
        if task is None or stop is None or task.done():
            if task is not None and not task.cancelled():
                task.result()
            return
        stop.set()
        await task
