"""Decorator routes under the host's server-level policies (CORS, JWT
authentication, rate limits, compression, per-route timeouts), for
tests/test_e2e_middleware.py. The handlers know nothing of the policies:
they only read the principal the host verified (``request.auth``)."""

from __future__ import annotations

import asyncio
from typing import Any

from spikard import App, HTTPException, Request

app = App()


def _claims(request: Request) -> dict[str, Any]:
    auth = request.auth
    if auth is None:
        raise HTTPException(500, "request.auth is None: the host passed no principal to this route")
    claims: dict[str, Any] = auth["claims"]
    return claims


@app.get("/me")
async def me(request: Request) -> dict[str, Any]:
    """The token's claims, as the host verified them."""
    return _claims(request)


@app.get("/me/sync")
def me_sync(request: Request) -> dict[str, Any]:
    """The same from a ``def`` handler (the sync worker pool)."""
    return _claims(request)


@app.get("/me/principal")
async def principal(request: Request, verbose: bool = False) -> dict[str, Any]:
    """The whole principal; with a query parameter, so the validated
    parameters are decoded before the handler runs."""
    return {"auth": request.auth, "verbose": verbose}


@app.get("/public/whoami")
async def public_whoami(request: Request) -> dict[str, Any]:
    """A route without authentication: no principal."""
    return {"auth": request.auth}


#: A JSON answer of about 4 KB, well above `compression.min_size`.
BIG: dict[str, Any] = {
    "items": [{"id": i, "name": f"item-{i:03d}", "tags": ["alpha", "beta"], "price": i * 1.5} for i in range(64)]
}


@app.get("/public/big")
async def public_big() -> dict[str, Any]:
    """About 4 KB of JSON."""
    return BIG


@app.get("/public/small")
async def public_small() -> dict[str, bool]:
    """Below `compression.min_size`: never compressed."""
    return {"ok": True}


@app.get("/slow", timeout=0.3)
async def slow() -> dict[str, str]:
    """Outlives its own 0.3 s timeout: the host answers 504 and cancels it."""
    await asyncio.sleep(2)
    return {"slept": "2 s"}


@app.get("/public/nap")
async def public_nap() -> dict[str, str]:
    """Sleeps longer than `/slow`'s timeout but within the server's."""
    await asyncio.sleep(0.6)
    return {"slept": "0.6 s"}
