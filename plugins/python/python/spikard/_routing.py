"""Routes and ``APIRouter``: FastAPI's route decorators and router nesting.

:class:`Route` is one ``method path -> handler`` with its options; its
``openapi`` object is the route metadata the host puts in the OpenAPI
document (summary, tags, responses ...). :class:`RouteRegistrar` holds the
decorators (``get``, ``post`` ..., ``api_route``, ``add_api_route``,
``include_router``) that ``App`` and :class:`APIRouter` share: a router
collects routes under its ``prefix``, ``tags``, ``dependencies`` and
``responses``, and ``include_router`` copies them into the app (or another
router), as FastAPI does, at the time of the call.
"""

from __future__ import annotations

import enum
import http
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypedDict, TypeVar

from ._lifespan import LifespanFactory, check_lifespan, merge_lifespans

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._app import App
    from ._invoke import HandlerPlan

__all__ = ["METHODS", "APIRouter", "Route", "RouteOptions", "RouteRegistrar"]

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])

#: The methods a route may have.
METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})

#: FastAPI's default description of the success response.
DEFAULT_RESPONSE_DESCRIPTION: Final = "Successful Response"


class RouteOptions(TypedDict, total=False):
    """The keywords every route decorator takes (FastAPI's names, plus
    spikard's ``body_limit``, ``timeout``, ``max_json_depth``, ``request_id``
    and ``media_type``)."""

    status_code: int | None
    response_model: Any
    body_limit: int | None
    timeout: float | None
    max_json_depth: int | None
    request_id: bool | None
    media_type: str | None
    tags: list[str | enum.Enum] | None
    summary: str | None
    description: str | None
    response_description: str
    responses: Mapping[int | str, Mapping[str, Any]] | None
    deprecated: bool | None
    operation_id: str | None
    include_in_schema: bool
    name: str | None
    dependencies: Sequence[Any] | None
    response_class: type[Any] | None


_OPTION_NAMES: Final = frozenset(RouteOptions.__annotations__)


