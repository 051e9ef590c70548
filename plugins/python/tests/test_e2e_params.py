"""Every parameter kind and its validation errors, through the real host and
plugin (examples/params_app.py)."""

from __future__ import annotations

import uuid

import pytest

from conftest import Host, error_locs, host_fixture, problem

pytestmark = pytest.mark.e2e

host = host_fixture("examples.params_app:app")


def errors_of(response, status: int = 422) -> list[dict]:  # type: ignore[no-untyped-def]
    body = problem(response, status)
    assert body["type"] == "https://spikard.dev/errors/validation-error"
    return body["errors"]


# -- path ---------------------------------------------------------------------------


def test_path_int(host: Host) -> None:
    r = host.get("/path/int/42")
    assert r.status == 200, r.body
    assert r.json() == {"value": 42, "type": "int"}
    errors = errors_of(host.get("/path/int/abc"))
    assert [(e["type"], e["loc"]) for e in errors] == [("int_parsing", ["path", "n"])]
    errors = errors_of(host.get("/path/int/0"))
    assert errors[0]["type"] == "greater_than" and errors[0]["loc"] == ["path", "n"]


def test_path_uuid(host: Host) -> None:
    u = uuid.uuid4()
    r = host.get(f"/path/uuid/{u}")
    assert r.json() == {"value": str(u), "type": "UUID"}
    r = host.get(f"/path/uuid/{u.hex}")  # the simple form is a UUID too
    assert r.json() == {"value": str(u), "type": "UUID"}
    assert error_locs(problem(host.get("/path/uuid/not-a-uuid"), 422)) == [["path", "u"]]


def test_path_enum(host: Host) -> None:
    assert host.get("/path/enum/green").json() == {"value": "green", "type": "Color", "name": "GREEN"}
    errors = errors_of(host.get("/path/enum/purple"))
    assert errors[0]["type"] == "enum" and errors[0]["loc"] == ["path", "color"]


def test_path_date(host: Host) -> None:
    assert host.get("/path/date/2024-02-29").json() == {"value": "2024-02-29", "type": "date", "weekday": 4}
    assert error_locs(problem(host.get("/path/date/2024-13-01"), 422)) == [["path", "day"]]


def test_path_literal(host: Host) -> None:
    assert host.get("/path/literal/fast").json() == {"value": "fast", "type": "str"}
    assert errors_of(host.get("/path/literal/medium"))[0]["type"] == "enum"


# -- query ---------------------------------------------------------------------------


def test_query_defaults(host: Host) -> None:
    r = host.get("/query")
    assert r.status == 200, r.body
    assert r.json() == {
        "limit": 10,
        "q": None,
        "item_query": "none",
        "ids": [],
        "price": None,
        "price_type": "NoneType",
        "flag": False,
        "when": None,
        "when_type": "NoneType",
        "color": "RED",
    }


def test_query_values_are_coerced_and_converted(host: Host) -> None:
    r = host.get(
        "/query?limit=5&q=abcd&item-query=found&ids=1&ids=2&ids=3&price=3&flag=true"
        "&when=2024-01-02T03:04:05Z&color=green"
    )
    assert r.status == 200, r.body
    body = r.json()
    assert body["limit"] == 5
    assert body["q"] == "abcd"
    assert body["item_query"] == "found"
    assert body["ids"] == [1, 2, 3]
    assert body["price"] == 3.0 and body["price_type"] == "float"
    assert body["flag"] is True
    assert body["when"] == "2024-01-02T03:04:05+00:00" and body["when_type"] == "datetime"
    assert body["color"] == "GREEN"


def test_query_errors_all_at_once(host: Host) -> None:
    errors = errors_of(host.get("/query?limit=x&q=ab&ids=1&ids=y&color=blue"))
    by_loc = {tuple(e["loc"]): e for e in errors}
    assert by_loc[("query", "limit")]["type"] == "int_parsing"
    assert by_loc[("query", "q")]["type"] == "string_too_short"
    assert by_loc[("query", "q")]["ctx"] == {"min_length": 3}
    assert by_loc[("query", "ids", 1)]["type"] == "int_parsing"
    assert by_loc[("query", "color")]["type"] == "enum"


def test_query_alias_is_the_only_name(host: Host) -> None:
    # The alias is what clients send; the Python name is just extra query.
    assert host.get("/query?item_query=ignored").json()["item_query"] == "none"


def test_required_query(host: Host) -> None:
    errors = errors_of(host.get("/query/required"))
    assert sorted(tuple(e["loc"]) for e in errors) == [("query", "page"), ("query", "tag")]
    assert all(e["type"] == "missing" for e in errors)
    assert errors_of(host.get("/query/required?page=101&tag=a"))[0]["type"] == "less_than_equal"
    assert host.get("/query/required?page=3&tag=a&tag=b").json() == {"page": 3, "tag": ["a", "b"]}


# -- headers and cookies ----------------------------------------------------------------


def test_header_alias(host: Host) -> None:
    r = host.get(
        "/headers", headers={"X-Token": "secret", "x-count": "3", "User-Agent": "tests/1", "X-Trace-Id": "t-9"}
    )
    assert r.status == 200, r.body
    assert r.json() == {"x_token": "secret", "x_count": 3, "user_agent": "tests/1", "trace": "t-9"}


def test_header_missing_and_invalid(host: Host) -> None:
    errors = errors_of(host.get("/headers", headers={"x-count": "many"}))
    by_loc = {tuple(e["loc"]): e["type"] for e in errors}
    assert by_loc == {("headers", "x-token"): "missing", ("headers", "x-count"): "int_parsing"}


