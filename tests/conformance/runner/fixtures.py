"""Loading fixture files and translating them for the host.

A fixture describes a handler (route, method, per-source parameter schemas,
body schema, middleware), a request and an expected response. The data does
not always follow its own meta-schema, so everything here is defensive: any
case that cannot be understood raises `Unloadable` with a reason, and nothing
else escapes (the caller also catches stray exceptions per case).

The host takes, per source, a standard JSON Schema object
`{"type": "object", "properties": {...}, "required": [...]}`; the fixtures'
own keys (`annotation`, boolean `required`, `optional`, `uuidVersion`,
`source`, aliases, `{name:type}` route syntax, ...) are translated here and
never reach the host. So are the middleware blocks (auth, CORS, rate limit,
compression, static files), into the host's policy keys.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

# Categories the host is expected to handle now.
IN_SCOPE = (
    "query_params",
    "path_params",
    "headers",
    "cookies",
    "json_bodies",
    "validation_errors",
    "status_codes",
    "http_methods",
    "content_types",
    "url_encoded",
    "edge_cases",
    "body_limits",
    "multipart",
    "request_id",
    "request_timeout",
    "auth",
    "cors",
    "rate_limit",
    "static_files",
    "compression",
    "streaming",
    "sse",
)

NOT_IMPLEMENTED_REASON = "feature not implemented yet"

# Statuses the host itself must produce for a request that reaches a route
# declared by the fixture's handler block: a handler never gets to answer
# these, so the canned response of such a route is a neutral success and the
# host has to produce the expected error on its own.
HOST_STATUSES = frozenset({400, 405, 411, 413, 414, 415, 422, 431})

MISSING = object()

# `<<uuid>>`, `<<present>>`, ...: a placeholder, not a literal value.
TOKEN = re.compile(r"^<<([a-z_]+)>>$")



@dataclass
class Timing:
    """The request id and timeout middleware of a case, in the host's terms."""

    request_timeout_ms: int | None = None
    delay_ms: int | None = None
    request_id: bool | None = None


def translate_timing(mw: dict, notes: list[str]) -> Timing:
    """`middleware.request_id.enabled` becomes the route's `request_id`;
    `middleware.request_timeout` its `request_timeout_ms` (from `seconds`) and
    a handler that answers after `sleep_ms`. Values the host cannot take are
    noted and dropped."""
    out = Timing()
    rid = mw.get("request_id")
    if isinstance(rid, dict) and isinstance(rid.get("enabled"), bool):
        out.request_id = rid["enabled"]
    elif rid is not None:
        notes.append("middleware.request_id: expected {enabled: bool}, ignored")
    rt = mw.get("request_timeout")
    if isinstance(rt, dict):
        seconds = rt.get("seconds")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and 0 < seconds <= 3600:
            out.request_timeout_ms = max(1, round(seconds * 1000))
        elif seconds is not None:
            notes.append(f"middleware.request_timeout.seconds {seconds!r}: not 0 < s <= 3600, ignored")
        sleep = rt.get("sleep_ms")
        if isinstance(sleep, int) and not isinstance(sleep, bool) and sleep >= 0:
            out.delay_ms = sleep
    elif rt is not None:
        notes.append("middleware.request_timeout: not an object, ignored")
    return out

class Unloadable(Exception):
    """A case the runner cannot turn into a route and a request."""


@dataclass
class Expected:
    status: int
    body: Any = MISSING
    partial: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Validation errors (from body.errors or a top-level validation_errors).
    errors: list | None = None


@dataclass
class Request:
    method: str
    target: str  # path + optional "?query", already percent-encoded, without prefix
    headers: list[tuple[str, str]]
    body: bytes | None
    # The fixture fixed Content-Length itself (possibly a wrong one): send it
    # verbatim and half-close the connection after the body.
    explicit_length: bool = False


@dataclass
class Route:
    method: str
    path: str  # template with {name} and {*name}, without prefix
    schemas: dict[str, dict]  # path/query/headers/cookies/body -> JSON Schema
    body_limit: int | None = None
    max_json_depth: int | None = None  # the route's `max_json_depth`
    # The handler's request head limit; the host's is server-wide (headers are
    # read before routing), so the config takes the smallest of all cases.
    max_header_bytes: int | None = None
    # `middleware.request_timeout.seconds` as the route's `request_timeout_ms`.
    request_timeout_ms: int | None = None
    # `middleware.request_timeout.sleep_ms`: the route answers through the echo
    # plugin's `delay` handler after this long.
    delay_ms: int | None = None
    # `middleware.request_id.enabled` as the route's `request_id`.
    request_id: bool | None = None
    # The route's policy tables, already in the host's key names (README,
    # "Middleware"): `cors`, `auth` ({jwt, api_key}), `rate_limit`, `compression`.
    cors: dict | None = None
    auth: dict | None = None
    rate_limit: dict | None = None
    compression: dict | None = None


@dataclass
class Case:
    id: str  # "category/file.json"
    category: str
    file: Path
    name: str
    route: Route
    request: Request
    expected: Expected
    # True when the host (not the handler) must produce the expected answer.
    host_answers: bool
    notes: list[str] = field(default_factory=list)
    # Static file mounts: such a case has no route, the host serves the files.
    statics: list["StaticMount"] = field(default_factory=list)
    # Rate limit warm-up requests sent before the case's own request.
    warmup: "Warmup | None" = None
    # Statuses the case's middleware produces itself (401/403 auth, 403 CORS,
    # 429 rate limit): the canned answer must never be one of them.
    middleware_statuses: frozenset = frozenset()
    # A streamed answer (streaming and sse cases): the route is answered by
    # the echo plugin's `stream` handler with these chunks.
    stream: "Stream | None" = None


@dataclass
class Stream:
    """A streamed answer: the chunks the echo plugin's `stream` handler
    writes, `interval_ms` apart, and what the response must then be."""

    chunks: list[bytes]
    content_type: str | None
    interval_ms: int = 0
    # SSE: the examples the events carry, in order, and the fixture's schema
    # every event's data must validate against. None for a plain stream.
    sse_examples: list | None = None
    sse_schema: Any = None

    @property
    def body(self) -> bytes:
        """The exact body expected: the chunks, concatenated."""
        return b"".join(self.chunks)

    def min_span_s(self) -> float:
        """The least time from the head to the body's end of an answer that
        was really streamed: half the time its chunks are written over (a
        body buffered and sent at once arrives in one go)."""
        return (len(self.chunks) - 1) * self.interval_ms / 2000


# --------------------------------------------------------------------------
# middleware: auth, CORS, rate limit, compression, static files
#
# The fixtures' middleware blocks are translated into the host's policy
# tables (README.md, "Middleware"), in the host's key names. `enabled: false`
# means "not configured". A value the host could not take makes the case
# unloadable when the case is meaningless without it (a JWT secret, API keys,
# a limit); keys the runner does not know are noted and dropped.


