"""Python mode: a fixture case -> the source of one route of a spikard app.

The echo mode answers every case from a canned response in the host config;
the Python mode writes a Python package instead, one function per case that
declares the case's route with the public, FastAPI-like API of the
`spikard` package (`App.add_route`, `Query`/`Path`/`Header`/`Cookie`/`Body`/
`Form`/`File` markers, `Annotated`, `msgspec.Meta`, `Response`,
`StreamingResponse`, `EventSourceResponse`, `Depends`, `BackgroundTasks`),
and the embedded-CPython plugin serves them all from one host.

Parameters come from the standard JSON Schemas the echo mode already made
of the fixture (fixtures.build_schemas): each property becomes a parameter
with a type hint (`int`, `float`, `str`, `bool`, `UUID`, `date`,
`datetime`, `Literal[...]`, `list[T]`, `T | None`), a marker with the
constraints the markers take (`ge`, `gt`, `le`, `lt`, `min_length`,
`max_length`, `pattern`, `alias`, the default) and, for the keywords no
marker or type expresses (`multipleOf`, `format: email`, item rules, ...),
`msgspec.Meta(extra_json_schema=...)` in the `Annotated`. A JSON body is
`Annotated[Any, Body(), msgspec.Meta(extra_json_schema=<the schema>)]`, so
the host validates exactly the fixture's schema; a multipart body's files
are `UploadFile` (`File(media_type=, max_size=)`), its other fields `Form`.

The handler answers the case's expected response (`Response`), like the echo
plugin's canned answer, except that values it can check are its own: a
top-level member of the expected JSON body named like a declared scalar
parameter is the converted parameter the handler received, and a body
expected to equal the request's JSON body is the body the handler decoded.
So type conversion in Python is compared too, not only the host's checks.

Features other parts of the package may not have yet (`Depends`,
`BackgroundTasks`, `App.exception_handler`, ...) are imported inside the
case's function: an ImportError or missing attribute becomes the case's
status "needs <feature>", decided when the app is imported in the host, so
the mode picks features up as they land. `features.py` has the cases of
those categories (di, lifecycle_hooks, background).
"""

from __future__ import annotations

import json
import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .fixtures import MISSING, TOKEN, Case
from .models import struct_source

# Keywords the type hint or a marker argument carries; the rest of a
# parameter's schema goes into msgspec.Meta(extra_json_schema=...).
_MARKER_KEYWORDS = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "pattern": "pattern",
    "description": "description",
}
_LENGTH_KEYWORDS = {"minLength": "min_length", "maxLength": "max_length"}
_ITEMS_KEYWORDS = {"minItems": "min_length", "maxItems": "max_length"}
_SCALARS = {"integer": "int", "number": "float", "string": "str", "boolean": "bool"}
_FORMATS = {"uuid": "UUID", "date": "date", "date-time": "datetime", "time": "time"}

# What each source's marker is called.
_MARKERS = {"path": "Path", "query": "Query", "headers": "Header", "cookies": "Cookie"}


class NotExpressible(Exception):
    """A case the Python API cannot declare; the message says why."""


@dataclass
class Param:
    """One handler parameter: its Python name, annotation, default text,
    and (when the handler echoes it) the expected body member it fills."""

    name: str
    annotation: str
    default: str | None = None  # source text after `=`, or None
    echo_key: str | None = None
    # Source lines the case function needs before the handler (the body's
    # msgspec Struct classes).
    prelude: list[str] = field(default_factory=list)


@dataclass
class Generated:
    """The source of one case's `register(app)` function."""

    function: str  # e.g. "case_12"
    source: str
    notes: list[str] = field(default_factory=list)


def py(value: Any) -> str:
    """A JSON value as a Python literal (`repr` of dicts, lists, str, numbers,
    True/False/None; floats that are not finite are refused)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise NotExpressible(f"non-finite number {value!r} in a schema")
    return repr(value)


def ident(name: str, used: set[str], prefix: str) -> str:
    """A fresh Python identifier for a fixture name (which may be `X-API-Key`)."""
    base = re.sub(r"\W", "_", name.lower()).strip("_") or "p"
    if base[0].isdigit() or keyword.iskeyword(base):
        base = f"{prefix}_{base}"
    candidate = f"{prefix}_{base}"
    n = 2
    while candidate in used:
        candidate = f"{prefix}_{base}_{n}"
        n += 1
    used.add(candidate)
    return candidate


def kind_of(schema: dict) -> tuple[str | None, bool]:
    """(the JSON type, nullable) of a schema's `type` (a name or a list)."""
    t = schema.get("type")
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return (rest[0] if len(rest) == 1 else None), "null" in t
    return (t if isinstance(t, str) else None), False


