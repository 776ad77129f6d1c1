"""Transcoder domain logic: rendition profiles, ffmpeg command lines, poster
choice, storyboard index and the retry decision. Pure functions, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg
from minio.helpers import check_bucket_name, check_object_name

from shared.events.media import AssetProcessingFailedV1, ProcessingStage, RenditionName
from shared.media.ffmpeg import compile_args, safe_input

# Bumped when rendition settings change, so new renditions never overwrite old
# ones that events already point at.
PROFILE = "v1"
PROXY_MAX_W, PROXY_MAX_H = 1280, 720
PHOTO_WEB_EDGE, PHOTO_THUMB_EDGE = 2048, 400
STORYBOARD_TILE_W = 160
STORYBOARD_COLUMNS = 10
STORYBOARD_MAX_TILES = 100
WAVEFORM_SIZE = (1200, 240)

FILE_NAMES: dict[RenditionName, tuple[str, str]] = {
    RenditionName.PROXY: ("proxy.mp4", "video/mp4"),
    RenditionName.POSTER: ("poster.jpg", "image/jpeg"),
    RenditionName.STORYBOARD: ("storyboard.jpg", "image/jpeg"),
    RenditionName.STORYBOARD_VTT: ("storyboard.vtt", "text/vtt"),
    RenditionName.WEB: ("web.jpg", "image/jpeg"),
    RenditionName.THUMB: ("thumb.jpg", "image/jpeg"),
    RenditionName.AUDIO: ("audio.m4a", "audio/mp4"),
    RenditionName.WAVEFORM: ("waveform.png", "image/png"),
}


class HopelessInput(ValueError):
    """An input of the job that no attempt can get past (the same event fails the same way
    on every delivery): the job fails at once with this reason instead of being retried."""

    def __init__(self, code: str, reason: str, reason_en: str, detail: str) -> None:
        super().__init__(f"{code}: {reason_en} {detail}".strip())
        self.code = code
        self.reason = reason
        self.reason_en = reason_en
        self.detail = detail


def check_asset_id(asset_id: str) -> None:
    """Asset ids name rendition keys: only letters and digits (as ``shared.ids`` makes them)."""
    if not (asset_id and asset_id.isascii() and asset_id.isalnum()):
        raise HopelessInput(
            "invalid_asset_id",
            "Mã tài liệu trong sự kiện không hợp lệ (chỉ gồm chữ và số); không thể đặt tên bản chuyển mã.",
            "The event's asset id is invalid (letters and digits only); renditions cannot be named after it.",
            repr(asset_id)[:200],
        )


def check_original_address(bucket: str, key: str) -> None:
    """The original's bucket and key as S3 accepts them (the server or the client refuses
    others on every attempt)."""
    try:
        check_bucket_name(bucket, strict=True)  # the names S3 servers accept today
        check_object_name(key)
    except ValueError as exc:
        raise HopelessInput(
            "invalid_original_address",
            "Địa chỉ tệp gốc trong sự kiện (bucket, khóa) không hợp lệ.",
            "The event's address of the original (bucket, key) is invalid.",
            f"{bucket[:100]!r}/{key[:200]!r}: {exc}",
        ) from exc


def rendition_key(asset_id: str, name: RenditionName) -> str:
    """Deterministic key: a redelivered job overwrites, never adds, objects.

    Only the asset id (derived from content) and our own names go in: the
    uploader's file name never becomes part of a key or a path.
    """
    check_asset_id(asset_id)
    return f"{asset_id}/{PROFILE}/{FILE_NAMES[name][0]}"


def ffmpeg_timeout(duration_s: float | None, base_s: float, per_media_s: float) -> float:
    return base_s + per_media_s * (duration_s or 0.0)


# --- video ---------------------------------------------------------------------


@dataclass(frozen=True)
class StoryboardPlan:
    interval_s: float  # one tile per interval
    tiles: int


def storyboard_plan(duration_s: float | None) -> StoryboardPlan:
    """At most 100 tiles, at least a second apart."""
    duration = max(duration_s or 0.0, 0.1)
    interval = max(1.0, duration / STORYBOARD_MAX_TILES)
    return StoryboardPlan(interval, max(1, min(STORYBOARD_MAX_TILES, math.ceil(duration / interval))))


def keyframe_interval(duration_s: float | None) -> float:
    """Keyframes at least every 2 s (browser seeking) and at every storyboard
    time, so the storyboard decodes only keyframes of the proxy."""
    return min(2.0, storyboard_plan(duration_s).interval_s)


def proxy_command(
    src: Path, demuxer: str, dst: Path, *, duration_s: float | None, has_audio: bool, threads: int
) -> list[str]:
    """Web proxy: H.264 High/AAC MP4, ≤ 1280×720 (never upscaled), rotation
    applied (ffmpeg's autorotate), interlaced frames deinterlaced, 8-bit 4:2:0
    for every browser, bitrate capped for slow provincial links, faststart."""
    inp = safe_input(src, demuxer)
    video = (
        inp["v:0"]
        .filter("bwdif", deint="interlaced")
        .filter(
            "scale",
            w=f"min({PROXY_MAX_W},iw)",
            h=f"min({PROXY_MAX_H},ih)",
            force_original_aspect_ratio="decrease",
            force_divisible_by=2,
        )
        .filter("setsar", "1")
        .filter("format", "yuv420p")
    )
    streams = [video, inp["a:0"]] if has_audio else [video]
    out_opts: dict[str, Any] = {
        "c:v": "libx264",
        "preset": "veryfast",
        "crf": 23,
        "profile:v": "high",
        "maxrate": "3M",
        "bufsize": "6M",
        "fpsmax": 60,
        "force_key_frames": f"expr:gte(t,n_forced*{keyframe_interval(duration_s):g})",
        "map_metadata": -1,
        "map_chapters": -1,
        "sn": None,
        "dn": None,
        "movflags": "+faststart",
        "threads": threads,
        "f": "mp4",
    }
    if has_audio:
        out_opts.update({"c:a": "aac", "b:a": "128k", "ac": 2, "ar": 48000})
    return compile_args(ffmpeg.output(*streams, f"file:{dst}", **out_opts))


def storyboard_frames_command(proxy: Path, frames_dir: Path, plan: StoryboardPlan, threads: int) -> list[str]:
    """Small frames from the proxy's keyframes only: cheap even for long sessions."""
    inp = safe_input(proxy, "mov", skip_frame="nokey")
    # The first keyframe at or after each tile's time (the proxy has one at
    # least every interval); the fps filter would duplicate or drop instead.
    video = inp["v:0"].filter("select", f"gte(t,selected_n*{plan.interval_s:g})").filter("scale", STORYBOARD_TILE_W, -2)
    return compile_args(
        ffmpeg.output(
            video,
            f"file:{frames_dir}/%04d.jpg",
            **{"frames:v": plan.tiles, "q:v": 5, "threads": threads, "fps_mode": "passthrough"},
        )
    )


def poster_command(proxy: Path, dst: Path, at_s: float, threads: int) -> list[str]:
    inp = safe_input(proxy, "mov", ss=f"{at_s:.3f}")
    return compile_args(
        ffmpeg.output(inp["v:0"], f"file:{dst}", **{"frames:v": 1, "q:v": 3, "threads": threads, "update": 1})
    )


@dataclass(frozen=True)
class FrameStats:
    mean: float  # luma 0-255
    stddev: float


def choose_poster(frames: list[FrameStats]) -> int:
    """Index of the poster frame: the first that is neither black (fade-in,
    slate) nor flat (a blank wall, a white flash), skipping the very first
    frame when there is a choice; else the most detailed frame."""
    if not frames:
        raise ValueError("no frames")

    def usable(s: FrameStats) -> bool:
        return 24.0 <= s.mean <= 235.0 and s.stddev >= 12.0

    order = [*range(1, len(frames)), 0] if len(frames) > 1 else [0]
    for i in order:
        if usable(frames[i]):
            return i
    return max(range(len(frames)), key=lambda i: frames[i].stddev)


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def storyboard_vtt(
    tiles: int, interval_s: float, duration_s: float, tile_w: int, tile_h: int, sprite_name: str = "storyboard.jpg"
) -> str:
    """WebVTT thumbnail track: each cue names a sprite region (``#xywh=``).

    The sprite is referenced by file name, relative to the VTT; the API hands
    out a presigned URL for each, so a player resolves the name to that URL.
    """
    lines = ["WEBVTT", ""]
    for i in range(tiles):
        start = i * interval_s
        end = duration_s if i == tiles - 1 else (i + 1) * interval_s
        end = max(end, start + 0.001)
        x, y = (i % STORYBOARD_COLUMNS) * tile_w, (i // STORYBOARD_COLUMNS) * tile_h
        region = f"{sprite_name}#xywh={x},{y},{tile_w},{tile_h}"
        lines += [f"{_vtt_time(start)} --> {_vtt_time(end)}", region, ""]
    return "\n".join(lines)


# --- audio ---------------------------------------------------------------------


def web_audio_command(src: Path, demuxer: str, dst: Path, threads: int) -> list[str]:
    inp = safe_input(src, demuxer)
    return compile_args(
        ffmpeg.output(
            inp["a:0"],
            f"file:{dst}",
            **{
                "c:a": "aac",
                "b:a": "128k",
                "ac": 2,
                "ar": 48000,
                "vn": None,
                "map_metadata": -1,
                "movflags": "+faststart",
                "threads": threads,
                "f": "mp4",
            },
        )
    )


def waveform_command(src: Path, demuxer: str, dst: Path, threads: int) -> list[str]:
    """Peak waveform of the first audio stream. Audio is reduced to 8 kHz mono
    16-bit first, since the filter holds all samples until it draws."""
    inp = safe_input(src, demuxer)
    wave = (
        inp["a:0"]
        .filter("aresample", 8000)
        .filter("aformat", sample_fmts="s16", channel_layouts="mono")
        .filter(
            "showwavespic",
            s=f"{WAVEFORM_SIZE[0]}x{WAVEFORM_SIZE[1]}",
            colors="0x1f6feb",
            filter="peak",
            scale="sqrt",
            draw="full",
        )
    )
    opts = {"frames:v": 1, "update": 1, "threads": threads}
    return compile_args(ffmpeg.output(wave, f"file:{dst}", **opts))


# --- failures and retries ----------------------------------------------------------


class JobFailure(Exception):
    """Why a job failed, in the shape of ``asset.processing_failed``."""

    def __init__(
        self, stage: ProcessingStage, code: str, reason: str, reason_en: str, detail: str, retryable: bool
    ) -> None:
        super().__init__(f"{stage}/{code}: {reason_en} {detail}".strip())
        self.stage = stage
        self.code = code
        self.reason = reason
        self.reason_en = reason_en
        self.detail = detail
        self.retryable = retryable


def decide(failure: JobFailure, attempt: int, max_attempts: int) -> str:
    """ "retry" (nak, redeliver later) or "give_up" (emit the failed event, ack).

    A fault of the file never gets better by retrying; a fault of the machine
    or of storage may, but only ``max_attempts`` times: no endless loop.
    """
    return "retry" if failure.retryable and attempt < max_attempts else "give_up"


def retry_delay(attempt: int, base_s: float) -> float:
    """Exponential backoff between deliveries, capped at five minutes."""
    return float(min(300.0, base_s * 2 ** max(0, attempt - 1)))


def failed_payload(failure: JobFailure, attempts: int) -> AssetProcessingFailedV1:
    return AssetProcessingFailedV1(
        stage=failure.stage,
        code=failure.code,
        reason=failure.reason,
        reason_en=failure.reason_en,
        detail=failure.detail,
        retryable=failure.retryable,
        attempts=attempts,
    )


def gave_up_after_crashes(attempts: int) -> JobFailure:
    """A delivery beyond the limit means earlier attempts died mid-job (the
    worker was killed, e.g. out of memory): stop instead of dying again."""
    return JobFailure(
        ProcessingStage.INTERNAL,
        "worker_crashed",
        f"Bộ xử lý dừng đột ngột {attempts - 1} lần khi xử lý tệp này; đã ngừng thử lại.",
        f"The worker stopped abruptly {attempts - 1} times on this file; giving up.",
        "",
        retryable=True,
    )
