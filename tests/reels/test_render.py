"""The reel renderer against real ffmpeg, on generated sources built to reveal
the classic defects (tests/reels_media.py): keyframe cuts, drift at joins,
lost loudness, stretched portrait clips, broken Vietnamese, filter injection.

No servers: the renderer is a pure pipeline on local files. Reels render with
the draft profile (960×540, same frame-rate rules) to keep ``make test`` short;
``MAM_REEL_TEST_BROADCAST=1`` renders the full-size broadcast profile instead.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from deploy.local import installers
from services.reels.render import (
    LocalSegmentCache,
    Profile,
    ReelPlan,
    RenderRefused,
    RenderResult,
    Segment,
    Source,
    render_reel,
)
from services.reels.render.pipeline import TITLE_CARD_S, parse_ebur128
from services.tagger.ocr import OcrSettings, ocr_image
from tests.reels_media import (
    SPECS,
    beep_onsets,
    content_rect,
    decode_barcode,
    flash_frames,
    is_flash,
    make_sources,
    read_frames,
)

PROFILE = Profile.BROADCAST if os.environ.get("MAM_REEL_TEST_BROADCAST") else Profile.DRAFT
TITLE = "Tổng kết hoạt động HĐND tỉnh năm 2023"
SUBTITLE = "Kỳ họp thứ mười hai — HĐND tỉnh khóa X"
INJECTION = "'; drawtext=text=HACK:fontsize=99 %{pts} [x]"
READ_SIZE = (480, 270)


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    installers.reel_fonts()
    installers.tesseract_vietnamese()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Source]:
    return make_sources(tmp_path_factory.mktemp("reel-sources"))


def render(plan: ReelPlan, work: Path, cache: LocalSegmentCache, progress: list[float] | None = None) -> RenderResult:
    sink = progress if progress is not None else []
    return asyncio.run(render_reel(plan, work, cache, sink.append, timeout_s=900))


def mixed_segments(sources: dict[str, Source]) -> tuple[Segment, ...]:
    """Ten segments from every kind of source; each video cut holds a flash+beep."""
    return (
        Segment(sources["hd50"], 0.4, 1.4, "Khai mạc kỳ họp thứ mười hai"),
        Segment(sources["hd25"], 1.2, 2.0, INJECTION),
        Segment(sources["ntsc"], 0.3, 1.3, "Đại biểu phát biểu"),
        Segment(sources["portrait"], 2.2, 3.0, "Cử tri ghi bằng điện thoại"),
        Segment(sources["silent"], 0.2, 1.0, ""),
        Segment(sources["shortaudio"], 3.0, 4.0, "Tiếng ngắn hơn hình 300 ms"),
        Segment(sources["photo"], 0.0, 1.0, "Ảnh tư liệu"),
        Segment(sources["audio"], 0.2, 1.2, "Ghi âm chất vấn"),
        Segment(sources["hd50"], 2.3, 2.9, "Bế mạc"),
        Segment(sources["ntsc"], 2.2, 3.0, "Tổng kết"),
    )


@dataclass
class Rendered:
    result: RenderResult
    cache: LocalSegmentCache
    work: Path
    progress: list[float]
    plan: ReelPlan


@pytest.fixture(scope="module")
def mixed(sources: dict[str, Source], tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    plan = ReelPlan(TITLE, SUBTITLE, mixed_segments(sources), PROFILE)
    base = tmp_path_factory.mktemp("reel-mixed")
    cache = LocalSegmentCache(base / "cache")
    progress: list[float] = []
    result = render(plan, base / "work", cache, progress)
    return Rendered(result, cache, base / "work", progress, plan)


def _segment_starts(result: RenderResult) -> list[int]:
    fps = result.target.fps
    return [round(c.start_s * fps) for c in result.chapters[1:]]


def _frame_counts(result: RenderResult) -> list[int]:
    fps = result.target.fps
    return [round((c.end_s - c.start_s) * fps) for c in result.chapters[1:]]


def _expected_source_frames(segment: Segment, frames: int, target_fps: Fraction) -> tuple[int, int]:
    """The source frame on screen at in_s, and the one on screen when the
    segment's last output frame starts."""
    fps = SPECS[segment.source.path.stem].fps
    first = math.floor((segment.in_s + 0.0005) * fps)
    last = math.floor((first / fps + Fraction(frames - 1) / target_fps) * fps + Fraction(1, 10**6))
    return first, last


