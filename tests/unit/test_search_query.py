"""Query building, parameter checking, cursors and result shaping — no servers."""

from __future__ import annotations

import base64
import html
import json
import unicodedata
from datetime import date
from typing import Any

import pytest

from services.search.documents import MAX_SEARCHABLE_CHARS
from services.search.fields import keyword_field, text_fields
from services.search.params import parse_filters, parse_group, parse_search
from services.search.query import (
    HL_POST,
    HL_PRE,
    CursorError,
    Filters,
    SearchParams,
    build_search_body,
    decode_cursor,
    encode_cursor,
    filter_clauses,
    more_like_this_body,
    params_fingerprint,
    stats_body,
    text_query,
)
from services.search.results import HIGHLIGHT_MAX_CHARS, map_highlight, shape_facets, shape_hit, shape_stats
from shared.http import UserError
from shared.text import fold


def test_title_and_caption_are_searchable_text_fields_found_in_the_mapping() -> None:
    fields = text_fields()
    assert {"title", "caption"} <= set(fields)
    assert fields[0] == "title"  # the heaviest weight first


def test_the_text_query_matches_on_folded_fields_and_only_scores_on_exact_ones() -> None:
    body = text_query("Tiếp xúc cử tri")
    must = body["bool"]["must"][0]["multi_match"]
    assert must["query"] == "tiep xuc cu tri"
    assert all(f.split("^")[0].endswith("_folded") for f in must["fields"])
    exact_phrase = body["bool"]["should"][3]["constant_score"]["filter"]["multi_match"]
    assert exact_phrase["type"] == "phrase" and exact_phrase["query"] == "Tiếp xúc cử tri"
    assert not any(f.split("^")[0].endswith("_folded") for f in exact_phrase["fields"])


def test_decomposed_input_builds_the_same_query_as_composed_input() -> None:
    composed = "Kỳ họp thứ Bảy"
    assert text_query(unicodedata.normalize("NFD", composed)) == text_query(composed)


def test_facets_are_counted_without_their_own_filter_but_with_the_others() -> None:
    p = SearchParams(filters=Filters(activity_type=("ky-hop",), kind=("video",)))
    aggs = build_search_body(p, visible=None)["aggs"]
    own = json.dumps(aggs["activity_type"]["filter"])
    assert "ky-hop" not in own and "video" in own
    assert "ky-hop" in json.dumps(aggs["kind"]["filter"])


def test_every_filter_becomes_a_clause() -> None:
    f = Filters(
        activity_type=("ky-hop",),
        term=("2021-2026",),
        kind=("video",),
        organisation=("Báo Ninh Thuận",),
        date_from=date(2023, 1, 1),
        date_to=date(2023, 12, 31),
        published=True,
        duration_min=10,
        duration_max=60,
        height_min=720,
    )
    clauses = json.dumps(filter_clauses(f), ensure_ascii=False)
    for expected in (
        "ky-hop",
        "2021-2026",
        "video",
        "Báo Ninh Thuận",
        "2023-01-01",
        "Asia/Ho_Chi_Minh",
        '"published": true',
        '"duration_s": {"gte": 10, "lte": 60}',
        '"height": {"gte": 720}',
    ):
        assert expected in clauses


def test_a_filter_on_a_field_the_index_does_not_have_yet_matches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import services.search.query as query

    monkeypatch.setattr(query, "keyword_field", lambda name: None)
    assert filter_clauses(Filters(activity=("kh-7",))) == [{"bool": {"must_not": {"match_all": {}}}}]


def test_people_organisations_and_activities_use_the_tag_fields_of_the_mapping() -> None:
    for name in ("person", "organisation", "activity"):
        assert keyword_field(name) is not None, name


def test_sorting_always_ends_with_the_asset_id_so_pages_are_stable() -> None:
    for sort in ("relevance", "date", "duration"):
        body = build_search_body(SearchParams(q="x", sort=sort), visible=None)  # type: ignore[arg-type]
        assert body["sort"][-1] == {"asset_id": "asc"}


KEY = b"test-cursor-key"


def test_a_cursor_round_trips_and_is_bound_to_its_query() -> None:
    p = SearchParams(q="kỳ họp", sort="date")
    cursor = encode_cursor(p, [1700000000000, "abc"], KEY)
    assert decode_cursor(p, cursor, KEY) == (1700000000000, "abc")
    with pytest.raises(CursorError):
        decode_cursor(SearchParams(q="giám sát", sort="date"), cursor, KEY)
    with pytest.raises(CursorError):
        decode_cursor(p, "not-a-cursor!!", KEY)


