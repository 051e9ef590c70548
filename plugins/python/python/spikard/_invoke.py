"""From a handler's signature to its per-request plan.

:func:`compile_route` runs once per handler, when the runtime starts: the
type hints are read, each parameter gets a source (path, query, headers,
cookies, body) and its schema (:mod:`._schemas`, :mod:`._models`). Per
request, the host has already validated and coerced every value, so the
plan's ``invoke`` only picks values out of the decoded parameters, converts
those that need it and calls the handler.
"""

from __future__ import annotations

import binascii
import functools
import inspect
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, get_args, get_origin

import msgspec

from ._background import BackgroundTasks
from ._models import _body_error, _body_schema, _BodyCodec, _conversion_error
from ._params import REQUIRED, Depends, ParamInfo, SecurityScopes
from ._request import Request
from ._responses import HTTPException, Response
from ._schemas import (
    _ARRAY_ORIGINS,
    _MISSING,
    _SOURCES,
    Converter,
    RouteError,
    _constrain,
    _document,
    _hoist,
    _involves_pydantic,
    _is_body_type,
    _is_pydantic_model,
    _json_default,
    _nullable,
    _scalar_schema,
    _split_optional,
    _strip_annotated,
    handler_location,
    path_params,
)
from ._streaming import DEFAULT_MEDIA_TYPE, is_generator_function
from ._upload import UploadFile
from .exceptions import RequestValidationError

if TYPE_CHECKING:
    from ._app import Route

__all__ = ["HandlerPlan", "RouteError", "compile_route", "handler_location", "path_params"]


def _form_of(params_json: Any) -> Any:
    """The host's validated form fields (an urlencoded body), if any."""
    if not params_json:
        return None
    params = params_json if isinstance(params_json, dict) else msgspec.json.decode(params_json)
    return params.get("form")


# ---------------------------------------------------------------------------
# The plan


class _Param:
    __slots__ = ("conv", "default", "key", "name", "required", "schema", "source", "tp")

    def __init__(
        self,
        name: str,
        source: str,
        key: str,
        tp: Any,
        required: bool,
        default: Any,
        schema: dict[str, Any],
        conv: Converter | None,
    ) -> None:
        self.name = name
        self.source = source
        self.key = key
        self.tp = tp
        self.required = required
        self.default = default
        self.schema = schema
        self.conv = conv


class HandlerPlan:
    """What a route needs per request, computed once.

    ``invoke(params_json, body, headers, request_id)`` builds the keyword
    arguments and calls the handler, returning its result (a coroutine for
    ``async def`` handlers). ``schema`` is the route's schemas for the host.
    """

    __slots__ = (
        "after",
        "awaits",
        "handler",
        "handler_id",
        "invoke",
        "is_async",
        "is_async_gen",
        "name",
        "params",
        "response_convert",
        "route",
        "schema",
        "schema_json",
        "status_code",
        "stream_head",
        "uploads",
        "wants_request",
    )

    def __init__(self, route: Route) -> None:
        self.route = route
        self.handler = route.handler
        self.name = handler_location(route.handler)
        self.status_code = route.status_code
        #: ``async def`` with ``yield``: served on the loop, like ``async def``.
        self.is_async_gen = is_generator_function(route.handler)
        self.is_async = self.is_async_gen or _is_async(route.handler)
        self.wants_request = False
        self.params: list[_Param] = []
        #: The route makes ``UploadFile``s (put in ``after.uploads``, closed
        #: after the response is sent); implies ``after``.
        self.uploads = False
        #: ``invoke`` takes a fifth argument, the request's
        #: :class:`~spikard._background.AfterResponse` (uploads, background
        #: tasks, generator dependencies, the ``response`` parameter).
        self.after = False
        #: ``invoke`` returns an awaitable (run on the event loop).
        self.awaits = self.is_async and not self.is_async_gen
        #: The route's index in the runtime (set by the runtime).
        self.handler_id = 0
        self.schema: dict[str, Any] = {}
        self.schema_json = "{}"
        self.response_convert: Converter | None = None
        #: The headers of a generator the handler returns.
        self.stream_head: list[tuple[str, str]] = [("content-type", _stream_media_type(route))]
        #: ``invoke(params_json, body, headers, source[, after])``.
        self.invoke: Callable[..., Any] = _unset_invoke

    def __repr__(self) -> str:
        return f"HandlerPlan({self.route.method} {self.route.path} -> {self.name})"


def _stream_media_type(route: Route) -> str:
    media_type = getattr(route, "media_type", None) or DEFAULT_MEDIA_TYPE
    if media_type.startswith("text/") and "charset" not in media_type:
        media_type += "; charset=utf-8"
    return media_type


