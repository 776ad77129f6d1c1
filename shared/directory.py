"""The council directory: the people registry and the activities (with the assets
assigned to each) as the log says now.

A read model, folded from events: the tagger reads it to recognise people and
suggest activities, the catalogue to list activities and people and to find
the assets a merge or a rename must reach. Commands never validate against it
(they decide on their own aggregate's history).

It catches up incrementally: each call reads only what was appended since the
last one, so a job or a request sees every change made before it started.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from shared.activities import Activities
from shared.catch_up import fold_appended
from shared.events.tagging import AssetActivityAssignedV1, PersonRegisteredV1
from shared.people import Person, Registry, bundled_registry
from shared.ports import EventLog, StoredEvent
from shared.subjects import aggregate_type_filter, event_type_filter

# The events the directory folds; each filter is read from where the last catch-up stopped.
_FILTERS = (
    aggregate_type_filter("person"),
    aggregate_type_filter("activity"),
    event_type_filter(AssetActivityAssignedV1.EVENT_TYPE),
)


@dataclass
class Directory:
    registry: Registry = field(default_factory=bundled_registry)
    activities: Activities = field(default_factory=Activities)
    read_up_to: int = 0  # every event at or below this stream sequence is folded in
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def apply(self, stored: StoredEvent) -> None:
        p = stored.envelope.typed_payload()
        if isinstance(p, PersonRegisteredV1):
            self.registry.add(Person(stored.envelope.aggregate_id, p.name, p.role, p.organ, p.term))
        else:
            self.activities.apply(stored)

    async def catch_up(self, events: EventLog) -> Directory:
        """Fold what was appended since the last call (up to the stream's end as of now)."""
        async with self._lock:  # concurrent requests share one read
            # The three folds are independent of each other.
            self.read_up_to = await fold_appended(events, _FILTERS, self.read_up_to, self.apply)
        return self
