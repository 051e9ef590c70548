"""Shared test machinery.

Unit tests (``test_schema``, ``test_runtime``) import the
package from source. End-to-end tests (``test_e2e_*``, marked ``e2e``) start
the real ``spikard-host`` with the real ``libspikard_python.so`` and talk HTTP
to it; they need ``cargo build --workspace`` first. When the binaries are
missing, ``test_e2e_build.py`` fails once with that instruction and every
other end-to-end test is skipped.

Environment overrides: ``SPIKARD_HOST_BIN``, ``SPIKARD_PYTHON_PLUGIN`` (paths),
``CARGO_TARGET_DIR``, ``SPIKARD_TEST_VENV`` (the ``venv`` setting; default:
the virtualenv running pytest, if any).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[1]  # plugins/python
ROOT = PLUGIN_DIR.parents[1]  # the workspace
sys.path.insert(0, str(PLUGIN_DIR / "python"))
sys.path.insert(1, str(PLUGIN_DIR))

TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug"
HOST_BIN = Path(os.environ.get("SPIKARD_HOST_BIN") or TARGET / "spikard-host")
PLUGIN_LIB = Path(os.environ.get("SPIKARD_PYTHON_PLUGIN") or TARGET / "libspikard_python.so")
BUILD_HINT = "run `cargo build --workspace` in the repository root"
BRIDGES = ("queue", "into_future")
LISTENING = re.compile(r"listening on http://([0-9.]+):(\d+)")


def missing_binaries() -> list[str]:
    return [str(p) for p in (HOST_BIN, PLUGIN_LIB) if not p.is_file()]


def venv_setting() -> str | None:
    """The ``venv`` setting for test hosts: the virtualenv running pytest."""
    explicit = os.environ.get("SPIKARD_TEST_VENV")
    if explicit is not None:
        return explicit or None
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        return sys.prefix
    return os.environ.get("VIRTUAL_ENV") or None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end to end through the real spikard-host and plugin")
    config.addinivalue_line("markers", "build_check: reports missing binaries (never skipped)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = missing_binaries()
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"needs {', '.join(missing)}: {BUILD_HINT} (see test_e2e_build.py)")
    for item in items:
        if "e2e" in item.keywords and "build_check" not in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------------------
# Config files


def toml_value(value: Any) -> str:
    """A TOML value (inline tables for mappings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def plugin_settings(app: str, bridge: str = "queue", **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "app": app,
        "python_path": [str(PLUGIN_DIR)],
        "bridge": bridge,
        "sync_workers": 4,
    }
    venv = venv_setting()
    if venv:
        settings["venv"] = venv
    for key, value in extra.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    return settings


def write_config(
    directory: Path,
    settings: Mapping[str, Any],
    server: Mapping[str, Any] | None = None,
    library: Path | None = None,
) -> Path:
    server_table = {"problem_type_base": "https://spikard.dev/errors/", **(server or {})}
    lines = ["[server]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in server_table.items()]
    lines += [
        "",
        "[[plugins]]",
        'name = "py"',
        f"library = {toml_value(str(library or PLUGIN_LIB))}",
        f"settings = {toml_value(dict(settings))}",
        "",
    ]
    path = directory / "spikard.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# HTTP


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    header_list: list[tuple[str, str]]
    body: bytes
    elapsed: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | str | Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> HttpResponse:
    """One request on a fresh connection to 127.0.0.1:port."""
    sent_headers = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body).encode()
        sent_headers.setdefault("content-type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=sent_headers)
        response = conn.getresponse()
        data = response.read()
        pairs = [(k.lower(), v) for k, v in response.getheaders()]
        return HttpResponse(response.status, dict(pairs), pairs, data, time.monotonic() - started)
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# The host process


class HostError(RuntimeError):
    pass


@dataclass
class Host:
    """A running ``spikard-host``; its stderr is collected in ``lines``."""

    process: subprocess.Popen[bytes]
    config: Path
    lines: list[str] = field(default_factory=list)
    port: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        config: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Host:
        full_env = dict(os.environ)
        full_env.setdefault("RUST_LOG", "info")
        full_env.update(env or {})
        process = subprocess.Popen(
            [str(HOST_BIN), "--config", str(config), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=str(config.parent),
        )
        host = cls(process, config)
        for stream, prefix in ((process.stderr, ""), (process.stdout, "[stdout] ")):
            thread = threading.Thread(target=host._pump, args=(stream, prefix), daemon=True)
            thread.start()
            host._threads.append(thread)
        host._await_listening(timeout)
        return host

    def _pump(self, stream: Any, prefix: str) -> None:
        for raw in iter(stream.readline, b""):
            line = prefix + raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _await_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    match = LISTENING.search(line)
                    if match:
                        self.port = int(match.group(2))
                        return
                if self.process.poll() is not None and not any(t.is_alive() for t in self._threads):
                    raise HostError(
                        f"spikard-host exited with {self.process.returncode} before listening:\n" + self.log
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise HostError(f"spikard-host did not listen within {timeout} s:\n" + self.log)
                self._cond.wait(min(remaining, 0.2))

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_log(self, predicate: Callable[[str], bool] | str, timeout: float = 10.0) -> str:
        """The first log line matching (a substring or a predicate), waiting
        up to ``timeout`` seconds for it."""
        check = (lambda line: predicate in line) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if check(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no log line matching {predicate!r} within {timeout} s:\n{self.log}")
                self._cond.wait(min(remaining, 0.2))

    def request(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None, timeout: float = 15.0
    ) -> HttpResponse:
        if self.process.poll() is not None:
            raise HostError(f"spikard-host is not running (exit {self.process.returncode}):\n{self.log}")
        return http_request(self.port, method, path, body, headers, timeout)

    def get(self, path: str, headers: Mapping[str, str] | None = None, timeout: float = 15.0) -> HttpResponse:
        return self.request("GET", path, headers=headers, timeout=timeout)

    def post(self, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> HttpResponse:
        return self.request("POST", path, body, headers)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Sends ``sig`` and waits for the exit status (kills after ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"spikard-host did not stop within {timeout} s:\n{self.log}") from None
        for thread in self._threads:
            thread.join(5)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def run_check(config: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``spikard-host --check --config config``, to completion."""
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    return subprocess.run(
        [str(HOST_BIN), "--check", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(config.parent),
    )


def start_app_host(
    tmp: Path,
    app: str,
    bridge: str = "queue",
    env: Mapping[str, str] | None = None,
    server: Mapping[str, Any] | None = None,
    **settings: Any,
) -> Host:
    config = write_config(tmp, plugin_settings(app, bridge, **settings), server)
    return Host.start(config, env)


def host_fixture(app: str, **settings: Any) -> Callable[..., Iterator[Host]]:
    """A module-scoped fixture serving ``app`` once per bridge."""

    @pytest.fixture(scope="module", params=BRIDGES)
    def fixture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
        if missing_binaries():
            pytest.skip(f"needs {', '.join(missing_binaries())}: {BUILD_HINT}")
        tmp = tmp_path_factory.mktemp(f"{app.split(':', maxsplit=1)[0].rsplit('.', maxsplit=1)[-1]}-{request.param}")
        host = start_app_host(tmp, app, request.param, **settings)
        try:
            yield host
        finally:
            host.stop()

    return fixture


def problem(response: HttpResponse, status: int) -> dict[str, Any]:
    """Checks a Problem Details answer and returns its body."""
    assert response.status == status, (response.status, response.body)
    assert response.content_type.startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://spikard.dev/errors/")
    assert "title" in body and "detail" in body
    assert body.get("request_id") == response.headers.get("x-request-id")
    return body


def error_locs(body: Mapping[str, Any]) -> list[list[Any]]:
    return [e["loc"] for e in body.get("errors", [])]
