"""KV buckets on the cluster live on as many NATS servers as the event stream (``nats_replicas``),
also one a service makes long after ``mam up --cluster`` scaled what existed then."""

from __future__ import annotations

import contextlib
import uuid

import httpx
import nats
import pytest
from nats.errors import NoRespondersError
from nats.js import api
from nats.js.errors import NoStreamResponseError, NotFoundError

from deploy.local.cluster import STREAM_REPLICAS, ClusterStack
from services.search.collections import EXPORTS_KV
from shared.kv import open_bucket
from shared.settings import Settings
from tests.conftest import ARCHIVIST, async_wait_for, run, wait_for

pytestmark = pytest.mark.integration


async def replicas_of(settings: Settings, bucket: str) -> int:
    nc = await nats.connect(settings.nats_servers, connect_timeout=5)
    try:
        info = await nc.jetstream().stream_info(f"KV_{bucket}")
        return int(info.config.num_replicas or 1)
    finally:
        await nc.close()


async def on_one_server(settings: Settings, bucket: str) -> set[str] | None:
    """Put ``bucket`` back on one server, as a cluster of one (or an older release) made it, its
    entries kept for whoever relies on them (exports under way); the keys it holds. A bucket
    not made yet stays missing (None): the service then creates it."""
    nc = await nats.connect(settings.nats_servers, connect_timeout=5)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(f"KV_{bucket}")
        except NotFoundError:
            return None
        await js.update_stream(info.config.evolve(num_replicas=1))
    finally:
        await nc.close()
    return await keys_of(settings, bucket)


async def keys_of(settings: Settings, bucket: str) -> set[str]:
    """The keys ``bucket`` holds, as the server counts its subjects (nats-py's ``keys()`` reads
    them through a watcher, which answered "none" once right after a scale-up)."""
    nc = await nats.connect(settings.nats_servers, connect_timeout=5)
    try:
        info = await nc.jetstream().stream_info(f"KV_{bucket}", subjects_filter=">")
        prefix = f"$KV.{bucket}."
        return {subject.removeprefix(prefix) for subject in info.state.subjects or {}}
    finally:
        await nc.close()


def test_the_export_bucket_the_search_service_opens_after_the_cluster_is_up_is_on_three_servers(
    cluster: ClusterStack,
) -> None:
    s = cluster.settings
    assert s.nats_replicas == STREAM_REPLICAS == 3
    # Opened by an export request, in the service, well after `up` scaled what existed: on one
    # server now (or not made yet), with whatever exports it records kept.
    held = run(on_one_server(s, EXPORTS_KV))
    if held is not None:
        assert run(replicas_of(s, EXPORTS_KV)) == 1
    with httpx.Client(timeout=30.0) as http:
        made = http.post(
            f"{s.catalogue_url}/v1/collections", headers=ARCHIVIST, json={"kind": "other", "title": "Tư liệu tiêu biểu"}
        )
        assert made.status_code == 201, made.text
        cid = made.json()["collection_id"]
        started = http.post(f"{s.search_url}/v1/collections/{cid}/exports", headers=ARCHIVIST, json={"media": "web"})
        assert started.status_code == 202, started.text
    assert run(replicas_of(s, EXPORTS_KV)) == 3
    assert (held or set()) <= run(keys_of(s, EXPORTS_KV))


def test_a_bucket_made_on_one_server_is_scaled_to_the_configured_replicas_when_a_service_opens_it(
    cluster: ClusterStack,
) -> None:
    s = cluster.settings
    name = f"mam_test_scale_{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[int, int, bytes | None]:
        nc = await nats.connect(s.nats_servers, connect_timeout=5)
        js = nc.jetstream()
        try:
            # As a process of the single-node profile (or an older release) would have made it.
            one = await js.create_key_value(api.KeyValueConfig(bucket=name, history=1, replicas=1))

            async def first_put() -> bool:
                # Right after an earlier test's leader kill, a new stream's first write may find
                # no responder for a moment (its server not yet current): asked again, not lost.
                try:
                    await one.put("giu-nguyen", b"gia tri truoc khi nhan rong")
                except (NoRespondersError, NoStreamResponseError):
                    return False
                return True

            await async_wait_for(first_put, 30, 0.5, "the new bucket to take its first write")
            before = await replicas_of(s, name)
            opened = await open_bucket(js, name, "test bucket", replicas=s.nats_replicas)
            after = await replicas_of(s, name)
            kept = (await opened.get("giu-nguyen")).value  # scaling keeps what the bucket held
            return before, after, kept
        finally:
            # Deleted whatever happened: a bucket left on one server fails the next test's check.
            with contextlib.suppress(NotFoundError):
                await js.delete_key_value(name)
            await nc.close()

    before, after, kept = run(scenario())
    assert (before, after) == (1, 3)
    assert kept == b"gia tri truoc khi nhan rong"


def test_every_kv_bucket_of_the_running_cluster_is_on_three_servers(cluster: ClusterStack) -> None:
    s = cluster.settings

    async def kv_replicas() -> dict[str, int]:
        nc = await nats.connect(s.nats_servers, connect_timeout=5)
        try:
            infos = await nc.jetstream().streams_info()
            return {
                str(i.config.name): int(i.config.num_replicas or 1)
                for i in infos
                if str(i.config.name).startswith("KV_")
            }
        finally:
            await nc.close()

    buckets = wait_for(lambda: run(kv_replicas()) or None, timeout=30, what="the services' KV buckets")
    assert buckets and set(buckets.values()) == {3}, buckets
