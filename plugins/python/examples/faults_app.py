"""Handlers that misbehave on purpose, for tests/test_e2e_faults.py: they
raise, block the event loop, never return, allocate without bounds, exit
the process, or get cancelled. ``$SPIKARD_TEST_FAULTS_DIR`` (if set) is
where the ``finally`` blocks and the shutdown hook leave their marks."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from spikard import App, Body, Request

app = App()

#: Requests whose ``finally`` block ran, by kind (also written to files, to
#: be seen after the process ended).
finished: dict[str, int] = {"async": 0, "sync": 0}
#: Calls that started, to show cancelled waiting ones never do.
started: dict[str, int] = {"async": 0, "sync": 0}


def _mark(name: str) -> None:
    directory = os.environ.get("SPIKARD_TEST_FAULTS_DIR")
    if directory:
        with open(Path(directory) / name, "a", encoding="utf-8") as f:
            f.write("x\n")


@app.on_shutdown
async def goodbye() -> None:
    _mark("shutdown-hook")


# -- well-behaved neighbours ----------------------------------------------------------


@app.get("/ok/async")
async def ok_async() -> dict[str, bool]:
    return {"ok": True}


@app.get("/ok/async-await")
async def ok_async_await() -> dict[str, bool]:
    await asyncio.sleep(0)
    return {"ok": True}


@app.get("/ok/sync")
def ok_sync() -> dict[str, bool]:
    return {"ok": True}


@app.get("/counts")
async def counts() -> dict[str, int]:
    return {
        "finished_async": finished["async"],
        "finished_sync": finished["sync"],
        "started_async": started["async"],
        "started_sync": started["sync"],
    }


# -- faults ---------------------------------------------------------------------------------


@app.get("/raise")
async def raise_error() -> None:
    raise RuntimeError("handler bug")


@app.get("/alloc")
def allocate() -> None:
    # More than any machine has: CPython raises MemoryError at once.
    bytearray(1 << 60)


@app.get("/block-loop")
async def block_loop(seconds: float = 0.5) -> dict[str, float]:
    time.sleep(seconds)  # wrong in async def: the whole loop waits
    return {"blocked": seconds}


@app.get("/spin/async")
async def spin_async() -> None:
    await asyncio.sleep(0)
    while True:
        pass


@app.get("/spin/sync")
def spin_sync() -> None:
    while True:
        pass


@app.get("/sleep/async")
async def sleep_async(seconds: float = 60.0) -> dict[str, float]:
    started["async"] += 1
    try:
        await asyncio.sleep(seconds)
    finally:
        finished["async"] += 1
        _mark("async-finally")
    return {"slept": seconds}


@app.get("/sleep/sync")
def sleep_sync(seconds: float = 60.0) -> dict[str, float]:
    started["sync"] += 1
    try:
        time.sleep(seconds)
    finally:
        finished["sync"] += 1
    return {"slept": seconds}


@app.post("/upload/sync")
def upload_sync(data: bytes = Body()) -> dict[str, int]:
    started["sync"] += 1
    time.sleep(0.1)
    return {"size": len(data)}


@app.post("/upload/async")
async def upload_async(data: bytes = Body(), seconds: float = 0.1) -> dict[str, int]:
    started["async"] += 1
    try:
        await asyncio.sleep(seconds)
    finally:
        finished["async"] += 1
    return {"size": len(data)}


@app.post("/json")
async def parse_json(request: Request) -> object:
    return await request.json()


@app.post("/json/schema")
async def parse_by_host(item: dict[str, Any]) -> object:
    """The same JSON, parsed by the host (the route has a body schema)."""
    return item


@app.get("/exit")
def exit_now() -> None:
    os._exit(3)


@app.get("/segfault")
def segfault() -> None:
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV in C code