def type_hint(schema: dict, extra: dict, consumed: set[str]) -> str:
    """The Python type for a parameter schema; marks the keywords it carries
    in `consumed`; item rules it cannot carry go to `extra["items"]`."""
    kind, _ = kind_of(schema)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(
        (isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))) for v in enum
    ):
        same = {type(v) for v in enum}
        if len(same) == 1 and (kind is None or _SCALARS.get(kind) == next(iter(same)).__name__):
            consumed.update({"enum", "type"})
            return "Literal[" + ", ".join(py(v) for v in enum) + "]"
    if kind == "string" and schema.get("format") in _FORMATS:
        consumed.update({"type", "format"})
        return _FORMATS[schema["format"]]
    if kind in _SCALARS:
        consumed.add("type")
        return _SCALARS[kind]
    if kind == "array":
        consumed.add("type")
        items = schema.get("items")
        if isinstance(items, dict):
            sub_consumed: set[str] = set()
            item = type_hint(items, {}, sub_consumed)
            if set(items) - sub_consumed:
                extra["items"] = items  # item rules: the whole items schema
            consumed.add("items")
            return f"list[{item}]"
        return "list[Any]"
    if kind == "object":
        consumed.add("type")
        return "dict[str, Any]"
    return "Any"


def marker_args(schema: dict, consumed: set[str]) -> list[str]:
    """Marker keyword arguments for the constraints markers take."""
    kind, _ = kind_of(schema)
    args = []
    lengths = _ITEMS_KEYWORDS if kind == "array" else _LENGTH_KEYWORDS
    for keyword_, arg in {**_MARKER_KEYWORDS, **lengths}.items():
        value = schema.get(keyword_)
        if keyword_ in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            continue  # draft 4 boolean form: leave it to extra_json_schema
        if keyword_ in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            continue
        if keyword_ in ("pattern", "description") and not isinstance(value, str):
            continue
        if keyword_ in lengths and not (isinstance(value, int) and not isinstance(value, bool)):
            continue
        if keyword_ in schema:
            args.append(f"{arg}={py(value)}")
            consumed.add(keyword_)
    return args


def scalar_param(source: str, key: str, schema: Any, required: bool, used: set[str]) -> Param:
    """A path/query/header/cookie parameter declared as
    `name: Annotated[T, Marker(default, alias=key, ...), msgspec.Meta(...)]`."""
    if not isinstance(schema, dict):
        schema = {} if schema is True else {"not": {}}
    consumed: set[str] = set()
    extra: dict[str, Any] = {}
    hint = type_hint(schema, extra, consumed)
    _, nullable = kind_of(schema)
    args = marker_args(schema, consumed)
    default = None
    if "default" in schema:
        default = py(schema["default"])
        consumed.add("default")
    elif not required and source != "path":
        nullable = True
        default = "None"
    for k, v in schema.items():
        if k not in consumed and k not in ("title",):
            extra.setdefault(k, v)
    if nullable and kind_of(schema)[1]:
        extra.pop("type", None)  # `T | None` says it
    marker = _MARKERS[source]
    call_args = ([default] if default is not None else []) + [f"alias={py(key)}"] + args
    parts = [f"{hint} | None" if nullable and hint != "Any" else hint, f"{marker}({', '.join(call_args)})"]
    if extra:
        parts.append(f"msgspec.Meta(extra_json_schema={py(extra)})")
    name = ident(key, used, source[0])
    return Param(name, f"Annotated[{', '.join(parts)}]")


