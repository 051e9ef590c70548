"""Server-Sent Events: the event stream a route sends for an AsyncAPI-style
SSE fixture, a parser for what comes back, and the check of each event's
JSON against the fixture's schema.

The parser follows the WHATWG HTML "event stream interpretation": lines end
with CRLF, LF or CR; a blank line dispatches the event; a line starting with
`:` is a comment; `field: value` loses one space after the colon; `data`
lines are joined with LF; an event without data is not dispatched, and
neither is an unterminated one at the end of the stream.

The schema check uses the `jsonschema` package when this Python has it (with
its format checker) and otherwise a small validator of the keywords the SSE
fixtures use (`SCHEMA_CHECKER` says which); a keyword the small validator
does not know is reported, never silently passed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    """One dispatched event: its type (`message` unless an `event` field
    said otherwise), its data (the `data` lines joined by LF) and last id."""

    type: str
    data: str
    id: str = ""


def encode_event(value: Any) -> str:
    """`value` as one SSE event: its compact JSON as `data` line(s), then
    the blank line that dispatches it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"


_LINE = re.compile(r"\r\n|\r|\n")


def parse_events(body: bytes | str) -> list[Event]:
    """The events of an event stream (UTF-8; a leading BOM is dropped)."""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE.split(text)
    # The last item follows the last line break: an unfinished line, which
    # the stream's end discards together with the event it belongs to.
    lines.pop()
    events: list[Event] = []
    data: list[str] = []
    event_type = ""
    last_id = ""
    for line in lines:
        if line == "":
            if data:
                events.append(Event(event_type or "message", "\n".join(data), last_id))
            data, event_type = [], ""
            continue
        if line.startswith(":"):
            continue  # a comment (keep-alives)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id" and "\x00" not in value:
            last_id = value
        # `retry` and unknown fields change nothing that is compared here.
    return events


# --------------------------------------------------------------------------
# JSON Schema


def _load_jsonschema():
    try:
        import jsonschema  # type: ignore[import-not-found]
    except ImportError:
        return None
    return jsonschema


_jsonschema = _load_jsonschema()

# Which validator checks the events: named in the case notes.
SCHEMA_CHECKER = (
    "the jsonschema package (with its format checker)"
    if _jsonschema is not None
    else "the runner's small validator (jsonschema is not installed)"
)


def schema_errors(schema: Any, value: Any, use_package: bool = True) -> list[str]:
    """Why `value` does not validate against `schema` (empty: it does).
    `use_package=False` forces the small validator (its unit tests)."""
    if use_package and _jsonschema is not None:
        cls = _jsonschema.validators.validator_for(schema, default=_jsonschema.Draft202012Validator)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        return [f"{_where(list(e.absolute_path))}: {e.message}" for e in errors]
    out: list[str] = []
    _check(schema, value, [], out)
    return out


def schema_problems(schema: Any) -> list[str]:
    """Why a schema is not usable (an invalid schema, or with the small
    validator keywords it cannot check); empty when it is fine."""
    if _jsonschema is not None:
        cls = _jsonschema.validators.validator_for(schema, default=_jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except _jsonschema.exceptions.SchemaError as e:
            return [f"invalid schema: {e.message}"]
        return []
    unknown: set[str] = set()
    _keywords(schema, unknown)
    return [f"keyword(s) the runner's small validator cannot check: {', '.join(sorted(unknown))}"] if unknown else []


def _where(path: list) -> str:
    return "data" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


# The small validator: the keywords of the SSE fixtures' schemas.
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_DATE_TIME = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
_ANNOTATIONS = {"description", "title", "$schema", "$id", "examples", "default", "deprecated", "readOnly", "writeOnly", "$comment"}
_CHECKED = {
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "enum", "const", "minLength", "maxLength", "minimum", "maximum", "format",
}


def _keywords(schema: Any, unknown: set[str]) -> None:
    if not isinstance(schema, dict):
        return
    for k, v in schema.items():
        if k not in _CHECKED and k not in _ANNOTATIONS:
            unknown.add(k)
        if k == "properties" and isinstance(v, dict):
            for sub in v.values():
                _keywords(sub, unknown)
        elif k in ("items", "additionalProperties"):
            _keywords(v, unknown)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b and type(a) in (int, float, str, type(None)) and type(b) in (int, float, str, type(None))


def _check(schema: Any, value: Any, path: list, out: list[str]) -> None:
    if schema is True or schema == {}:
        return
    if schema is False:
        out.append(f"{_where(path)}: not allowed")
        return
    if not isinstance(schema, dict):
        out.append(f"{_where(path)}: schema is not an object")
        return
    where = _where(path)
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        if not any(_TYPES.get(t, lambda v: False)(value) for t in names):
            out.append(f"{where}: {json.dumps(value)[:60]} is not of type {' or '.join(map(str, names))}")
            return
    if "const" in schema and not _equal(schema["const"], value):
        out.append(f"{where}: expected {json.dumps(schema['const'])}")
    if "enum" in schema and not any(_equal(e, value) for e in schema["enum"]):
        out.append(f"{where}: {json.dumps(value)[:60]} is not one of {json.dumps(schema['enum'])}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{where}: longer than {schema['maxLength']}")
        if schema.get("format") == "date-time" and not _DATE_TIME.match(value):
            out.append(f"{where}: {value!r} is not a date-time")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{where}: less than {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{where}: greater than {schema['maximum']}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(schema["items"], item, path + [i], out)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                out.append(f"{where}: '{name}' is a required property")
        for name, item in value.items():
            if name in props:
                _check(props[name], item, path + [name], out)
            elif "additionalProperties" in schema:
                _check(schema["additionalProperties"], item, path + [name], out)
