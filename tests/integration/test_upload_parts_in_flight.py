"""A tus PATCH sends several parts to S3 at once (services/ingest/receiver.py): with real MinIO
and NATS KV, parts S3 answers out of order are still counted in order — every record saved
is a prefix of the file whose hash state carries on to the file's SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats

from services.ingest.domain import validate_metadata
from services.ingest.hashing import ResumableSha256
from services.ingest.receiver import PARTS_IN_FLIGHT, receive
from services.ingest.upload_store import UploadStore
from services.ingest.uploads import UploadRecord, staging_key
from shared.objectstore import ObjectStore
from shared.settings import Settings

MIB = 1024 * 1024
PART = 5 * MIB
PARTS = 7


class _EarlierPartsAnswerLater(ObjectStore):
    """MinIO, with each part of a request held back longer than the next one."""

    sending = 0
    most_at_once = 0

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        self.sending += 1
        self.most_at_once = max(self.most_at_once, self.sending)
        try:
            await asyncio.sleep(0.03 * (PARTS - number))
            return await super().upload_part(bucket, key, upload_id, number, data)
        finally:
            self.sending -= 1


class _RecordingStore(UploadStore):
    saved: list[UploadRecord]

    async def save(self, record: UploadRecord, revision: int) -> int:
        self.saved.append(record)
        return await super().save(record, revision)


async def _body(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256 * 1024):
        yield data[start : start + 256 * 1024]


async def test_parts_s3_answers_out_of_order_are_saved_in_order_with_the_hash_of_each_prefix(
    quiet_nats: Settings, unique: str
) -> None:
    settings = quiet_nats.model_copy(update={"upload_part_size": PART})
    objects = _EarlierPartsAnswerLater(
        f"127.0.0.1:{settings.minio_port}",
        settings.s3_access_key,
        settings.s3_secret_key.get_secret_value(),
        part_size=PART,
    )
    await objects.ensure_buckets(settings.bucket_uploads)
    data = os.urandom(PARTS * PART + 1000)
    upload_id = hashlib.md5(unique.encode()).hexdigest()
    key = staging_key(upload_id)
    now = datetime.now(UTC)
    record = UploadRecord(
        id=upload_id, owner="phong-vien", length=len(data), meta=validate_metadata("Kỳ họp thứ 7", None, None,
        "ky-hop", None), s3_key=key, s3_upload_id=await objects.create_multipart(settings.bucket_uploads, key,
        "application/octet-stream"), created_at=now, updated_at=now, expires_at=now,
    )  # fmt: skip
    connection = await nats.connect(settings.resolved_nats_url)
    try:
        store = await _RecordingStore.open(connection.jetstream(), lease_s=20, bucket=f"UPLOADS_{unique}")
        assert isinstance(store, _RecordingStore)
        store.saved = []
        revision = await store.create(record)
        async with store.holding(upload_id) as lock:
            final = await receive(settings, objects, store, lock, record, revision, _body(data), None)
    finally:
        await connection.close()

    assert 1 < objects.most_at_once <= PARTS_IN_FLIGHT
    assert final.state == "verifying" and final.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.number for p in final.parts] == list(range(1, PARTS + 2))
    for saved in store.saved[:-1]:  # each part as it was counted
        assert [p.number for p in saved.parts] == list(range(1, len(saved.parts) + 1))
        assert saved.offset == len(saved.parts) * PART
        carried_on = ResumableSha256(saved.hash_state)
        carried_on.update(data[saved.offset :])
        assert carried_on.hexdigest() == hashlib.sha256(data).hexdigest()
    assert [s.offset for s in store.saved[:-1]] == [n * PART for n in range(1, PARTS + 1)]
    await objects.complete_multipart(
        settings.bucket_uploads, key, record.s3_upload_id, [(p.number, p.etag) for p in final.parts]
    )
    stored = await objects.get_bytes(settings.bucket_uploads, key)
    assert hashlib.sha256(stored).hexdigest() == final.sha256
    await objects.remove(settings.bucket_uploads, key)
