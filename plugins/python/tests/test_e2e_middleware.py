"""Server-level policies of the host (``[server.cors]``, ``[server.auth.jwt]``,
``[server.rate_limit]``, ``[server.compression]``, ``[[policies]]``) apply
to the Python plugin's decorator routes (examples/middleware_app.py), and
a route's ``timeout=`` reaches the host: through the real host and plugin.

The principal the host verified reaches the handler as ``request.auth``:
``/me`` answers the token's claims, so a 200 whose body equals the claims
proves they crossed the ABI intact. Routes under ``/public/**`` have neither
authentication nor rate limiting (a ``[[policies]]`` entry).

Tokens are HS256 JWTs made here with ``hmac`` (no PyJWT in the test venv).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    BRIDGES,
    PLUGIN_LIB,
    Host,
    HttpResponse,
    missing_binaries,
    plugin_settings,
    problem,
    toml_value,
)

pytestmark = pytest.mark.e2e

APP = "examples.middleware_app:app"
SECRET = "e2e-test-secret-0123456789abcdef"
AUDIENCE = "spikard-tests"
ORIGIN = "https://app.example.com"

#: The policies, as a user writes them (after `[server]`, before the plugin).
POLICIES = f"""
[server.cors]
allow_origins = ["{ORIGIN}"]

[server.auth.jwt]
algorithm = "HS256"
secret = "{SECRET}"
audience = "{AUDIENCE}"

[server.rate_limit]
per_second = 1
burst = 3

[server.compression]
min_size = 64
"""

#: Plugin routes selected by path glob: these without auth and rate limit.
PUBLIC = """
[[policies]]
path = "/public/**"
auth = false
rate_limit = false
"""


def write_middleware_config(directory: Path, bridge: str, server: str = POLICIES, tail: str = PUBLIC) -> Path:
    """``spikard.toml`` serving the app: ``server`` (tables under
    ``[server]``) and ``tail`` (after the plugin) are TOML text."""
    text = "\n".join(
        [
            "[server]",
            'problem_type_base = "https://spikard.dev/errors/"',
            server,
            "[[plugins]]",
            'name = "py"',
            f"library = {toml_value(str(PLUGIN_LIB))}",
            f"settings = {toml_value(plugin_settings(APP, bridge))}",
            tail,
        ]
    )
    path = directory / "spikard.toml"
    path.write_text(text, encoding="utf-8")
    return path


def start(directory: Path, bridge: str = "queue", server: str = POLICIES, tail: str = PUBLIC) -> Host:
    if missing_binaries():
        pytest.skip("needs the binaries: cargo build --workspace")
    return Host.start(write_middleware_config(directory, bridge, server, tail))


@pytest.fixture(scope="module", params=BRIDGES)
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    host = start(tmp_path_factory.mktemp(f"middleware-{request.param}"), request.param)
    try:
        yield host
    finally:
        host.stop()


# -- tokens -------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_token(claims: Mapping[str, Any], secret: str = SECRET, alg: str = "HS256") -> str:
    """A compact JWS (RFC 7515) signed with HMAC-SHA256."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def claims(**extra: Any) -> dict[str, Any]:
    """Valid claims for an hour, with nested values to see them cross intact."""
    now = int(time.time())
    return {
        "sub": "user-42",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "name": "Ada Lovelace",
        "roles": ["admin", "dev"],
        "org": {"id": 7, "plan": "pro"},
        **extra,
    }


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# -- requests to rate-limited routes ------------------------------------------------


