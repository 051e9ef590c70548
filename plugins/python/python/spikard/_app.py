"""``App``: the routes, lifecycle and exception handlers of a spikard
application, with FastAPI's constructor and decorators (the route
decorators are shared with ``APIRouter``, in :mod:`._routing`)."""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._exception_handlers import ExceptionHandler, HandlerKey, check_key
from ._lifespan import LifespanFactory, check_lifespan
from ._routing import METHODS, APIRouter, Route, RouteRegistrar

if TYPE_CHECKING:
    from ._invoke import HandlerPlan

__all__ = ["METHODS", "App", "NoMatchFound", "Route", "State"]

#: A start-up or shutdown hook: a function without arguments, sync or async.
Hook = Callable[[], Awaitable[None] | Any | None]
HookT = TypeVar("HookT", bound=Hook)
ExceptionHandlerT = TypeVar("ExceptionHandlerT", bound=ExceptionHandler)

_PATH_PARAM = re.compile(r"\{(\*?)([^{}/*:]+)(?::[^{}]*)?\}")


class State:
    """A plain attribute bag for application state (``app.state.db = ...``)
    and ``request.state``; ``State({"db": db})`` starts with those
    attributes, as Starlette's."""

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        if state:
            self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"State({vars(self)!r})"


class NoMatchFound(Exception):
    """``url_path_for`` found no route of that name taking those parameters."""


