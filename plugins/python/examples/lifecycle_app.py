"""Start-up and shutdown hooks, for tests/test_e2e_lifecycle.py.

The shutdown hook writes the file named by $SPIKARD_TEST_SHUTDOWN_FILE.
"""

from __future__ import annotations

import asyncio
import os
import threading

from spikard import App

events: list[str] = []


def sync_startup() -> None:
    events.append("sync-startup")


app = App(on_startup=[sync_startup])


@app.on_startup
async def async_startup() -> None:
    await asyncio.sleep(0.01)
    app.state.started = True
    app.state.loop_thread = threading.current_thread().name
    events.append("async-startup")


@app.on_shutdown
async def async_shutdown() -> None:
    await asyncio.sleep(0.01)
    events.append("async-shutdown")


@app.on_shutdown
def write_marker() -> None:
    events.append("sync-shutdown")
    path = os.environ.get("SPIKARD_TEST_SHUTDOWN_FILE")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(",".join(events))


@app.get("/state")
async def state() -> dict[str, object]:
    return {"started": getattr(app.state, "started", False), "events": events}


@app.get("/state/sync")
def state_sync() -> dict[str, object]:
    return {"started": getattr(app.state, "started", False)}
