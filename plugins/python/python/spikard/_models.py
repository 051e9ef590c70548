"""Model bodies: the JSON Schema the host validates a body with, and the
decoder that turns the validated body into the handler's model type
(pydantic models through pydantic, everything else through msgspec).

The two must agree: a body the host lets through is one the decoder takes.
pydantic decodes laxly (``"5"`` for an ``int``), so a pydantic body's schema
carries :data:`LAX_KEYWORD` and the host widens its leaf types to what
pydantic's lax mode takes (host/src/validation/lax.rs), while the OpenAPI
document shows pydantic's own schema. msgspec decodes with ``strict=False`` so the
integral floats JSON Schema calls integers (``5.0``) are ``int`` s. What the
schema cannot say (a datetime's text, a dict key) the decoder checks; its
refusal is a :class:`~spikard.exceptions.RequestValidationError` whose
``errors`` name the leaf, like the host's own 422.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import msgspec

from ._schemas import _converter, _involves_pydantic, _is_pydantic_model
from .exceptions import RequestValidationError

#: The body-schema keyword telling the host the body is decoded by pydantic's
#: lax mode (its value names the library). An ``x-`` extension, so OpenAPI
#: documents may keep it.
LAX_KEYWORD: Final = "x-spikard-lax"


class _BodyCodec:
    """Decodes one body type from JSON bytes, or from the host's coerced form
    fields (a Python object); refusals raise the library's error, which
    :func:`_body_error` turns into a :class:`RequestValidationError`."""

    __slots__ = ("from_json", "from_python", "name")

    def __init__(self, tp: Any) -> None:
        self.name = getattr(tp, "__name__", None) or repr(tp)
        if _is_pydantic_model(tp):
            self.from_json: Callable[[Any], Any] = tp.model_validate_json
            self.from_python: Callable[[Any], Any] = tp.model_validate
        elif _involves_pydantic(tp):
            import pydantic

            adapter = pydantic.TypeAdapter(tp)
            self.from_json = adapter.validate_json
            self.from_python = adapter.validate_python
        else:
            self.from_json = _msgspec_json(msgspec.json.Decoder(tp, strict=False).decode)
            self.from_python = _msgspec_python(_converter(tp))


def _msgspec_json(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def from_json(body: bytes) -> Any:
        try:
            return decode(body)
        except msgspec.ValidationError as exc:
            raise _MsgspecRefusal(exc, body, True) from None

    return from_json


def _msgspec_python(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def from_python(value: Any) -> Any:
        try:
            return convert(value)
        except msgspec.ValidationError as exc:
            raise _MsgspecRefusal(exc, value, False) from None

    return from_python


class _MsgspecRefusal(ValueError):
    """msgspec's refusal with the data it refused, for the error's ``input``."""

    def __init__(self, error: msgspec.ValidationError, data: Any, is_json: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.data = data
        self.is_json = is_json

    def document(self) -> Any:
        if not self.is_json:
            return self.data
        try:
            return msgspec.json.decode(self.data)
        except Exception:  # noqa: BLE001 - the host parsed it; a form body is not JSON
            return None


def _body_schema(tp: Any) -> dict[str, Any]:
    if _is_pydantic_model(tp):
        return _lax(_inline_root_ref(dict(tp.model_json_schema())))
    if _involves_pydantic(tp):
        import pydantic

        return _lax(_inline_root_ref(dict(pydantic.TypeAdapter(tp).json_schema())))
    schema = msgspec.json.schema(tp)
    _as_msgspec_decodes(schema)
    return _inline_root_ref(schema)


def _as_msgspec_decodes(node: Any, depth: int = 0) -> None:
    """msgspec's schema says less than its decoder takes in two places; the
    host must not refuse those bodies: a ``Decimal`` is also a JSON number,
    and a ``set``/``frozenset`` takes duplicates (dropping them)."""
    if depth > 64:
        return
    if isinstance(node, dict):
        if node.get("format") == "decimal" and node.get("type") == "string":
            node["type"] = ["string", "number"]
        if node.get("type") == "array" and node.get("uniqueItems") is True:
            del node["uniqueItems"]
        for value in node.values():
            _as_msgspec_decodes(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _as_msgspec_decodes(value, depth + 1)


def _lax(schema: dict[str, Any]) -> dict[str, Any]:
    schema[LAX_KEYWORD] = "pydantic"
    return schema


def _inline_root_ref(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"$ref": "#/$defs/Item", "$defs": {...}}`` → Item's schema at the
    root (``$defs`` kept for nested references): the host reads a form
    body's fields from the root ``properties``."""
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if len(schema) != 2 or not isinstance(ref, str) or not isinstance(defs, dict):
        return schema
    target = defs.get(ref.removeprefix("#/$defs/")) if ref.startswith("#/$defs/") else None
    if not isinstance(target, dict):
        return schema
    rest = {name: sub for name, sub in defs.items() if sub is not target or _refers_to(defs, ref)}
    inlined = dict(target)
    if rest:
        inlined["$defs"] = rest
    return inlined


