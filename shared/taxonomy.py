"""Activity types and council terms, loaded from ``shared/data`` (data, not code)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any


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


def activity_types() -> tuple[ActivityType, ...]:
    return tuple(
        ActivityType(item["code"], item["label_vi"], item["label_en"]) for item in _data()["activity_types"]
    )


def terms() -> tuple[Term, ...]:
    return tuple(
        Term(t["code"], t["label_vi"], date.fromisoformat(t["start"]), date.fromisoformat(t["end"]))
        for t in _data()["terms"]
    )


ACTIVITY_TYPE_CODES: frozenset[str] = frozenset(a.code for a in activity_types())


def activity_label(code: str) -> str:
    for item in activity_types():
        if item.code == code:
            return item.label_vi
    raise KeyError(code)


def term_for(day: date) -> Term | None:
    """The council term a local recording date falls in, if any."""
    for term in terms():
        if term.start <= day <= term.end:
            return term
    return None
