"""The directory read model catches up with the log incrementally, in order."""

from __future__ import annotations

from datetime import date

from shared.directory import Directory
from shared.events.envelope import new_event
from shared.events.tagging import (
    ActivityCreatedV1,
    ActivityEditedV1,
    ActivityMergedV1,
    AssetActivityAssignedV1,
    PersonRegisteredV1,
)
from tests.fakes import InMemoryEventLog
from tests.search_corpus import ingested

ASSET = "a" + "3" * 32


def _created(title: str) -> ActivityCreatedV1:
    return ActivityCreatedV1(title=title, activity_type="ky-hop", start_date=date(2023, 7, 11))


async def test_a_catch_up_folds_people_activities_and_assignments_and_skips_other_events() -> None:
    log = InMemoryEventLog(
        [
            new_event(_created("Kỳ họp thứ 7"), aggregate_id="v1", actor="x"),
            ingested(ASSET, "Ảnh"),
            new_event(AssetActivityAssignedV1(activity_id="v1", activity_title="x"), aggregate_id=ASSET, actor="x"),
            new_event(PersonRegisteredV1(name="Hoàng Thị Mai"), aggregate_id="p1", actor="x"),
        ]
    )
    directory = await Directory().catch_up(log)
    assert directory.read_up_to == 4
    assert [a.title for a in directory.activities.live()] == ["Kỳ họp thứ 7"]
    assert directory.activities.assets_of("v1") == [ASSET]
    assert directory.registry.lookup("Hoang Thi Mai") == directory.registry.get("p1") is not None


async def test_a_second_catch_up_reads_only_what_came_after_and_sees_it() -> None:
    log = InMemoryEventLog([new_event(_created("Kỳ họp thứ 7"), aggregate_id="v1", actor="x")])
    directory = await Directory().catch_up(log)
    await log.append(new_event(ActivityEditedV1(title="Kỳ họp thứ Bảy"), aggregate_id="v1", actor="x"))
    await log.append(new_event(_created("Kỳ họp 7 (trùng)"), aggregate_id="v2", actor="x"))
    await log.append(new_event(ActivityMergedV1(into_activity_id="v1"), aggregate_id="v2", actor="x"))
    reads: list[int] = []
    original = log.read_subjects

    def counting(subject_filter: str, batch: int = 256, start_sequence: int = 1):  # type: ignore[no-untyped-def]
        reads.append(start_sequence)
        return original(subject_filter, batch, start_sequence)

    log.read_subjects = counting  # type: ignore[method-assign]
    await directory.catch_up(log)
    assert reads and set(reads) == {2}
    assert [a.title for a in directory.activities.live()] == ["Kỳ họp thứ Bảy"]
    assert directory.activities.resolve("v2").activity_id == "v1"  # type: ignore[union-attr]
    reads.clear()
    await directory.catch_up(log)
    assert reads == []  # nothing new: nothing read
