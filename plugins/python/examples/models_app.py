"""Model bodies decoded by their own library, for tests/test_e2e_models.py.

The same product, as a pydantic model (lax, as FastAPI decodes it), a
msgspec Struct, a dataclass and a TypedDict (decoded by msgspec). Each
handler answers 201 with the decoded values and their Python types, so the
tests see what the model made of the request.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pydantic

from spikard import App, Body, Query
from spikard.exceptions import RequestValidationError

app = App()


# -- pydantic -------------------------------------------------------------------------


class Supplier(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=2)
    country: str | None = None


class Product(pydantic.BaseModel):
    name: str
    quantity: int = pydantic.Field(ge=0)
    price: float = 1.0
    active: bool = True
    released: datetime.datetime | None = None
    made: datetime.date | None = None
    ref: uuid.UUID | None = None
    tags: set[str] = set()
    supplier: Supplier | None = None


def described(values: dict[str, Any]) -> dict[str, Any]:
    """Each value as JSON, with its Python type name."""
    out = {}
    for key, value in values.items():
        if isinstance(value, (set, frozenset)):
            shown: Any = sorted(value)
        elif isinstance(value, (datetime.datetime, datetime.date, uuid.UUID, decimal.Decimal)):
            shown = str(value)
        elif isinstance(value, pydantic.BaseModel):
            shown = value.model_dump(mode="json")
        elif dataclasses.is_dataclass(value) or isinstance(value, msgspec.Struct):
            shown = msgspec.to_builtins(value)
        else:
            shown = value
        out[key] = {"value": shown, "type": type(value).__name__}
    return out


@app.post("/pydantic", status_code=201)
async def create_pydantic(product: Product) -> dict[str, Any]:
    return described(dict(product))


@app.post("/pydantic/list", status_code=201)
async def create_pydantic_list(products: list[Product]) -> dict[str, Any]:
    return {"count": len(products), "quantities": [p.quantity for p in products]}


# -- msgspec ----------------------------------------------------------------------------


class StructSupplier(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=2)]
    country: str | None = None


class StructProduct(msgspec.Struct):
    name: str
    quantity: Annotated[int, msgspec.Meta(ge=0)]
    price: float = 1.0
    active: bool = True
    released: datetime.datetime | None = None
    made: datetime.date | None = None
    cost: decimal.Decimal | None = None
    labels: set[str] = set()
    supplier: StructSupplier | None = None


@app.post("/struct", status_code=201)
async def create_struct(product: StructProduct) -> dict[str, Any]:
    return described({f: getattr(product, f) for f in product.__struct_fields__})


@dataclasses.dataclass
class DataSupplier:
    name: str
    country: str | None = None


@dataclasses.dataclass
class DataProduct:
    name: str
    quantity: int
    released: datetime.datetime | None = None
    supplier: DataSupplier | None = None


@app.post("/dataclass", status_code=201)
async def create_dataclass(product: DataProduct) -> dict[str, Any]:
    return described({f.name: getattr(product, f.name) for f in dataclasses.fields(product)})


class DictSupplier(TypedDict):
    name: str


class DictProduct(TypedDict, total=False):
    name: str
    quantity: int
    released: datetime.datetime
    supplier: DictSupplier | None


@app.post("/typeddict", status_code=201)
async def create_typeddict(product: DictProduct) -> dict[str, Any]:
    return described(dict(product))


# -- several body members, and a handler's own validation error ------------------------


@app.post("/embedded", status_code=201)
async def create_embedded(product: Product, item: StructProduct, note: str = Body("none")) -> dict[str, Any]:
    return {"product": product.quantity, "item": item.quantity, "note": note}


@app.get("/check")
async def check(start: int = Query(0), end: int = Query(10)) -> dict[str, Any]:
    if end < start:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ["query", "end"],
                    "msg": "Value error, end must not precede start",
                    "input": end,
                    "ctx": {"start": start},
                }
            ]
        )
    return {"span": end - start}


# -- every leaf type, for the property tests ----------------------------------------------


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Wide(pydantic.BaseModel):
    i: int | None = None
    f: float | None = None
    b: bool | None = None
    s: str | None = pydantic.Field(None, max_length=5)
    dt: datetime.datetime | None = None
    d: datetime.date | None = None
    t: datetime.time | None = None
    td: datetime.timedelta | None = None
    u: uuid.UUID | None = None
    dec: decimal.Decimal | None = None
    lit: Literal["a", "b"] | None = None
    level: Level | None = None
    ints: list[int] | None = None
    counts: dict[str, int] | None = None
    supplier: Supplier | None = None


@app.post("/pydantic/wide", status_code=201)
async def create_wide(wide: Wide) -> dict[str, Any]:
    return {"fields": sorted(wide.model_fields_set)}


class StructWide(msgspec.Struct):
    i: int | None = None
    f: float | None = None
    b: bool | None = None
    s: Annotated[str, msgspec.Meta(max_length=5)] | None = None
    dt: datetime.datetime | None = None
    d: datetime.date | None = None
    t: datetime.time | None = None
    td: datetime.timedelta | None = None
    u: uuid.UUID | None = None
    dec: decimal.Decimal | None = None
    lit: Literal["a", "b"] | None = None
    level: Level | None = None
    ints: list[int] | None = None
    counts: dict[str, int] | None = None
    supplier: StructSupplier | None = None


@app.post("/struct/wide", status_code=201)
async def create_struct_wide(wide: StructWide) -> dict[str, Any]:
    return {"ok": True}


@app.get("/wait")
async def wait(delay: datetime.timedelta) -> dict[str, Any]:
    return {"seconds": delay.total_seconds()}
