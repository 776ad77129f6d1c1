from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.domain import validate_metadata
from shared.http import UserError


def test_valid_metadata_is_cleaned_and_dates_default_to_vietnam_time() -> None:
    meta = validate_metadata(" Kỳ họp  thứ 7 ", "Chất vấn", "2023-07-12", "ky-hop", "Báo Ninh Thuận")
    assert meta.title == "Kỳ họp thứ 7"
    assert meta.recorded_at is not None
    assert meta.recorded_at.utcoffset() == timedelta(hours=7)
    assert meta.recorded_at.date().isoformat() == "2023-07-12"


def test_explicit_timezones_are_kept() -> None:
    meta = validate_metadata("x", None, "2023-07-12T01:30:00+00:00", "khac", None)
    assert meta.recorded_at == datetime(2023, 7, 12, 1, 30, tzinfo=UTC)


def test_every_problem_is_reported_at_once_in_vietnamese_and_english() -> None:
    with pytest.raises(UserError) as caught:
        validate_metadata("", None, "12/07/2023", "hop-hanh", None)
    err = caught.value
    assert err.status == 422
    fields = {p["field"] for p in err.extra["problems"]}
    assert fields == {"title", "activity_type", "recorded_at"}
    assert "Thiếu tiêu đề" in err.message_vi and "Loại hoạt động không tồn tại" in err.message_vi
    assert "title is required" in err.message_en and "Unknown activity type" in err.message_en


def test_missing_activity_type_is_an_error() -> None:
    with pytest.raises(UserError, match="activity_type is required"):
        validate_metadata("Tiêu đề", None, None, None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [("title", "Ảnh\u202egpj.exe"), ("title", "\u200b\u200b"), ("caption", "a\x00b"), ("source_org", "Đài " * 100)],
)
def test_upload_text_follows_the_input_contract_field_by_field(field: str, value: str) -> None:
    fields = {"title": "Ảnh", "caption": None, "source_org": None, field: value}
    with pytest.raises(UserError) as caught:
        validate_metadata(fields["title"], fields["caption"], None, "khac", fields["source_org"])
    [problem] = caught.value.extra["problems"]
    assert problem["field"] == field and problem["message"] and problem["message_en"]


@pytest.mark.parametrize("when", ["0001-01-01", "9999-12-31T23:00:00-12:00", "1944-12-31", "2101-01-01"])
def test_a_recording_date_outside_1945_to_2100_is_refused(when: str) -> None:
    with pytest.raises(UserError) as caught:
        validate_metadata("Ảnh", None, when, "khac", None)
    assert caught.value.extra["problems"][0]["field"] == "recorded_at"