@dataclass
class Warmup:
    """`rate_limit.warmup_requests` identical requests, each expected to get
    `expect_status`, `sleep_ms` apart, before the case's own request."""

    count: int
    expect_status: int = 200
    sleep_ms: int = 0


@dataclass
class StaticMount:
    """One `static_files` entry: served by the host under `/c{N}` + `prefix`
    from `static/c{N}_{i}/`, where the runner writes `files` first."""

    prefix: str  # the fixture's route_prefix ("/public"; "" for the root)
    files: list[tuple[str, bytes]]  # (relative path, content)
    index: bool | None = None
    cache_control: str | None = None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def enabled(raw: Any, where: str, notes: list[str]) -> bool:
    """Whether a middleware table is configured: an object without
    `enabled: false`. Anything but an object is unloadable."""
    if not isinstance(raw, dict):
        raise Unloadable(f"{where} is not an object")
    flag = raw.get("enabled", True)
    if not isinstance(flag, bool):
        notes.append(f"{where}.enabled {flag!r} is not a boolean; treated as enabled")
        return True
    return flag


def note_unknown(raw: dict, known: set[str], where: str, notes: list[str]) -> None:
    for key in raw:
        if key not in known:
            notes.append(f"{where}.{key}: not expressible in the host config, ignored")


def string_list(value: Any, where: str) -> list[str]:
    """A list of strings (a lone string counts as a list of one)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise Unloadable(f"{where} must be a list of strings, got {json.dumps(value)}")


def translate_jwt(raw: Any, notes: list[str]) -> dict | None:
    """`middleware.jwt_auth{algorithm, secret, audience, issuer, leeway}` ->
    the host's `auth.jwt` (an absent leeway stays absent: the host's default)."""
    where = "middleware.jwt_auth"
    if not enabled(raw, where, notes):
        return None
    note_unknown(raw, {"enabled", "algorithm", "secret", "audience", "issuer", "leeway", "required_claims"}, where, notes)
    secret = raw.get("secret")
    if not isinstance(secret, str) or not secret:
        raise Unloadable(f"{where}.secret is missing: a JWT policy needs its key")
    out: dict[str, Any] = {}
    if "algorithm" in raw:
        if not isinstance(raw["algorithm"], str):
            raise Unloadable(f"{where}.algorithm must be a string")
        out["algorithm"] = raw["algorithm"]
    out["secret"] = secret
    if raw.get("audience") is not None:
        out["audience"] = string_list(raw["audience"], f"{where}.audience")
    if raw.get("issuer") is not None:
        if not isinstance(raw["issuer"], str):
            raise Unloadable(f"{where}.issuer must be a string")
        out["issuer"] = raw["issuer"]
    if "leeway" in raw:
        if not is_int(raw["leeway"]) or raw["leeway"] < 0:
            raise Unloadable(f"{where}.leeway must be a whole number of seconds >= 0")
        out["leeway"] = raw["leeway"]
    if raw.get("required_claims") is not None:
        out["required_claims"] = string_list(raw["required_claims"], f"{where}.required_claims")
    return out


def translate_api_key(raw: Any, notes: list[str]) -> dict | None:
    """`middleware.api_key_auth{keys, header_name}` -> the host's `auth.api_key`."""
    where = "middleware.api_key_auth"
    if not enabled(raw, where, notes):
        return None
    note_unknown(raw, {"enabled", "keys", "header_name"}, where, notes)
    keys = string_list(raw.get("keys"), f"{where}.keys") if raw.get("keys") is not None else []
    if not keys or not all(keys):
        raise Unloadable(f"{where}.keys must be a non-empty list of non-empty keys")
    out: dict[str, Any] = {"keys": keys}
    if raw.get("header_name") is not None:
        if not isinstance(raw["header_name"], str) or not raw["header_name"]:
            raise Unloadable(f"{where}.header_name must be a header name")
        out["header"] = raw["header_name"]
    # The fixtures' reference middleware also takes the key from the `api_key`
    # query parameter although its config names only the header: auth/08's
    # expected detail says "Expected 'X-API-Key' header or 'api_key' query
    # parameter", and auth/14 authenticates with `?api_key=...` under the same
    # config. The host takes the query parameter only when told, so say so.
    out["query"] = "api_key"
    return out


def translate_auth(mw: dict, notes: list[str]) -> dict | None:
    """The host's per-route `auth` table, or None when neither scheme is on."""
    out = {}
    if "jwt_auth" in mw:
        jwt = translate_jwt(mw["jwt_auth"], notes)
        if jwt is not None:
            out["jwt"] = jwt
    if "api_key_auth" in mw:
        api_key = translate_api_key(mw["api_key_auth"], notes)
        if api_key is not None:
            out["api_key"] = api_key
    return out or None


def translate_rate_limit(raw: Any, notes: list[str]) -> tuple[dict | None, Warmup | None]:
    """`middleware.rate_limit{per_second, burst}` -> the host's `rate_limit`;
    `warmup_requests`, `warmup_expect_status`, `sleep_ms_between` -> the
    requests the runner sends first (default: expect 200, no pause)."""
    where = "middleware.rate_limit"
    if not enabled(raw, where, notes):
        return None, None
    note_unknown(
        raw, {"enabled", "per_second", "burst", "warmup_requests", "warmup_expect_status", "sleep_ms_between"}, where, notes
    )
    per_second = raw.get("per_second")
    if isinstance(per_second, float) and per_second.is_integer():
        per_second = int(per_second)
    if not is_int(per_second) or per_second <= 0:
        raise Unloadable(f"{where}.per_second must be a positive whole number, got {json.dumps(per_second)}")
    out: dict[str, Any] = {"per_second": per_second}
    if "burst" in raw:
        if not is_int(raw["burst"]) or raw["burst"] <= 0:
            raise Unloadable(f"{where}.burst must be a positive whole number, got {json.dumps(raw['burst'])}")
        out["burst"] = raw["burst"]
    warmup = None
    count = raw.get("warmup_requests", 0)
    if not is_int(count) or not 0 <= count <= 1000:
        raise Unloadable(f"{where}.warmup_requests must be a whole number from 0 to 1000")
    if count:
        status = raw.get("warmup_expect_status", 200)
        if not is_int(status) or not 100 <= status <= 599:
            raise Unloadable(f"{where}.warmup_expect_status {status!r} is not an HTTP status")
        sleep = raw.get("sleep_ms_between", 0)
        if not is_int(sleep) or not 0 <= sleep <= 60_000:
            raise Unloadable(f"{where}.sleep_ms_between must be 0 to 60000 ms")
        warmup = Warmup(count, status, sleep)
    return out, warmup


# The fixtures' encoding flags -> the host's encoding names.
ENCODINGS = (("gzip", "gzip"), ("brotli", "br"), ("zstd", "zstd"))
QUALITY_NAMES = ("fastest", "default", "best")


