"""spikard: FastAPI-style Python handlers served by the Rust ``spikard-host``.

The host routes each request, validates its path, query, header, cookie and
body parameters against the JSON Schemas derived from the handler's type
hints, and only then calls the handler with converted values::

    from spikard import App, Query

    app = App()

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, q: str | None = Query(None)) -> dict:
        return {"id": item_id, "q": q}

Policies live in the host's config, not in the app: CORS, rate limits,
compression and authentication (``[server.auth.jwt]``, ``[[policies]]``).
The host verifies a request's credentials before Python runs; a handler
that declares ``request: Request`` reads the principal as ``request.auth``
(``{"scheme": "jwt", "claims": {...}}``, ``{"scheme": "api_key",
"key_index": N}``, or ``None`` on a route without authentication). A
route's own request timeout is ``@app.get(path, timeout=2.5)`` (seconds).

A handler may stream its body: return a ``StreamingResponse`` over a sync or
async iterator of ``bytes``/``str`` (or a generator directly), or an
``EventSourceResponse`` of ``ServerSentEvent`` (``spikard.sse``); the
producer advances only as fast as the client reads.

Uploads: ``file: UploadFile``, ``data: bytes = File()``, ``note: str =
Form()`` read a ``multipart/form-data`` body the host parsed and validated;
uploads are closed after the response is sent.

FastAPI's app surface is here under the same names: ``APIRouter`` and
``include_router``, ``App(title=, version=, lifespan=, dependencies=,
exception_handlers=)``, ``@app.exception_handler``, the route options
(``tags``, ``summary``, ``responses``, ``response_class`` ...), Starlette's
response classes and ``spikard.status``; a FastAPI app runs with its import
line changed (``from spikard import App as FastAPI, ...``).

Importing this package needs only the standard library; msgspec is needed
when routes are compiled and served.
"""

from . import status
from ._app import App, NoMatchFound, Route, State
from ._background import BackgroundTask, BackgroundTasks
from ._params import (
    Body,
    Cookie,
    Depends,
    File,
    Form,
    Header,
    ParamInfo,
    Path,
    Query,
    Security,
    SecurityScopes,
)
from ._request import Request
from ._responses import (
    FileResponse,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    MutableHeaders,
    ORJSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    UJSONResponse,
)
from ._routing import APIRouter
from ._streaming import StreamingResponse
from ._upload import UploadFile
from .sse import EventSourceResponse, ServerSentEvent

__version__ = "0.1.0"

__all__ = [
    "APIRouter",
    "App",
    "BackgroundTask",
    "BackgroundTasks",
    "Body",
    "Cookie",
    "Depends",
    "EventSourceResponse",
    "File",
    "FileResponse",
    "Form",
    "HTMLResponse",
    "HTTPException",
    "Header",
    "JSONResponse",
    "MutableHeaders",
    "NoMatchFound",
    "ORJSONResponse",
    "ParamInfo",
    "Path",
    "PlainTextResponse",
    "Query",
    "RedirectResponse",
    "Request",
    "Response",
    "Route",
    "Security",
    "SecurityScopes",
    "ServerSentEvent",
    "State",
    "StreamingResponse",
    "UJSONResponse",
    "UploadFile",
    "__version__",
    "status",
]
