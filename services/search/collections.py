"""A collection's page and its exports (search service).

The page lists the collection's assets — hand members in the collection's order
with their notes, then what its saved search matches now (newest first) — with
counts per activity type and per month and the total duration. Exports run in
the background (``services.search.export``); their progress lives in NATS KV,
and a finished one answers a presigned link. What the caller may see decides
everything: an asset it may not see is neither listed, counted nor exported.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from services.search.api import Deps, SearchDeps
from services.search.collection_scope import collection_clause, load_collection, saved_search_clause, scoped
from services.search.export import (
    THUMB_RENDITIONS,
    ExportItem,
    IterReader,
    MediaChoice,
    Progress,
    Source,
    manifest_row,
    media_source,
    write_contact_sheet,
    write_manifests,
    zip_chunks,
)
from services.search.export_sweeper import runner_id
from services.search.query import HIDDEN_SOURCE, Visible
from services.search.results import shape_hit
from shared.access import requires
from shared.auth import Principal
from shared.collections import Collection
from shared.heartbeat import beating
from shared.http import UserError, checked_id
from shared.ids import uuid7
from shared.kv import KeyNotFoundError, KeyValue, open_bucket
from shared.objectstore import ObjectStore
from shared.policy import ARCHIVE, Action, visibility_filter
from shared.taxonomy import LOCAL_TZ, activity_label
from shared.workdirs import work_dir_for

log = logging.getLogger("mam.search.collections")
router = APIRouter(prefix="/v1")
CollectionReader = Annotated[Principal, Depends(requires(Action.COLLECTION_READ))]
# A review's catalogue is hundreds of assets; past this an export is refused, not truncated.
MAX_EXPORT_ASSETS = 5000
EXPORTS_KV = "mam_collection_exports"
# The smallest part S3 allows: what one upload holds in memory at a time.
EXPORT_PART_SIZE = 5 * 1024 * 1024
PROGRESS_EVERY_S = 0.5
_PAGE_SIZE_MAX = 200
# Running exports, kept referenced so the event loop does not drop them.
_RUNNING: set[asyncio.Task[None]] = set()


# --- who is in a collection, in its order ------------------------------------------------------


def _by_date() -> list[Any]:
    return [{"recorded_at": {"order": "desc", "missing": "_last"}}, {"asset_id": "asc"}]


async def hand_members(d: SearchDeps, collection: Collection, visible: Visible) -> list[ExportItem]:
    """The hand members the caller may see, in the collection's order, with their notes."""
    ordered = collection.ordered_members()
    if not ordered:
        return []
    query: dict[str, Any] = {"ids": {"values": [m.asset_id for m in ordered]}}
    body = {
        "query": {"bool": {"filter": [query] if visible is None else [query, visible]}},
        "size": len(ordered),
        "_source": HIDDEN_SOURCE,
    }
    found = {h["_id"]: h for h in (await d.index.search(body))["hits"]["hits"]}
    return [
        ExportItem(shape_hit(found[m.asset_id]), "hand", m.note)
        for m in ordered
        if m.asset_id in found and m.asset_id not in collection.excluded
    ]


def _search_only(collection: Collection, visible: Visible) -> dict[str, Any] | None:
    """What the saved search brings in beyond the hand members, minus exclusions."""
    if collection.saved_search is None:
        return None
    clause: dict[str, Any] = {"bool": {"filter": [saved_search_clause(collection.saved_search)]}}
    kept_out = sorted({*collection.members, *collection.excluded})
    if kept_out:
        clause["bool"]["must_not"] = [{"ids": {"values": kept_out}}]
    return scoped(visible, clause)


async def search_members(
    d: SearchDeps, collection: Collection, visible: Visible, offset: int, size: int
) -> tuple[int, list[ExportItem]]:
    clause = _search_only(collection, visible)
    if clause is None:
        return 0, []
    body: dict[str, Any] = {
        "query": {"bool": {"filter": [clause]}},
        "sort": _by_date(),
        "from": offset,
        "size": size,
        "track_total_hits": True,
        "_source": HIDDEN_SOURCE,
    }
    result = await d.index.search(body)
    return result["hits"]["total"]["value"], [ExportItem(shape_hit(h), "search") for h in result["hits"]["hits"]]


async def all_members(d: SearchDeps, collection: Collection, visible: Visible) -> list[ExportItem]:
    """Every asset of the collection the caller may see, in order (hand, then saved search)."""
    items = await hand_members(d, collection, visible)
    clause = _search_only(collection, visible)
    after: list[Any] | None = None
    while clause is not None:
        body: dict[str, Any] = {
            "query": {"bool": {"filter": [clause]}},
            "sort": _by_date(),
            "size": 500,
            "_source": HIDDEN_SOURCE,
        }
        if after is not None:
            body["search_after"] = after
        hits = (await d.index.search(body))["hits"]["hits"]
        items += [ExportItem(shape_hit(h), "search") for h in hits]
        if len(items) > MAX_EXPORT_ASSETS:
            raise UserError(
                422,
                "collection_too_large",
                f"Bộ sưu tập có hơn {MAX_EXPORT_ASSETS} tư liệu; hãy thu hẹp tìm kiếm lưu sẵn để xuất.",
                f"The collection holds more than {MAX_EXPORT_ASSETS} assets; narrow its saved search to export it.",
            )
        if len(hits) < 500:
            break
        after = hits[-1]["sort"]
    return items