class Route:
    """One route: method, path template, handler and its options. The plan
    (schemas, how to call the handler) is computed on first use.

    ``dependencies`` are the app's, routers' and the route's own
    ``Depends(...)`` (outermost first), run before the handler with their
    results discarded; ``openapi`` is the route's OpenAPI metadata for the
    host; ``app`` is the ``App`` it serves (``None`` while it is only in
    an ``APIRouter``).
    """

    __slots__ = (
        "_plan",
        "app",
        "body_limit",
        "dependencies",
        "deprecated",
        "description",
        "handler",
        "include_in_schema",
        "max_json_depth",
        "media_type",
        "method",
        "name",
        "operation_id",
        "path",
        "request_id",
        "response_class",
        "response_description",
        "response_model",
        "responses",
        "status_code",
        "summary",
        "tags",
        "timeout",
    )

    def __init__(
        self,
        method: str,
        path: str,
        handler: Callable[..., Any],
        *,
        status_code: int | None = None,
        response_model: Any = None,
        body_limit: int | None = None,
        timeout: float | None = None,
        max_json_depth: int | None = None,
        request_id: bool | None = None,
        media_type: str | None = None,
        tags: Iterable[str | enum.Enum] | None = None,
        summary: str | None = None,
        description: str | None = None,
        response_description: str = DEFAULT_RESPONSE_DESCRIPTION,
        responses: Mapping[int | str, Mapping[str, Any]] | None = None,
        deprecated: bool | None = None,
        operation_id: str | None = None,
        include_in_schema: bool = True,
        name: str | None = None,
        dependencies: Sequence[Any] | None = None,
        response_class: type[Any] | None = None,
        app: App | None = None,
    ) -> None:
        method = str(method).upper()
        if method not in METHODS:
            raise ValueError(f"unknown HTTP method {method!r}; use one of {', '.join(sorted(METHODS))}")
        if path and not path.startswith("/"):
            raise ValueError(f"route path {path!r} must start with '/'")
        if not callable(handler):
            raise TypeError(f"route {method} {path}: handler {handler!r} is not callable")
        if status_code is None:
            status_code = getattr(response_class, "default_status_code", None) or 200
        if isinstance(status_code, bool) or not 100 <= int(status_code) <= 999:
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
        #: The deepest nesting of arrays and objects the host accepts in
        #: this route's JSON body before answering 400 ``json-too-deep``
        #: (``None``: ``server.max_json_depth``); checked with the signature.
        self.max_json_depth = max_json_depth
        #: ``False``: the host sends no request id header on this route's
        #: responses (``None``: ``server.request_ids``); checked with the
        #: signature.
        self.request_id = request_id
        #: The ``content-type`` of the body when the handler returns a
        #: generator (streamed); default ``text/plain; charset=utf-8``.
        self.media_type = media_type
        self.tags: list[str] = _unique(_tag(t) for t in tags or ())
        self.summary = summary
        self.description = description
        self.response_description = response_description
        self.responses: dict[int | str, Mapping[str, Any]] = dict(responses or {})
        self.deprecated = deprecated
        self.operation_id = operation_id
        self.include_in_schema = bool(include_in_schema)
        #: The route's name (FastAPI: the handler's ``__name__``), for
        #: ``app.url_path_for(name, ...)``.
        self.name: str = name or getattr(handler, "__name__", None) or type(handler).__name__
        self.dependencies: list[Any] = list(dependencies or ())
        #: What a returned value that is not a ``Response`` is wrapped in
        #: (``HTMLResponse``: a ``str`` is served as ``text/html``).
        self.response_class = response_class
        self.app = app
        self._plan: HandlerPlan | None = None

    def options(self) -> RouteOptions:
        """This route's keywords, to copy it (``include_router``)."""
        return {
            "status_code": self.status_code,
            "response_model": self.response_model,
            "body_limit": self.body_limit,
            "timeout": self.timeout,
            "max_json_depth": self.max_json_depth,
            "request_id": self.request_id,
            "media_type": self.media_type,
            "tags": list(self.tags),
            "summary": self.summary,
            "description": self.description,
            "response_description": self.response_description,
            "responses": dict(self.responses),
            "deprecated": self.deprecated,
            "operation_id": self.operation_id,
            "include_in_schema": self.include_in_schema,
            "name": self.name,
            "dependencies": list(self.dependencies),
            "response_class": self.response_class,
        }

    @property
    def plan(self) -> HandlerPlan:
        """The compiled plan; raises ``RouteError`` for an unservable signature
        or option (``timeout``, ``max_json_depth``, ``request_id``)."""
        plan = self._plan
        if plan is None:
            from ._invoke import compile_route

            plan = compile_route(self)
            _finish_plan(self, plan)
            self._plan = plan
        return plan

    @property
    def schema(self) -> dict[str, Any]:
        """The route's schemas as handed to the host (``path``, ``query``,
        ``headers``, ``cookies``, ``body``) with its options (``body_limit``,
        ``request_timeout_ms``, ``max_json_depth``, ``request_id``) and, when there is any, its metadata
        (``openapi``: :attr:`openapi`; ``info``: the app's)."""
        return self.plan.schema

    @property
    def openapi(self) -> dict[str, Any]:
        """The route's ``"openapi"`` object for the host (interface decision
        1): ``summary``, ``description``, ``tags``, ``operationId``,
        ``deprecated``, ``status``, ``responses``, ``include``."""
        meta: dict[str, Any] = {}
        if self.summary:
            meta["summary"] = self.summary
        if self.operation_id:
            meta["operationId"] = self.operation_id
        if self.status_code != 200 and self.status_code < 600:
            meta["status"] = self.status_code
        description = self.description
        if description is None:
            description = _docstring(self.handler)
        if description:
            meta["description"] = description
        if self.tags:
            meta["tags"] = list(self.tags)
        if self.deprecated:
            meta["deprecated"] = True
        responses = _responses_object(self)
        if responses:
            meta["responses"] = responses
        if not self.include_in_schema:
            meta["include"] = False
        return meta

    def __repr__(self) -> str:
        name = getattr(self.handler, "__qualname__", repr(self.handler))
        return f"Route({self.method} {self.path} -> {name})"