def _video_facts(result: RenderResult, segments: tuple[Segment, ...]) -> list[list[tuple[int | None, bool]]]:
    """Per segment, per output frame: (burnt-in source frame number, flash?)."""
    starts, counts = _segment_starts(result), _frame_counts(result)
    facts: list[list[tuple[int | None, bool]]] = [[] for _ in segments]
    frames = read_frames(result.output, READ_SIZE)
    index = 0
    for frame in frames:
        for n, (start, count) in enumerate(zip(starts, counts, strict=True)):
            spec = SPECS.get(segments[n].source.path.stem)
            if start <= index < start + count and spec is not None:
                rect = content_rect(spec.width, spec.height, result.target, READ_SIZE)
                facts[n].append((decode_barcode(frame, rect), is_flash(frame, rect)))
        index += 1
    return facts


def test_every_segment_starts_and_ends_on_the_source_frames_at_its_in_and_out_points(mixed: Rendered) -> None:
    facts = _video_facts(mixed.result, mixed.plan.segments)
    counts = _frame_counts(mixed.result)
    checked = 0
    for n, segment in enumerate(mixed.plan.segments):
        if segment.source.kind != "video":
            continue
        first, last = _expected_source_frames(segment, counts[n], mixed.result.target.fps)
        codes = [code for code, _ in facts[n]]
        assert len(codes) == counts[n]
        assert (codes[0], codes[-1]) == (first, last), f"segment {n + 1} ({segment.source.path.stem})"
        checked += 1
    assert checked == 8


def test_the_frame_rate_is_chosen_from_the_sources_and_broadcast_50p_is_kept(mixed: Rendered) -> None:
    assert mixed.result.target.fps == 50
    probe = _ffprobe(mixed.result.output, "stream=codec_type,avg_frame_rate,width,height,sample_rate,channels")
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    assert video["avg_frame_rate"] == "50/1"
    assert (video["width"], video["height"]) == (mixed.result.target.width, mixed.result.target.height)
    assert (audio["sample_rate"], audio["channels"]) == ("48000", 2)


def test_a_portrait_clip_is_pillarboxed_not_stretched(mixed: Rendered) -> None:
    result = mixed.result
    start = _segment_starts(result)[3]
    frame = next(read_frames(result.output, READ_SIZE, start_s=start / result.target.fps + 0.001, frames=1))
    rect = content_rect(1080, 1920, result.target, READ_SIZE)
    x0, _, cw, _ = rect
    # Black bars either side of a 9:16 picture, and the barcode readable at that aspect.
    assert frame.mean(0, 0, int(x0) - 2, 200) < 20
    assert frame.mean(int(x0 + cw) + 2, 0, READ_SIZE[0], 200) < 20
    assert frame.mean(int(x0) + 4, 150, int(x0 + cw) - 4, 170) > 40
    assert decode_barcode(frame, rect) is not None


def test_picture_and_sound_stay_in_sync_at_every_join(mixed: Rendered) -> None:
    # Seven flashes with their beeps in the video cuts, one more beep in the audio-only one.
    _assert_in_sync(mixed.result, mixed.plan.segments, flashes=7, beeps=8)


