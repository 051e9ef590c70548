"""From type hints to JSON Schemas: what the host validates a parameter with.

Everything here runs once per handler, when the runtime starts: each
parameter type gets a JSON Schema the host validates with, and a converter
for the few types JSON cannot carry (UUID, dates, enums, ...). Bodies of
model types are in :mod:`._models`; the per-request plan is in
:mod:`._invoke`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import decimal
import enum
import functools
import inspect
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any, Final, Literal, Union, get_args, get_origin

import msgspec

from ._params import ParamInfo

__all__ = ["RouteError", "handler_location", "path_params"]


_MISSING: Final = object()
_SOURCES: Final = ("path", "query", "headers", "cookies")
_PATH_PARAM = re.compile(r"\{\*?([^{}/*]+)\}")
_DECIMAL_PATTERN: Final = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
_ARRAY_ORIGINS: Final = {
    list: list,
    set: set,
    frozenset: frozenset,
    tuple: tuple,
    collections.abc.Sequence: list,
    collections.abc.MutableSequence: list,
    collections.abc.Set: frozenset,
    collections.abc.MutableSet: set,
    collections.abc.Collection: list,
    collections.abc.Iterable: list,
}
_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType) if sys.version_info >= (3, 10) else (Union,)

Converter = Callable[[Any], Any]


class RouteError(TypeError):
    """A handler whose signature cannot be served; the message names the
    handler, its file and line, the parameter and the fix."""


def handler_location(handler: Callable[..., Any]) -> str:
    """``name (file:line)`` of a handler, for messages."""
    target = inspect.unwrap(handler)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    code = getattr(target, "__code__", None)
    if code is None and isinstance(target, type):  # a class: where its __init__ is
        code = getattr(typing.cast(Any, target).__init__, "__code__", None)
    if code is None:
        code = getattr(getattr(target, "__call__", None), "__code__", None)  # noqa: B004 - its method
    if code is None:
        return str(name)
    return f"{name} ({code.co_filename}:{code.co_firstlineno})"


def path_params(path: str) -> list[str]:
    """The parameter names of a path template (``{id}``, ``{*rest}``)."""
    return _PATH_PARAM.findall(path)


# ---------------------------------------------------------------------------
# Type helpers


def _pydantic_base() -> Any:
    """``pydantic.BaseModel`` when pydantic is importable, else ``None``."""
    module = sys.modules.get("pydantic")
    if module is None:
        try:
            import pydantic as module
        except Exception:  # noqa: BLE001 - not installed, or broken: no pydantic support
            return None
    return getattr(module, "BaseModel", None)


def _is_pydantic_model(tp: Any) -> bool:
    base = _pydantic_base()
    return base is not None and isinstance(tp, type) and issubclass(tp, base)


def _involves_pydantic(tp: Any, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if _is_pydantic_model(tp):
        return True
    return any(_involves_pydantic(arg, depth + 1) for arg in get_args(tp))


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _is_model(tp: Any) -> bool:
    """A type that only makes sense as a JSON object: the body."""
    if tp is dict or get_origin(tp) in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        return True
    if tp in (collections.abc.Mapping, collections.abc.MutableMapping):
        return True
    if not isinstance(tp, type):
        return False
    return (
        issubclass(tp, msgspec.Struct)
        or dataclasses.is_dataclass(tp)
        or typing.is_typeddict(tp)
        or _is_pydantic_model(tp)
    )


def _is_body_type(tp: Any, depth: int = 0) -> bool:
    """A model, or a list/optional/union of models."""
    if depth > 8:
        return False
    tp = _strip_annotated(tp)[0]
    if _is_model(tp):
        return True
    origin = get_origin(tp)
    if origin in _ARRAY_ORIGINS or origin in _UNION_TYPES:
        return any(_is_body_type(arg, depth + 1) for arg in get_args(tp) if arg is not Ellipsis)
    return False


def _strip_annotated(tp: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while get_origin(tp) is typing.Annotated:
        metadata.extend(tp.__metadata__)
        tp = tp.__origin__
    return tp, metadata


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None`` / ``Optional[T]``, else ``(tp, False)``."""
    if get_origin(tp) in _UNION_TYPES:
        args = get_args(tp)
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) < len(args):
            if len(rest) == 1:
                return rest[0], True
            return Union[rest], True
    return tp, False


def _json_type_of(values: list[Any]) -> str | None:
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "integer"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    return None


def _converter(tp: Any) -> Converter:
    """A lax ``msgspec.convert`` to ``tp``."""
    return functools.partial(msgspec.convert, type=tp, strict=False)


def _optional(conv: Converter) -> Converter:
    def convert(value: Any) -> Any:
        return None if value is None else conv(value)

    return convert


def _each(conv: Converter | None, container: Callable[[Any], Any]) -> Converter | None:
    if conv is None:
        return None if container is list else container
    if container is list:
        return lambda values: [conv(v) for v in values]
    return lambda values: container(conv(v) for v in values)


