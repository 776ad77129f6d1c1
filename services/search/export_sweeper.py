"""Collection exports left behind: interrupted ones failed with a reason, finished ones expired.

An export runs as a task inside one search replica (``services.search.collections``);
its status lives in NATS KV with the ``runner`` (this replica: host and port, the same
after a restart) and an ``updated_at`` the running export refreshes at least every
``export_stale_after_s / 4`` seconds. Every replica sweeps the statuses every
``export_sweep_interval_s`` (and once at start):

- ``queued``/``running`` of this very replica at its start (its previous life was
  killed), or of any replica once ``updated_at`` is older than ``export_stale_after_s``:
  the half-written ZIP (an unfinished S3 multipart upload, or an object) is removed and
  the status says ``failed`` with the reason in both languages;
- ``ready``/``failed`` older than ``export_expiry_s``: the ZIP is deleted and the status
  says ``expired`` (a presigned link is no longer handed out);
- ``expired`` for as long again: the status itself is forgotten.

Every change is a compare-and-set on the status's KV revision, so two replicas sweeping at
once change each export once, and a running export that just wrote progress is left alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

from shared.kv import KeyNotFoundError, KeyValue, KeyWrongLastSequenceError, latest_values
from shared.objectstore import ObjectStore
from shared.settings import Settings

log = logging.getLogger("mam.search.exports")

Decision = Literal["interrupted", "expire", "forget"] | None
UNFINISHED = frozenset({"queued", "running"})
FINISHED = frozenset({"ready", "failed"})

INTERRUPTED_VI = "Bản xuất bị gián đoạn vì dịch vụ khởi động lại; hãy xuất lại."
INTERRUPTED_EN = "The export was interrupted by a service restart; start it again."
EXPIRED_VI = "Bản xuất đã hết hạn và đã được xoá; hãy xuất lại nếu cần."
EXPIRED_EN = "The export has expired and was deleted; start it again if needed."


def runner_id(settings: Settings) -> str:
    """This replica, the same across its restarts (so its start recognises its own leftovers)."""
    return f"{socket.gethostname()}:{settings.search_port}"


def export_key(collection_id: str, export_id: str) -> str:
    return f"collections/{collection_id}/{export_id}.zip"


def _age_s(status: dict[str, Any], now: datetime) -> float:
    stamp = status.get("updated_at") or status.get("requested_at")
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return float("inf")  # unreadable: as old as can be
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (now - when).total_seconds()


def decide(
    status: dict[str, Any], now: datetime, runner: str, *, stale_after_s: float, expiry_s: float, at_start: bool
) -> Decision:
    """What the sweep does to one export's status (pure)."""
    state = status.get("state")
    age = _age_s(status, now)
    if state in UNFINISHED:
        mine_from_before = at_start and status.get("runner") == runner
        return "interrupted" if mine_from_before or age >= stale_after_s else None
    if state in FINISHED and age >= expiry_s:
        return "expire"
    if state == "expired" and age >= expiry_s:
        return "forget"
    return None


async def _remove_zip(store: ObjectStore, bucket: str, key: str) -> None:
    """The ZIP, finished or half-written (an unfinished multipart upload)."""
    for upload in await store.list_multipart(bucket, key):
        if upload.key == key:
            await store.abort_multipart(bucket, key, upload.upload_id)
    await store.remove(bucket, key)


async def sweep_exports(
    kv: KeyValue, store: ObjectStore, settings: Settings, *, at_start: bool, now: datetime | None = None
) -> dict[str, int]:
    """One pass over every export's status; what it changed, by kind."""
    now = now or datetime.now(UTC)
    runner = runner_id(settings)
    done = {"interrupted": 0, "expire": 0, "forget": 0}
    for export_id in await latest_values(kv):
        try:
            entry = await kv.get(export_id)
            status: dict[str, Any] = json.loads(entry.value or b"{}")
        except (KeyNotFoundError, ValueError):
            continue  # gone since the listing, or not a status
        was = status.get("state")
        decision = decide(
            status,
            now,
            runner,
            stale_after_s=settings.export_stale_after_s,
            expiry_s=settings.export_expiry_s,
            at_start=at_start,
        )
        if decision is None:
            continue
        bucket = str(status.get("bucket") or settings.bucket_exports)
        key = str(status.get("key") or export_key(str(status.get("collection_id")), export_id))
        stamp = now.isoformat()
        try:
            if decision == "forget":
                await kv.delete(export_id, last=entry.revision)
            elif decision == "interrupted":
                await _remove_zip(store, bucket, key)
                status.update(state="failed", stage="interrupted", error=INTERRUPTED_VI, error_en=INTERRUPTED_EN)
                status.update(updated_at=stamp, failed_at=stamp)
                await kv.update(export_id, json.dumps(status, ensure_ascii=False).encode(), last=entry.revision)
            else:
                await _remove_zip(store, bucket, key)
                status.update(state="expired", stage="expired", message=EXPIRED_VI, message_en=EXPIRED_EN)
                status.update(updated_at=stamp, expired_at=stamp)
                await kv.update(export_id, json.dumps(status, ensure_ascii=False).encode(), last=entry.revision)
        except KeyWrongLastSequenceError:
            continue  # written meanwhile (progress, or another replica's sweep): next pass decides again
        done[decision] += 1
        log.warning("export %s: %s (was %s)", export_id, decision, was)
    return done


async def sweep_forever(kv_of: Callable[[], Awaitable[KeyValue]], store: ObjectStore, settings: Settings) -> None:
    """Sweep at start and then every ``export_sweep_interval_s``; a failed pass is tried again."""
    at_start = True
    while True:
        try:
            done = await sweep_exports(await kv_of(), store, settings, at_start=at_start)
            at_start = False
            if any(done.values()):
                log.info("export sweep: %s", done)
        except Exception:
            log.warning("export sweep failed; trying again later", exc_info=True)
        await asyncio.sleep(settings.export_sweep_interval_s)
