"""The host's OpenAPI document (``[openapi]``, issue 13) for every example app: each
``examples/*.py`` app is served with ``[openapi] enabled = true``, and ``/openapi.json`` must
be a valid OpenAPI 3.1 document (``openapi-spec-validator``) whose operations are the routes
the host serves (``--check`` lists them), with every template parameter declared."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from conftest import PLUGIN_DIR, Host, plugin_settings, run_check, write_config

pytestmark = pytest.mark.e2e

APPS = sorted(p.stem for p in (PLUGIN_DIR / "examples").glob("*.py") if p.stem != "__init__")
ROUTE_LINE = re.compile(r"^route\s+(\S+)\s+(\S+)\s+->", re.MULTILINE)


def openapi_config(tmp_path: Path, app: str) -> Path:
    config = write_config(tmp_path, plugin_settings(f"examples.{app}:app"))
    with config.open("a", encoding="utf-8") as file:
        file.write("\n[openapi]\nenabled = true\n")
    return config


@pytest.mark.parametrize("app", APPS)
def test_example_app_document_is_valid(tmp_path: Path, app: str) -> None:
    config = openapi_config(tmp_path, app)
    check = run_check(config)
    if check.returncode != 0:
        pytest.skip(f"examples/{app}.py does not start with default settings: {check.stderr.strip()[-300:]}")
    served = {(m.lower(), p.replace("{*", "{")) for m, p in ROUTE_LINE.findall(check.stdout)}
    host = Host.start(config)
    try:
        response = host.get("/openapi.json")
        assert response.status == 200, response.body
        assert response.content_type == "application/json"
        document = response.json()
        docs = host.get("/docs")
    finally:
        host.stop()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert docs.status == 200 and docs.content_type.startswith("text/html")
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented, f"examples/{app}.py documents no operation"
    assert documented <= served, documented - served
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), ids
    for path, item in document["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (method, path, declared)
            assert any(code.startswith("2") for code in operation["responses"]), (method, path)


def test_the_example_app_routes_carry_their_schemas(tmp_path: Path) -> None:
    """examples/app.py: the parameters and body the app's type hints declare are in the
    document, as FastAPI would list them."""
    host = Host.start(openapi_config(tmp_path, "app"))
    try:
        document = host.get("/openapi.json").json()
    finally:
        host.stop()
    read = document["paths"]["/items/{item_id}"]["get"]
    params = {(p["name"], p["in"]): p for p in read["parameters"]}
    assert params[("item_id", "path")]["required"] is True
    assert params[("item_id", "path")]["schema"]["type"] == "integer"
    assert params[("x-token", "header")]["required"] is True
    assert ("q", "query") in params and params[("q", "query")]["required"] is False
    create = document["paths"]["/items"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert set(body["required"]) == {"name", "price"}
    assert "422" in create["responses"]
    problem = create["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/ValidationProblemDetails"}