def translate_compression(raw: Any, notes: list[str]) -> dict | None:
    """`middleware.compression{gzip, brotli, zstd, min_size, quality}` -> the
    host's `compression`; an encoding is on only when its flag is true."""
    where = "middleware.compression"
    if not enabled(raw, where, notes):
        return None
    note_unknown(raw, {"enabled", "min_size", "quality", *(k for k, _ in ENCODINGS)}, where, notes)
    for key, _ in ENCODINGS:
        if key in raw and not isinstance(raw[key], bool):
            raise Unloadable(f"{where}.{key} must be true or false")
    encodings = [name for key, name in ENCODINGS if raw.get(key) is True]
    if not encodings:
        notes.append(f"{where}: no encoding is enabled; compression not configured")
        return None
    out: dict[str, Any] = {"encodings": encodings}
    if "min_size" in raw:
        if not is_int(raw["min_size"]) or raw["min_size"] < 0:
            raise Unloadable(f"{where}.min_size must be a byte count >= 0")
        out["min_size"] = raw["min_size"]
    if "quality" in raw:
        q = raw["quality"]
        if not (is_int(q) or q in QUALITY_NAMES):
            raise Unloadable(f"{where}.quality must be a level or one of {', '.join(QUALITY_NAMES)}")
        out["quality"] = q
    return out


def static_path(path: Any, where: str) -> str:
    """A file path relative to its mount; `..`, absolute paths and empty
    segments are refused (the runner writes these files to disk)."""
    if not isinstance(path, str) or not path.strip("/"):
        raise Unloadable(f"{where}.path must be a relative file path")
    if "\\" in path or "\x00" in path:
        raise Unloadable(f"{where}.path {path!r} has a backslash or NUL")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("..", ".") for part in path.split("/")) or "//" in path:
        raise Unloadable(f"{where}.path {path!r} must stay inside its directory (no '..', no leading '/')")
    return pure.as_posix()


def translate_static(raw: Any, notes: list[str]) -> list[StaticMount]:
    """`middleware.static_files[{route_prefix, index_file, cache_control,
    files[{path, content}]}]` -> mounts the runner writes and the host serves."""
    where = "middleware.static_files"
    entries = [raw] if isinstance(raw, dict) else raw
    if not isinstance(entries, list):
        raise Unloadable(f"{where} must be a list of mounts")
    mounts = []
    for i, entry in enumerate(entries):
        w = f"{where}[{i}]"
        if not enabled(entry, w, notes):
            continue
        note_unknown(entry, {"enabled", "route_prefix", "index_file", "cache_control", "files"}, w, notes)
        prefix = entry.get("route_prefix")
        if not isinstance(prefix, str) or not prefix.startswith("/") or "{" in prefix or "?" in prefix:
            raise Unloadable(f"{w}.route_prefix must be a literal path starting with '/'")
        prefix = prefix.rstrip("/")
        index = entry.get("index_file")
        if index is not None and not isinstance(index, bool):
            raise Unloadable(f"{w}.index_file must be true or false")
        cache = entry.get("cache_control")
        if cache is not None and not isinstance(cache, str):
            raise Unloadable(f"{w}.cache_control must be a string")
        files = entry.get("files") or []
        if not isinstance(files, list):
            raise Unloadable(f"{w}.files must be a list")
        out_files = []
        seen = set()
        for j, f in enumerate(files):
            fw = f"{w}.files[{j}]"
            if not isinstance(f, dict):
                raise Unloadable(f"{fw} is not an object")
            path = static_path(f.get("path"), fw)
            content = f.get("content", "")
            if not isinstance(content, str):
                raise Unloadable(f"{fw}.content must be a string")
            if path in seen:
                raise Unloadable(f"{fw}.path {path!r} is given twice")
            seen.add(path)
            out_files.append((path, content.encode("utf-8")))
        mounts.append(StaticMount(prefix, out_files, index, cache))
    return mounts


# The middleware keys translated above (anything else is noted and ignored).
KNOWN_MIDDLEWARE = frozenset(
    {"body_limit", "request_id", "request_timeout", "jwt_auth", "api_key_auth", "rate_limit", "compression", "static_files"}
)

# The fixtures' CORS keys -> the host's.
CORS_KEYS = {
    "allowed_origins": "allow_origins",
    "allowed_methods": "allow_methods",
    "allowed_headers": "allow_headers",
    "expose_headers": "expose_headers",
    "allow_credentials": "allow_credentials",
    "max_age": "max_age",
}


def translate_cors(raw: Any, notes: list[str]) -> dict | None:
    """`handler.cors{allowed_origins, allowed_methods, allowed_headers,
    expose_headers, allow_credentials, max_age}` -> the host's `cors`."""
    where = "handler.cors"
    if not enabled(raw, where, notes):
        return None
    note_unknown(raw, {"enabled", *CORS_KEYS}, where, notes)
    out: dict[str, Any] = {}
    for key, host_key in CORS_KEYS.items():
        if raw.get(key) is None:
            continue
        value = raw[key]
        if key == "allow_credentials":
            if not isinstance(value, bool):
                raise Unloadable(f"{where}.{key} must be true or false")
        elif key == "max_age":
            if not is_int(value) or value < 0:
                raise Unloadable(f"{where}.{key} must be a whole number of seconds >= 0")
        else:
            value = string_list(value, f"{where}.{key}")
        out[host_key] = value
    if not out.get("allow_origins"):
        raise Unloadable(f"{where}.allowed_origins is missing: a CORS policy needs its origins")
    return out


def is_preflight(request: Request) -> bool:
    """OPTIONS with Origin and Access-Control-Request-Method (Fetch, CORS-preflight)."""
    return (
        request.method == "OPTIONS"
        and header_get(request.headers, "origin") is not None
        and bool((header_get(request.headers, "access-control-request-method") or "").strip())
    )


def field_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def infer_cors(request: Request, expected: Expected, notes: list[str]) -> dict | None:
    """The CORS policy a case's expectation implies, for the cors cases that
    carry no `handler.cors` (their policy lived only in the test they were
    taken from): the expected Access-Control-* headers say what was allowed.
    None when nothing is implied (no Access-Control-Allow-Origin expected)."""
    exp = {k.lower(): v for k, v in expected.headers.items() if isinstance(v, str) and not TOKEN.match(v)}
    origin = header_get(request.headers, "origin")
    acao = exp.get("access-control-allow-origin")
    if acao is None:
        notes.append("cors: no handler.cors and no Access-Control-Allow-Origin expected; no CORS policy configured")
        return None
    if acao != "*" and acao != origin:
        notes.append(f"cors: expected Access-Control-Allow-Origin {acao!r} is not the request's Origin {origin!r}")
    out: dict[str, Any] = {"allow_origins": [acao]}
    lists = (
        ("access-control-allow-methods", "allow_methods"),
        ("access-control-allow-headers", "allow_headers"),
        ("access-control-expose-headers", "expose_headers"),
    )
    for header, key in lists:
        if header in exp and field_list(exp[header]):
            out[key] = field_list(exp[header])
    age = exp.get("access-control-max-age", "").strip()
    if age.isdigit():
        out["max_age"] = int(age)
    elif age:
        notes.append(f"cors: Access-Control-Max-Age {age!r} is not a number; not configured")
    for header, key in (
        ("access-control-allow-credentials", "allow_credentials"),
        ("access-control-allow-private-network", "allow_private_network"),
    ):
        if exp.get(header, "").strip().lower() == "true":
            out[key] = True
    notes.append("cors: policy inferred from the expected Access-Control-* headers: " + json.dumps(out))
    return out


