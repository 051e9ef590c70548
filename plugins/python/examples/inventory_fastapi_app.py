"""A small inventory API written as FastAPI code. The framework import block
(between the ``>>>``/``<<<`` markers below) is the only thing that differs
between spikard and FastAPI: tests/test_e2e_fastapi_twin.py swaps it for this
one, serves both versions and sends them the same requests.

FastAPI's import block:

    # >>> framework imports
    from fastapi import FastAPI
    from fastapi import APIRouter, BackgroundTasks, Depends, File, Form, Header, HTTPException, Query
    from fastapi import Request, Response, Security, UploadFile, status
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
    from fastapi.security import SecurityScopes
    # <<< framework imports

Authentication is an API key (``x-api-key``) checked by a ``Security``
dependency with scopes; writes go through a unit of work (a generator
dependency that journals commits and rollbacks after the response), and
notifications are background tasks; both are read back under ``/admin``.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, Field

# The block's lines map one to one to FastAPI's (isort would merge them).
# isort: off
# >>> framework imports
from spikard import App as FastAPI
from spikard import APIRouter, BackgroundTasks, Depends, File, Form, Header, HTTPException, Query
from spikard import Request, Response, Security, UploadFile, status
from spikard import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from spikard import SecurityScopes
# <<< framework imports
# isort: on

# ---------------------------------------------------------------------------
# Models


class ItemIn(BaseModel):
    sku: str = Field(min_length=3, max_length=12, pattern=r"^[A-Z0-9-]+$")
    name: str = Field(min_length=1, max_length=60)
    quantity: int = Field(ge=0)
    price: float = Field(gt=0)
    tags: list[str] = []


class Item(ItemIn):
    reserved: int = 0


class Restock(BaseModel):
    quantity: int = Field(gt=0, le=10_000)
    note: str | None = None


class Reservation(BaseModel):
    quantity: int = Field(gt=0)


# ---------------------------------------------------------------------------
# Storage: one in-memory inventory, made by the lifespan


SEED = [
    Item(sku="PEN-1", name="Blue pen", quantity=10, price=1.5, tags=["office"]),
    Item(sku="MUG-1", name="Mug", quantity=2, price=7.0, tags=["kitchen"]),
    Item(sku="LAMP-1", name="Desk lamp", quantity=0, price=25.0, tags=["office", "light"]),
]


class Inventory:
    def __init__(self, items: list[Item]) -> None:
        self.items = {item.sku: item.model_copy(deep=True) for item in items}
        self.journal: list[str] = []  # commits and rollbacks of units of work
        self.events: list[str] = []  # notifications sent by background tasks

    def find(self, sku: str) -> Item:
        item = self.items.get(sku)
        if item is None:
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail={"error": "not_found", "sku": sku})
        return item


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.inventory = Inventory(SEED)
    yield
    app.state.inventory.items.clear()


# ---------------------------------------------------------------------------
# Dependencies


@dataclass
class User:
    name: str
    scopes: list[str] = field(default_factory=list)


USERS = {
    "key-alice": User("alice", ["items:read", "items:write"]),
    "key-bob": User("bob", ["items:read"]),
    "key-root": User("root", ["items:read", "items:write", "admin"]),
}


async def api_key(x_api_key: Annotated[str | None, Header()] = None) -> str:
    if not x_api_key:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED, detail="missing API key", headers={"WWW-Authenticate": "APIKey"}
        )
    return x_api_key


def current_user(security_scopes: SecurityScopes, key: Annotated[str, Depends(api_key)]) -> User:
    user = USERS.get(key)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED, detail="unknown API key", headers={"WWW-Authenticate": "APIKey"}
        )
    missing = [scope for scope in security_scopes.scopes if scope not in user.scopes]
    if missing:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail={"error": "insufficient_scope", "missing": missing}
        )
    return user


def get_inventory() -> Inventory:
    inventory: Inventory = app.state.inventory
    return inventory


class UnitOfWork:
    """The changes one request makes, journaled when the request ends."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.changes: list[str] = []

    def record(self, change: str) -> None:
        self.changes.append(change)


def unit_of_work(inventory: Annotated[Inventory, Depends(get_inventory)]) -> Iterator[UnitOfWork]:
    work = UnitOfWork(inventory)
    try:
        yield work
    except Exception as exc:
        if work.changes:
            inventory.journal.append(f"rollback {'; '.join(work.changes)} ({type(exc).__name__})")
        raise
    else:
        if work.changes:
            inventory.journal.append(f"commit {'; '.join(work.changes)}")


