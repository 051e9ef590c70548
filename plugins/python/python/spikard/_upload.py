"""``UploadFile``: one uploaded file of a ``multipart/form-data`` request.

The host parses and validates the form before Python runs and hands each
file part over inside the request's parameters as ``{"filename",
"content_type", "size", "content"}`` (``content`` is the text, or base64
with ``"content_encoding": "base64"`` when the bytes are not UTF-8;
``headers`` when the part had more than ``Content-Disposition`` and
``Content-Type``). :meth:`UploadFile.from_part` turns that into the object a
handler gets:

- a file up to :attr:`UploadFile.spool_max_size` bytes (1 MiB, as
  Starlette's) stays as the host's text until first read, and ``read()``
  returns its bytes without further copies; ``.file`` is made on first use;
- a larger one is decoded and written to a temporary file on disk at once
  (a ``SpooledTemporaryFile`` already rolled over), and the in-memory copy is
  dropped, so a long-running handler does not keep it in memory.

Every ``UploadFile`` the runtime makes is closed after the response is sent
(after a streamed body ends), which removes its temporary file.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import tempfile
from collections.abc import Iterable
from typing import IO, Any, ClassVar

__all__ = ["UploadFile", "release_all"]

_log = logging.getLogger("spikard")


def _rolled(file: Any) -> bool:
    """Whether a ``SpooledTemporaryFile`` is on disk (other files: never
    treated as such)."""
    return bool(getattr(file, "_rolled", False))


class UploadFile:
    """An uploaded file, as FastAPI's: ``filename``, ``content_type``,
    ``size`` (bytes), ``headers`` (the part's headers, lower-case names),
    ``file`` (a ``tempfile.SpooledTemporaryFile``, for sync code) and the
    ``async`` methods ``read``, ``write``, ``seek`` and ``close``.

    Files past :attr:`spool_max_size` bytes are on disk; their ``async``
    reads and writes run in a thread so the event loop is not blocked. The
    runtime closes every upload after the response is sent.
    """

    #: Files larger than this many bytes are written to a temporary file on
    #: disk; smaller ones stay in memory (1 MiB, Starlette's default).
    spool_max_size: ClassVar[int] = 1024 * 1024

    __slots__ = ("_b64", "_closed", "_data", "_file", "_pos", "_text", "content_type", "filename", "headers", "size")

    def __init__(
        self,
        file: IO[bytes] | None = None,
        *,
        size: int | None = None,
        filename: str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        """An upload over an open binary ``file`` (or empty), for tests and
        code that makes its own; the runtime uses :meth:`from_part`."""
        self.filename = filename
        self.headers: dict[str, str] = dict(headers or {})
        if content_type is None:
            content_type = self.headers.get("content-type")
        self.content_type = content_type
        self.size = size
        #: The host's content (text or base64), before the first read.
        self._text: str | None = None
        self._b64 = False
        #: The content as bytes, in memory; ``_pos`` is the read position.
        self._data: bytes | None = None if file is not None else b""
        self._pos = 0
        self._file: IO[bytes] | None = file
        self._closed = False

    @classmethod
    def from_part(cls, part: dict[str, Any], spool_max_size: int | None = None) -> UploadFile:
        """The upload of one file part as the host hands it over."""
        raw_headers = part.get("headers")
        content_type = part.get("content_type") or "text/plain"
        if raw_headers:
            headers: dict[str, str] = {}
            for name, value in raw_headers:
                name = str(name).lower()
                previous = headers.get(name)
                headers[name] = value if previous is None else f"{previous}, {value}"
        else:
            headers = {"content-type": content_type}
        upload = cls(filename=part.get("filename"), headers=headers, content_type=content_type)
        content = part.get("content") or ""
        upload._b64 = part.get("content_encoding") == "base64"
        size = part.get("size")
        if not isinstance(size, int):
            size = len(upload._decode(content))
        upload.size = size
        limit = cls.spool_max_size if spool_max_size is None else spool_max_size
        if size > limit:
            upload._spool(upload._decode(content), limit)
        else:
            upload._data = None
            upload._text = content
        return upload

    # -- internals --------------------------------------------------------

    def _decode(self, content: str) -> bytes:
        if self._b64:
            return binascii.a2b_base64(content)
        return content.encode("utf-8")

    def _buffer(self) -> bytes | None:
        """The in-memory bytes (decoding the host's text on first use), or
        ``None`` once the content lives in :attr:`file`."""
        data = self._data
        if data is None and self._text is not None:
            data = self._data = self._decode(self._text)
            self._text = None
        return data

    def _spool(self, data: bytes, limit: int) -> None:
        """Writes ``data`` straight to a temporary file on disk."""
        spooled = tempfile.SpooledTemporaryFile(max_size=limit, mode="w+b")  # noqa: SIM115 - closed by close()
        try:
            spooled.rollover()
            spooled.write(data)
            spooled.seek(0)
        except BaseException:
            spooled.close()
            raise
        self._file = spooled
        self._data = None
        self._text = None

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"I/O operation on closed upload {self.filename!r}")

    @property
    def file(self) -> IO[bytes]:
        """The content as a binary file (a ``SpooledTemporaryFile``), at the
        current position; made on first use for a file kept in memory."""
        self._check_open()
        file = self._file
        if file is None:
            data = self._buffer() or b""
            limit = type(self).spool_max_size
            file = tempfile.SpooledTemporaryFile(max_size=limit, mode="w+b")  # noqa: SIM115 - closed by close()
            file.write(data)
            file.seek(self._pos)
            self._file = file
            self._data = None
        return file

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    @property
    def in_memory(self) -> bool:
        """``False`` when the content is in a temporary file on disk."""
        return not _rolled(self._file)

    # -- the async API (FastAPI's) -----------------------------------------

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all when ``-1``)."""
        self._check_open()
        if self._file is None:
            return self._read_memory(size)
        if _rolled(self._file):
            return await asyncio.to_thread(self._file.read, size)
        return self._file.read(size)

    async def write(self, data: bytes) -> None:
        """Writes ``data`` at the current position."""
        file = self.file
        if _rolled(file):
            await asyncio.to_thread(file.write, data)
        else:
            file.write(data)

    async def seek(self, offset: int) -> None:
        """Moves the position to ``offset`` bytes from the start."""
        self._check_open()
        if self._file is None:
            if offset < 0:
                raise ValueError(f"negative seek position {offset}")
            self._pos = offset
        elif _rolled(self._file):
            await asyncio.to_thread(self._file.seek, offset)
        else:
            self._file.seek(offset)

    async def close(self) -> None:
        """Closes the upload (its temporary file is removed)."""
        self.release()

    # -- the sync API ------------------------------------------------------

    def _read_memory(self, size: int) -> bytes:
        data = self._buffer() or b""
        pos = self._pos
        if size is None or size < 0:
            end = len(data)
        else:
            end = min(pos + size, len(data))
        if pos >= end:
            self._pos = max(pos, 0)
            return b""
        self._pos = end
        if pos == 0 and end == len(data):
            return data  # the whole content: no copy
        return data[pos:end]

    def release(self) -> None:
        """Closes the upload now; never raises (the runtime's cleanup)."""
        if self._closed:
            return
        self._text = None
        self._data = None
        file = self._file
        self._file = None
        if file is not None:
            try:
                file.close()
            except Exception as exc:  # noqa: BLE001 - cleanup goes on
                _log.warning("closing the upload %r failed: %s: %s", self.filename, type(exc).__name__, exc)
        self._closed = True  # last: `closed` means the temporary file is gone

    def fileno(self) -> int:
        """The descriptor of the temporary file on disk (``OSError`` while
        the content is in memory)."""
        file = self._file
        if file is None or not _rolled(file):
            raise OSError("the upload is in memory and has no file descriptor")
        return file.fileno()

    def __repr__(self) -> str:
        return (
            f"UploadFile(filename={self.filename!r}, size={self.size!r}, "
            f"content_type={self.content_type!r}, in_memory={self.in_memory})"
        )


def release_all(files: Iterable[UploadFile] | None) -> None:
    """Closes every upload of a request (after its response is sent)."""
    if files:
        for upload in files:
            upload.release()