def translate_middleware(
    handler: dict, category: str, request: Request, expected: Expected, notes: list[str]
) -> "Middleware":
    """All of a case's middleware, in the host's terms (see each translator)."""
    out = Middleware()
    mw = handler.get("middleware")
    if mw is not None and not isinstance(mw, dict):
        raise Unloadable("handler.middleware is not an object")
    mw = mw or {}
    bl = mw.get("body_limit")
    if isinstance(bl, dict) and is_int(bl.get("max_bytes")) and bl["max_bytes"] > 0:
        out.body_limit = bl["max_bytes"]
    out.timing = translate_timing(mw, notes)
    out.auth = translate_auth(mw, notes)
    if "rate_limit" in mw:
        out.rate_limit, out.warmup = translate_rate_limit(mw["rate_limit"], notes)
    if "compression" in mw:
        out.compression = translate_compression(mw["compression"], notes)
    if "static_files" in mw:
        out.statics = translate_static(mw["static_files"], notes)
    for key in mw:
        if key not in KNOWN_MIDDLEWARE:
            notes.append(f"middleware.{key}: not expressible in the host config, ignored")
    if "cors" in handler:
        out.cors = translate_cors(handler["cors"], notes)
    elif category == "cors":
        # Only the cors fixtures get an inferred policy: elsewhere expected
        # Access-Control-* headers are the handler's own (http_methods/11
        # routes an OPTIONS request to a handler).
        out.cors = infer_cors(request, expected, notes)
    return out


@dataclass
class Middleware:
    body_limit: int | None = None
    timing: Timing = field(default_factory=Timing)
    auth: dict | None = None
    cors: dict | None = None
    rate_limit: dict | None = None
    compression: dict | None = None
    warmup: Warmup | None = None
    statics: list[StaticMount] = field(default_factory=list)

    def statuses(self) -> frozenset:
        """The statuses these middlewares answer with themselves."""
        out: set[int] = set()
        if self.auth:
            out |= {401, 403}
        if self.cors:
            out.add(403)
        if self.rate_limit:
            out.add(429)
        return frozenset(out)



# --------------------------------------------------------------------------
# discovery


def is_meta_schema(data: Any) -> bool:
    """Per-category `schema.json` files and other non-case documents."""
    return isinstance(data, dict) and "$schema" in data and "request" not in data


def discover(root: Path) -> list[Path]:
    """Every `category/*.json` file under `root`, sorted."""
    files = []
    for category in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(category.glob("*.json")):
            if f.is_file():
                files.append(f)
    return files


# --------------------------------------------------------------------------
# templates in request data: {{ repeat 'x' 2000 times }}

_REPEAT = re.compile(r"\{\{\s*repeat\s+(['\"])(.*?)\1\s+(\d+)\s+times\s*\}\}")


def expand(value: Any) -> Any:
    if isinstance(value, str):
        def one(m: re.Match) -> str:
            n = int(m.group(3))
            if n > 10_000_000:
                raise Unloadable(f"template asks for {n} repetitions")
            return m.group(2) * n
        return _REPEAT.sub(one, value)
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------
# schema translation

