"""catalogue HTTP API: thin handlers. Each command loads one aggregate's history,
decides purely (``decide.py``) and appends with the expected sequence
(``shared.commands.run_command``); queries read the directory read model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from services.catalogue import decide
from services.catalogue.commands import (
    AssignActivity,
    Classify,
    CreateActivity,
    EditActivity,
    EditMetadata,
    MergeActivity,
    Publish,
    RequestRetag,
    RetryProcessing,
    SetRestriction,
    Unpublish,
)
from shared.access import requires
from shared.activities import Activity, fold_activity
from shared.auth import Principal
from shared.commands import Decision, run_command
from shared.delegates import DelegateDirectory
from shared.directory import Directory
from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import AssetIngestedV1
from shared.events.publishing import ActivityPublishedV2
from shared.events.tagging import AssetRetagRequestedV1
from shared.http import UserError, app_deps, checked_id
from shared.ids import uuid7
from shared.people import Person, parse_people_csv
from shared.policy import Action, Visibility, allowed, may_see, visibility_filter
from shared.ports import EventLog, StoredEvent
from shared.settings import Settings
from shared.subjects import aggregate_type_filter, event_type_filter
from shared.vocabulary import classify

# How many merges a chain may have before it is taken for a loop.
_MAX_MERGE_HOPS = 32
# Decisions that read activities (merges, assignments) are checked against every
# activity event: a merge, rename or other merge meanwhile makes them decide again,
# so two crossed merges cannot both land and no asset is put on a merged activity.
ACTIVITIES = aggregate_type_filter("activity")
# Assets moved by a merge or rename are the system's follow-up, not a person's
# request: they are retried longer before giving up.
FOLLOW_UP_ATTEMPTS = 8


@dataclass
class CatalogueDeps:
    settings: Settings
    events: EventLog
    known: Directory = field(default_factory=Directory)
    delegates: DelegateDirectory = field(default_factory=DelegateDirectory)
    background: list[asyncio.Task[None]] = field(default_factory=list)

    async def readiness(self) -> dict[str, bool]:
        return {"nats": await self.events.ready()}

    async def close(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.events.close()

    async def directory(self) -> Directory:
        """People and activities as the log says now (caught up incrementally)."""
        return await self.known.catch_up(self.events)


Deps = Annotated[CatalogueDeps, Depends(app_deps)]
router = APIRouter(prefix="/v1")
# Every route names the action it takes (shared/policy.py decides who may).
Classifier = Annotated[Principal, Depends(requires(Action.CLASSIFY))]
Reader = Annotated[Principal, Depends(requires(Action.ASSET_READ))]
Editor = Annotated[Principal, Depends(requires(Action.ASSET_EDIT))]
Corrector = Annotated[Principal, Depends(requires(Action.ASSET_CORRECT))]
Retagger = Annotated[Principal, Depends(requires(Action.ARCHIVE_RETAG))]
ActivityReader = Annotated[Principal, Depends(requires(Action.ACTIVITY_READ))]
ActivityEditor = Annotated[Principal, Depends(requires(Action.ACTIVITY_EDIT))]
PeopleReader = Annotated[Principal, Depends(requires(Action.PEOPLE_READ))]
PeopleEditor = Annotated[Principal, Depends(requires(Action.PEOPLE_EDIT))]
Publisher = Annotated[Principal, Depends(requires(Action.ASSET_PUBLISH))]


# --- views -----------------------------------------------------------------------------------


def tags_view(asset_id: str, history: Sequence[StoredEvent]) -> dict[str, Any]:
    """The asset's tags as folded from its events (manual wins), with the audit trail."""
    state = decide.fold_asset(history)
    trail = [
        {
            "type": s.envelope.type,
            "sequence": s.sequence,
            "actor": s.envelope.actor,
            "occurred_at": s.envelope.occurred_at.isoformat(),
            "payload": s.envelope.payload,
        }
        for s in history
        if s.envelope.type != AssetIngestedV1.EVENT_TYPE
    ]
    return {"asset_id": asset_id, **(state.tags if state else {}), "events": trail}


