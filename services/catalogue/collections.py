"""Collections (bộ sưu tập) in the catalogue: request bodies, pure decisions, thin routes.

Each command loads the collection's history, folds it (``shared.collections``),
decides purely and appends with the history's last sequence
(``shared.commands.run_command``): two people changing one collection at once
cannot both win silently — the loser decides again on the fresh history, then
gets a bilingual 409. A client may also send ``If-Match: <sequence>`` (the
``sequence`` of the collection it showed its user) to be refused with 409 when
the collection changed since.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from services.catalogue.api import Deps, _asset_id
from services.catalogue.decide import asset_not_found, payload_of
from shared.access import requires
from shared.auth import Principal
from shared.collections import Collection, every_collection, fold_collection
from shared.commands import Decision, Refused, conflict, not_found, run_command
from shared.events.collections import (
    CollectionAssetAddedV1,
    CollectionAssetExcludedV1,
    CollectionAssetRemovedV1,
    CollectionCreatedV1,
    CollectionEditedV1,
    CollectionExclusionLiftedV1,
    CollectionKind,
    SavedSearch,
)
from shared.fields import Caption, Note, Title
from shared.http import checked_id
from shared.ids import uuid7
from shared.policy import Action
from shared.ports import EventLog, StoredEvent

router = APIRouter(prefix="/v1")
Reader = Annotated[Principal, Depends(requires(Action.COLLECTION_READ))]
Editor = Annotated[Principal, Depends(requires(Action.COLLECTION_EDIT))]
# How many assets one request may place (a review's catalogue is hundreds, not millions).
MAX_ITEMS_PER_REQUEST = 1000
# What the search side lists and exports at once (services/search/collections.py).
MAX_HAND_MEMBERS = 5000
# Asset histories read at once when checking that placed assets exist.
_LOOKUPS_AT_ONCE = 16


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateCollection(_Command):
    kind: CollectionKind
    title: Title
    term: str | None = Field(default=None, max_length=64)
    year: int | None = None
    description: Caption = ""
    saved_search: SavedSearch | None = None


class EditCollection(_Command):
    kind: CollectionKind | None = None
    title: Title | None = None
    term: str | None = Field(default=None, max_length=64)
    year: int | None = None
    description: Caption | None = None
    saved_search: SavedSearch | None = None
    drop_saved_search: bool = False


class PlaceAsset(_Command):
    asset_id: str = Field(max_length=64)
    position: int | None = Field(default=None, ge=0, le=1_000_000)  # None: at the end
    note: Note = ""


class PlaceAssets(_Command):
    items: list[PlaceAsset] = Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)


class ExcludeAsset(_Command):
    asset_id: str = Field(max_length=64)
    note: Note = ""


# --- decisions (pure) -------------------------------------------------------------------------


def collection_not_found(collection_id: str) -> Refused:
    return not_found("collection_not_found", "bộ sưu tập", "collection", collection_id)


def _existing(collection: Collection | None, collection_id: str) -> Collection:
    if collection is None:
        raise collection_not_found(collection_id)
    return collection


def _checked_expected(collection: Collection, expected: int | None) -> None:
    """``If-Match``: the sequence the client's view was made from must still be the last one."""
    if expected is not None and expected != collection.sequence:
        raced = conflict()  # the same answer as a race lost on append
        raise Refused(raced.code, raced.message_vi, raced.message_en, status=409)


def decide_create(history: list[StoredEvent], cmd: CreateCollection) -> Decision:
    if history:  # ids are fresh uuid7s: only a replayed request meets an existing one
        raise Refused("collection_exists", "Bộ sưu tập đã tồn tại.", "The collection already exists.", status=409)
    return [payload_of(CollectionCreatedV1, cmd.model_dump())]


def decide_edit(
    collection: Collection | None, collection_id: str, cmd: EditCollection, expected: int | None
) -> Decision:
    state = _existing(collection, collection_id)
    _checked_expected(state, expected)
    data = cmd.model_dump(exclude_none=True)
    if not data or data == {"drop_saved_search": False}:
        raise Refused("nothing_to_change", "Không có trường nào để sửa.", "No field to change.")
    if cmd.drop_saved_search and cmd.saved_search is not None:
        raise Refused(
            "invalid_value",
            "Không thể vừa đặt vừa bỏ tìm kiếm lưu sẵn.",
            "Cannot both set and drop the saved search.",
        )
    return [payload_of(CollectionEditedV1, data)]


