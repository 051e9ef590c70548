"""FastAPI's "Bigger Applications" tutorial app, written as FastAPI code with
only the import lines changed (tests/test_e2e_app_surface.py serves it).

Was:
    from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, status
    from fastapi.responses import JSONResponse
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated, Any

from spikard import (
    APIRouter,
    Depends,
    Header,
    HTTPException,
    JSONResponse,
    Request,
    status,
)
from spikard import App as FastAPI


async def get_token_header(x_token: Annotated[str, Header()]) -> None:
    if x_token != "fake-super-secret-token":
        raise HTTPException(status_code=400, detail="X-Token header invalid")


async def get_query_token(token: str) -> None:
    if token != "jessica":
        raise HTTPException(status_code=400, detail="No Jessica token provided")


# routers/users.py
users = APIRouter()


@users.get("/users/", tags=["users"])
async def read_users() -> list[dict[str, str]]:
    return [{"username": "Rick"}, {"username": "Morty"}]


@users.get("/users/me", tags=["users"])
async def read_user_me() -> dict[str, str]:
    return {"username": "fakecurrentuser"}


@users.get("/users/{username}", tags=["users"])
async def read_user(username: str) -> dict[str, str]:
    return {"username": username}


# routers/items.py
items = APIRouter(
    prefix="/items",
    tags=["items"],
    dependencies=[Depends(get_token_header)],
    responses={404: {"description": "Not found"}},
)

fake_items_db = {"plumbus": {"name": "Plumbus"}, "gun": {"name": "Portal Gun"}}


@items.get("/")
async def read_items() -> dict[str, Any]:
    return fake_items_db


@items.get("/{item_id}")
async def read_item(item_id: str) -> dict[str, str]:
    if item_id not in fake_items_db:
        raise HTTPException(status_code=404, detail="Item not found")
    return {"name": fake_items_db[item_id]["name"], "item_id": item_id}


@items.put("/{item_id}", tags=["custom"], responses={403: {"description": "Operation forbidden"}})
async def update_item(item_id: str) -> dict[str, str]:
    if item_id != "plumbus":
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="You can only update the item: plumbus")
    return {"item_id": item_id, "name": "The great Plumbus"}


# internal/admin.py
admin = APIRouter()


@admin.post("/")
async def update_admin() -> dict[str, str]:
    return {"message": "Admin getting schwifty"}


class UnicornException(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


@asynccontextmanager
async def lifespan(app: FastAPI) -> Any:
    app.state.unicorns = ["yolo"]
    yield
    app.state.unicorns.clear()


# main.py
app = FastAPI(dependencies=[Depends(get_query_token)], lifespan=lifespan)

app.include_router(users)
app.include_router(items)
app.include_router(
    admin,
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(get_token_header)],
    responses={418: {"description": "I'm a teapot"}},
)


@app.exception_handler(UnicornException)
async def unicorn_exception_handler(request: Request, exc: UnicornException) -> JSONResponse:
    return JSONResponse(
        status_code=418,
        content={"message": f"Oops! {exc.name} did something. There goes a rainbow..."},
    )


@app.get("/unicorns/{name}")
async def read_unicorn(name: str) -> dict[str, str]:
    if name in app.state.unicorns:
        raise UnicornException(name=name)
    return {"unicorn_name": name}


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "Hello Bigger Applications!"}
