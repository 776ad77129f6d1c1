"""Upload limits of the ingest service, seen from the wire.

The token, the declared size and the metadata are checked before the body is
read; the file part is streamed once, into the service's own work dir, while
it is hashed. These tests talk HTTP over a plain socket so that they decide how
much of a body is sent and when, and look at the ingest process's open files
(``/proc/<pid>/fd``) to see every copy it keeps, deleted temp files included.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import random
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from deploy.local.processes import running_pid, stop
from deploy.local.stack import LocalStack
from shared.settings import Settings
from tests import conftest
from tests.conftest import AUTH, wait_for
from tests.media import jpeg_bytes
from tests.uploads import BOUNDARY, CLOSING, RawUpload, field_part, file_head, multipart

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
# The dedicated ingest of this module: small limits keep the test media small.
SMALL_UPLOAD_LIMIT = 4 * MIB
SMALL_PIXEL_LIMIT = 10_000_000


METADATA = field_part("title", "Tiếp xúc cử tri") + field_part("activity_type", "tiep-xuc-cu-tri")


def open_temp_files(pid: int, log_dir: Path) -> dict[str, int]:
    """Regular files the process holds open for writing or reading, other than its log and code: path → size.

    Deleted files (an unlinked temp file, ``O_TMPFILE``) are listed too: they use disk all the same.
    """
    found: dict[str, int] = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            info = fd.stat()  # follows the link, also to a deleted file
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or target.startswith(str(log_dir)) or "/site-packages/" in target:
            continue
        if target.endswith((".py", ".pyc", ".so")) or target.startswith(("/usr/", "/proc/", "/sys/")):
            continue
        found[target] = info.st_size
    return found


def work_dir(settings: Settings) -> Path:
    """The ingest's scratch space, as documented: ``<home>/work/ingest-<port>``."""
    return settings.home.resolve() / "work" / f"ingest-{settings.ingest_port}"


