"""Collections as folded from the log: one aggregate's state.

Plain functions over events, shared by the catalogue (which decides commands on a
collection's history) and search (which expands a collection at query time: hand
members, plus what its saved search matches now, minus hand exclusions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.events.collections import (
    KIND_LABELS_VI,
    CollectionAssetAddedV1,
    CollectionAssetExcludedV1,
    CollectionAssetRemovedV1,
    CollectionCreatedV1,
    CollectionEditedV1,
    CollectionExclusionLiftedV1,
    CollectionKind,
    SavedSearch,
)
from shared.ports import EventLog, StoredEvent
from shared.subjects import aggregate_type_filter

# The fields ``collection.edited`` changes when given (None: unchanged).
_EDITABLE = ("kind", "title", "term", "year", "description")


@dataclass(frozen=True)
class Member:
    """An asset put in by hand: its place in the order, its note, when it was (re)placed."""

    asset_id: str
    position: int
    note: str
    placed_at: int  # stream sequence of the last placing: breaks ties in position


@dataclass(frozen=True)
class Collection:
    collection_id: str
    kind: CollectionKind
    title: str
    term: str | None = None
    year: int | None = None
    description: str = ""
    saved_search: SavedSearch | None = None
    members: dict[str, Member] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # asset id -> note
    created_by: str = ""
    sequence: int = 0  # last stream sequence: the expected value for the next command

    def ordered_members(self) -> list[Member]:
        """Hand members in the collection's order: by position; on a tie the one placed last
        first (moving an asset to position 0 puts it in front of the one there)."""
        return sorted(self.members.values(), key=lambda m: (m.position, -m.placed_at))

    def next_position(self) -> int:
        return max((m.position for m in self.members.values()), default=-1) + 1

    def view(self) -> dict[str, Any]:
        return {
            "collection_id": self.collection_id,
            "kind": self.kind.value,
            "kind_label": KIND_LABELS_VI[self.kind],
            "title": self.title,
            "term": self.term,
            "year": self.year,
            "description": self.description,
            "saved_search": self.saved_search.model_dump(mode="json", exclude_defaults=True)
            if self.saved_search
            else None,
            "members": [
                {"asset_id": m.asset_id, "position": m.position, "note": m.note} for m in self.ordered_members()
            ],
            "excluded": [{"asset_id": a, "note": n} for a, n in sorted(self.excluded.items())],
            "created_by": self.created_by,
            "sequence": self.sequence,
        }


def fold_collection(history: Sequence[StoredEvent]) -> Collection | None:
    """The collection its events describe; None before ``collection.created``."""
    state: Collection | None = None
    for stored in history:
        env = stored.envelope
        p = env.typed_payload()
        if isinstance(p, CollectionCreatedV1):
            state = Collection(
                env.aggregate_id,
                p.kind,
                p.title,
                p.term,
                p.year,
                p.description,
                p.saved_search,
                created_by=env.actor,
            )
        elif state is None:
            continue
        elif isinstance(p, CollectionEditedV1):
            changed = {k: getattr(p, k) for k in _EDITABLE if getattr(p, k) is not None}
            search = None if p.drop_saved_search else (p.saved_search or state.saved_search)
            state = replace(state, **changed, saved_search=search)
        elif isinstance(p, CollectionAssetAddedV1):
            member = Member(p.asset_id, p.position, p.note, stored.sequence)
            excluded = {a: n for a, n in state.excluded.items() if a != p.asset_id}
            state = replace(state, members={**state.members, p.asset_id: member}, excluded=excluded)
        elif isinstance(p, CollectionAssetRemovedV1):
            state = replace(state, members={a: m for a, m in state.members.items() if a != p.asset_id})
        elif isinstance(p, CollectionAssetExcludedV1):
            members = {a: m for a, m in state.members.items() if a != p.asset_id}
            state = replace(state, members=members, excluded={**state.excluded, p.asset_id: p.note})
        elif isinstance(p, CollectionExclusionLiftedV1):
            state = replace(state, excluded={a: n for a, n in state.excluded.items() if a != p.asset_id})
        state = replace(state, sequence=stored.sequence)
    return state


async def every_collection(events: EventLog) -> list[Collection]:
    """Every collection, each folded from its own events (one read of the collection subjects)."""
    by_id: dict[str, list[StoredEvent]] = {}
    async for stored in events.read_subjects(aggregate_type_filter("collection")):
        by_id.setdefault(stored.envelope.aggregate_id, []).append(stored)
    return [c for c in (fold_collection(h) for h in by_id.values()) if c is not None]
