"""Sample clips and tones made from ffmpeg's own test sources: the demo set's, the tests'
and the benchmarks' (tests/media.py, tests/bench) — one command line, so they are made alike."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path


def _lavfi(*args: str, timeout_s: float) -> None:
    """ffmpeg on its own generated sources (``-f lavfi``), quietly, overwriting the output."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True, timeout=timeout_s)


def pattern_clip(
    path: Path,
    *,
    seconds: float,
    size: str,
    tone_hz: int = 440,
    preset: str = "ultrafast",
    video_filter: str | None = None,
    extra: Sequence[str] = (),
    timeout_s: float = 60,
) -> Path:
    """An H.264/AAC MP4 of ffmpeg's moving test pattern (``testsrc2``, 25 fps, ``size``) with
    a sine tone of ``tone_hz``; ``video_filter`` (e.g. ``hue=h=30``) and ``extra`` output
    options change it."""
    _lavfi(
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate=25:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={tone_hz}:duration={seconds}",
        *(["-vf", video_filter] if video_filter else []),
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        *extra,
        "-f",
        "mp4",
        str(path),
        timeout_s=timeout_s,
    )
    return path


def tone_wav(path: Path, *, seconds: float, tone_hz: int = 330, timeout_s: float = 60) -> Path:
    """A stereo WAV of a sine tone."""
    _lavfi(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={tone_hz}:duration={seconds}",
        "-ac",
        "2",
        "-f",
        "wav",
        str(path),
        timeout_s=timeout_s,
    )
    return path
