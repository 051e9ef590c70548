"""The benchmark workloads as a raw Granian RSGI app with msgspec: no
framework, the fastest Python-on-Rust path known (peers-notes.md).

Run as `granian --interface rsgi --workers 1 --loop uvloop granian_app:app`.
Routing is a dict lookup plus one prefix match; the body is decoded and
validated by msgspec into a Struct (422 on a validation error, 400 on
malformed JSON). An RSGI app is one coroutine, so there is no sync variant.
"""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import parse_qs

import msgspec

from payload import BIG, HELLO, SLEEP_SECONDS, SLEPT, STREAM_CHUNK, STREAM_CHUNKS, cpu_work


class Item(msgspec.Struct, omit_defaults=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    price: Annotated[float, msgspec.Meta(gt=0)]
    tags: list[str] | None = None


encode = msgspec.json.encode
item_decoder = msgspec.json.Decoder(Item)
JSON = [("content-type", "application/json")]


def respond(proto, status, payload):
    proto.response_bytes(status, JSON, encode(payload))


def problem(proto, status, detail):
    respond(proto, status, {"status": status, "detail": detail})


async def hello(scope, proto):
    respond(proto, 200, HELLO)


async def cpu(scope, proto):
    respond(proto, 200, cpu_work())


async def stream(scope, proto):
    transport = proto.response_stream(200, [("content-type", "text/plain")])
    for _ in range(STREAM_CHUNKS):
        await transport.send_bytes(STREAM_CHUNK)


async def create_item(scope, proto):
    if scope.method != "POST":
        return problem(proto, 405, "method not allowed")
    body = await proto()
    try:
        item = item_decoder.decode(body)
    except msgspec.ValidationError as e:
        return problem(proto, 422, str(e))
    except msgspec.DecodeError as e:
        return problem(proto, 400, str(e))
    respond(proto, 201, item)


async def big(scope, proto):
    respond(proto, 200, BIG)


async def sleep(scope, proto):
    await asyncio.sleep(SLEEP_SECONDS)
    respond(proto, 200, SLEPT)


async def get_item(scope, proto, raw_id):
    try:
        item_id = int(raw_id)
    except ValueError:
        return problem(proto, 422, "item_id must be an integer")
    q = parse_qs(scope.query_string).get("q")
    respond(proto, 200, {"item_id": item_id, "q": q[0] if q else None})


ROUTES = {
    "/hello": hello,
    "/cpu": cpu,
    "/items": create_item,
    "/big": big,
    "/sleep": sleep,
    "/stream": stream,
}


async def app(scope, proto):
    handler = ROUTES.get(scope.path)
    if handler is not None:
        return await handler(scope, proto)
    if scope.path.startswith("/items/") and scope.method == "GET":
        return await get_item(scope, proto, scope.path[7:])
    problem(proto, 404, "not found")