def _hoist(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Moves ``$defs`` of a sub-schema into the source's root ``$defs``."""
    inner = schema.pop("$defs", None)
    if inner:
        defs.update(inner)
    return schema


# ---------------------------------------------------------------------------
# Parameter schemas


def _scalar_schema(tp: Any, defs: dict[str, Any], depth: int = 0) -> tuple[dict[str, Any], Converter | None]:
    """JSON Schema of a parameter type (without ``None``) and its converter
    from the validated JSON value (``None``: the value is used as is)."""
    if depth > 8:
        raise TypeError(f"type {tp!r} is nested too deeply")
    tp, _ = _strip_annotated(tp)
    if tp is Any or tp is inspect.Parameter.empty or tp is object:
        return {}, None
    supertype = getattr(tp, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _scalar_schema(supertype, defs, depth + 1)
    if tp is bool:
        return {"type": "boolean"}, None
    if tp is int:
        return {"type": "integer"}, None
    if tp is float:
        return {"type": "number"}, float
    if tp is str:
        return {"type": "string"}, None
    if tp is uuid.UUID:
        return {"type": "string", "format": "uuid"}, uuid.UUID
    if tp is datetime.datetime:
        return {"type": "string", "format": "date-time"}, _converter(datetime.datetime)
    if tp is datetime.date:
        return {"type": "string", "format": "date"}, _converter(datetime.date)
    if tp is datetime.time:
        return {"type": "string", "format": "time"}, _converter(datetime.time)
    if tp is datetime.timedelta:
        return {"type": "string", "format": "duration"}, _converter(datetime.timedelta)
    if tp is decimal.Decimal:
        return {"type": "string", "pattern": _DECIMAL_PATTERN}, decimal.Decimal
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [member.value for member in tp]
        schema: dict[str, Any] = {"enum": values}
        kind = _json_type_of(values)
        if kind:
            schema = {"type": kind, **schema}
        return schema, tp
    origin = get_origin(tp)
    if origin is Literal:
        values = list(get_args(tp))
        schema = {"enum": values}
        kind = _json_type_of(values)
        if kind:
            schema = {"type": kind, **schema}
        return schema, None
    if origin in _ARRAY_ORIGINS or tp in _ARRAY_ORIGINS:
        args = get_args(tp)
        container = _ARRAY_ORIGINS[origin or tp]
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return _fallback_schema(tp, defs)
        item = args[0] if args else Any
        item_schema, item_conv = _scalar_schema(_split_optional(item)[0], defs, depth + 1)
        if _split_optional(item)[1]:
            item_schema, item_conv = _nullable(item_schema, item_conv)
        schema = {"type": "array", "items": item_schema} if item_schema else {"type": "array"}
        return schema, _each(item_conv, container)
    if origin in _UNION_TYPES:
        members = [_scalar_schema(arg, defs, depth + 1) for arg in get_args(tp)]
        needs = any(conv is not None for _, conv in members)
        return {"anyOf": [schema for schema, _ in members]}, (_converter(tp) if needs else None)
    return _fallback_schema(tp, defs)


def _fallback_schema(tp: Any, defs: dict[str, Any]) -> tuple[dict[str, Any], Converter | None]:
    try:
        schema = msgspec.json.schema(tp)
    except Exception as exc:  # noqa: BLE001 - msgspec says why the type is unsupported
        raise TypeError(f"type {tp!r} cannot be a parameter ({exc})") from None
    return _hoist(schema, defs), _converter(tp)


def _nullable(schema: dict[str, Any], conv: Converter | None) -> tuple[dict[str, Any], Converter | None]:
    """Lets ``null`` through, keeping constraints at the top level when the
    schema has a plain ``type`` so the host reports them by name."""
    schema = dict(schema)
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    elif isinstance(kind, list):
        if "null" not in kind:
            schema["type"] = [*kind, "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    elif "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    elif schema:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema, (_optional(conv) if conv is not None else None)


_META_KEYS: Final = (
    ("ge", "minimum"),
    ("gt", "exclusiveMinimum"),
    ("le", "maximum"),
    ("lt", "exclusiveMaximum"),
    ("pattern", "pattern"),
)


def _document(schema: dict[str, Any], info: ParamInfo) -> None:
    """The documentation keywords of a marker (``title``, ``description``,
    ``examples``, ``deprecated``), unless ``include_in_schema=False``."""
    if not info.include_in_schema:
        return
    if info.title is not None:
        schema["title"] = info.title
    if info.description is not None:
        schema["description"] = info.description
    if info.examples is not None:
        schema["examples"] = list(info.examples)
    if info.deprecated:
        schema["deprecated"] = True


def _constrain(schema: dict[str, Any], sources: list[Any]) -> dict[str, Any]:
    """Adds the constraints of ``ParamInfo``/``msgspec.Meta`` objects (and
    their documentation keywords)."""
    is_array = schema.get("type") == "array"
    for source in sources:
        for attr, keyword in _META_KEYS:
            value = getattr(source, attr, None)
            if value is not None:
                schema[keyword] = value
        if isinstance(source, ParamInfo):
            _document(schema, source)
        elif getattr(source, "description", None) is not None:
            schema["description"] = source.description
        for attr, keyword in (("min_length", "min"), ("max_length", "max")):
            value = getattr(source, attr, None)
            if value is not None:
                schema[f"{keyword}Items" if is_array else f"{keyword}Length"] = value
        if isinstance(source, msgspec.Meta):
            if source.title is not None:
                schema["title"] = source.title
            if source.examples is not None:
                schema["examples"] = list(source.examples)
            if source.extra_json_schema:
                schema.update(source.extra_json_schema)
    return schema


def _json_default(value: Any) -> tuple[bool, Any]:
    """The default as JSON, when it has one."""
    try:
        return True, msgspec.json.decode(msgspec.json.encode(value))
    except Exception:  # noqa: BLE001 - not JSON: Python fills it in
        return False, None
