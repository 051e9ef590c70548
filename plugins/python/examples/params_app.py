"""Every parameter kind, for the end-to-end tests (tests/test_e2e_params.py).

Each handler echoes what it received, with the Python type names, so the
tests can check both the host's validation and the runtime's conversion.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pydantic

from spikard import App, Body, Cookie, Header, Path, Query, Request

app = App()


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Item(msgspec.Struct):
    name: str
    price: Annotated[float, msgspec.Meta(gt=0)]
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


class User(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1)
    age: int = pydantic.Field(ge=0)


def typed(value: Any) -> dict[str, Any]:
    return {
        "value": value if isinstance(value, (int, float, str, bool, type(None))) else str(value),
        "type": type(value).__name__,
    }


# -- path ---------------------------------------------------------------------


@app.get("/path/int/{n}")
async def path_int(n: int = Path(gt=0)) -> dict[str, Any]:
    return typed(n)


@app.get("/path/uuid/{u}")
async def path_uuid(u: uuid.UUID) -> dict[str, Any]:
    return typed(u)


@app.get("/path/enum/{color}")
async def path_enum(color: Color) -> dict[str, Any]:
    return {"value": color.value, "type": type(color).__name__, "name": color.name}


@app.get("/path/date/{day}")
def path_date(day: datetime.date) -> dict[str, Any]:
    return {"value": day.isoformat(), "type": type(day).__name__, "weekday": day.isoweekday()}


@app.get("/path/literal/{mode}")
async def path_literal(mode: Literal["fast", "slow"]) -> dict[str, Any]:
    return typed(mode)


# -- query --------------------------------------------------------------------


@app.get("/query")
async def query(
    limit: int = 10,
    q: str | None = Query(None, min_length=3),
    item_query: str = Query("none", alias="item-query"),
    ids: list[int] = Query([]),
    price: float | None = None,
    flag: bool = False,
    when: datetime.datetime | None = None,
    color: Color = Color.RED,
) -> dict[str, Any]:
    return {
        "limit": limit,
        "q": q,
        "item_query": item_query,
        "ids": ids,
        "price": price,
        "price_type": type(price).__name__,
        "flag": flag,
        "when": when.isoformat() if when else None,
        "when_type": type(when).__name__,
        "color": color.name,
    }


@app.get("/query/required")
def query_required(page: Annotated[int, Query(ge=1, le=100)], tag: list[str] = Query(min_length=1)) -> dict[str, Any]:
    return {"page": page, "tag": tag}


# -- headers and cookies --------------------------------------------------------


@app.get("/headers")
async def headers(
    x_token: str = Header(),
    x_count: int = Header(1),
    user_agent: str | None = Header(None),
    trace: str | None = Header(None, alias="X-Trace-Id"),
) -> dict[str, Any]:
    return {"x_token": x_token, "x_count": x_count, "user_agent": user_agent, "trace": trace}


@app.get("/cookies")
async def cookies(session: str = Cookie(), theme: str = Cookie("light"), visits: int = Cookie(0)) -> dict[str, Any]:
    return {"session": session, "theme": theme, "visits": visits}


# -- bodies -----------------------------------------------------------------------


@app.post("/body/struct")
async def body_struct(item: Item) -> dict[str, Any]:
    return {"type": type(item).__name__, "item": item}


@app.post("/body/dataclass")
def body_dataclass(point: Point) -> dict[str, Any]:
    return {"type": type(point).__name__, "sum": point.x + point.y}


@app.post("/body/typeddict")
async def body_typeddict(movie: Movie) -> dict[str, Any]:
    return {"type": type(movie).__name__, "movie": movie}


@app.post("/body/pydantic")
async def body_pydantic(user: User) -> dict[str, Any]:
    return {"type": type(user).__name__, "user": user.model_dump()}


@app.post("/body/dict")
async def body_dict(counts: dict[str, int]) -> dict[str, Any]:
    return {"type": type(counts).__name__, "total": sum(counts.values())}


@app.post("/body/list")
async def body_list(items: list[Item]) -> dict[str, Any]:
    return {"names": [item.name for item in items], "types": sorted({type(i).__name__ for i in items})}


@app.post("/body/embedded")
async def body_embedded(item: Item, user: User, note: str = Body("none")) -> dict[str, Any]:
    return {"item": item.name, "user": user.name, "note": note, "types": [type(item).__name__, type(user).__name__]}


@app.put("/body/raw")
async def body_raw(data: bytes = Body()) -> dict[str, Any]:
    return {"length": len(data), "type": type(data).__name__}


@app.put("/items/{item_id}")
async def update_item(item_id: int, item: Item, dry_run: bool = False) -> dict[str, Any]:
    return {"id": item_id, "name": item.name, "dry_run": dry_run}


# -- Request ------------------------------------------------------------------------


@app.post("/request/{key}")
async def with_request(key: str, request: Request) -> dict[str, Any]:
    return {
        "key": key,
        "x_foo": request.headers.get("x-foo"),
        "params": request.params,
        "body": request.body.decode(),
        "request_id": request.request_id,
    }