def _assert_in_sync(result: RenderResult, segments: tuple[Segment, ...], flashes: int, beeps: int) -> None:
    """Every flash in the picture has its beep within one frame, and both sit
    where the edit says (start of the segment + offset in the source), so no
    drift can build up along the reel."""
    fps = result.target.fps
    frame_s = float(1 / fps)
    heard = beep_onsets(result.output)
    facts = _video_facts(result, segments)
    starts = _segment_starts(result)
    matched = 0
    for n, segment in enumerate(segments):
        name = segment.source.path.stem
        spec = SPECS.get(name)
        if spec is None or spec.sample_rate is None:
            continue
        first = math.floor((segment.in_s + 0.0005) * spec.fps)
        seg_start = float(starts[n] / fps)
        for flash in flash_frames(spec):
            offset = float(Fraction(flash - first) / spec.fps)
            if not 0.05 < offset < float(len(facts[n]) / fps) - 0.1:
                continue
            expected = seg_start + offset
            flash_at = next(k for k, (_, lit) in enumerate(facts[n]) if lit and float(k / fps) >= offset - frame_s)
            picture_s = seg_start + float(flash_at / fps)
            sound_s = min(heard, key=lambda t: abs(t - expected))
            assert abs(picture_s - expected) <= frame_s + 1e-6, f"segment {n + 1}: flash at {picture_s}, {expected=}"
            assert abs(sound_s - expected) <= frame_s, f"segment {n + 1}: beep at {sound_s}, {expected=}"
            assert abs(sound_s - picture_s) <= frame_s
            matched += 1
    assert matched == flashes
    assert len(heard) == beeps  # no beep lost, none duplicated


def _ebur128(path: Path, start_s: float | None = None, duration_s: float | None = None) -> tuple[float, float]:
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-nostats"]
    if start_s is not None:
        argv += ["-ss", f"{start_s:.6f}"]
    argv += ["-i", str(path)]
    if duration_s is not None:
        argv += ["-t", f"{duration_s:.6f}"]
    argv += ["-vn", "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True)
    return parse_ebur128(done.stderr)


def test_the_reel_is_at_minus_23_lufs_with_true_peak_under_minus_1_and_every_segment_within_2_lu(
    mixed: Rendered,
) -> None:
    lufs, peak = _ebur128(mixed.result.output)
    assert abs(lufs - -23.0) <= 0.5
    assert peak <= -1.0
    assert (mixed.result.integrated_lufs, mixed.result.true_peak_dbtp) == pytest.approx((lufs, peak), abs=0.05)
    for n, chapter in enumerate(mixed.result.chapters[1:]):
        source = mixed.plan.segments[n].source
        if source.kind == "photo" or SPECS.get(source.path.stem, SPECS["hd50"]).sample_rate is None:
            continue  # silence: nothing to measure
        seg_lufs, _ = _ebur128(mixed.result.output, chapter.start_s, chapter.end_s - chapter.start_s)
        assert abs(seg_lufs - -23.0) <= 2.0, f"segment {n + 1} ({source.path.stem}) at {seg_lufs} LUFS"


def _ffprobe(path: Path, entries: str) -> dict[str, list[dict[str, object]]]:
    argv = ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", str(path)]
    parsed: dict[str, list[dict[str, object]]] = json.loads(
        subprocess.run(argv, capture_output=True, check=True).stdout
    )
    return parsed


def test_the_mp4_has_one_chapter_per_segment_after_the_title_and_the_webvtt_matches(mixed: Rendered) -> None:
    result = mixed.result
    chapters = _ffprobe(result.output, "chapter=start_time,end_time:chapter_tags=title")["chapters"]
    assert len(chapters) == len(mixed.plan.segments) + 1
    frame_s = float(1 / result.target.fps)
    at = TITLE_CARD_S
    for n, (chapter, segment) in enumerate(zip(chapters[1:], mixed.plan.segments, strict=True)):
        assert abs(float(str(chapter["start_time"])) - at) <= frame_s
        at += segment.out_s - segment.in_s
        tags = chapter["tags"]
        assert isinstance(tags, dict)
        assert tags["title"] == (" ".join(segment.caption.split()) or f"Đoạn {n + 1}")
    assert abs(float(str(chapters[-1]["end_time"])) - at) <= frame_s
    vtt = result.chapters_vtt.read_text(encoding="utf-8")
    cues = re.findall(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> [\d:.]+\n(.+)", vtt)
    assert vtt.startswith("WEBVTT\n")
    assert len(cues) == len(chapters)
    for cue, chapter in zip(cues, chapters, strict=True):
        h, m, s, ms, title = cue
        assert abs(int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000 - float(str(chapter["start_time"]))) <= frame_s
        tags = chapter["tags"]
        assert isinstance(tags, dict)
        assert title == str(tags["title"]).replace("<", "&lt;").replace(">", "&gt;")


def _grab(result: RenderResult, at_s: float, dest: Path, crop: tuple[float, float, float, float] | None = None) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            f"{at_s:.3f}",
            "-i",
            str(result.output),
            "-frames:v",
            "1",
            str(dest),
        ],
        check=True,
    )
    if crop is not None:
        with Image.open(dest) as img:
            w, h = img.size
            box = (int(crop[0] * w), int(crop[1] * h), int(crop[2] * w), int(crop[3] * h))
            part = img.crop(box)
            part.resize((part.width * 3, part.height * 3), Image.Resampling.LANCZOS).save(dest)
    return dest


