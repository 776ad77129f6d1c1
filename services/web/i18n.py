"""Vietnamese first, English as a switch: the language of a page, and dates and
numbers written the way each reader expects (dd/mm/yyyy in Asia/Ho_Chi_Minh,
``1.234.567,5`` in Vietnamese, ``1,234,567.5`` in English)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from fastapi import Request

LANG_COOKIE = "mam_lang"
Lang = Literal["vi", "en"]
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def language(request: Request) -> Lang:
    return "en" if request.cookies.get(LANG_COOKIE) == "en" else "vi"


def _parsed(value: str | datetime | date | None) -> datetime | date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return value
    text = str(value)
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def vn_date(value: str | datetime | date | None, with_time: bool = False) -> str:
    """dd/mm/yyyy (and HH:MM) in Vietnam's time zone; "" for nothing, the text itself if unreadable."""
    moment = _parsed(value)
    if moment is None:
        return "" if value in (None, "") else str(value)
    if isinstance(moment, datetime):
        local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(VIETNAM)
        return local.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")
    return moment.strftime("%d/%m/%Y")


def number(value: float | int | None, lang: Lang = "vi", decimals: int = 0) -> str:
    """Thousands grouped, Vietnamese ``.`` and ``,`` (English the other way round)."""
    if value is None:
        return ""
    text = f"{value:,.{decimals}f}"
    if lang == "vi":
        text = text.replace(",", "\u0000").replace(".", ",").replace("\u0000", ".")
    return text


def duration(seconds: float | int | None) -> str:
    """h:mm:ss (or m:ss) of a media duration."""
    if seconds is None:
        return ""
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def size(num_bytes: int | None, lang: Lang = "vi") -> str:
    if num_bytes is None:
        return ""
    value = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{number(value, lang, 0 if unit == 'B' else 1)} {unit}"
        value /= 1024
    return ""
