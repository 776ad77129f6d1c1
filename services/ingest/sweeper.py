"""The uploads' sweeper: expires abandoned uploads and resumes interrupted finalisations.

Every ``upload_sweep_interval_s`` (and once when the service starts) it looks at
every upload record:

- ``receiving`` past ``expires_at``: its S3 multipart upload is aborted, its tail
  object and record removed;
- ``verifying`` whose lock is free: finalisation is resumed (a process killed
  while finalising, or the task lost with it);
- ``stored`` / ``rejected`` past ``expires_at``: the record is dropped (the asset,
  if any, lives on in the log); it was kept so the client could poll the outcome.

It drops the quota reservations no upload in flight holds any more (a process killed
between an upload's end and its release), so a crash cannot hold a user's quota for ever.
Then it lists the staging bucket's multipart uploads and aborts those no record
owns (a crash between creating the multipart upload and saving the record)
once they are older than the expiry, so nothing is left behind in S3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.ingest.finalise import Finaliser
from services.ingest.upload_store import UploadStore
from services.ingest.uploads import UploadRecord, is_expired, upload_id_of_staging_key
from shared.objectstore import ObjectStore
from shared.settings import Settings

log = logging.getLogger("mam.ingest.sweeper")


@dataclass
class Sweeper:
    settings: Settings
    objects: ObjectStore
    store: UploadStore
    finaliser: Finaliser

    async def discard(self, record: UploadRecord) -> None:
        """Remove an upload everywhere: multipart upload, tail, staging object, record."""
        bucket = self.settings.bucket_uploads
        if not record.completed:
            await self.objects.abort_multipart(bucket, record.s3_key, record.s3_upload_id)
        await self.objects.remove(bucket, record.tail_key)
        await self.objects.remove(bucket, record.s3_key)
        await self.store.delete(record.id)
        await self.store.release_quota_quietly(record.owner, record.id)

    async def sweep_once(self, now: datetime | None = None) -> dict[str, int]:
        """One pass; what it did, by kind (for logs and tests)."""
        now = now or datetime.now(UTC)
        done = {"expired": 0, "resumed": 0, "forgotten": 0, "orphans": 0}
        records = await self.store.all()
        for record in records:
            if record.state == "verifying":
                await self.finaliser.finalise(record.id)
                done["resumed"] += 1
            elif is_expired(record, now):
                lock = await self.store.try_lock(record.id)
                if lock is None:
                    continue  # someone is writing it right now: not abandoned
                try:
                    got = await self.store.get(record.id)
                    if got is not None and is_expired(got[0], now) and got[0].state != "verifying":
                        await self.discard(got[0])
                        done["expired" if got[0].state == "receiving" else "forgotten"] += 1
                finally:
                    await self.store.release(lock)
        # Reservations of uploads no longer in flight (a process killed before releasing one).
        done["quota_released"] = await self.store.reconcile_quota(records, now)
        known = {r.id for r in records}
        cutoff = now - timedelta(seconds=self.settings.upload_expiry_s)
        for upload in await self.objects.list_multipart(self.settings.bucket_uploads, "uploads/"):
            owner = upload_id_of_staging_key(upload.key)
            if owner in known or (upload.initiated is not None and upload.initiated > cutoff):
                continue
            if owner is not None and await self.store.get(owner) is not None:
                continue  # created since the records were read
            await self.objects.abort_multipart(self.settings.bucket_uploads, upload.key, upload.upload_id)
            done["orphans"] += 1
        if any(done.values()):
            log.info("upload sweep: %s", done)
        return done

    async def run(self) -> None:
        """Sweep forever; a failed pass (S3 or NATS away) is logged and tried again."""
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.warning("upload sweep failed; trying again later", exc_info=True)
            await asyncio.sleep(self.settings.upload_sweep_interval_s)


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
