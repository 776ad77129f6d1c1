"""A very large photo that cannot be decoded at reduced size (PNG) still costs about
one decoded frame of memory, not one per processing step."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

# 60 MP of RGB is 180 MB decoded; before the reduce-first rendering the
# orientation, flattening and copy steps held ~4 such frames at once.
WIDTH, HEIGHT = 10_000, 6_000
DECODED_MB = WIDTH * HEIGHT * 3 / 2**20

_MEASURE = """
import json, resource, sys
from pathlib import Path
from services.transcoder.render import photo_renditions
from shared.media.probe import Limits
src, out = Path(sys.argv[1]), Path(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
made = photo_renditions(src, "PNG", out, Limits())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_mb": before / 1024, "peak_mb": peak / 1024,
                  "sizes": [[r.width, r.height] for r in made]}))
"""


def test_a_60_megapixel_png_is_rendered_within_two_decoded_frames_of_memory(tmp_path: Path) -> None:
    src = tmp_path / "large.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # held upright: the renditions must come out portrait
    Image.new("RGB", (WIDTH, HEIGHT), (30, 120, 200)).save(src, exif=exif.tobytes(), compress_level=1)
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(src), str(out)], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(done.stdout)
    grew_mb = report["peak_mb"] - report["before_mb"]
    assert grew_mb < 2 * DECODED_MB, f"rendering grew the process by {grew_mb:.0f} MB ({DECODED_MB:.0f} MB per frame)"
    (web_w, web_h), (thumb_w, thumb_h) = report["sizes"]
    assert web_h == 2048 and web_w < web_h and thumb_h == 400 and thumb_w < thumb_h
