"""Activity changes carried to their assets, also after a crash in between.

A merge, a rename or an activity's publication is one ``activity.*`` event, then one
event per asset of the activity, appended by the request that made it
(``api.assign_assets``, ``api.publish_activity``). A catalogue killed between the two,
or an asset command that kept losing its races, would leave assets on a merged activity,
carrying an old title in search, or unpublished, until someone fixed them by hand. The
log says which assets those are (``Activities.unfollowed``, ``Publications.unfinished``):
this loop carries the change to them, at start and every
``catalogue_follow_up_interval_s``. Each step is decided on the asset's own history and
is idempotent (``decide_follow``, ``decide_publish_follow``), so a request still working
through them, or another replica doing the same, appends nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from services.catalogue import decide
from services.catalogue.api import FOLLOW_UP_ATTEMPTS, CatalogueDeps, assign_assets
from services.catalogue.commands import Publish
from shared.catch_up import fold_appended
from shared.commands import Refused, run_command
from shared.events.publishing import ActivityPublishedV1, ActivityPublishedV2
from shared.http import UserError
from shared.ports import EventLog, StoredEvent
from shared.subjects import event_type_filter

log = logging.getLogger("mam.catalogue.follow_ups")

# The assets' events name this as their actor: the system's follow-up, not a person's.
ACTOR = "catalogue-follow-up"
_PUBLICATION_FILTERS = tuple(
    event_type_filter(t) for t in sorted({ActivityPublishedV2.EVENT_TYPE, *decide.PUBLICATION_DECISIONS})
)


@dataclass
class Publications:
    """Each activity's latest publication, and per asset the stream sequence of its latest
    publication decision (folded from the log, caught up incrementally)."""

    latest: dict[str, StoredEvent] = field(default_factory=dict)
    decided: dict[str, int] = field(default_factory=dict)
    # (asset, publication event) looked at already: carried, found published as it says (no
    # event: the request left none either), or refused (its window over, the asset gone).
    # Not looked at again by this process; a later decision about the asset supersedes it.
    settled: set[tuple[str, str]] = field(default_factory=set)
    read_up_to: int = 0

    def apply(self, stored: StoredEvent) -> None:
        env = stored.envelope
        if env.type == ActivityPublishedV2.EVENT_TYPE:
            self.latest[env.aggregate_id] = stored
        elif env.type in decide.PUBLICATION_DECISIONS:
            self.decided[env.aggregate_id] = max(self.decided.get(env.aggregate_id, 0), stored.sequence)

    def unfinished(self) -> list[tuple[str, StoredEvent]]:
        """(asset, the activity publication it has not got): no decision about the asset since."""
        found = []
        for _, stored in sorted(self.latest.items()):
            payload = stored.envelope.typed_payload()
            assert isinstance(payload, ActivityPublishedV1 | ActivityPublishedV2)
            for asset_id in payload.asset_ids:
                late = self.decided.get(asset_id, 0) < stored.sequence
                if late and (asset_id, stored.envelope.event_id) not in self.settled:
                    found.append((asset_id, stored))
        return found

    async def catch_up(self, events: EventLog) -> Publications:
        self.read_up_to = await fold_appended(events, _PUBLICATION_FILTERS, self.read_up_to, self.apply)
        return self


async def follow_up_publications(d: CatalogueDeps, publications: Publications) -> int:
    """Publish every asset an activity's publication has not reached; how many it published."""
    now = datetime.now(UTC)
    carried = 0
    for asset_id, cause in (await publications.catch_up(d.events)).unfinished():
        p = cause.envelope.typed_payload()
        assert isinstance(p, ActivityPublishedV1 | ActivityPublishedV2)
        each = Publish(publish_at=p.publish_at, unpublish_at=p.unpublish_at, restriction=p.restriction, note=p.note)
        decide_on = partial(decide.decide_publish_follow, asset_id=asset_id, cause_sequence=cause.sequence)
        try:
            result = await run_command(
                d.events,
                "asset",
                asset_id,
                partial(decide_on, cmd=each, now=now),
                actor=ACTOR,
                causation=cause.envelope,
                attempts=FOLLOW_UP_ATTEMPTS,
            )
            carried += len(result.appended)
        except Refused as exc:  # not a passing conflict: this asset will not take it
            log.warning("asset %s not published with activity %s: %s", asset_id, cause.envelope.aggregate_id, exc)
        except UserError:  # lost every round to other appends: the next pass tries again
            continue
        publications.settled.add((asset_id, cause.envelope.event_id))
    if carried:
        log.info("carried activity publications to %d assets", carried)
    return carried


async def follow_up_activities(d: CatalogueDeps) -> int:
    """Move every asset a merge or rename has not reached; how many it looked at."""
    pending = (await d.directory()).activities.unfollowed()
    for asset_id, target in pending:
        try:
            await assign_assets(d, [asset_id], target, ACTOR, None)
        except UserError as exc:  # gone, or its activity merged meanwhile: the next pass sees
            log.warning("asset %s not moved to activity %s: %s", asset_id, target.activity_id, exc)
    if pending:
        log.info("carried merges and renames to %d assets", len(pending))
    return len(pending)


async def follow_up_forever(d: CatalogueDeps) -> None:
    """At start, then every ``catalogue_follow_up_interval_s``; a failed pass is tried again."""
    publications = Publications()
    while True:
        try:
            await follow_up_activities(d)
            await follow_up_publications(d, publications)
        except Exception:
            log.warning("follow-up pass failed; trying again later", exc_info=True)
        await asyncio.sleep(d.settings.catalogue_follow_up_interval_s)