class App(RouteRegistrar):
    """A spikard application, constructed like FastAPI's: decorate handlers
    with ``@app.get(path)`` & co., or ``app.include_router(router)``.

    - ``title``, ``version``, ``description``: the OpenAPI document's
      ``info`` (the host's ``[openapi]`` config overrides them).
    - ``lifespan``: ``lifespan(app)`` returning an async context manager,
      entered before the first request (before ``on_startup``) and exited
      after the last (after ``on_shutdown``); a ``dict`` it yields is set
      on ``app.state``.
    - ``on_startup`` / ``on_shutdown``: hooks (functions without arguments,
      sync or async) run in order on the event loop.
    - ``dependencies``: ``Depends(...)`` run before every route's handler.
    - ``exception_handlers``: ``{ExcType or status: handler}``, as
      ``@app.exception_handler``.
    - ``responses``, ``default_response_class``: for every route, as on a
      router.

    ``docs_url``, ``redoc_url``, ``openapi_url``, ``openapi_tags``,
    ``servers``, ``root_path``, ``contact``, ``license_info``,
    ``terms_of_service``, ``summary``, ``debug``, the ``swagger_ui_*``
    keywords and ``separate_input_output_schemas`` are accepted so a
    FastAPI app constructs unchanged; they have no effect (the host's
    ``[openapi]`` config decides where the document and docs page are).
    """

    def __init__(
        self,
        *,
        title: str | None = None,
        version: str | None = None,
        description: str | None = None,
        lifespan: LifespanFactory | None = None,
        dependencies: Sequence[Any] | None = None,
        on_startup: Iterable[Hook] | None = None,
        on_shutdown: Iterable[Hook] | None = None,
        exception_handlers: Mapping[HandlerKey, ExceptionHandler] | None = None,
        responses: Mapping[int | str, Mapping[str, Any]] | None = None,
        default_response_class: type[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        middleware: Sequence[Any] | None = None,
        # FastAPI keywords without effect here (see the class docs).
        summary: str | None = None,
        debug: bool = False,
        docs_url: str | None = "/docs",
        redoc_url: str | None = "/redoc",
        openapi_url: str | None = "/openapi.json",
        openapi_tags: list[dict[str, Any]] | None = None,
        servers: list[dict[str, Any]] | None = None,
        root_path: str = "",
        terms_of_service: str | None = None,
        contact: dict[str, Any] | None = None,
        license_info: dict[str, Any] | None = None,
        swagger_ui_parameters: dict[str, Any] | None = None,
        swagger_ui_init_oauth: dict[str, Any] | None = None,
        swagger_ui_oauth2_redirect_url: str | None = None,
        separate_input_output_schemas: bool = True,
    ) -> None:
        if middleware:
            _no_middleware()
        self.routes: list[Route] = []
        self.prefix = ""
        self.tags: list[str] = []
        self.dependencies: list[Any] = list(dependencies or ())
        self.responses: dict[int | str, Mapping[str, Any]] = dict(responses or {})
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.default_response_class = default_response_class
        self.title = title
        self.version = version
        self.description = description
        self.summary = summary
        self.debug = debug
        self.docs_url = docs_url
        self.redoc_url = redoc_url
        self.openapi_url = openapi_url
        self.openapi_tags = openapi_tags
        self.servers = servers
        self.root_path = root_path
        self.terms_of_service = terms_of_service
        self.contact = contact
        self.license_info = license_info
        self.lifespan = check_lifespan(lifespan)
        #: What the lifespan yielded (a ``dict``), once started.
        self.lifespan_state: dict[str, Any] = {}
        self.startup_hooks: list[Hook] = list(on_startup or ())
        self.shutdown_hooks: list[Hook] = list(on_shutdown or ())
        self.state = State()
        #: ``{ExcType or status code: handler}`` (see :meth:`exception_handler`).
        self.exception_handlers: dict[HandlerKey, ExceptionHandler] = {}
        for key, handler in (exception_handlers or {}).items():
            self.add_exception_handler(key, handler)
        #: FastAPI's ``app.dependency_overrides``: ``{dependency: replacement}``.
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        #: The event loop, once started (async exception handlers of ``def`` routes run on it).
        self._loop: asyncio.AbstractEventLoop | None = None

    def _owner_app(self) -> App:
        return self

    @property
    def router(self) -> App:
        """FastAPI's ``app.router``: the app itself holds the routes and
        takes ``include_router``/``add_api_route``."""
        return self

    # -- OpenAPI --------------------------------------------------------------

    def openapi_info(self) -> dict[str, str] | None:
        """The ``info`` object each route carries for the host (only the
        members given), or ``None``."""
        info = {
            key: value
            for key, value in (("title", self.title), ("version", self.version), ("description", self.description))
            if value
        }
        return info or None

    def url_path_for(self, name: str, /, **path_params: Any) -> str:
        """The path of the route called ``name`` (its handler's name unless
        ``name=`` was given) with ``path_params`` filled in."""
        for route in self.routes:
            if route.name != name:
                continue
            wanted = {match.group(2) for match in _PATH_PARAM.finditer(route.path)}
            if wanted != set(path_params):
                continue
            return _PATH_PARAM.sub(lambda m: _path_value(path_params[m.group(2)], bool(m.group(1))), route.path)
        raise NoMatchFound(f"no route named {name!r} takes the path parameters {sorted(path_params)}")

    # -- exception handlers -----------------------------------------------------

    def add_exception_handler(self, exc_class_or_status_code: HandlerKey, handler: ExceptionHandler) -> None:
        """Answers exceptions of that class (or ``HTTPException``s of that
        status) raised by handlers and dependencies with ``handler(request,
        exc)``, which returns a ``Response`` (sync or async)."""
        check_key(exc_class_or_status_code, handler)
        self.exception_handlers[exc_class_or_status_code] = handler

    def exception_handler(
        self, exc_class_or_status_code: HandlerKey
    ) -> Callable[[ExceptionHandlerT], ExceptionHandlerT]:
        """Decorator: ``@app.exception_handler(MyError)`` over ``def
        handler(request, exc) -> Response`` (or ``async def``)."""

        def decorate(handler: ExceptionHandlerT) -> ExceptionHandlerT:
            self.add_exception_handler(exc_class_or_status_code, handler)
            return handler

        return decorate

    # -- what is not here -------------------------------------------------------

    def middleware(self, middleware_type: str) -> Callable[[Any], Any]:
        """Not supported: ASGI/HTTP middleware has no place in the host's
        pipeline. Raises with what to use instead."""
        _no_middleware()
        raise AssertionError  # unreachable

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        """Not supported (see :meth:`middleware`)."""
        _no_middleware()

    def websocket(self, path: str, name: str | None = None) -> Callable[[Any], Any]:
        """Not supported: the host has no WebSocket routes. Raises."""
        raise NotImplementedError(
            f"@app.websocket({path!r}): spikard serves HTTP routes only; for server push use a streamed "
            "response (EventSourceResponse, StreamingResponse)"
        )

    def mount(self, path: str, app: Any, name: str | None = None) -> None:
        """Not supported: the host serves static files (``[[static]]``) and
        runs no ASGI apps. Raises with the config to use."""
        raise NotImplementedError(
            f"app.mount({path!r}, ...): spikard cannot mount ASGI apps; serve static files with the host's "
            f'[[static]] table in spikard.toml (prefix = "{path}", dir = "...")'
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

    def on_event(self, event_type: str) -> Callable[[HookT], HookT]:
        """FastAPI's (deprecated) ``@app.on_event("startup")`` /
        ``@app.on_event("shutdown")``."""
        if event_type == "startup":
            return self.on_startup
        if event_type == "shutdown":
            return self.on_shutdown
        raise ValueError(f"unknown event {event_type!r}; use 'startup' or 'shutdown'")

    def add_event_handler(self, event_type: str, func: Hook) -> None:
        """Starlette's ``add_event_handler("startup" | "shutdown", func)``."""
        self.on_event(event_type)(func)

    # -- compilation --------------------------------------------------------

    def compile(self) -> list[HandlerPlan]:
        """Compiles every route's plan (schemas, parameter extraction); raises
        ``RouteError`` naming the first handler that cannot be served."""
        return [route.plan for route in self.routes]

    def __repr__(self) -> str:
        return f"App({len(self.routes)} routes)"


def _path_value(value: Any, catch_all: bool) -> str:
    from urllib.parse import quote

    text = str(value.value if isinstance(value, enum.Enum) else value)
    return quote(text, safe="/" if catch_all else "")


def _no_middleware() -> None:
    raise NotImplementedError(
        "spikard has no ASGI/HTTP middleware: CORS, compression, rate limits and authentication are "
        "host policies ([server.cors], [server.compression], [server.rate_limit], [server.auth] in "
        "spikard.toml); per-request Python code belongs in a dependency (App(dependencies=[Depends(...)]))"
    )


# Re-exported here for ``from spikard._app import APIRouter``.
__all__ += ["APIRouter"]
