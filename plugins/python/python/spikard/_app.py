"""``App``: the routes and lifecycle hooks of a spikard application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, Union

if TYPE_CHECKING:
    from ._invoke import HandlerPlan

__all__ = ["App", "Route", "State", "METHODS"]

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])
#: A start-up or shutdown hook: a function without arguments, sync or async.
Hook = Callable[[], Union[None, Awaitable[None], Any]]
HookT = TypeVar("HookT", bound=Hook)

#: The methods a route may have.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})


class State:
    """A plain attribute bag for application state (``app.state.db = ...``)."""

    def __repr__(self) -> str:
        return f"State({vars(self)!r})"


class Route:
    """One route: method, path template, handler and its options. The plan
    (schemas, how to call the handler) is computed on first use."""

    __slots__ = (
        "method",
        "path",
        "handler",
        "status_code",
        "response_model",
        "body_limit",
        "timeout",
        "media_type",
        "_plan",
    )

    def __init__(
        self,
        method: str,
        path: str,
        handler: Callable[..., Any],
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> None:
        method = method.upper()
        if method not in METHODS:
            raise ValueError(f"unknown HTTP method {method!r}; use one of {', '.join(sorted(METHODS))}")
        if not path.startswith("/"):
            raise ValueError(f"route path {path!r} must start with '/'")
        if not callable(handler):
            raise TypeError(f"route {method} {path}: handler {handler!r} is not callable")
        if not 100 <= int(status_code) <= 999:
            raise ValueError(f"route {method} {path}: status_code {status_code!r} is not an HTTP status")
        self.method = method
        self.path = path
        self.handler = handler
        self.status_code = int(status_code)
        self.response_model = response_model
        self.body_limit = body_limit
        #: Seconds the host waits for the handler's answer before it
        #: answers 504 and cancels it (``None``: ``server.request_timeout_ms``);
        #: checked with the signature, sent as ``request_timeout_ms``.
        self.timeout = timeout
        #: The ``content-type`` of the body when the handler returns a
        #: generator (streamed); default ``text/plain; charset=utf-8``.
        self.media_type = media_type
        self._plan: HandlerPlan | None = None

    @property
    def plan(self) -> HandlerPlan:
        """The compiled plan; raises ``RouteError`` for an unservable signature
        or option (``timeout``)."""
        plan = self._plan
        if plan is None:
            from ._invoke import compile_route

            plan = self._plan = compile_route(self)
        return plan

    @property
    def schema(self) -> dict[str, Any]:
        """The route's schemas as handed to the host (``path``, ``query``,
        ``headers``, ``cookies``, ``body``) with its options (``body_limit``,
        ``request_timeout_ms``)."""
        return self.plan.schema

    def __repr__(self) -> str:
        name = getattr(self.handler, "__qualname__", repr(self.handler))
        return f"Route({self.method} {self.path} -> {name})"


class App:
    """A spikard application: decorate handlers with ``@app.get(path)`` & co.

    ``on_startup`` / ``on_shutdown`` hooks (functions without arguments, sync
    or async) run in order on the event loop before the first request and
    after the last one.
    """

    def __init__(
        self,
        *,
        on_startup: Iterable[Hook] | None = None,
        on_shutdown: Iterable[Hook] | None = None,
    ) -> None:
        self.routes: list[Route] = []
        self.startup_hooks: list[Hook] = list(on_startup or ())
        self.shutdown_hooks: list[Hook] = list(on_shutdown or ())
        self.state = State()

    # -- routes -------------------------------------------------------------

    def add_route(
        self,
        method: str,
        path: str,
        handler: Callable[..., Any],
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> Route:
        """Adds a route and returns it. ``timeout``: seconds (0 < timeout <=
        3600) the host waits for this handler before answering 504 and
        cancelling it; default ``server.request_timeout_ms``. ``media_type``:
        the ``content-type`` of a generator the handler returns (streamed;
        default ``text/plain; charset=utf-8``)."""
        route = Route(
            method,
            path,
            handler,
            status_code=status_code,
            response_model=response_model,
            body_limit=body_limit,
            timeout=timeout,
            media_type=media_type,
        )
        self.routes.append(route)
        return route

    def route(
        self,
        method: str,
        path: str,
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: serve ``method path`` with the decorated function
        (options as for :meth:`add_route`)."""

        def decorate(handler: HandlerT) -> HandlerT:
            self.add_route(
                method,
                path,
                handler,
                status_code=status_code,
                response_model=response_model,
                body_limit=body_limit,
                timeout=timeout,
                media_type=media_type,
            )
            return handler

        return decorate

    def get(
        self,
        path: str,
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``GET`` route (the host also serves ``HEAD`` with it)."""
        return self.route(
            "GET",
            path,
            status_code=status_code,
            response_model=response_model,
            body_limit=body_limit,
            timeout=timeout,
            media_type=media_type,
        )

    def post(
        self,
        path: str,
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``POST`` route."""
        return self.route(
            "POST",
            path,
            status_code=status_code,
            response_model=response_model,
            body_limit=body_limit,
            timeout=timeout,
            media_type=media_type,
        )

    def put(
        self,
        path: str,
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``PUT`` route."""
        return self.route(
            "PUT",
            path,
            status_code=status_code,
            response_model=response_model,
            body_limit=body_limit,
            timeout=timeout,
            media_type=media_type,
        )

    def patch(
        self,
        path: str,
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``PATCH`` route."""
        return self.route(
            "PATCH",
            path,
            status_code=status_code,
            response_model=response_model,
            body_limit=body_limit,
            timeout=timeout,
            media_type=media_type,
        )

    def delete(
        self,
        path: str,
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``DELETE`` route."""
        return self.route(
            "DELETE",
            path,
            status_code=status_code,
            response_model=response_model,
            body_limit=body_limit,
            timeout=timeout,
            media_type=media_type,
        )

    def head(
        self,
        path: str,
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``HEAD`` route."""
        return self.route(
            "HEAD",
            path,
            status_code=status_code,
            response_model=response_model,
            body_limit=body_limit,
            timeout=timeout,
            media_type=media_type,
        )

    def options(
        self,
        path: str,
        *,
        status_code: int = 200,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        media_type: str | None = None,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: an ``OPTIONS`` route."""
        return self.route(
            "OPTIONS",
            path,
            status_code=status_code,
            response_model=response_model,
            body_limit=body_limit,
            timeout=timeout,
            media_type=media_type,
        )

    # -- lifecycle ----------------------------------------------------------

    def on_startup(self, hook: HookT) -> HookT:
        """Decorator: run ``hook`` before the first request."""
        self.startup_hooks.append(hook)
        return hook

    def on_shutdown(self, hook: HookT) -> HookT:
        """Decorator: run ``hook`` after the last request."""
        self.shutdown_hooks.append(hook)
        return hook

    # -- compilation --------------------------------------------------------

    def compile(self) -> list[HandlerPlan]:
        """Compiles every route's plan (schemas, parameter extraction); raises
        ``RouteError`` naming the first handler that cannot be served."""
        return [route.plan for route in self.routes]

    def __repr__(self) -> str:
        return f"App({len(self.routes)} routes)"
