"""What a handler returns or raises: ``Response`` and its FastAPI/Starlette
subclasses (``JSONResponse``, ``HTMLResponse``, ``PlainTextResponse``,
``RedirectResponse``, ``FileResponse``, ``ORJSONResponse``), the mutable
case-insensitive :class:`MutableHeaders`, and ``HTTPException``.

Only the standard library is imported here: JSON bodies are encoded by the
runtime's encoder (msgspec), looked up when a response is rendered.
"""

from __future__ import annotations

import email.utils
import hashlib
import http
import http.cookies
import mimetypes
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import quote

__all__ = [
    "FileResponse",
    "HTMLResponse",
    "HTTPException",
    "HeadersLike",
    "JSONResponse",
    "MutableHeaders",
    "ORJSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "UJSONResponse",
    "header_list",
    "problem_body",
    "problem_kind",
]

#: Response headers: a mapping or a sequence of ``(name, value)`` pairs.
HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


def header_list(headers: HeadersLike | None) -> list[tuple[str, str]]:
    """Headers as the list of ``(name, value)`` string pairs the host takes."""
    if not headers:
        return []
    if isinstance(headers, MutableHeaders):
        return list(headers.raw)
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), str(value)) for name, value in items]


class MutableHeaders(MutableMapping[str, str]):
    """Response headers, as Starlette's ``MutableHeaders``: a case-insensitive
    mapping (``response.headers["X-Trace"] = "1"``, ``del``, ``get``) over an
    ordered list of pairs that may repeat a name (``append``, ``getlist``:
    ``set-cookie``). Names keep the case they were given; ``raw`` is the
    pair list sent to the host."""

    __slots__ = ("raw",)

    def __init__(self, headers: HeadersLike | None = None) -> None:
        #: The ``(name, value)`` pairs, in order.
        self.raw: list[tuple[str, str]] = header_list(headers)

    def __getitem__(self, name: str) -> str:
        lower = name.lower()
        for key, value in self.raw:
            if key.lower() == lower:
                return value
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        """Sets ``name`` to ``value``, replacing every earlier value."""
        lower = name.lower()
        kept: list[tuple[str, str]] = []
        index = None
        for pair in self.raw:
            if pair[0].lower() == lower:
                if index is None:
                    index = len(kept)
                    kept.append((pair[0], str(value)))
            else:
                kept.append(pair)
        if index is None:
            kept.append((str(name), str(value)))
        self.raw = kept

    def __delitem__(self, name: str) -> None:
        lower = name.lower()
        kept = [pair for pair in self.raw if pair[0].lower() != lower]
        if len(kept) == len(self.raw):
            raise KeyError(name)
        self.raw = kept

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        lower = name.lower()
        return any(key.lower() == lower for key, _ in self.raw)

    def __iter__(self) -> Iterator[str]:
        """The distinct names, lower-case (as Starlette's)."""
        seen: dict[str, None] = {}
        for key, _ in self.raw:
            seen.setdefault(key.lower(), None)
        return iter(seen)

    def __len__(self) -> int:
        return len({key.lower() for key, _ in self.raw})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MutableHeaders):
            return sorted((k.lower(), v) for k, v in self.raw) == sorted((k.lower(), v) for k, v in other.raw)
        if isinstance(other, Mapping):
            return dict(self.items()) == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def append(self, name: str, value: str) -> None:
        """Adds a header even when ``name`` is there already."""
        self.raw.append((str(name), str(value)))

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        lower = name.lower()
        return [value for key, value in self.raw if key.lower() == lower]

    def add_vary_header(self, vary: str) -> None:
        """Adds ``vary`` to the ``Vary`` header (Starlette's helper)."""
        existing = self.get("vary")
        self["vary"] = f"{existing}, {vary}" if existing else vary

    def __repr__(self) -> str:
        return f"MutableHeaders({self.raw!r})"


_SameSite = Literal["lax", "strict", "none"]


