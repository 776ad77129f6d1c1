"""Search domain logic: folding events into index documents. Pure functions,
unit-tested without servers. Queries are built in ``query.py`` and results
shaped in ``results.py``."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from shared.events.envelope import EventEnvelope
from shared.events.media import (
    AssetProbedV1,
    AssetProcessingFailedV1,
    AssetProcessingRetryRequestedV1,
    AssetRenditionsReadyV1,
)
from shared.events.models import AssetIngestedV1
from shared.events.tagging import AssetRetagRequestedV1, AssetTaggedV1, AssetTaggingFailedV1
from shared.policy import PUBLISH_AT, PUBLISHED, PUBLISHED_SINCE, RESTRICTION, UNPUBLISH_AT, UPLOADED_BY, Visibility
from shared.publication import VISIBILITY_EVENT_TYPES, fold_visibility, index_fields, visibility_from_fields
from shared.speeches import SPEECH_MAPPINGS, fold_speech_event_into
from shared.tags import TAG_MAPPINGS, fold_tag_event_into
from shared.taxonomy import (
    LOCAL_TZ,
    activity_label,
    term_for,
)
from shared.text import fold

# Text fields kept twice: as typed (NFC) and folded (no diacritics, lowercase).
TEXT_FIELDS = ("title", "caption")

# --- what the index can take, whatever the events hold --------------------------------
# Events already in the log cannot be changed, and the services that appended them
# accepted user input as it came, so the document builder, not the boundary, makes
# every document writable: a write that fails here would park the projection for good.
#
# Lucene refuses a term over 32 766 bytes (8 191 characters of up to 4 bytes). Keyword
# values longer than this are kept in _source but not indexed (no filter, facet or sort
# finds them; no real name or code is that long).
KEYWORD_IGNORE_ABOVE = 1024
# The folded copies decide what matches and are what highlighting marks; past this many
# characters a text is kept in _source but not searched (highlighting analyses as much).
MAX_SEARCHABLE_CHARS = 50_000
# Recording instants the index dates an asset by; outside, the asset is undated (null)
# and the value as given stays in ``recorded_at_given``. Year 1 or 9999 with a time
# zone cannot even be converted to local time.
RECORDED_AT_MIN = datetime(1800, 1, 1, tzinfo=UTC)
RECORDED_AT_MAX = datetime(2200, 1, 1, tzinfo=UTC)

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
    # Retries an archivist asked for (asset.processing_retry_requested), for the processing queue.
    "processing_retries": {"type": "integer"},
    # When the transcoder's or the tagger's state last changed: the processing queue's order.
    "pipeline_changed_at": {"type": "date"},
}

# Events that change what the processing queue shows (transcoding and tagging states).
PIPELINE_EVENT_TYPES = frozenset(
    {
        AssetIngestedV1.EVENT_TYPE,
        AssetRenditionsReadyV1.EVENT_TYPE,
        AssetProcessingFailedV1.EVENT_TYPE,
        AssetProcessingRetryRequestedV1.EVENT_TYPE,
        AssetTaggedV1.EVENT_TYPE,
        AssetTaggingFailedV1.EVENT_TYPE,
        AssetRetagRequestedV1.EVENT_TYPE,
    }
)


def with_keyword_limits(props: Mapping[str, Any]) -> dict[str, Any]:
    """``props`` with ``ignore_above`` on every indexed keyword field (and multi-field) lacking one."""
    out: dict[str, Any] = {}
    for name, spec in props.items():
        spec = dict(spec)
        if spec.get("type") == "keyword" and not (spec.get("index") is False and spec.get("doc_values") is False):
            spec.setdefault("ignore_above", KEYWORD_IGNORE_ABOVE)
        for nested in ("properties", "fields"):
            if nested in spec:
                spec[nested] = with_keyword_limits(spec[nested])
        out[name] = spec
    return out


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
        # An upload's recording date outside RECORDED_AT_MIN..MAX, as given: shown, never indexed.
        "recorded_at_given": {"type": "keyword", "index": False, "doc_values": False},
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
        # --- who may see it (shared.publication folds them; shared.policy.visibility_filter queries them)
        UPLOADED_BY: {"type": "keyword"},
        RESTRICTION: {"type": "keyword"},
        PUBLISHED: {"type": "boolean"},
        PUBLISH_AT: {"type": "date"},
        PUBLISHED_SINCE: {"type": "date"},  # sorts the feed, never filters
        UNPUBLISH_AT: {"type": "date"},
        # --- media facts and renditions (transcoder: asset.probed, renditions_ready, processing_failed)
        **MEDIA_MAPPINGS,
        # --- tags (tagger, archivists' edits, activities: see shared.tags)
        **TAG_MAPPINGS,
        # --- who speaks (tagger's recognitions, archivists' decisions: see shared.speeches)
        **SPEECH_MAPPINGS,
        "last_event_type": {"type": "keyword"},
        # Stream sequences folded into this document: duplicate detection.
        "event_sequences": {"type": "long", "index": False},
    },
}
ASSET_MAPPINGS["properties"] = with_keyword_limits(ASSET_MAPPINGS["properties"])


def apply_event(doc: dict[str, Any], event: EventEnvelope) -> dict[str, Any]:
    """Fold one asset event into the asset's index document (returns a new dict)."""
    out = dict(doc)
    fold_event_into(out, event)
    return indexable(out)


