"""Streamed responses through the real host and plugin
(examples/streaming_app.py), on both bridges: async and sync generators,
``str`` and ``bytes`` chunks, a slow client reading 10,000 chunks with the
host's memory bounded, a client leaving mid-stream (the producer's
``finally`` runs), Server-Sent Events arriving one by one with keep-alive
pings, and a producer failing midway.

The client here is a raw socket that parses the chunked body as it
arrives, so a test sees each chunk when the host sends it."""

from __future__ import annotations

import json
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import BRIDGES, Host, missing_binaries, start_app_host

pytestmark = pytest.mark.e2e

APP = "examples.streaming_app:app"
#: The body has no timeout once the head is sent; the slow client outlasts this.
REQUEST_TIMEOUT_MS = 1500


@pytest.fixture(scope="module", params=BRIDGES)
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    if missing_binaries():
        pytest.skip("needs the binaries: cargo build --workspace")
    tmp = tmp_path_factory.mktemp(f"streaming-{request.param}")
    host = start_app_host(tmp, APP, request.param, server={"request_timeout_ms": REQUEST_TIMEOUT_MS})
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def bridge(host: Host) -> str:
    return "into_future" if "into_future" in host.config.parent.name else "queue"


class StreamClient:
    """One ``GET`` (or ``POST``) on a raw socket; the chunked body is read
    incrementally. ``pause``: seconds to sleep before each ``recv`` of at
    most ``read_size`` bytes (a slow reader)."""

    def __init__(
        self,
        port: int,
        path: str,
        method: str = "GET",
        rcvbuf: int | None = None,
        read_size: int = 65536,
        pause: float = 0.0,
        timeout: float = 10.0,
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.read_size = read_size
        self.pause = pause
        self.received = 0
        self.buf = b""
        self.done = False
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\n\r\n".encode())
        head = self._until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.header_list = [(k.strip().lower(), v.strip()) for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)]
        self.headers = dict(self.header_list)

    def _fill(self) -> None:
        if self.pause:
            time.sleep(self.pause)
        data = self.sock.recv(self.read_size)
        if not data:
            raise EOFError("the connection closed")
        self.received += len(data)
        self.buf += data

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        data, self.buf = self.buf.split(marker, 1)
        return data

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def chunk(self) -> bytes | None:
        """The next chunk of the body; ``None`` at its end."""
        if self.done:
            return None
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            while self._until(b"\r\n"):  # trailers, up to the blank line
                pass
            self.done = True
            return None
        data = self._exact(size)
        assert self._exact(2) == b"\r\n"
        return data

    def body(self) -> bytes:
        parts = []
        while (part := self.chunk()) is not None:
            parts.append(part)
        return b"".join(parts)

    def read_until(self, marker: bytes, timeout: float = 10.0) -> bytes:
        """Chunks until ``marker`` is in what was read."""
        self.sock.settimeout(timeout)
        data = b""
        while marker not in data:
            part = self.chunk()
            assert part is not None, f"the body ended before {marker!r}: {data!r}"
            data += part
        return data

    def read_for(self, seconds: float) -> bytes:
        """Whatever chunks arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        data = b""
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                part = self.chunk()
            except TimeoutError:
                break
            if part is None:
                break
            data += part
        return data

    def close(self) -> None:
        self.sock.close()

    def abort(self) -> None:
        """Closes with a reset (RST), as a client that is killed or times out."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def open_stream(host: Host, path: str, **options: Any) -> StreamClient:
    return StreamClient(host.port, path, **options)


def finished(host: Host) -> dict[str, Any]:
    r = host.get("/finished")
    assert r.status == 200, r.body
    return r.json()  # type: ignore[no-any-return]


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.02)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def chunked_head(client: StreamClient) -> None:
    assert client.headers.get("transfer-encoding") == "chunked", client.headers
    assert "content-length" not in client.headers


# -- plain streams ---------------------------------------------------------------------


