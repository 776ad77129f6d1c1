"""ingest HTTP API: the routes (thin handlers) and the adapters they use."""

import asyncio
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse

from services.ingest.domain import asset_view, ingested_payload, validate_metadata
from shared.events.envelope import new_event
from shared.eventstore import ConcurrencyConflict, EventStore
from shared.http import Actor, UserError, app_deps, checked_id
from shared.ids import asset_id_for_sha256
from shared.media.probe import Limits, MediaRejected, probe_file
from shared.objectstore import ObjectStore, content_key
from shared.settings import Settings

_CHUNK = 1024 * 1024


@dataclass
class IngestDeps:
    settings: Settings
    events: EventStore
    objects: ObjectStore
    limits: Limits

    async def readiness(self) -> dict[str, bool]:
        return {"nats": await self.events.ready(), "s3": await self.objects.ready()}

    async def close(self) -> None:
        await self.events.close()


Deps = Annotated[IngestDeps, Depends(app_deps)]
router = APIRouter(prefix="/v1")


async def _spool(upload: UploadFile, target: Path, max_bytes: int) -> tuple[str, int]:
    """Copy the upload to a private temp file, hashing as it goes."""
    digest = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        while chunk := await upload.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise UserError(
                    413,
                    "too_large",
                    f"Tệp vượt quá giới hạn {max_bytes:,} byte.",
                    f"File exceeds the limit of {max_bytes:,} bytes.",
                )
            digest.update(chunk)
            out.write(chunk)
    if size == 0:
        raise UserError(400, "empty_file", "Tệp rỗng: không có dữ liệu để lưu.", "The file is empty.")
    return digest.hexdigest(), size


@router.post("/assets", status_code=201, summary="Tải lên một tệp ảnh, video hoặc âm thanh / upload one file")
async def upload_asset(
    actor: Actor,
    d: Deps,
    file: Annotated[UploadFile | None, File(description="ảnh / video / âm thanh")] = None,
    title: Annotated[str | None, Form()] = None,
    caption: Annotated[str | None, Form()] = None,
    recorded_at: Annotated[str | None, Form(description="YYYY-MM-DD hoặc ISO 8601")] = None,
    activity_type: Annotated[str | None, Form()] = None,
    source_org: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    meta = validate_metadata(title, caption, recorded_at, activity_type, source_org)
    if file is None:
        raise UserError(400, "missing_file", "Thiếu tệp tải lên (trường file).", "No file was uploaded (field 'file').")
    with tempfile.TemporaryDirectory(prefix="mam-ingest-") as tmp:
        # The client's file name is metadata only: the local path is ours.
        local = Path(tmp) / "original"
        sha256, size = await _spool(file, local, d.settings.max_upload_bytes)
        asset_id = asset_id_for_sha256(sha256)
        existing = await d.events.history("asset", asset_id)
        if existing:
            return JSONResponse({**asset_view(asset_id, existing), "duplicate": True}, status_code=200)
        try:
            probe = await asyncio.to_thread(probe_file, local, d.limits)
        except MediaRejected as exc:
            raise UserError(415, exc.code, exc.message_vi, exc.message_en) from exc
        key = content_key(sha256)
        bucket = d.settings.bucket_originals
        if await d.objects.stat(bucket, key) is None:
            await d.objects.put_file(bucket, key, local, probe.mime_type, {"sha256": sha256})
        filename = os.path.basename(file.filename or "")
        payload = ingested_payload(meta, probe, sha256=sha256, size=size, bucket=bucket, key=key, filename=filename)
        event = new_event(payload, aggregate_id=asset_id, actor=actor)
        try:
            await d.events.append(event, expected_last_sequence=0)
        except ConcurrencyConflict:
            # The same bytes were ingested concurrently: that upload won.
            history = await d.events.history("asset", asset_id)
            return JSONResponse({**asset_view(asset_id, history), "duplicate": True}, status_code=200)
    history = await d.events.history("asset", asset_id)
    return JSONResponse({**asset_view(asset_id, history), "duplicate": False}, status_code=201)


@router.get("/assets/{asset_id}", summary="Một tư liệu và lịch sử sự kiện / one asset and its events")
async def get_asset(asset_id: str, actor: Actor, d: Deps) -> dict[str, Any]:
    history = await d.events.history("asset", checked_id("asset", asset_id, "tư liệu", "asset"))
    if not history:
        raise UserError(404, "asset_not_found", f"Không tìm thấy tư liệu {asset_id}.", f"No asset {asset_id}.")
    return asset_view(asset_id, history)
