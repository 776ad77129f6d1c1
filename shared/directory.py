"""The council directory: the people registry and the activities (with the assets
assigned to each) as the log says now.

A read model, rebuilt from events: the tagger reads it to recognise people and
suggest activities, the catalogue to list activities and people and to find
the assets a merge or a rename must reach. Commands never validate against it
(they decide on their own aggregate's history).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.activities import Activities
from shared.events.tagging import AssetActivityAssignedV1, PersonRegisteredV1
from shared.people import Person, Registry, bundled_registry
from shared.ports import EventLog
from shared.subjects import aggregate_type_filter, event_type_filter


@dataclass
class Directory:
    registry: Registry = field(default_factory=bundled_registry)
    activities: Activities = field(default_factory=Activities)


async def read_directory(events: EventLog) -> Directory:
    """Fold every ``person.*``, ``activity.*`` and ``asset.activity_assigned`` event."""
    directory = Directory()
    async for stored in events.read_subjects(aggregate_type_filter("person")):
        p = stored.envelope.typed_payload()
        if isinstance(p, PersonRegisteredV1):
            directory.registry.add(Person(stored.envelope.aggregate_id, p.name, p.role, p.organ, p.term))
    async for stored in events.read_subjects(aggregate_type_filter("activity")):
        directory.activities.apply(stored)
    async for stored in events.read_subjects(event_type_filter(AssetActivityAssignedV1.EVENT_TYPE)):
        directory.activities.apply(stored)
    return directory