def activity_view(act: Activity, assets: list[str]) -> dict[str, Any]:
    return {
        "activity_id": act.activity_id,
        "title": act.title,
        "activity_type": act.activity_type,
        "term": act.term,
        "start_date": act.start_date.isoformat(),
        "end_date": act.end_date.isoformat() if act.end_date else None,
        "place": act.place,
        "organs": list(act.organs),
        "merged_into": act.merged_into,
        "assets": assets,
    }


# --- loading one aggregate ---------------------------------------------------------------------


def _asset_id(value: str) -> str:
    return checked_id("asset", value, "tư liệu", "asset")


def _activity_id(value: str) -> str:
    return checked_id("activity", value, "hoạt động", "activity")


async def load_activity(events: EventLog, activity_id: str) -> Activity | None:
    return fold_activity(await events.history("activity", _activity_id(activity_id)))


async def resolve_activity(events: EventLog, activity_id: str) -> Activity | None:
    """The activity ``activity_id`` stands for now: merges are followed to the one that stays."""
    act = await load_activity(events, activity_id)
    for _ in range(_MAX_MERGE_HOPS):
        if act is None or act.merged_into is None:
            return act
        act = await load_activity(events, act.merged_into)
    return act  # still merged: decide_assign refuses it


async def assign_assets(
    d: CatalogueDeps, asset_ids: list[str], target: Activity, actor: str, cause: EventEnvelope | None
) -> None:
    """(Re-)assign assets to ``target``, carrying its current title into each asset's events
    (and so into the search index), caused by the merge or rename that required it; an asset
    already there is left as it is (``follow_ups`` may have got there first)."""
    for asset_id in asset_ids:
        await run_command(
            d.events,
            "asset",
            asset_id,
            lambda h, asset_id=asset_id: decide.decide_follow(decide.fold_asset(h), asset_id, target),  # type: ignore[misc]
            actor=actor,
            causation=cause,
            attempts=FOLLOW_UP_ATTEMPTS,
        )


# --- assets ----------------------------------------------------------------------------------


@router.post("/classify", summary="Đề xuất loại hoạt động cho một đoạn văn / classify a text")
async def classify_text(body: Classify, who: Classifier) -> dict[str, Any]:
    return classify(body.text).as_json()


@router.get("/assets/{asset_id}/tags", summary="Nhãn của tư liệu (tự động và sửa tay) / an asset's tags")
async def get_tags(asset_id: str, who: Reader, d: Deps) -> dict[str, Any]:
    history = await d.events.history("asset", _asset_id(asset_id))
    state = decide.fold_asset(history)
    if state is None or not may_see(who, state.visibility, datetime.now(UTC)):
        raise decide.asset_not_found(asset_id)  # one the caller may not see is not there for them
    return tags_view(asset_id, history)


@router.patch(
    "/assets/{asset_id}/metadata",
    summary="Sửa thông tin (phóng viên: tư liệu mình tải lên, chưa xuất bản) / correct details",
)
async def edit_metadata(asset_id: str, body: EditMetadata, who: Corrector, d: Deps) -> dict[str, Any]:
    _asset_id(asset_id)
    by = decide.Corrector(who, allowed(who, Action.ASSET_EDIT), datetime.now(UTC))
    await run_command(
        d.events,
        "asset",
        asset_id,
        lambda h: decide.decide_edit_metadata(decide.fold_asset(h), asset_id, body, by),
        actor=who.actor,
    )
    return tags_view(asset_id, await d.events.history("asset", asset_id))


@router.post("/assets/{asset_id}/retag", status_code=202, summary="Gắn nhãn lại một tư liệu / re-tag")
async def retag_one(asset_id: str, who: Editor, d: Deps, body: RequestRetag | None = None) -> dict[str, Any]:
    _asset_id(asset_id)
    reason = body.reason if body else ""
    result = await run_command(
        d.events,
        "asset",
        asset_id,
        lambda h: decide.decide_retag(decide.fold_asset(h), asset_id, reason),
        actor=who.actor,
    )
    return {"asset_id": asset_id, "retag_event_id": result.appended[0].event_id, "sequence": result.last_sequence}


