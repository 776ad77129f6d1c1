"""The processing queue against the real stack: a failed transcode is listed with its reason,
an archivist retries it (a file that cannot be read fails again, cleanly; a transient fault
succeeds), each retry gets exactly one new outcome counted after the system settled; and the
index rebuild started through the API, one at a time."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from services.search.rebuild_lease import REBUILD_KEY, REBUILD_KV
from services.transcoder.app import RETRY_DURABLE, TRANSCODER_DURABLE
from shared.events.envelope import new_event
from shared.events.models import AssetIngestedV1, AssetKind
from shared.eventstore import EventStore, StoredEvent
from shared.ids import asset_id_for_sha256
from shared.kv import open_bucket
from shared.objectstore import content_key
from shared.settings import Settings
from tests.conftest import ADMIN, ARCHIVIST, AUTH, async_wait_for, consumer_settled, object_store_for
from tests.integration.test_transcoder_pipeline import payloads, wait_final
from tests.transcoder_media import make_clip

pytestmark = pytest.mark.integration


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


async def announce(settings: Settings, events: EventStore, data: bytes, *, store: bool) -> tuple[str, str]:
    """An ``asset.ingested`` for ``data`` (stored as its original only if ``store``), bypassing
    ingest's checks, which refuse a file it cannot read; returns (asset id, object key)."""
    sha = hashlib.sha256(data).hexdigest()
    key = content_key(sha)
    if store:
        await put_original(settings, key, data)
    asset_id = asset_id_for_sha256(sha)
    payload = AssetIngestedV1(
        sha256=sha,
        size_bytes=max(1, len(data)),
        kind=AssetKind.VIDEO,
        media_format="mov",
        mime_type="video/mp4",
        bucket=settings.bucket_originals,
        object_key=key,
        original_filename="ky-hop.mp4",
        title="Kỳ họp thứ Bảy HĐND tỉnh — hàng đợi xử lý",
        activity_type="ky-hop",
    )
    await events.append(new_event(payload, aggregate_id=asset_id, actor="test-queue"))
    return asset_id, key


async def put_original(settings: Settings, key: str, data: bytes) -> None:
    local = Path(os.environ.get("TMPDIR", "/tmp")) / f"queue-{hashlib.sha256(data).hexdigest()}"
    local.write_bytes(data)
    try:
        await object_store_for(settings, "minio").put_file(settings.bucket_originals, key, local, "video/mp4")
    finally:
        local.unlink()


