"""The rebuild's in-memory fold (services/search/fold_replay.py) against an in-memory index:
its documents must be exactly what folding each asset's history event by event gives."""

from __future__ import annotations

import copy
import gc
import random
from typing import Any

import pytest

from services.search.documents import MAX_SEARCHABLE_CHARS
from services.search.fold_gc import rare_collections
from services.search.fold_replay import FoldError, ReplayFold
from services.search.projector import fold_history
from shared.events.envelope import EventEnvelope, new_event
from shared.events.media import AssetProbedV1, AssetProcessingRetryRequestedV1
from shared.events.models import AssetKind
from shared.events.publishing import AssetPublishedV1
from shared.events.tagging import AssetActivityAssignedV1, AssetMetadataEditedV1, AssetTaggedV1, PersonTag
from shared.policy import Restriction
from shared.ports import StoredEvent
from tests.fakes import InMemorySearchIndex
from tests.search_corpus import generated_events


def _stream(n_assets: int, seed: int = 3) -> list[StoredEvent]:
    """Uploads with edits and publications, interleaved across assets, in stream order."""
    rng = random.Random(seed)
    chains: list[list[EventEnvelope]] = []
    for upload in generated_events(n_assets, prefix="f"):
        chain = [upload]
        for i in range(rng.randint(0, 4)):
            edit = AssetMetadataEditedV1(caption=f"Chú thích sửa lần {i + 1} của {upload.aggregate_id}")
            chain.append(new_event(edit, aggregate_id=upload.aggregate_id, actor="luu-tru"))
        if rng.random() < 0.5:
            published = AssetPublishedV1(publish_at=upload.occurred_at, restriction=Restriction.PUBLIC)
            chain.append(new_event(published, aggregate_id=upload.aggregate_id, actor="luu-tru"))
        chains.append(chain)
    return _interleaved(chains, rng)


def _interleaved(chains: list[list[EventEnvelope]], rng: random.Random) -> list[StoredEvent]:
    """The assets' chains in stream order, each in its own order, assets mixed at random."""
    out: list[StoredEvent] = []
    while chains:
        chain = rng.choice(chains)
        event = chain.pop(0)
        out.append(StoredEvent(len(out) + 1, event.subject, event))
        if not chain:
            chains.remove(chain)
    return out


def _expected(stream: list[StoredEvent]) -> dict[str, tuple[dict[str, Any], int]]:
    histories: dict[str, list[tuple[EventEnvelope, int]]] = {}
    for stored in stream:
        histories.setdefault(stored.envelope.aggregate_id, []).append((stored.envelope, stored.sequence))
    plans = {a: fold_history(a, h) for a, h in histories.items()}
    return {a: (plan.doc or {}, plan.version) for a, plan in plans.items()}


async def _fold_all(fold: ReplayFold, stream: list[StoredEvent], chunk: int = 7) -> None:
    for start in range(0, len(stream), chunk):
        await fold.fold(stream[start : start + chunk])
    await fold.flush()


@pytest.mark.parametrize(("idle_events", "max_docs"), [(10_000, 10_000), (5, 10_000), (10_000, 3), (2, 2)])
async def test_the_replay_fold_writes_what_folding_each_history_event_by_event_gives(
    idle_events: int, max_docs: int
) -> None:
    """Whether documents stay in memory to the end, go out when quiet or when memory is full
    (and are read back when their asset speaks again), the index ends up the same."""
    stream = _stream(40)
    index = InMemorySearchIndex()
    fold = ReplayFold(index, idle_events=idle_events, max_docs=max_docs, write_batch=5)
    await _fold_all(fold, stream)
    assert index.docs == _expected(stream)


async def test_documents_are_written_once_each_when_they_all_fit_in_memory() -> None:
    stream = _stream(30)
    index = InMemorySearchIndex()
    fold = ReplayFold(index)
    await _fold_all(fold, stream)
    assert fold.documents_written == 30 == len(index.docs)


