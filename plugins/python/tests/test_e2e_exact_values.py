"""Integers of any size arrive in Python handlers as ``int`` — from the path,
the query, headers, cookies, JSON bodies (msgspec Struct, dataclass, pydantic
model) and urlencoded forms — and floats keep their values, through the real
host and plugin (examples/exact_app.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import Host, host_fixture, problem

pytestmark = pytest.mark.e2e

host = host_fixture("examples.exact_app:app")

BIG = 99999999999999999999999  # past u64: once 1e+23 in Python


def arrived(response: Any) -> dict[str, Any]:
    assert response.status == 200, response.body
    return response.json()


def test_big_integers_from_every_parameter_source(host: Host) -> None:
    r = host.get(
        f"/int/{BIG}?threshold=-{BIG}&ratio=1.5&ids=1&ids={BIG * 10}",
        headers={"x-n": str(BIG + 1), "cookie": f"c={BIG + 2}"},
    )
    got = arrived(r)
    assert got["n"] == {"value": BIG, "type": "int"}
    assert got["threshold"] == {"value": -BIG, "type": "int"}
    assert got["x_n"] == {"value": BIG + 1, "type": "int"}
    assert got["c"] == {"value": BIG + 2, "type": "int"}
    assert got["ids"] == {"value": [1, BIG * 10], "type": "list"}
    assert got["ratio"] == {"value": 1.5, "type": "float"}
    assert b"e+23" not in r.body


def test_huge_but_allowed_integer(host: Host) -> None:
    n = int("7" * 4300)  # CPython's default limit for int(str)
    got = arrived(host.get(f"/int/{n}"))
    assert got["n"] == {"value": n, "type": "int"}
    body = problem(host.get(f"/int/{n}7"), 422)
    assert [(e["type"], e["loc"]) for e in body["errors"]] == [("int_parsing_size", ["path", "n"])]


def test_bound_on_a_big_integer_is_exact(host: Host) -> None:
    bound = 10**23
    assert arrived(host.get(f"/bounded?q={bound}"))["q"] == {"value": bound, "type": "int"}
    body = problem(host.get(f"/bounded?q={bound + 1}"), 422)
    [error] = body["errors"]
    assert error["type"] == "less_than_equal"
    assert error["loc"] == ["query", "q"]
    assert error["ctx"] == {"le": bound}
    assert error["msg"] == f"Input should be less than or equal to {bound}"


@pytest.mark.parametrize("path", ["/struct", "/dataclass", "/pydantic"])
def test_json_bodies(host: Host, path: str) -> None:
    raw = f'{{"n": {BIG}, "f": 1.5}}'
    got = arrived(host.post(path, raw, headers={"content-type": "application/json"}))
    assert got["n"] == {"value": BIG, "type": "int"}
    assert got["f"] == {"value": 1.5, "type": "float"}
    raw = '{"n": -1, "f": 1e300}'
    got = arrived(host.post(path, raw, headers={"content-type": "application/json"}))
    assert got["f"] == {"value": 1e300, "type": "float"}


def test_struct_list_items_and_urlencoded_form(host: Host) -> None:
    raw = json.dumps({"n": BIG, "items": [BIG, -BIG]})
    got = arrived(host.post("/struct", raw, headers={"content-type": "application/json"}))
    assert got["items"] == {"value": [BIG, -BIG], "type": "list"}
    form = f"n={BIG}&f=0.5&items={BIG}&items=2"
    got = arrived(host.post("/struct", form, headers={"content-type": "application/x-www-form-urlencoded"}))
    assert got["n"] == {"value": BIG, "type": "int"}
    assert got["f"] == {"value": 0.5, "type": "float"}
    assert got["items"] == {"value": [BIG, 2], "type": "list"}


def test_request_object_params_and_json(host: Host) -> None:
    got = arrived(host.post(f"/request/{BIG}", f'{{"n": {-BIG}}}', headers={"content-type": "application/json"}))
    assert got == {"path": {"value": BIG, "type": "int"}, "body": {"value": -BIG, "type": "int"}}


def test_pydantic_bound_is_checked_by_the_host(host: Host) -> None:
    raw = f'{{"n": {10**30 + 1}}}'
    body = problem(host.post("/pydantic", raw, headers={"content-type": "application/json"}), 422)
    [error] = body["errors"]
    assert (error["type"], error["loc"], error["ctx"]) == ("less_than_equal", ["body", "n"], {"le": 10**30})


def test_undecodable_bytes_never_reach_the_handler(host: Host) -> None:
    body = problem(host.get("/text/caf%E9?q=%ff"), 422)
    assert [(e["type"], e["loc"]) for e in body["errors"]] == [
        ("string_unicode", ["path", "name"]),
        ("string_unicode", ["query", "q"]),
    ]
    assert arrived(host.get("/text/caf%C3%A9?q=%E2%82%AC"))["name"] == {"value": "café", "type": "str"}
