"""The bundled example app (examples/app.py), as the README's curl lines use it."""

from __future__ import annotations

import pytest

from conftest import Host, host_fixture, problem

pytestmark = pytest.mark.e2e

host = host_fixture("examples.app:app")


def test_hello(host: Host) -> None:
    r = host.get("/hello")
    assert (r.status, r.content_type, r.json()) == (200, "application/json", {"message": "Hello"})


def test_get_item(host: Host) -> None:
    r = host.get("/items/7?q=hi", headers={"x-token": "t"})
    assert r.json() == {"id": 7, "q": "hi", "token": "t"}


def test_get_item_validation(host: Host) -> None:
    body = problem(host.get("/items/zero"), 422)
    assert sorted(tuple(e["loc"]) for e in body["errors"]) == [("headers", "x-token"), ("path", "item_id")]


def test_get_item_not_found(host: Host) -> None:
    body = problem(host.get("/items/0", headers={"x-token": "t"}), 404)
    assert body["detail"] == "no such item"


def test_create_item(host: Host) -> None:
    r = host.post("/items", {"name": "pen", "price": 1.5})
    assert (r.status, r.json()) == (201, {"name": "pen", "price": 1.5, "tags": []})
    body = problem(host.post("/items", {"name": "pen", "price": "cheap"}), 422)
    assert body["errors"][0]["loc"] == ["body", "price"]
