"""Model semantics follow the model's library, through the real host and
plugin (examples/models_app.py).

pydantic bodies are decoded laxly, as FastAPI decodes them (the host checks a
widened schema, pydantic has the last word); msgspec Structs, dataclasses and
TypedDicts are decoded by msgspec. Whatever the host lets through the decoder
takes or refuses with a 422 like the host's: ``errors`` at leaf locations.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import msgspec
import pydantic
import pytest
from examples.models_app import Product

from conftest import Host, HttpResponse, host_fixture, problem

pytestmark = pytest.mark.e2e

host = host_fixture("examples.models_app:app")


def created(response: HttpResponse) -> dict[str, Any]:
    assert response.status == 201, (response.status, response.body)
    return response.json()


def refused(response: HttpResponse) -> list[tuple[str, tuple[Any, ...]]]:
    """The (type, loc) of each error of a 422, which must list them."""
    body = problem(response, 422)
    assert body["type"] == "https://spikard.dev/errors/validation-error"
    assert body["title"] == "Request Validation Failed"
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) <= {"type", "loc", "msg", "input", "ctx"} and {"type", "loc", "msg", "input"} <= set(error)
    assert (
        body["detail"] == f"{len(body['errors'])} validation error{'s' if len(body['errors']) > 1 else ''} in request"
    )
    return [(e["type"], tuple(e["loc"])) for e in body["errors"]]


# -- pydantic: lax, like FastAPI -------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "sent", "decoded", "type_name"),
    [
        ("quantity", "5", 5, "int"),
        ("quantity", 5.0, 5, "int"),
        ("quantity", " 7 ", 7, "int"),
        ("quantity", True, 1, "int"),
        ("price", "9.5", 9.5, "float"),
        ("price", 3, 3.0, "float"),
        ("active", "true", True, "bool"),
        ("active", "no", False, "bool"),
        ("active", 1, True, "bool"),
        ("active", 0, False, "bool"),
        ("released", "2024-03-01", "2024-03-01 00:00:00", "datetime"),
        ("released", 1700000000, "2023-11-14 22:13:20+00:00", "datetime"),
        ("released", "2024-03-01T10:00:00", "2024-03-01 10:00:00", "datetime"),
        ("made", "2024-03-01T00:00:00", "2024-03-01", "date"),
        ("made", 1704067200, "2024-01-01", "date"),
        ("ref", "{12345678-1234-5678-1234-567812345678}", "12345678-1234-5678-1234-567812345678", "UUID"),
        ("tags", ["a", "a", "b"], ["a", "b"], "set"),
    ],
)
def test_pydantic_takes_what_pydantic_takes(host: Host, field: str, sent: Any, decoded: Any, type_name: str) -> None:
    body = {"name": "pen", "quantity": 1, field: sent}
    out = created(host.post("/pydantic", body))
    assert out[field] == {"value": decoded, "type": type_name}


def test_pydantic_refusals_are_pydantics(host: Host) -> None:
    assert refused(host.post("/pydantic", {"name": "pen", "quantity": "five"})) == [
        ("int_parsing", ("body", "quantity"))
    ]
    assert refused(host.post("/pydantic", {"name": "pen", "quantity": 5.5})) == [
        ("int_from_float", ("body", "quantity"))
    ]
    assert refused(host.post("/pydantic", {"name": "pen", "quantity": 1, "active": "maybe"})) == [
        ("bool_parsing", ("body", "active"))
    ]
    assert refused(host.post("/pydantic", {"name": "pen", "quantity": 1, "released": "soon"})) == [
        ("datetime_from_date_parsing", ("body", "released"))
    ]
    assert refused(host.post("/pydantic", {"name": "pen", "quantity": 1, "made": "2024-03-01T10:00:00"})) == [
        ("date_from_datetime_inexact", ("body", "made"))
    ]
    # A constraint the host still checks (a JSON number) and one only pydantic can (a string).
    assert refused(host.post("/pydantic", {"name": "pen", "quantity": -1})) == [
        ("greater_than_equal", ("body", "quantity"))
    ]
    r = host.post("/pydantic", {"name": "pen", "quantity": "-1"})
    body = problem(r, 422)
    assert body["errors"] == [
        {
            "type": "greater_than_equal",
            "loc": ["body", "quantity"],
            "msg": "Input should be greater than or equal to 0",
            "input": "-1",
            "ctx": {"ge": 0},
        }
    ]
    assert refused(host.post("/pydantic", {"quantity": 1})) == [("missing", ("body", "name"))]


def test_pydantic_optional_model_errors_are_at_the_leaf(host: Host) -> None:
    # The host's own check (a missing field of the optional model) ...
    assert refused(host.post("/pydantic", {"name": "pen", "quantity": 1, "supplier": {}})) == [
        ("missing", ("body", "supplier", "name"))
    ]
    # ... and pydantic's (a constraint on a lax-typed value).
    assert refused(host.post("/pydantic", {"name": "pen", "quantity": 1, "supplier": {"name": "a"}})) == [
        ("string_too_short", ("body", "supplier", "name"))
    ]
    assert refused(host.post("/pydantic", {"name": "pen", "quantity": 1, "supplier": {"name": 7}})) == [
        ("string_type", ("body", "supplier", "name"))
    ]
    out = created(host.post("/pydantic", {"name": "pen", "quantity": 1, "supplier": None}))
    assert out["supplier"] == {"value": None, "type": "NoneType"}


def test_pydantic_form_bodies_are_lax_too(host: Host) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = host.request("POST", "/pydantic", b"name=pen&quantity=5&active=yes&released=2024-01-01&tags=a&tags=a", form)
    out = created(r)
    assert out["active"] == {"value": True, "type": "bool"}
    assert out["released"] == {"value": "2024-01-01 00:00:00", "type": "datetime"}
    assert out["tags"] == {"value": ["a"], "type": "set"}
    r = host.request("POST", "/pydantic", b"name=pen&quantity=-1", form)
    assert refused(r) == [("greater_than_equal", ("body", "quantity"))]


def test_pydantic_list_bodies(host: Host) -> None:
    assert created(host.post("/pydantic/list", [{"name": "a", "quantity": "2"}, {"name": "b", "quantity": 3.0}])) == {
        "count": 2,
        "quantities": [2, 3],
    }
    assert refused(host.post("/pydantic/list", [{"name": "a", "quantity": 1}, {"name": "b", "quantity": "x"}])) == [
        ("int_parsing", ("body", 1, "quantity"))
    ]


# -- msgspec: Struct, dataclass, TypedDict ----------------------------------------------


def test_struct_decodes_as_msgspec(host: Host) -> None:
    out = created(host.post("/struct", {"name": "pen", "quantity": 5.0, "released": "2024-03-01T10:00:00Z"}))
    assert out["quantity"] == {"value": 5, "type": "int"}
    assert out["released"] == {"value": "2024-03-01 10:00:00+00:00", "type": "datetime"}
    assert refused(host.post("/struct", {"name": "pen", "quantity": 1, "released": "not a date"})) == [
        ("datetime_parsing", ("body", "released"))
    ]
    assert refused(host.post("/struct", {"name": "pen", "quantity": 1, "supplier": {"name": "a"}})) == [
        ("string_too_short", ("body", "supplier", "name"))
    ]
    assert refused(host.post("/struct", {"name": "pen", "quantity": 1, "supplier": {"country": "x"}})) == [
        ("missing", ("body", "supplier", "name"))
    ]
    assert refused(host.post("/struct", {"name": "pen", "quantity": 1.5})) == [("int_from_float", ("body", "quantity"))]
    assert refused(host.post("/struct", {"name": "pen", "quantity": -2})) == [
        ("greater_than_equal", ("body", "quantity"))
    ]
    # What msgspec's schema says less about than its decoder takes: a Decimal from a JSON
    # number, a set with duplicates.
    out = created(host.post("/struct", {"name": "pen", "quantity": 1, "cost": 2.5, "labels": ["a", "a"]}))
    assert out["cost"] == {"value": "2.5", "type": "Decimal"}
    assert out["labels"] == {"value": ["a"], "type": "set"}
    assert refused(host.post("/struct", {"name": "pen", "quantity": 1, "cost": "cheap"})) == [
        ("decimal_parsing", ("body", "cost"))
    ]


def test_dataclass_decodes_as_msgspec(host: Host) -> None:
    out = created(host.post("/dataclass", {"name": "pen", "quantity": 5.0}))
    assert out["quantity"] == {"value": 5, "type": "int"}
    assert refused(host.post("/dataclass", {"name": "pen", "quantity": 1, "released": "2024-99-01T00:00:00"})) == [
        ("datetime_parsing", ("body", "released"))
    ]
    assert refused(host.post("/dataclass", {"name": "pen", "quantity": 1, "supplier": {"name": 3}})) == [
        ("string_type", ("body", "supplier", "name"))
    ]
    assert refused(host.post("/dataclass", {"name": "pen", "quantity": "many"})) == [
        ("int_parsing", ("body", "quantity"))
    ]


def test_typeddict_decodes_as_msgspec(host: Host) -> None:
    out = created(host.post("/typeddict", {"name": "pen", "quantity": 2.0, "supplier": {"name": "s"}}))
    assert out["quantity"] == {"value": 2, "type": "int"}
    assert refused(host.post("/typeddict", {"name": "pen", "released": "yesterday"})) == [
        ("datetime_parsing", ("body", "released"))
    ]
    assert refused(host.post("/typeddict", {"name": "pen", "supplier": {}})) == [
        ("missing", ("body", "supplier", "name"))
    ]


def test_embedded_members_are_located_under_their_key(host: Host) -> None:
    ok = {"product": {"name": "p", "quantity": "3"}, "item": {"name": "i", "quantity": 4.0}}
    assert created(host.post("/embedded", ok)) == {"product": 3, "item": 4, "note": "none"}
    bad = {"product": {"name": "p", "quantity": "x"}, "item": {"name": "i", "quantity": 1}}
    assert refused(host.post("/embedded", bad)) == [("int_parsing", ("body", "product", "quantity"))]
    bad = {"product": {"name": "p", "quantity": 1}, "item": {"name": "i", "quantity": 1, "released": "?"}}
    assert refused(host.post("/embedded", bad)) == [("datetime_parsing", ("body", "item", "released"))]


def test_handlers_raise_request_validation_error(host: Host) -> None:
    assert host.get("/check?start=1&end=3").json() == {"span": 2}
    r = host.get("/check?start=5&end=3")
    body = problem(r, 422)
    assert body["errors"] == [
        {
            "type": "value_error",
            "loc": ["query", "end"],
            "msg": "Value error, end must not precede start",
            "input": 3,
            "ctx": {"start": 5},
        }
    ]
    assert body["detail"] == "1 validation error in request"


def test_parameter_conversion_refusals_list_errors(host: Host) -> None:
    # The host's duration check takes what the decoders take (a sign, a fraction) ...
    assert host.get("/wait?delay=PT1.5S").json() == {"seconds": 1.5}
    assert host.get("/wait?delay=-P1DT2H").json() == {"seconds": -93600.0}
    # ... and msgspec's refusal of what it does not (years) is a 422 like the host's.
    body = problem(host.get("/wait?delay=P1Y"), 422)
    assert body["errors"] == [
        {
            "type": "time_delta_parsing",
            "loc": ["query", "delay"],
            "msg": "Input should be a valid timedelta, invalid duration format",
            "input": "P1Y",
        }
    ]
    assert [e["loc"] for e in problem(host.get("/wait?delay=soon"), 422)["errors"]] == [["query", "delay"]]


# -- differential: the host and pydantic agree on what a pydantic body is ---------------

_POOLS: dict[str, list[Any]] = {
    "name": ["pen", "", 3, None, ["x"]],
    "quantity": [0, 7, -1, 5.0, 5.5, "5", " 6 ", "5.0", "-3", "1e3", "x", "", True, None, [1], {"a": 1}, 10**20],
    "price": [1.5, 2, "9.5", "inf", "abc", True, None, "1_000"],
    "active": [True, False, 0, 1, 2, 0.0, "yes", "off", "t", "maybe", "", None, "1.0"],
    "released": [
        "2024-03-01T10:00:00Z",
        "2024-03-01",
        "2024-03-01 10:00",
        1700000000,
        1.5e9,
        "1700000000",
        "2024-13-01",
        "now",
        True,
        None,
    ],
    "made": ["2024-03-01", "2024-03-01T00:00:00", "2024-03-01T01:00:00", 1704067200, 1704067201, "x", None],
    "ref": [
        "12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678",
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "nope",
        5,
        None,
    ],
    "tags": [[], ["a", "a"], ["a", 1], "a", None],
    "supplier": [None, {"name": "ab"}, {"name": "a"}, {}, {"name": "ab", "country": 3}, "s", [], {"name": None}],
}


def _accepted(field: str, value: Any) -> bool:
    try:
        Product.model_validate_json(json.dumps({"name": "pen", "quantity": 1, field: value}))
    except pydantic.ValidationError:
        return False
    return True


def _random_bodies(count: int, seed: int) -> list[dict[str, Any]]:
    """Bodies of values pydantic takes (many only laxly), about half of them
    with one or two values drawn from everything, so both outcomes are common."""
    rng = random.Random(seed)
    valid = {field: [v for v in pool if _accepted(field, v)] for field, pool in _POOLS.items()}
    bodies = []
    for _ in range(count):
        body: dict[str, Any] = {}
        for field in _POOLS:
            if field in ("name", "quantity") or rng.random() < 0.5:
                body[field] = rng.choice(valid[field])
        if rng.random() < 0.5:
            for field in rng.sample(list(_POOLS), rng.choice((1, 2))):
                body[field] = rng.choice(_POOLS[field])
        bodies.append(body)
    return bodies


def test_host_and_pydantic_agree(host: Host) -> None:
    disagreements = []
    outcomes = {201: 0, 422: 0}
    for body in _random_bodies(300, seed=13):
        text = json.dumps(body)
        try:
            Product.model_validate_json(text)
            expected = 201
            expected_locs: set[tuple[Any, ...]] = set()
        except pydantic.ValidationError as exc:
            expected = 422
            expected_locs = {("body", *e["loc"]) for e in exc.errors()}
        r = host.request("POST", "/pydantic", text, {"content-type": "application/json"})
        outcomes[expected] += 1
        if r.status != expected:
            disagreements.append((body, expected, r.status, r.body[:300]))
            continue
        if r.status == 422:
            locs = {loc for _, loc in refused(r)}
            # The host's own refusals (structure, constraints on JSON numbers) name a subset of
            # pydantic's leaves; pydantic's refusals are pydantic's.
            if not locs <= expected_locs:
                disagreements.append((body, sorted(expected_locs), sorted(locs), r.body[:300]))
    assert not disagreements, disagreements[:5]
    assert min(outcomes.values()) >= 60, outcomes  # both outcomes well represented


# -- property: every leaf type, random values -------------------------------------------

_WIDE_FIELDS = ("i", "f", "b", "s", "dt", "d", "t", "td", "u", "dec", "lit", "level", "ints", "counts", "supplier")


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of the shapes lax decoders care about: numbers as numbers
    and as text, boolean words, dates, times, durations, UUIDs in every
    spelling, containers, junk."""
    n = rng.randint(-3, 2_000_000_000)
    day = f"{rng.randint(1960, 2100):04d}-{rng.randint(1, 13):02d}-{rng.randint(1, 31):02d}"
    clock = f"{rng.randint(0, 24):02d}:{rng.randint(0, 60):02d}"
    u = uuid.UUID(int=rng.getrandbits(128))
    choices: list[Any] = [
        n,
        -n,
        n + 0.0,
        n + 0.5,
        rng.random() * 10,
        10 ** rng.randint(15, 25),
        str(n),
        f" {n} ",
        f"{n}.0",
        f"{n}.5",
        "1_000",
        "1e3",
        "+7",
        "0x1f",
        "",
        "  ",
        True,
        False,
        None,
        "true",
        "False",
        "yes",
        "off",
        "t",
        "N",
        "on",
        "1",
        "0",
        "maybe",
        day,
        f"{day}T{clock}:00",
        f"{day}T{clock}:00Z",
        f"{day} {clock}",
        f"{day}t{clock}:00.123+02:00",
        f"{day}T{clock}",
        clock,
        f"{clock}:30.5",
        f"{clock}:00+01:00",
        "P1D",
        "PT5M",
        "-P1DT2H",
        "P1W",
        "PT1.5S",
        "1 day",
        str(u),
        u.hex,
        "{" + str(u) + "}",
        "urn:uuid:" + str(u),
        str(u).upper(),
        str(u)[:-1] + "g",
        "1.5",
        "-0.25",
        "nan",
        "inf",
        "abc",
        "a",
        "b",
        "c",
        "abcdef",
    ]
    if depth < 2:
        choices += [
            [rng.choice([1, "2", 3.0, "x", None, True]) for _ in range(rng.randint(0, 3))],
            {rng.choice(["k", "name", "country"]): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 2))},
            {"name": rng.choice(["ab", "a", 3, None]), "country": rng.choice([None, "x", 1])},
        ]
    return rng.choice(choices)


