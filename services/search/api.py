"""search HTTP API: the routes (thin handlers) and the adapters they use.

Every read of assets is judged by ``shared.policy``: index reads carry
``visibility_filter(who)`` in the query's own filter (hits, facet counts,
statistics, similar assets), single-asset reads fold the asset's visibility from
its events and ask ``may_see`` — an asset the caller may not see answers the same
404 as one that does not exist. The portal feed is the anonymous public's view.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends, Query, Request, Response
from faststream.nats import NatsBroker

from services.search.aliases import alias_notes, expand_names, group_facets
from services.search.collection_scope import CollectionScope, scoped
from services.search.consistency import Consistency, ProjectionProgress, read_your_writes
from services.search.documents import document_visibility, fold_media_event
from services.search.feed import (
    MAX_FEED_SIZE,
    FeedItem,
    FeedPage,
    MediaLink,
    etag_of,
    feed_body,
    feed_fingerprint,
    feed_item,
    http_date,
    not_modified,
    render_atom,
    render_json,
    render_rss,
    renditions_for,
    signing_window,
    valid_feed_sort,
)
from services.search.index import AssetIndex
from services.search.params import parse_filters, parse_group, parse_search
from services.search.query import (
    CursorError,
    Filters,
    activities_body,
    build_search_body,
    encode_cursor,
    more_like_this_body,
    sign_cursor,
    stats_body,
    verified_cursor,
)
from services.search.results import shape_activities, shape_facets, shape_hit, shape_stats
from shared.access import requires
from shared.auth import Principal
from shared.delegates import DelegateDirectory
from shared.eventstore import EventStore
from shared.http import UserError, app_deps
from shared.objectstore import ObjectStore
from shared.policy import Action, may_see, visibility_filter
from shared.publication import visibility_of
from shared.settings import Settings
from shared.subjects import SubjectError, aggregate_filter

MAX_PAGE_SIZE = 100


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
    # Delegates per term and the sessions, for the delegate report (caught up per request).
    delegates: DelegateDirectory = field(default_factory=DelegateDirectory)
    # Loops of this replica (the exports' sweeper), cancelled on close.
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def readiness(self) -> dict[str, bool]:
        return {"nats": await self.events.ready(), "elasticsearch": await self.index.ready()}

    async def close(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
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
# The portal feed: anyone, signed in or not; it shows what the anonymous public may see.
FeedReader = Annotated[Principal, Depends(requires(Action.FEED))]


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
        organisation=expand_names(organisation),  # a current name also matches its former ones
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


async def _visible_history(d: SearchDeps, asset_id: str, principal: Principal) -> list[Any]:
    """The asset's events, if ``principal`` may see the asset now; else the same 404 as for
    an asset that does not exist (no answer tells an embargoed asset from a missing one)."""
    stored = await d.events.history("asset", _asset_id(asset_id))
    visibility = visibility_of(e.envelope for e in stored)
    if visibility is None or not may_see(principal, visibility, datetime.now(UTC)):
        raise _not_found(asset_id)
    return stored


@router.get("/search", summary="Tìm tư liệu / search assets")
async def search(
    who: Searcher,
    d: Deps,
    filters: FiltersDep,
    in_collection: CollectionScope,
    q: Annotated[str, Query(max_length=500, description="từ khóa, có hoặc không dấu")] = "",
    sort: Annotated[str | None, Query(description="relevance, date, duration, uploaded")] = None,
    order: Annotated[str | None, Query(description="asc, desc")] = None,
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    cursor: Annotated[str | None, Query(max_length=2000, description="next_cursor trang trước")] = None,
    facets: Annotated[list[str] | None, Query()] = None,
    after_seq: Consistency = None,
    refresh: bool = False,
    uploader: Annotated[Literal["me"] | None, Query(description="me: chỉ tư liệu tôi tải lên / my uploads")] = None,
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
    await read_your_writes(d.progress, d.index, after_seq, d.settings.search_consistency_timeout_s, refresh=refresh)
    visible = scoped(visibility_filter(who), in_collection)
    if uploader == "me":  # the uploader is the ingest event's actor, which the document keeps
        visible = scoped(visible, {"term": {"ingested_by": who.actor}})
    result = await d.index.search(build_search_body(params, visible=visible))
    hits = result["hits"]["hits"]
    return {
        "total": result["hits"]["total"]["value"],
        "hits": [in_collection.mark(shape_hit(h)) if in_collection else shape_hit(h) for h in hits],
        "facets": group_facets(shape_facets(result.get("aggregations", {}))),
        "aliases": alias_notes(params.q),  # former names and other spellings searched too
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
    visibility = document_visibility(found[0]) if found is not None else None
    if found is None or visibility is None or not may_see(who, visibility, datetime.now(UTC)):
        raise _not_found(asset_id)  # an asset one may not see is not there, for this caller
    doc = found[0]
    like = [v for k, v in doc.items() if k.endswith("_folded") and isinstance(v, str) and v]
    body = more_like_this_body(asset_id, like, filters, size, visible=visibility_filter(who))
    result = await d.index.search(body)
    return {"asset_id": asset_id, "hits": [shape_hit(h) for h in result["hits"]["hits"]]}


@router.get("/stats", summary="Thống kê phục vụ sơ kết, tổng kết / review statistics")
async def stats(
    who: Searcher,
    d: Deps,
    filters: FiltersDep,
    in_collection: CollectionScope,
    group_by: Annotated[str, Query(description="month, year, term")] = "month",
    after_seq: Consistency = None,
) -> dict[str, Any]:
    group = parse_group(group_by)
    await read_your_writes(d.progress, d.index, after_seq, d.settings.search_consistency_timeout_s)
    body = stats_body(filters, group, visible=scoped(visibility_filter(who), in_collection))
    return shape_stats(await d.index.search(body), group)


@router.get("/stats/activities", summary="Hoạt động theo nhiệm kỳ / activities per term")
async def activities(
    who: Searcher,
    d: Deps,
    filters: FiltersDep,
    in_collection: CollectionScope,
    size: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    body = activities_body(filters, size, visible=scoped(visibility_filter(who), in_collection))
    if body is None:
        return {
            "terms": [],
            "available": False,
            "note": "Chỉ mục chưa có trường hoạt động / the index has no activity field yet.",
        }
    return {"terms": shape_activities(await d.index.search(body)), "available": True}


@router.get("/assets/{asset_id}/history", summary="Lịch sử tư liệu (nhật ký) / audit trail")
async def history(asset_id: str, who: Reader, d: Deps) -> dict[str, Any]:
    stored = await _visible_history(d, asset_id, who)
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
    stored = await _visible_history(d, asset_id, who)
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


# --- the public portal feed (no sign-in) ------------------------------------------------------------

FEED_CACHE_CONTROL = "public, max-age=60"
JSON_FEED_TYPE = "application/feed+json"
RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"


async def feed_query(
    activity_type: Annotated[list[str] | None, Query(description="mã loại hoạt động, vd. ky-hop")] = None,
    term: Annotated[list[str] | None, Query(description="nhiệm kỳ, vd. 2021-2026")] = None,
    size: Annotated[int, Query(ge=1, le=MAX_FEED_SIZE, description="số mục mỗi trang")] = 20,
    cursor: Annotated[str | None, Query(max_length=2000, description="trang sau (next_cursor)")] = None,
) -> tuple[Filters, int, str | None]:
    return parse_filters(activity_type=activity_type, term=term), size, cursor


FeedQuery = Annotated[tuple[Filters, int, str | None], Depends(feed_query)]


async def _feed_link(d: SearchDeps, stored: dict[str, Any] | None, window: datetime) -> MediaLink | None:
    if stored is None or not isinstance(stored.get("bucket"), str) or not isinstance(stored.get("key"), str):
        return None
    url = await d.renditions.presigned_get(
        stored["bucket"], stored["key"], d.settings.feed_url_expiry_s, signed_at=window
    )
    return MediaLink.of(stored, url)


async def _feed_page(request: Request, d: SearchDeps, query: tuple[Filters, int, str | None]) -> FeedPage:
    """One page of what the public may see now: published, in its window, ``public``."""
    filters, size, cursor = query
    key = d.settings.search_cursor_key.get_secret_value().encode()
    fingerprint = feed_fingerprint(filters)
    after: list[Any] | None = None
    if cursor:
        try:
            after = verified_cursor(cursor, fingerprint, key)
            if not valid_feed_sort(after):
                raise CursorError("corrupt cursor")
        except CursorError as exc:
            raise UserError(
                400,
                "invalid_cursor",
                "Con trỏ phân trang không hợp lệ hoặc thuộc bộ lọc khác; hãy đọc lại từ trang đầu.",
                f"Invalid feed cursor ({exc}); start again from the first page.",
                field="cursor",
            ) from exc
    hits = (await d.index.search(feed_body(filters, size, after)))["hits"]["hits"]
    window = signing_window(datetime.now(UTC), d.settings.feed_url_expiry_s)

    async def item(src: dict[str, Any]) -> FeedItem:
        media, poster = renditions_for(src)
        return feed_item(src, await _feed_link(d, media, window), await _feed_link(d, poster, window))

    items = list(await asyncio.gather(*(item(h["_source"]) for h in hits)))
    next_cursor = sign_cursor(fingerprint, hits[-1]["sort"], key) if len(hits) == size else None
    return FeedPage(
        title=d.settings.feed_title,
        feed_url=str(request.url),
        home_url=str(request.base_url),
        items=items,
        window=window,
        url_life_s=d.settings.feed_url_expiry_s,
        next_url=str(request.url.include_query_params(cursor=next_cursor)) if next_cursor else None,
        next_cursor=next_cursor,
    )


def _feed_response(request: Request, page: FeedPage, render: Callable[[FeedPage], bytes], media_type: str) -> Response:
    """The rendered page with its validators; 304 when the client's copy is current."""
    body = render(page)
    etag = etag_of(body)
    headers = {"ETag": etag, "Last-Modified": http_date(page.last_modified), "Cache-Control": FEED_CACHE_CONTROL}
    if not_modified(
        etag, page.last_modified, request.headers.get("if-none-match"), request.headers.get("if-modified-since")
    ):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _feed_responses(media_type: str, schema: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    content: dict[str, Any] = {media_type.split(";")[0]: {"schema": schema} if schema else {}}
    return {
        200: {"description": "Trang tin công khai / one page of the public feed", "content": content},
        304: {"description": "Không đổi (If-None-Match / If-Modified-Since) / not modified"},
    }


FEED_DESCRIPTION = (
    "Không cần đăng nhập. Tư liệu đã xuất bản, trong thời hạn, phạm vi công khai; mới nhất trước. "
    "No sign-in: published, in-window, public assets only, newest publication first; media links "
    "are presigned URLs valid at least half of MAM_FEED_URL_EXPIRY_S."
)


def _feed_route(
    path: str,
    name: str,
    summary: str,
    media_type: str,
    render: Callable[[FeedPage], bytes],
    schema: dict[str, Any] | None = None,
) -> None:
    """One format of the public feed: the same page (``_feed_page``), rendered as ``media_type``."""

    async def feed(request: Request, who: FeedReader, d: Deps, query: FeedQuery) -> Response:
        return _feed_response(request, await _feed_page(request, d, query), render, media_type)

    router.add_api_route(
        path,
        feed,
        methods=["GET"],
        name=name,
        summary=summary,
        description=FEED_DESCRIPTION,
        response_class=Response,
        responses=_feed_responses(media_type, schema),
    )


_feed_route(
    "/feed",
    "feed_json",
    "Tin công khai (JSON Feed) / public feed, JSON",
    JSON_FEED_TYPE,
    render_json,
    {"type": "object"},
)
_feed_route("/feed.rss", "feed_rss", "Tin công khai (RSS 2.0 + Media RSS) / public feed, RSS", RSS_TYPE, render_rss)
_feed_route("/feed.atom", "feed_atom", "Tin công khai (Atom) / public feed, Atom", ATOM_TYPE, render_atom)