async def queue(http: httpx.AsyncClient, settings: Settings, **params: Any) -> dict[str, Any]:
    response = await http.get(f"{settings.search_url}/v1/processing", headers=ARCHIVIST, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(
    http: httpx.AsyncClient, settings: Settings, asset_id: str, state: str, want: str, retries: int = 0
) -> dict[str, Any]:
    """The asset's row in the queue's ``state`` page once its transcoding shows ``want``
    after ``retries`` retries (the projection follows the log)."""

    async def row() -> dict[str, Any] | None:
        for item in (await queue(http, settings, state=state, size=100))["items"]:
            transcoding = item["transcoding"]
            if item["asset_id"] == asset_id and transcoding["status"] == want and transcoding["retries"] == retries:
                return dict(item)
        return None

    found: dict[str, Any] = await async_wait_for(row, 60, 0.5, f"{asset_id} listed as {want} under {state}")
    return found


async def retry(
    http: httpx.AsyncClient, settings: Settings, asset_id: str, headers: dict[str, str] = ARCHIVIST
) -> httpx.Response:
    return await http.post(
        f"{settings.catalogue_url}/v1/assets/{asset_id}/processing/retry", headers=headers, json={"note": "thử lại"}
    )


async def outcomes_after(events: EventStore, asset_id: str, count: int) -> list[StoredEvent]:
    """The history once ``count`` outcomes (renditions or failures) are recorded."""

    async def done() -> list[StoredEvent] | None:
        history = await events.history("asset", asset_id)
        final = [e for e in history if e.envelope.type in {"asset.renditions_ready", "asset.processing_failed"}]
        return history if len(final) >= count else None

    result: list[StoredEvent] = await async_wait_for(done, 120, 0.5, f"{count} outcomes for {asset_id}")
    return result


async def settled(settings: Settings) -> None:
    """Both transcoder durables have nothing queued or unacknowledged: a late duplicate would be in."""
    for durable in (TRANSCODER_DURABLE, RETRY_DURABLE):

        async def idle(name: str = durable) -> bool:
            return await consumer_settled(settings, name)

        await async_wait_for(idle, 120, 0.5, f"{durable} to settle")


async def test_an_unreadable_clip_is_listed_with_its_reason_and_a_retry_fails_again_cleanly_once(
    services: Settings, event_store: EventStore, api: httpx.AsyncClient, unique: str
) -> None:
    asset_id, _ = await announce(services, event_store, os.urandom(32 * 1024) + unique.encode(), store=True)
    [first] = payloads(await wait_final(event_store, asset_id), "asset.processing_failed")
    assert first.retryable is False

    row = await listed(api, services, asset_id, "failed", "failed")
    assert row["transcoding"]["error"]["reason"] == first.reason and first.reason  # Vietnamese, as the transcoder said
    assert row["transcoding"]["error"]["reason_en"] == first.reason_en and row["transcoding"]["retryable"] is True
    counts = (await queue(api, services))["counts"]
    assert counts["transcode_failed"] >= 1 and counts["failed"] >= counts["transcode_failed"]
    # Broadcasters do not see the queue and may not retry.
    assert (await api.get(f"{services.search_url}/v1/processing", headers=AUTH)).status_code == 403
    assert (await retry(api, services, asset_id, AUTH)).status_code == 403

    response = await retry(api, services, asset_id)
    assert response.status_code == 202, response.text
    retry_event_id = response.json()["retry_event_id"]
    # One request at a time: refused while the first has no outcome (unless the transcoder
    # already recorded it, which a fast machine may do within the round trip).
    again = await retry(api, services, asset_id)
    assert again.status_code in (202, 409), again.text
    retries = [retry_event_id] + ([again.json()["retry_event_id"]] if again.status_code == 202 else [])
    if again.status_code == 409:
        assert again.json()["error"]["code"] == "processing_in_progress" and again.json()["error"]["message"]

    await outcomes_after(event_store, asset_id, 1 + len(retries))
    await settled(services)
    history = await event_store.history("asset", asset_id)
    failures = [e.envelope for e in history if e.envelope.type == "asset.processing_failed"]
    # Exactly one new outcome per retry, each caused by its request: no duplicate, no success.
    assert [f.causation_id for f in failures[1:]] == retries
    assert not payloads(history, "asset.renditions_ready")
    assert len(payloads(history, "asset.processing_retry_requested")) == len(retries)
    row = await listed(api, services, asset_id, "transcode_failed", "failed", retries=len(retries))
    assert row["transcoding"]["error"]["code"] == failures[-1].payload["code"]


async def test_a_transient_failure_succeeds_on_retry_with_exactly_one_set_of_renditions(
    services: Settings, event_store: EventStore, api: httpx.AsyncClient, unique: str, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", unique, seconds=2.0).read_bytes()
    # The original is not in storage yet (a storage fault): the transcoder retries, then gives up.
    asset_id, key = await announce(services, event_store, clip, store=False)
    [failed] = payloads(await wait_final(event_store, asset_id, within=180), "asset.processing_failed")
    assert failed.code == "original_missing" and failed.retryable is True
    await listed(api, services, asset_id, "failed", "failed")

    await put_original(services, key, clip)  # storage is back
    began = time.monotonic()
    response = await retry(api, services, asset_id)
    assert response.status_code == 202, response.text
    history = await outcomes_after(event_store, asset_id, 2)
    print(f"retry → renditions in {time.monotonic() - began:.1f}s")
    await settled(services)
    history = await event_store.history("asset", asset_id)
    [ready] = [e.envelope for e in history if e.envelope.type == "asset.renditions_ready"]
    assert ready.causation_id == response.json()["retry_event_id"]
    assert len(payloads(history, "asset.processing_failed")) == 1
    assert len(payloads(history, "asset.probed")) == 1  # the facts recorded once

    # Out of the failed list; a retry of a processed asset is refused.
    async def gone() -> bool:
        return all(
            i["asset_id"] != asset_id for i in (await queue(api, services, state="transcode_failed", size=100))["items"]
        )

    await async_wait_for(gone, 60, 0.5, f"{asset_id} to leave the failed list")
    refused = await retry(api, services, asset_id)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "processing_not_failed"
    assert refused.json()["error"]["message"] and refused.json()["error"]["message_en"]


def test_the_queue_refuses_bad_paging_and_states_with_a_bilingual_422(services: Settings, http: httpx.Client) -> None:
    for params in ({"page": 0}, {"size": 1000}, {"state": "xoá"}, {"page": 9999, "size": 100}, {"kind": "x"}):
        response = http.get(f"{services.search_url}/v1/processing", headers=ARCHIVIST, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["message"] and response.json()["error"]["message_en"]


async def test_a_rebuild_started_through_the_api_runs_once_at_a_time_and_reports_its_result(
    services: Settings, event_store: EventStore, api: httpx.AsyncClient, unique: str
) -> None:
    url = f"{services.search_url}/v1/projection/rebuild"
    # An asset of its own in the log, so the rebuild has something to fold on a fresh stack too.
    asset_id, _ = await announce(services, event_store, os.urandom(1024) + unique.encode(), store=True)
    assert (await api.post(url, headers=ARCHIVIST)).status_code == 403  # admins only
    nc = await nats.connect(services.resolved_nats_url)
    try:
        kv = await open_bucket(nc.jetstream(), REBUILD_KV, "lease")
        # Another replica holds the lease and is alive: refused.
        held = {"rebuild_id": "other", "state": "running", "heartbeat": time.time(), "started_by": "x"}
        await kv.put(REBUILD_KEY, json.dumps(held).encode())
        busy = await api.post(url, headers=ADMIN)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "rebuild_running", busy.text
        assert busy.json()["error"]["message"].startswith("Đang dựng lại")
        # That replica died (its heartbeat stopped): shown as interrupted, and taken over.
        await kv.put(REBUILD_KEY, json.dumps({**held, "heartbeat": time.time() - 600}).encode())
        assert (await api.get(url, headers=ADMIN)).json()["state"] == "interrupted"
        started = await api.post(url, headers=ADMIN)
        assert started.status_code == 202, started.text
        rebuild_id = started.json()["rebuild_id"]
    finally:
        await nc.close()

    async def finished() -> dict[str, Any] | None:
        status: dict[str, Any] = (await api.get(url, headers=ADMIN)).json()
        return status if status["state"] in {"done", "failed"} else None

    status = await async_wait_for(finished, 180, 0.5, "the rebuild to finish")
    assert status["rebuild_id"] == rebuild_id and status["state"] == "done", status
    assert status["events_done"] > 0 and status["finished_at"]
    live = (await api.get(f"{services.search_url}/v1/projection", headers=ADMIN)).json()["indices"]
    assert live == [status["new_index"]]
    rebuilt = await api.get(f"{services.es_hosts[0]}/{status['new_index']}/_doc/{asset_id}")
    assert rebuilt.status_code == 200 and rebuilt.json()["_source"]["title"], rebuilt.text
    assert (await queue(api, services))["total"] >= 0  # the queue reads the new index
