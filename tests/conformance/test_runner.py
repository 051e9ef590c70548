"""Unit tests of the conformance runner itself (no host needed):

    python3 -m unittest discover -s tests/conformance
"""

import http.server
import json
import sys
import tempfile
import threading
import time
import tomllib
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True

from runner import compare as cmp  # noqa: E402
from runner import fixtures as fx  # noqa: E402
from runner import rawhttp  # noqa: E402
from runner import sse  # noqa: E402
from runner import tomlgen  # noqa: E402


def case_from(data: dict, category: str = "query_params") -> fx.Case:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / category).mkdir()
        f = root / category / "01_case.json"
        f.write_text(json.dumps(data), encoding="utf-8")
        return fx.load_case(root, f)


class Toml(unittest.TestCase):
    def test_values_round_trip(self):
        value = {
            "status": 201,
            "body": 'quote " backslash \\ newline \n tab \t nul \x00 é ☕',
            "headers": {"Content-Type": "a/b", "x.y": "1"},
            "f": 1.5,
            "e": 1e-10,
            "big": 9223372036854775807,
            "list": [1, "two", True],
            "nested": {"k": {"deeper": False}},
        }
        text = "v = " + tomlgen.toml_value(value)
        self.assertEqual(tomllib.loads(text)["v"], value)

    def test_none_members_are_dropped_and_bare_none_refused(self):
        self.assertEqual(tomllib.loads("v = " + tomlgen.toml_value({"a": None, "b": 1}))["v"], {"b": 1})
        with self.assertRaises(ValueError):
            tomlgen.toml_value(None)

    def test_set_cookie_spellings_are_distinct(self):
        names = [n for _, n in zip(range(4), tomlgen.case_variants("set-cookie"))]
        self.assertEqual(len(set(names)), 4)
        self.assertTrue(all(n.lower() == "set-cookie" for n in names))


class Translation(unittest.TestCase):
    def test_required_rules(self):
        schema = fx.object_schema(
            {
                "a": {"type": "string", "annotation": "str"},
                "b": {"type": "integer", "optional": True},
                "c": {"type": "string", "default": "x"},
                "d": {"type": "string", "required": False},
                "e": {"annotation": "list[int]"},
                "f": {"type": "string", "required": True, "default": "y"},
                "g": {"annotation": "Optional[int]"},
            },
            [],
            "query",
        )
        self.assertEqual(schema["required"], ["a", "e", "f"])
        self.assertEqual(schema["properties"]["e"], {"type": "array", "items": {"type": "integer"}})
        self.assertEqual(schema["properties"]["g"], {"type": "integer"})
        for prop in schema["properties"].values():
            for key in ("annotation", "optional"):
                self.assertNotIn(key, prop)
            self.assertNotIsInstance(prop.get("required", []), bool)

    def test_alias_and_dropped_keys(self):
        schema = fx.object_schema({"x": {"type": "string", "alias": "X-Token", "uuidVersion": "4", "source": "h"}}, [], "headers")
        self.assertEqual(schema, {"type": "object", "properties": {"X-Token": {"type": "string"}}, "required": ["X-Token"]})

    def test_file_parameters(self):
        case = case_from(
            {
                "handler": {
                    "route": "/u",
                    "method": "POST",
                    "max_nesting_depth": 8,
                    "max_header_size": 4096,
                    "body_schema": {"type": "object", "properties": {"doc": {"type": "string", "format": "binary"}}},
                    "parameters": {
                        "files": {
                            "doc": {"required": True, "content_type": ["application/pdf", "image/png"], "max_size": 10},
                            "pic": {"validate_magic_numbers": True, "content_type": "image/png"},
                        }
                    },
                },
                "request": {"method": "POST", "path": "/u", "files": []},
                "expected_response": {"status_code": 201},
            },
            "multipart",
        )
        body = case.route.schemas["body"]
        self.assertEqual(
            body["properties"]["doc"],
            {"type": "string", "format": "binary", "contentMediaType": "application/pdf, image/png", "maxLength": 10},
        )
        self.assertEqual(
            body["properties"]["pic"],
            {"type": "string", "format": "binary", "contentMediaType": "image/png", "x-magic-numbers": True},
        )
        self.assertEqual(body["required"], ["doc", "pic"])  # required unless optional
        self.assertEqual((case.route.max_json_depth, case.route.max_header_bytes), (8, 4096))
        with tempfile.TemporaryDirectory() as d:
            config, _ = tomlgen.write_config(Path(d), [("/c0", case)], Path("lib.so"), "https://x/")
            toml = tomllib.loads(config.read_text(encoding="utf-8"))
        self.assertEqual(toml["server"]["max_header_bytes"], 4096)
        self.assertEqual(toml["routes"][0]["max_json_depth"], 8)

    def test_route_syntax(self):
        path, auto = fx.translate_route("/files/{file_path:path}")
        self.assertEqual(path, "/files/{*file_path}")
        path, auto = fx.translate_route("/items/{id:uuid}/x/{n:int}?q=1")
        self.assertEqual(path, "/items/{id}/x/{n}")
        self.assertEqual(auto, {"id": {"type": "string", "format": "uuid"}, "n": {"type": "integer"}})
        with self.assertRaises(fx.Unloadable):
            fx.translate_route("/a/x{y}")

    def test_template_matching(self):
        self.assertTrue(fx.template_matches("/a/{x}", "/a/1"))
        self.assertFalse(fx.template_matches("/a/{x}", "/a/"))
        self.assertTrue(fx.template_matches("/f/{*p}", "/f/a/b"))
        self.assertFalse(fx.template_matches("/a/", "/a"))

    def test_case_translation(self):
        case = case_from(
            {
                "handler": {
                    "route": "/items/{id:int}",
                    "method": "GET",
                    "parameters": {"path": {"id": {"minimum": 1}}, "header": {"X-Key": {"type": "string"}}},
                },
                "request": {"method": "GET", "path": "/items/3", "query_params": {"t": [1, True]}, "cookies": {"s": "v"}},
                "expected_response": {"status_code": 422},
            }
        )
        self.assertTrue(case.host_answers)
        self.assertEqual(case.route.schemas["path"]["properties"]["id"], {"type": "integer", "minimum": 1})
        self.assertEqual(case.route.schemas["path"]["required"], ["id"])
        self.assertIn("headers", case.route.schemas)
        self.assertEqual(case.request.target, "/items/3?t=1&t=true")
        self.assertIn(("Cookie", "s=v"), case.request.headers)

    def test_request_id_and_timeout_middleware(self):
        case = case_from(
            {
                "handler": {
                    "route": "/t",
                    "method": "GET",
                    "middleware": {"request_timeout": {"seconds": 1.5, "sleep_ms": 100}, "request_id": {"enabled": False}},
                },
                "request": {"method": "GET", "path": "/t"},
                "expected_response": {"status_code": 200, "body": {"ok": 1}, "headers": {"X-Request-ID": "<<uuid>>"}},
            },
            category="request_timeout",
        )
        self.assertEqual((case.route.request_timeout_ms, case.route.delay_ms, case.route.request_id), (1500, 100, False))
        self.assertEqual(case.notes, [])
        lines = tomlgen.route_handler(case)
        self.assertEqual(lines[0], 'handler = "delay"')
        settings = tomllib.loads(lines[1])["settings"]
        self.assertEqual(settings["delay_ms"], 100)
        self.assertNotIn("x-request-id", settings.get("headers", {}), "the host produces the request id")
        with tempfile.TemporaryDirectory() as d:
            config, _ = tomlgen.write_config(Path(d), [("/c1", case)], Path("lib.so"), "https://x/")
            route = tomllib.loads(config.read_text())["routes"][0]
        self.assertEqual((route["request_timeout_ms"], route["request_id"]), (1500, False))

    def test_bodies(self):
        case = case_from(
            {
                "request": {"method": "POST", "path": "/f", "form_data": {"a": "x y", "t": ["1", "2"]}},
                "expected_response": {"status_code": 200},
            }
        )
        self.assertEqual(case.request.body, b"a=x%20y&t=1&t=2")
        self.assertFalse(case.host_answers)  # no handler block: the route answers
        case = case_from(
            {
                "request": {"method": "POST", "path": "/u", "files": [{"field_name": "f", "filename": "a.png", "magic_bytes": "8950"}]},
                "expected_response": {"status_code": 201},
            },
            "multipart",
        )
        ctype = fx.header_get(case.request.headers, "content-type")
        self.assertTrue(ctype.startswith("multipart/form-data; boundary="))
        self.assertIn(b'filename="a.png"\r\nContent-Type: application/octet-stream\r\n\r\n\x89P\r\n', case.request.body)

    def test_templates_expand(self):
        self.assertEqual(fx.expand({"a": "{{ repeat 'x' 3 times }}!"}), {"a": "xxx!"})

    def test_unloadable(self):
        with self.assertRaises(fx.Unloadable):
            case_from({"request": {"method": "GetUser", "path": "/x"}, "expected_response": {"status_code": "OK"}})
        with self.assertRaises(fx.Unloadable):
            case_from({"expected_response": {"status_code": 200}})


