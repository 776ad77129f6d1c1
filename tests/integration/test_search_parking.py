"""A write that cannot succeed is parked, never skipped: the live consumer keeps it
unacknowledged (the ack floor stays behind it), the failure is visible, and once the
cause is fixed the event lands and its failure record goes. Real NATS (the quiet
server, so no service adds events to the test's asset), real ES."""

from __future__ import annotations

import copy
import uuid

import pytest
from elasticsearch import AsyncElasticsearch

from services.search.app import build_broker
from services.search.documents import ASSET_MAPPINGS
from services.search.index import INDEX_SETTINGS, AssetIndex
from services.search.projector import AssetProjector
from services.search.rebuild import rebuild_index
from shared.eventstore import EventStore
from shared.settings import Settings
from shared.subjects import aggregate_filter
from tests.conftest import async_wait_for
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration


async def test_an_unwritable_event_is_parked_then_lands_once_the_cause_is_fixed(
    es: AsyncElasticsearch, quiet_event_store: EventStore, quiet_nats: Settings,
) -> None:
    tag = uuid.uuid4().hex[:8]
    asset = f"park{tag}"
    prefix = f"mamtest-park-{tag}"
    durable = f"test-park-{tag}"
    index = AssetIndex(es, prefix)
    # A live index whose mapping only takes numeric titles: "Kỳ họp bất thường" can never be written.
    mappings = copy.deepcopy(ASSET_MAPPINGS)
    mappings["properties"]["title"] = {"type": "integer"}
    await es.indices.create(index=f"{prefix}-assets-bad", settings=INDEX_SETTINGS, mappings=mappings,
                            aliases={index.alias: {"is_write_index": True}})
    settings = quiet_nats.model_copy(update={"search_parked_redelivery_s": 1.0, "search_redelivery_delay_s": 0.2})
    projector = AssetProjector(index, quiet_event_store, backoff_s=0.01)
    broker = build_broker(settings, [projector], durable=durable, subject=aggregate_filter("asset", asset))
    js = quiet_event_store._js
    await broker.start()
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
        assert (await index.get(asset)) is not None and projector.parked == {second.sequence: asset}

        # The fix: the mapping corrected in code (the template), then the documented repair.
        await index.ensure()
        await rebuild_index(index, settings.resolved_nats_url, settings.event_stream, keep_previous=0)

        async def landed() -> bool:
            found = await index.get(asset)
            info = await js.consumer_info(settings.event_stream, durable)
            return (found is not None and found[0]["title"] == "Kỳ họp bất thường"
                    and info.ack_floor.stream_seq == second.sequence and not await index.failures())
        await async_wait_for(landed, within=30, what="the parked write to land and its record to go")
        assert projector.parked == {}
        doc, version = (await index.get(asset)) or ({}, 0)
        assert version == second.sequence and doc["event_sequences"] == [first.sequence, second.sequence]
    finally:
        await broker.stop()
        await js.delete_consumer(settings.event_stream, durable)
        await index.delete_indices([*await index.all_indices(), f"{prefix}-assets-bad", index.failures_index])
