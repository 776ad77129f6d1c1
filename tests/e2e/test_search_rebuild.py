"""`mam rebuild-index` while the search API is under query load: every query is
answered, with the same results, and the rebuilt index equals the live one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch

from deploy.local.stack import settings_env
from services.search.index import AssetIndex
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import AUTH, REPO
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration


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
    answers: list[tuple[int, Any]] = []

    def load() -> None:
        with httpx.Client(headers=AUTH, timeout=30) as client:
            while not stop.is_set():
                response = client.get(url, params=params)
                answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        env = {**os.environ, **settings_env(services), "PYTHONPATH": str(REPO)}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "deploy.cli", "rebuild-index"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Xong / done" in done.stdout

    [live_after] = await index.live_indices()
    assert live_after != live_before
    assert len(answers) > 3
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    expected = [h["asset_id"] for h in baseline["hits"]]
    assert all([h["asset_id"] for h in body["hits"]] == expected for _, body in answers)

    # The rebuilt index holds what the live one held (the previous index is kept for rollback).
    old = await es.search(index=live_before, query={"match_all": {}}, size=10_000, version=True)
    new_docs = await index.writing_to(live_after).mget(h["_id"] for h in old["hits"]["hits"])
    for hit in old["hits"]["hits"]:
        doc, version = new_docs[hit["_id"]]
        if version == hit["_version"]:  # later events may have reached only the new index
            assert doc == hit["_source"], hit["_id"]
        else:
            assert version > hit["_version"]
    assert all(i in new_docs for i in ids)
