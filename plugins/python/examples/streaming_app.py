"""Streamed responses, for tests/test_e2e_streaming.py: async and sync
generators, ``StreamingResponse`` with ``str`` and ``bytes`` chunks,
producers that run until the client leaves (their ``finally`` blocks record
it in ``finished``, read through ``/finished``), Server-Sent Events released
by another route, and a producer that fails midway."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from spikard import App, StreamingResponse
from spikard.sse import EventSourceResponse, ServerSentEvent

app = App()

#: Tags of the producers whose ``finally`` block ran.
finished: list[str] = []
#: Items each tagged producer has produced so far.
produced: dict[str, int] = {}
#: SSE producers waiting to be released, by key (on the event loop).
gates: dict[str, asyncio.Event] = {}


def _finished(tag: str) -> None:
    """Records that ``tag``'s producer was closed (also as a file in
    ``$SPIKARD_TEST_STREAM_DIR``, to be seen after the process ended)."""
    finished.append(tag)
    directory = os.environ.get("SPIKARD_TEST_STREAM_DIR")
    if directory:
        (Path(directory) / f"finished-{tag}").write_text("x", encoding="utf-8")


@app.get("/chunks")
async def chunks(n: int = 10_000, size: int = 1024, tag: str = "chunks") -> AsyncIterator[bytes]:
    """``n`` chunks of ``size`` bytes from an async generator."""
    block = b"x" * (size - 1) + b"\n"
    produced[tag] = 0
    try:
        for _ in range(n):
            produced[tag] += 1
            yield block
    finally:
        _finished(tag)


@app.get("/ndjson", media_type="application/x-ndjson")
def ndjson(n: int = 1000) -> Iterator[str]:
    """A sync generator: one JSON line per item, produced on the worker pool."""
    for i in range(n):
        yield json.dumps({"i": i, "on_loop": _on_loop()}) + "\n"


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@app.get("/csv")
def csv_rows(n: int = 100) -> StreamingResponse:
    """CSV rows from a sync generator, as a download."""

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "name"])
        for i in range(n):
            writer.writerow([i, f"item {i}"])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return StreamingResponse(
        rows(), media_type="text/csv", headers={"content-disposition": 'attachment; filename="items.csv"'}
    )


@app.get("/mixed")
async def mixed() -> StreamingResponse:
    """``str`` and ``bytes`` chunks in one body."""

    async def parts() -> AsyncIterator[str | bytes]:
        yield "grüße, "
        yield b"bytes, "
        await asyncio.sleep(0.01)
        yield "ünïcödé"

    return StreamingResponse(parts(), status_code=201, headers={"x-kind": "mixed"}, media_type="text/plain")


@app.get("/endless")
async def endless(tag: str) -> AsyncIterator[bytes]:
    """Runs until the client leaves."""
    produced[tag] = 0
    try:
        while True:
            produced[tag] += 1
            yield b"y" * 1023 + b"\n"
            await asyncio.sleep(0.001)
    finally:
        _finished(tag)


@app.get("/endless-sync")
def endless_sync(tag: str) -> Iterator[bytes]:
    """A sync producer that runs until the client leaves."""
    produced[tag] = 0
    try:
        while True:
            produced[tag] += 1
            yield b"z" * 1023 + b"\n"
            time.sleep(0.001)
    finally:
        _finished(tag)


@app.get("/waits")
async def waits(tag: str) -> AsyncIterator[str]:
    """Sends one line, then waits (idle, no keep-alive) until cancelled."""
    try:
        yield "first\n"
        await asyncio.sleep(3600)
        yield "never\n"
    finally:
        _finished(tag)


@app.get("/finished")
async def get_finished() -> dict[str, Any]:
    return {"finished": finished, "produced": produced}


@app.get("/fail-midway")
def fail_midway() -> Iterator[str]:
    yield "one\n"
    yield "two\n"
    raise RuntimeError("the producer failed on purpose")


@app.get("/bad-item")
async def bad_item() -> AsyncIterator[Any]:
    yield "fine\n"
    yield {"not": "a chunk"}


@app.get("/sse/{key}")
async def sse(key: str) -> EventSourceResponse:
    """Event 1 now; event 2 only once ``/sse/{key}/release`` was called."""
    gate = gates[key] = asyncio.Event()

    async def events() -> AsyncIterator[Any]:
        yield ServerSentEvent({"n": 1}, event="tick", id="1")
        await gate.wait()
        yield ServerSentEvent("second\nevent", event="tick", id="2")
        yield "done"

    return EventSourceResponse(events(), ping=0.2)


@app.post("/sse/{key}/release")
async def release(key: str) -> dict[str, bool]:
    gate = gates.get(key)
    if gate is None:
        return {"released": False}
    gate.set()
    return {"released": True}


@app.get("/sse-idle")
async def sse_idle(tag: str) -> EventSourceResponse:
    """One event, then silence (pings only) until the client leaves."""

    async def events() -> AsyncIterator[Any]:
        try:
            yield "hello"
            await asyncio.sleep(3600)
        finally:
            _finished(tag)

    return EventSourceResponse(events(), ping=0.2)


@app.get("/sse-sync")
def sse_sync(n: int = 3) -> EventSourceResponse:
    """Events from a sync generator that blocks between them (pings meanwhile)."""

    def events() -> Iterator[Any]:
        for i in range(n):
            yield {"i": i}
            time.sleep(0.5)

    return EventSourceResponse(events(), ping=0.2)