def _refers_to(value: Any, ref: str) -> bool:
    if isinstance(value, dict):
        return value.get("$ref") == ref or any(_refers_to(v, ref) for v in value.values())
    if isinstance(value, list):
        return any(_refers_to(v, ref) for v in value)
    return False


def _body_error(codec: _BodyCodec, exc: Exception, key: str | None = None) -> RequestValidationError:
    """The 422 of a body the decoder refused: its errors at their leaf
    locations, under ``["body"]`` (``["body", key]`` for an embedded body
    member)."""
    prefix: list[Any] = ["body"] if key is None else ["body", key]
    if isinstance(exc, RequestValidationError):
        return exc
    if isinstance(exc, _MsgspecRefusal):
        return RequestValidationError([_msgspec_entry(str(exc.error), exc.document(), prefix)])
    errors = getattr(exc, "errors", None)
    if callable(errors) and type(exc).__module__.startswith("pydantic"):
        return RequestValidationError(_pydantic_entries(exc, prefix))
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    msg = f"the request body is not a valid {codec.name}: {message}"
    return RequestValidationError([{"type": "value_error", "loc": prefix, "msg": msg, "input": None}])


#: The host's first ``loc`` element of each parameter source.
_LOC_LABELS: Final = {"path": "path", "query": "query", "headers": "headers", "cookies": "cookie", "form": "body"}


def _conversion_error(source: str, key: str, value: Any, exc: Exception) -> RequestValidationError:
    """The 422 of a parameter (or form field: ``source="form"``) the host
    validated but its converter refused (msgspec takes less than the schema
    says for some formats): one entry at ``[source, key]``, as the host's."""
    prefix = [_LOC_LABELS.get(source, source), key]
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return RequestValidationError([_msgspec_entry(message, value, prefix)])


# ---------------------------------------------------------------------------
# pydantic


def _pydantic_entries(exc: Any, prefix: list[Any]) -> list[dict[str, Any]]:
    """pydantic's ``errors()`` as the host's entries (FastAPI's shape)."""
    entries = []
    for error in exc.errors(include_url=False):
        entry: dict[str, Any] = {
            "type": error["type"],
            "loc": [*prefix, *error["loc"]],
            "msg": error["msg"],
            "input": error.get("input"),
        }
        ctx = error.get("ctx")
        if ctx:
            entry["ctx"] = {k: _jsonable(v) for k, v in ctx.items()}
        entries.append(entry)
    return entries


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


# ---------------------------------------------------------------------------
# msgspec

_AT: Final = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.DOTALL)
_SEGMENT: Final = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_GOT: Final = re.compile(r"^Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`$")
_FIELD: Final = re.compile(r"^Object (?P<what>missing required|contains unknown) field `(?P<name>.*)`$", re.DOTALL)
_BOUND: Final = re.compile(r"^Expected `(?:int|float|decimal)` (?P<op>>=|>|<=|<) (?P<limit>\S+)$")
_MULTIPLE: Final = re.compile(r"^Expected `(?:int|float|decimal)` that's a multiple of (?P<limit>\S+)$")
_LENGTH: Final = re.compile(r"^Expected `(?P<kind>str|array|object|bytes)` of length (?P<op>>=|<=) (?P<limit>\d+)$")
_PATTERN: Final = re.compile(r"^Expected `str` matching regex '(?P<pattern>.*)'$", re.DOTALL)

#: msgspec's name of an expected type → pydantic's ``*_type`` error.
_TYPE_ERRORS: Final = {
    "int": ("int_type", "Input should be a valid integer"),
    "float": ("float_type", "Input should be a valid number"),
    "bool": ("bool_type", "Input should be a valid boolean"),
    "str": ("string_type", "Input should be a valid string"),
    "array": ("list_type", "Input should be a valid list"),
    "object": ("model_attributes_type", "Input should be a valid dictionary or object to extract fields from"),
    "null": ("none_required", "Input should be None"),
    "datetime": ("datetime_type", "Input should be a valid datetime"),
    "date": ("date_type", "Input should be a valid date"),
    "time": ("time_type", "Input should be a valid time"),
    "duration": ("time_delta_type", "Input should be a valid timedelta"),
    "uuid": ("uuid_type", "UUID input should be a string, bytes or UUID object"),
    "decimal": ("decimal_type", "Decimal input should be an integer, float, string or Decimal object"),
    "bytes": ("bytes_type", "Input should be a valid bytes"),
}
#: A string the decoder could not parse as its type → pydantic's ``*_parsing`` error.
_PARSING: Final = {
    "int": ("int_parsing", "Input should be a valid integer, unable to parse string as an integer"),
    "float": ("float_parsing", "Input should be a valid number, unable to parse string as a number"),
    "bool": ("bool_parsing", "Input should be a valid boolean, unable to interpret input"),
}
_INVALID: Final = (
    ("Invalid RFC3339 encoded datetime", "datetime_parsing", "Input should be a valid datetime"),
    ("Invalid RFC3339 encoded date", "date_parsing", "Input should be a valid date in the format YYYY-MM-DD"),
    ("Invalid RFC3339 encoded time", "time_parsing", "Input should be in a valid time format"),
    ("Invalid ISO8601 duration", "time_delta_parsing", "Input should be a valid timedelta, invalid duration format"),
    ("Only units", "time_delta_parsing", "Input should be a valid timedelta, invalid duration format"),
    ("Invalid UUID", "uuid_parsing", "Input should be a valid UUID"),
    ("Invalid decimal string", "decimal_parsing", "Input should be a valid decimal"),
    ("Invalid base64 encoded string", "bytes_invalid_encoding", "Input should be a valid base64 string"),
)
_BOUNDS: Final = {
    ">=": ("greater_than_equal", "greater than or equal to", "ge"),
    ">": ("greater_than", "greater than", "gt"),
    "<=": ("less_than_equal", "less than or equal to", "le"),
    "<": ("less_than", "less than", "lt"),
}


