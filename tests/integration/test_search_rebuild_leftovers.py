"""A rebuild killed before its swap (SIGKILL: no ``finally`` runs) leaves its unfinished
index behind; the next rebuild deletes it, and the index it swaps in is complete and
carries the live settings again (refresh, replicas)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest
from elasticsearch import AsyncElasticsearch

from deploy.local.stack import settings_env
from services.search.index import AssetIndex
from services.search.rebuild import rebuild_index
from services.search.rebuild_lease import REBUILD_KEY, lease_bucket, read_lease
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import async_wait_for
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration
UPLOADS = 500


async def test_a_rebuild_killed_before_its_swap_leaves_an_index_the_next_rebuild_deletes(
    es: AsyncElasticsearch, quiet_nats: Settings, quiet_event_store: EventStore
) -> None:
    tag = uuid.uuid4().hex[:8]
    limit = asyncio.Semaphore(64)

    async def upload(i: int) -> None:
        event = ingested(
            f"kill{tag}{i:05d}",
            f"Kỳ họp thứ {i} {tag}",
            recorded_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i),
        )
        async with limit:
            await quiet_event_store.append(event)

    await asyncio.gather(*(upload(i) for i in range(UPLOADS)))
    prefix = f"mamtest-kill-{tag}"
    index = AssetIndex(es, prefix)
    await index.ensure()
    [live] = await index.live_indices()
    # Writes to the new index are refused for a passing reason (a write block, from a template
    # that wins over the project's), so the rebuild is surely retrying them when it is killed.
    hold = f"{prefix}-hold"
    await es.indices.put_index_template(
        name=hold,
        index_patterns=[f"{index.alias}-2*"],
        priority=200,
        template={"settings": {"index.blocks.write": True}},
    )
    env = {**os.environ, **settings_env(quiet_nats.model_copy(update={"es_index_prefix": prefix}))}
    rebuilding = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.cli", "rebuild-index", env=env, stdout=subprocess.DEVNULL
    )
    try:

        async def writing() -> bool:
            assert rebuilding.returncode is None, "the rebuild ended before it was killed"
            return bool(await index.unfinished_indices())

        await async_wait_for(writing, within=120, interval=0.05, what="the rebuild to create its new index")
        await asyncio.sleep(1.0)  # folded, and retrying its refused writes
        assert rebuilding.returncode is None
    finally:
        rebuilding.send_signal(signal.SIGKILL)
        await asyncio.wait_for(rebuilding.wait(), 30)
    try:
        [left] = await index.unfinished_indices()
        assert left in await index.all_indices() and left != live
        assert await index.live_indices() == [live]  # the killed rebuild never swapped

        # The next rebuild deletes it before building its own (not only once it has swapped).
        again = asyncio.create_task(
            rebuild_index(index, quiet_nats.resolved_nats_url, quiet_nats.event_stream, keep_previous=1)
        )

        async def building_anew() -> bool:
            assert not again.done() or again.result() is None
            return any(i != left for i in await index.unfinished_indices())

        await async_wait_for(building_anew, within=60, interval=0.05, what="the next rebuild to create its index")
        [building] = await index.unfinished_indices()
        assert left not in await index.all_indices()
        await es.indices.delete_index_template(name=hold)
        await es.indices.put_settings(index=building, settings={"index.blocks.write": False})
        result = await again
        assert result.new_index == building
        remaining = await index.all_indices()
        assert sorted(remaining) == sorted([live, result.new_index])
        assert await index.unfinished_indices() == []
        assert await index.live_indices() == [result.new_index]
        await es.indices.refresh(index=result.new_index)
        ours = await es.count(index=result.new_index, query={"prefix": {"asset_id": f"kill{tag}"}})
        assert ours["count"] == UPLOADS
        live_settings = (await es.indices.get_settings(index=result.new_index))[result.new_index]["settings"]["index"]
        assert live_settings["refresh_interval"] == "1s" and live_settings["auto_expand_replicas"] == "0-1"
        assert live_settings["blocks"]["write"] == "false"
    finally:
        await es.options(ignore_status=404).indices.delete_index_template(name=hold)
        await index.delete_indices(await index.all_indices())


async def test_the_cli_rebuild_takes_the_admin_pages_lease_and_is_refused_while_another_runs(
    es: AsyncElasticsearch, quiet_nats: Settings
) -> None:
    """Two rebuilds at once would delete each other's unfinished index: ``mam rebuild-index``
    takes the lease a rebuild started from the admin page holds, and records its result there."""
    prefix = f"mamtest-lease-{uuid.uuid4().hex[:8]}"
    index = AssetIndex(es, prefix)
    env = {**os.environ, **settings_env(quiet_nats.model_copy(update={"es_index_prefix": prefix}))}
    nc = await nats.connect(quiet_nats.resolved_nats_url)
    kv = await lease_bucket(nc.jetstream())
    try:
        held = {"rebuild_id": "page", "state": "running", "heartbeat": time.time(), "started_by": "quan-tri"}
        await kv.put(REBUILD_KEY, json.dumps(held).encode())
        refused = await _cli_rebuild(env)
        assert refused.returncode == 2, refused.stderr
        assert "Đang dựng lại chỉ mục" in refused.stderr and "already running" in refused.stderr
        assert await index.all_indices() == []  # it built nothing

        await kv.delete(REBUILD_KEY)  # the page's rebuild ended
        done = await _cli_rebuild(env)
        assert done.returncode == 0, done.stderr
        record, _ = await read_lease(kv)
        assert record is not None and record["state"] == "done" and record["started_by"].startswith("cli:")
        assert await index.live_indices() == [record["new_index"]]
    finally:
        await kv.delete(REBUILD_KEY)
        await nc.close()
        await index.delete_indices(await index.all_indices())


async def _cli_rebuild(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.cli",
        "rebuild-index",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 300)
    return subprocess.CompletedProcess([], process.returncode or 0, out.decode(), err.decode())