def is_file_schema(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("format") == "binary":
        return True
    items = schema.get("items")
    return schema.get("type") == "array" and isinstance(items, dict) and items.get("format") == "binary"


def file_param(key: str, schema: dict, required: bool, used: set[str], as_bytes: bool = False) -> Param:
    """A file of a multipart body: `UploadFile` (or a list of them) with the
    host's file rules as `File(media_type=, max_size=)`; `bytes = File()`
    when the request sends the field as a part without a filename (FastAPI's
    way to take a file or a text part)."""
    many = schema.get("type") == "array"
    inner = schema.get("items") if many else schema
    args = [] if required else ["None"]
    args.append(f"alias={py(key)}")
    if isinstance(inner.get("contentMediaType"), str):
        args.append(f"media_type={py(inner['contentMediaType'])}")
    if isinstance(inner.get("maxLength"), int):
        args.append(f"max_size={inner['maxLength']}")
    unsupported = set(inner) - {"type", "format", "contentMediaType", "maxLength", "title", "description"}
    if unsupported:
        raise NotExpressible(
            f"file field {key!r} has rules File() cannot take: {', '.join(sorted(unsupported))} "
            "(File takes media_type and max_size)"
        )
    hint = ("list[bytes]" if many else "bytes") if as_bytes else ("list[UploadFile]" if many else "UploadFile")
    if not required:
        hint += " | None"
    return Param(ident(key, used, "f"), f"Annotated[{hint}, File({', '.join(args)})]")


def form_param(key: str, schema: Any, required: bool, used: set[str]) -> Param:
    """A text field of a form body: `Annotated[T, Form(...), msgspec.Meta(...)]`."""
    p = scalar_param("query", key, schema, required, used)
    p.annotation = p.annotation.replace("Query(", "Form(", 1)
    return p


def body_params(schema: Any, multipart: bool, used: set[str], unnamed: frozenset = frozenset()) -> list[Param]:
    """The body: one `Any` body carrying the fixture's schema, or, for a
    multipart form, one parameter per field."""
    if multipart and isinstance(schema, dict):
        props = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        leftover = set(schema) - {"type", "properties", "required", "title", "description", "additionalProperties"}
        if leftover:
            raise NotExpressible(
                f"multipart body schema has object-level rules ({', '.join(sorted(leftover))}) that "
                "Form()/File() parameters cannot express"
            )
        out = []
        for key, sub in props.items():
            if is_file_schema(sub):
                out.append(file_param(key, sub, key in required, used, key in unnamed))
            else:
                out.append(form_param(key, sub, key in required, used))
        return out
    used.add("body")
    model = struct_source(schema, "Body")
    if model is not None:
        classes, root = model
        return [Param("body", root, prelude=[line for c in classes for line in c.splitlines()])]
    return [Param("body", f"Annotated[Any, Body(), msgspec.Meta(extra_json_schema={py(schema)})]")]


def echo_type_ok(schema: Any, expected: Any) -> bool:
    """Whether a parameter of this schema, converted by the package, should
    encode to the expected JSON value's type (so echoing it is a fair check)."""
    if not isinstance(schema, dict) or isinstance(expected, str) and TOKEN.match(expected):
        return False
    kind, _ = kind_of(schema)
    if schema.get("format") in _FORMATS or "enum" in schema:
        # UUID, date, datetime, time and enum members encode as strings
        return kind == "string" and isinstance(expected, str)
    if kind == "integer":
        return isinstance(expected, int) and not isinstance(expected, bool)
    if kind == "number":
        return isinstance(expected, (int, float)) and not isinstance(expected, bool)
    if kind == "string":
        return isinstance(expected, str)
    if kind == "boolean":
        return isinstance(expected, bool)
    if kind == "array" and isinstance(expected, list):
        items = schema.get("items")
        return isinstance(items, dict) and all(echo_type_ok(items, e) for e in expected)
    return False


def unnamed_parts(case: Case) -> frozenset:
    """Names of the request's multipart parts sent without a filename."""
    body = case.request.body or b""
    names = set()
    for m in re.finditer(rb'Content-Disposition: form-data; name="([^"]*)"(; filename=)?', body):
        if m.group(2) is None:
            names.add(m.group(1).decode("utf-8", "replace"))
    return frozenset(names)


def is_multipart(case: Case) -> bool:
    from .fixtures import header_get  # noqa: PLC0415

    ctype = (header_get(case.request.headers, "content-type") or "").lower()
    body = case.route.schemas.get("body")
    props = body.get("properties", {}) if isinstance(body, dict) else {}
    return ctype.startswith("multipart/") or any(is_file_schema(s) for s in props.values())


def handler_params(case: Case, used: set[str]) -> list[Param]:
    """Every parameter of the case's handler, in a valid order (required
    ones first is not needed: all are keyword-only)."""
    params: list[Param] = []
    body_expected = case.expected.body if isinstance(case.expected.body, dict) else {}
    for source in ("path", "query", "headers", "cookies"):
        schema = case.route.schemas.get(source)
        if not isinstance(schema, dict):
            continue
        required = set(schema.get("required") or [])
        for key, sub in (schema.get("properties") or {}).items():
            p = scalar_param(source, key, sub, key in required or source == "path", used)
            if (
                not case.host_answers
                and key in body_expected
                and not case.expected.partial
                and echo_type_ok(sub, body_expected[key])
            ):
                # An optional parameter the expected body shows a value of
                # was sent: the handler got it converted (or its default).
                p.echo_key = key
            params.append(p)
    body = case.route.schemas.get("body")
    if body is not None:
        params += body_params(body, is_multipart(case), used, unnamed_parts(case))
    return params


def request_json(case: Case) -> Any:
    """The request body as JSON, or MISSING when it is not JSON."""
    if case.request.body is None:
        return MISSING
    try:
        return json.loads(case.request.body)
    except (ValueError, UnicodeDecodeError):
        return MISSING


def response_source(case: Case, params: list[Param]) -> list[str]:
    """The handler's body lines: build and return the expected answer."""
    from .tomlgen import canned_settings  # noqa: PLC0415

    settings = canned_settings(case)
    lines = []
    if case.route.delay_ms is not None:
        lines.append(f"await asyncio.sleep({case.route.delay_ms / 1000!r})")
    if case.stream is not None:
        return lines + stream_source(case, settings)
    status = settings["status"]
    headers = [(k.lower(), v) for k, v in (settings.get("headers") or {}).items()]
    body = settings.get("body")
    echo = [p for p in params if p.echo_key is not None]
    body_param = next((p for p in params if p.name == "body"), None)
    echo_body = (
        body_param is not None
        and not case.host_answers
        and case.expected.body is not MISSING
        and not case.expected.partial
        and isinstance(case.expected.body, (dict, list))
        and request_json(case) == case.expected.body
        and not _has_token(case.expected.body)
    )
    if echo_body:
        # The decoded body (a Struct, or the JSON value) encoded again.
        lines.append(f"return Response(content=msgspec.json.encode(body), status_code={status}, headers={py(headers)})")
    elif echo and isinstance(body, str):
        lines.append(f"data = json.loads({py(body)})")
        for p in echo:
            lines.append(f"data[{py(p.echo_key)}] = {p.name}")
        lines.append(f"return Response(content=msgspec.json.encode(data), status_code={status}, headers={py(headers)})")
    else:
        content = "None" if body is None else py(body.encode("utf-8"))
        lines.append(f"return Response(content={content}, status_code={status}, headers={py(headers)})")
    return lines


def _has_token(value: Any) -> bool:
    if isinstance(value, str):
        return bool(TOKEN.match(value))
    if isinstance(value, dict):
        return any(_has_token(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_token(v) for v in value)
    return False


def stream_source(case: Case, settings: dict) -> list[str]:
    """A streamed answer: `EventSourceResponse` for SSE cases (a comment, then
    one event per example), else `StreamingResponse` over the chunks."""
    s = case.stream
    assert s is not None
    interval = s.interval_ms / 1000
    headers = [(k, v) for k, v in (settings.get("headers") or {}).items()]
    if s.sse_examples is not None:
        return [
            "from spikard import EventSourceResponse, ServerSentEvent",
            "async def events():",
            "    yield ServerSentEvent(comment='spikard conformance')",
            f"    for example in {py(s.sse_examples)}:",
            f"        await asyncio.sleep({interval!r})",
            "        yield example",
            f"return EventSourceResponse(events(), ping=None, headers={py(headers) if headers else 'None'})",
        ]
    return [
        "async def chunks():",
        f"    for i, chunk in enumerate({py(s.chunks)}):",
        "        if i:",
        f"            await asyncio.sleep({interval!r})",
        "        yield chunk",
        # The content type as a header: `media_type` would add `; charset=utf-8`
        # to text/* (as Starlette does), and the fixtures expect it as given.
        (
            f"return StreamingResponse(chunks(), status_code={settings['status']}, "
            f"headers={py(headers + ([('content-type', s.content_type)] if s.content_type else []))})"
        ),
    ]


def python_unsupported(case: Case) -> str | None:
    """Why a case that loads in the echo mode cannot be declared through the
    Python API (something the host serves without a route), or None."""
    if case.statics:
        return "static files are served by the host ([[static]]), no Python route is involved"
    return None


def route_options(case: Case) -> list[str]:
    """The route keywords (source) for the [[routes]] keys the echo mode
    would give the case: body_limit, timeout, max_json_depth, request_id."""
    r = case.route
    options = []
    if r.body_limit is not None:
        options.append(f"body_limit={int(r.body_limit)}")
    if r.request_timeout_ms is not None:
        options.append(f"timeout={r.request_timeout_ms / 1000!r}")
    if r.max_json_depth is not None:
        options.append(f"max_json_depth={int(r.max_json_depth)}")
    if r.request_id is not None:
        options.append(f"request_id={bool(r.request_id)!r}")
    return options


def generate_case(function: str, route_path: str, case: Case) -> Generated:
    """`def case_N(app):` declaring the case's route under `route_path`."""
    reason = python_unsupported(case)
    if reason:
        raise NotExpressible(reason)
    used: set[str] = set()
    params = handler_params(case, used)
    signature = ", ".join(
        f"{p.name}: {p.annotation}" + (f" = {p.default}" if p.default is not None else "") for p in params
    )
    body = response_source(case, params)
    options = route_options(case)
    lines = [
        f"def {function}(app):",
        f"    # {case.id}",
        *("    " + line for p in params for line in p.prelude),
        f"    async def handler({'*, ' + signature if signature else ''}):",
        *("        " + line for line in body),
        f"    return [app.add_route({py(case.route.method)}, {py(route_path)}, handler{''.join(', ' + o for o in options)})]",
    ]
    return Generated(function, "\n".join(lines) + "\n")