def fold_event_into(out: dict[str, Any], event: EventEnvelope) -> None:
    """:func:`apply_event` changing ``out`` itself, a document its caller owns (a replay folds
    each asset's events onto one dict instead of a copy per event), and leaving the values out
    of their field's range (:func:`indexable`) to the caller: the document is made indexable
    once, when written. The folds read none of the values ``indexable`` changes (numbers the
    events give, folded copies) but ``processing_retries``, a count of retry events no stream
    brings near 2**31, so bounding the last document or each one in between gives the same
    (tests/unit/test_search_fold_replay.py folds out-of-range values both ways). A fold that
    reads such a field must keep to that. Values are replaced, never changed in place: they
    may be shared with other documents."""
    out["asset_id"] = event.aggregate_id
    out["last_event_type"] = event.type
    if event.type == AssetIngestedV1.EVENT_TYPE:
        p = event.typed_payload()
        assert isinstance(p, AssetIngestedV1)
        when = indexable_instant(p.recorded_at)
        given = event_recorded_at(event) if when is None else None
        if when is not p.recorded_at:
            # The tag fold dates the term from the payload too: it sees the date the index takes.
            p = p.model_copy(update={"recorded_at": when})
            event = event.model_copy(update={"payload": p.model_dump(mode="json"), "schema_version": p.SCHEMA_VERSION})
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
            recorded_at_given=given,
        )
        if when is not None:
            local_day = when.astimezone(LOCAL_TZ).date()
            term = term_for(local_day)
            out.update(recorded_at=when.isoformat(), year=local_day.year, term=term.code if term else None)
        elif given is not None:
            out.update(recorded_at=None, year=None, term=None)
    _fold_media_into(out, event)
    fold_tag_event_into(out, event)  # tags, edits, activity: manual values win
    fold_speech_event_into(out, event)  # who speaks: the archivist's decision wins
    if event.type in PIPELINE_EVENT_TYPES:
        out["pipeline_changed_at"] = event.occurred_at.isoformat()
    if event.type in VISIBILITY_EVENT_TYPES:
        out.update(index_fields(fold_visibility(document_visibility(out), event) or Visibility(uploaded_by="")))
    for name in TEXT_FIELDS:
        if name in out:
            out[f"{name}_folded"] = folded_text(out[name] or "")


# Texts at most this long have their folded copy remembered (most events leave an asset's
# title and caption as they were, and a replay folds them event after event).
_REMEMBERED_TEXT_CHARS = 2000


@functools.lru_cache(maxsize=8192)
def _remembered_fold(value: str) -> str:
    return fold(value)


def folded_text(value: str) -> str:
    """The searched copy of a text field: folded, cut to ``MAX_SEARCHABLE_CHARS``."""
    if len(value) <= _REMEMBERED_TEXT_CHARS:
        return _remembered_fold(value)
    # fold keeps one character per character, so the prefix folds to the folded prefix.
    return fold(value[:MAX_SEARCHABLE_CHARS])


def document_visibility(doc: dict[str, Any]) -> Visibility | None:
    """What the document holds; one indexed before visibility was (only ``ingested_by``) is
    internal, unpublished and its uploader's, as a fresh upload."""
    held = visibility_from_fields(doc)
    if held is None and doc.get("ingested_by"):
        return Visibility(uploaded_by=str(doc["ingested_by"]))
    return held


