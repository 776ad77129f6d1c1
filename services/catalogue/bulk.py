"""Bulk edit (sửa hàng loạt): the same change to many assets in one request.

Each asset is its own command, exactly as a single edit: its history is loaded, the
change decided on it (``decide_bulk_edit``, pure) and appended with its expected
sequence; an assignment to an activity is the single assignment's command. One
asset refusing, or changed meanwhile, is that asset's result (its status and
bilingual reason): the others go on, and the request itself answers 200.

A caller may send, per asset, the stream sequence it saw (``expected``: the search
hit's ``sequence``): an asset someone edited by hand since then (metadata or activity)
is not edited blindly but answered 409, so two archivists' bulk edits of overlapping
selections never overwrite each other unseen. The system's own events since (renditions,
re-tags) do not count: hand-set values win over them anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.catalogue import decide
from services.catalogue.api import ACTIVITIES, CatalogueDeps, Deps, resolve_activity
from services.catalogue.decide import asset_not_found
from shared.access import requires
from shared.activities import Activity
from shared.auth import Principal
from shared.commands import Decision, Refused, run_command
from shared.events.tagging import AssetActivityAssignedV1, AssetMetadataEditedV1
from shared.fields import Names, Note
from shared.http import UserError, checked_id
from shared.policy import Action
from shared.ports import StoredEvent

log = logging.getLogger("mam.catalogue.bulk")
router = APIRouter(prefix="/v1")
Editor = Annotated[Principal, Depends(requires(Action.ASSET_EDIT))]
MAX_BULK_ASSETS = 500
# Assets decided at once: each is a few round trips to NATS; more would only queue there.
_CONCURRENCY = 8


class BulkEdit(BaseModel):
    """What a bulk edit changes; a field left out (None) is left as each asset has it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    asset_ids: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=MAX_BULK_ASSETS)
    activity_type: str | None = Field(default=None, max_length=64)
    term: str | None = Field(default=None, max_length=64)
    # Names added to each asset's people (those already there are kept, not repeated).
    people_add: Names | None = None
    # An activity to put every asset in ("" takes them out of their activity).
    activity_id: str | None = Field(default=None, max_length=64)
    note: Note = ""
    # asset id → the stream sequence the caller saw; an asset changed since is refused (409).
    expected: dict[Annotated[str, Field(max_length=64)], int] = Field(default_factory=dict, max_length=MAX_BULK_ASSETS)

    @model_validator(mode="after")
    def _something_to_change(self) -> BulkEdit:
        if self.activity_type is None and self.term is None and not self.people_add and self.activity_id is None:
            raise ValueError("nothing to change: give activity_type, term, people_add or activity_id")
        return self


# Someone's edit of what a bulk edit sets; the system's own events since (renditions, tags)
# are no reason to refuse: hand-set values win over them anyway.
HAND_EDITS = frozenset({AssetMetadataEditedV1.EVENT_TYPE, AssetActivityAssignedV1.EVENT_TYPE})


def changed_since(history: Sequence[StoredEvent], asset_id: str, expected: int | None) -> None:
    """Refuse an asset someone edited after the caller looked at it (at stream sequence ``expected``)."""
    if expected is None:
        return
    edited = [e for e in history if e.sequence > expected and e.envelope.type in HAND_EDITS]
    if edited:
        who = edited[-1].envelope.actor
        raise Refused(
            "changed_meanwhile",
            f"Tư liệu {asset_id} vừa được người khác sửa ({who}, sau khi bạn xem); hãy tải lại và thử lại.",
            f"Asset {asset_id} was edited meanwhile ({who}, after you looked at it); reload and retry.",
            status=409,
        )