def _tag(tag: Any) -> str:
    return str(tag.value) if isinstance(tag, enum.Enum) else str(tag)


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _docstring(handler: Any) -> str:
    """FastAPI's default description: the handler's docstring, up to a
    form feed."""
    target = inspect.unwrap(handler)
    doc = target.__doc__ if inspect.isroutine(target) else None
    if not doc:
        return ""
    return inspect.cleandoc(doc).split("\f")[0].strip()


def _operation_id(route: Route) -> str:
    """FastAPI's generated operation id: ``{name}{path}_{method}`` with
    every non-word character replaced by ``_``."""
    return re.sub(r"\W", "_", f"{route.name}{route.path}") + f"_{route.method.lower()}"


def _responses_object(route: Route) -> dict[str, Any]:
    """``responses=`` in OpenAPI shape: status keys as strings, ``model``
    as a JSON schema under ``content``; the success response's
    description (FastAPI's "Successful Response" by default) and its media
    type when ``response_class`` is not JSON."""
    result: dict[str, Any] = {}
    for status, spec in route.responses.items():
        entry = {k: v for k, v in dict(spec).items() if k != "model"}
        model = spec.get("model")
        if model is not None:
            media = entry.setdefault("content", {}).setdefault("application/json", {})
            media.setdefault("schema", _model_schema(model))
        entry.setdefault("description", _phrase(status))
        result[str(status)] = entry
    media_type = getattr(route.response_class, "media_type", None)
    other_type = bool(media_type) and media_type != "application/json"
    if route.status_code < 600 and (other_type or route.response_description != DEFAULT_RESPONSE_DESCRIPTION):
        entry = result.setdefault(str(route.status_code), {})
        entry.setdefault("description", route.response_description)
        if other_type:
            entry.setdefault("content", {media_type: {"schema": {"type": "string"}}})
    return result


def _phrase(status: int | str) -> str:
    try:
        return http.HTTPStatus(int(status)).phrase
    except ValueError:
        return "Additional Response"


def _model_schema(model: Any) -> dict[str, Any]:
    """The JSON schema of a ``responses={...: {"model": X}}`` model, its
    ``$defs`` inlined (the host hoists ``$defs`` of body and response
    schemas only; a ``#/$defs/X`` left here would dangle in the document)."""
    from ._models import _body_schema

    schema = dict(_body_schema(model))
    defs = schema.pop("$defs", None) or {}
    return _inline(schema, defs, ()) if defs else schema


