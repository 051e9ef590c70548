"""Handlers that misbehave (examples/faults_app.py), through the real host
and plugin, on both bridges: a fault costs its own request, never the
server. Errors are answered, a blocked loop is named in the log,
cancellation reaches the handler (``finally`` runs) or keeps a waiting call
from starting, full queues answer 503 with ``Retry-After``, shutdown keeps
its deadline with a handler that never returns, Ctrl-C runs the hooks, and
``os._exit`` and segfaults leave a line or a traceback in the log."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conftest import BRIDGES, Host, HttpResponse, missing_binaries, problem, start_app_host

pytestmark = pytest.mark.e2e

APP = "examples.faults_app:app"
#: The host's grace period in the shutdown tests.
GRACE_S = 1.0


def start(tmp: Path, bridge: str, server: dict[str, Any] | None = None, **settings: Any) -> Host:
    return start_app_host(
        tmp,
        APP,
        bridge,
        env={"SPIKARD_TEST_FAULTS_DIR": str(tmp)},
        server={"request_timeout_ms": 1500, "shutdown_timeout_ms": int(GRACE_S * 1000), **(server or {})},
        **settings,
    )


@pytest.fixture(scope="module", params=BRIDGES)
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    if missing_binaries():
        pytest.skip("needs the binaries: cargo build --workspace")
    host = start(tmp_path_factory.mktemp(f"faults-{request.param}"), request.param)
    try:
        yield host
    finally:
        host.stop()


def counts(host: Host) -> dict[str, int]:
    r = host.get("/counts")
    assert r.status == 200, r.body
    return r.json()  # type: ignore[no-any-return]


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def in_background(call: Callable[[], HttpResponse]) -> tuple[threading.Thread, list[Any]]:
    """Runs a request on a thread; its response (or exception) lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def open_request(host: Host, path: str) -> socket.socket:
    """Sends a GET and leaves the connection open, unread."""
    sock = socket.create_connection(("127.0.0.1", host.port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode())
    return sock


# -- a failing handler costs its own request ----------------------------------------


def test_raise_and_memory_error_are_500s_and_neighbours_answer(host: Host) -> None:
    problem(host.get("/raise"), 500)
    problem(host.get("/alloc"), 500)
    host.wait_for_log(lambda line: "handler allocate" in line and "raised MemoryError" in line)
    for path in ("/ok/async", "/ok/async-await", "/ok/sync"):
        assert host.get(path).json() == {"ok": True}


def test_blocking_the_loop_is_logged_with_the_handler(host: Host) -> None:
    slow, out = in_background(lambda: host.get("/block-loop?seconds=0.4"))
    time.sleep(0.1)
    # An async route waits for the blocked loop; a sync one does not.
    assert host.get("/ok/sync").status == 200
    assert host.get("/ok/async").status == 200
    slow.join(10)
    assert out[0].status == 200
    line = host.wait_for_log("by handler examples.faults_app:block_loop")
    assert "the event loop was blocked for" in line
    assert "faults_app.py" in line  # the line it blocked at


# -- cancellation ---------------------------------------------------------------------------


def test_a_timed_out_async_request_is_cancelled_and_its_finally_runs(host: Host) -> None:
    before = counts(host)["finished_async"]
    r = host.get("/sleep/async?seconds=30")
    problem(r, 504)
    wait_until(lambda: counts(host)["finished_async"] == before + 1)


def test_a_client_that_resets_is_cancelled_and_its_finally_runs(host: Host) -> None:
    # The host answers half-closed clients (a FIN only ends the client's sending), so the
    # sign of a client gone is a reset: what a client that aborts sends (SO_LINGER 0 here).
    before = counts(host)
    sock = open_request(host, "/sleep/async?seconds=30")
    wait_until(lambda: counts(host)["started_async"] == before["started_async"] + 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    # Well before the request timeout (1.5 s) would cancel it.
    wait_until(lambda: counts(host)["finished_async"] == before["finished_async"] + 1, timeout=1.0)


def test_a_client_that_half_closes_still_gets_its_answer_and_a_stuck_one_is_cancelled(
    host: Host,
) -> None:
    # Nothing left over from an earlier test on this host, so the counts below are ours.
    wait_until(lambda: counts(host)["started_async"] == counts(host)["finished_async"], timeout=5.0)
    before = counts(host)
    sock = open_request(host, "/sleep/async?seconds=30")
    wait_until(lambda: counts(host)["started_async"] == before["started_async"] + 1)
    sock.shutdown(socket.SHUT_WR)
    # The request timeout (1.5 s) answers it with a 504 and cancels the handler.
    head = sock.recv(4096)
    sock.close()
    assert head.startswith(b"HTTP/1.1 504"), head[:200]
    wait_until(lambda: counts(host)["finished_async"] == before["finished_async"] + 1)


def test_a_cancelled_sync_request_that_waits_never_starts(host: Host) -> None:
    before = counts(host)
    # Four workers busy for 2.5 s and one request waiting behind them: at
    # 1.5 s all five time out and are cancelled; the waiting one never runs.
    busy = [in_background(lambda: host.get("/sleep/sync?seconds=2.5")) for _ in range(4)]
    wait_until(lambda: counts(host)["started_sync"] == before["started_sync"] + 4)
    problem(host.get("/sleep/sync?seconds=2.5"), 504)
    for thread, out in busy:
        thread.join(10)
        problem(out[0], 504)
    wait_until(lambda: counts(host)["finished_sync"] == before["finished_sync"] + 4)
    time.sleep(0.2)
    assert counts(host)["started_sync"] == before["started_sync"] + 4


@pytest.mark.parametrize("bridge", BRIDGES)
def test_a_disconnect_storm_is_refused_not_queued_without_bound(tmp_path: Path, bridge: str) -> None:
    host = start(tmp_path, bridge, max_pending=16)
    body = b"x" * (256 * 1024)
    head = (
        "POST /upload/sync HTTP/1.1\r\nhost: test\r\ncontent-type: application/octet-stream\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()

    def abort_some(n: int) -> None:
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", host.port), timeout=10) as sock:
                sock.sendall(head + body)
                time.sleep(0.005)

    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(abort_some, [25] * 16))  # 400 aborted uploads of 256 KiB, 0.1 s each
        assert host.get("/ok/async", timeout=5).status == 200  # the loop is not involved
        # The sync route is refused at once while the bounded queue drains
        # (16 x 0.1 s / 4 workers), never left waiting for a 504.
        deadline = time.monotonic() + 10
        while True:
            r = host.get("/ok/sync", timeout=5)
            if r.status == 200:
                break
            assert problem(r, 503) and r.headers["retry-after"] == "1"
            assert r.elapsed < 1.0 and time.monotonic() < deadline
            time.sleep(0.1)
        host.wait_for_log("the sync handler pool's queue is full")
    finally:
        host.stop()


# -- Request.json() ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"a": [1, 2', b"[" * 40 + b"]" * 40, b"{nope}"],
    ids=["truncated", "too-deep", "not-json"],
)
def test_request_json_errors_are_400s_in_the_hosts_words(host: Host, body: bytes) -> None:
    headers = {"content-type": "application/json"}
    by_python = problem(host.request("POST", "/json", body, headers), 400)
    by_host = problem(host.request("POST", "/json/schema", body, headers), 400)
    assert by_python["detail"] == by_host["detail"]
    assert host.request("POST", "/json", b'{"a": [1]}', headers).json() == {"a": [1]}


# -- bounded queues --------------------------------------------------------------------------


@pytest.mark.parametrize("bridge", BRIDGES)
def test_full_queues_answer_503_with_retry_after(tmp_path: Path, bridge: str) -> None:
    host = start(tmp_path, bridge, max_pending=4)
    try:
        with ThreadPoolExecutor(20) as pool:
            sync = list(pool.map(lambda _: host.get("/sleep/sync?seconds=0.5"), range(20)))
        statuses = sorted(r.status for r in sync)
        # 4 running + 4 waiting (done within the 1.5 s request timeout), the rest refused.
        assert statuses.count(200) >= 8 and set(statuses) == {200, 503}, statuses
        for r in sync:
            if r.status == 503:
                assert r.headers["retry-after"] == "1"
                assert "overloaded" in problem(r, 503)["detail"]
        host.wait_for_log("the sync handler pool's queue is full")

        # The async side: requests pile up while a handler blocks the loop.
        blocker, _ = in_background(lambda: host.get("/block-loop?seconds=1.0"))
        time.sleep(0.2)
        with ThreadPoolExecutor(20) as pool:
            loop = list(pool.map(lambda _: host.get("/ok/async"), range(20)))
        blocker.join(10)
        statuses = sorted(r.status for r in loop)
        assert 503 in statuses and 200 in statuses, statuses
        assert all(r.headers.get("retry-after") == "1" for r in loop if r.status == 503)
        assert host.get("/ok/async").status == 200
    finally:
        host.stop()


# -- shutdown -------------------------------------------------------------------------------


@pytest.mark.parametrize("bridge", BRIDGES)
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_sigterm_with_a_handler_that_never_returns_exits_in_time(tmp_path: Path, bridge: str, kind: str) -> None:
    host = start(tmp_path, bridge, server={"request_timeout_ms": 30000})
    stuck, _ = in_background(lambda: host.get(f"/spin/{kind}", timeout=30))
    time.sleep(0.3)
    started = time.monotonic()
    code = host.stop(signal.SIGTERM, timeout=10)
    took = time.monotonic() - started
    assert code == 0, host.log
    assert took < GRACE_S + 1.0, (took, host.log)
    line = host.wait_for_log(lambda text: f"handler examples.faults_app:spin_{kind}" in text and "shutdown" in text)
    assert "still running at shutdown" in line and "abandoned" in line
    if kind == "sync":  # the loop is free: the hooks run
        assert (tmp_path / "shutdown-hook").exists(), host.log
    else:  # the loop is stuck: the hooks are skipped, and the log says so
        assert "on_shutdown hooks not run" in line
        assert not (tmp_path / "shutdown-hook").exists()
    stuck.join(5)


@pytest.mark.parametrize("bridge", BRIDGES)
def test_sigterm_cancels_a_request_in_flight_and_its_finally_runs(tmp_path: Path, bridge: str) -> None:
    host = start(tmp_path, bridge, server={"request_timeout_ms": 30000})
    waiting, out = in_background(lambda: host.get("/sleep/async?seconds=60", timeout=30))
    wait_until(lambda: counts(host)["started_async"] == 1)
    started = time.monotonic()
    assert host.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - started < GRACE_S + 1.0
    assert (tmp_path / "async-finally").exists(), host.log
    assert (tmp_path / "shutdown-hook").exists(), host.log
    waiting.join(5)


@pytest.mark.parametrize("bridge", BRIDGES)
def test_sigint_runs_the_shutdown_hooks(tmp_path: Path, bridge: str) -> None:
    host = start(tmp_path, bridge)
    assert host.get("/ok/async").status == 200
    assert host.stop(signal.SIGINT) == 0
    assert (tmp_path / "shutdown-hook").exists(), host.log
    assert "KeyboardInterrupt" not in host.log


def test_os_exit_is_visible_in_the_log(tmp_path: Path) -> None:
    host = start(tmp_path, "queue")
    with pytest.raises((ConnectionError, OSError)):
        host.get("/exit", timeout=5)
    try:
        host.process.wait(10)
    except subprocess.TimeoutExpired:
        host.kill()
        raise
    assert host.process.returncode == 3
    host.stop()  # joins the log readers
    assert "os._exit(3) called by handler examples.faults_app:exit_now" in host.log, host.log


def test_a_segfault_in_c_code_prints_the_python_traceback(tmp_path: Path) -> None:
    host = start(tmp_path, "queue")
    with pytest.raises((ConnectionError, OSError)):
        host.get("/segfault", timeout=5)
    try:
        host.process.wait(10)
    except subprocess.TimeoutExpired:
        host.kill()
        raise
    assert host.process.returncode == -signal.SIGSEGV
    host.stop()  # joins the log readers
    assert "Fatal Python error: Segmentation fault" in host.log
    assert 'faults_app.py", line' in host.log and "in segfault" in host.log, host.log
