"""Resumable uploads (tus 1.0): the state of one upload and the protocol's rules. No I/O.

An upload is created with its length and metadata (validated at once, so a bad
activity code is refused before a byte is sent), then receives bytes in order
(``offset``). Bytes go to an S3 multipart upload part by part; fewer bytes than
one part wait in a small "tail" object until the next request fills the part.
The record below is everything another process needs to carry on: it lives in
NATS KV (``services/ingest/upload_store.py``), never only in memory.

    receiving ──last byte──► verifying ──► stored (asset_id, duplicate)
                                      └──► rejected (error)
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.ingest.domain import MAX_FILENAME, UploadMetadata, validate_metadata
from shared.auth import Principal, Role
from shared.http import UserError
from shared.text import coerce_text

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"
# Checksums a PATCH may carry (tuspy sends sha1, tus-js-client and the README sha256).
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
# The ``Upload-Metadata`` keys: the fields of ``POST /v1/assets`` plus the file's name and type.
METADATA_KEYS = frozenset({"title", "activity_type", "caption", "recorded_at", "source_org", "filename", "filetype"})
MAX_METADATA_HEADER = 64 * 1024

UploadState = Literal["receiving", "verifying", "stored", "rejected"]
_ID = re.compile(r"^[0-9a-f]{32}$")


class PartRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    etag: str
    size: int


class UploadProblem(BaseModel):
    """Why an upload was rejected, in both languages."""

    model_config = ConfigDict(frozen=True)

    code: str
    message_vi: str
    message_en: str


class UploadRecord(BaseModel):
    """One upload as stored in NATS KV (one JSON value per upload id)."""

    id: str
    owner: str
    length: int
    offset: int = 0
    meta: UploadMetadata
    filename: str = ""
    filetype: str = ""
    # The S3 multipart upload in the staging bucket, its parts and the trailing bytes
    # (fewer than one part) held in their own object.
    s3_key: str
    s3_upload_id: str
    parts: list[PartRecord] = Field(default_factory=list)
    tail_size: int = 0
    # The SHA-256 of bytes [0, offset): the hasher's saved state (base64).
    hash_state: str = ""
    state: UploadState = "receiving"
    sha256: str | None = None
    completed: bool = False  # the multipart upload has been joined into the staging object
    asset_id: str | None = None
    duplicate: bool = False
    error: UploadProblem | None = None
    # Failed finalisation attempts so far, and when the first failed (bounded by the settings).
    finalise_failures: int = 0
    first_finalise_failure_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime

    @property
    def tail_key(self) -> str:
        return f"{self.s3_key}.tail"

    @property
    def parts_size(self) -> int:
        return sum(p.size for p in self.parts)


def new_upload_id(raw_hex: str) -> str:
    return raw_hex.lower()


def valid_upload_id(value: str) -> bool:
    return bool(_ID.match(value))


def staging_key(upload_id: str) -> str:
    return f"uploads/{upload_id}"


def upload_id_of_staging_key(key: str) -> str | None:
    """The upload a staging object or multipart upload belongs to (None: not one of ours)."""
    name = key.removeprefix("uploads/").removesuffix(".tail")
    return name if key.startswith("uploads/") and valid_upload_id(name) else None


# --- the protocol's headers ---------------------------------------------------------


def bad_request(code: str, vi: str, en: str, status: int = 400) -> UserError:
    return UserError(status, code, vi, en)


def check_tus_resumable(value: str | None) -> None:
    """Every request but OPTIONS names the protocol version (412 otherwise)."""
    if value != TUS_VERSION:
        raise UserError(
            412,
            "tus_version_unsupported",
            f"Cần tiêu đề Tus-Resumable: {TUS_VERSION}.",
            f"The Tus-Resumable header must be {TUS_VERSION}.",
            tus_version=TUS_VERSION,
        )


def parse_non_negative(name: str, value: str | None) -> int:
    """An integer header (``Upload-Length``, ``Upload-Offset``)."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 19:
        raise bad_request(
            f"invalid_{name.lower().replace('-', '_')}",
            f"Tiêu đề {name} phải là một số nguyên không âm.",
            f"The {name} header must be a non-negative integer.",
        )
    return int(value)


