"""A msgspec Struct with ``forbid_unknown_fields=True`` goes through the host's
bounded error path: 4,000 unknown keys give a small 422 that lists the first
100 and counts the rest (examples/strict_app.py)."""

from __future__ import annotations

import json

import pytest

from conftest import Host, host_fixture, problem

pytestmark = pytest.mark.e2e

host = host_fixture("examples.strict_app:app")


def test_thousands_of_unknown_keys_give_a_bounded_422(host: Host) -> None:
    body = {"name": "Widget", "price": 9.5, **{f"unknown_{i:05d}": i for i in range(4000)}}
    r = host.post("/items", body)
    assert len(r.body) < 40_000, len(r.body)
    answer = problem(r, 422)
    assert answer["errors_omitted"] == 3900
    assert answer["detail"] == "4000 validation errors in request; the first 100 are listed"
    assert len(answer["errors"]) == 100
    assert answer["errors"][0] == {
        "type": "validation_error",
        "loc": ["body", "unknown_00000"],
        "msg": "Additional properties are not allowed",
        "input": 0,
        "ctx": {"additional_properties": False, "unexpected_field": "unknown_00000"},
    }


def test_a_long_unknown_value_is_cut(host: Host) -> None:
    r = host.post("/items", {"name": "Widget", "price": 9.5, "note": "x" * 100_000})
    (error,) = problem(r, 422)["errors"]
    assert error["loc"] == ["body", "note"]
    assert error["input"] == "x" * 1024 + "…"
    assert "errors_omitted" not in json.loads(r.body)


def test_a_valid_item_still_reaches_the_handler(host: Host) -> None:
    r = host.post("/items", {"name": "Widget", "price": 9.5})
    assert r.status == 200, r.body
    assert r.json() == {"name": "Widget", "price": 9.5}
