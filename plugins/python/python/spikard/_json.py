"""JSON bodies a handler decodes itself (``Request.json()``): the limits and
the words of the host, which decodes the bodies of routes with a body
schema. Nesting deeper than ``max_json_depth`` (the plugin setting, which
should equal the host's ``server.max_json_depth``) and malformed JSON are
400 Problem Details, not a 500 with a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Optional

import msgspec

from ._responses import HTTPException

__all__ = ["DEFAULT_MAX_DEPTH", "InvalidJSON", "configure", "decode"]

#: The host's default ``server.max_json_depth``.
DEFAULT_MAX_DEPTH: Final = 32

#: ``(body, max_depth) -> (slug, detail) | None``: the plugin's native check,
#: the host's own algorithm and wording.
Checker = Callable[[bytes, int], Optional[tuple[str, str]]]

_max_depth = DEFAULT_MAX_DEPTH
_native_check: Checker | None = None
_decode: Final = msgspec.json.Decoder().decode


class InvalidJSON(HTTPException, ValueError):
    """The body is not JSON the host would accept: a 400 Problem Details.
    ``slug`` is the host's name for the problem (``malformed-json``,
    ``json-too-deep``). A ``ValueError`` too, for code catching that."""

    def __init__(self, slug: str, detail: str) -> None:
        super().__init__(400, detail)
        self.slug = slug


def configure(max_depth: int, native_check: Checker | None) -> None:
    """Sets the nesting limit and the native check (the runtime calls it)."""
    global _max_depth, _native_check
    _max_depth = max_depth
    _native_check = native_check


def _too_deep(body: bytes, limit: int) -> bool:
    """The host's depth count, in Python (only without the plugin)."""
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth = max(depth - 1, 0)
    return False


def _problem(body: bytes, limit: int, decode_error: Exception | None) -> InvalidJSON | None:
    check = _native_check
    if check is not None:
        found = check(body, limit)
        if found is not None:
            return InvalidJSON(*found)
    elif _too_deep(body, limit):
        return InvalidJSON(
            "json-too-deep",
            f"the request body nests arrays and objects deeper than the limit of {limit} levels",
        )
    if decode_error is not None:  # the native parser accepted what msgspec refused
        return InvalidJSON("malformed-json", f"the request body is not valid JSON: {decode_error}")
    return None


def decode(body: bytes) -> Any:
    """``body`` decoded, or :class:`InvalidJSON`. Valid bodies cost a
    msgspec decode and, when they hold more brackets than the limit, one
    native pass counting their depth."""
    limit = _max_depth
    if body.count(b"[") + body.count(b"{") > limit:
        problem = _problem(body, limit, None)
        if problem is not None:
            raise problem
    try:
        return _decode(body)
    except msgspec.DecodeError as exc:
        problem = _problem(body, limit, exc)
        raise (problem or InvalidJSON("malformed-json", f"the request body is not valid JSON: {exc}")) from exc
