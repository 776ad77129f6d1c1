"""Where resumable uploads keep their state: two NATS KV buckets, never process memory.

- ``MAM_UPLOADS`` (``upload_state_bucket``): one JSON record per upload (``services/ingest/uploads.py``),
  written with the revision it was read at, so two writers cannot both win.
- ``MAM_UPLOADS_QUOTA``: each user's bytes in flight, one key per user holding a reservation
  per upload still receiving (``uploads.QuotaUsage``). A creation reserves its length
  with a compare-and-set on the key's revision before its record exists, so two
  creations racing (on one replica or two) cannot both pass the quota; an upload
  leaving ``receiving`` (stored, rejected, terminated, expired) releases its reservation,
  and the sweeper drops any reservation no upload in flight holds (a process killed
  between reserving and releasing), so none is kept for ever.
- ``MAM_UPLOADS_LOCKS``: one writer per upload. A lock is a key holding its
  holder's token and lease deadline; the holder renews it while it works. A
  lock whose deadline has passed (its connection died, its process was killed)
  is taken over with a compare-and-set on its revision, so two takers cannot
  both succeed. Deadlines are wall-clock times: replicas' clocks must agree to
  well within a lease (NTP does).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError

from services.ingest.uploads import (
    QuotaUsage,
    UploadRecord,
    lapsed_reservations,
    with_reservation,
    without_reservations,
)
from shared.heartbeat import beating
from shared.http import UserError
from shared.kv import KeyNotFoundError, KeyValue, KeyWrongLastSequenceError, create_key, latest_values, open_bucket

log = logging.getLogger("mam.ingest.uploads")

RECORDS_BUCKET = "MAM_UPLOADS"  # the default of ``upload_state_bucket``
# Compare-and-set rounds before a quota change gives up (each lost round means another
# creation of the same user got through; a short random pause spreads the next round).
_QUOTA_ROUNDS = 64
# A reservation whose record was never made is dropped this long after it was made (the
# creation between the two is a multipart upload's creation, well under a minute).
QUOTA_RESERVATION_GRACE_S = 600.0


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


def quota_busy() -> UserError:
    return UserError(
        503,
        "quota_busy",
        "Đang có nhiều lượt tải lên cùng lúc của bạn; hãy thử lại sau giây lát.",
        "Many uploads of yours are being created at once; retry in a moment.",
    )


def _quota_key(owner: str) -> str:
    """A KV key for any user name (keys allow letters, digits and ``-_=./`` only)."""
    return "u." + base64.urlsafe_b64encode(owner.encode()).decode().rstrip("=")


class UploadStore:
    def __init__(self, records: KeyValue, locks: KeyValue, lease_s: float, quota: KeyValue) -> None:
        self._records = records
        self._locks = locks
        self._quota = quota
        self.lease_s = lease_s

    @classmethod
    async def open(
        cls, js: JetStreamContext, lease_s: float, bucket: str = RECORDS_BUCKET, replicas: int = 1
    ) -> UploadStore:
        records = await open_bucket(js, bucket, "resumable uploads in flight (tus), one record each", replicas=replicas)
        locks = await open_bucket(js, f"{bucket}_LOCKS", "one writer per resumable upload: leases", replicas=replicas)
        quota = await open_bucket(
            js, f"{bucket}_QUOTA", "each user's bytes reserved by uploads in flight (the quota)", replicas=replicas
        )
        return cls(records, locks, lease_s, quota)

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
        return await create_key(self._records, record.id, record.model_dump_json().encode())

    async def save(self, record: UploadRecord, revision: int) -> int:
        """Write ``record`` over ``revision``; one no longer receiving gives its quota back."""
        try:
            saved = await self._records.update(record.id, record.model_dump_json().encode(), last=revision)
        except KeyWrongLastSequenceError as exc:
            raise RecordConflict(record.id) from exc
        if record.state != "receiving":
            await self.release_quota_quietly(record.owner, record.id)
        return saved

    async def delete(self, upload_id: str) -> None:
        await self._records.purge(upload_id)

    async def all(self) -> list[UploadRecord]:
        """Every record, read in one pass over the bucket (finished records stay a day for
        polling, and per-key reads made each creation's quota check slower with every upload kept)."""
        return [UploadRecord.model_validate_json(value) for value in (await latest_values(self._records)).values()]

    # --- the quota ledger --------------------------------------------------------------
    async def _usage(self, owner: str) -> tuple[QuotaUsage, int | None]:
        """The user's usage and its revision (None: no key yet)."""
        try:
            entry = await self._quota.get(_quota_key(owner))
        except (KeyNotFoundError, KeyDeletedError):
            return QuotaUsage(owner=owner), None
        if entry.value is None:
            return QuotaUsage(owner=owner), None
        return QuotaUsage.model_validate_json(entry.value), int(entry.revision or 0)

    async def _change_usage(self, owner: str, change: Callable[[QuotaUsage], QuotaUsage | None]) -> None:
        """Apply ``change`` (None: nothing to write) to the user's latest usage, compare-and-set."""
        for _ in range(_QUOTA_ROUNDS):
            usage, revision = await self._usage(owner)
            changed = change(usage)
            if changed is None:
                return
            value = changed.model_dump_json().encode()
            try:
                if revision is None:
                    await create_key(self._quota, _quota_key(owner), value)
                else:
                    await self._quota.update(_quota_key(owner), value, last=revision)
                return
            except KeyWrongLastSequenceError:  # another change of this user's usage came first
                await asyncio.sleep(random.uniform(0.0, 0.02))
        raise quota_busy()

    async def reserve_quota(self, owner: str, upload_id: str, length: int, quota: int) -> None:
        """Reserve ``length`` bytes of ``owner``'s quota for a new upload (413 past it)."""
        now = datetime.now(UTC)
        await self._change_usage(owner, lambda usage: with_reservation(usage, upload_id, length, quota, now))

    async def release_quota(self, owner: str, upload_id: str) -> None:
        def release(usage: QuotaUsage) -> QuotaUsage | None:
            return without_reservations(usage, [upload_id]) if upload_id in usage.uploads else None

        await self._change_usage(owner, release)

    async def release_quota_quietly(self, owner: str, upload_id: str) -> None:
        """Release, or leave it to the sweeper's reconciliation if NATS does not answer now."""
        try:
            await self.release_quota(owner, upload_id)
        except Exception:
            log.warning("upload %s: quota not released; the sweeper will", upload_id, exc_info=True)

    async def in_flight(self, owner: str) -> int:
        return (await self._usage(owner))[0].in_flight

    async def reconcile_quota(self, records: list[UploadRecord], now: datetime) -> int:
        """Drop every reservation no upload in flight holds; how many were dropped."""
        by_id = {r.id: r for r in records}
        dropped = 0
        for value in (await latest_values(self._quota)).values():
            usage = QuotaUsage.model_validate_json(value)
            lapsed = lapsed_reservations(usage, by_id, now, QUOTA_RESERVATION_GRACE_S)
            for upload_id in [u for u in lapsed if u not in by_id]:
                if (await self.get(upload_id)) is not None:  # made since the records were listed
                    lapsed.discard(upload_id)
            if lapsed:

                def drop(latest: QuotaUsage, lapsed: set[str] = lapsed) -> QuotaUsage | None:
                    return without_reservations(latest, lapsed) if lapsed & latest.uploads.keys() else None

                await self._change_usage(usage.owner, drop)
                dropped += len(lapsed)
        return dropped

    # --- locks -----------------------------------------------------------------------
    def _lease_value(self, token: str) -> bytes:
        return json.dumps({"holder": token, "until": time.time() + self.lease_s}).encode()

    async def try_lock(self, upload_id: str) -> UploadLock | None:
        """Take the upload's lock, or None while someone else's lease runs."""
        token = uuid.uuid4().hex
        try:
            revision = await create_key(self._locks, upload_id, self._lease_value(token))
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
