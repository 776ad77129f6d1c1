"""The rebuild's in-memory fold (services/search/fold_replay.py) against an in-memory index:
its documents must be exactly what folding each asset's history event by event gives."""

from __future__ import annotations

import gc
import random
from typing import Any

import pytest

from services.search.fold_gc import rare_collections
from services.search.fold_replay import FoldError, ReplayFold
from services.search.projector import fold_history
from shared.events.envelope import EventEnvelope, new_event
from shared.events.publishing import AssetPublishedV1
from shared.events.tagging import AssetMetadataEditedV1
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
