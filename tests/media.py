"""Generated test media (real files made with Pillow and ffmpeg)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from PIL import Image


def jpeg_bytes(seed: int = 0, size: tuple[int, int] = (320, 200)) -> bytes:
    """A small, valid JPEG whose bytes differ for every ``seed``.

    The colour and the dot pattern repeat every 6 400 seeds, and a session uploads
    hundreds of random seeds into one archive: two of them once drew the same picture
    and the second upload came back as a duplicate (200, not 201). The seed itself is
    therefore written into the file's comment segment too."""
    img = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13 + 80) % 256))
    for x in range(0, size[0], 7):
        img.putpixel((x, (x * (seed + 3)) % size[1]), (255, 255, 255))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, comment=f"seed {seed}".encode())
    return out.getvalue()


def make_clip(path: Path, seconds: float = 1.0, size: str = "320x240", extra: list[str] | None = None) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate=25:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            *(extra or []),
            "-f",
            "mp4",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def make_wav(path: Path, seconds: float = 1.0) -> Path:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=330:duration={seconds}",
            "-ac",
            "2",
            "-f",
            "wav",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path
