"""Reel renders under faults (the soak): clips uploaded, found in the index, cut into a reel, rendered.

Each round uploads one short clip (through the main load's retries, so it is
reconciled with the photos), waits until the search API shows it processed, then
a producer creates a reel of the two newest clips, sets its items and asks for a
render; the round ends when the reel shows that job rendered (or failed). The
render's latency — accepted to rendered — is a sample of kind ``render``.

Afterwards ``reconcile_reels``: every accepted render (its job id, as the API
answered it) has exactly one ``reel.rendered`` and no ``reel.render_failed``; the
output and its chapters are stored whole (the size the event names); no job has
two outcomes; no object in the reels bucket that no ``reel.rendered`` names.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.objectstore import ObjectStore
from shared.settings import Settings
from tests.conftest import AUTH, PRODUCER
from tests.faults.load import Load, on_replicas, replica_urls
from tests.faults.reconcile import read_all_events
from tests.transcoder_media import make_clip

CLIP_S = 3.0


@dataclass
class ReelLoad:
    load: Load  # shares its stop, answers, samples, failures and acknowledged uploads
    pace_s: float = 20.0  # pause between rounds
    ready_deadline_s: float = 600.0  # a clip to be processed and indexed, a render to finish
    accepted: dict[str, str] = field(default_factory=dict)  # job id → reel id
    outcomes: Counter[str] = field(default_factory=Counter)  # rendered / failed / unfinished, as the API showed

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        return self.load.settings

    def start(self) -> ReelLoad:
        self._thread.start()
        return self

    def join(self, timeout_s: float = 900.0) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the reel load did not finish in time"

    def _work(self) -> None:
        try:
            with httpx.Client(timeout=60.0) as http, tempfile.TemporaryDirectory(prefix="mam-soak-reels-") as tmp:
                clips: list[str] = []
                for n in itertools.count():
                    if self.load.stop.is_set():
                        return
                    clip = self._upload_clip(http, Path(tmp), n)
                    if clip is not None and self._indexed(http, clip, n):
                        clips.append(clip)
                        self._render_reel(http, clips[-2:], n)
                    self.load.stop.wait(self.pace_s)
        except Exception as exc:  # a failure in a helper thread must fail the soak
            self.load.fail(f"reel load crashed: {exc!r}")

    # --- one round ----------------------------------------------------------------
    def _tag(self, n: int) -> str:
        return f"soak{self.load.seed}r{n}"  # one search token, unique to this clip

    def _upload_clip(self, http: httpx.Client, folder: Path, n: int) -> str | None:
        path = make_clip(folder / f"clip-{n}.mp4", self._tag(n), seconds=CLIP_S, black_lead_s=0.5)
        content = path.read_bytes()
        path.unlink()
        response = self.load.send(
            http,
            "clip",
            "ingest",
            lambda url: http.post(
                f"{url}/v1/assets",
                headers=AUTH,
                data={
                    "title": f"Kỳ họp thứ Bảy — đoạn phim {self._tag(n)}",
                    "activity_type": "ky-hop",
                    "recorded_at": "2024-07-11",
                },
                files={"file": (f"doan-{n}.mp4", content, "video/mp4")},
            ),
        )
        if response is None:
            return None
        asset_id = str(response.json()["asset_id"])
        self.load.acknowledge(asset_id, hashlib.sha256(content).hexdigest())
        return asset_id

    def _indexed(self, http: httpx.Client, asset_id: str, n: int) -> bool:
        """Until the search API finds the clip by its tag, processed (a reel is cut from what users find)."""

        def ready(url: str) -> bool:
            response = http.get(
                f"{url}/v1/search", headers=AUTH, params={"q": self._tag(n), "kind": "video"}, timeout=10.0
            )
            hits = response.json().get("hits", []) if response.is_success else []
            return any(h.get("asset_id") == asset_id and h.get("processing_status") == "ready" for h in hits)

        return self._poll("search", ready, f"clip {asset_id} indexed and processed")

    def _render_reel(self, http: httpx.Client, clips: list[str], n: int) -> None:
        created = self.load.send(
            http,
            "reel",
            "reels",
            lambda url: http.post(
                f"{url}/v1/reels",
                headers=PRODUCER,
                json={"title": f"Tổng hợp kỳ họp — bản {n}", "profile": "draft"},
            ),
        )
        if created is None:
            return
        reel_id = str(created.json()["reel_id"])
        items = [
            {"asset_id": clip, "in_s": 0.5, "out_s": 2.0, "caption": f"Đoạn {i + 1}"} for i, clip in enumerate(clips)
        ]
        set_items = self.load.send(
            http,
            "reel",
            "reels",
            lambda url: http.put(f"{url}/v1/reels/{reel_id}/items", headers=PRODUCER, json={"items": items}),
        )
        if set_items is None:
            return
        render = self.load.send(
            http, "reel", "reels", lambda url: http.post(f"{url}/v1/reels/{reel_id}/render", headers=PRODUCER)
        )
        if render is None:
            return
        job_id = str(render.json()["job_id"])
        with self._lock:
            self.accepted[job_id] = reel_id
        began = time.monotonic()
        seen: dict[str, Any] = {}

        def finished(url: str) -> bool:
            response = http.get(f"{url}/v1/reels/{reel_id}", headers=PRODUCER, timeout=10.0)
            if not response.is_success:
                return False
            seen.update(response.json())
            output = seen.get("output") or {}
            return output.get("job_id") == job_id or seen.get("status") == "failed"

        done = self._poll("reels", finished, f"reel {reel_id} job {job_id} rendered", give_up_on_stop=False)
        rendered = done and seen.get("status") == "rendered"
        outcome = "rendered" if rendered else ("failed" if done else "unfinished")
        with self._lock:
            self.outcomes[outcome] += 1
        self.load.record("render", began, time.monotonic() - began, rendered)

    def _poll(self, service: str, condition: Callable[[str], bool], what: str, give_up_on_stop: bool = True) -> bool:
        """``condition(url)`` on one replica then the other until true or the deadline (errors: a replica away)."""

        def attempt(url: str) -> bool:
            try:
                return condition(url)
            except (httpx.HTTPError, ValueError):
                return False

        stop = self.load.stop.is_set if give_up_on_stop else lambda: False
        urls = replica_urls(self.settings, service)
        ended = on_replicas(urls, attempt, deadline_s=self.ready_deadline_s, pause_s=1.0, give_up=stop)
        if ended == "deadline":
            self.load.fail(f"not within {self.ready_deadline_s:.0f}s: {what}")
        return ended == "done"


@dataclass
class ReelReconciliation:
    accepted: int = 0
    rendered: int = 0
    stored: int = 0
    failed: int = 0
    duplicates: int = 0
    orphans: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"renders accepted {self.accepted}, rendered {self.rendered}, stored {self.stored}, "
            f"failed {self.failed}, duplicates {self.duplicates}, orphans {self.orphans}"
        )

    @property
    def exact(self) -> bool:
        n = self.accepted
        return not self.problems and self.rendered == self.stored == n and self.failed == self.duplicates == 0


async def reconcile_reels(settings: Settings, accepted: dict[str, str]) -> ReelReconciliation:
    """``accepted``: job id → reel id of every render the API accepted (202)."""
    result = ReelReconciliation(accepted=len(accepted))
    events = [e for e, _ in await read_all_events(settings) if e.aggregate == "reel"]
    outcomes: dict[str, list[Any]] = {}
    for event in events:
        if event.type in ("reel.rendered", "reel.render_failed"):
            outcomes.setdefault(str(event.payload["job_id"]), []).append(event)
    for job_id, finals in outcomes.items():
        if len(finals) > 1:
            result.duplicates += len(finals) - 1
            result.problems.append(f"job {job_id}: {len(finals)} outcomes ({[e.type for e in finals]})")
    objects = ObjectStore.from_settings(settings)
    named: set[str] = set()
    for event in events:
        if event.type == "reel.rendered":
            named |= {str(event.payload["output_key"]), str(event.payload["chapters_key"])}
    for job_id, reel_id in accepted.items():
        finals = outcomes.get(job_id, [])
        rendered = [e for e in finals if e.type == "reel.rendered" and e.aggregate_id == reel_id]
        failed = [e for e in finals if e.type == "reel.render_failed"]
        result.failed += len(failed)
        result.problems += [f"job {job_id} failed: {e.payload.get('code')} {e.payload.get('detail')}" for e in failed]
        if len(rendered) != 1:
            result.problems.append(f"job {job_id} of {reel_id}: {len(rendered)} reel.rendered")
            continue
        result.rendered += 1
        payload = rendered[0].payload
        output = await objects.stat(str(payload["bucket"]), str(payload["output_key"]))
        chapters = await objects.stat(str(payload["bucket"]), str(payload["chapters_key"]))
        if output is not None and output.size == payload["size_bytes"] and chapters is not None:
            result.stored += 1
        else:
            result.problems.append(f"job {job_id}: output or chapters not stored whole")
    for key in await objects.list_keys(settings.bucket_reels):
        if key not in named:
            result.orphans += 1
            result.problems.append(f"orphan object {settings.bucket_reels}/{key}")
    return result
