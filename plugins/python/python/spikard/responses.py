"""The response classes under FastAPI's module name: ``from fastapi.responses
import HTMLResponse`` ports as ``from spikard.responses import HTMLResponse``
(every name here is also importable from ``spikard`` itself)."""

from ._responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    ORJSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    UJSONResponse,
)
from ._streaming import StreamingResponse

__all__ = [
    "FileResponse",
    "HTMLResponse",
    "JSONResponse",
    "ORJSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
    "UJSONResponse",
]
