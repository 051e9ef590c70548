"""Work that runs after a request's response was handed to the host.

:class:`AfterResponse` is made per request, only for routes that need it
(uploads, ``BackgroundTasks``, generator dependencies, a ``response:
Response`` parameter): the runtime passes it to the route's invoker, which
records into it, and calls :meth:`AfterResponse.finish` once the response
is handed to the host (after the last chunk of a streamed one), also after
an error response. ``finish`` runs, in this order:

1. the background tasks (``BackgroundTasks.add_task``), in the order they
   were added: ``async def`` ones on the event loop, ``def`` ones off it
   (on the worker thread that served a ``def`` route, else queued on the
   sync worker pool like a stream's step);
2. the teardown of generator dependencies (the code after ``yield``), the
   last entered first; the handler's exception, if it raised, is thrown in
   at the ``yield`` (as FastAPI does), so ``except``/``finally`` see it;
3. closing the request's uploads.

Errors are logged (logger ``spikard``, with the request id) and never
change the response: it is gone by then. A failing background task does
not stop the ones after it (Starlette's stop at the first failure).

Compared with FastAPI: the teardown runs after the response is sent, as in
FastAPI before 0.106 and again since 0.118 (so a streamed response can use
what a dependency yielded), and the handler's exception reaches the
generator, as since 0.106. Background tasks run before the teardown, so
they may still use what a dependency yielded (e.g. a database session). An
exception raised in a teardown cannot change the answer (it is logged).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from ._upload import UploadFile, release_all

__all__ = ["AfterResponse", "BackgroundTask", "BackgroundTasks", "bind_loop", "off_loop"]

_log = logging.getLogger("spikard")


def _no_loop() -> asyncio.AbstractEventLoop | None:
    return None


#: The runtime's event loop, for async work finished off the loop.
_loop_of: Callable[[], asyncio.AbstractEventLoop | None] = _no_loop
#: The runtime's tasks by key (shutdown cancels and waits for them).
_tracked: dict[str, asyncio.Future[Any]] | None = None

#: An exit of a generator dependency: ``(generator, is_async, where)``.
Exit = tuple[Any, bool, str]


def off_loop(call: Callable[[], Any], request_id: str, handler_id: int) -> Awaitable[Any]:
    """Runs ``call()`` on the plugin's sync worker pool (from the event
    loop) and returns a future of its result; outside the plugin (no pool),
    on the loop's default executor."""
    loop = asyncio.get_running_loop()
    native = sys.modules.get(f"{__package__}._native")
    run_on_pool = getattr(native, "run_on_pool", None)
    if run_on_pool is None:
        return loop.run_in_executor(None, call)
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, exc: BaseException | None) -> None:
        if future.done():  # the waiter was cancelled
            return
        if exc is None:
            future.set_result(value)
        else:
            future.set_exception(exc)

    def work() -> None:  # on a worker; never raises
        try:
            value, exc = call(), None
        except BaseException as error:  # noqa: BLE001 - handed to the waiter
            value, exc = None, error
        try:
            loop.call_soon_threadsafe(settle, value, exc)
        except RuntimeError:  # the loop is closed: shutting down
            pass

    if not run_on_pool(work, request_id, handler_id):
        return loop.run_in_executor(None, call)
    return future


def bind_loop(
    loop_of: Callable[[], asyncio.AbstractEventLoop | None], tasks: dict[str, asyncio.Future[Any]] | None = None
) -> None:
    """Tells where async after-response work runs when it is finished from a
    worker thread (the runtime's loop), and where its tasks are kept (the
    runtime's, under ``<request id>#after``, so shutdown reaches them)."""
    global _loop_of, _tracked
    _loop_of = loop_of
    _tracked = tasks


class BackgroundTask:
    """One function to call after the response, with its arguments (sync or
    async)."""

    __slots__ = ("args", "func", "is_async", "kwargs")

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not callable(func):
            raise TypeError(f"background task {func!r} is not callable")
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.is_async = _is_async_callable(func)

    def __repr__(self) -> str:
        return f"BackgroundTask({_name(self.func)})"


