"""The collections an asset is in ("Bộ sưu tập chứa tư liệu này"), resolved as a
collection's page resolves them (``collection_scope``): put in by hand, or matched by
the collection's saved search now, never where the asset is excluded by hand; and
only for an asset the caller may see, matched within what the caller may see.

Every collection is folded from its own events on each request (as the catalogue's
list does); the saved searches are tried against the asset in one Elasticsearch
request (a ``filters`` aggregation, one bucket per collection).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.search.api import Deps, _visible_history
from services.search.collection_scope import saved_search_clause
from shared.access import requires
from shared.auth import Principal
from shared.collections import Collection, every_collection
from shared.policy import Action, visibility_filter

router = APIRouter(prefix="/v1")
CollectionReader = Annotated[Principal, Depends(requires(Action.COLLECTION_READ))]


def matching_body(asset_id: str, searched: list[Collection], visible: dict[str, Any] | None) -> dict[str, Any]:
    """Which saved searches match the asset (one bucket per collection, counted within
    what the caller may see)."""
    clauses: list[dict[str, Any]] = [{"ids": {"values": [asset_id]}}]
    if visible is not None:
        clauses.append(visible)
    filters = {c.collection_id: saved_search_clause(c.saved_search) for c in searched if c.saved_search is not None}
    return {
        "query": {"bool": {"filter": clauses}},
        "size": 0,
        "track_total_hits": False,
        "aggs": {"collections": {"filters": {"filters": filters}}},
    }


def collection_row(c: Collection, how: str, asset_id: str) -> dict[str, Any]:
    member = c.members.get(asset_id)
    return {
        "collection_id": c.collection_id,
        "title": c.title,
        "kind": c.kind.value,
        "kind_label": c.view()["kind_label"],
        "term": c.term,
        "year": c.year,
        "how": how,  # hand: put in by hand; search: matched by the saved search now
        "note": member.note if member else "",
    }


@router.get(
    "/assets/{asset_id}/collections",
    summary="Bộ sưu tập chứa tư liệu này / the collections an asset is in",
)
async def collections_of_asset(asset_id: str, who: CollectionReader, d: Deps) -> dict[str, Any]:
    await _visible_history(d, asset_id, who)  # 404 for an asset the caller may not see
    collections = await every_collection(d.events)
    rows = [collection_row(c, "hand", asset_id) for c in collections if asset_id in c.members]
    searched = [
        c
        for c in collections
        if c.saved_search is not None and asset_id not in c.members and asset_id not in c.excluded
    ]
    if searched:
        found = await d.index.search(matching_body(asset_id, searched, visibility_filter(who)))
        buckets = found["aggregations"]["collections"]["buckets"]
        rows += [collection_row(c, "search", asset_id) for c in searched if buckets[c.collection_id]["doc_count"]]
    rows.sort(key=lambda r: (r["title"].casefold(), r["collection_id"]))
    return {"asset_id": asset_id, "collections": rows}
