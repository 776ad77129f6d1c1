"""The processing queue (what is being transcoded or tagged, what failed and why) and the
index rebuild started from the UI.

The queue is a query over the asset index: the projector folds every pipeline event
into ``processing_status`` / ``processing_error`` (transcoder) and ``tagging_status`` /
``tagging_error`` (tagger), so the queue is rebuilt with the index from each asset's
own events. A rebuild runs in the background of one search replica at a time: a NATS
KV record is the lease (created only if absent, taken over only with its revision),
and the replica running it keeps the record's heartbeat and progress fresh
(``services/search/rebuild_lease.py``, which ``mam rebuild-index`` takes too).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from services.search.api import Deps, SearchDeps
from services.search.consistency import Consistency, read_your_writes
from services.search.rebuild_lease import claim, lease_bucket, new_record, read_lease, run_rebuild, shown
from shared.access import requires
from shared.auth import Principal
from shared.http import UserError
from shared.kv import KeyValue
from shared.policy import Action, visibility_filter

log = logging.getLogger("mam.search.processing")
router = APIRouter(prefix="/v1")
QueueReader = Annotated[Principal, Depends(requires(Action.PROCESSING_READ))]
Operator = Annotated[Principal, Depends(requires(Action.OPERATIONS))]

MAX_QUEUE_PAGE = 100
# Elasticsearch's default max_result_window: pages past it are refused, not 500.
MAX_QUEUE_WINDOW = 10_000
QueueState = Literal["all", "transcoding", "tagging", "failed", "transcode_failed", "tagging_failed"]

# --- the queue ----------------------------------------------------------------------------------

_TRANSCODING = {"term": {"processing_status": "pending"}}
_TRANSCODE_FAILED = {"term": {"processing_status": "failed"}}
_TAGGING_FAILED = {"term": {"tagging_status": "failed"}}
_TAGGING = {
    "bool": {
        "should": [
            {"term": {"tagging_status": "pending"}},
            # Indexed before tagging_status was projected and never tagged: still waiting.
            {
                "bool": {
                    "must_not": [
                        {"exists": {"field": "tagging_status"}},
                        {"exists": {"field": "tagged_at"}},
                        {"exists": {"field": "tagging_error"}},
                    ],
                    "filter": [{"exists": {"field": "ingested_at"}}],
                }
            },
        ],
        "minimum_should_match": 1,
    }
}
STATE_CLAUSES: dict[str, dict[str, Any]] = {
    "transcoding": _TRANSCODING,
    "tagging": _TAGGING,
    "transcode_failed": _TRANSCODE_FAILED,
    "tagging_failed": _TAGGING_FAILED,
    "failed": {"bool": {"should": [_TRANSCODE_FAILED, _TAGGING_FAILED], "minimum_should_match": 1}},
    "all": {
        "bool": {"should": [_TRANSCODING, _TAGGING, _TRANSCODE_FAILED, _TAGGING_FAILED], "minimum_should_match": 1}
    },
}
QUEUE_FIELDS = [
    "asset_id",
    "kind",
    "title",
    "original_filename",
    "ingested_at",
    "ingested_by",
    "processing_status",
    "processing_error",
    "processing_retries",
    "tagging_status",
    "tagging_error",
    "tagging_error_en",
    "pipeline_changed_at",
]


def queue_body(
    who: Principal, state: str, kinds: list[str], offset: int, size: int
) -> dict[str, Any]:  # pure: unit-tested
    """The Elasticsearch body of one queue page: the state's items newest first, and the count
    of every state (under the same visibility and kind filters, whatever state is shown)."""
    scope: list[dict[str, Any]] = []
    visible = visibility_filter(who)
    if visible is not None:
        scope.append(visible)
    if kinds:
        scope.append({"terms": {"kind": kinds}})
    return {
        "query": {"bool": {"filter": [*scope, STATE_CLAUSES[state]]}},
        "sort": [
            {"pipeline_changed_at": {"order": "desc", "unmapped_type": "date", "missing": "_last"}},
            {"ingested_at": {"order": "desc", "unmapped_type": "date"}},
            {"asset_id": {"order": "asc"}},
        ],
        "from": offset,
        "size": size,
        "track_total_hits": True,
        "_source": QUEUE_FIELDS,
        "aggs": {
            "counts": {
                "filter": {"bool": {"filter": scope}} if scope else {"match_all": {}},
                "aggs": {"states": {"filters": {"filters": STATE_CLAUSES}}},
            }
        },
    }


def queue_item(src: dict[str, Any]) -> dict[str, Any]:
    """One row of the queue: where the asset is in each stage, and why it failed (vi, en)."""
    tagging = src.get("tagging_status") or ("tagged" if src.get("tagged_at") else "pending")
    if src.get("tagging_error") and not src.get("tagging_status"):
        tagging = "failed"
    failure = src.get("processing_error") or None
    tag_error = str(src.get("tagging_error") or "")
    code, _, message = tag_error.partition(": ")
    return {
        "asset_id": src.get("asset_id"),
        "kind": src.get("kind"),
        "title": src.get("title"),
        "original_filename": src.get("original_filename"),
        "ingested_at": src.get("ingested_at"),
        "ingested_by": src.get("ingested_by"),
        "changed_at": src.get("pipeline_changed_at") or src.get("ingested_at"),
        "transcoding": {
            "status": src.get("processing_status") or "pending",
            "retries": int(src.get("processing_retries") or 0),
            "error": failure,
            # Only a failed transcode can be retried (POST catalogue /v1/assets/{id}/processing/retry).
            "retryable": src.get("processing_status") == "failed",
        },
        "tagging": {
            "status": tagging,
            "error": (
                {"code": code, "reason": message or tag_error, "reason_en": src.get("tagging_error_en") or ""}
                if tagging == "failed"
                else None
            ),
            # A failed tagging is retried by a re-tag request (POST catalogue /v1/assets/{id}/retag).
            "retryable": tagging == "failed",
        },
    }


@router.get("/processing", summary="Hàng đợi xử lý (chuyển mã, gắn nhãn, lỗi) / the processing queue")
async def processing_queue(
    who: QueueReader,
    d: Deps,
    state: Annotated[QueueState, Query(description="all, transcoding, tagging, failed, …")] = "all",
    kind: Annotated[list[Literal["video", "photo", "audio"]] | None, Query(description="video, photo, audio")] = None,
    page: Annotated[int, Query(ge=1, le=MAX_QUEUE_WINDOW)] = 1,
    size: Annotated[int, Query(ge=1, le=MAX_QUEUE_PAGE)] = 25,
    after_seq: Consistency = None,
) -> dict[str, Any]:
    offset = (page - 1) * size
    if offset + size > MAX_QUEUE_WINDOW:
        raise UserError(
            422,
            "page_too_deep",
            "Chỉ xem được 10.000 mục đầu; hãy lọc theo trạng thái hay loại tư liệu.",
            f"Only the first {MAX_QUEUE_WINDOW:,} items can be paged; filter by state or kind.",
            field="page",
        )
    # After a retry: answer once the request is projected, so the page shows it.
    await read_your_writes(d.progress, d.index, after_seq, d.settings.search_consistency_timeout_s)
    response = await d.es.search(index=d.index.alias, **queue_body(who, state, list(kind or []), offset, size))
    buckets = response["aggregations"]["counts"]["states"]["buckets"]
    total = int(response["hits"]["total"]["value"])
    return {
        "state": state,
        "page": page,
        "size": size,
        "total": total,
        "pages": (total + size - 1) // size,
        "counts": {name: int(bucket["doc_count"]) for name, bucket in buckets.items()},
        "items": [queue_item(hit["_source"]) for hit in response["hits"]["hits"]],
    }


# --- rebuilds started from the UI (the lease: services/search/rebuild_lease.py) -------------------

_RUNNING: set[asyncio.Task[dict[str, Any]]] = set()


async def _rebuild_kv(d: SearchDeps) -> KeyValue:
    return await lease_bucket(await d.events.jetstream())


@router.post("/projection/rebuild", status_code=202, summary="Dựng lại chỉ mục tìm kiếm / rebuild the index")
async def start_rebuild(who: Operator, d: Deps) -> dict[str, Any]:
    """Replays the event stream into a new index and swaps the alias (``mam rebuild-index``),
    in the background; one at a time across replicas and the CLI (409 while one runs)."""
    kv = await _rebuild_kv(d)
    record = new_record(who.actor)
    revision = await claim(kv, record)
    task = asyncio.create_task(run_rebuild(d.settings, kv, dict(record), revision))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return shown(record)


@router.get("/projection/rebuild", summary="Tiến độ / kết quả dựng lại chỉ mục / rebuild progress")
async def rebuild_status(who: Operator, d: Deps) -> dict[str, Any]:
    record, _ = await read_lease(await _rebuild_kv(d))
    return shown(record)
