"""The benchmark workloads on spikard-host's Python plugin (our `spikard`).

Served by spikard-host with `plugins = [{ library = "spikard_python",
settings = { app = "ours_app:app", ... } }]`; the host validates the path,
query and body against the schemas made from the type hints below.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from spikard import App, Query

try:
    from spikard import StreamingResponse
except ImportError:  # an older build (bench/run --baseline) without streaming: no /stream
    StreamingResponse = None
try:
    from spikard import Depends
except ImportError:  # an older build (bench/run --baseline) without `Depends`: no /items-dep
    Depends = None

from payload import BIG, HELLO, SLEEP_SECONDS, SLEPT, STREAM_CHUNK, STREAM_CHUNKS, cpu_work

app = App()


class Item(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    price: Annotated[float, msgspec.Meta(gt=0)]
    tags: list[str] | None = None


@app.get("/hello")
async def hello() -> dict:
    return HELLO


@app.get("/hello-sync")
def hello_sync() -> dict:
    return HELLO


@app.get("/cpu")
def cpu() -> dict:
    return cpu_work()


@app.post("/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item


@app.get("/items/{item_id}")
async def get_item(item_id: int, q: str | None = Query(None)) -> dict:
    return {"item_id": item_id, "q": q}


@app.get("/big")
async def big() -> dict:
    return BIG


@app.get("/sleep")
async def sleep() -> dict:
    await asyncio.sleep(SLEEP_SECONDS)
    return SLEPT


if StreamingResponse is not None:

    @app.get("/stream")
    async def stream():
        async def chunks():
            for _ in range(STREAM_CHUNKS):
                yield STREAM_CHUNK

        return StreamingResponse(chunks(), media_type="text/plain")


if Depends is not None:

    async def common_parameters(q: str | None = None, skip: int = 0, limit: int = 100) -> dict:
        return {"q": q, "skip": skip, "limit": limit}

    @app.get("/items-dep/{item_id}")
    async def get_item_dep(item_id: int, commons: Annotated[dict, Depends(common_parameters)]) -> dict:
        return {"item_id": item_id, **commons}
