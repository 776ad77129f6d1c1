"""One index rebuild at a time, whoever starts it: the admin page (``POST
/v1/projection/rebuild`` on any search replica) or ``mam rebuild-index``.

A NATS KV record is the lease: created only if absent, taken over only with its
revision, and only once the rebuild holding it has stopped refreshing its heartbeat.
A rebuild deletes what an unfinished rebuild left behind before it starts, so two
rebuilds at once would delete each other's index; the lease keeps them apart.
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
from typing import Any

from nats.js import JetStreamContext

from services.search.index import AssetIndex, es_client
from services.search.rebuild import Progress, RebuildError, rebuild_index
from shared.heartbeat import beating
from shared.http import UserError
from shared.kv import KeyNotFoundError, KeyValue, KeyWrongLastSequenceError, create_key, open_bucket
from shared.settings import Settings

log = logging.getLogger("mam.search.rebuild")

REBUILD_KV = "search_rebuild"
REBUILD_KEY = "current"
# A running record whose heartbeat is older than this was left by a process that died.
REBUILD_STALE_S = 30.0
REBUILD_BEAT_S = 2.0


def _now() -> str:
    return datetime.now(UTC).isoformat()


def is_stale(record: dict[str, Any], now: float) -> bool:
    """A running record nobody has refreshed for ``REBUILD_STALE_S`` (its process is gone)."""
    return record.get("state") == "running" and now - float(record.get("heartbeat", 0)) > REBUILD_STALE_S


def shown(record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:
        return {"state": "never"}
    out = {k: v for k, v in record.items() if k != "heartbeat"}
    if is_stale(record, time.time()):
        out["state"] = "interrupted"  # the process running it stopped; a new one may start
    return out


def new_record(started_by: str) -> dict[str, Any]:
    return {
        "rebuild_id": uuid.uuid4().hex,
        "state": "running",
        "phase": "starting",
        "started_at": _now(),
        "started_by": started_by,
        "replica": f"{socket.gethostname()}:{os.getpid()}",
        "events_done": 0,
        "events_known": 0,
        "heartbeat": time.time(),
    }


async def lease_bucket(js: JetStreamContext) -> KeyValue:
    return await open_bucket(js, REBUILD_KV, "HĐND media archive: search index rebuild lease")


async def read_lease(kv: KeyValue) -> tuple[dict[str, Any] | None, int]:
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
    returns its revision. Two starters racing: one write wins, the other gets the 409."""
    current, revision = await read_lease(kv)
    if current is not None and current.get("state") == "running" and not is_stale(current, time.time()):
        raise _already_running(current)
    data = json.dumps(record, ensure_ascii=False).encode()
    try:
        if revision == 0:
            return int(await create_key(kv, REBUILD_KEY, data))
        return int(await kv.update(REBUILD_KEY, data, last=revision))
    except KeyWrongLastSequenceError:
        current, _ = await read_lease(kv)
        raise _already_running(current or record) from None


async def run_rebuild(
    settings: Settings,
    kv: KeyValue,
    record: dict[str, Any],
    revision: int,
    *,
    keep_previous: int = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The rebuild under a claimed lease, its progress and heartbeat written to the record as
    it goes; returns the outcome written last (``state`` done or failed)."""
    latest: dict[str, Any] = {}

    def report(phase: str, done: int, known: int, rate: float) -> None:
        latest.update(phase=phase, events_done=done, events_known=known, rate=round(rate, 1))
        if progress is not None:
            progress(phase, done, known, rate)

    async def write(**changes: Any) -> bool:
        nonlocal revision
        record.update(latest, heartbeat=time.time(), updated_at=_now(), **changes)
        try:
            revision = int(await kv.update(REBUILD_KEY, json.dumps(record, ensure_ascii=False).encode(), last=revision))
        except KeyWrongLastSequenceError:
            log.error("rebuild %s: its lease was taken over; no longer reporting", record["rebuild_id"])
            return False
        return True

    es = es_client(settings.resolved_es_url, request_timeout=60)
    outcome: dict[str, Any] = {"state": "failed", "error": "not started", "swapped": False}
    try:
        async with beating(write, REBUILD_BEAT_S, at_once=True):
            try:
                index = AssetIndex(es, settings.es_index_prefix)
                await index.ensure()
                result = await rebuild_index(
                    index,
                    settings.resolved_nats_url,
                    settings.event_stream,
                    progress=report,
                    keep_previous=keep_previous,
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
                outcome = {"state": "failed", "error": "interrupted: the process running it stopped", "swapped": False}
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
    return outcome
