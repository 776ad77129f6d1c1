"""Generated sources for the reel renderer's tests and bench, made to reveal
the classic defects: every video frame carries its frame number burnt in, as
text and as a 16-bit barcode across the top eighth of the picture (read back
exactly after scaling, letterboxing and compression), and once a second a
two-frame white flash coincides with a 40 ms 3 kHz beep over a quiet 220 Hz
bed, so picture/sound sync can be measured at every join.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageDraw

from services.reels.render.plan import Source, Target

BARCODE_BITS = 16
BEEP_HZ = 3000
BED_HZ = 220
BEEP_FRAMES = 2


@dataclass(frozen=True)
class ClipSpec:
    name: str
    width: int
    height: int
    fps: Fraction
    seconds: float
    sample_rate: int | None = 48000  # None: a silent clip
    channels: int = 2
    audio_short_by_s: float = 0.0
    bed_amplitude: float = 0.05  # sources differ in loudness on purpose


CLIPS = (
    ClipSpec("hd50", 1920, 1080, Fraction(50), 4.0, bed_amplitude=0.3),
    ClipSpec("hd25", 1280, 720, Fraction(25), 4.0, channels=1, bed_amplitude=0.02),
    ClipSpec("ntsc", 1280, 720, Fraction(30000, 1001), 4.0, sample_rate=44100, bed_amplitude=0.1),
    ClipSpec("portrait", 1080, 1920, Fraction(25), 4.0, bed_amplitude=0.05),
    ClipSpec("silent", 1280, 720, Fraction(25), 4.0, sample_rate=None),
    ClipSpec("shortaudio", 1280, 720, Fraction(25), 4.0, audio_short_by_s=0.3, bed_amplitude=0.08),
)


def flash_frames(spec: ClipSpec) -> list[int]:
    """Frames where the flash starts: half a second into every second."""
    return [round((m + 0.5) * spec.fps) for m in range(math.floor(spec.seconds))]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _beep_expr(spec: ClipSpec) -> str:
    windows = "+".join(
        f"between(t,{float(f / spec.fps):.6f},{float((f + BEEP_FRAMES) / spec.fps):.6f})" for f in flash_frames(spec)
    )
    return f"{spec.bed_amplitude}*sin(2*PI*{BED_HZ}*t)+0.4*sin(2*PI*{BEEP_HZ}*t)*({windows})"


def make_clip(spec: ClipSpec, folder: Path) -> Source:
    out = folder / f"{spec.name}.mp4"
    if not out.exists():
        w, h, rate = spec.width, spec.height, f"{spec.fps.numerator}/{spec.fps.denominator}"
        flashes = "+".join(f"between(n,{f},{f + BEEP_FRAMES - 1})" for f in flash_frames(spec))
        band = h // 8
        graph = (
            f"color=c=0x3c3c3c:s={w}x{h}:r={rate}:d={spec.seconds},format=yuv420p,"
            f"drawbox=x=0:y=0:w=iw:h=ih:c=white:t=fill:enable='{flashes}'[bg];"
            f"color=c=black:s={BARCODE_BITS}x1:r={rate}:d={spec.seconds},format=gray,"
            f"geq=lum='255*mod(floor(N/pow(2,{BARCODE_BITS - 1}-X)),2)',"
            f"scale={w}:{band}:flags=neighbor,format=yuv420p[bars];"
            f"[bg][bars]overlay=0:0:shortest=1,"
            f"drawtext=text='%{{frame_num}}':fontsize={h // 10}:fontcolor=yellow:x=(w-text_w)/2:y=h/3[v]"
        )
        argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-filter_complex", graph]
        maps = ["-map", "[v]"]
        if spec.sample_rate:
            seconds = spec.seconds - spec.audio_short_by_s
            layout = "stereo" if spec.channels == 2 else "mono"
            argv += [
                "-f",
                "lavfi",
                "-i",
                f"aevalsrc='{_beep_expr(spec)}':s={spec.sample_rate}:c={layout}:d={seconds}",
            ]
            maps += ["-map", "0:a"]
        argv += [*maps, "-c:v", "libx264", "-preset", "ultrafast", "-g", str(round(spec.fps)), "-crf", "20"]
        if spec.sample_rate:
            argv += ["-c:a", "aac", "-b:a", "160k"]
        subprocess.run([*argv, str(out)], check=True, timeout=300)
    return Source(out, sha256_of(out), "video")


def make_photo(folder: Path) -> Source:
    out = folder / "photo.png"
    if not out.exists():
        img = Image.new("RGB", (1600, 1200), (40, 90, 60))
        ImageDraw.Draw(img).rectangle((200, 200, 1400, 1000), outline=(255, 255, 255), width=12)
        img.save(out)
    return Source(out, sha256_of(out), "photo")


def make_audio(folder: Path, seconds: float = 4.0) -> Source:
    out = folder / "speech.wav"
    if not out.exists():
        spec = ClipSpec("audio", 0, 0, Fraction(25), seconds, bed_amplitude=0.2)
        subprocess.run(
            [
                "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", f"aevalsrc='{_beep_expr(spec)}':s=48000:c=mono:d={seconds}",
                str(out),
            ],
            check=True,
            timeout=120,
        )  # fmt: skip
    return Source(out, sha256_of(out), "audio")


def make_long_clip(folder: Path, seconds: float) -> Source:
    """A long 720p25 clip for the streaming/RSS bench (cheap to generate)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"long-{int(seconds)}.mp4"
    if not out.exists():
        subprocess.run(
            [
                "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-f", "lavfi", "-i", f"testsrc2=s=1280x720:r=25:d={seconds}",
                "-f", "lavfi", "-i", f"sine=f=440:r=48000:d={seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac", "-shortest", str(out),
            ],
            check=True,
            timeout=3600,
        )  # fmt: skip
    return Source(out, sha256_of(out), "video")


