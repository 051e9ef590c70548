"""Bytes bodies the host sends without a copy, for tests/test_e2e_zero_copy.py.

``BIG`` is returned as is: the plugin hands the ``bytes`` object's own buffer to
the host and the host gives the reference back when it has sent it. ``/refs``
reports ``sys.getrefcount`` of ``BIG`` and ``HUGE``, so a test can see every reference come back.
"""

from __future__ import annotations

import sys

from spikard import App, Response

app = App()

BIG = bytes(range(256)) * 4096  # 1 MiB
HUGE = b"h" * (32 << 20)  # more than socket buffers hold: sent while a slow client reads


@app.get("/big")
async def big() -> bytes:
    return BIG


@app.get("/big-sync")
def big_sync() -> bytes:
    return BIG


@app.get("/big-response")
async def big_response() -> Response:
    return Response(BIG, media_type="application/x-big")


@app.get("/big-bad-header")
async def big_bad_header() -> Response:
    # The host refuses the header name: the body is given back inside `respond`.
    return Response(BIG, headers=[("bad header", "x")])


@app.get("/huge")
async def huge() -> bytes:
    return HUGE


@app.get("/refs")
async def refs() -> dict[str, int]:
    return {"refs": sys.getrefcount(BIG), "huge": sys.getrefcount(HUGE)}