def pagination(
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, int]:
    return {"offset": offset, "limit": limit}


Writer = Annotated[User, Security(current_user, scopes=["items:write"])]
Work = Annotated[UnitOfWork, Depends(unit_of_work)]


# ---------------------------------------------------------------------------
# Background tasks and errors


async def notify(inventory: Inventory, message: str) -> None:
    inventory.events.append(message)


def check_low_stock(inventory: Inventory, sku: str) -> None:
    item = inventory.items.get(sku)
    if item is not None and item.quantity - item.reserved < 3:
        inventory.events.append(f"low stock: {sku}")


class OutOfStock(Exception):
    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(sku)
        self.sku = sku
        self.requested = requested
        self.available = available


# ---------------------------------------------------------------------------
# /items


items = APIRouter(
    prefix="/items",
    tags=["items"],
    dependencies=[Security(current_user, scopes=["items:read"])],
    responses={404: {"description": "No such item"}},
)


@items.get("", summary="List items", responses={200: {"description": "A page of items, in SKU order"}})
async def list_items(
    response: Response,
    page: Annotated[dict[str, int], Depends(pagination)],
    inventory: Annotated[Inventory, Depends(get_inventory)],
    q: Annotated[
        str | None,
        Query(title="Search text", description="Part of the item's name, any case", examples=["pen"], min_length=2),
    ] = None,
    tag: Annotated[list[str] | None, Query(description="Only items with every one of these tags")] = None,
) -> list[Item]:
    found = [
        item
        for _, item in sorted(inventory.items.items())
        if (q is None or q.lower() in item.name.lower()) and set(tag or ()) <= set(item.tags)
    ]
    response.headers["x-total-count"] = str(len(found))
    return found[page["offset"] : page["offset"] + page["limit"]]


@items.get("/{sku}")
async def get_item(sku: str, inventory: Annotated[Inventory, Depends(get_inventory)]) -> Item:
    return inventory.find(sku)


@items.get("/{sku}/card", response_class=HTMLResponse, summary="The item as an HTML card")
def item_card(sku: str, inventory: Annotated[Inventory, Depends(get_inventory)]) -> str:
    item = inventory.find(sku)
    return f"<article><h1>{html.escape(item.name)}</h1><p>{item.quantity - item.reserved} available</p></article>"


@items.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add an item",
    responses={409: {"description": "The SKU exists"}},
)
async def create_item(item: ItemIn, user: Writer, work: Work, background_tasks: BackgroundTasks) -> Item:
    work.record(f"create {item.sku}")
    if item.sku in work.inventory.items:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail={"error": "duplicate", "sku": item.sku})
    created = Item(**item.model_dump())
    work.inventory.items[item.sku] = created
    background_tasks.add_task(notify, work.inventory, f"{user.name} created {item.sku}")
    return created


@items.put("/{sku}", summary="Create or replace an item", responses={201: {"description": "Created"}})
def put_item(sku: str, item: ItemIn, response: Response, user: Writer, work: Work) -> Item:
    if item.sku != sku:
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST, detail={"error": "sku_mismatch", "path": sku, "body": item.sku}
        )
    old = work.inventory.items.get(sku)
    work.record(f"{'replace' if old else 'create'} {sku}")
    stored = Item(**item.model_dump(), reserved=old.reserved if old else 0)
    work.inventory.items[sku] = stored
    if old is None:
        response.status_code = status.HTTP_201_CREATED
    response.headers["x-updated-by"] = user.name
    return stored


@items.patch("/{sku}", summary="Change some fields", description="Takes any of `name`, `price` and `tags`.")
async def patch_item(sku: str, request: Request, user: Writer, work: Work) -> Item:
    changes = await request.json()
    allowed = {"name", "price", "tags"}
    if not isinstance(changes, dict) or not changes or not set(changes) <= allowed:
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST, detail={"error": "bad_patch", "allowed": sorted(allowed)}
        )
    item = work.inventory.find(sku)
    try:
        patched = Item.model_validate({**item.model_dump(), **changes})
    except ValueError:
        raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail="invalid patch") from None
    work.record(f"patch {sku} {','.join(sorted(changes))}")
    work.inventory.items[sku] = patched
    return patched


@items.post("/{sku}/restock", summary="Add stock")
async def restock(
    sku: str, body: Restock, user: Writer, work: Work, background_tasks: BackgroundTasks
) -> dict[str, Any]:
    item = work.inventory.find(sku)
    work.record(f"restock {sku} +{body.quantity}")
    item.quantity += body.quantity
    background_tasks.add_task(notify, work.inventory, f"{user.name} restocked {sku} to {item.quantity}")
    return {"sku": sku, "quantity": item.quantity, "note": body.note}


