"""Comparing a response with a case's expectation.

Hard checks (a mismatch fails the case): status; expected headers; expected
response cookies; the body (exact, or as a subset for `body_partial`). For a
Problem Details expectation: every member the expectation names except
`detail`, and for each validation error its `type` and `loc` (as a multiset:
the same errors, in any order).

List-valued headers (Vary, Access-Control-Allow-Headers/-Expose-Headers/
-Allow-Methods) are compared as lists: field names case-insensitively, in
any order; an expected Vary's names need only be among the response's.

Soft statistics (reported, never failing): validation error `msg`, `input`
and `ctx`, and the Problem Details `detail` (RFC 9457 makes it free text for
humans; clients must not parse it). Members the host adds (`request_id`,
`ctx`, `input`, ...) are never failures unless the expectation names them.

Tokens in expected values: `<<uuid>>`, `<<present>>`, `<<any>>`,
`<<absent>>` (the member or header must not be there), and the type checks
`<<string>>`, `<<number>>`, `<<integer>>`, `<<boolean>>`, `<<datetime>>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .fixtures import MISSING, Case
from .rawhttp import Response

TOKEN = re.compile(r"^<<([a-z_]+)>>$")
SAME_AS = re.compile(r"^<<same_as:([^<>]+)>>$")
UUID = re.compile(r"^(urn:uuid:)?\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")

SOFT_KEYS = ("msg", "input", "ctx", "detail")


@dataclass
class Verdict:
    diffs: list[str] = field(default_factory=list)
    # per soft key: list of (matched, description of a mismatch)
    soft: dict[str, list[tuple[bool, str]]] = field(default_factory=lambda: {k: [] for k in SOFT_KEYS})

    @property
    def ok(self) -> bool:
        return not self.diffs

    def line(self) -> str:
        if not self.diffs:
            return "ok"
        more = f" (+{len(self.diffs) - 1} more)" if len(self.diffs) > 1 else ""
        return self.diffs[0] + more


def short(value: Any, limit: int = 100) -> str:
    if value is MISSING:
        return "<nothing>"
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) and not isinstance(value, bool) else None
    text = json.dumps(value, ensure_ascii=False) if text is None else json.dumps(text, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def token_check(token: str, actual: Any) -> bool | None:
    """True/False for a known token, None for an unknown one."""
    if token in ("present", "any"):
        return True
    if token == "uuid":
        return isinstance(actual, str) and bool(UUID.match(actual))
    if token == "string":
        return isinstance(actual, str)
    if token == "number":
        return is_number(actual)
    if token in ("integer", "int"):
        return isinstance(actual, int) and not isinstance(actual, bool)
    if token in ("boolean", "bool"):
        return isinstance(actual, bool)
    if token in ("datetime", "timestamp", "iso8601"):
        return isinstance(actual, str) and bool(DATETIME.match(actual))
    if token == "null":
        return actual is None
    return None


def match(expected: Any, actual: Any, where: str, partial: bool, diffs: list[str]) -> None:
    """Appends a diff line for each mismatch of `actual` against `expected`."""
    if isinstance(expected, str):
        m = TOKEN.match(expected)
        if m:
            verdict = token_check(m.group(1), actual)
            if verdict is None:
                if actual != expected:
                    diffs.append(f"{where}: unknown token {expected}, got {short(actual)}")
            elif not verdict:
                diffs.append(f"{where}: expected {expected}, got {short(actual)}")
            return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            diffs.append(f"{where}: expected an object, got {short(actual)}")
            return
        for k, v in expected.items():
            sub = f"{where}.{k}"
            same = SAME_AS.match(v) if isinstance(v, str) else None
            if same:
                # `<<same_as:member>>`: equal to a sibling member's value.
                ref = same.group(1)
                if k not in actual or ref not in actual or actual[k] != actual[ref]:
                    diffs.append(f"{sub}: expected the same value as {ref} ({short(actual.get(ref, MISSING))}), got {short(actual.get(k, MISSING))}")
                continue
            if v == "<<absent>>":
                if k in actual:
                    diffs.append(f"{sub}: expected absent, got {short(actual[k])}")
                continue
            if k not in actual:
                diffs.append(f"{sub}: missing (expected {short(v)})")
                continue
            match(v, actual[k], sub, partial, diffs)
        if not partial:
            extra = [k for k in actual if k not in expected]
            if extra:
                diffs.append(f"{where}: unexpected member(s) {', '.join(sorted(extra))}")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list):
            diffs.append(f"{where}: expected a list, got {short(actual)}")
            return
        if len(expected) != len(actual):
            diffs.append(f"{where}: expected {len(expected)} items, got {len(actual)}: {short(actual)}")
            return
        for i, (e, a) in enumerate(zip(expected, actual)):
            match(e, a, f"{where}[{i}]", partial, diffs)
        return
    if is_number(expected):
        if not is_number(actual) or expected != actual:
            diffs.append(f"{where}: expected {short(expected)}, got {short(actual)}")
        return
    if isinstance(expected, bool) or expected is None:
        if actual is not expected:
            diffs.append(f"{where}: expected {short(expected)}, got {short(actual)}")
        return
    if expected != actual:
        diffs.append(f"{where}: expected {short(expected)}, got {short(actual)}")


def matches(expected: Any, actual: Any, partial: bool = False) -> bool:
    diffs: list[str] = []
    match(expected, actual, "", partial, diffs)
    return not diffs


# ---------------------------------------------------------------------------
# bodies


def media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def is_json_type(essence: str) -> bool:
    return essence == "application/json" or (essence.startswith("application/") and essence.endswith("+json"))


def parse_body(resp: Response) -> tuple[str, Any]:
    """('json', value) | ('text', str) | ('bad-json', str)."""
    text = resp.body.decode("utf-8", "replace")
    if is_json_type(media_type(resp.header("content-type"))):
        try:
            return "json", json.loads(text)
        except json.JSONDecodeError:
            return "bad-json", text
    return "text", text


def looks_like_problem(body: Any) -> bool:
    return isinstance(body, dict) and "type" in body and ("title" in body or "status" in body)


def loc_text(loc: Any) -> str:
    if isinstance(loc, list):
        return ".".join(str(x) for x in loc)
    return str(loc)


def error_key(err: Any, with_type: bool = True) -> tuple[str, tuple[str, ...]]:
    """(type, loc) with loc items as strings: the meta-schema types `loc`
    items as strings, so `["body", "tags", "2"]` and `[..., 2]` agree."""
    if not isinstance(err, dict):
        return ("?", ())
    loc = err.get("loc")
    loc_t = tuple(str(x) for x in loc) if isinstance(loc, list) else (str(loc),)
    return (str(err.get("type")) if with_type else "*", loc_t)


def error_summary(errors: Any) -> str:
    if not isinstance(errors, list):
        return short(errors)
    items = [f"{error_key(e)[0]}@{'.'.join(error_key(e)[1])}" for e in errors]
    text = ", ".join(items)
    return text if len(text) < 160 else text[:157] + "..."


def compare_errors(exp_errors: list, act: Any, verdict: Verdict, with_type: bool = True) -> None:
    if not isinstance(act, list):
        verdict.diffs.append(f"body.errors: expected {error_summary(exp_errors)}, got {short(act)}")
        return
    if len(exp_errors) != len(act):
        verdict.diffs.append(
            f"body.errors: expected {len(exp_errors)} [{error_summary(exp_errors)}], "
            f"got {len(act)} [{error_summary(act)}]"
        )
    remaining = list(act)
    for i, e in enumerate(exp_errors):
        key = error_key(e, with_type)
        found = next((j for j, a in enumerate(remaining) if error_key(a, with_type) == key), None)
        if found is None:
            if len(exp_errors) == len(act):
                verdict.diffs.append(
                    f"body.errors[{i}]: expected {key[0]}@{'.'.join(key[1])}, got [{error_summary(act)}]"
                )
            continue
        a = remaining.pop(found)
        where = f"{key[0]}@{'.'.join(key[1])}"
        if not isinstance(e, dict):
            continue
        for k, v in e.items():
            if k in ("type", "loc"):
                continue
            if k == "msg":
                ok = a.get("msg") == v
                verdict.soft["msg"].append((ok, f"{where}: expected {short(v)}, got {short(a.get('msg', MISSING))}"))
            elif k == "input":
                ok = "input" in a and matches(v, a["input"])
                verdict.soft["input"].append((ok, f"{where}: expected {short(v)}, got {short(a.get('input', MISSING))}"))
            elif k == "ctx":
                ok = "ctx" in a and matches(v, a["ctx"], partial=True)
                verdict.soft["ctx"].append((ok, f"{where}: expected {short(v)}, got {short(a.get('ctx', MISSING))}"))
            else:
                if k not in a:
                    verdict.diffs.append(f"body.errors[{i}].{k}: missing (expected {short(v)})")
                else:
                    match(v, a[k], f"body.errors[{i}].{k}", False, verdict.diffs)


def compare_problem(case: Case, kind: str, value: Any, verdict: Verdict, with_type: bool = True) -> None:
    exp = case.expected
    if kind != "json" or not isinstance(value, dict):
        verdict.diffs.append(f"body: expected Problem Details, got {short(value)}")
        return
    body = exp.body if isinstance(exp.body, dict) else {}
    for k, v in body.items():
        if k == "errors":
            continue
        if k == "detail":
            ok = value.get("detail") == v
            verdict.soft["detail"].append((ok, f"expected {short(v)}, got {short(value.get('detail', MISSING))}"))
            continue
        if v == "<<absent>>":
            if k in value:
                verdict.diffs.append(f"body.{k}: expected absent, got {short(value[k])}")
            continue
        if k not in value:
            verdict.diffs.append(f"body.{k}: missing (expected {short(v)})")
            continue
        match(v, value[k], f"body.{k}", exp.partial, verdict.diffs)
    if exp.errors is not None:
        compare_errors(exp.errors, value.get("errors"), verdict, with_type)


def compare_body(case: Case, resp: Response, verdict: Verdict, with_type: bool = True) -> None:
    exp = case.expected
    if exp.body is MISSING and exp.errors is None:
        return
    kind, value = parse_body(resp)
    problem_answer = exp.status >= 400 and media_type(resp.header("content-type")) == "application/problem+json"
    if exp.errors is not None or looks_like_problem(exp.body) or (problem_answer and isinstance(exp.body, dict)):
        # An error answer is Problem Details (RFC 9457): its `detail` is
        # free text and members the host adds are extensions.
        compare_problem(case, kind, value, verdict, with_type)
        return
    if kind == "bad-json":
        verdict.diffs.append(f"body: not valid JSON despite its JSON content type: {short(value)}")
        return
    if isinstance(exp.body, str):
        got = value if kind == "json" and isinstance(value, str) else (value if kind == "text" else MISSING)
        if got is MISSING or got != exp.body:
            m = TOKEN.match(exp.body)
            if m and token_check(m.group(1), value):
                return
            verdict.diffs.append(f"body: expected {short(exp.body)}, got {short(value)}")
        return
    if kind != "json":
        if exp.body is None and resp.body == b"":
            return
        verdict.diffs.append(f"body: expected JSON {short(exp.body)}, got {short(value)}")
        return
    match(exp.body, value, "body", exp.partial, verdict.diffs)


# ---------------------------------------------------------------------------
# headers and cookies


def norm_header(name: str, value: str) -> str:
    v = " ".join(value.split())
    if name.lower() == "content-type":
        v = ";".join(p.strip() for p in v.lower().split(";"))
    return v


# Headers whose value is a list of field names (case-insensitive, RFC 9110
# 5.1), compared as sets; Vary's expected names need only be among the
# response's (RFC 9110 12.5.5: another varying field, e.g. Accept-Encoding
# when the response is compressed, does not contradict it).
FIELD_NAME_LISTS = ("vary", "access-control-allow-headers", "access-control-expose-headers")
# A list of methods (case-sensitive tokens, RFC 9110 9.1), compared as a set.
METHOD_LISTS = ("access-control-allow-methods",)


def list_header_matches(name: str, want: str, got: list[str]) -> bool | None:
    """For a list-valued header, whether the response's lines satisfy the
    expected list; None for any other header."""
    low = name.lower()
    if low not in FIELD_NAME_LISTS and low not in METHOD_LISTS:
        return None
    fold = str.lower if low in FIELD_NAME_LISTS else str
    expected = {fold(v.strip()) for v in want.split(",") if v.strip()}
    actual = {fold(v.strip()) for g in got for v in g.split(",") if v.strip()}
    if low == "vary":
        return expected <= actual or "*" in actual
    return expected == actual


def compare_headers(case: Case, resp: Response, verdict: Verdict) -> None:
    for name, value in case.expected.headers.items():
        got = resp.all(name)
        m = TOKEN.match(value)
        if value == "<<absent>>":
            if got:
                verdict.diffs.append(f"header {name}: expected absent, got {short(got[0])}")
            continue
        if not got:
            verdict.diffs.append(f"header {name}: missing (expected {short(value)})")
            continue
        if m:
            ok = any(token_check(m.group(1), g) for g in got)
            if not ok:
                verdict.diffs.append(f"header {name}: expected {value}, got {short(got[0])}")
            continue
        listed = list_header_matches(name, value, got)
        if listed is not None:
            if not listed:
                verdict.diffs.append(f"header {name}: expected {short(value)}, got {short(', '.join(got))}")
            continue
        want = norm_header(name, value)
        if not any(norm_header(name, g) == want for g in got) and norm_header(name, ", ".join(got)) != want:
            verdict.diffs.append(f"header {name}: expected {short(value)}, got {short(', '.join(got))}")


def parse_set_cookie(value: str) -> tuple[str, str, dict[str, str]]:
    parts = [p.strip() for p in value.split(";")]
    name, _, val = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.strip().lower()] = v.strip()
    return name.strip(), val.strip(), attrs


def compare_cookies(case: Case, resp: Response, verdict: Verdict) -> None:
    if not case.expected.cookies:
        return
    jar = {}
    for header in resp.all("set-cookie"):
        name, val, attrs = parse_set_cookie(header)
        jar[name] = (val, attrs)
    for name, spec in case.expected.cookies.items():
        if name not in jar:
            verdict.diffs.append(f"cookie {name}: not set")
            continue
        val, attrs = jar[name]
        if "value" in spec and str(spec["value"]) != val:
            verdict.diffs.append(f"cookie {name}: expected value {short(spec['value'])}, got {short(val)}")
        for key, attr in (("max_age", "max-age"), ("path", "path"), ("domain", "domain"), ("samesite", "samesite")):
            if spec.get(key) is not None and str(spec[key]).lower() != attrs.get(attr, "").lower():
                verdict.diffs.append(f"cookie {name}: expected {attr}={spec[key]}, got {attrs.get(attr, '<none>')}")
        for key in ("secure", "httponly"):
            if key in spec and bool(spec[key]) != (key in attrs):
                verdict.diffs.append(f"cookie {name}: expected {key}={bool(spec[key])}")


# ---------------------------------------------------------------------------
# streamed answers


def first_difference(expected: bytes, actual: bytes) -> str:
    """Where two bodies part, with a few bytes of each around it."""
    i = next((n for n, (a, b) in enumerate(zip(expected, actual)) if a != b), min(len(expected), len(actual)))
    lo = max(0, i - 8)
    return (
        f"{len(expected)} bytes expected, {len(actual)} received, first difference at byte {i}: "
        f"expected {expected[lo:i + 12]!r}, got {actual[lo:i + 12]!r}"
    )


def compare_framing(case: Case, resp: Response, verdict: Verdict) -> None:
    """A streamed answer is chunked, has no Content-Length, and its chunks
    arrive over the time they are written in (a buffered body arrives at once)."""
    stream = case.stream
    assert stream is not None
    if resp.framing != "chunked":
        how = f"Content-Length {resp.header('content-length')}" if resp.framing == "length" else "no chunked encoding"
        verdict.diffs.append(f"not streamed: the body came with {how} (Transfer-Encoding: chunked expected)")
    elif resp.all("content-length"):
        verdict.diffs.append(f"not streamed: Content-Length {resp.header('content-length')} on a chunked answer")
    span = resp.end_at - resp.head_at
    least = stream.min_span_s()
    if resp.framing == "chunked" and least > 0 and span < least:
        verdict.diffs.append(
            f"not streamed: the body ended {span * 1000:.0f} ms after the head, but its {len(stream.chunks)} chunks "
            f"are written {stream.interval_ms} ms apart (buffered?)"
        )


def compare_events(case: Case, resp: Response, verdict: Verdict) -> None:
    """Each SSE event's data is JSON equal to its example (in order) and
    valid against the fixture's schema."""
    from .sse import parse_events, schema_errors  # noqa: PLC0415

    stream = case.stream
    assert stream is not None and stream.sse_examples is not None
    events = parse_events(resp.body)
    examples = stream.sse_examples
    if len(events) != len(examples):
        verdict.diffs.append(f"sse: expected {len(examples)} event(s), got {len(events)}: {short(resp.body)}")
    for i, (event, example) in enumerate(zip(events, examples)):
        try:
            value = json.loads(event.data)
        except json.JSONDecodeError:
            verdict.diffs.append(f"sse event {i}: data is not JSON: {short(event.data)}")
            continue
        diffs: list[str] = []
        match(example, value, f"sse event {i}", False, diffs)
        verdict.diffs += diffs
        errors = schema_errors(stream.sse_schema, value)
        if errors:
            verdict.diffs.append(f"sse event {i}: does not validate against the schema: {'; '.join(errors[:3])}")


