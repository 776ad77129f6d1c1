"""Identify and probe untrusted media by its content, never by its file name.

The rules of the design handbook for hostile files apply here:
- the container is recognised from its first bytes and must be on an
  allow-list; playlists (HLS, concat/ffconcat) and anything else that makes
  ffmpeg open another file or the network are refused before ffprobe runs;
- ffprobe runs with the demuxer forced, ``-protocol_whitelist file``, on a
  local file, in a subprocess with a timeout;
- pixel, duration and size limits are checked before anything is decoded;
- photos go through Pillow with its decompression-bomb guard at our limit
  (:func:`open_photo`), refused in our words from the header.
"""

from __future__ import annotations

import json
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile, UnidentifiedImageError

from shared.events.models import AssetKind


class MediaRejected(ValueError):
    """The content is not media we accept; carries a bilingual reason."""

    def __init__(self, code: str, message_vi: str, message_en: str) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_vi = message_vi
        self.message_en = message_en


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 100_000_000  # photos: 100 MP covers medium-format cameras
    max_video_pixels: int = 8192 * 4320  # 8K
    max_duration_s: float = 12 * 3600.0
    probe_timeout_s: float = 30.0
    # Checked before decoding: a tiny file can claim millions of frames.
    max_frames: int = 12 * 3600 * 60


@dataclass(frozen=True)
class ProbeResult:
    kind: AssetKind
    media_format: str
    mime_type: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None


# Photo formats Pillow may open (its own format names) and their MIME types.
PHOTO_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff"}

# ffprobe demuxer to force per sniffed container, and the MIME type we store.
_AV_CONTAINERS = {
    "mov": "video/mp4",
    "matroska": "video/x-matroska",
    "mpegts": "video/mp2t",
    "avi": "video/x-msvideo",
    "mxf": "application/mxf",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
}


def sniff(head: bytes) -> tuple[str, str] | None:
    """(family, format) from magic bytes: ("photo", "JPEG") or ("av", "mov")."""
    if head.startswith(b"\xff\xd8\xff"):
        return "photo", "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "photo", "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "photo", "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "photo", "TIFF"
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "av", "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "av", "matroska"
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "av", "mpegts"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "av", "avi"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "av", "wav"
    if head.startswith(b"\x06\x0e\x2b\x34"):
        return "av", "mxf"
    if head.startswith(b"ID3") or (
        len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0
    ):
        return "av", "mp3"
    if head.startswith(b"fLaC"):
        return "av", "flac"
    if head.startswith(b"OggS"):
        return "av", "ogg"
    return None


_UNSUPPORTED = MediaRejected(
    "unsupported_media",
    "Tệp không phải ảnh, video hay âm thanh được hỗ trợ (JPEG, PNG, WebP, TIFF, MP4/MOV, MKV, MPEG-TS, AVI, MXF, "
    "WAV, MP3, FLAC, OGG). Nội dung được kiểm tra theo dữ liệu, không theo tên tệp.",
    "Not a supported photo, video or audio file; content is checked, not the file name.",
)


def open_photo(path: Path, fmt: str, limits: Limits) -> ImageFile.ImageFile:
    """Open a photo with Pillow: its header is read, nothing is decoded yet.

    A photo with more than ``limits.max_pixels`` pixels is refused here, from
    the header, with the project's bilingual ``too_many_pixels``. Pillow's own
    decompression-bomb guard is set to the same limit first, so every later
    ``Image.open`` in this process (renditions, OCR) applies the configured
    limit, not Pillow's built-in 89.5 MP; a service has one configured limit.
    The caller closes the image (``with open_photo(...) as img``).
    """
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        with warnings.catch_warnings():
            # Above the limit Pillow warns, above twice the limit it raises: both refuse.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path, formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        raise _photo_too_large(limits.max_pixels, pixels=int(claimed[1]) if claimed else None) from exc
    width, height = img.size
    # Our own check as well: warning filters are process-wide, not per thread.
    if width * height > limits.max_pixels:
        img.close()
        raise _photo_too_large(limits.max_pixels, width=width, height=height)
    return img


def probe_photo(path: Path, fmt: str, limits: Limits) -> ProbeResult:
    try:
        with open_photo(path, fmt, limits) as img:
            width, height = img.size
        # A full decode, not just verify(): a truncated photo must fail here,
        # at ingest, with a clear message rather than later in a worker.
        with open_photo(path, fmt, limits) as img:
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, MediaRejected):
            raise
        raise MediaRejected(
            "corrupt_media", f"Ảnh {fmt} bị hỏng hoặc không đọc được.", f"Corrupt or unreadable {fmt} image: {exc}"
        ) from exc
    return ProbeResult(AssetKind.PHOTO, fmt, PHOTO_FORMATS[fmt], width, height, None)


def _photo_too_large(
    limit: int, *, width: int | None = None, height: int | None = None, pixels: int | None = None
) -> MediaRejected:
    if width is not None and height is not None:
        return _too_many_pixels(width, height, limit)
    claimed_vi = f" có {pixels:,} điểm ảnh," if pixels else ""
    claimed_en = f" has {pixels:,} pixels, which" if pixels else ""
    return MediaRejected(
        "too_many_pixels",
        f"Ảnh{claimed_vi} vượt giới hạn {limit:,} điểm ảnh.",
        f"The image{claimed_en} exceeds the limit of {limit:,} pixels.",
    )


def _too_many_pixels(width: int, height: int, limit: int) -> MediaRejected:
    return MediaRejected(
        "too_many_pixels",
        f"Kích thước {width}×{height} ({width * height:,} điểm ảnh) vượt giới hạn {limit:,} điểm ảnh.",
        f"Dimensions {width}x{height} ({width * height:,} pixels) exceed the limit of {limit:,} pixels.",
    )


