"""The reel renderer's pure decisions: output target, content keys, chapter
files and text handling (no ffmpeg)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from services.reels.render.pipeline import (
    _Progress,
    chapters_ffmetadata,
    chapters_vtt,
    clean_text,
    frame_count,
)
from services.reels.render.plan import (
    Chapter,
    Profile,
    ReelPlan,
    Segment,
    Source,
    SourceProbe,
    Target,
    choose_target,
    segment_key,
)

CLIP = Source(Path("/media/a.mp4"), "a" * 64, "video")


def _video(width: int, height: int, fps: Fraction) -> SourceProbe:
    return SourceProbe("video", width, height, fps, 60.0, True)


def _plan(*seconds: float, profile: Profile = Profile.BROADCAST) -> ReelPlan:
    return ReelPlan("T", "", tuple(Segment(CLIP, 0.0, s, "") for s in seconds), profile)


def test_a_reel_of_50p_and_25p_sources_stays_50p_and_is_never_forced_to_30() -> None:
    target = choose_target(_plan(10, 30), [_video(1920, 1080, Fraction(50)), _video(1280, 720, Fraction(25))])
    assert (target.width, target.height, target.fps) == (1920, 1080, Fraction(50))


def test_a_reel_of_25p_sources_stays_25p() -> None:
    target = choose_target(_plan(10, 30), [_video(1920, 1080, Fraction(25)), _video(1280, 720, Fraction(25))])
    assert target.fps == 25


def test_ntsc_sources_keep_their_exact_29_97_rate() -> None:
    probes = [_video(1280, 720, Fraction(2997, 100)), _video(1280, 720, Fraction(25))]
    assert choose_target(_plan(30, 10), probes).fps == Fraction(30000, 1001)


def test_mostly_portrait_sources_make_a_portrait_reel_and_draft_is_smaller() -> None:
    probes = [_video(1080, 1920, Fraction(25)), _video(1920, 1080, Fraction(25))]
    broadcast = choose_target(_plan(30, 10), probes)
    draft = choose_target(_plan(30, 10, profile=Profile.DRAFT), probes)
    assert (broadcast.width, broadcast.height) == (1080, 1920)
    assert (draft.width, draft.height) == (540, 960)


def test_a_reel_of_photos_and_audio_only_is_25p_landscape() -> None:
    probes = [SourceProbe("photo", 4000, 3000, None, None, False), SourceProbe("audio", None, None, None, 9.0, True)]
    assert choose_target(_plan(5, 5), probes) == Target(1920, 1080, Fraction(25))


def test_the_segment_key_follows_content_caption_and_target_but_not_the_file_name() -> None:
    target = Target(1920, 1080, Fraction(50))
    base = Segment(CLIP, 1.0, 2.5, "Khai mạc")
    key = segment_key(base, target, Profile.BROADCAST)
    moved = Segment(Source(Path("/elsewhere/b.mp4"), CLIP.sha256, "video"), 1.0, 2.5, "Khai mạc")
    assert segment_key(moved, target, Profile.BROADCAST) == key
    # The same caption typed decomposed (NFD) is the same segment.
    nfd = Segment(CLIP, 1.0, 2.5, "Khai ma\u0323c")
    assert segment_key(nfd, target, Profile.BROADCAST) == key
    others = {
        segment_key(Segment(CLIP, 1.0, 2.5, "Bế mạc"), target, Profile.BROADCAST),
        segment_key(Segment(CLIP, 1.001, 2.5, "Khai mạc"), target, Profile.BROADCAST),
        segment_key(Segment(Source(CLIP.path, "b" * 64, "video"), 1.0, 2.5, "Khai mạc"), target, Profile.BROADCAST),
        segment_key(base, Target(1920, 1080, Fraction(25)), Profile.BROADCAST),
        segment_key(base, target, Profile.DRAFT),
    }
    assert key not in others and len(others) == 5


def test_webvtt_chapters_escape_markup_and_the_cue_arrow() -> None:
    vtt = chapters_vtt((Chapter("Mở đầu", 0.0, 3.0), Chapter("a <b> & c --> d\nđ", 3.0, 3723.5)))
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:03.000\nMở đầu\n")
    assert "2\n00:00:03.000 --> 01:02:03.500\na &lt;b&gt; &amp; c --&gt; d đ\n" in vtt


def test_ffmetadata_chapters_escape_their_syntax_and_count_frames() -> None:
    text = chapters_ffmetadata("A=B", (Chapter("x;y#z\\w=v", 3.0, 4.5),), Fraction(30000, 1001))
    assert "title=A\\=B" in text
    assert "title=x\\;y\\#z\\\\w\\=v" in text
    assert "TIMEBASE=1001/30000\nSTART=90\nEND=135\n" in text


def test_captions_are_nfc_without_control_or_direction_characters() -> None:
    assert clean_text("Khai ma\u0323c\x00 \u202eky\u0300\r\n\r\n  ho\u0323p ") == "Khai mạc kỳ\nhọp"


def test_frame_counts_are_exact_on_every_broadcast_grid() -> None:
    assert frame_count(1.5, Fraction(50)) == 75
    assert frame_count(1.001, Fraction(30000, 1001)) == 30
    assert frame_count(0.001, Fraction(25)) == 1


def test_progress_is_throttled_monotonic_and_ends_at_100() -> None:
    seen: list[float] = []
    progress = _Progress(seen.append, 10.0)
    report = progress.step(8.0, 4.0)
    for tenth in range(41):
        report(tenth / 10)  # many updates within far less than a quarter second
    progress.finish(8.0)
    progress.emit(10.0, force=True)
    assert seen[0] == 0.0 and seen[-1] == 100.0
    assert seen == sorted(seen) and len(seen) <= 4