@router.post(
    "/assets/{asset_id}/processing/retry",
    status_code=202,
    summary="Xử lý lại tư liệu bị lỗi / retry a failed transcode",
)
async def retry_processing(asset_id: str, who: Editor, d: Deps, body: RetryProcessing | None = None) -> dict[str, Any]:
    """Only a failed job: the transcoder runs it again and records exactly one new outcome."""
    _asset_id(asset_id)
    note = body.note if body else ""
    result = await run_command(
        d.events,
        "asset",
        asset_id,
        lambda h: decide.decide_processing_retry(h, asset_id, note),
        actor=who.actor,
    )
    return {"asset_id": asset_id, "retry_event_id": result.appended[0].event_id, "sequence": result.last_sequence}


@router.post("/retag", status_code=202, summary="Gắn nhãn lại toàn bộ kho (đổi từ vựng) / re-tag all")
async def retag_all(who: Retagger, d: Deps, body: RequestRetag | None = None) -> dict[str, Any]:
    """A bulk request (after a vocabulary change), not a decision on one asset: one
    ``asset.retag_requested`` per ingested asset, no expected sequence."""
    reason = (body.reason if body else "") or "vocabulary change"
    payload = decide.payload_of(AssetRetagRequestedV1, {"reason": reason})
    count = 0
    async for stored in d.events.read_subjects(event_type_filter(AssetIngestedV1.EVENT_TYPE)):
        await d.events.append(new_event(payload, aggregate_id=stored.envelope.aggregate_id, actor=who.actor))
        count += 1
    return {"requested": count}


@router.put("/assets/{asset_id}/activity", summary="Gán tư liệu vào hoạt động / assign to an activity")
async def assign(asset_id: str, body: AssignActivity, who: Editor, d: Deps) -> dict[str, Any]:
    _asset_id(asset_id)
    target: Activity | None = None

    async def assign_to(history: list[StoredEvent]) -> Decision:
        nonlocal target
        target = await resolve_activity(d.events, body.activity_id) if body.activity_id is not None else None
        return decide.decide_assign(decide.fold_asset(history), asset_id, body.activity_id, target)

    await run_command(d.events, "asset", asset_id, assign_to, actor=who.actor, guard=ACTIVITIES)
    return {
        "asset_id": asset_id,
        "activity_id": target.activity_id if target else None,
        "activity_title": target.title if target else None,
    }


# --- publishing (xuất bản) ------------------------------------------------------------------------


def publication_view(asset_id: str, v: Visibility) -> dict[str, Any]:
    return {
        "asset_id": asset_id,
        "published": v.published,
        "publish_at": v.publish_at.isoformat() if v.publish_at else None,
        "unpublish_at": v.unpublish_at.isoformat() if v.unpublish_at else None,
        "published_since": v.published_since.isoformat() if v.published_since else None,
        "restriction": v.restriction.value,
    }


async def _asset_command(
    d: CatalogueDeps,
    asset_id: str,
    decide_on: Callable[[decide.AssetState | None], Decision],
    actor: str,
    cause: EventEnvelope | None = None,
    attempts: int = 2,
) -> dict[str, Any]:
    """Run one asset command and answer the asset's publication as it stands after it."""
    result = await run_command(
        d.events,
        "asset",
        asset_id,
        lambda h: decide_on(decide.fold_asset(h)),
        actor=actor,
        causation=cause,
        attempts=attempts,
    )
    state = decide.fold_asset([*result.history, *_as_stored(result.appended)])
    assert state is not None
    return {
        **publication_view(asset_id, state.visibility),
        "changed": bool(result.appended),
        # The asset's last stream sequence: search's after_seq waits for it (read your writes).
        "sequence": result.last_sequence,
    }


def _as_stored(appended: list[EventEnvelope]) -> list[StoredEvent]:
    return [StoredEvent(0, event.subject, event) for event in appended]  # folded for the answer only


@router.put("/assets/{asset_id}/publication", summary="Xuất bản tư liệu, đổi thời hạn hay phạm vi / publish an asset")
async def publish_asset(asset_id: str, body: Publish, who: Publisher, d: Deps) -> dict[str, Any]:
    _asset_id(asset_id)
    now = datetime.now(UTC)
    return await _asset_command(d, asset_id, lambda a: decide.decide_publish(a, asset_id, body, now), who.actor)


