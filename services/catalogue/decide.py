"""The catalogue's decisions: pure functions from an aggregate's state and a
command to the events to append, or a :class:`~shared.commands.Refused`.

No I/O here: the API loads the history, folds it (``fold_asset``,
``shared.activities.fold_activity``), calls a ``decide_*`` function and
appends what it returns with the history's last sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.catalogue.commands import CreateActivity, EditActivity, EditMetadata, Publish, SetRestriction, Unpublish
from shared.activities import Activity
from shared.auth import Principal
from shared.commands import Decision, Refused, not_found
from shared.events.media import AssetProcessingFailedV1, AssetProcessingRetryRequestedV1, AssetRenditionsReadyV1
from shared.events.models import EventPayload
from shared.events.publishing import (
    ActivityPublishedV2,
    AssetPublishedV2,
    AssetRestrictionSetV1,
    AssetUnpublishedV1,
)
from shared.events.tagging import (
    EDITABLE_FIELDS,
    ActivityCreatedV1,
    ActivityEditedV1,
    ActivityMergedV1,
    AssetActivityAssignedV1,
    AssetMetadataEditedV1,
    AssetRetagRequestedV1,
    PersonRegisteredV1,
)
from shared.fields import text_problem
from shared.people import Person
from shared.policy import Visibility, may_see
from shared.ports import StoredEvent
from shared.publication import fold_visibility
from shared.speeches import fold_speech_event
from shared.tags import fold_tag_event


@dataclass(frozen=True)
class AssetState:
    """An asset as the catalogue's commands need it: its tags (manual wins) and last sequence."""

    asset_id: str
    tags: dict[str, Any]
    sequence: int
    # Who may see it (shared.publication): internal and unpublished until an archivist publishes it.
    visibility: Visibility = field(default_factory=lambda: Visibility(uploaded_by=""))

    @property
    def activity_id(self) -> str | None:
        value = self.tags.get("activity_id")
        return str(value) if value else None


def fold_asset(history: Sequence[StoredEvent]) -> AssetState | None:
    if not history:
        return None
    tags: dict[str, Any] = {}
    visibility: Visibility | None = None
    for stored in history:
        tags = fold_speech_event(fold_tag_event(tags, stored.envelope), stored.envelope)
        visibility = fold_visibility(visibility, stored.envelope)
    return AssetState(
        history[0].envelope.aggregate_id,
        tags,
        history[-1].sequence,
        visibility if visibility is not None else Visibility(uploaded_by=""),
    )


def asset_not_found(asset_id: str) -> Refused:
    return not_found("asset_not_found", "tư liệu", "asset", asset_id)


def activity_not_found(activity_id: str) -> Refused:
    return not_found("activity_not_found", "hoạt động", "activity", activity_id)