def decide_place(
    collection: Collection | None,
    collection_id: str,
    items: list[PlaceAsset],
    known_assets: set[str],
    expected: int | None,
) -> Decision:
    """Put assets in by hand (or move them / change their notes); one without a position
    goes after the last one. Every asset must exist."""
    state = _existing(collection, collection_id)
    _checked_expected(state, expected)
    missing = [i.asset_id for i in items if i.asset_id not in known_assets]
    if missing:
        raise asset_not_found(", ".join(missing[:5]))
    if len({*state.members, *(i.asset_id for i in items)}) > MAX_HAND_MEMBERS:
        raise Refused(
            "collection_too_large",
            f"Một bộ sưu tập có tối đa {MAX_HAND_MEMBERS} tư liệu thêm tay; hãy dùng tìm kiếm lưu sẵn.",
            f"A collection holds at most {MAX_HAND_MEMBERS} assets put in by hand; use a saved search.",
        )
    out: list[CollectionAssetAddedV1] = []
    next_position = state.next_position()
    for item in items:
        current = state.members.get(item.asset_id)
        if item.position is not None:
            position = item.position
        elif current is not None:
            position = current.position
        else:
            position = next_position
        next_position = max(next_position, position + 1)
        if current is not None and (current.position, current.note) == (position, item.note):
            continue  # placing an asset where it already is, as it is, is no change
        out.append(CollectionAssetAddedV1(asset_id=item.asset_id, position=position, note=item.note))
    return out


def decide_remove(collection: Collection | None, collection_id: str, asset_id: str, expected: int | None) -> Decision:
    state = _existing(collection, collection_id)
    _checked_expected(state, expected)
    if asset_id not in state.members:
        raise Refused(
            "not_a_member",
            f"Tư liệu {asset_id} không được thêm tay vào bộ sưu tập này (muốn loại khỏi kết quả tìm kiếm "
            "lưu sẵn thì dùng loại trừ).",
            f"Asset {asset_id} was not put in this collection by hand (to keep a saved-search match out, exclude it).",
            status=404,
        )
    return [CollectionAssetRemovedV1(asset_id=asset_id)]


def decide_exclude(
    collection: Collection | None, collection_id: str, cmd: ExcludeAsset, known_assets: set[str], expected: int | None
) -> Decision:
    state = _existing(collection, collection_id)
    _checked_expected(state, expected)
    if cmd.asset_id not in known_assets:
        raise asset_not_found(cmd.asset_id)
    if state.excluded.get(cmd.asset_id) == cmd.note and cmd.asset_id not in state.members:
        return []
    return [CollectionAssetExcludedV1(asset_id=cmd.asset_id, note=cmd.note)]


def decide_lift_exclusion(
    collection: Collection | None, collection_id: str, asset_id: str, expected: int | None
) -> Decision:
    state = _existing(collection, collection_id)
    _checked_expected(state, expected)
    if asset_id not in state.excluded:
        return []
    return [CollectionExclusionLiftedV1(asset_id=asset_id)]


# --- routes (thin) ------------------------------------------------------------------------------


def _collection_id(value: str) -> str:
    return checked_id("collection", value, "bộ sưu tập", "collection")


IfMatch = Annotated[
    int | None,
    Header(alias="If-Match", ge=0, description="sequence của bộ sưu tập đã xem / the sequence you saw"),
]


async def _known_assets(events: EventLog, asset_ids: list[str]) -> set[str]:
    """Which of ``asset_ids`` exist (assets are never deleted: a later command may rely on it)."""
    wanted = [_asset_id(a) for a in dict.fromkeys(asset_ids)]
    gate = asyncio.Semaphore(_LOOKUPS_AT_ONCE)

    async def exists(asset_id: str) -> bool:
        async with gate:
            return bool(await events.history("asset", asset_id))

    found = await asyncio.gather(*(exists(a) for a in wanted))
    return {a for a, yes in zip(wanted, found, strict=True) if yes}


