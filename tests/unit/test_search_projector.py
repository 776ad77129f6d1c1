"""The batch projector's bookkeeping, against an in-memory stand-in for the index
(the real Elasticsearch is exercised in tests/integration/test_search_projection.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from services.search.index import AssetIndex, BulkItemResult
from services.search.projector import AssetProjector, Delivered, plan_group
from shared.events.envelope import EventEnvelope
from tests.search_corpus import ingested


class FakeIndex:
    """Enough of AssetIndex for the projector, with scripted bulk failures."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[dict[str, Any], int]] = {}
        self.script: list[dict[str, tuple[int, str]]] = []  # per bulk call: id -> (status, error type)
        self.failures: list[tuple[str, int, str]] = []

    async def mget(self, ids: Any) -> dict[str, tuple[dict[str, Any], int]]:
        return {i: self.docs[i] for i in ids if i in self.docs}

    async def bulk_put(self, docs: list[tuple[str, dict[str, Any], int]], gte: Any = frozenset()) -> list[Any]:
        scripted = self.script.pop(0) if self.script else {}
        out = []
        for doc_id, doc, version in docs:
            if doc_id in scripted:
                status, kind = scripted[doc_id]
                out.append(BulkItemResult(doc_id, status, kind, "scripted"))
                continue
            current = self.docs.get(doc_id)
            if current and (current[1] > version or (current[1] == version and doc_id not in gte)):
                out.append(BulkItemResult(doc_id, 409, "version_conflict_engine_exception", "newer"))
                continue
            self.docs[doc_id] = (doc, version)
            out.append(BulkItemResult(doc_id, 201))
        return out

    async def record_failure(self, doc_id: str, sequence: int, event_type: str, reason: str) -> None:
        self.failures.append((doc_id, sequence, reason))

    async def clear_failure(self, doc_id: str, sequence: int) -> bool:
        before = len(self.failures)
        self.failures = [f for f in self.failures if f[:2] != (doc_id, sequence)]
        return len(self.failures) < before


class FakeEvents:
    def __init__(self, history: dict[str, list[tuple[int, EventEnvelope]]]) -> None:
        self._history = history

    async def history(self, aggregate: str, aggregate_id: str) -> list[Any]:
        from shared.eventstore import StoredEvent

        return [StoredEvent(seq, "", e) for seq, e in self._history.get(aggregate_id, [])]


def _event(asset: str, title: str) -> EventEnvelope:
    return ingested(asset, title, recorded_at=datetime(2023, 5, 2, 3, tzinfo=UTC))


def projector(index: FakeIndex, events: FakeEvents | None = None) -> AssetProjector:
    return AssetProjector(cast(AssetIndex, index), cast(Any, events), attempts=3, backoff_s=0.0)


async def test_a_batch_writes_one_document_per_asset_at_its_latest_sequence() -> None:
    index = FakeIndex()
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
    index = FakeIndex()
    items = [Delivered(_event("a", "Kỳ họp"), 3)]
    await projector(index).apply_batch(items)
    before = dict(index.docs)
    outcome = await projector(index).apply_batch(items + items)
    assert outcome.done == {3} and index.docs == before


async def test_a_passing_bulk_failure_is_retried_and_then_succeeds() -> None:
    index = FakeIndex()
    index.script = [{"a": (429, "es_rejected_execution_exception")}]
    outcome = await projector(index).apply_batch([Delivered(_event("a", "x"), 1), Delivered(_event("b", "y"), 2)])
    assert outcome.done == {1, 2} and "a" in index.docs


async def test_a_write_that_keeps_failing_is_handed_back_and_never_acknowledged() -> None:
    index = FakeIndex()
    index.script = [{"a": (503, "unavailable_shards_exception")}] * 3
    outcome = await projector(index).apply_batch([Delivered(_event("a", "x"), 1), Delivered(_event("b", "y"), 2)])
    assert outcome.done == {2} and set(outcome.retry) == {1} and "503" in outcome.retry[1]
    assert "a" not in index.docs and not index.failures


async def test_a_write_that_cannot_succeed_is_recorded_parked_and_cleared_once_it_lands() -> None:
    index = FakeIndex()
    index.script = [{"a": (400, "document_parsing_exception")}]
    parking = projector(index)
    outcome = await parking.apply_batch([Delivered(_event("a", "x"), 7), Delivered(_event("b", "y"), 8)])
    assert outcome.done == {8} and "document_parsing_exception" in outcome.failed[7]
    assert index.failures == [("a", 7, outcome.failed[7])]
    # Redelivered after the fix (to this or another replica): written, no failure left on record.
    outcome = await projector(index).apply_batch([Delivered(_event("a", "x"), 7, redelivered=True)])
    assert outcome.done == {7} and not outcome.failed
    assert index.failures == [] and index.docs["a"][1] == 7


async def test_an_event_older_than_the_document_rebuilds_it_from_history() -> None:
    first, second = _event("a", "Bản nháp"), _event("a", "Bản cuối")
    index = FakeIndex()
    events = FakeEvents({"a": [(3, first), (5, second)]})
    await projector(index, events).apply_batch([Delivered(second, 5)])
    assert index.docs["a"][0]["event_sequences"] == [5]
    outcome = await projector(index, events).apply_batch([Delivered(first, 3)])
    assert outcome.done == {3} and outcome.rebuilt == {"a"}
    doc, version = index.docs["a"]
    assert version == 5 and doc["event_sequences"] == [3, 5] and doc["title"] == "Bản cuối"


def test_planning_skips_events_the_document_already_lists() -> None:
    event = _event("a", "x")
    assert plan_group(({"event_sequences": [4]}, 4), [Delivered(event, 4)]).doc is None  # type: ignore[union-attr]
    assert plan_group(({"event_sequences": [4]}, 4), [Delivered(event, 2)]) is None


def test_a_first_delivery_that_is_not_the_assets_creation_asks_for_its_history() -> None:
    later = _event("a", "x").model_copy(update={"type": "asset.tagged"})
    assert plan_group(None, [Delivered(later, 9)]) is None
