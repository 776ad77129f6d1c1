"""The catalogue's decisions: pure functions from an aggregate's state and a
command to the events to append, or a :class:`~shared.commands.Refused`.

No I/O here: the API loads the history, folds it (``fold_asset``,
``shared.activities.fold_activity``), calls a ``decide_*`` function and
appends what it returns with the history's last sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.catalogue.commands import CreateActivity, EditActivity, EditMetadata
from shared.activities import Activity
from shared.commands import Decision, Refused, not_found
from shared.events.models import EventPayload
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
from shared.ports import StoredEvent
from shared.tags import fold_tag_event


@dataclass(frozen=True)
class AssetState:
    """An asset as the catalogue's commands need it: its tags (manual wins) and last sequence."""

    asset_id: str
    tags: dict[str, Any]
    sequence: int

    @property
    def activity_id(self) -> str | None:
        value = self.tags.get("activity_id")
        return str(value) if value else None


def fold_asset(history: Sequence[StoredEvent]) -> AssetState | None:
    if not history:
        return None
    tags: dict[str, Any] = {}
    for stored in history:
        tags = fold_tag_event(tags, stored.envelope)
    return AssetState(history[0].envelope.aggregate_id, tags, history[-1].sequence)


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


def decide_edit_metadata(asset: AssetState | None, asset_id: str, edit: EditMetadata) -> Decision:
    """An archivist's correction of an existing asset; hand-set values win over automatic tags."""
    if asset is None:
        raise asset_not_found(asset_id)
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
