"""Transcoder overhead: the proxy encode through our runner vs the bare ffmpeg
command with identical arguments on the same 1080p clip, and photo renditions
through our code vs Pillow alone doing the same operations."""

from __future__ import annotations

import asyncio
import io
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from deploy.local.stack import LocalStack
from deploy.sample_media import pattern_clip
from services.transcoder import domain
from services.transcoder.render import photo_renditions
from shared.media.facts import media_facts
from shared.media.ffmpeg import run_ffmpeg
from shared.media.probe import Limits

CLIP_S = 10.0
PHOTOS = 20


def _clip(path: Path) -> None:
    pattern_clip(path, seconds=CLIP_S, size="1920x1080", timeout_s=600)


def _photo(path: Path) -> None:
    img = Image.effect_mandelbrot((4000, 3000), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(path, "JPEG", quality=90, exif=exif)


def _pillow_alone(src: Path, out: Path) -> None:
    with Image.open(src) as img:
        img.draft("RGB", (domain.PHOTO_WEB_EDGE, domain.PHOTO_WEB_EDGE))
        web = ImageOps.exif_transpose(img).convert("RGB")
    web.thumbnail((domain.PHOTO_WEB_EDGE, domain.PHOTO_WEB_EDGE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    web.save(out / "web.jpg", "JPEG", quality=85, optimize=True, progressive=True)
    thumb = web.copy()
    thumb.thumbnail((domain.PHOTO_THUMB_EDGE, domain.PHOTO_THUMB_EDGE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=80, optimize=True)
    (out / "thumb.jpg").write_bytes(buf.getvalue())


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(stack: LocalStack) -> list[dict[str, Any]]:
    threads = stack.settings.ffmpeg_threads
    with tempfile.TemporaryDirectory(prefix="mam-bench-") as tmp:
        work = Path(tmp)
        src = work / "src.mp4"
        _clip(src)
        facts, fmt = media_facts(src, Limits())
        argv = domain.proxy_command(
            src, fmt, work / "ours.mp4", duration_s=facts.duration_s, has_audio=True, threads=threads
        )
        bare_argv = [a if a != f"file:{work / 'ours.mp4'}" else f"file:{work / 'bare.mp4'}" for a in argv]
        # Alternate, best of two each, so a noisy neighbour hurts both alike.
        ours_t, ours_cpu, bare_t, bare_cpu = [], [], [], []
        for _ in range(2):
            stats = asyncio.run(run_ffmpeg(argv, 600))
            ours_t.append(stats.elapsed_s)
            ours_cpu.append(stats.cpu_s)
            cpu0, t0 = _children_cpu(), time.perf_counter()
            subprocess.run(bare_argv, check=True, capture_output=True)
            bare_t.append(time.perf_counter() - t0)
            bare_cpu.append(_children_cpu() - cpu0)
        ours, bare = min(ours_t), min(bare_t)

        photo = work / "photo.jpg"
        _photo(photo)
        limits = Limits()
        out_ours, out_bare = work / "po", work / "pb"
        out_ours.mkdir()
        out_bare.mkdir()
        cpu0, t0 = _self_cpu(), time.perf_counter()
        for _ in range(PHOTOS):
            _, pfmt = media_facts(photo, limits)  # the service probes every photo first
            photo_renditions(photo, pfmt, out_ours, limits)
        ours_photo_t, ours_photo_cpu = time.perf_counter() - t0, _self_cpu() - cpu0
        cpu0, t0 = _self_cpu(), time.perf_counter()
        for _ in range(PHOTOS):
            _pillow_alone(photo, out_bare)
        bare_photo_t, bare_photo_cpu = time.perf_counter() - t0, _self_cpu() - cpu0
    ours_rate, bare_rate = PHOTOS / ours_photo_t, PHOTOS / bare_photo_t
    return [
        {
            "name": "transcode_proxy_1080p_runner_vs_bare_ffmpeg",
            "ours": ours,
            "baseline": bare,
            "ratio": ours / bare,
            "unit": "s",
        },
        {
            "name": "transcode_proxy_1080p_x_realtime",
            "ours": CLIP_S / ours,
            "baseline": CLIP_S / bare,
            "ratio": bare / ours,
            "unit": "x realtime",
        },
        {
            "name": "transcode_proxy_1080p_cpu_seconds",
            "ours": min(ours_cpu),
            "baseline": min(bare_cpu),
            "ratio": min(ours_cpu) / min(bare_cpu),
            "unit": "cpu s",
        },
        {
            "name": "photo_renditions_12mp_vs_pillow_alone",
            "ours": ours_rate,
            "baseline": bare_rate,
            "ratio": ours_rate / bare_rate,
            "unit": "photos/s",
        },
        {
            "name": "photo_renditions_12mp_cpu_seconds_per_photo",
            "ours": ours_photo_cpu / PHOTOS,
            "baseline": bare_photo_cpu / PHOTOS,
            "ratio": ours_photo_cpu / bare_photo_cpu,
            "unit": "cpu s",
        },
    ]