@items.post("/{sku}/reservations", summary="Reserve stock", responses={409: {"description": "Not enough stock"}})
async def reserve(
    sku: str, body: Reservation, user: Writer, work: Work, background_tasks: BackgroundTasks
) -> JSONResponse:
    item = work.inventory.find(sku)
    work.record(f"reserve {sku} x{body.quantity}")
    available = item.quantity - item.reserved
    if body.quantity > available:
        raise OutOfStock(sku, body.quantity, available)
    item.reserved += body.quantity
    background_tasks.add_task(check_low_stock, work.inventory, sku)
    return JSONResponse(
        status_code=status.HTTP_202_ACCEPTED,
        content={"sku": sku, "reserved": item.reserved, "available": available - body.quantity},
        headers={"x-reservation": f"{sku}-{item.reserved}"},
    )


@items.post("/{sku}/image", status_code=status.HTTP_201_CREATED, summary="Attach an image")
async def upload_image(
    sku: str,
    image: Annotated[UploadFile, File(description="The picture, PNG or JPEG")],
    caption: Annotated[str, Form(max_length=40)],
    user: Writer,
    inventory: Annotated[Inventory, Depends(get_inventory)],
    position: Annotated[int, Form(ge=0)] = 0,
    thumbnail: Annotated[bytes | None, File()] = None,
) -> dict[str, Any]:
    inventory.find(sku)
    data = await image.read()
    return {
        "sku": sku,
        "filename": image.filename,
        "content_type": image.content_type,
        "size": len(data),
        "png": data.startswith(b"\x89PNG"),
        "caption": caption,
        "position": position,
        "thumbnail": None if thumbnail is None else len(thumbnail),
    }


@items.delete(
    "/{sku}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove an item",
    dependencies=[Security(current_user, scopes=["admin"])],
)
def delete_item(sku: str, work: Work) -> None:
    work.inventory.find(sku)
    work.record(f"delete {sku}")
    del work.inventory.items[sku]


# ---------------------------------------------------------------------------
# /admin


admin = APIRouter()


@admin.get("/journal", summary="Units of work, committed or rolled back")
def journal(inventory: Annotated[Inventory, Depends(get_inventory)]) -> list[str]:
    return inventory.journal


@admin.get("/events", summary="Notifications sent by background tasks")
async def events(inventory: Annotated[Inventory, Depends(get_inventory)]) -> list[str]:
    return inventory.events


# ---------------------------------------------------------------------------
# The app


app = FastAPI(title="Inventory", version="1.2.0", lifespan=lifespan)
app.include_router(items)
app.include_router(
    admin,
    prefix="/admin",
    tags=["admin"],
    dependencies=[Security(current_user, scopes=["admin"])],
    responses={403: {"description": "Not an administrator"}},
)


@app.exception_handler(OutOfStock)
async def out_of_stock(request: Request, exc: OutOfStock) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_409_CONFLICT,
        content={
            "error": "out_of_stock",
            "sku": exc.sku,
            "requested": exc.requested,
            "available": exc.available,
            "path": request.url.path,
        },
    )


def health() -> str:
    return "ok"


app.add_api_route("/health", health, methods=["GET"], response_class=PlainTextResponse, tags=["ops"])


@app.post("/login", tags=["auth"], summary="Start a browser session")
async def login(
    username: Annotated[str, Form(min_length=3)], password: Annotated[str, Form()], response: Response
) -> dict[str, str]:
    if password != f"{username}-secret" or not any(user.name == username for user in USERS.values()):
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="bad credentials")
    response.set_cookie("session", f"{username}.s1", httponly=True, max_age=3600)
    return {"user": username}


@app.get("/me", tags=["auth"])
async def me(request: Request) -> dict[str, Any]:
    session = request.cookies.get("session")
    if session is None:
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="no session")
    return {
        "user": session.split(".")[0],
        "url": str(request.url),
        "path": request.url.path,
        "query": request.url.query,
        "has_client": request.client is not None and bool(request.client.host),
    }


@app.get(
    "/catalog/{sku}",
    tags=["items"],
    deprecated=True,
    description="The old catalog address; redirects to `/items/{sku}`.",
    responses={308: {"description": "The item's address"}},
)
async def old_catalog(sku: str) -> RedirectResponse:
    return RedirectResponse(url=f"/items/{sku}", status_code=status.HTTP_308_PERMANENT_REDIRECT)
