"""Rendering through the reels service against the real stack: event in → reel.rendered,
the output stored whole and playable, progress, one job per running render, and a
kill -9 of the renderer mid-render."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.processes import running_pid, start
from deploy.local.stack import LocalStack
from services.reels.app import RENDERER_DURABLE
from shared.events.reels import ReelRenderedV1
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import PRODUCER, REPO, async_wait_for, consumer_settled, object_store_for, wait_for
from tests.integration.reels import TITLE, assets, create_reel, get_reel, put_items, reel_sources, request
from tests.processes import alive

pytestmark = pytest.mark.integration
__all__ = ["assets", "reel_sources"]  # the fixtures both reels test modules share (tests/integration/reels.py)


def three_items(assets: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"asset_id": assets["video"], "in_s": 0.5, "out_s": 2.5, "caption": "Khai mạc kỳ họp"},
        {"asset_id": assets["photo"], "in_s": 0, "out_s": 2, "caption": "'; drawtext=text=x %{pts}"},
        {"asset_id": assets["audio"], "in_s": 1, "out_s": 3, "caption": "Phát thanh"},
    ]


def ask_render(http: httpx.Client, s: Settings, reel_id: str) -> dict[str, Any]:
    response = request(http, "POST", f"{s.reels_url}/v1/reels/{reel_id}/render", headers=PRODUCER)
    assert response.status_code == 202, response.text
    return dict(response.json())


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-show_chapters", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def decodes_whole(path: Path) -> bool:
    """ffmpeg decodes every frame without an error (the file plays)."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, timeout=120, check=False
    )
    return result.returncode == 0 and not result.stderr.strip()


def mam_reel_render(reel_id: str, s: Settings) -> subprocess.CompletedProcess[str]:
    token = PRODUCER["Authorization"].removeprefix("Bearer ")
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", "reel", "render", reel_id, "--token", token, "--url", s.reels_url],
        capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
    )  # fmt: skip


async def rendered_events(events: EventStore, reel_id: str) -> list[ReelRenderedV1]:
    history = await events.history("reel", reel_id)
    found = [e.envelope.typed_payload() for e in history if e.envelope.type == "reel.rendered"]
    return [p for p in found if isinstance(p, ReelRenderedV1)]


async def settled(s: Settings) -> None:
    await async_wait_for(lambda: consumer_settled(s, RENDERER_DURABLE), 180, 0.5, "the renderer to settle")


async def test_a_render_request_ends_in_one_reel_rendered_with_a_playable_output_and_its_chapters(
    services: Settings, http: httpx.Client, assets: dict[str, str], event_store: EventStore, tmp_path: Path
) -> None:
    reel_id = create_reel(http, services, TITLE, subtitle="Kỳ họp thứ Bảy")["reel_id"]
    assert put_items(http, services, reel_id, three_items(assets)).status_code == 200
    first = ask_render(http, services, reel_id)
    again = ask_render(http, services, reel_id)
    assert again["job_id"] == first["job_id"]  # a second request while it runs: the same job
    assert again["status"] in ("queued", "rendering")

    seen: list[float] = []

    def done() -> dict[str, Any] | None:
        view = get_reel(http, services, reel_id)
        seen.append(view["progress"])
        return view if view["status"] in ("rendered", "failed") else None

    view = wait_for(done, 240, 0.1, f"reel {reel_id} to render")
    assert view["status"] == "rendered", view["error"]
    assert any(0 < p < 100 for p in seen), seen  # progress observed on the way
    assert seen == sorted(seen)  # and never backwards
    assert view["progress"] == 100 and view["job_id"] == first["job_id"]

    await settled(services)
    [rendered] = await rendered_events(event_store, reel_id)
    history = [e.envelope.type for e in await event_store.history("reel", reel_id)]
    assert history.count("reel.render_requested") == 1 and history.count("reel.render_started") == 1
    output = view["output"]
    assert output["segments_rendered"] + output["segments_cached"] == 4  # the title card and 3 segments
    assert output["integrated_lufs"] == pytest.approx(-23, abs=1.0) and output["true_peak_dbtp"] <= -1.0

    # Stored whole under the job's keys, reachable by the presigned URLs; it plays.
    keys = await object_store_for(services, "minio").list_keys(services.bucket_reels, f"{reel_id}/")
    assert sorted(keys) == sorted([rendered.output_key, rendered.chapters_key])
    mp4 = tmp_path / "reel.mp4"
    mp4.write_bytes(request(http, "GET", output["url"]).content)
    assert mp4.stat().st_size == rendered.size_bytes
    probe = ffprobe(mp4)
    assert float(probe["format"]["duration"]) == pytest.approx(rendered.duration_s, abs=0.1)
    assert len(probe["chapters"]) == len(rendered.chapters) == 4
    assert {s["codec_type"] for s in probe["streams"]} >= {"video", "audio"}
    assert decodes_whole(mp4)
    vtt = request(http, "GET", output["chapters_url"]).text
    assert vtt.startswith("WEBVTT") and "Khai mạc kỳ họp" in vtt


