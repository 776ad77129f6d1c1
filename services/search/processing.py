"""The processing queue (what is being transcoded or tagged, what failed and why) and the
index rebuild started from the UI.

The queue is a query over the asset index: the projector folds every pipeline event
into ``processing_status`` / ``processing_error`` (transcoder) and ``tagging_status`` /
``tagging_error`` (tagger), so the queue is rebuilt with the index from each asset's
own events. A rebuild runs in the background of one search replica at a time: a NATS
KV record is the lease (created only if absent, taken over only with its revision),
and the replica running it keeps the record's heartbeat and progress fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from services.search.api import Deps, SearchDeps
from services.search.consistency import Consistency, read_your_writes
from services.search.index import AssetIndex, es_client
from services.search.rebuild import RebuildError, rebuild_index
from shared.access import requires
from shared.auth import Principal
from shared.heartbeat import beating
from shared.http import UserError
from shared.kv import KeyNotFoundError, KeyValue, KeyWrongLastSequenceError, open_bucket
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


# --- rebuilds started from the UI -----------------------------------------------------------------

REBUILD_KV = "search_rebuild"
REBUILD_KEY = "current"
# A running record whose heartbeat is older than this was left by a replica that died.
REBUILD_STALE_S = 30.0
REBUILD_BEAT_S = 2.0
_RUNNING: set[asyncio.Task[None]] = set()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def is_stale(record: dict[str, Any], now: float) -> bool:
    """A running record nobody has refreshed for ``REBUILD_STALE_S`` (its replica is gone)."""
    return record.get("state") == "running" and now - float(record.get("heartbeat", 0)) > REBUILD_STALE_S


def shown(record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:
        return {"state": "never"}
    out = {k: v for k, v in record.items() if k != "heartbeat"}
    if is_stale(record, time.time()):
        out["state"] = "interrupted"  # the replica running it stopped; a new one may start
    return out


async def _rebuild_kv(d: SearchDeps) -> KeyValue:
    return await open_bucket(await d.events.jetstream(), REBUILD_KV, "HĐND media archive: search index rebuild lease")


async def _read(kv: KeyValue) -> tuple[dict[str, Any] | None, int]:
    try:
        entry = await kv.get(REBUILD_KEY)
    except KeyNotFoundError:
        return None, 0
    if not entry.value:
        return None, entry.revision or 0
    return json.loads(entry.value), entry.revision or 0


def _already_running(record: dict[str, Any]) -> UserError:
    return UserError(
        409,
        "rebuild_running",
        "Đang dựng lại chỉ mục; chờ lần này xong rồi mới bắt đầu lần khác.",
        "An index rebuild is already running; wait for it to finish before starting another.",
        rebuild=shown(record),
    )


async def claim(kv: KeyValue, record: dict[str, Any]) -> int:
    """Write ``record`` as the running rebuild if none runs (or the one recorded is stale);
    returns its revision. Two replicas racing: one write wins, the other answers 409."""
    current, revision = await _read(kv)
    if current is not None and current.get("state") == "running" and not is_stale(current, time.time()):
        raise _already_running(current)
    data = json.dumps(record, ensure_ascii=False).encode()
    try:
        if revision == 0:
            return int(await kv.create(REBUILD_KEY, data))
        return int(await kv.update(REBUILD_KEY, data, last=revision))
    except KeyWrongLastSequenceError:
        current, _ = await _read(kv)
        raise _already_running(current or record) from None


async def run_rebuild(d: SearchDeps, kv: KeyValue, record: dict[str, Any], revision: int) -> None:
    """The rebuild, its progress and heartbeat written to the lease record as it goes."""
    latest: dict[str, Any] = {}

    def progress(phase: str, done: int, known: int, rate: float) -> None:
        latest.update(phase=phase, events_done=done, events_known=known, rate=round(rate, 1))

    async def write(**changes: Any) -> bool:
        nonlocal revision
        record.update(latest, heartbeat=time.time(), updated_at=_now(), **changes)
        try:
            revision = int(await kv.update(REBUILD_KEY, json.dumps(record, ensure_ascii=False).encode(), last=revision))
        except KeyWrongLastSequenceError:
            log.error("rebuild %s: its lease was taken over; no longer reporting", record["rebuild_id"])
            return False
        return True

    es = es_client(d.settings.resolved_es_url, request_timeout=60)
    outcome: dict[str, Any]
    try:
        async with beating(write, REBUILD_BEAT_S, at_once=True):
            try:
                result = await rebuild_index(
                    AssetIndex(es, d.settings.es_index_prefix),
                    d.settings.resolved_nats_url,
                    d.settings.event_stream,
                    progress=progress,
                )
                outcome = {
                    "state": "done",
                    "new_index": result.new_index,
                    "previous": result.previous,
                    "deleted": result.deleted,
                    "events_done": result.events,
                    "seconds": round(result.seconds, 1),
                    "rate": round(result.rate, 1),
                }
            except asyncio.CancelledError:
                outcome = {"state": "failed", "error": "interrupted: the search service stopped", "swapped": False}
                raise
            except RebuildError as exc:
                outcome = {"state": "failed", "error": str(exc)[:500], "swapped": exc.swapped}
            except Exception as exc:
                log.exception("rebuild %s failed", record["rebuild_id"])
                outcome = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"[:500], "swapped": False}
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(write(finished_at=_now(), **outcome))
        await es.close()


@router.post("/projection/rebuild", status_code=202, summary="Dựng lại chỉ mục tìm kiếm / rebuild the index")
async def start_rebuild(who: Operator, d: Deps) -> dict[str, Any]:
    """Replays the event stream into a new index and swaps the alias (``mam rebuild-index``),
    in the background; one at a time across replicas (409 while one runs)."""
    kv = await _rebuild_kv(d)
    record: dict[str, Any] = {
        "rebuild_id": uuid.uuid4().hex,
        "state": "running",
        "phase": "starting",
        "started_at": _now(),
        "started_by": who.actor,
        "replica": f"{socket.gethostname()}:{os.getpid()}",
        "events_done": 0,
        "events_known": 0,
        "heartbeat": time.time(),
    }
    revision = await claim(kv, record)
    task = asyncio.create_task(run_rebuild(d, kv, dict(record), revision))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return shown(record)


@router.get("/projection/rebuild", summary="Tiến độ / kết quả dựng lại chỉ mục / rebuild progress")
async def rebuild_status(who: Operator, d: Deps) -> dict[str, Any]:
    record, _ = await _read(await _rebuild_kv(d))
    return shown(record)
