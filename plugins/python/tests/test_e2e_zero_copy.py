"""``bytes`` bodies handed to the host without a copy (ABI 1.1 owned bodies),
through the real host and plugin (examples/zero_copy_app.py): the bytes arrive
intact, and every reference the host held on the ``bytes`` object comes back
(released on a host thread without the GIL, applied on the next Python call)."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Host, host_fixture

pytestmark = pytest.mark.e2e

host = host_fixture("examples.zero_copy_app:app")

BIG = bytes(range(256)) * 4096


def refs(host: Host, which: str = "refs") -> int:
    r = host.get("/refs")
    assert r.status == 200, r.body
    return int(r.json()[which])


def settled_refs(host: Host, which: str = "refs") -> int:
    """The reference count once the host's releases were applied. A body is
    released just after the host wrote it, and each call into the plugin
    applies the decrefs queued before it: ask until two answers agree."""
    deadline = time.monotonic() + 10
    count = refs(host, which)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        again = refs(host, which)
        if again == count:
            break
        count = again
    return count


@pytest.mark.parametrize("path", ["/big", "/big-sync", "/big-response"])
def test_bytes_bodies_arrive_whole_and_every_reference_comes_back(host: Host, path: str) -> None:
    baseline = settled_refs(host)
    for _ in range(5):
        r = host.get(path)
        assert r.status == 200
        assert r.body == BIG
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: host.get(path).body, range(32)))
    assert all(body == BIG for body in bodies)
    assert settled_refs(host) == baseline


def test_a_refused_body_is_given_back_at_once(host: Host) -> None:
    baseline = settled_refs(host)
    for _ in range(3):
        assert host.get("/big-bad-header").status == 500
    assert settled_refs(host) == baseline


def test_the_host_sends_from_the_bytes_object_itself(host: Host) -> None:
    """While a slow client reads a 32 MiB body, the host holds a reference to the
    handler's very `bytes` object (no copy); it gives it back once it is sent."""
    baseline = settled_refs(host, "huge")
    with socket.create_connection(("127.0.0.1", host.port)) as client:
        client.sendall(b"GET /huge HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        time.sleep(0.2)
        assert refs(host, "huge") == baseline + 1, "the host holds the object while sending"
        received = 0
        client.settimeout(30)
        while chunk := client.recv(1 << 20):
            received += len(chunk)
        assert received > 32 << 20
    assert settled_refs(host, "huge") == baseline