def _unsigned(p: SearchParams, values: list[Any]) -> str:
    """A cursor made by hand the way they looked before they were signed."""
    raw = json.dumps({"v": 1, "f": params_fingerprint(p), "s": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_a_hand_made_or_changed_cursor_is_refused() -> None:
    p = SearchParams(q="kỳ họp", sort="date")
    good = encode_cursor(p, [1700000000000, "abc"], KEY)
    forged = [
        _unsigned(p, ["abc", "zzz"]),
        _unsigned(p, [1e40, "a"]),
        _unsigned(p, [True, "a"]),
        _unsigned(p, [1700000000000, "abc"]),  # even with plausible values
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # a changed signature
        good.replace(".", ".x", 1),
        good.split(".")[0],  # the signature dropped
    ]
    for cursor in forged:
        with pytest.raises(CursorError):
            decode_cursor(p, cursor, KEY)
    with pytest.raises(CursorError):
        decode_cursor(p, good, b"another-key")  # signed by another deployment


@pytest.mark.parametrize(
    ("sort", "values"),
    [
        ("date", ["abc", "zzz"]),
        ("date", [1e40, "a"]),
        ("date", [True, "a"]),
        ("date", [1700000000000, 5]),
        ("date", [1700000000000, "a" * 5000]),
        ("relevance", [float("nan"), 1700000000000, "a"]),
        ("relevance", ["1.0", 1700000000000, "a"]),
        ("duration", ["NaN", 1700000000000, "a"]),
        ("date", [2**63, "a"]),
    ],
)
def test_a_signed_cursor_whose_values_do_not_fit_the_sort_is_refused(sort: str, values: list[Any]) -> None:
    # A signature proves who made the cursor, not that its values are sane (a bug, an old format).
    p = SearchParams(q="kỳ họp", sort=sort)  # type: ignore[arg-type]
    with pytest.raises(CursorError):
        decode_cursor(p, encode_cursor(p, values, KEY), KEY)


@pytest.mark.parametrize(
    ("sort", "values"),
    [
        ("relevance", [3.25, 1700000000000, "a"]),
        ("relevance", [3, -9223372036854775808, "a"]),  # undated assets sort with Long.MIN/MAX
        ("date", [9223372036854775807, "a"]),
        ("duration", ["-Infinity", 1700000000000, "a"]),  # assets without a duration
        ("duration", [12.5, 1700000000000, "a"]),
    ],
)
def test_cursors_of_real_sort_values_round_trip_under_their_own_key_only(sort: str, values: list[Any]) -> None:
    p = SearchParams(q="kỳ họp", sort=sort)  # type: ignore[arg-type]
    cursor = encode_cursor(p, values, KEY)
    assert decode_cursor(p, cursor, KEY) == tuple(values)
    with pytest.raises(CursorError):
        decode_cursor(p, cursor, b"another-key")


def test_a_forged_cursor_through_the_parameters_is_a_bilingual_400() -> None:
    p = SearchParams(q="a", sort="date")
    with pytest.raises(UserError) as err:
        parse_search(
            q="a",
            filters=Filters(),
            sort="date",
            order=None,
            size=20,
            offset=0,
            cursor=_unsigned(p, ["abc", "zzz"]),
            facets=None,
            cursor_key=KEY,
        )
    body = err.value.body()["error"]
    assert err.value.status == 400 and body["code"] == "invalid_cursor" and body["message"] and body["message_en"]


def test_a_search_after_page_replaces_from() -> None:
    body = build_search_body(SearchParams(search_after=(1.5, 17, "a")), visible=None)
    assert body["search_after"] == [1.5, 17, "a"] and "from" not in body


def test_unknown_codes_are_rejected_with_a_vietnamese_message_first() -> None:
    with pytest.raises(UserError) as err:
        parse_filters(activity_type=["ky-hop,hop-bao"])
    body = err.value.body()["error"]
    assert err.value.status == 422 and body["code"] == "unknown_activity_type"
    assert "hop-bao" in body["message"] and "Giá trị không tồn tại" in body["message"]
    assert "Unknown activity_type" in body["message_en"]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"date_from": date(2024, 2, 1), "date_to": date(2024, 1, 1)}, "invalid_date_range"),
        ({"duration_min": 60.0, "duration_max": 10.0}, "invalid_duration_range"),
        ({"term": ["2099-2104"]}, "unknown_term"),
        ({"kind": ["film"]}, "unknown_kind"),
    ],
)
def test_bad_filter_values_get_clear_errors(kwargs: dict, code: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(UserError) as err:
        parse_filters(**kwargs)
    assert err.value.body()["error"]["code"] == code


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"height_min": 1099511627776}, "invalid_height"),
        ({"height_max": 100_001}, "invalid_height"),
        ({"duration_min": float("inf")}, "invalid_duration"),
        ({"duration_max": float("nan")}, "invalid_duration"),
        ({"duration_max": 1e7}, "invalid_duration"),
        ({"duration_min": -1.0}, "invalid_duration"),
        ({"date_from": date(1, 1, 1)}, "invalid_date"),
        ({"date_to": date(9999, 12, 31)}, "invalid_date"),
        ({"date_from": date(1944, 12, 31)}, "invalid_date"),
    ],
)
def test_numbers_and_dates_outside_what_the_archive_can_hold_are_refused_in_both_languages(
    kwargs: dict[str, Any], code: str
) -> None:
    with pytest.raises(UserError) as err:
        parse_filters(**kwargs)
    body = err.value.body()["error"]
    assert err.value.status == 422 and body["code"] == code and body["message"] != body["message_en"]