def _msgspec_entry(message: str, document: Any, prefix: list[Any]) -> dict[str, Any]:
    """One entry from msgspec's message (``Expected `int`, got `str` - at
    `$.items[0].qty```): ``loc`` from its path (a dict key msgspec writes as
    ``[...]`` ends the location at the dict), ``input`` looked up in the
    refused document, ``type``/``msg`` in pydantic's words where msgspec's
    message has a pydantic equivalent."""
    match = _AT.match(message)
    text = match.group("msg") if match else message
    path: list[Any] = []
    complete = True
    for name, index in _SEGMENT.findall((match.group("path") or "")[1:] if match else ""):
        if index == "...":
            complete = False
            break
        path.append(int(index) if index else name)
    node, found = _lookup(document, path)
    value = node if found else None
    loc = [*prefix, *path]
    kind, msg, ctx = _msgspec_kind(text, value)
    field = _FIELD.match(text) if complete else None
    if field is not None:
        name = field.group("name")
        loc.append(name)
        if field.group("what") == "contains unknown":
            kind, msg = "extra_forbidden", "Extra inputs are not permitted"
            value = value.get(name) if isinstance(value, dict) else None
        else:
            kind, msg = "missing", "Field required"
    entry: dict[str, Any] = {"type": kind, "loc": loc, "msg": msg, "input": value}
    if ctx:
        entry["ctx"] = ctx
    return entry


def _lookup(document: Any, path: list[Any]) -> tuple[Any, bool]:
    node = document
    for segment in path:
        if isinstance(node, list):
            found = isinstance(segment, int) and 0 <= segment < len(node)
        else:
            found = isinstance(node, dict) and isinstance(segment, str) and segment in node
        if not found:
            return None, False
        node = node[segment]
    return node, True


def _msgspec_kind(text: str, value: Any) -> tuple[str, str, dict[str, Any] | None]:
    got = _GOT.match(text)
    if got is not None:
        expected = [t.strip() for t in got.group("expected").split("|")]
        first = next((t for t in expected if t != "null"), "null")
        if got.group("got") == "str" and first in _PARSING:
            kind, msg = _PARSING[first]
        elif got.group("got") == "float" and first == "int":
            kind, msg = "int_from_float", "Input should be a valid integer, got a number with a fractional part"
        else:
            kind, msg = _TYPE_ERRORS.get(first, ("value_error", text))
        return kind, msg, None
    for start, kind, msg in _INVALID:
        if text.startswith(start):
            return kind, msg, None
    bound = _BOUND.match(text)
    if bound is not None:
        kind, relation, key = _BOUNDS[bound.group("op")]
        limit = _number(bound.group("limit"))
        return kind, f"Input should be {relation} {limit}", {key: limit}
    multiple = _MULTIPLE.match(text)
    if multiple is not None:
        limit = _number(multiple.group("limit"))
        return "multiple_of", f"Input should be a multiple of {limit}", {"multiple_of": limit}
    length = _LENGTH.match(text)
    if length is not None:
        limit = int(length.group("limit"))
        shortest = length.group("op") == ">="
        plural = "" if limit == 1 else "s"
        if length.group("kind") == "str":
            kind = "string_too_short" if shortest else "string_too_long"
            msg = f"String should have at {'least' if shortest else 'most'} {limit} character{plural}"
        else:
            kind = "too_short" if shortest else "too_long"
            msg = f"List should have at {'least' if shortest else 'most'} {limit} item{plural} after validation"
        return kind, msg, {"min_length" if shortest else "max_length": limit}
    pattern = _PATTERN.match(text)
    if pattern is not None:
        return (
            "string_pattern_mismatch",
            f"String should match pattern '{pattern.group('pattern')}'",
            {"pattern": pattern.group("pattern")},
        )
    if text.startswith(("Invalid enum value", "Invalid value")):
        return "enum", f"Input should be a valid value: {text}", None
    return "value_error", text, None


def _number(text: str) -> int | float | str:
    """A limit as pydantic prints it (``2``, not ``2.0``)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
