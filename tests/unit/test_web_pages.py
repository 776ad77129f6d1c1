"""The web pages' pure parts: Vietnamese dates and numbers, safe redirects after sign-in,
the search page's paging (offsets, then the API's cursor), CSRF signatures."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from services.search.delegates import NOTHING_COUNTED, ReportParams, shape_report
from services.web import i18n
from services.web.api import MAX_OFFSET, _link, _safe_next, _search_params, may_correct, page
from services.web.people import default_term
from services.web.reports import compared_years, years_with_material
from services.web.session import csrf_signature
from shared import taxonomy
from shared.auth import Principal, Role
from shared.delegates import Delegate
from shared.settings import Settings


def _request(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/search", "query_string": query.encode(), "headers": []})


def test_dates_are_written_day_first_in_vietnam_time() -> None:
    # 18:30 UTC on 31 Dec is already 1 January in Hà Nội.
    assert i18n.vn_date("2023-12-31T18:30:00+00:00") == "01/01/2024"
    assert i18n.vn_date(datetime(2024, 3, 5, 1, 2, tzinfo=UTC), with_time=True) == "05/03/2024 08:02"
    assert i18n.vn_date("2024-07-05") == "05/07/2024"
    assert i18n.vn_date(None) == "" and i18n.vn_date("không phải ngày") == "không phải ngày"


def test_numbers_use_vietnamese_separators_and_english_ones_in_english() -> None:
    assert i18n.number(1234567) == "1.234.567"
    assert i18n.number(1234.5, decimals=1) == "1.234,5"
    assert i18n.number(1234.5, "en", 1) == "1,234.5"
    assert i18n.size(43008) == "42,0 KB"
    assert i18n.duration(3725) == "1:02:05" and i18n.duration(65) == "1:05"


def test_after_signing_in_only_a_path_of_this_site_is_followed() -> None:
    assert _safe_next("/assets/a1?x=1") == "/assets/a1?x=1"
    for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil", "javascript:alert(1)", None, ""):
        assert _safe_next(hostile) == "/"


def test_the_search_page_pages_by_offset_then_by_the_apis_cursor() -> None:
    params, shown = _search_params(_request("q=ky+hop&kind=video&kind=photo&offset=40"))
    assert params == {"q": "ky hop", "kind": ["video", "photo"], "offset": 40} and shown == 40
    params, shown = _search_params(_request("q=x&offset=99999999"))
    assert params["offset"] == MAX_OFFSET  # never past what the API pages by offset
    params, shown = _search_params(_request("q=x&cursor=abc&at=10020&offset=5"))
    assert params == {"q": "x", "cursor": "abc"} and shown == 10020
    params, _ = _search_params(_request("year=2023"))
    assert (params["date_from"], params["date_to"]) == ("2023-01-01", "2023-12-31")


def test_a_new_filter_starts_again_at_the_first_page() -> None:
    link = _link(_request("q=a&kind=video&cursor=abc&at=20&offset=20"), kind=["video", "audio"])
    assert link == "/search?q=a&kind=video&kind=audio"


def test_csrf_tokens_are_signed_with_the_web_key() -> None:
    a, b = Settings(web_secret_key="key-one"), Settings(web_secret_key="key-two")
    assert csrf_signature(a, "v" * 32) == csrf_signature(a, "v" * 32)
    assert csrf_signature(a, "v" * 32) != csrf_signature(b, "v" * 32)
    assert csrf_signature(a, "v" * 32) != csrf_signature(a, "w" * 32)


def test_the_edit_form_is_offered_to_archivists_and_to_a_broadcaster_on_their_own_unpublished_upload() -> None:
    archivist = Principal("luu-tru", "Lưu trữ", Role.LUU_TRU)
    broadcaster = Principal("phong-vien", "Phóng viên", Role.PHONG_VIEN)
    producer = Principal("bien-tap", "Biên tập", Role.BIEN_TAP)
    mine, theirs = {"ingested_by": "phong-vien"}, {"ingested_by": "phong-vien-2"}
    unpublished, published = {"published": False}, {"published": True}
    assert may_correct(archivist, theirs, published)
    assert may_correct(broadcaster, mine, unpublished)
    assert not may_correct(broadcaster, mine, published)
    assert not may_correct(broadcaster, theirs, unpublished)
    assert not may_correct(producer, {"ingested_by": "bien-tap"}, unpublished)


def _stats_request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/stats", "query_string": query, "headers": []})


def test_two_periods_compared_default_to_the_latest_year_with_material_and_the_one_before() -> None:
    years = years_with_material([{"period": "2019"}, {"period": "2021"}, {"period": "khác"}, {"period": "3000"}])
    assert years == [2019, 2021]
    assert compared_years(_stats_request(b""), years) == (2021, 2020)
    assert compared_years(_stats_request(b""), []) is None  # nothing yet: the API's default (this year and last)
    assert compared_years(_stats_request(b"current_year=2019&previous_year=2015"), years) == (2019, 2015)
    assert compared_years(_stats_request(b"current_year=99999&previous_year=-1"), years) == (2021, 2020)


def test_the_people_and_delegates_pages_default_to_the_term_of_today_in_vietnam() -> None:
    def code(moment: datetime) -> str | None:
        term = taxonomy.current_term(moment)
        return term.code if term else None

    assert code(datetime(2024, 5, 1, tzinfo=UTC)) == "2021-2026"  # not the last term listed
    assert code(datetime(2026, 6, 30, 16, 59, tzinfo=UTC)) == "2021-2026"
    assert code(datetime(2026, 6, 30, 17, 0, tzinfo=UTC)) == "2026-2031"  # already 1 July in Hà Nội
    assert code(datetime(2045, 1, 1, tzinfo=UTC)) == "2026-2031"  # after the last: the latest started
    assert code(datetime(2000, 1, 1, tzinfo=UTC)) is None  # before any


def test_between_terms_and_with_a_future_term_configured_the_latest_started_term_is_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listed = (
        taxonomy.Term("2016-2021", "Nhiệm kỳ 2016 - 2021", date(2016, 7, 1), date(2021, 6, 30)),
        taxonomy.Term("2021-2026", "Nhiệm kỳ 2021 - 2026", date(2021, 7, 1), date(2026, 3, 31)),
        taxonomy.Term("2099-2104", "Nhiệm kỳ 2099 - 2104", date(2099, 7, 1), date(2104, 6, 30)),  # not started
    )
    monkeypatch.setattr(taxonomy, "terms", lambda: listed)
    between = taxonomy.current_term(datetime(2026, 5, 1, tzinfo=UTC))  # after 2021-2026 ended, before the next
    assert between is not None and between.code == "2021-2026"
    assert default_term() == "2021-2026"  # today, with the last listed term not started yet


def _delegates_page(delegates: list[Delegate]) -> str:
    app = SimpleNamespace(state=SimpleNamespace(settings=Settings(web_secret_key="key-one")))
    request = Request(
        {"type": "http", "method": "GET", "path": "/delegates", "query_string": b"", "headers": [], "app": app}
    )
    report = shape_report(ReportParams(term="2026-2031"), delegates, [], NOTHING_COUNTED)
    return bytes(page(request, "delegates.html", report=report, term="2026-2031", problem=None).body).decode()


def test_the_delegate_checklist_of_a_term_without_delegates_says_there_is_nothing_to_check_yet() -> None:
    # The page opens on the current term, which has no delegates at its start: no target is met.
    empty = _delegates_page([])
    assert "Chưa có đại biểu nào trong sổ của nhiệm kỳ này: chưa có gì để kiểm tra." in empty
    assert "✓" not in empty and "Mọi đại biểu đã phát biểu" not in empty
    silent = _delegates_page([Delegate("d1", "p1", "Võ Minh Tuấn", "2026-2031", group="Tổ A")])
    assert "✗ Đại biểu chưa phát biểu" in silent and "chưa có gì để kiểm tra" not in silent
