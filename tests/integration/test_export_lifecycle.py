"""Collection exports after their replica died, and after they are old: a search service of its own
on the quiet NATS sweeps the export statuses in NATS KV and the ZIPs in S3.

The statuses are written the way ``start_export``/``run_export`` write them, and the half-written
ZIP is a real unfinished S3 multipart upload: what a replica killed mid-export leaves behind.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from deploy.local.processes import ProcessSpec, start, stop
from deploy.local.stack import LocalStack
from services.search.collections import EXPORTS_KV
from services.search.export_sweeper import export_key, runner_id
from shared.kv import open_bucket
from shared.objectstore import ObjectStore
from shared.settings import Settings
from tests.conftest import PRODUCER, object_store_for, run, wait_for

pytestmark = pytest.mark.integration

PORT_SHIFT = 44  # beside the collections pair's +40; no other service of the suite is there
STALE_S = 6.0
EXPIRY_S = 8.0


@pytest.fixture(scope="module")
def sweeping_search(stack: LocalStack, quiet_nats: Settings) -> Iterator[tuple[Settings, ProcessSpec]]:
    """(settings, spec) of an API-only search service, not started yet: the test starts it."""
    s = quiet_nats.model_copy(
        update={
            "search_port": quiet_nats.search_port + PORT_SHIFT,
            "search_run_projector": False,
            "es_index_prefix": f"mamexp{uuid.uuid4().hex[:6]}",
            "home": stack.home / "exports-sweep",
            "bucket_exports": "mam-exports-sweep",
            "export_stale_after_s": STALE_S,
            "export_expiry_s": EXPIRY_S,
            "export_sweep_interval_s": 0.5,
        }
    )
    spec = LocalStack(s).service_spec("search")
    yield s, spec
    stop(spec)


def status_of(export_id: str, collection_id: str, state: str, runner: str, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "export_id": export_id,
        "collection_id": collection_id,
        "media": "web",
        "requested_by": "bien-tap",  # PRODUCER's subject
        "requested_at": now,
        "runner": runner,
        "state": state,
        "stage": state,
        "total": 3,
        "done": 1,
        "bytes_written": 0,
        "updated_at": now,
        **extra,
    }


async def _put_statuses(s: Settings, statuses: list[dict[str, Any]]) -> None:
    import nats

    nc = await nats.connect(s.resolved_nats_url)
    try:
        kv = await open_bucket(nc.jetstream(), EXPORTS_KV, "test", replicas=s.nats_replicas)
        for status in statuses:
            await kv.put(status["export_id"], json.dumps(status).encode())
    finally:
        await nc.close()


async def _multipart_keys(store: ObjectStore, bucket: str) -> list[str]:
    return [u.key for u in await store.list_multipart(bucket, "collections/")]


def test_exports_left_running_by_a_killed_replica_are_failed_with_a_reason_and_finished_ones_expire(
    sweeping_search: tuple[Settings, ProcessSpec],
) -> None:
    s, spec = sweeping_search
    store = object_store_for(s, "minio")
    bucket = s.bucket_exports
    run(store.ensure_buckets(bucket))
    cid = "c" + uuid.uuid4().hex
    mine, elsewhere, done = ("x" + uuid.uuid4().hex for _ in range(3))
    # This replica's own export, cut mid-upload by a kill: a running status and an unfinished ZIP.
    run(store.create_multipart(bucket, export_key(cid, mine), "application/zip"))
    # A finished export with its ZIP.
    run(store.put_bytes(bucket, export_key(cid, done), b"PK\x05\x06" + bytes(18), "application/zip"))
    run(
        _put_statuses(
            s,
            [
                status_of(mine, cid, "running", runner_id(s)),
                status_of(elsewhere, cid, "running", "another-host:18402"),
                status_of(done, cid, "ready", runner_id(s), bucket=bucket, key=export_key(cid, done)),
            ],
        )
    )
    start(spec)  # the replica "restarts"
    url = f"{s.search_url}/v1/collections/{cid}/exports"

    def state(export_id: str) -> dict[str, Any]:
        response = httpx.get(f"{url}/{export_id}", headers=PRODUCER, timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())

    failed = wait_for(lambda: (e := state(mine))["state"] == "failed" and e, 30, 0.3, "its own export to be failed")
    assert "khởi động lại" in failed["error"] and "restart" in failed["error_en"], failed
    assert export_key(cid, mine) not in run(_multipart_keys(store, bucket))  # no half-written ZIP left
    # Another replica's export is failed only once it has been silent longer than the stale limit.
    other = wait_for(
        lambda: (e := state(elsewhere))["state"] == "failed" and e, STALE_S + 30, 0.3, "the silent export to fail"
    )
    assert other["error"] and other["error_en"]
    assert (
        datetime.fromisoformat(other["failed_at"]) - datetime.fromisoformat(other["requested_at"])
    ).total_seconds() >= STALE_S
    # The finished one expires: its ZIP is deleted and no link is handed out any more.
    expired = wait_for(
        lambda: (e := state(done))["state"] == "expired" and e, EXPIRY_S + 30, 0.3, "the finished export to expire"
    )
    assert "url" not in expired and expired["message"] and expired["message_en"]
    assert run(store.stat(bucket, export_key(cid, done))) is None
