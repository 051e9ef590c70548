"""The generated host config: a small TOML value emitter, the canned
responses of the echo plugin's `respond` handler, and the config file with
one route per case under its own `/c{N}` prefix.

Schemas go to separate `.json` files referenced by path (relative to the
config file), so JSON `null`s and odd keys never meet TOML quoting. Bodies of
canned responses are JSON text in a TOML string, sent verbatim by the plugin.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fixtures import MISSING, Case, stream_headers

# ---------------------------------------------------------------------------
# TOML values


def toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_value(value: Any) -> str:
    """A TOML value; `None` has no TOML form and is refused (drop it first)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = [f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if value is None:
        raise ValueError("TOML has no null")
    raise TypeError(f"no TOML form for {type(value).__name__}")


# ---------------------------------------------------------------------------
# canned responses

# What a route answers when the host, not the handler, must produce the
# expected response: a success no error expectation can mistake for its own.
REACHED_BODY = {"conformance": "the request reached the handler"}

# The host's request id header (server.request_id_header's default).
REQUEST_ID_HEADER = "x-request-id"

_TOKEN = re.compile(r"^<<([a-z_]+)>>$")


def fill_tokens(value: Any) -> Any:
    """Concrete values for `<<token>>`s in a canned body ( `<<absent>>` keys dropped)."""
    if isinstance(value, dict):
        out = {k: fill_tokens(v) for k, v in value.items() if v != "<<absent>>"}
        for k, v in value.items():  # `<<same_as:member>>`: that member's value
            m = re.match(r"^<<same_as:([^<>]+)>>$", v) if isinstance(v, str) else None
            if m and m.group(1) in out:
                out[k] = out[m.group(1)]
        return out
    if isinstance(value, list):
        return [fill_tokens(v) for v in value]
    if isinstance(value, str):
        m = _TOKEN.match(value)
        if m:
            token = m.group(1)
            if token == "uuid":
                return str(uuid.uuid4())
            if token in ("int", "integer", "number"):
                return 1
            if token in ("datetime", "timestamp", "iso8601"):
                return "2024-01-01T00:00:00Z"
            return "present"
    return value


def set_cookie_value(name: str, spec: dict) -> str:
    parts = [f"{name}={spec.get('value', '')}"]
    attrs = [
        ("max_age", "Max-Age"),
        ("expires", "Expires"),
        ("path", "Path"),
        ("domain", "Domain"),
        ("samesite", "SameSite"),
    ]
    for key, attr in attrs:
        if spec.get(key) is not None:
            v = spec[key]
            if key == "samesite" and isinstance(v, str):
                v = v.capitalize()
            parts.append(f"{attr}={v}")
    if spec.get("secure"):
        parts.append("Secure")
    if spec.get("httponly"):
        parts.append("HttpOnly")
    return "; ".join(parts)


def case_variants(name: str):
    """Distinct spellings of one header name. The `respond` settings take a
    table of headers, so one name can be given once; header names are
    case-insensitive and the plugin lowercases them, so differently spelled
    keys become repeated header lines (several Set-Cookie headers)."""
    letters = [i for i, c in enumerate(name) if c.isalpha()]
    for mask in range(1 << len(letters)):
        chars = list(name.lower())
        for bit, i in enumerate(letters):
            if mask >> bit & 1:
                chars[i] = chars[i].upper()
        yield "".join(chars)


def host_owned_header(case: Case, name: str, value: str) -> bool:
    """Whether the host, not the handler, produces this expected header, so
    the canned answer must not carry it: the request id (unless the route
    turns the host's off and the value is a literal: then it is the
    handler's), every CORS response header on a route with a CORS policy
    (Access-Control-*, and Vary, which the host sets to Origin), and
    Content-Encoding (and Vary) on a route with compression."""
    if name == REQUEST_ID_HEADER:
        return case.route.request_id is not False or bool(_TOKEN.match(value))
    if case.route.cors is not None and (name.startswith("access-control-") or name == "vary"):
        return True
    if case.route.compression is not None and name in ("content-encoding", "vary"):
        return True
    return False


def self_check(case: Case) -> str | None:
    """Why the canned answer of a case would do the host's work, or None.
    Run before the config is written: a failure is a runner bug, reported as
    the case being unloadable rather than passing by its own echo."""
    if case.statics:
        return None
    settings = canned_settings(case)
    names = [h.lower() for h in settings.get("headers", {})]
    if case.route.cors is not None:
        leaked = [h for h in names if h.startswith("access-control-") or h == "vary"]
        if leaked:
            return f"runner self-check: the canned answer carries the host's CORS header(s) {', '.join(leaked)}"
    if case.route.compression is not None and "content-encoding" in names:
        return "runner self-check: the canned answer carries Content-Encoding on a compressed route"
    if settings["status"] in case.middleware_statuses:
        return f"runner self-check: the canned answer has status {settings['status']}, which the case's middleware must produce"
    return None


def stream_settings(case: Case) -> dict:
    """The echo plugin's `stream` settings of a streamed case: the chunks
    (text), written `interval_ms` apart, after a head with `status`,
    `content_type` and the other expected headers."""
    s = case.stream
    assert s is not None
    settings: dict[str, Any] = {"status": case.expected.status}
    if s.content_type is not None:
        settings["content_type"] = s.content_type
    settings["chunks"] = [stream_chunk_setting(c) for c in s.chunks]
    settings["interval_ms"] = s.interval_ms
    headers = stream_headers(case.expected)
    if headers:
        settings["headers"] = headers
    return settings


def stream_chunk_setting(chunk: bytes) -> str:
    """One chunk as the `stream` handler takes it: a string whose UTF-8
    bytes are the chunk (control bytes are escaped by the TOML emitter).
    Checked at load time (fixtures.translate_streaming)."""
    return chunk.decode("utf-8")


def canned_settings(case: Case) -> dict:
    """The `respond` settings of a case's route (`stream` settings for a
    streamed case)."""
    exp = case.expected
    if case.stream is not None:
        return stream_settings(case)
    if case.host_answers:
        return {
            "status": 200,
            "headers": {"content-type": "application/json"},
            "body": json.dumps(REACHED_BODY),
        }
    headers: dict[str, str] = {}
    seen: set[str] = set()
    content_length = None
    for name, value in exp.headers.items():
        low = name.lower()
        if low in seen or value == "<<absent>>" or host_owned_header(case, low, value):
            continue
        seen.add(low)
        if low == "content-length":
            content_length = value
            continue
        if low == "transfer-encoding":
            continue
        headers[low] = str(fill_tokens(value))
    if exp.cookies:
        variants = case_variants("set-cookie")
        for name, spec in exp.cookies.items():
            headers[next(variants)] = set_cookie_value(name, spec)
    settings: dict[str, Any] = {"status": exp.status}
    no_body = exp.status in (204, 304) or 100 <= exp.status < 200
    if not no_body:
        if exp.body is not MISSING and exp.body is not None:
            body = fill_tokens(exp.body)
            if isinstance(body, str):
                settings["body"] = body
            else:
                settings["body"] = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                headers.setdefault("content-type", "application/json")
        elif exp.body is None:
            settings["body"] = "null"
            headers.setdefault("content-type", "application/json")
        elif content_length is not None and content_length.isdigit():
            # Only headers are expected (a HEAD answer): a body of the
            # announced size, which a HEAD response then leaves out.
            settings["body"] = " " * int(content_length)
    if headers:
        settings["headers"] = headers
    return settings


# ---------------------------------------------------------------------------
# the config file


def route_handler(case: Case) -> list[str]:
    """The `handler` and `settings` lines: the canned answer, after the
    case's `sleep_ms` (the echo plugin's `delay` handler) when it has one."""
    settings = canned_settings(case)
    if case.stream is not None:
        return ['handler = "stream"', f"settings = {toml_value(settings)}"]
    if case.route.delay_ms is None:
        return ['handler = "respond"', f"settings = {toml_value(settings)}"]
    settings["delay_ms"] = int(case.route.delay_ms)
    return ['handler = "delay"', f"settings = {toml_value(settings)}"]


def route_policies(case: Case) -> list[str]:
    """The route's `cors`, `auth`, `rate_limit` and `compression` lines."""
    r = case.route
    lines = []
    for key, value in (("cors", r.cors), ("auth", r.auth), ("rate_limit", r.rate_limit), ("compression", r.compression)):
        if value is not None:
            lines.append(f"{key} = {toml_value(value)}")
    return lines


def route_block(prefix: str, case: Case, schemas_dir: Path) -> list[str]:
    """One `[[routes]]` table: the case's route under its prefix."""
    r = case.route
    path = prefix + (r.path if r.path != "/" else "/")
    lines = [
        f"# {case.id}",
        "[[routes]]",
        f"method = {toml_string(r.method)}",
        f"path = {toml_string(path)}",
        'plugin = "echo"',
        *route_handler(case),
    ]
    if r.body_limit is not None:
        lines.append(f"body_limit = {int(r.body_limit)}")
    if r.max_json_depth is not None:
        lines.append(f"max_json_depth = {int(r.max_json_depth)}")
    if r.request_timeout_ms is not None:
        lines.append(f"request_timeout_ms = {int(r.request_timeout_ms)}")
    if r.request_id is not None:
        lines.append(f"request_id = {toml_value(r.request_id)}")
    lines += route_policies(case)
    stem = prefix.strip("/")
    params = {}
    for source in ("path", "query", "headers", "cookies", "body"):
        schema = r.schemas.get(source)
        if schema is None:
            continue
        file = schemas_dir / f"{stem}_{source}.json"
        file.write_text(json.dumps(schema, indent=1, ensure_ascii=False), encoding="utf-8")
        ref = f"schemas/{file.name}"
        if source == "body":
            lines.append(f"body = {toml_string(ref)}")
        else:
            params[source] = ref
    if params:
        lines.append(f"params = {toml_value(params)}")
    return lines


def static_blocks(directory: Path, prefix: str, case: Case) -> list[list[str]]:
    """One `[[static]]` table per mount of a case, its files written under
    `static/<stem>_<i>/` (paths were checked at load time: no `..`)."""
    stem = prefix.strip("/")
    blocks = []
    for i, mount in enumerate(case.statics):
        rel = f"static/{stem}_{i}"
        root = (directory / rel).resolve()
        root.mkdir(parents=True, exist_ok=True)
        for path, content in mount.files:
            target = (root / path).resolve()
            if root not in target.parents:  # belt and braces over static_path()
                raise ValueError(f"static file {path!r} escapes its directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        lines = [
            f"# {case.id}",
            "[[static]]",
            f"prefix = {toml_string(prefix + mount.prefix)}",
            f"dir = {toml_string(rel)}",
        ]
        if mount.index is not None:
            lines.append(f"index = {toml_value(mount.index)}")
        if mount.cache_control is not None:
            lines.append(f"cache_control = {toml_string(mount.cache_control)}")
        blocks.append(lines)
    return blocks


@dataclass
class Layout:
    """Who owns what in a generated config, to blame a start-up error on
    one case: `routes[i]`, `static[i]`, or a line number."""

    routes: list[str] = field(default_factory=list)  # case id per [[routes]] index
    statics: list[str] = field(default_factory=list)  # case id per [[static]] index
    blocks: list[tuple[int, str]] = field(default_factory=list)  # (first line, case id), ascending

    def owner_of_line(self, line: int) -> str | None:
        owner = None
        for first, case_id in self.blocks:
            if first > line:
                break
            owner = case_id
        return owner


def write_config(
    directory: Path,
    cases: list[tuple[str, Case]],
    plugin_library: Path,
    problem_base: str,
) -> tuple[Path, Layout]:
    """Writes `spikard.toml`, its schema files and static files; returns the
    path and the layout (to attribute start-up errors to a case)."""
    schemas_dir = directory / "schemas"
    schemas_dir.mkdir(parents=True, exist_ok=True)
    static_dir = directory / "static"
    if static_dir.exists():  # a rewrite after a refused case: start clean
        shutil.rmtree(static_dir)
    header_limits = [c.route.max_header_bytes for _, c in cases if c.route.max_header_bytes]
    lines = [
        "# Generated by tests/conformance/run: one route per fixture case.",
        "[server]",
        'listen = "127.0.0.1:0"',
        f"problem_type_base = {toml_string(problem_base)}",
        'body_limit = "1MiB"',
        "access_log = false",
        *([f"max_header_bytes = {min(header_limits)}"] if header_limits else []),
        "",
        "[[plugins]]",
        'name = "echo"',
        f"library = {toml_string(str(plugin_library.resolve()))}",
        "",
    ]
    layout = Layout()
    for prefix, case in cases:
        if case.statics:
            blocks = static_blocks(directory, prefix, case)
            layout.statics += [case.id] * len(blocks)
        else:
            blocks = [route_block(prefix, case, schemas_dir)]
            layout.routes.append(case.id)
        for block in blocks:
            layout.blocks.append((len(lines) + 1, case.id))
            lines += block + [""]
    config = directory / "spikard.toml"
    config.write_text("\n".join(lines), encoding="utf-8")
    return config, layout