def _wide_bodies(count: int, seed: int, takes: Any) -> list[dict[str, Any]]:
    """Bodies of one to three fields; half of the values are drawn from those
    the reference decoder takes for that field alone (``takes(field, value)``),
    so acceptance, the interesting side, is common."""
    rng = random.Random(seed)
    pools: dict[str, list[Any]] = {field: [] for field in _WIDE_FIELDS}
    for _ in range(3000):
        field, value = rng.choice(_WIDE_FIELDS), _random_value(rng)
        if takes(field, value):
            pools[field].append(value)
    bodies = []
    for _ in range(count):
        body = {}
        for field in rng.sample(_WIDE_FIELDS, rng.randint(1, 3)):
            pool = pools[field]
            body[field] = rng.choice(pool) if pool and rng.random() < 0.6 else _random_value(rng)
        bodies.append(body)
    return bodies


def _takes(decode: Any, error: type[Exception]) -> Any:
    def takes(field: str, value: Any) -> bool:
        try:
            decode(json.dumps({field: value}))
        except error:
            return False
        return True

    return takes


def test_host_never_refuses_what_pydantic_takes(host: Host) -> None:
    from examples.models_app import Wide

    outcomes = {201: 0, 422: 0}
    disagreements = []
    for body in _wide_bodies(600, 2026, _takes(Wide.model_validate_json, pydantic.ValidationError)):
        text = json.dumps(body)
        try:
            Wide.model_validate_json(text)
            expected, expected_locs = 201, set()
        except pydantic.ValidationError as exc:
            expected, expected_locs = 422, {("body", *e["loc"]) for e in exc.errors()}
        outcomes[expected] += 1
        r = host.request("POST", "/pydantic/wide", text, {"content-type": "application/json"})
        if r.status != expected:
            disagreements.append((body, expected, r.status, r.body[:300]))
        elif r.status == 422 and not {loc for _, loc in refused(r)} <= expected_locs:
            disagreements.append((body, sorted(expected_locs), r.body[:300]))
    assert not disagreements, disagreements[:5]
    assert min(outcomes.values()) >= 100, outcomes


def test_host_never_refuses_what_msgspec_takes(host: Host) -> None:
    from examples.models_app import StructWide

    strict = msgspec.json.Decoder(StructWide)
    outcomes = {201: 0, 422: 0}
    disagreements = []
    for body in _wide_bodies(600, 7, _takes(strict.decode, msgspec.ValidationError)):
        text = json.dumps(body)
        try:
            strict.decode(text)
            takes = True
        except msgspec.ValidationError:
            takes = False
        r = host.request("POST", "/struct/wide", text, {"content-type": "application/json"})
        outcomes[r.status] = outcomes.get(r.status, 0) + 1
        if r.status == 422:
            refused(r)  # every refusal, the host's or msgspec's, lists its errors
        if (takes and r.status != 201) or r.status not in (201, 422):
            disagreements.append((body, takes, r.status, r.body[:300]))
    assert not disagreements, disagreements[:5]
    assert min(outcomes[201], outcomes[422]) >= 100, outcomes
