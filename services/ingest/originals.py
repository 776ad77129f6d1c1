"""The one way an original becomes an asset, for both upload paths.

``POST /v1/assets`` (one request, a local file) and the resumable uploads (an
S3 staging object) differ only in where the bytes are and how they reach the
content-addressed key; both then call :func:`record_original`: store the
original under ``content_key(sha256)`` if it is not there yet and append
``asset.ingested`` with expected sequence 0, so the same bytes make one asset
however many uploads race.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.ingest.domain import UploadMetadata, ingested_payload
from shared.events.envelope import new_event
from shared.events.models import AssetIngestedV1
from shared.eventstore import ConcurrencyConflict, EventStore, StoredEvent
from shared.ids import asset_id_for_sha256
from shared.media.probe import ProbeResult
from shared.objectstore import ObjectStore, content_key

# Puts the bytes at (bucket, key) with this content type and metadata.
PutOriginal = Callable[[str, str, str, dict[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class Ingested:
    asset_id: str
    duplicate: bool
    history: list[StoredEvent]


async def existing_asset(events: EventStore, sha256: str) -> Ingested | None:
    """The asset these bytes already are, if any (checked before probing)."""
    asset_id = asset_id_for_sha256(sha256)
    history = await events.history("asset", asset_id)
    return Ingested(asset_id, True, history) if history else None


async def record_original(
    events: EventStore,
    objects: ObjectStore,
    bucket: str,
    put_original: PutOriginal,
    *,
    actor: str,
    meta: UploadMetadata,
    probe: ProbeResult,
    sha256: str,
    size: int,
    filename: str,
    event_id: str | None = None,
) -> Ingested:
    """Store the original content-addressed and append ``asset.ingested`` exactly once.

    With a deterministic ``event_id`` (a resumable upload's), a retry after a crash
    recognises its own event rather than calling the upload a duplicate.
    """
    asset_id = asset_id_for_sha256(sha256)
    key = content_key(sha256)
    if await objects.stat(bucket, key) is None:
        await put_original(bucket, key, probe.mime_type, {"sha256": sha256})
    payload = ingested_payload(meta, probe, sha256=sha256, size=size, bucket=bucket, key=key, filename=filename)
    event = new_event(payload, aggregate_id=asset_id, actor=actor, event_id=event_id)
    try:
        await events.append(event, expected_last_sequence=0)
    except ConcurrencyConflict:
        history = await events.history("asset", asset_id)
        ours = any(
            s.envelope.event_id == event.event_id and s.envelope.type == AssetIngestedV1.EVENT_TYPE for s in history
        )
        await keep_original(objects, bucket, key, put_original, probe.mime_type, sha256)
        return Ingested(asset_id, not ours, history)
    await keep_original(objects, bucket, key, put_original, probe.mime_type, sha256)
    return Ingested(asset_id, False, await events.history("asset", asset_id))


async def keep_original(
    objects: ObjectStore, bucket: str, key: str, put_original: PutOriginal, mime_type: str, sha256: str
) -> None:
    """Once the asset's ``asset.ingested`` is in the log, its original is there: put it back
    (``put_original``) if it went meanwhile.

    A resumable upload of the same bytes that gives up (``Finaliser._withdraw_original``)
    removes the original it copied when no asset holds it yet; it may have looked before this
    append while this ingest found the original in place before its removal. The bytes are
    still in hand here (the local file, the staging object), so they go back.
    """
    if await objects.stat(bucket, key) is None:
        await put_original(bucket, key, mime_type, {"sha256": sha256})