def _inline(node: Any, defs: Mapping[str, Any], active: tuple[str, ...]) -> Any:
    """``node`` with each ``{"$ref": "#/$defs/X"}`` replaced by ``X``'s
    schema; a model that contains itself is cut to ``{}`` there."""
    if isinstance(node, list):
        return [_inline(item, defs, active) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref[len("#/$defs/") :]
        if name in active or name not in defs:
            return {}
        return _inline(defs[name], defs, (*active, name))
    return {key: _inline(value, defs, active) for key, value in node.items()}


def _form_media_types(route: Route, plan: HandlerPlan) -> list[str] | None:
    """The media types a form route's body is documented under: multipart
    when a parameter (of the handler or of its dependencies) is a file
    (``File()``, ``UploadFile``), multipart or urlencoded when there are
    ``Form()`` fields only; ``None`` for other routes."""
    body = plan.schema.get("body")
    if not isinstance(body, dict):
        return None
    kinds = _form_kinds(route.handler, set())
    if "file" in kinds:
        return ["multipart/form-data"]
    if "form" in kinds:
        return ["application/x-www-form-urlencoded", "multipart/form-data"]
    return None


def _form_kinds(function: Any, seen: set[int]) -> set[str]:
    """``"form"``/``"file"`` for each such parameter of ``function`` and of
    the dependencies it declares."""
    import typing

    from ._params import Depends, ParamInfo
    from ._upload import UploadFile

    if id(function) in seen:
        return set()
    seen.add(id(function))
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(inspect.unwrap(function), include_extras=True)
    except Exception:  # noqa: BLE001 - compile_route reports unusable signatures
        return set()
    kinds: set[str] = set()
    for name, parameter in signature.parameters.items():
        markers = [parameter.default, *getattr(hints.get(name), "__metadata__", ())]
        for marker in markers:
            if isinstance(marker, ParamInfo) and marker.source in ("form", "file"):
                kinds.add(marker.source)
            elif isinstance(marker, Depends) and marker.dependency is not None:
                kinds |= _form_kinds(marker.dependency, seen)
        if "UploadFile" in repr(hints.get(name)) or hints.get(name) is UploadFile:
            kinds.add("file")
    return kinds


def _finish_plan(route: Route, plan: HandlerPlan) -> None:
    """What the app surface adds to a compiled plan: the ``openapi``/``info``
    metadata in the schema sent to the host, the ``response_class``
    wrapping of returned values, and the app's exception handlers."""
    import msgspec

    openapi = route.openapi
    media_types = _form_media_types(route, plan)
    if media_types:
        openapi["body_media_types"] = media_types
    app = route.app
    info = app.openapi_info() if app is not None else None
    if openapi or info:
        schema = plan.schema
        if openapi:
            schema["openapi"] = {**(schema.get("openapi") or {}), **openapi}
        if info:
            schema["info"] = info
        plan.schema_json = msgspec.json.encode(schema).decode()
    if route.response_class is not None:
        _wrap_in_response_class(route, plan)
    if app is not None and app.exception_handlers:
        from ._exception_handlers import guard

        guard(plan, app)


def _wrap_in_response_class(route: Route, plan: HandlerPlan) -> None:
    """Returned values that are not ``Response``s become ``response_class``
    responses with the route's status (after ``response_model``)."""
    from ._responses import JSONResponse, Response

    cls = route.response_class
    if cls is None or cls is JSONResponse or not (isinstance(cls, type) and issubclass(cls, Response)):
        return
    convert = plan.response_convert
    status = plan.status_code

    def wrap(result: Any) -> Any:
        if convert is not None:
            result = convert(result)
        if isinstance(result, Response):
            return result
        return cls(result, status_code=status)

    plan.response_convert = wrap


# ---------------------------------------------------------------------------
# The shared decorators


class RouteRegistrar:
    """The route decorators of ``App`` and :class:`APIRouter`.

    A subclass sets ``routes``, ``prefix``, ``tags``, ``dependencies``,
    ``responses``, ``deprecated``, ``include_in_schema`` and
    ``default_response_class``; routes it makes get the prefix in front of
    their path, its tags after theirs, its dependencies before theirs and
    its responses under theirs, as in FastAPI.
    """

    routes: list[Route]
    startup_hooks: list[Callable[[], Any]]
    shutdown_hooks: list[Callable[[], Any]]
    lifespan: LifespanFactory | None
    prefix: str
    tags: list[str]
    dependencies: list[Any]
    responses: dict[int | str, Mapping[str, Any]]
    deprecated: bool | None
    include_in_schema: bool
    default_response_class: type[Any] | None

    def _owner_app(self) -> App | None:
        """The ``App`` routes added here serve (``None`` for a router)."""
        return None

    def _make_route(self, method: str, path: str, handler: Callable[..., Any], options: RouteOptions) -> Route:
        """A route under this registrar's prefix, tags, dependencies and
        responses (not added)."""
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise TypeError(f"unexpected route keyword(s): {', '.join(sorted(unknown))}")
        if path and not path.startswith("/"):
            raise ValueError(f"route path {path!r} must start with '/' (or be empty under a router prefix)")
        full = self.prefix + path
        opts: dict[str, Any] = dict(options)
        opts["tags"] = [*(opts.get("tags") or ()), *self.tags]
        opts["dependencies"] = [*self.dependencies, *(opts.get("dependencies") or ())]
        opts["responses"] = {**self.responses, **(opts.get("responses") or {})}
        opts["deprecated"] = opts.get("deprecated") or self.deprecated
        opts["include_in_schema"] = opts.get("include_in_schema", True) and self.include_in_schema
        if opts.get("response_class") is None:
            opts["response_class"] = self.default_response_class
        app = self._owner_app()
        if app is not None and not full:
            name = getattr(handler, "__name__", repr(handler))
            raise ValueError(
                f"route {method} for handler {name}: the prefix and the path are both empty; "
                "give the route a path such as '/' or include the router with a prefix"
            )
        return Route(method, full, handler, app=app, **opts)

    # -- FastAPI's API --------------------------------------------------------

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] | None = None,
        **options: Unpack[RouteOptions],
    ) -> None:
        """Serves ``path`` with ``endpoint`` for each of ``methods``
        (default ``["GET"]``); the keywords as for :meth:`api_route`."""
        for method in _methods(methods):
            self.routes.append(self._make_route(method, path, endpoint, options))

    def api_route(
        self,
        path: str,
        *,
        methods: Iterable[str] | None = None,
        **options: Unpack[RouteOptions],
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: serve ``path`` for each of ``methods`` (default
        ``["GET"]``). Keywords: ``status_code``, ``response_model``,
        ``tags``, ``summary``, ``description`` (default: the docstring),
        ``response_description``, ``responses``, ``deprecated``,
        ``operation_id``, ``include_in_schema``, ``name``,
        ``dependencies``, ``response_class``, and spikard's ``body_limit``
        (bytes), ``timeout`` (seconds, ``0 < timeout <= 3600``),
        ``max_json_depth`` (``1`` to ``127``: deeper JSON bodies get a 400),
        ``request_id`` (``False``: no request id header) and ``media_type``
        (of a streamed generator)."""

        def decorate(handler: HandlerT) -> HandlerT:
            self.add_api_route(path, handler, methods=methods, **options)
            return handler

        return decorate

    def add_route(self, method: str, path: str, handler: Callable[..., Any], **options: Unpack[RouteOptions]) -> Route:
        """Adds one ``method path`` route and returns it (spikard's form)."""
        route = self._make_route(method, path, handler, options)
        self.routes.append(route)
        return route

    def route(self, method: str, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        """Decorator: serve ``method path`` (keywords as for :meth:`api_route`)."""
        return self.api_route(path, methods=[method], **options)

    def get(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``GET`` route (the host also serves ``HEAD`` with it)."""
        return self.api_route(path, methods=["GET"], **options)

    def post(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``POST`` route."""
        return self.api_route(path, methods=["POST"], **options)

    def put(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``PUT`` route."""
        return self.api_route(path, methods=["PUT"], **options)

    def patch(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``PATCH`` route."""
        return self.api_route(path, methods=["PATCH"], **options)

    def delete(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``DELETE`` route."""
        return self.api_route(path, methods=["DELETE"], **options)

    def head(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``HEAD`` route."""
        return self.api_route(path, methods=["HEAD"], **options)

    def options(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        """Decorator: an ``OPTIONS`` route."""
        return self.api_route(path, methods=["OPTIONS"], **options)

    def trace(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        """Decorator: a ``TRACE`` route."""
        return self.api_route(path, methods=["TRACE"], **options)

    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Iterable[str | enum.Enum] | None = None,
        dependencies: Sequence[Any] | None = None,
        responses: Mapping[int | str, Mapping[str, Any]] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        default_response_class: type[Any] | None = None,
    ) -> None:
        """Copies ``router``'s routes here, now (routes added to it later are
        not included, as in FastAPI), under ``prefix`` and this registrar's
        own prefix; ``tags`` go before the routes' tags, ``dependencies``
        before theirs, ``responses`` under theirs. The router's
        ``on_startup``/``on_shutdown`` hooks are added after these, and its
        ``lifespan`` runs inside this one's."""
        if not isinstance(router, APIRouter):
            raise TypeError(f"include_router takes an APIRouter, got {type(router).__name__}")
        if router is self:
            raise ValueError("a router cannot include itself")
        _check_prefix(prefix, "include_router(prefix=...)")
        extra_tags = [_tag(t) for t in tags or ()]
        for route in router.routes:
            path = prefix + route.path
            if not path and not self.prefix and self._owner_app() is not None:
                raise ValueError(
                    f"route {route.method} {route.name}: the prefix and the path are both empty; "
                    "include the router with prefix='/...' or give the route a path such as '/'"
                )
            opts = route.options()
            opts["tags"] = [*extra_tags, *(opts.get("tags") or ())]
            opts["dependencies"] = [*(dependencies or ()), *(opts.get("dependencies") or ())]
            opts["responses"] = {**(responses or {}), **(opts.get("responses") or {})}
            opts["deprecated"] = opts.get("deprecated") or deprecated
            opts["include_in_schema"] = opts.get("include_in_schema", True) and include_in_schema
            if opts.get("response_class") is None:
                opts["response_class"] = default_response_class
            self.routes.append(self._make_route(route.method, path, route.handler, opts))
        self.startup_hooks.extend(router.startup_hooks)
        self.shutdown_hooks.extend(router.shutdown_hooks)
        if router.lifespan is not None:
            self.lifespan = merge_lifespans(self.lifespan, router.lifespan)


def _methods(methods: Iterable[str] | None) -> list[str]:
    if methods is None:
        return ["GET"]
    if isinstance(methods, str):
        methods = [methods]
    found = _unique(str(m).upper() for m in methods)
    if not found:
        raise ValueError("methods is empty; give at least one HTTP method, e.g. methods=['GET']")
    return found


def _check_prefix(prefix: str, what: str) -> None:
    """FastAPI's rules for a path prefix: empty, or starts with '/' and does
    not end with one."""
    if not isinstance(prefix, str):
        raise TypeError(f"{what}: the prefix must be a str, got {type(prefix).__name__}")
    if prefix and not prefix.startswith("/"):
        raise ValueError(f"{what}: the prefix {prefix!r} must start with '/', e.g. {'/' + prefix!r}")
    if prefix.endswith("/"):
        raise ValueError(
            f"{what}: the prefix {prefix!r} must not end with '/' (route paths start with one); "
            f"use {prefix.rstrip('/')!r}"
        )


class APIRouter(RouteRegistrar):
    """A group of routes, as FastAPI's ``APIRouter``: decorate handlers with
    ``@router.get(path)`` & co., then ``app.include_router(router)``.

    ``prefix`` goes in front of every route's path (it starts with '/' and
    does not end with one); ``tags`` after the routes' own tags;
    ``dependencies`` (``Depends(...)``) run before the routes' own;
    ``responses`` are documented for every route (under the routes' own).
    ``on_startup``, ``on_shutdown`` and ``lifespan`` join the app's when the
    router is included. Routers nest: ``router.include_router(other)``.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        tags: Iterable[str | enum.Enum] | None = None,
        dependencies: Sequence[Any] | None = None,
        responses: Mapping[int | str, Mapping[str, Any]] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        default_response_class: type[Any] | None = None,
        on_startup: Iterable[Callable[[], Any]] | None = None,
        on_shutdown: Iterable[Callable[[], Any]] | None = None,
        lifespan: LifespanFactory | None = None,
    ) -> None:
        _check_prefix(prefix, "APIRouter(prefix=...)")
        self.startup_hooks: list[Callable[[], Any]] = list(on_startup or ())
        self.shutdown_hooks: list[Callable[[], Any]] = list(on_shutdown or ())
        self.lifespan = check_lifespan(lifespan)
        self.prefix = prefix
        self.tags: list[str] = _unique(_tag(t) for t in tags or ())
        self.dependencies: list[Any] = list(dependencies or ())
        self.responses: dict[int | str, Mapping[str, Any]] = dict(responses or {})
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.default_response_class = default_response_class
        self.routes: list[Route] = []

    def __repr__(self) -> str:
        return f"APIRouter(prefix={self.prefix!r}, {len(self.routes)} routes)"
