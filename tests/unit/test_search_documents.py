"""The projection's document builder keeps every document indexable, whatever the
events hold: keyword limits in the mapping, bounded folded copies, recording dates
inside the calendar the index can sort, numbers its fields can hold — no servers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.search.documents import ASSET_MAPPINGS, MAX_SEARCHABLE_CHARS, apply_event
from shared.events.envelope import EventEnvelope, new_event
from shared.events.media import AssetProbedV1
from shared.events.models import AssetKind
from shared.events.tagging import AssetActivityAssignedV1, AssetTaggedV1, PersonTag
from shared.text import fold
from tests.search_corpus import ingested

LONG_TEXT = "Đại biểu chất vấn về đơn thư khiếu nại. " * 30_000  # 1.2 MB
END_OF_TIME = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-12)))


def _keywords(props: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in props.items():
        if spec.get("type") == "keyword":
            yield f"{prefix}{name}", spec
        yield from _keywords(spec.get("properties") or {}, f"{prefix}{name}.")
        yield from _keywords(spec.get("fields") or {}, f"{prefix}{name}.")


def stored(event: EventEnvelope, **raw: Any) -> EventEnvelope:
    """``event`` as the log may hold it: payload fields as an older service appended them,
    before today's input contract (which checks events when they are written, not read)."""
    return event.model_copy(update={"payload": {**event.payload, **raw}})


def _fold_all(events: list[EventEnvelope]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for event in events:
        doc = apply_event(doc, event)
    return doc


def _probed(asset_id: str, **fields: Any) -> EventEnvelope:
    payload = AssetProbedV1(kind=AssetKind.VIDEO, container="mov,mp4,m4a,3gp,3g2,mj2", **fields)
    return new_event(payload, aggregate_id=asset_id, actor="transcoder")


def test_every_indexed_keyword_field_has_a_length_limit_that_lucene_can_take() -> None:
    keywords = dict(_keywords(ASSET_MAPPINGS["properties"]))
    assert {"source_org", "people", "organisations", "camera", "original_filename"} <= set(keywords)
    for path, spec in keywords.items():
        if spec.get("index") is False and spec.get("doc_values") is False:
            continue  # only kept in _source
        # Lucene refuses terms over 32 766 bytes: 8 191 characters of up to 4 bytes each.
        assert 0 < spec.get("ignore_above", 10**9) <= 8191, path


@pytest.mark.parametrize(
    "given",
    ["0001-01-01T00:00:00+07:06", "9999-12-31T23:00:00-12:00", "1066-10-14T09:00:00Z"],
    ids=["year-one-local", "9999-west-of-utc", "before-any-recording"],
)
def test_an_upload_dated_outside_the_indexable_calendar_is_undated_and_keeps_the_date_as_given(given: str) -> None:
    doc = apply_event({}, stored(ingested("d1", "Kỳ họp"), recorded_at=given))
    assert doc["recorded_at"] is None and doc.get("year") is None and doc.get("term") is None
    assert doc["recorded_at_given"] == given
    assert "recorded_at_source" not in doc


def test_an_upload_date_without_a_time_zone_is_read_as_a_local_date() -> None:
    doc = apply_event({}, stored(ingested("d2", "Kỳ họp"), recorded_at="2023-06-20T08:00:00"))
    assert doc["recorded_at"] == "2023-06-20T08:00:00+07:00"
    assert (doc["year"], doc["term"], doc.get("recorded_at_given")) == (2023, "2021-2026", None)


def test_a_camera_date_outside_the_calendar_does_not_date_the_asset_and_a_later_good_one_does() -> None:
    doc = _fold_all([ingested("d3", "Kỳ họp"), _probed("d3", recorded_at=END_OF_TIME)])
    assert doc.get("recorded_at") is None and doc.get("recorded_at_source") is None
    good = datetime(2022, 3, 4, 5, tzinfo=UTC)
    doc = apply_event(doc, _probed("d3", recorded_at=good))
    assert doc["recorded_at"] == good.isoformat() and doc["recorded_at_source"] == "metadata"


def test_folded_copies_are_cut_to_the_searchable_length_and_still_line_up_with_the_original() -> None:
    asset = "t1"
    tagged = AssetTaggedV1(
        activity_type="khac",
        activity_type_source="classifier",
        proposed_activity_type="khac",
        confidence=0.1,
        vocabulary_version="test",
        people=(PersonTag(name=LONG_TEXT[:40_000]), PersonTag(name=LONG_TEXT[:30_000])),
        ocr_text=LONG_TEXT,
    )
    doc = _fold_all(
        [
            ingested(asset, "Kỳ họp"),
            new_event(tagged, aggregate_id=asset, actor="tagger"),
            new_event(
                AssetActivityAssignedV1(activity_id="v1", activity_title=LONG_TEXT), aggregate_id=asset, actor="luu-tru"
            ),
        ]
    )
    for name in ("ocr_text", "activity_title", "people_text"):
        original = doc[name]
        assert len(original) > MAX_SEARCHABLE_CHARS, name  # _source keeps the text as given
        assert doc[f"{name}_folded"] == fold(original)[:MAX_SEARCHABLE_CHARS], name


def test_a_document_written_before_the_limits_is_brought_within_them_by_its_next_event() -> None:
    old = {**apply_event({}, ingested("t2", "Kỳ họp")), "title": LONG_TEXT, "title_folded": fold(LONG_TEXT)}
    old.update(caption=LONG_TEXT, caption_folded=fold(LONG_TEXT))
    doc = apply_event(old, _probed("t2", width=1920, height=1080))
    assert len(doc["title_folded"]) == len(doc["caption_folded"]) == MAX_SEARCHABLE_CHARS


@pytest.mark.parametrize(
    ("fields", "left_out"),
    [
        ({"width": 2**40, "height": 2**40}, ("width", "height")),
        ({"duration_s": 1e39, "frame_rate": float("inf")}, ("duration_s", "frame_rate")),
        ({"bitrate": 2**64}, ("bitrate",)),
    ],
)
def test_numbers_no_index_field_can_hold_are_left_out_of_the_document(
    fields: dict[str, Any], left_out: tuple[str, ...]
) -> None:
    doc = _fold_all([ingested("n1", "Kỳ họp"), _probed("n1", **fields)])
    assert all(doc[name] is None for name in left_out)
    assert doc["kind"] == "video"


def test_an_upload_claiming_a_size_no_index_field_can_hold_is_left_without_it() -> None:
    doc = apply_event({}, ingested("n2", "Kỳ họp", height=2**31))
    assert doc["height"] is None and doc["width"] == 1280