# --- the page ------------------------------------------------------------------------------------


def summary_body(scope: dict[str, Any]) -> dict[str, Any]:
    per_type = {
        "terms": {"field": "activity_type", "size": 50, "order": {"_key": "asc"}},
        "aggs": {"duration": {"sum": {"field": "duration_s"}}},
    }
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": [scope]}},
        "aggs": {
            "by_type": per_type,
            "by_month": {
                "date_histogram": {
                    "field": "recorded_at",
                    "calendar_interval": "month",
                    "time_zone": LOCAL_TZ.key,
                    "format": "yyyy-MM",
                    "min_doc_count": 1,
                },
                "aggs": {"duration": {"sum": {"field": "duration_s"}}},
            },
            "undated": {"missing": {"field": "recorded_at"}},
            "duration": {"sum": {"field": "duration_s"}},
        },
    }


def shape_summary(response: dict[str, Any]) -> dict[str, Any]:
    aggs = response["aggregations"]
    return {
        "total": response["hits"]["total"]["value"],
        "total_duration_s": round(float(aggs["duration"]["value"] or 0.0), 3),
        "by_activity_type": [
            {
                "activity_type": b["key"],
                "label": activity_label(b["key"]),
                "count": b["doc_count"],
                "duration_s": round(float(b["duration"]["value"] or 0.0), 3),
            }
            for b in aggs["by_type"]["buckets"]
        ],
        "by_month": [
            {
                "month": b["key_as_string"],
                "count": b["doc_count"],
                "duration_s": round(float(b["duration"]["value"] or 0.0), 3),
            }
            for b in aggs["by_month"]["buckets"]
        ],
        "undated": aggs["undated"]["doc_count"],
    }


def _item_view(item: ExportItem, position: int) -> dict[str, Any]:
    return {**item.doc, "position": position, "in_collection_by": item.how, "note": item.note}


@router.get("/collections/{collection_id}/page", summary="Trang bộ sưu tập / a collection's page")
async def collection_page(
    collection_id: str,
    who: CollectionReader,
    d: Deps,
    size: Annotated[int, Query(ge=1, le=_PAGE_SIZE_MAX)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_EXPORT_ASSETS)] = 0,
) -> dict[str, Any]:
    collection = await load_collection(d.events, collection_id)
    visible = visibility_filter(who)
    hand = await hand_members(d, collection, visible)
    shown = hand[offset : offset + size]
    search_offset = max(0, offset - len(hand))
    search_total, found = await search_members(d, collection, visible, search_offset, size - len(shown))
    if len(shown) == size:  # only the count of the saved search's part is wanted
        found = []
    summary = shape_summary(await d.index.search(summary_body(scoped(visible, collection_clause(collection)) or {})))
    definition = collection.view()
    return {
        "collection": {k: v for k, v in definition.items() if k not in ("members", "excluded")},
        "total": len(hand) + search_total,
        "offset": offset,
        "assets": [_item_view(item, offset + i) for i, item in enumerate([*shown, *found])],
        "summary": summary,
    }


# --- exports ---------------------------------------------------------------------------------------


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    media: MediaChoice = "web"  # "original": the uploaded files; "web": renditions anyone can open


async def exports_kv(d: SearchDeps) -> KeyValue:
    return await open_bucket(
        await d.events.jetstream(),
        EXPORTS_KV,
        "HĐND media archive: collection export progress",
        replicas=d.settings.nats_replicas,
    )


async def _put_status(kv: KeyValue, status: dict[str, Any]) -> None:
    await kv.put(status["export_id"], json.dumps(status, ensure_ascii=False).encode())


def export_store(d: SearchDeps) -> ObjectStore:
    s = d.settings
    return ObjectStore(
        s.resolved_s3_endpoint,
        s.s3_access_key,
        s.s3_secret_key.get_secret_value(),
        secure=s.s3_secure,
        region=s.s3_region,
        part_size=EXPORT_PART_SIZE,
        presign_expiry_s=s.presign_expiry_s,
    )