async def test_a_renderer_killed_mid_render_leaves_no_object_and_after_restart_exactly_one_reel_rendered(
    services: Settings,
    stack: LocalStack,
    http: httpx.Client,
    assets: dict[str, str],
    event_store: EventStore,
    tmp_path: Path,
) -> None:
    spec = stack.service_spec("reels")
    pid = running_pid(spec)
    assert pid is not None
    await settled(services)
    items = three_items(assets) * 2  # long enough to be caught mid-render
    items = [{**item, "caption": f"Đoạn {n}"} for n, item in enumerate(items)]  # uncached segments
    reel_id = create_reel(http, services, TITLE, profile="draft")["reel_id"]
    assert put_items(http, services, reel_id, items).status_code == 200
    job_id = ask_render(http, services, reel_id)["job_id"]

    def rendering() -> bool:
        view = get_reel(http, services, reel_id)
        return view["status"] == "rendering" and 10 < view["progress"] < 95

    wait_for(rendering, 120, 0.05, "the render to be under way")
    os.killpg(pid, signal.SIGKILL)  # the whole process group, as a crash or the OOM killer would
    wait_for(lambda: not alive(pid), 10, 0.05, "the reels service to die")
    store = object_store_for(services, "minio")
    assert await store.list_keys(services.bucket_reels, f"{reel_id}/") == []  # nothing partial visible
    assert await rendered_events(event_store, reel_id) == []

    began = time.monotonic()
    start(spec)  # a fresh process; the job is redelivered after the ack wait
    view = wait_for(
        lambda: (v := get_reel(http, services, reel_id))["status"] in ("rendered", "failed") and v,
        300,
        0.5,
        "the redelivered render to finish",
    )
    assert view["status"] == "rendered", view["error"]
    assert time.monotonic() - began < 300
    await settled(services)
    [rendered] = await rendered_events(event_store, reel_id)
    assert rendered.job_id == job_id
    history = await event_store.history("reel", reel_id)
    attempts = [e.envelope.payload["attempt"] for e in history if e.envelope.type == "reel.render_started"]
    assert attempts == [1, 2], attempts
    assert sorted(await store.list_keys(services.bucket_reels, f"{reel_id}/")) == sorted(
        [rendered.output_key, rendered.chapters_key]
    )
    mp4 = tmp_path / "after-crash.mp4"
    await store.download(services.bucket_reels, rendered.output_key, mp4)
    assert decodes_whole(mp4)
    assert len(ffprobe(mp4)["chapters"]) == len(items) + 1


async def test_mam_reel_render_follows_a_re_render_where_only_the_changed_caption_is_encoded_again(
    services: Settings, http: httpx.Client, assets: dict[str, str], event_store: EventStore
) -> None:
    reel_id = create_reel(http, services, TITLE, profile="draft")["reel_id"]
    items = three_items(assets)
    assert put_items(http, services, reel_id, items).status_code == 200
    first = ask_render(http, services, reel_id)["job_id"]
    wait_for(lambda: get_reel(http, services, reel_id)["status"] == "rendered", 240, 0.2, "the first render")
    items[1] = {**items[1], "caption": "Chú thích đã sửa"}
    assert put_items(http, services, reel_id, items).status_code == 200

    cli = mam_reel_render(reel_id, services)
    assert cli.returncode == 0, cli.stderr
    assert "Xong / done" in cli.stdout and "chapters:" in cli.stdout
    assert "100%" in cli.stderr  # the progress bar reached the end
    await settled(services)
    renders = await rendered_events(event_store, reel_id)
    assert [r.job_id == first for r in renders] == [True, False]
    # One caption changed: that segment is encoded again, the title card and the others come from the cache.
    assert (renders[1].segments_rendered, renders[1].segments_cached) == (1, 3)