class Middleware(unittest.TestCase):
    """The middleware translation (pure functions; no host)."""

    def test_auth(self):
        notes = []
        auth = fx.translate_auth(
            {
                "jwt_auth": {"enabled": True, "algorithm": "HS256", "secret": "s", "audience": "a", "leeway": 0, "x": 1},
                "api_key_auth": {"keys": ["k1", "k2"], "header_name": "X-API-Key"},
            },
            notes,
        )
        self.assertEqual(
            auth,
            {
                "jwt": {"algorithm": "HS256", "secret": "s", "audience": ["a"], "leeway": 0},
                "api_key": {"keys": ["k1", "k2"], "header": "X-API-Key", "query": "api_key"},
            },
        )
        self.assertEqual(notes, ["middleware.jwt_auth.x: not expressible in the host config, ignored"])
        self.assertIsNone(fx.translate_auth({"jwt_auth": {"enabled": False, "secret": "s"}}, []))
        with self.assertRaises(fx.Unloadable):
            fx.translate_auth({"jwt_auth": {"algorithm": "HS256"}}, [])
        with self.assertRaises(fx.Unloadable):
            fx.translate_auth({"api_key_auth": {"keys": []}}, [])

    def test_auth_case_is_a_host_answer(self):
        mw = {"jwt_auth": {"secret": "s"}}
        case = case_from(
            {
                "handler": {"route": "/p", "method": "GET", "middleware": mw},
                "request": {"method": "GET", "path": "/p"},
                "expected_response": {"status_code": 401, "body": {"type": "https://x/unauthorized", "status": 401}},
            },
            "auth",
        )
        self.assertTrue(case.host_answers)
        self.assertEqual(case.middleware_statuses, frozenset({401, 403}))
        self.assertEqual(tomlgen.canned_settings(case)["status"], 200)
        self.assertIsNone(tomlgen.self_check(case))
        with tempfile.TemporaryDirectory() as d:
            config, _ = tomlgen.write_config(Path(d), [("/c1", case)], Path("lib.so"), "https://x/")
            route = tomllib.loads(config.read_text())["routes"][0]
        self.assertEqual(route["auth"], {"jwt": {"secret": "s"}})

    def test_rate_limit_and_warmup(self):
        rl, warmup = fx.translate_rate_limit(
            {"per_second": 1, "burst": 1, "warmup_requests": 2, "warmup_expect_status": 200, "sleep_ms_between": 5}, []
        )
        self.assertEqual(rl, {"per_second": 1, "burst": 1})
        self.assertEqual(warmup, fx.Warmup(2, 200, 5))
        self.assertEqual(fx.translate_rate_limit({"per_second": 5}, []), ({"per_second": 5}, None))
        for bad in ({"per_second": 0}, {"per_second": 1, "burst": -1}, {"per_second": 1, "warmup_requests": 1, "warmup_expect_status": 9}):
            with self.assertRaises(fx.Unloadable):
                fx.translate_rate_limit(bad, [])

    def test_compression(self):
        self.assertEqual(
            fx.translate_compression({"gzip": True, "brotli": True, "zstd": False, "min_size": 10, "quality": "best"}, []),
            {"encodings": ["gzip", "br"], "min_size": 10, "quality": "best"},
        )
        notes = []
        self.assertIsNone(fx.translate_compression({"gzip": False}, notes))
        self.assertTrue(notes)
        with self.assertRaises(fx.Unloadable):
            fx.translate_compression({"gzip": True, "quality": "max"}, [])

    def test_static_files(self):
        data = {
            "handler": {
                "route": "/app",
                "method": "GET",
                "middleware": {
                    "static_files": [
                        {
                            "route_prefix": "/app/",
                            "index_file": True,
                            "cache_control": "public, max-age=60",
                            "files": [{"path": "index.html", "content": "<h1>"}, {"path": "css/a.css", "content": "b"}],
                        }
                    ]
                },
            },
            "request": {"method": "GET", "path": "/app/"},
            "expected_response": {"status_code": 200, "body": "<h1>"},
        }
        case = case_from(data, "static_files")
        self.assertEqual(case.statics, [fx.StaticMount("/app", [("index.html", b"<h1>"), ("css/a.css", b"b")], True, "public, max-age=60")])
        with tempfile.TemporaryDirectory() as d:
            config, layout = tomlgen.write_config(Path(d), [("/c4", case)], Path("lib.so"), "https://x/")
            toml = tomllib.loads(config.read_text())
            self.assertEqual((Path(d) / "static/c4_0/css/a.css").read_bytes(), b"b")
        self.assertNotIn("routes", toml)
        self.assertEqual(
            toml["static"], [{"prefix": "/c4/app", "dir": "static/c4_0", "index": True, "cache_control": "public, max-age=60"}]
        )
        self.assertEqual(layout.statics, [case.id])
        for bad in ("../x", "/etc/passwd", "a/../../b", "", "a//b"):
            data["handler"]["middleware"]["static_files"][0]["files"] = [{"path": bad, "content": ""}]
            with self.assertRaises(fx.Unloadable, msg=bad):
                case_from(data, "static_files")

    def test_cors_from_handler(self):
        notes = []
        cors = fx.translate_cors(
            {"allowed_origins": ["https://a"], "allowed_methods": ["GET"], "allowed_headers": ["Content-Type"], "max_age": 5, "x": 1},
            notes,
        )
        self.assertEqual(cors, {"allow_origins": ["https://a"], "allow_methods": ["GET"], "allow_headers": ["Content-Type"], "max_age": 5})
        self.assertEqual(len(notes), 1)
        with self.assertRaises(fx.Unloadable):
            fx.translate_cors({"allowed_methods": ["GET"]}, [])

    def test_cors_inferred_for_a_preflight(self):
        case = case_from(
            {
                "request": {
                    "method": "OPTIONS",
                    "path": "/r/1",
                    "headers": {"Origin": "https://a", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "X-A"},
                },
                "expected_response": {
                    "status_code": 204,
                    "headers": {
                        "Access-Control-Allow-Origin": "https://a",
                        "Access-Control-Allow-Methods": "GET, PUT",
                        "Access-Control-Allow-Headers": "X-A",
                        "Access-Control-Max-Age": "3600",
                        "Access-Control-Allow-Private-Network": "true",
                        "Vary": "Origin",
                    },
                },
            },
            "cors",
        )
        self.assertEqual((case.route.method, case.route.path), ("PUT", "/r/1"))
        self.assertTrue(case.host_answers)
        self.assertEqual(
            case.route.cors,
            {"allow_origins": ["https://a"], "allow_methods": ["GET", "PUT"], "allow_headers": ["X-A"], "max_age": 3600, "allow_private_network": True},
        )

    def test_cors_canned_answer_has_no_cors_headers(self):
        data = {
            "request": {"method": "GET", "path": "/d", "headers": {"Origin": "https://b"}},
            "expected_response": {
                "status_code": 200,
                "headers": {"Access-Control-Allow-Origin": "*", "Vary": "Origin", "Cache-Control": "no-store"},
                "body": {"ok": 1},
            },
        }
        case = case_from(data, "cors")
        self.assertEqual(case.route.cors, {"allow_origins": ["*"]})
        self.assertFalse(case.host_answers)
        self.assertEqual(tomlgen.canned_settings(case)["headers"], {"cache-control": "no-store", "content-type": "application/json"})
        self.assertIsNone(tomlgen.self_check(case))
        case.route.cors = None  # outside a CORS policy the headers are the handler's
        self.assertIn("vary", tomlgen.canned_settings(case)["headers"])
        # Elsewhere (http_methods/11) expected CORS headers are the handler's: no policy.
        self.assertIsNone(case_from(data, "http_methods").route.cors)

    def test_cors_refusal_is_a_host_answer(self):
        case = case_from(
            {
                "handler": {"route": "/d", "method": "GET", "cors": {"allowed_origins": ["https://a"]}},
                "request": {"method": "GET", "path": "/d", "headers": {"Origin": "https://evil"}},
                "expected_response": {"status_code": 403},
            },
            "cors",
        )
        self.assertTrue(case.host_answers)
        self.assertEqual(case.middleware_statuses, frozenset({403}))

    def test_literal_request_id_of_the_handler(self):
        data = {
            "handler": {"route": "/d", "method": "GET", "cors": {"allowed_origins": ["https://a"]}},
            "request": {"method": "GET", "path": "/d", "headers": {"Origin": "https://a"}},
            "expected_response": {"status_code": 200, "headers": {"X-Request-Id": "abc123"}},
        }
        case = case_from(data, "cors")
        self.assertIs(case.route.request_id, False)
        self.assertEqual(tomlgen.canned_settings(case)["headers"], {"x-request-id": "abc123"})
        # The id the request carries is the host's to propagate (request_id/02).
        data["request"]["headers"]["X-Request-ID"] = "abc123"
        case = case_from(data, "cors")
        self.assertIsNone(case.route.request_id)
        self.assertNotIn("x-request-id", tomlgen.canned_settings(case).get("headers", {}))
        data["expected_response"]["headers"]["X-Request-Id"] = "<<uuid>>"
        self.assertIsNone(case_from(data, "cors").route.request_id)

    def test_refused_case_by_line(self):
        layout = tomlgen.Layout(routes=["a", "b"], statics=["c"], blocks=[(10, "a"), (20, "b"), (30, "c")])
        self.assertEqual(layout.owner_of_line(25), "b")
        self.assertIsNone(layout.owner_of_line(3))
        from runner import main as runner_main
        from runner.hostproc import StartupError

        err = StartupError("exited", "spikard-host: error: /w/spikard.toml:31:1: unknown field `static`")
        self.assertEqual(runner_main.refused_case(err, layout, Path("/w")), ("c", "spikard.toml:31:1: unknown field `static`"))
        err = StartupError("exited", "spikard-host: error: routes[1].path: bad")
        self.assertEqual(runner_main.refused_case(err, layout, Path("/w"))[0], "b")
        err = StartupError("exited", "spikard-host: error: server.listen: bad")
        self.assertIsNone(runner_main.refused_case(err, layout, Path("/w"))[0])


