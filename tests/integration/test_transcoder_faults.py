"""Crashes and replicas: kill -9 mid-encode, and two workers on one durable."""

from __future__ import annotations

import dataclasses
import itertools
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
from tests.integration.test_transcoder_pipeline import fetch, payloads, upload, wait_final
from tests.processes import alive, children
from tests.transcoder_media import ffprobe, make_clip, make_photo

pytestmark = pytest.mark.integration


def argv_of(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def proxy_encode(service_pid: int, asset_id: str) -> tuple[int, Path] | None:
    """The service's ffmpeg child writing ``asset_id``'s proxy, and its output file, if one runs."""
    for child in children(service_pid):
        argv = argv_of(child)
        if not argv or Path(argv[0]).name != "ffmpeg":
            continue
        outputs = [a for prev, a in itertools.pairwise(argv) if prev != "-i" and a.startswith("file:")]
        for out in outputs:
            path = Path(out.removeprefix("file:"))
            if path.name == "proxy.mp4" and path.parent.parent.name.startswith(asset_id):
                return child, path
    return None


def top_level_boxes(path: Path) -> list[str]:
    """Types of an MP4's top-level boxes, up to one that runs to (or past) the end."""
    data = path.read_bytes()
    types, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        types.append(data[offset + 4 : offset + 8].decode("latin-1"))
        if size == 1 and offset + 16 <= len(data):
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        if size < 8:  # 0: to the end of the file (the mdat of an unfinished write)
            break
        offset += size
    return types


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
    assert pid is not None and os.getpgid(pid) == pid  # the launcher's process group
    await transcoder_idle(event_store)
    # Long enough at 720p that the proxy encode runs for seconds.
    clip = make_clip(tmp_path / "long.mp4", unique, seconds=12.0, size="1280x720", black_lead_s=0.0)
    response = upload(http, services, "long.mp4", clip.read_bytes(), "video/mp4")
    assert response.status_code == 201, response.text
    asset_id = response.json()["asset_id"]

    # Mid-encode: the ffmpeg writing this asset's proxy runs and has written part of it.
    def encoding() -> tuple[int, Path] | None:
        found = proxy_encode(pid, asset_id)
        if found and alive(found[0]) and found[1].exists() and found[1].stat().st_size > 0:
            return found
        return None

    encoder, partial_proxy = wait_for(encoding, 60, 0.05, f"the proxy encode of {asset_id} to be under way")
    os.killpg(pid, signal.SIGKILL)  # the service's whole process group, as a crash or the OOM killer would
    wait_for(lambda: not alive(pid), 10, 0.05, "the transcoder to die")
    # ffmpeg (in its own group) dies with its parent instead of encoding on as an orphan.
    wait_for(lambda: not alive(encoder), 10, 0.05, "the orphaned proxy encode to die")
    # Cut short: the index (moov) a finished encode writes never came (an orphan would have finished it).
    assert "moov" not in top_level_boxes(partial_proxy), top_level_boxes(partial_proxy)
    assert not payloads(await event_store.history("asset", asset_id), "asset.renditions_ready")

    log_offset = spec.log_file.stat().st_size
    start(spec)  # a fresh process; the job is redelivered after the ack wait
    assert running_pid(spec) not in (None, pid)
    await wait_final(event_store, asset_id, within=120)
    # Count once the system has settled: nothing left queued or unacknowledged
    # for the transcoder, so a late duplicate would already be in the history.
    await transcoder_idle(event_store, within=120)
    history = await event_store.history("asset", asset_id)
    types = [e.envelope.type for e in history]
    assert types.count("asset.renditions_ready") == 1, types
    assert types.count("asset.probed") == 1, types
    assert types.count("asset.processing_failed") == 0, types
    # The redelivered job, not the killed one, made the renditions.
    restarted_log = spec.log_file.read_bytes()[log_offset:].decode(errors="replace")
    assert f"{asset_id} attempt 2 → ready" in restarted_log, restarted_log[-2000:]
    assert not partial_proxy.exists()  # the crashed job's folder is cleared at start

    keys = await object_store_for(services, "minio").list_keys(services.bucket_renditions, f"{asset_id}/")
    assert sorted(keys) == sorted(
        f"{asset_id}/v1/{n}" for n in ("proxy.mp4", "poster.jpg", "storyboard.jpg", "storyboard.vtt")
    )
    # The stored proxy is the whole encode, not the half the killed ffmpeg wrote.
    [ready] = payloads(history, "asset.renditions_ready")
    [proxy] = [r for r in ready.renditions if r.name.value == "proxy"]
    stored = await fetch(services, proxy.key, tmp_path / "proxy.mp4")
    assert stored.stat().st_size == proxy.size_bytes
    assert top_level_boxes(stored)[:2] == ["ftyp", "moov"]  # faststart: the index first
    assert float(ffprobe(stored)["format"]["duration"]) == pytest.approx(12.0, abs=0.2)


async def test_a_second_replica_shares_the_work_without_duplicates(
    services: Settings, event_store: EventStore, http: httpx.Client, unique: str
) -> None:
    # +50: +100 is the transcoder port of the test stack at the next offset.
    replica_settings = conftest.test_settings(transcoder_port=services.transcoder_port + 50)
    base = LocalStack(replica_settings).service_spec("transcoder")
    replica = dataclasses.replace(base, name="transcoder-replica2")
    replica.log_file.unlink(missing_ok=True)
    conftest.start_own(replica)
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
