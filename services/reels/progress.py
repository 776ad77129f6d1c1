"""Render progress: a few updates a second into NATS KV, never an event per update.

The renderer writes ``{job_id, percent, phase}`` under the reel's id; ``GET
/v1/reels/{id}`` reads it while the reel is queued or rendering. Start, finish
and failure are events; the percentage in between is a passing fact that the
log need not keep.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from shared.heartbeat import beating
from shared.kv import KeyNotFoundError, KeyValue

log = logging.getLogger("mam.reels.progress")
PROGRESS_BUCKET = "mam-reel-progress"
# A finished or abandoned render's entry is of no use after a day.
PROGRESS_TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class Progress:
    job_id: str
    percent: float
    phase: str


class ProgressBoard:
    """The KV bucket of progress entries, one per reel."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def put(self, reel_id: str, progress: Progress) -> None:
        value = {"job_id": progress.job_id, "percent": round(progress.percent, 1), "phase": progress.phase}
        await self.kv.put(reel_id, json.dumps(value).encode())

    async def get(self, reel_id: str) -> Progress | None:
        try:
            entry = await self.kv.get(reel_id)
        except KeyNotFoundError:
            return None
        if entry is None or not entry.value:
            return None
        data: dict[str, Any] = json.loads(entry.value)
        return Progress(str(data["job_id"]), float(data["percent"]), str(data.get("phase", "")))


class ProgressReporter:
    """Takes every progress callback, writes at most ``per_s`` of them a second.

    The renderer calls :meth:`update` (synchronously, as often as ffmpeg reports);
    a background task sends the latest value when it changed. Phases map the
    renderer's 0–100 onto the whole job: fetching sources, rendering, storing.
    """

    PHASES: ClassVar[dict[str, tuple[float, float]]] = {
        "fetching": (0.0, 10.0),
        "rendering": (10.0, 95.0),
        "storing": (95.0, 99.0),
    }

    def __init__(self, board: ProgressBoard, reel_id: str, job_id: str, per_s: float) -> None:
        self.board = board
        self.reel_id = reel_id
        self.job_id = job_id
        self.interval_s = 1.0 / max(per_s, 0.1)
        self.phase = "fetching"
        self.percent = 0.0
        self._sent: tuple[str, float] | None = None
        self.writes = 0

    def enter(self, phase: str) -> None:
        self.phase = phase
        self.percent = max(self.percent, self.PHASES[phase][0])

    def update(self, percent: float) -> None:
        """The current phase is ``percent`` (0–100, as the renderer reports it) done;
        the job's progress never goes backwards."""
        low, high = self.PHASES[self.phase]
        self.percent = max(self.percent, low + (high - low) * min(max(percent, 0.0), 100.0) / 100.0)

    async def flush(self) -> None:
        current = (self.phase, round(self.percent, 1))
        if current == self._sent:
            return
        try:
            await self.board.put(self.reel_id, Progress(self.job_id, self.percent, self.phase))
        except Exception:  # progress is a courtesy: a lost update never fails the render
            log.warning("progress of %s not written", self.reel_id, exc_info=True)
            return
        self._sent = current
        self.writes += 1

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Callable[[float], None]]:
        async with beating(self.flush, self.interval_s, at_once=True):
            yield self.update
        await self.flush()
