"""Generated test media (real files made with Pillow and ffmpeg)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from deploy.sample_media import pattern_clip, tone_wav


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
    return pattern_clip(path, seconds=seconds, size=size, extra=extra or ())


def make_wav(path: Path, seconds: float = 1.0) -> Path:
    return tone_wav(path, seconds=seconds)
