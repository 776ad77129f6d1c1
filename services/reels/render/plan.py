"""What the renderer is asked to do and what it gives back (the contract the
reels service codes against), plus the two pure decisions made before any
media is touched: the output target and each segment's content key.

A reel is a title card followed by its segments, in order. Every segment is
normalised once to the reel's :class:`Target` and stored in a
:class:`SegmentCache` under :func:`segment_key`, so editing one caption
re-encodes that segment and the final join only.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Literal, Protocol

# Bumped whenever a change of the pipeline changes the bytes of a normalised
# segment: cached segments of an older renderer are then never reused.
RENDERER_VERSION = "reel-render-2"


class Profile(StrEnum):
    BROADCAST = "broadcast"  # cut from the originals, full-size target
    DRAFT = "draft"  # cut from the web proxies, a smaller target: quick to review


@dataclass(frozen=True)
class Source:
    """A local media file the reel cuts from; ``sha256`` identifies its content."""

    path: Path
    sha256: str
    kind: Literal["video", "photo", "audio"]


@dataclass(frozen=True)
class Segment:
    """``in_s``..``out_s`` of ``source``; a photo is shown still for
    ``out_s - in_s`` seconds, audio plays over the title background."""

    source: Source
    in_s: float
    out_s: float
    caption: str


@dataclass(frozen=True)
class ReelPlan:
    title: str
    subtitle: str
    segments: tuple[Segment, ...]
    profile: Profile


@dataclass(frozen=True)
class Target:
    """The one format every segment is normalised to (stereo always)."""

    width: int
    height: int
    fps: Fraction
    sample_rate: int = 48000


@dataclass(frozen=True)
class SourceProbe:
    """What the renderer needs to know about a source (from ffprobe)."""

    kind: Literal["video", "photo", "audio"]
    width: int | None
    height: int | None
    fps: Fraction | None  # None for photos and audio
    duration_s: float | None  # None for photos
    has_audio: bool


class SegmentCache(Protocol):
    """Normalised segments by content key. The reels service provides an
    S3-backed one; ``LocalSegmentCache(dir)`` serves tests and the CLI."""

    def fetch(self, key: str, dest: Path) -> bool:
        """Copy the segment stored under ``key`` to ``dest``; False if absent."""
        ...

    def store(self, key: str, path: Path) -> None:
        """Keep the file at ``path`` under ``key`` (the caller keeps ``path``)."""
        ...


@dataclass(frozen=True)
class Chapter:
    title: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class RenderResult:
    """The finished reel. ``chapters`` has the title card first, then one
    chapter per segment; ``segments_rendered`` + ``segments_cached`` counts
    the title card too."""

    output: Path
    chapters_vtt: Path
    chapters: tuple[Chapter, ...]
    duration_s: float
    integrated_lufs: float
    true_peak_dbtp: float
    target: Target
    segments_rendered: int
    segments_cached: int


class RenderRefused(Exception):
    """Bad input found while rendering (the reels worker appends
    ``reel.render_failed`` with it); never retried."""

    def __init__(self, code: str, message_vi: str, message_en: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_vi = message_vi
        self.message_en = message_en


# Broadcast rates kept as they are; anything else maps to the nearest of these.
_KEPT_RATES = (Fraction(25), Fraction(50), Fraction(30000, 1001), Fraction(60000, 1001), Fraction(30), Fraction(60))
_BROADCAST_SIZE = {True: (1920, 1080), False: (1080, 1920)}  # landscape?, (w, h)
_DRAFT_SIZE = {True: (960, 540), False: (540, 960)}


def _nearest_rate(rate: Fraction) -> Fraction:
    return min(_KEPT_RATES, key=lambda kept: abs(float(kept) - float(rate)))


def choose_target(plan: ReelPlan, probes: Sequence[SourceProbe]) -> Target:
    """The output format from the sources, never a forced 30 p.

    Frame rate: the rate of the most screen time among the video sources
    (snapped to a broadcast rate, so 50 p and 25 p stay as they are); a 50 p
    source keeps 50 p when the rest is 25 p (each 25 p frame shown twice), and
    only without any video does the reel fall back to 25 p (PAL, Vietnam's
    broadcast standard). Orientation: landscape unless portrait sources carry
    most of the screen time. Draft profile: half the size.
    """
    weight_by_rate: dict[Fraction, float] = {}
    landscape_s = portrait_s = 0.0
    for segment, probe in zip(plan.segments, probes, strict=True):
        seconds = max(segment.out_s - segment.in_s, 0.0)
        if probe.kind == "video" and probe.fps:
            rate = _nearest_rate(probe.fps)
            weight_by_rate[rate] = weight_by_rate.get(rate, 0.0) + seconds
        if probe.width and probe.height:
            if probe.height > probe.width:
                portrait_s += seconds
            else:
                landscape_s += seconds
    if not weight_by_rate:
        fps = Fraction(25)
    else:
        fps = max(weight_by_rate, key=lambda r: (weight_by_rate[r], r))
        # 25 p inside a 50 p reel is exact (frame doubling); the reverse would drop frames.
        if fps == 25 and Fraction(50) in weight_by_rate:
            fps = Fraction(50)
        if fps == Fraction(30000, 1001) and Fraction(60000, 1001) in weight_by_rate:
            fps = Fraction(60000, 1001)
    sizes = _DRAFT_SIZE if plan.profile is Profile.DRAFT else _BROADCAST_SIZE
    width, height = sizes[portrait_s <= landscape_s]
    return Target(width=width, height=height, fps=fps)


def _text_key(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def segment_key(segment: Segment, target: Target, profile: Profile) -> str:
    """The content key of a normalised segment: everything its bytes depend on
    (source content, cut points to the millisecond, target, caption, profile,
    renderer version) and nothing else — not the file's path or name."""
    facts = {
        "v": RENDERER_VERSION,
        "source": segment.source.sha256,
        "kind": segment.source.kind,
        "in_ms": round(segment.in_s * 1000),
        "out_ms": round(segment.out_s * 1000),
        "target": [target.width, target.height, str(target.fps), target.sample_rate],
        "caption": _text_key(segment.caption),
        "profile": str(profile),
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"segment-{digest}"


def title_key(title: str, subtitle: str, target: Target, profile: Profile) -> str:
    """The content key of the title card."""
    facts = {
        "v": RENDERER_VERSION,
        "title": _text_key(title),
        "subtitle": _text_key(subtitle),
        "target": [target.width, target.height, str(target.fps), target.sample_rate],
        "profile": str(profile),
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"title-{digest}"