def make_sources(folder: Path) -> dict[str, Source]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = {spec.name: make_clip(spec, folder) for spec in CLIPS}
    sources["photo"] = make_photo(folder)
    sources["audio"] = make_audio(folder)
    return sources


SPECS = {spec.name: spec for spec in CLIPS}

# ------------------------------------------------------------ reading back


@dataclass(frozen=True)
class GreyFrame:
    width: int
    height: int
    pixels: bytes

    def mean(self, x0: int, y0: int, x1: int, y1: int) -> float:
        rows = [self.pixels[y * self.width + x0 : y * self.width + x1] for y in range(max(y0, 0), min(y1, self.height))]
        total = sum(sum(row) for row in rows)
        count = sum(len(row) for row in rows)
        return total / count if count else 0.0


def content_rect(
    src_w: int, src_h: int, target: Target, scale_to: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Where the source picture lands inside an output frame read at ``scale_to``."""
    factor = min(target.width / src_w, target.height / src_h)
    cw, ch = src_w * factor, src_h * factor
    x0, y0 = (target.width - cw) / 2, (target.height - ch) / 2
    sx, sy = scale_to[0] / target.width, scale_to[1] / target.height
    return x0 * sx, y0 * sy, cw * sx, ch * sy


def read_frames(
    path: Path, size: tuple[int, int], start_s: float = 0.0, frames: int | None = None
) -> Iterator[GreyFrame]:
    """Output frames as grey arrays, streamed (never the whole video in memory)."""
    w, h = size
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    if start_s:
        argv += ["-ss", f"{start_s:.6f}"]
    argv += ["-i", str(path), "-vf", f"scale={w}:{h}:flags=area", "-f", "rawvideo", "-pix_fmt", "gray"]
    if frames is not None:
        argv += ["-frames:v", str(frames)]
    proc = subprocess.Popen([*argv, "-"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        while True:
            buf = proc.stdout.read(w * h)
            if len(buf) < w * h:
                break
            yield GreyFrame(w, h, buf)
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def decode_barcode(frame: GreyFrame, rect: tuple[float, float, float, float]) -> int | None:
    x0, y0, cw, ch = rect
    y = int(y0 + ch / 16)
    value = 0
    for bit in range(BARCODE_BITS):
        x = int(x0 + (bit + 0.5) * cw / BARCODE_BITS)
        level = frame.mean(x - 1, y - 1, x + 2, y + 2)
        if 60 < level < 190:
            return None  # not a barcode (title card, photo, audio background)
        value = value * 2 + (1 if level >= 190 else 0)
    return value


def is_flash(frame: GreyFrame, rect: tuple[float, float, float, float]) -> bool:
    x0, y0, cw, ch = rect
    return frame.mean(int(x0 + cw * 0.1), int(y0 + ch * 0.55), int(x0 + cw * 0.9), int(y0 + ch * 0.7)) > 200


def beep_onsets(path: Path, start_s: float = 0.0, duration_s: float | None = None) -> list[float]:
    """Times (s) where a 3 kHz beep starts, from a 1 ms energy envelope."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    if start_s:
        argv += ["-ss", f"{start_s:.6f}"]
    argv += ["-i", str(path)]
    if duration_s is not None:
        argv += ["-t", f"{duration_s:.6f}"]
    argv += ["-vn", "-af", f"highpass=f={BEEP_HZ - 800},highpass=f={BEEP_HZ - 800}", "-ac", "1", "-ar", "48000"]
    raw = subprocess.run([*argv, "-f", "s16le", "-"], capture_output=True, check=True, timeout=600).stdout
    samples = array("h")
    samples.frombytes(raw[: len(raw) // 2 * 2])
    block = 48  # 1 ms envelope
    energy = [
        sum(v * v for v in samples[i * block : (i + 1) * block]) / block / 32768**2
        for i in range(len(samples) // block)
    ]
    onsets: list[float] = []
    i = 0
    while i < len(energy):
        if energy[i] > 0.002:
            # The onset is where the beep reaches half its power: coding
            # pre-echo before it is far weaker.
            peak = max(energy[i : i + 30])
            start = next(j for j in range(max(i - 30, 0), i + 30) if energy[j] >= peak / 2)
            onsets.append(start * block / 48000 + start_s)
            i += 200  # beeps are a second apart
        else:
            i += 1
    return onsets
