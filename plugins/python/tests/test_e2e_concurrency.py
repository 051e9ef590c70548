"""Async and sync handlers under concurrency, and every way an async handler
finishes (eager start, task fallback), through the real host and plugin
(examples/concurrency_app.py), on both bridges."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Host, HttpResponse, host_fixture, problem

pytestmark = pytest.mark.e2e

host = host_fixture("examples.concurrency_app:app")


def concurrently(host: Host, paths: list[str], workers: int | None = None) -> tuple[list[HttpResponse], float]:
    """The requests from ``workers`` client threads (default: one each, all
    released at once); results in order."""
    workers = workers or len(paths)
    barrier = threading.Barrier(len(paths)) if workers >= len(paths) else None

    def one(path: str) -> HttpResponse:
        if barrier is not None:
            try:
                barrier.wait(10)
            except threading.BrokenBarrierError:
                pass
        return host.get(path, timeout=30)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, paths))
    return results, time.monotonic() - started


# -- how async handlers finish ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/async/no-await", {"how": "no-await"}),
        ("/async/sleep0", {"how": "sleep0"}),
        ("/async/sleep?seconds=0.05", {"slept": 0.05}),
        ("/async/many-awaits", {"total": 110}),
        ("/async/catches-thrown", {"caught": "'thrown-in'"}),
        ("/async/gather", {"results": [0, 1, 2, 3, 4]}),
        ("/async/wait-for", {"timed_out": True}),
    ],
)
def test_async_handler_results(host: Host, path: str, expected: object) -> None:
    r = host.get(path)
    assert r.status == 200, r.body
    assert r.json() == expected


def test_raise_before_and_after_awaiting(host: Host) -> None:
    assert problem(host.get("/async/raise-before"), 418)["detail"] == "raised before awaiting"
    assert problem(host.get("/async/raise-after"), 418)["detail"] == "raised after awaiting"
    problem(host.get("/async/crash-after"), 500)
    assert host.get("/async/no-await").status == 200


def test_cancelled_task_is_503(host: Host) -> None:
    body = problem(host.get("/async/cancelled"), 503)
    assert body["detail"] == "the request was cancelled"
    assert host.get("/async/no-await").status == 200


def test_context_variables_do_not_leak_between_requests(host: Host) -> None:
    for setter in ("/ctx/set?tag=one", "/ctx/set-and-sleep?tag=two"):
        assert host.get(setter).json()["tag"] in ("one", "two")
        for _ in range(5):
            assert host.get("/ctx/get").json() == {"tag": "unset"}


# -- concurrency -------------------------------------------------------------------------


def test_200_concurrent_async_sleeps_overlap(host: Host) -> None:
    results, elapsed = concurrently(host, ["/async/sleep?seconds=0.05"] * 200)
    assert [r.status for r in results] == [200] * 200, [r.body for r in results if r.status != 200][:3]
    assert all(r.json() == {"slept": 0.05} for r in results)
    assert len({r.headers["x-request-id"] for r in results}) == 200
    # One after another would take 200 x 0.05 = 10 s.
    assert elapsed < 4.0, elapsed


def test_concurrent_sync_handlers_use_the_worker_pool(host: Host) -> None:
    # sync_workers = 4: 24 requests sleeping 0.1 s take about 0.6 s, not 2.4 s.
    results, elapsed = concurrently(host, ["/sync/sleep?seconds=0.1"] * 24)
    assert [r.status for r in results] == [200] * 24
    threads = {r.json()["thread"] for r in results}
    assert 1 < len(threads) <= 4, threads
    assert elapsed < 2.0, elapsed


def test_sync_handlers_never_run_on_the_main_thread(host: Host) -> None:
    body = host.get("/sync/thread").json()
    assert body["main"] is False


def test_sleeping_sync_handler_does_not_stall_async_ones(host: Host) -> None:
    slow: list[HttpResponse] = []
    thread = threading.Thread(target=lambda: slow.append(host.get("/sync/sleep?seconds=1.0")))
    thread.start()
    time.sleep(0.15)  # the sync handler is sleeping now, for 0.85 s more
    started = time.monotonic()
    for _ in range(5):
        r = host.get("/async/sleep?seconds=0.01")
        assert r.status == 200
        assert r.elapsed < 0.5, r.elapsed
    assert time.monotonic() - started < 0.75
    assert not slow  # the sync handler was still sleeping all along
    thread.join(10)
    assert slow and slow[0].json()["slept"] == 1.0


def test_mixed_load(host: Host) -> None:
    paths = [
        "/async/no-await",
        "/async/sleep0",
        "/sync/cpu?n=2000",
        "/async/sleep?seconds=0.02",
        "/sync/sleep?seconds=0.01",
    ] * 20
    results, _ = concurrently(host, paths, workers=40)
    assert [r.status for r in results] == [200] * len(paths)
