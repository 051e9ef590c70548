"""Data shared by every benchmark app and by the harness's correctness guard.

`cpu_work()` is the handler body of `GET /cpu` in every app: about 1 ms of
pure-Python work (a deterministic checksum loop), the same code everywhere.

`BIG` is the body of `GET /big`: a list of records whose compact JSON
encoding is 16 KiB (16,384 bytes give or take a few). Apps build it once at
import and serialize it on every request, as a real handler returning data
would; the harness compares the decoded response with the same object.
"""

from __future__ import annotations

HELLO = {"message": "Hello"}
SLEPT = {"slept": True}
SLEEP_SECONDS = 0.01

# POST /items: a valid body (echoed with 201) and an invalid one (422).
ITEM = {"name": "Widget", "price": 9.5, "tags": ["tools", "blue"]}
INVALID_ITEM = {"name": "", "price": -1}

# GET /items/{item_id}?q=...
ITEM_ID = 42
QUERY = "hello"
ITEM_GET = {"item_id": ITEM_ID, "q": QUERY}

# GET /items-dep/{item_id}?q=...&limit=...: the query read by a dependency (`Depends`).
LIMIT = 5
ITEM_DEP = {"item_id": ITEM_ID, "q": QUERY, "skip": 0, "limit": LIMIT}

# GET /stream: a streamed body of STREAM_CHUNKS chunks of 1 KiB each (text/plain), written
# one by one by the handler (an async generator where the framework has one).
STREAM_CHUNKS = 100
STREAM_CHUNK = b"x" * 1023 + b"\n"
STREAM_BYTES = STREAM_CHUNKS * len(STREAM_CHUNK)

# GET /cpu: CPU_ROUNDS iterations take about 1 ms on Python 3.11 on the bench machine.
CPU_ROUNDS = 20_000


def cpu_work() -> dict:
    """About 1 ms of pure-Python work holding the GIL; the same answer every time."""
    acc = 0
    for i in range(CPU_ROUNDS):
        acc = (acc * 31 + i) % 1_000_003
    return {"checksum": acc}


CPU_RESULT = cpu_work()

BIG_TARGET_BYTES = 16 * 1024


def _record(i: int) -> dict:
    return {
        "id": i,
        "name": f"item-{i:04d}",
        "price": i + 0.5,
        "in_stock": i % 2 == 0,
        "tags": ["alpha", "beta"],
    }


def _build_big() -> dict:
    import json

    records: list[dict] = []
    big = {"count": 0, "items": records}
    while True:
        records.append(_record(len(records)))
        big["count"] = len(records)
        if len(json.dumps(big, separators=(",", ":"))) >= BIG_TARGET_BYTES:
            return big


BIG = _build_big()
