"""Making renditions from a local, already-probed original.

Every output is written inside the job's private folder under our own file
names; nothing here sees the uploader's file name. ffmpeg runs through
:mod:`shared.media.ffmpeg` (subprocess, timeout, protocol and demuxer locked);
Pillow work runs in a thread with the decompression-bomb guard on.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, ImageStat

from services.transcoder import domain
from shared.events.media import AssetProbedV1, ProcessingStage, RenditionName
from shared.events.models import AssetKind
from shared.media.facts import av_facts
from shared.media.ffmpeg import run_ffmpeg
from shared.media.probe import Limits, probe_av_info


@dataclass(frozen=True)
class LocalRendition:
    name: RenditionName
    path: Path
    mime_type: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class RenderOptions:
    threads: int
    timeout_base_s: float
    timeout_per_media_s: float
    limits: Limits


@dataclass(frozen=True)
class RenderResult:
    renditions: list[LocalRendition]
    poster_time_s: float | None = None


def _out(workdir: Path, name: RenditionName) -> tuple[Path, str]:
    file_name, mime = domain.FILE_NAMES[name]
    return workdir / file_name, mime


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


async def render(src: Path, demuxer: str, facts: AssetProbedV1, workdir: Path, opts: RenderOptions) -> RenderResult:
    """All renditions for the asset's kind, as files in ``workdir``."""
    if facts.kind is AssetKind.PHOTO:
        photos = await asyncio.to_thread(photo_renditions, src, facts.container, workdir, opts.limits)
        return RenderResult(photos)
    if facts.kind is AssetKind.AUDIO:
        return await audio_renditions(src, demuxer, facts, workdir, opts)
    return await video_renditions(src, demuxer, facts, workdir, opts)


# --- photo ---------------------------------------------------------------------


