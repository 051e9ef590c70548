"""Exception handlers: ``@app.exception_handler(ExcType)`` as in FastAPI.

A handler ``(request, exc) -> Response`` (sync or async) answers for an
exception a route's handler or its dependencies raise. The one for the most
specific class in the exception's MRO wins; an ``int`` key handles an
``HTTPException`` of that status first, and ``500`` any exception no class
matched. Without a matching handler the exception takes its usual way
(``HTTPException`` → its Problem Details, anything else → logged 500).

:func:`guard` wraps a compiled plan's ``invoke`` when its app has handlers
(at start-up, once): routes of an app without handlers run unchanged. The
wrapped routes get the request's headers from the host (``wants_request``)
so a handler sees a full ``Request``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._responses import HTTPException

if TYPE_CHECKING:
    from ._app import App
    from ._invoke import HandlerPlan

__all__ = ["ExceptionHandler", "check_key", "guard", "lookup"]

#: ``(request, exc) -> Response``, sync or async.
ExceptionHandler = Callable[[Any, Any], Any]
#: An exception class, or a status code for ``HTTPException``s (and 500).
HandlerKey = int | type[BaseException]

_log = logging.getLogger("spikard")


def check_key(key: Any, handler: Any) -> None:
    """Raises a ``TypeError`` naming the mistake for a key that is neither
    an exception class nor a status code, or a handler that is not callable."""
    if isinstance(key, bool) or not (
        (isinstance(key, int) and 100 <= key <= 599) or (isinstance(key, type) and issubclass(key, BaseException))
    ):
        raise TypeError(
            f"exception_handler key {key!r} is neither an exception class nor an HTTP status code; "
            "use e.g. @app.exception_handler(ValueError) or @app.exception_handler(404)"
        )
    if not callable(handler):
        raise TypeError(f"exception handler {handler!r} for {key!r} is not callable")


def lookup(handlers: Mapping[Any, ExceptionHandler], exc: BaseException) -> tuple[Any, ExceptionHandler] | None:
    """The ``(key, handler)`` for ``exc``: its status code's for an
    ``HTTPException``, else the nearest class in its MRO, else ``500``'s."""
    if isinstance(exc, HTTPException):
        handler = handlers.get(exc.status_code)
        if handler is not None:
            return exc.status_code, handler
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            return cls, handler
    if not isinstance(exc, HTTPException):
        handler = handlers.get(500)
        if handler is not None:
            return 500, handler
    return None


def _request(params_json: Any, body: bytes, headers: Any, source: Any) -> Any:
    from ._request import Request

    return Request(headers, params_json, body, source)


def _checked(handler: ExceptionHandler, result: Any) -> Any:
    """``result`` when it is a ``Response``; else a ``TypeError`` naming the
    handler (answered 500 and logged)."""
    from ._responses import Response

    if isinstance(result, Response):
        return result
    from ._schemas import handler_location

    raise TypeError(
        f"exception handler {handler_location(handler)} returned {type(result).__name__}, not a Response; "
        "return e.g. JSONResponse({...}, status_code=400)"
    )


def _note(plan: HandlerPlan, key: Any, exc: BaseException, source: Any) -> None:
    """A handler for ``Exception`` / ``500`` answers, but the error is still
    logged (as Starlette's server error handler lets it reach the log)."""
    if key is Exception or key is BaseException or key == 500:
        request_id = source if isinstance(source, str) else getattr(source, "request_id", "?")
        _log.error(
            "request %s: %s %s: handler %s raised %s (answered by the app's exception handler)",
            request_id,
            plan.route.method,
            plan.route.path,
            plan.name,
            type(exc).__name__,
            exc_info=(type(exc), exc, exc.__traceback__),
        )


def guard(plan: HandlerPlan, app: App) -> None:
    """Wraps ``plan.invoke`` so the app's exception handlers answer for what
    the handler (and its dependencies) raise. Generator handlers (streamed
    bodies) are left alone."""
    if plan.is_async_gen or inspect.isgeneratorfunction(inspect.unwrap(plan.route.handler)):
        return
    handlers = app.exception_handlers
    inner = plan.invoke
    plan.wants_request = True

    if getattr(plan, "awaits", plan.is_async):  # invoke returns an awaitable

        async def handle_async(exc: Exception, args: tuple[Any, ...]) -> Any:
            found = lookup(handlers, exc)
            if found is None:
                raise exc
            key, handler = found
            _note(plan, key, exc, args[3])
            result = handler(_request(*args[:4]), exc)
            if inspect.isawaitable(result):
                result = await result
            return _checked(handler, result)

        async def finish(coro: Any, args: tuple[Any, ...]) -> Any:
            try:
                return await coro
            except Exception as exc:  # noqa: BLE001 - offered to the handlers
                return await handle_async(exc, args)

        def invoke_async(*args: Any, **kwargs: Any) -> Any:
            try:
                coro = inner(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                return handle_async(exc, args)
            return finish(coro, args)

        plan.invoke = invoke_async
        return

    def invoke_sync(*args: Any, **kwargs: Any) -> Any:
        try:
            return inner(*args, **kwargs)
        except Exception as exc:
            found = lookup(handlers, exc)
            if found is None:
                raise
            key, handler = found
            _note(plan, key, exc, args[3])
            result = handler(_request(*args[:4]), exc)
            if inspect.isawaitable(result):
                result = _run_on_loop(app, result)
            return _checked(handler, result)

    plan.invoke = invoke_sync


def _run_on_loop(app: App, awaitable: Any) -> Any:
    """Runs an async exception handler of a ``def`` route (on a worker
    thread) on the app's event loop and waits for its result."""
    loop = getattr(app, "_loop", None)
    if loop is None or loop.is_closed():
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError("an async exception handler needs the event loop, which is not running")

    async def run() -> Any:
        return await awaitable

    return asyncio.run_coroutine_threadsafe(run(), loop).result()
