"""Strict bodies, for the end-to-end tests of bounded validation errors
(tests/test_e2e_validation_limits.py).

``forbid_unknown_fields=True`` makes msgspec's JSON Schema say
``additionalProperties: false``, so the host reports every unknown key of a
body; the tests check that thousands of them give a small, bounded 422.
"""

from __future__ import annotations

import msgspec

from spikard import App

app = App()


class Item(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    price: float


@app.post("/items")
def create(item: Item) -> dict[str, object]:
    return {"name": item.name, "price": item.price}
