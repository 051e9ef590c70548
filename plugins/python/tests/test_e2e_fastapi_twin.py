"""FastAPI parity, differentially: examples/inventory_fastapi_app.py is
FastAPI code importing from spikard; its FastAPI twin is the same file with
the import block swapped for the one in its docstring. The spikard version is
served by the real host and plugin (``spikard.testclient.TestClient``, once
per bridge), the twin by FastAPI (``fastapi.testclient.TestClient``); both
get the same requests, in order (later ones see what earlier ones did), and
must give the same answers:

- the same status, always;
- for 2xx/3xx: the same JSON body (or text), ``content-type``,
  ``location``, the names of the cookies set, and the headers a case names;
- for errors the app makes (``HTTPException(detail={...})``, its exception
  handler's ``JSONResponse``): the same ``detail`` (or body);
- for 422s: spikard's Problem Details ``errors[].loc`` are FastAPI's
  ``detail[].loc`` (error bodies otherwise differ by design: RFC 9457 vs
  ``{"detail": ...}``).

A case whose difference is known and not a bug to fix here is marked
``xfail`` (strict) with the reason.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from conftest import BRIDGES, PLUGIN_DIR, missing_binaries
from spikard.testclient import TestClient

pytestmark = pytest.mark.e2e

APP_FILE = PLUGIN_DIR / "examples" / "inventory_fastapi_app.py"
_BLOCK = re.compile(
    r"^(?P<indent>[ ]*)# >>> framework imports\n(?P<body>.*?)^(?P=indent)# <<< framework imports$",
    re.MULTILINE | re.DOTALL,
)
TWIN_MODULE = "inventory_fastapi_twin"

ALICE = {"x-api-key": "key-alice"}  # items:read, items:write
BOB = {"x-api-key": "key-bob"}  # items:read
ROOT = {"x-api-key": "key-root"}  # items:read, items:write, admin
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


# ---------------------------------------------------------------------------
# The twin


def import_blocks() -> tuple[str, str, re.Match[str]]:
    """``(FastAPI's block, spikard's block, the match of spikard's in the
    source)``: the first block is the docstring's (indented), the second
    the code's."""
    source = APP_FILE.read_text(encoding="utf-8")
    found = list(_BLOCK.finditer(source))
    assert len(found) == 2, "the example needs its import block twice: in the docstring and in the code"
    docstring, code = found
    assert docstring.group("indent") and not code.group("indent")
    fastapi = "".join(line.removeprefix(docstring.group("indent")) for line in docstring.group("body").splitlines(True))
    return fastapi, code.group("body"), code


def twin_source() -> str:
    """The example with its import block swapped for FastAPI's."""
    fastapi, _, code = import_blocks()
    source = code.string
    return source[: code.start("body")] + fastapi + source[code.end("body") :]


def load_twin() -> types.ModuleType:
    """The FastAPI twin, executed as a fresh module (registered in
    ``sys.modules`` so pydantic resolves its models' annotations)."""
    module = types.ModuleType(TWIN_MODULE)
    module.__file__ = str(APP_FILE)
    sys.modules[TWIN_MODULE] = module
    exec(compile(twin_source(), f"{APP_FILE} (FastAPI twin)", "exec"), module.__dict__)
    return module


def _imported(block: str) -> list[tuple[str, list[str]]]:
    """Per import line: the module and the names it binds."""
    out = []
    for node in ast.parse(block).body:
        assert isinstance(node, ast.ImportFrom), ast.dump(node)
        out.append((node.module or "", [alias.asname or alias.name for alias in node.names]))
    return out


def test_only_the_import_block_differs() -> None:
    fastapi, spikard, _ = import_blocks()
    theirs, ours = _imported(fastapi), _imported(spikard)
    # Line for line, the same names bound; FastAPI's from fastapi*, ours from spikard.
    assert [names for _, names in theirs] == [names for _, names in ours]
    assert all(module.split(".")[0] == "fastapi" for module, _ in theirs)
    assert all(module == "spikard" for module, _ in ours)
    code = APP_FILE.read_text(encoding="utf-8").split('"""', 2)[2]  # after the module docstring
    assert "fastapi" not in code