async def run_export(d: SearchDeps, collection: Collection, visible: Visible, status: dict[str, Any]) -> None:
    """Build and upload one export, reporting progress in KV; any failure is reported there too."""
    kv = await exports_kv(d)
    export_id = status["export_id"]
    folder = work_dir_for(d.settings, "search") / f"export-{export_id}"
    progress = Progress(total=0)
    store = export_store(d)
    bucket, key = d.settings.bucket_exports, f"collections/{collection.collection_id}/{export_id}.zip"
    media: MediaChoice = status["media"]

    async def report(state: str, **extra: Any) -> None:
        status.update(
            state=state,
            stage=progress.stage,
            total=progress.total,
            done=progress.done,
            bytes_written=progress.bytes_out,
            updated_at=datetime.now(UTC).isoformat(),
            **extra,
        )
        await _put_status(kv, status)

    async def alive() -> None:
        """The status's ``updated_at`` stays fresh while this replica works (see export_sweeper)."""
        try:
            await report(str(status["state"]))
        except Exception:  # a missed beat only brings the stale limit nearer
            log.warning("export %s: progress not written", export_id, exc_info=True)

    try:
        async with beating(alive, d.settings.export_stale_after_s / 4):
            folder.mkdir(parents=True, exist_ok=True)
            await store.ensure_buckets(bucket)
            items = await all_members(d, collection, visible)
            progress.total = len(items)
            sources = [media_source(it, media, d.settings.bucket_originals, n) for n, it in enumerate(items, 1)]
            rows = [manifest_row(n, it, src) for n, (it, src) in enumerate(zip(items, sources, strict=True), 1)]
            await report("running")

            def thumbnail(item: ExportItem) -> bytes | None:
                for name in THUMB_RENDITIONS:
                    r = (item.doc.get("renditions") or {}).get(name)
                    if isinstance(r, dict) and r.get("key") and str(r.get("mime_type", "")).startswith("image/"):
                        return b"".join(store.iter_chunks(str(r["bucket"]), str(r["key"])))
                return None

            def prepare() -> list[Any]:
                progress.stage = "contact_sheet"
                write_contact_sheet(collection.title, items, thumbnail, folder / "contact-sheet.pdf")
                csv_path, xlsx_path = write_manifests(rows, folder)
                return [
                    (folder / "contact-sheet.pdf", "contact-sheet.pdf"),
                    (csv_path, "manifest.csv"),
                    (xlsx_path, "manifest.xlsx"),
                ]

            extras = await asyncio.to_thread(prepare)

            def read(source: Source) -> Iterator[bytes]:
                return store.iter_chunks(source.bucket, source.key)

            zipped = IterReader(zip_chunks([s for s in sources if s], extras, read, progress))
            progress.stage = "zipping"
            # put_stream reads the ZIP in its worker thread: S3 reads, zipping and the upload run there.
            job = asyncio.create_task(
                store.put_stream(bucket, key, cast(BinaryIO, zipped), "application/zip", parallel_parts=1)
            )
            while not job.done():
                await asyncio.wait({job}, timeout=PROGRESS_EVERY_S)
                if not job.done():
                    await report("running")
            await job
        progress.stage = "done"
        await report("ready", bucket=bucket, key=key, missing_media=sum(s is None for s in sources))
    except asyncio.CancelledError:
        progress.cancelled.set()
        raise
    except Exception as exc:
        log.exception("export %s failed", export_id)
        body = exc.body()["error"] if isinstance(exc, UserError) else {}
        await report(
            "failed",
            error=body.get("message") or "Xuất bộ sưu tập thất bại.",
            error_en=body.get("message_en") or f"The export failed: {type(exc).__name__}",
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.post("/collections/{collection_id}/exports", status_code=202, summary="Xuất bộ sưu tập (ZIP) / export")
async def start_export(
    collection_id: str, who: CollectionReader, d: Deps, body: ExportRequest | None = None
) -> dict[str, Any]:
    collection = await load_collection(d.events, collection_id)
    export_id = "x" + uuid7().hex
    status: dict[str, Any] = {
        "export_id": export_id,
        "collection_id": collection.collection_id,
        "media": (body or ExportRequest()).media,
        "requested_by": who.subject,
        "requested_at": datetime.now(UTC).isoformat(),
        "runner": runner_id(d.settings),  # a restart of this replica fails what it left running
        "state": "queued",
        "stage": "queued",
        "total": 0,
        "done": 0,
        "bytes_written": 0,
    }
    await _put_status(await exports_kv(d), status)
    task = asyncio.create_task(run_export(d, collection, visibility_filter(who), dict(status)))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return status


@router.get("/collections/{collection_id}/exports/{export_id}", summary="Tiến độ / liên kết bản xuất / export")
async def get_export(collection_id: str, export_id: str, who: CollectionReader, d: Deps) -> dict[str, Any]:
    checked_id("collection", collection_id, "bộ sưu tập", "collection")
    checked_id("collection", export_id, "bản xuất", "export")
    not_found = UserError(404, "export_not_found", f"Không tìm thấy bản xuất {export_id}.", f"No export {export_id}.")
    try:
        entry = await (await exports_kv(d)).get(export_id)
    except KeyNotFoundError:
        raise not_found from None
    status: dict[str, Any] = json.loads(entry.value or b"{}")
    # An export holds what its requester may see: only they (and archivists) fetch it.
    mine = status.get("requested_by") == who.subject or who.role in ARCHIVE
    if status.get("collection_id") != collection_id or not mine:
        raise not_found
    if status.get("state") == "ready":
        status["url"] = await d.renditions.presigned_get(status["bucket"], status["key"])
        status["expires_in_s"] = d.settings.presign_expiry_s
    return status
