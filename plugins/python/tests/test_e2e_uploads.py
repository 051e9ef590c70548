"""Uploads and forms through the real host and plugin
(examples/uploads_app.py): ``UploadFile``, ``File()``, ``Form()``, files on
disk past the spool threshold, and every upload closed after its response."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from conftest import BRIDGES, BUILD_HINT, Host, error_locs, missing_binaries, problem, start_app_host

pytestmark = pytest.mark.e2e

#: A field: (name, text) or (name, filename, content_type or None, bytes).
Field = tuple


@pytest.fixture(scope="module", params=BRIDGES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Host, Path]]:
    """The app, with a TMPDIR of its own (to see its temporary files)."""
    if missing_binaries():
        pytest.skip(f"needs {', '.join(missing_binaries())}: {BUILD_HINT}")
    tmp = tmp_path_factory.mktemp(f"uploads-{request.param}")
    spool = tmp / "spool"
    spool.mkdir()
    host = start_app_host(tmp, "examples.uploads_app:app", request.param, env={"TMPDIR": str(spool)})
    try:
        yield host, spool
    finally:
        host.stop()


@pytest.fixture
def host(served: tuple[Host, Path]) -> Host:
    return served[0]


def multipart(fields: Sequence[Field], boundary: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A ``multipart/form-data`` body and its content type."""
    boundary = boundary or f"b-{uuid.uuid4().hex}"
    body = bytearray()
    for field in fields:
        body += f"--{boundary}\r\n".encode()
        if len(field) == 2:
            name, text = field
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            body += text.encode()
        else:
            name, filename, content_type, content = field
            body += f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode()
            if content_type:
                body += f"Content-Type: {content_type}\r\n".encode()
            body += b"\r\n" + content
        body += b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), {"content-type": f"multipart/form-data; boundary={boundary}"}


def post_form(host: Host, path: str, fields: Sequence[Field]):  # type: ignore[no-untyped-def]
    body, headers = multipart(fields)
    return host.request("POST", path, body, headers)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_closed(host: Host) -> list[bool]:
    """Whether each upload seen since the last call is closed. Uploads are
    closed just *after* the response is handed to the host, so the client
    may ask before the last close finished: ask again for a moment."""
    deadline = time.monotonic() + 5
    while True:
        r = host.get("/seen?peek=1")
        assert r.status == 200, r.body
        closed = r.json()["closed"]
        if all(closed) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    r = host.get("/seen")
    assert r.status == 200, r.body
    return r.json()["closed"]


# -- one file and form fields ---------------------------------------------------


def test_single_file_and_form_fields(host: Host) -> None:
    all_closed(host)
    r = post_form(
        host,
        "/upload",
        [
            ("note", "hello"),
            ("file", "notes.txt", "text/plain", "line 1\r\nline 2 ü".encode()),
            ("tags", "a"),
            ("tags", "b"),
            ("count", "7"),
        ],
    )
    assert r.status == 200, r.body
    body = r.json()
    assert body["filename"] == "notes.txt"
    assert body["content_type"] == "text/plain"
    assert body["size"] == body["length"] == len("line 1\r\nline 2 ü".encode())
    assert body["text"] == "line 1\r\nline 2 ü"
    assert body["headers"] == {"content-type": "text/plain"}
    assert (body["note"], body["tags"], body["count"]) == ("hello", ["a", "b"], 7)
    assert all_closed(host) == [True]


def test_defaults_and_coercion_errors(host: Host) -> None:
    r = post_form(host, "/upload", [("note", "n"), ("file", "a.txt", None, b"x")])
    assert r.status == 200, r.body
    assert (r.json()["tags"], r.json()["count"], r.json()["content_type"]) == ([], 1, "text/plain")
    # A form field is converted by its type: "seven" is no int.
    r = post_form(host, "/upload", [("note", "n"), ("file", "a.txt", None, b"x"), ("count", "seven")])
    body = problem(r, 422)
    assert [(e["type"], e["loc"], e["input"]) for e in body["errors"]] == [("int_parsing", ["body", "count"], "seven")]


def test_missing_required_file_and_field(host: Host) -> None:
    """The host reports what is missing, at ["body", name], before Python runs."""
    r = post_form(host, "/upload", [("note", "n")])
    body = problem(r, 422)
    assert [(e["type"], e["loc"]) for e in body["errors"]] == [("missing", ["body", "file"])]
    r = post_form(host, "/upload", [])
    assert sorted(error_locs(problem(r, 422))) == [["body", "file"], ["body", "note"]]
    # No body at all is the host's "missing body".
    r = host.request("POST", "/upload", b"", {"content-type": "multipart/form-data; boundary=x"})
    assert error_locs(problem(r, 422)) == [["body"]]


def test_text_for_a_file_field_is_422(host: Host) -> None:
    """A part without a filename is text, not a file (FastAPI answers 422 too)."""
    r = post_form(host, "/upload", [("note", "n"), ("file", "just text")])
    body = problem(r, 422)
    [error] = body["errors"]
    assert (error["type"], error["loc"], error["input"]) == ("value_error", ["body", "file"], "just text"), body
    assert "expected a file" in error["msg"]


def test_json_body_is_refused(host: Host) -> None:
    r = host.post("/upload", {"note": "n", "file": "x"})
    body = problem(r, 415)
    assert "multipart/form-data" in body["detail"]


# -- optional and several files ----------------------------------------------------


def test_optional_file_absent_and_present(host: Host) -> None:
    r = post_form(host, "/optional", [("note", "n")])
    assert r.status == 200, r.body
    assert r.json() == {"note": "n", "file": None}
    r = post_form(host, "/optional", [("note", "n"), ("file", "f.bin", "application/octet-stream", b"\x00")])
    assert r.json() == {"note": "n", "file": "f.bin"}


