"""Search domain logic: folding events into index documents. Pure functions,
unit-tested without servers. Queries are built in ``query.py`` and results
shaped in ``results.py``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.events.envelope import EventEnvelope
from shared.events.models import AssetIngestedV1
from shared.taxonomy import activity_label, term_for
from shared.text import fold

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# Text fields kept twice: as typed (NFC) and folded (no diacritics, lowercase).
TEXT_FIELDS = ("title", "caption")

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
            kind=p.kind.value, title=p.title, caption=p.caption, activity_type=p.activity_type,
            activity_label=activity_label(p.activity_type), source_org=p.source_org or None,
            sha256=p.sha256, size_bytes=p.size_bytes, media_format=p.media_format, mime_type=p.mime_type,
            original_filename=p.original_filename or None, width=p.width, height=p.height,
            duration_s=p.duration_s, ingested_at=event.occurred_at.isoformat(), ingested_by=event.actor,
            published=out.get("published", False),
        )
        if p.recorded_at is not None:
            local_day = p.recorded_at.astimezone(LOCAL_TZ).date()
            term = term_for(local_day)
            out.update(recorded_at=p.recorded_at.isoformat(), year=local_day.year,
                       term=term.code if term else None)
    for name in TEXT_FIELDS:
        if name in out:
            out[f"{name}_folded"] = fold(out[name] or "")
    return out


def with_sequence(doc: dict[str, Any], sequence: int) -> dict[str, Any]:
    """Record that the event at ``sequence`` is folded into ``doc``."""
    seen = sorted({*doc.get("event_sequences", []), sequence})
    return {**doc, "event_sequences": seen}


def local_date_of(value: datetime) -> date:
    return value.astimezone(LOCAL_TZ).date()
