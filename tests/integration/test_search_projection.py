"""Projection correctness against the real event store and Elasticsearch: duplicate
and out-of-order delivery, `_bulk` partial failures, and a write that cannot succeed
being parked by the live consumer — never skipped — until the cause is fixed."""

from __future__ import annotations

import copy
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from services.search.app import build_broker
from services.search.documents import ASSET_MAPPINGS
from services.search.index import INDEX_SETTINGS, AssetIndex
from services.search.projector import AssetProjector, Delivered
from services.search.rebuild import rebuild_index
from shared.eventstore import EventStore
from shared.pull_consumers import start_broker
from shared.settings import Settings
from shared.subjects import aggregate_filter
from tests.conftest import async_wait_for
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration


async def _fresh_index(es: AsyncElasticsearch) -> AssetIndex:
    index = AssetIndex(es, f"mamtest-proj-{uuid.uuid4().hex[:8]}")
    await index.ensure()
    return index


async def _index_refusing_text_titles(es: AsyncElasticsearch, prefix: str) -> AssetIndex:
    """A live index whose mapping only takes numeric titles: real per-item ``_bulk`` failures
    ("Kỳ họp bất thường" can never be written, "2024" can)."""
    index = AssetIndex(es, prefix)
    mappings = copy.deepcopy(ASSET_MAPPINGS)
    mappings["properties"]["title"] = {"type": "integer"}
    await es.indices.create(
        index=f"{prefix}-assets-bad",
        settings=INDEX_SETTINGS,
        mappings=mappings,
        aliases={index.alias: {"is_write_index": True}},
    )
    return index


async def _all_docs(index: AssetIndex, ids: list[str]) -> dict[str, tuple[dict[str, Any], int]]:
    return await index.mget(ids)


async def test_duplicate_and_out_of_order_delivery_leaves_the_index_identical(
    es: AsyncElasticsearch,
    quiet_event_store: EventStore,
) -> None:
    tag = uuid.uuid4().hex[:8]
    when = datetime(2022, 4, 21, 3, tzinfo=UTC)
    delivered: list[Delivered] = []
    # Three assets; two of them get a corrected second version of their metadata.
    for i, title in enumerate(["Kỳ họp thứ Năm", "Tiếp xúc cử tri", "Giám sát chuyên đề"]):
        event = ingested(f"p{tag}{i}", title, "Bản đầu", recorded_at=when)
        delivered.append(Delivered(event, (await quiet_event_store.append(event)).sequence))
    for i in (0, 2):
        event = ingested(f"p{tag}{i}", f"Bản sửa {i}", "Bản sửa", recorded_at=when, activity_type="ky-hop")
        delivered.append(Delivered(event, (await quiet_event_store.append(event)).sequence))
    ids = sorted({d.event.aggregate_id for d in delivered})

    in_order = await _fresh_index(es)
    outcome = await AssetProjector(in_order, quiet_event_store).apply_batch(delivered)
    assert outcome.done == {d.sequence for d in delivered}

    scrambled = await _fresh_index(es)
    projector = AssetProjector(scrambled, quiet_event_store)
    rng = random.Random(5)
    shuffled = delivered * 3
    rng.shuffle(shuffled)
    for start in range(0, len(shuffled), 2):  # small batches, newest often first
        result = await projector.apply_batch(shuffled[start : start + 2])
        assert not result.retry and not result.failed
    expected = await _all_docs(in_order, ids)
    assert await _all_docs(scrambled, ids) == expected
    assert expected[f"p{tag}0"][0]["title"] == "Bản sửa 0"
    assert expected[f"p{tag}1"][0]["title"] == "Tiếp xúc cử tri"
    for index in (in_order, scrambled):
        await index.delete_indices(await index.all_indices())


async def test_a_bulk_with_some_unwritable_documents_writes_the_rest_and_records_why(
    es: AsyncElasticsearch,
) -> None:
    prefix = f"mamtest-part-{uuid.uuid4().hex[:8]}"
    index = await _index_refusing_text_titles(es, prefix)
    good = ingested("good1", "2024")
    bad = ingested("bad1", "Kỳ họp bất thường")
    outcome = await AssetProjector(index, None, backoff_s=0.01).apply_batch([Delivered(good, 11), Delivered(bad, 12)])
    assert outcome.done == {11}
    assert set(outcome.failed) == {12} and "document_parsing_exception" in outcome.failed[12]
    await es.indices.refresh(index=index.failures_index)
    recorded = await index.failures()
    assert [(f["asset_id"], f["sequence"]) for f in recorded] == [("bad1", 12)]
    assert "title" in recorded[0]["reason"]
    await index.delete_indices([f"{prefix}-assets-bad", index.failures_index])


