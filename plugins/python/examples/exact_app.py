"""Exact values, for the end-to-end tests (tests/test_e2e_exact_values.py).

Each handler answers what it received together with the Python type names, so
the tests can check that an integer of any size arrives as an ``int`` (never a
float such as ``1e+23``) from every source, and that floats keep their values.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
import pydantic

from spikard import App, Cookie, Header, Query, Request

app = App()

BOUND = 10**23


def typed(**values: Any) -> dict[str, Any]:
    return {name: {"value": value, "type": type(value).__name__} for name, value in values.items()}


@app.get("/int/{n}")
async def params(
    n: int,
    threshold: int = 0,
    ratio: float = 0.0,
    x_n: int = Header(0),
    c: int = Cookie(0),
    ids: list[int] = Query([]),
) -> dict[str, Any]:
    return typed(n=n, threshold=threshold, ratio=ratio, x_n=x_n, c=c, ids=ids)


@app.get("/bounded")
def bounded(q: Annotated[int, Query(le=BOUND)]) -> dict[str, Any]:
    return typed(q=q)


@app.get("/text/{name}")
async def text(name: str, q: str = "") -> dict[str, Any]:
    return typed(name=name, q=q)


class Numbers(msgspec.Struct):
    n: int
    f: float = 0.0
    items: list[int] = []


@dataclasses.dataclass
class NumbersDC:
    n: int
    f: float = 0.0


class NumbersModel(pydantic.BaseModel):
    n: int = pydantic.Field(le=10**30)
    f: float = 0.0


@app.post("/struct")
async def struct(body: Numbers) -> dict[str, Any]:
    return typed(n=body.n, f=body.f, items=body.items)


@app.post("/dataclass")
def dataclass_body(body: NumbersDC) -> dict[str, Any]:
    return typed(n=body.n, f=body.f)


@app.post("/pydantic")
async def pydantic_body(body: NumbersModel) -> dict[str, Any]:
    return typed(n=body.n, f=body.f)


@app.post("/request/{n}")
async def raw_request(n: int, request: Request) -> dict[str, Any]:
    return typed(path=request.path_params["n"], body=(await request.json())["n"])