def _unset_invoke(params_json: Any, body: bytes, headers: Any, request_id: str) -> Any:
    raise RuntimeError("route not compiled")


def _is_async(handler: Any) -> bool:
    target = handler
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - callable objects
    return not inspect.isfunction(target) and call is not None and inspect.iscoroutinefunction(call)


def _type_hints(handler: Callable[..., Any], where: str) -> dict[str, Any]:
    target = handler
    while isinstance(target, functools.partial):
        target = target.func
    if isinstance(target, type):  # a class (a dependency): its __init__'s parameters
        target = typing.cast(Any, target).__init__
    elif not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(target, "__call__", target)  # noqa: B004
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - reported with the fix
        raise RouteError(
            f"{where}: cannot resolve its type hints ({type(exc).__name__}: {exc}); "
            "define every type the signature names at module level, before the handler is used"
        ) from None


#: A body parameter: ``(name, key, type, marker, default, metadata)``.
BodyDecl = tuple[str, str, Any, "ParamInfo | None", Any, list[Any]]
#: A form parameter: ``(name, key, source, type, marker, default, metadata)``.
FormDecl = tuple[str, str, str, Any, "ParamInfo | None", Any, list[Any]]

#: Parameters whose value the runtime makes: the annotation's class → kind.
SPECIAL_KINDS: Final = (
    (Request, "request"),
    (Response, "response"),
    (BackgroundTasks, "background"),
    (SecurityScopes, "scopes"),
)

#: Names spikard exports under the same name as FastAPI/Starlette.
_OURS: Final = frozenset(
    {
        "Body", "Cookie", "Depends", "File", "Form", "Header", "Path", "Query", "Security",
        "SecurityScopes", "BackgroundTasks", "Request", "Response", "UploadFile", "HTTPException",
    }
)  # fmt: skip


class Signature:
    """One callable's parameters by kind: a handler's or a dependency's.

    ``params``: path/query/header/cookie parameters; ``bodies``, ``forms``:
    body members and form fields; ``specials``: ``(name, kind)`` of
    parameters the runtime fills (``request``, ``response``,
    ``background``, ``scopes``); ``deps``: ``(name, Depends, dependency)``.
    """

    __slots__ = ("bodies", "deps", "forms", "params", "specials")

    def __init__(self) -> None:
        self.params: list[_Param] = []
        self.bodies: list[BodyDecl] = []
        self.forms: list[FormDecl] = []
        self.specials: list[tuple[str, str]] = []
        self.deps: list[tuple[str, Depends, Any]] = []


def _foreign(obj: Any) -> str | None:
    """``fastapi.params.Depends`` & co.: the dotted name of a FastAPI or
    Starlette class (of ``obj``, or ``obj`` itself when a class), else None."""
    cls = obj if isinstance(obj, type) else type(obj)
    module = getattr(cls, "__module__", None)
    if not isinstance(module, str) or module.partition(".")[0] not in ("fastapi", "starlette"):
        return None
    return f"{module}.{cls.__qualname__}"


def _reject_foreign(prefix: str, name: str, tp: Any, metadata: list[Any], default: Any) -> None:
    """A leftover FastAPI/Starlette marker or class must not silently become
    a query parameter: a RouteError naming the spikard replacement."""
    for what, obj in (("default", default), *(("Annotated metadata", item) for item in metadata)):
        dotted = _foreign(obj) if not isinstance(obj, type) else None
        if dotted is not None:
            short = dotted.rpartition(".")[2]
            fix = (
                f"use spikard.{short} (change the import: from spikard import {short})"
                if short in _OURS
                else f"spikard has no {short}; use its own markers (Query, Header, Depends, ...)"
            )
            raise RouteError(f"{prefix}: parameter {name!r}: its {what} is {dotted} from another framework; {fix}")
    for candidate in (tp, *get_args(tp)):
        dotted = _foreign(candidate) if isinstance(candidate, type) else None
        if dotted is not None:
            short = dotted.rpartition(".")[2]
            fix = (
                f"annotate it spikard.{short} (change the import: from spikard import {short})"
                if short in _OURS
                else f"spikard has no {short}"
            )
            raise RouteError(f"{prefix}: parameter {name!r} is annotated {dotted} from another framework; {fix}")


def _special_kind(tp: Any) -> str | None:
    if isinstance(tp, type):
        for cls, kind in SPECIAL_KINDS:
            if issubclass(tp, cls):
                return kind
    return None


