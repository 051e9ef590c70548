"""``spikard.testclient.TestClient`` against ``examples/request_app.py``,
through the real host and plugin: the Starlette-like ``Request`` (what a
handler reads of the request, on both bridges and in ``def`` handlers),
forms, cookies, redirects, lifespan hooks and server exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from examples import request_app

from conftest import BRIDGES, missing_binaries
from spikard.testclient import ServerError, TestClient, app_reference

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=BRIDGES)
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    if missing_binaries():
        pytest.skip("needs the binaries")
    with TestClient(request_app.app, settings={"bridge": request.param}) as client:
        yield client


def test_the_app_is_found_by_its_module() -> None:
    reference, roots = app_reference(request_app.app)
    assert reference == "examples.request_app:app"
    assert roots == [str(Path(request_app.__file__).resolve().parents[1])]
    assert app_reference("pkg.mod:app") == ("pkg.mod:app", [])

    def make() -> object:
        from spikard import App

        return App()

    with pytest.raises(ValueError, match="top level of a module"):
        app_reference(make())


def test_request_line_and_properties(client: TestClient) -> None:
    r = client.get(
        "/echo/5",
        params=[("a", "1"), ("a", "2"), ("b", "")],
        headers=[("X-Multi", "1"), ("x-multi", "2"), ("X-One", "o")],
        cookies={"c": "d e"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "GET"
    assert body["url"] == "http://testserver/echo/5?a=1&a=2&b="
    assert (body["path"], body["query"], body["scheme"]) == ("/echo/5", "a=1&a=2&b=", "http")
    assert (body["netloc"], body["hostname"], body["port"]) == ("testserver", "testserver", None)
    assert body["base_url"] == "http://testserver/"
    host, port = body["client"]
    assert host == "127.0.0.1" and isinstance(port, int) and port > 0
    assert body["http_version"] == "HTTP/1.1"
    assert body["route"] == "/echo/{item_id}"
    assert body["request_id"] == r.headers["X-Request-Id"]
    assert body["headers"] == {"x-multi": ["1", "2"], "X-One": "o"}
    assert body["cookies"] == {"c": "d e"}
    # The query as sent (strings, repeated keys); the path parameter validated (an int).
    assert body["query_params"] == [["a", "1"], ["a", "2"], ["b", ""]]
    assert body["path_params"] == {"item_id": 5}
    assert body["state"] == 5
    assert (body["body_is_bytes"], body["body_len"]) == (True, 0)


def test_awaited_body_and_json(client: TestClient) -> None:
    r = client.post("/echo/7", json={"x": [1, 2]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "POST" and body["path_params"] == {"item_id": 7}
    assert body["json"] == {"x": [1, 2]}
    assert body["body"] == '{"x": [1, 2]}'
    assert body["body_len"] == len(body["body"])


def test_a_def_handler_reads_json_without_await(client: TestClient) -> None:
    r = client.put("/echo/8", content=b'{"sync": true}', headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["method"], body["json"], body["body"]) == ("PUT", {"sync": True}, '{"sync": true}')
    assert body["client"][0] == "127.0.0.1" and body["route"] == "/echo/{item_id}"


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "OPTIONS"])
def test_every_method(client: TestClient, method: str) -> None:
    r = client.request(method, "/echo/9")
    assert r.status_code == 200, r.text
    assert r.json()["method"] == method


def test_head(client: TestClient) -> None:
    r = client.head("/echo/9")
    assert (r.status_code, r.content, r.headers["x-method"]) == (200, b"", "HEAD")


def test_form_of_a_route_without_form_parameters(client: TestClient) -> None:
    r = client.post("/form/any", data={"a": ["1", "2"], "b": "x y"})
    assert r.status_code == 200, r.text
    assert r.json() == {"a": ["1", "2"], "b": ["x y"]}
    r = client.post("/form/any", data={"note": "é"}, files={"f": ("hello.txt", b"hello", "text/plain")})
    assert r.status_code == 200, r.text
    assert r.json() == {"note": ["é"], "f": [{"filename": "hello.txt", "content": "hello"}]}


def test_form_has_the_fields_as_sent(client: TestClient) -> None:
    for send in ({"data": {"n": "007", "note": "hi"}}, {"data": {"n": "007", "note": "hi"}, "files": {"x": b"1"}}):
        r = client.post("/form/declared", **send)  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["n"], body["note"]) == (7, "hi")  # converted by the host
        assert ["n", "007"] in body["form"] and ["note", "hi"] in body["form"]
        assert ("files" not in send) or ["x", "file upload"] in body["form"]


def test_cookies_persist_across_requests(client: TestClient) -> None:
    r = client.get("/cookie")
    assert r.status_code == 200, r.text
    assert r.cookies == {"session": "abc"}
    assert client.get("/echo/1").json()["cookies"]["session"] == "abc"
    client.cookies.clear()


def test_redirects_are_followed(client: TestClient) -> None:
    r = client.get("/redirect")
    assert r.status_code == 200, r.text
    assert [h.status_code for h in r.history] == [307]
    assert r.json()["query_params"] == [["from", "redirect"]]
    r = client.get("/redirect", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "/echo/1?from=redirect")


def test_startup_hooks_ran_in_the_server(client: TestClient) -> None:
    assert client.get("/events").json() == ["startup"]


def test_server_exceptions_are_raised_in_the_test(client: TestClient) -> None:
    with pytest.raises(ServerError, match="boom in the handler") as info:
        client.get("/crash")
    assert "ValueError" in str(info.value) and "request_app.py" in str(info.value)
    client.raise_server_exceptions = False
    try:
        r = client.get("/crash")
    finally:
        client.raise_server_exceptions = True
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")


def test_lifespan_and_lazy_start(tmp_path: Path) -> None:
    if missing_binaries():
        pytest.skip("needs the binaries")
    trace = tmp_path / "shutdown.txt"
    client = TestClient(request_app.app, env={"REQUEST_APP_SHUTDOWN_FILE": str(trace)})
    try:
        assert client.server_log == ""  # nothing started yet
        assert client.get("/events").json() == ["startup"]  # the first request started it
        assert not trace.exists()
    finally:
        client.close()
    assert trace.read_text(encoding="utf-8") == "shutdown\n"
    with TestClient(request_app.app, env={"REQUEST_APP_SHUTDOWN_FILE": str(trace)}) as second:
        assert second.get("/echo/1").status_code == 200
    assert trace.read_text(encoding="utf-8") == "shutdown\nshutdown\n"