# `{name:type}` route syntax and Python annotations -> JSON Schema.
TYPE_SYNTAX = {
    "int": {"type": "integer"},
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "number": {"type": "number"},
    "decimal": {"type": "number"},
    "str": {"type": "string"},
    "string": {"type": "string"},
    "bool": {"type": "boolean"},
    "boolean": {"type": "boolean"},
    "uuid": {"type": "string", "format": "uuid"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "path": {"type": "string"},
}

# Parameter keys that are not JSON Schema and carry nothing the host can use.
_DROPPED = (
    "annotation",
    "uuidVersion",
    "source",
    "samesite",
    "secure",
    "httponly",
    "content_type",
    "validate_magic_numbers",
    "in",
)


# Dropped keys that carry a constraint the host is then not asked to check.
_MEANINGFUL = ("uuidVersion", "content_type", "validate_magic_numbers")

# File parameter keys -> the keywords the host checks on uploaded files (README,
# "Uploaded files"): allowed media types, sizes in bytes, signature check.
_FILE_KEYWORDS = {
    "max_size": "maxLength",
    "min_size": "minLength",
    "validate_magic_numbers": "x-magic-numbers",
}


def annotation_schema(annotation: str) -> tuple[dict | None, bool]:
    """(schema, optional) for a Python annotation such as `list[int]`."""
    text = annotation.strip()
    optional = False
    m = re.fullmatch(r"(?:typing\.)?Optional\[(.*)\]", text)
    if m:
        text, optional = m.group(1).strip(), True
    parts = [p.strip() for p in text.split("|")]
    if len(parts) > 1 and "None" in parts:
        parts = [p for p in parts if p != "None"]
        optional = True
        text = parts[0] if len(parts) == 1 else text
    m = re.fullmatch(r"(?:typing\.)?(?:list|List|set|Set|tuple|Tuple)\[(.*)\]", text)
    if m:
        item, _ = annotation_schema(m.group(1))
        schema = {"type": "array"}
        if item:
            schema["items"] = item
        return schema, optional
    base = TYPE_SYNTAX.get(text.lower())
    return (dict(base) if base else None), optional


def translate_file_keys(spec: dict, notes: list[str], where: str) -> None:
    """A file parameter's `content_type` list, sizes and magic-number flag, in place."""
    ctype = spec.pop("content_type", None)
    if isinstance(ctype, str):
        ctype = [ctype]
    if isinstance(ctype, list) and ctype and all(isinstance(t, str) for t in ctype):
        spec["contentMediaType"] = ", ".join(ctype)
    elif ctype is not None:
        notes.append(f"{where}: content_type={json.dumps(ctype)} is not a list of media types; dropped")
    for key, keyword in _FILE_KEYWORDS.items():
        if key in spec:
            spec[keyword] = spec.pop(key)


def translate_param(
    spec: Any, notes: list[str], where: str, file: bool = False
) -> tuple[str | None, dict, bool]:
    """One parameter spec -> (alias, standard schema, required). `file`: a file
    parameter, whose file keys become the host's file keywords."""
    if isinstance(spec, str):  # a bare type name
        base = TYPE_SYNTAX.get(spec.lower())
        return None, dict(base) if base else {}, True
    if not isinstance(spec, dict):
        notes.append(f"{where}: parameter spec {spec!r} is not an object; accepting any value")
        return None, {}, True
    spec = copy.deepcopy(spec)
    if file:
        translate_file_keys(spec, notes, where)
    alias = spec.pop("alias", None) or spec.pop("validation_alias", None)
    optional = spec.pop("optional", None)
    required = spec.pop("required", None)
    annotation = spec.get("annotation")
    ann_optional = False
    if isinstance(annotation, str) and "type" not in spec:
        ann_schema, ann_optional = annotation_schema(annotation)
        if ann_schema:
            for k, v in ann_schema.items():
                spec.setdefault(k, v)
    elif isinstance(annotation, str):
        _, ann_optional = annotation_schema(annotation)
    for key in _DROPPED:
        if key in spec:
            value = spec.pop(key)
            if key in _MEANINGFUL:
                notes.append(f"{where}: {key}={json.dumps(value)} is not JSON Schema; dropped")
    if not isinstance(required, bool):
        if isinstance(required, list):  # a nested object's list: keep it
            spec["required"] = required
        required = None
    if required is None:
        required = not (optional is True or ann_optional or "default" in spec)
    return (alias if isinstance(alias, str) else None), spec, required


def object_schema(params: Any, notes: list[str], where: str, file: bool = False) -> dict:
    """A fixture's `{name: spec}` mapping -> a standard object schema."""
    if not isinstance(params, dict):
        raise Unloadable(f"{where} must map names to schemas, got {type(params).__name__}")
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in params.items():
        alias, schema, req = translate_param(spec, notes, f"{where}.{name}", file)
        key = alias or str(name)
        props[key] = schema
        if req:
            required.append(key)
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


_PARAM = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def translate_route(route: str) -> tuple[str, dict[str, dict]]:
    """`/files/{file_path:path}` -> (`/files/{*file_path}`, auto schemas)."""
    path = route.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    auto: dict[str, dict] = {}
    out = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        m = _PARAM.fullmatch(seg)
        if m:
            name, kind = m.group(1).strip(), (m.group(2) or "").strip()
            if name.startswith("*"):
                name, kind = name[1:], kind or "path"
            if not _IDENT.fullmatch(name):
                raise Unloadable(f"route parameter {{{name}}} is not an identifier")
            if kind == "path":
                if i != len(segments) - 1:
                    raise Unloadable(f"catch-all {{{name}:path}} is not the last segment of {route}")
                out.append("{*" + name + "}")
                auto[name] = {"type": "string"}
            else:
                out.append("{" + name + "}")
                if kind:
                    auto[name] = dict(TYPE_SYNTAX.get(kind.lower(), {"type": "string"}))
        elif "{" in seg or "}" in seg:
            raise Unloadable(f"route segment {seg!r} is not a whole-segment parameter")
        elif seg == "" and 0 < i < len(segments) - 1:
            raise Unloadable(f"route {route!r} has an empty segment")
        else:
            out.append(quote(seg, safe="!$&'()*+,;=:@-._~%"))
    return "/".join(out), auto


def param_names(template: str) -> list[str]:
    names = []
    for seg in template.split("/"):
        if seg.startswith("{") and seg.endswith("}"):
            names.append(seg[1:-1].lstrip("*"))
    return names


def template_matches(template: str, path: str) -> bool:
    """Whether a request path (no query) would reach this route template."""
    t = template.split("/")
    p = path.split("/")
    for i, seg in enumerate(t):
        if seg.startswith("{*"):
            return len(p) > i and "/".join(p[i:]) != ""
        if i >= len(p):
            return False
        if seg.startswith("{"):
            if p[i] == "":
                return False
        elif seg != p[i]:
            return False
    return len(p) == len(t)


def build_schemas(handler: dict, route_path: str, auto: dict[str, dict], notes: list[str]) -> dict[str, dict]:
    params = handler.get("parameters") or {}
    if not isinstance(params, dict):
        raise Unloadable("handler.parameters must be an object")
    schemas: dict[str, dict] = {}
    sources = {
        "path": "path",
        "query": "query",
        "header": "headers",
        "headers": "headers",
        "cookie": "cookies",
        "cookies": "cookies",
    }
    files_schema = None
    for source, spec in params.items():
        if source in ("files", "file", "form"):
            files_schema = object_schema(spec, notes, f"parameters.{source}", file=source != "form")
            continue
        target = sources.get(source)
        if target is None:
            notes.append(f"parameters.{source}: unknown source, ignored")
            continue
        schema = object_schema(spec, notes, f"parameters.{source}")
        if target in schemas:  # header + headers given: merge
            schemas[target]["properties"].update(schema["properties"])
            req = set(schemas[target].get("required", [])) | set(schema.get("required", []))
            if req:
                schemas[target]["required"] = sorted(req)
        else:
            schemas[target] = schema

    # Path parameters: only those of the template, always required; the
    # `{name:type}` syntax gives a base schema the explicit one refines.
    names = param_names(route_path)
    declared = schemas.get("path", {}).get("properties", {})
    unknown = [n for n in declared if n not in names]
    for n in unknown:
        notes.append(f"parameters.path.{n}: not in the route template, dropped")
        del declared[n]
    if names and (declared or auto):
        props = {}
        for n in names:
            merged = dict(auto.get(n, {}))
            merged.update(declared.get(n, {}))
            if n in declared or n in auto:
                props[n] = merged
        if props:
            schemas["path"] = {"type": "object", "properties": props, "required": [n for n in names if n in props]}
    elif "path" in schemas and not names:
        del schemas["path"]

    body = handler.get("body_schema", MISSING)
    if body is not MISSING and body is not None:
        if not isinstance(body, (dict, bool)):
            raise Unloadable("handler.body_schema is not a schema object")
        schemas["body"] = copy.deepcopy(body)
    if files_schema is not None:
        # File parameters are body fields of a multipart form.
        for props in files_schema["properties"].values():
            props.setdefault("type", "string")
            props.setdefault("format", "binary")
        body = schemas.get("body")
        if body is None:
            schemas["body"] = files_schema
        elif isinstance(body, dict) and body.get("type", "object") == "object":
            body.setdefault("properties", {})
            for k, v in files_schema["properties"].items():
                existing = body["properties"].setdefault(k, v)
                if existing is not v and isinstance(existing, dict):
                    # The body schema declares the field: add the file keywords to it.
                    for keyword in ("contentMediaType", *_FILE_KEYWORDS.values()):
                        if keyword in v:
                            existing.setdefault(keyword, v[keyword])
            req = list(body.get("required", []))
            req += [r for r in files_schema.get("required", []) if r not in req]
            if req:
                body["required"] = req
        else:
            notes.append("parameters.files: body schema is not an object; file parameters ignored")
    return schemas


# --------------------------------------------------------------------------
# request building


def scalar_text(value: Any) -> str:
    """A JSON scalar as it appears in a query string or form field."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def form_pairs(data: Any, where: str) -> list[tuple[str, str]]:
    if data is None:
        return []
    if not isinstance(data, dict):
        raise Unloadable(f"{where} must be an object")
    pairs = []
    for k, v in data.items():
        if isinstance(v, list):
            pairs.extend((str(k), scalar_text(item)) for item in v)
        else:
            pairs.append((str(k), scalar_text(v)))
    return pairs


def urlencode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


_PATH_SAFE = "/!$&'()*+,;=:@-._~%"
_QUERY_SAFE = "/?!$&'()*+,;=:@-._~%"


def encode_target(path: str) -> str:
    """Percent-encodes what is not allowed in a request target, keeping %XX."""
    if "?" in path:
        p, q = path.split("?", 1)
        return quote(p, safe=_PATH_SAFE) + "?" + quote(q, safe=_QUERY_SAFE)
    return quote(path, safe=_PATH_SAFE)


def multipart_body(files: Any, fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    # Fixed, so generated requests are the same on every run.
    boundary = "spikard-conformance-5f0c1d7e9a3b"
    b = boundary.encode()
    out = bytearray()
    for name, value in fields:
        out += b"--" + b + b"\r\n"
        out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    if files is None:
        files = []
    if isinstance(files, dict):  # {field: {...}} or {field: "content"}
        files = [
            dict(v, field_name=k) if isinstance(v, dict) else {"field_name": k, "content": v}
            for k, v in files.items()
        ]
    if not isinstance(files, list):
        raise Unloadable("request.files must be a list")
    for i, f in enumerate(files):
        if not isinstance(f, dict):
            raise Unloadable(f"request.files[{i}] is not an object")
        name = f.get("field_name") or f.get("name")
        if not isinstance(name, str):
            raise Unloadable(f"request.files[{i}] has no field_name")
        if "magic_bytes" in f:
            try:
                content = bytes.fromhex(str(f.get("magic_bytes") or ""))
            except ValueError as e:
                raise Unloadable(f"request.files[{i}].magic_bytes: {e}") from None
            extra = f.get("content")
            if isinstance(extra, str):
                content += extra.encode()
        else:
            raw = f.get("content", "")
            if raw is None:
                raw = ""
            if not isinstance(raw, str):
                raw = json.dumps(raw)
            if f.get("content_encoding") == "base64":
                try:
                    content = base64.b64decode(raw)
                except ValueError as e:
                    raise Unloadable(f"request.files[{i}].content: {e}") from None
            else:
                content = raw.encode()
        disposition = f'form-data; name="{name}"'
        filename = f.get("filename")
        if isinstance(filename, str):
            disposition += f'; filename="{filename}"'
        head = [("Content-Disposition", disposition)]
        ctype = f.get("content_type", MISSING)
        if ctype is MISSING and isinstance(filename, str):
            ctype = "application/octet-stream"
        if isinstance(ctype, str):
            head.append(("Content-Type", ctype))
        extra_headers = f.get("headers") or {}
        if isinstance(extra_headers, dict):
            head += [(str(k), str(v)) for k, v in extra_headers.items()]
        out += b"--" + b + b"\r\n"
        for k, v in head:
            out += f"{k}: {v}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    out += b"--" + b + b"--\r\n"
    return bytes(out), boundary


def header_get(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def header_set(headers: list[tuple[str, str]], name: str, value: str) -> None:
    for i, (k, _) in enumerate(headers):
        if k.lower() == name.lower():
            headers[i] = (k, value)
            return
    headers.append((name, value))


def build_request(req: dict, notes: list[str]) -> Request:
    method = req.get("method")
    if not isinstance(method, str) or not method.strip():
        raise Unloadable("request.method is missing")
    method = method.strip().upper()
    path = req.get("path")
    if not isinstance(path, str) or not path:
        raise Unloadable("request.path is missing")
    if not path.startswith("/"):
        path = "/" + path
    path = expand(path)

    if "?" not in path:
        qs = req.get("query_string")
        if isinstance(qs, str) and qs:
            path += "?" + expand(qs)
        elif req.get("query_params"):
            path += "?" + urlencode(form_pairs(expand(req.get("query_params")), "request.query_params"))
    target = encode_target(path)

    headers: list[tuple[str, str]] = []
    raw_headers = req.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise Unloadable("request.headers must be an object")
    for k, v in expand(raw_headers).items():
        headers.append((str(k), scalar_text(v)))
    cookies = req.get("cookies") or {}
    if cookies:
        if not isinstance(cookies, dict):
            raise Unloadable("request.cookies must be an object")
        text = "; ".join(f"{k}={scalar_text(v)}" for k, v in expand(cookies).items())
        existing = header_get(headers, "cookie")
        header_set(headers, "Cookie", f"{existing}; {text}" if existing else text)
    ctype = header_get(headers, "content-type")
    if ctype is None and isinstance(req.get("content_type"), str):
        ctype = req["content_type"]
        headers.append(("Content-Type", ctype))

    body: bytes | None = None
    essence = (ctype or "").split(";")[0].strip().lower()
    multipart = "files" in req or essence == "multipart/form-data"
    if multipart and ("files" in req or "data" in req or "form_data" in req):
        fields = form_pairs(expand(req.get("data")), "request.data") + form_pairs(
            expand(req.get("form_data")), "request.form_data"
        )
        body, boundary = multipart_body(expand(req.get("files")), fields)
        if ctype is None or "boundary=" not in ctype:
            header_set(headers, "Content-Type", f"multipart/form-data; boundary={boundary}")
        else:  # the fixture chose a boundary: honour it by re-encoding
            notes.append("request declares its own multipart boundary; replaced by the runner's")
            header_set(headers, "Content-Type", f"multipart/form-data; boundary={boundary}")
    elif "form_data" in req or ("data" in req and "body" not in req):
        pairs = form_pairs(expand(req.get("form_data", req.get("data"))), "request.form_data")
        body = urlencode(pairs).encode()
        if ctype is None:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    elif "body_raw" in req and isinstance(req["body_raw"], str):
        body = expand(req["body_raw"]).encode()
    elif "body" in req:
        value = expand(req["body"])
        if isinstance(value, str):
            # Every string body in the data is raw text (malformed JSON, XML,
            # a urlencoded form), so it is sent as is.
            body = value.encode()
        elif essence == "application/x-www-form-urlencoded" and isinstance(value, dict):
            body = urlencode(form_pairs(value, "request.body")).encode()
        else:
            body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
            if ctype is None:
                headers.append(("Content-Type", "application/json"))

    explicit = header_get(headers, "content-length") is not None
    if not explicit:
        if body is not None:
            headers.append(("Content-Length", str(len(body))))
        elif method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", "0"))
    elif body is not None:
        declared = header_get(headers, "content-length")
        if declared != str(len(body)):
            notes.append(f"Content-Length {declared} sent with a {len(body)}-byte body")
    return Request(method=method, target=target, headers=headers, body=body, explicit_length=explicit)


# --------------------------------------------------------------------------
# expected response


def build_expected(er: Any) -> Expected:
    if not isinstance(er, dict):
        raise Unloadable("expected_response is missing or not an object")
    status = er.get("status_code")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise Unloadable(f"expected_response.status_code {status!r} is not an HTTP status")
    exp = Expected(status=status)
    if "body" in er:
        exp.body = er["body"]
    elif "body_partial" in er:
        exp.body = er["body_partial"]
        exp.partial = True
    headers = er.get("headers") or {}
    if not isinstance(headers, dict):
        raise Unloadable("expected_response.headers must be an object")
    exp.headers = {str(k): v if isinstance(v, str) else scalar_text(v) for k, v in headers.items()}
    cookies = er.get("cookies") or {}
    if not isinstance(cookies, dict):
        raise Unloadable("expected_response.cookies must be an object")
    for name, spec in cookies.items():
        exp.cookies[str(name)] = spec if isinstance(spec, dict) else {"value": scalar_text(spec)}
    errors = er.get("validation_errors")
    if isinstance(errors, list):
        exp.errors = errors
    elif isinstance(exp.body, dict) and isinstance(exp.body.get("errors"), list):
        exp.errors = exp.body["errors"]
    return exp


# --------------------------------------------------------------------------
# streamed answers: streaming chunks and SSE events

# Between two chunks of a streamed answer, so a body the host buffers and
# sends at once shows (Stream.min_span_s).
STREAM_INTERVAL_MS = 100

# Response headers the `stream` handler must not be given: the content type
# is its own setting, the framing is the host's.
_STREAM_FRAMING = ("content-type", "content-length", "transfer-encoding")


def stream_chunk(raw: Any, where: str) -> bytes:
    """`{type: text, value}` (UTF-8) or `{type: bytes, base64}` -> bytes."""
    if not isinstance(raw, dict):
        raise Unloadable(f"{where} is not an object")
    kind = raw.get("type")
    if kind == "text":
        if not isinstance(raw.get("value"), str):
            raise Unloadable(f"{where}: a text chunk needs a string `value`")
        return raw["value"].encode("utf-8")
    if kind == "bytes":
        if not isinstance(raw.get("base64"), str):
            raise Unloadable(f"{where}: a bytes chunk needs a string `base64`")
        try:
            return base64.b64decode(raw["base64"], validate=True)
        except ValueError as e:
            raise Unloadable(f"{where}.base64: {e}") from None
    raise Unloadable(f"{where}.type {kind!r} is neither \"text\" nor \"bytes\"")


def translate_streaming(raw: Any, expected: Expected, notes: list[str]) -> Stream:
    """A case's `streaming{content_type, chunks}` -> the chunks the route
    streams. The expected body is their concatenation, byte for byte; the
    fixture's `expected_response.body` is documentation (the streaming
    meta-schema says so) and only noted when it says something else."""
    if not isinstance(raw, dict):
        raise Unloadable("streaming is not an object")
    note_unknown(raw, {"content_type", "chunks"}, "streaming", notes)
    chunks = raw.get("chunks")
    if not isinstance(chunks, list) or not chunks:
        raise Unloadable("streaming.chunks must be a non-empty list")
    data = [stream_chunk(c, f"streaming.chunks[{i}]") for i, c in enumerate(chunks)]
    for i, chunk in enumerate(data):
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            raise Unloadable(
                f"streaming.chunks[{i}] is not UTF-8, and the echo plugin's `stream` handler takes text chunks"
            ) from None
    ctype = raw.get("content_type")
    if ctype is not None and not isinstance(ctype, str):
        raise Unloadable("streaming.content_type must be a string")
    header = next((v for k, v in expected.headers.items() if k.lower() == "content-type"), None)
    if ctype is None and header is not None and not TOKEN.match(header):
        ctype = header
    elif ctype is not None and header is not None and header.lower() != ctype.lower() and not TOKEN.match(header):
        notes.append(f"streaming.content_type {ctype!r} differs from the expected Content-Type {header!r}")
    stream = Stream(data, ctype, STREAM_INTERVAL_MS if len(data) > 1 else 0)
    doc = expected.body
    if isinstance(doc, str) and doc.encode("utf-8") != stream.body:
        notes.append(
            "expected_response.body (documentation) is not the concatenated chunks; the chunks are compared: "
            f"{stream.body!r}"
        )
    elif doc is not MISSING and not isinstance(doc, str):
        notes.append("expected_response.body is not a string; the concatenated chunks are compared")
    expected.body = MISSING
    return stream


def stream_headers(expected: Expected) -> dict[str, str]:
    """The expected headers the `stream` handler sends itself: all but the
    content type (a setting of its own), the framing and `<<tokens>>`."""
    out: dict[str, str] = {}
    for name, value in expected.headers.items():
        low = name.lower()
        if low in _STREAM_FRAMING or low == "x-request-id" or TOKEN.match(value) or low in out:
            continue
        out[low] = value
    return out


SSE_MEDIA_TYPE = "text/event-stream"
SSE_OPENING = b": spikard conformance\n\n"


def load_sse_case(rel: str, file: Path, data: dict) -> Case:
    """An AsyncAPI-style SSE fixture (channel, examples, schema, operations)
    -> a GET route at the channel whose stream sends a comment, then each
    example as one event, `data: <json>` (compact, one line) and a blank
    line. The runner then checks every event's data equals its example and
    validates against the fixture's `schema`."""
    from . import sse  # noqa: PLC0415 - fixtures does not need it otherwise

    notes: list[str] = []
    note_unknown(data, {"channel", "description", "examples", "name", "operations", "protocol", "schema"}, "", notes)
    protocol = data.get("protocol", "sse")
    if protocol != "sse":
        raise Unloadable(f"protocol {protocol!r} is not sse")
    channel = data.get("channel")
    if not isinstance(channel, str) or not channel.startswith("/"):
        raise Unloadable("channel must be a path starting with '/'")
    if "{" in channel or "}" in channel:
        raise Unloadable(f"channel {channel!r} has parameters, and the fixture gives them no values")
    operations = data.get("operations") or []
    if not isinstance(operations, list):
        raise Unloadable("operations must be a list")
    for i, op in enumerate(operations):
        if not isinstance(op, dict):
            raise Unloadable(f"operations[{i}] is not an object")
        if op.get("action") != "send":
            raise Unloadable(
                f"operations[{i}].action {op.get('action')!r}: SSE only carries what the server sends (action \"send\")"
            )
        if op.get("replies"):
            raise Unloadable(f"operations[{i}].replies: SSE has no channel for replies")
    examples = data.get("examples")
    if not isinstance(examples, list) or not examples:
        raise Unloadable("examples must be a non-empty list (one event each)")
    schema = data.get("schema")
    if not isinstance(schema, (dict, bool)):
        raise Unloadable("schema is missing or not a JSON Schema")
    problems = sse.schema_problems(schema)
    if problems:
        raise Unloadable("schema: " + "; ".join(problems))
    for i, example in enumerate(examples):
        errors = sse.schema_errors(schema, example)
        if errors:
            raise Unloadable(f"examples[{i}] does not validate against the fixture's own schema: {errors[0]}")
    notes.append(f"sse: events checked against the schema by {sse.SCHEMA_CHECKER}")

    template, _ = translate_route(channel)
    # A comment first (ignored by every client, as servers send to open a
    # stream): with it even a one-event stream has two chunks, so a body the
    # host buffers shows, and the parser's handling of comments is exercised.
    chunks = [SSE_OPENING] + [sse.encode_event(e).encode("utf-8") for e in examples]
    stream = Stream(chunks, SSE_MEDIA_TYPE, STREAM_INTERVAL_MS, sse_examples=examples, sse_schema=schema)
    request = Request(method="GET", target=encode_target(channel), headers=[("Accept", SSE_MEDIA_TYPE)], body=None)
    name = data.get("name") if isinstance(data.get("name"), str) else file.stem
    return Case(
        id=rel,
        category=rel.split("/", 1)[0],
        file=file,
        name=name,
        route=Route(method="GET", path=template, schemas={}),
        request=request,
        expected=Expected(status=200, headers={"content-type": SSE_MEDIA_TYPE}),
        host_answers=False,
        notes=notes,
        stream=stream,
    )


