"""Activity types and council terms, loaded from ``shared/data`` (data, not code)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

# The council's clock: bare dates, terms and "which day was it recorded" are judged here.
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True)
class ActivityType:
    code: str
    label_vi: str
    label_en: str


@dataclass(frozen=True)
class Term:
    code: str
    label_vi: str
    start: date
    end: date


@cache
def _data() -> dict[str, Any]:
    text = resources.files("shared").joinpath("data/activity_types.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# Cached: folds ask for labels and terms for every event they index (the data never changes
# in a running process, and the items are frozen).
@cache
def activity_types() -> tuple[ActivityType, ...]:
    return tuple(ActivityType(item["code"], item["label_vi"], item["label_en"]) for item in _data()["activity_types"])


@cache
def terms() -> tuple[Term, ...]:
    return tuple(
        Term(t["code"], t["label_vi"], date.fromisoformat(t["start"]), date.fromisoformat(t["end"]))
        for t in _data()["terms"]
    )


ACTIVITY_TYPE_CODES: frozenset[str] = frozenset(a.code for a in activity_types())


@cache
def _labels() -> dict[str, str]:
    return {item.code: item.label_vi for item in activity_types()}


def activity_label(code: str) -> str:
    return _labels()[code]


def term_for(day: date) -> Term | None:
    """The council term a local recording date falls in, if any."""
    for term in terms():
        if term.start <= day <= term.end:
            return term
    return None


def current_term(now: datetime | None = None) -> Term | None:
    """The term a page shows when none is asked for: the one containing today in Vietnam,
    else (between terms, or after the last) the latest that has started; None before any."""
    today = (now or datetime.now(LOCAL_TZ)).astimezone(LOCAL_TZ).date()
    started = [t for t in terms() if t.start <= today]
    return term_for(today) or max(started, key=lambda t: t.start, default=None)


def term_by_code(code: str) -> Term | None:
    """The configured term with this code (e.g. ``2021-2026``), if any."""
    for term in terms():
        if term.code == code:
            return term
    return None


def term_for_instant(moment: datetime) -> Term | None:
    """The term of a recording instant, judged by its local date in Vietnam.

    A clip recorded at 23:30 on 30 June 2021 UTC is already 1 July locally, so
    the date is taken in the council's time zone, not UTC.
    """
    if moment.tzinfo is None:
        raise ValueError("recording instant must be timezone-aware")
    return term_for(moment.astimezone(LOCAL_TZ).date())
