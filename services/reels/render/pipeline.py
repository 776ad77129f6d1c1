"""The reel pipeline (work in progress: the contract is in plan.py)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from services.reels.render.plan import ReelPlan, RenderResult, SegmentCache, choose_target, segment_key

__all__ = ["LocalSegmentCache", "choose_target", "probe_source", "render_reel", "segment_key"]


class LocalSegmentCache:
    """Normalised segments as files in one directory (tests, the CLI)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.mov"

    def fetch(self, key: str, dest: Path) -> bool:
        stored = self._path(key)
        if not stored.exists():
            return False
        shutil.copyfile(stored, dest)
        return True

    def store(self, key: str, path: Path) -> None:
        staging = self.directory / f".{key}.{uuid.uuid4().hex}.part"
        shutil.copyfile(path, staging)
        os.replace(staging, self._path(key))  # readers see a whole file or none

    def keys(self) -> set[str]:
        return {p.stem for p in self.directory.glob("*.mov")}


def probe_source(path: Path) -> object:
    raise NotImplementedError("being written on branch h-render")


async def render_reel(
    plan: ReelPlan,
    work_dir: Path,
    cache: SegmentCache,
    on_progress: Callable[[float], None],
    *,
    timeout_s: float,
) -> RenderResult:
    raise NotImplementedError("being written on branch h-render")
