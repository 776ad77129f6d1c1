"""Resumable uploads: a large clip through tus (one streaming PATCH, as tus-js-client
sends by default) into the ingest service, vs the bare ``minio`` SDK ``fput_object``
of the same file into the same MinIO, interleaved; the ingest's peak memory during
it; and the time from the last byte to ``asset.ingested`` (state ``stored``).

``MAM_BENCH_UPLOAD_MB`` sets the size (200 by default; the issue's figure is 1024),
``MAM_BENCH_UPLOAD_ROUNDS`` the rounds (2).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from minio import Minio

from deploy.local.processes import running_pid, start, stop
from deploy.local.stack import LocalStack
from tests.conftest import AUTH
from tests.uploads import METADATA, MIB, tus_metadata, write_padded_clip

SIZE_MB = int(os.environ.get("MAM_BENCH_UPLOAD_MB", "200"))
ROUNDS = int(os.environ.get("MAM_BENCH_UPLOAD_ROUNDS", "2"))
BASELINE_BUCKET = "mam-bench-fput"


def _file_blocks(path: Path, block: int = MIB) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while data := handle.read(block):
            yield data


def _vary(path: Path) -> None:
    """New bytes inside the clip's filler box: every round is a new asset, never a duplicate."""
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size - 4096)
        handle.write(os.urandom(64))


def _memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _ours(endpoint: str, path: Path, client: httpx.Client) -> tuple[float, float]:
    """(seconds to send every byte and get 204, seconds from then to ``stored``)."""
    size = path.stat().st_size
    created = client.post(
        endpoint,
        headers={
            **AUTH,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(size),
            "Upload-Metadata": tus_metadata({**METADATA, "filename": path.name}),
        },
    )
    created.raise_for_status()
    url = created.headers["Location"]
    began = time.perf_counter()
    sent = client.patch(
        url,
        headers={
            **AUTH,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(size),
        },
        content=_file_blocks(path),
    )
    last_byte = time.perf_counter()
    assert sent.status_code == 204, sent.text
    while True:
        state = client.get(url, headers=AUTH).json()
        if state["state"] in ("stored", "rejected"):
            break
        time.sleep(0.02)
    assert state["state"] == "stored" and not state["duplicate"], state
    return last_byte - began, time.perf_counter() - last_byte


def run(stack: LocalStack) -> list[dict[str, Any]]:
    settings = stack.settings
    spec = dataclasses.replace(stack.service_spec("ingest"), name="ingest-bench-upload")
    start(spec)
    try:
        pid = running_pid(spec)
        assert pid is not None
        idle_rss = _memory_mb(pid, "VmRSS")
        sdk = Minio(
            settings.resolved_s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=False,
            region=settings.s3_region,
        )
        if not sdk.bucket_exists(BASELINE_BUCKET):
            sdk.make_bucket(BASELINE_BUCKET)
        endpoint = f"{settings.ingest_url}/v1/uploads"
        ours_s: list[float] = []
        base_s: list[float] = []
        to_stored: list[float] = []
        with tempfile.TemporaryDirectory(dir=settings.home) as tmp, httpx.Client(timeout=600.0) as client:
            path = Path(tmp) / "phien-hop.mp4"
            size = SIZE_MB * MIB
            write_padded_clip(path, size, Path(tmp))
            for _ in range(ROUNDS):
                _vary(path)
                send, finish = _ours(endpoint, path, client)
                ours_s.append(send)
                to_stored.append(finish)
                began = time.perf_counter()
                sdk.fput_object(BASELINE_BUCKET, "fput/phien-hop.mp4", str(path), part_size=settings.upload_part_size)
                base_s.append(time.perf_counter() - began)
        peak_rss = _memory_mb(pid, "VmHWM")
    finally:
        stop(spec)
    ours_mbps = SIZE_MB / min(ours_s)
    base_mbps = SIZE_MB / min(base_s)
    return [
        {
            "name": f"upload tus {SIZE_MB} MB throughput (vs minio fput_object)",
            "ours": ours_mbps,
            "baseline": base_mbps,
            "ratio": ours_mbps / base_mbps,
            "unit": "MB/s",
        },
        {
            "name": f"upload ingest peak RSS during {SIZE_MB} MB (idle {idle_rss:.0f} MB)",
            "ours": peak_rss,
            "baseline": None,
            "ratio": None,
            "unit": "MB",
        },
        {
            "name": f"upload last byte to asset.ingested, {SIZE_MB} MB clip",
            "ours": min(to_stored),
            "baseline": None,
            "ratio": None,
            "unit": "s",
        },
    ]