def photo_renditions(src: Path, fmt: str, workdir: Path, limits: Limits) -> list[LocalRendition]:
    """Web (≤ 2048) and thumbnail (≤ 400) JPEGs, EXIF orientation applied and
    EXIF dropped (it may hold GPS; the facts are in ``asset.probed``)."""
    web_path, mime = _out(workdir, RenditionName.WEB)
    thumb_path, _ = _out(workdir, RenditionName.THUMB)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(src, formats=[fmt]) as img:
            # JPEG can decode straight at 1/2, 1/4 or 1/8 size: far less work
            # for a 24 MP camera photo that ends at 2048 px.
            img.draft("RGB", (domain.PHOTO_WEB_EDGE, domain.PHOTO_WEB_EDGE))
            icc = img.info.get("icc_profile")
            # Other formats decode at full size: shrink by a whole factor at once, so
            # every later step (orientation, flattening) works on the small copy and
            # an 80 MP PNG costs one decoded frame, not four.
            factor = min(img.size) // domain.PHOTO_WEB_EDGE
            small = img.reduce(factor) if factor >= 2 else img
            oriented = ImageOps.exif_transpose(small)  # reduce keeps the EXIF orientation
    if oriented.mode in ("RGBA", "LA") or (oriented.mode == "P" and "transparency" in oriented.info):
        rgba = oriented.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        oriented = flat
    elif oriented.mode != "RGB":
        oriented = oriented.convert("RGB")
    web = oriented  # already a copy detached from the file: shrink it in place
    web.thumbnail((domain.PHOTO_WEB_EDGE, domain.PHOTO_WEB_EDGE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    web.save(web_path, "JPEG", quality=85, optimize=True, progressive=True, icc_profile=icc)
    thumb = web.copy()
    thumb.thumbnail((domain.PHOTO_THUMB_EDGE, domain.PHOTO_THUMB_EDGE), Image.Resampling.LANCZOS)
    thumb.save(thumb_path, "JPEG", quality=80, optimize=True, icc_profile=icc)
    return [
        LocalRendition(RenditionName.WEB, web_path, mime, *web.size),
        LocalRendition(RenditionName.THUMB, thumb_path, mime, *thumb.size),
    ]


# --- video ---------------------------------------------------------------------


def frame_stats(path: Path) -> domain.FrameStats:
    with Image.open(path) as img:
        stat = ImageStat.Stat(img.convert("L"))
    return domain.FrameStats(mean=stat.mean[0], stddev=stat.stddev[0])


def build_storyboard(frames: list[Path], sprite: Path) -> tuple[int, int]:
    """Tile the frames into one JPEG sprite; returns the tile size."""
    with Image.open(frames[0]) as first:
        tile_w, tile_h = first.size
    cols = min(domain.STORYBOARD_COLUMNS, len(frames))
    rows = -(-len(frames) // cols)
    sheet = Image.new("RGB", (cols * tile_w, rows * tile_h))
    for i, frame in enumerate(frames):
        with Image.open(frame) as img:
            tile = img.convert("RGB").resize((tile_w, tile_h))
            sheet.paste(tile, ((i % cols) * tile_w, (i // cols) * tile_h))
    sheet.save(sprite, "JPEG", quality=75, optimize=True)
    return tile_w, tile_h


async def video_renditions(
    src: Path, demuxer: str, facts: AssetProbedV1, workdir: Path, opts: RenderOptions
) -> RenderResult:
    timeout = domain.ffmpeg_timeout(facts.duration_s, opts.timeout_base_s, opts.timeout_per_media_s)
    proxy, proxy_mime = _out(workdir, RenditionName.PROXY)
    has_audio = facts.audio_codec is not None
    command = domain.proxy_command(
        src, demuxer, proxy, duration_s=facts.duration_s, has_audio=has_audio, threads=opts.threads
    )
    await run_ffmpeg(command, timeout)
    # Everything else is read from the proxy: rotation is applied, it is at
    # most 720p, and its keyframes sit at the storyboard times.
    frames_dir = workdir / "frames"
    frames_dir.mkdir()
    plan = domain.storyboard_plan(facts.duration_s)
    await run_ffmpeg(domain.storyboard_frames_command(proxy, frames_dir, plan, opts.threads), timeout)
    frames = sorted(frames_dir.glob("*.jpg"))
    if not frames:
        raise domain.JobFailure(
            ProcessingStage.RENDER,
            "no_frames",
            "Không trích được khung hình nào từ video.",
            "No frame could be extracted from the video.",
            "",
            retryable=False,
        )
    stats = await asyncio.to_thread(lambda: [frame_stats(f) for f in frames])
    pick = domain.choose_poster(stats)
    poster_at = pick * plan.interval_s
    poster, poster_mime = _out(workdir, RenditionName.POSTER)
    await run_ffmpeg(domain.poster_command(proxy, poster, poster_at, opts.threads), timeout)
    sprite, sprite_mime = _out(workdir, RenditionName.STORYBOARD)
    tile_w, tile_h = await asyncio.to_thread(build_storyboard, frames, sprite)
    vtt, vtt_mime = _out(workdir, RenditionName.STORYBOARD_VTT)
    duration = facts.duration_s or len(frames) * plan.interval_s
    vtt.write_text(domain.storyboard_vtt(len(frames), plan.interval_s, duration, tile_w, tile_h), "utf-8")
    proxy_w, proxy_h, proxy_duration = await asyncio.to_thread(_proxy_facts, proxy, opts.limits)
    poster_w, poster_h = await asyncio.to_thread(_image_size, poster)
    sprite_w, sprite_h = await asyncio.to_thread(_image_size, sprite)
    return RenderResult(
        [
            LocalRendition(RenditionName.PROXY, proxy, proxy_mime, proxy_w, proxy_h, proxy_duration),
            LocalRendition(RenditionName.POSTER, poster, poster_mime, poster_w, poster_h),
            LocalRendition(RenditionName.STORYBOARD, sprite, sprite_mime, sprite_w, sprite_h),
            LocalRendition(RenditionName.STORYBOARD_VTT, vtt, vtt_mime),
        ],
        poster_time_s=poster_at,
    )


def _proxy_facts(proxy: Path, limits: Limits) -> tuple[int | None, int | None, float | None]:
    """Size and duration of the proxy as written (what the player will get)."""
    _, info = probe_av_info(proxy, "mov", limits)
    facts = av_facts(AssetKind.VIDEO, "mov", info)
    return facts.width, facts.height, facts.duration_s


# --- audio ---------------------------------------------------------------------


async def audio_renditions(
    src: Path, demuxer: str, facts: AssetProbedV1, workdir: Path, opts: RenderOptions
) -> RenderResult:
    timeout = domain.ffmpeg_timeout(facts.duration_s, opts.timeout_base_s, opts.timeout_per_media_s)
    audio, audio_mime = _out(workdir, RenditionName.AUDIO)
    wave, wave_mime = _out(workdir, RenditionName.WAVEFORM)
    await run_ffmpeg(domain.web_audio_command(src, demuxer, audio, opts.threads), timeout)
    await run_ffmpeg(domain.waveform_command(src, demuxer, wave, opts.threads), timeout)
    return RenderResult(
        [
            LocalRendition(RenditionName.AUDIO, audio, audio_mime, duration_s=facts.duration_s),
            LocalRendition(RenditionName.WAVEFORM, wave, wave_mime, *domain.WAVEFORM_SIZE),
        ]
    )
