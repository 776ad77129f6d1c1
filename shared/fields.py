"""The input contract: bounded, clean field types shared by the API models and the
event payloads, so what a user can send is what the log and the index can hold.

Text is NFC with whitespace collapsed; control characters and bidi overrides
are refused; blank or invisible text is refused where a value is required;
every text has a length limit; dates fall between 1945 and 2100.

On write (models built by the services, API bodies) a value outside the
contract is refused. On read (``EventEnvelope.typed_payload`` validates with
the context ``{"stored": True}``) an event written before the contract existed
is brought within it instead (cut, cleaned), so the log stays readable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

from shared.taxonomy import LOCAL_TZ
from shared.text import TextProblem, check_text, coerce_text

STORED = {"stored": True}  # validation context of events read back from the log

EARLIEST = date(1945, 1, 1)
LATEST = date(2100, 12, 31)
# What a stored date may be and still be read as one (the search index dates 1800–2200).
_SANE_STORED = (date(1800, 1, 1), date(2200, 12, 31))


def _stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


def _text(max_length: int, *, required: bool) -> Callable[[str, ValidationInfo], str]:
    def validate(value: str, info: ValidationInfo) -> str:
        if _stored(info):
            return coerce_text(value, max_length)
        return check_text(value, max_length, required=required)

    validate.__doc__ = (
        f"text ≤ {max_length} characters{', not blank' if required else ''}; NFC, whitespace collapsed, "
        "no control or bidi characters"
    )
    return validate


def _in_range(day: date) -> None:
    if not EARLIEST <= day <= LATEST:
        raise TextProblem(
            "date_out_of_range",
            f"Ngày phải trong khoảng {EARLIEST:%d/%m/%Y}–{LATEST:%d/%m/%Y}.",
            f"The date must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}.",
        )


def _date(value: date, info: ValidationInfo) -> date:
    """between 1945-01-01 and 2100-12-31"""
    if not _stored(info):
        _in_range(value)
    return value


def _moment(value: datetime | None, info: ValidationInfo) -> datetime | None:
    """local date between 1945-01-01 and 2100-12-31"""
    if value is None:
        return None
    if _stored(info):
        # An impossible date stored before the contract reads as "date unknown": folds
        # turn it into a local date and a term, which year 1 or 9999 would break.
        return value if _SANE_STORED[0] <= value.date() <= _SANE_STORED[1] else None
    _in_range(value.date())
    return value


def _instant_text(value: Any, info: ValidationInfo) -> Any:
    """ISO 8601 text (or a datetime built by the code); no Unix numbers, nothing long."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or len(value) > 64:
        raise TextProblem(
            "invalid_datetime",
            "Thời điểm phải viết theo ISO 8601, vd. 2025-06-20T08:00:00+07:00.",
            "A moment must be ISO 8601 text, e.g. 2025-06-20T08:00:00+07:00.",
        )
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise TextProblem(
            "invalid_datetime",
            "Thời điểm không hợp lệ: dùng ISO 8601, vd. 2025-06-20T08:00:00+07:00 (không có múi giờ: giờ Việt Nam).",
            "Invalid moment: use ISO 8601, e.g. 2025-06-20T08:00:00+07:00 (no offset: Vietnam time).",
        ) from None


def _instant(value: datetime, info: ValidationInfo) -> datetime:
    """ISO 8601; without an offset, Asia/Ho_Chi_Minh; stored UTC; local date between 1945-01-01 and 2100-12-31"""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=LOCAL_TZ)
    if _stored(info):
        try:
            return aware.astimezone(UTC)
        except OverflowError:  # read leniently: an impossible instant stays as written
            return aware
    _in_range(aware.date())  # before converting: year 1 or 9999 with an offset cannot be
    return aware.astimezone(UTC)


# Titles of assets (and of uploads); activity titles are shorter.
Title = Annotated[str, AfterValidator(_text(500, required=True))]
ActivityTitle = Annotated[str, AfterValidator(_text(300, required=True))]
Caption = Annotated[str, AfterValidator(_text(20_000, required=False))]
# Organisations, places, roles: one line each.
Line = Annotated[str, AfterValidator(_text(300, required=False))]
FileName = Annotated[str, AfterValidator(_text(255, required=False))]
PersonName = Annotated[str, AfterValidator(_text(150, required=True))]
Note = Annotated[str, AfterValidator(_text(1000, required=False))]
# A reel's lower-third caption: two short lines on screen at most.
ReelCaption = Annotated[str, AfterValidator(_text(200, required=False))]
Names = Annotated[tuple[PersonName, ...], Field(max_length=100)]
Lines = Annotated[tuple[Annotated[str, AfterValidator(_text(300, required=True))], ...], Field(max_length=100)]
Day = Annotated[date, AfterValidator(_date)]
Moment = Annotated[datetime | None, AfterValidator(_moment)]
# An instant a person chooses (a publication window): ISO 8601 with an offset, or without
# one in the council's time zone; always held in UTC.
Instant = Annotated[datetime, BeforeValidator(_instant_text), AfterValidator(_instant)]


def text_problem(error: dict[str, Any]) -> TextProblem | None:
    """The contract's own reason behind a pydantic error, if that is what it was."""
    cause = (error.get("ctx") or {}).get("error")
    return cause if isinstance(cause, TextProblem) else None
