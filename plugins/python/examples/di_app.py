"""Dependencies, background tasks and the ``response`` parameter, for
``tests/test_e2e_di.py``.

What happens after a response (generator teardown, background tasks) is
recorded in ``EVENTS``, which ``GET /di/events`` returns; ``/di/hold/{key}``
routes keep their after-response work waiting until ``POST
/di/release/{key}``, so a test sees the response arrive while that work has
not finished.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated, Any

import msgspec

from spikard import (
    APIRouter,
    App,
    BackgroundTask,
    BackgroundTasks,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    Security,
    SecurityScopes,
)

EVENTS: list[str] = []
HELD: dict[str, threading.Event] = {}
COUNTS: dict[str, int] = {"app": 0}


def record(event: str) -> None:
    EVENTS.append(event)


def held(key: str) -> threading.Event:
    return HELD.setdefault(key, threading.Event())


# -- app and router level ---------------------------------------------------------------


def app_dependency(response: Response) -> None:
    COUNTS["app"] += 1
    response.headers["x-app-dependency"] = "ran"


app = App(dependencies=[Depends(app_dependency)])


@app.get("/di/events")
def events() -> list[str]:
    return list(EVENTS)


@app.post("/di/release/{key}")
def release(key: str) -> dict[str, str]:
    held(key).set()
    return {"released": key}


# -- parameters of dependencies are validated by the host ---------------------------------


def common_parameters(q: str | None = None, skip: int = Query(0, ge=0), limit: int = Query(10, le=100)) -> dict:
    return {"q": q, "skip": skip, "limit": limit}


@app.get("/di/items")
async def items(commons: Annotated[dict, Depends(common_parameters)]) -> dict:
    return commons


def documented_filter(
    q: str = Query(
        "", alias="search", title="Search", description="what to look for", examples=["pen"], deprecated=True
    ),
    level: int = Query(0, description="not documented", include_in_schema=False),
) -> dict:
    return {"q": q, "level": level}


@app.get("/di/documented")
def documented(f: dict = Depends(documented_filter)) -> dict:
    return f


class Pager:
    """A class dependency: ``Annotated[Pager, Depends()]`` calls ``Pager``."""

    def __init__(self, page: int = Query(1, ge=1), size: int = Query(10, le=50)) -> None:
        self.page = page
        self.size = size


@app.get("/di/pager")
def pager(p: Annotated[Pager, Depends()]) -> dict:
    return {"page": p.page, "size": p.size}


class Payload(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    qty: int = 1


def payload_name(payload: Payload) -> str:
    return payload.name.upper()


@app.post("/di/body")
def body_in_dependency(name: Annotated[str, Depends(payload_name)]) -> dict:
    return {"name": name}


# -- nesting and per-request caching ------------------------------------------------------

CALLS = {"n": 0}


def counter() -> int:
    CALLS["n"] += 1
    return CALLS["n"]


def inner(c: int = Depends(counter)) -> int:
    return c


def middle(i: int = Depends(inner), c: int = Depends(counter)) -> dict:
    return {"inner": i, "counter": c}


@app.get("/di/nested")
def nested(
    m: dict = Depends(middle),
    c: int = Depends(counter),
    fresh: int = Depends(counter, use_cache=False),
) -> dict:
    return {**m, "handler": c, "fresh": fresh}


# -- sync and async -----------------------------------------------------------------------


async def async_token(x_token: str = Header("none")) -> str:
    await asyncio.sleep(0)
    return x_token


def sync_double(n: int = Query(1)) -> int:
    return n * 2


@app.get("/di/mixed/sync")
def mixed_sync_handler(token: str = Depends(async_token), double: int = Depends(sync_double)) -> dict:
    return {"token": token, "double": double, "thread": threading.get_ident(), "name": threading.current_thread().name}


@app.get("/di/loop-thread")
async def loop_thread() -> dict:
    return {"thread": threading.get_ident()}


THREADS: dict[str, int] = {}


@app.get("/di/threads/{label}")
def thread_of(label: str) -> dict:
    return {"thread": THREADS.get(label)}


def note_thread(label: str) -> None:
    THREADS[label] = threading.get_ident()


@app.get("/di/mixed/async")
async def mixed_async_handler(token: str = Depends(async_token), double: int = Depends(sync_double)) -> dict:
    return {"token": token, "double": double}


def requester(request: Request) -> str:
    return request.request_id


@app.get("/di/request")
async def request_in_dependency(rid: str = Depends(requester)) -> dict:
    return {"request_id": rid}


# -- generator dependencies ---------------------------------------------------------------


def sync_resource(key: str) -> Any:
    record(f"enter sync {key}")
    try:
        yield f"resource {key}"
    except Exception as exc:
        record(f"caught {type(exc).__name__} {key}")
        raise
    finally:
        record(f"teardown start {key}")
        if key.startswith("hold"):
            held(key).wait(10)
        record(f"teardown end {key}")


async def async_resource(key: str) -> Any:
    record(f"enter async {key}")
    try:
        yield f"async resource {key}"
    except Exception as exc:
        record(f"caught {type(exc).__name__} {key}")
        raise
    finally:
        record(f"teardown start {key}")
        if key.startswith("hold"):
            deadline = time.monotonic() + 10
            while not held(key).is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        record(f"teardown end {key}")


@app.get("/di/yield/sync/{key}")
def yield_sync(key: str, resource: str = Depends(sync_resource), fail: str | None = None) -> dict:
    if fail == "value":
        raise ValueError("handler failed")
    if fail == "http":
        raise HTTPException(404, "not here")
    return {"resource": resource, "events": list(EVENTS)}


@app.get("/di/yield/async/{key}")
async def yield_async(key: str, resource: str = Depends(async_resource), fail: str | None = None) -> dict:
    if fail == "value":
        raise ValueError("handler failed")
    if fail == "http":
        raise HTTPException(404, "not here")
    return {"resource": resource, "events": list(EVENTS)}


@app.get("/di/yield/slow/{key}", timeout=0.2)
async def yield_slow(key: str, resource: str = Depends(async_resource)) -> dict:
    await asyncio.sleep(5)  # past the route's timeout: the host answers 504 and cancels this
    return {"resource": resource}


@app.get("/di/yield/stream/{key}")
def yield_stream(key: str, resource: str = Depends(sync_resource)) -> Any:
    def chunks() -> Any:
        yield f"{resource}\n"
        yield f"{len([e for e in EVENTS if e.startswith('teardown') and e.endswith(key)])} teardown events\n"

    return chunks()


# -- overrides ----------------------------------------------------------------------------


def current_user() -> str:
    return "real user"


def fake_user() -> str:
    return "fake user"


async def async_fake_user() -> str:
    await asyncio.sleep(0)
    return "async fake user"


@app.get("/di/user")
def user(name: str = Depends(current_user)) -> dict:
    return {"user": name}


@app.post("/di/override/{which}")
def override(which: str) -> dict:
    if which == "fake":
        app.dependency_overrides[current_user] = fake_user
    elif which == "async":
        app.dependency_overrides[current_user] = async_fake_user
    else:
        app.dependency_overrides.clear()
    return {"override": which}


# -- route and router dependencies ---------------------------------------------------------


def verify_key(x_key: str = Header()) -> None:
    if x_key != "secret":
        raise HTTPException(403, "wrong key")


@app.get("/di/guarded", dependencies=[Depends(verify_key)])
def guarded() -> dict:
    return {"ok": True, "app_dependency_calls": COUNTS["app"]}


def router_dependency(response: Response) -> None:
    response.headers["x-router-dependency"] = "ran"


router = APIRouter(prefix="/di/router", dependencies=[Depends(router_dependency)])


@router.get("/hello", dependencies=[Depends(verify_key)])
async def router_hello() -> dict:
    return {"hello": "router"}


app.include_router(router)


# -- security scopes ----------------------------------------------------------------------


def scopes_seen(security_scopes: SecurityScopes) -> list[str]:
    return security_scopes.scopes


def me(scopes: list[str] = Security(scopes_seen, scopes=["me"])) -> list[str]:
    return scopes


@app.get("/di/secure")
def secure(scopes: list[str] = Security(me, scopes=["items:read"])) -> dict:
    return {"scopes": scopes}


# -- background tasks ---------------------------------------------------------------------


async def async_task(label: str) -> None:
    await asyncio.sleep(0)
    record(f"task {label}")


def failing_task() -> None:
    raise RuntimeError("background task failed")


def queue_from_dependency(background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(record, "task from dependency")


@app.post("/di/background/{kind}")
async def background(kind: str, tasks: BackgroundTasks, _: None = Depends(queue_from_dependency)) -> dict:
    tasks.add_task(note_thread, kind)
    tasks.add_task(record, f"task sync {kind}")
    tasks.add_task(async_task, f"async {kind}")
    tasks.add_task(failing_task)
    tasks.add_task(record, f"task after failure {kind}")
    if kind.startswith("hold"):
        tasks.add_task(held(kind).wait, 10)
        tasks.add_task(record, f"task released {kind}")
    return {"queued": len(tasks.tasks) - 1}


@app.post("/di/background-sync")
def background_sync(tasks: BackgroundTasks) -> dict:
    tasks.add_task(async_task, "async from def route")
    tasks.add_task(record, "sync from def route")
    return {"thread": threading.current_thread().name}


@app.get("/di/response-background")
def response_background() -> Response:
    return Response("ok", background=BackgroundTask(record, "task of a Response"))


# -- the response parameter ---------------------------------------------------------------


def tag_response(response: Response) -> None:
    response.headers["x-from-dependency"] = "yes"


@app.post("/di/response")
def response_parameter(response: Response, _: None = Depends(tag_response)) -> dict:
    response.headers["x-from-handler"] = "yes"
    response.set_cookie("session", "abc", httponly=True)
    response.status_code = 201
    return {"created": True}


@app.get("/di/response/explicit")
async def response_parameter_explicit(response: Response) -> Response:
    response.headers["x-temporal"] = "yes"
    response.status_code = 202
    return Response({"explicit": True}, status_code=200)


@app.get("/di/response/error")
def response_parameter_error(response: Response) -> dict:
    response.headers["x-temporal"] = "yes"
    raise HTTPException(409, "conflict")
