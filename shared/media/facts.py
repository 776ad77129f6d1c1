"""Media facts for the archive (``asset.probed``), read from a validated file.

Validation (content sniffing, allow-listed demuxers, limits) is
:mod:`shared.media.probe`'s job; this module only turns what ffprobe and
Pillow report into the facts archivists search and sort by. It reuses the one
ffprobe run that validation made.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from shared.events.media import AssetProbedV1, GeoPoint
from shared.events.models import AssetKind
from shared.media.probe import (
    Limits,
    _frame_rate,
    open_photo,
    probe_av_info,
    probe_photo,
    sniff_file,
)
from shared.taxonomy import LOCAL_TZ  # EXIF times carry no zone: the council's cameras are on local time

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_TAG_MAKE, _TAG_MODEL, _TAG_ORIENTATION, _TAG_DATETIME = 0x010F, 0x0110, 0x0112, 0x0132
_TAG_DATETIME_ORIGINAL, _TAG_OFFSET_ORIGINAL = 0x9003, 0x9011
# EXIF orientation → clockwise rotation a viewer applies (5 and 7 also mirror).
_ORIENTATION_ROTATION = {1: 0, 2: 0, 3: 180, 4: 180, 5: 90, 6: 90, 7: 270, 8: 270}
_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?/?$")


def media_facts(path: Path, limits: Limits | None = None) -> tuple[AssetProbedV1, str]:
    """Identify, check and describe ``path``; raises :class:`MediaRejected`.

    Also returns the sniffed format (the demuxer to force, or Pillow's format).
    """
    limits = limits or Limits()
    family, fmt = sniff_file(path)
    if family == "photo":
        probe_photo(path, fmt, limits)  # pixel limit, bomb guard and a full decode
        return photo_facts(path, fmt, limits), fmt
    result, info = probe_av_info(path, fmt, limits)
    return av_facts(result.kind, result.media_format, info), fmt


# --- photos --------------------------------------------------------------------


def _ratio(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0


def _dms(values: Any, ref: Any) -> float | None:
    try:
        deg, minutes, seconds = (_ratio(v) for v in values)
    except (TypeError, ValueError):
        return None
    out = deg + minutes / 60 + seconds / 3600
    return -out if str(ref).upper() in {"S", "W"} else out


def exif_datetime(raw: Any, offset: Any = None) -> datetime | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (+ optional "+07:00") as an aware datetime."""
    text = str(raw or "").strip().strip("\x00")
    try:
        naive = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    off = str(offset or "").strip().strip("\x00")
    match = re.fullmatch(r"([+-])(\d\d):(\d\d)", off)
    if match:
        delta = timedelta(hours=int(match[2]), minutes=int(match[3]))
        return naive.replace(tzinfo=timezone(delta if match[1] == "+" else -delta))
    return naive.replace(tzinfo=LOCAL_TZ)


def photo_facts(path: Path, fmt: str, limits: Limits | None = None) -> AssetProbedV1:
    """Size as displayed (orientation applied), camera, date and GPS from EXIF."""
    with open_photo(path, fmt, limits or Limits()) as img:
        width, height = img.size
        exif = img.getexif()
    orientation = int(exif.get(_TAG_ORIENTATION) or 1)
    rotation = _ORIENTATION_ROTATION.get(orientation, 0)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    sub = exif.get_ifd(_EXIF_IFD)
    recorded = exif_datetime(sub.get(_TAG_DATETIME_ORIGINAL), sub.get(_TAG_OFFSET_ORIGINAL)) or exif_datetime(
        exif.get(_TAG_DATETIME)
    )
    camera = " ".join(str(exif.get(t) or "").strip().strip("\x00") for t in (_TAG_MAKE, _TAG_MODEL)).strip()
    gps_ifd = exif.get_ifd(_GPS_IFD)
    gps = None
    if gps_ifd.get(2) and gps_ifd.get(4):
        lat, lon = _dms(gps_ifd.get(2), gps_ifd.get(1)), _dms(gps_ifd.get(4), gps_ifd.get(3))
        alt = _ratio(gps_ifd.get(6)) if gps_ifd.get(6) is not None else None
        if alt is not None and gps_ifd.get(5) in (1, b"\x01"):
            alt = -alt
        if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
            gps = GeoPoint(lat=round(lat, 7), lon=round(lon, 7), alt_m=alt)
    return AssetProbedV1(
        kind=AssetKind.PHOTO,
        container=fmt,
        width=width,
        height=height,
        rotation=rotation,
        recorded_at=recorded,
        camera=camera or None,
        gps=gps,
    )


# --- video and audio -------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        out = int(float(value))
    except (TypeError, ValueError):
        return None
    return out if out >= 0 else None


def stream_rotation(stream: dict[str, Any]) -> int:
    """Clockwise degrees a player turns the picture: from the display matrix
    (ffprobe ≥ 5 reports it counter-clockwise) or the legacy ``rotate`` tag."""
    for side in stream.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            return int(-_ratio(side["rotation"])) % 360
    tags = stream.get("tags") or {}
    if "rotate" in tags:
        return int(_ratio(tags["rotate"])) % 360
    return 0


def _container_datetime(tags: dict[str, str]) -> datetime | None:
    for key in ("com.apple.quicktime.creationdate", "creation_time", "date"):
        raw = tags.get(key)
        if not raw:
            continue
        text = raw.strip().replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            continue
        # "1970"/"1904" epochs are what cameras without a clock write.
        if value.year < 1990:
            continue
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def iso6709(raw: str) -> GeoPoint | None:
    """ "+21.0285+105.8542+012.000/" → GeoPoint (phones write this in MP4/MOV)."""
    match = _ISO6709.match(raw.strip())
    if not match:
        return None
    lat, lon = float(match[1]), float(match[2])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return GeoPoint(lat=lat, lon=lon, alt_m=float(match[3]) if match[3] else None)


def av_facts(kind: AssetKind, container: str, info: dict[str, Any]) -> AssetProbedV1:
    """Facts from ffprobe's ``-show_format -show_streams`` JSON."""
    streams = [s for s in info.get("streams", []) if isinstance(s, dict)]
    fmt = info.get("format") if isinstance(info.get("format"), dict) else {}
    assert isinstance(fmt, dict)
    tags = {str(k).lower(): str(v) for k, v in (fmt.get("tags") or {}).items()}
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    width = height = None
    rotation = 0
    if video is not None:
        width, height = _int(video.get("width")), _int(video.get("height"))
        rotation = stream_rotation(video)
        if rotation in (90, 270):
            width, height = height, width
        for key, value in (video.get("tags") or {}).items():
            tags.setdefault(str(key).lower(), str(value))
    make = next((tags[k] for k in ("com.apple.quicktime.make", "com.android.manufacturer", "make") if tags.get(k)), "")
    model = next((tags[k] for k in ("com.apple.quicktime.model", "com.android.model", "model") if tags.get(k)), "")
    location = tags.get("com.apple.quicktime.location.iso6709") or tags.get("location") or ""
    duration = _ratio(fmt.get("duration")) or None
    return AssetProbedV1(
        kind=kind,
        container=container,
        duration_s=round(duration, 3) if duration else None,
        width=width or None,
        height=height or None,
        frame_rate=round(rate, 3) if video is not None and (rate := _frame_rate(video)) else None,
        video_codec=str(video.get("codec_name")) if video is not None else None,
        audio_codec=str(audio.get("codec_name")) if audio is not None else None,
        bitrate=_int(fmt.get("bit_rate")),
        rotation=rotation,
        audio_channels=_int(audio.get("channels")) if audio is not None else None,
        audio_sample_rate=_int(audio.get("sample_rate")) if audio is not None else None,
        recorded_at=_container_datetime(tags),
        camera=f"{make} {model}".strip() or None,
        gps=iso6709(location) if location else None,
    )
