"""ingest HTTP API: the routes (thin handlers) and the adapters they use."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.ingest.body_quota import SpoolLedger
from services.ingest.domain import UploadMetadata, asset_view, validate_metadata
from services.ingest.finalise import Finaliser
from services.ingest.originals import existing_asset, record_original
from services.ingest.receive import ReceivedFile, check_declared_size, receive_upload
from services.ingest.sweeper import Sweeper, stop_task
from services.ingest.upload_store import UploadStore
from shared.access import requires
from shared.auth import Principal
from shared.eventstore import EventStore, StoredEvent
from shared.http import UserError, app_deps, checked_id
from shared.media.probe import Limits, MediaRejected, probe_file
from shared.objectstore import ObjectStore
from shared.policy import Action, may_see
from shared.publication import visibility_of
from shared.request_bodies import body_pace
from shared.settings import Settings


@dataclass
class IngestDeps:
    settings: Settings
    events: EventStore
    objects: ObjectStore
    limits: Limits
    # Uploads being received: ``<home>/work/ingest-<port>``, swept at start.
    spool_dir: Path
    # Resumable uploads: their state in NATS KV, their background finalisation and sweeper.
    uploads: UploadStore
    finaliser: Finaliser
    sweeper: Sweeper
    # Single-request bodies on this replica's spool disk, in their users' quota.
    spool_ledger: SpoolLedger
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def readiness(self) -> dict[str, bool]:
        return {"nats": await self.events.ready(), "s3": await self.objects.ready()}

    async def close(self) -> None:
        for task in self.background:
            await stop_task(task)
        await self.finaliser.close()
        await self.events.close()


Deps = Annotated[IngestDeps, Depends(app_deps)]
router = APIRouter(prefix="/v1")
# Every route names the action it takes (shared/policy.py decides who may).
Uploader = Annotated[Principal, Depends(requires(Action.ASSET_UPLOAD))]
Reader = Annotated[Principal, Depends(requires(Action.ASSET_READ))]


def form_metadata(fields: Mapping[str, str]) -> UploadMetadata:
    return validate_metadata(
        fields.get("title"),
        fields.get("caption"),
        fields.get("recorded_at"),
        fields.get("activity_type"),
        fields.get("source_org"),
    )


# The body is parsed by services/ingest/receive.py, not by FastAPI (whose form
# parsing spools the whole body before the route runs); this describes it for /docs.
_UPLOAD_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["title", "activity_type", "file"],
                    "properties": {
                        "title": {"type": "string", "maxLength": 500},
                        "activity_type": {"type": "string", "description": "ky-hop, tiep-xuc-cu-tri, …"},
                        "caption": {"type": "string"},
                        "recorded_at": {"type": "string", "description": "YYYY-MM-DD hoặc ISO 8601"},
                        "source_org": {"type": "string"},
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "ảnh / video / âm thanh — phần cuối cùng / the last part",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/assets",
    status_code=201,
    summary="Tải lên một tệp ảnh, video hoặc âm thanh / upload one file",
    description="multipart/form-data: các trường thông tin trước, trường `file` sau cùng / "
    "the metadata fields first, the `file` part last.",
    openapi_extra=_UPLOAD_FORM,
)
async def upload_asset(request: Request, who: Uploader, d: Deps) -> JSONResponse:
    # The token was checked before this runs; the declared size and (in the
    # stream, before the file part) the metadata are checked before the file is stored.
    declared = check_declared_size(request, d.settings.max_upload_bytes)
    # The body is on the spool disk until the request ends: it counts in the user's quota.
    with d.spool_ledger.hold(who.subject) as hold:
        if declared:
            hold.declared(declared)
        meta, received = await receive_upload(
            request, d.spool_dir, d.settings.max_upload_bytes, form_metadata, body_pace(d.settings), hold.cover
        )
        try:
            return await _ingest(d, who, meta, received)
        finally:
            await asyncio.to_thread(received.path.unlink, True)


async def _ingest(d: IngestDeps, who: Principal, meta: UploadMetadata, received: ReceivedFile) -> JSONResponse:
    existing = await existing_asset(d.events, received.sha256)
    if existing is not None:
        return JSONResponse(_duplicate_view(who, existing.asset_id, existing.history), status_code=200)
    try:
        probe = await asyncio.to_thread(probe_file, received.path, d.limits)
    except MediaRejected as exc:
        raise UserError(415, exc.code, exc.message_vi, exc.message_en) from exc

    async def put_local_file(bucket: str, key: str, content_type: str, metadata: dict[str, str]) -> None:
        await d.objects.put_file(bucket, key, received.path, content_type, metadata)

    ingested = await record_original(
        d.events,
        d.objects,
        d.settings.bucket_originals,
        put_local_file,
        actor=who.actor,
        meta=meta,
        probe=probe,
        sha256=received.sha256,
        size=received.size,
        filename=received.filename,
    )
    if ingested.duplicate:  # the same bytes were ingested concurrently: that upload won
        return JSONResponse(_duplicate_view(who, ingested.asset_id, ingested.history), status_code=200)
    return JSONResponse({**asset_view(ingested.asset_id, ingested.history), "duplicate": False}, status_code=201)


@router.get("/assets/{asset_id}", summary="Một tư liệu và lịch sử sự kiện / one asset and its events")
async def get_asset(asset_id: str, who: Reader, d: Deps) -> dict[str, Any]:
    history = await d.events.history("asset", checked_id("asset", asset_id, "tư liệu", "asset"))
    if not history or not _visible(who, history):  # the same answer: no existence oracle
        raise UserError(404, "asset_not_found", f"Không tìm thấy tư liệu {asset_id}.", f"No asset {asset_id}.")
    return asset_view(asset_id, history)


def _visible(who: Principal, history: list[StoredEvent]) -> bool:
    visibility = visibility_of(s.envelope for s in history)
    return visibility is not None and may_see(who, visibility, datetime.now(UTC))


def _duplicate_view(who: Principal, asset_id: str, history: list[StoredEvent]) -> dict[str, Any]:
    """Same bytes as an existing asset: its id (derived from the bytes the uploader holds
    anyway), and its events only for whoever may see the asset."""
    if _visible(who, history):
        return {**asset_view(asset_id, history), "duplicate": True}
    return {"asset_id": asset_id, "duplicate": True}