def analyze(fn: Callable[..., Any], prefix: str, in_path: list[str]) -> Signature:
    """Reads one callable's signature (``prefix`` names it in errors:
    ``handler f (app.py:3)`` or ``…: dependency g (app.py:9)``)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise RouteError(f"{prefix}: has no inspectable signature ({exc})") from None
    hints = _type_hints(fn, prefix)
    sig = Signature()
    keys: dict[tuple[str, str], str] = {}
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise RouteError(
                f"{prefix}: parameter {name!r} is positional-only; remove the '/' so it can be passed by name"
            )
        annotation = hints.get(name, parameter.annotation)
        if annotation is inspect.Parameter.empty:
            annotation = Any
        tp, metadata = _strip_annotated(annotation)
        _reject_foreign(prefix, name, tp, metadata, parameter.default)
        info: ParamInfo | None = None
        dep: Depends | None = None
        for item in metadata:
            if isinstance(item, ParamInfo):
                info = item
            elif isinstance(item, Depends):
                dep = item
        default = parameter.default
        if isinstance(default, Depends):
            dep = default
        if dep is not None:
            dependency = dep.dependency if dep.dependency is not None else tp
            if not callable(dependency) or dependency is Any:
                raise RouteError(
                    f"{prefix}: parameter {name!r}: Depends() without a dependency calls the annotated type, "
                    f"but {tp!r} is not callable; pass it: Depends(get_{name})"
                )
            sig.deps.append((name, dep, dependency))
            continue
        if isinstance(default, ParamInfo):
            info = default
            default = default.default
        elif info is not None and not info.required:
            default = info.default if default is inspect.Parameter.empty else default
        if default is inspect.Parameter.empty or default is Ellipsis:
            default = REQUIRED

        special = _special_kind(tp)
        if special is not None:
            sig.specials.append((name, special))
            continue

        if info is not None:
            source: str = info.source
        elif name in in_path:
            source = "path"
        elif _is_upload_type(tp):
            source = "file"
        elif _is_body_type(tp):
            source = "body"
        else:
            source = "query"

        if source == "body":
            key = (info.alias if info is not None and info.alias else None) or name
            sig.bodies.append((name, key, tp, info, default, metadata))
            continue
        if source in ("form", "file"):
            key = (info.alias if info is not None and info.alias else None) or name
            sig.forms.append((name, key, source, tp, info, default, metadata))
            continue
        try:
            param = _make_param(name, source, tp, info, default, metadata, in_path)
        except RouteError as exc:
            raise RouteError(f"{prefix}: {exc}") from None
        except TypeError as exc:
            raise RouteError(
                f"{prefix}: {source} parameter {name!r}: {exc}; use int, float, str, bool, "
                "UUID, date, datetime, an Enum, a Literal, or a list of those"
            ) from None
        other = keys.setdefault((param.source, param.key), param.name)
        if other != param.name:
            raise RouteError(
                f"{prefix}: parameters {other!r} and {param.name!r} both read "
                f"{param.source} {param.key!r}; give one of them another alias"
            )
        sig.params.append(param)
    return sig


class RouteSchema:
    """A route's schemas for the host and the readers of its body: what
    :func:`route_schema` makes of the parameters of its callables."""

    __slots__ = ("body_reader", "form_reader", "makes_uploads", "schema")

    def __init__(self) -> None:
        self.schema: dict[str, Any] = {}
        self.body_reader: Callable[[dict[str, Any], bytes, Any], None] | None = None
        self.form_reader: Callable[[dict[str, Any], Any, list[UploadFile]], None] | None = None
        self.makes_uploads = False


def route_schema(
    params: list[_Param], bodies: list[BodyDecl], forms: list[FormDecl], where: str, in_path: list[str]
) -> RouteSchema:
    """The path/query/header/cookie schemas of ``params`` and the body
    schema and reader of ``bodies`` or ``forms`` (``where`` prefixes
    errors)."""
    out = RouteSchema()
    schema = out.schema
    for source in _SOURCES:
        group = [p for p in params if p.source == source]
        if not group:
            continue
        defs: dict[str, Any] = {}
        properties: dict[str, Any] = {}
        for p in group:
            sub = dict(p.schema)
            if "$defs" in sub:
                defs.update(sub.pop("$defs"))
            properties[p.key] = sub
        obj: dict[str, Any] = {"type": "object", "properties": properties}
        required = list(dict.fromkeys(p.key for p in group if p.required))
        if required:
            obj["required"] = required
        if defs:
            obj["$defs"] = defs
        schema[source] = obj

    if forms and bodies:
        raise RouteError(
            f"{where}: parameter {bodies[0][0]!r} is a JSON body but {forms[0][0]!r} is a form field "
            "(Form/File/UploadFile); a request has one body, either a form (multipart/form-data or urlencoded) "
            "or JSON: declare the model's fields as Form() parameters, or move the file to another route"
        )
    if forms:
        try:
            out.form_reader, schema["body"], out.makes_uploads = _make_form(forms, in_path)
        except RouteError as exc:
            raise RouteError(f"{where}: {exc}") from None
        except TypeError as exc:
            raise RouteError(
                f"{where}: {exc}; a Form() field is int, float, str, bool, UUID, date, datetime, "
                "an Enum, a Literal, or a list of those"
            ) from None
    if bodies:
        try:
            out.body_reader, body_schema = _make_body(bodies)
        except RouteError as exc:
            raise RouteError(f"{where}: {exc}") from None
        except TypeError as exc:
            raise RouteError(f"{where}: {exc}") from None
        if body_schema is not None:
            schema["body"] = body_schema
    return out


def compile_route(route: Route) -> HandlerPlan:
    """Reads the handler's signature and returns its plan; raises
    :class:`RouteError` naming the handler and parameter when it cannot be
    served."""
    plan = HandlerPlan(route)
    where = plan.name
    handler = route.handler
    in_path = path_params(route.path)
    sig = analyze(handler, f"handler {where}", in_path)
    route_deps = list(getattr(route, "dependencies", None) or ())
    if sig.deps or route_deps or any(kind != "request" for _, kind in sig.specials):
        from ._di import compile_dependencies

        schema = compile_dependencies(plan, sig, route_deps, in_path)
    else:
        request_kw = next((name for name, _ in sig.specials), None)
        built = route_schema(sig.params, sig.bodies, sig.forms, f"handler {where}", in_path)
        schema = built.schema
        plan.params = sig.params
        plan.uploads = plan.after = built.makes_uploads
        plan.wants_request = request_kw is not None
        if built.form_reader is not None:
            plan.invoke = _make_form_invoke(handler, sig.params, built.form_reader, request_kw)
        else:
            plan.invoke = _make_invoke(handler, sig.params, built.body_reader, request_kw)
    if route.body_limit is not None:
        schema["body_limit"] = int(route.body_limit)
    if route.timeout is not None:
        schema["request_timeout_ms"] = _timeout_ms(route, where)
    if route.max_json_depth is not None:
        schema["max_json_depth"] = _json_depth(route, where)
    if route.request_id is not None:
        schema["request_id"] = _request_id(route, where)
    if route.response_model is not None:
        plan.response_convert = _response_converter(route.response_model)
    plan.schema = schema
    plan.schema_json = msgspec.json.encode(schema).decode()
    return plan


#: The longest per-route timeout, in seconds (the host's limit: one hour).
MAX_TIMEOUT: Final = 3600.0


def _timeout_ms(route: Route, where: str) -> int:
    """The route's ``timeout`` (seconds) in whole milliseconds for the host,
    at least 1; a :class:`RouteError` naming the route when it is not a
    number of seconds in (0, 3600]."""
    timeout = route.timeout
    prefix = f"route {route.method} {route.path}: handler {where}: timeout={timeout!r}"
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise RouteError(f"{prefix} is a {type(timeout).__name__}; give the seconds as a number, e.g. timeout=2.5")
    if not 0 < timeout <= MAX_TIMEOUT:  # NaN fails too
        raise RouteError(
            f"{prefix} is out of range; give seconds greater than 0 and at most {MAX_TIMEOUT:g} (one hour), "
            "e.g. timeout=2.5"
        )
    return max(1, round(timeout * 1000))


#: The deepest ``max_json_depth`` a route may set (the host's JSON parser's own limit).
MAX_JSON_DEPTH: Final = 127


def _json_depth(route: Route, where: str) -> int:
    """The route's ``max_json_depth`` for the host; a :class:`RouteError`
    naming the route when it is not a whole number from 1 to 127."""
    depth = route.max_json_depth
    prefix = f"route {route.method} {route.path}: handler {where}: max_json_depth={depth!r}"
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise RouteError(
            f"{prefix} is a {type(depth).__name__}; give the nesting levels as an int, e.g. max_json_depth=8"
        )
    if not 1 <= depth <= MAX_JSON_DEPTH:
        raise RouteError(
            f"{prefix} is out of range; give 1 to {MAX_JSON_DEPTH} (the host's JSON parser's limit), "
            "e.g. max_json_depth=8"
        )
    return depth


def _request_id(route: Route, where: str) -> bool:
    """The route's ``request_id`` for the host; a :class:`RouteError` naming
    the route when it is not a bool."""
    value = route.request_id
    if not isinstance(value, bool):
        raise RouteError(
            f"route {route.method} {route.path}: handler {where}: request_id={value!r} is a "
            f"{type(value).__name__}; give True or False, e.g. request_id=False"
        )
    return value


def _make_param(
    name: str,
    source: str,
    tp: Any,
    info: ParamInfo | None,
    default: Any,
    metadata: list[Any],
    in_path: list[str],
) -> _Param:
    alias = info.alias if info is not None else None
    if source == "headers":
        if alias:
            key = alias.lower()
        elif info is None or info.convert_underscores:
            key = name.replace("_", "-").lower()
        else:
            key = name.lower()
    else:
        key = alias or name
    if source == "path":
        if key not in in_path:
            raise RouteError(
                f"path parameter {name!r} is not in the path; add {{{key}}} to the path or make it a Query()"
            )
        default = REQUIRED
    elif name in in_path and alias is None:
        raise RouteError(
            f"parameter {name!r} is in the path but declared as {source}; drop the marker or rename the parameter"
        )

    inner, nullable = _split_optional(tp)
    if default is not REQUIRED and default is not None:
        _check_default(name, source, inner, info, metadata, default)
    defs: dict[str, Any] = {}
    schema, conv = _scalar_schema(inner, defs)
    schema = _constrain(dict(schema), [m for m in metadata if isinstance(m, msgspec.Meta)] + ([info] if info else []))
    if nullable:
        schema, conv = _nullable(schema, conv)
        if default is REQUIRED and source != "path":
            default = None
    required = default is REQUIRED
    if not required:
        has_json, value = _json_default(default)
        if has_json:
            schema["default"] = value
    if defs:
        schema["$defs"] = defs
    return _Param(name, source, key, tp, required, None if required else default, schema, conv)


_CONSTRAINTS: Final = ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern")


def _check_default(name: str, source: str, tp: Any, info: ParamInfo | None, metadata: list[Any], default: Any) -> None:
    """A default the declared type (and its constraints) would refuse is a
    mistake (``limit: int = "ten"``): the handler would get it whenever the
    parameter is absent. ``None`` is always accepted (an optional parameter)."""
    if tp is Any or tp is object:
        return
    metas = [m for m in metadata if isinstance(m, msgspec.Meta)]
    if info is not None:
        rules = {key: getattr(info, key) for key in _CONSTRAINTS if getattr(info, key) is not None}
        if rules:
            metas.append(msgspec.Meta(**rules))
    args = (tp, *metas)
    target = typing.Annotated[args] if metas else tp
    try:
        msgspec.convert(default, target, strict=True)
    except msgspec.ValidationError as exc:
        shown = getattr(tp, "__name__", None) or repr(tp)
        raise RouteError(
            f"{source} parameter {name!r}: its default {default!r} does not match the type {shown} ({exc}); "
            f"change the default to a valid {shown}, or the type"
        ) from None
    except Exception:  # noqa: BLE001 - msgspec cannot check this type (or these rules): leave it
        return


def _make_body(
    bodies: list[BodyDecl],
) -> tuple[Callable[[dict[str, Any], bytes, Any], None], dict[str, Any] | None]:
    """The reader that puts the body parameter(s) into the kwargs, and the
    body schema (``None`` for a raw ``bytes`` body)."""
    embed = len(bodies) > 1 or any(info is not None and info.embed for _, _, _, info, _, _ in bodies)
    if not embed:
        name, _key, tp, info, _default, metadata = bodies[0]
        inner = _split_optional(tp)[0]
        if inner in (bytes, bytearray):

            def read_raw(kwargs: dict[str, Any], body: bytes, params_json: Any) -> None:
                kwargs[name] = body

            return read_raw, None
        schema = _body_schema(tp)
        if not _is_body_type(tp):
            schema = _constrain(schema, [m for m in metadata if isinstance(m, msgspec.Meta)] + ([info] if info else []))
        codec = _BodyCodec(tp)
        from_json = codec.from_json
        from_python = codec.from_python

        def read(kwargs: dict[str, Any], body: bytes, params_json: Any) -> None:
            try:
                kwargs[name] = from_json(body)
            except Exception as exc:
                form = _form_of(params_json)
                if form is None:
                    raise _body_error(codec, exc) from exc
                try:
                    kwargs[name] = from_python(form)
                except Exception as exc2:
                    raise _body_error(codec, exc2) from exc2

        return read, schema

    # Several body parameters (or embed=True): the body is an object with one
    # member per parameter.
    defs: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    members: list[tuple[str, str, _BodyCodec, Any]] = []
    for name, key, tp, info, default, metadata in bodies:
        inner, nullable = _split_optional(tp)
        if inner in (bytes, bytearray):
            raise TypeError(f"body parameter {name!r}: a raw bytes body cannot be combined with other body parameters")
        sub = _body_schema(tp)
        if not _is_body_type(tp):
            sub = _constrain(sub, [m for m in metadata if isinstance(m, msgspec.Meta)] + ([info] if info else []))
        sub = _hoist(sub, defs)
        if default is not REQUIRED:
            has_json, value = _json_default(default)
            if has_json:
                sub["default"] = value
        properties[key] = sub
        if default is REQUIRED and not nullable and key not in required:
            required.append(key)
        if default is REQUIRED and nullable:
            default = None
        members.append((name, key, _BodyCodec(tp), default))
    embedded: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        embedded["required"] = required
    if defs:
        embedded["$defs"] = defs

    decode_object = msgspec.json.Decoder(dict[str, Any]).decode

    def read_members(kwargs: dict[str, Any], body: bytes, params_json: Any) -> None:
        try:
            data = decode_object(body)
        except Exception:  # noqa: BLE001
            data = _form_of(params_json)
            if data is None:
                raise HTTPException(422, "the request body is not a JSON object") from None
        for name, key, codec, default in members:
            value = data.get(key, _MISSING)
            if value is _MISSING:
                kwargs[name] = default
                continue
            try:
                kwargs[name] = codec.from_python(value)
            except Exception as exc:
                raise _body_error(codec, exc, key) from exc

    return read_members, embedded


# ---------------------------------------------------------------------------
# Forms and uploads

#: The schema of an uploaded file: the host treats a ``binary`` string
#: property as a file field (checks its rules, hands it over as an object).
_FILE_SCHEMA: Final = {"type": "string", "format": "binary"}

FormConverter = Callable[[Any, list[UploadFile]], Any]


def _is_upload(tp: Any) -> bool:
    tp = _strip_annotated(tp)[0]
    return isinstance(tp, type) and issubclass(tp, UploadFile)


def _list_item(tp: Any) -> Any:
    """The item type of ``list[T]`` & co., else ``_MISSING``."""
    origin = get_origin(tp)
    if origin in _ARRAY_ORIGINS or tp in _ARRAY_ORIGINS:
        if origin is tuple:
            args = get_args(tp)
            return args[0] if len(args) == 2 and args[1] is Ellipsis else _MISSING
        args = get_args(tp)
        return args[0] if args else Any
    return _MISSING


def _is_upload_type(tp: Any) -> bool:
    """``UploadFile``, optional or in a list: a file without a marker."""
    inner = _split_optional(_strip_annotated(tp)[0])[0]
    item = _list_item(inner)
    return _is_upload(inner if item is _MISSING else item)


def _not_a_file(key: str, value: Any) -> RequestValidationError:
    """The 422 of a text part sent for a file field: one entry at
    ``["body", key]``, as the host reports a form field's errors (FastAPI's
    ``loc`` too)."""
    received = "a list" if isinstance(value, list) else "text"
    return RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ["body", key],
                "msg": f"expected a file (a multipart/form-data part with a filename), received {received}",
                "input": value,
            }
        ]
    )


def _not_text(key: str, value: Any) -> RequestValidationError:
    """The 422 of a file sent for a text field: one entry at ``["body",
    key]`` whose ``input`` is the file's name (not its content)."""
    parts = value if isinstance(value, list) else [value]
    names = [part.get("filename") if type(part) is dict else part for part in parts]
    return RequestValidationError(
        [
            {
                "type": "string_type",
                "loc": ["body", key],
                "msg": "expected text, received a file (a part with a filename)",
                "input": names if isinstance(value, list) else names[0],
            }
        ]
    )