@router.delete("/assets/{asset_id}/publication", summary="Gỡ xuất bản tư liệu / unpublish an asset")
async def unpublish_asset(asset_id: str, who: Publisher, d: Deps, body: Unpublish | None = None) -> dict[str, Any]:
    _asset_id(asset_id)
    cmd = body or Unpublish()
    return await _asset_command(d, asset_id, lambda a: decide.decide_unpublish(a, asset_id, cmd), who.actor)


@router.put("/assets/{asset_id}/restriction", summary="Phạm vi xem tư liệu / who may see an asset")
async def set_restriction(asset_id: str, body: SetRestriction, who: Publisher, d: Deps) -> dict[str, Any]:
    _asset_id(asset_id)
    return await _asset_command(d, asset_id, lambda a: decide.decide_set_restriction(a, asset_id, body), who.actor)


@router.post("/activities/{activity_id}/publication", summary="Xuất bản tư liệu của hoạt động / publish an activity")
async def publish_activity(activity_id: str, body: Publish, who: Publisher, d: Deps) -> dict[str, Any]:
    """One ``activity.published`` event, then one asset command per asset of the activity,
    caused by it (each decided on its own history, like the assets a merge moves)."""
    _activity_id(activity_id)
    now = datetime.now(UTC)
    assets: list[str] = []

    async def publish(history: list[StoredEvent]) -> Decision:
        nonlocal assets
        assets = (await d.directory()).activities.assets_of(activity_id)
        return decide.decide_publish_activity(fold_activity(history), activity_id, assets, body, now)

    result = await run_command(d.events, "activity", activity_id, publish, actor=who.actor)
    cause = result.appended[0]
    decided = cause.typed_payload()
    assert isinstance(decided, ActivityPublishedV2)
    # Every asset gets the activity's window (publish_at None: at once; one already published keeps its start).
    each = Publish(
        publish_at=decided.publish_at,
        unpublish_at=decided.unpublish_at,
        restriction=decided.restriction,
        note=decided.note,
    )
    published: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for asset_id in decided.asset_ids:
        try:
            published.append(
                await _asset_command(
                    d,
                    asset_id,
                    partial(decide.decide_publish, asset_id=asset_id, cmd=each, now=now),
                    who.actor,
                    cause,
                    FOLLOW_UP_ATTEMPTS,
                )
            )
        except UserError as exc:  # one asset refusing does not stop the others
            refused.append({"asset_id": asset_id, **exc.body()["error"]})
    return {
        "activity_id": activity_id,
        "event_id": cause.event_id,  # each asset's asset.published names it as its cause
        "publish_at": decided.publish_at.isoformat() if decided.publish_at else None,  # None: at once
        "unpublish_at": decided.unpublish_at.isoformat() if decided.unpublish_at else None,
        "restriction": decided.restriction.value if decided.restriction else None,
        "assets": published,
        "refused": refused,
    }


# --- activities ------------------------------------------------------------------------------


@router.post("/activities", status_code=201, summary="Tạo hoạt động / create an activity")
async def create_activity(body: CreateActivity, who: ActivityEditor, d: Deps) -> dict[str, Any]:
    activity_id = "v" + uuid7().hex
    result = await run_command(
        d.events, "activity", activity_id, lambda h: decide.decide_create_activity(body), actor=who.actor
    )
    act = fold_activity(await d.events.history("activity", activity_id))
    assert act is not None, result
    return activity_view(act, [])


async def visible_assets(d: CatalogueDeps, who: Principal, asset_ids: list[str]) -> list[str]:
    """The assets of an activity the caller may see: an embargoed or restricted one is not
    even listed (its id would say it exists). Archivists see all without a read."""
    if visibility_filter(who) is None:
        return asset_ids
    now = datetime.now(UTC)
    shown = []
    for asset_id in asset_ids:
        state = decide.fold_asset(await d.events.history("asset", asset_id))
        if state is not None and may_see(who, state.visibility, now):
            shown.append(asset_id)
    return shown