class BackgroundTasks:
    """Functions to run after the response was sent (FastAPI's
    ``BackgroundTasks``): declare a parameter ``background_tasks:
    BackgroundTasks`` in a handler or dependency (one instance per request,
    shared by all of them) and call ``add_task(func, *args, **kwargs)``.
    They run in the order added; one that raises is logged and the next
    still runs."""

    __slots__ = ("tasks",)

    def __init__(self, tasks: list[BackgroundTask] | None = None) -> None:
        self.tasks: list[BackgroundTask] = list(tasks or ())

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Runs ``func(*args, **kwargs)`` after the response (awaited when it
        is ``async def``)."""
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"BackgroundTasks({self.tasks!r})"


def _is_async_callable(func: Any) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - callable objects
    return not inspect.isfunction(func) and call is not None and inspect.iscoroutinefunction(call)


def _name(func: Any) -> str:
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _request_id(source: Any) -> str:
    if isinstance(source, str):
        return source or "?"
    try:
        return str(source.request_id)
    except Exception:  # noqa: BLE001 - only for log lines
        return "?"


class AfterResponse:
    """One request's after-response work (see the module docs). The
    invoker fills it; :meth:`finish` runs it once."""

    __slots__ = ("error", "exits", "handler_id", "response", "source", "tasks", "uploads")

    def __init__(self, source: Any = None, handler_id: int = 0) -> None:
        #: The request's source (or its id): for log lines.
        self.source = source
        #: The route's handler id (names work left running at shutdown).
        self.handler_id = handler_id
        #: The request's ``UploadFile`` s, closed last.
        self.uploads: list[UploadFile] = []
        #: The request's ``BackgroundTasks`` (made on first use).
        self.tasks: BackgroundTasks | None = None
        #: Entered generator dependencies, in the order entered.
        self.exits: list[Exit] | None = None
        #: What the handler (or a dependency) raised, thrown into the
        #: generator dependencies at their ``yield``.
        self.error: BaseException | None = None
        #: The ``response: Response`` parameter's object (made on first
        #: use), merged into the answer.
        self.response: Any = None

    def request_id(self) -> str:
        """The request's id (for log lines and the worker pool)."""
        return _request_id(self.source)

    def background(self) -> BackgroundTasks:
        """The request's ``BackgroundTasks`` (one per request)."""
        tasks = self.tasks
        if tasks is None:
            tasks = self.tasks = BackgroundTasks()
        return tasks

    def add_background(self, background: Any) -> None:
        """Adds a returned ``Response``'s ``background`` (a
        ``BackgroundTasks``, a ``BackgroundTask`` or a list of them) after
        the request's own tasks."""
        tasks = self.background()
        if isinstance(background, BackgroundTasks):
            if background is not tasks:
                tasks.tasks.extend(background.tasks)
        elif isinstance(background, BackgroundTask):
            tasks.tasks.append(background)
        elif isinstance(background, (list, tuple)):
            for item in background:
                self.add_background(item)
        elif callable(background):
            tasks.add_task(background)
        else:
            self._log(
                "Response(background=...) was ignored",
                TypeError(f"{background!r} is not a BackgroundTasks or BackgroundTask"),
            )

    def enter(self, generator: Any, is_async: bool, where: str) -> None:
        """Records an entered generator dependency for its teardown."""
        exits = self.exits
        if exits is None:
            self.exits = [(generator, is_async, where)]
        else:
            exits.append((generator, is_async, where))

    # -- running ------------------------------------------------------------

    def finish(self) -> None:
        """Runs the work now (from a worker thread) or as a task (on the
        event loop); never raises."""
        if not self.exits and not self.tasks:
            if self.uploads:
                release_all(self.uploads)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self.run_sync()
            return
        try:
            task = loop.create_task(self.run_async())
        except BaseException as exc:  # noqa: BLE001 - e.g. the loop is closing
            self._log("could not start the after-response work", exc)
            release_all(self.uploads)
            return
        tracked = _tracked
        if tracked is not None and not task.done():
            key = f"{self.request_id()}#after"
            tracked[key] = task

            def forget(done: asyncio.Future[Any]) -> None:
                if tracked.get(key) is done:
                    del tracked[key]

            task.add_done_callback(forget)

    def run_sync(self) -> None:
        """The work on this (non-loop) thread; async parts run on the
        runtime's loop, this thread waiting for them."""
        try:
            tasks = self.tasks
            if tasks:
                for task in tasks.tasks:
                    try:
                        if task.is_async:
                            self._on_loop(task.func(*task.args, **task.kwargs))
                        else:
                            task.func(*task.args, **task.kwargs)
                    except BaseException as exc:  # noqa: BLE001
                        self._log(f"background task {_name(task.func)} raised", exc)
            exits = self.exits
            if exits:
                error = self.error
                for generator, is_async, where in reversed(exits):
                    if is_async:
                        error = self._on_loop_exit(generator, error, where)
                    else:
                        error = self._exit_sync(generator, error, where)
        finally:
            release_all(self.uploads)

    async def run_async(self) -> None:
        """The work on the event loop; ``def`` background tasks run on the
        sync worker pool (off the loop)."""
        try:
            tasks = self.tasks
            if tasks:
                for task in tasks.tasks:
                    try:
                        if task.is_async:
                            await task.func(*task.args, **task.kwargs)
                        else:
                            call = functools.partial(task.func, *task.args, **task.kwargs)
                            await off_loop(call, self.request_id(), self.handler_id)
                    except BaseException as exc:  # noqa: BLE001
                        self._log(f"background task {_name(task.func)} raised", exc)
            exits = self.exits
            if exits:
                error = self.error
                for generator, is_async, where in reversed(exits):
                    if is_async:
                        error = await self._exit_async(generator, error, where)
                    else:
                        error = self._exit_sync(generator, error, where)
        finally:
            release_all(self.uploads)

    # -- generator teardown (contextlib's rules) ------------------------------

    def _exit_sync(self, generator: Any, error: BaseException | None, where: str) -> BaseException | None:
        """Resumes a generator after its ``yield`` (throwing ``error`` in);
        returns the exception the next teardown sees (``None`` when handled)."""
        if generator.gi_frame is None:  # closed already (e.g. garbage-collected)
            return error
        try:
            if error is None:
                next(generator)
            else:
                generator.throw(error)
        except StopIteration:
            return None
        except BaseException as exc:  # noqa: BLE001
            if exc is not error:
                self._log(f"the teardown of dependency {where} raised", exc)
            return exc
        generator.close()
        self._log(f"dependency {where} yielded more than once", RuntimeError("generator didn't stop"))
        return error

    async def _exit_async(self, generator: Any, error: BaseException | None, where: str) -> BaseException | None:
        if generator.ag_frame is None:  # closed already (e.g. by the loop's shutdown_asyncgens)
            return error
        try:
            if error is None:
                await generator.__anext__()
            else:
                await generator.athrow(error)
        except StopAsyncIteration:
            return None
        except BaseException as exc:  # noqa: BLE001
            if exc is not error:
                self._log(f"the teardown of dependency {where} raised", exc)
            return exc
        await generator.aclose()
        self._log(f"dependency {where} yielded more than once", RuntimeError("generator didn't stop"))
        return error

    def _on_loop(self, coro: Any) -> Any:
        """Runs a coroutine on the runtime's loop and waits for it (from a
        worker thread); without a loop (unit tests), on a new one."""
        loop = _loop_of()
        if loop is None or not loop.is_running():
            return asyncio.run(coro)
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def _on_loop_exit(self, generator: Any, error: BaseException | None, where: str) -> BaseException | None:
        try:
            return self._on_loop(self._exit_async(generator, error, where))  # type: ignore[no-any-return]
        except BaseException as exc:  # noqa: BLE001
            self._log(f"the teardown of dependency {where} could not run", exc)
            return error

    def _log(self, what: str, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            return
        _log.error(
            "request %s: %s after the response: %s: %s",
            _request_id(self.source),
            what,
            type(exc).__name__,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
