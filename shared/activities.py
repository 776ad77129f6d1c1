"""Activities (hoạt động) as folded from the log: one aggregate's state, and the
read model of all of them with the assets assigned to each.

Plain functions over events, shared by the catalogue (which decides commands
on one activity's history) and the tagger (which suggests an activity for a
new asset).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from shared.events.tagging import (
    ActivityCreatedV1,
    ActivityEditedV1,
    ActivityMergedV1,
    AssetActivityAssignedV1,
)
from shared.ports import StoredEvent


@dataclass(frozen=True)
class Activity:
    """An activity as folded from its ``activity.*`` events."""

    activity_id: str
    title: str
    activity_type: str
    start_date: date
    end_date: date | None = None
    term: str | None = None
    place: str = ""
    organs: tuple[str, ...] = ()
    merged_into: str | None = None
    sequence: int = 0  # last stream sequence: the expected value for the next command

    def covers(self, day: date) -> bool:
        return self.start_date <= day <= (self.end_date or self.start_date)


@dataclass
class Activities:
    """All activities plus which asset sits in which: a rebuildable read model."""

    by_id: dict[str, Activity] = field(default_factory=dict)
    asset_activity: dict[str, str] = field(default_factory=dict)
    # The activity title each asset's assignment carried (what search finds it by).
    asset_title: dict[str, str] = field(default_factory=dict)

    def apply(self, stored: StoredEvent) -> None:
        env = stored.envelope
        p = env.typed_payload()
        current = self.by_id.get(env.aggregate_id)
        if isinstance(p, ActivityCreatedV1):
            self.by_id[env.aggregate_id] = Activity(
                env.aggregate_id,
                p.title,
                p.activity_type,
                p.start_date,
                p.end_date,
                p.term,
                p.place,
                p.organs,
                sequence=stored.sequence,
            )
        elif isinstance(p, ActivityEditedV1) and current is not None:
            changes = {k: v for k, v in p.model_dump().items() if v is not None}
            if "organs" in changes:
                changes["organs"] = tuple(changes["organs"])
            self.by_id[env.aggregate_id] = replace(current, **changes, sequence=stored.sequence)
        elif isinstance(p, ActivityMergedV1) and current is not None:
            self.by_id[env.aggregate_id] = replace(current, merged_into=p.into_activity_id, sequence=stored.sequence)
        elif isinstance(p, AssetActivityAssignedV1):
            if p.activity_id is None:
                self.asset_activity.pop(env.aggregate_id, None)
                self.asset_title.pop(env.aggregate_id, None)
            else:
                self.asset_activity[env.aggregate_id] = p.activity_id
                self.asset_title[env.aggregate_id] = p.activity_title

    def resolve(self, activity_id: str) -> Activity | None:
        """Follow merges to the surviving activity."""
        seen: set[str] = set()
        current = self.by_id.get(activity_id)
        while current is not None and current.merged_into and current.activity_id not in seen:
            seen.add(current.activity_id)
            current = self.by_id.get(current.merged_into)
        return current

    def live(self) -> list[Activity]:
        return [a for a in self.by_id.values() if a.merged_into is None]

    def assets_of(self, activity_id: str) -> list[str]:
        return sorted(a for a, act in self.asset_activity.items() if act == activity_id)

    def unfollowed(self) -> list[tuple[str, Activity]]:
        """Assets a merge or a rename has not reached yet, with the activity each belongs in
        now: still on a merged activity, or carrying an older title. The catalogue moves them
        right after the merge or rename; these are what a crash in between left behind."""
        found = []
        for asset_id, activity_id in sorted(self.asset_activity.items()):
            target = self.resolve(activity_id)
            if target is None or target.merged_into is not None:
                continue  # a merge chain that loops: nowhere to move it
            if target.activity_id != activity_id or self.asset_title.get(asset_id) != target.title:
                found.append((asset_id, target))
        return found


def fold_activity(history: Sequence[StoredEvent]) -> Activity | None:
    """One activity's state from its own history (None: it does not exist)."""
    activities = Activities()
    for stored in history:
        activities.apply(stored)
    return activities.by_id.get(history[0].envelope.aggregate_id) if history else None
