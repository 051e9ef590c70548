"""What a handler returns or raises: ``Response`` and ``HTTPException``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Union

__all__ = ["HTTPException", "Response", "HeadersLike"]

#: Response headers: a mapping or a sequence of ``(name, value)`` pairs.
HeadersLike = Union[Mapping[str, str], Iterable[tuple[str, str]]]


def header_list(headers: HeadersLike | None) -> list[tuple[str, str]]:
    """Headers as the list of ``(name, value)`` string pairs the host takes."""
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), str(value)) for name, value in items]


class Response:
    """A response with full control over status, headers and body.

    ``content`` may be ``None`` (empty body), ``bytes`` (sent as is,
    ``application/octet-stream`` unless ``media_type`` says otherwise), ``str``
    (UTF-8, ``text/plain``) or anything JSON-encodable (``application/json``).
    ``media_type`` sets the ``content-type`` (``; charset=utf-8`` is added to
    ``text/*``); a ``content-type`` in ``headers`` wins over both.
    """

    __slots__ = ("content", "status_code", "headers", "media_type")

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
    ) -> None:
        self.content = content
        self.status_code = status_code
        self.headers: list[tuple[str, str]] = header_list(headers)
        self.media_type = media_type

    def __repr__(self) -> str:
        return f"Response(status_code={self.status_code!r}, media_type={self.media_type!r})"


class HTTPException(Exception):
    """Raise to answer with an error: an RFC 9457 Problem Details body whose
    ``status`` is ``status_code`` and ``detail`` is ``detail`` (the status
    phrase when omitted), plus ``headers`` (e.g. ``www-authenticate``)."""

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: HeadersLike | None = None,
    ) -> None:
        self.status_code = status_code
        self.detail = detail
        self.headers: list[tuple[str, str]] = header_list(headers)
        super().__init__(status_code, detail)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"HTTPException(status_code={self.status_code!r}, detail={self.detail!r})"
