"""On-screen text: Tesseract (Vietnamese model) on photos and scene-change keyframes.

Banners and backdrops at council events spell out the event's name ("KỲ HỌP
THỨ BẢY HĐND TỈNH KHÓA XI"), which is the strongest hint the tagger gets.
Both tools run in subprocesses with timeouts, on local files only, and their
stderr becomes the error message.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from shared.text import clean_text

# Demuxers we let ffmpeg use for keyframes (first name of ffprobe's format list).
ALLOWED_VIDEO_FORMATS = frozenset({"mov", "matroska", "webm", "avi", "mpegts", "mpeg", "flv", "mp4", "asf"})
# Tesseract reads small text better with some pixels; huge photos only cost time.
_MIN_WIDTH = 1200
_MAX_SIDE = 2400


class OcrError(RuntimeError):
    """OCR could not run (tool missing, timeout, unreadable input)."""


class OcrTimeout(OcrError):
    """A tool ran past the asset's OCR budget. Tesseract's time depends on the picture, not
    on luck: a flat photo crossed by a dotted line took 150 s on an idle machine where a
    page takes 0.4 s, so the same input would time out again (it is not retried)."""


@dataclass(frozen=True)
class OcrSettings:
    tesseract: str = "tesseract"
    ffmpeg: str = "ffmpeg"
    lang: str = "vie"
    timeout_s: float = 60.0
    max_keyframes: int = 6
    scene_threshold: float = 0.3


@dataclass(frozen=True)
class OcrResult:
    text: str
    frames: int


def prepare_image(source: Path, target: Path) -> None:
    """Grey, upright, and a size Tesseract reads well; written as PNG."""
    try:
        with Image.open(source) as opened:
            img: Image.Image = ImageOps.exif_transpose(opened).convert("L")
            width, height = img.size
            if width < _MIN_WIDTH:
                scale = _MIN_WIDTH / width
                img = img.resize((int(width * scale), int(height * scale)), Image.Resampling.LANCZOS)
            elif max(width, height) > _MAX_SIDE:
                img.thumbnail((_MAX_SIDE, _MAX_SIDE), Image.Resampling.LANCZOS)
            img.save(target, "PNG")
    except OSError as exc:
        raise OcrError(f"cannot read image for OCR: {exc}") from exc


# Tesseract's OpenMP threads spin while they wait: beside ffmpeg and Elasticsearch on a
# small machine that turns a one-second page into a minute-long timeout. One thread each.
_TOOL_ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}


def _run(argv: list[str], timeout_s: float) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False, env=_TOOL_ENV)
    except FileNotFoundError as exc:
        raise OcrError(f"{argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise OcrTimeout(f"{Path(argv[0]).name} timed out after {timeout_s:.0f}s") from exc
    if done.returncode != 0:
        raise OcrError(f"{Path(argv[0]).name} failed: {done.stderr.decode('utf-8', 'replace').strip()[-500:]}")
    return done.stdout.decode("utf-8", "replace")


def clean_ocr_text(raw: str) -> str:
    """Keep lines that look like words; Tesseract turns textures into noise."""
    lines = []
    for line in raw.splitlines():
        line = clean_text(line)
        letters = sum(ch.isalpha() for ch in line)
        alnum = sum(ch.isalnum() for ch in line)
        if len(line) >= 4 and letters >= 3 and alnum / len(line.replace(" ", "")) >= 0.7:
            lines.append(line)
    return "\n".join(lines)


def ocr_image(path: Path, cfg: OcrSettings, scratch_dir: Path | None = None) -> str:
    """Text on one image (photo or keyframe), cleaned, NFC.

    The prepared image is written under ``scratch_dir`` (the job's folder in the
    service's work dir); None means the system's temp dir (tests, tools).
    """
    with tempfile.TemporaryDirectory(prefix="mam-ocr-", dir=scratch_dir) as tmp:
        prepared = Path(tmp) / "in.png"
        prepare_image(path, prepared)
        raw = _run([cfg.tesseract, str(prepared), "stdout", "-l", cfg.lang, "--psm", "3"], cfg.timeout_s)
    return clean_ocr_text(raw)


def extract_keyframes(video: Path, out_dir: Path, media_format: str, cfg: OcrSettings) -> list[Path]:
    """The first frame plus frames where the scene changes, at most ``max_keyframes``."""
    demuxer = media_format.split(",")[0].strip()
    if demuxer not in ALLOWED_VIDEO_FORMATS:
        raise OcrError(f"video format {media_format!r} is not allowed for keyframe extraction")
    pattern = out_dir / "kf%03d.png"
    _run(
        [
            cfg.ffmpeg,
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file",
            "-f",
            demuxer,
            "-i",
            str(video),
            "-an",
            "-sn",
            "-dn",
            "-vf",
            f"select='eq(n\\,0)+gt(scene\\,{cfg.scene_threshold})',scale='min(1920,iw)':-2",
            "-fps_mode",
            "vfr",
            "-frames:v",
            str(cfg.max_keyframes),
            str(pattern),
        ],
        cfg.timeout_s,
    )
    return sorted(out_dir.glob("kf*.png"))


def merge_texts(texts: list[str]) -> str:
    """Join per-frame text, dropping lines already seen (a banner stays on screen)."""
    seen: set[str] = set()
    lines = []
    for text in texts:
        for line in text.splitlines():
            if line not in seen:
                seen.add(line)
                lines.append(line)
    return "\n".join(lines)