def test_async_generator_10k_chunks_slow_client_memory_bounded(host: Host, bridge: str) -> None:
    """10,000 chunks of 4 KiB (40 MB) to a client reading slowly through a
    small receive buffer: the host's RSS stays far below the body's size,
    the producer stays close behind the client, and the body outlasts the
    request timeout (which ends at the head)."""
    warm = open_stream(host, "/chunks?n=200&size=4096&tag=warm")
    assert len(warm.body()) == 200 * 4096
    warm.close()
    pid = host.process.pid
    baseline = rss_kib(pid)
    peak = [baseline]
    ahead: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tag = f"slow-{bridge}"
    n, size = 10_000, 4096
    started = time.monotonic()
    client = open_stream(
        host, f"/chunks?n={n}&size={size}&tag={tag}", rcvbuf=64 * 1024, read_size=32 * 1024, pause=0.002
    )
    assert client.status == 200
    assert client.headers["content-type"] == "text/plain; charset=utf-8"
    chunked_head(client)
    total = 0
    count = 0
    while (part := client.chunk()) is not None:
        total += len(part)
        count += 1
        if count % 1000 == 0:  # how far the producer runs ahead of what was read
            ahead.append(finished(host)["produced"][tag] * size - total)
    elapsed = time.monotonic() - started
    stop.set()
    sampler.join(5)
    client.close()
    assert total == n * size
    assert elapsed * 1000 > REQUEST_TIMEOUT_MS, "the stream must outlast the request timeout to show it has none"
    growth_mib = (peak[0] - baseline) / 1024
    print(
        f"\n[{bridge}] 10,000 x 4 KiB to a slow client in {elapsed:.1f} s: host VmRSS {baseline / 1024:.1f} MiB "
        f"before, peak {peak[0] / 1024:.1f} MiB (+{growth_mib:.1f} MiB); producer ahead of the client by at most "
        f"{max(ahead) / 1024:.0f} KiB"
    )
    assert growth_mib < 24, f"host RSS grew by {growth_mib:.1f} MiB for a 40 MB body"
    assert max(ahead) < 12 * 1024 * 1024
    wait_until(lambda: tag in finished(host)["finished"], what="the generator's finally")


def test_sync_generator_with_the_routes_media_type(host: Host) -> None:
    client = open_stream(host, "/ndjson?n=1000")
    assert client.status == 200
    assert client.headers["content-type"] == "application/x-ndjson"
    chunked_head(client)
    lines = [json.loads(line) for line in client.body().splitlines()]
    client.close()
    assert [line["i"] for line in lines] == list(range(1000))
    assert not any(line["on_loop"] for line in lines), "a sync generator must not run on the event loop"


def test_str_and_bytes_chunks(host: Host) -> None:
    client = open_stream(host, "/mixed")
    assert client.status == 201
    assert client.headers["content-type"] == "text/plain; charset=utf-8"
    assert client.headers["x-kind"] == "mixed"
    chunked_head(client)
    assert client.body().decode() == "grüße, bytes, ünïcödé"
    client.close()


def test_csv_download(host: Host) -> None:
    r = host.get("/csv?n=50")
    assert r.status == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="items.csv"'
    rows = r.text.splitlines()
    assert rows[0] == "id,name" and rows[50] == "49,item 49" and len(rows) == 51


def test_head_request_of_a_streamed_route(host: Host) -> None:
    r = host.request("HEAD", "/ndjson?n=5")
    assert (r.status, r.body) == (200, b"")


# -- the client leaves -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "how"),
    [
        ("/endless", "close"),
        ("/endless-sync", "close"),
        ("/endless", "abort"),
        ("/waits", "abort"),
    ],
)
def test_disconnect_mid_stream_runs_the_generators_finally(host: Host, bridge: str, path: str, how: str) -> None:
    """Async and sync producers that never end, and one idle in an await
    (only the host's cancellation reaches it): the client leaves (``close``:
    FIN, ``abort``: RST), the producer is closed and its ``finally`` runs.
    A clean close of an idle stream is not here: the host serves half-closed
    clients, so it notices that one at its next write (see the README)."""
    tag = f"{path.strip('/')}-{how}-{bridge}"
    client = open_stream(host, f"{path}?tag={tag}")
    assert client.status == 200
    client.read_until(b"\n")
    assert tag not in finished(host)["finished"]
    getattr(client, how)()
    wait_until(lambda: tag in finished(host)["finished"], timeout=5, what=f"the finally of {path}")
    produced = finished(host)["produced"].get(tag)
    time.sleep(0.2)
    assert finished(host)["produced"].get(tag) == produced, "the producer went on after the client left"
    assert host.get("/ndjson?n=3").status == 200


# -- Server-Sent Events ------------------------------------------------------------------


