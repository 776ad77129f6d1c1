"""The tagger as a real process against the real servers: upload → tags in
search and facets; a job that cannot succeed ends as a visible event, once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import nats
import pytest

from services.tagger.app import build_broker
from services.tagger.ocr import OcrSettings
from services.tagger.worker import Heartbeat, Tagger
from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import AssetIngestedV1, AssetKind
from shared.events.tagging import AssetRetagRequestedV1
from shared.eventstore import EventStore
from shared.ids import deterministic_event_id
from shared.ports import ObjectStorage
from shared.pull_consumers import start_broker
from shared.settings import Settings
from tests.conftest import async_wait_for, consumer_settled, wait_for
from tests.integration.archive import banner_jpeg, search, tags, upload

pytestmark = pytest.mark.integration
TAGGER_DURABLE = "tagger"


def photo_without_original(s: Settings, object_key: str, title: str) -> AssetIngestedV1:
    """An ``asset.ingested`` of a photo whose original was never stored (no OCR possible)."""
    return AssetIngestedV1(
        sha256="0" * 64,
        size_bytes=1000,
        kind=AssetKind.PHOTO,
        media_format="jpeg",
        mime_type="image/jpeg",
        bucket=s.bucket_originals,
        object_key=object_key,
        original_filename="anh.jpg",
        title=title,
        activity_type="khac",
    )


@contextlib.asynccontextmanager
async def tagger_broker(s: Settings, tagger: Tagger) -> AsyncIterator[None]:
    """The tagger's consumer, in this process, on the quiet NATS; its durable is deleted after,
    so the next test's settings make it afresh."""
    broker = build_broker(s, tagger)
    await start_broker(broker)
    try:
        yield
    finally:
        await broker.stop()
        nc = await nats.connect(s.resolved_nats_url)
        try:
            await nc.jetstream().delete_consumer(s.event_stream, TAGGER_DURABLE)
        finally:
            await nc.close()


def test_an_uploaded_banner_photo_is_tagged_and_the_tags_appear_in_search_and_facets(
    services: Settings, http: httpx.Client, unique: str
) -> None:
    s = services
    asset_id = upload(
        http,
        s,
        banner_jpeg(["KỲ HỌP THỨ BẢY HĐND TỈNH KHÓA XI"], unique),
        title=f"IMG {unique}",
        activity_type="khac",
        recorded_at="2023-07-11",
        caption="Đồng chí Đặng Thanh Sơn, Phó Chủ tịch Thường trực HĐND tỉnh phát biểu",
    )
    view = wait_for(lambda: (t := tags(http, s, asset_id)).get("tagged_at") and t, timeout=60, what="asset.tagged")
    assert view["activity_type"] == "ky-hop" and view["activity_type_source"] == "classifier"
    assert "KỲ HỌP THỨ BẢY" in view["ocr_text"] and view["term"] == "2021-2026"
    assert view["people"] == ["Đặng Thanh Sơn"] and "Thường trực HĐND" in view["organisations"]

    def indexed() -> dict[str, Any] | None:
        found = search(http, s, q=unique, facets=["activity_type"])
        hits = found["hits"]
        return found if hits and hits[0].get("activity_type") == "ky-hop" and hits[0].get("people") else None

    found = wait_for(indexed, timeout=60, what="tags in the index")
    assert {"value": "ky-hop", "count": 1}.items() <= next(
        f for f in found["facets"]["activity_type"] if f["value"] == "ky-hop"
    ).items()
    # OCR words are searchable, with or without diacritics.
    assert search(http, s, q=f"khoa xi {unique}")["total"] == 1
    by_person = search(http, s, q=unique, person="Đặng Thanh Sơn")
    assert by_person["total"] == 1


async def test_an_asset_whose_original_is_missing_is_tagged_at_once_without_ocr(
    services: Settings, event_store: EventStore, unique: str
) -> None:
    asset_id = "a" + unique.ljust(32, "1")
    payload = photo_without_original(services, f"missing/{unique}", "Tiếp xúc cử tri trước kỳ họp")
    await event_store.append(new_event(payload, aggregate_id=asset_id, actor="test"))

    async def tagged() -> list[Any]:
        return [e for e in await event_store.history("asset", asset_id) if e.envelope.type == "asset.tagged"]

    # No retries with back-off: retrying cannot bring back an original that is not there.
    await async_wait_for(tagged, 20, what="asset.tagged")
    await async_wait_for(lambda: consumer_settled(services, TAGGER_DURABLE), 60, what="the tagger settled")
    [event] = await tagged()  # exactly once, counted after the tagger has nothing left to do
    assert "original missing" in event.envelope.payload["ocr_error"]
    assert event.envelope.payload["ocr_frames"] == 0


