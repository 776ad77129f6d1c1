"""The input contract (shared/fields.py): what a user may write is bounded and
clean, refused with a reason in both languages; what was stored before the
contract still reads (issue 10, findings 2, 7 and 10)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import shared.text as text_module
from services.catalogue.commands import CreateActivity, EditMetadata, RequestRetag
from shared.events.envelope import new_event
from shared.events.models import AssetIngestedV1, AssetKind
from shared.events.tagging import PersonRegisteredV1
from shared.fields import text_problem
from shared.text import check_text, coerce_text

HOSTILE_TITLES = {
    "control characters": "Kỳ họp\x00\x07\x1b",
    "a right-to-left override": "Ảnh\u202egpj.exe",
    "only zero-width characters": "\u200b\u200c\u200d\ufeff",
    "only combining marks": "\u0301\u0300\u0323",
    "only spaces": "   \t ",
    "a lone surrogate": "Ảnh \ud800",
}


@pytest.mark.parametrize("label", sorted(HOSTILE_TITLES))
def test_a_title_with_nothing_readable_or_with_hidden_controls_is_refused(label: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EditMetadata(title=HOSTILE_TITLES[label])
    problem = text_problem(dict(caught.value.errors()[0]))
    assert problem is not None and problem.message_vi and problem.message_en, label


def test_text_is_stored_nfc_with_whitespace_collapsed_and_invisible_characters_removed() -> None:
    nfd = "Tie\u0302\u0301p xu\u0301c  cu\u031b\u0309\n tri\u200b"
    assert check_text(nfd, 100) == "Tiếp xúc cử tri"


def test_every_text_field_has_a_limit_and_says_so_in_both_languages() -> None:
    with pytest.raises(ValidationError) as caught:
        CreateActivity(title="Kỳ họp", activity_type="ky-hop", start_date=date(2024, 1, 1), place="x" * 5_000_000)
    problem = text_problem(dict(caught.value.errors()[0]))
    assert problem is not None and problem.code == "too_long" and "300" in problem.message_vi
    with pytest.raises(ValidationError):
        RequestRetag(reason="lý do " * 200_000)
    with pytest.raises(ValidationError):
        EditMetadata(people=["Nguyễn Văn A" * 1_000])
    with pytest.raises(ValidationError):
        EditMetadata(people=[f"Người {i}" for i in range(101)])


@pytest.mark.parametrize("day", [date(1, 1, 1), date(1944, 12, 31), date(2101, 1, 1), date(9999, 12, 31)])
def test_dates_outside_1945_to_2100_are_refused(day: date) -> None:
    with pytest.raises(ValidationError) as caught:
        CreateActivity(title="Kỳ họp", activity_type="ky-hop", start_date=day)
    assert text_problem(dict(caught.value.errors()[0])).code == "date_out_of_range"  # type: ignore[union-attr]


def _ingested(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sha256": "1" * 64,
        "size_bytes": 10,
        "kind": AssetKind.PHOTO,
        "media_format": "JPEG",
        "mime_type": "image/jpeg",
        "bucket": "b",
        "object_key": "k",
        "title": "Ảnh",
        "activity_type": "khac",
    }
    return {**base, **fields}


def test_an_event_stored_before_the_contract_still_reads_brought_within_it() -> None:
    good = new_event(AssetIngestedV1.model_validate(_ingested()), aggregate_id="a1", actor="x")
    stored = good.model_copy(
        update={
            "payload": {
                **good.payload,
                "source_org": "Đài " * 300_000,
                "title": "Kỳ họp\x07",
                "recorded_at": "0001-01-01T00:00:00+00:00",
            }
        }
    )
    read = stored.typed_payload()
    assert isinstance(read, AssetIngestedV1)
    assert len(read.source_org) == 300 and read.title == "Kỳ họp" and read.recorded_at is None


def test_writing_a_payload_outside_the_contract_is_refused_even_without_the_api() -> None:
    with pytest.raises(ValidationError):
        AssetIngestedV1.model_validate(_ingested(recorded_at=datetime(9999, 12, 31, tzinfo=UTC)))
    with pytest.raises(ValidationError):
        PersonRegisteredV1(name="   ")


def test_coercing_stored_text_drops_what_the_contract_refuses_and_cuts_at_the_limit() -> None:
    assert coerce_text("A\u202eB\x00C  D", 4) == "ABC "
    assert coerce_text(" Kỳ họp\u200b thứ\u00a0tám ", 100) == "Kỳ họp thứ tám"
    assert coerce_text("Ho\u0323p", 100) == "Họp"  # NFC
    assert coerce_text("x" * 10, 3) == "xxx"


_VIETNAMESE = "aăâbcdđeêghiklmnoôơpqrstuưvxyáàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ "


@given(
    st.text(
        alphabet=st.one_of(
            st.sampled_from(_VIETNAMESE + _VIETNAMESE.upper()),
            st.sampled_from("\u0301\u0300\u0323\u200b\u00ad\u202e\u00a0\t\n\x00\x85\u3000"),
            st.characters(),
        ),
        max_size=40,
    ),
    st.integers(min_value=0, max_value=50),
)
@settings(max_examples=500)
@example("Kỳ  họp", 50)
@example(" Kỳ họp", 50)
@example("Kỳ họp ", 50)
@example("Ho\u0323p", 50)
@example("Kỳ\u200bhọp", 50)
def test_the_fast_way_of_coercing_stored_text_gives_what_the_full_way_gives(value: str, limit: int) -> None:
    assert coerce_text(value, limit) == text_module._coerced(value, limit)