def test_sse_events_arrive_one_by_one(host: Host, bridge: str) -> None:
    key = f"k-{bridge}"
    client = open_stream(host, f"/sse/{key}")
    assert client.status == 200
    assert client.headers["content-type"] == "text/event-stream"
    assert client.headers["cache-control"] == "no-cache"
    assert client.headers["x-accel-buffering"] == "no"
    chunked_head(client)
    first = client.read_until(b"\n\n", timeout=5)
    assert first == b'id: 1\nevent: tick\ndata: {"n":1}\n\n'
    # The producer waits for the release: nothing but keep-alives meanwhile.
    idle = client.read_for(0.5)
    assert idle.replace(b": ping\n\n", b"") == b"", idle
    assert host.post(f"/sse/{key}/release").json() == {"released": True}
    rest = client.read_until(b"data: done\n\n", timeout=5).replace(b": ping\n\n", b"")
    assert rest == b"id: 2\nevent: tick\ndata: second\ndata: event\n\ndata: done\n\n"
    assert client.chunk() is None
    client.close()


def test_sse_pings_on_an_idle_stream(host: Host, bridge: str) -> None:
    tag = f"sse-idle-{bridge}"
    client = open_stream(host, f"/sse-idle?tag={tag}")
    assert client.read_until(b"\n\n") == b"data: hello\n\n"
    started = time.monotonic()
    idle = client.read_for(1.2)
    pings = idle.count(b": ping\n\n")
    assert idle == b": ping\n\n" * pings
    # About 6; loosely, for a loaded machine.
    assert 2 <= pings <= 8, f"{pings} pings in {time.monotonic() - started:.2f} s with ping=0.2"
    client.close()
    wait_until(lambda: tag in finished(host)["finished"], what="the idle SSE producer's finally")


def test_sse_from_a_sync_generator(host: Host) -> None:
    client = open_stream(host, "/sse-sync?n=3")
    body = client.body()
    client.close()
    events = body.replace(b": ping\n\n", b"")
    assert events == b'data: {"i":0}\n\ndata: {"i":1}\n\ndata: {"i":2}\n\n'
    assert body.count(b": ping\n\n") >= 3  # the producer sleeps 0.5 s after each event


# -- failures -----------------------------------------------------------------------------


def test_a_generator_raising_midway_ends_the_stream_and_is_logged(host: Host) -> None:
    client = open_stream(host, "/fail-midway")
    assert client.status == 200
    assert client.body() == b"one\ntwo\n"
    client.close()
    line = host.wait_for_log(
        lambda line: (
            "GET /fail-midway: handler fail_midway" in line
            and "its stream was ended after 2 chunk(s): RuntimeError: the producer failed on purpose" in line
        )
    )
    assert "request " in line


def test_an_unsendable_item_ends_the_stream_and_is_logged(host: Host) -> None:
    client = open_stream(host, "/bad-item")
    assert client.body() == b"fine\n"
    client.close()
    host.wait_for_log(
        lambda line: (
            "GET /bad-item: handler bad_item" in line
            and "TypeError: a streamed chunk must be bytes or str, not dict" in line
        )
    )


# -- shutdown -----------------------------------------------------------------------------


@pytest.mark.parametrize("bridge_name", BRIDGES)
def test_shutdown_ends_open_streams_and_closes_their_producers(tmp_path: Path, bridge_name: str) -> None:
    """SIGTERM with an SSE stream, an endless sync stream and an idle async
    stream open: the host exits in time, every producer's ``finally`` ran and
    each client saw its body end."""
    if missing_binaries():
        pytest.skip("needs the binaries: cargo build --workspace")
    host = start_app_host(
        tmp_path,
        APP,
        bridge_name,
        env={"SPIKARD_TEST_STREAM_DIR": str(tmp_path)},
        server={"shutdown_timeout_ms": 2000},
    )
    try:
        clients = {
            "sse": open_stream(host, "/sse-idle?tag=sse"),
            "sync": open_stream(host, "/endless-sync?tag=sync", rcvbuf=16 * 1024),
            "idle": open_stream(host, "/waits?tag=idle"),
        }
        for client in clients.values():
            client.read_until(b"\n")
        started = time.monotonic()
        assert host.stop(signal.SIGTERM, timeout=15) == 0, host.log
        stopped_in = time.monotonic() - started
    finally:
        host.kill()
    for name, client in clients.items():
        try:
            client.read_for(2.0)
            ended = client.done
        except (EOFError, ConnectionError):
            ended = True  # closed without the last chunk: the client sees the body end too
        client.close()
        assert ended, f"the {name} stream did not end"
    assert stopped_in < 5, host.log
    assert sorted(p.name for p in tmp_path.glob("finished-*")) == ["finished-idle", "finished-sse", "finished-sync"], (
        host.log
    )
