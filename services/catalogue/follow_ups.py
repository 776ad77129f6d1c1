"""Merges and renames carried to their assets, also after a crash in between.

A merge (or a rename) is one ``activity.*`` event, then one assignment per asset of the
activity, appended by the request that made it (``api.assign_assets``). A catalogue
killed between the two, or an asset command that kept losing its races, would leave
assets on a merged activity, or carrying an old title in search, until someone moved
them by hand. The log says which assets those are (``Activities.unfollowed``): this
loop moves them, at start and every ``catalogue_follow_up_interval_s``. Each move is
decided on the asset's own history and is idempotent (``decide_follow``), so a request
still moving them, or another replica doing the same, appends nothing twice.
"""

from __future__ import annotations

import asyncio
import logging

from services.catalogue.api import CatalogueDeps, assign_assets
from shared.http import UserError

log = logging.getLogger("mam.catalogue.follow_ups")

# The assets' events name this as their actor: the system's follow-up, not a person's.
ACTOR = "he-thong:gop-hoat-dong"


async def follow_up(d: CatalogueDeps) -> int:
    """Move every asset a merge or rename has not reached; how many were looked at."""
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
    while True:
        try:
            await follow_up(d)
        except Exception:
            log.warning("follow-up pass failed; trying again later", exc_info=True)
        await asyncio.sleep(d.settings.catalogue_follow_up_interval_s)
