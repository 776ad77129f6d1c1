"""Review statistics as the summary producers chart them: per organ (Ban), per
collection, and one period against another (this year against last).

Every answer is chart-ready: ``labels`` (the x axis) and ``series`` (one line or
bar group each, one value per label, counts and durations side by side).
The same filters as ``GET /v1/search`` (and ``collection=<id>``) narrow what is
counted; what the caller may not see is never counted.

The organ of an asset is its ``organisations`` tag restricted to the council's
organs of the vocabulary (``shared/data/vocabulary.json``, ``organs``): the
tagger proposes it from the caption, title, OCR and the uploader's organisation;
an archivist's edit wins.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from services.search.api import Deps, FiltersDep
from services.search.collection_scope import CollectionScope, collection_clause, scoped
from services.search.params import parse_group
from services.search.query import Filters, StatsGroup, Visible, filter_clauses
from shared.access import requires
from shared.auth import Principal
from shared.collections import Collection, fold_collection
from shared.events.collections import CollectionKind
from shared.http import UserError
from shared.policy import Action, visibility_filter
from shared.ports import StoredEvent
from shared.subjects import aggregate_type_filter
from shared.taxonomy import LOCAL_TZ, activity_label, terms
from shared.vocabulary import load_vocabulary

router = APIRouter(prefix="/v1")
Searcher = Annotated[Principal, Depends(requires(Action.SEARCH))]
CollectionReader = Annotated[Principal, Depends(requires(Action.COLLECTION_READ))]
NO_ORGAN = "(không rõ cơ quan)"
Breakdown = Literal["activity_type", "organ", "month"]


def council_organs() -> list[str]:
    """The organs of the council (Thường trực, the Ban, …) by their Vietnamese labels."""
    return [o.label_vi for o in load_vocabulary().organisations if o.kind == "organ"]


def _where(f: Filters, visible: Visible) -> dict[str, Any]:
    clauses = filter_clauses(f)
    return {"bool": {"filter": clauses if visible is None else [*clauses, visible]}}


def _measures() -> dict[str, Any]:
    return {"duration": {"sum": {"field": "duration_s"}}}


def _period_agg(group: StatsGroup) -> dict[str, Any]:
    if group == "month":
        return {
            "date_histogram": {
                "field": "recorded_at",
                "calendar_interval": "month",
                "time_zone": LOCAL_TZ.key,
                "format": "yyyy-MM",
                "min_doc_count": 1,
            },
            "aggs": _measures(),
        }
    return {"terms": {"field": group, "size": 500, "order": {"_key": "asc"}}, "aggs": _measures()}


def _per_type() -> dict[str, Any]:
    return {"terms": {"field": "activity_type", "size": 50, "order": {"_key": "asc"}}, "aggs": _measures()}


def _period_key(bucket: dict[str, Any]) -> str:
    return str(bucket.get("key_as_string", bucket["key"]))


def _duration(bucket: dict[str, Any]) -> float:
    return round(float(bucket["duration"]["value"] or 0.0), 3)


def _types(bucket: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "activity_type": b["key"],
            "label": activity_label(b["key"]),
            "count": b["doc_count"],
            "duration_s": _duration(b),
        }
        for b in bucket["by_type"]["buckets"]
    ]


def _series(name: str, label: str, bucket: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    cells = {_period_key(b): b for b in bucket["periods"]["buckets"]}
    return {
        "key": name,
        "label": label,
        "counts": [cells[p]["doc_count"] if p in cells else 0 for p in labels],
        "durations_s": [_duration(cells[p]) if p in cells else 0.0 for p in labels],
        "total": bucket["doc_count"],
        "total_duration_s": _duration(bucket),
        "by_activity_type": _types(bucket),
    }


def organs_body(f: Filters, group: StatsGroup, visible: Visible, organs: list[str]) -> dict[str, Any]:
    inner = {"periods": _period_agg(group), "by_type": _per_type(), **_measures()}
    return {
        "size": 0,
        "track_total_hits": True,
        "query": _where(f, visible),
        "aggs": {
            "organs": {"terms": {"field": "organisations", "include": organs, "size": len(organs)}, "aggs": inner},
            "none": {"filter": {"bool": {"must_not": {"terms": {"organisations": organs}}}}, "aggs": inner},
            "periods": _period_agg(group),
        },
    }


def shape_grouped(response: dict[str, Any], group: str, rows: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """``rows``: (key, label, aggregation bucket with periods/by_type/duration) → chart series."""
    labels = [_period_key(b) for b in response["aggregations"]["periods"]["buckets"]]
    term_labels = {t.code: t.label_vi for t in terms()}
    return {
        "group_by": group,
        "labels": labels,
        "label_names": [term_labels.get(p, p) for p in labels] if group == "term" else labels,
        "total": response["hits"]["total"]["value"],
        "series": [_series(key, label, bucket, labels) for key, label, bucket in rows],
    }


@router.get("/stats/organs", summary="Thống kê theo cơ quan (Ban) / statistics per organ")
async def stats_per_organ(
    who: Searcher,
    d: Deps,
    filters: FiltersDep,
    in_collection: CollectionScope,
    group_by: Annotated[str, Query(description="month, year, term")] = "month",
) -> dict[str, Any]:
    group = parse_group(group_by)
    organs = council_organs()
    visible = scoped(visibility_filter(who), in_collection)
    response = await d.index.search(organs_body(filters, group, visible, organs))
    aggs = response["aggregations"]
    found = {b["key"]: b for b in aggs["organs"]["buckets"]}
    rows = [(organ, organ, found[organ]) for organ in organs if organ in found]
    if aggs["none"]["doc_count"]:
        rows.append(("", NO_ORGAN, aggs["none"]))
    # An asset naming two organs counts for each: the series may add up to more than the total.
    return shape_grouped(response, group, rows)


async def all_collections(d: Any) -> list[Collection]:
    by_id: dict[str, list[StoredEvent]] = {}
    async for stored in d.events.read_subjects(aggregate_type_filter("collection")):
        by_id.setdefault(stored.envelope.aggregate_id, []).append(stored)
    return [c for c in (fold_collection(h) for h in by_id.values()) if c is not None]


@router.get("/stats/collections", summary="Thống kê theo bộ sưu tập / statistics per collection")
async def stats_per_collection(
    who: CollectionReader,
    d: Deps,
    filters: FiltersDep,
    group_by: Annotated[str, Query(description="month, year, term")] = "month",
    kind: CollectionKind | None = None,
) -> dict[str, Any]:
    group = parse_group(group_by)
    chosen = sorted(
        (c for c in await all_collections(d) if kind is None or c.kind is kind), key=lambda c: c.collection_id
    )
    inner = {"periods": _period_agg(group), "by_type": _per_type(), **_measures()}
    body: dict[str, Any] = {
        "size": 0,
        "track_total_hits": True,
        "query": _where(filters, visibility_filter(who)),
        "aggs": {"periods": _period_agg(group)},
    }
    if chosen:
        body["aggs"]["collections"] = {
            "filters": {"filters": {c.collection_id: collection_clause(c) for c in chosen}},
            "aggs": inner,
        }
    response = await d.index.search(body)
    found = response["aggregations"].get("collections", {}).get("buckets", {})
    rows = [(c.collection_id, c.title, found[c.collection_id]) for c in chosen]
    shaped = shape_grouped(response, group, rows)
    kinds = {c.collection_id: c.kind.value for c in chosen}
    for series in shaped["series"]:
        series["kind"] = kinds[series["key"]]
    return shaped


def _year_span(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)


def _checked_span(lo: date | None, hi: date | None, default: tuple[date, date], name: str) -> tuple[date, date]:
    span = (lo or default[0], hi or default[1])
    if span[0] > span[1]:
        raise UserError(
            422,
            "invalid_date_range",
            f"Kỳ {name}: ngày bắt đầu sau ngày kết thúc.",
            f"Period {name}: the start is after the end.",
            field=f"{name}_from",
        )
    return span


def _range(span: tuple[date, date]) -> dict[str, Any]:
    return {
        "range": {"recorded_at": {"gte": span[0].isoformat(), "lte": span[1].isoformat(), "time_zone": LOCAL_TZ.key}}
    }


def compare_body(
    f: Filters, visible: Visible, spans: dict[str, tuple[date, date]], by: Breakdown, organs: list[str]
) -> dict[str, Any]:
    if by == "activity_type":
        breakdown: dict[str, Any] = {"terms": {"field": "activity_type", "size": 50}, "aggs": _measures()}
    elif by == "organ":
        breakdown = {"terms": {"field": "organisations", "include": organs, "size": len(organs)}, "aggs": _measures()}
    else:  # month of the year ("01".."12"), so January meets January; summed in Python
        breakdown = {
            "date_histogram": {
                "field": "recorded_at",
                "calendar_interval": "month",
                "time_zone": LOCAL_TZ.key,
                "format": "MM",
                "min_doc_count": 1,
            },
            "aggs": _measures(),
        }
    return {
        "size": 0,
        "query": _where(f, visible),
        "aggs": {
            "spans": {
                "filters": {"filters": {name: _range(span) for name, span in spans.items()}},
                "aggs": {"breakdown": breakdown, **_measures()},
            }
        },
    }


def _cells(buckets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Buckets by key; months of different years with the same number are added up."""
    out: dict[str, dict[str, Any]] = {}
    for b in buckets:
        key = str(b.get("key_as_string", b["key"]))
        held = out.get(key)
        if held is None:
            out[key] = {"doc_count": b["doc_count"], "duration": {"value": b["duration"]["value"] or 0.0}}
        else:
            held["doc_count"] += b["doc_count"]
            held["duration"]["value"] += b["duration"]["value"] or 0.0
    return out