async def test_a_write_blocked_for_a_while_is_handed_back_then_written_once_unblocked(
    es: AsyncElasticsearch,
) -> None:
    index = await _fresh_index(es)
    [concrete] = await index.live_indices()
    await es.indices.put_settings(index=concrete, settings={"index.blocks.write": True})
    projector = AssetProjector(index, None, attempts=2, backoff_s=0.01)
    event = ingested("blk1", "Thăm, làm việc tại huyện Bác Ái")
    try:
        outcome = await projector.apply_batch([Delivered(event, 5)])
        assert not outcome.done and not outcome.failed and "cluster_block_exception" in outcome.retry[5]
    finally:
        await es.indices.put_settings(index=concrete, settings={"index.blocks.write": False})
    outcome = await projector.apply_batch([Delivered(event, 5)])
    assert outcome.done == {5}
    assert (await index.get("blk1")) is not None
    await index.delete_indices(await index.all_indices())


async def test_an_unwritable_event_is_parked_then_lands_once_the_cause_is_fixed(
    es: AsyncElasticsearch,
    quiet_event_store: EventStore,
    quiet_nats: Settings,
) -> None:
    tag = uuid.uuid4().hex[:8]
    asset = f"park{tag}"
    prefix = f"mamtest-park-{tag}"
    durable = f"test-park-{tag}"
    index = await _index_refusing_text_titles(es, prefix)
    # The quiet NATS: no service adds events to the test's asset.
    settings = quiet_nats.model_copy(update={"search_parked_redelivery_s": 1.0, "search_redelivery_delay_s": 0.2})
    projector = AssetProjector(index, quiet_event_store, backoff_s=0.01)
    broker = build_broker(settings, [projector], durable=durable, subject=aggregate_filter("asset", asset))
    js = quiet_event_store._js
    await start_broker(broker)
    # The timeout fix is attached to the live subscription (see shared/pull_consumers.py).
    assert all(hasattr(s.subscription.fetch, "__wrapped__") for s in broker.subscribers)
    try:
        first = await quiet_event_store.append(ingested(asset, "2024"))

        async def first_indexed() -> bool:
            info = await js.consumer_info(settings.event_stream, durable)
            return info.ack_floor.stream_seq == first.sequence

        await async_wait_for(first_indexed, within=30, what="the first, writable event indexed")
        second = await quiet_event_store.append(ingested(asset, "Kỳ họp bất thường", "Chất vấn và trả lời chất vấn"))

        async def parked_and_redelivered() -> bool:
            info = await js.consumer_info(settings.event_stream, durable)
            # Consumer sequence counts deliveries: the first event once, the bad one three times.
            return bool(await index.failures()) and info.num_redelivered == 1 and info.delivered.consumer_seq >= 4

        await async_wait_for(parked_and_redelivered, within=30, what="the bad write parked and redelivered")

        [failure] = await index.failures()
        assert (failure["asset_id"], failure["sequence"]) == (asset, second.sequence)
        assert "document_parsing_exception" in failure["reason"]
        info = await js.consumer_info(settings.event_stream, durable)
        # Not terminated, not acknowledged: the projection has not moved past it.
        assert info.ack_floor.stream_seq == first.sequence
        assert info.num_ack_pending == 1
        assert (await index.get(asset)) is not None

        # The fix: the mapping corrected in code (the template), then the documented repair.
        await index.ensure()
        await rebuild_index(index, settings.resolved_nats_url, settings.event_stream, keep_previous=0)

        async def landed() -> bool:
            found = await index.get(asset)
            info = await js.consumer_info(settings.event_stream, durable)
            return (
                found is not None
                and found[0]["title"] == "Kỳ họp bất thường"
                and info.ack_floor.stream_seq == second.sequence
                and not await index.failures()
            )

        await async_wait_for(landed, within=30, what="the parked write to land and its record to go")
        doc, version = (await index.get(asset)) or ({}, 0)
        assert version == second.sequence and doc["event_sequences"] == [first.sequence, second.sequence]
    finally:
        await broker.stop()
        await js.delete_consumer(settings.event_stream, durable)
        await index.delete_indices([*await index.all_indices(), f"{prefix}-assets-bad", index.failures_index])