def test_spikard_does_not_import_fastapi() -> None:
    code = (
        "import sys; import spikard, spikard.testclient, spikard.exception_handlers; "
        "import examples.inventory_fastapi_app as app; app.app.compile(); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'httpx')); "
        "assert not bad, bad"
    )
    env_path = f"{PLUGIN_DIR / 'python'}:{PLUGIN_DIR}"
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": env_path}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------
# The requests


@dataclass(frozen=True)
class Case:
    """One request and what to compare of its answers."""

    id: str
    method: str
    url: str
    #: The status FastAPI gives (checked too, so a case cannot pass by both failing alike).
    status: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Response headers compared besides content-type, location and set-cookie names.
    headers: tuple[str, ...] = ()
    #: An error body the app makes (its exception handler's): compared whole.
    app_body: bool = False
    #: Reads what ran after earlier responses (background tasks, the code
    #: after a dependency's ``yield``): spikard's is re-read until it matches,
    #: for up to 3 s, as that work may still be running; a list body is
    #: compared in any order. Both frameworks run that work after sending
    #: the response (background tasks, then the teardown), so on a real
    #: server one request's may finish after the next request's (spikard's
    #: ``def`` background tasks queue on the sync workers); only FastAPI's
    #: in-process TestClient waits for it before returning.
    eventually: bool = False
    #: A known difference: the reason (the case is a strict xfail).
    xfail: str | None = None


def _item(sku: str, name: str, quantity: Any, price: Any, **more: Any) -> dict[str, Any]:
    return {"sku": sku, "name": name, "quantity": quantity, "price": price, **more}


