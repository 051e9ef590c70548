"""``Request.form()``'s parser: an ``application/x-www-form-urlencoded`` or
``multipart/form-data`` body, as sent, into a :class:`FormData` of strings
and :class:`UploadFile` s (Starlette's shape).

The host has already parsed and validated the form of a route that declares
``Form``/``File`` parameters, but it hands Python *converted* values (an
``int`` field arrives as an ``int``); ``form()`` is about what was sent, so
it reads the raw body again. It runs only when a handler calls ``form()``.
"""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qsl, unquote

from ._request import FormData
from ._upload import UploadFile

__all__ = ["parse_form"]

#: ``; name="value"`` or ``; name=token`` in a header's parameters.
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:\\.|[^"\\])*"|[^;]*)')


def _params(value: str) -> tuple[str, dict[str, str]]:
    """A header value's main part (lower-case) and its parameters."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key] = raw
    return main.strip().lower(), params


def parse_form(content_type: str, body: bytes) -> FormData:
    """The form in ``body``; empty for another media type."""
    media_type, params = _params(content_type)
    if media_type == "application/x-www-form-urlencoded":
        text = body.decode("utf-8", "replace")
        return FormData(parse_qsl(text, keep_blank_values=True))
    if media_type == "multipart/form-data" and params.get("boundary"):
        return FormData(_multipart(body, params["boundary"].encode("latin-1")))
    return FormData()


def _multipart(body: bytes, boundary: bytes) -> list[tuple[str, str | UploadFile]]:
    """The parts of a ``multipart/form-data`` body (RFC 7578): text fields
    decoded (UTF-8, or the part's charset), file parts as uploads."""
    items: list[tuple[str, str | UploadFile]] = []
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        _, _, chunk = chunk.partition(b"\r\n")  # transport padding, the line's end
        if chunk.startswith(b"\r\n"):
            head, content = b"", chunk[2:]
        else:
            head, _, content = chunk.partition(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        _, disposition = _params(headers.get("content-disposition", ""))
        field = disposition.get("name")
        if field is None:
            continue
        filename: str | None = disposition.get("filename")
        star = disposition.get("filename*")
        if star and "''" in star:
            charset, _, encoded = star.partition("''")
            filename = unquote(encoded, encoding=charset or "utf-8", errors="replace")
        _, part_params = _params(headers.get("content-type", ""))
        if filename is None:
            items.append((field, content.decode(part_params.get("charset") or "utf-8", "replace")))
            continue
        upload = UploadFile(
            io.BytesIO(content),
            size=len(content),
            filename=filename,
            headers=headers,
            content_type=headers.get("content-type") or "text/plain",
        )
        items.append((field, upload))
    return items
