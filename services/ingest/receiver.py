"""One PATCH (or the body of a creation request): bytes in, S3 parts out, state saved per part.

The bytes of a request are cut into parts of ``upload_part_size`` as they
arrive; each full part is sent to the S3 multipart upload while the next ones
are being received — up to ``PARTS_IN_FLIGHT`` at once, as minio's
``fput_object`` does: one at a time, the wait for S3 took half of a PATCH's time —
and hashed and counted in order: the record is saved after each part with the
offset and the hasher's state, so a process killed mid-request loses at most
the parts it was sending and filling. When the request ends short of a part,
the bytes it left are stored as the upload's "tail" object (as tusd's S3 store
does) and read back first by the next request. With ``Upload-Checksum`` the
record is saved only once the whole request's digest matched: bytes that fail
their checksum are never counted (the parts they went into are overwritten by
the next request, which reuses the part numbers).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect

from services.ingest.hashing import ResumableSha256
from services.ingest.upload_store import RecordConflict, UploadLock, UploadStore
from services.ingest.uploads import PartRecord, UploadRecord, expiry_from
from shared.http import UserError
from shared.objectstore import ObjectStore
from shared.request_bodies import BodyStalled
from shared.settings import Settings

log = logging.getLogger("mam.ingest.uploads")

# Parts of one request being sent to S3 at once (the service holds one more, filling).
PARTS_IN_FLIGHT = 3


def storage_unavailable() -> UserError:
    return UserError(
        503,
        "storage_unavailable",
        "Kho lưu trữ tạm thời không phản hồi; dữ liệu đã nhận vẫn được giữ. Hãy gửi tiếp sau ít phút.",
        "Object storage is not answering for now; what was received is kept. Resume in a few minutes.",
    )


def size_exceeded(length: int) -> UserError:
    return UserError(
        413,
        "upload_length_exceeded",
        f"Dữ liệu gửi vượt quá độ dài đã khai báo ({length:,} byte).",
        f"More bytes were sent than the declared Upload-Length ({length:,} bytes).",
    )


def checksum_mismatch() -> UserError:
    return UserError(
        460,
        "checksum_mismatch",
        "Mã kiểm tra (Upload-Checksum) không khớp: phần dữ liệu này bị bỏ, hãy gửi lại.",
        "Upload-Checksum does not match: these bytes were discarded; send them again.",
    )


def lock_lost() -> UserError:
    return UserError(
        409,
        "upload_lock_lost",
        "Kết nối này đã mất quyền ghi lượt tải lên (quá lâu không có dữ liệu); hãy hỏi lại vị trí và gửi tiếp.",
        "This connection lost its hold on the upload (it stalled too long); ask for the offset and resume.",
    )


@dataclass
class _Receiving:
    """The upload as this request moves it forward."""

    record: UploadRecord
    revision: int
    hasher: ResumableSha256
    # The part being filled, as the pieces that came (joined once, when the part is full:
    # growing and slicing one buffer cost the event loop as much as hashing the bytes).
    pieces: list[bytes] = field(default_factory=list)
    filled: int = 0
    hashed_in_buffer: int = 0  # leading bytes of the part being filled already in the hasher (the old tail)
    received: int = 0  # bytes of this request
    stale_tail: bool = False


async def receive(
    settings: Settings,
    objects: ObjectStore,
    store: UploadStore,
    lock: UploadLock,
    record: UploadRecord,
    revision: int,
    body: AsyncIterator[bytes],
    checksum: tuple[str, bytes] | None,
) -> UploadRecord:
    """Take the request's bytes at ``record.offset``; the record as saved at the end."""
    bucket = settings.bucket_uploads
    part_size = settings.upload_part_size
    state = _Receiving(record, revision, ResumableSha256(record.hash_state))
    if record.tail_size:
        try:
            tail = await objects.get_bytes(bucket, record.tail_key)
        except Exception as exc:
            raise storage_unavailable() from exc
        # The tail is written before the record: a crash in between leaves a longer tail
        # whose first ``tail_size`` bytes are the ones the record counts.
        if len(tail) < record.tail_size:
            raise storage_unavailable()
        state.pieces.append(tail[: record.tail_size])
        state.filled = state.hashed_in_buffer = record.tail_size
    body_digest = hashlib.new(checksum[0]) if checksum else None
    deferred: list[PartRecord] = []  # with a checksum: parts stored, not yet counted
    next_part = len(record.parts) + 1
    in_flight: deque[asyncio.Task[None]] = deque()

    async def store_part(number: int, data: bytes, already_hashed: int, previous: asyncio.Task[None] | None) -> None:
        sent = asyncio.create_task(_send_part(objects, settings, state.record, number, data))
        try:
            if previous is not None:
                await previous  # hashed and counted in order: the saved hash state is that of the offset
            await asyncio.to_thread(state.hasher.update, memoryview(data)[already_hashed:])
            part = await sent
        except BaseException:
            sent.cancel()
            await asyncio.gather(sent, return_exceptions=True)
            raise
        if checksum:
            deferred.append(part)
        else:
            await _save(store, lock, state, [*state.record.parts, part], tail_size=0, settings=settings)

    disconnected = False
    stalled: BodyStalled | None = None
    try:
        async for chunk in body:
            if body_digest is not None:
                body_digest.update(chunk)
            state.received += len(chunk)
            if record.offset + state.received > record.length:
                raise size_exceeded(record.length)
            while state.filled + len(chunk) >= part_size:
                room = part_size - state.filled
                state.pieces.append(chunk[:room])
                chunk = chunk[room:]
                data = b"".join(state.pieces)
                state.pieces.clear()
                state.filled = 0
                already, state.hashed_in_buffer = state.hashed_in_buffer, 0
                state.stale_tail = state.stale_tail or record.tail_size > 0
                if len(in_flight) == PARTS_IN_FLIGHT:
                    await in_flight.popleft()  # memory stays at about PARTS_IN_FLIGHT + 1 parts
                previous = in_flight[-1] if in_flight else None
                in_flight.append(asyncio.create_task(store_part(next_part, data, already, previous)))
                next_part += 1
            if chunk:
                state.pieces.append(chunk)
                state.filled += len(chunk)
        while in_flight:
            await in_flight.popleft()
    except ClientDisconnect:
        disconnected = True  # keep what arrived: the client resumes from the saved offset
    except BodyStalled as exc:
        # A link too slow for the pace keeps what it got through, like a dropped one: it
        # makes progress PATCH by PATCH, and the 408 comes once the offset is saved.
        disconnected, stalled = True, exc
    except BaseException:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        raise
    while in_flight:  # after a disconnect: the parts already received are kept
        await in_flight.popleft()
    if body_digest is not None and checksum is not None:
        if stalled is not None:
            raise stalled.error()
        if disconnected:
            raise UserError(400, "upload_interrupted", "Tải lên bị ngắt giữa chừng.", "The upload was interrupted.")
        if body_digest.digest() != checksum[1]:
            raise checksum_mismatch()
    rest = b"".join(state.pieces)
    parts = [*state.record.parts, *deferred]
    if record.offset + state.received == record.length:
        if rest:
            parts.append(await _upload_part(objects, settings, state, next_part, rest, state.hashed_in_buffer))
        state.record = state.record.model_copy(update={"state": "verifying", "sha256": state.hasher.hexdigest()})
        await _save(store, lock, state, parts, tail_size=0, settings=settings)
        await _drop_tail(objects, bucket, state)
        return state.record
    if state.received == 0:
        if stalled is not None:
            raise stalled.error()
        return state.record
    await asyncio.to_thread(state.hasher.update, memoryview(rest)[state.hashed_in_buffer :])
    if rest:
        try:
            await objects.put_bytes(bucket, state.record.tail_key, rest)
        except Exception as exc:
            raise storage_unavailable() from exc
    await _save(store, lock, state, parts, tail_size=len(rest), settings=settings)
    if not rest and state.stale_tail:
        await _drop_tail(objects, bucket, state)
    if stalled is not None:
        raise stalled.error()  # what arrived is saved: the client asks for the offset and resumes
    return state.record


