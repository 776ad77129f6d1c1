"""Where resumable uploads keep their state: two NATS KV buckets, never process memory.

- ``MAM_UPLOADS`` (``upload_state_bucket``): one JSON record per upload (``services/ingest/uploads.py``),
  written with the revision it was read at, so two writers cannot both win.
- ``MAM_UPLOADS_LOCKS``: one writer per upload. A lock is a key holding its
  holder's token and lease deadline; the holder renews it while it works. A
  lock whose deadline has passed (its connection died, its process was killed)
  is taken over with a compare-and-set on its revision, so two takers cannot
  both succeed. Deadlines are wall-clock times: replicas' clocks must agree to
  well within a lease (NTP does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError

from services.ingest.uploads import UploadRecord
from shared.heartbeat import beating
from shared.http import UserError
from shared.kv import KeyNotFoundError, KeyValue, KeyWrongLastSequenceError, latest_values, open_bucket

log = logging.getLogger("mam.ingest.uploads")

RECORDS_BUCKET = "MAM_UPLOADS"  # the default of ``upload_state_bucket``


class RecordConflict(RuntimeError):
    """The record changed since it was read (another writer)."""


def locked(upload_id: str) -> UserError:
    return UserError(
        423,
        "upload_locked",
        "Lượt tải lên này đang được ghi bởi một kết nối khác; hãy thử lại sau giây lát.",
        "Another connection is writing this upload; retry in a moment.",
        upload_id=upload_id,
    )


@dataclass
class UploadLock:
    """A held lock; ``lost`` is set when a renewal found it taken over."""

    upload_id: str
    token: str
    revision: int
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class UploadStore:
    def __init__(self, records: KeyValue, locks: KeyValue, lease_s: float) -> None:
        self._records = records
        self._locks = locks
        self.lease_s = lease_s

    @classmethod
    async def open(
        cls, js: JetStreamContext, lease_s: float, bucket: str = RECORDS_BUCKET, replicas: int = 1
    ) -> UploadStore:
        records = await open_bucket(js, bucket, "resumable uploads in flight (tus), one record each", replicas=replicas)
        locks = await open_bucket(js, f"{bucket}_LOCKS", "one writer per resumable upload: leases", replicas=replicas)
        return cls(records, locks, lease_s)

    # --- records ---------------------------------------------------------------------
    async def get(self, upload_id: str) -> tuple[UploadRecord, int] | None:
        try:
            entry = await self._records.get(upload_id)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if entry.value is None:
            return None
        return UploadRecord.model_validate_json(entry.value), int(entry.revision or 0)

    async def create(self, record: UploadRecord) -> int:
        return await self._records.create(record.id, record.model_dump_json().encode())

    async def save(self, record: UploadRecord, revision: int) -> int:
        try:
            return await self._records.update(record.id, record.model_dump_json().encode(), last=revision)
        except KeyWrongLastSequenceError as exc:
            raise RecordConflict(record.id) from exc

    async def delete(self, upload_id: str) -> None:
        await self._records.purge(upload_id)

    async def all(self) -> list[UploadRecord]:
        """Every record, read in one pass over the bucket (finished records stay a day for
        polling, and per-key reads made each creation's quota check slower with every upload kept)."""
        return [UploadRecord.model_validate_json(value) for value in (await latest_values(self._records)).values()]

    # --- locks -----------------------------------------------------------------------
    def _lease_value(self, token: str) -> bytes:
        return json.dumps({"holder": token, "until": time.time() + self.lease_s}).encode()

    async def try_lock(self, upload_id: str) -> UploadLock | None:
        """Take the upload's lock, or None while someone else's lease runs."""
        token = uuid.uuid4().hex
        try:
            revision = await self._locks.create(upload_id, self._lease_value(token))
            return UploadLock(upload_id, token, revision)
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await self._locks.get(upload_id)
        except (KeyNotFoundError, KeyDeletedError):
            return None  # released meanwhile: the caller retries or reports "locked"
        held = json.loads(entry.value or b"{}")
        if float(held.get("until", 0)) > time.time():
            return None
        try:  # the lease ran out: take it over, unless someone else just did
            revision = await self._locks.update(upload_id, self._lease_value(token), last=entry.revision)
        except KeyWrongLastSequenceError:
            return None
        log.info("upload %s: took over a lapsed lock", upload_id)
        return UploadLock(upload_id, token, revision)

    async def renew(self, lock: UploadLock) -> bool:
        try:
            lock.revision = await self._locks.update(lock.upload_id, self._lease_value(lock.token), last=lock.revision)
        except KeyWrongLastSequenceError:
            lock.lost.set()
            return False
        return True

    async def release(self, lock: UploadLock) -> None:
        with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError):
            await self._locks.delete(lock.upload_id, last=lock.revision)

    @contextlib.asynccontextmanager
    async def holding(self, upload_id: str) -> AsyncIterator[UploadLock]:
        """Hold the upload's lock for the block, or 423 at once if someone else holds it."""
        lock = await self.try_lock(upload_id)
        if lock is None:
            raise locked(upload_id)
        async with self.renewing(lock):
            yield lock

    @contextlib.asynccontextmanager
    async def renewing(self, lock: UploadLock) -> AsyncIterator[UploadLock]:
        """Renew a held lock every third of the lease during the block; release it after."""

        async def renew() -> bool:
            try:
                return await self.renew(lock)
            except Exception:  # NATS briefly unreachable: try again next beat
                log.warning("upload %s: lock renewal failed", lock.upload_id, exc_info=True)
                return True

        try:
            async with beating(renew, self.lease_s / 3):
                yield lock
        finally:
            await asyncio.shield(self.release(lock))
