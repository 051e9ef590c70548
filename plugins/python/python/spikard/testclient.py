"""``TestClient``: requests to an app through the real ``spikard-host`` and
the real plugin, with Starlette's (httpx's) API::

    from spikard.testclient import TestClient
    from myapp.main import app

    def test_items() -> None:
        with TestClient(app) as client:          # starts the host: on_startup hooks run
            r = client.post("/items", json={"name": "pen", "price": 1.5})
            assert r.status_code == 201
            assert r.json()["name"] == "pen"
        # the host stopped: on_shutdown hooks ran

The app runs where it runs in production: in the host's embedded
interpreter, in another process. So the app must be importable as
``module:attribute``: ``TestClient(app)`` looks the object up in
``sys.modules`` (the module that holds it at top level; ``__main__`` by its
file) and hands the host that module's name and the directory it is
imported from, plus this process's own ``sys.path`` directories; or pass
the string, ``TestClient("myapp.main:app")``. An app made inside a function
cannot be served: define it at a module's top level.

What differs from Starlette's ``TestClient``:

- the server is a separate process: state the app keeps (``app.state``,
  module globals, ``app.dependency_overrides``) is the *server's* copy;
  changing the object in the test process does not reach it (set
  overrides in the app module, or in a module the app imports);
- ``raise_server_exceptions=True`` (the default) raises
  :class:`ServerError` in the test for a request that made the handler
  raise (a 500), carrying the server's log record and traceback; the
  exception object itself stays in the server;
- without ``with``, the host starts at the first request (start-up hooks
  run then) and stops at :meth:`TestClient.close` or interpreter exit;
- bodies are read whole (no ``client.stream``); a response that never ends
  hangs until ``timeout``.

Binaries: ``SPIKARD_HOST_BIN`` and ``SPIKARD_PYTHON_PLUGIN`` (paths), else
``spikard-host`` and ``libspikard_python.so`` from ``target/debug`` or
``target/release`` of the checkout this package lives in (or of the working
directory), else ``spikard-host`` on ``PATH`` with the plugin beside it.
The ``venv`` setting is the virtual environment running the tests.
"""

from __future__ import annotations

import http.client
import json as _json
import mimetypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from ._request import Headers

__all__ = ["Response", "ServerError", "TestClient", "find_binaries"]

_LISTENING = re.compile(r"listening on http://([0-9.]+):(\d+)")
_REDIRECTS = (301, 302, 303, 307, 308)
_HOST_ENV, _PLUGIN_ENV = "SPIKARD_HOST_BIN", "SPIKARD_PYTHON_PLUGIN"
_PLUGIN_NAME = "libspikard_python.so" if sys.platform != "darwin" else "libspikard_python.dylib"


class ServerError(RuntimeError):
    """A request made the handler raise (the server answered 500); the
    message is the server's log record of it, traceback included."""


# ---------------------------------------------------------------------------
# Finding the app and the binaries


def app_reference(app: Any) -> tuple[str, list[str]]:
    """``("module:attribute", [directories to import it from])`` for an App
    object (or a ``"module:attribute"`` string)."""
    if isinstance(app, str):
        if ":" not in app:
            raise ValueError(f"TestClient({app!r}): write the app as 'module:attribute'")
        return app, []
    # `__main__` last: a script that imports the app holds it too.
    modules = sorted(sys.modules.items(), key=lambda item: item[0] == "__main__")
    for name, module in modules:
        if not isinstance(module, ModuleType):
            continue
        try:
            members = vars(module)
        except TypeError:
            continue
        for attribute, value in list(members.items()):
            if value is app and not attribute.startswith("__"):
                importable = _importable(name, module)
                if importable is not None:
                    module_name, root = importable
                    return f"{module_name}:{attribute}", [root]
    raise ValueError(
        "TestClient(app): the app is not a top-level attribute of an importable module; the server "
        "imports it as module:attribute in its own interpreter, so define `app = App()` at the top "
        "level of a module (or pass 'module:attribute')"
    )


def _importable(name: str, module: ModuleType) -> tuple[str, str] | None:
    """The name to import ``module`` by and the directory to import it
    from, or ``None`` (a module without a file)."""
    file = getattr(module, "__file__", None)
    if not file or not os.path.isfile(file):
        return None
    if name == "__main__":
        spec = getattr(module, "__spec__", None)
        name = spec.name if spec is not None and spec.name else Path(file).stem
    path = Path(file).resolve()
    depth = name.count(".") + (2 if path.name == "__init__.py" else 1)
    root = path
    for _ in range(depth):
        root = root.parent
    return name, str(root)


