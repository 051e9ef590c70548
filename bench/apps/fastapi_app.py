"""The benchmark workloads on FastAPI (served by uvicorn, 1 worker, uvloop + httptools)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, FastAPI, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from payload import BIG, HELLO, SLEEP_SECONDS, SLEPT, STREAM_CHUNK, STREAM_CHUNKS, cpu_work

app = FastAPI()


class Item(BaseModel):
    name: Annotated[str, Field(min_length=1)]
    price: Annotated[float, Field(gt=0)]
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
async def get_item(item_id: int, q: Annotated[str | None, Query()] = None) -> dict:
    return {"item_id": item_id, "q": q}


async def common_parameters(q: str | None = None, skip: int = 0, limit: int = 100) -> dict:
    return {"q": q, "skip": skip, "limit": limit}


@app.get("/items-dep/{item_id}")
async def get_item_dep(item_id: int, commons: Annotated[dict, Depends(common_parameters)]) -> dict:
    return {"item_id": item_id, **commons}


@app.get("/big")
async def big() -> dict:
    return BIG


@app.get("/sleep")
async def sleep() -> dict:
    await asyncio.sleep(SLEEP_SECONDS)
    return SLEPT


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks():
        for _ in range(STREAM_CHUNKS):
            yield STREAM_CHUNK

    return StreamingResponse(chunks(), media_type="text/plain")
