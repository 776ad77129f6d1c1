"""Collection export benchmark (``MAM_BENCH_COLLECTION_ASSETS`` photos, default 100 of
about 880 KB each; ``MAM_BENCH_COLLECTION_ROUNDS``, default 3):

- ``collection_export_throughput``: a whole export through the search API (the
  streamed ZIP of the originals uploaded to S3, with the contact sheet and the
  manifests), request to presigned link, vs a bare ``zipfile`` (stored, as ours)
  of the very same originals read from the same S3 into a local file (MB/s of
  media, higher is better). Rounds alternate ours and the baseline after one
  untimed warm-up of each.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import statistics
import tempfile
import time
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from deploy.local.processes import start, stop
from deploy.local.stack import LocalStack
from shared.eventstore import EventStore
from shared.objectstore import ObjectStore, content_key
from shared.settings import Settings
from tests.conftest import ARCHIVIST, object_store_for
from tests.integration.collections_stack import flat_jpeg, noise_jpeg, photo_events, put_bytes


async def _generate(s: Settings, count: int) -> list[tuple[str, str, int]]:
    """(asset id, original key, size) of ``count`` generated photos, their events appended."""
    rng = random.Random(7)
    store = object_store_for(s, "minio")
    await store.ensure_buckets(s.bucket_originals, s.bucket_renditions)
    events = await EventStore.connect(s.resolved_nats_url, s.event_stream)
    base = noise_jpeg(rng, (1100, 820))
    thumb = flat_jpeg((90, 20, 20))
    out: list[tuple[str, str, int]] = []

    async def one(i: int) -> None:
        original = base + f"bench-{uuid.uuid4()}".encode()
        thumb_key = f"bench/{uuid.uuid4().hex}/thumb.jpg"
        asset_id, evs = photo_events(
            original,
            thumb_key,
            len(thumb),
            title=f"Kỳ họp thứ {i % 20 + 1} HĐND tỉnh: phiên thảo luận tổ",
            caption="Đại biểu thảo luận về dự thảo nghị quyết phát triển kinh tế - xã hội",
            recorded_at=datetime(2025, i % 12 + 1, 5, tzinfo=UTC),
            activity_type="ky-hop",
            settings=s,
        )
        key = content_key(hashlib.sha256(original).hexdigest())
        await put_bytes(store, s.bucket_originals, key, original)
        await put_bytes(store, s.bucket_renditions, thumb_key, thumb)
        for event in evs:
            await events.append(event)
        out.append((asset_id, key, len(original)))

    try:
        for first in range(0, count, 8):
            await asyncio.gather(*(one(i) for i in range(first, min(first + 8, count))))
    finally:
        await events.close()
    return out


def _export(http: httpx.Client, s: Settings, collection_id: str) -> float:
    """Seconds from the export request to its presigned link."""
    started = time.perf_counter()
    url = f"{s.search_url}/v1/collections/{collection_id}/exports"
    export_id = http.post(url, headers=ARCHIVIST, json={"media": "original"}).json()["export_id"]
    while True:
        status = http.get(f"{url}/{export_id}", headers=ARCHIVIST).json()
        if status["state"] == "ready":
            return time.perf_counter() - started
        if status["state"] == "failed" or time.perf_counter() - started > 600:
            raise RuntimeError(f"export did not finish: {status}")
        time.sleep(0.05)


def _bare_zip(store: ObjectStore, bucket: str, keys: list[str], folder: Path) -> float:
    started = time.perf_counter()
    with zipfile.ZipFile(folder / "bare.zip", "w", compression=zipfile.ZIP_STORED) as archive:
        for n, key in enumerate(keys):
            with archive.open(f"media/{n:04d}.jpg", "w", force_zip64=True) as member:
                for chunk in store.iter_chunks(bucket, key):
                    member.write(chunk)
    return time.perf_counter() - started


def run(stack: LocalStack) -> list[dict[str, Any]]:
    count = int(os.environ.get("MAM_BENCH_COLLECTION_ASSETS", "100"))
    rounds = int(os.environ.get("MAM_BENCH_COLLECTION_ROUNDS", "3"))
    s = stack.settings
    specs = [stack.service_spec("catalogue"), stack.service_spec("search")]
    for spec in specs:
        start(spec)
    try:
        assets = asyncio.run(_generate(s, count))
        megabytes = sum(size for _, _, size in assets) / 1e6
        store = object_store_for(s, "minio")
        with httpx.Client(timeout=120) as http, tempfile.TemporaryDirectory() as tmp:
            deadline = time.monotonic() + 120
            while http.get(f"{s.search_url}/v1/search", headers=ARCHIVIST, params={"size": 1}).json()["total"] < count:
                if time.monotonic() > deadline:
                    raise RuntimeError("the generated photos were not indexed")
                time.sleep(0.2)
            collection = http.post(
                f"{s.catalogue_url}/v1/collections", headers=ARCHIVIST, json={"kind": "annual", "title": "Bench 2025"}
            ).json()["collection_id"]
            items = [{"asset_id": asset_id} for asset_id, _, _ in assets]
            placed = http.post(
                f"{s.catalogue_url}/v1/collections/{collection}/assets", headers=ARCHIVIST, json={"items": items}
            )
            placed.raise_for_status()
            keys = [key for _, key, _ in assets]
            _export(http, s, collection), _bare_zip(store, s.bucket_originals, keys, Path(tmp))  # warm-up
            ours, bare = [], []
            for _ in range(rounds):
                ours.append(_export(http, s, collection))
                bare.append(_bare_zip(store, s.bucket_originals, keys, Path(tmp)))
    finally:
        for spec in specs:
            stop(spec)
    ours_rate, bare_rate = megabytes / statistics.median(ours), megabytes / statistics.median(bare)
    return [
        {
            "name": f"collection_export_throughput ({count} photos, {megabytes:.0f} MB)",
            "ours": ours_rate,
            "baseline": bare_rate,
            "ratio": ours_rate / bare_rate,
            "unit": "MB/s (higher is better)",
        }
    ]