def run_ffprobe(path: Path, demuxer: str, timeout_s: float) -> dict[str, object]:
    """ffprobe on a local file with the demuxer forced and only the file protocol."""
    argv = [
        "ffprobe",
        "-v",
        "error",
        "-hide_banner",
        "-protocol_whitelist",
        "file",
        "-f",
        demuxer,
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        f"file:{path}",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MediaRejected(
            "probe_timeout", "Kiểm tra tệp quá thời gian cho phép.", f"Probing timed out after {timeout_s:.0f}s"
        ) from exc
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["unknown error"]
        raise MediaRejected(
            "corrupt_media", "Tệp media bị hỏng hoặc không đọc được.", f"Corrupt or unreadable media: {reason[0]}"
        )
    parsed: dict[str, object] = json.loads(done.stdout or b"{}")
    return parsed


def check_mp4_boxes(path: Path) -> None:
    """Walk the top-level MP4/MOV boxes: a box running past the end of the file
    means an interrupted upload or copy. ffprobe alone accepts such a file when
    its index (moov) comes first, and the loss would only show when decoding."""
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as handle:
        while offset < size:
            handle.seek(offset)
            header = handle.read(16)
            if len(header) < 8:
                break
            box_size = int.from_bytes(header[:4], "big")
            if box_size == 1 and len(header) == 16:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:  # extends to the end of the file
                return
            if box_size < 8 or offset + box_size > size:
                raise MediaRejected(
                    "truncated_media",
                    "Tệp video bị cắt cụt (tải lên chưa xong?): hãy tải lại tệp đầy đủ.",
                    f"Truncated MP4/MOV: box at {offset} claims {box_size} bytes but the file has {size}.",
                )
            offset += box_size


def probe_av(path: Path, demuxer: str, limits: Limits) -> ProbeResult:
    return probe_av_info(path, demuxer, limits)[0]


def _frame_rate(stream: dict[str, object]) -> float | None:
    """ffprobe's "30000/1001" as a float; None when unknown ("0/0")."""
    for key in ("avg_frame_rate", "r_frame_rate"):
        num, _, den = str(stream.get(key) or "").partition("/")
        try:
            rate = float(num) / float(den or 1)
        except (ValueError, ZeroDivisionError):
            continue
        if rate > 0:
            return rate
    return None


def probe_av_info(path: Path, demuxer: str, limits: Limits) -> tuple[ProbeResult, dict[str, object]]:
    """Like :func:`probe_av`, also returning ffprobe's JSON so workers can read
    every fact from one probe of the file."""
    if demuxer == "mov":
        check_mp4_boxes(path)
    info = run_ffprobe(path, demuxer, limits.probe_timeout_s)
    raw_streams = info.get("streams")
    streams = [s for s in raw_streams if isinstance(s, dict)] if isinstance(raw_streams, list) else []
    fmt = info.get("format", {})
    fmt = fmt if isinstance(fmt, dict) else {}
    video = [
        s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not video and not audio:
        raise MediaRejected(
            "no_media_streams", "Tệp không có luồng hình hay tiếng nào.", "The file has no video or audio stream."
        )
    try:
        duration = float(fmt.get("duration") or 0.0) or None
    except ValueError:
        duration = None
    if duration is not None and duration > limits.max_duration_s:
        raise MediaRejected(
            "too_long",
            "Thời lượng vượt giới hạn cho phép.",
            f"Duration {duration:.0f}s exceeds {limits.max_duration_s:.0f}s",
        )
    width = height = None
    if video:
        width, height = int(video[0].get("width") or 0), int(video[0].get("height") or 0)
        if width <= 0 or height <= 0:
            raise MediaRejected(
                "corrupt_media", "Luồng hình không có kích thước hợp lệ.", "The video stream has no valid dimensions."
            )
        if width * height > limits.max_video_pixels:
            raise _too_many_pixels(width, height, limits.max_video_pixels)
    kind = AssetKind.VIDEO if video else AssetKind.AUDIO
    mime = _AV_CONTAINERS[demuxer]
    if kind is AssetKind.AUDIO and mime.startswith("video/"):
        mime = "audio/" + mime.split("/", 1)[1]
    if video:
        rate = _frame_rate(video[0])
        try:
            frames = int(str(video[0].get("nb_frames") or 0))
        except ValueError:
            frames = 0
        frames = max(frames, int((duration or 0.0) * (rate or 0.0)))
        if frames > limits.max_frames:
            raise MediaRejected(
                "too_many_frames",
                f"Số khung hình ({frames:,}) vượt giới hạn cho phép.",
                f"Frame count {frames:,} exceeds the limit of {limits.max_frames:,}.",
            )
    result = ProbeResult(kind, str(fmt.get("format_name") or demuxer), mime, width, height, duration)
    return result, info


def sniff_file(path: Path) -> tuple[str, str]:
    """(family, format) of a local file by its first bytes; refuses empty and unknown content."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if not head:
        raise MediaRejected("empty_file", "Tệp rỗng.", "The file is empty.")
    sniffed = sniff(head)
    if sniffed is None:
        raise _UNSUPPORTED
    return sniffed


def probe_file(path: Path, limits: Limits | None = None) -> ProbeResult:
    """Identify ``path`` by content and probe it within ``limits``."""
    limits = limits or Limits()
    family, fmt = sniff_file(path)
    if family == "photo":
        return probe_photo(path, fmt, limits)
    return probe_av(path, fmt, limits)
