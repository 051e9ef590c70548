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
never reach the host.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
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
)

NOT_IMPLEMENTED_REASON = "feature not implemented yet"

# Statuses the host itself must produce for a request that reaches a route
# declared by the fixture's handler block: a handler never gets to answer
# these, so the canned response of such a route is a neutral success and the
# host has to produce the expected error on its own.
HOST_STATUSES = frozenset({400, 405, 411, 413, 414, 415, 422, 431})

MISSING = object()



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
# the case


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
    notes: list[str] = []
    req = data.get("request")
    if not isinstance(req, dict):
        raise Unloadable("no request object")
    request = build_request(req, notes)
    expected = build_expected(data.get("expected_response"))

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

    body_limit = None
    mw = handler.get("middleware")
    timing = Timing()
    if isinstance(mw, dict):
        bl = mw.get("body_limit")
        if isinstance(bl, dict) and isinstance(bl.get("max_bytes"), int) and bl["max_bytes"] > 0:
            body_limit = bl["max_bytes"]
        timing = translate_timing(mw, notes)
        for key in mw:
            if key not in ("body_limit", "request_id", "request_timeout"):
                notes.append(f"middleware.{key}: not expressible in the host config, ignored")
    if isinstance(handler.get("max_body_size"), int) and handler["max_body_size"] > 0:
        body_limit = handler["max_body_size"]
    max_json_depth = None
    if isinstance(handler.get("max_nesting_depth"), int) and handler["max_nesting_depth"] > 0:
        max_json_depth = handler["max_nesting_depth"]
    max_header_bytes = None
    if isinstance(handler.get("max_header_size"), int) and handler["max_header_size"] > 0:
        max_header_bytes = handler["max_header_size"]
        notes.append("handler.max_header_size: the host's limit is server-wide (server.max_header_bytes)")
    for key in ("max_uri_length", "health_check", "security", "cors", "dependencies"):
        if key in handler:
            notes.append(f"handler.{key}: not expressible in the host config, ignored")

    req_path = request.target.split("?", 1)[0]
    reaches = template_matches(template, req_path) and (
        route_method == request.method or (route_method == "GET" and request.method == "HEAD")
    )
    host_answers = has_handler and (expected.status in HOST_STATUSES or not reaches)
    if not has_handler and not reaches:
        raise Unloadable(f"request {request.method} {req_path} cannot reach its own route {route_method} {template}")

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
        ),
        request=request,
        expected=expected,
        host_answers=host_answers,
        notes=notes,
    )