def indexable_instant(value: datetime | None) -> datetime | None:
    """``value`` if the index can date an asset by it, else None; a naive value is local time
    (as ingest reads bare dates). Returns ``value`` itself when it is fine as it is."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=LOCAL_TZ)
    if RECORDED_AT_MIN.year < aware.year < RECORDED_AT_MAX.year - 1:
        return aware  # inside whatever the offset: the common case, decided without tz arithmetic
    # Aware comparisons subtract offsets without building a date, so year 1 and 9999 compare fine.
    return aware if RECORDED_AT_MIN <= aware < RECORDED_AT_MAX else None


def event_recorded_at(event: EventEnvelope) -> str | None:
    """The recording date as the event holds it (text), for ``recorded_at_given``."""
    raw = event.payload.get("recorded_at")
    return raw[:100] if isinstance(raw, str) else None


# Numeric field types and the values they hold (Elasticsearch refuses a document with any other).
_INT_RANGES = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}
_FLOAT_MAX = {"half_float": 65504.0, "float": 3.4028234663852886e38, "double": 1.7976931348623157e308}


@dataclass(frozen=True)
class _Limits:
    """What the values of one object of the mapping must fit, by field (precomputed: folds are hot)."""

    ints: tuple[tuple[str, int, int], ...]
    floats: tuple[tuple[str, float], ...]
    texts: tuple[tuple[str, int], ...]
    objects: tuple[tuple[str, _Limits], ...]


def _limits(props: Mapping[str, Any]) -> _Limits:
    ints, floats, texts, objects = [], [], [], []
    for name, spec in props.items():
        kind = spec.get("type", "object")
        if "properties" in spec and spec.get("enabled", True):
            objects.append((name, _limits(spec["properties"])))
        elif kind in _INT_RANGES:
            ints.append((name, *_INT_RANGES[kind]))
        elif kind in _FLOAT_MAX:
            floats.append((name, _FLOAT_MAX[kind]))
        elif kind == "text" and name.endswith("_folded"):
            texts.append((name, MAX_SEARCHABLE_CHARS))
    return _Limits(tuple(ints), tuple(floats), tuple(texts), tuple(objects))


def _int_fits(value: Any, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value <= hi


def _float_fits(value: Any, most: float) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and -most <= value <= most


def _bounded(doc: dict[str, Any], limits: _Limits) -> dict[str, Any]:
    fixes: dict[str, Any] = {}
    get = doc.get
    for name, lo, hi in limits.ints:
        value = get(name)
        # _int_fits written out: this runs for every field of every event folded.
        if value is None or (type(value) is int and lo <= value <= hi):
            continue
        if type(value) is list:  # e.g. event_sequences
            if not (
                all(type(v) is int for v in value) and lo <= min(value, default=lo) and max(value, default=hi) <= hi
            ):
                fixes[name] = [v for v in value if _int_fits(v, lo, hi)]
        elif isinstance(value, list):
            if not all(_int_fits(v, lo, hi) for v in value):
                fixes[name] = [v for v in value if _int_fits(v, lo, hi)]
        else:
            fixes[name] = None
    for name, most in limits.floats:
        value = get(name)
        if value is not None and not _float_fits(value, most):
            fixes[name] = [v for v in value if _float_fits(v, most)] if isinstance(value, list) else None
    for name, length in limits.texts:
        value = get(name)
        if value is not None and (not isinstance(value, str) or len(value) > length):
            fixes[name] = value[:length] if isinstance(value, str) else None
    for name, inner in limits.objects:
        value = get(name)
        if isinstance(value, dict):
            fixed = _bounded(value, inner)
            if fixed is not value:
                fixes[name] = fixed
    return {**doc, **fixes} if fixes else doc


_ASSET_LIMITS = _limits(ASSET_MAPPINGS["properties"])


def indexable(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with every value its mapping can index: numbers out of their field's range
    left out (null), folded copies cut to ``MAX_SEARCHABLE_CHARS``. Keywords need nothing
    here (``ignore_above``); dates are checked where they are folded (``indexable_instant``)."""
    return _bounded(doc, _ASSET_LIMITS)


def resolution_class(width: int | None, height: int | None) -> str | None:
    if not width or not height:
        return None
    short = min(width, height)
    return "4K" if short >= 2160 else "1080p" if short >= 1080 else "720p" if short >= 720 else "SD"


def fold_media_event(doc: dict[str, Any], event: EventEnvelope) -> dict[str, Any]:
    """Fold the transcoder's events: probed facts, rendition keys, failures (returns a new dict)."""
    out = dict(doc)
    _fold_media_into(out, event)
    return out


def _fold_media_into(out: dict[str, Any], event: EventEnvelope) -> None:
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
        # The broadcaster's date wins; the camera's fills the gap (if the index can take it).
        when = indexable_instant(p.recorded_at)
        if when is not None and not out.get("recorded_at"):
            local_day = when.astimezone(LOCAL_TZ).date()
            term = term_for(local_day)
            out.update(
                recorded_at=when.isoformat(),
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
    elif event.type == AssetProcessingRetryRequestedV1.EVENT_TYPE:
        # Back in the queue; the failure it retries stays in the history, not on the document.
        out.update(
            processing_status="pending",
            processing_error=None,
            processing_retries=int(out.get("processing_retries") or 0) + 1,
        )


def with_sequence(doc: dict[str, Any], sequence: int) -> dict[str, Any]:
    """Record that the event at ``sequence`` is folded into ``doc``."""
    seen = sorted({*doc.get("event_sequences", []), sequence})
    return {**doc, "event_sequences": seen}


def fold_events(doc: dict[str, Any], events: Iterable[tuple[EventEnvelope, int]]) -> dict[str, Any]:
    """``doc`` with (event, stream sequence) pairs folded on, in order: what
    ``with_sequence(apply_event(doc, event), sequence)`` gives event after event, from one
    copy of ``doc`` made indexable once (see :func:`fold_event_into`) instead of three
    copies per event."""
    out = dict(doc)
    sequences = set(out.get("event_sequences", ()))
    for event, sequence in events:
        fold_event_into(out, event)
        sequences.add(sequence)
    out["event_sequences"] = sorted(sequences)
    return indexable(out)


def local_date_of(value: datetime) -> date:
    return value.astimezone(LOCAL_TZ).date()