def payload_of(model: type[EventPayload], data: dict[str, Any]) -> EventPayload:
    """A payload from user input; what the model refuses becomes a bilingual 422."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        vi, en = [], []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"])
            reason = text_problem(dict(e))
            vi.append(f"{where}: {reason.message_vi if reason else e['msg']}")
            en.append(f"{where}: {reason.message_en if reason else e['msg']}")
        raise Refused(
            "invalid_value", f"Giá trị không hợp lệ: {'; '.join(vi)}", f"Invalid value: {'; '.join(en)}"
        ) from exc


# --- assets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corrector:
    """Who corrects an asset's details: an archivist any asset, anyone else (a broadcaster)
    only their own upload, and only until it is published — from then on the archive
    answers for what the public sees."""

    principal: Principal
    any_asset: bool
    now: datetime


def decide_edit_metadata(
    asset: AssetState | None, asset_id: str, edit: EditMetadata, by: Corrector | None = None
) -> Decision:
    """A correction of an existing asset; hand-set values win over automatic tags."""
    if asset is None:
        raise asset_not_found(asset_id)
    if by is not None and not by.any_asset:
        if not may_see(by.principal, asset.visibility, by.now):
            raise asset_not_found(asset_id)  # one the caller may not see is not there for them
        if asset.visibility.uploaded_by != by.principal.subject:
            raise Refused(
                "not_your_upload",
                "Bạn chỉ sửa được tư liệu do chính mình tải lên.",
                "You may correct only the assets you uploaded.",
                status=403,
            )
        if asset.visibility.published:
            raise Refused(
                "already_published",
                "Tư liệu đã xuất bản: đề nghị lưu trữ viên sửa giúp.",
                "The asset is published: ask an archivist to correct it.",
                status=409,
            )
    unknown = [f for f in edit.reset if f not in EDITABLE_FIELDS]
    if unknown:
        raise Refused(
            "invalid_reset",
            f"Không thể đặt lại trường: {', '.join(unknown)}.",
            f"Cannot reset fields: {', '.join(unknown)}; allowed: {', '.join(EDITABLE_FIELDS)}.",
        )
    payload = payload_of(AssetMetadataEditedV1, edit.model_dump(exclude_none=True))
    assert isinstance(payload, AssetMetadataEditedV1)
    if not payload.changed_fields() and not payload.reset:
        raise Refused("nothing_to_change", "Không có trường nào để sửa.", "No field to change.")
    return [payload]


def decide_retag(asset: AssetState | None, asset_id: str, reason: str) -> Decision:
    """Ask the tagger to tag an existing asset again."""
    if asset is None:
        raise asset_not_found(asset_id)
    return [payload_of(AssetRetagRequestedV1, {"reason": reason})]


def processing_outcome(history: Sequence[StoredEvent]) -> AssetProcessingFailedV1 | str:
    """Where the asset's transcoding stands: the failure to retry, or ``"pending"`` /
    ``"ready"`` (the last of ingest, renditions, failure, retry request decides)."""
    state: AssetProcessingFailedV1 | str = "pending"
    for stored in history:
        kind = stored.envelope.type
        if kind == AssetRenditionsReadyV1.EVENT_TYPE:
            state = "ready"
        elif kind == AssetProcessingRetryRequestedV1.EVENT_TYPE:
            state = "pending"
        elif kind == AssetProcessingFailedV1.EVENT_TYPE:
            failed = stored.envelope.typed_payload()
            assert isinstance(failed, AssetProcessingFailedV1)
            state = failed
    return state


def decide_processing_retry(history: Sequence[StoredEvent], asset_id: str, note: str) -> Decision:
    """Ask the transcoder to run a failed job again; only a failed one (one request at a time)."""
    if not history:
        raise asset_not_found(asset_id)
    state = processing_outcome(history)
    if state == "pending":
        raise Refused(
            "processing_in_progress",
            "Tư liệu đang chờ hoặc đang được xử lý; chỉ thử lại được khi xử lý thất bại.",
            "The asset is waiting for or undergoing processing; only a failed job can be retried.",
            status=409,
        )
    if state == "ready":
        raise Refused(
            "processing_not_failed",
            "Tư liệu đã xử lý xong, không cần thử lại.",
            "The asset is already processed; there is nothing to retry.",
            status=409,
        )
    assert isinstance(state, AssetProcessingFailedV1)
    return [payload_of(AssetProcessingRetryRequestedV1, {"failure_code": state.code, "note": note})]


def decide_assign(asset: AssetState | None, asset_id: str, requested: str | None, target: Activity | None) -> Decision:
    """Put an asset in an activity (``requested`` None: take it out of its activity).

    ``target`` is the activity ``requested`` resolves to after following merges,
    None if there is no such activity. The activity's title is carried into the
    asset's event so search finds the asset by it.
    """
    if asset is None:
        raise asset_not_found(asset_id)
    if requested is not None and target is None:
        raise activity_not_found(requested)
    if target is not None and target.merged_into is not None:
        raise Refused(
            "activity_merged",
            f"Hoạt động {target.activity_id} đã được gộp vào hoạt động khác.",
            f"Activity {target.activity_id} has been merged into another one.",
            status=409,
        )
    return [
        AssetActivityAssignedV1(
            activity_id=target.activity_id if target else None,
            activity_title=target.title if target else "",
            previous_activity_id=asset.activity_id,
        )
    ]


def decide_follow(asset: AssetState | None, asset_id: str, target: Activity) -> Decision:
    """Carry a merge or rename to one of its assets: into ``target`` with its title now,
    unless the asset is there already (the follow-up is run again after a crash, and by
    every replica: it must be idempotent)."""
    if (
        asset is not None
        and asset.activity_id == target.activity_id
        and asset.tags.get("activity_title") == target.title
    ):
        return []
    return decide_assign(asset, asset_id, target.activity_id, target)


# --- publishing --------------------------------------------------------------------------


def _checked_window(publish_at: datetime | None, unpublish_at: datetime | None, now: datetime) -> None:
    """The publication window must end after it starts (None: at once), and not already be over."""
    if unpublish_at is None:
        return
    if publish_at is not None and unpublish_at <= publish_at:
        raise Refused(
            "invalid_publication_window",
            "Thời điểm gỡ xuất bản (unpublish_at) phải sau thời điểm xuất bản (publish_at).",
            "unpublish_at must be after publish_at.",
            field="unpublish_at",
        )
    if unpublish_at <= now:
        raise Refused(
            "publication_window_over",
            "Thời điểm gỡ xuất bản (unpublish_at) đã qua; muốn gỡ ngay thì dùng lệnh gỡ xuất bản.",
            "unpublish_at is already past; to take the asset off now, unpublish it.",
            field="unpublish_at",
        )


# An asset's own publication decisions: a person's, or an activity publication's carried to it.
PUBLICATION_DECISIONS = frozenset(
    {AssetPublishedV2.EVENT_TYPE, AssetUnpublishedV1.EVENT_TYPE, AssetRestrictionSetV1.EVENT_TYPE}
)


def decide_publish_follow(
    history: Sequence[StoredEvent], asset_id: str, cause_sequence: int, cmd: Publish, now: datetime
) -> Decision:
    """Carry an activity's publication (appended at ``cause_sequence``) to one of its assets,
    unless the asset's publication was decided since: by that publication's own request, or
    by a person afterwards, whose decision stands. Run again after a crash and by every
    replica, so it must be idempotent."""
    if any(s.sequence > cause_sequence and s.envelope.type in PUBLICATION_DECISIONS for s in history):
        return []
    return decide_publish(fold_asset(history), asset_id, cmd, now)


def decide_publish(asset: AssetState | None, asset_id: str, cmd: Publish, now: datetime) -> Decision:
    """Publish an asset, or change its window or restriction.

    ``publish_at`` omitted: at once (None in the event: readers show it as soon as they read
    it, whatever this replica's clock says), or the current one if the asset is already
    published (changing the restriction does not move it in the feed);
    ``restriction`` omitted: the asset's own (internal for a new upload).
    The same publication again is no event at all (PUT is idempotent).
    """
    if asset is None:
        raise asset_not_found(asset_id)
    current = asset.visibility
    kept_start = current.publish_at if current.published else None
    publish_at = cmd.publish_at or kept_start
    restriction = cmd.restriction or current.restriction
    _checked_window(publish_at, cmd.unpublish_at, now)
    if current.published and (current.publish_at, current.unpublish_at, current.restriction) == (
        publish_at,
        cmd.unpublish_at,
        restriction,
    ):
        return []
    data = {
        "publish_at": publish_at,
        "unpublish_at": cmd.unpublish_at,
        "restriction": restriction,
        "note": cmd.note,
    }
    return [payload_of(AssetPublishedV2, data)]


def decide_unpublish(asset: AssetState | None, asset_id: str, cmd: Unpublish) -> Decision:
    """Take a published asset off (its restriction stays)."""
    if asset is None:
        raise asset_not_found(asset_id)
    if not asset.visibility.published:
        raise Refused(
            "not_published",
            f"Tư liệu {asset_id} chưa được xuất bản.",
            f"Asset {asset_id} is not published.",
            status=409,
        )
    return [payload_of(AssetUnpublishedV1, {"reason": cmd.reason})]


def decide_set_restriction(asset: AssetState | None, asset_id: str, cmd: SetRestriction) -> Decision:
    """Who may see the asset, published or not; the same restriction again is no event."""
    if asset is None:
        raise asset_not_found(asset_id)
    if asset.visibility.restriction is cmd.restriction:
        return []
    return [payload_of(AssetRestrictionSetV1, {"restriction": cmd.restriction, "note": cmd.note})]


def decide_publish_activity(
    activity: Activity | None, activity_id: str, assets: Sequence[str], cmd: Publish, now: datetime
) -> Decision:
    """Publish every asset of an activity with one window (``publish_at`` omitted: at once,
    each asset already published keeping its own start); the assets' own events follow,
    caused by this one."""
    if activity is None:
        raise activity_not_found(activity_id)
    if activity.merged_into is not None:
        raise Refused(
            "activity_merged",
            f"Hoạt động {activity_id} đã được gộp vào hoạt động {activity.merged_into}; hãy xuất bản hoạt động đó.",
            f"Activity {activity_id} has been merged into {activity.merged_into}; publish that one.",
            status=409,
        )
    if not assets:
        raise Refused(
            "activity_has_no_assets",
            f"Hoạt động {activity_id} chưa có tư liệu nào để xuất bản.",
            f"Activity {activity_id} has no assets to publish.",
            status=409,
        )
    publish_at = cmd.publish_at
    _checked_window(publish_at, cmd.unpublish_at, now)
    data = {
        "publish_at": publish_at,
        "unpublish_at": cmd.unpublish_at,
        "restriction": cmd.restriction,
        "note": cmd.note,
        "asset_ids": tuple(assets),
    }
    return [payload_of(ActivityPublishedV2, data)]


# --- activities --------------------------------------------------------------------------


def decide_create_activity(create: CreateActivity) -> Decision:
    return [payload_of(ActivityCreatedV1, create.model_dump())]


def decide_edit_activity(activity: Activity | None, activity_id: str, edit: EditActivity) -> Decision:
    if activity is None:
        raise activity_not_found(activity_id)
    return [payload_of(ActivityEditedV1, edit.model_dump(exclude_none=True))]


def decide_merge(source: Activity | None, source_id: str, target: Activity | None, target_id: str) -> Decision:
    """A duplicate activity merged into the one that stays (its assets move there afterwards)."""
    if source is None:
        raise activity_not_found(source_id)
    if target is None:
        raise activity_not_found(target_id)
    if source.activity_id == target.activity_id or target.merged_into or source.merged_into:
        raise Refused(
            "invalid_merge",
            "Không thể gộp: hoạt động trùng nhau hoặc đã được gộp.",
            "Cannot merge: same activity, or one of them is already merged.",
        )
    return [ActivityMergedV1(into_activity_id=target.activity_id)]


# --- people ------------------------------------------------------------------------------


def decide_register_person(history: Sequence[StoredEvent], person: Person) -> Decision:
    """Add a person to the registry; one already registered is left as is (imports are repeatable)."""
    if history:
        return []
    data = {"name": person.name, "role": person.role, "organ": person.organ, "term": person.term}
    return [payload_of(PersonRegisteredV1, data)]