def is_sse_fixture(data: dict) -> bool:
    """AsyncAPI-style: a channel and examples instead of request/response."""
    return "channel" in data and "request" not in data


# --------------------------------------------------------------------------
# the case


def handler_request_id(request: Request, expected: Expected) -> bool:
    """Whether the expected X-Request-Id is a literal the handler must set:
    not a token, and not the id the request carries (which the host would
    propagate, request_id/02)."""
    value = next((v for k, v in expected.headers.items() if k.lower() == "x-request-id"), None)
    if not isinstance(value, str) or TOKEN.match(value):
        return False
    return header_get(request.headers, "x-request-id") != value


def load_case(root: Path, file: Path) -> Case:
    """Loads and translates one fixture; raises Unloadable with a reason."""
    rel = file.relative_to(root).as_posix()
    category = rel.split("/", 1)[0]
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise Unloadable(f"cannot read: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise Unloadable(f"not JSON: {e}") from None
    if not isinstance(data, dict):
        raise Unloadable("not a JSON object")
    if is_sse_fixture(data):
        return load_sse_case(rel, file, data)
    notes: list[str] = []
    req = data.get("request")
    if not isinstance(req, dict):
        raise Unloadable("no request object")
    request = build_request(req, notes)
    expected = build_expected(data.get("expected_response"))
    stream = translate_streaming(data["streaming"], expected, notes) if "streaming" in data else None

    handler = data.get("handler")
    has_handler = isinstance(handler, dict) and bool(handler)
    if handler is not None and not isinstance(handler, dict):
        raise Unloadable("handler is not an object")
    handler = handler or {}
    route_text = handler.get("route")
    if not isinstance(route_text, str) or not route_text:
        if has_handler and "route" in handler:
            raise Unloadable("handler.route is not a string")
        route_text = request.target.split("?", 1)[0]
        from urllib.parse import unquote

        route_text = unquote(route_text)
    route_method = handler.get("method") if isinstance(handler.get("method"), str) else request.method
    route_method = route_method.strip().upper()
    if not route_method.isalpha():
        raise Unloadable(f"handler.method {route_method!r} is not an HTTP method")
    template, auto = translate_route(route_text)
    schemas = build_schemas(handler, template, auto, notes)

    mw = translate_middleware(handler, category, request, expected, notes)
    body_limit = mw.body_limit
    timing = mw.timing
    if isinstance(handler.get("max_body_size"), int) and handler["max_body_size"] > 0:
        body_limit = handler["max_body_size"]
    max_json_depth = None
    if isinstance(handler.get("max_nesting_depth"), int) and handler["max_nesting_depth"] > 0:
        max_json_depth = handler["max_nesting_depth"]
    max_header_bytes = None
    if isinstance(handler.get("max_header_size"), int) and handler["max_header_size"] > 0:
        max_header_bytes = handler["max_header_size"]
        notes.append("handler.max_header_size: the host's limit is server-wide (server.max_header_bytes)")
    for key in ("max_uri_length", "health_check", "security", "dependencies"):
        if key in handler:
            notes.append(f"handler.{key}: not expressible in the host config, ignored")
    if timing.request_id is None and handler_request_id(request, expected):
        # A literal X-Request-Id the request does not carry can only be the
        # handler's own header (cors/09): keep it in the canned answer and
        # tell the host not to set its own.
        timing.request_id = False
        notes.append("expected X-Request-Id is the handler's literal: the route's request_id = false")

    preflight = mw.cors is not None and is_preflight(request)
    if preflight and not has_handler:
        # The route the preflight asks about: the method it announces.
        route_method = header_get(request.headers, "access-control-request-method").strip().upper()
        if not route_method.isalpha():
            raise Unloadable(f"Access-Control-Request-Method {route_method!r} is not an HTTP method")
    req_path = request.target.split("?", 1)[0]
    reaches = template_matches(template, req_path) and (
        route_method == request.method or (route_method == "GET" and request.method == "HEAD")
    )
    statuses = mw.statuses()
    # The host answers: a status it produces for a declared route, a request
    # that cannot reach the route, a status the case's own middleware produces
    # (else a host without that middleware would pass by the canned echo), and
    # every CORS preflight.
    host_answers = (
        (has_handler and (expected.status in HOST_STATUSES or not reaches))
        or expected.status in statuses
        or preflight
    )
    if mw.statics:
        if not any(req_path == m.prefix or req_path.startswith(m.prefix + "/") for m in mw.statics):
            notes.append(f"request path {req_path} is under none of the static mounts")
        if mw.auth or mw.cors or mw.rate_limit or mw.compression:
            notes.append("static files are served without the case's other middleware (the case has no route)")
    elif preflight and not template_matches(template, req_path):
        raise Unloadable(f"preflight for {req_path} cannot reach its route {route_method} {template}")
    elif not has_handler and not reaches and not preflight:
        raise Unloadable(f"request {request.method} {req_path} cannot reach its own route {route_method} {template}")

    if stream is not None and (host_answers or mw.statics or timing.delay_ms is not None):
        raise Unloadable(
            "a streamed answer the host must produce, from static files, or after a delay: the echo plugin's "
            "`stream` handler answers at once with its chunks"
        )

    name = data.get("name") if isinstance(data.get("name"), str) else file.stem
    return Case(
        id=rel,
        category=category,
        file=file,
        name=name,
        route=Route(
            method=route_method,
            path=template,
            schemas=schemas,
            body_limit=body_limit,
            max_json_depth=max_json_depth,
            max_header_bytes=max_header_bytes,
            request_timeout_ms=timing.request_timeout_ms,
            delay_ms=timing.delay_ms,
            request_id=timing.request_id,
            cors=mw.cors,
            auth=mw.auth,
            rate_limit=mw.rate_limit,
            compression=mw.compression,
        ),
        request=request,
        expected=expected,
        host_answers=host_answers,
        notes=notes,
        statics=mw.statics,
        warmup=mw.warmup,
        middleware_statuses=statuses,
        stream=stream,
    )
