"""A catalogue and a search service of their own, on the quiet NATS (which the media
workers do not consume), for tests that generate hundreds of assets: their events
are appended as ingest and the tagger would append them, without transcoding or
OCR costing minutes, and projected by a real search service into an index of its
own."""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from PIL import Image

from deploy.local.processes import LaunchError, ProcessSpec, start, stop
from deploy.local.stack import LocalStack
from shared.events.envelope import EventEnvelope, new_event
from shared.events.media import AssetRenditionsReadyV1
from shared.events.models import AssetIngestedV1, AssetKind
from shared.events.tagging import AssetTaggedV1
from shared.ids import asset_id_for_sha256
from shared.objectstore import ObjectStore, content_key
from shared.settings import Settings

# Ports of this pair: beside the suite's services (offset + 284xx), never one of them.
PORT_SHIFT = 40


@pytest.fixture(scope="module")
def quiet_services(stack: LocalStack, quiet_nats: Settings) -> Iterator[tuple[Settings, ProcessSpec]]:
    """(settings, the search service's process spec) of a catalogue + search pair on the quiet NATS."""
    s = quiet_nats.model_copy(
        update={
            "search_port": quiet_nats.search_port + PORT_SHIFT,
            "catalogue_port": quiet_nats.catalogue_port + PORT_SHIFT,
            "es_index_prefix": f"mamcoll{uuid.uuid4().hex[:6]}",
            "home": stack.home / "collections-pair",
        }
    )
    pair = LocalStack(s)
    specs = [pair.service_spec("catalogue"), pair.service_spec("search")]
    try:
        for spec in specs:
            start(spec)
    except LaunchError as exc:
        pytest.fail(f"the collections' services did not start: {exc}", pytrace=False)
    yield s, specs[1]
    for spec in specs:
        stop(spec)


def noise_jpeg(rng: random.Random, size: tuple[int, int]) -> bytes:
    """A JPEG that does not compress (what a real photo's bytes are like to a ZIP)."""
    raw = rng.randbytes(size[0] * size[1] * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", size, raw).save(out, "JPEG", quality=92)
    return out.getvalue()


def flat_jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (160, 120)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=80)
    return out.getvalue()


def photo_events(
    original: bytes,
    thumb_key: str,
    thumb_size: int,
    *,
    title: str,
    caption: str,
    recorded_at: datetime,
    activity_type: str,
    people: tuple[str, ...] = (),
    organisations: tuple[str, ...] = (),
    settings: Settings,
) -> tuple[str, list[EventEnvelope]]:
    """An uploaded photo's events as ingest, the transcoder and the tagger append them."""
    sha = hashlib.sha256(original).hexdigest()
    asset_id = asset_id_for_sha256(sha)
    ingested = AssetIngestedV1(
        sha256=sha,
        size_bytes=len(original),
        kind=AssetKind.PHOTO,
        media_format="JPEG",
        mime_type="image/jpeg",
        bucket=settings.bucket_originals,
        object_key=content_key(sha),
        original_filename="anh.jpg",
        title=title,
        caption=caption,
        recorded_at=recorded_at,
        activity_type=activity_type,
        source_org="Đài Phát thanh - Truyền hình",
        width=320,
        height=240,
    )
    rendition = {
        "name": "thumb",
        "bucket": settings.bucket_renditions,
        "key": thumb_key,
        "mime_type": "image/jpeg",
        "size_bytes": thumb_size,
        "width": 160,
        "height": 120,
    }
    ready = AssetRenditionsReadyV1.model_validate(
        {"profile": "test", "elapsed_s": 0.1, "renditions": [rendition, {**rendition, "name": "web"}]}
    )
    tagged = AssetTaggedV1(
        activity_type=activity_type,
        activity_type_source="uploader",
        proposed_activity_type=activity_type,
        confidence=1.0,
        organisations=organisations,
        people=tuple({"name": p, "known": True} for p in people),  # type: ignore[misc]
        vocabulary_version="test",
    )
    events = [
        new_event(ingested, aggregate_id=asset_id, actor="phong-vien"),
        new_event(ready, aggregate_id=asset_id, actor="transcoder"),
        new_event(tagged, aggregate_id=asset_id, actor="tagger"),
    ]
    return asset_id, events


async def put_bytes(store: ObjectStore, bucket: str, key: str, data: bytes, mime: str = "image/jpeg") -> None:
    await store.put_stream(bucket, key, io.BytesIO(data), mime, length=len(data))


def peak_and_current_rss_kib(pid: int) -> tuple[int, int]:
    fields: dict[str, Any] = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def reset_peak_rss(pid: int) -> None:
    """Start the peak (VmHWM) again from the current RSS (Linux ≥ 4.0, writing 5 to clear_refs)."""
    with open(f"/proc/{pid}/clear_refs", "w") as handle:
        handle.write("5")
