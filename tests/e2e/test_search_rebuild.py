"""A rebuild of the search index (what `mam rebuild-index` runs) while the
search API is under query load: every query is answered, with the same
results, also the ones in flight while the alias moves, and the rebuilt index
equals the live one."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch

from services.search.index import AssetIndex
from services.search.rebuild import rebuild_index
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import AUTH, async_wait_for
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration
LOAD_THREADS = 3


@dataclass(frozen=True)
class Answer:
    began: float  # time.monotonic()
    ended: float
    status: int
    body: Any = field(repr=False)


async def test_a_rebuild_under_query_load_drops_no_query_and_equals_the_live_index(
    services: Settings,
    event_store: EventStore,
    es: AsyncElasticsearch,
) -> None:
    word = "dựng" + uuid.uuid4().hex[:6]
    last = 0
    ids = []
    for i in range(30):
        event = ingested(
            f"rb{word[4:]}{i:02d}",
            f"Giám sát chuyên đề {word} lần {i}",
            "Đoàn giám sát làm việc.",
            activity_type="giam-sat-chuyen-de",
            recorded_at=datetime(2024, 3, 1, tzinfo=UTC) + timedelta(hours=i),
        )
        last = (await event_store.append(event)).sequence
        ids.append(event.aggregate_id)
    url = f"{services.search_url}/v1/search"
    params = {"q": word, "size": 50, "sort": "date"}
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
        baseline = (await client.get(url, params={**params, "after_seq": last})).json()
    assert baseline["total"] == 30

    index = AssetIndex(es, services.es_index_prefix)
    [live_before] = await index.live_indices()
    stop = threading.Event()
    answers: list[Answer] = []  # appended by the load threads (list.append is atomic)

    def load() -> None:
        # Any exception here (a refused connection, a body that is not JSON)
        # ends the thread and is raised again below by Future.result().
        with httpx.Client(headers=AUTH, timeout=30) as client:
            while not stop.is_set():
                began = time.monotonic()
                response = client.get(url, params=params)
                answers.append(Answer(began, time.monotonic(), response.status_code, response.json()))

    def reraise_failed(futures: list[Future[None]]) -> None:
        for future in futures:
            if future.done():
                future.result()

    marks: dict[str, float] = {}

    def progress(phase: str, done: int, known: int, rate: float) -> None:
        marks.setdefault(phase, time.monotonic())

    with ThreadPoolExecutor(LOAD_THREADS, thread_name_prefix="query-load") as pool:
        futures = [pool.submit(load) for _ in range(LOAD_THREADS)]
        try:

            async def load_running() -> bool:
                reraise_failed(futures)
                return len(answers) >= 2 * LOAD_THREADS

            await async_wait_for(load_running, 30, 0.05, "the query load to run")
            result = await rebuild_index(
                index, services.resolved_nats_url, services.event_stream, progress=progress, keep_previous=1
            )

            async def answered_after_swap() -> bool:
                reraise_failed(futures)
                return any(a.began > marks["swapped"] for a in answers)

            await async_wait_for(answered_after_swap, 30, 0.05, "a query sent after the swap to be answered")
        finally:
            stop.set()
            for future in futures:
                await asyncio.wrap_future(future)  # a failed query fails the test here

    [live_after] = await index.live_indices()
    assert live_after == result.new_index != live_before
    assert len(answers) > 3 * LOAD_THREADS
    assert all(a.status == 200 for a in answers), [(a, a.body) for a in answers if a.status != 200][:3]
    expected = [h["asset_id"] for h in baseline["hits"]]
    wrong = [a for a in answers if [h["asset_id"] for h in a.body["hits"]] != expected]
    assert not wrong, [(a, a.body) for a in wrong[:3]]
    # The load really ran across the alias swap: a query sent after the swap
    # began was still in flight when it ended (the window is ~0.2 s, a query ~15 ms).
    swap_began, swap_ended = marks["swap"], marks["swapped"]
    across = [a for a in answers if swap_began <= a.began <= swap_ended < a.ended]
    assert across, (
        f"no query ran during the swap ({swap_began:.3f}–{swap_ended:.3f}); nearest: "
        f"{sorted(answers, key=lambda a: abs(a.began - swap_ended))[:3]}"
    )

    # The rebuilt index holds what the live one held (the previous index is kept for rollback).
    assert result.previous == [live_before]
    old = await es.search(index=live_before, query={"match_all": {}}, size=10_000, version=True)
    new_docs = await index.writing_to(live_after).mget(h["_id"] for h in old["hits"]["hits"])
    for hit in old["hits"]["hits"]:
        doc, version = new_docs[hit["_id"]]
        if version == hit["_version"]:  # later events may have reached only the new index
            assert doc == hit["_source"], hit["_id"]
        else:
            assert version > hit["_version"]
    assert all(i in new_docs for i in ids)