class Response:
    """A response with full control over status, headers and body.

    ``content`` may be ``None`` (empty body), ``bytes`` (sent as is,
    ``application/octet-stream`` unless ``media_type`` says otherwise), ``str``
    (UTF-8, ``text/plain``) or anything JSON-encodable (``application/json``).
    ``media_type`` sets the ``content-type`` (``; charset=utf-8`` is added to
    ``text/*``); a ``content-type`` in ``headers`` wins over both.
    ``headers`` is a :class:`MutableHeaders` (``response.headers["x"] = "1"``);
    :meth:`set_cookie` / :meth:`delete_cookie` add ``set-cookie`` headers.
    ``background`` (a ``BackgroundTasks`` or ``BackgroundTask``) runs after
    the response is sent.

    Subclasses, as in Starlette, set a class attribute ``media_type`` and may
    override :meth:`render` (``content -> bytes``).
    """

    #: The ``content-type`` of this class's bodies (``None``: chosen by the
    #: content's type).
    media_type: str | None = None
    #: Added to ``text/*`` media types.
    charset: str = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> None:
        self.content = content
        self.status_code = status_code
        self._headers = MutableHeaders(headers)
        if media_type is not None:
            self.media_type = media_type
        self.background = background

    @property
    def headers(self) -> MutableHeaders:
        """The response headers (case-insensitive, mutable)."""
        return self._headers

    @headers.setter
    def headers(self, value: HeadersLike | None) -> None:
        self._headers = value if isinstance(value, MutableHeaders) else MutableHeaders(value)

    @property
    def body(self) -> bytes:
        """The rendered body (Starlette's ``response.body``)."""
        return self.render(self.content)

    def render(self, content: Any) -> bytes:
        """The body bytes of ``content``: bytes as they are, ``str`` as UTF-8,
        ``None`` as nothing, anything else as JSON."""
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        return _json_bytes(content)

    def _default_media_type(self, content: Any) -> str | None:
        """The ``content-type`` for ``content`` when no ``media_type`` is set."""
        if content is None:
            return None
        if isinstance(content, (bytes, bytearray, memoryview)):
            return "application/octet-stream"
        if isinstance(content, str):
            return "text/plain; charset=utf-8"
        return "application/json"

    def rendered(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """``(status, headers, body)`` as sent: the ``content-type`` first
        unless ``headers`` has one."""
        content = self.content
        body = self.render(content)
        media_type = self.media_type
        if media_type is None:
            media_type = self._default_media_type(content)
        elif media_type.startswith("text/") and "charset" not in media_type.lower():
            media_type = f"{media_type}; charset={self.charset}"
        headers = self._headers.raw
        if media_type is not None and "content-type" not in self._headers:
            headers = [("content-type", media_type), *headers]
        return int(self.status_code), headers, body

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: _SameSite | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Adds a ``set-cookie`` header (Starlette's signature)."""
        cookie: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = max_age
        if expires is not None:
            if isinstance(expires, datetime):
                morsel["expires"] = email.utils.format_datetime(expires, usegmt=True)
            else:
                morsel["expires"] = expires
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            if samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError("samesite must be either 'strict', 'lax' or 'none'")
            morsel["samesite"] = samesite
        text = cookie.output(header="").strip()
        if partitioned:
            if sys.version_info >= (3, 14):
                morsel["partitioned"] = True
                text = cookie.output(header="").strip()
            else:
                text += "; Partitioned"
        self._headers.append("set-cookie", text)

    def delete_cookie(
        self,
        key: str,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: _SameSite | None = "lax",
    ) -> None:
        """Adds a ``set-cookie`` header that expires the cookie now."""
        self.set_cookie(
            key,
            max_age=0,
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, media_type={self.media_type!r})"


def _json_bytes(content: Any) -> bytes:
    """JSON via the runtime's encoder (msgspec, pydantic models included)."""
    from ._runtime import _json_body

    return _json_body(content)


class JSONResponse(Response):
    """``content`` as JSON (``None`` is ``null``), ``application/json``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _json_bytes(content)


class ORJSONResponse(JSONResponse):
    """FastAPI's ``ORJSONResponse``: here the same fast encoder as
    :class:`JSONResponse` (msgspec), so orjson is not needed."""


class UJSONResponse(JSONResponse):
    """FastAPI's ``UJSONResponse``: the same as :class:`JSONResponse`."""


class HTMLResponse(Response):
    """A ``str`` (or bytes) body as ``text/html; charset=utf-8``."""

    media_type = "text/html"

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        return str(content).encode(self.charset)


class PlainTextResponse(HTMLResponse):
    """A ``str`` (or bytes) body as ``text/plain; charset=utf-8``."""

    media_type = "text/plain"


class RedirectResponse(Response):
    """A redirect to ``url`` (``307 Temporary Redirect`` by default, as in
    Starlette), with an empty body and ``location`` header."""

    def __init__(
        self,
        url: Any,
        status_code: int = 307,
        headers: HeadersLike | None = None,
        background: Any = None,
    ) -> None:
        super().__init__(b"", status_code=status_code, headers=headers, background=background)
        self.headers["location"] = quote(str(url), safe=":/%#?=@[]!$&'()*+,;")

    def _default_media_type(self, content: Any) -> str | None:
        return None


class FileResponse(Response):
    """The file at ``path`` as the body (read when the response is sent),
    with ``content-type`` guessed from the file name unless ``media_type``
    is given, ``last-modified`` and ``etag``, and a ``content-disposition``
    naming ``filename`` when it is given. The whole file is read into
    memory: for large files return a ``StreamingResponse`` over the file."""

    chunk_size = 64 * 1024

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: HeadersLike | None = None,
        media_type: str | None = None,
        background: Any = None,
        filename: str | None = None,
        stat_result: os.stat_result | None = None,
        method: str | None = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        super().__init__(None, status_code=status_code, headers=headers, background=background)
        self.path = path
        self.filename = filename
        if media_type is None:
            media_type = mimetypes.guess_type(filename or os.fspath(path))[0] or "text/plain"
        self.media_type = media_type
        if filename is not None:
            quoted = quote(filename)
            if quoted != filename:
                disposition = f"{content_disposition_type}; filename*=utf-8''{quoted}"
            else:
                disposition = f'{content_disposition_type}; filename="{filename}"'
            self.headers.setdefault("content-disposition", disposition)
        self.stat_result = stat_result

    def render(self, content: Any) -> bytes:
        with open(self.path, "rb") as file:
            data = file.read()
        stat = self.stat_result or os.stat(self.path)
        self.headers.setdefault("last-modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        tag = hashlib.md5(f"{stat.st_mtime}-{stat.st_size}".encode(), usedforsecurity=False).hexdigest()
        self.headers.setdefault("etag", f'"{tag}"')
        return data

    def _default_media_type(self, content: Any) -> str | None:
        return None


# ---------------------------------------------------------------------------
# Problem Details rendered in Python

#: The ``type`` base of Problem Details bodies rendered in Python (structured
#: ``HTTPException`` details, ``RequestValidationError``). The plugin ABI
#: does not tell plugins the host's ``server.problem_type_base``, so this is
#: the default the shipped configs use.
PROBLEM_TYPE_BASE: Final = "https://spikard.dev/errors/"

#: Slug and title by status: the host's table (host/src/problem.rs ``kind_of``).
_KINDS: Final[dict[int, tuple[str, str]]] = {
    400: ("bad-request", "Bad Request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not Found"),
    405: ("method-not-allowed", "Method Not Allowed"),
    409: ("conflict", "Conflict"),
    410: ("gone", "Gone"),
    413: ("payload-too-large", "Payload Too Large"),
    415: ("unsupported-media-type", "Unsupported Media Type"),
    422: ("unprocessable-content", "Unprocessable Content"),
    429: ("too-many-requests", "Too Many Requests"),
    501: ("not-implemented", "Not Implemented"),
    502: ("bad-gateway", "Bad Gateway"),
    503: ("service-unavailable", "Service Unavailable"),
    504: ("gateway-timeout", "Gateway Timeout"),
}


def problem_kind(status: int) -> tuple[str, str]:
    """``(slug, title)`` of a status, as the host names a plugin's problem."""
    kind = _KINDS.get(status)
    if kind is not None:
        return kind
    if 400 <= status <= 499:
        return ("client-error", "Client Error")
    return ("internal-server-error", "Internal Server Error")


def problem_body(
    status: int,
    detail: Any,
    request_id: str = "",
    *,
    slug: str | None = None,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 Problem Details object shaped like the host's (``type``,
    ``title``, ``status``, ``detail``, ``request_id`` when known, then
    ``extra`` members); ``detail`` may be any JSON value."""
    kind_slug, kind_title = problem_kind(status)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (slug or kind_slug),
        "title": title or kind_title,
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return body


class HTTPException(Exception):
    """Raise to answer with an error: an RFC 9457 Problem Details body whose
    ``status`` is ``status_code`` and ``detail`` is ``detail`` (the status
    phrase when omitted), plus ``headers`` (e.g. ``www-authenticate``).
    A ``dict`` or ``list`` detail stays a JSON value in the body (FastAPI's
    structured details); a status below 400 answers ``{"detail": ...}`` as
    JSON instead."""

    def __init__(
        self,
        status_code: int,
        detail: Any = None,
        headers: HeadersLike | None = None,
    ) -> None:
        if detail is None:
            try:
                detail = http.HTTPStatus(status_code).phrase
            except ValueError:
                detail = f"HTTP {status_code}"
        self.status_code = status_code
        self.detail = detail
        #: As given (FastAPI: a dict or ``None``).
        self.headers = headers
        super().__init__(status_code, detail)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"