def compare_stream(case: Case, resp: Response, verdict: Verdict) -> None:
    """The body of a streamed answer: the exact bytes, or the SSE events."""
    stream = case.stream
    assert stream is not None
    if stream.sse_examples is not None:
        compare_events(case, resp, verdict)
    elif resp.body != stream.body:
        verdict.diffs.append("body: " + first_difference(stream.body, resp.body))


def compare(case: Case, resp: Response, mode: str | None = None) -> Verdict:
    """`mode`: None (everything), "status" (status and headers only) or
    "error-loc" (validation errors matched on `loc` alone, not `type`)."""
    verdict = Verdict()
    if resp.status != case.expected.status:
        detail = ""
        kind, value = parse_body(resp)
        if kind == "json" and isinstance(value, dict):
            if isinstance(value.get("errors"), list):
                detail = f" [{error_summary(value['errors'])}]"
            elif "detail" in value:
                detail = f" ({short(value.get('detail'), 120)})"
            elif value.get("conformance"):
                detail = " (the handler was reached)"
        verdict.diffs.append(f"status: expected {case.expected.status}, got {resp.status}{detail}")
        return verdict
    compare_headers(case, resp, verdict)
    if case.stream is not None:
        compare_framing(case, resp, verdict)
    if mode == "status":
        return verdict
    if case.stream is not None:
        compare_stream(case, resp, verdict)
        return verdict
    compare_cookies(case, resp, verdict)
    compare_body(case, resp, verdict, with_type=mode != "error-loc")
    return verdict