class Compare(unittest.TestCase):
    def test_list_headers(self):
        self.assertTrue(cmp.list_header_matches("Vary", "Origin", ["accept-encoding, origin"]))
        self.assertFalse(cmp.list_header_matches("Vary", "Origin", ["accept-encoding"]))
        self.assertTrue(cmp.list_header_matches("Access-Control-Expose-Headers", "X-A, X-B", ["x-b, x-a"]))
        self.assertFalse(cmp.list_header_matches("Access-Control-Allow-Headers", "X-A, X-B", ["x-a"]))
        self.assertFalse(cmp.list_header_matches("Access-Control-Allow-Methods", "GET, PUT", ["get, put"]))
        self.assertIsNone(cmp.list_header_matches("Cache-Control", "a", ["a"]))

    def test_tokens_and_numbers(self):
        self.assertTrue(cmp.matches({"id": "<<uuid>>", "n": 1}, {"id": "c892496f-b1fd-4b91-bdb8-b46f92df1716", "n": 1.0}))
        self.assertFalse(cmp.matches({"n": 1}, {"n": True}))
        self.assertFalse(cmp.matches({"a": "<<absent>>"}, {"a": 1}))
        self.assertTrue(cmp.matches({"a": 1}, {"a": 1, "b": 2}, partial=True))
        self.assertFalse(cmp.matches({"a": 1}, {"a": 1, "b": 2}))

    def test_errors_multiset_and_soft(self):
        v = cmp.Verdict()
        exp = [
            {"type": "missing", "loc": ["query", "a"], "msg": "Field required", "input": None},
            {"type": "int_parsing", "loc": ["body", "t", "2"], "msg": "x"},
        ]
        got = [
            {"type": "int_parsing", "loc": ["body", "t", 2], "msg": "y", "input": "q", "ctx": {}},
            {"type": "missing", "loc": ["query", "a"], "msg": "Field required", "input": None, "request_id": "r"},
        ]
        cmp.compare_errors(exp, got, v)
        self.assertTrue(v.ok, v.diffs)
        self.assertEqual([ok for ok, _ in v.soft["msg"]], [True, False])
        v = cmp.Verdict()
        cmp.compare_errors(exp, got[:1], v)
        self.assertFalse(v.ok)


