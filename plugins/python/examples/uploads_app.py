"""Uploads and forms, for tests/test_e2e_uploads.py."""

from __future__ import annotations

import hashlib
import os
from typing import Annotated

from spikard import App, File, Form, Response, StreamingResponse, UploadFile

app = App()

#: Every upload a handler saw, to check they were closed after the response.
SEEN: list[UploadFile] = []

EIGHT_MIB = 8 * 1024 * 1024


def describe(upload: UploadFile, content: bytes) -> dict[str, object]:
    return {
        "filename": upload.filename,
        "content_type": upload.content_type,
        "size": upload.size,
        "length": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }


@app.post("/upload")
async def upload(
    file: UploadFile,
    note: str = Form(...),
    tags: list[str] = Form([]),
    count: int = Form(1),
) -> dict[str, object]:
    SEEN.append(file)
    content = await file.read()
    return {
        **describe(file, content),
        "text": content.decode(),
        "headers": file.headers,
        "note": note,
        "tags": tags,
        "count": count,
    }


@app.post("/optional")
async def optional(note: str = Form(), file: UploadFile | None = File(None)) -> dict[str, object]:
    return {"note": note, "file": None if file is None else file.filename}


@app.post("/many")
async def many(files: list[UploadFile], label: Annotated[str, Form(alias="x-label")] = "none") -> dict[str, object]:
    SEEN.extend(files)
    return {"label": label, "files": [describe(f, await f.read()) for f in files]}


@app.post("/binary")
async def binary(file: UploadFile) -> Response:
    SEEN.append(file)
    return Response(await file.read(), media_type="application/octet-stream")


@app.post("/big", body_limit=EIGHT_MIB)
async def big(file: UploadFile) -> dict[str, object]:
    SEEN.append(file)
    target = os.readlink(f"/proc/self/fd/{file.fileno()}") if not file.in_memory else None
    first = await file.read(10)
    await file.seek(0)
    content = await file.read()
    return {**describe(file, content), "in_memory": file.in_memory, "fd_target": target, "first": first.hex()}


@app.post("/big-sync", body_limit=EIGHT_MIB)
def big_sync(file: UploadFile) -> dict[str, object]:
    SEEN.append(file)
    content = file.file.read()
    return {**describe(file, content), "in_memory": file.in_memory}


@app.post("/echo-stream", body_limit=EIGHT_MIB)
def echo_stream(file: UploadFile) -> StreamingResponse:
    """Streams the upload back: it stays open until the stream ends."""
    SEEN.append(file)
    source = file.file
    return StreamingResponse(iter(lambda: source.read(65536), b""), media_type="application/octet-stream")


@app.post("/raw")
async def raw(data: bytes = File(...), more: list[bytes] = File([])) -> dict[str, object]:
    return {
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "more": [m.decode("latin-1") for m in more],
    }


@app.post("/form")
def form_only(name: str = Form(), age: int = Form(ge=0), tags: list[str] = Form([])) -> dict[str, object]:
    return {"name": name, "age": age, "tags": tags}


@app.post("/typed")
async def typed(image: UploadFile = File(media_type="image/png", max_size=64)) -> dict[str, object]:
    return {"filename": image.filename, "size": image.size}


@app.get("/seen")
async def seen(peek: bool = False) -> dict[str, object]:
    """The uploads seen so far: whether each is closed; then forgets them
    (unless ``peek``)."""
    closed = [u.closed for u in SEEN]
    if not peek:
        SEEN.clear()
    return {"closed": closed}


@app.get("/temp-files")
async def temp_files() -> dict[str, object]:
    """The open descriptors of this process that point into TMPDIR."""
    tmp = os.path.realpath(os.environ.get("TMPDIR", "/tmp"))
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(tmp + "/"):
            targets.append(target)
    return {"tmp": tmp, "open": targets, "entries": os.listdir(tmp)}
