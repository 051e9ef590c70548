"""Schema generation and parameter plans from type hints (no host)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from typing import Annotated, Any, Literal, Optional, TypedDict

import msgspec
import pydantic
import pytest

from spikard import App, Body, Cookie, Header, Path, Query, Request
from spikard._invoke import RouteError


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Movie(TypedDict):
    title: str
    year: int


class User(pydantic.BaseModel):
    name: str
    age: int = 0


def schema_of(handler: Any, path: str = "/x", method: str = "GET", **options: Any) -> dict[str, Any]:
    app = App()
    app.route(method, path, **options)(handler)
    schema = app.routes[0].schema
    # It must survive the trip to the host as JSON.
    assert json.loads(app.routes[0].plan.schema_json) == schema
    return schema


def plan_of(handler: Any, path: str = "/x", method: str = "GET") -> Any:
    app = App()
    app.route(method, path)(handler)
    return app.routes[0].plan


# -- sources and required ---------------------------------------------------------


def test_no_parameters_no_schema() -> None:
    async def hello() -> dict[str, str]:
        return {}

    assert schema_of(hello) == {}
    plan = plan_of(hello)
    assert plan.is_async and not plan.wants_request
    assert plan.schema_json == "{}"


def test_path_params_by_name_and_types() -> None:
    def h(item_id: int, name: str, u: uuid.UUID, day: datetime.date, at: datetime.datetime, c: Color) -> None: ...

    schema = schema_of(h, "/a/{item_id}/{name}/{u}/{day}/{at}/{c}")
    assert schema == {
        "path": {
            "type": "object",
            "properties": {
                "item_id": {"type": "integer"},
                "name": {"type": "string"},
                "u": {"type": "string", "format": "uuid"},
                "day": {"type": "string", "format": "date"},
                "at": {"type": "string", "format": "date-time"},
                "c": {"type": "string", "enum": ["red", "green"]},
            },
            "required": ["item_id", "name", "u", "day", "at", "c"],
        }
    }


def test_scalar_types() -> None:
    def h(
        a: int,
        b: float,
        c: str,
        d: bool,
        e: Literal["x", "y"],
        f: Level,
        g: decimal.Decimal,
        h: datetime.time,
        i: Literal[1, 2],
        j: Any,
        k,
    ) -> None: ...

    props = schema_of(h)["query"]["properties"]
    assert props["a"] == {"type": "integer"}
    assert props["b"] == {"type": "number"}
    assert props["c"] == {"type": "string"}
    assert props["d"] == {"type": "boolean"}
    assert props["e"] == {"type": "string", "enum": ["x", "y"]}
    assert props["f"] == {"type": "integer", "enum": [1, 2]}
    assert props["g"]["type"] == "string" and "pattern" in props["g"]
    assert props["h"] == {"type": "string", "format": "time"}
    assert props["i"] == {"type": "integer", "enum": [1, 2]}
    assert props["j"] == {}
    assert props["k"] == {}


def test_query_defaults_optional_alias_list() -> None:
    def h(
        limit: int = 10,
        q: str | None = Query(None, min_length=3, max_length=50, pattern="^[a-z]+$"),
        item_query: str = Query("none", alias="item-query", description="what to find"),
        ids: list[int] = Query([]),
        maybe: Optional[int] = None,
        tags: Annotated[list[str], Query(min_length=1)] = ["a"],  # noqa: B006 - a default like FastAPI's
        page: Annotated[int, Query(ge=1, le=100)] = 1,
        ratio: float = Query(0.5, gt=0, lt=1),
        required_opt: str | None = Query(),
    ) -> None: ...

    query = schema_of(h)["query"]
    props = query["properties"]
    assert props["limit"] == {"type": "integer", "default": 10}
    assert props["q"] == {
        "type": ["string", "null"],
        "minLength": 3,
        "maxLength": 50,
        "pattern": "^[a-z]+$",
        "default": None,
    }
    assert props["item-query"] == {"type": "string", "description": "what to find", "default": "none"}
    assert "item_query" not in props
    assert props["ids"] == {"type": "array", "items": {"type": "integer"}, "default": []}
    assert props["maybe"] == {"type": ["integer", "null"], "default": None}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "minItems": 1, "default": ["a"]}
    assert props["page"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 1}
    assert props["ratio"] == {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.5}
    # Optional means not required, even without a default.
    assert props["required_opt"]["type"] == ["string", "null"]
    assert "required" not in query


def test_required_query() -> None:
    def h(q: str, n: int = Query(), m: Annotated[int, Query()] = ...) -> None:  # type: ignore[assignment]
        ...

    assert schema_of(h)["query"]["required"] == ["q", "n", "m"]


def test_optional_enum_and_uuid() -> None:
    def h(c: Color | None = None, u: Optional[uuid.UUID] = None) -> None: ...

    props = schema_of(h)["query"]["properties"]
    assert props["c"] == {"type": ["string", "null"], "enum": ["red", "green", None], "default": None}
    assert props["u"] == {"type": ["string", "null"], "format": "uuid", "default": None}


def test_enum_default_is_its_value() -> None:
    def h(c: Color = Color.GREEN, day: datetime.date = datetime.date(2024, 2, 29)) -> None: ...

    props = schema_of(h)["query"]["properties"]
    assert props["c"]["default"] == "green"
    assert props["day"]["default"] == "2024-02-29"


def test_headers_alias_and_cookies() -> None:
    def h(
        x_token: str = Header(),
        user_agent: str | None = Header(None),
        custom: str = Header("d", alias="X-Custom-Name"),
        raw_name: str = Header("r", convert_underscores=False),
        counts: list[int] = Header([]),
        session: str = Cookie(),
        theme: str = Cookie("light", alias="ui-theme"),
    ) -> None: ...

    schema = schema_of(h)
    headers = schema["headers"]
    assert list(headers["properties"]) == ["x-token", "user-agent", "x-custom-name", "raw_name", "counts"]
    assert headers["required"] == ["x-token"]
    assert headers["properties"]["counts"]["type"] == "array"
    cookies = schema["cookies"]
    assert cookies["properties"] == {"session": {"type": "string"}, "ui-theme": {"type": "string", "default": "light"}}
    assert cookies["required"] == ["session"]


def test_annotated_marker_and_meta() -> None:
    def h(
        item_id: Annotated[int, Path(ge=1)],
        q: Annotated[str, msgspec.Meta(min_length=2, max_length=5)] = "abc",
        token: Annotated[str, Header(alias="x-api-key")] = "none",
    ) -> None: ...

    schema = schema_of(h, "/items/{item_id}")
    assert schema["path"]["properties"]["item_id"] == {"type": "integer", "minimum": 1}
    assert schema["query"]["properties"]["q"] == {"type": "string", "minLength": 2, "maxLength": 5, "default": "abc"}
    assert schema["headers"]["properties"]["x-api-key"]["default"] == "none"


def test_path_marker_with_alias() -> None:
    def h(identifier: int = Path(alias="id")) -> None: ...

    assert schema_of(h, "/things/{id}")["path"]["properties"] == {"id": {"type": "integer"}}


def test_catch_all_path_param() -> None:
    def h(rest: str) -> None: ...

    assert schema_of(h, "/files/{*rest}")["path"]["required"] == ["rest"]


# -- bodies ---------------------------------------------------------------------------


def test_struct_body() -> None:
    def h(item: Item) -> None: ...

    body = schema_of(h, method="POST")["body"]
    # msgspec's {"$ref": "#/$defs/Item", "$defs": ...}, with the reference
    # inlined: the host reads form fields from the root properties.
    assert body == msgspec.json.schema(Item)["$defs"]["Item"]
    assert body["required"] == ["name", "price"]


def test_recursive_struct_body_keeps_its_defs() -> None:
    def h(node: Node) -> None: ...

    body = schema_of(h, method="POST")["body"]
    assert body["title"] == "Node"
    assert body["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert body["$defs"]["Node"]["title"] == "Node"


def test_dataclass_typeddict_dict_bodies() -> None:
    def d(point: Point) -> None: ...

    def t(movie: Movie) -> None: ...

    def m(counts: dict[str, int]) -> None: ...

    def plain(data: dict) -> None: ...  # type: ignore[type-arg]

    assert schema_of(d, method="POST")["body"]["required"] == ["x"]
    assert schema_of(t, method="POST")["body"]["required"] == ["title", "year"]
    assert schema_of(m, method="POST")["body"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert schema_of(plain, method="POST")["body"] == {"type": "object"}


def test_pydantic_body() -> None:
    def h(user: User) -> None: ...

    body = schema_of(h, method="POST")["body"]
    # pydantic's schema as is, marked so the host checks it laxly, as pydantic decodes.
    assert body == {**User.model_json_schema(), "x-spikard-lax": "pydantic"}


def test_list_of_models_is_a_body() -> None:
    def h(items: list[Item]) -> None: ...

    schema = schema_of(h, method="POST")
    assert "query" not in schema
    assert schema["body"]["type"] == "array"


def test_explicit_scalar_body_with_constraints() -> None:
    def h(name: str = Body(min_length=2)) -> None: ...

    assert schema_of(h, method="POST")["body"] == {"type": "string", "minLength": 2}


def test_raw_bytes_body_has_no_schema() -> None:
    def h(data: bytes = Body()) -> None: ...

    assert "body" not in schema_of(h, method="POST")


def test_embedded_bodies() -> None:
    def h(item: Item, user: User, note: str = Body("n")) -> None: ...

    body = schema_of(h, method="POST")["body"]
    assert body["type"] == "object"
    assert body["required"] == ["item", "user"]
    assert body["properties"]["item"]["title"] == "Item"
    assert body["properties"]["item"]["required"] == ["name", "price"]
    assert body["properties"]["note"] == {"type": "string", "default": "n"}


def test_body_limit_option() -> None:
    def h(item: Item) -> None: ...

    assert schema_of(h, method="POST", body_limit=1024)["body_limit"] == 1024


# -- Request and mixed ----------------------------------------------------------------------


def test_request_parameter() -> None:
    def h(item_id: int, request: Request) -> None: ...

    plan = plan_of(h, "/i/{item_id}")
    assert plan.wants_request
    assert list(plan.schema) == ["path"]


def test_forward_references_resolve_at_compile_time() -> None:
    app = App()

    @app.post("/late")
    def late(thing: LateModel) -> None: ...

    assert app.routes[0].schema["body"]["title"] == "LateModel"


class Node(msgspec.Struct):
    name: str
    children: list[Node] = []


class LateModel(msgspec.Struct):
    value: int


# -- errors -----------------------------------------------------------------------------------


def test_path_marker_not_in_path_is_an_error() -> None:
    def h(item_id: int = Path()) -> None: ...

    with pytest.raises(RouteError, match=r"item_id.*not in the path"):
        plan_of(h, "/items")


def test_path_name_declared_as_query_is_an_error() -> None:
    def h(item_id: int = Query()) -> None: ...

    with pytest.raises(RouteError, match="in the path but declared as query"):
        plan_of(h, "/items/{item_id}")


class Opaque:
    pass


def test_unsupported_param_type_names_handler_and_param() -> None:
    def h(thing: Opaque = Query()) -> None: ...

    with pytest.raises(RouteError, match=r"handler .*h .*test_schema\.py.*query parameter 'thing'"):
        plan_of(h)


def test_unresolvable_hint() -> None:
    def h(x: DoesNotExist) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(RouteError, match="cannot resolve its type hints"):
        plan_of(h)


def test_duplicate_keys() -> None:
    def h(a: str = Query(alias="k"), b: str = Query(alias="k")) -> None: ...

    with pytest.raises(RouteError, match="both read query 'k'"):
        plan_of(h)


def test_bad_route_arguments() -> None:
    app = App()
    with pytest.raises(ValueError, match="must start with '/'"):
        app.get("items")(lambda: None)
    with pytest.raises(ValueError, match="unknown HTTP method"):
        app.route("FETCH", "/x")(lambda: None)


# -- per-request plans (what invoke does with validated values) -------------------------------


def params(path: Any = None, query: Any = None, headers: Any = None, cookies: Any = None) -> str:
    return json.dumps({"path": path or {}, "query": query or {}, "headers": headers or {}, "cookies": cookies or {}})


def test_invoke_converts_only_what_json_cannot_carry() -> None:
    seen: dict[str, Any] = {}

    def h(
        item_id: int,
        u: uuid.UUID,
        day: datetime.date,
        c: Color,
        price: float,
        at: datetime.datetime | None = None,
        ids: list[int] = Query([]),
        colors: list[Color] = Query([]),
        x_token: str = Header(),
        session: str = Cookie("s"),
    ) -> None:
        seen.update(locals())

    plan = plan_of(h, "/i/{item_id}/{u}/{day}/{c}")
    u = uuid.uuid4()
    plan.invoke(
        params(
            {"item_id": 7, "u": str(u), "day": "2024-02-29", "c": "green"},
            {"price": 3, "at": "2024-01-02T03:04:05Z", "ids": [1, 2], "colors": ["red"]},
            {"x-token": "tok"},
            {},
        ),
        b"",
        None,
        "",
    )
    assert seen["item_id"] == 7
    assert seen["u"] == u
    assert seen["day"] == datetime.date(2024, 2, 29)
    assert seen["c"] is Color.GREEN
    assert seen["price"] == 3.0 and isinstance(seen["price"], float)
    assert seen["at"] == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert seen["ids"] == [1, 2]
    assert seen["colors"] == [Color.RED]
    assert seen["x_token"] == "tok"
    assert seen["session"] == "s"  # absent: the Python default


def test_invoke_null_for_optional() -> None:
    seen: dict[str, Any] = {}

    def h(u: uuid.UUID | None = None, c: Color | None = None) -> None:
        seen.update(u=u, c=c)

    plan_of(h).invoke(params(query={"u": None, "c": None}), b"", None, "")
    assert seen == {"u": None, "c": None}


def test_invoke_bodies() -> None:
    seen: dict[str, Any] = {}

    def h(item: Item, q: int = 1) -> None:
        seen.update(locals())

    plan = plan_of(h, method="POST")
    plan.invoke(params(query={"q": 2}), b'{"name": "pen", "price": 1}', None, "")
    assert seen["item"] == Item("pen", 1.0) and seen["q"] == 2

    def p(user: User) -> User:
        return user

    assert plan_of(p, method="POST").invoke("{}", b'{"name": "a"}', None, "") == User(name="a")

    def d(point: Point) -> Point:
        return point

    assert plan_of(d, method="POST").invoke("{}", b'{"x": 1}', None, "") == Point(1)

    def m(item: Item, user: User, note: str = Body("n")) -> tuple[Any, ...]:
        return item, user, note

    embedded = plan_of(m, method="POST").invoke(
        "{}", b'{"item": {"name": "i", "price": 2}, "user": {"name": "u"}}', None, ""
    )
    assert embedded == (Item("i", 2.0), User(name="u"), "n")


def test_invoke_form_body_fallback() -> None:
    def h(item: Item) -> Item:
        return item

    form = json.dumps({"path": {}, "query": {}, "headers": {}, "cookies": {}, "form": {"name": "pen", "price": 2.5}})
    assert plan_of(h, method="POST").invoke(form, b"name=pen&price=2.5", None, "") == Item("pen", 2.5)


def test_invoke_body_mismatch_is_422() -> None:
    from spikard.exceptions import RequestValidationError

    def h(item: Item) -> Item:
        return item

    with pytest.raises(RequestValidationError) as info:
        plan_of(h, method="POST").invoke("{}", b'{"name": 1}', None, "")
    assert [(e["type"], e["loc"], e["input"]) for e in info.value.errors()] == [("string_type", ["body", "name"], 1)]


def test_invoke_request_object() -> None:
    def h(key: str, request: Request) -> Request:
        return request

    request = plan_of(h, "/r/{key}", "POST").invoke(
        params({"key": "k"}),
        b'{"a": 1}',
        [("x-foo", "1"), ("x-foo", "2"), ("cookie", "a=1"), ("cookie", "b=2")],
        "rid-1",
    )
    assert request.headers == {"x-foo": "1, 2", "cookie": "a=1; b=2"}
    assert request.params["path"] == {"key": "k"}
    assert request.path_params == {"key": "k"}
    assert asyncio.run(_awaited(request.json())) == {"a": 1}
    assert request.request_id == "rid-1"


JWT_PRINCIPAL: dict[str, Any] = {
    "scheme": "jwt",
    "claims": {"sub": "u1", "aud": "t", "exp": 2000000000, "roles": ["a"]},
}


def with_members(base: str, **members: Any) -> str:
    """``base`` (a params object as JSON) with more top-level members."""
    return json.dumps({**json.loads(base), **members})


def test_invoke_request_auth_with_validated_parameters() -> None:
    def h(verbose: bool, request: Request) -> Request:
        return request

    plan = plan_of(h)
    request = plan.invoke(with_members(params(query={"verbose": True}), auth=JWT_PRINCIPAL), b"", None, "")
    assert request.auth == JWT_PRINCIPAL
    assert request.auth["claims"]["sub"] == "u1"
    api_key = {"scheme": "api_key", "key_index": 2}
    assert plan.invoke(with_members(params(query={"verbose": True}), auth=api_key), b"", None, "").auth == api_key


def test_invoke_request_auth_without_other_parameters() -> None:
    def h(request: Request) -> Request:
        return request

    plan = plan_of(h)
    request = plan.invoke(with_members(params(), auth=JWT_PRINCIPAL), b"", None, "")
    assert request.auth == JWT_PRINCIPAL
    assert request.params["auth"] == JWT_PRINCIPAL
    assert plan.invoke(params(), b"", None, "").auth is None  # no auth policy
    assert plan.invoke("", b"", None, "").auth is None
    # The name inside a value (a query parameter called auth) is not a principal.
    assert plan.invoke(params(query={"auth": "x"}), b"", None, "").auth is None
    assert Request(None, b'{"auth": {"scheme": "jwt", "claims": {}}}', b"").auth == {"scheme": "jwt", "claims": {}}
    assert Request(None, {"auth": JWT_PRINCIPAL}, b"").auth == JWT_PRINCIPAL


def test_request_auth_decodes_the_parameters_once() -> None:
    request = Request(None, with_members(params(path={"k": "v"}), auth=JWT_PRINCIPAL), b"")
    assert request.auth == JWT_PRINCIPAL
    decoded = request.params
    assert request.auth is decoded["auth"] and request.params is decoded
    assert request.path_params == {"k": "v"}


def test_unknown_top_level_members_are_ignored() -> None:
    seen: dict[str, Any] = {}

    def h(item_id: int, request: Request, q: str = "d", x_token: str = Header()) -> None:
        seen.update(item_id=item_id, q=q, x_token=x_token, auth=request.auth)

    future = with_members(
        params({"item_id": 3}, {"q": "hi"}, {"x-token": "t"}),
        auth=JWT_PRINCIPAL,
        tenant={"id": "acme"},
        trace=["a", 1, None],
    )
    plan_of(h, "/i/{item_id}").invoke(future, b"", None, "")
    assert seen == {"item_id": 3, "q": "hi", "x_token": "t", "auth": JWT_PRINCIPAL}

    def bare() -> str:
        return "ok"

    assert plan_of(bare).invoke(future, b"", None, "") == "ok"


# -- per-route timeout ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "ms"),
    [(2.5, 2500), (0.3, 300), (5, 5000), (0.0001, 1), (0.0015, 2), (3600, 3_600_000), (3600.0, 3_600_000)],
)
def test_timeout_reaches_the_schemas_in_milliseconds(timeout: float, ms: int) -> None:
    def h() -> None: ...

    schema = schema_of(h, timeout=timeout)
    assert schema == {"request_timeout_ms": ms}
    assert type(schema["request_timeout_ms"]) is int


def test_timeout_on_every_decorator_and_add_route() -> None:
    app = App()

    async def h() -> None: ...

    for decorate in (app.get, app.post, app.put, app.patch, app.delete, app.head, app.options):
        decorate("/t", timeout=1.25)(h)
    app.add_route("GET", "/u", h, timeout=2)
    assert [r.schema["request_timeout_ms"] for r in app.routes] == [1250] * 7 + [2000]
    assert app.routes[0].timeout == 1.25
    without = App()
    without.get("/v")(h)
    assert "request_timeout_ms" not in without.routes[0].schema
    assert without.routes[0].timeout is None


@pytest.mark.parametrize("bad", [0, 0.0, -1, 3600.5, 7200, float("nan"), float("inf"), float("-inf")])
def test_timeout_out_of_range_names_the_route(bad: float) -> None:
    def slow_handler() -> None: ...

    where = r"route GET /slow: handler .*slow_handler \(.*test_schema.py:\d+\): timeout="
    with pytest.raises(RouteError, match=where) as info:
        schema_of(slow_handler, "/slow", timeout=bad)
    assert "is out of range; give seconds greater than 0 and at most 3600" in str(info.value)


@pytest.mark.parametrize("bad", ["2.5", True, decimal.Decimal("1"), [1], {"s": 1}])
def test_timeout_of_the_wrong_type_names_the_route(bad: Any) -> None:
    with pytest.raises(RouteError, match=r"route POST /items: handler .* is a .*; give the seconds as a number"):
        schema_of(lambda: None, "/items", "POST", timeout=bad)


def test_invoke_bare_handler_ignores_params() -> None:
    def h() -> str:
        return "ok"

    assert plan_of(h).invoke("not even json", b"", None, "") == "ok"


@pytest.mark.parametrize(
    "module", ["app", "params_app", "returns_app", "concurrency_app", "lifecycle_app", "middleware_app"]
)
def test_example_apps_compile(module: str) -> None:
    import importlib

    app = importlib.import_module(f"examples.{module}").app
    plans = app.compile()
    assert plans and all(json.loads(p.schema_json) == p.schema for p in plans)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
