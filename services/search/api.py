"""search HTTP API: the routes (thin handlers) and the adapters they use."""

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Query
from faststream.nats import NatsBroker

from services.search.consistency import ProjectionProgress
from services.search.documents import fold_media_event
from services.search.index import AssetIndex
from services.search.params import parse_filters, parse_group, parse_search
from services.search.query import (
    Filters,
    activities_body,
    build_search_body,
    encode_cursor,
    more_like_this_body,
    stats_body,
)
from services.search.results import shape_activities, shape_facets, shape_hit, shape_stats
from shared.access import requires
from shared.auth import Principal
from shared.eventstore import EventStore
from shared.http import UserError, app_deps
from shared.objectstore import ObjectStore
from shared.policy import Action
from shared.settings import Settings
from shared.subjects import SubjectError, aggregate_filter

MAX_PAGE_SIZE = 100
# Stream sequences are unsigned 64-bit numbers in NATS but JSON-decoded as int64 on its
# API: a larger after_seq made the server answer 400 and this API 500.
MAX_SEQUENCE = 2**63 - 1


@dataclass
class SearchDeps:
    settings: Settings
    es: AsyncElasticsearch
    index: AssetIndex
    events: EventStore
    broker: NatsBroker | None  # None: the projector runs in another process
    progress: ProjectionProgress
    # Renditions are private objects: the UI gets short-lived presigned URLs.
    renditions: ObjectStore

    async def readiness(self) -> dict[str, bool]:
        return {"nats": await self.events.ready(), "elasticsearch": await self.index.ready()}

    async def close(self) -> None:
        if self.broker is not None:
            await self.broker.stop()
        await self.progress.close()
        await self.events.close()
        await self.es.close()


Deps = Annotated[SearchDeps, Depends(app_deps)]
router = APIRouter(prefix="/v1")
# Every route names the action it takes (shared/policy.py decides who may).
Searcher = Annotated[Principal, Depends(requires(Action.SEARCH))]
Reader = Annotated[Principal, Depends(requires(Action.ASSET_READ))]
Operator = Annotated[Principal, Depends(requires(Action.OPERATIONS))]


async def filters_dependency(  # async: no worker-thread hop per request
    activity_type: Annotated[list[str] | None, Query(description="mã loại hoạt động, vd. ky-hop")] = None,
    term: Annotated[list[str] | None, Query(description="nhiệm kỳ, vd. 2021-2026")] = None,
    activity: Annotated[list[str] | None, Query(description="mã hoạt động")] = None,
    person: Annotated[list[str] | None, Query(description="người (giá trị từ nhóm đếm person)")] = None,
    organisation: Annotated[list[str] | None, Query(description="cơ quan, tổ chức")] = None,
    kind: Annotated[list[str] | None, Query(description="video, photo, audio")] = None,
    date_from: Annotated[date | None, Query(description="từ ngày (giờ Việt Nam)")] = None,
    date_to: Annotated[date | None, Query(description="đến ngày (giờ Việt Nam)")] = None,
    published: bool | None = None,
    duration_min: Annotated[float | None, Query(ge=0)] = None,
    duration_max: Annotated[float | None, Query(ge=0)] = None,
    height_min: Annotated[int | None, Query(ge=0, description="độ phân giải dọc tối thiểu, vd. 720")] = None,
    height_max: Annotated[int | None, Query(ge=0)] = None,
) -> Filters:
    return parse_filters(
        activity_type=activity_type,
        term=term,
        activity=activity,
        person=person,
        organisation=organisation,
        kind=kind,
        date_from=date_from,
        date_to=date_to,
        published=published,
        duration_min=duration_min,
        duration_max=duration_max,
        height_min=height_min,
        height_max=height_max,
    )


FiltersDep = Annotated[Filters, Depends(filters_dependency)]


def _asset_id(asset_id: str) -> str:
    try:
        aggregate_filter("asset", asset_id)
    except SubjectError as exc:
        raise UserError(400, "invalid_asset_id", "Mã tư liệu không hợp lệ.", "Invalid asset id.") from exc
    return asset_id


def _not_found(asset_id: str) -> UserError:
    return UserError(404, "asset_not_found", f"Không tìm thấy tư liệu {asset_id}.", f"No asset {asset_id}.")


async def _read_your_writes(d: SearchDeps, after_seq: int | None, refresh: bool) -> None:
    """Wait until the projector has indexed ``after_seq`` (then make it searchable)."""
    if after_seq is not None:
        if not await d.progress.wait_for(after_seq, d.settings.search_consistency_timeout_s):
            raise UserError(
                503,
                "index_not_caught_up",
                f"Chỉ mục tìm kiếm chưa cập nhật tới sự kiện {after_seq}; vui lòng thử lại sau giây lát.",
                f"The search index has not caught up with event {after_seq} yet; retry shortly.",
                after_seq=after_seq,
            )
        refresh = True
    if refresh:
        await d.index.refresh()


Consistency = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_SEQUENCE,
        description="đợi chỉ mục cập nhật tới sự kiện này / wait until this stream sequence is indexed",
    ),
]


