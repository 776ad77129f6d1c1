"""Ingest domain logic: upload metadata rules and the asset read model. No I/O."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.events.models import AssetIngestedV1
from shared.eventstore import StoredEvent
from shared.fields import EARLIEST, LATEST
from shared.http import UserError
from shared.media.probe import ProbeResult
from shared.taxonomy import (
    ACTIVITY_TYPE_CODES,
    LOCAL_TZ,
    activity_types,
)
from shared.text import TextProblem, check_text, coerce_text

# The limits of the input contract (shared/fields.py: Title, Caption, Line, FileName).
MAX_TITLE = 500
MAX_CAPTION = 20_000
MAX_LINE = 300
MAX_FILENAME = 255
_LABELS = {"title": "tiêu đề"}


class UploadMetadata(BaseModel):
    """What a broadcaster types with an upload, after validation and NFC."""

    model_config = ConfigDict(frozen=True)

    title: str
    caption: str = ""
    recorded_at: datetime | None = None
    activity_type: str
    source_org: str = ""


def parse_recorded_at(raw: str) -> datetime:
    """ISO date or datetime; a bare date or naive time is local (Asia/Ho_Chi_Minh)."""
    raw = raw.strip()[:64]  # an ISO 8601 value is short; the message never quotes more
    try:
        if len(raw) == 10:
            parsed = datetime.combine(date.fromisoformat(raw), time(0, 0), LOCAL_TZ)
        else:
            parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise UserError(
            422,
            "invalid_recorded_at",
            f"Ngày ghi hình không hợp lệ: {raw!r} (dạng YYYY-MM-DD hoặc YYYY-MM-DDTHH:MM).",
            f"Invalid recorded_at {raw!r}; use YYYY-MM-DD or an ISO 8601 datetime.",
            field="recorded_at",
        ) from exc
    if not EARLIEST <= parsed.date() <= LATEST:
        raise UserError(
            422,
            "invalid_recorded_at",
            f"Ngày ghi hình phải trong khoảng {EARLIEST:%d/%m/%Y}–{LATEST:%d/%m/%Y}.",
            f"recorded_at must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}.",
            field="recorded_at",
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)


def validate_metadata(
    title: str | None,
    caption: str | None,
    recorded_at: str | None,
    activity_type: str | None,
    source_org: str | None,
) -> UploadMetadata:
    """Check the fields a user typed; every problem is reported at once."""
    problems: list[dict[str, str]] = []

    def text(field: str, value: str | None, max_length: int, *, required: bool) -> str:
        """The input contract of shared/fields.py, each problem reported with its field."""
        try:
            return check_text(value or "", max_length, required=required)
        except TextProblem as problem:
            vi, en = f"{field}: {problem.message_vi}", f"{field}: {problem.message_en}"
            if problem.code == "blank":
                vi, en = f"Thiếu {_LABELS.get(field, field)} ({field}).", f"{field} is required."
            problems.append({"field": field, "code": problem.code, "message": vi, "message_en": en})
            return ""

    clean_title = text("title", title, MAX_TITLE, required=True)
    clean_caption = text("caption", caption, MAX_CAPTION, required=False)
    clean_source = text("source_org", source_org, MAX_LINE, required=False)
    code = (activity_type or "").strip()
    if not code:
        problems.append(
            {
                "field": "activity_type",
                "message": "Thiếu loại hoạt động (activity_type).",
                "message_en": "activity_type is required.",
            }
        )
    elif code not in ACTIVITY_TYPE_CODES:
        known = ", ".join(a.code for a in activity_types())
        problems.append(
            {
                "field": "activity_type",
                "message": f"Loại hoạt động không tồn tại: {code!r}. Các mã hợp lệ: {known}.",
                "message_en": f"Unknown activity type {code!r}; known codes: {known}.",
            }
        )
    when: datetime | None = None
    if recorded_at and recorded_at.strip():
        try:
            when = parse_recorded_at(recorded_at)
        except UserError as exc:
            problems.append({"field": "recorded_at", "message": exc.message_vi, "message_en": exc.message_en})
    if problems:
        raise UserError(
            422,
            "invalid_metadata",
            "Thông tin kèm theo không hợp lệ: " + " ".join(p["message"] for p in problems),
            "Invalid metadata: " + " ".join(p["message_en"] for p in problems),
            problems=problems,
        )
    return UploadMetadata(
        title=clean_title,
        caption=clean_caption,
        recorded_at=when,
        activity_type=code,
        source_org=clean_source,
    )


def ingested_payload(
    meta: UploadMetadata, probe: ProbeResult, *, sha256: str, size: int, bucket: str, key: str, filename: str
) -> AssetIngestedV1:
    return AssetIngestedV1(
        sha256=sha256,
        size_bytes=size,
        kind=probe.kind,
        media_format=probe.media_format,
        mime_type=probe.mime_type,
        bucket=bucket,
        object_key=key,
        # The client's file name is metadata only: kept, cleaned, never refused.
        original_filename=coerce_text(filename, MAX_FILENAME),
        title=meta.title,
        caption=meta.caption,
        recorded_at=meta.recorded_at,
        activity_type=meta.activity_type,
        source_org=meta.source_org,
        width=probe.width,
        height=probe.height,
        duration_s=probe.duration_s,
    )


def asset_view(asset_id: str, history: list[StoredEvent]) -> dict[str, Any]:
    """The asset as ingest knows it: folded from its events."""
    view: dict[str, Any] = {"asset_id": asset_id, "events": []}
    for stored in history:
        env = stored.envelope
        view["events"].append(
            {
                "type": env.type,
                "sequence": stored.sequence,
                "actor": env.actor,
                "occurred_at": env.occurred_at.isoformat(),
            }
        )
        if env.type == AssetIngestedV1.EVENT_TYPE:
            view.update(env.typed_payload().model_dump(mode="json"))
            view["ingested_at"] = env.occurred_at.isoformat()
            view["ingested_by"] = env.actor
    return view