async def _command(
    events: EventLog, collection_id: str, decide_on: Callable[[Collection | None], Decision], actor: str
) -> dict[str, Any]:
    result = await run_command(
        events, "collection", collection_id, lambda h: decide_on(fold_collection(h)), actor=actor
    )
    state = fold_collection(await events.history("collection", collection_id))
    assert state is not None, result
    return {**state.view(), "changed": bool(result.appended)}


@router.post("/collections", status_code=201, summary="Tạo bộ sưu tập / create a collection")
async def create_collection(body: CreateCollection, who: Editor, d: Deps) -> dict[str, Any]:
    collection_id = "c" + uuid7().hex
    result = await run_command(d.events, "collection", collection_id, lambda h: decide_create(h, body), actor=who.actor)
    state = fold_collection(await d.events.history("collection", collection_id))
    assert state is not None, result
    return state.view()


@router.get("/collections", summary="Danh sách bộ sưu tập / list collections")
async def list_collections(who: Reader, d: Deps, kind: CollectionKind | None = None) -> dict[str, Any]:
    found = await every_collection(d.events)
    views = [
        {k: v for k, v in c.view().items() if k not in ("members", "excluded")}
        | {"member_count": len(c.members), "excluded_count": len(c.excluded)}
        for c in found
        if kind is None or c.kind is kind
    ]
    return {"collections": sorted(views, key=lambda v: v["collection_id"], reverse=True)}


@router.get("/collections/{collection_id}", summary="Một bộ sưu tập / one collection")
async def get_collection(collection_id: str, who: Reader, d: Deps) -> dict[str, Any]:
    state = fold_collection(await d.events.history("collection", _collection_id(collection_id)))
    if state is None:
        raise collection_not_found(collection_id)
    return state.view()


@router.patch("/collections/{collection_id}", summary="Sửa bộ sưu tập / edit a collection")
async def edit_collection(
    collection_id: str, body: EditCollection, who: Editor, d: Deps, if_match: IfMatch = None
) -> dict[str, Any]:
    _collection_id(collection_id)
    return await _command(d.events, collection_id, lambda c: decide_edit(c, collection_id, body, if_match), who.actor)


@router.post("/collections/{collection_id}/assets", summary="Thêm / sắp xếp tư liệu (tay) / place assets by hand")
async def place_assets(
    collection_id: str, body: PlaceAssets, who: Editor, d: Deps, if_match: IfMatch = None
) -> dict[str, Any]:
    _collection_id(collection_id)
    known = await _known_assets(d.events, [i.asset_id for i in body.items])
    return await _command(
        d.events, collection_id, lambda c: decide_place(c, collection_id, body.items, known, if_match), who.actor
    )


@router.delete("/collections/{collection_id}/assets/{asset_id}", summary="Bỏ tư liệu thêm tay / remove an asset")
async def remove_asset(
    collection_id: str, asset_id: str, who: Editor, d: Deps, if_match: IfMatch = None
) -> dict[str, Any]:
    _collection_id(collection_id)
    _asset_id(asset_id)
    return await _command(
        d.events, collection_id, lambda c: decide_remove(c, collection_id, asset_id, if_match), who.actor
    )


@router.post("/collections/{collection_id}/exclusions", summary="Loại trừ tư liệu / exclude an asset")
async def exclude_asset(
    collection_id: str, body: ExcludeAsset, who: Editor, d: Deps, if_match: IfMatch = None
) -> dict[str, Any]:
    _collection_id(collection_id)
    known = await _known_assets(d.events, [body.asset_id])
    return await _command(
        d.events, collection_id, lambda c: decide_exclude(c, collection_id, body, known, if_match), who.actor
    )


@router.delete("/collections/{collection_id}/exclusions/{asset_id}", summary="Bỏ loại trừ / lift an exclusion")
async def lift_exclusion(
    collection_id: str, asset_id: str, who: Editor, d: Deps, if_match: IfMatch = None
) -> dict[str, Any]:
    _collection_id(collection_id)
    _asset_id(asset_id)
    return await _command(
        d.events, collection_id, lambda c: decide_lift_exclusion(c, collection_id, asset_id, if_match), who.actor
    )