async def test_a_retag_of_an_unknown_asset_ends_as_a_clear_failed_event_once(
    services: Settings, event_store: EventStore, http: httpx.Client, unique: str
) -> None:
    ghost = "a" + unique.ljust(32, "0")
    cause = new_event(AssetRetagRequestedV1(reason="test"), aggregate_id=ghost, actor="test")
    await event_store.append(cause)
    await event_store.append(cause)  # a duplicate publish is dropped by Nats-Msg-Id

    async def failed() -> list[Any]:
        return [e for e in await event_store.history("asset", ghost) if e.envelope.type == "asset.tagging_failed"]

    await async_wait_for(failed, 60, what="asset.tagging_failed")
    await async_wait_for(lambda: consumer_settled(services, TAGGER_DURABLE), 60, what="the tagger settled")
    [event] = await failed()  # exactly once, counted after the tagger has nothing left to do
    assert event.envelope.event_id == str(deterministic_event_id(cause.event_id, "tagging_failed"))
    assert event.envelope.payload["code"] == "asset_not_found"
    assert event.envelope.payload["message"].startswith("Không tìm thấy")


async def test_a_tagger_replica_runs_its_configured_number_of_jobs_at_once(
    quiet_nats: Settings, quiet_event_store: EventStore, unique: str
) -> None:
    """Two slow jobs overlap: the second is not held back until the first ends (a full
    re-tag of the archive held new uploads back for minutes when jobs ran one at a time)."""
    s = quiet_nats.model_copy(update={"tagger_concurrency": 2})
    ours = [f"a{unique}{i}".ljust(33, "3") for i in range(2)]
    running: set[str] = set()
    overlapped = asyncio.Event()
    most_at_once = 0

    class SlowTagger(Tagger):
        async def handle(self, cause: EventEnvelope, deliveries: int, heartbeat: Heartbeat) -> str:
            nonlocal most_at_once
            if cause.aggregate_id not in ours:
                return "ignored"  # the quiet stream's other events
            running.add(cause.aggregate_id)
            most_at_once = max(most_at_once, len(running))
            if len(running) == len(ours):
                overlapped.set()
            try:
                await asyncio.wait_for(overlapped.wait(), 15)  # one at a time: the first gives up here
            except TimeoutError:
                pass
            finally:
                running.discard(cause.aggregate_id)
            return "tagged"

    async with tagger_broker(s, SlowTagger(quiet_event_store, cast(ObjectStorage, None), cast(OcrSettings, None))):
        for asset_id in ours:
            payload = photo_without_original(s, f"slow/{asset_id}", "Kỳ họp thứ 7 HĐND tỉnh")
            await quiet_event_store.append(new_event(payload, aggregate_id=asset_id, actor="test"))
        await async_wait_for(lambda: consumer_settled(s, TAGGER_DURABLE), 120, what="both jobs done")
    assert most_at_once == 2


async def test_a_tagging_job_longer_than_its_ack_wait_is_kept_by_in_progress_acks_and_delivered_once(
    quiet_nats: Settings, quiet_event_store: EventStore, unique: str
) -> None:
    """A job that sends no heartbeat of its own (one long OCR run) for three ack waits is
    not handed out again: the ack wait can be short, so an ack lost with a killed stream
    leader costs seconds, not the two minutes it took at 120 s."""
    s = quiet_nats.model_copy(update={"tagger_ack_wait_s": 3.0, "tagger_concurrency": 1})
    ours = f"a{unique}".ljust(33, "4")
    deliveries: list[int] = []

    class SlowTagger(Tagger):
        async def handle(self, cause: EventEnvelope, delivery: int, heartbeat: Heartbeat) -> str:
            if cause.aggregate_id != ours:
                return "ignored"  # the quiet stream's other events
            deliveries.append(delivery)
            await asyncio.sleep(3 * s.tagger_ack_wait_s + 1)
            return "tagged"

    async with tagger_broker(s, SlowTagger(quiet_event_store, cast(ObjectStorage, None), cast(OcrSettings, None))):
        payload = photo_without_original(s, f"slow/{ours}", "Kỳ họp thứ 7 HĐND tỉnh")
        await quiet_event_store.append(new_event(payload, aggregate_id=ours, actor="test"))
        await async_wait_for(lambda: consumer_settled(s, TAGGER_DURABLE), 120, what="the job done")
        # Settled twice, an ack wait apart: a redelivery would show in between.
        await asyncio.sleep(s.tagger_ack_wait_s + 1)
        await async_wait_for(lambda: consumer_settled(s, TAGGER_DURABLE), 60, what="the job done")
    assert deliveries == [1]
