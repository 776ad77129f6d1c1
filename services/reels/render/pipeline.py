"""The reel pipeline: probe → normalise each segment once (cached) → join.

Where each guarantee comes from:

- **Frame accuracy**: every cut is decoded (input ``-ss`` with ffmpeg's
  accurate seek, never a stream copy). The cut point is snapped to the source
  frame on screen at ``in_s`` and the seek lands a quarter frame before it, so
  that exact frame is the first one kept whatever the container's rounding.
- **No drift**: a segment has exactly ``N = round((out_s-in_s)·fps)`` frames
  and exactly ``N·rate/fps`` audio samples (padded with silence or trimmed),
  so every join falls on the same instant in picture and sound. Segments keep
  their audio as PCM; the join encodes the whole programme's audio with one
  AAC encoder (no per-join encoder priming gaps) while the video is copied.
- **Loudness**: each segment is normalised (loudnorm, two-pass, linear when it
  can) to −23 LUFS with headroom when it is first rendered, and cached so. The
  join measures the result and, only if it is off, joins again with the small
  residual gain (audio only), so an edited caption re-encodes one segment plus
  the join — never every segment.
- **Text**: titles and captions go to ``drawtext`` through text files with
  ``expansion=none``; ffmpeg runs in a scratch folder so the filter graph only
  names ``caption.txt`` / ``font.ttf`` and no user text or path is ever part
  of a filter string.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

from PIL import ImageFont

from services.reels.render.plan import (
    Chapter,
    ReelPlan,
    RenderRefused,
    RenderResult,
    Segment,
    SegmentCache,
    Source,
    SourceProbe,
    Target,
    choose_target,
    segment_key,
    title_key,
)
from shared.media.facts import stream_rotation
from shared.media.ffmpeg import FfmpegError, run_ffmpeg
from shared.media.probe import Limits, MediaRejected, probe_av_info, probe_photo, sniff_file

__all__ = [
    "LocalSegmentCache",
    "choose_target",
    "probe_source",
    "render_reel",
    "segment_key",
]

TITLE_CARD_S = 3.0
TARGET_LUFS = -23.0
SEGMENT_TRUE_PEAK = -2.0  # headroom for the AAC encode and the join's residual gain
MAX_TRUE_PEAK = -1.0
LOUDNESS_TOLERANCE = 0.3  # of the joined programme before a corrective join (spec: ±0.5)
LOUDNESS_RANGE = 20.0
FADE_S = 0.005  # at every join: no click, far shorter than a frame
SILENCE_LUFS = -60.0  # quieter than this is silence: nothing to normalise
BACKGROUND = "0x0b2545"  # title card and audio-only segments
PROGRESS_EVERY_S = 0.25
_JOIN_WEIGHT = 0.15  # the join copies video: it costs a fraction of an encode
_FONT_PREFERENCES = ("DejaVu Sans", "Noto Sans", "Liberation Sans")
# Letters a title font must draw: every Vietnamese vowel with every tone, and Đ.
VIETNAMESE_SAMPLE = (
    "ĐđƠơƯưĂăÂâÊêÔô" + "ẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳỴỵỶỷỸỹ"
)


class FontMissing(RuntimeError):
    """No installed font draws Vietnamese: a machine problem, not the reel's."""


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


# ---------------------------------------------------------------- probing


def _fraction(text: object) -> Fraction | None:
    num, _, den = str(text or "").partition("/")
    try:
        rate = Fraction(int(num), int(den or 1))
    except (ValueError, ZeroDivisionError):
        return None
    return rate if rate > 0 else None


@dataclass(frozen=True)
class _Probed:
    probe: SourceProbe
    demuxer: str
    video_start_s: float  # video stream start relative to the file's start
    interlaced: bool = False  # broadcast 1080i/576i: deinterlaced, rate kept
    # SD (BT.601) or full-range pictures: converted to BT.709 limited range.
    # Only then — swscale's colour conversion costs twice the scaling itself.
    convert_colours: bool = False


