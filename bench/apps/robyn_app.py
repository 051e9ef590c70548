"""The benchmark workloads on Robyn 0.88.0 (1 or 2 processes, 1 worker each).

Run as `python robyn_app.py --processes N --workers 1`; the port comes from
ROBYN_PORT. Robyn ignores `status_code=201` when a handler returns a pydantic
model, so `create_item` builds the 201 response itself (peers-notes.md).
No `from __future__ import annotations`: Robyn reads the handlers'
annotations as objects (a string annotation breaks body and path params).
"""

import asyncio
from typing import Annotated, Optional

from pydantic import BaseModel, Field
from robyn import Response, Robyn, StreamingResponse

from payload import BIG, HELLO, SLEEP_SECONDS, SLEPT, STREAM_CHUNK, STREAM_CHUNKS, cpu_work

app = Robyn(__file__)

JSON = {"Content-Type": "application/json"}


class Item(BaseModel):
    name: Annotated[str, Field(min_length=1)]
    price: Annotated[float, Field(gt=0)]
    tags: Optional[list[str]] = None


@app.get("/hello")
async def hello():
    return HELLO


@app.get("/hello-sync")
def hello_sync():
    return HELLO


@app.get("/cpu")
def cpu():
    return cpu_work()


@app.post("/items", status_code=201)
async def create_item(item: Item):
    return Response(status_code=201, headers=JSON, description=item.model_dump_json())


@app.get("/items/:item_id")
async def get_item(item_id: int, q: Optional[str] = None):
    return {"item_id": item_id, "q": q}


@app.get("/big")
async def big():
    return BIG


@app.get("/sleep")
async def sleep():
    await asyncio.sleep(SLEEP_SECONDS)
    return SLEPT


@app.get("/stream")
async def stream():
    async def chunks():
        for _ in range(STREAM_CHUNKS):
            yield STREAM_CHUNK

    return StreamingResponse(chunks(), media_type="text/plain")


if __name__ == "__main__":
    app.start(host="127.0.0.1")
