"""HTTP/1.1 over a raw socket: the request goes out exactly as the fixture
describes it (header spelling, a wrong Content-Length, odd targets), and
every wait is bounded by a deadline."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


class HttpError(Exception):
    """The exchange failed (connection refused, timeout, garbled answer)."""


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes
    # How the body was delimited: "chunked" (Transfer-Encoding), "length"
    # (Content-Length), "close" (read to the end) or "none" (no body).
    framing: str = "none"
    # time.monotonic() when the head was read and when the body ended, and
    # (chunked) the arrival time and size of each chunk: whether a body was
    # streamed or sent at once is visible in these.
    head_at: float = 0.0
    end_at: float = 0.0
    chunk_times: list[tuple[float, int]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return ", ".join(values) if values else None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]


def _encode(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.deadline = deadline
        self.buf = bytearray()
        self.eof = False
        # time.monotonic() of the last read that brought bytes.
        self.last_fill = time.monotonic()

    def _fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise HttpError("timed out waiting for the response")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise HttpError("timed out waiting for the response") from None
        except OSError as e:
            raise HttpError(f"connection error while reading: {e}") from None
        if not chunk:
            self.eof = True
        else:
            self.last_fill = time.monotonic()
        self.buf += chunk

    def until(self, marker: bytes, limit: int = 1 << 20) -> bytes:
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + len(marker)]
                return out
            if self.eof:
                raise HttpError("connection closed before the end of the response head")
            if len(self.buf) > limit:
                raise HttpError("response head too large")
            self._fill()

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if self.eof:
                raise HttpError(f"connection closed after {len(self.buf)} of {n} body bytes")
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def rest(self, limit: int = 64 << 20) -> bytes:
        while not self.eof:
            if len(self.buf) > limit:
                raise HttpError("response body too large")
            self._fill()
        out = bytes(self.buf)
        self.buf.clear()
        return out


def exchange(
    host: str,
    port: int,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
    timeout: float = 15.0,
    half_close: bool = False,
) -> Response:
    """Sends one request on a fresh connection and reads one response."""
    deadline = time.monotonic() + timeout
    lines = [f"{method} {target} HTTP/1.1"]
    names = {k.lower() for k, _ in headers}
    if "host" not in names:
        lines.append(f"Host: {host}:{port}")
    for k, v in headers:
        lines.append(f"{k}: {v}")
    if "connection" not in names:
        lines.append("Connection: close")
    head = _encode("\r\n".join(lines) + "\r\n\r\n")
    try:
        sock = socket.create_connection((host, port), timeout=min(5.0, timeout))
    except OSError as e:
        raise HttpError(f"cannot connect to {host}:{port}: {e}") from None
    try:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            sock.sendall(head + (body or b""))
        except OSError:
            # The server may answer (413) and close before reading it all.
            pass
        if half_close:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        reader = _Reader(sock, deadline)
        while True:
            raw_head = reader.until(b"\r\n\r\n").decode("latin-1")
            head_lines = raw_head.split("\r\n")
            status_line = head_lines[0]
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise HttpError(f"bad status line {status_line!r}")
            status = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            resp_headers: list[tuple[str, str]] = []
            for line in head_lines[1:]:
                if not line:
                    continue
                k, _, v = line.partition(":")
                resp_headers.append((k.strip().lower(), v.strip()))
            if 100 <= status < 200 and status != 101:
                continue  # interim response: read the final one
            break
        response = Response(status, reason, resp_headers, b"", head_at=time.monotonic())
        response.end_at = response.head_at
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return response
        te = (response.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            response.framing = "chunked"
            body_out = bytearray()
            while True:
                size_line = reader.until(b"\r\n").split(b";")[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise HttpError(f"bad chunk size {size_line!r}") from None
                if size == 0:
                    # trailers until the blank line
                    while reader.until(b"\r\n"):
                        pass
                    break
                body_out += reader.exactly(size)
                response.chunk_times.append((reader.last_fill, size))
                if reader.exactly(2) != b"\r\n":
                    raise HttpError("chunk not followed by CRLF")
            response.body = bytes(body_out)
        elif response.header("content-length") is not None:
            try:
                n = int(response.all("content-length")[0])
            except ValueError:
                raise HttpError("bad Content-Length in the response") from None
            response.framing = "length"
            response.body = reader.exactly(n)
        else:
            response.framing = "close"
            response.body = reader.rest()
        response.end_at = time.monotonic()
        return response
    finally:
        try:
            sock.close()
        except OSError:
            pass
