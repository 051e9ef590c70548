"""FastAPI's app surface, for tests/test_e2e_app_surface.py: lifespan,
routers nested twice, exception handlers, response classes, structured
HTTPException details, redirects, cookies and status constants.

The lifespan and the hooks record their order in ``events``; at shutdown
the lifespan writes it to the file named by $SPIKARD_TEST_EVENTS_FILE.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from spikard import (
    APIRouter,
    App,
    Depends,
    FileResponse,
    Form,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Request,
    Response,
    UploadFile,
    status,
)
from spikard.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from spikard.exceptions import RequestValidationError

events: list[str] = []


@asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
    await asyncio.sleep(0)
    events.append("lifespan-enter")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as served:
        served.write("file body\n")
    yield {"db": "fake-db", "lifespan_task": id(asyncio.current_task()), "served_file": served.name}
    os.unlink(served.name)
    events.append(f"lifespan-exit-same-task={id(asyncio.current_task()) == app.state.lifespan_task}")
    path = os.environ.get("SPIKARD_TEST_EVENTS_FILE")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(",".join(events))


def startup() -> None:
    events.append(f"startup-sees-db={getattr(app.state, 'db', None)}")


async def shutdown() -> None:
    events.append("shutdown")


class AppError(Exception):
    """The app's own errors."""


class NotFoundError(AppError):
    """A more specific one, with its own handler."""


class OtherError(AppError):
    """No handler of its own: the AppError handler answers."""


class TeapotError(Exception):
    """Answered through the handler for status 418."""


def app_error(request: Request, exc: AppError) -> JSONResponse:
    return JSONResponse(
        {"handler": "app_error", "type": type(exc).__name__, "path": request.url.path, "method": request.method},
        status_code=400,
    )


async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
    await asyncio.sleep(0)
    return JSONResponse({"handler": "not_found", "what": str(exc)}, status_code=404, headers={"x-handled": "async"})


app = App(
    title="App surface",
    version="2.0.0",
    description="FastAPI parity checks",
    lifespan=lifespan,
    on_startup=[startup],
    on_shutdown=[shutdown],
    exception_handlers={AppError: app_error},
)
app.add_exception_handler(NotFoundError, not_found)


@app.exception_handler(418)
def teapot(request: Request, exc: HTTPException) -> PlainTextResponse:
    return PlainTextResponse(f"short and stout: {exc.detail}", status_code=418)


@app.exception_handler(RequestValidationError)
async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"custom": True, "errors": exc.errors()}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


class DelegatedValidation(RequestValidationError):
    """Its handler delegates to spikard's default rendering."""


delegated: list[str] = []


@app.exception_handler(451)
async def legal(request: Request, exc: HTTPException) -> Response:
    delegated.append(f"451:{exc.detail}")
    return await http_exception_handler(request, exc)


@app.exception_handler(DelegatedValidation)
async def delegated_validation(request: Request, exc: DelegatedValidation) -> Response:
    delegated.append("validation")
    return await request_validation_exception_handler(request, exc)


@app.get("/errors/legal")
def raise_legal() -> None:
    raise HTTPException(451, "gone legal", headers={"x-legal": "1"})


@app.get("/errors/delegated-validation")
async def raise_delegated_validation() -> None:
    raise DelegatedValidation([{"type": "missing", "loc": ["body", "name"], "msg": "Field required", "input": {}}])


@app.get("/errors/not-a-response")
def raise_for_bad_handler() -> None:
    raise BadHandlerError("x")


class BadHandlerError(Exception):
    """Its handler returns a dict, not a Response."""


@app.exception_handler(BadHandlerError)
def returns_dict(request: Request, exc: BadHandlerError) -> Any:
    return {"not": "a response"}


@app.get("/delegated")
def delegated_events() -> list[str]:
    return delegated


# -- lifespan state -------------------------------------------------------------


@app.get("/state")
def state() -> dict[str, Any]:
    return {"db": app.state.db, "events": events}


@app.get("/state/request")
async def request_state(request: Request) -> dict[str, Any]:
    leaked = getattr(request.state, "mine", None)  # set by an earlier request: must not be seen
    request.state.mine = "this request's"
    return {"db": request.state.db, "leaked": leaked}


# -- routers nested twice -----------------------------------------------------------