def _upload_of(key: str, value: Any, files: list[UploadFile]) -> UploadFile:
    if type(value) is not dict:
        raise _not_a_file(key, value)
    upload = UploadFile.from_part(value)
    files.append(upload)
    return upload


def _bytes_of(value: Any) -> bytes:
    """A file's content, or a text field's UTF-8 bytes."""
    if type(value) is dict:
        content = value.get("content") or ""
        if value.get("content_encoding") == "base64":
            return binascii.a2b_base64(content)
        return str(content).encode()
    return str(value).encode()


def _form_converter(
    key: str, kind: str, container: Callable[[Any], Any] | None, conv: Converter | None
) -> FormConverter:
    """How one member's validated value becomes the handler's argument."""
    if kind == "upload":
        return lambda value, files: _upload_of(key, value, files)
    if kind == "uploads":

        def uploads(value: Any, files: list[UploadFile]) -> Any:
            items = value if isinstance(value, list) else [value]
            result = [_upload_of(key, item, files) for item in items]
            return container(result) if container is not None else result

        return uploads
    if kind == "bytes":
        return lambda value, files: _bytes_of(value)
    if kind == "bytes_list":

        def bytes_list(value: Any, files: list[UploadFile]) -> Any:
            items = value if isinstance(value, list) else [value]
            result = [_bytes_of(item) for item in items]
            return container(result) if container is not None else result

        return bytes_list

    def field(value: Any, files: list[UploadFile]) -> Any:
        if type(value) is dict or (type(value) is list and any(type(v) is dict for v in value)):
            raise _not_text(key, value)
        if conv is None:
            return value
        try:
            return conv(value)
        except (ValueError, TypeError) as exc:
            raise _conversion_error("form", key, value, exc) from exc

    return field