def _search_path() -> list[str]:
    """This process's ``sys.path`` directories that are neither the
    standard library nor installed packages (the server has its own)."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    out = []
    for entry in sys.path:
        path = os.path.realpath(entry or os.getcwd())
        if not os.path.isdir(path) or any(path == p or path.startswith(p + os.sep) for p in prefixes):
            continue
        if "site-packages" in path.split(os.sep) or path in out:
            continue
        out.append(path)
    return out


def find_binaries() -> tuple[Path, Path]:
    """``(spikard-host, libspikard_python)``; ``FileNotFoundError`` saying
    where it looked."""
    host_env, plugin_env = os.environ.get(_HOST_ENV), os.environ.get(_PLUGIN_ENV)
    looked: list[str] = []
    candidates: list[Path] = []
    if host_env:
        candidates.append(Path(host_env).parent)
    starts = [Path(__file__).resolve().parent, Path.cwd()]
    target_env = os.environ.get("CARGO_TARGET_DIR")
    if target_env:
        candidates += [Path(target_env) / "debug", Path(target_env) / "release"]
    for start in starts:
        for directory in [start, *start.parents]:
            if (directory / "Cargo.toml").is_file() and (directory / "target").is_dir():
                candidates += [directory / "target" / "debug", directory / "target" / "release"]
                break
    on_path = shutil.which("spikard-host")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        host = Path(host_env) if host_env else directory / "spikard-host"
        plugin = Path(plugin_env) if plugin_env else directory / _PLUGIN_NAME
        looked.append(str(directory))
        if host.is_file() and plugin.is_file():
            return host, plugin
    raise FileNotFoundError(
        "TestClient: no spikard-host with libspikard_python beside it; build them "
        f"(cargo build --workspace) or set {_HOST_ENV} and {_PLUGIN_ENV} (looked in: {', '.join(looked) or 'nothing'})"
    )


def _venv() -> str | None:
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        return sys.prefix
    return os.environ.get("VIRTUAL_ENV") or None


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"TestClient: no TOML for {value!r}")


# ---------------------------------------------------------------------------
# Responses


class Response:
    """An answer: ``status_code``, ``headers`` (case-insensitive,
    ``getlist``), ``content`` (bytes), ``text``, ``json()``, ``cookies``
    (set by this response), ``url``, ``history`` (redirects followed)."""

    def __init__(self, status_code: int, reason: str, headers: list[tuple[str, str]], content: bytes, url: str) -> None:
        self.status_code = status_code
        self.reason_phrase = reason
        self.headers = Headers([(name.lower(), value) for name, value in headers])
        self.content = content
        self.url = url
        self.history: list[Response] = []

    @property
    def text(self) -> str:
        """The body decoded by its ``charset`` (UTF-8 by default)."""
        match = re.search(r"charset=([\w-]+)", self.headers.get("content-type") or "", re.IGNORECASE)
        return self.content.decode(match.group(1) if match else "utf-8", "replace")

    def json(self) -> Any:
        """The body decoded as JSON."""
        return _json.loads(self.content)

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies this response sets, by name."""
        return {name: value for name, value, _ in (_set_cookie(v) for v in self.headers.getlist("set-cookie"))}

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def raise_for_status(self) -> Response:
        """Raises ``RuntimeError`` for a 4xx or 5xx answer."""
        if self.status_code >= 400:
            raise RuntimeError(f"{self.status_code} {self.reason_phrase} for {self.url}: {self.text[:500]}")
        return self

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


def _set_cookie(header: str) -> tuple[str, str, bool]:
    """``(name, value, expired)`` of a ``Set-Cookie`` value."""
    first, *attributes = header.split(";")
    name, _, value = first.partition("=")
    expired = False
    for attribute in attributes:
        key, _, val = attribute.strip().partition("=")
        if key.lower() == "max-age" and val.strip().lstrip("-").isdigit() and int(val) <= 0:
            expired = True
    return name.strip(), value.strip().strip('"'), expired


# ---------------------------------------------------------------------------
# Request bodies


