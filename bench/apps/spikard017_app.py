"""The benchmark workloads on Spikard 0.17.2 (the PyPI package; no CLI).

Run as `python spikard017_app.py`; the port comes from SPIKARD_SERVER_PORT
(ServerConfig(port=...) is not honoured, peers-notes.md). The decorators take
no status code, so `create_item` returns a `Response` for its 201.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from spikard import App, Query, Response

from payload import BIG, HELLO, SLEEP_SECONDS, SLEPT, cpu_work

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


@app.post("/items")
async def create_item(item: Item) -> Item:
    return Response(content=item, status_code=201, headers={"content-type": "application/json"})


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


if __name__ == "__main__":
    app.run()