async def _upload_part(
    objects: ObjectStore, settings: Settings, state: _Receiving, number: int, data: bytes, already_hashed: int
) -> PartRecord:
    """Hash and store one part side by side (the last part may be smaller than S3's minimum)."""
    try:
        _, part = await asyncio.gather(
            asyncio.to_thread(state.hasher.update, memoryview(data)[already_hashed:]),
            _send_part(objects, settings, state.record, number, data),
        )
    except Exception as exc:
        raise storage_unavailable() from exc
    return part


async def _send_part(
    objects: ObjectStore, settings: Settings, record: UploadRecord, number: int, data: bytes
) -> PartRecord:
    try:
        etag = await objects.upload_part(settings.bucket_uploads, record.s3_key, record.s3_upload_id, number, data)
    except Exception as exc:
        raise storage_unavailable() from exc
    return PartRecord(number=number, etag=etag, size=len(data))


async def _save(
    store: UploadStore,
    lock: UploadLock,
    state: _Receiving,
    parts: list[PartRecord],
    *,
    tail_size: int,
    settings: Settings,
) -> None:
    if lock.lost.is_set():
        raise lock_lost()
    offset = sum(p.size for p in parts) + tail_size
    updated = state.record.model_copy(
        update={
            "parts": parts,
            "tail_size": tail_size,
            "offset": offset,
            "hash_state": state.hasher.state(),
            "updated_at": _now(),
            "expires_at": expiry_from(_now(), settings.upload_expiry_s),
        }
    )
    try:
        state.revision = await store.save(updated, state.revision)
    except RecordConflict as exc:
        raise lock_lost() from exc
    except Exception as exc:
        raise storage_unavailable() from exc
    state.record = updated


async def _drop_tail(objects: ObjectStore, bucket: str, state: _Receiving) -> None:
    try:
        await objects.remove(bucket, state.record.tail_key)
    except Exception:  # the sweeper removes it with the upload
        log.warning("upload %s: tail object not removed", state.record.id, exc_info=True)


def _now() -> datetime:
    return datetime.now(UTC)