def test_the_allowed_ranges_end_exactly_at_their_limits() -> None:
    edges: dict[str, Any] = dict(
        height_min=0,
        height_max=100_000,
        duration_min=0.0,
        duration_max=1e6,
        date_from=date(1945, 1, 1),
        date_to=date(2100, 12, 31),
    )
    f = parse_filters(**edges)
    assert (f.height_max, f.duration_max, f.date_from, f.date_to) == (
        100_000,
        1e6,
        date(1945, 1, 1),
        date(2100, 12, 31),
    )
    beyond = dict(height_max=100_001, duration_max=1_000_000.5, date_to=date(2101, 1, 1))
    for name, value in beyond.items():
        with pytest.raises(UserError):
            parse_filters(**{**edges, name: value})


def test_a_filter_value_too_long_to_be_indexed_matches_nothing() -> None:
    [clause] = filter_clauses(Filters(person=("x" * 40_000,)))
    assert clause == {"bool": {"must_not": {"match_all": {}}}}
    [clause] = filter_clauses(Filters(person=("x" * 40_000, "Trần Minh Lực")))
    assert clause == {"terms": {"people": ["Trần Minh Lực"]}}


def test_highlighting_never_analyses_more_than_the_searchable_length_of_a_field() -> None:
    for body in (
        build_search_body(SearchParams(q="kỳ họp"), visible=None),
        more_like_this_body("a1", ["ky hop"], Filters(), 5, visible=None),
    ):
        assert body["highlight"]["max_analyzed_offset"] == MAX_SEARCHABLE_CHARS


def _visible(highlight: str) -> str:
    return html.unescape(highlight.replace("<em>", "").replace("</em>", ""))


def test_a_highlight_in_a_long_field_is_a_short_window_around_the_first_match() -> None:
    original = "Đại biểu phát biểu. " * 25_000 + "Tiếp xúc cử tri <Phước Dinh>. " + "Kết thúc. " * 10_000
    folded = fold(original)
    at = folded.index("cu tri")
    marked = f"{folded[:at]}{HL_PRE}cu tri{HL_POST}{folded[at + 6 :]}"
    shown = map_highlight(original, marked)
    assert len(_visible(shown)) <= HIGHLIGHT_MAX_CHARS + 2  # the text and two "…"
    assert "<em>cử tri</em> &lt;Phước Dinh&gt;" in shown
    assert shown.startswith("…") and shown.endswith("…")


def test_a_highlight_cut_in_a_long_field_never_leaves_a_mark_open() -> None:
    original = "Tiếp xúc cử tri " * 1_000
    folded = fold(original)
    marked = folded.replace("cu tri", f"{HL_PRE}cu tri{HL_POST}")
    shown = map_highlight(original, marked)
    assert shown.startswith("Tiếp xúc <em>cử tri</em>") and shown.endswith("…")
    assert shown.count("<em>") == shown.count("</em>") and len(_visible(shown)) <= HIGHLIGHT_MAX_CHARS + 1


