"""Model bodies: the JSON Schema the host validates a body with, and the
decoder that turns the validated body into the handler's model type
(pydantic models through pydantic, everything else through msgspec)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ._responses import HTTPException
from ._schemas import _converter, _involves_pydantic, _is_pydantic_model

class _BodyCodec:
    """Decodes one body type from JSON bytes, or from the host's coerced form
    fields (a Python object)."""

    __slots__ = ("name", "from_json", "from_python")

    def __init__(self, tp: Any) -> None:
        self.name = getattr(tp, "__name__", None) or repr(tp)
        if _is_pydantic_model(tp):
            self.from_json: Callable[[Any], Any] = tp.model_validate_json
            self.from_python: Callable[[Any], Any] = tp.model_validate
        elif _involves_pydantic(tp):
            import pydantic  # noqa: PLC0415

            adapter = pydantic.TypeAdapter(tp)
            self.from_json = adapter.validate_json
            self.from_python = adapter.validate_python
        else:
            self.from_json = msgspec.json.Decoder(tp).decode
            self.from_python = _converter(tp)


def _body_schema(tp: Any) -> dict[str, Any]:
    if _is_pydantic_model(tp):
        return _inline_root_ref(dict(tp.model_json_schema()))
    if _involves_pydantic(tp):
        import pydantic  # noqa: PLC0415

        return _inline_root_ref(dict(pydantic.TypeAdapter(tp).json_schema()))
    return _inline_root_ref(msgspec.json.schema(tp))


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


def _body_error(codec: _BodyCodec, exc: Exception) -> HTTPException:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return HTTPException(422, f"the request body is not a valid {codec.name}: {message}")
