"""Unit tests of body decoding errors: pydantic's and msgspec's refusals as
the host's 422 entries, and their rendering (spikard._models,
spikard.exceptions). The end-to-end behaviour is in test_e2e_models.py."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
from typing import Annotated, Any

import msgspec
import pydantic
import pytest

from spikard._models import LAX_KEYWORD, _body_error, _body_schema, _BodyCodec
from spikard._runtime import RESPONSE, failure_of
from spikard.exceptions import MAX_ERRORS, RequestValidationError, validation_problem


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=2, pattern="^[a-z]+$")]
    n: Annotated[int, msgspec.Meta(ge=0)] = 0


class Outer(msgspec.Struct):
    items: list[Inner]
    by_key: dict[str, Inner] = {}
    at: datetime.datetime | None = None
    cost: decimal.Decimal | None = None
    tags: frozenset[str] = frozenset()


def refusal(tp: Any, body: Any, key: str | None = None) -> list[dict[str, Any]]:
    codec = _BodyCodec(tp)
    with pytest.raises(Exception) as info:
        codec.from_json(json.dumps(body).encode())
    return _body_error(codec, info.value, key).errors()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"items": [{"name": 1}]}, ("string_type", ["body", "items", 0, "name"], 1, None)),
        ({"items": [{"name": "ab", "n": "x"}]}, ("int_parsing", ["body", "items", 0, "n"], "x", None)),
        ({"items": [{"name": "ab", "n": 1.5}]}, ("int_from_float", ["body", "items", 0, "n"], 1.5, None)),
        ({"items": [{"name": "a"}]}, ("string_too_short", ["body", "items", 0, "name"], "a", {"min_length": 2})),
        (
            {"items": [{"name": "AB"}]},
            ("string_pattern_mismatch", ["body", "items", 0, "name"], "AB", {"pattern": "^[a-z]+$"}),
        ),
        ({"items": [{"name": "ab", "n": -1}]}, ("greater_than_equal", ["body", "items", 0, "n"], -1, {"ge": 0})),
        ({"items": [{}]}, ("missing", ["body", "items", 0, "name"], {}, None)),
        ({"items": [{"name": "ab", "zz": 3}]}, ("extra_forbidden", ["body", "items", 0, "zz"], 3, None)),
        ({}, ("missing", ["body", "items"], {}, None)),
        ({"items": {}}, ("list_type", ["body", "items"], {}, None)),
        ({"items": [], "at": "noon"}, ("datetime_parsing", ["body", "at"], "noon", None)),
        ({"items": [], "cost": "cheap"}, ("decimal_parsing", ["body", "cost"], "cheap", None)),
        # msgspec does not name dict keys (`$.by_key[...]`): the location stops at the dict.
        ({"items": [], "by_key": {"k": {"name": 5}}}, ("string_type", ["body", "by_key"], {"k": {"name": 5}}, None)),
    ],
)
def test_msgspec_refusals_become_leaf_entries(body: Any, expected: tuple[Any, ...]) -> None:
    errors = refusal(Outer, body)
    assert len(errors) == 1
    entry = errors[0]
    assert (entry["type"], entry["loc"], entry["input"], entry.get("ctx")) == expected
    assert entry["msg"]


def test_msgspec_decodes_what_the_host_lets_through() -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: float

    codec = _BodyCodec(Point)
    assert codec.from_json(b'{"x": 5.0, "y": 2}') == Point(5, 2.0)
    assert codec.from_python({"x": "5", "y": "2.5"}) == Point(5, 2.5)
    assert _BodyCodec(Outer).from_json(b'{"items": [], "cost": 1.5, "tags": ["a", "a"]}').cost == decimal.Decimal("1.5")
    schema = _body_schema(Outer)
    assert schema["properties"]["cost"]["anyOf"][0] == {"type": ["string", "number"], "format": "decimal"}
    assert "uniqueItems" not in schema["properties"]["tags"]
    assert LAX_KEYWORD not in schema


def test_embedded_members_are_prefixed_with_their_key() -> None:
    errors = refusal(Outer, {"items": [{"name": 3}]}, key="outer")
    assert errors[0]["loc"] == ["body", "outer", "items", 0, "name"]


class Model(pydantic.BaseModel):
    qty: int = pydantic.Field(gt=0)
    when: datetime.date | None = None


def test_pydantic_errors_are_fastapis() -> None:
    errors = refusal(Model, {"qty": "0", "when": "later"})
    assert errors == [
        {
            "type": "greater_than",
            "loc": ["body", "qty"],
            "msg": "Input should be greater than 0",
            "input": "0",
            "ctx": {"gt": 0},
        },
        {
            "type": "date_from_datetime_parsing",
            "loc": ["body", "when"],
            "msg": "Input should be a valid date or datetime, input is too short",
            "input": "later",
            "ctx": {"error": "input is too short"},
        },
    ]
    assert _body_schema(Model)[LAX_KEYWORD] == "pydantic"
    assert refusal(list[Model], [{"qty": 1}, {}], key="m")[0]["loc"] == ["body", "m", 1, "qty"]


def test_pydantic_ctx_values_are_json() -> None:
    class Checked(pydantic.BaseModel):
        n: int

        @pydantic.field_validator("n")
        @classmethod
        def even(cls, value: int) -> int:
            if value % 2:
                raise ValueError("n must be even")
            return value

    (entry,) = refusal(Checked, {"n": 3})
    assert entry["type"] == "value_error"
    assert entry["ctx"] == {"error": "n must be even"}
    json.dumps(entry)


def test_rendering_matches_the_hosts_problem() -> None:
    exc = RequestValidationError([{"type": "missing", "loc": ("body", "a"), "msg": "Field required", "input": {}}])
    kind, status, headers, body = failure_of(exc, None, "rid-1")
    assert (kind, status, headers) == (RESPONSE, 422, [("content-type", "application/problem+json")])
    assert json.loads(body) == {
        "type": "https://spikard.dev/errors/validation-error",
        "title": "Request Validation Failed",
        "status": 422,
        "detail": "1 validation error in request",
        "request_id": "rid-1",
        "errors": [{"type": "missing", "loc": ["body", "a"], "msg": "Field required", "input": {}}],
    }


def test_rendering_is_bounded_like_the_hosts() -> None:
    many = [{"type": "t", "loc": ["body", "k" * 1000, i], "msg": "m", "input": "x" * 5000} for i in range(250)]
    rendered = json.loads(validation_problem(RequestValidationError(many), "r"))
    assert len(rendered["errors"]) == MAX_ERRORS
    assert rendered["errors_omitted"] == 150
    assert rendered["detail"] == f"250 validation errors in request; the first {MAX_ERRORS} are listed"
    first = rendered["errors"][0]
    assert first["input"] == "x" * 1024 + "…"
    assert first["loc"][1] == "k" * 256 + "…"
    big = {"items": list(range(2000))}
    entry = json.loads(validation_problem(RequestValidationError([{"type": "t", "loc": ["body"], "input": big}])))
    preview = entry["errors"][0]["input"]
    assert isinstance(preview, str) and preview.endswith("…") and len(preview.encode()) <= 2048 + 3
