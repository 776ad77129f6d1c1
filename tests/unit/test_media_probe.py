"""Probing untrusted media by content (uses the real ffprobe and Pillow)."""

import os
from pathlib import Path

import pytest
from PIL import Image

from deploy.local.installers import debian_tool
from shared.events.models import AssetKind
from shared.media.probe import Limits, MediaRejected, probe_file, sniff
from tests.media import jpeg_bytes, make_clip, make_wav


@pytest.fixture(scope="module", autouse=True)
def _ffmpeg_installed() -> None:
    debian_tool("ffprobe")


def test_a_jpeg_is_recognised_as_a_photo_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "looks-like-a-video.mp4"
    path.write_bytes(jpeg_bytes())
    result = probe_file(path)
    assert (result.kind, result.media_format, result.mime_type) == (AssetKind.PHOTO, "JPEG", "image/jpeg")
    assert (result.width, result.height) == (320, 200)


def test_an_mp4_clip_is_a_video_with_duration_and_size(tmp_path: Path) -> None:
    result = probe_file(make_clip(tmp_path / "clip.bin", seconds=1.0))
    assert result.kind is AssetKind.VIDEO
    assert (result.width, result.height) == (320, 240)
    assert result.duration_s is not None and 0.9 <= result.duration_s <= 1.2


def test_a_wav_recording_is_audio(tmp_path: Path) -> None:
    result = probe_file(make_wav(tmp_path / "radio.jpg"))
    assert result.kind is AssetKind.AUDIO and result.mime_type == "audio/wav"


def test_random_bytes_named_jpg_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(MediaRejected) as caught:
        probe_file(path)
    assert caught.value.code == "unsupported_media"
    assert "không theo tên tệp" in caught.value.message_vi


def test_an_empty_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaRejected, match="empty"):
        probe_file(path)


@pytest.mark.parametrize(
    "playlist",
    [
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/segment.ts\n",
        b"ffconcat version 1.0\nfile '/etc/passwd'\n",
    ],
)
def test_playlists_are_refused_before_ffmpeg_ever_opens_them(tmp_path: Path, playlist: bytes) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(playlist)
    assert sniff(playlist) is None
    with pytest.raises(MediaRejected):
        probe_file(path)


def test_a_truncated_jpeg_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_bytes(size=(640, 480))[:3000])
    with pytest.raises(MediaRejected) as caught:
        probe_file(path)
    assert caught.value.code == "corrupt_media"


def test_a_truncated_mp4_is_reported_as_corrupt(tmp_path: Path) -> None:
    full = make_clip(tmp_path / "full.mp4", seconds=1.0, extra=["-movflags", "+faststart"]).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(full[: len(full) // 3])
    with pytest.raises(MediaRejected) as caught:
        probe_file(path)
    assert caught.value.code == "truncated_media"
    assert "cắt cụt" in caught.value.message_vi


def test_a_decompression_bomb_png_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path, optimize=True)
    assert path.stat().st_size < 1_000_000  # tiny file, 400 megapixels
    with pytest.raises(MediaRejected) as caught:
        probe_file(path, Limits(max_pixels=50_000_000))
    assert caught.value.code == "too_many_pixels"
