"""Names across time: the alias table (data), query variants both ways for abbreviations and
new → old for mergers, notes for the answer, facets grouped under the current name."""

from __future__ import annotations

import pytest

from services.search.aliases import (
    ALIAS_BOOST,
    alias_notes,
    alias_table,
    current_name,
    expand_names,
    group_facets,
    parse_alias_table,
    query_variants,
    with_aliases,
)
from services.search.query import text_query


def test_the_shipped_table_has_the_2025_mergers_and_the_abbreviations_archivists_type() -> None:
    groups = {g.current.text: g for g in alias_table()}
    assert [f.text for f in groups["Khánh Hòa"].others] == ["Ninh Thuận"]
    spellings = {f.text for g in alias_table() if g.kind == "abbreviation" for f in (g.current, *g.others)}
    for short, full in [
        ("HĐND", "Hội đồng nhân dân"),
        ("UBND", "Ủy ban nhân dân"),
        ("ĐBQH", "đại biểu Quốc hội"),
        ("MTTQ", "Mặt trận Tổ quốc"),
        ("PT-TH", "Phát thanh - Truyền hình"),
        ("TXCT", "tiếp xúc cử tri"),
    ]:
        assert {short, full} <= spellings


@pytest.mark.parametrize(
    ("typed", "also"),
    [
        ("HĐND tỉnh", "Hội đồng nhân dân tỉnh"),
        ("hoi dong nhan dan tinh", "HĐND tinh"),
        ("UBND huyện", "Ủy ban nhân dân huyện"),
        ("Uỷ ban nhân dân xã", "UBND xã"),
        ("ĐBQH tiếp xúc", "đại biểu Quốc hội tiếp xúc"),
        ("mat tran to quoc", "MTTQ"),
        ("Đài PT - TH", "Đài Phát thanh - Truyền hình"),
        ("txct", "tiếp xúc cử tri"),
    ],
)
def test_an_abbreviation_and_its_full_form_find_each_other(typed: str, also: str) -> None:
    assert also in query_variants(typed)


def test_the_new_name_also_searches_the_old_ones_and_not_the_other_way() -> None:
    assert query_variants("tiếp xúc cử tri Khánh Hòa")[0] == "tiếp xúc cử tri Ninh Thuận"
    assert query_variants("Ninh Thuận") == []
    (note,) = alias_notes("Ninh Thuận")
    assert note["current"] == "Khánh Hòa" and note["also_searched"] == [] and "nay là" in note["message"]
    (note,) = alias_notes("khanh hoa")
    assert note["also_searched"] == ["Ninh Thuận"] and note["kind"] == "merged" and note["since"] == "2025-07-01"


def test_alternatives_are_extra_clauses_weighing_less_than_the_query_as_typed() -> None:
    body = with_aliases("HĐND tỉnh Khánh Hòa", text_query)
    base, *alternatives = body["bool"]["should"]
    assert base == text_query("HĐND tỉnh Khánh Hòa") and body["bool"]["minimum_should_match"] == 1
    assert alternatives and all(a["bool"]["boost"] == ALIAS_BOOST < 1 for a in alternatives)
    assert with_aliases("kỳ họp thứ bảy", text_query) == text_query("kỳ họp thứ bảy")


def test_facet_values_are_grouped_under_the_current_name_and_the_filter_expands_to_them() -> None:
    facets = {
        "organisation": [
            {"value": "HĐND tỉnh Ninh Thuận", "count": 4},
            {"value": "HĐND tỉnh Khánh Hòa", "count": 2},
            {"value": "Sở Tài nguyên và Môi trường", "count": 1},
        ],
        "term": [{"value": "2021-2026", "count": 7}],
    }
    grouped = group_facets(facets)
    first = grouped["organisation"][0]
    assert first == {
        "value": "HĐND tỉnh Khánh Hòa",
        "count": 6,
        "aliases": [{"value": "HĐND tỉnh Ninh Thuận", "count": 4}],
    }
    assert grouped["organisation"][1]["value"] == "Sở Nông nghiệp và Môi trường"
    assert grouped["term"] == facets["term"]
    assert expand_names(["HĐND tỉnh Khánh Hòa"]) == ["HĐND tỉnh Khánh Hòa", "HĐND tỉnh Ninh Thuận"]
    assert current_name("Báo Ninh Thuận") == "Báo và Phát thanh, Truyen hình Khánh Hòa".replace("Truyen", "Truyền")


def test_a_table_row_of_an_unknown_kind_is_refused_and_blank_rows_are_skipped() -> None:
    with pytest.raises(ValueError, match="unknown alias kind"):
        parse_alias_table("kind,current,former,since,note\nmoved,A B,C D,,\n")
    assert parse_alias_table("kind,current,former,since,note\nmerged,,C D,,\n") == []