@router.get("/search", summary="Tìm tư liệu / search assets")
async def search(
    who: Searcher,
    d: Deps,
    filters: FiltersDep,
    q: Annotated[str, Query(max_length=500, description="từ khóa, có hoặc không dấu")] = "",
    sort: Annotated[str | None, Query(description="relevance, date, duration")] = None,
    order: Annotated[str | None, Query(description="asc, desc")] = None,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    cursor: Annotated[str | None, Query(max_length=2000, description="next_cursor trang trước")] = None,
    facets: Annotated[list[str] | None, Query()] = None,
    after_seq: Consistency = None,
    refresh: bool = False,
) -> dict[str, Any]:
    cursor_key = d.settings.search_cursor_key.get_secret_value().encode()
    params = parse_search(
        q=q,
        filters=filters,
        sort=sort,
        order=order,
        size=size,
        offset=offset,
        cursor=cursor,
        facets=facets,
        cursor_key=cursor_key,
    )
    await _read_your_writes(d, after_seq, refresh)
    result = await d.index.search(build_search_body(params))
    hits = result["hits"]["hits"]
    return {
        "total": result["hits"]["total"]["value"],
        "hits": [shape_hit(h) for h in hits],
        "facets": shape_facets(result.get("aggregations", {})),
        "next_cursor": encode_cursor(params, hits[-1]["sort"], cursor_key) if len(hits) == params.size else None,
    }


@router.get("/assets/{asset_id}/similar", summary="Tư liệu tương tự / more like this asset")
async def similar(
    asset_id: str,
    who: Searcher,
    d: Deps,
    filters: FiltersDep,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 10,
) -> dict[str, Any]:
    found = await d.index.get(_asset_id(asset_id))
    if found is None:
        raise _not_found(asset_id)
    doc = found[0]
    like = [v for k, v in doc.items() if k.endswith("_folded") and isinstance(v, str) and v]
    result = await d.index.search(more_like_this_body(asset_id, like, filters, size))
    return {"asset_id": asset_id, "hits": [shape_hit(h) for h in result["hits"]["hits"]]}


@router.get("/stats", summary="Thống kê phục vụ sơ kết, tổng kết / review statistics")
async def stats(
    who: Searcher,
    d: Deps,
    filters: FiltersDep,
    group_by: Annotated[str, Query(description="month, year, term")] = "month",
    after_seq: Consistency = None,
) -> dict[str, Any]:
    group = parse_group(group_by)
    await _read_your_writes(d, after_seq, False)
    return shape_stats(await d.index.search(stats_body(filters, group)), group)


@router.get("/stats/activities", summary="Hoạt động theo nhiệm kỳ / activities per term")
async def activities(
    who: Searcher,
    d: Deps,
    filters: FiltersDep,
    size: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    body = activities_body(filters, size)
    if body is None:
        return {
            "terms": [],
            "available": False,
            "note": "Chỉ mục chưa có trường hoạt động / the index has no activity field yet.",
        }
    return {"terms": shape_activities(await d.index.search(body)), "available": True}


@router.get("/assets/{asset_id}/history", summary="Lịch sử tư liệu (nhật ký) / audit trail")
async def history(asset_id: str, who: Reader, d: Deps) -> dict[str, Any]:
    stored = await d.events.history("asset", _asset_id(asset_id))
    if not stored:
        raise _not_found(asset_id)
    return {
        "asset_id": asset_id,
        "events": [
            {
                "sequence": e.sequence,
                "event_id": e.envelope.event_id,
                "type": e.envelope.type,
                "schema_version": e.envelope.schema_version,
                "occurred_at": e.envelope.occurred_at.isoformat(),
                "actor": e.envelope.actor,
                "correlation_id": e.envelope.correlation_id,
                "causation_id": e.envelope.causation_id,
                "payload": e.envelope.payload,
            }
            for e in stored
        ],
    }


@router.get("/projection", summary="Tình trạng chỉ mục / projection status")
async def projection(who: Operator, d: Deps) -> dict[str, Any]:
    info = await d.progress.info()
    if info is None:
        raise UserError(
            503,
            "projector_not_running",
            "Bộ cập nhật chỉ mục chưa chạy lần nào.",
            "No search projector has run yet (its durable consumer does not exist).",
        )
    failures = await d.index.failures()
    return {
        "indices": await d.index.live_indices(),
        "ack_floor": info.ack_floor.stream_seq if info.ack_floor else 0,
        "pending": info.num_pending,
        "awaiting_ack": info.num_ack_pending,
        "stream_last_sequence": await d.events.last_sequence(),
        # Parked events (writes that cannot succeed yet) hold the ack floor back.
        "failures": failures,
        "healthy": not failures,
    }


@router.get("/assets/{asset_id}/renditions", summary="Bản xem trước (URL tạm thời) / rendition URLs")
async def renditions(asset_id: str, who: Reader, d: Deps) -> dict[str, Any]:
    # Read from the asset's events, not the index: a UI opening an asset
    # right after its renditions_ready event must not wait for projection.
    stored = await d.events.history("asset", _asset_id(asset_id))
    if not stored:
        raise _not_found(asset_id)
    doc: dict[str, Any] = {}
    for event in stored:
        doc = fold_media_event(doc, event.envelope)
    out: dict[str, Any] = {}
    for name, item in (doc.get("renditions") or {}).items():
        url = await d.renditions.presigned_get(item["bucket"], item["key"])
        out[name] = {**item, "url": url}
    return {
        "asset_id": asset_id,
        "status": doc.get("processing_status"),
        "error": doc.get("processing_error"),
        "expires_in_s": d.settings.presign_expiry_s,
        "renditions": out,
    }