@router.get("/activities", summary="Danh sách hoạt động / list activities")
async def list_activities(
    who: ActivityReader, d: Deps, term: str | None = None, activity_type: str | None = None
) -> dict[str, Any]:
    directory = await d.directory()
    acts = [
        a
        for a in directory.activities.live()
        if (term is None or a.term == term) and (activity_type is None or a.activity_type == activity_type)
    ]
    acts.sort(key=lambda a: (a.start_date, a.title), reverse=True)
    views = []
    for a in acts:
        views.append(activity_view(a, await visible_assets(d, who, directory.activities.assets_of(a.activity_id))))
    return {"activities": views}


@router.get("/activities/{activity_id}", summary="Một hoạt động / one activity")
async def get_activity(activity_id: str, who: ActivityReader, d: Deps) -> dict[str, Any]:
    act = await load_activity(d.events, activity_id)
    if act is None:
        raise decide.activity_not_found(activity_id)
    return activity_view(act, await visible_assets(d, who, (await d.directory()).activities.assets_of(activity_id)))


@router.patch("/activities/{activity_id}", summary="Sửa hoạt động / edit an activity")
async def edit_activity(activity_id: str, body: EditActivity, who: ActivityEditor, d: Deps) -> dict[str, Any]:
    _activity_id(activity_id)
    result = await run_command(
        d.events,
        "activity",
        activity_id,
        lambda h: decide.decide_edit_activity(fold_activity(h), activity_id, body),
        actor=who.actor,
    )
    before = fold_activity(result.history)
    act = await load_activity(d.events, activity_id)
    assert act is not None and before is not None
    assets = (await d.directory()).activities.assets_of(activity_id)
    if act.title != before.title:  # the assets carry the title for search: tell each of them
        await assign_assets(d, assets, act, who.actor, result.appended[0])
    return activity_view(act, assets)


@router.post("/activities/{activity_id}/merge", summary="Gộp hoạt động trùng / merge a duplicate activity")
async def merge_activity(activity_id: str, body: MergeActivity, who: ActivityEditor, d: Deps) -> dict[str, Any]:
    _activity_id(activity_id)
    target: Activity | None = None

    async def merge(history: list[StoredEvent]) -> Decision:
        nonlocal target
        target = await load_activity(d.events, body.into_activity_id)
        return decide.decide_merge(fold_activity(history), activity_id, target, body.into_activity_id)

    result = await run_command(d.events, "activity", activity_id, merge, actor=who.actor, guard=ACTIVITIES)
    assert target is not None
    moved = (await d.directory()).activities.assets_of(activity_id)
    await assign_assets(d, moved, target, who.actor, result.appended[0])
    into = activity_view(target, (await d.directory()).activities.assets_of(target.activity_id))
    return {"merged": activity_id, "into": into, "moved_assets": moved}


# --- people ----------------------------------------------------------------------------------


@router.post("/people/import", summary="Nhập danh sách đại biểu từ CSV / import people from CSV")
async def import_people(
    who: PeopleEditor, d: Deps, csv_text: Annotated[str, Body(media_type="text/csv")]
) -> dict[str, Any]:
    try:
        people = parse_people_csv(csv_text)
    except ValueError as exc:
        raise UserError(
            422,
            "invalid_csv",
            "Tệp CSV không hợp lệ: cần dòng tiêu đề có cột 'name'.",
            f"Invalid CSV: {exc}",
        ) from exc
    added = 0
    for person in people:
        checked_id("person", person.person_id, "người", "person")

        def register(history: list[StoredEvent], person: Person = person) -> Decision:
            return decide.decide_register_person(history, person)

        result = await run_command(d.events, "person", person.person_id, register, actor=who.actor)
        added += len(result.appended)
    return {"rows": len(people), "added": added, "registry_size": len((await d.directory()).registry)}


@router.get("/people", summary="Danh sách người trong sổ / the people registry")
async def list_people(who: PeopleReader, d: Deps) -> dict[str, Any]:
    registry = (await d.directory()).registry
    return {
        "people": [
            {"person_id": p.person_id, "name": p.name, "role": p.role, "organ": p.organ, "term": p.term}
            for p in registry.all()
        ]
    }