def parse_metadata_header(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs (a value may be absent)."""
    if not header:
        return {}
    if len(header) > MAX_METADATA_HEADER:
        raise bad_request(
            "invalid_upload_metadata",
            "Tiêu đề Upload-Metadata quá dài.",
            "The Upload-Metadata header is too long.",
        )
    fields: dict[str, str] = {}
    for pair in header.split(","):
        words = pair.strip().split(" ")
        key = words[0]
        if not key or len(words) > 2 or key in fields:
            raise bad_request(
                "invalid_upload_metadata",
                "Tiêu đề Upload-Metadata không hợp lệ (các cặp 'khóa giá-trị-base64' cách nhau bởi dấu phẩy).",
                "Invalid Upload-Metadata header (comma-separated 'key base64-value' pairs).",
            )
        try:
            value = base64.b64decode(words[1], validate=True).decode("utf-8") if len(words) == 2 else ""
        except (binascii.Error, UnicodeDecodeError):
            raise bad_request(
                "invalid_upload_metadata",
                f"Giá trị của {key[:64]!r} trong Upload-Metadata không phải base64 của văn bản UTF-8.",
                f"The value of {key[:64]!r} in Upload-Metadata is not base64 of UTF-8 text.",
            ) from None
        if key in METADATA_KEYS:  # other keys (tus-js-client adds some) are not ours
            fields[key] = value
    return fields


def metadata_of(fields: dict[str, str]) -> tuple[UploadMetadata, str, str]:
    """Validated metadata (422 ``invalid_metadata`` as ``POST /v1/assets`` says it), file name, type."""
    meta = validate_metadata(
        fields.get("title"),
        fields.get("caption"),
        fields.get("recorded_at"),
        fields.get("activity_type"),
        fields.get("source_org"),
    )
    # The client's file name and type are metadata only: kept, cleaned, never trusted.
    filename = coerce_text(fields.get("filename", "").replace("\\", "/").rsplit("/", 1)[-1], MAX_FILENAME)
    filetype = coerce_text(fields.get("filetype", ""), 100)
    return meta, filename, filetype


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` (400 if malformed or unsupported)."""
    if header is None:
        return None
    words = header.strip().split(" ")
    if len(words) != 2 or words[0] not in CHECKSUM_ALGORITHMS:
        raise bad_request(
            "checksum_algorithm_unsupported",
            f"Upload-Checksum phải có dạng '<thuật toán> <base64>', thuật toán: {', '.join(CHECKSUM_ALGORITHMS)}.",
            f"Upload-Checksum must be '<algorithm> <base64>' with one of {', '.join(CHECKSUM_ALGORITHMS)}.",
        )
    try:
        return words[0], base64.b64decode(words[1], validate=True)
    except binascii.Error:
        raise bad_request(
            "invalid_upload_checksum", "Giá trị Upload-Checksum không phải base64.", "Upload-Checksum is not base64."
        ) from None


def too_large(limit: int) -> UserError:
    return UserError(
        413,
        "too_large",
        f"Tệp vượt quá giới hạn {limit:,} byte.",
        f"File exceeds the limit of {limit:,} bytes.",
        limit_bytes=limit,
    )


def quota_exceeded(in_flight: int, length: int, quota: int) -> UserError:
    return UserError(
        413,
        "quota_exceeded",
        f"Vượt hạn mức tải lên dở dang: {in_flight:,} byte đang tải, thêm {length:,} byte sẽ quá "
        f"{quota:,} byte. Hãy hoàn tất hoặc hủy các lượt tải trước.",
        f"Upload quota exceeded: {in_flight:,} bytes in flight plus {length:,} would exceed {quota:,} bytes. "
        "Finish or cancel earlier uploads first.",
        in_flight_bytes=in_flight,
        quota_bytes=quota,
    )


class QuotaReservation(BaseModel):
    model_config = ConfigDict(frozen=True)

    size: int
    reserved_at: datetime


class QuotaUsage(BaseModel):
    """One user's bytes in flight: a reservation per upload still receiving (the quota ledger's
    value for that user, changed only by compare-and-set, so two creations cannot both pass)."""

    model_config = ConfigDict(frozen=True)

    owner: str
    uploads: dict[str, QuotaReservation] = Field(default_factory=dict)

    @property
    def in_flight(self) -> int:
        return sum(r.size for r in self.uploads.values())


def with_reservation(usage: QuotaUsage, upload_id: str, length: int, quota: int, now: datetime) -> QuotaUsage:
    """``usage`` with ``length`` bytes reserved for ``upload_id``; 413 ``quota_exceeded`` past the quota."""
    return with_reservation_within(usage, upload_id, length, length, quota, now)


def with_reservation_within(
    usage: QuotaUsage, upload_id: str, at_least: int, wanted: int, quota: int, now: datetime
) -> QuotaUsage:
    """``usage`` with ``wanted`` bytes reserved for ``upload_id``, or all the quota leaves when
    that is less; 413 ``quota_exceeded`` when it leaves less than ``at_least``. (A body of
    unknown length reserves ahead of what has arrived, and only what has arrived must fit.)"""
    others = {k: v for k, v in usage.uploads.items() if k != upload_id}
    in_flight = sum(r.size for r in others.values())
    if in_flight + at_least > quota:
        raise quota_exceeded(in_flight, at_least, quota)
    size = max(at_least, min(wanted, quota - in_flight))
    return usage.model_copy(update={"uploads": {**others, upload_id: QuotaReservation(size=size, reserved_at=now)}})


def without_reservations(usage: QuotaUsage, upload_ids: Iterable[str]) -> QuotaUsage:
    gone = set(upload_ids)
    return usage.model_copy(update={"uploads": {k: v for k, v in usage.uploads.items() if k not in gone}})


def lapsed_reservations(
    usage: QuotaUsage, records: Mapping[str, UploadRecord], now: datetime, grace_s: float
) -> set[str]:
    """The reservations no upload in flight holds any more: its upload finished, was rejected or
    expired, or its record was never made (a creation that died between reserving and saving
    the record; ``grace_s`` after the reservation, so a creation under way keeps it)."""
    lapsed = set()
    for upload_id, reservation in usage.uploads.items():
        record = records.get(upload_id)
        if record is None:
            if (now - reservation.reserved_at).total_seconds() >= grace_s:
                lapsed.add(upload_id)
        elif record.state != "receiving" or is_expired(record, now):
            lapsed.add(upload_id)
    return lapsed


def may_touch(who: Principal, record: UploadRecord) -> bool:
    """A user touches only their own uploads; an administrator any."""
    return who.role is Role.QUAN_TRI or record.owner == who.subject


def not_found(upload_id: str) -> UserError:
    shown = upload_id[:40]
    return UserError(
        404, "upload_not_found", f"Không tìm thấy lượt tải lên {shown}.", f"No upload {shown} (or it has expired)."
    )


def conflict_offset(expected: int, given: int) -> UserError:
    return UserError(
        409,
        "offset_mismatch",
        f"Upload-Offset {given} không khớp: máy chủ đã nhận {expected} byte; hãy hỏi lại (HEAD) rồi gửi tiếp.",
        f"Upload-Offset {given} does not match the {expected} bytes received; ask again (HEAD) and resume.",
        offset=expected,
    )


def not_receiving(record: UploadRecord) -> UserError:
    return UserError(
        409,
        "upload_finished",
        "Lượt tải lên này đã nhận đủ dữ liệu; không gửi thêm được.",
        "This upload has all its bytes; nothing more can be sent.",
        state=record.state,
    )


def http_date(when: datetime) -> str:
    """``Upload-Expires`` in the RFC 9110 date format."""
    return format_datetime(when.astimezone(UTC), usegmt=True)


def expiry_from(now: datetime, expiry_s: int) -> datetime:
    return now + timedelta(seconds=expiry_s)


def is_expired(record: UploadRecord, now: datetime) -> bool:
    return record.expires_at <= now


def finalise_gave_up(attempts: int, cause_vi: str, cause_en: str) -> UploadProblem:
    """Why an upload whose finalisation kept failing was given up (the causes: the last error, short)."""
    return UploadProblem(
        code="finalise_failed",
        message_vi=f"Không lưu được tệp sau {attempts} lần thử ({cause_vi}); không có gì được lưu dở. "
        "Hãy tải lên lại, hoặc báo quản trị viên nếu lỗi còn.",
        message_en=f"The file could not be stored after {attempts} attempts ({cause_en}); nothing was half-stored. "
        "Upload it again, or tell an administrator if this persists.",
    )


def finalise_should_give_up(record: UploadRecord, now: datetime, max_attempts: int, max_age_s: float) -> bool:
    """Whether a finalisation that failed ``record.finalise_failures`` times should stop."""
    first = record.first_finalise_failure_at or now
    return record.finalise_failures >= max_attempts or (now - first).total_seconds() >= max_age_s


def status_view(record: UploadRecord) -> dict[str, Any]:
    """``GET /v1/uploads/{id}``: what the client polls while the upload is finalised."""
    return {
        "id": record.id,
        "state": record.state,
        "offset": record.offset,
        "length": record.length,
        "filename": record.filename,
        "title": record.meta.title,
        "owner": record.owner,
        "asset_id": record.asset_id,
        "duplicate": record.duplicate,
        "error": record.error.model_dump() if record.error else None,
        "created_at": record.created_at.isoformat(),
        "expires_at": record.expires_at.isoformat(),
    }
