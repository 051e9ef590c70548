"""Python mode: a JSON body schema -> msgspec `Struct` classes, as a FastAPI
user would declare the body (`item: Item`).

Only schemas a Struct states exactly are translated: an object with
`properties`, `required`, `additionalProperties: false`
(`forbid_unknown_fields=True`) or absent, whose properties are scalars
(`int`, `float`, `str`, `bool`, `UUID`, `date`, `datetime`, `time`),
enums (`Literal[...]`), arrays of those or of nested objects (another
Struct), nullable ones (`T | None`), with their constraints as
`msgspec.Meta(ge=, gt=, le=, lt=, multiple_of=, min_length=, max_length=,
pattern=)`, other formats as `Meta(extra_json_schema={"format": ...})`, and
defaults. An optional property without a default is `T | UnsetType =
UNSET` (absent stays absent, and it is not in `required`). Anything else
(`allOf`, `oneOf`, `$ref`, `minProperties`, a property name that is not an
identifier, a non-empty default list, ...) returns None: the body is then
declared as `Annotated[Any, Body(), msgspec.Meta(extra_json_schema=...)]`
with the fixture's schema verbatim.
"""

from __future__ import annotations

import keyword
from typing import Any

_OBJECT_KEYS = {"type", "properties", "required", "additionalProperties", "title", "description"}
_SCALAR = {"integer": "int", "number": "float", "string": "str", "boolean": "bool"}
_FORMAT_TYPES = {"uuid": "UUID", "date": "date", "date-time": "datetime", "time": "time"}
_META = {
    "minimum": "ge",
    "exclusiveMinimum": "gt",
    "maximum": "le",
    "exclusiveMaximum": "lt",
    "multipleOf": "multiple_of",
    "pattern": "pattern",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minItems": "min_length",
    "maxItems": "max_length",
    "description": "description",
    "title": "title",
}


class _NotModel(Exception):
    pass


def struct_source(schema: Any, name: str) -> tuple[list[str], str] | None:
    """(class definitions, the root class name) for a body schema, or None
    when a Struct would not state it exactly."""
    classes: list[str] = []
    try:
        root = _struct(schema, name, classes)
    except _NotModel:
        return None
    return classes, root


def _struct(schema: Any, name: str, classes: list[str]) -> str:
    if not isinstance(schema, dict) or schema.get("type") != "object" or set(schema) - _OBJECT_KEYS:
        raise _NotModel
    props = schema.get("properties") or {}
    required = schema.get("required") or []
    extra = schema.get("additionalProperties", True)
    if not isinstance(props, dict) or not isinstance(required, list) or extra not in (True, False):
        raise _NotModel
    if any(r not in props for r in required) or not props:
        raise _NotModel
    fields_required, fields_optional = [], []
    for key, sub in props.items():
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key) or key.startswith("_"):
            raise _NotModel
        hint = _field_type(sub, f"{name}_{key}", classes)
        if "default" in sub and key in required:
            raise _NotModel  # required with a default: a Struct field is one or the other
        if "default" in sub:
            default = sub["default"]
            if isinstance(default, (list, dict)) and default:
                raise _NotModel
            if isinstance(default, float) and default != default:
                raise _NotModel
            fields_optional.append(f"    {key}: {hint} = {default!r}")
        elif key in required:
            fields_required.append(f"    {key}: {hint}")
        else:
            fields_optional.append(f"    {key}: {hint} | msgspec.UnsetType = msgspec.UNSET")
    options = ", forbid_unknown_fields=True" if extra is False else ""
    classes.append(f"class {name}(msgspec.Struct{options}):\n" + "\n".join(fields_required + fields_optional))
    return name


def _field_type(schema: Any, name: str, classes: list[str]) -> str:
    """A property's type, constraints in `Annotated[..., msgspec.Meta(...)]`."""
    if not isinstance(schema, dict):
        raise _NotModel
    kind = schema.get("type")
    nullable = False
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        if len(rest) != 1 or len(kind) - len(rest) != 1:
            raise _NotModel
        kind, nullable = rest[0], True
    used = {"type", "default"}
    meta: list[str] = []
    extra: dict[str, Any] = {}
    enum = schema.get("enum")
    if enum is not None:
        if not isinstance(enum, list) or not enum or nullable:
            raise _NotModel
        if not all(isinstance(v, str) for v in enum) and not all(
            isinstance(v, int) and not isinstance(v, bool) for v in enum
        ):
            raise _NotModel
        base = "Literal[" + ", ".join(repr(v) for v in enum) + "]"
        used.add("enum")
    elif kind == "object":
        base = _struct({k: v for k, v in schema.items() if k != "default"}, name, classes)
        used |= _OBJECT_KEYS
    elif kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            raise _NotModel
        base = f"list[{_field_type(items, name + '_item', classes)}]"
        used.add("items")
    elif kind == "string" and schema.get("format") in _FORMAT_TYPES:
        base = _FORMAT_TYPES[schema["format"]]
        used.add("format")
        if set(schema) & {"minLength", "maxLength", "pattern"}:
            raise _NotModel  # msgspec puts no string rules on a date
    elif kind in _SCALAR:
        base = _SCALAR[kind]
        if kind == "string" and "format" in schema:
            extra["format"] = schema["format"]
            used.add("format")
    else:
        raise _NotModel
    for keyword_, arg in _META.items():
        if keyword_ in schema and keyword_ not in used:
            value = schema[keyword_]
            if keyword_ in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
                raise _NotModel
            if keyword_ in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf") and kind not in (
                "integer",
                "number",
            ):
                raise _NotModel
            if keyword_ in ("minLength", "maxLength", "pattern") and kind != "string":
                raise _NotModel
            if keyword_ in ("minItems", "maxItems") and kind != "array":
                raise _NotModel
            meta.append(f"{arg}={value!r}")
            used.add(keyword_)
    if set(schema) - used:
        raise _NotModel
    if extra:
        meta.append(f"extra_json_schema={extra!r}")
    hint = f"Annotated[{base}, msgspec.Meta({', '.join(meta)})]" if meta else base
    return f"{hint} | None" if nullable else hint