def decide_bulk_edit(history: Sequence[StoredEvent], asset_id: str, edit: BulkEdit, expected: int | None) -> Decision:
    """One asset's share of a bulk edit: the shared fields set by hand (an automatic value
    equal to it is still set by hand, so a later re-tag cannot change it), the names added
    to its people. Nothing to change (the asset has all of it by hand) is no event."""
    asset = decide.fold_asset(history)
    if asset is None:
        raise asset_not_found(asset_id)
    changed_since(history, asset_id, expected)
    by_hand: dict[str, Any] = asset.tags.get("manual") or {}
    data: dict[str, Any] = {"note": edit.note}
    for name in ("activity_type", "term"):
        value = getattr(edit, name)
        if value is not None and value != by_hand.get(name):
            data[name] = value
    if edit.people_add:
        people = list(asset.tags.get("people") or [])
        new = [p for p in edit.people_add if p not in people]
        if new:
            data["people"] = [*people, *new]
    if len(data) == 1:
        return []
    return [decide.payload_of(AssetMetadataEditedV1, data)]


async def _edit_one(d: CatalogueDeps, asset_id: str, edit: BulkEdit, actor: str) -> dict[str, Any]:
    """One asset's result: ``ok`` with what changed, or ``refused`` with the reason."""
    applied: list[str] = []
    try:
        checked_id("asset", asset_id, "tư liệu", "asset")
        expected = edit.expected.get(asset_id)
        if edit.activity_type is not None or edit.term is not None or edit.people_add:
            result = await run_command(
                d.events,
                "asset",
                asset_id,
                lambda h: decide_bulk_edit(h, asset_id, edit, expected),
                actor=actor,
            )
            if result.appended:
                applied.append("metadata")
            expected = None  # checked once, on the asset as the caller saw it
        if edit.activity_id is not None:
            if await _assign(d, asset_id, edit.activity_id or None, expected, actor):
                applied.append("activity")
    except UserError as refused:
        error = refused.body()["error"]
        return {"asset_id": asset_id, "status": refused.status, "result": "refused", "applied": applied, **error}
    except (TimeoutError, ConnectionError) as exc:  # the event store hiccupped: this asset only
        log.warning("bulk edit of %s: %s", asset_id, exc)
        return {
            "asset_id": asset_id,
            "status": 503,
            "result": "refused",
            "applied": applied,
            "code": "service_unavailable",
            "message": "Kho sự kiện tạm thời không trả lời; hãy thử lại tư liệu này.",
            "message_en": "The event store did not answer in time; retry this asset.",
        }
    return {"asset_id": asset_id, "status": 200, "result": "ok", "applied": applied}


async def _assign(d: CatalogueDeps, asset_id: str, activity_id: str | None, expected: int | None, actor: str) -> bool:
    """The single assignment's command (guarded by every activity event); True if it appended."""

    async def assign_to(history: list[StoredEvent]) -> Decision:
        asset = decide.fold_asset(history)
        changed_since(history, asset_id, expected)
        if asset is not None and asset.activity_id == activity_id:
            return []  # already there
        target: Activity | None = await resolve_activity(d.events, activity_id) if activity_id else None
        return decide.decide_assign(asset, asset_id, activity_id, target)

    result = await run_command(d.events, "asset", asset_id, assign_to, actor=actor, guard=ACTIVITIES)
    return bool(result.appended)


@router.post(
    "/assets/metadata/bulk",
    summary="Sửa hàng loạt thông tin tư liệu / bulk edit of assets",
)
async def bulk_edit(body: BulkEdit, who: Editor, d: Deps) -> dict[str, Any]:
    """Up to 500 assets; per asset ``result`` ok (``applied``: what changed, empty if it
    already had it all) or refused (``status``, ``code``, ``message`` vi, ``message_en``)."""
    ids = list(dict.fromkeys(body.asset_ids))  # each asset once, in the order given
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(asset_id: str) -> dict[str, Any]:
        async with gate:
            return await _edit_one(d, asset_id, body, who.actor)

    results = await asyncio.gather(*(one(a) for a in ids))
    return {
        "results": results,
        "ok": sum(r["result"] == "ok" for r in results),
        "refused": sum(r["result"] == "refused" for r in results),
    }
