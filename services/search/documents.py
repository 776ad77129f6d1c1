"""Search domain logic: folding events into index documents. Pure functions,
unit-tested without servers. Queries are built in ``query.py`` and results
shaped in ``results.py``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from shared.events.envelope import EventEnvelope
from shared.events.media import AssetProbedV1, AssetProcessingFailedV1, AssetRenditionsReadyV1
from shared.events.models import AssetIngestedV1
from shared.tags import TAG_MAPPINGS, fold_tag_event
from shared.taxonomy import (
    LOCAL_TZ,
    activity_label,
    term_for,
)
from shared.text import fold

# Text fields kept twice: as typed (NFC) and folded (no diacritics, lowercase).
TEXT_FIELDS = ("title", "caption")

MEDIA_MAPPINGS: dict[str, Any] = {
    "container": {"type": "keyword"},
    "frame_rate": {"type": "float"},
    "video_codec": {"type": "keyword"},
    "audio_codec": {"type": "keyword"},
    "bitrate": {"type": "long"},
    "rotation": {"type": "integer"},
    "audio_channels": {"type": "integer"},
    "camera": {"type": "keyword"},
    "gps": {"type": "geo_point"},
    # "4K", "1080p", "720p", "SD" from the short edge: a facet archivists read.
    "resolution": {"type": "keyword"},
    "orientation": {"type": "keyword"},  # landscape / portrait / square, as displayed
    # Where recorded_at came from: "upload" (typed by the broadcaster) or "metadata" (EXIF/container).
    "recorded_at_source": {"type": "keyword"},
    # pending → ready | failed; the UI shows a placeholder until "ready".
    "processing_status": {"type": "keyword"},
    "processing_error": {
        "properties": {
            "stage": {"type": "keyword"},
            "code": {"type": "keyword"},
            "reason": {"type": "text"},
            "reason_en": {"type": "text"},
            "retryable": {"type": "boolean"},
        }
    },
    # Rendition name -> {bucket, key, mime_type, size_bytes, width, height}; the
    # search API turns keys into presigned URLs. Stored, not searched.
    "renditions": {"type": "object", "enabled": False},
    "poster_key": {"type": "keyword"},
}

ASSET_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "asset_id": {"type": "keyword"},
        "kind": {"type": "keyword"},
        "title": {"type": "text", "analyzer": "standard"},
        "title_folded": {"type": "text", "analyzer": "standard"},
        "caption": {"type": "text", "analyzer": "standard"},
        "caption_folded": {"type": "text", "analyzer": "standard"},
        "activity_type": {"type": "keyword"},
        "activity_label": {"type": "keyword"},
        "term": {"type": "keyword"},
        "year": {"type": "integer"},
        "source_org": {"type": "keyword"},
        "recorded_at": {"type": "date"},
        "ingested_at": {"type": "date"},
        "ingested_by": {"type": "keyword"},
        "sha256": {"type": "keyword"},
        "size_bytes": {"type": "long"},
        "media_format": {"type": "keyword"},
        "mime_type": {"type": "keyword"},
        "original_filename": {"type": "keyword"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "duration_s": {"type": "float"},
        "published": {"type": "boolean"},
        # --- media facts and renditions (transcoder: asset.probed, renditions_ready, processing_failed)
        **MEDIA_MAPPINGS,
        # --- tags (tagger, archivists' edits, activities: see shared.tags)
        **TAG_MAPPINGS,
        "last_event_type": {"type": "keyword"},
        # Stream sequences folded into this document: duplicate detection.
        "event_sequences": {"type": "long", "index": False},
    },
}


def apply_event(doc: dict[str, Any], event: EventEnvelope) -> dict[str, Any]:
    """Fold one asset event into the asset's index document (returns a new dict)."""
    out = dict(doc)
    out["asset_id"] = event.aggregate_id
    out["last_event_type"] = event.type
    if event.type == AssetIngestedV1.EVENT_TYPE:
        p = event.typed_payload()
        assert isinstance(p, AssetIngestedV1)
        out.update(
            kind=p.kind.value,
            title=p.title,
            caption=p.caption,
            activity_type=p.activity_type,
            activity_label=activity_label(p.activity_type),
            source_org=p.source_org or None,
            sha256=p.sha256,
            size_bytes=p.size_bytes,
            media_format=p.media_format,
            mime_type=p.mime_type,
            original_filename=p.original_filename or None,
            width=p.width,
            height=p.height,
            duration_s=p.duration_s,
            ingested_at=event.occurred_at.isoformat(),
            ingested_by=event.actor,
            published=out.get("published", False),
        )
        if p.recorded_at is not None:
            local_day = p.recorded_at.astimezone(LOCAL_TZ).date()
            term = term_for(local_day)
            out.update(recorded_at=p.recorded_at.isoformat(), year=local_day.year, term=term.code if term else None)
    out = fold_media_event(out, event)
    out = fold_tag_event(out, event)  # tags, edits, activity: manual values win
    for name in TEXT_FIELDS:
        if name in out:
            out[f"{name}_folded"] = fold(out[name] or "")
    return out


