"""Finalising a resumable upload, in the background, after its last byte.

The PATCH that brings the last byte answers at once (state ``verifying``); this
task, holding the upload's lock, then: joins the S3 parts into the staging
object, checks whether the bytes are already an asset (their SHA-256 was
computed while they arrived), probes the content, copies it server-side to its
content-addressed key and appends ``asset.ingested`` — with an event id derived
from the upload id, so a retry after a crash finds its own event instead of
appending a second one. Each step is idempotent and the record says which are
done, so a kill -9 at any point is resumed by the sweeper (of this process when
it restarts, or of another replica) once the lock's lease has lapsed.

Probing reads the first and last ``PROBE_EDGE`` bytes into a sparse local file
of the full size: container headers (MP4's ``moov`` at either end, Matroska,
MPEG-TS, photos' headers) sit there, so a multi-GB video is not downloaded.
When that is not enough to accept the file (a fragmented MP4 has boxes all
along, a large TIFF must be decoded whole), the whole object is downloaded and
probed again — the honest fallback, rarely taken. Small files are downloaded whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from minio.error import S3Error

from services.ingest.originals import Ingested, PutOriginal, existing_asset, keep_original, record_original
from services.ingest.upload_store import UploadStore
from services.ingest.uploads import UploadProblem, UploadRecord, finalise_gave_up, finalise_should_give_up
from shared.events.models import AssetIngestedV1
from shared.eventstore import EventStore
from shared.media.probe import Limits, MediaRejected, ProbeResult, probe_file
from shared.objectstore import ObjectStore, content_key, is_storage_full
from shared.settings import Settings

log = logging.getLogger("mam.ingest.finalise")

PROBE_EDGE = 16 * 1024 * 1024
# Namespace of the event ids of resumable uploads' ``asset.ingested`` (uuid5 of the upload id).
_EVENT_NAMESPACE = uuid.UUID("6f1b3c52-7d0e-4b8e-9a61-2c4f0e5d9a17")


def ingested_event_id(upload_id: str) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, upload_id))


@dataclass
class Finaliser:
    settings: Settings
    events: EventStore
    objects: ObjectStore
    store: UploadStore
    limits: Limits
    work_dir: Path
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def schedule(self, upload_id: str) -> None:
        """Finalise in the background (the request that brought the last byte has answered)."""
        task = asyncio.create_task(self.finalise(upload_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def finalise(self, upload_id: str) -> None:
        """Carry the upload to ``stored`` or ``rejected``; if its lock is held, its holder does."""
        lock = await self.store.try_lock(upload_id)
        if lock is None:
            return  # another request or replica holds it; the sweeper comes back
        try:
            async with self.store.renewing(lock):
                try:
                    await self._finalise_locked(upload_id)
                except Exception as exc:
                    await self._count_failure(upload_id, exc)
        except Exception:
            # S3 or NATS away: the record stays "verifying" and the sweeper retries.
            log.warning("upload %s: finalisation interrupted; will retry", upload_id, exc_info=True)

    async def _count_failure(self, upload_id: str, exc: Exception) -> None:
        """Record one failed attempt; past the bound, give the upload up (with its reason) instead.

        Raises again when the attempt cannot even be counted (NATS away): the sweeper comes back.
        """
        got = await self.store.get(upload_id)
        if got is None or got[0].state != "verifying":
            raise exc
        record, revision = got
        now = _now()
        record = record.model_copy(
            update={
                "finalise_failures": record.finalise_failures + 1,
                "first_finalise_failure_at": record.first_finalise_failure_at or now,
                "updated_at": now,
            }
        )
        limits = self.settings.upload_finalise_max_attempts, self.settings.upload_finalise_max_age_s
        if not finalise_should_give_up(record, now, *limits):
            await self.store.save(record, revision)
            log.warning(
                "upload %s: finalisation attempt %d failed; will retry: %r",
                upload_id,
                record.finalise_failures,
                exc,
            )
            return
        await self._give_up(record, revision, exc)

    async def _give_up(self, record: UploadRecord, revision: int, exc: Exception) -> None:
        """Remove every byte this upload put in S3, then say ``rejected`` with the reason;
        or, when its bytes are an asset after all, ``stored`` as that asset.

        The record changes only after the clean-up succeeded, so "rejected" never leaves a
        half-stored object behind; a failed clean-up is tried again by the sweeper. The
        asset may be this very upload's: its ``asset.ingested`` landed and the append was
        still reported failed (a timeout on a slow server); or another ingest's of the same
        bytes, as a duplicate upload ends.
        """
        bucket = self.settings.bucket_uploads
        if not record.completed:
            await self.objects.abort_multipart(bucket, record.s3_key, record.s3_upload_id)
        await self.objects.remove(bucket, record.tail_key)
        holder = None
        if record.completed and record.sha256 is not None:
            holder = await self._withdraw_original(record, record.sha256)
        if holder is not None:
            stored = await self._as_existing(record, holder)  # its original put back if need be
            await self.store.save(self._stored(record, stored), revision)
            with contextlib.suppress(Exception):
                await self.objects.remove(bucket, record.s3_key)
            log.warning(
                "upload %s: finalisation failed %d times, but its bytes are asset %s: stored (%r)",
                record.id,
                record.finalise_failures,
                stored.asset_id,
                exc,
            )
            return
        await self.objects.remove(bucket, record.s3_key)  # only now: the original may need it back
        if is_storage_full(exc):
            problem = finalise_gave_up(record.finalise_failures, "kho lưu trữ đã đầy", "object storage is full")
        else:
            problem = finalise_gave_up(record.finalise_failures, f"lỗi {type(exc).__name__}", type(exc).__name__)
        await self.store.save(record.model_copy(update={"state": "rejected", "error": problem}), revision)
        log.warning("upload %s: finalisation gave up after %d attempts: %r", record.id, record.finalise_failures, exc)

    async def _withdraw_original(self, record: UploadRecord, sha256: str) -> Ingested | None:
        """Remove the content-addressed original this upload may have copied, unless an asset
        holds it; returns that asset, if any.

        Another ingest of the same bytes (a second upload, ``POST /v1/assets``) may have found
        the original in place before the removal and append its ``asset.ingested`` after the
        first look: so look again after removing, and if an asset now exists, put the bytes back
        from this upload's staging object (still there). The other order — the removal before the
        other ingest's append — is that ingest's to mend: ``record_original`` checks the original
        after every append. Each side acts first and checks second, so one of them sees the
        other and no asset is left without its original. Only an upload whose parts were joined
        (``completed``) ever copied an original, so only such an upload removes one: it can
        always put it back.
        """
        originals, key = self.settings.bucket_originals, content_key(sha256)
        holder = await existing_asset(self.events, sha256)
        if holder is not None:
            return holder  # an asset holds it: it is nobody's orphan
        held = await self.objects.stat(originals, key)
        if held is None:
            return None
        await self.objects.remove(originals, key)  # a copy without its asset.ingested would be an orphan
        holder = await existing_asset(self.events, sha256)
        if holder is not None:
            log.info("upload %s: an asset of the same bytes appeared while giving up; original kept", record.id)
            await self.objects.copy(
                self.settings.bucket_uploads, record.s3_key, originals, key, held.content_type, {"sha256": sha256}
            )
        return holder

    async def _finalise_locked(self, upload_id: str) -> None:
        got = await self.store.get(upload_id)
        if got is None or got[0].state != "verifying":
            return
        record, revision = got
        bucket = self.settings.bucket_uploads
        if not record.completed:
            try:
                await self.objects.complete_multipart(
                    bucket, record.s3_key, record.s3_upload_id, [(p.number, p.etag) for p in record.parts]
                )
            except S3Error as exc:
                # Completed before a crash (the upload id is gone, the object is there)?
                if exc.code != "NoSuchUpload" or await self.objects.stat(bucket, record.s3_key) is None:
                    raise
            record = record.model_copy(update={"completed": True, "updated_at": _now()})
            revision = await self.store.save(record, revision)
        outcome = await self._ingest(record)
        if isinstance(outcome, UploadProblem):
            record = record.model_copy(update={"state": "rejected", "error": outcome, "updated_at": _now()})
        else:
            record = self._stored(record, outcome)
        await self.store.save(record, revision)
        # The staging object is no longer needed: the original is under its content key.
        with contextlib.suppress(Exception):
            await self.objects.remove(bucket, record.s3_key)
        log.info("upload %s: %s", upload_id, record.state)

    @staticmethod
    def _stored(record: UploadRecord, outcome: Ingested) -> UploadRecord:
        return record.model_copy(
            update={
                "state": "stored",
                "asset_id": outcome.asset_id,
                "duplicate": outcome.duplicate,
                "updated_at": _now(),
            }
        )

    async def _as_existing(self, record: UploadRecord, existing: Ingested) -> Ingested:
        """The upload as the asset its bytes already are: its own (an ``asset.ingested`` with
        this upload's event id) or another's (a duplicate), the asset's original put back from
        the staging object if a give-up removed it."""
        assert record.sha256 is not None
        event_id = ingested_event_id(record.id)
        ours = any(
            s.envelope.event_id == event_id and s.envelope.type == AssetIngestedV1.EVENT_TYPE for s in existing.history
        )
        ingested = next(s.envelope for s in existing.history if s.envelope.type == AssetIngestedV1.EVENT_TYPE)
        payload = ingested.typed_payload()
        assert isinstance(payload, AssetIngestedV1)
        await keep_original(
            self.objects,
            payload.bucket,
            payload.object_key,
            self._copy_staged(record),
            payload.mime_type,
            record.sha256,
        )
        return Ingested(existing.asset_id, not ours, existing.history)

    def _copy_staged(self, record: UploadRecord) -> PutOriginal:
        """Puts the upload's staging object under an original's key (server-side)."""

        async def copy_original(bucket: str, key: str, content_type: str, metadata: dict[str, str]) -> None:
            await self.objects.copy(self.settings.bucket_uploads, record.s3_key, bucket, key, content_type, metadata)

        return copy_original

    async def _ingest(self, record: UploadRecord) -> Ingested | UploadProblem:
        assert record.sha256 is not None
        event_id = ingested_event_id(record.id)
        existing = await existing_asset(self.events, record.sha256)
        if existing is not None:
            return await self._as_existing(record, existing)
        try:
            probe = await self._probe(record)
        except MediaRejected as exc:
            return UploadProblem(code=exc.code, message_vi=exc.message_vi, message_en=exc.message_en)
        return await record_original(
            self.events,
            self.objects,
            self.settings.bucket_originals,
            self._copy_staged(record),
            actor=record.owner,
            meta=record.meta,
            probe=probe,
            sha256=record.sha256,
            size=record.length,
            filename=record.filename,
            event_id=event_id,
        )

    async def _probe(self, record: UploadRecord) -> ProbeResult:
        path = self.work_dir / f"probe-{record.id}"
        try:
            if record.length > 2 * PROBE_EDGE:
                await self._edges_to_sparse_file(record, path)
                try:
                    return await asyncio.to_thread(probe_file, path, self.limits)
                except MediaRejected:
                    log.info("upload %s: the edges are not enough to probe; downloading it whole", record.id)
            await self.objects.download(self.settings.bucket_uploads, record.s3_key, path)
            return await asyncio.to_thread(probe_file, path, self.limits)
        finally:
            await asyncio.to_thread(path.unlink, True)

    async def _edges_to_sparse_file(self, record: UploadRecord, path: Path) -> None:
        bucket = self.settings.bucket_uploads
        head = await self.objects.get_bytes(bucket, record.s3_key, 0, PROBE_EDGE)
        tail_start = record.length - PROBE_EDGE
        tail = await self.objects.get_bytes(bucket, record.s3_key, tail_start, PROBE_EDGE)

        def write() -> None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.pwrite(fd, head, 0)
                os.pwrite(fd, tail, tail_start)
                os.ftruncate(fd, record.length)
            finally:
                os.close(fd)

        await asyncio.to_thread(write)


def _now() -> datetime:
    return datetime.now(UTC)