def test_the_vietnamese_title_card_and_a_lower_third_read_back_with_every_diacritic(
    mixed: Rendered, tmp_path: Path
) -> None:
    title_text = " ".join(ocr_image(_grab(mixed.result, 1.5, tmp_path / "title.png"), OcrSettings()).split())
    assert TITLE in title_text
    assert "Kỳ họp thứ mười hai" in title_text
    first = mixed.result.chapters[1]
    lower = _grab(mixed.result, first.start_s + 0.5, tmp_path / "lower.png", (0, 0.72, 1, 0.98))
    assert "Khai mạc kỳ họp thứ mười hai" in " ".join(ocr_image(lower, OcrSettings()).split())


def test_a_caption_written_in_filter_syntax_comes_out_as_literal_text(mixed: Rendered, tmp_path: Path) -> None:
    chapter = mixed.result.chapters[2]
    lower = _grab(mixed.result, chapter.start_s + 0.3, tmp_path / "injection.png", (0, 0.72, 1, 0.98))
    text = ocr_image(lower, OcrSettings(lang="eng"))
    assert "drawtext=text=HACK" in text.replace(" ", "")
    assert "%{pts}" in text.replace(" ", "")


def test_progress_goes_from_0_to_100_in_a_few_throttled_steps(mixed: Rendered) -> None:
    steps = mixed.progress
    assert steps[0] == 0.0 and steps[-1] == 100.0
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert 3 <= len(steps) <= 4 * 60  # ≤ 4 a second over any plausible render of this reel


def test_changing_one_caption_re_encodes_only_that_segment_and_the_join(
    mixed: Rendered, tmp_path_factory: pytest.TempPathFactory
) -> None:
    before = mixed.cache.keys()
    assert mixed.result.segments_rendered == len(mixed.plan.segments) + 1  # the title card too
    segments = list(mixed.plan.segments)
    segments[4] = Segment(segments[4].source, segments[4].in_s, segments[4].out_s, "Chú thích đã sửa")
    plan = ReelPlan(TITLE, SUBTITLE, tuple(segments), PROFILE)
    again = render(plan, tmp_path_factory.mktemp("reel-edit"), mixed.cache)
    assert (again.segments_rendered, again.segments_cached) == (1, len(segments))
    assert len(mixed.cache.keys() - before) == 1
    assert again.chapters[5].title == "Chú thích đã sửa"
    assert abs(again.integrated_lufs - -23.0) <= 0.5


