"""Exceptions a handler (or the plugin for it) raises to answer with an error.

:class:`RequestValidationError` is the 422 the host gives for a request that
breaks its schemas, raised from Python: when a body's model (pydantic,
msgspec) refuses what the host let through, or by a handler checking
something no schema can say. It renders exactly like the host's 422: an RFC
9457 Problem Details body with the pydantic-shaped ``errors`` array.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec

from ._responses import HTTPException

__all__ = ["HTTPException", "RequestValidationError"]

#: The host's ``type`` and ``title`` of a validation problem (host/src/problem.rs).
VALIDATION_TYPE: Final = "https://spikard.dev/errors/validation-error"
VALIDATION_TITLE: Final = "Request Validation Failed"
#: The host's default ``[server] max_validation_errors``: entries listed, the rest counted.
MAX_ERRORS: Final = 100
#: The host's bounds on quoted input (host/src/validation/bounds.rs).
MAX_TEXT_BYTES: Final = 1024
MAX_CONTAINER_BYTES: Final = 2048
MAX_SEGMENT_BYTES: Final = 256
ELLIPSIS: Final = "…"


class RequestValidationError(Exception):
    """The request is invalid: a 422 whose ``errors`` are ``errors``.

    Each entry has the host's (pydantic's) shape: ``type`` (e.g.
    ``"int_parsing"``), ``loc`` (a list starting with the source: ``"body"``,
    ``"query"``, ``"path"``, ``"headers"``, ``"cookie"``), ``msg``, ``input``
    and optionally ``ctx``. ``errors()`` returns them, as FastAPI's does.
    """

    def __init__(self, errors: Iterable[Mapping[str, Any]], *, body: Any = None) -> None:
        self._errors = [_entry(error) for error in errors]
        self.body = body
        super().__init__(self._errors)

    def errors(self) -> list[dict[str, Any]]:
        """The entries, as rendered in the response's ``errors``."""
        return self._errors

    def __str__(self) -> str:
        count = len(self._errors)
        return f"{count} validation error{'' if count == 1 else 's'} in request"


def _entry(error: Mapping[str, Any]) -> dict[str, Any]:
    loc = error.get("loc")
    entry: dict[str, Any] = {
        "type": str(error.get("type", "value_error")),
        "loc": list(loc) if isinstance(loc, (list, tuple)) else ([] if loc is None else [loc]),
        "msg": str(error.get("msg", "")),
        "input": error.get("input"),
    }
    ctx = error.get("ctx")
    if ctx:
        entry["ctx"] = dict(ctx)
    return entry


def validation_problem(exc: RequestValidationError, request_id: str = "") -> bytes:
    """The ``application/problem+json`` body of ``exc``, as the host renders
    its own 422: ``type``, ``title``, ``status``, ``detail`` ("N validation
    errors in request"), ``request_id``, ``errors`` (at most
    :data:`MAX_ERRORS`, each quote bounded) and ``errors_omitted``."""
    errors = exc.errors()
    total = len(errors)
    listed = [_bounded_entry(e) for e in errors[:MAX_ERRORS]]
    detail = f"{total} validation error{'' if total == 1 else 's'} in request"
    if total > len(listed):
        detail += "; the first is listed" if len(listed) == 1 else f"; the first {len(listed)} are listed"
    body: dict[str, Any] = {
        "type": VALIDATION_TYPE,
        "title": VALIDATION_TITLE,
        "status": 422,
        "detail": detail,
    }
    if request_id:
        body["request_id"] = request_id
    if listed:
        body["errors"] = listed
    if total > len(listed):
        body["errors_omitted"] = total - len(listed)
    return _encode(body)


def _enc_hook(value: Any) -> Any:
    """Values JSON has no word for (an exception in pydantic's ``ctx``, a
    ``Decimal``, a model) as their text."""
    return str(value)


_encode: Final = msgspec.json.Encoder(enc_hook=_enc_hook).encode


def _bounded_entry(error: dict[str, Any]) -> dict[str, Any]:
    entry = dict(error)
    entry["loc"] = [_bounded_text(s, MAX_SEGMENT_BYTES) if isinstance(s, str) else s for s in error["loc"]]
    entry["input"] = _bounded_input(error["input"])
    return entry


def _bounded_text(text: str, limit: int) -> str:
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore") + ELLIPSIS


def _bounded_input(value: Any) -> Any:
    """The host's rule: long strings and numbers cut, large containers as a
    preview string of their JSON text."""
    if isinstance(value, str):
        return _bounded_text(value, MAX_TEXT_BYTES)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        return value if len(text) <= MAX_TEXT_BYTES else text[:MAX_TEXT_BYTES] + ELLIPSIS
    if isinstance(value, float):
        return value
    try:
        data = _encode(value)
    except Exception:  # noqa: BLE001 - not JSON: quote its text
        return _bounded_text(str(value), MAX_TEXT_BYTES)
    if len(data) <= MAX_CONTAINER_BYTES:
        return msgspec.json.decode(data)
    return data[:MAX_CONTAINER_BYTES].decode("utf-8", "ignore") + ELLIPSIS