@router.get("/stats/compare", summary="So sánh hai kỳ (năm nay / năm trước) / compare two periods")
async def compare_periods(
    who: Searcher,
    d: Deps,
    filters: FiltersDep,
    in_collection: CollectionScope,
    by: Annotated[Breakdown, Query(description="activity_type, organ, month")] = "activity_type",
    current_from: date | None = None,
    current_to: date | None = None,
    previous_from: date | None = None,
    previous_to: date | None = None,
) -> dict[str, Any]:
    """Defaults: this calendar year (Vietnam time) against the last one."""
    this_year = datetime.now(LOCAL_TZ).year
    spans = {
        "current": _checked_span(current_from, current_to, _year_span(this_year), "current"),
        "previous": _checked_span(previous_from, previous_to, _year_span(this_year - 1), "previous"),
    }
    organs = council_organs()
    visible = scoped(visibility_filter(who), in_collection)
    response = await d.index.search(compare_body(filters, visible, spans, by, organs))
    buckets = response["aggregations"]["spans"]["buckets"]
    cells = {name: _cells(buckets[name]["breakdown"]["buckets"]) for name in spans}
    if by == "activity_type":
        keys = sorted({k for c in cells.values() for k in c})
        names = [activity_label(k) for k in keys]
    elif by == "organ":
        keys = [o for o in organs if any(o in c for c in cells.values())]
        names = keys
    else:
        keys = [f"{m:02d}" for m in range(1, 13)]
        names = [f"Tháng {m}" for m in range(1, 13)]
    series = []
    for name, span in spans.items():
        series.append(
            {
                "key": name,
                "label": f"{span[0]:%d/%m/%Y} – {span[1]:%d/%m/%Y}",
                "from": span[0].isoformat(),
                "to": span[1].isoformat(),
                "counts": [cells[name][k]["doc_count"] if k in cells[name] else 0 for k in keys],
                "durations_s": [_duration(cells[name][k]) if k in cells[name] else 0.0 for k in keys],
                "total": buckets[name]["doc_count"],
                "total_duration_s": _duration(buckets[name]),
            }
        )
    current, previous = series
    return {
        "by": by,
        "labels": keys,
        "label_names": names,
        "series": series,
        "change": {
            "counts": [a - b for a, b in zip(current["counts"], previous["counts"], strict=True)],
            "total": current["total"] - previous["total"],
            "total_duration_s": round(current["total_duration_s"] - previous["total_duration_s"], 3),
        },
    }