def test_thirty_joins_accumulate_no_drift(sources: dict[str, Source], tmp_path: Path) -> None:
    # Short cuts, each around one flash+beep, from sources of every rate and sample rate.
    cuts = {
        "hd25": (1.3, 1.9),
        "ntsc": (1.3, 1.8),
        "shortaudio": (3.3, 3.8),
        "portrait": (2.3, 2.8),
        "hd50": (2.3, 2.8),
    }
    names = list(cuts)
    segments = tuple(
        Segment(sources[name], *cuts[name], f"Cắt từ {name}") for name in (names[i % len(names)] for i in range(30))
    )
    result = render(ReelPlan(TITLE, "", segments, PROFILE), tmp_path / "work", LocalSegmentCache(tmp_path / "cache"))
    # Identical segments are rendered once: five distinct cuts plus the title card.
    assert result.segments_rendered == 6
    _assert_in_sync(result, segments, flashes=30, beeps=30)
    fps = result.target.fps
    assert result.duration_s == pytest.approx(TITLE_CARD_S + sum(s.out_s - s.in_s for s in segments), abs=1e-9)
    packets = _ffprobe(result.output, "stream=codec_type,nb_frames,duration")["streams"]
    video = next(s for s in packets if s["codec_type"] == "video")
    audio = next(s for s in packets if s["codec_type"] == "audio")
    assert int(str(video["nb_frames"])) == round(result.duration_s * fps)
    assert abs(float(str(audio["duration"])) - result.duration_s) < 0.025  # one AAC frame at most


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("past_the_end", "segment_out_of_range"),
        ("backwards", "empty_segment"),
        ("wrong_kind", "source_kind_mismatch"),
        ("not_media", "unsupported_media"),
        ("truncated", "truncated_media"),
    ],
)
def test_bad_input_is_refused_with_a_reason_before_anything_is_encoded(
    sources: dict[str, Source], tmp_path: Path, change: str, code: str
) -> None:
    clip = sources["hd25"]
    segment = Segment(clip, 1.0, 2.0, "")
    if change == "past_the_end":
        segment = Segment(clip, 3.0, 4.5, "")
    elif change == "backwards":
        segment = Segment(clip, 2.0, 2.0, "")
    elif change == "wrong_kind":
        segment = Segment(Source(clip.path, clip.sha256, "photo"), 0.0, 1.0, "")
    elif change == "not_media":
        bogus = tmp_path / "notes.mp4"
        bogus.write_text("'; drawtext=text=x — không phải video")
        segment = Segment(Source(bogus, "0" * 64, "video"), 0.0, 1.0, "")
    elif change == "truncated":
        cut = tmp_path / "cut.mp4"
        cut.write_bytes(clip.path.read_bytes()[: clip.path.stat().st_size // 2])
        segment = Segment(Source(cut, "1" * 64, "video"), 0.0, 1.0, "")
    cache = LocalSegmentCache(tmp_path / "cache")
    with pytest.raises(RenderRefused) as refused:
        render(ReelPlan(TITLE, "", (segment,), PROFILE), tmp_path / "work", cache)
    assert refused.value.code == code
    assert refused.value.message_vi and refused.value.message_en
    assert cache.keys() == set()


def test_a_reel_without_segments_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderRefused) as refused:
        render(ReelPlan(TITLE, "", (), PROFILE), tmp_path / "work", LocalSegmentCache(tmp_path / "cache"))
    assert refused.value.code == "no_segments"


class _CacheFailingFirstStore(LocalSegmentCache):
    """A segment cache whose first store fails, each store taking a while (S3 over a network)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.stores = 0
        self.storing = 0
        self.guard = threading.Lock()

    def store(self, key: str, path: Path) -> None:
        with self.guard:
            self.stores += 1
            self.storing += 1
            first = self.stores == 1
        try:
            time.sleep(0.3)
            if first:
                raise OSError("the segment cache is not answering")
            super().store(key, path)
        finally:
            with self.guard:
                self.storing -= 1


def test_a_segment_the_cache_cannot_keep_fails_the_render_once_every_store_has_ended(
    sources: dict[str, Source], tmp_path: Path
) -> None:
    clip = sources["hd25"]
    plan = ReelPlan(TITLE, "", (Segment(clip, 0.0, 1.0, ""), Segment(clip, 1.0, 2.0, "")), PROFILE)
    cache = _CacheFailingFirstStore(tmp_path / "cache")
    with pytest.raises(OSError, match="not answering"):
        render(plan, tmp_path / "work", cache)
    assert cache.stores == 3  # the title card's store failed while the segments went on rendering
    assert cache.storing == 0  # no store outlives the render (its files are removed after it)
    assert len(cache.keys()) == 2