async def test_a_catch_up_after_a_flush_folds_onto_the_documents_already_written() -> None:
    stream = _stream(20)
    index = InMemorySearchIndex()
    fold = ReplayFold(index, idle_events=3, max_docs=4)
    await _fold_all(fold, stream[: len(stream) // 2])
    await _fold_all(fold, stream[len(stream) // 2 :])
    assert index.docs == _expected(stream)


async def test_an_event_that_cannot_be_folded_stops_the_replay_naming_its_sequence() -> None:
    stream = _stream(3)
    bad = stream[0].envelope.model_copy(update={"payload": {"title": 5}})
    stream[0] = StoredEvent(stream[0].sequence, stream[0].subject, bad)
    with pytest.raises(FoldError, match=r"^event 1 cannot be indexed: cannot fold events"):
        await _fold_all(ReplayFold(InMemorySearchIndex()), stream)


async def test_a_passing_refusal_is_written_again_and_a_lasting_one_stops_the_replay() -> None:
    stream = _stream(4)
    first = stream[0].envelope.aggregate_id
    index = InMemorySearchIndex()
    index.script = [{first: (429, "es_rejected_execution_exception")}]
    await _fold_all(ReplayFold(index, retry_pause_s=0.0), stream)
    assert index.docs == _expected(stream)

    refusing = InMemorySearchIndex()
    refusing.script = [{first: (400, "mapper_parsing_exception")}]
    with pytest.raises(FoldError, match="mapper_parsing_exception"):
        await _fold_all(ReplayFold(refusing, retry_pause_s=0.0), stream)

    busy = InMemorySearchIndex()
    busy.script = [{first: (429, "es_rejected_execution_exception")}] * 3
    with pytest.raises(FoldError, match="could not be indexed"):
        await _fold_all(ReplayFold(busy, retry_pause_s=0.0, rounds=2), stream)


def _out_of_range_stream() -> list[StoredEvent]:
    """Events whose values no index field can hold (numbers out of range, texts longer than
    a folded copy may be), each followed by events folded onto them, assets interleaved."""
    long_text = "Đại biểu chất vấn về đơn thư khiếu nại. " * 1500  # longer than MAX_SEARCHABLE_CHARS
    assert len(long_text) > MAX_SEARCHABLE_CHARS
    chains = []
    for i, upload in enumerate(generated_events(6, prefix="o")):
        a = upload.aggregate_id
        probed = AssetProbedV1(
            kind=AssetKind.VIDEO,
            container="mov,mp4",
            width=2**40 if i % 2 else 1920,
            height=2**31,
            duration_s=1e39,
            frame_rate=float("inf") if i % 3 else 25.0,
            bitrate=2**64,
        )
        tagged = AssetTaggedV1(
            activity_type="khac",
            activity_type_source="classifier",
            proposed_activity_type="khac",
            confidence=0.5,
            vocabulary_version="test",
            people=(PersonTag(name=long_text[:40_000]),),
            ocr_text=long_text,
        )
        chains.append(
            [
                upload.model_copy(update={"payload": {**upload.payload, "size_bytes": 2**70, "height": 2**33}}),
                new_event(probed, aggregate_id=a, actor="transcoder"),
                new_event(tagged, aggregate_id=a, actor="tagger"),
                new_event(AssetProcessingRetryRequestedV1(), aggregate_id=a, actor="luu-tru"),
                new_event(
                    AssetActivityAssignedV1(activity_id="v1", activity_title=long_text), aggregate_id=a, actor="luu-tru"
                ),
                new_event(AssetProcessingRetryRequestedV1(), aggregate_id=a, actor="luu-tru"),
                new_event(AssetMetadataEditedV1(caption="Chú thích sửa"), aggregate_id=a, actor="luu-tru"),
            ]
        )
    return _interleaved(chains, random.Random(5))


@pytest.mark.parametrize(("idle_events", "max_docs"), [(10_000, 10_000), (3, 2)])
async def test_values_no_index_field_can_hold_fold_to_the_same_documents_bounded_once_or_after_every_event(
    idle_events: int, max_docs: int
) -> None:
    """The replay makes a document indexable when it writes it, the live projector after
    every event (apply_event): the same documents, also when events follow such values."""
    stream = _out_of_range_stream()
    index = InMemorySearchIndex()
    await _fold_all(ReplayFold(index, idle_events=idle_events, max_docs=max_docs, write_batch=2), stream)
    expected = _expected(stream)
    assert index.docs == expected
    doc, _ = next(iter(expected.values()))
    assert doc["height"] is None and doc["size_bytes"] is None and doc["processing_retries"] == 2
    assert len(doc["ocr_text_folded"]) == len(doc["activity_title_folded"]) == MAX_SEARCHABLE_CHARS


async def test_a_document_handed_to_the_index_is_never_changed_by_the_events_folded_after() -> None:
    """The fold changes its documents in place: one written (a flush) or read back from the
    index is copied before the next event is folded onto it."""
    stream = _stream(12)
    index = InMemorySearchIndex()
    fold = ReplayFold(index)
    half = len(stream) // 2
    await _fold_all(fold, stream[:half])
    handed = dict(index.docs)  # the very objects the index holds
    as_written = copy.deepcopy(handed)
    for start in range(half, len(stream), 5):
        await fold.fold(stream[start : start + 5])
    assert handed == as_written
    await fold.flush()
    assert index.docs == _expected(stream)

    returning = InMemorySearchIndex()  # written out when quiet, read back when its asset speaks again
    fold = ReplayFold(returning, idle_events=2, max_docs=2)
    for start in range(0, len(stream), 3):
        before = copy.deepcopy(returning.docs)
        held = dict(returning.docs)
        await fold.fold(stream[start : start + 3])
        assert {a: held[a] for a in before} == before
    await fold.flush()
    assert returning.docs == _expected(stream)


def test_collections_are_rare_while_any_fold_runs_and_as_before_once_the_last_ends() -> None:
    before = gc.get_threshold()
    first, second = rare_collections(), rare_collections()
    first.__enter__()
    assert gc.get_threshold()[0] > before[0]
    second.__enter__()
    first.__exit__(None, None, None)  # folds of concurrent tasks end in any order
    assert gc.get_threshold()[0] > before[0]
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
