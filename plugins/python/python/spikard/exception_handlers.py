"""The default exception handlers, as ``fastapi.exception_handlers``: a
custom handler that logs or counts an error can still answer the way
spikard does by calling them::

    from spikard.exception_handlers import http_exception_handler

    @app.exception_handler(HTTPException)
    async def logged(request, exc):
        log.warning("HTTP %s on %s", exc.status_code, request.url.path)
        return await http_exception_handler(request, exc)

Both return a ``Response`` carrying the Problem Details body spikard sends
without a handler (rendered in Python, so its ``type`` base is
``https://spikard.dev/errors/``).
"""

from __future__ import annotations

from typing import Any

from ._responses import HTTPException, Response, problem_body

__all__ = ["http_exception_handler", "request_validation_exception_handler"]

_PROBLEM_JSON = "application/problem+json"


def _request_id(request: Any) -> str:
    try:
        return str(request.request_id)
    except Exception:  # noqa: BLE001 - a request without an id
        return ""


async def http_exception_handler(request: Any, exc: HTTPException) -> Response:
    """``exc`` as spikard answers it: Problem Details with its status,
    detail and headers (a status below 400: ``{"detail": ...}`` JSON)."""
    status = int(exc.status_code)
    if not 400 <= status <= 599:
        return Response({"detail": exc.detail}, status_code=status, headers=exc.headers, media_type="application/json")
    body = problem_body(status, exc.detail, _request_id(request))
    return Response(body, status_code=status, headers=exc.headers, media_type=_PROBLEM_JSON)


async def request_validation_exception_handler(request: Any, exc: Any) -> Response:
    """A ``RequestValidationError`` as spikard answers it: the host's 422
    Problem Details with its ``errors``."""
    from .exceptions import validation_problem

    return Response(validation_problem(exc, _request_id(request)), status_code=422, media_type=_PROBLEM_JSON)
