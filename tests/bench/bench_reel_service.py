"""The reels service end to end: a 10-segment mixed-source reel, from the producer's
render request (``reel.render_requested`` appended) to ``reel.rendered`` appended,
vs the render helper's bare ffmpeg script (``tests/bench/bench_reels.py``) doing the
same normalise + join on the same files, interleaved, after the same warm-up.

The service's time includes what a bare script does not do: the consumer picking
the job up, fetching the originals from S3, the segment cache round trips, storing
the output and its chapters in S3 and recording the events. Each round (and each run:
the cache in S3 outlives it) changes the captions (and so every segment's cache key):
both sides encode everything.
Knobs: ``MAM_BENCH_REEL_SERVICE_ROUNDS`` (default 1).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from deploy.local.processes import start, stop
from deploy.local.stack import LocalStack
from services.reels.render import Profile, ReelPlan, Segment, Source, choose_target, probe_source
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.bench.bench_reels import TITLE, bare_ffmpeg_reel, ten_segments
from tests.conftest import AUTH, PRODUCER
from tests.reels_media import make_sources

_MIME = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".png": "image/png", ".wav": "audio/wav"}
SERVICES = ("ingest", "transcoder", "reels")


async def _upload(http: httpx.AsyncClient, s: Settings, source: Source) -> str:
    data = source.path.read_bytes()
    files = {"file": (source.path.name, data, _MIME[source.path.suffix])}
    form = {"title": f"Nguồn {source.path.stem}", "activity_type": "ky-hop", "recorded_at": "2023-07-11"}
    response = await http.post(f"{s.ingest_url}/v1/assets", headers=AUTH, files=files, data=form)
    response.raise_for_status()
    return str(response.json()["asset_id"])


async def _processed(events: EventStore, asset_ids: list[str], within: float = 600.0) -> None:
    deadline = time.monotonic() + within
    final = {"asset.renditions_ready", "asset.processing_failed"}
    for asset_id in asset_ids:
        while not any(e.envelope.type in final for e in await events.history("asset", asset_id)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{asset_id} not processed")
            await asyncio.sleep(0.5)


async def _service_render(
    http: httpx.AsyncClient, s: Settings, events: EventStore, segments: tuple[Segment, ...], ids: dict[Path, str]
) -> float:
    """Seconds from ``reel.render_requested`` to ``reel.rendered``, as the log records them."""
    reel = await http.post(f"{s.reels_url}/v1/reels", headers=PRODUCER, json={"title": TITLE, "profile": "broadcast"})
    reel.raise_for_status()
    reel_id = reel.json()["reel_id"]
    items = [
        {"asset_id": ids[seg.source.path], "in_s": seg.in_s, "out_s": seg.out_s, "caption": seg.caption}
        for seg in segments
    ]
    (
        await http.put(f"{s.reels_url}/v1/reels/{reel_id}/items", headers=PRODUCER, json={"items": items})
    ).raise_for_status()
    (await http.post(f"{s.reels_url}/v1/reels/{reel_id}/render", headers=PRODUCER)).raise_for_status()
    deadline = time.monotonic() + 1800
    while True:
        history = await events.history("reel", reel_id)
        by_type = {e.envelope.type: e.envelope for e in history}
        if "reel.render_failed" in by_type:
            raise RuntimeError(by_type["reel.render_failed"].payload)
        if "reel.rendered" in by_type:
            return (by_type["reel.rendered"].occurred_at - by_type["reel.render_requested"].occurred_at).total_seconds()
        if time.monotonic() > deadline:
            raise TimeoutError(reel_id)
        await asyncio.sleep(0.2)


def _captioned(segments: tuple[Segment, ...], round_no: int, run: str) -> tuple[Segment, ...]:
    """New captions each round and each run: the segment cache lives in S3, which outlives a run."""
    return tuple(Segment(s.source, s.in_s, s.out_s, f"{s.caption} · lượt {round_no} · {run}") for s in segments)


async def _bench(stack: LocalStack, base: Path, rounds: int) -> list[dict[str, Any]]:
    s = stack.settings
    sources = make_sources(base / "src")
    segments = ten_segments(sources)
    plan = ReelPlan(TITLE, "", segments, Profile.BROADCAST)
    target = choose_target(plan, [probe_source(seg.source) for seg in segments])
    events = await EventStore.from_settings(s)
    try:
        async with httpx.AsyncClient(timeout=120.0) as http:
            ids = {src.path: await _upload(http, s, src) for src in sources.values()}
            await _processed(events, list(ids.values()))
            # Warm-up, both alike: one segment each.
            run = uuid.uuid4().hex[:6]
            await _service_render(http, s, events, _captioned(segments[:1], 0, run), ids)
            await asyncio.to_thread(bare_ffmpeg_reel, segments[:1], TITLE, target, base / "warm", False)
            ours_t, bare_t = [], []
            for r in range(1, rounds + 1):
                captioned = _captioned(segments, r, run)
                ours_t.append(await _service_render(http, s, events, captioned, ids))
                began = time.perf_counter()
                await asyncio.to_thread(bare_ffmpeg_reel, captioned, TITLE, target, base / f"bare{r}", False)
                bare_t.append(time.perf_counter() - began)
    finally:
        await events.close()
    ours, bare = min(ours_t), min(bare_t)
    tag = f"broadcast_{target.width}x{target.height}p{float(target.fps):g}"
    return [
        {
            "name": f"reel_service_10seg_mixed_{tag}_event_in_to_reel_rendered_vs_bare_ffmpeg_script",
            "ours": ours,
            "baseline": bare,
            "ratio": ours / bare,
            "unit": "s",
        }
    ]


def run(stack: LocalStack) -> list[dict[str, Any]]:
    rounds = int(os.environ.get("MAM_BENCH_REEL_SERVICE_ROUNDS", "1"))
    specs = [stack.service_spec(name) for name in SERVICES]
    for spec in specs:
        start(spec)
    try:
        with tempfile.TemporaryDirectory(prefix="mam-bench-reel-service-") as tmp:
            return asyncio.run(_bench(stack, Path(tmp), rounds))
    finally:
        for spec in specs:
            stop(spec)
