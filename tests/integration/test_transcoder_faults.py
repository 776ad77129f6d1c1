"""Crashes and replicas: kill -9 mid-encode, and two workers on one durable."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import httpx
import pytest

from deploy.local.processes import running_pid, start, stop
from deploy.local.stack import LocalStack
from services.transcoder.app import TRANSCODER_DURABLE
from shared.eventstore import EventStore
from shared.settings import Settings
from tests import conftest
from tests.conftest import async_wait_for, object_store_for, wait_for
from tests.integration.test_transcoder_pipeline import payloads, upload, wait_final
from tests.transcoder_media import make_clip, make_photo

pytestmark = pytest.mark.integration


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def transcoder_idle(event_store: EventStore, within: float = 240.0) -> None:
    """Wait until the transcoder's durable has nothing queued or in flight.

    Other tests in the same run publish asset events (some for originals that do
    not exist, which the transcoder retries with backoff); a fault test must not
    mistake that backlog for slowness of its own job.
    """

    async def idle() -> bool:
        info = await event_store._js.consumer_info(event_store.stream, TRANSCODER_DURABLE)
        return info.num_pending == 0 and info.num_ack_pending == 0

    await async_wait_for(idle, within, 0.5, "the transcoder's backlog to drain")


async def test_a_worker_killed_mid_encode_leaves_exactly_one_set_of_renditions_and_one_event(
    services: Settings,
    stack: LocalStack,
    event_store: EventStore,
    http: httpx.Client,
    unique: str,
    tmp_path: Path,
) -> None:
    spec = stack.service_spec("transcoder")
    pid = running_pid(spec)
    assert pid is not None
    await transcoder_idle(event_store)
    # Long enough at 720p that the encode is surely running when we kill.
    clip = make_clip(tmp_path / "long.mp4", unique, seconds=12.0, size="1280x720", black_lead_s=0.0)
    response = upload(http, services, "long.mp4", clip.read_bytes(), "video/mp4")
    assert response.status_code == 201, response.text
    asset_id = response.json()["asset_id"]

    encoders = wait_for(lambda: children(pid), 30, 0.05, "ffmpeg started by the transcoder")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), 10, 0.05, "the transcoder to die")
    # ffmpeg dies with its parent instead of encoding on as an orphan.
    wait_for(lambda: not any(alive(c) for c in encoders), 10, 0.05, "orphaned ffmpeg to die")
    start(spec)  # a fresh process; the job is redelivered after the ack wait

    history = await wait_final(event_store, asset_id, within=90)
    assert [e.envelope.type for e in history].count("asset.renditions_ready") == 1
    assert [e.envelope.type for e in history].count("asset.probed") == 1
    assert not payloads(history, "asset.processing_failed")
    keys = await object_store_for(services, "minio").list_keys(services.bucket_renditions, f"{asset_id}/")
    assert sorted(keys) == sorted(
        f"{asset_id}/v1/{n}" for n in ("proxy.mp4", "poster.jpg", "storyboard.jpg", "storyboard.vtt")
    )


async def test_a_second_replica_shares_the_work_without_duplicates(
    services: Settings, event_store: EventStore, http: httpx.Client, unique: str
) -> None:
    replica_settings = conftest.test_settings(transcoder_port=services.transcoder_port + 100)
    base = LocalStack(replica_settings).service_spec("transcoder")
    replica = dataclasses.replace(base, name="transcoder-replica2")
    replica.log_file.unlink(missing_ok=True)
    start(replica)
    try:
        await transcoder_idle(event_store)
        ids = []
        for i in range(6):
            response = upload(http, services, f"p{i}.jpg", make_photo(f"{unique}-{i}", size=(2400, 1600)), "image/jpeg")
            assert response.status_code == 201, response.text
            ids.append(response.json()["asset_id"])
        for asset_id in ids:
            history = await wait_final(event_store, asset_id, within=60)
            types = [e.envelope.type for e in history]
            assert types.count("asset.renditions_ready") == 1 and types.count("asset.probed") == 1
        log = replica.log_file.read_text(errors="replace")
        assert any(f"{a} attempt" in log for a in ids), "the second replica took no job"
    finally:
        stop(replica)
