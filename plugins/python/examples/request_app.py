"""The Starlette-like ``Request`` (``test_testclient.py``, through
``spikard.testclient.TestClient``): every attribute a handler may read,
echoed back as JSON; a form route; lifecycle hooks; a handler that raises."""

from __future__ import annotations

import json
import os
from typing import Any

from spikard import App, Form, Request, Response, UploadFile

app = App()
app.state.events = []


@app.on_startup
async def started() -> None:
    app.state.events.append("startup")


@app.on_shutdown
def stopped() -> None:
    """Leaves a trace the test process can see (the app runs in the host)."""
    trace = os.environ.get("REQUEST_APP_SHUTDOWN_FILE")
    if trace:
        with open(trace, "a", encoding="utf-8") as file:
            file.write("shutdown\n")


def describe(request: Request) -> dict[str, Any]:
    """What a handler sees of the request (the same for async and sync)."""
    client = request.client
    url = request.url
    return {
        "method": request.method,
        "url": str(url),
        "path": url.path,
        "query": url.query,
        "scheme": url.scheme,
        "netloc": url.netloc,
        "hostname": url.hostname,
        "port": url.port,
        "base_url": str(request.base_url),
        "client": [client.host, client.port] if client else None,
        "http_version": request.http_version,
        "route": request.route,
        "request_id": request.request_id,
        "headers": {"x-multi": request.headers.getlist("X-Multi"), "X-One": request.headers.get("X-One")},
        "cookies": request.cookies,
        "query_params": request.query_params.multi_items(),
        "path_params": request.path_params,
        "body_is_bytes": isinstance(request.body, bytes),
        "body_len": len(request.body),
    }


@app.get("/echo/{item_id}")
async def echo_get(item_id: int, request: Request) -> dict[str, Any]:
    request.state.seen = item_id
    return {**describe(request), "state": request.state.seen}


@app.post("/echo/{item_id}")
async def echo_post(item_id: int, request: Request) -> dict[str, Any]:
    body = await request.body()
    data = await request.json()
    return {**describe(request), "body": body.decode(), "json": data}


@app.put("/echo/{item_id}")
def echo_put_sync(item_id: int, request: Request) -> dict[str, Any]:
    """A ``def`` handler cannot await ``json()``: it decodes ``body``, the bytes."""
    return {**describe(request), "json": json.loads(request.body), "body": request.body.decode()}


@app.delete("/echo/{item_id}")
async def echo_delete(item_id: int, request: Request) -> dict[str, Any]:
    return describe(request)


@app.patch("/echo/{item_id}")
async def echo_patch(item_id: int, request: Request) -> dict[str, Any]:
    return describe(request)


@app.options("/echo/{item_id}")
async def echo_options(item_id: int, request: Request) -> dict[str, Any]:
    return describe(request)


@app.head("/echo/{item_id}")
async def echo_head(item_id: int, request: Request) -> Response:
    return Response(None, headers={"x-method": request.method})


@app.post("/form/any")
async def any_form(request: Request) -> dict[str, Any]:
    """A route with no form parameters: ``form()`` parses the body itself."""
    async with request.form() as form:
        out: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                out.setdefault(key, []).append({"filename": value.filename, "content": (await value.read()).decode()})
            else:
                out.setdefault(key, []).append(value)
        return out


@app.post("/form/declared")
async def declared_form(n: int = Form(), note: str = Form(""), *, request: Request) -> dict[str, Any]:
    """Declared fields arrive converted; ``form()`` has them as sent."""
    form = await request.form()
    fields = [[k, v if isinstance(v, str) else f"file {v.filename}"] for k, v in form.multi_items()]
    return {"n": n, "note": note, "form": fields}


@app.get("/cookie")
async def set_cookie() -> Response:
    return Response({"ok": True}, headers={"set-cookie": "session=abc; Path=/"})


@app.get("/redirect")
async def redirect() -> Response:
    return Response(None, status_code=307, headers={"location": "/echo/1?from=redirect"})


@app.get("/events")
async def events() -> list[str]:
    return app.state.events


@app.get("/crash")
async def crash() -> None:
    raise ValueError("boom in the handler")