def test_several_files(host: Host) -> None:
    all_closed(host)
    contents = [b"first", bytes(range(256)), b""]
    r = post_form(
        host,
        "/many",
        [("files", f"f{i}.dat", "application/octet-stream", c) for i, c in enumerate(contents)]
        + [("x-label", "batch")],
    )
    assert r.status == 200, r.body
    body = r.json()
    assert body["label"] == "batch"
    assert [(f["filename"], f["size"], f["sha256"]) for f in body["files"]] == [
        (f"f{i}.dat", len(c), sha(c)) for i, c in enumerate(contents)
    ]
    assert all_closed(host) == [True, True, True]
    # A required list needs at least one file.
    assert error_locs(problem(post_form(host, "/many", [("x-label", "x")]), 422)) == [["body", "files"]]


# -- binary content, on disk past the threshold, streamed back --------------------------


def test_binary_file_round_trips_byte_exact(host: Host) -> None:
    content = bytes(range(256)) * 64 + b"\xff\xfe\x00\r\n--not-a-boundary\r\n"
    r = post_form(host, "/binary", [("file", "blob.bin", "application/octet-stream", content)])
    assert r.status == 200, r.body
    assert r.body == content
    assert all_closed(host)[-1:] == [True]


def open_temp_files(host: Host) -> dict[str, object]:
    """The host's open descriptors into its TMPDIR and the TMPDIR's entries,
    once no descriptor is open (or after 5 s: a close still under way right
    after the response is not a leak)."""
    deadline = time.monotonic() + 5
    while True:
        r = host.get("/temp-files")
        assert r.status == 200, r.body
        state = r.json()
        if not state["open"] or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


@pytest.mark.parametrize("path", ["/big", "/big-sync"])
def test_file_past_the_threshold_is_on_disk_and_removed_after(served: tuple[Host, Path], path: str) -> None:
    host, spool = served
    all_closed(host)
    content = os.urandom(1024 * 1024 + 4096)  # past the 1 MiB threshold
    r = post_form(host, path, [("file", "big.bin", "application/octet-stream", content)])
    assert r.status == 200, r.body
    body = r.json()
    assert (body["size"], body["sha256"], body["in_memory"]) == (len(content), sha(content), False)
    if path == "/big":
        assert body["first"] == content[:10].hex()
        assert body["fd_target"].startswith(str(spool.resolve()) + "/"), body  # in the host's TMPDIR
    assert all_closed(host) == [True]
    state = open_temp_files(host)
    assert state["open"] == [] and state["entries"] == [], state
    assert list(spool.iterdir()) == []


def test_small_file_stays_in_memory(host: Host) -> None:
    r = post_form(host, "/big", [("file", "small.bin", None, b"\x01" * 1000)])
    assert r.status == 200, r.body
    assert (r.json()["in_memory"], r.json()["fd_target"]) == (True, None)


def test_upload_streamed_back_stays_open_until_the_stream_ends(served: tuple[Host, Path]) -> None:
    host, _ = served
    all_closed(host)
    content = os.urandom(3 * 1024 * 1024)
    r = post_form(host, "/echo-stream", [("file", "big.bin", "application/octet-stream", content)])
    assert r.status == 200, r.body
    assert r.headers.get("transfer-encoding") == "chunked"
    assert r.body == content
    assert all_closed(host) == [True]
    assert open_temp_files(host)["open"] == []


# -- bytes = File(...), form-only routes, file rules ---------------------------------------


def test_bytes_file_parameter(host: Host) -> None:
    content = b"\x89PNG\r\n\x1a\n\x00\xff" * 100
    r = post_form(
        host,
        "/raw",
        [("data", "x.png", "image/png", content), ("more", "a", None, b"\xe9t\xe9"), ("more", "plain text")],
    )
    assert r.status == 200, r.body
    assert r.json() == {"length": len(content), "sha256": sha(content), "more": ["\xe9t\xe9", "plain text"]}


def test_form_only_route_takes_urlencoded_and_multipart(host: Host) -> None:
    encoded = urllib.parse.urlencode([("name", "Ann"), ("age", "41"), ("tags", "x"), ("tags", "y")])
    r = host.request("POST", "/form", encoded, {"content-type": "application/x-www-form-urlencoded"})
    assert r.status == 200, r.body
    assert r.json() == {"name": "Ann", "age": 41, "tags": ["x", "y"]}
    r = post_form(host, "/form", [("name", "Bo"), ("age", "3")])
    assert r.json() == {"name": "Bo", "age": 3, "tags": []}
    errors = problem(post_form(host, "/form", [("name", "Bo"), ("age", "-1")]), 422)["errors"]
    assert [(e["type"], e["loc"]) for e in errors] == [("greater_than_equal", ["body", "age"])]
    body = problem(host.post("/form", {"name": "Bo", "age": 3}), 415)
    assert "application/x-www-form-urlencoded" in body["detail"]


def test_file_media_type_and_size_rules(host: Host) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
    r = post_form(host, "/typed", [("image", "a.png", "image/png", png)])
    assert r.status == 200, r.body
    assert r.json() == {"filename": "a.png", "size": len(png)}
    r = post_form(host, "/typed", [("image", "a.gif", "image/gif", b"GIF89a")])
    assert error_locs(problem(r, 422)) == [["files", "image"]]
    r = post_form(host, "/typed", [("image", "a.png", "image/png", png * 10)])
    assert error_locs(problem(r, 422)) == [["files", "image"]]