def files_under(folder: Path) -> dict[Path, int]:
    if not folder.exists():
        return {}
    return {p: p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def png(pixels: int, seed: int) -> bytes:
    """A tiny PNG with about ``pixels`` pixels (a wide strip), different for every seed."""
    height = 100
    width = -(-pixels // height)
    img = Image.new("L", (width, height), seed % 256)
    img.putpixel((seed % width, 0), (seed + 1) % 256)
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


@pytest.fixture(scope="module")
def ingest_pid(services: Settings, stack: LocalStack) -> int:
    pid = running_pid(stack.service_spec("ingest"))
    assert pid is not None
    return pid


def second_ingest(services: Settings, port_shift: int, name: str, **overrides: Any) -> Iterator[Settings]:
    """Another ingest process beside the suite's, with ``overrides``, for the length of a module."""
    settings = conftest.test_settings(ingest_port=services.ingest_port + port_shift, **overrides)
    spec = dataclasses.replace(LocalStack(settings).service_spec("ingest"), name=name)
    conftest.start_own(spec)
    try:
        yield settings
    finally:
        stop(spec)


@pytest.fixture(scope="module")
def small_ingest(services: Settings) -> Iterator[Settings]:
    """A second ingest process with small limits: 4 MiB uploads, 10-megapixel photos."""
    yield from second_ingest(
        services, 61, "ingest-small-limits", max_upload_bytes=SMALL_UPLOAD_LIMIT, max_photo_pixels=SMALL_PIXEL_LIMIT
    )


@pytest.fixture(scope="module")
def impatient_ingest(services: Settings) -> Iterator[Settings]:
    """A second ingest that drops a body silent for 2 s, or under 64 KiB/s on average after 3 s."""
    yield from second_ingest(
        services,
        62,
        "ingest-impatient",
        upload_body_idle_timeout_s=2.0,
        upload_body_grace_s=3.0,
        upload_body_min_rate_bytes_s=64 * 1024,
    )


@pytest.mark.parametrize("client", ["stalls", "trickles"])
def test_a_client_that_stalls_or_trickles_its_body_is_dropped_with_a_bilingual_408_and_nothing_is_kept(
    impatient_ingest: Settings, client: str
) -> None:
    upload = RawUpload(impatient_ingest.ingest_port, {**AUTH, "Content-Length": str(4 * MIB)}, timeout=30.0)
    began = time.monotonic()
    try:
        upload.send(multipart(METADATA, file_head(), os.urandom(1024)))
        # Without a body deadline the answer would be a socket timeout after 30 s.
        if client == "trickles":  # 100 bytes every 0.5 s: never silent for 2 s, far under 64 KiB/s
            status, body, _ = upload.response_while_trickling(os.urandom(100) for _ in itertools.count())
        else:
            status, body = upload.response()
    finally:
        upload.close()
    took = time.monotonic() - began
    assert status == 408 and body["error"]["code"] == "body_timeout", body
    assert "quá chậm" in body["error"]["message"] and "too slowly" in body["error"]["message_en"]
    assert took < 20, took
    wait_for(lambda: not files_under(work_dir(impatient_ingest)), 10, 0.1, "the partial upload to be removed")


def test_an_upload_without_a_token_is_refused_with_401_before_its_body_is_read(
    services: Settings, stack: LocalStack, ingest_pid: int
) -> None:
    upload = RawUpload(services.ingest_port, {"Content-Length": str(1024 * MIB)}, timeout=10.0)
    try:
        upload.send(multipart(METADATA, file_head(), os.urandom(64 * 1024)))
        # 1 GiB announced, 64 KiB sent: the answer comes without the rest of the body.
        status, body = upload.response()
    finally:
        upload.close()
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    assert body["error"]["message"] and body["error"]["message_en"]
    assert not files_under(work_dir(services))
    assert not open_temp_files(ingest_pid, stack.log_dir)


def test_a_declared_size_over_the_limit_is_refused_with_413_before_the_body_is_read(services: Settings) -> None:
    too_big = services.max_upload_bytes + 1024 * MIB
    upload = RawUpload(services.ingest_port, {**AUTH, "Content-Length": str(too_big)}, timeout=10.0)
    try:
        upload.send(multipart(METADATA, file_head(), os.urandom(64 * 1024)))
        status, body = upload.response()
    finally:
        upload.close()
    assert status == 413 and body["error"]["code"] == "too_large", body
    assert f"{services.max_upload_bytes:,}" in body["error"]["message"]


def test_a_chunked_upload_without_a_declared_size_is_cut_off_at_the_limit_while_streaming(
    small_ingest: Settings,
) -> None:
    upload = RawUpload(small_ingest.ingest_port, {**AUTH, "Transfer-Encoding": "chunked"}, timeout=10.0)
    try:
        upload.send(multipart(METADATA, file_head()))
        for _ in range(SMALL_UPLOAD_LIMIT // (256 * 1024) + 2):
            upload.send(os.urandom(256 * 1024))
        # The body never ends: the server must stop at the limit, not wait for the end.
        status, body = upload.response()
    finally:
        upload.close()
    assert status == 413 and body["error"]["code"] == "too_large", body
    wait_for(lambda: not files_under(work_dir(small_ingest)), 10, 0.1, "the partial upload to be removed")


def test_an_authenticated_upload_is_written_once_into_the_ingest_work_dir_while_it_arrives(
    services: Settings, stack: LocalStack, ingest_pid: int
) -> None:
    # A real JPEG padded to 32 MiB (decoders stop at its end marker), unique to this run.
    content = jpeg_bytes(random.randrange(1 << 30)) + os.urandom(32 * MIB)
    head = multipart(METADATA, file_head())
    body_size = len(head) + len(content) + len(CLOSING)
    peak = {"bytes": 0, "files": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            held = open_temp_files(ingest_pid, stack.log_dir)
            peak["bytes"] = max(peak["bytes"], sum(held.values()))
            peak["files"] = max(peak["files"], len(held))
            done.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    upload = RawUpload(services.ingest_port, {**AUTH, "Content-Length": str(body_size)}, timeout=60.0)
    try:
        upload.send(head + content[: 24 * MIB])
        # Three quarters sent: the file part is already on disk, in one file, in the work dir.
        spooled = wait_for(
            lambda: {p: s for p, s in files_under(work_dir(services)).items() if s >= 20 * MIB},
            20,
            0.05,
            "the file part to be written into the ingest's work dir while it arrives",
        )
        assert len(spooled) == 1
        held = open_temp_files(ingest_pid, stack.log_dir)
        assert list(held) == [str(p) for p in spooled], held
        upload.send(content[24 * MIB :] + CLOSING)
        status, body = upload.response()
    finally:
        done.set()
        sampler.join()
        upload.close()
    assert status == 201, body
    assert body["size_bytes"] == len(content)
    # One copy at most, never Starlette's spool plus ours.
    assert peak["files"] == 1 and peak["bytes"] <= len(content), peak
    assert not files_under(work_dir(services))
    assert not open_temp_files(ingest_pid, stack.log_dir)


def test_metadata_sent_after_the_file_is_refused_with_a_clear_message(services: Settings) -> None:
    content = jpeg_bytes(random.randrange(1 << 30))
    with httpx.Client(timeout=30.0) as client:
        file_first = client.post(
            f"{services.ingest_url}/v1/assets",
            headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            content=multipart(file_head(), content, b"\r\n", METADATA, f"--{BOUNDARY}--\r\n".encode()),
        )
        caption_last = client.post(
            f"{services.ingest_url}/v1/assets",
            headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            content=multipart(
                METADATA, file_head(), content, b"\r\n", field_part("caption", "Đồng chí Nguyễn Văn A phát biểu")
            )
            + f"--{BOUNDARY}--\r\n".encode(),
        )
    assert file_first.status_code == 422, file_first.text
    error = file_first.json()["error"]
    assert error["code"] == "invalid_metadata"
    assert "trước" in error["message"] and "before the file" in error["message_en"]
    assert caption_last.status_code == 400, caption_last.text
    error = caption_last.json()["error"]
    assert error["code"] == "field_after_file" and "caption" in error["message"] and "caption" in error["message_en"]
    assert not files_under(work_dir(services))


def test_a_photo_just_over_the_configured_pixel_limit_is_refused_and_one_just_under_is_accepted(
    small_ingest: Settings,
) -> None:
    seed = random.randrange(1 << 30)
    with httpx.Client(timeout=60.0) as client:

        def send(content: bytes) -> httpx.Response:
            return client.post(
                f"{small_ingest.ingest_url}/v1/assets",
                headers=AUTH,
                data={"title": "Ảnh toàn cảnh kỳ họp", "activity_type": "ky-hop"},
                files={"file": ("toan-canh.png", content, "image/png")},
            )

        over = send(png(SMALL_PIXEL_LIMIT + 100, seed))
        under = send(png(SMALL_PIXEL_LIMIT - 100, seed))
    assert over.status_code == 415, over.text
    error = over.json()["error"]
    assert error["code"] == "too_many_pixels"
    assert f"{SMALL_PIXEL_LIMIT:,}" in error["message"] and f"{SMALL_PIXEL_LIMIT:,}" in error["message_en"]
    assert "decompression bomb" not in error["message_en"]  # the project's words, not Pillow's
    assert under.status_code == 201, under.text
    assert under.json()["width"] * under.json()["height"] <= SMALL_PIXEL_LIMIT
