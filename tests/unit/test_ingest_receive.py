"""How ingest reads an upload's multipart body (services/ingest/receive.py), in process.

The wire-level behaviour (401/413 before the body, one copy on disk) is tested
against the real service in tests/integration/test_ingest_limits.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from services.ingest.receive import MAX_FIELD_BYTES, check_declared_size, receive_upload
from shared.http import UserError, install_error_handlers
from shared.request_bodies import BodyPace

BOUNDARY = "b0undary"
LIMIT = 64 * 1024


def required_title(fields: Mapping[str, str]) -> dict[str, str]:
    if not fields.get("title"):
        raise UserError(422, "invalid_metadata", "Thiếu tiêu đề (title).", "title is required.")
    return dict(fields)


def make_app(spool: Path) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, Any]:
        check_declared_size(request, LIMIT)
        meta, received = await receive_upload(request, spool, LIMIT, required_title)
        content = received.path.read_bytes()
        received.path.unlink()
        return {
            "meta": meta,
            "size": received.size,
            "sha256": received.sha256,
            "name": received.filename,
            "ok": True,
        } | {"hash_matches": hashlib.sha256(content).hexdigest() == received.sha256}

    return app


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


END = f"--{BOUNDARY}--\r\n".encode()


def leftovers(spool: Path) -> list[Path]:
    return list(spool.iterdir())


async def post(spool: Path, body: bytes, content_type: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=make_app(spool))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        return await client.post(
            "/upload",
            content=body,
            headers={"Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}"},
        )


async def test_fields_before_the_file_are_read_and_the_file_is_stored_once_with_its_hash(tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    body = (
        part("title", "Kỳ họp thứ 7".encode())
        + part("unknown", b"ignored")
        + part("file", data, "C:\\Ảnh\\kỳ họp.jpg")
        + END
    )
    response = await post(tmp_path, body)
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["meta"] == {"title": "Kỳ họp thứ 7"} and got["size"] == len(data) and got["hash_matches"]
    assert got["sha256"] == hashlib.sha256(data).hexdigest() and got["name"] == "kỳ họp.jpg"
    assert not leftovers(tmp_path)


@pytest.mark.parametrize(
    ("case", "body", "status", "code"),
    [
        (
            "two files",
            part("title", b"t") + part("file", b"a", "a") + part("file", b"b", "b") + END,
            400,
            "multiple_files",
        ),
        ("empty file", part("title", b"t") + part("file", b"", "a") + END, 400, "empty_file"),
        ("no file", part("title", b"t") + END, 400, "missing_file"),
        ("no closing boundary", part("title", b"t") + part("file", b"abc", "a"), 400, "malformed_multipart"),
        ("file over the limit", part("title", b"t") + part("file", b"x" * (LIMIT + 1), "a") + END, 413, "too_large"),
        ("huge field", part("caption", b"x" * (MAX_FIELD_BYTES + 1)) + END, 413, "field_too_large"),
        ("field not UTF-8", part("title", "Kỳ họp".encode("utf-16")) + END, 400, "invalid_text_encoding"),
        ("title after the file", part("file", b"abc", "a") + part("title", b"t") + END, 422, "invalid_metadata"),
        (
            "source_org after the file",
            part("title", b"t") + part("file", b"a", "a") + part("source_org", b"x") + END,
            400,
            "field_after_file",
        ),
    ],
)
async def test_a_bad_body_is_refused_with_a_bilingual_reason_and_leaves_no_file(
    tmp_path: Path, case: str, body: bytes, status: int, code: str
) -> None:
    response = await post(tmp_path, body)
    assert response.status_code == status, (case, response.text)
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["message_en"]
    assert not leftovers(tmp_path), case


async def test_a_body_that_is_not_multipart_is_refused_and_an_empty_one_says_what_is_missing(tmp_path: Path) -> None:
    not_multipart = await post(tmp_path, b'{"title": "x"}', "application/json")
    assert not_multipart.status_code == 415 and not_multipart.json()["error"]["code"] == "multipart_required"
    transport = httpx.ASGITransport(app=make_app(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        empty = await client.post("/upload")
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "invalid_metadata"


def test_a_body_may_be_silent_at_most_the_idle_time_and_after_the_grace_must_keep_the_minimum_rate() -> None:
    pace = BodyPace(idle_s=10.0, grace_s=30.0, min_rate=1000.0)
    assert pace.wait_allowed(elapsed_s=0.0, received=0) == 10.0  # idle limit first
    assert pace.wait_allowed(elapsed_s=25.0, received=0) == 5.0  # the grace ends at 30 s
    assert pace.wait_allowed(elapsed_s=40.0, received=20_000) == 10.0  # 20 kB bought 20 s more
    assert pace.wait_allowed(elapsed_s=40.0, received=5_000) <= 0  # trickling: too slow already