def test_bad_search_parameters_get_clear_errors() -> None:
    f = Filters()
    cases = [
        (dict(sort="popularity"), "invalid_sort"),
        (dict(order="up"), "invalid_order"),
        (dict(offset=9990, size=20), "offset_too_deep"),
        (dict(cursor="garbage"), "invalid_cursor"),
        (dict(facets=["colour"]), "unknown_facets"),
    ]
    for overrides, code in cases:
        kwargs = dict(q="a", filters=f, sort=None, order=None, size=20, offset=0, cursor=None, facets=None)
        kwargs.update(overrides)
        with pytest.raises(UserError) as err:
            parse_search(**kwargs)  # type: ignore[arg-type]
        assert err.value.body()["error"]["code"] == code, overrides
    with pytest.raises(UserError):
        parse_group("week")


def test_sort_defaults_to_relevance_with_words_and_to_date_without() -> None:
    base = dict(filters=Filters(), sort=None, order=None, size=20, offset=0, cursor=None, facets=None)
    assert parse_search(q="kỳ họp", **base).sort == "relevance"  # type: ignore[arg-type]
    assert parse_search(q="", **base).sort == "date"  # type: ignore[arg-type]


def test_highlights_are_mapped_back_onto_the_original_vietnamese_and_escaped() -> None:
    original = "Tiếp xúc cử tri <Phước Dinh>"
    folded = fold(original)
    marked = folded.replace("cu tri", f"{HL_PRE}cu tri{HL_POST}")
    assert map_highlight(original, marked) == "Tiếp xúc <em>cử tri</em> &lt;Phước Dinh&gt;"


def test_a_hit_hides_bookkeeping_and_folded_fields() -> None:
    hit = {
        "_score": 2.0,
        "_source": {"asset_id": "a", "title": "Kỳ họp", "title_folded": "ky hop", "event_sequences": [1, 2]},
        "highlight": {"title_folded": [f"{HL_PRE}ky{HL_POST} hop"]},
    }
    shaped = shape_hit(hit)
    assert shaped["highlight"]["title"] == "<em>Kỳ</em> họp"
    assert "event_sequences" not in shaped and "title_folded" not in shaped


def test_facet_rows_carry_vietnamese_labels_for_activity_types() -> None:
    aggs = {
        "activity_type": {"values": {"buckets": [{"key": "ky-hop", "doc_count": 3}]}},
        "person": {"nested": {"values": {"buckets": [{"key": "Trần Minh Lực", "doc_count": 1}]}}},
    }
    shaped = shape_facets(aggs)
    assert shaped["activity_type"] == [{"value": "ky-hop", "count": 3, "label": "Kỳ họp, phiên họp Thường trực"}]
    assert shaped["person"] == [{"value": "Trần Minh Lực", "count": 1}]


def test_more_like_this_excludes_the_asset_itself_and_uses_folded_fields() -> None:
    body = more_like_this_body("a1", ["ky hop thu bay"], Filters(kind=("video",)), 5, visible=None)
    assert body["query"]["bool"]["must_not"] == [{"ids": {"values": ["a1"]}}]
    mlt = body["query"]["bool"]["must"][0]["more_like_this"]
    assert all(f.endswith("_folded") for f in mlt["fields"])


def test_statistics_group_months_in_local_time_and_shape_into_chart_rows() -> None:
    body = stats_body(Filters(), "month", visible=None)
    assert body["aggs"]["periods"]["date_histogram"]["time_zone"] == "Asia/Ho_Chi_Minh"
    cell = {"by_type": {"buckets": [{"key": "ky-hop", "doc_count": 2, "duration": {"value": 90.0}}]}}
    response = {
        "hits": {"total": {"value": 3}},
        "aggregations": {
            "periods": {"buckets": [{"key": 0, "key_as_string": "2023-05", "doc_count": 2, **cell}]},
            "undated": {"doc_count": 1, "by_type": {"buckets": []}},
            "duration": {"value": 90.0},
        },
    }
    shaped = shape_stats(response, "month")
    assert shaped["periods"] == [
        {
            "period": "2023-05",
            "count": 2,
            "duration_s": 90.0,
            "by_activity_type": [
                {"activity_type": "ky-hop", "label": "Kỳ họp, phiên họp Thường trực", "count": 2, "duration_s": 90.0}
            ],
        }
    ]
    assert shaped["undated"]["count"] == 1 and shaped["total"] == 3