def _multipart(data: Mapping[str, Any] | None, files: Any) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body of text fields and files (httpx's
    ``files=`` shapes: ``{"name": file_or_bytes}``, ``{"name": (filename,
    content[, content_type[, headers]])}``, or a list of such pairs)."""
    boundary = uuid.uuid4().hex
    out: list[bytes] = []

    def part(disposition: str, content: bytes, extra: Mapping[str, str]) -> None:
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n".encode())
        for key, value in extra.items():
            out.append(f"{key}: {value}\r\n".encode())
        out.append(b"\r\n" + content + b"\r\n")

    for name, value in (data or {}).items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            text = item if isinstance(item, (bytes, str)) else str(item)
            part(f'name="{_quote(name)}"', text.encode() if isinstance(text, str) else text, {})
    items = files.items() if isinstance(files, Mapping) else files
    for name, spec in items:
        filename, content, content_type, headers = None, spec, None, {}
        if isinstance(spec, tuple):
            filename, content, *rest = spec
            content_type = rest[0] if rest else None
            headers = dict(rest[1]) if len(rest) > 1 else {}
        if hasattr(content, "read"):
            if filename is None:
                filename = os.path.basename(getattr(content, "name", "") or "upload")
            content = content.read()
        if isinstance(content, str):
            content = content.encode()
        if filename is None:
            filename = "upload"
        if content_type is None:
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        part(
            f'name="{_quote(name)}"; filename="{_quote(filename)}"',
            bytes(content),
            {"Content-Type": content_type, **headers},
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _encode_body(content: bytes | str | None, data: Any, files: Any, json: Any) -> tuple[bytes | None, str | None]:
    """The body and its content type from httpx's arguments."""
    if files:
        return _multipart(data if isinstance(data, Mapping) else None, files)
    if json is not None:
        return _json.dumps(json).encode(), "application/json"
    if isinstance(data, Mapping):
        return urlencode(data, doseq=True).encode(), "application/x-www-form-urlencoded"
    raw = content if content is not None else data
    if isinstance(raw, str):
        raw = raw.encode()
    return raw, None


# ---------------------------------------------------------------------------
# The server


