"""The batch projector's bookkeeping, against an in-memory stand-in for the index
(the real Elasticsearch is exercised in tests/integration/test_search_projection.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from services.search.projector import (
    WRITE_SLICE,
    AssetProjector,
    BatchOutcome,
    Delivered,
    Redelivery,
    plan_group,
    settle_batch,
)
from shared.events.envelope import EventEnvelope
from shared.outcomes import Ack, Park, Retry
from shared.ports import BulkItemResult
from tests.fakes import InMemoryEventLog, InMemorySearchIndex
from tests.search_corpus import ingested


def _event(asset: str, title: str) -> EventEnvelope:
    return ingested(asset, title, recorded_at=datetime(2023, 5, 2, 3, tzinfo=UTC))


def projector(index: InMemorySearchIndex, events: InMemoryEventLog | None = None) -> AssetProjector:
    return AssetProjector(index, events, attempts=3, backoff_s=0.0)


async def test_a_batch_writes_one_document_per_asset_at_its_latest_sequence() -> None:
    index = InMemorySearchIndex()
    items = [
        Delivered(_event("a", "Kỳ họp thứ Bảy"), 3),
        Delivered(_event("b", "Giám sát"), 4),
        Delivered(_event("a", "Kỳ họp thứ Tám"), 5),
    ]
    outcome = await projector(index).apply_batch(items)
    assert outcome.done == {3, 4, 5} and not outcome.retry and not outcome.failed
    doc, version = index.docs["a"]
    assert version == 5 and doc["event_sequences"] == [3, 5] and doc["title"] == "Kỳ họp thứ Tám"


async def test_a_redelivered_batch_changes_nothing_and_is_acknowledged() -> None:
    index = InMemorySearchIndex()
    items = [Delivered(_event("a", "Kỳ họp"), 3)]
    await projector(index).apply_batch(items)
    before = dict(index.docs)
    outcome = await projector(index).apply_batch(items + items)
    assert outcome.done == {3} and index.docs == before


async def test_a_passing_bulk_failure_is_retried_and_then_succeeds() -> None:
    index = InMemorySearchIndex()
    index.script = [{"a": (429, "es_rejected_execution_exception")}]
    outcome = await projector(index).apply_batch([Delivered(_event("a", "x"), 1), Delivered(_event("b", "y"), 2)])
    assert outcome.done == {1, 2} and "a" in index.docs


async def test_a_write_that_keeps_failing_is_handed_back_and_never_acknowledged() -> None:
    index = InMemorySearchIndex()
    index.script = [{"a": (503, "unavailable_shards_exception")}] * 3
    outcome = await projector(index).apply_batch([Delivered(_event("a", "x"), 1), Delivered(_event("b", "y"), 2)])
    assert outcome.done == {2} and set(outcome.retry) == {1} and "503" in outcome.retry[1]
    assert "a" not in index.docs and not index.parked


async def test_a_write_that_cannot_succeed_is_recorded_parked_and_cleared_once_it_lands() -> None:
    index = InMemorySearchIndex()
    index.script = [{"a": (400, "document_parsing_exception")}]
    parking = projector(index)
    outcome = await parking.apply_batch([Delivered(_event("a", "x"), 7), Delivered(_event("b", "y"), 8)])
    assert outcome.done == {8} and "document_parsing_exception" in outcome.failed[7]
    assert index.parked == {("a", 7): ("asset.ingested", outcome.failed[7])}
    # Redelivered after the fix (to this or another replica): written, no failure left on record.
    outcome = await projector(index).apply_batch([Delivered(_event("a", "x"), 7, redelivered=True)])
    assert outcome.done == {7} and not outcome.failed
    assert index.parked == {} and index.docs["a"][1] == 7


async def test_an_event_older_than_the_document_rebuilds_it_from_history() -> None:
    first, second = _event("a", "Bản nháp"), _event("a", "Bản cuối")
    index = InMemorySearchIndex()
    events = InMemoryEventLog([first, second])  # stream sequences 1 and 2
    await projector(index, events).apply_batch([Delivered(second, 2)])
    assert index.docs["a"][0]["event_sequences"] == [2]
    outcome = await projector(index, events).apply_batch([Delivered(first, 1)])
    assert outcome.done == {1} and outcome.rebuilt == {"a"}
    doc, version = index.docs["a"]
    assert version == 2 and doc["event_sequences"] == [1, 2] and doc["title"] == "Bản cuối"


async def test_a_replica_never_folds_onto_a_document_missing_an_event_another_replica_is_writing() -> None:
    # Two projector replicas: A was handed event 2, B event 3, both read the document at
    # version 1. B must not write 1+3 at version 3 (external versioning would then refuse
    # A's 1+2 and event 2 would be lost): the log shows event 2 comes first, so B rebuilds.
    first, second, third = _event("a", "Bản nháp"), _event("a", "Bản sửa"), _event("a", "Bản cuối")
    index = InMemorySearchIndex()
    events = InMemoryEventLog([first, second, third])  # stream sequences 1, 2, 3
    await projector(index, events).apply_batch([Delivered(first, 1)])
    outcome = await projector(index, events).apply_batch([Delivered(third, 3)])
    assert outcome.done == {3} and outcome.rebuilt == {"a"}
    doc, version = index.docs["a"]
    assert version == 3 and doc["event_sequences"] == [1, 2, 3]
    late = await projector(index, events).apply_batch([Delivered(second, 2)])  # A's write arrives last
    assert late.done == {2} and index.docs["a"][0]["event_sequences"] == [1, 2, 3]


async def test_a_document_whose_base_is_whole_is_folded_onto_without_reading_history() -> None:
    first, second = _event("a", "Bản nháp"), _event("a", "Bản cuối")
    index = InMemorySearchIndex()
    events = InMemoryEventLog([first, _event("b", "Giám sát"), second])  # b's event between a's two
    await projector(index, events).apply_batch([Delivered(first, 1)])
    outcome = await projector(index, events).apply_batch([Delivered(second, 3)])
    assert outcome.done == {3} and not outcome.rebuilt and index.docs["a"][0]["event_sequences"] == [1, 3]


def test_planning_skips_events_the_document_already_lists() -> None:
    event = _event("a", "x")
    assert plan_group(({"event_sequences": [4]}, 4), [Delivered(event, 4)]).doc is None  # type: ignore[union-attr]
    assert plan_group(({"event_sequences": [4]}, 4), [Delivered(event, 2)]) is None


def test_a_first_delivery_that_is_not_the_assets_creation_asks_for_its_history() -> None:
    later = _event("a", "x").model_copy(update={"type": "asset.tagged"})
    assert plan_group(None, [Delivered(later, 9)]) is None


DELAYS = Redelivery(retry_s=5.0, parked_s=300.0, undecodable_s=600.0)


def test_settling_acknowledges_written_events_redelivers_passing_failures_and_parks_the_rest() -> None:
    outcome = BatchOutcome(done={1, 2}, retry={3: "503 unavailable"}, failed={4: "400 mapping"})
    settled = settle_batch(outcome, [1, 2, 3, 4], [5], DELAYS)
    assert settled == {
        1: Ack(),
        2: Ack(),
        3: Retry(5.0, "503 unavailable"),
        4: Park(300.0, "400 mapping"),
        5: Park(600.0, "undecodable event"),
    }


def test_a_batch_that_failed_as_a_whole_is_redelivered_event_by_event_and_nothing_is_acknowledged() -> None:
    settled = settle_batch(ConnectionError("elasticsearch down"), [7, 8], [], DELAYS)
    assert set(settled) == {7, 8}
    assert all(isinstance(o, Retry) and o.after_s == 5.0 and "elasticsearch down" in o.reason for o in settled.values())


def test_an_event_the_batch_neither_wrote_nor_failed_is_not_settled_as_done() -> None:
    settled = settle_batch(BatchOutcome(done={1}), [1, 2], [], DELAYS)
    assert settled == {1: Ack()}  # 2 is left alone: the ack wait brings it back


class _QuotingIndex(InMemorySearchIndex):
    """Elasticsearch quotes a refused value back in its reason: a huge one here."""

    async def bulk_put(
        self, docs: list[tuple[str, dict[str, Any], int]], gte: set[str] | frozenset[str] = frozenset()
    ) -> list[BulkItemResult]:
        reason = "failed to parse field [title]. Preview of field's value: '" + "x" * 900_000 + "'"
        return [BulkItemResult(doc_id, 400, "document_parsing_exception", reason) for doc_id, _, _ in docs]


async def test_a_parked_write_keeps_a_short_reason_however_much_of_the_value_the_error_quotes() -> None:
    index = _QuotingIndex()
    outcome = await projector(index).apply_batch([Delivered(_event("a", "x"), 7)])
    assert set(outcome.failed) == {7} and len(outcome.failed[7]) <= 500
    assert outcome.failed[7].startswith("400 document_parsing_exception: failed to parse field [title]")
    [(_, reason)] = index.parked.values()
    assert reason == outcome.failed[7]
    [settled] = settle_batch(outcome, [7], [], Redelivery(1, 2, 3)).values()
    assert isinstance(settled, Park) and len(settled.reason) <= 500


class _CountingLog(InMemoryEventLog):
    """The log, counting the lookups the projector makes; ``together`` lookups must be in
    flight at once before any of them answers (a sequential projector never gets there)."""

    def __init__(self, events: list[EventEnvelope], together: int = 1) -> None:
        super().__init__(events)
        self.lookups = 0
        self._together = together
        self._all_in = asyncio.Event()

    async def next_sequence(self, subject_filter: str, after: int) -> int:
        self.lookups += 1
        if self.lookups >= self._together:
            self._all_in.set()
        await asyncio.wait_for(self._all_in.wait(), timeout=5)
        return await super().next_sequence(subject_filter, after)


async def test_the_log_lookups_of_a_batch_are_in_flight_together() -> None:
    # Three assets, each with another asset's event between its base and its new event.
    firsts = [_event(a, "Bản nháp") for a in "abc"]
    seconds = [_event(a, "Bản cuối") for a in "abc"]
    events = _CountingLog([*firsts, *seconds], together=3)  # sequences 1-3, then 4-6
    index = InMemorySearchIndex()
    await projector(index, events).apply_batch([Delivered(e, i + 1) for i, e in enumerate(firsts)])
    outcome = await projector(index, events).apply_batch([Delivered(e, i + 4) for i, e in enumerate(seconds)])
    assert outcome.done == {4, 5, 6} and not outcome.rebuilt and events.lookups == 3
    assert all(index.docs[a][0]["title"] == "Bản cuối" for a in "abc")


async def test_an_event_right_after_the_documents_version_needs_no_lookup() -> None:
    first, second = _event("a", "Bản nháp"), _event("a", "Bản cuối")
    events = _CountingLog([first, second])
    index = InMemorySearchIndex()
    await projector(index, events).apply_batch([Delivered(first, 1)])
    outcome = await projector(index, events).apply_batch([Delivered(second, 2)])
    assert outcome.done == {2} and events.lookups == 0 and index.docs["a"][0]["event_sequences"] == [1, 2]


class _SlowWritingIndex(InMemorySearchIndex):
    """An index whose first ``_bulk`` answers only once the next one has been sent: a
    projector that waited for each write before folding the next slice would never get
    there (``wait_for`` fails the attempt instead). Counts the ``mget`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.writes = 0
        self._second_write = asyncio.Event()

    async def mget(self, doc_ids: Iterable[str]) -> dict[str, tuple[dict[str, Any], int]]:
        self.reads += 1
        return await super().mget(doc_ids)

    async def bulk_put(
        self, docs: list[tuple[str, dict[str, Any], int]], gte: set[str] | frozenset[str] = frozenset()
    ) -> list[BulkItemResult]:
        self.writes += 1
        if self.writes == 1:
            await asyncio.wait_for(self._second_write.wait(), timeout=5)
        else:
            self._second_write.set()
        return await super().bulk_put(docs, gte)


async def test_a_large_batch_is_read_in_one_mget_and_written_slice_by_slice_each_sent_while_the_next_is_folded() -> (
    None
):
    index = _SlowWritingIndex()
    events = [_event(f"a{i}", f"Kỳ họp {i}") for i in range(WRITE_SLICE + 10)]
    outcome = await projector(index).apply_batch([Delivered(e, i + 1) for i, e in enumerate(events)])
    assert outcome.done == set(range(1, len(events) + 1)) and index.reads == 1 and index.writes == 2
    assert len(index.docs) == len(events) and index.docs["a0"][0]["title"] == "Kỳ họp 0"
