"""Starting the real `spikard-host` once, and always stopping it.

The host is started with `--listen 127.0.0.1:0`; its bound port comes from
the stderr line `listening on http://127.0.0.1:PORT`. Stderr is drained by a
thread (so a chatty host never blocks on a full pipe) and its tail kept for
diagnostics. `stop()` ends only this process, by its pid.
"""

from __future__ import annotations

import atexit
import collections
import os
import re
import subprocess
import threading
import time
from pathlib import Path

_LISTENING = re.compile(r"listening on http://([0-9.]+|\[[0-9a-fA-F:]+\]):(\d+)")


def _die_with_parent() -> None:
    """Linux: the host gets SIGTERM if the runner dies without cleaning up
    (SIGKILL); elsewhere a no-op."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort only
        pass


class StartupError(Exception):
    def __init__(self, message: str, output: str):
        super().__init__(message)
        self.output = output


class Host:
    def __init__(self, binary: Path, config: Path):
        self.binary = binary
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=400)
        self.port: int | None = None
        self._port_found = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> int:
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info,spikard::access=off")
        env["NO_COLOR"] = "1"
        self.proc = subprocess.Popen(
            [str(self.binary), "--config", str(self.config), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=str(self.config.parent),
            env=env,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )
        atexit.register(self.stop)
        self._reader = threading.Thread(target=self._drain, name="host-stderr", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._port_found.wait(0.05):
                return self.port  # type: ignore[return-value]
            if self.proc.poll() is not None:
                # Let the reader collect the last lines.
                self._reader.join(2.0)
                raise StartupError(
                    f"spikard-host exited with status {self.proc.returncode} before listening",
                    self.output(),
                )
        self.stop()
        raise StartupError(f"spikard-host did not report its address within {timeout:.0f}s", self.output())

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.tail.append(line)
            if self.port is None:
                m = _LISTENING.search(line)
                if m:
                    self.port = int(m.group(2))
                    self._port_found.set()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return "\n".join(self.tail)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
