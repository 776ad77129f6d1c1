"""A rebuild's read of the stream in a child process (services/search/stream_reader.py):
the same events in the same order as the in-process read, a child's failure raised with
its reason, a child stopped when its reader is closed early, and a rebuild reading its
stream's head here and the rest in the child builds the very index an in-process one does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import AsyncElasticsearch

from services.search import rebuild
from services.search.index import AssetIndex
from services.search.rebuild import rebuild_index
from services.search.stream_reader import ChildStreamReader, StreamReaderError
from shared.events.envelope import new_event
from shared.events.tagging import AssetMetadataEditedV1
from shared.eventstore import EventStore
from shared.ports import StoredEvent
from shared.settings import Settings
from shared.subjects import aggregate_type_filter
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration
ASSETS = 120
ASSET_EVENTS = aggregate_type_filter("asset")


async def _appended(store: EventStore, tag: str) -> list[str]:
    """``ASSETS`` uploads, half of them edited later (events of different assets interleave)."""
    ids = [f"rd{tag}{i:04d}" for i in range(ASSETS)]
    for i, asset in enumerate(ids):
        await store.append(
            ingested(
                asset,
                f"Tiếp xúc cử tri lần {i} {tag}",
                recorded_at=datetime(2023, 5, 1, tzinfo=UTC) + timedelta(days=i),
            )
        )
        if i % 2:
            await store.append(
                new_event(
                    AssetMetadataEditedV1(caption=f"Chú thích sửa {i}"), aggregate_id=ids[i // 2], actor="luu-tru"
                )
            )
    return ids


async def _read_all(batches: object) -> list[StoredEvent]:
    return [stored async for chunk in batches for stored in chunk]  # type: ignore[attr-defined]


async def test_the_child_reads_the_same_events_in_the_same_order_in_batches_of_the_size_asked(
    quiet_nats: Settings, quiet_event_store: EventStore
) -> None:
    await _appended(quiet_event_store, uuid.uuid4().hex[:6])
    last = await quiet_event_store.last_sequence()
    start = max(1, last - 3 * ASSETS // 2)  # from the middle of the stream, too
    child = await ChildStreamReader.start(
        quiet_nats.resolved_nats_url, quiet_nats.event_stream, ASSET_EVENTS, start, 37
    )
    try:
        sizes = []
        from_child: list[StoredEvent] = []
        async for chunk in child.batches():
            sizes.append(len(chunk))
            from_child.extend(chunk)
    finally:
        await child.close()
    here = await _read_all(quiet_event_store.read_batches(ASSET_EVENTS, start, 37))
    assert len(from_child) >= 3 * ASSETS // 2 - 1
    # Both read to the end as of their start; nothing is appended meanwhile on the quiet server.
    assert [(s.sequence, s.subject, s.envelope) for s in from_child] == [
        (s.sequence, s.subject, s.envelope) for s in here
    ]
    assert from_child[0].sequence >= start and all(size <= 37 for size in sizes) and max(sizes) == 37


async def test_a_child_that_fails_is_raised_with_its_reason_and_reaped(quiet_nats: Settings) -> None:
    child = await ChildStreamReader.start(quiet_nats.resolved_nats_url, "NO_SUCH_STREAM", ASSET_EVENTS, 1, 100)
    try:
        with pytest.raises(StreamReaderError) as raised:
            await _read_all(child.batches())
    finally:
        await child.close()
    assert "exit 1" in str(raised.value) and "stream not found" in str(raised.value).lower(), raised.value
    assert child._child.returncode == 1


async def test_a_reader_closed_early_stops_its_child(quiet_nats: Settings, quiet_event_store: EventStore) -> None:
    await _appended(quiet_event_store, uuid.uuid4().hex[:6])
    child = await ChildStreamReader.start(quiet_nats.resolved_nats_url, quiet_nats.event_stream, ASSET_EVENTS, 1, 10)
    batches = child.batches()
    first = await anext(batches)
    assert len(first) == 10
    await batches.aclose()
    await child.close()
    assert child._child.returncode is not None  # killed and reaped, not left reading
    with pytest.raises(ProcessLookupError):
        child._child.send_signal(0)


async def test_a_rebuild_reading_in_a_child_builds_the_index_an_in_process_rebuild_builds(
    es: AsyncElasticsearch, quiet_nats: Settings, quiet_event_store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = await _appended(quiet_event_store, tag)
    # The head read here ends in the middle of this test's events; the child reads the rest.
    monkeypatch.setattr(rebuild, "CHILD_READER_HEAD", await quiet_event_store.last_sequence() - ASSETS)
    indices = {}
    try:
        for in_child in (True, False):
            index = AssetIndex(es, f"mamtest-reader-{tag}-{int(in_child)}")
            await index.ensure()
            result = await rebuild_index(
                index, quiet_nats.resolved_nats_url, quiet_nats.event_stream, keep_previous=0, child_reader=in_child
            )
            indices[in_child] = index
            assert result.events >= len(ids)
        from_child = await indices[True].mget(ids)
        in_process = await indices[False].mget(ids)
        assert sorted(from_child) == sorted(ids)
        assert from_child == in_process
        assert from_child[ids[1]][0]["caption"] == "Chú thích sửa 3"
    finally:
        for index in indices.values():
            await index.delete_indices(await index.all_indices())
