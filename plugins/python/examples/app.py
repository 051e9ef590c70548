"""The bundled example: ``spikard-host --config config/spikard.toml``.

curl -i localhost:8000/hello
curl -i 'localhost:8000/items/7?q=hi' -H 'x-token: t'
curl -i localhost:8000/items/zero                      # 422 Problem Details
curl -i localhost:8000/items -d '{"name": "pen", "price": 1.5}'
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from spikard import App, Header, HTTPException, Query

app = App()


class Item(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    price: Annotated[float, msgspec.Meta(gt=0)]
    tags: list[str] = []


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "Hello"}


@app.post("/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item


@app.get("/items/{item_id}")
def get_item(
    item_id: int,
    q: str | None = Query(None, min_length=2),
    x_token: str = Header(),
) -> dict[str, object]:
    if item_id == 0:
        raise HTTPException(404, "no such item")
    return {"id": item_id, "q": q, "token": x_token}
