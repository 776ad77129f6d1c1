"""Resumable uploads over tus 1.0 (core, creation, creation-with-upload, termination,
expiration, checksum): ``/v1/uploads``. Any tus client works unchanged (tuspy,
tus-js-client, Uppy); the status of an upload being finalised is ``GET /v1/uploads/{id}``.

Handlers are thin: the protocol's rules are in ``uploads.py``, the bytes' way to
S3 in ``receiver.py``, finalisation in ``finalise.py``, state in ``upload_store.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from services.ingest.api import Deps, IngestDeps
from services.ingest.domain import UploadMetadata
from services.ingest.receiver import receive, storage_unavailable
from services.ingest.uploads import (
    CHECKSUM_ALGORITHMS,
    OFFSET_OCTET_STREAM,
    TUS_EXTENSIONS,
    TUS_VERSION,
    UploadRecord,
    bad_request,
    check_tus_resumable,
    conflict_offset,
    expiry_from,
    http_date,
    is_expired,
    may_touch,
    metadata_of,
    not_found,
    not_receiving,
    parse_checksum,
    parse_metadata_header,
    parse_non_negative,
    staging_key,
    status_view,
    too_large,
    valid_upload_id,
)
from shared.access import requires
from shared.auth import Principal
from shared.http import UserError
from shared.policy import Action
from shared.request_bodies import body_pace, paced

router = APIRouter(prefix="/v1")
Uploader = Annotated[Principal, Depends(requires(Action.ASSET_UPLOAD))]

# What a browser client (tus-js-client, Uppy) must be allowed to send and to read.
TUS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "Upload-Checksum",
    "Upload-Defer-Length",
    "Upload-Concat",
    "X-Requested-With",
    "X-Correlation-Id",
]
TUS_RESPONSE_HEADERS = [
    "Location",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "X-Correlation-Id",
]
TUS_METHODS = ["POST", "GET", "HEAD", "PATCH", "DELETE", "OPTIONS"]


def _tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **extra}


def _now() -> datetime:
    return datetime.now(UTC)


@router.options(
    "/uploads",
    status_code=204,
    summary="Khả năng của máy chủ tus / the tus server's capabilities",
)
async def tus_options(who: Uploader, d: Deps) -> Response:
    return Response(
        status_code=204,
        headers=_tus_headers(
            **{
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(d.settings.max_upload_bytes),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
            }
        ),
    )


@router.post(
    "/uploads",
    status_code=201,
    summary="Tạo lượt tải lên tiếp nối được (tus) / create a resumable upload (tus)",
    description="Upload-Length, Upload-Metadata (title, activity_type, caption, recorded_at, source_org, "
    "filename, filetype; base64). Optional body (creation-with-upload).",
)
async def create_upload(request: Request, who: Uploader, d: Deps) -> Response:
    headers = request.headers
    check_tus_resumable(headers.get("tus-resumable"))
    if headers.get("upload-defer-length") is not None:
        raise bad_request(
            "defer_length_unsupported",
            "Cần khai báo Upload-Length khi tạo lượt tải lên.",
            "Upload-Length is required (Upload-Defer-Length is not supported).",
        )
    length = parse_non_negative("Upload-Length", headers.get("upload-length"))
    if length > d.settings.max_upload_bytes:
        raise too_large(d.settings.max_upload_bytes)  # before any byte is stored
    if length == 0:
        raise bad_request("empty_file", "Tệp rỗng: không có dữ liệu để lưu.", "The file is empty.")
    meta, filename, filetype = metadata_of(parse_metadata_header(headers.get("upload-metadata")))
    upload_id = uuid.uuid4().hex
    # Reserved before anything is made (compare-and-set on the user's usage): two creations
    # racing, on one replica or two, cannot both pass the quota.
    await d.uploads.reserve_quota(who.subject, upload_id, length, d.settings.upload_quota_bytes)
    try:
        record, revision = await _new_upload(d, who, upload_id, length, meta, filename, filetype)
    except BaseException:
        await asyncio.shield(d.uploads.release_quota_quietly(who.subject, upload_id))
        raise
    location = str(request.url_for("upload_status", upload_id=upload_id))
    if headers.get("content-type", "").split(";")[0].strip() == OFFSET_OCTET_STREAM:
        record = await _receive(request, d, record, revision)
    return Response(
        status_code=201,
        headers=_tus_headers(
            Location=location,
            **{"Upload-Offset": str(record.offset), "Upload-Expires": http_date(record.expires_at)},
        ),
    )


async def _new_upload(
    d: IngestDeps, who: Principal, upload_id: str, length: int, meta: UploadMetadata, filename: str, filetype: str
) -> tuple[UploadRecord, int]:
    key = staging_key(upload_id)
    try:
        s3_upload_id = await d.objects.create_multipart(d.settings.bucket_uploads, key, "application/octet-stream")
    except Exception as exc:
        raise storage_unavailable() from exc
    now = _now()
    record = UploadRecord(
        id=upload_id,
        owner=who.subject,
        length=length,
        meta=meta,
        filename=filename,
        filetype=filetype,
        s3_key=key,
        s3_upload_id=s3_upload_id,
        created_at=now,
        updated_at=now,
        expires_at=expiry_from(now, d.settings.upload_expiry_s),
    )
    return record, await d.uploads.create(record)


@router.get("/uploads", summary="Các lượt tải lên của tôi (quản trị: tất cả) / my uploads (admins: all)")
async def list_uploads(who: Uploader, d: Deps) -> dict[str, Any]:
    records = [r for r in await d.uploads.all() if may_touch(who, r)]
    records.sort(key=lambda r: r.created_at, reverse=True)
    return {"uploads": [status_view(r) for r in records]}


async def _owned(d: IngestDeps, who: Principal, upload_id: str) -> tuple[UploadRecord, int]:
    """The caller's upload, else 404 (another user's upload is not confirmed to exist)."""
    if not valid_upload_id(upload_id):
        raise not_found(upload_id)
    got = await d.uploads.get(upload_id)
    if got is None or not may_touch(who, got[0]):
        raise not_found(upload_id)
    return got


@router.head("/uploads/{upload_id}", summary="Vị trí đã nhận (tus) / the offset received (tus)")
async def upload_offset(upload_id: str, who: Uploader, d: Deps) -> Response:
    record, _ = await _owned(d, who, upload_id)
    if record.state == "receiving" and is_expired(record, _now()):
        raise not_found(upload_id)
    return Response(
        status_code=200,
        headers=_tus_headers(
            **{
                "Upload-Offset": str(record.offset),
                "Upload-Length": str(record.length),
                "Upload-Expires": http_date(record.expires_at),
                "Cache-Control": "no-store",
            }
        ),
    )


@router.get(
    "/uploads/{upload_id}",
    name="upload_status",
    summary="Trạng thái lượt tải lên / the upload's state",
    description="receiving → verifying → stored (asset_id; duplicate) | rejected (error)",
)
async def upload_status(upload_id: str, who: Uploader, d: Deps) -> JSONResponse:
    record, _ = await _owned(d, who, upload_id)
    return JSONResponse(status_view(record), headers={"Cache-Control": "no-store"})


@router.patch(
    "/uploads/{upload_id}",
    status_code=204,
    summary="Gửi tiếp dữ liệu từ Upload-Offset (tus) / send bytes from Upload-Offset (tus)",
    # The body is the file's bytes as application/offset+octet-stream (read as a stream,
    # not declared here: OpenAPI tools cannot generate that media type).
    description="Body: the bytes from Upload-Offset, Content-Type: application/offset+octet-stream; "
    "headers Tus-Resumable: 1.0.0, Upload-Offset, optional Upload-Checksum.",
)
async def append_bytes(upload_id: str, request: Request, who: Uploader, d: Deps) -> Response:
    headers = request.headers
    check_tus_resumable(headers.get("tus-resumable"))
    if headers.get("content-type", "").split(";")[0].strip() != OFFSET_OCTET_STREAM:
        raise UserError(
            415,
            "offset_octet_stream_required",
            f"Content-Type phải là {OFFSET_OCTET_STREAM}.",
            f"Content-Type must be {OFFSET_OCTET_STREAM}.",
        )
    given = parse_non_negative("Upload-Offset", headers.get("upload-offset"))
    parse_checksum(headers.get("upload-checksum"))  # malformed: 400 before the lock is taken
    record, revision = await _owned(d, who, upload_id)
    if record.state != "receiving":
        raise not_receiving(record)
    if is_expired(record, _now()):
        raise not_found(upload_id)
    if given != record.offset:
        raise conflict_offset(record.offset, given)
    record = await _receive(request, d, record, revision)
    return Response(
        status_code=204,
        headers=_tus_headers(**{"Upload-Offset": str(record.offset), "Upload-Expires": http_date(record.expires_at)}),
    )


async def _receive(request: Request, d: IngestDeps, record: UploadRecord, revision: int) -> UploadRecord:
    """Hold the upload's lock (423 if another connection writes it), take the body, and
    start finalising once the last byte is in."""
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    async with d.uploads.holding(record.id) as lock:
        # Read again under the lock: the offset may have moved since the check above.
        got = await d.uploads.get(record.id)
        if got is None:
            raise not_found(record.id)
        current, revision = got
        if current.state != "receiving":
            raise not_receiving(current)
        if current.offset != record.offset:
            raise conflict_offset(current.offset, record.offset)
        body = paced(request.stream(), body_pace(d.settings))
        saved = await receive(d.settings, d.objects, d.uploads, lock, current, revision, body, checksum)
    if saved.state == "verifying":
        d.finaliser.schedule(saved.id)
    return saved


@router.delete(
    "/uploads/{upload_id}",
    status_code=204,
    summary="Hủy lượt tải lên (tus termination) / cancel an upload",
)
async def terminate_upload(upload_id: str, request: Request, who: Uploader, d: Deps) -> Response:
    check_tus_resumable(request.headers.get("tus-resumable"))
    record, _ = await _owned(d, who, upload_id)
    if record.state == "verifying":
        raise UserError(
            409,
            "upload_verifying",
            "Lượt tải lên đang được kiểm tra và lưu; không hủy được lúc này.",
            "The upload is being verified and stored; it cannot be cancelled now.",
        )
    async with d.uploads.holding(upload_id):
        await d.sweeper.discard(record)
    return Response(status_code=204, headers=_tus_headers())