def stream_fixture(chunks, content_type="text/plain", body=None) -> dict:
    data = {
        "name": "s",
        "description": "d",
        "handler": {"route": "/stream/x", "method": "GET"},
        "request": {"method": "GET", "path": "/stream/x"},
        "expected_response": {"status_code": 200, "headers": {"content-type": content_type, "x-extra": "1"}},
        "streaming": {"content_type": content_type, "chunks": chunks},
    }
    if body is not None:
        data["expected_response"]["body"] = body
    return data


SSE_FIXTURE = {
    "channel": "/notifications",
    "description": "d",
    "examples": [
        {"type": "alert", "level": "critical", "timestamp": "2024-01-15T10:30:00Z"},
        {"type": "alert", "level": "info", "timestamp": "2024-01-15T10:31:00Z"},
    ],
    "name": "alert",
    "operations": [{"action": "send", "name": "stream", "replies": []}],
    "protocol": "sse",
    "schema": {
        "type": "object",
        "properties": {
            "type": {"type": "string", "const": "alert"},
            "level": {"type": "string", "enum": ["info", "critical"]},
            "timestamp": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
        "required": ["type", "level", "timestamp"],
    },
}


def fake_response(body: bytes, headers=None, framing="chunked", span=1.0) -> rawhttp.Response:
    headers = headers if headers is not None else [("content-type", "text/plain"), ("x-extra", "1")]
    if framing == "chunked":
        headers = headers + [("transfer-encoding", "chunked")]
    return rawhttp.Response(200, "OK", headers, body, framing=framing, head_at=10.0, end_at=10.0 + span)


class Streaming(unittest.TestCase):
    def test_chunks_and_settings(self):
        case = case_from(
            stream_fixture(
                [{"type": "text", "value": "LOG:"}, {"type": "bytes", "base64": "AAECAw=="}, {"type": "text", "value": "é\n"}],
                "application/octet-stream",
                body="documentation",
            ),
            "streaming",
        )
        self.assertEqual(case.stream.body, b"LOG:\x00\x01\x02\x03\xc3\xa9\n")
        self.assertIs(case.expected.body, fx.MISSING)
        self.assertTrue(any("documentation" in n for n in case.notes))
        self.assertFalse(case.host_answers)
        lines = tomlgen.route_handler(case)
        self.assertEqual(lines[0], 'handler = "stream"')
        settings = tomllib.loads(lines[1])["settings"]
        self.assertEqual(settings["status"], 200)
        self.assertEqual(settings["content_type"], "application/octet-stream")
        self.assertEqual(settings["headers"], {"x-extra": "1"})  # no content-type, no framing
        self.assertEqual(settings["interval_ms"], fx.STREAM_INTERVAL_MS)
        # The TOML round trip gives back the very bytes, control bytes included.
        self.assertEqual(b"".join(c.encode("utf-8") for c in settings["chunks"]), case.stream.body)
        self.assertIsNone(tomlgen.self_check(case))

    def test_one_chunk_has_no_interval(self):
        case = case_from(stream_fixture([{"type": "text", "value": "a"}]), "streaming")
        self.assertEqual(case.stream.interval_ms, 0)
        self.assertEqual(case.stream.min_span_s(), 0)

    def test_unloadable_chunks(self):
        bad = [
            [],
            [{"type": "text"}],
            [{"type": "bytes", "base64": "%%%"}],
            [{"type": "blob", "value": "x"}],
            [{"type": "bytes", "base64": "/w=="}],  # 0xFF: not UTF-8, the stream handler takes text
        ]
        for chunks in bad:
            with self.assertRaises(fx.Unloadable, msg=chunks):
                case_from(stream_fixture(chunks), "streaming")

    def test_real_fixture_shapes(self):
        root = Path("/work/shared/spikard-fixtures/testing_data/streaming")
        if not root.is_dir():
            self.skipTest("fixtures not present")
        case = fx.load_case(root.parent, root / "03_binary_log_download.json")
        self.assertEqual(case.stream.body, b"LOG:\x00\x01\x02\x03|TAIL|\x07\\n")

    def test_compare_bytes_framing_and_timing(self):
        case = case_from(stream_fixture([{"type": "text", "value": "a"}]), "streaming")
        case.stream.chunks = [b"\xff\x00", b"z"]  # a non-UTF-8 body compares as bytes
        case.stream.interval_ms = 100
        self.assertTrue(cmp.compare(case, fake_response(b"\xff\x00z")).ok)
        v = cmp.compare(case, fake_response(b"\xfe\x00z"))
        self.assertIn("first difference at byte 0", v.line())
        v = cmp.compare(case, fake_response(b"\xff\x00z", framing="length", headers=[("content-type", "text/plain"), ("x-extra", "1"), ("content-length", "3")]))
        self.assertIn("not streamed: the body came with Content-Length 3", v.line())
        v = cmp.compare(case, fake_response(b"\xff\x00z", headers=[("content-type", "text/plain"), ("x-extra", "1"), ("content-length", "3")]))
        self.assertIn("Content-Length 3 on a chunked answer", v.line())
        v = cmp.compare(case, fake_response(b"\xff\x00z", span=0.001))
        self.assertIn("not streamed: the body ended 1 ms after the head", v.line())
        v = cmp.compare(case, fake_response(b"\xff\x00z", headers=[("content-type", "text/csv"), ("x-extra", "1")]))
        self.assertIn("header content-type", v.line())


class Sse(unittest.TestCase):
    def test_parser(self):
        body = (
            b"\xef\xbb\xbf: a comment\r\n"
            b"data: one\r\ndata:two\r\n\r\n"  # data lines joined by LF; one space dropped
            b"event: custom\nid: 7\ndata:  spaced\n\n"
            b"retry: 10\n\n"  # no data: not dispatched
            b"data: cr\r\r"
            b"data: unterminated"  # the stream ended inside the event: dropped
        )
        events = sse.parse_events(body)
        self.assertEqual(
            [(e.type, e.data, e.id) for e in events],
            [("message", "one\ntwo", ""), ("custom", " spaced", "7"), ("message", "cr", "7")],
        )
        self.assertEqual(sse.parse_events(b""), [])
        self.assertEqual(sse.parse_events("data\n\n")[0].data, "")

    def test_encode_round_trip(self):
        value = {"a": "line\nbreak", "b": [1, 2.5, None, True], "c": "é"}
        text = sse.encode_event(value)
        self.assertTrue(text.startswith("data: {") and text.endswith("}\n\n"))
        self.assertEqual(text.count("\n"), 2)
        self.assertEqual(json.loads(sse.parse_events(text.encode())[0].data), value)

    def test_schema_both_validators(self):
        schema = SSE_FIXTURE["schema"]
        good = dict(SSE_FIXTURE["examples"][0], tags=["x"])
        bad = [
            {"type": "alert", "level": "critical"},  # required
            dict(good, type="other"),  # const
            dict(good, level="fatal"),  # enum
            dict(good, timestamp="yesterday"),  # format date-time
            dict(good, tags=[]),  # minItems
            dict(good, tags=[1]),  # items type
            ["not", "an", "object"],
        ]
        for use_package in (True, False):
            if use_package and sse._jsonschema is None:
                continue
            self.assertEqual(sse.schema_errors(schema, good, use_package), [])
            for value in bad:
                self.assertTrue(sse.schema_errors(schema, value, use_package), (use_package, value))
        self.assertEqual(sse.schema_errors({"type": "integer"}, True, use_package=False), ["data: true is not of type integer"])

    def test_small_validator_names_what_it_cannot_check(self):
        saved = sse._jsonschema
        sse._jsonschema = None
        try:
            self.assertEqual(sse.schema_problems(SSE_FIXTURE["schema"]), [])
            problems = sse.schema_problems({"type": "object", "properties": {"a": {"pattern": "x"}}, "oneOf": []})
            self.assertEqual(problems, ["keyword(s) the runner's small validator cannot check: oneOf, pattern"])
        finally:
            sse._jsonschema = saved

    def test_case_translation(self):
        case = case_from(SSE_FIXTURE, "sse")
        self.assertEqual((case.route.method, case.route.path), ("GET", "/notifications"))
        self.assertEqual(case.request.target, "/notifications")
        self.assertIn(("Accept", "text/event-stream"), case.request.headers)
        self.assertEqual(case.expected.headers, {"content-type": "text/event-stream"})
        self.assertEqual(case.stream.content_type, "text/event-stream")
        self.assertEqual([json.loads(e.data) for e in sse.parse_events(case.stream.body)], SSE_FIXTURE["examples"])
        settings = tomllib.loads(tomlgen.route_handler(case)[1])["settings"]
        self.assertEqual(len(settings["chunks"]), 3)  # the opening comment, then one chunk per event
        self.assertTrue(settings["chunks"][0].startswith(":"))
        self.assertTrue(all(c.startswith("data: ") and c.endswith("\n\n") for c in settings["chunks"][1:]))
        self.assertEqual(settings["interval_ms"], fx.STREAM_INTERVAL_MS)

    def test_unloadable_sse(self):
        changes = [
            {"protocol": "websocket"},
            {"channel": "/items/{id}"},
            {"channel": "notifications"},
            {"operations": [{"action": "receive", "name": "x"}]},
            {"operations": [{"action": "send", "replies": [{"x": 1}]}]},
            {"examples": []},
            {"examples": [{"type": "alert"}]},  # the fixture's example fails its own schema
            {"schema": "nope"},
        ]
        for change in changes:
            with self.assertRaises(fx.Unloadable, msg=change):
                case_from(dict(SSE_FIXTURE, **change), "sse")

    def test_compare_events(self):
        case = case_from(SSE_FIXTURE, "sse")
        ok = fake_response(case.stream.body, [("content-type", "text/event-stream")])
        self.assertTrue(cmp.compare(case, ok).ok, cmp.compare(case, ok).diffs)
        # Comments and CRLF are the server's choice.
        body = b": hi\r\n" + case.stream.body.replace(b"\n", b"\r\n")
        self.assertTrue(cmp.compare(case, fake_response(body, [("content-type", "text/event-stream")])).ok)
        one = sse.encode_event(SSE_FIXTURE["examples"][0]).encode()
        v = cmp.compare(case, fake_response(one, [("content-type", "text/event-stream")]))
        self.assertIn("sse: expected 2 event(s), got 1", v.line())
        wrong = one + sse.encode_event(dict(SSE_FIXTURE["examples"][1], level="fatal")).encode()
        v = cmp.compare(case, fake_response(wrong, [("content-type", "text/event-stream")]))
        self.assertFalse(v.ok)
        self.assertTrue(any("level" in d for d in v.diffs) and any("validate" in d for d in v.diffs), v.diffs)
        v = cmp.compare(case, fake_response(one + b"data: {oops\n\n", [("content-type", "text/event-stream")]))
        self.assertIn("sse event 1: data is not JSON", " ".join(v.diffs))


class RawHttp(unittest.TestCase):
    def test_exchange(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                out = json.dumps({"got": body.decode(), "x": self.headers["X-Mixed-Case"]}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Set-Cookie", "a=1")
                self.send_header("Set-Cookie", "b=2")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        try:
            resp = rawhttp.exchange(
                "127.0.0.1", server.server_port, "POST", "/x", [("X-Mixed-Case", "v"), ("Content-Length", "2")], b"hi", timeout=5
            )
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(resp.status, 201)
        self.assertEqual(json.loads(resp.body), {"got": "hi", "x": "v"})
        self.assertEqual(resp.all("set-cookie"), ["a=1", "b=2"])

    def test_warmup(self):
        statuses = [200, 429]

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.send_response(statuses.pop(0) if statuses else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        from runner import main as runner_main

        case = case_from(
            {
                "handler": {
                    "route": "/r",
                    "method": "GET",
                    "middleware": {"rate_limit": {"per_second": 1, "warmup_requests": 2, "warmup_expect_status": 200}},
                },
                "request": {"method": "GET", "path": "/r"},
                "expected_response": {"status_code": 429},
            },
            "rate_limit",
        )
        self.assertTrue(case.host_answers)
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        try:
            diff = runner_main.run_warmup(case, "/c1", server.server_port, 5)
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(diff, "warm-up request 2/2: status expected 200, got 429")

    def test_chunked_stream(self):
        import socket

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve():
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                for part in (b"\xff\x00", b"|x|"):
                    time.sleep(0.15)
                    conn.sendall(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
                time.sleep(0.05)
                conn.sendall(b"0\r\nX-Trailer: t\r\n\r\n")

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            resp = rawhttp.exchange("127.0.0.1", port, "GET", "/s", [], None, timeout=5)
        finally:
            t.join(5)
            listener.close()
        self.assertEqual(resp.body, b"\xff\x00|x|")
        self.assertEqual(resp.framing, "chunked")
        self.assertEqual([n for _, n in resp.chunk_times], [2, 3])
        self.assertGreater(resp.chunk_times[1][0] - resp.chunk_times[0][0], 0.1)
        self.assertGreater(resp.end_at - resp.head_at, 0.25)

    def test_framing_of_a_length_body(self):
        import socket

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve():
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            resp = rawhttp.exchange("127.0.0.1", port, "GET", "/s", [], None, timeout=5)
        finally:
            t.join(5)
            listener.close()
        self.assertEqual((resp.framing, resp.body), ("length", b"abc"))

    def test_refused_connection_is_an_http_error(self):
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with self.assertRaises(rawhttp.HttpError):
            rawhttp.exchange("127.0.0.1", port, "GET", "/", [], None, timeout=2)


# ---------------------------------------------------------------------------
# Python mode: the generator (runner/pygen.py, features.py, pymode.py)

from runner import features, pygen, pymode  # noqa: E402

SPIKARD_SRC = Path(__file__).resolve().parents[2] / "plugins" / "python" / "python"


def spikard_importable() -> bool:
    """The round-trip tests compile generated routes with the package's own
    code (plugins/python/python), which needs msgspec: run them with the
    project venv's python (.venv/bin/python -m pytest tests/conformance)."""
    try:
        import msgspec  # noqa: F401, PLC0415
    except ImportError:
        return False
    return SPIKARD_SRC.is_dir()


def exec_generated(gen: pygen.Generated, extra: dict | None = None) -> dict:
    """Runs a generated case module (MODULE_HEAD + the case) and returns its namespace."""
    import types  # noqa: PLC0415

    support = types.ModuleType("conf_app._support")
    exec(pymode.SUPPORT, support.__dict__)  # noqa: S102
    pkg = types.ModuleType("conf_app")
    pkg.__path__ = []
    sys.modules["conf_app"], sys.modules["conf_app._support"] = pkg, support
    ns: dict = {"__name__": "conf_app.cases_x", "__package__": "conf_app"}
    exec(compile(pymode.MODULE_HEAD.format(category="x") + gen.source, "generated", "exec"), ns)  # noqa: S102
    return ns


class PythonGenerator(unittest.TestCase):
    def test_identifiers_are_valid_and_unique(self):
        used: set[str] = set()
        names = [pygen.ident(n, used, "h") for n in ("X-API-Key", "x_api_key", "class", "1abc", "", "ü")]
        self.assertEqual(len(set(names)), len(names))
        self.assertTrue(all(n.isidentifier() for n in names), names)

    def test_parameter_keywords_go_to_hint_marker_or_meta(self):
        used: set[str] = set()
        p = pygen.scalar_param(
            "query",
            "page-size",
            {"type": "integer", "minimum": 1, "exclusiveMaximum": 100, "multipleOf": 5, "description": "d"},
            True,
            used,
        )
        self.assertEqual(
            p.annotation,
            "Annotated[int, Query(alias='page-size', ge=1, lt=100, description='d'), "
            "msgspec.Meta(extra_json_schema={'multipleOf': 5})]",
        )
        p = pygen.scalar_param("headers", "X-Tags", {"type": "array", "items": {"type": "string"}, "maxItems": 3}, False, used)
        self.assertEqual(p.annotation, "Annotated[list[str] | None, Header(None, alias='X-Tags', max_length=3)]")
        p = pygen.scalar_param("cookies", "mode", {"type": "string", "enum": ["a", "b"], "default": "a"}, False, used)
        self.assertEqual(p.annotation, "Annotated[Literal['a', 'b'], Cookie('a', alias='mode')]")
        p = pygen.scalar_param("path", "id", {"type": "string", "format": "uuid"}, True, used)
        self.assertEqual(p.annotation, "Annotated[UUID, Path(alias='id')]")
        # item rules the hint cannot carry: the whole items schema as extra
        p = pygen.scalar_param("query", "n", {"type": "array", "items": {"type": "integer", "minimum": 0}}, True, used)
        self.assertIn("extra_json_schema={'items': {'type': 'integer', 'minimum': 0}}", p.annotation)

    def test_echoed_parameters_and_body(self):
        case = case_from(
            {
                "handler": {"route": "/items/{id}", "method": "POST", "parameters": {
                    "path": {"id": {"type": "integer"}}, "query": {"q": {"type": "string"}}},
                    "body_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}},
                "request": {"method": "POST", "path": "/items/5?q=x", "body": {"n": 1}},
                "expected_response": {"status_code": 200, "body": {"id": 5, "q": "x", "other": 1}},
            }
        )
        gen = pygen.generate_case("case_1", "/c1/items/{id}", case)
        self.assertIn("data['id'] = p_id", gen.source)
        self.assertIn("data['q'] = q_q", gen.source)
        self.assertNotIn("data['other']", gen.source)
        compile(gen.source, "generated", "exec")
        # a body expected to be the request's own: the decoded body goes back
        case = case_from(
            {
                "handler": {"route": "/b", "method": "POST", "body_schema": {"type": "object"}},
                "request": {"method": "POST", "path": "/b", "body": {"n": [1, 2]}},
                "expected_response": {"status_code": 201, "body": {"n": [1, 2]}},
            }
        )
        self.assertIn("Response(content=msgspec.json.encode(body), status_code=201", pygen.generate_case("case_2", "/c2/b", case).source)

    def test_multipart_files_and_fields(self):
        case = case_from(
            {
                "handler": {"route": "/u", "method": "POST", "body_schema": {"type": "object", "properties": {
                    "doc": {"type": "string", "format": "binary"}, "raw": {"type": "string", "format": "binary"},
                    "note": {"type": "string", "minLength": 2}}, "required": ["doc", "note"]},
                    "parameters": {"files": {"doc": {"required": True, "content_type": ["image/png"], "max_size": 9}}}},
                "request": {"method": "POST", "path": "/u", "files": [
                    {"field_name": "doc", "filename": "a.png", "content": "x", "content_type": "image/png"},
                    {"field_name": "raw", "content": "y"}], "data": {"note": "hi"}},
                "expected_response": {"status_code": 200, "body": {"ok": True}},
            },
            "multipart",
        )
        src = pygen.generate_case("case_1", "/c1/u", case).source
        self.assertIn("Annotated[UploadFile, File(alias='doc', media_type='image/png', max_size=9)]", src)
        self.assertIn("Annotated[bytes | None, File(None, alias='raw')]", src)  # sent without a filename
        self.assertIn("Form(alias='note', min_length=2)", src)

    def test_host_route_keys_become_route_options(self):
        case = case_from(
            {
                "handler": {"route": "/r", "method": "GET", "middleware": {"request_id": {"enabled": False}}},
                "request": {"method": "GET", "path": "/r"},
                "expected_response": {"status_code": 200},
            },
            "request_id",
        )
        src = pygen.generate_case("case_1", "/c1/r", case).source
        self.assertIn("handler, request_id=False)]", src)
        case = case_from(
            {
                "handler": {"route": "/d", "method": "POST", "body_schema": {"type": "object"}, "max_nesting_depth": 4},
                "request": {"method": "POST", "path": "/d", "body": {}},
                "expected_response": {"status_code": 200},
            },
            "edge_cases",
        )
        src = pygen.generate_case("case_2", "/c2/d", case).source
        self.assertIn("handler, max_json_depth=4)]", src)
        compile(src, "generated", "exec")

    def test_streams(self):
        case = case_from(
            {
                "handler": {"route": "/s", "method": "GET"},
                "streaming": {"content_type": "text/csv", "chunks": [{"type": "text", "value": "a,b\n"}, {"type": "text", "value": "1,2\n"}]},
                "request": {"method": "GET", "path": "/s"},
                "expected_response": {"status_code": 200, "headers": {"content-type": "text/csv"}},
            },
            "streaming",
        )
        src = pygen.generate_case("case_1", "/c1/s", case).source
        self.assertIn("StreamingResponse(chunks()", src)
        self.assertIn("('content-type', 'text/csv')", src)  # as a header: no charset added
        compile(src, "generated", "exec")

    def test_refused_prefix_and_policies(self):
        self.assertEqual(pymode.refused_prefix("error: route GET /c12/items: bad schema"), "/c12")
        self.assertIsNone(pymode.refused_prefix("listening on http://127.0.0.1:1/c3"))
        case = case_from(
            {
                "handler": {"route": "/a", "method": "GET", "middleware": {"rate_limit": {"per_second": 2, "burst": 1}}},
                "request": {"method": "GET", "path": "/a"},
                "expected_response": {"status_code": 200},
            },
            "rate_limit",
        )
        block = "\n".join(pymode.policy_blocks("/c4", case))
        data = tomllib.loads(block.split("\n", 1)[1])
        self.assertEqual(data["policies"][0], {"path": "/c4/**", "rate_limit": {"per_second": 2, "burst": 1}})

    def test_need_names_what_is_missing(self):
        import types  # noqa: PLC0415

        fake = types.ModuleType("spikard")
        fake.App = type("App", (), {"exception_handler": lambda self: None})
        saved = sys.modules.get("spikard")
        sys.modules["spikard"] = fake
        try:
            ns: dict = {}
            exec(pymode.SUPPORT, ns)  # noqa: S102
            ns["need"]("App.exception_handler")  # present: no error
            with self.assertRaises(ns["Needs"]) as cm:
                ns["need"]("Depends", "App.exception_handler", "App.middleware")
            self.assertEqual(str(cm.exception), "Depends, App.middleware")
        finally:
            if saved is None:
                sys.modules.pop("spikard", None)
            else:
                sys.modules["spikard"] = saved

    def test_same_as_token(self):
        filled = tomlgen.fill_tokens({"a": "<<uuid>>", "b": "<<same_as:a>>"})
        self.assertEqual(filled["a"], filled["b"])
        self.assertTrue(cmp.matches({"a": "<<uuid>>", "b": "<<same_as:a>>"}, filled))
        self.assertFalse(cmp.matches({"a": "<<uuid>>", "b": "<<same_as:a>>"}, {**filled, "b": "other"}))

    def di_case(self, handler: dict, body: dict) -> fx.Case:
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            (root / "di").mkdir()
            f = root / "di" / "01.json"
            f.write_text(json.dumps({
                "handler": {"route": "/d", "method": "GET", **handler},
                "request": {"method": "GET", "path": "/d"},
                "expected_response": {"status_code": 200, "body": body},
            }))
            return features.load_feature_case(root, f)

    def test_di_graph(self):
        with self.assertRaises(pygen.NotExpressible):  # a cycle
            self.di_case({"dependencies": {
                "a": {"type": "factory", "depends_on": ["b"]}, "b": {"type": "factory", "depends_on": ["a"]}},
                "handler_dependencies": ["a"]}, {})
        with self.assertRaises(pygen.NotExpressible):  # not registered
            self.di_case({"dependencies": {}, "handler_dependencies": ["x"]}, {})
        pc = self.di_case({"dependencies": {
            "cfg": {"type": "value", "value": {"name": "N"}},
            "svc": {"type": "async_factory", "depends_on": ["cfg"], "cacheable": False},
            "db": {"type": "factory", "cleanup": True}},
            "handler_dependencies": ["svc", "cfg", "cfg", "db"]}, {"name": "N"})
        src = pc.generate("case_1", "/c1").source
        compile(src, "generated", "exec")
        self.assertIn("async def dep_svc(*, u_cfg: Annotated[Any, Depends(dep_cfg)])", src)
        self.assertIn("Depends(dep_svc, use_cache=False)", src)
        self.assertIn("if d2_cfg is not d1_cfg", src)  # asked twice: one cached value
        self.assertIn("yield value", src)  # cleanup: a generator dependency
        self.assertIn("data['name'] = d1_cfg['name']", src)  # the body member from the injected value
        # the order dependencies are defined in: before their users
        self.assertLess(src.index("def dep_cfg"), src.index("def dep_svc"))

    def test_struct_bodies(self):
        from runner import models  # noqa: PLC0415

        classes, root = models.struct_source(
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "price": {"type": ["number", "null"], "exclusiveMinimum": 0},
                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3, "default": []},
                    "kind": {"type": "string", "enum": ["a", "b"]},
                    "owner": {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}},
                              "required": ["id"], "additionalProperties": False},
                },
                "required": ["name", "owner"],
                "additionalProperties": False,
            },
            "Body",
        )
        self.assertEqual(root, "Body")
        self.assertEqual(
            classes,
            [
                "class Body_owner(msgspec.Struct, forbid_unknown_fields=True):\n    id: UUID",
                "class Body(msgspec.Struct, forbid_unknown_fields=True):\n"
                "    name: Annotated[str, msgspec.Meta(min_length=1)]\n"
                "    owner: Body_owner\n"
                "    price: Annotated[float, msgspec.Meta(gt=0)] | None | msgspec.UnsetType = msgspec.UNSET\n"
                "    tags: Annotated[list[str], msgspec.Meta(max_length=3)] = []\n"
                "    kind: Literal['a', 'b'] | msgspec.UnsetType = msgspec.UNSET",
            ],
        )
        for inexact in (
            {"type": "object", "properties": {"a": {"type": "string"}}, "minProperties": 1},
            {"type": "object", "properties": {"a-b": {"type": "string"}}},
            {"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}},
            {"type": "object", "properties": {"a": {"type": "string", "default": "x"}}, "required": ["a"]},
            {"type": "array", "items": {"type": "string"}},
        ):
            self.assertIsNone(models.struct_source(inexact, "Body"), inexact)

    @unittest.skipUnless(spikard_importable(), "needs msgspec (run with .venv/bin/python)")
    def test_struct_round_trip_through_the_package(self):
        """A Struct body's schema, as the package hands it to the host, has
        the fixture's keywords."""
        sys.path.insert(0, str(SPIKARD_SRC))
        import spikard  # noqa: PLC0415

        body = {"type": "object", "properties": {
            "name": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"},
            "n": {"type": "integer", "minimum": 0, "multipleOf": 2},
            "mail": {"type": "string", "format": "email"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"q": {"type": "boolean"}},
                                                 "required": ["q"]}, "minItems": 1},
        }, "required": ["name", "items"], "additionalProperties": False}
        case = case_from({
            "handler": {"route": "/m", "method": "POST", "body_schema": body},
            "request": {"method": "POST", "path": "/m", "body": {"name": "a", "items": [{"q": True}]}},
            "expected_response": {"status_code": 200, "body": {"name": "a", "items": [{"q": True}]}},
        })
        gen = pygen.generate_case("case_1", "/c1/m", case)
        self.assertIn("body: Body", gen.source)
        self.assertIn("msgspec.json.encode(body)", gen.source)  # the decoded Struct goes back
        ns = exec_generated(gen)
        schema = ns["case_1"](spikard.App())[0].schema["body"]
        self.assertEqual(sorted(schema["required"]), ["items", "name"])
        self.assertIs(schema["additionalProperties"], False)
        for name, want in body["properties"].items():
            have = schema["properties"][name]
            for k, v in want.items():
                if k != "items":
                    self.assertEqual(have.get(k), v, f"{name}.{k}: {have}")

    @unittest.skipUnless(spikard_importable(), "needs msgspec (run with .venv/bin/python)")
    def test_round_trip_through_the_package(self):
        """The schemas spikard derives from the generated type hints are the
        echo mode's schemas, keyword for keyword."""
        sys.path.insert(0, str(SPIKARD_SRC))
        import spikard  # noqa: PLC0415

        query = {"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 1, "exclusiveMaximum": 10, "multipleOf": 2},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 2}, "minItems": 1},
            "mail": {"type": "string", "format": "email", "maxLength": 40},
            "when": {"type": "string", "format": "date"},
            "kind": {"type": "string", "enum": ["a", "b"]},
        }, "required": ["n", "tags", "mail", "when", "kind"]}
        body = {"type": "object", "properties": {"x": {"type": "number", "maximum": 3}}, "required": ["x"],
                "additionalProperties": False}
        case = case_from({
            "handler": {"route": "/r", "method": "POST", "parameters": {"query": query["properties"]}, "body_schema": body},
            "request": {"method": "POST", "path": "/r", "body": {"x": 1}},
            "expected_response": {"status_code": 200, "body": {"ok": True}},
        })
        ns = exec_generated(pygen.generate_case("case_1", "/c1/r", case))
        app = spikard.App()
        routes = ns["case_1"](app)
        schema = routes[0].schema
        self.assertEqual({k: v for k, v in schema["body"].items() if k != "title"}, body)  # a Struct: + its title
        got = schema["query"]
        self.assertEqual(sorted(got["required"]), sorted(query["required"]))
        for name, want in query["properties"].items():
            have = got["properties"][name]
            for k, v in want.items():
                self.assertEqual(have.get(k), v, f"{name}.{k}: {have}")


if __name__ == "__main__":
    unittest.main()
