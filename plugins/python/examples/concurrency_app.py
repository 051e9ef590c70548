"""Async and sync handlers under load, and every way an async handler can
finish, for tests/test_e2e_concurrency.py."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

from spikard import App, HTTPException

app = App()

request_tag: contextvars.ContextVar[str] = contextvars.ContextVar("request_tag", default="unset")


# -- how an async handler finishes --------------------------------------------------


@app.get("/async/no-await")
async def no_await() -> dict[str, str]:
    return {"how": "no-await"}


@app.get("/async/sleep0")
async def sleep0() -> dict[str, str]:
    await asyncio.sleep(0)
    return {"how": "sleep0"}


@app.get("/async/sleep")
async def sleep(seconds: float = 0.05) -> dict[str, float]:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.get("/async/many-awaits")
async def many_awaits() -> dict[str, int]:
    total = 0
    for i in range(5):
        await asyncio.sleep(0)
        await asyncio.sleep(0.001)
        total += i
    future = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, future.set_result, 100)
    total += await future
    return {"total": total}


@app.get("/async/raise-before")
async def raise_before() -> None:
    raise HTTPException(418, "raised before awaiting")


@app.get("/async/raise-after")
async def raise_after() -> None:
    await asyncio.sleep(0.01)
    raise HTTPException(418, "raised after awaiting")


@app.get("/async/crash-after")
async def crash_after() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("crash after awaiting")


@app.get("/async/cancelled")
async def cancelled() -> str:
    await asyncio.sleep(0)
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    await asyncio.sleep(5)
    return "not reached"


@app.get("/async/catches-thrown")
async def catches_thrown() -> dict[str, str]:
    """A handler that awaits a failing future and handles the exception."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_exception, KeyError("thrown-in"))
    try:
        await future
    except KeyError as exc:
        return {"caught": str(exc)}
    return {"caught": "nothing"}


@app.get("/async/gather")
async def gather() -> dict[str, list[int]]:
    async def one(i: int) -> int:
        await asyncio.sleep(0.01)
        return i

    return {"results": list(await asyncio.gather(*(one(i) for i in range(5))))}


@app.get("/async/wait-for")
async def wait_for() -> dict[str, bool]:
    try:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.02)
    except asyncio.TimeoutError:
        return {"timed_out": True}
    return {"timed_out": False}


@app.get("/ctx/set")
async def ctx_set(tag: str) -> dict[str, str]:
    request_tag.set(tag)
    return {"tag": request_tag.get()}


@app.get("/ctx/set-and-sleep")
async def ctx_set_and_sleep(tag: str) -> dict[str, str]:
    request_tag.set(tag)
    await asyncio.sleep(0.02)
    return {"tag": request_tag.get()}


@app.get("/ctx/get")
async def ctx_get() -> dict[str, str]:
    return {"tag": request_tag.get()}


# -- sync handlers ------------------------------------------------------------------


@app.get("/sync/sleep")
def sync_sleep(seconds: float = 0.05) -> dict[str, object]:
    time.sleep(seconds)
    return {"slept": seconds, "thread": threading.current_thread().name}


@app.get("/sync/cpu")
def sync_cpu(n: int = 1000) -> dict[str, int]:
    return {"sum": sum(i * i for i in range(n))}


@app.get("/sync/thread")
def sync_thread() -> dict[str, object]:
    return {"main": threading.current_thread() is threading.main_thread(), "name": threading.current_thread().name}
