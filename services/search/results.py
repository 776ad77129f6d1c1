"""Shaping Elasticsearch responses into the API's JSON. Pure functions."""

from __future__ import annotations

import html
import re
from typing import Any

from services.search.fields import text_fields
from services.search.query import HL_POST, HL_PRE
from shared.taxonomy import activity_label, terms

_ADJACENT_MARKS = re.compile(f"{HL_POST}(\\s+){HL_PRE}")
_MARK_SPLIT = re.compile(f"([{HL_PRE}{HL_POST}])")
# Internal bookkeeping never shown to API users.
# A highlight shows at most this many characters of its field: the whole field when it is
# short (titles, most captions), else a window from a little before the first match.
HIGHLIGHT_MAX_CHARS = 2_000
_BEFORE_FIRST_MATCH = 200
_HIDDEN = frozenset({"event_sequences"})


def _label(code: str) -> str:
    try:
        return activity_label(code)
    except KeyError:
        return code


def map_highlight(original: str, folded_marked: str, limit: int = HIGHLIGHT_MAX_CHARS) -> str:
    """Put the marks of a highlighted folded text onto the original text.

    ``fold`` keeps one character per character of the NFC original, so the
    unmarked stretches of ``folded_marked`` are slices of ``original`` of the
    same length. The result is HTML-escaped with ``<em>`` around matches; words
    matched side by side are marked as one span ("<em>xử lý đơn thư</em>").
    A field longer than ``limit`` shows a window of ``limit`` characters, with
    "…" where text was left out.
    """
    folded_marked = _ADJACENT_MARKS.sub(r"\1", folded_marked)
    runs: list[tuple[int, int, bool]] = []  # (start, end, marked) in the original
    pos, marked = 0, False
    for piece in _MARK_SPLIT.split(folded_marked):
        if piece == HL_PRE:
            marked = True
        elif piece == HL_POST:
            marked = False
        elif piece:
            runs.append((pos, pos + len(piece), marked))
            pos += len(piece)
    start, end = 0, pos  # the highlight covers original[:pos] (a long field's folded copy is cut)
    if pos > limit:
        first = next((a for a, _, m in runs if m), 0)
        start = max(0, min(first - _BEFORE_FIRST_MATCH, pos - limit))
        end = start + limit
    out = ["…"] if start else []
    for a, b, m in runs:
        a, b = max(a, start), min(b, end)
        if a < b:
            text = html.escape(original[a:b])
            out.append(f"<em>{text}</em>" if m else text)
    if end < len(original):
        out.append("…")
    return "".join(out)


def shape_hit(hit: dict[str, Any]) -> dict[str, Any]:
    """The stored document minus bookkeeping, with score and highlights in the original Vietnamese."""
    src = hit["_source"]
    highlights: dict[str, str] = {}
    marks = hit.get("highlight") or {}
    for name in text_fields():
        marked = marks.get(f"{name}_folded")
        original = src.get(name)
        if marked and isinstance(original, str) and original:
            highlights[name] = map_highlight(original, marked[0])
    # The query bodies already leave these out of _source (query.HIDDEN_SOURCE); filtering
    # again keeps a hit's shape independent of the body that produced it.
    body = {k: v for k, v in src.items() if k not in _HIDDEN and not k.endswith("_folded")}
    seen = {"sequence": hit["_version"]} if "_version" in hit else {}  # asked for by the search body
    return {**body, **seen, "score": hit.get("_score"), "highlight": highlights}


def shape_facets(aggs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for facet, body in aggs.items():
        values = body["values"] if "values" in body else body["nested"]["values"]
        rows = []
        for b in values["buckets"]:
            row: dict[str, Any] = {"value": b["key"], "count": b["doc_count"]}
            if facet == "activity_type":
                row["label"] = _label(str(b["key"]))
            rows.append(row)
        out[facet] = rows
    return out


def _type_cells(bucket: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "activity_type": t["key"],
            "label": _label(str(t["key"])),
            "count": t["doc_count"],
            "duration_s": round(float(t["duration"]["value"] or 0.0), 3),
        }
        for t in bucket["by_type"]["buckets"]
    ]


def shape_stats(response: dict[str, Any], group_by: str) -> dict[str, Any]:
    """Chart-ready: one row per period with per-type counts and durations, plus totals."""
    aggs = response["aggregations"]
    term_labels = {t.code: t.label_vi for t in terms()}
    periods = []
    for b in aggs["periods"]["buckets"]:
        key = b.get("key_as_string", b["key"]) if group_by == "month" else b["key"]
        row: dict[str, Any] = {
            "period": str(key),
            "count": b["doc_count"],
            "duration_s": round(sum(c["duration_s"] for c in _type_cells(b)), 3),
            "by_activity_type": _type_cells(b),
        }
        if group_by == "term":
            row["label"] = term_labels.get(str(key), str(key))
        periods.append(row)
    undated = aggs["undated"]
    return {
        "group_by": group_by,
        "total": response["hits"]["total"]["value"],
        "total_duration_s": round(float(aggs["duration"]["value"] or 0.0), 3),
        "periods": periods,
        "undated": {"count": undated["doc_count"], "by_activity_type": _type_cells(undated)},
    }


def shape_activities(response: dict[str, Any]) -> list[dict[str, Any]]:
    term_labels = {t.code: t.label_vi for t in terms()}
    out = []
    for term_bucket in response["aggregations"]["terms"]["buckets"]:
        holder = term_bucket.get("nested", term_bucket)
        activities = []
        for b in holder["activities"]["buckets"]:
            hits = b["sample"]["hits"]["hits"]
            sample = hits[0]["_source"] if hits else {}
            info = {k: v for k, v in sample.items() if k.startswith("activity") and not k.endswith("_folded")}
            activities.append(
                {
                    "activity_id": b["key"],
                    **{k: v for k, v in info.items() if k != "activity_id"},
                    "asset_count": b["doc_count"],
                    "first_recorded_at": b["first"].get("value_as_string"),
                    "last_recorded_at": b["last"].get("value_as_string"),
                    "duration_s": round(float(b["duration"]["value"] or 0.0), 3),
                    "activity_types": [t["key"] for t in b["types"]["buckets"]],
                }
            )
        code = str(term_bucket["key"]) or None
        out.append(
            {
                "term": code,
                "label": term_labels.get(code or "", "Chưa xác định nhiệm kỳ / no term"),
                "activities": activities,
            }
        )
    return out