def resolution_class(width: int | None, height: int | None) -> str | None:
    if not width or not height:
        return None
    short = min(width, height)
    return "4K" if short >= 2160 else "1080p" if short >= 1080 else "720p" if short >= 720 else "SD"


def fold_media_event(doc: dict[str, Any], event: EventEnvelope) -> dict[str, Any]:
    """Fold the transcoder's events: probed facts, rendition keys, failures."""
    out = dict(doc)
    if event.type == AssetIngestedV1.EVENT_TYPE:
        out.setdefault("processing_status", "pending")
        if out.get("recorded_at") and not out.get("recorded_at_source"):
            out["recorded_at_source"] = "upload"
    elif event.type == AssetProbedV1.EVENT_TYPE:
        p = event.typed_payload()
        assert isinstance(p, AssetProbedV1)
        # Width/height are as displayed (rotation applied), unlike ingest's.
        out.update(
            kind=p.kind.value,
            container=p.container,
            duration_s=p.duration_s,
            width=p.width,
            height=p.height,
            frame_rate=p.frame_rate,
            video_codec=p.video_codec,
            audio_codec=p.audio_codec,
            bitrate=p.bitrate,
            rotation=p.rotation,
            audio_channels=p.audio_channels,
            camera=p.camera,
            gps={"lat": p.gps.lat, "lon": p.gps.lon} if p.gps else None,
            resolution=resolution_class(p.width, p.height) if p.kind.value == "video" else None,
            orientation=(
                None
                if not p.width or not p.height
                else "portrait"
                if p.height > p.width
                else "landscape"
                if p.width > p.height
                else "square"
            ),
        )
        # The broadcaster's date wins; the camera's fills the gap.
        if p.recorded_at is not None and not out.get("recorded_at"):
            local_day = p.recorded_at.astimezone(LOCAL_TZ).date()
            term = term_for(local_day)
            out.update(
                recorded_at=p.recorded_at.isoformat(),
                year=local_day.year,
                term=term.code if term else None,
                recorded_at_source="metadata",
            )
    elif event.type == AssetRenditionsReadyV1.EVENT_TYPE:
        r = event.typed_payload()
        assert isinstance(r, AssetRenditionsReadyV1)
        out["renditions"] = {
            x.name.value: {
                "bucket": x.bucket,
                "key": x.key,
                "mime_type": x.mime_type,
                "size_bytes": x.size_bytes,
                "width": x.width,
                "height": x.height,
            }
            for x in r.renditions
        }
        stored = out["renditions"]
        poster = next((stored[n] for n in ("poster", "thumb", "waveform") if n in stored), None)
        out.update(processing_status="ready", processing_error=None, poster_key=poster["key"] if poster else None)
    elif event.type == AssetProcessingFailedV1.EVENT_TYPE:
        f = event.typed_payload()
        assert isinstance(f, AssetProcessingFailedV1)
        out.update(
            processing_status="failed",
            processing_error={
                "stage": f.stage.value,
                "code": f.code,
                "reason": f.reason,
                "reason_en": f.reason_en,
                "retryable": f.retryable,
            },
        )
    return out


def with_sequence(doc: dict[str, Any], sequence: int) -> dict[str, Any]:
    """Record that the event at ``sequence`` is folded into ``doc``."""
    seen = sorted({*doc.get("event_sequences", []), sequence})
    return {**doc, "event_sequences": seen}


def local_date_of(value: datetime) -> date:
    return value.astimezone(LOCAL_TZ).date()