class _Server:
    """A ``spikard-host`` serving the app on a free port; its log in ``lines``."""

    def __init__(self, config: Path, host_bin: Path, env: Mapping[str, str], timeout: float) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.process = subprocess.Popen(
            [str(host_bin), "--config", str(config), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=str(config.parent),
        )
        self._threads = [
            threading.Thread(target=self._pump, args=(stream,), daemon=True)
            for stream in (self.process.stderr, self.process.stdout)
        ]
        for thread in self._threads:
            thread.start()
        self.port = self._await_listening(timeout)

    def _pump(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def _await_listening(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    match = _LISTENING.search(line)
                    if match:
                        return int(match.group(2))
                if self.process.poll() is not None and not any(t.is_alive() for t in self._threads):
                    raise RuntimeError(
                        f"TestClient: spikard-host exited with {self.process.returncode} before serving:\n{self.log}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.process.kill()
                    raise RuntimeError(f"TestClient: spikard-host did not listen within {timeout} s:\n{self.log}")
                self._cond.wait(min(remaining, 0.2))

    def record_of(self, request_id: str, wait: float) -> str | None:
        """The log record (with the lines that follow it, its traceback) of
        a handler that raised in request ``request_id``."""
        marker = f"request {request_id}:"
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                for i, line in enumerate(self.lines):
                    if marker in line and " raised " in line:
                        record = [line]
                        for follow in self.lines[i + 1 :]:
                            if _LOG_START.match(follow):
                                break
                            record.append(follow)
                        return "\n".join(record)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, 0.1))

    def stop(self, timeout: float) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise RuntimeError(f"TestClient: spikard-host did not stop within {timeout} s:\n{self.log}") from None
        for thread in self._threads:
            thread.join(5)
        return self.process.returncode


#: The start of a host log record (a timestamp or a level), as opposed to a
#: traceback's continuation line.
_LOG_START = re.compile(r"^\s*(\x1b\[[0-9;]*m)*(\d{4}-\d\d-\d\dT|(TRACE|DEBUG|INFO|WARN|ERROR)\b)")


class TestClient:
    """Serves ``app`` with the real host and plugin and sends it requests;
    see the module's documentation. ``server`` adds keys to the host's
    ``[server]`` table, ``settings`` to the plugin's settings, ``env`` to
    the host's environment."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Any,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        *,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        follow_redirects: bool = True,
        timeout: float = 30.0,
        server: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.app_reference, roots = app_reference(app)
        self.base_url = base_url.rstrip("/")
        self.raise_server_exceptions = raise_server_exceptions
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        self.cookies: dict[str, str] = dict(cookies or {})
        self.follow_redirects = follow_redirects
        self.timeout = timeout
        self._python_path = [*roots, *(p for p in _search_path() if p not in roots)]
        self._server_table = dict(server or {})
        self._settings = dict(settings or {})
        self._env = dict(env or {})
        self._start_timeout = start_timeout
        self._server: _Server | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    # -- the server's lifetime --------------------------------------------

    def __enter__(self) -> TestClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Starts the host (start-up hooks run); idempotent."""
        if self._server is not None:
            return
        host_bin, plugin = find_binaries()
        self._tmp = tempfile.TemporaryDirectory(prefix="spikard-testclient-")
        settings: dict[str, Any] = {"app": self.app_reference, "python_path": self._python_path}
        venv = _venv()
        if venv:
            settings["venv"] = venv
        settings.update(self._settings)
        lines = ["[server]", *(f"{k} = {_toml(v)}" for k, v in self._server_table.items()), ""]
        lines += [
            "[[plugins]]",
            'name = "python"',
            f"library = {_toml(str(plugin))}",
            f"settings = {_toml(settings)}",
            "",
        ]
        config = Path(self._tmp.name) / "spikard.toml"
        config.write_text("\n".join(lines), encoding="utf-8")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.update(self._env)
        try:
            self._server = _Server(config, host_bin, env, self._start_timeout)
        except BaseException:
            self._tmp.cleanup()
            self._tmp = None
            raise

    def close(self) -> None:
        """Stops the host (shutdown hooks run) and waits for it to exit."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        server, self._server = self._server, None
        try:
            if server is not None:
                server.stop(self._start_timeout)
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __del__(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None and server.process.poll() is None:
            server.process.kill()

    @property
    def server_log(self) -> str:
        """What the host has logged so far."""
        return self._server.log if self._server is not None else ""

    @property
    def port(self) -> int:
        """The port the host listens on (starts it)."""
        self.start()
        assert self._server is not None
        return self._server.port

    # -- requests ---------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | str | None = None,
        content: bytes | str | None = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        cookies: Mapping[str, str] | None = None,
        follow_redirects: bool | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Sends one request and returns its answer (httpx's arguments;
        ``headers`` may be a list of pairs, to repeat a header)."""
        body, content_type = _encode_body(content, data, files, json)
        given = [(k.lower(), v) for k, v in (headers.items() if isinstance(headers, Mapping) else headers or ())]
        names = {k for k, _ in given}
        sent = [(k, v) for k, v in self.headers.items() if k not in names]
        if content_type is not None and "content-type" not in names:
            sent.append(("content-type", content_type))
        sent += given
        jar = {**self.cookies, **(cookies or {})}
        if jar and "cookie" not in names:
            sent.append(("cookie", "; ".join(f"{k}={v}" for k, v in jar.items())))
        target = self._target(url, params)
        response = self._send(method.upper(), target, body, sent, timeout)
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        history: list[Response] = []
        while follow and response.status_code in _REDIRECTS and "location" in response.headers and len(history) < 20:
            history.append(response)
            target = urljoin(target, response.headers["location"])
            if response.status_code == 303 or (response.status_code in (301, 302) and method.upper() == "POST"):
                method, body = "GET", None
                sent = [(k, v) for k, v in sent if k != "content-type"]
            response = self._send(method.upper(), target, body, sent, timeout)
        response.history = history
        return response

    def _target(self, url: str, params: Any) -> str:
        target = url if "://" in url else self.base_url + ("" if url.startswith("/") else "/") + url
        if params:
            query = (
                params
                if isinstance(params, str)
                else urlencode(list(params.items()) if isinstance(params, Mapping) else list(params), doseq=True)
            )
            target += ("&" if urlsplit(target).query else "?") + query
        return target

    def _send(
        self, method: str, target: str, body: bytes | None, headers: list[tuple[str, str]], timeout: float | None
    ) -> Response:
        self.start()
        server = self._server
        assert server is not None
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = headers if any(k == "host" for k, _ in headers) else [("host", parts.netloc), *headers]
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        with self._lock:
            answer = self._exchange(server.port, method, path, body, sent, timeout or self.timeout)
        status, reason, header_list, content = answer
        response = Response(status, reason, header_list, content, target)
        for value in response.headers.getlist("set-cookie"):
            name, cookie, expired = _set_cookie(value)
            if expired:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = cookie
        if status == 500 and self.raise_server_exceptions:
            request_id = response.headers.get("x-request-id")
            record = server.record_of(request_id, 2.0) if request_id else None
            if record is not None:
                raise ServerError(record)
        return response

    def _exchange(
        self, port: int, method: str, path: str, body: bytes | None, headers: list[tuple[str, str]], timeout: float
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """One exchange on the kept-alive connection; a fresh one when the
        server closed it in between."""
        for attempt in (1, 2):
            connection = self._connection
            reused = connection is not None
            if connection is None:
                connection = self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    connection.putheader(name, value)
                if body is not None:
                    connection.putheader("content-length", str(len(body)))
                connection.endheaders(body)
                reply = connection.getresponse()
                content = reply.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                connection.close()
                self._connection = None
                if attempt == 2 or not reused:
                    raise
                continue  # the server closed the idle connection: once more on a fresh one
            except BaseException:
                connection.close()
                self._connection = None
                raise
            if reply.will_close:
                connection.close()
                self._connection = None
            return reply.status, reply.reason, reply.getheaders(), content
        raise AssertionError("unreachable")

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Response:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Response:
        return self.request("OPTIONS", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        return self.request("DELETE", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Response:
        return self.request("PATCH", url, **kwargs)
