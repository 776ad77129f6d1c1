"""The configured photo pixel limit is the one applied — by our check and by
Pillow's decompression-bomb guard alike — read from the header before
decoding, and refused in the project's own bilingual words."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from shared.media.facts import media_facts
from shared.media.probe import Limits, MediaRejected, probe_file

LIMIT = 10_000_000


def strip_png(path: Path, pixels: int) -> Path:
    """A PNG of about ``pixels`` pixels, 100 rows high: a few kilobytes."""
    Image.new("L", (-(-pixels // 100), 100), 90).save(path, optimize=True)
    return path


def test_a_photo_just_under_the_configured_limit_is_accepted_even_where_pillows_own_default_is_lower(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pillow ships with 89.5 MP; the archive's limit is 100 MP. The same situation, ten times smaller:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", LIMIT // 2)
    path = strip_png(tmp_path / "under.png", LIMIT - 100)
    probe = probe_file(path, Limits(max_pixels=LIMIT))
    assert probe.width is not None and probe.height is not None
    assert probe.width * probe.height <= LIMIT
    facts, _ = media_facts(path, Limits(max_pixels=LIMIT))  # what the transcoder runs
    assert facts.width == probe.width


def test_a_photo_just_over_the_configured_limit_is_refused_in_the_projects_words_under_any_pillow_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = strip_png(tmp_path / "over.png", LIMIT + 100)
    for pillow_default in (LIMIT // 2, LIMIT * 4, None):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_default)
        for check in (probe_file, media_facts):
            with pytest.raises(MediaRejected) as caught:
                check(path, Limits(max_pixels=LIMIT))
            error = caught.value
            assert error.code == "too_many_pixels", (pillow_default, check)
            assert f"{LIMIT:,}" in error.message_vi and "điểm ảnh" in error.message_vi
            assert f"{LIMIT:,}" in error.message_en and "decompression bomb" not in error.message_en


def test_a_photo_far_over_the_limit_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    # A valid header claiming 400 MP and no pixel data at all: only a header check can say "too large".
    full = tmp_path / "full.png"
    Image.new("1", (20000, 20000)).save(full)
    header_only = tmp_path / "header.png"
    data = full.read_bytes()
    header_only.write_bytes(data[: data.index(b"IDAT") + 64])
    with pytest.raises(MediaRejected) as caught:
        probe_file(header_only, Limits(max_pixels=LIMIT))
    assert caught.value.code == "too_many_pixels"
    assert "400,000,000" in caught.value.message_en and f"{LIMIT:,}" in caught.value.message_en
    assert "decompression bomb" not in caught.value.message_en
