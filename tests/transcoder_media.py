"""Generated media and helpers for the transcoder tests (tiny, real files)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

from PIL import Image


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True, timeout=120)


def make_clip(
    path: Path,
    tag: str,
    seconds: float = 3.0,
    size: str = "320x240",
    black_lead_s: float = 1.0,
    extra: list[str] | None = None,
) -> Path:
    """A clip with tone that starts black (like a fade-in): the poster must skip it."""
    w, h = size.split("x")
    graph = (
        f"color=black:s={size}:r=25:d={black_lead_s}[b];testsrc2=s={size}:r=25:d={seconds - black_lead_s}[t];"
        "[b][t]concat=n=2:v=1:a=0[v]"
    )
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:duration={seconds}",
        "-filter_complex",
        graph,
        "-map",
        "[v]",
        "-map",
        "0:a",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-metadata",
        f"comment={tag}",
        "-metadata",
        "creation_time=2024-05-01T02:30:00Z",
        *(extra or []),
        "-f",
        "mp4",
        str(path),
    )
    assert w and h
    return path


def make_portrait_clip(path: Path, tag: str) -> Path:
    """A phone clip stored landscape with a rotation flag, as phones record portrait."""
    plain = path.with_suffix(".plain.mp4")
    make_clip(plain, tag, seconds=2.0, black_lead_s=0.0)
    _ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", "-f", "mp4", str(path))
    plain.unlink()
    return path


def make_wav(path: Path, tag: str, seconds: float = 3.0) -> Path:
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=330:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=550:duration={seconds}",
        "-filter_complex",
        "[0:a][1:a]amerge=inputs=2[a]",
        "-map",
        "[a]",
        "-metadata",
        f"title={tag}",
        "-f",
        "wav",
        str(path),
    )
    return path


def make_photo(tag: str, size: tuple[int, int] = (1200, 800), orientation: int = 6) -> bytes:
    """A JPEG with EXIF date, camera, GPS and an orientation tag. The top-left
    quadrant is red, so a test can tell the orientation was applied."""
    img = Image.new("RGB", size, (40, 90, 160))
    img.paste((220, 30, 30), (0, 0, size[0] // 2, size[1] // 2))
    for x in range(0, size[0], 9):
        img.putpixel((x, (x * 7 + len(tag)) % size[1]), (255, 255, 255))
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R6"
    exif[0x0112] = orientation
    exif[0x010E] = tag  # ImageDescription: makes each test's bytes (and asset) new
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 09:30:00"
    exif.get_ifd(0x8825).update({1: "N", 2: (21.0, 1.0, 42.6), 3: "E", 4: (105.0, 51.0, 15.0)})
    out = io.BytesIO()
    img.save(out, "JPEG", quality=88, exif=exif)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` (a decompression bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + (width + 7) // 8) * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def mkv_claiming_16000(path: Path, tag: str) -> Path:
    """A Matroska rawvideo file whose track header claims 16000×16000."""
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=gray:s=320x256:d=0.2:r=5",
        "-c:v",
        "rawvideo",
        "-pix_fmt",
        "gray",
        "-metadata",
        f"title={tag}",
        "-f",
        "matroska",
        str(path),
    )
    data = path.read_bytes()
    w_old, h_old = b"\xb0\x82\x01\x40", b"\xba\x82\x01\x00"  # PixelWidth 320, PixelHeight 256
    assert data.count(w_old) == 1 and data.count(h_old) == 1
    data = data.replace(w_old, b"\xb0\x82\x3e\x80").replace(h_old, b"\xba\x82\x3e\x80")
    path.write_bytes(data)
    return path


def ffprobe(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed
