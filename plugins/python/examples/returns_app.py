"""Return values, errors, logging and imports, for tests/test_e2e_returns.py."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys

import msgspec
import pydantic

from spikard import App, HTTPException, Response

app = App()
log = logging.getLogger("examples.returns")


class Item(msgspec.Struct):
    name: str
    price: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


class User(pydantic.BaseModel):
    name: str
    age: int


class PublicUser(msgspec.Struct):
    name: str


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "Hello"}


@app.get("/dict")
async def ret_dict() -> dict[str, object]:
    return {"a": 1, "b": [1, 2], "c": None}


@app.get("/list")
def ret_list() -> list[int]:
    return [1, 2, 3]


@app.get("/struct")
async def ret_struct() -> Item:
    return Item("pen", 1.5)


@app.get("/dataclass")
def ret_dataclass() -> Point:
    return Point(1, 2)


@app.get("/pydantic")
async def ret_pydantic() -> User:
    return User(name="ann", age=7)


@app.get("/pydantic-list")
async def ret_pydantic_list() -> list[User]:
    return [User(name="ann", age=7), User(name="bob", age=8)]


@app.get("/str")
async def ret_str() -> str:
    return "hello, wörld"


@app.get("/bytes")
def ret_bytes() -> bytes:
    return b"\x00\x01binary"


@app.get("/none")
async def ret_none() -> None:
    return None


@app.delete("/things/{thing_id}", status_code=204)
async def delete_thing(thing_id: int) -> None:
    return None


@app.post("/created", status_code=201)
async def created() -> dict[str, bool]:
    return {"created": True}


@app.get("/response/json")
async def response_json() -> Response:
    return Response({"ok": True}, status_code=202, headers={"x-custom": "yes"})


@app.get("/response/media-type")
def response_media_type() -> Response:
    return Response('{"k": 1}', media_type="application/vnd.test+json", headers=[("x-a", "1"), ("x-b", "2")])


@app.get("/response/text")
async def response_text() -> Response:
    return Response("<h1>hi</h1>", media_type="text/html")


@app.get("/response/empty")
async def response_empty() -> Response:
    return Response(status_code=304, headers={"etag": '"abc"'})


@app.get("/response/redirect")
async def response_redirect() -> Response:
    return Response(status_code=307, headers={"location": "/hello"})


@app.get("/response-model", response_model=PublicUser)
async def response_model() -> dict[str, str]:
    return {"name": "ann", "password": "hunter2"}


# -- errors ---------------------------------------------------------------------


@app.get("/http-error")
async def http_error() -> None:
    raise HTTPException(401, "token expired", headers={"www-authenticate": "Bearer"})


@app.get("/http-error/default")
def http_error_default() -> None:
    raise HTTPException(404)


@app.get("/http-error/after-await")
async def http_error_after_await() -> None:
    await asyncio.sleep(0.01)
    raise HTTPException(409, {"reason": "conflict", "id": 3})


@app.get("/crash")
async def crash() -> None:
    raise RuntimeError("secret internals 4711")


@app.get("/crash/sync")
def crash_sync() -> None:
    return {"x": 1} / 2  # type: ignore[operator, return-value]


@app.get("/crash/after-await")
async def crash_after_await() -> None:
    await asyncio.sleep(0.01)
    raise ValueError("late secret 4712")


@app.get("/crash/unencodable")
async def crash_unencodable() -> object:
    return object()


@app.get("/bad-header")
async def bad_header() -> Response:
    return Response("x", headers={"bad header name": "v"})


# -- logging and imports ------------------------------------------------------------


@app.get("/log")
async def log_something() -> dict[str, bool]:
    log.warning("warning from python handler %s", "w-1")
    log.info("info from python handler %s", "i-1")
    logging.getLogger("examples.returns.debug").debug("debug record that the host filters out")
    return {"logged": True}


@app.get("/log/exception")
def log_exception() -> dict[str, bool]:
    try:
        raise KeyError("boom-key")
    except KeyError:
        log.exception("handled failure with traceback")
    return {"logged": True}


@app.get("/imports")
def imports() -> dict[str, object]:
    import _ctypes
    import _decimal

    import msgspec as m

    # (`_decimal` calls itself "decimal", so list what was imported.)
    modules = {"msgspec": m, "_ctypes": _ctypes, "_decimal": _decimal}
    names = [name for name, module in modules.items() if module is not None]
    extras: list[str] = []
    for optional in ("orjson", "pydantic_core", "uvloop"):
        try:
            extras.append(__import__(optional).__name__)
        except ImportError:
            pass
    import decimal

    return {
        "names": names,
        "extras": extras,
        "decimal": str(decimal.Decimal("1.10") + decimal.Decimal("2.205")),
        "python": list(sys.version_info[:2]),
    }


@app.get("/loop")
async def loop_info() -> dict[str, str]:
    loop = asyncio.get_running_loop()
    return {"loop": type(loop).__module__ + "." + type(loop).__name__}
