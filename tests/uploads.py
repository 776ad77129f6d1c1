"""Helpers for resumable-upload tests and benchmarks: large media made cheaply, a dedicated
ingest process on the quiet NATS, and a counting tus client loop."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import json
import os
import random
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

from deploy.local.processes import ProcessSpec, stop
from deploy.local.stack import LocalStack
from shared.settings import Settings
from tests import conftest
from tests.media import jpeg_bytes, make_clip

MIB = 1024 * 1024
METADATA = {
    "title": "Kỳ họp thứ 7 HĐND tỉnh khóa X — phiên khai mạc",
    "activity_type": "ky-hop",
    "recorded_at": "2024-07-10",
    "source_org": "Đài Phát thanh - Truyền hình",
    "caption": "Đồng chí Nguyễn Văn A, Chủ tịch HĐND tỉnh, phát biểu khai mạc",
}


# --- single-request uploads (POST /v1/assets) written piece by piece --------------------
BOUNDARY = "mam-test-7f3a9c"


def field_part(name: str, value: str) -> bytes:
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()


def file_head(filename: str = "anh.jpg") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


CLOSING = f"\r\n--{BOUNDARY}--\r\n".encode()


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts)


class RawUpload:
    """One ``POST /v1/assets`` (or another upload request: a tus ``PATCH``) whose body the
    test writes piece by piece."""

    def __init__(
        self,
        port: int,
        headers: dict[str, str],
        timeout: float = 15.0,
        *,
        method: str = "POST",
        path: str = "/v1/assets",
    ) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.putrequest(method, path, skip_accept_encoding=True)
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **headers}
        for name, value in headers.items():
            self.conn.putheader(name, value)
        self.conn.endheaders()
        self.chunked = headers.get("Transfer-Encoding") == "chunked"

    def send(self, data: bytes) -> None:
        self.conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n" if self.chunked else data)

    def response(self) -> tuple[int, dict[str, Any]]:
        """The status and JSON body; fails (socket timeout) when the server keeps waiting for the body."""
        answer = self.conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")

    def response_while_trickling(
        self, pieces: Iterable[bytes], every_s: float = 0.5
    ) -> tuple[int, dict[str, Any], int]:
        """:meth:`response`, while a thread sends the next of ``pieces`` every ``every_s`` (a
        link that trickles), and how many bytes it sent. The server closing the connection
        ends the trickle, as the tests want; any other failure of the thread fails the call."""
        stop = threading.Event()
        failures: list[BaseException] = []
        sent = [0]

        def trickle() -> None:
            try:
                for piece in pieces:
                    if stop.wait(every_s):
                        return
                    self.send(piece)
                    sent[0] += len(piece)
            except OSError:
                pass
            except BaseException as exc:
                failures.append(exc)

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            status, body = self.response()
        finally:
            stop.set()
            sender.join(5)
        assert not failures, failures
        assert not sender.is_alive(), "the trickle did not stop"
        return status, body, sent[0]

    def close(self) -> None:
        self.conn.close()


def write_padded_jpeg(path: Path, size: int, seed: int | None = None) -> str:
    """A real JPEG followed by random bytes up to ``size`` (decoders stop at its end marker),
    written in 4 MiB slices; its SHA-256."""
    seed = random.randrange(1 << 30) if seed is None else seed
    digest = hashlib.sha256()
    head = jpeg_bytes(seed)
    with path.open("wb") as out:
        out.write(head)
        digest.update(head)
        left = size - len(head)
        while left > 0:
            block = os.urandom(min(4 * MIB, left))
            out.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def write_padded_clip(path: Path, size: int, work: Path) -> str:
    """A real MP4 (1 s) followed by a ``free`` box of random bytes up to ``size``: a valid MP4
    of that size that ffprobe reads as a clip. Its SHA-256."""
    clip = make_clip(work / f"clip-{random.randrange(1 << 30)}.mp4", seconds=1.0)
    data = clip.read_bytes()
    filler = size - len(data) - 16
    digest = hashlib.sha256()
    with path.open("wb") as out:
        box = struct.pack(">I4sQ", 1, b"free", filler + 16)  # 64-bit box size
        for piece in (data, box):
            out.write(piece)
            digest.update(piece)
        while filler > 0:
            block = os.urandom(min(4 * MIB, filler))
            out.write(block)
            digest.update(block)
            filler -= len(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * MIB):
            digest.update(block)
    return digest.hexdigest()


def tus_metadata(fields: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


def ingest_settings(quiet: Settings, backend: str, port_shift: int, **overrides: Any) -> Settings:
    """A dedicated ingest on the quiet NATS (no worker reacts to its events) and ``backend``."""
    return conftest.test_settings(
        ingest_port=quiet.ingest_port + port_shift,
        nats_port=quiet.nats_port,
        nats_monitor_port=quiet.nats_monitor_port,
        s3_backend=backend,
        **overrides,
    )


def ingest_spec(settings: Settings, name: str) -> ProcessSpec:
    return dataclasses.replace(LocalStack(settings).service_spec("ingest"), name=name)


@contextmanager
def running_ingest(settings: Settings, name: str) -> Iterator[ProcessSpec]:
    """A dedicated ingest process (``ingest_settings``) named ``name``, stopped at the end."""
    spec = ingest_spec(settings, name)
    conftest.start_own(spec)
    try:
        yield spec
    finally:
        stop(spec)


@dataclasses.dataclass
class Attempt:
    offset_before: int
    sent: int
    offset_after: int
    failed: bool


def upload_with_tuspy(
    endpoint: str,
    headers: dict[str, str],
    path: Path,
    metadata: dict[str, str],
    chunk_size: int,
    *,
    url: str | None = None,
    on_attempt: Callable[[Attempt, int], None] | None = None,
    recover: Callable[[BaseException], None] | None = None,
    max_failures: int = 10,
) -> tuple[str, list[Attempt]]:
    """Upload ``path`` with tuspy, one PATCH of ``chunk_size`` at a time. ``on_attempt`` is
    called before each PATCH (a test interrupts things there); after a failed PATCH,
    ``recover`` runs and the offset is asked again (HEAD) before going on. Returns the
    upload URL and every attempt with the bytes it sent."""
    client = TusClient(endpoint, headers=headers)
    uploader = client.uploader(str(path), url=url, chunk_size=chunk_size, metadata=metadata)
    if uploader.url is None:
        uploader.set_url(uploader.create_url())
        uploader.offset = 0
    attempts: list[Attempt] = []
    size = path.stat().st_size
    failures = 0
    while uploader.offset < size:
        before = uploader.offset
        sending = uploader.get_request_length()
        attempt = Attempt(before, sending, before, False)
        if on_attempt is not None:
            on_attempt(attempt, len(attempts))
        try:
            uploader.upload_chunk()
        except (TusCommunicationError, TusUploadFailed) as exc:
            failures += 1
            if failures > max_failures:
                raise
            attempt.failed = True
            if recover is not None:
                recover(exc)
            uploader.offset = head_offset(uploader.url, headers)
        attempt.offset_after = uploader.offset
        attempts.append(attempt)
    return str(uploader.url), attempts


def head_offset(url: str, headers: dict[str, str], within: float = 60.0) -> int:
    """The server's offset, asked until it answers (a restarting service, a lapsing lock)."""
    return int(
        conftest.wait_for(
            lambda: _head(url, headers),
            within,
            0.2,
            f"HEAD {url} to answer with an offset",
        )
    )


def _head(url: str, headers: dict[str, str]) -> str | None:
    try:
        response = httpx.head(url, headers={**headers, "Tus-Resumable": "1.0.0"}, timeout=5.0)
    except httpx.HTTPError:
        return None
    return response.headers.get("upload-offset") if response.status_code == 200 else None
