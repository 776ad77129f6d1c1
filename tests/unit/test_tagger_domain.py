"""Tagger domain: term from the local recording date, proposals, activity
suggestion, and the rule that archivists' edits always win over automatic tags."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from services.search.documents import apply_event
from services.tagger.domain import propose_tags, suggest_activity
from services.tagger.ocr import clean_ocr_text, merge_texts
from shared.activities import Activities, Activity
from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import AssetIngestedV1, AssetKind
from shared.events.tagging import (
    ActivityCreatedV1,
    ActivityMergedV1,
    AssetActivityAssignedV1,
    AssetMetadataEditedV1,
    AssetTaggedV1,
)
from shared.eventstore import StoredEvent
from shared.people import bundled_registry
from shared.tags import fold_tag_event
from shared.taxonomy import term_for_instant

ASSET = "a" + "1" * 32


def _ingested(
    title: str, caption: str = "", *, activity_type: str = "khac", recorded_at: datetime | None = None
) -> AssetIngestedV1:
    return AssetIngestedV1(
        sha256="f" * 64,
        size_bytes=10,
        kind=AssetKind.PHOTO,
        media_format="JPEG",
        mime_type="image/jpeg",
        bucket="b",
        object_key="k",
        title=title,
        caption=caption,
        activity_type=activity_type,
        recorded_at=recorded_at,
    )


def _env(payload: Any, actor: str = "phong-vien", aggregate_id: str = ASSET) -> EventEnvelope:
    return new_event(payload, aggregate_id=aggregate_id, actor=actor)


def _fold(events: list[EventEnvelope]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for event in events:
        doc = fold_tag_event(doc, event)
    return doc


def test_the_term_follows_the_local_date_not_the_utc_date() -> None:
    # 30 June 2021 18:00 UTC is 1 July 01:00 in Vietnam: the new term has begun.
    assert term_for_instant(datetime(2021, 6, 30, 18, 0, tzinfo=UTC)).code == "2021-2026"  # type: ignore[union-attr]
    assert term_for_instant(datetime(2021, 6, 30, 16, 0, tzinfo=UTC)).code == "2016-2021"  # type: ignore[union-attr]


def test_a_proposal_carries_type_confidence_phrases_term_people_and_organisations() -> None:
    asset = _ingested(
        "Tiếp xúc cử tri trước kỳ họp thứ 7",
        "Đồng chí Đặng Thanh Sơn, Phó Chủ tịch Thường trực HĐND tỉnh phát biểu tại buổi tiếp xúc "
        "cử tri; Ủy ban MTTQ xã và phóng viên Báo Ninh Thuận cùng dự.",
        recorded_at=datetime(2023, 11, 20, 8, 0, tzinfo=UTC),
    )
    tags = propose_tags(asset, registry=bundled_registry())
    assert (tags.activity_type, tags.activity_type_source) == ("tiep-xuc-cu-tri", "classifier")
    assert "tiếp xúc cử tri" in [m.phrase for m in tags.matched_phrases] and tags.confidence > 0.5
    assert (tags.term, tags.term_source) == ("2021-2026", "recorded_at")
    assert [p.person_id for p in tags.people] == ["p-dang-thanh-son"]
    assert set(tags.organisations) == {"Thường trực HĐND", "Báo (tỉnh)", "MTTQ"}


def test_the_uploaders_choice_stays_the_automatic_type_and_the_proposal_is_kept_beside_it() -> None:
    tags = propose_tags(_ingested("Phiên chất vấn", activity_type="nghi-quyet"), registry=bundled_registry())
    assert (tags.activity_type, tags.activity_type_source, tags.proposed_activity_type) == (
        "nghi-quyet",
        "uploader",
        "ky-hop",
    )


def test_without_a_recording_date_the_term_comes_from_the_text_or_stays_empty() -> None:
    from_text = propose_tags(_ingested("Tập huấn đại biểu HĐND nhiệm kỳ 2021 - 2026"), registry=bundled_registry())
    assert (from_text.term, from_text.term_source) == ("2021-2026", "text")
    nothing = propose_tags(_ingested("Ảnh tư liệu"), registry=bundled_registry())
    assert (nothing.term, nothing.term_source) == (None, "none")


def test_ocr_text_decides_the_type_when_the_caption_says_nothing() -> None:
    tags = propose_tags(_ingested("IMG_0412"), ocr_text="KỲ HỌP THỨ BẢY HĐND TỈNH KHÓA XI", registry=bundled_registry())
    assert tags.activity_type == "ky-hop"


def test_the_activity_of_the_same_day_with_matching_words_is_suggested() -> None:
    session = Activity("v1", "Kỳ họp thứ 7 HĐND tỉnh khóa XI", "ky-hop", date(2023, 7, 10), date(2023, 7, 12))
    visit = Activity("v2", "Thăm Bộ đội Biên phòng", "tham-lam-viec", date(2023, 7, 11))
    text = "Phiên chất vấn tại Kỳ họp thứ 7"
    assert suggest_activity([session, visit], date(2023, 7, 11), text, "ky-hop") == "v1"
    assert suggest_activity([session, visit], date(2023, 8, 1), text, "ky-hop") is None
    assert suggest_activity([session], None, text, "ky-hop") is None


def test_merged_activities_resolve_to_the_survivor_and_their_assets_are_tracked() -> None:
    acts = Activities()
    created = [
        _env(ActivityCreatedV1(title=t, activity_type="ky-hop", start_date=date(2023, 7, 10)), aggregate_id=i)
        for i, t in (("v1", "Kỳ họp thứ 7"), ("v2", "Kỳ họp 7 (trùng)"))
    ]
    events = [
        *created,
        _env(ActivityMergedV1(into_activity_id="v1"), aggregate_id="v2"),
        _env(AssetActivityAssignedV1(activity_id="v2", activity_title="Kỳ họp 7 (trùng)")),
    ]
    for seq, event in enumerate(events, 1):
        acts.apply(StoredEvent(seq, event.subject, event))
    assert acts.resolve("v2").activity_id == "v1"  # type: ignore[union-attr]
    assert [a.activity_id for a in acts.live()] == ["v1"]
    assert acts.assets_of("v2") == [ASSET]


def _tagged(activity_type: str, people: tuple[str, ...] = ()) -> AssetTaggedV1:
    from shared.events.tagging import PersonTag

    return AssetTaggedV1(
        activity_type=activity_type,
        activity_type_source="classifier",
        proposed_activity_type=activity_type,
        confidence=0.8,
        term="2021-2026",
        term_source="recorded_at",
        people=tuple(PersonTag(name=n) for n in people),
        vocabulary_version="test",
    )


def test_a_manual_edit_wins_over_automatic_tags_also_after_a_retag_and_a_replay() -> None:
    events = [
        _env(_ingested("Ảnh hội nghị", recorded_at=datetime(2023, 7, 11, tzinfo=UTC))),
        _env(_tagged("khac", ("Nguyễn Văn A",)), actor="tagger"),
        _env(
            AssetMetadataEditedV1(activity_type="ky-hop", term="2016-2021", people=("Nguyễn Văn B",)), actor="luu-tru"
        ),
        _env(_tagged("tham-lam-viec", ("Nguyễn Văn C",)), actor="tagger"),  # a later re-tag
    ]
    doc = _fold(events)
    assert (doc["activity_type"], doc["term"], doc["people"]) == ("ky-hop", "2016-2021", ["Nguyễn Văn B"])
    assert doc["manual_fields"] == ["activity_type", "people", "term"]
    assert doc["auto"]["activity_type"] == "tham-lam-viec" and doc["edited_by"] == "luu-tru"
    assert _fold(events) == doc  # a replay gives the same answer


def test_resetting_a_field_hands_it_back_to_the_automatic_value() -> None:
    events = [
        _env(_ingested("Ảnh")),
        _env(_tagged("ky-hop")),
        _env(AssetMetadataEditedV1(activity_type="khac")),
        _env(AssetMetadataEditedV1(reset=("activity_type",))),
    ]
    doc = _fold(events)
    assert doc["activity_type"] == "ky-hop" and doc["manual_fields"] == []


def test_the_search_document_carries_tags_people_ocr_text_folded_and_the_activity() -> None:
    tagged = AssetTaggedV1(
        activity_type="ky-hop",
        activity_type_source="classifier",
        proposed_activity_type="ky-hop",
        confidence=0.9,
        vocabulary_version="t",
        ocr_text="KỲ HỌP THỨ BẢY",
        organisations=("Thường trực HĐND",),
    )
    doc: dict[str, Any] = {}
    for event in (
        _env(_ingested("Ảnh")),
        _env(tagged),
        _env(AssetActivityAssignedV1(activity_id="v1", activity_title="Kỳ họp thứ 7")),
    ):
        doc = apply_event(doc, event)
    assert doc["activity_type"] == "ky-hop" and doc["activity_label"].startswith("Kỳ họp")
    assert doc["ocr_text_folded"] == "ky hop thu bay"
    assert doc["organisations"] == ["Thường trực HĐND"]
    assert (doc["activity_id"], doc["activity_title_folded"]) == ("v1", "ky hop thu 7")


def test_ocr_noise_lines_are_dropped_and_repeated_banner_lines_kept_once() -> None:
    assert clean_ocr_text("KỲ HỌP THỨ BẢY\n~~ |/ ..\n\nNHIỆM KỲ 2021 - 2026\nl1") == (
        "KỲ HỌP THỨ BẢY\nNHIỆM KỲ 2021 - 2026"
    )
    assert merge_texts(["A B C\nXYZ abc", "A B C"]) == "A B C\nXYZ abc"
