"""The ``Request`` API's parts without a host: headers, query and form
parsing, URLs, and ``json()``/``form()``/``body()`` in sync and async code.
(``test_testclient.py`` checks them end to end.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spikard import Request, UploadFile
from spikard._forms import parse_form
from spikard._request import URL, Headers, QueryParams


class Source:
    """What the plugin's responder offers (``spikard._native.RequestSource``)."""

    request_id = "rid"
    method = "POST"
    path = "/a%20b/c"
    query_string = "x=1&x=2&y="
    client = ("::1", 4321)
    server = ("127.0.0.1", 8080)
    scheme = "http"
    http_version = "HTTP/1.0"
    route = "/{p}/c"


def make(headers: list[tuple[str, str]] | None = None, body: bytes = b"", source: Any = None) -> Request:
    return Request(headers, '{"path": {"p": "a b"}, "query": {"x": [1, 2]}}', body, source or Source())


def test_url_parts_and_fallback_host() -> None:
    request = make()  # no Host header (HTTP/1.0): the server's address
    assert request.url == "http://127.0.0.1:8080/a%20b/c?x=1&x=2&y="
    assert (request.url.path, request.url.query, request.url.port) == ("/a%20b/c", "x=1&x=2&y=", 8080)
    assert request.base_url == "http://127.0.0.1:8080/"
    assert request.client == ("::1", 4321) and request.client.host == "::1"
    assert (request.method, request.http_version, request.route) == ("POST", "HTTP/1.0", "/{p}/c")
    assert make([("host", "h.example")]).url.hostname == "h.example"
    bare = Request(None, "{}", b"", "only-an-id")
    assert (bare.request_id, bare.method, bare.client, bare.url) == ("only-an-id", "", None, "http://localhost/")


def test_query_params_are_as_sent() -> None:
    query = make().query_params
    assert (query["x"], query.getlist("x"), query["y"]) == ("2", ["1", "2"], "")
    assert make().params["query"] == {"x": [1, 2]}  # the host's converted values
    without = make(source="rid").query_params  # no raw query: the validated values as text
    assert without.getlist("x") == ["1", "2"]
    assert str(QueryParams("a=1&b=x+y")) == "a=1&b=x+y"


def test_headers_and_cookies() -> None:
    request = make([("x-a", "1"), ("x-a", "2"), ("cookie", 'a=1; b="q r"'), ("cookie", "c=3")])
    headers = request.headers
    assert isinstance(headers, dict) and headers == {"x-a": "1, 2", "cookie": 'a=1; b="q r"; c=3'}
    assert (headers["X-A"], headers.get("X-a"), "X-A" in headers) == ("1, 2", "1, 2", True)
    assert headers.getlist("X-A") == ["1", "2"]
    assert request.cookies == {"a": "1", "b": "q r", "c": "3"}
    assert Headers().get("missing", "d") == "d"


def test_url_copies() -> None:
    url = URL("https://u:p@h:8443/p?a=1&b=2#f")
    assert (url.scheme, url.username, url.port, url.fragment, url.is_secure) == ("https", "u", 8443, "f", True)
    assert url.include_query_params(a=3) == "https://u:p@h:8443/p?b=2&a=3#f"
    assert url.remove_query_params("a") == "https://u:p@h:8443/p?b=2#f"
    assert url.replace(path="/q", fragment="") == "https://u:p@h:8443/q?a=1&b=2"


def test_body_json_and_form_are_awaitables() -> None:
    request = make([("content-type", "application/x-www-form-urlencoded")], b"k=1&k=%C3%A9")
    assert isinstance(request.body, bytes) and request.body == b"k=1&k=%C3%A9"
    assert request.body() == request.body and request.body.decode() == "k=1&k=%C3%A9"
    with pytest.raises(TypeError, match=r"await request\.form"):
        request.form().getlist("k")  # an awaitable, as Starlette's, even outside a coroutine

    async def handler() -> Any:
        body = await request.body()
        form = await request.form()
        async with request.form() as same:
            assert same is form
        return body, form.getlist("k")

    assert asyncio.run(handler()) == (b"k=1&k=%C3%A9", ["1", "é"])
    as_json = make(body=b'{"a": [1]}')
    assert asyncio.run(_awaited(as_json.json())) == {"a": [1]}

    async def forgot_await() -> Any:
        return as_json.json()["a"]

    with pytest.raises(TypeError, match=r"write `await request\.json\(\)`"):
        asyncio.run(forgot_await())

    async def awaited() -> Any:
        return (await as_json.json())["a"]

    assert asyncio.run(awaited()) == [1]


def test_multipart_as_sent() -> None:
    body = (
        b"preamble\r\n--XX\r\n"
        b'Content-Disposition: form-data; name="n"\r\n\r\n007\r\n'
        b"--XX\r\n"
        b'Content-Disposition: form-data; name="f"; filename="a \\"b\\".txt"\r\n'
        b"Content-Type: text/csv\r\n\r\nx,y\r\n1,2\r\n"
        b"--XX\r\n"
        b"Content-Disposition: form-data; name=\"g\"; filename*=utf-8''%C3%A9.bin\r\n\r\n\x00\xff\r\n"
        b"--XX\r\n\r\nno headers: skipped\r\n"
        b"--XX--\r\nepilogue"
    )
    form = parse_form('multipart/form-data; boundary="XX"', body)
    assert form["n"] == "007"
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert (upload.filename, upload.content_type, upload.size) == ('a "b".txt', "text/csv", 8)
    assert asyncio.run(upload.read()) == b"x,y\r\n1,2"
    assert form["g"].filename == "é.bin" and asyncio.run(form["g"].read()) == b"\x00\xff"
    assert list(form) == ["n", "f", "g"]
    asyncio.run(form.close())
    assert upload.closed
    assert parse_form("application/json", b"{}") == {}


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