def test_header_default(host: Host) -> None:
    body = host.get("/headers", headers={"x-token": "t"}).json()
    assert body["x_count"] == 1 and body["trace"] is None


def test_cookies(host: Host) -> None:
    r = host.get("/cookies", headers={"Cookie": "session=abc; visits=4; other=x"})
    assert r.json() == {"session": "abc", "theme": "light", "visits": 4}
    errors = errors_of(host.get("/cookies", headers={"Cookie": "visits=lots"}))
    assert sorted((tuple(e["loc"]), e["type"]) for e in errors) == [
        (("cookie", "session"), "missing"),
        (("cookie", "visits"), "int_parsing"),
    ]


# -- bodies ---------------------------------------------------------------------------------


def test_body_struct(host: Host) -> None:
    r = host.post("/body/struct", {"name": "pen", "price": 1.5})
    assert r.status == 200, r.body
    assert r.json() == {"type": "Item", "item": {"name": "pen", "price": 1.5, "tags": []}}
    errors = errors_of(host.post("/body/struct", {"name": "pen"}))
    assert [(e["type"], e["loc"]) for e in errors] == [("missing", ["body", "price"])]
    errors = errors_of(host.post("/body/struct", {"name": "pen", "price": -1}))
    assert [(e["type"], e["loc"]) for e in errors] == [("greater_than", ["body", "price"])]


def test_body_struct_from_form(host: Host) -> None:
    r = host.request(
        "POST",
        "/body/struct",
        b"name=pen&price=2.5&tags=a&tags=b",
        {"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 200, r.body
    assert r.json() == {"type": "Item", "item": {"name": "pen", "price": 2.5, "tags": ["a", "b"]}}


def test_body_missing(host: Host) -> None:
    errors = errors_of(host.request("POST", "/body/struct"))
    assert [(e["type"], e["loc"]) for e in errors] == [("missing", ["body"])]


def test_body_malformed_json(host: Host) -> None:
    r = host.request("POST", "/body/struct", b"{not json", {"content-type": "application/json"})
    problem(r, 400)


def test_body_dataclass(host: Host) -> None:
    assert host.post("/body/dataclass", {"x": 2, "y": 3}).json() == {"type": "Point", "sum": 5}
    errors = errors_of(host.post("/body/dataclass", {"x": "two", "y": 3}))
    assert errors[0]["loc"] == ["body", "x"]


def test_body_typeddict(host: Host) -> None:
    movie = {"title": "Heat", "year": 1995}
    assert host.post("/body/typeddict", movie).json() == {"type": "dict", "movie": movie}
    assert errors_of(host.post("/body/typeddict", {"title": "Heat"}))[0]["loc"] == ["body", "year"]


def test_body_pydantic(host: Host) -> None:
    assert host.post("/body/pydantic", {"name": "ann", "age": 7}).json() == {
        "type": "User",
        "user": {"name": "ann", "age": 7},
    }
    errors = errors_of(host.post("/body/pydantic", {"name": "", "age": -1}))
    assert sorted((tuple(e["loc"]), e["type"]) for e in errors) == [
        (("body", "age"), "greater_than_equal"),
        (("body", "name"), "string_too_short"),
    ]


def test_body_dict(host: Host) -> None:
    assert host.post("/body/dict", {"a": 1, "b": 2}).json() == {"type": "dict", "total": 3}
    assert errors_of(host.post("/body/dict", {"a": "x"}))[0]["loc"] == ["body", "a"]


def test_body_list_of_structs(host: Host) -> None:
    r = host.post("/body/list", [{"name": "a", "price": 1}, {"name": "b", "price": 2}])
    assert r.json() == {"names": ["a", "b"], "types": ["Item"]}
    assert errors_of(host.post("/body/list", [{"name": "a"}]))[0]["loc"] == ["body", 0, "price"]


def test_body_embedded(host: Host) -> None:
    r = host.post("/body/embedded", {"item": {"name": "i", "price": 1}, "user": {"name": "u", "age": 1}})
    assert r.json() == {"item": "i", "user": "u", "note": "none", "types": ["Item", "User"]}
    errors = errors_of(host.post("/body/embedded", {"item": {"name": "i", "price": 1}}))
    assert [e["loc"] for e in errors] == [["body", "user"]]


def test_body_raw_bytes(host: Host) -> None:
    r = host.request("PUT", "/body/raw", b"\x00\x01\x02 anything", {"content-type": "application/octet-stream"})
    assert r.json() == {"length": 12, "type": "bytes"}


def test_path_query_and_body_together(host: Host) -> None:
    r = host.request("PUT", "/items/7?dry_run=yes", {"name": "pen", "price": 1})
    assert r.json() == {"id": 7, "name": "pen", "dry_run": True}


# -- Request ------------------------------------------------------------------------------------


def test_request_object(host: Host) -> None:
    r = host.request("POST", "/request/k1?extra=1", b"raw text", {"x-foo": "bar", "content-type": "text/plain"})
    assert r.status == 200, r.body
    body = r.json()
    assert body["key"] == "k1"
    assert body["x_foo"] == "bar"
    assert body["params"]["path"] == {"key": "k1"}
    assert body["params"]["query"] == {"extra": "1"}
    assert body["body"] == "raw text"
    assert body["request_id"] == r.headers["x-request-id"]