def _probe(source: Source, limits: Limits) -> _Probed:
    try:
        family, fmt = sniff_file(source.path)
        if family == "photo":
            photo = probe_photo(source.path, fmt, limits)
            probe = SourceProbe("photo", photo.width, photo.height, None, None, False)
            return _Probed(probe, "image2", 0.0, convert_colours=True)  # RGB: one frame, converted once
        result, info = probe_av_info(source.path, fmt, limits)
    except MediaRejected as exc:
        raise RenderRefused(exc.code, exc.message_vi, exc.message_en) from exc
    except OSError as exc:
        raise RenderRefused(
            "source_unreadable", "Không đọc được tệp nguồn của đoạn phim.", f"Cannot read a source file: {exc}"
        ) from exc
    raw_streams = info.get("streams")
    streams = [s for s in raw_streams if isinstance(s, dict)] if isinstance(raw_streams, list) else []
    fmt_info = info.get("format")
    start = float((fmt_info or {}).get("start_time") or 0.0) if isinstance(fmt_info, dict) else 0.0
    video = [
        s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if not video:
        return _Probed(SourceProbe("audio", None, None, None, result.duration_s, has_audio), fmt, 0.0)
    stream = video[0]
    fps = _fraction(stream.get("avg_frame_rate")) or _fraction(stream.get("r_frame_rate"))
    if fps is None or fps > 240:
        raise RenderRefused(
            "unknown_frame_rate",
            "Không xác định được tốc độ khung hình của video nguồn.",
            "The source video has no usable frame rate.",
        )
    video_start = float(stream.get("start_time") or start) - start
    width, height = result.width, result.height
    if stream_rotation(stream) in (90, 270):  # a phone's portrait clip stored on its side
        width, height = height, width
    interlaced = str(stream.get("field_order") or "") in ("tt", "bb", "tb", "bt")
    convert = str(stream.get("color_space") or "") in ("bt470bg", "smpte170m") or stream.get("color_range") == "pc"
    probe = SourceProbe("video", width, height, fps, result.duration_s, has_audio)
    return _Probed(probe, fmt, max(video_start, 0.0), interlaced, convert)


def probe_source(source: Source, limits: Limits | None = None) -> SourceProbe:
    """ffprobe facts of one source, by content; bad media is a :class:`RenderRefused`."""
    return _probe(source, limits or Limits()).probe


def _check_segment(index: int, segment: Segment, probed: _Probed) -> None:
    number = index + 1
    if not (math.isfinite(segment.in_s) and math.isfinite(segment.out_s)) or segment.in_s < 0:
        raise RenderRefused(
            "bad_segment_times",
            f"Đoạn {number}: thời điểm vào/ra không hợp lệ.",
            f"Segment {number}: invalid in/out times.",
        )
    if segment.out_s <= segment.in_s:
        raise RenderRefused(
            "empty_segment",
            f"Đoạn {number}: điểm ra phải sau điểm vào.",
            f"Segment {number}: out_s must be after in_s.",
        )
    expected = probed.probe.kind
    if segment.source.kind != expected:
        raise RenderRefused(
            "source_kind_mismatch",
            f"Đoạn {number}: tệp nguồn là {expected}, không phải {segment.source.kind}.",
            f"Segment {number}: the source is {expected}, not {segment.source.kind}.",
        )
    duration = probed.probe.duration_s
    # Half a millisecond of slack: in/out come rounded to three decimals.
    if duration is not None and segment.out_s > duration + 0.0005:
        raise RenderRefused(
            "segment_out_of_range",
            f"Đoạn {number}: điểm ra {segment.out_s:.3f}s vượt quá thời lượng nguồn {duration:.3f}s.",
            f"Segment {number}: out {segment.out_s:.3f}s is past the source's end ({duration:.3f}s).",
        )


# ---------------------------------------------------------------- text and fonts


def _font_covers(path: str) -> bool:
    try:
        font = ImageFont.truetype(path, 24)
    except OSError:
        return False

    # A missing glyph comes out as the font's .notdef box, identical for all of them.
    def drawn(ch: str) -> tuple[tuple[int, int], bytes]:
        mask = font.getmask(ch)
        return mask.size, bytes(mask)

    notdef = drawn("\U0010fffd")
    return all(drawn(ch) != notdef for ch in VIETNAMESE_SAMPLE)


# Where Debian's fonts-dejavu-core puts them: used when fontconfig's fc-match is absent.
_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


@cache
def find_font(bold: bool = False) -> Path:
    """A font file (via fontconfig) that draws every Vietnamese letter."""
    style = ":style=Bold" if bold else ""
    candidates = [f"{family}{style}" for family in _FONT_PREFERENCES] + [f"sans-serif:lang=vi{style}"]
    found: list[str] = []
    for pattern in candidates:
        try:
            done = subprocess.run(
                ["fc-match", "-f", "%{file}", pattern], capture_output=True, text=True, timeout=30, check=False
            )
        except (FileNotFoundError, subprocess.TimeoutExpired):
            break
        found.append(done.stdout.strip())
    found.append(str(_DEJAVU / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")))
    for path in found:
        if path and Path(path).is_file() and _font_covers(path):
            return Path(path)
    raise FontMissing(
        "no font with every Vietnamese glyph is installed: install the Debian package fonts-dejavu-core "
        "(deploy.local.installers.reel_fonts)"
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """NFC, no control or direction characters, single-spaced lines."""
    text = _CONTROL.sub(" ", unicodedata.normalize("NFC", text).replace("\r\n", "\n"))
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def wrap_text(text: str, font_path: Path, size: int, max_width: float, max_lines: int) -> str:
    """Greedy word wrap measured with the real font (drawtext does not wrap)."""
    font = ImageFont.truetype(str(font_path), size)
    out: list[str] = []
    for paragraph in clean_text(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and font.getlength(trial) > max_width:
                out.append(line)
                line = word
            else:
                line = trial
        if line:
            out.append(line)
    if len(out) > max_lines:
        out = out[:max_lines]
        out[-1] = out[-1].rstrip(" .,;") + "…"
    return "\n".join(out)


def _escape_metadata(text: str) -> str:
    # ffmetadata: '=', ';', '#', '\\' and newlines are escaped with a backslash.
    return re.sub(r"([=;#\\\n])", r"\\\1", text)


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _vtt_text(text: str) -> str:
    one_line = " ".join(text.split())
    # Escaping ">" also breaks up a "-->" that would end the cue timing line.
    return one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chapters_vtt(chapters: tuple[Chapter, ...]) -> str:
    cues = [
        f"{n}\n{_vtt_time(c.start_s)} --> {_vtt_time(c.end_s)}\n{_vtt_text(c.title)}"
        for n, c in enumerate(chapters, start=1)
    ]
    return "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def chapters_ffmetadata(title: str, chapters: tuple[Chapter, ...], fps: Fraction) -> str:
    # Chapter times counted in frames: exact on the reel's frame grid.
    lines = [";FFMETADATA1", f"title={_escape_metadata(title)}"]
    for chapter in chapters:
        lines += [
            "[CHAPTER]",
            f"TIMEBASE={fps.denominator}/{fps.numerator}",
            f"START={round(chapter.start_s * fps)}",
            f"END={round(chapter.end_s * fps)}",
            f"title={_escape_metadata(' '.join(chapter.title.split()))}",
        ]
    return "\n".join(lines) + "\n"


def chapter_title(index: int, segment: Segment) -> str:
    caption = clean_text(segment.caption)
    return " ".join(caption.split()) if caption else f"Đoạn {index + 1}"


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class _Cut:
    """A segment's decode window on its source and its exact output length."""

    seek_s: float  # input -ss: a quarter frame before the first kept frame
    lead_s: float  # audio to drop after the seek so sound starts with that frame
    read_s: float  # input -t: enough to produce every frame
    frames: int
    samples: int


def frame_count(seconds: float, fps: Fraction) -> int:
    return max(1, round(Fraction(seconds).limit_denominator(1_000_000) * fps))


def _samples(frames: int, target: Target) -> int:
    return round(frames * target.sample_rate / target.fps)


def _cut(segment: Segment, probed: _Probed, target: Target) -> _Cut:
    frames = frame_count(segment.out_s - segment.in_s, target.fps)
    samples = _samples(frames, target)
    fps = probed.probe.fps
    if probed.probe.kind != "video" or fps is None:
        return _Cut(segment.in_s, 0.0, segment.out_s - segment.in_s + 1.0, frames, samples)
    # The frame on screen at in_s (in/out are rounded to the millisecond).
    first = math.floor((segment.in_s - probed.video_start_s + 0.0005) * fps)
    first_s = probed.video_start_s + float(first / fps)
    seek = max(first_s - float(1 / fps) / 4, 0.0)
    # Read a few frames past the end (decoding more would be wasted work).
    return _Cut(seek, first_s - seek, float(frames / target.fps) + 3 * float(1 / fps), frames, samples)


def _base_args(progress: bool) -> list[str]:
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-y", "-nostats"]
    return [*args, "-progress", "pipe:1"] if progress else args


def _input_args(path: Path, demuxer: str, seek_s: float | None, read_s: float | None) -> list[str]:
    args: list[str] = []
    if seek_s:
        args += ["-ss", f"{seek_s:.6f}"]
    if read_s:
        args += ["-t", f"{read_s:.6f}"]
    args += ["-f", demuxer, "-protocol_whitelist", "file"]
    if demuxer == "mov":
        args += ["-enable_drefs", "0"]  # MP4 data references can point at other files
    return [*args, "-i", f"file:{path}"]


BT709 = "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"


def _picture_chain(target: Target, frames: int, pad: str, convert_colours: bool) -> str:
    """Fit inside the target (letterbox/pillarbox, never stretch), labelled
    BT.709 limited range whatever the source (identical streams, so the join
    can copy them), then exactly ``frames`` frames, the last one repeated if
    the source runs short (``pad``: tpad's length option)."""
    w, h = target.width, target.height
    colours = ":out_color_matrix=bt709:out_range=tv" if convert_colours else ""
    return (
        f"scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2{colours},"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:black,setsar=1,format=yuv420p,"
        f"{BT709},tpad=stop_mode=clone:{pad},trim=end_frame={frames},setpts=N/({_rate(target.fps)}*TB)"
    )


def _rate(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def _caption_filter(target: Target, has_caption: bool) -> str:
    if not has_caption:
        return ""
    size = max(12, round(target.height / 22))
    margin = round(target.height / 14)
    border = max(4, round(size / 3))
    return (
        f",drawtext=fontfile=font.ttf:textfile=caption.txt:expansion=none:reload=0"
        f":fontsize={size}:fontcolor=white:line_spacing={round(size / 4)}"
        f":box=1:boxcolor=black@0.62:boxborderw={border}"
        f":x={round(target.width / 18)}:y=h-text_h-{margin}"
    )


def _audio_tail(samples: int, target: Target, gain: str) -> str:
    """Exact length, the segment's loudness, and short fades at both joins."""
    seconds = samples / target.sample_rate
    return (
        f"{gain}aresample={target.sample_rate},apad,atrim=end_sample={samples},"
        f"afade=t=in:d={FADE_S},afade=t=out:st={max(seconds - FADE_S, 0):.6f}:d={FADE_S},"
        "aformat=sample_fmts=s16:channel_layouts=stereo"
    )


def _audio_head(target: Target, lead_s: float, samples: int) -> str:
    return (
        f"[0:a:0]atrim=start={lead_s:.6f},asetpts=PTS-STARTPTS,"
        f"aresample={target.sample_rate},aformat=sample_fmts=fltp:channel_layouts=stereo,"
        f"apad,atrim=end_sample={samples}"
    )


@dataclass(frozen=True)
class _Loudness:
    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float


def _loudnorm(measured: _Loudness | None) -> str:
    if measured is None or measured.input_i < SILENCE_LUFS:
        return ""
    return (
        f"loudnorm=I={TARGET_LUFS}:TP={SEGMENT_TRUE_PEAK}:LRA={LOUDNESS_RANGE}"
        f":measured_I={measured.input_i}:measured_TP={measured.input_tp}"
        f":measured_LRA={measured.input_lra}:measured_thresh={measured.input_thresh}"
        f":offset={measured.target_offset}:linear=true:print_format=none,"
    )


def _parse_loudnorm(stderr: str) -> _Loudness | None:
    found = re.findall(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if not found:
        return None
    data = json.loads(found[-1])
    values = [float(data[k]) for k in ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")]
    if not all(math.isfinite(v) for v in values):
        return None
    return _Loudness(*values)


_SUMMARY_I = re.compile(r"I:\s+(-?[\d.]+|-inf)\s+LUFS")
_SUMMARY_PEAK = re.compile(r"Peak:\s+(-?[\d.]+|-inf)\s+dBFS")


def parse_ebur128(stderr: str) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) from ebur128's summary."""
    summary = stderr[stderr.rfind("Summary:") :]
    lufs = _SUMMARY_I.findall(summary)
    peak = _SUMMARY_PEAK.findall(summary)
    if not lufs or not peak:
        raise FfmpegError("Không đo được độ to.", "loudness measurement failed", summary[-300:], retryable=False)
    return float(lufs[-1]), float(peak[-1])


def _x264_args(target: Target, draft: bool) -> list[str]:
    # One fixed set of encoder settings for every segment of every reel: the
    # join can then copy the video (identical SPS/PPS) instead of re-encoding.
    gop = max(1, round(2 * target.fps))
    return [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23" if draft else "18",
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(gop),
        "-keyint_min",
        str(gop),
        "-sc_threshold",
        "0",
        "-r",
        _rate(target.fps),
    ]


# ---------------------------------------------------------------- the render


class _Progress:
    """Maps ffmpeg positions onto 0–100 over the whole render, throttled."""

    def __init__(self, on_progress: Callable[[float], None], total_units: float) -> None:
        self.on_progress = on_progress
        self.total = max(total_units, 1e-9)
        self.done = 0.0
        self.last_sent = -1.0
        self.last_at = 0.0

    def step(self, units: float, length: float) -> Callable[[float], None]:
        def report(out_time_s: float) -> None:
            fraction = min(max(out_time_s / length, 0.0), 1.0) if length > 0 else 1.0
            self.emit(self.done + units * fraction)

        return report

    def finish(self, units: float) -> None:
        self.done += units
        self.emit(self.done)

    def emit(self, units: float, *, force: bool = False) -> None:
        percent = round(min(100.0, 100.0 * units / self.total), 1)
        now = time.monotonic()
        if percent <= self.last_sent or (not force and now - self.last_at < PROGRESS_EVERY_S and percent < 100):
            return
        self.last_sent, self.last_at = percent, now
        self.on_progress(percent)


class _Deadline:
    def __init__(self, timeout_s: float) -> None:
        self.ends = time.monotonic() + timeout_s

    def left(self) -> float:
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise FfmpegError(
                "Dựng phim quá thời gian cho phép.", "the render timed out", "", retryable=True, code="ffmpeg_timeout"
            )
        return remaining


def _refused_from(index: int | None, exc: FfmpegError) -> RenderRefused:
    where_vi = f"Đoạn {index + 1}: " if index is not None else ""
    where_en = f"Segment {index + 1}: " if index is not None else ""
    return RenderRefused(
        "source_undecodable",
        f"{where_vi}không giải mã được tệp nguồn ({exc.detail[:200]}).",
        f"{where_en}the source could not be decoded ({exc.detail[:200]}).",
    )


async def _measure_segment(segment: Segment, probed: _Probed, cut: _Cut, target: Target, left: float) -> _Loudness:
    argv = [
        *_base_args(False),
        *_input_args(segment.source.path, probed.demuxer, cut.seek_s, cut.read_s),
        "-filter_complex",
        _audio_head(target, cut.lead_s, cut.samples)
        + f",loudnorm=I={TARGET_LUFS}:TP={SEGMENT_TRUE_PEAK}:LRA={LOUDNESS_RANGE}:print_format=json[a]",
        "-map",
        "[a]",
        "-f",
        "null",
        "-",
    ]
    stats = await run_ffmpeg(argv, left)
    return _parse_loudnorm(stats.stderr) or _Loudness(-70.0, -70.0, 0.0, -80.0, 0.0)


def _segment_graph(segment: Segment, probed: _Probed, cut: _Cut, target: Target, loudness: _Loudness | None) -> str:
    caption = _caption_filter(target, bool(clean_text(segment.caption)))
    kind = probed.probe.kind
    fps = _rate(target.fps)
    if kind == "video":
        # Cut first at the source's own rate, then resample time to the target.
        deinterlace = "bwdif=mode=send_frame:deint=interlaced," if probed.interlaced else ""
        pad = f"stop_duration={float(cut.frames / target.fps):.6f}"
        chain = _picture_chain(target, cut.frames, pad, probed.convert_colours)
        video = f"[0:v:0]{deinterlace}setpts=PTS-STARTPTS,fps={fps}:round=down,{chain}{caption}[v]"
    elif kind == "photo":  # decoded once, then the one frame repeated
        video = f"[0:v:0]{_picture_chain(target, cut.frames, f'stop={cut.frames}', True)}{caption}[v]"
    else:  # audio over the title background
        seconds = cut.frames / target.fps
        video = (
            f"color=c={BACKGROUND}:s={target.width}x{target.height}:r={fps}:d={float(seconds) + 1:.6f},"
            f"format=yuv420p,{BT709},trim=end_frame={cut.frames},setpts=N/({fps}*TB){caption}[v]"
        )
    if probed.probe.has_audio and kind != "photo":
        audio = (
            f"{_audio_head(target, cut.lead_s, cut.samples)},{_audio_tail(cut.samples, target, _loudnorm(loudness))}"
        )
    else:
        audio = f"anullsrc=r={target.sample_rate}:cl=stereo,{_audio_tail(cut.samples, target, '')}"
    return f"{video};{audio}[a]"


async def _encode(
    argv_inputs: list[str],
    graph: str,
    out: Path,
    job_dir: Path,
    target: Target,
    draft: bool,
    frames: int,
    left: float,
    report: Callable[[float], None],
) -> None:
    (job_dir / "graph.txt").write_text(graph)
    tmp = out.with_name(out.name + ".part")
    argv = [
        *_base_args(True),
        *argv_inputs,
        "-filter_complex_script",
        "graph.txt",
        "-map",
        "[v]",
        "-map",
        "[a]",
        *_x264_args(target, draft),
        "-c:a",
        "pcm_s16le",
        "-map_metadata",
        "-1",
        "-f",
        "mov",
        f"file:{tmp}",
    ]
    await run_ffmpeg(argv, left, cwd=job_dir, on_out_time_s=report)
    await asyncio.to_thread(check_part, tmp, frames, _samples(frames, target))
    os.replace(tmp, out)


def check_part(path: Path, frames: int, samples: int) -> None:
    """The invariant every join relies on: exactly ``frames`` pictures and
    ``samples`` audio samples. A part that breaks it would shift everything
    after it, so it is an error here rather than drift in the reel."""
    argv = ["ffprobe", "-v", "error", "-protocol_whitelist", "file", "-f", "mov", "-show_entries"]
    argv += ["stream=codec_type,nb_frames,duration_ts", "-of", "json", f"file:{path}"]
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    streams = json.loads(done.stdout or b"{}").get("streams", [])
    found = {s.get("codec_type"): s for s in streams}
    got_frames = int(found.get("video", {}).get("nb_frames") or -1)
    got_samples = int(found.get("audio", {}).get("duration_ts") or -1)
    if got_frames != frames or got_samples != samples:
        raise FfmpegError(
            "Đoạn phim dựng ra sai độ dài.",
            "a normalised segment has the wrong length",
            f"expected {frames} frames/{samples} samples, got {got_frames}/{got_samples}",
            retryable=False,
            code="segment_length",
        )


def _job_dir(work_dir: Path, name: str, font: Path, caption: str) -> Path:
    job = work_dir / name
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True)
    (job / "font.ttf").symlink_to(font)
    (job / "caption.txt").write_text(caption, encoding="utf-8")
    return job


async def _render_segment(
    index: int,
    segment: Segment,
    probed: _Probed,
    target: Target,
    draft: bool,
    out: Path,
    work_dir: Path,
    deadline: _Deadline,
    report: Callable[[float], None],
) -> None:
    cut = _cut(segment, probed, target)
    font = find_font()
    size = max(12, round(target.height / 22))
    caption = wrap_text(segment.caption, font, size, target.width * 0.85, 3)
    job = _job_dir(work_dir, f"job-{index}", font, caption)
    try:
        loudness = None
        if probed.probe.has_audio and probed.probe.kind != "photo":
            loudness = await _measure_segment(segment, probed, cut, target, deadline.left())
        graph = _segment_graph(segment, probed, cut, target, loudness)
        if probed.probe.kind == "photo":
            # pattern_type none: a "%d" in a file name is not a numbered sequence.
            inputs = ["-framerate", _rate(target.fps), "-pattern_type", "none"]
            inputs += _input_args(segment.source.path, "image2", None, None)
        elif probed.probe.kind == "audio" and not probed.probe.has_audio:
            inputs = []
        else:
            inputs = _input_args(segment.source.path, probed.demuxer, cut.seek_s, cut.read_s)
        await _encode(inputs, graph, out, job, target, draft, cut.frames, deadline.left(), report)
    except FfmpegError as exc:
        if exc.retryable:
            raise
        raise _refused_from(index, exc) from exc
    finally:
        shutil.rmtree(job, ignore_errors=True)


async def _render_title(
    plan: ReelPlan, target: Target, draft: bool, out: Path, work_dir: Path, left: float, report: Callable[[float], None]
) -> None:
    font = find_font(bold=True)
    title_size = max(16, round(target.height / 13))
    sub_size = max(12, round(target.height / 24))
    title = wrap_text(plan.title, font, title_size, target.width * 0.86, 3)
    subtitle = wrap_text(plan.subtitle, find_font(), sub_size, target.width * 0.86, 3)
    job = _job_dir(work_dir, "job-title", font, title)
    (job / "subtitle.txt").write_text(subtitle, encoding="utf-8")
    (job / "regular.ttf").symlink_to(find_font())
    frames = frame_count(TITLE_CARD_S, target.fps)
    samples = _samples(frames, target)
    fps = _rate(target.fps)
    gap = round(target.height / 30)
    video = (
        f"color=c={BACKGROUND}:s={target.width}x{target.height}:r={fps}:d={TITLE_CARD_S + 1},format=yuv420p,{BT709},"
        f"drawtext=fontfile=font.ttf:textfile=caption.txt:expansion=none:fontsize={title_size}:fontcolor=white"
        f":line_spacing={round(title_size / 4)}:x=(w-text_w)/2:y=h/2-text_h-{gap}"
    )
    if subtitle:
        video += (
            f",drawtext=fontfile=regular.ttf:textfile=subtitle.txt:expansion=none:fontsize={sub_size}"
            f":fontcolor=0xd8e2f0:line_spacing={round(sub_size / 4)}:x=(w-text_w)/2:y=h/2+{gap}"
        )
    video += f",trim=end_frame={frames},setpts=N/({fps}*TB)[v]"
    audio = f"anullsrc=r={target.sample_rate}:cl=stereo,{_audio_tail(samples, target, '')}[a]"
    try:
        await _encode([], f"{video};{audio}", out, job, target, draft, frames, left, report)
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _concat_list(parts: list[tuple[Path, Fraction]]) -> str:
    lines = ["ffconcat version 1.0"]
    for path, seconds in parts:
        quoted = str(path).replace("'", "'\\''")
        lines += [f"file 'file:{quoted}'", f"duration {float(seconds):.9f}"]
    return "\n".join(lines) + "\n"


async def _measure_file(path: Path, demuxer: str, left: float) -> tuple[float, float]:
    argv = [
        *_base_args(False),
        *_input_args(path, demuxer, None, None),
        "-map",
        "0:a:0",
        "-af",
        "ebur128=peak=true:framelog=verbose",
        "-f",
        "null",
        "-",
    ]
    return parse_ebur128((await run_ffmpeg(argv, left)).stderr)


async def _join(
    concat: Path,
    metadata: Path,
    out: Path,
    gain_db: float,
    left: float,
    report: Callable[[float], None],
) -> None:
    tmp = out.with_name(out.name + ".part")
    argv = [
        *_base_args(True),
        "-safe",
        "0",
        *_input_args(concat, "concat", None, None),
        *_input_args(metadata, "ffmetadata", None, None),
        "-map",
        "0:v:0",
        "-map",
        "0:a:0",
        "-map_metadata",
        "1",
        "-map_chapters",
        "1",
        "-c:v",
        "copy",
        "-af",
        f"volume={gain_db:.2f}dB",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        "-ar",
        "48000",
        "-ac",
        "2",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        f"file:{tmp}",
    ]
    await run_ffmpeg(argv, left, on_out_time_s=report)
    os.replace(tmp, out)


async def render_reel(
    plan: ReelPlan,
    work_dir: Path,
    cache: SegmentCache,
    on_progress: Callable[[float], None],
    *,
    timeout_s: float,
) -> RenderResult:
    """Render ``plan`` into ``work_dir/reel.mp4`` and ``work_dir/chapters.vtt``.

    Segments found in ``cache`` are reused, the others rendered and stored.
    Raises :class:`RenderRefused` for bad input (out of range, undecodable
    source…) and :class:`FfmpegError` (``retryable``) for machine trouble.
    """
    deadline = _Deadline(timeout_s)
    if not plan.segments:
        raise RenderRefused("no_segments", "Phim chưa có đoạn nào.", "The reel has no segments.")
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(find_font)  # a missing font fails before any work
    limits = Limits()
    # Each distinct source probed once, side by side (ffprobe waits on its process, not the CPU).
    distinct = list({segment.source.path: segment.source for segment in plan.segments}.values())
    found = await asyncio.gather(*(asyncio.to_thread(_probe, source, limits) for source in distinct))
    probed_by_path = {source.path: result for source, result in zip(distinct, found, strict=True)}
    probed: list[_Probed] = []
    for index, segment in enumerate(plan.segments):
        probed.append(probed_by_path[segment.source.path])
        _check_segment(index, segment, probed[-1])
    target = choose_target(plan, [p.probe for p in probed])
    draft = plan.profile == "draft"

    frames = [frame_count(TITLE_CARD_S, target.fps)] + [
        frame_count(s.out_s - s.in_s, target.fps) for s in plan.segments
    ]
    keys = [title_key(plan.title, plan.subtitle, target, plan.profile)] + [
        segment_key(s, target, plan.profile) for s in plan.segments
    ]
    parts_dir = work_dir / "parts"
    parts_dir.mkdir(exist_ok=True)
    paths = [parts_dir / f"{key}.mov" for key in keys]
    # A segment used twice is rendered once: later positions share its file. The cache
    # is asked for every segment at once (each a round trip to S3).
    first_positions = [position for position, key in enumerate(keys) if keys.index(key) == position]
    cached = await asyncio.gather(*(asyncio.to_thread(cache.fetch, keys[p], paths[p]) for p in first_positions))
    missing = [position for position, hit in zip(first_positions, cached, strict=True) if not hit]
    total_s = float(sum(frames) / target.fps)
    units = {p: float(frames[p] / target.fps) for p in missing}
    progress = _Progress(on_progress, sum(units.values()) + _JOIN_WEIGHT * total_s)
    progress.emit(0.0, force=True)

    # Each rendered segment goes to the cache while the next one renders.
    storing: list[asyncio.Future[None]] = []
    try:
        for position in missing:
            length = units[position]
            report = progress.step(length, length)
            if position == 0:
                await _render_title(plan, target, draft, paths[0], work_dir, deadline.left(), report)
            else:
                index = position - 1
                await _render_segment(
                    index,
                    plan.segments[index],
                    probed[index],
                    target,
                    draft,
                    paths[position],
                    work_dir,
                    deadline,
                    report,
                )
            storing.append(asyncio.ensure_future(asyncio.to_thread(cache.store, keys[position], paths[position])))
            progress.finish(length)
    finally:
        # A store runs in a thread that cannot be cancelled: none outlives the render.
        stored = await asyncio.gather(*storing, return_exceptions=True)
    for outcome in stored:
        if isinstance(outcome, BaseException):
            raise outcome

    # Chapters: the title card, then one per segment, on the reel's frame grid.
    chapters: list[Chapter] = []
    at = 0
    names = [clean_text(plan.title).replace("\n", " ") or "Mở đầu"] + [
        chapter_title(i, s) for i, s in enumerate(plan.segments)
    ]
    for name, count in zip(names, frames, strict=True):
        chapters.append(Chapter(name, float(at / target.fps), float((at + count) / target.fps)))
        at += count
    chapter_tuple = tuple(chapters)
    concat = work_dir / "join.ffconcat"
    concat.write_text(_concat_list([(p, n / target.fps) for p, n in zip(paths, frames, strict=True)]))
    metadata = work_dir / "chapters.ffmeta"
    metadata.write_text(chapters_ffmetadata(clean_text(plan.title), chapter_tuple, target.fps), encoding="utf-8")

    # Every segment is already at -23 LUFS, so the programme is too, give or
    # take the gating; the output is measured (after AAC, what the viewer
    # gets) and only if it is off does a second join apply the small residual
    # gain — audio only, the video is copied either way.
    output = work_dir / "reel.mp4"
    join_units = _JOIN_WEIGHT * total_s
    gain = 0.0
    try:
        await _join(concat, metadata, output, gain, deadline.left(), progress.step(join_units, total_s))
    except FfmpegError as exc:
        if exc.retryable:
            raise
        raise _refused_from(None, exc) from exc
    lufs, peak = await _measure_file(output, "mov", deadline.left())
    if peak > MAX_TRUE_PEAK or (lufs > SILENCE_LUFS and abs(lufs - TARGET_LUFS) > LOUDNESS_TOLERANCE):
        gain = _residual_gain(lufs, peak)
        await _join(concat, metadata, output, gain, deadline.left(), lambda _s: None)
        lufs, peak = await _measure_file(output, "mov", deadline.left())
    progress.finish(join_units)
    progress.emit(progress.total, force=True)

    vtt = work_dir / "chapters.vtt"
    tmp_vtt = vtt.with_name("chapters.vtt.part")
    tmp_vtt.write_text(chapters_vtt(chapter_tuple), encoding="utf-8")
    os.replace(tmp_vtt, vtt)
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return RenderResult(
        output=output,
        chapters_vtt=vtt,
        chapters=chapter_tuple,
        duration_s=total_s,
        integrated_lufs=lufs,
        true_peak_dbtp=peak,
        target=target,
        segments_rendered=len(missing),
        segments_cached=len(keys) - len(missing),
    )


def _residual_gain(lufs: float, peak: float) -> float:
    """The gain (dB) that brings the programme to −23 LUFS without pushing the
    true peak over −1.5 dBTP (headroom for the AAC encode's overshoot)."""
    if not math.isfinite(lufs) or lufs < SILENCE_LUFS:
        return 0.0
    gain = TARGET_LUFS - lufs
    return min(gain, (MAX_TRUE_PEAK - 0.5) - peak)
