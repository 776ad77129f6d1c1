"""Search domain logic: folding events into index documents, building queries,
and shaping results. Pure functions, unit-tested without servers."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.events.envelope import EventEnvelope
from shared.events.models import AssetIngestedV1
from shared.taxonomy import activity_label, term_for
from shared.text import clean_text, fold, nfc

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# Text fields kept twice: as typed (NFC) and folded (no diacritics, lowercase).
TEXT_FIELDS = ("title", "caption")
# Private-use characters as highlight tags: they never occur in captions, and
# are swapped for <em> after mapping the highlight back onto the original text.
_PRE, _POST = "\ue000", "\ue001"

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


@dataclass(frozen=True)
class SearchParams:
    q: str = ""
    activity_types: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    size: int = 20
    offset: int = 0
    facets: tuple[str, ...] = field(default=("activity_type", "kind", "year"))


def _filters(p: SearchParams, *, skip: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if p.activity_types and skip != "activity_type":
        out.append({"terms": {"activity_type": list(p.activity_types)}})
    if p.kinds and skip != "kind":
        out.append({"terms": {"kind": list(p.kinds)}})
    if p.date_from or p.date_to:
        rng: dict[str, Any] = {"time_zone": "+07:00"}
        if p.date_from:
            rng["gte"] = p.date_from.isoformat()
        if p.date_to:
            rng["lte"] = p.date_to.isoformat()
        out.append({"range": {"recorded_at": rng}})
    return out


def text_query(q: str) -> dict[str, Any]:
    """Folded fields decide what matches; exact-diacritic and phrase matches
    only add score, so "tiep xuc" finds "Tiếp xúc" and "Tiếp xúc" ranks the
    exact spelling first."""
    exact = nfc(clean_text(q))
    folded = fold(exact)
    exact_fields = ["title^2", "caption"]
    folded_fields = ["title_folded^2", "caption_folded"]
    return {
        "bool": {
            "must": [{"multi_match": {"query": folded, "fields": folded_fields, "operator": "and"}}],
            "should": [
                {"multi_match": {"query": exact, "fields": exact_fields, "type": "phrase", "boost": 6}},
                {"multi_match": {"query": exact, "fields": exact_fields, "operator": "and", "boost": 3}},
                {"multi_match": {"query": folded, "fields": folded_fields, "type": "phrase", "boost": 2}},
            ],
        }
    }


def build_search_body(p: SearchParams) -> dict[str, Any]:
    """Query, post-filters and facets. Each facet is counted with every filter
    except its own, so picking one activity type still shows the others' counts."""
    query: dict[str, Any] = text_query(p.q) if p.q.strip() else {"match_all": {}}
    aggs: dict[str, Any] = {}
    for facet in p.facets:
        agg: dict[str, Any] = {"terms": {"field": facet, "size": 50}}
        aggs[facet] = {"filter": {"bool": {"filter": _filters(p, skip=facet)}}, "aggs": {"values": agg}}
    sort: list[Any] = ["_score", {"recorded_at": {"order": "desc", "missing": "_last"}}, {"asset_id": "asc"}]
    return {
        "query": query,
        "post_filter": {"bool": {"filter": _filters(p)}},
        "aggs": aggs,
        "sort": sort,
        "size": p.size,
        "from": p.offset,
        "track_total_hits": True,
        "highlight": {
            "pre_tags": [_PRE], "post_tags": [_POST],
            "fields": {f"{name}_folded": {"number_of_fragments": 0} for name in TEXT_FIELDS},
        },
    }


def map_highlight(original: str, folded_marked: str) -> str:
    """Put the marks of a highlighted folded text onto the original text.

    ``fold`` keeps one character per character of the NFC original, so the
    unmarked positions of ``folded_marked`` index straight into ``original``.
    The result is HTML-escaped with ``<em>`` around matches.
    """
    out: list[str] = []
    pos = 0
    for ch in folded_marked:
        if ch == _PRE:
            out.append("<em>")
        elif ch == _POST:
            out.append("</em>")
        else:
            out.append(html.escape(original[pos]) if pos < len(original) else "")
            pos += 1
    return "".join(out)


def shape_hit(hit: dict[str, Any]) -> dict[str, Any]:
    src = hit["_source"]
    highlights = {}
    for name in TEXT_FIELDS:
        marked = (hit.get("highlight") or {}).get(f"{name}_folded")
        if marked and src.get(name):
            highlights[name] = map_highlight(src[name], marked[0])
    keep = ("asset_id", "kind", "title", "caption", "activity_type", "activity_label", "term", "year",
            "source_org", "recorded_at", "width", "height", "duration_s", "mime_type", "ingested_at")
    return {**{k: src.get(k) for k in keep}, "score": hit.get("_score"), "highlight": highlights}


def shape_facets(aggs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for facet, body in aggs.items():
        buckets = body["values"]["buckets"]
        rows = []
        for b in buckets:
            row: dict[str, Any] = {"value": b["key"], "count": b["doc_count"]}
            if facet == "activity_type":
                try:
                    row["label"] = activity_label(str(b["key"]))
                except KeyError:
                    row["label"] = str(b["key"])
            rows.append(row)
        out[facet] = rows
    return out


def local_date_of(value: datetime) -> date:
    return value.astimezone(LOCAL_TZ).date()
