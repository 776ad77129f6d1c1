"""Publishing without servers: what each publication command decides, every refusal
(named as a sentence, bilingual), the moments it accepts, and the one visibility fold
that the index and the single-asset reads share."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.catalogue.commands import Publish, SetRestriction, Unpublish
from services.catalogue.decide import (
    AssetState,
    decide_publish,
    decide_publish_activity,
    decide_set_restriction,
    decide_unpublish,
    fold_asset,
)
from services.web.api import publication_of
from shared.activities import Activity
from shared.auth import ANONYMOUS, Principal, Role
from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import EventPayload
from shared.events.publishing import (
    ActivityPublishedV2,
    AssetPublishedV1,
    AssetPublishedV2,
    AssetRestrictionSetV1,
    AssetUnpublishedV1,
)
from shared.events.tagging import AssetRetagRequestedV1
from shared.fields import STORED
from shared.policy import Restriction, Visibility, may_see
from shared.ports import StoredEvent
from shared.publication import fold_visibility, index_fields, visibility_from_fields, visibility_of
from tests.conftest import refusal
from tests.search_corpus import ingested

ASSET = "a" + "5" * 32
NOW = datetime(2025, 6, 20, 1, 0, tzinfo=UTC)  # 08:00 in Vietnam
FRESH = AssetState(ASSET, {}, 1, Visibility(uploaded_by="phong-vien"))
ACT = Activity("v1", "Kỳ họp thứ Bảy HĐND tỉnh khóa XI", "ky-hop", date(2025, 6, 18), sequence=2)


def published(
    publish_at: datetime = NOW, unpublish_at: datetime | None = None, restriction: Restriction = Restriction.PUBLIC
) -> AssetState:
    v = Visibility("phong-vien", restriction, True, publish_at, unpublish_at)
    return AssetState(ASSET, {}, 3, v)


def event(payload: EventPayload, actor: str = "luu-tru") -> EventEnvelope:
    return new_event(payload, aggregate_id=ASSET, actor=actor)


# --- the moments a person may type ---------------------------------------------------------------


def test_a_moment_without_an_offset_is_vietnam_time_and_is_held_in_utc() -> None:
    assert Publish(publish_at="2025-06-20T08:00").publish_at == NOW  # type: ignore[arg-type]


def test_a_moment_with_an_offset_is_held_in_utc() -> None:
    cmd = Publish(publish_at="2025-06-20T03:00:00+02:00")  # type: ignore[arg-type]
    assert cmd.publish_at == NOW and cmd.publish_at.tzinfo is UTC


@pytest.mark.parametrize("raw", ["2101-01-01T00:00+07:00", "1944-12-31T23:00", "9999-12-31T23:59:59-23:00"])
def test_a_moment_outside_1945_to_2100_is_refused_by_the_input_contract(raw: str) -> None:
    with pytest.raises(ValidationError, match="between 1945-01-01 and 2100-12-31"):
        Publish(publish_at=raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["ngày mai", "1750000000", 1750000000, "2025-06-20T08:00" + " " * 60 + "x"])
def test_a_moment_that_is_not_iso_8601_text_is_refused(raw: Any) -> None:
    with pytest.raises(ValidationError, match="ISO 8601"):
        Publish(publish_at=raw)


# --- publishing an asset -------------------------------------------------------------------------


def test_publishing_without_a_moment_publishes_at_once_on_no_clock_and_keeps_the_assets_internal_restriction() -> None:
    # No publish_at in the event: the catalogue replica's clock (two minutes fast, say) is not
    # written down as a start every reader would then wait for.
    [decided] = decide_publish(FRESH, ASSET, Publish(), NOW + timedelta(minutes=2))
    assert decided == AssetPublishedV2(publish_at=None, restriction=Restriction.INTERNAL)


def test_publishing_for_the_portal_with_an_embargo_and_an_end_records_the_window() -> None:
    start, end = NOW + timedelta(days=1), NOW + timedelta(days=30)
    cmd = Publish(publish_at=start, unpublish_at=end, restriction=Restriction.PUBLIC, note="Đăng cổng thông tin")
    [decided] = decide_publish(FRESH, ASSET, cmd, NOW)
    assert isinstance(decided, AssetPublishedV2)
    assert (decided.publish_at, decided.unpublish_at, decided.restriction) == (start, end, Restriction.PUBLIC)
    assert decided.note == "Đăng cổng thông tin"


def test_changing_only_the_restriction_of_a_published_asset_keeps_its_publish_at() -> None:
    earlier = NOW - timedelta(days=3)
    [decided] = decide_publish(
        published(earlier, restriction=Restriction.INTERNAL), ASSET, Publish(restriction=Restriction.PUBLIC), NOW
    )
    assert isinstance(decided, AssetPublishedV2) and decided.publish_at == earlier


def test_changing_only_the_restriction_of_an_asset_published_at_once_keeps_it_at_once() -> None:
    at_once = AssetState(ASSET, {}, 3, Visibility("phong-vien", Restriction.INTERNAL, True, None, None, NOW))
    [decided] = decide_publish(at_once, ASSET, Publish(restriction=Restriction.PUBLIC), NOW)
    assert isinstance(decided, AssetPublishedV2) and decided.publish_at is None
    assert decide_publish(at_once, ASSET, Publish(restriction=Restriction.INTERNAL), NOW) == []  # the same again


def test_publishing_again_exactly_as_published_appends_nothing() -> None:
    assert decide_publish(published(), ASSET, Publish(publish_at=NOW, restriction=Restriction.PUBLIC), NOW) == []


def test_publishing_an_asset_that_does_not_exist_is_refused_as_not_found() -> None:
    refused = refusal(lambda: decide_publish(None, ASSET, Publish(), NOW))
    assert refused.status == 404 and refused.code == "asset_not_found" and ASSET in refused.message_vi


@pytest.mark.parametrize("end", [NOW + timedelta(hours=2), NOW + timedelta(hours=1)])
def test_a_window_ending_before_or_when_it_starts_is_refused(end: datetime) -> None:
    cmd = Publish(publish_at=NOW + timedelta(hours=2), unpublish_at=end)
    refused = refusal(lambda: decide_publish(FRESH, ASSET, cmd, NOW))
    assert refused.status == 422 and refused.code == "invalid_publication_window"


def test_a_window_starting_at_once_and_ending_before_now_is_refused_as_over() -> None:
    refused = refusal(lambda: decide_publish(FRESH, ASSET, Publish(unpublish_at=NOW - timedelta(minutes=1)), NOW))
    assert refused.code == "publication_window_over"


def test_a_window_that_is_already_over_is_refused() -> None:
    cmd = Publish(publish_at=NOW - timedelta(days=2), unpublish_at=NOW - timedelta(days=1))
    assert refusal(lambda: decide_publish(FRESH, ASSET, cmd, NOW)).code == "publication_window_over"


def test_a_publication_dated_outside_1945_to_2100_is_refused_by_the_event_contract_too() -> None:
    # The API refuses it first (the body's type); the event payload refuses it again.
    cmd = Publish.model_construct(publish_at=datetime(2101, 1, 1, tzinfo=UTC), unpublish_at=None, restriction=None)
    refused = refusal(lambda: decide_publish(FRESH, ASSET, cmd, datetime(2101, 1, 1, tzinfo=UTC)))
    assert refused.code == "invalid_value" and "2100" in refused.message_en


# --- unpublishing and restricting ----------------------------------------------------------------


def test_unpublishing_a_published_asset_records_the_reason() -> None:
    assert decide_unpublish(published(), ASSET, Unpublish(reason="Sai thông tin")) == [
        AssetUnpublishedV1(reason="Sai thông tin")
    ]


def test_unpublishing_an_asset_that_is_not_published_is_refused_as_a_conflict() -> None:
    refused = refusal(lambda: decide_unpublish(FRESH, ASSET, Unpublish()))
    assert refused.status == 409 and refused.code == "not_published"


def test_unpublishing_an_asset_that_does_not_exist_is_refused_as_not_found() -> None:
    assert refusal(lambda: decide_unpublish(None, ASSET, Unpublish())).code == "asset_not_found"


def test_restricting_an_asset_records_the_new_restriction() -> None:
    [decided] = decide_set_restriction(FRESH, ASSET, SetRestriction(restriction=Restriction.RESTRICTED, note="họp kín"))
    assert decided == AssetRestrictionSetV1(restriction=Restriction.RESTRICTED, note="họp kín")


def test_setting_the_restriction_the_asset_already_has_appends_nothing() -> None:
    assert decide_set_restriction(FRESH, ASSET, SetRestriction(restriction=Restriction.INTERNAL)) == []


def test_restricting_an_asset_that_does_not_exist_is_refused_as_not_found() -> None:
    cmd = SetRestriction(restriction=Restriction.PUBLIC)
    assert refusal(lambda: decide_set_restriction(None, ASSET, cmd)).status == 404


def test_an_unknown_restriction_is_refused_by_the_command() -> None:
    with pytest.raises(ValidationError):
        SetRestriction(restriction="secret")  # type: ignore[arg-type]


# --- publishing an activity ----------------------------------------------------------------------


def test_publishing_an_activity_without_a_moment_publishes_all_its_assets_at_once() -> None:
    [decided] = decide_publish_activity(ACT, "v1", ["a1", "a2"], Publish(restriction=Restriction.PUBLIC), NOW)
    assert decided == ActivityPublishedV2(publish_at=None, restriction=Restriction.PUBLIC, asset_ids=("a1", "a2"))


def test_publishing_an_activity_that_does_not_exist_is_refused_as_not_found() -> None:
    refused = refusal(lambda: decide_publish_activity(None, "v9", [], Publish(), NOW))
    assert refused.status == 404 and refused.code == "activity_not_found"


def test_publishing_a_merged_activity_is_refused_naming_the_one_it_was_merged_into() -> None:
    merged = Activity("v1", "x", "ky-hop", date(2025, 1, 1), merged_into="v2")
    refused = refusal(lambda: decide_publish_activity(merged, "v1", ["a1"], Publish(), NOW))
    assert refused.status == 409 and refused.code == "activity_merged" and "v2" in refused.message_en


def test_publishing_an_activity_without_assets_is_refused() -> None:
    assert refusal(lambda: decide_publish_activity(ACT, "v1", [], Publish(), NOW)).code == "activity_has_no_assets"


def test_publishing_an_activity_with_a_window_ending_before_it_starts_is_refused() -> None:
    cmd = Publish(publish_at=NOW + timedelta(days=1), unpublish_at=NOW)
    refused = refusal(lambda: decide_publish_activity(ACT, "v1", ["a1"], cmd, NOW))
    assert refused.code == "invalid_publication_window"


# --- the visibility fold -------------------------------------------------------------------------


def test_a_new_upload_is_internal_unpublished_and_remembers_who_uploaded_it() -> None:
    assert visibility_of([ingested(ASSET, "Ảnh")]) == Visibility(uploaded_by="phong-vien")


def test_publishing_unpublishing_and_restricting_fold_in_order_and_other_events_change_nothing() -> None:
    start, end = NOW + timedelta(seconds=20), NOW + timedelta(days=1)
    history = [
        ingested(ASSET, "Ảnh"),
        event(AssetPublishedV1(publish_at=start, unpublish_at=end, restriction=Restriction.PUBLIC)),
        event(AssetRetagRequestedV1(reason="x")),
    ]
    assert visibility_of(history) == Visibility("phong-vien", Restriction.PUBLIC, True, start, end, start)
    history += [event(AssetUnpublishedV1()), event(AssetRestrictionSetV1(restriction=Restriction.RESTRICTED))]
    assert visibility_of(history) == Visibility("phong-vien", Restriction.RESTRICTED, False, None, None)


def test_an_asset_with_no_history_has_no_visibility() -> None:
    assert visibility_of([]) is None
    assert fold_visibility(None, event(AssetRetagRequestedV1())) is None


def test_the_catalogues_asset_state_carries_the_same_folded_visibility() -> None:
    history = [ingested(ASSET, "Ảnh"), event(AssetPublishedV1(publish_at=NOW, restriction=Restriction.PUBLIC))]
    state = fold_asset([StoredEvent(i + 1, e.subject, e) for i, e in enumerate(history)])
    assert state is not None and state.visibility == visibility_of(history)


def test_the_index_fields_read_back_as_the_same_visibility() -> None:
    v = Visibility("phong-vien", Restriction.PUBLIC, True, NOW, NOW + timedelta(days=2), NOW)
    fields = index_fields(v)
    assert fields == {
        "uploaded_by": "phong-vien",
        "restriction": "public",
        "published": True,
        "publish_at": "2025-06-20T01:00:00+00:00",
        "unpublish_at": "2025-06-22T01:00:00+00:00",
        "published_since": "2025-06-20T01:00:00+00:00",
    }
    assert visibility_from_fields(fields) == v
    at_once = Visibility("phong-vien", Restriction.PUBLIC, True, None, None, NOW)
    assert visibility_from_fields(index_fields(at_once)) == at_once
    assert visibility_from_fields({"title": "x"}) is None


def test_an_index_document_with_an_unknown_restriction_reads_as_restricted() -> None:
    v = visibility_from_fields({"restriction": "bí mật", "published": True})
    assert v is not None and v.restriction is Restriction.RESTRICTED


def test_the_folded_embargo_hides_an_asset_from_the_public_until_publish_at_and_after_unpublish_at() -> None:
    start, end = NOW + timedelta(seconds=20), NOW + timedelta(minutes=5)
    v = visibility_of(
        [
            ingested(ASSET, "Ảnh"),
            event(AssetPublishedV1(publish_at=start, unpublish_at=end, restriction=Restriction.PUBLIC)),
        ]
    )
    assert v is not None
    other_broadcaster = Principal("phong-vien-2", "Phóng viên khác", Role.PHONG_VIEN)
    for who in (ANONYMOUS, other_broadcaster):
        assert not may_see(who, v, start - timedelta(seconds=1))
        assert may_see(who, v, start)
        assert not may_see(who, v, end)
    uploader = Principal("phong-vien", "Phóng viên", Role.PHONG_VIEN)
    assert may_see(uploader, v, start - timedelta(seconds=1))


def test_a_published_event_read_back_from_the_log_is_not_refused_for_its_window() -> None:
    # Stored events are read leniently: a contract added later never makes the log unreadable.
    data = {"publish_at": "2025-06-20T01:00:00+00:00", "unpublish_at": "2025-06-20T00:00:00+00:00"}
    read = AssetPublishedV1.model_validate({**data, "restriction": "public"}, context=STORED)
    assert read.unpublish_at is not None and read.unpublish_at < read.publish_at
    with pytest.raises(ValidationError, match="unpublish_at must be after publish_at"):
        AssetPublishedV1.model_validate({**data, "restriction": "public"})


def test_an_asset_published_at_once_is_on_air_for_every_reader_whatever_the_writers_clock() -> None:
    # The catalogue replica that recorded it ran two minutes fast: its event time is ahead of
    # every reader's clock, and yet the asset shows at once; the date it went out is only shown.
    fast_writer = event(AssetPublishedV2(restriction=Restriction.PUBLIC)).model_copy(
        update={"occurred_at": NOW + timedelta(minutes=2)}
    )
    v = visibility_of([ingested(ASSET, "Ảnh"), fast_writer])
    assert v is not None and v.publish_at is None and v.published_since == NOW + timedelta(minutes=2)
    other_broadcaster = Principal("phong-vien-2", "Phóng viên khác", Role.PHONG_VIEN)
    for who in (ANONYMOUS, other_broadcaster):
        assert may_see(who, v, NOW)


def test_a_new_restriction_without_a_start_keeps_the_date_the_asset_went_out() -> None:
    first = event(AssetPublishedV2(restriction=Restriction.INTERNAL))
    later = event(AssetPublishedV2(restriction=Restriction.PUBLIC)).model_copy(
        update={"occurred_at": first.occurred_at + timedelta(days=3)}
    )
    v = visibility_of([ingested(ASSET, "Ảnh"), first, later])
    assert v is not None and v.published_since == first.occurred_at and v.restriction is Restriction.PUBLIC
    gone = visibility_of([ingested(ASSET, "Ảnh"), first, event(AssetUnpublishedV1()), later])
    assert gone is not None and gone.published_since == later.occurred_at  # published again: a new date


def test_a_version_1_publication_in_the_log_is_read_as_version_2_with_its_instant() -> None:
    old = event(AssetPublishedV1(publish_at=NOW, restriction=Restriction.PUBLIC))
    assert old.schema_version == 1
    read = old.typed_payload()
    assert isinstance(read, AssetPublishedV2) and read.publish_at == NOW
    v = visibility_of([ingested(ASSET, "Ảnh"), old])
    assert v is not None and v.publish_at == NOW and v.published_since == NOW
    assert not may_see(ANONYMOUS, v, NOW - timedelta(seconds=1))  # an embargo written by v1 still holds


def test_the_asset_page_dates_a_publication_at_once_by_when_it_was_recorded_as_the_fold_does() -> None:
    first = event(AssetPublishedV2(restriction=Restriction.INTERNAL))
    later = event(AssetPublishedV2(restriction=Restriction.PUBLIC)).model_copy(
        update={"occurred_at": first.occurred_at + timedelta(days=3)}
    )
    history = [ingested(ASSET, "Ảnh"), first, later]
    shown = publication_of([e.model_dump(mode="json") for e in history])
    assert shown["published"] is True and shown["publish_at"] is None and shown["restriction"] == "public"
    folded = visibility_of(history)
    assert folded is not None and folded.published_since is not None
    assert datetime.fromisoformat(shown["published_since"]) == folded.published_since == first.occurred_at