def limited(host: Host, method: str, path: str, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """A request to a route under the server's rate limit (1/s, burst 3):
    a 429 is the policy working, so wait its Retry-After and try again
    (the rate limit itself is tested on a host of its own)."""
    for _ in range(4):
        response = host.request(method, path, headers=headers)
        if response.status != 429:
            return response
        time.sleep(float(response.headers.get("retry-after", "1")))
    return response


# -- authentication: the principal reaches the handler ------------------------------


def test_valid_token_claims_reach_the_async_handler(host: Host) -> None:
    token_claims = claims()
    r = limited(host, "GET", "/me", bearer(make_token(token_claims)))
    assert r.status == 200, (r.status, r.body)
    assert r.json() == token_claims


def test_valid_token_claims_reach_the_sync_handler(host: Host) -> None:
    token_claims = claims(sub="user-43")
    r = limited(host, "GET", "/me/sync", bearer(make_token(token_claims)))
    assert r.status == 200, (r.status, r.body)
    assert r.json() == token_claims


def test_the_principal_beside_validated_parameters(host: Host) -> None:
    token_claims = claims()
    r = limited(host, "GET", "/me/principal?verbose=true", bearer(make_token(token_claims)))
    assert r.status == 200, (r.status, r.body)
    assert r.json() == {"auth": {"scheme": "jwt", "claims": token_claims}, "verbose": True}


def test_no_token_is_401_with_www_authenticate(host: Host) -> None:
    r = limited(host, "GET", "/me")
    problem(r, 401)
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer"), r.headers


def test_expired_token_is_401(host: Host) -> None:
    now = int(time.time())
    r = limited(host, "GET", "/me", bearer(make_token(claims(iat=now - 7200, exp=now - 3600))))
    body = problem(r, 401)
    assert "Token has expired" in (body["detail"], body["title"]), body
    assert "www-authenticate" in r.headers, r.headers


def test_wrong_signature_and_wrong_audience_are_401(host: Host) -> None:
    forged = make_token(claims(), secret="not-the-secret-0123456789abcdefgh")
    problem(limited(host, "GET", "/me", bearer(forged)), 401)
    problem(limited(host, "GET", "/me", bearer(make_token(claims(aud="someone-else")))), 401)


def test_authenticated_answers_are_compressed_too(host: Host) -> None:
    token_claims = claims(padding="x" * 200)
    r = limited(host, "GET", "/me", {"accept-encoding": "gzip", **bearer(make_token(token_claims))})
    assert r.status == 200, (r.status, r.body)
    assert r.headers.get("content-encoding") == "gzip", r.headers
    assert json.loads(gzip.decompress(r.body)) == token_claims


def test_public_routes_need_no_token_and_get_no_principal(host: Host) -> None:
    r = host.get("/public/whoami")
    assert r.status == 200, (r.status, r.body)
    assert r.json() == {"auth": None}


# -- CORS ------------------------------------------------------------------------------


def test_allowed_origin_on_a_decorator_route(host: Host) -> None:
    token_claims = claims()
    r = limited(host, "GET", "/me", {"origin": ORIGIN, **bearer(make_token(token_claims))})
    assert r.status == 200, (r.status, r.body)
    assert r.json() == token_claims
    assert r.headers.get("access-control-allow-origin") == ORIGIN, r.headers
    vary = [v.strip().lower() for name, value in r.header_list if name == "vary" for v in value.split(",")]
    assert "origin" in vary, r.header_list


def test_preflight_to_a_decorator_route(host: Host) -> None:
    r = limited(
        host,
        "OPTIONS",
        "/me",
        {"origin": ORIGIN, "access-control-request-method": "GET"},
    )
    assert r.status == 204, (r.status, r.body, r.headers)
    assert r.headers.get("access-control-allow-origin") == ORIGIN, r.headers
    methods = [m.strip().upper() for m in r.headers.get("access-control-allow-methods", "").split(",")]
    assert "GET" in methods, r.headers
    # A header outside `allow_headers` (none configured here, so only the
    # CORS-safelisted ones) is refused; browsers sending Authorization need
    # allow_headers = ["authorization"].
    refused = limited(
        host,
        "OPTIONS",
        "/me",
        {"origin": ORIGIN, "access-control-request-method": "GET", "access-control-request-headers": "x-custom"},
    )
    problem(refused, 403)


def test_refusals_carry_cors_headers_so_browsers_can_read_them(host: Host) -> None:
    r = limited(host, "GET", "/me", {"origin": ORIGIN})
    problem(r, 401)
    assert r.headers.get("access-control-allow-origin") == ORIGIN, r.headers
    assert "www-authenticate" in r.headers, r.headers


def test_disallowed_origin_is_403(host: Host) -> None:
    r = limited(host, "GET", "/me", {"origin": "https://evil.example.net", **bearer(make_token(claims()))})
    problem(r, 403)
    assert "access-control-allow-origin" not in r.headers, r.headers


# -- compression ------------------------------------------------------------------------


def test_big_json_is_gzipped_when_accepted(host: Host) -> None:
    from examples.middleware_app import BIG

    r = host.get("/public/big", headers={"accept-encoding": "gzip"})
    assert r.status == 200, (r.status, r.body)
    assert r.headers.get("content-encoding") == "gzip", r.headers
    assert r.content_type == "application/json"
    assert json.loads(gzip.decompress(r.body)) == BIG
    assert len(r.body) < len(json.dumps(BIG)) // 2

    plain = host.get("/public/big")
    assert "content-encoding" not in plain.headers, plain.headers
    assert plain.json() == BIG


def test_small_answers_are_not_compressed(host: Host) -> None:
    r = host.get("/public/small", headers={"accept-encoding": "gzip"})
    assert r.status == 200, (r.status, r.body)
    assert "content-encoding" not in r.headers, r.headers
    assert r.json() == {"ok": True}


# -- per-route timeout from the decorator ------------------------------------------------


def test_route_timeout_is_504_after_its_own_deadline(host: Host) -> None:
    r = limited(host, "GET", "/slow", bearer(make_token(claims())))
    problem(r, 504)
    assert r.elapsed < 1.5, f"answered after {r.elapsed:.2f} s; the route's timeout is 0.3 s"
    # Other routes keep the server's timeout (30 s by default).
    nap = host.get("/public/nap")
    assert nap.status == 200 and nap.elapsed >= 0.6, (nap.status, nap.elapsed)


# -- rate limit, on a host of its own (a full bucket) -------------------------------------


def test_fourth_quick_request_is_429_and_public_routes_are_never_limited(tmp_path: Path) -> None:
    host = start(tmp_path)
    try:
        headers = bearer(make_token(claims()))
        statuses = [host.get("/me", headers={"origin": ORIGIN, **headers}) for _ in range(4)]
        assert [r.status for r in statuses[:3]] == [200, 200, 200], [(r.status, r.body) for r in statuses]
        limited_answer = statuses[3]
        problem(limited_answer, 429)
        retry_after = limited_answer.headers.get("retry-after", "")
        assert retry_after.isdigit() and int(retry_after) >= 1, limited_answer.headers
        assert limited_answer.headers.get("access-control-allow-origin") == ORIGIN, limited_answer.headers
        # The public route (rate_limit = false) answers every quick request.
        public = [host.get("/public/small").status for _ in range(10)]
        assert public == [200] * 10, public
        # After Retry-After, /me answers again.
        time.sleep(int(retry_after))
        assert host.get("/me", headers=headers).status == 200
    finally:
        host.stop()


# -- API keys: the other principal ----------------------------------------------------------


def test_api_key_principal_reaches_the_handler(tmp_path: Path) -> None:
    keys = '[server.auth.api_key]\nkeys = ["sk_test_first_0123456789", "sk_test_second_0123456789"]\n'
    host = start(tmp_path, server=keys, tail="")
    try:
        r = host.get("/me/principal", headers={"x-api-key": "sk_test_second_0123456789"})
        assert r.status == 200, (r.status, r.body)
        assert r.json() == {"auth": {"scheme": "api_key", "key_index": 1}, "verbose": False}
        refused = host.get("/me/principal", headers={"x-api-key": "sk_test_wrong"})
        problem(refused, 401)
        assert "www-authenticate" in refused.headers, refused.headers
    finally:
        host.stop()


# -- no policies: no principal -------------------------------------------------------------


def test_without_policies_routes_get_no_principal(tmp_path: Path) -> None:
    host = start(tmp_path, server="", tail="")
    try:
        r = host.get("/me/principal")
        assert r.status == 200, (r.status, r.body)
        assert r.json() == {"auth": None, "verbose": False}
        # And /me, which requires a principal, says the host sent none.
        assert problem(host.get("/me"), 500)["detail"].startswith("request.auth is None")
        assert "access-control-allow-origin" not in host.get("/public/small", headers={"origin": ORIGIN}).headers
    finally:
        host.stop()