items = APIRouter(prefix="/items", tags=["items"], responses={404: {"description": "No such item"}})
v1 = APIRouter(prefix="/v1", tags=["v1"])


@items.get("")
async def list_items() -> list[str]:
    """Every item.

    Everything after the form feed is not documented.\f
    :returns: the names
    """
    return ["a", "b"]


@items.get("/{item_id}", tags=["one"], summary="One item", operation_id="get_one_item")
async def get_item(item_id: int) -> dict[str, Any]:
    if item_id == 0:
        raise NotFoundError(f"item {item_id}")
    return {"id": item_id}


@items.post("/{item_id}/sync", status_code=status.HTTP_201_CREATED, deprecated=True)
def touch_item(item_id: int) -> dict[str, Any]:
    if item_id == 0:
        raise NotFoundError(f"item {item_id} (sync)")
    if item_id == 1:
        raise OtherError("other")
    return {"touched": item_id}


v1.include_router(items)
app.include_router(v1, prefix="/api", tags=["api"])

# -- exception handlers -----------------------------------------------------------------


@app.get("/errors/teapot")
async def raise_teapot() -> None:
    raise HTTPException(418, "tea")


@app.get("/errors/not-teapot")
def raise_conflict() -> None:
    raise HTTPException(409, "plain conflict")  # no handler for 409: the host's Problem Details


@app.get("/errors/validation")
async def raise_validation() -> None:
    raise RequestValidationError([{"type": "value_error", "loc": ["query", "q"], "msg": "bad q", "input": "x"}])


@app.get("/errors/unhandled")
def raise_unhandled() -> None:
    raise TeapotError("no handler for this one")


def refuse(item_id: int) -> None:
    if item_id == 0:
        raise OtherError("refused by a dependency")


async def refuse_async(item_id: int) -> None:
    await asyncio.sleep(0)
    if item_id == 1:
        raise NotFoundError(f"item {item_id} (async dependency)")


guarded = APIRouter(prefix="/guarded", dependencies=[Depends(refuse)])


@guarded.get("/{item_id}", dependencies=[Depends(refuse_async)])
def guarded_item(item_id: int) -> dict[str, Any]:
    return {"guarded": item_id}


app.include_router(guarded)


# -- structured details --------------------------------------------------------------------


@app.get("/detail/dict")
def detail_dict() -> None:
    raise HTTPException(status.HTTP_409_CONFLICT, detail={"code": "duplicate", "ids": [1, 2]})


@app.get("/detail/list")
async def detail_list() -> None:
    raise HTTPException(400, detail=[{"field": "a"}, {"field": "b"}], headers={"x-why": "list"})


@app.get("/detail/none")
async def detail_none() -> None:
    raise HTTPException(status.HTTP_404_NOT_FOUND)


# -- response classes ------------------------------------------------------------------------------


@app.get("/html", response_class=HTMLResponse)
async def html() -> str:
    return "<h1>hi</h1>"


@app.get("/html/sync", response_class=HTMLResponse, status_code=status.HTTP_202_ACCEPTED)
def html_sync() -> str:
    return "<p>sync</p>"


@app.get("/text")
def text() -> PlainTextResponse:
    return PlainTextResponse("plain")


@app.post("/json", status_code=201)
async def json_response() -> JSONResponse:
    return JSONResponse({"made": True}, status_code=status.HTTP_201_CREATED, headers={"x-made": "1"})


@app.get("/json/null")
async def json_null() -> JSONResponse:
    return JSONResponse(None)


@app.get("/redirect")
async def redirect() -> RedirectResponse:
    return RedirectResponse("/html")


@app.get("/redirect/found")
def redirect_found() -> RedirectResponse:
    return RedirectResponse(url="/text?x=a b", status_code=status.HTTP_302_FOUND)


@app.get("/cookies")
async def cookies() -> Response:
    response = JSONResponse({"ok": True})
    response.set_cookie("session", "abc", max_age=60, httponly=True, samesite="strict")
    response.delete_cookie("old")
    response.headers["X-Custom"] = "1"
    response.headers["x-custom"] = "2"  # case-insensitive: replaces
    return response


@app.get("/file")
def file() -> FileResponse:
    return FileResponse(app.state.served_file, filename="report.txt")


@app.post("/upload")
async def upload(file: UploadFile, note: str = Form()) -> dict[str, Any]:
    return {"name": file.filename, "note": note}