def _upload(
    caption: str | None = "front", *, position: Any = None, file: bool = True, thumbnail: bytes | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if caption is not None:
        data["caption"] = caption
    if position is not None:
        data["position"] = position
    files = [("image", ("lamp.png", PNG, "image/png"))] if file else [("other", ("x.txt", b"x", "text/plain"))]
    if thumbnail is not None:
        files.append(("thumbnail", ("small.png", thumbnail, "image/png")))
    return {"headers": ALICE, "data": data, "files": files}


CASES: list[Case] = [
    # The app, add_api_route, PlainTextResponse, unknown paths and methods.
    Case("health", "GET", "/health", 200),
    Case("unknown path", "GET", "/nope", 404),
    Case("wrong method", "POST", "/health", 405),
    # Security: a missing, unknown or under-scoped key.
    Case("no api key", "GET", "/items", 401, headers=("www-authenticate",)),
    Case("unknown api key", "GET", "/items", 401, {"headers": {"x-api-key": "nope"}}, headers=("www-authenticate",)),
    Case("read-only key may list", "GET", "/items", 200, {"headers": BOB}, headers=("x-total-count",)),
    Case("read-only key may not write", "POST", "/items", 403, {"headers": BOB, "json": _item("PEN-2", "x", 1, 1)}),
    # Query(title=, description=, examples=), a sync paging dependency, response: Response.
    Case("search", "GET", "/items", 200, {"headers": ALICE, "params": {"q": "PEN"}}, headers=("x-total-count",)),
    Case("search too short", "GET", "/items", 422, {"headers": ALICE, "params": {"q": "p"}}),
    Case("tags", "GET", "/items", 200, {"headers": ALICE, "params": [("tag", "office"), ("tag", "light")]}),
    Case(
        "page",
        "GET",
        "/items",
        200,
        {"headers": ALICE, "params": {"offset": 1, "limit": 1}},
        headers=("x-total-count",),
    ),
    Case("limit 0", "GET", "/items", 422, {"headers": ALICE, "params": {"limit": 0}}),
    Case("bad paging", "GET", "/items", 422, {"headers": ALICE, "params": {"limit": "ten", "offset": -1}}),
    Case("repeated scalar query", "GET", "/items", 200, {"headers": BOB, "params": [("limit", "1"), ("limit", "2")]}),
    Case("query int '1.0'", "GET", "/items", 200, {"headers": BOB, "params": {"offset": "1.0"}}),
    Case("query, empty search", "GET", "/items", 422, {"headers": BOB, "params": {"q": ""}}),
    Case("header name in capitals", "GET", "/items/MUG-1", 200, {"headers": {"X-API-KEY": "key-bob"}}),
    Case("get item", "GET", "/items/PEN-1", 200, {"headers": BOB}),
    Case("missing item", "GET", "/items/NOPE", 404, {"headers": BOB}),
    Case("html card", "GET", "/items/MUG-1/card", 200, {"headers": BOB}),
    # Pydantic bodies, lax as in FastAPI; HTTPException(detail={...}); the unit of work.
    Case(
        "create, lax strings", "POST", "/items", 201, {"headers": ALICE, "json": _item("PEN-2", "Red pen", "5", "2.50")}
    ),
    Case("create duplicate", "POST", "/items", 409, {"headers": ALICE, "json": _item("PEN-2", "Red pen", 1, 1)}),
    Case(
        "create, float quantity 5.0", "POST", "/items", 201, {"headers": ALICE, "json": _item("CUP-1", "Cup", 5.0, 3)}
    ),
    Case("create, quantity '7.0'", "POST", "/items", 201, {"headers": ALICE, "json": _item("CUP-2", "Cup", "7.0", 3)}),
    Case("create, quantity 5.5", "POST", "/items", 422, {"headers": ALICE, "json": _item("CUP-3", "Cup", 5.5, 3)}),
    Case(
        "create, quantity 'five'", "POST", "/items", 422, {"headers": ALICE, "json": _item("CUP-3", "Cup", "five", 3)}
    ),
    Case("create, quantity true", "POST", "/items", 201, {"headers": ALICE, "json": _item("CUP-4", "Cup", True, 3)}),
    Case("create, negative quantity", "POST", "/items", 422, {"headers": ALICE, "json": _item("CUP-3", "Cup", -1, 3)}),
    Case("create, bad sku", "POST", "/items", 422, {"headers": ALICE, "json": _item("bad sku", "Cup", 1, 3)}),
    Case("create, fields missing", "POST", "/items", 422, {"headers": ALICE, "json": {"sku": "CUP-3"}}),
    Case(
        "create, tags not a list",
        "POST",
        "/items",
        422,
        {"headers": ALICE, "json": _item("CUP-3", "Cup", 1, 3, tags="a")},
    ),
    Case(
        "create, extra member ignored",
        "POST",
        "/items",
        201,
        {"headers": ALICE, "json": _item("INK-1", "Ink", 1, 4, color="red")},
    ),
    Case("create, huge quantity", "POST", "/items", 201, {"headers": ALICE, "json": _item("BIG-1", "Big", 10**20, 1)}),
    Case(
        "create, price '1e2'", "POST", "/items", 201, {"headers": ALICE, "json": _item("SCI-1", "Tasse ☕", 1, "1e2")}
    ),
    Case("create, no body", "POST", "/items", 422, {"headers": ALICE}),
    # A sync handler setting response.status_code and a header; request.json().
    Case(
        "put creates",
        "PUT",
        "/items/PEN-9",
        201,
        {"headers": ALICE, "json": _item("PEN-9", "Pencil", 9, 0.5)},
        headers=("x-updated-by",),
    ),
    Case(
        "put replaces",
        "PUT",
        "/items/PEN-9",
        200,
        {"headers": ALICE, "json": _item("PEN-9", "Pencil", 8, 0.5)},
        headers=("x-updated-by",),
    ),
    Case("put, sku mismatch", "PUT", "/items/PEN-9", 400, {"headers": ALICE, "json": _item("PEN-8", "Pencil", 8, 0.5)}),
    Case("patch", "PATCH", "/items/PEN-9", 200, {"headers": ALICE, "json": {"price": 3, "tags": ["wood"]}}),
    Case("patch, unknown field", "PATCH", "/items/PEN-9", 400, {"headers": ALICE, "json": {"color": "x"}}),
    Case("patch, not an object", "PATCH", "/items/PEN-9", 400, {"headers": ALICE, "json": [1, 2]}),
    Case("patch, invalid value", "PATCH", "/items/PEN-9", 422, {"headers": ALICE, "json": {"price": -1}}),
    Case("patch, missing item", "PATCH", "/items/NOPE", 404, {"headers": ALICE, "json": {"price": 1}}),
    # Background tasks, an exception handler, JSONResponse with a status and headers.
    Case("restock, lax '3'", "POST", "/items/MUG-1/restock", 200, {"headers": ALICE, "json": {"quantity": "3"}}),
    Case("restock 0", "POST", "/items/MUG-1/restock", 422, {"headers": ALICE, "json": {"quantity": 0}}),
    Case("restock, empty body", "POST", "/items/MUG-1/restock", 422, {"headers": ALICE, "json": {}}),
    Case("restock, missing item", "POST", "/items/NOPE/restock", 404, {"headers": ALICE, "json": {"quantity": 1}}),
    Case(
        "reserve",
        "POST",
        "/items/MUG-1/reservations",
        202,
        {"headers": ALICE, "json": {"quantity": 4}},
        headers=("x-reservation",),
    ),
    Case(
        "reserve, out of stock",
        "POST",
        "/items/MUG-1/reservations",
        409,
        {"headers": ALICE, "json": {"quantity": 2}},
        app_body=True,
    ),
    Case("card after reserving", "GET", "/items/MUG-1/card", 200, {"headers": ALICE}),
    # File, Form, UploadFile.
    Case("upload", "POST", "/items/LAMP-1/image", 201, _upload(position="2")),
    Case("upload, default position", "POST", "/items/LAMP-1/image", 201, _upload()),
    Case("upload with a thumbnail", "POST", "/items/LAMP-1/image", 201, _upload(thumbnail=PNG[:20])),
    Case("upload, caption missing", "POST", "/items/LAMP-1/image", 422, _upload(None)),
    Case("upload, caption too long", "POST", "/items/LAMP-1/image", 422, _upload("x" * 41)),
    Case("upload, position not a number", "POST", "/items/LAMP-1/image", 422, _upload(position="x")),
    Case("upload, file missing", "POST", "/items/LAMP-1/image", 422, _upload(file=False)),
    Case(
        "upload, text instead of a file",
        "POST",
        "/items/LAMP-1/image",
        422,
        {
            "headers": ALICE,
            "data": {"caption": "c", "image": "not a file"},
            "files": {"other": ("x.txt", b"x", "text/plain")},
        },
    ),
    Case("upload, missing item", "POST", "/items/NOPE/image", 404, _upload()),
    # Forms, cookies set through response: Response, Request.
    Case("me without a session", "GET", "/me", 401),
    Case("login, wrong password", "POST", "/login", 401, {"data": {"username": "alice", "password": "x"}}),
    Case("login, short name", "POST", "/login", 422, {"data": {"username": "al", "password": "x"}}),
    Case("login, password missing", "POST", "/login", 422, {"data": {"username": "alice"}}),
    Case("login", "POST", "/login", 200, {"data": {"username": "alice", "password": "alice-secret"}}),
    Case("me", "GET", "/me", 200, {"params": {"view": "full"}}),
    # RedirectResponse, deprecated route.
    Case("redirect", "GET", "/catalog/PEN-1", 308, {"follow_redirects": False}),
    Case("redirect followed", "GET", "/catalog/PEN-1", 200, {"headers": BOB}),
    Case("redirect to a missing item", "GET", "/catalog/NOPE", 404, {"headers": BOB}),
    # Route dependencies; 204.
    Case("delete needs admin", "DELETE", "/items/INK-1", 403, {"headers": ALICE}),
    Case("delete", "DELETE", "/items/INK-1", 204, {"headers": ROOT}),
    Case("delete again", "DELETE", "/items/INK-1", 404, {"headers": ROOT}),
    # What ran after the responses: the unit of work's journal, background tasks.
    Case("journal needs admin", "GET", "/admin/journal", 403, {"headers": ALICE}),
    Case("journal", "GET", "/admin/journal", 200, {"headers": ROOT}, eventually=True),
    Case("events", "GET", "/admin/events", 200, {"headers": ROOT}, eventually=True),
    Case("everything", "GET", "/items", 200, {"headers": ROOT, "params": {"limit": 50}}, headers=("x-total-count",)),
    # Known differences, by design (see the README's "Porting from FastAPI"), last: one of
    # them creates an item on spikard only, which the cases above would see.
    Case(
        "create, malformed json",
        "POST",
        "/items",
        422,
        {"headers": {**ALICE, "content-type": "application/json"}, "content": b'{"sku": '},
        xfail="by design: the host answers a body that is not JSON with 400 Problem Details before any Python "
        "runs (as for every body it parses); FastAPI answers 422 json_invalid",
    ),
    Case(
        "HEAD of a GET route",
        "HEAD",
        "/health",
        405,
        xfail="by design: the host serves HEAD for every GET route; FastAPI answers 405",
    ),
    Case(
        "trailing slash",
        "GET",
        "/items/",
        200,
        {"headers": BOB},
        xfail="by design: no redirect_slashes, /items/ is not /items (404); FastAPI redirects (307) to /items",
    ),
    Case(
        "login, JSON body",
        "POST",
        "/login",
        422,
        {"json": {"username": "alice", "password": "alice-secret"}},
        xfail="by design: a JSON body that passes a form route's schema is 415 (send a form); FastAPI reads no "
        "form fields from it and answers 422 (fields missing)",
    ),
    Case(
        "upload, JSON body",
        "POST",
        "/items/LAMP-1/image",
        422,
        {"headers": ALICE, "json": {"caption": "c"}},
        xfail="by design: the host checks a JSON body sent to a form route against the form's schema, so only "
        "`image` is missing; FastAPI ignores the JSON and reports `caption` and `image` (same status)",
    ),
    Case(
        "create, urlencoded body",
        "POST",
        "/items",
        422,
        {"headers": ALICE, "data": {"sku": "FORM-1", "name": "Form", "quantity": "1", "price": "1"}},
        xfail="by design: a model body also accepts an urlencoded form (201); FastAPI reads JSON only (422)",
    ),
]


# ---------------------------------------------------------------------------
# Comparing answers


@dataclass
class Answer:
    """What both clients' responses have in common."""

    status: int
    headers: dict[str, list[str]]
    content: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return ", ".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def cookie_names(self) -> list[str]:
        return sorted(value.split("=", 1)[0].strip() for value in self.headers.get("set-cookie", []))


def _answer(response: Any) -> Answer:
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items() if hasattr(response.headers, "multi_items") else []:
        headers.setdefault(name.lower(), []).append(value)
    if not headers:  # spikard's Headers: a dict with getlist
        for name in response.headers:
            headers[name.lower()] = list(response.headers.getlist(name))
    return Answer(response.status_code, headers, response.content)


def _locs(body: Any, key: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(str(part) for part in error["loc"]) for error in body.get(key) or [])


def _comparable(case: Case, body: Any) -> Any:
    if case.eventually and isinstance(body, list):
        return sorted(body, key=json.dumps)
    return body


def differences(case: Case, fastapi: Answer, spikard: Answer) -> list[str]:
    """How spikard's answer differs from FastAPI's (empty: the same)."""
    if fastapi.status != spikard.status:
        return [f"status: FastAPI {fastapi.status}, spikard {spikard.status} ({spikard.content[:300]!r})"]
    out = []
    for name in case.headers:
        if fastapi.header(name) != spikard.header(name):
            out.append(f"header {name}: FastAPI {fastapi.header(name)!r}, spikard {spikard.header(name)!r}")
    if fastapi.status < 400 or case.app_body:
        names = ("content-type", "location") if fastapi.content or spikard.content else ("location",)
        for name in names:
            if fastapi.header(name) != spikard.header(name):
                out.append(f"header {name}: FastAPI {fastapi.header(name)!r}, spikard {spikard.header(name)!r}")
        if fastapi.cookie_names != spikard.cookie_names:
            out.append(f"cookies set: FastAPI {fastapi.cookie_names}, spikard {spikard.cookie_names}")
        if not fastapi.content and not spikard.content:
            pass  # a 204: FastAPI still says application/json
        elif (fastapi.header("content-type") or "").startswith("application/json"):
            if _comparable(case, fastapi.json()) != _comparable(case, spikard.json()):
                out.append(f"body: FastAPI {fastapi.json()!r}, spikard {spikard.json()!r}")
        elif fastapi.content != spikard.content:
            out.append(f"body: FastAPI {fastapi.content!r}, spikard {spikard.content!r}")
        return out
    theirs, ours = fastapi.json(), spikard.json()
    detail = theirs.get("detail")
    if fastapi.status == 422 and isinstance(detail, list):  # FastAPI's validation errors
        if _locs(theirs, "detail") != _locs(ours, "errors"):
            out.append(f"422 locs: FastAPI {_locs(theirs, 'detail')}, spikard {_locs(ours, 'errors')}")
    elif isinstance(detail, (dict, list)) and detail != ours.get("detail"):  # the app's structured detail
        out.append(f"detail: FastAPI {detail!r}, spikard {ours.get('detail')!r}")
    return out


# ---------------------------------------------------------------------------
# Sending the requests


@pytest.fixture(scope="module")
def fastapi_answers() -> Iterator[list[Answer]]:
    with warnings.catch_warnings():  # Starlette's advice to use httpx2 rather than httpx
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient as FastAPIClient

    twin = load_twin()
    try:
        with FastAPIClient(twin.app, raise_server_exceptions=False) as client:
            yield [_answer(client.request(c.method, c.url, **c.kwargs)) for c in CASES]
    finally:
        sys.modules.pop(TWIN_MODULE, None)


@pytest.fixture(scope="module", params=BRIDGES)
def spikard_answers(request: pytest.FixtureRequest, fastapi_answers: list[Answer]) -> Iterator[list[Answer]]:
    if missing_binaries():
        pytest.skip("needs the binaries")
    from examples import inventory_fastapi_app

    answers = []
    with TestClient(
        inventory_fastapi_app.app, raise_server_exceptions=False, settings={"bridge": request.param}
    ) as client:
        for case, theirs in zip(CASES, fastapi_answers, strict=True):
            ours = _answer(client.request(case.method, case.url, **case.kwargs))
            deadline = time.monotonic() + 3.0
            while case.eventually and differences(case, theirs, ours) and time.monotonic() < deadline:
                time.sleep(0.05)
                ours = _answer(client.request(case.method, case.url, **case.kwargs))
            answers.append(ours)
        yield answers


def _params() -> list[Any]:
    return [
        pytest.param(i, id=case.id, marks=[pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else [])
        for i, case in enumerate(CASES)
    ]


def test_enough_requests() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("index", _params())
def test_same_answer(index: int, fastapi_answers: list[Answer], spikard_answers: list[Answer]) -> None:
    case = CASES[index]
    theirs, ours = fastapi_answers[index], spikard_answers[index]
    assert theirs.status == case.status, f"FastAPI answered {theirs.status}: {theirs.content[:300]!r}"
    assert differences(case, theirs, ours) == []
