"""The catalogue's decisions, without servers: every event a command produces
and every refusal, named as a sentence; and the load → decide → append loop."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.catalogue.commands import CreateActivity, EditActivity, EditMetadata, Publish
from services.catalogue.decide import (
    AssetState,
    Corrector,
    decide_assign,
    decide_create_activity,
    decide_edit_activity,
    decide_edit_metadata,
    decide_follow,
    decide_merge,
    decide_publish_follow,
    decide_register_person,
    decide_retag,
    fold_asset,
)
from services.catalogue.follow_ups import Publications
from shared.activities import Activities, Activity, fold_activity
from shared.auth import Principal, Role
from shared.commands import COMMAND_ATTEMPTS, Refused, run_command
from shared.events.envelope import EventEnvelope, new_event
from shared.events.publishing import ActivityPublishedV2, AssetPublishedV2, AssetUnpublishedV1
from shared.events.tagging import (
    ActivityCreatedV1,
    ActivityEditedV1,
    ActivityMergedV1,
    AssetActivityAssignedV1,
    AssetMetadataEditedV1,
    AssetRetagRequestedV1,
    PersonRegisteredV1,
)
from shared.http import UserError
from shared.people import Person
from shared.policy import Visibility
from shared.ports import AppendResult, StoredEvent
from tests.conftest import refusal
from tests.fakes import InMemoryEventLog
from tests.search_corpus import ingested

ASSET = "a" + "7" * 32
ASSET_STATE = AssetState(ASSET, {"activity_id": None}, 1)
ACT = Activity("v1", "Kỳ họp thứ Bảy HĐND tỉnh khóa XI", "ky-hop", date(2023, 7, 11), sequence=2)
OTHER = Activity("v2", "Kỳ họp thứ 7", "ky-hop", date(2023, 7, 11), sequence=3)


# --- metadata edits --------------------------------------------------------------------------------


def test_an_edit_of_an_existing_asset_becomes_one_metadata_edited_event_with_nfc_text() -> None:
    [event] = decide_edit_metadata(ASSET_STATE, ASSET, EditMetadata(title="Tiếp xúc cử tri", people=["Lê Văn A"]))
    assert isinstance(event, AssetMetadataEditedV1)
    assert event.title == "Tiếp xúc cử tri" and event.people == ("Lê Văn A",)


def test_an_edit_of_an_asset_that_does_not_exist_is_refused_as_not_found() -> None:
    refused = refusal(lambda: decide_edit_metadata(None, ASSET, EditMetadata(title="x")))
    assert refused.status == 404 and refused.code == "asset_not_found"


def test_an_edit_resetting_a_field_that_cannot_be_edited_is_refused() -> None:
    refused = refusal(lambda: decide_edit_metadata(ASSET_STATE, ASSET, EditMetadata(reset=["sha256"])))
    assert refused.status == 422 and refused.code == "invalid_reset" and "sha256" in refused.message_vi


def test_an_edit_with_an_unknown_activity_type_is_refused_as_an_invalid_value() -> None:
    refused = refusal(lambda: decide_edit_metadata(ASSET_STATE, ASSET, EditMetadata(activity_type="hop-cho")))
    assert refused.status == 422 and refused.code == "invalid_value" and "hop-cho" in refused.message_en


def test_an_edit_that_changes_nothing_is_refused() -> None:
    refused = refusal(lambda: decide_edit_metadata(ASSET_STATE, ASSET, EditMetadata(note="chỉ ghi chú")))
    assert refused.code == "nothing_to_change"


def _broadcaster(name: str = "phong-vien") -> Corrector:
    return Corrector(Principal(name, name, Role.PHONG_VIEN), any_asset=False, now=datetime(2026, 1, 1, tzinfo=UTC))


def _uploaded_by(who: str, *, published: bool = False) -> AssetState:
    return AssetState(ASSET, {}, 1, Visibility(uploaded_by=who, published=published))


def test_a_broadcaster_corrects_their_own_unpublished_upload() -> None:
    [event] = decide_edit_metadata(_uploaded_by("phong-vien"), ASSET, EditMetadata(title="Tên đúng"), _broadcaster())
    assert isinstance(event, AssetMetadataEditedV1) and event.title == "Tên đúng"


def test_a_broadcaster_may_not_correct_someone_elses_upload_they_can_see() -> None:
    other = _uploaded_by("phong-vien-2", published=True)  # on air: the broadcaster sees it
    refused = refusal(lambda: decide_edit_metadata(other, ASSET, EditMetadata(title="x"), _broadcaster()))
    assert refused.status == 403 and refused.code == "not_your_upload"


def test_someone_elses_unpublished_upload_is_not_found_for_a_broadcaster() -> None:
    hidden = _uploaded_by("phong-vien-2")
    refused = refusal(lambda: decide_edit_metadata(hidden, ASSET, EditMetadata(title="x"), _broadcaster()))
    assert refused.status == 404 and refused.code == "asset_not_found"


def test_a_broadcasters_own_upload_once_published_is_corrected_by_an_archivist_only() -> None:
    mine = _uploaded_by("phong-vien", published=True)
    refused = refusal(lambda: decide_edit_metadata(mine, ASSET, EditMetadata(title="x"), _broadcaster()))
    assert refused.status == 409 and refused.code == "already_published"
    archivist = Corrector(Principal("luu-tru", "luu-tru", Role.LUU_TRU), any_asset=True, now=datetime.now(UTC))
    [event] = decide_edit_metadata(mine, ASSET, EditMetadata(title="x"), archivist)
    assert isinstance(event, AssetMetadataEditedV1)


# --- re-tag and assignment -------------------------------------------------------------------------


def test_a_retag_of_an_existing_asset_is_requested_with_its_reason() -> None:
    [event] = decide_retag(ASSET_STATE, ASSET, "đổi từ vựng")
    assert isinstance(event, AssetRetagRequestedV1) and event.reason == "đổi từ vựng"


def test_a_retag_of_an_asset_that_does_not_exist_is_refused_as_not_found() -> None:
    assert refusal(lambda: decide_retag(None, ASSET, "")).status == 404


def test_assigning_an_asset_carries_the_activity_title_and_the_previous_activity() -> None:
    in_other = AssetState(ASSET, {"activity_id": "v2"}, 5)
    [event] = decide_assign(in_other, ASSET, "v1", ACT)
    assert event == AssetActivityAssignedV1(activity_id="v1", activity_title=ACT.title, previous_activity_id="v2")


def test_taking_an_asset_out_of_its_activity_assigns_none() -> None:
    [event] = decide_assign(AssetState(ASSET, {"activity_id": "v1"}, 5), ASSET, None, None)
    assert event == AssetActivityAssignedV1(activity_id=None, activity_title="", previous_activity_id="v1")


def test_assigning_an_asset_that_does_not_exist_is_refused_as_not_found() -> None:
    assert refusal(lambda: decide_assign(None, ASSET, "v1", ACT)).code == "asset_not_found"


def test_assigning_to_an_activity_that_does_not_exist_is_refused_as_not_found() -> None:
    refused = refusal(lambda: decide_assign(ASSET_STATE, ASSET, "v9", None))
    assert refused.status == 404 and refused.code == "activity_not_found" and "v9" in refused.message_vi


def test_assigning_to_an_activity_still_merged_after_following_its_merges_is_refused() -> None:
    looped = Activity("v1", "x", "ky-hop", date(2023, 1, 1), merged_into="v2")
    assert refusal(lambda: decide_assign(ASSET_STATE, ASSET, "v1", looped)).code == "activity_merged"


# --- activities --------------------------------------------------------------------------------------


def test_creating_an_activity_becomes_one_created_event() -> None:
    command = CreateActivity(title=" Kỳ họp thứ Bảy ", activity_type="ky-hop", start_date=date(2023, 7, 11))
    [event] = decide_create_activity(command)
    assert isinstance(event, ActivityCreatedV1) and event.title == "Kỳ họp thứ Bảy"


def test_creating_an_activity_of_an_unknown_term_is_refused_as_an_invalid_value() -> None:
    command = CreateActivity(title="x", activity_type="ky-hop", term="1990-1995", start_date=date(2023, 7, 11))
    assert refusal(lambda: decide_create_activity(command)).code == "invalid_value"


def test_editing_an_activity_records_only_the_changed_fields() -> None:
    [event] = decide_edit_activity(ACT, "v1", EditActivity(place="Phan Rang"))
    assert isinstance(event, ActivityEditedV1) and event.place == "Phan Rang" and event.title is None


def test_editing_an_activity_that_does_not_exist_is_refused_as_not_found() -> None:
    assert refusal(lambda: decide_edit_activity(None, "v9", EditActivity(place="x"))).status == 404


def test_editing_an_activity_with_an_unknown_type_is_refused_as_an_invalid_value() -> None:
    assert refusal(lambda: decide_edit_activity(ACT, "v1", EditActivity(activity_type="x"))).code == "invalid_value"


def test_merging_a_duplicate_into_a_live_activity_becomes_one_merged_event() -> None:
    assert decide_merge(OTHER, "v2", ACT, "v1") == [ActivityMergedV1(into_activity_id="v1")]


def test_merging_an_activity_that_does_not_exist_is_refused_as_not_found() -> None:
    assert refusal(lambda: decide_merge(None, "v9", ACT, "v1")).code == "activity_not_found"


def test_merging_into_an_activity_that_does_not_exist_is_refused_as_not_found() -> None:
    refused = refusal(lambda: decide_merge(OTHER, "v2", None, "v9"))
    assert refused.code == "activity_not_found" and "v9" in refused.message_en


def test_merging_an_activity_into_itself_is_refused() -> None:
    assert refusal(lambda: decide_merge(ACT, "v1", ACT, "v1")).code == "invalid_merge"


def test_merging_into_an_activity_that_is_itself_merged_is_refused() -> None:
    merged = Activity("v1", "x", "ky-hop", date(2023, 1, 1), merged_into="v3")
    assert refusal(lambda: decide_merge(OTHER, "v2", merged, "v1")).code == "invalid_merge"


def test_merging_an_activity_that_was_already_merged_is_refused() -> None:
    merged = Activity("v2", "x", "ky-hop", date(2023, 1, 1), merged_into="v3")
    assert refusal(lambda: decide_merge(merged, "v2", ACT, "v1")).code == "invalid_merge"


# --- people --------------------------------------------------------------------------------------------


def test_registering_a_new_person_becomes_one_registered_event() -> None:
    [event] = decide_register_person([], Person("p1", "Đặng Thanh Sơn", "Phó Chủ tịch", "HĐND tỉnh", "2021-2026"))
    assert isinstance(event, PersonRegisteredV1) and event.name == "Đặng Thanh Sơn" and event.term == "2021-2026"


def test_registering_a_person_already_registered_changes_nothing() -> None:
    earlier = new_event(PersonRegisteredV1(name="Đặng Thanh Sơn"), aggregate_id="p1", actor="x")
    assert decide_register_person([StoredEvent(4, earlier.subject, earlier)], Person("p1", "Đặng Thanh Sơn")) == []


def test_registering_a_person_without_a_name_is_refused_as_an_invalid_value() -> None:
    assert refusal(lambda: decide_register_person([], Person("p1", ""))).code == "invalid_value"


# --- folds ---------------------------------------------------------------------------------------------


def test_an_assets_state_folds_its_history_and_an_empty_history_is_no_asset() -> None:
    created = ingested(ASSET, "Ảnh tư liệu")
    assigned = new_event(AssetActivityAssignedV1(activity_id="v1", activity_title="x"), aggregate_id=ASSET, actor="x")
    state = fold_asset([StoredEvent(3, created.subject, created), StoredEvent(9, assigned.subject, assigned)])
    assert state is not None and state.activity_id == "v1" and state.sequence == 9
    assert fold_asset([]) is None


def _stored(events: list[EventEnvelope]) -> list[StoredEvent]:
    return [StoredEvent(n, e.subject, e) for n, e in enumerate(events, start=1)]


def test_assets_a_merge_or_rename_has_not_reached_are_found_with_where_they_belong_now() -> None:
    def created(activity_id: str, title: str) -> EventEnvelope:
        payload = ActivityCreatedV1(title=title, activity_type="ky-hop", start_date=date(2024, 7, 9))
        return new_event(payload, aggregate_id=activity_id, actor="x")

    def assigned(asset: str, activity_id: str, title: str) -> EventEnvelope:
        payload = AssetActivityAssignedV1(activity_id=activity_id, activity_title=title)
        return new_event(payload, aggregate_id=asset, actor="x")

    a1, a2, a3 = ("a" + str(n) * 32 for n in (1, 2, 3))
    log = [
        created("v1", "Kỳ họp thứ 9"),
        created("v2", "Kỳ họp 9 (trùng)"),
        assigned(a1, "v1", "Kỳ họp thứ 9"),
        assigned(a2, "v2", "Kỳ họp 9 (trùng)"),
        assigned(a3, "v1", "Kỳ họp thứ 9"),
    ]
    activities = Activities()
    for stored in _stored(log):
        activities.apply(stored)
    assert activities.unfollowed() == []
    # v2 merged into v1, then v1 renamed; the crash came before any asset was told.
    log += [
        new_event(ActivityMergedV1(into_activity_id="v1"), aggregate_id="v2", actor="x"),
        new_event(ActivityEditedV1(title="Kỳ họp chuyên đề"), aggregate_id="v1", actor="x"),
    ]
    activities = Activities()
    for stored in _stored(log):
        activities.apply(stored)
    pending = activities.unfollowed()
    assert [(asset, target.activity_id, target.title) for asset, target in pending] == [
        (a1, "v1", "Kỳ họp chuyên đề"),
        (a2, "v1", "Kỳ họp chuyên đề"),
        (a3, "v1", "Kỳ họp chuyên đề"),
    ]
    # Once each carries the activity's current title, none is left.
    log += [assigned(a, "v1", "Kỳ họp chuyên đề") for a in (a1, a2, a3)]
    activities = Activities()
    for stored in _stored(log):
        activities.apply(stored)
    assert activities.unfollowed() == []


def test_following_a_merge_is_idempotent_and_moves_only_an_asset_not_there_yet() -> None:
    def assigned(activity_id: str, title: str) -> EventEnvelope:
        payload = AssetActivityAssignedV1(activity_id=activity_id, activity_title=title)
        return new_event(payload, aggregate_id=ASSET, actor="x")

    created = ingested(ASSET, "Ảnh tư liệu")
    assert decide_follow(fold_asset(_stored([created, assigned("v1", ACT.title)])), ASSET, ACT) == []
    [moved] = decide_follow(fold_asset(_stored([created, assigned("v1", "cũ")])), ASSET, ACT)
    assert isinstance(moved, AssetActivityAssignedV1) and moved.activity_title == ACT.title
    [moved] = decide_follow(fold_asset(_stored([created, assigned("v9", "x")])), ASSET, ACT)
    assert isinstance(moved, AssetActivityAssignedV1) and moved.activity_id == "v1"
    assert moved.previous_activity_id == "v9"


# --- load → decide → append -----------------------------------------------------------------------------


class RacingLog(InMemoryEventLog):
    """Another writer appends to the aggregate right after each of the first ``races`` reads."""

    def __init__(self, rival: EventEnvelope, races: int) -> None:
        super().__init__()
        self.rival, self.races, self.reads = rival, races, 0

    async def history(self, aggregate: str, aggregate_id: str) -> list[StoredEvent]:
        seen = await super().history(aggregate, aggregate_id)
        self.reads += 1
        if self.reads <= self.races:
            await self.append(self.rival.model_copy(update={"event_id": f"{self.rival.event_id[:-4]}{self.reads:04d}"}))
        return seen


def edit_place(place: str | None) -> Any:
    return lambda h: decide_edit_activity(fold_activity(h), "v1", EditActivity(place=place))


def _creation_log(log: InMemoryEventLog) -> None:
    created = ActivityCreatedV1(title="Kỳ họp", activity_type="ky-hop", start_date=date(2023, 7, 11))
    log.stored.append(StoredEvent(1, "mam.activity.v1.created", new_event(created, aggregate_id="v1", actor="x")))


async def test_a_command_appends_what_it_decided_with_the_sequence_it_decided_on() -> None:
    log = InMemoryEventLog()
    _creation_log(log)
    result = await run_command(
        log,
        "activity",
        "v1",
        edit_place("X"),
        actor="lt",
    )
    assert [e.type for e in result.appended] == ["activity.edited"] and result.last_sequence == 2
    assert fold_activity(await log.history("activity", "v1")).place == "X"  # type: ignore[union-attr]


async def test_a_command_that_loses_one_race_is_decided_again_on_the_fresh_history() -> None:
    rival = new_event(ActivityEditedV1(place="Y"), aggregate_id="v1", actor="other")
    log = RacingLog(rival, races=1)
    _creation_log(log)
    seen: list[int] = []

    def decide(history: list[StoredEvent]) -> Any:
        seen.append(len(history))
        return decide_edit_activity(fold_activity(history), "v1", EditActivity(place="X"))

    result = await run_command(log, "activity", "v1", decide, actor="lt")
    assert seen == [1, 2] and result.appended and log.stored[-1].envelope.payload["place"] == "X"


async def test_a_command_that_loses_a_few_races_to_the_pipeline_still_lands() -> None:
    rival = new_event(ActivityEditedV1(place="Y"), aggregate_id="v1", actor="other")
    log = RacingLog(rival, races=COMMAND_ATTEMPTS - 1)
    _creation_log(log)
    result = await run_command(
        log,
        "activity",
        "v1",
        edit_place("X"),
        actor="lt",
    )
    assert result.appended and [s.envelope.actor for s in log.stored][-1] == "lt"


async def test_a_command_that_loses_every_round_is_a_bilingual_409_and_appends_nothing() -> None:
    rival = new_event(ActivityEditedV1(place="Y"), aggregate_id="v1", actor="other")
    log = RacingLog(rival, races=COMMAND_ATTEMPTS)
    _creation_log(log)
    with pytest.raises(UserError) as caught:
        await run_command(log, "activity", "v1", edit_place("X"), actor="lt", patience_s=0)
    assert caught.value.status == 409 and caught.value.message_vi.startswith("Dữ liệu vừa bị người khác thay đổi")
    assert [s.envelope.actor for s in log.stored] == ["x"] + ["other"] * COMMAND_ATTEMPTS


async def test_a_command_keeps_deciding_again_past_its_rounds_until_its_patience_runs_out() -> None:
    # A burst of rival appends longer than the rounds (a fresh upload's pipeline on a loaded
    # machine): the command still lands within its patience.
    rival = new_event(ActivityEditedV1(place="Y"), aggregate_id="v1", actor="other")
    log = RacingLog(rival, races=3 * COMMAND_ATTEMPTS)
    _creation_log(log)
    result = await run_command(log, "activity", "v1", edit_place("X"), actor="lt", patience_s=30)
    assert result.appended and [s.envelope.actor for s in log.stored][-1] == "lt"
    assert [s.envelope.actor for s in log.stored].count("other") == 3 * COMMAND_ATTEMPTS
    # A rival that never stops: the rounds go on until the patience is spent, then a 409.
    log = RacingLog(rival, races=10_000)
    _creation_log(log)
    began = time.monotonic()
    with pytest.raises(UserError) as caught:
        await run_command(log, "activity", "v1", edit_place("X"), actor="lt", patience_s=0.5)
    assert caught.value.status == 409 and 0.5 <= time.monotonic() - began < 5
    assert "lt" not in [s.envelope.actor for s in log.stored]


async def test_a_refused_command_appends_nothing() -> None:
    log = InMemoryEventLog()
    with pytest.raises(Refused):
        await run_command(
            log, "activity", "v1", lambda h: decide_edit_activity(fold_activity(h), "v1", EditActivity()), actor="lt"
        )
    assert log.stored == [] and isinstance(await log.append(ingested(ASSET, "x")), AppendResult)


def test_an_activity_publication_is_carried_to_an_asset_only_where_nothing_was_decided_since() -> None:
    now = datetime(2025, 3, 12, tzinfo=UTC)
    each = Publish(note="cả hoạt động")
    created = ingested(ASSET, "Ảnh tư liệu")
    [carried] = decide_publish_follow([StoredEvent(1, created.subject, created)], ASSET, 5, each, now)
    assert isinstance(carried, AssetPublishedV2) and carried.note == "cả hoạt động"
    for later in (AssetPublishedV2(restriction="public"), AssetUnpublishedV1(reason="người quyết sau")):
        decided = new_event(later, aggregate_id=ASSET, actor="luu-tru")
        history = [StoredEvent(1, created.subject, created), StoredEvent(7, decided.subject, decided)]
        assert decide_publish_follow(history, ASSET, 5, each, now) == []  # a decision since stands
    # One made before the activity's publication does not: the unpublished asset is published.
    assert decide_publish_follow(history, ASSET, 9, each, now) != []

    publications = Publications()
    other = "a" + "8" * 32
    published = new_event(ActivityPublishedV2(asset_ids=(ASSET, other)), aggregate_id="v1", actor="luu-tru")
    publications.apply(StoredEvent(5, published.subject, published))
    assert [a for a, _ in publications.unfinished()] == [ASSET, other]
    done = new_event(AssetPublishedV2(restriction="internal"), aggregate_id=ASSET, actor="luu-tru")
    publications.apply(StoredEvent(6, done.subject, done))
    assert [(a, c.sequence) for a, c in publications.unfinished()] == [(other, 5)]
    publications.settled.add((other, published.event_id))
    assert publications.unfinished() == []
