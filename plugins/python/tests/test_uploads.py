"""Forms and uploads without a host: the body schema derived from ``Form``/
``File``/``UploadFile`` parameters, the per-request reader, ``UploadFile``
itself, and the runtime closing uploads after the answer."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Annotated, Any

import msgspec
import pytest

from spikard import App, Body, File, Form, HTTPException, Query, StreamingResponse, UploadFile
from spikard._background import AfterResponse
from spikard._invoke import RouteError
from spikard._runtime import Runtime
from spikard.exceptions import RequestValidationError


class Item(msgspec.Struct):
    name: str


def plan_of(handler: Any, path: str = "/up", method: str = "POST", **options: Any) -> Any:
    app = App()
    app.route(method, path, **options)(handler)
    plan = app.routes[0].plan
    assert json.loads(plan.schema_json) == plan.schema
    return plan


def part(content: bytes, filename: str = "f.bin", content_type: str = "application/octet-stream") -> dict[str, Any]:
    """A file part as the host hands it over."""
    try:
        text: dict[str, Any] = {"content": content.decode("utf-8")}
    except UnicodeDecodeError:
        text = {"content": base64.b64encode(content).decode(), "content_encoding": "base64"}
    return {"filename": filename, "content_type": content_type, "size": len(content), **text}


def run(coro: Any) -> Any:
    return asyncio.run(coro) if asyncio.iscoroutine(coro) else coro


# -- schemas ---------------------------------------------------------------------


def test_file_and_form_fields_make_a_form_body_schema() -> None:
    async def h(
        file: UploadFile,
        note: str = Form(...),
        tags: list[str] = Form([]),
        count: int = Form(1, ge=0),
        q: int = Query(0),
    ) -> None: ...

    plan = plan_of(h)
    assert plan.uploads is True
    assert plan.schema["body"] == {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "note": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}, "default": []},
            "count": {"type": "integer", "minimum": 0, "default": 1},
        },
        "required": ["file", "note"],
    }
    assert plan.schema["query"]["properties"] == {"q": {"type": "integer", "default": 0}}


def test_optional_list_and_bytes_files() -> None:
    async def h(
        avatar: UploadFile | None = File(None, media_type="image/png, image/jpeg", max_size=1024),
        files: list[UploadFile] = File(description="attachments"),
        data: bytes = File(...),
        extra: Annotated[list[bytes], File(alias="more")] = [],  # noqa: B006
    ) -> None: ...

    body = plan_of(h).schema["body"]
    assert body["properties"] == {
        "avatar": {
            "type": "string",
            "format": "binary",
            "contentMediaType": "image/png, image/jpeg",
            "maxLength": 1024,
        },
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "description": "attachments"},
        "data": {"type": "string", "format": "binary"},
        "more": {"type": "array", "items": {"type": "string", "format": "binary"}},
    }
    assert body["required"] == ["files", "data"]


def test_form_only_route_makes_no_uploads() -> None:
    def h(name: str = Form(), age: Annotated[int, Form(alias="years")] = 0) -> None: ...

    plan = plan_of(h)
    assert plan.uploads is False
    assert plan.schema["body"]["properties"] == {"name": {"type": "string"}, "years": {"type": "integer", "default": 0}}
    assert plan.schema["body"]["required"] == ["name"]


def test_form_or_file_with_a_json_body_is_a_startup_error() -> None:
    async def mixed(item: Item, file: UploadFile) -> None: ...

    with pytest.raises(RouteError, match=r"handler .*mixed .*'item' is a JSON body but 'file' is a form field"):
        plan_of(mixed)

    async def mixed_body(note: str = Form(), raw: bytes = Body()) -> None: ...

    with pytest.raises(RouteError, match="is a JSON body but 'note' is a form field"):
        plan_of(mixed_body)


def test_bad_form_declarations_are_startup_errors() -> None:
    async def text_file(name: str = File()) -> None: ...

    with pytest.raises(RouteError, match=r"File\(\) parameter 'name' .*UploadFile, bytes"):
        plan_of(text_file)

    async def model_form(item: Item = Form()) -> None: ...

    with pytest.raises(RouteError, match=r"Form\(\) parameter 'item' is a model"):
        plan_of(model_form)

    async def clash(a: str = Form(alias="x"), b: str = Form(alias="x")) -> None: ...

    with pytest.raises(RouteError, match="'a' and 'b' both read form field 'x'"):
        plan_of(clash)


# -- the reader ------------------------------------------------------------------------


def test_reader_builds_uploads_and_converts_fields() -> None:
    seen: dict[str, Any] = {}

    async def h(file: UploadFile, files: list[UploadFile], data: bytes = File(), count: int = Form(1)) -> None:
        seen.update(file=file, files=files, data=data, count=count, content=await file.read())

    binary = bytes(range(256))
    params = {
        "form": {
            "file": part(b"hello", "a.txt", "text/plain"),
            "files": [part(binary), part(b"")],
            "data": part(binary),
            "count": 4,
        }
    }
    after = AfterResponse()
    run(plan_of(h).invoke(params, b"", None, "", after))
    assert seen["content"] == b"hello"
    assert (seen["file"].filename, seen["file"].content_type, seen["file"].size) == ("a.txt", "text/plain", 5)
    assert [f.size for f in seen["files"]] == [256, 0]
    assert seen["data"] == binary and seen["count"] == 4
    assert after.uploads == [seen["file"], *seen["files"]]


def test_reader_refuses_json_and_text_for_files() -> None:
    async def h(file: UploadFile) -> None: ...

    plan = plan_of(h)
    with pytest.raises(HTTPException) as info:
        plan.invoke({"body": {}}, b'{"file": "x"}', None, "", AfterResponse())
    assert info.value.status_code == 415 and "multipart/form-data" in info.value.detail
    # Validation errors at ["body", name], as the host's (and FastAPI's).
    with pytest.raises(RequestValidationError) as refused:
        plan.invoke({"form": {"file": "text"}}, b"", None, "", AfterResponse())
    [error] = refused.value.errors()
    assert (error["type"], error["loc"], error["input"]) == ("value_error", ["body", "file"], "text")
    assert "expected a file" in error["msg"]

    def f(name: str = Form()) -> None: ...

    with pytest.raises(RequestValidationError) as refused:
        plan_of(f).invoke({"form": {"name": part(b"x")}}, b"", None, "")
    [error] = refused.value.errors()
    assert (error["type"], error["loc"]) == ("string_type", ["body", "name"])
    assert "received a file" in error["msg"] and error["input"] == part(b"x").get("filename")


def test_optional_file_absent_gets_its_default() -> None:
    def h(file: UploadFile | None = File(None), note: str = Form("n")) -> Any:
        return file, note

    assert plan_of(h).invoke('{"form": {"note": "n"}}', b"", None, "", AfterResponse()) == (None, "n")


# -- UploadFile -------------------------------------------------------------------------------


def test_small_upload_reads_without_copies() -> None:
    async def go() -> None:
        upload = UploadFile.from_part(part(b"hello world", "a.txt", "text/plain"))
        assert upload.in_memory
        assert await upload.read(5) == b"hello"
        assert await upload.read() == b" world"
        assert await upload.read() == b""
        await upload.seek(0)
        whole = await upload.read()
        assert whole == b"hello world" and whole is await_same(upload)
        await upload.seek(6)
        assert upload.file.read() == b"world"  # the sync file keeps the position
        upload.file.seek(0)
        assert await upload.read() == b"hello world"
        await upload.write(b"!")
        await upload.seek(0)
        assert await upload.read() == b"hello world!"
        await upload.close()
        assert upload.closed
        with pytest.raises(ValueError, match="closed upload"):
            await upload.read()

    def await_same(upload: UploadFile) -> bytes:
        data = upload._data
        assert data is not None
        return data

    asyncio.run(go())


def test_large_upload_is_spooled_to_disk_and_removed_on_close(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    content = os.urandom(4096)

    async def go() -> None:
        upload = UploadFile.from_part(part(content), spool_max_size=1024)
        assert not upload.in_memory
        fd = upload.fileno()
        assert os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path))
        assert await upload.read(100) == content[:100]
        await upload.seek(0)
        assert await upload.read() == content
        upload.release()
        assert not os.path.exists(f"/proc/self/fd/{fd}") or not os.readlink(f"/proc/self/fd/{fd}").startswith(
            str(tmp_path)
        )
        assert list(tmp_path.iterdir()) == []

    asyncio.run(go())


def test_threshold_is_a_class_setting() -> None:
    class Small(UploadFile):
        spool_max_size = 4

    assert not Small.from_part(part(b"12345")).in_memory
    assert Small.from_part(part(b"1234")).in_memory
    assert UploadFile.from_part(part(b"12345")).in_memory


def test_part_headers() -> None:
    upload = UploadFile.from_part(
        {**part(b"x"), "headers": [["content-disposition", "form-data"], ["X-Tag", "a"], ["x-tag", "b"]]}
    )
    assert upload.headers == {"content-disposition": "form-data", "x-tag": "a, b"}
    assert UploadFile.from_part(part(b"x", content_type="text/csv")).headers == {"content-type": "text/csv"}


def test_user_made_upload() -> None:
    import io

    upload = UploadFile(io.BytesIO(b"abc"), filename="a", size=3)
    assert asyncio.run(upload.read()) == b"abc"
    assert UploadFile().file.read() == b""


# -- the runtime closes uploads after the answer ------------------------------------------


class FakeNative:
    """What the runtime needs of ``spikard._native`` here: logging."""

    def log(self, level: int, target: str, message: str) -> None:
        pass

    def log_enabled(self, level: int, target: str) -> bool:
        return False


@pytest.fixture
def runtime_of() -> Any:
    """Makes runtimes; undoes their logging set-up afterwards."""
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield lambda app: Runtime(app, FakeNative())
    root.handlers[:] = handlers
    root.setLevel(level)


class FakeResponder:
    request_id = "r1"

    def __init__(self, seen: list[UploadFile]) -> None:
        self.seen = seen
        self.closed_when_answered: list[bool] = []

    def respond(self, status: int, headers: Any, body: bytes) -> None:
        self.closed_when_answered = [u.closed for u in self.seen]

    def respond_error(self, status: int, detail: str, headers: Any) -> None:
        self.closed_when_answered = [u.closed for u in self.seen]


@pytest.mark.parametrize("fails", [False, True])
def test_runtime_closes_uploads_after_answering(fails: bool, runtime_of: Any) -> None:
    seen: list[UploadFile] = []
    app = App()

    @app.post("/up")
    def up(file: UploadFile) -> str:
        seen.append(file)
        if fails:
            raise ValueError("boom")
        return "ok"

    runtime = runtime_of(app)
    responder = FakeResponder(seen)
    runtime.call_sync(0, json.dumps({"form": {"file": part(b"x")}}), b"", None, responder)
    assert responder.closed_when_answered == [False]
    assert [u.closed for u in seen] == [True]


def test_streamed_answer_closes_uploads_when_the_source_closes(runtime_of: Any) -> None:
    seen: list[UploadFile] = []
    app = App()

    @app.post("/up")
    def up(file: UploadFile) -> StreamingResponse:
        seen.append(file)
        return StreamingResponse(iter([b"a"]))

    runtime = runtime_of(app)
    plan = runtime.plans[0]
    after = AfterResponse()
    result = plan.invoke({"form": {"file": part(b"x")}}, b"", None, "", after)
    source = result.source(plan)
    source.after = after
    assert not seen[0].closed
    source.close()
    assert seen[0].closed