def _file_schema(info: ParamInfo | None) -> dict[str, Any]:
    schema: dict[str, Any] = dict(_FILE_SCHEMA)
    if info is not None:
        if info.media_type:
            schema["contentMediaType"] = info.media_type
        if info.max_size is not None:
            schema["maxLength"] = int(info.max_size)
    return schema


def _make_form(
    forms: list[FormDecl],
    in_path: list[str],
) -> tuple[Callable[[dict[str, Any], Any, list[UploadFile]], None], dict[str, Any], bool]:
    """The reader that puts the form members into the kwargs, the body
    schema describing the form, and whether it makes ``UploadFile``s."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    defs: dict[str, Any] = {}
    members: list[tuple[str, str, Any, FormConverter]] = []
    has_files = False
    makes_uploads = False
    for name, key, source, tp, info, default, metadata in forms:
        if key in properties:
            other = next(m[0] for m in members if m[1] == key)
            raise RouteError(f"parameters {other!r} and {name!r} both read form field {key!r}; give one another alias")
        inner, nullable = _split_optional(tp)
        inner = _strip_annotated(inner)[0]
        item = _list_item(inner)
        target = inner if item is _MISSING else _split_optional(_strip_annotated(item)[0])[0]
        container = None if item is _MISSING else _ARRAY_ORIGINS.get(get_origin(inner) or inner)
        if container is list:
            container = None
        if nullable and default is REQUIRED:
            default = None
        if _is_upload(target) or (target in (bytes, bytearray) and source == "file"):
            is_upload = _is_upload(target)
            file_schema = _file_schema(info)
            if item is _MISSING:
                sub = file_schema
                kind = "upload" if is_upload else "bytes"
            else:
                sub = {"type": "array", "items": file_schema}
                kind = "uploads" if is_upload else "bytes_list"
            if info is not None:
                _document(sub, info)
            has_files = True
            makes_uploads = makes_uploads or is_upload
            conv = _form_converter(key, kind, container, None)
        elif source == "file":
            raise RouteError(
                f"File() parameter {name!r} is declared {tp!r}; declare it UploadFile, bytes or a list of those, "
                "or use Form() for a text field"
            )
        elif _is_body_type(target):
            raise RouteError(
                f"Form() parameter {name!r} is a model ({tp!r}); declare one Form() parameter per field, "
                "or drop Form(): a model body accepts urlencoded and multipart forms as well as JSON"
            )
        elif target in (bytes, bytearray):
            sub = {"type": "string"} if item is _MISSING else {"type": "array", "items": {"type": "string"}}
            if info is not None:
                _document(sub, info)
            conv = _form_converter(key, "bytes" if item is _MISSING else "bytes_list", container, None)
        else:
            param = _make_param(name, "form", tp, info, default, metadata, in_path)
            sub = param.schema
            inner_defs = sub.pop("$defs", None)
            if inner_defs:
                defs.update(inner_defs)
            conv = _form_converter(key, "field", None, param.conv)
            default = _MISSING if param.required else param.default
        if default is REQUIRED:
            default = _MISSING
        if default is _MISSING:
            required.append(key)
        properties[key] = sub
        members.append((name, key, default, conv))
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if defs:
        schema["$defs"] = defs
    accepted = "multipart/form-data" if has_files else "multipart/form-data or application/x-www-form-urlencoded"
    not_a_form = f"this route takes a form body: send it as {accepted}, not JSON"
    entries = tuple(members)
    missing = _MISSING

    def read_form(kwargs: dict[str, Any], decoded: Any, files: list[UploadFile]) -> None:
        form = decoded.get("form") if isinstance(decoded, dict) else None
        if not isinstance(form, dict):
            raise HTTPException(415, not_a_form)
        for name, key, default, conv in entries:
            value = form.get(key, missing)
            if value is missing:
                if default is missing:
                    raise HTTPException(422, f"form field {key!r} is required")
                kwargs[name] = default
            else:
                kwargs[name] = conv(value, files)

    return read_form, schema, makes_uploads


_Groups = tuple[tuple[str, tuple[tuple[str, str, Any, Converter | None], ...]], ...]


def _param_groups(params: list[_Param]) -> _Groups:
    """The parameters by source, each as ``(name, key, default or _MISSING, converter)``:
    what both invokers read per request, built once."""
    return tuple(
        (
            source,
            tuple((p.name, p.key, _MISSING if p.required else p.default, p.conv) for p in params if p.source == source),
        )
        for source in _SOURCES
        if any(p.source == source for p in params)
    )


def _read_groups(
    kwargs: dict[str, Any],
    decoded: dict[str, Any],
    groups: _Groups,
) -> None:
    """Path, query, header and cookie parameters into the kwargs."""
    missing = _MISSING
    for source, entries in groups:
        values = decoded.get(source) or {}
        for name, key, default, conv in entries:
            value = values.get(key, missing)
            if value is missing:
                if default is not missing:
                    kwargs[name] = default
            elif conv is None:
                kwargs[name] = value
            else:
                try:
                    kwargs[name] = conv(value)
                except (ValueError, TypeError) as exc:
                    raise _conversion_error(source, key, value, exc) from exc


def _make_form_invoke(
    handler: Callable[..., Any],
    params: list[_Param],
    form_reader: Callable[[dict[str, Any], Any, list[UploadFile]], None],
    request_kw: str | None,
) -> Callable[..., Any]:
    """The per-request function of a form route: ``invoke(params_json, body,
    headers, request_id, after=None)``; the uploads it makes are appended to
    ``after.uploads`` (an :class:`~spikard._background.AfterResponse`) as
    they are made, for the runtime to close after the response."""
    groups = _param_groups(params)
    decode = msgspec.json.Decoder().decode

    def invoke_form(params_json: Any, body: bytes, headers: Any, request_id: str, after: Any = None) -> Any:
        files: list[UploadFile] = after.uploads if after is not None else []
        if isinstance(params_json, dict):
            decoded = params_json
        else:
            decoded = decode(params_json) if params_json else {}
        kwargs: dict[str, Any] = {}
        if groups:
            _read_groups(kwargs, decoded, groups)
        form_reader(kwargs, decoded, files)
        if request_kw is not None:
            kwargs[request_kw] = Request(headers, decoded, body, request_id)
        return handler(**kwargs)

    return invoke_form


def _response_converter(model: Any) -> Converter:
    if _is_pydantic_model(model):
        validate = model.model_validate

        def to_pydantic(result: Any) -> Any:
            return result if isinstance(result, model) else validate(result, from_attributes=True)

        return to_pydantic
    if _involves_pydantic(model):
        import pydantic

        adapter = pydantic.TypeAdapter(model)
        return functools.partial(adapter.validate_python, from_attributes=True)
    return functools.partial(msgspec.convert, type=model, from_attributes=True, strict=False)


def _make_invoke(
    handler: Callable[..., Any],
    params: list[_Param],
    body_reader: Callable[[dict[str, Any], bytes, Any], None] | None,
    request_kw: str | None,
) -> Callable[[Any, bytes, Any, str], Any]:
    """The per-request function: as little work as the signature allows."""
    if not params and body_reader is None and request_kw is None:

        def invoke_bare(params_json: Any, body: bytes, headers: Any, request_id: str) -> Any:
            return handler()

        return invoke_bare

    groups = _param_groups(params)
    decode = msgspec.json.Decoder().decode
    missing = _MISSING
    empty: dict[str, Any] = {}

    if not groups and request_kw is None:
        reader = body_reader
        assert reader is not None

        def invoke_body(params_json: Any, body: bytes, headers: Any, request_id: str) -> Any:
            kwargs: dict[str, Any] = {}
            reader(kwargs, body, params_json)
            return handler(**kwargs)

        return invoke_body

    def invoke(params_json: Any, body: bytes, headers: Any, request_id: str) -> Any:
        kwargs: dict[str, Any] = {}
        if groups:
            decoded = params_json if isinstance(params_json, dict) else decode(params_json)
            for source, entries in groups:
                values = decoded.get(source) or empty
                for name, key, default, conv in entries:
                    value = values.get(key, missing)
                    if value is missing:
                        if default is not missing:
                            kwargs[name] = default
                    elif conv is None:
                        kwargs[name] = value
                    else:
                        try:
                            kwargs[name] = conv(value)
                        except (ValueError, TypeError) as exc:
                            raise _conversion_error(source, key, value, exc) from exc
        else:
            decoded = params_json
        if body_reader is not None:
            body_reader(kwargs, body, decoded)
        if request_kw is not None:
            kwargs[request_kw] = Request(headers, decoded, body, request_id)
        return handler(**kwargs)

    return invoke
