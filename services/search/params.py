"""Turning raw query-string values into checked parameters, with bilingual errors.

Kept apart from the handlers so every rule is unit-tested without a server.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any, cast

from services.search.query import (
    FACETS,
    MAX_FROM,
    SORT_KEYS,
    STATS_GROUPS,
    CursorError,
    Filters,
    SearchParams,
    SortKey,
    StatsGroup,
    decode_cursor,
)
from shared.http import UserError
from shared.taxonomy import ACTIVITY_TYPE_CODES, terms
from shared.text import clean_text

KINDS = frozenset({"video", "photo", "audio"})
# What the archive can hold: numbers past these reach Elasticsearch as out-of-range errors
# (``height`` is an integer field) or silently match nothing (``inf``).
MAX_HEIGHT = 100_000
MAX_DURATION_S = 1_000_000.0
# The council was founded in 1945; dates past 2100 are typing mistakes.
DATE_MIN, DATE_MAX = date(1945, 1, 1), date(2100, 12, 31)
_FIELD_VI = {
    "activity_type": "loại hoạt động",
    "kind": "loại tư liệu",
    "term": "nhiệm kỳ",
    "sort": "sắp xếp",
    "order": "thứ tự",
    "group_by": "nhóm theo",
    "facets": "nhóm đếm",
    "height": "độ phân giải dọc",
    "duration": "thời lượng (giây)",
}


def split_values(values: list[str] | None) -> tuple[str, ...]:
    """Repeated parameters and comma lists alike (``?kind=video&kind=photo`` or ``?kind=video,photo``)."""
    out = (clean_text(v) for raw in (values or []) for v in raw.split(","))
    return tuple(dict.fromkeys(v for v in out if v))


def checked_codes(values: list[str] | None, allowed: frozenset[str], field: str) -> tuple[str, ...]:
    codes = split_values(values)
    unknown = [c for c in codes if c not in allowed]
    if unknown:
        raise UserError(
            422,
            f"unknown_{field}",
            f"Giá trị không tồn tại cho {_FIELD_VI.get(field, field)}: {', '.join(unknown)}. "
            f"Giá trị hợp lệ: {', '.join(sorted(allowed))}.",
            f"Unknown {field}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}.",
            field=field,
            allowed=sorted(allowed),
        )
    return codes


def _bounded_number(value: float | None, most: float, field: str, name: str) -> None:
    """Refuse ``value`` unless it is a finite number in 0..``most``."""
    if value is None or (math.isfinite(value) and 0 <= value <= most):
        return
    raise UserError(
        422,
        f"invalid_{field}",
        f"Giá trị {name} không hợp lệ cho {_FIELD_VI.get(field, field)}: phải là số từ 0 đến {most:g}.",
        f"Invalid {name}: {field} must be a number from 0 to {most:g}.",
        field=name,
        minimum=0,
        maximum=most,
    )


def _bounded_date(value: date | None, name: str) -> None:
    if value is None or DATE_MIN <= value <= DATE_MAX:
        return
    raise UserError(
        422,
        "invalid_date",
        f"Ngày {value.isoformat()} ({name}) nằm ngoài khoảng {DATE_MIN.isoformat()} – {DATE_MAX.isoformat()}.",
        f"{name} {value.isoformat()} is outside {DATE_MIN.isoformat()} – {DATE_MAX.isoformat()}.",
        field=name,
        minimum=DATE_MIN.isoformat(),
        maximum=DATE_MAX.isoformat(),
    )


def _range(lo: float | None, hi: float | None, field: str) -> None:
    if lo is not None and hi is not None and lo > hi:
        raise UserError(
            422,
            f"invalid_{field}_range",
            f"Khoảng {field} không hợp lệ: giá trị nhỏ nhất ({lo:g}) lớn hơn giá trị lớn nhất ({hi:g}).",
            f"Invalid {field} range: minimum {lo:g} is greater than maximum {hi:g}.",
            field=field,
        )


def parse_filters(
    *,
    activity_type: list[str] | None = None,
    term: list[str] | None = None,
    activity: list[str] | None = None,
    person: list[str] | None = None,
    organisation: list[str] | None = None,
    kind: list[str] | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    published: bool | None = None,
    duration_min: float | None = None,
    duration_max: float | None = None,
    height_min: int | None = None,
    height_max: int | None = None,
) -> Filters:
    for name, day in (("date_from", date_from), ("date_to", date_to)):
        _bounded_date(day, name)
    for name, value, most in (
        ("duration_min", duration_min, MAX_DURATION_S),
        ("duration_max", duration_max, MAX_DURATION_S),
        ("height_min", height_min, MAX_HEIGHT),
        ("height_max", height_max, MAX_HEIGHT),
    ):
        _bounded_number(value, most, name.split("_")[0], name)
    if date_from and date_to and date_from > date_to:
        raise UserError(
            422,
            "invalid_date_range",
            f"Ngày bắt đầu ({date_from.isoformat()}) sau ngày kết thúc ({date_to.isoformat()}).",
            f"date_from ({date_from.isoformat()}) is after date_to ({date_to.isoformat()}).",
            field="date_from",
        )
    _range(duration_min, duration_max, "duration")
    _range(height_min, height_max, "height")
    return Filters(
        activity_type=checked_codes(activity_type, ACTIVITY_TYPE_CODES, "activity_type"),
        term=checked_codes(term, frozenset(t.code for t in terms()), "term"),
        activity=split_values(activity),
        person=split_values(person),
        organisation=split_values(organisation),
        kind=checked_codes(kind, KINDS, "kind"),
        date_from=date_from,
        date_to=date_to,
        published=published,
        duration_min=duration_min,
        duration_max=duration_max,
        height_min=height_min,
        height_max=height_max,
    )


def _one_of(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise UserError(
            422,
            f"invalid_{field}",
            f"Giá trị {_FIELD_VI.get(field, field)} không hợp lệ: {value!r}; chọn một trong {', '.join(allowed)}.",
            f"Invalid {field} {value!r}; one of {', '.join(allowed)}.",
            field=field,
            allowed=list(allowed),
        )
    return value


def parse_search(
    *,
    q: str,
    filters: Filters,
    sort: str | None,
    order: str | None,
    size: int,
    offset: int,
    cursor: str | None,
    facets: list[str] | None,
    cursor_key: bytes | None = None,
) -> SearchParams:
    """The whole search request; sort defaults to relevance with words, newest first without.

    ``cursor_key`` checks the signature of ``cursor``; without one, no cursor is accepted."""
    sort_key = _one_of(sort or ("relevance" if q.strip() else "date"), SORT_KEYS, "sort")
    direction = _one_of(order or "desc", ("asc", "desc"), "order")
    chosen = checked_codes(facets, frozenset(FACETS), "facets") if facets else FACETS
    if offset + size > MAX_FROM:
        raise UserError(
            422,
            "offset_too_deep",
            f"Không thể lật quá {MAX_FROM} kết quả bằng offset; hãy dùng cursor (next_cursor).",
            f"offset + size may not exceed {MAX_FROM}; page with the cursor (next_cursor).",
            field="offset",
        )
    params = SearchParams(
        q=q,
        filters=filters,
        sort=cast(SortKey, sort_key),
        order=cast(Any, direction),
        size=size,
        offset=offset,
        facets=chosen,
    )
    if cursor:
        if offset:
            raise UserError(
                422,
                "cursor_with_offset",
                "Không dùng đồng thời cursor và offset.",
                "Use either cursor or offset, not both.",
                field="cursor",
            )
        try:
            if cursor_key is None:
                raise CursorError("no cursor key to check it with")
            after = decode_cursor(params, cursor, cursor_key)
        except CursorError as exc:
            raise UserError(
                400,
                "invalid_cursor",
                "Con trỏ phân trang không hợp lệ hoặc thuộc truy vấn khác; hãy tìm lại từ trang đầu.",
                f"Invalid pagination cursor ({exc}); start again from the first page.",
                field="cursor",
            ) from exc
        params = SearchParams(**{**params.__dict__, "search_after": after})
    return params


def parse_group(group_by: str) -> StatsGroup:
    return cast(StatsGroup, _one_of(group_by, STATS_GROUPS, "group_by"))
