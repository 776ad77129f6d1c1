"""A collection as an Elasticsearch clause, expanded when a query names it.

A collection is folded from its own events in the log (``shared.collections``) on
every request that names it: its hand members by id, or'ed with its saved search
(the same query and filters as ``GET /v1/search``), minus its hand exclusions.
Nothing is copied into the asset documents, so a change to the collection counts
from the next request on, and an upload that matches the saved search is in the
collection as soon as it is indexed. The asset documents stay what their own
events make them (their version is the asset's stream sequence; a rebuild from the
asset's history stays complete).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from services.search.params import parse_filters
from services.search.query import Visible, filter_clauses, text_query
from shared.collections import Collection, fold_collection
from shared.events.collections import SavedSearch
from shared.http import UserError, checked_id
from shared.ports import EventLog

NOTHING: dict[str, Any] = {"bool": {"must_not": {"match_all": {}}}}


def collection_not_found(collection_id: str) -> UserError:
    return UserError(
        404, "collection_not_found", f"Không tìm thấy bộ sưu tập {collection_id}.", f"No collection {collection_id}."
    )


async def load_collection(events: EventLog, collection_id: str) -> Collection:
    checked_id("collection", collection_id, "bộ sưu tập", "collection")
    found = fold_collection(await events.history("collection", collection_id))
    if found is None:
        raise collection_not_found(collection_id)
    return found


def saved_search_clause(saved: SavedSearch) -> dict[str, Any]:
    """What the saved search matches, as the search API would (words and filters)."""
    filters = parse_filters(
        activity_type=list(saved.activity_type),
        term=list(saved.term),
        activity=list(saved.activity),
        person=list(saved.person),
        organisation=list(saved.organisation),
        kind=list(saved.kind),
        date_from=saved.date_from,
        date_to=saved.date_to,
        published=saved.published,
        duration_min=saved.duration_min,
        duration_max=saved.duration_max,
        height_min=saved.height_min,
        height_max=saved.height_max,
    )
    clauses = filter_clauses(filters)
    if saved.q.strip():
        clauses.append(text_query(saved.q))
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


def collection_clause(collection: Collection) -> dict[str, Any]:
    """Hand members, or what the saved search matches now; never a hand exclusion."""
    should: list[dict[str, Any]] = []
    if collection.members:
        should.append({"ids": {"values": sorted(collection.members)}})
    if collection.saved_search is not None:
        should.append(saved_search_clause(collection.saved_search))
    if not should:
        return NOTHING
    clause: dict[str, Any] = {"bool": {"should": should, "minimum_should_match": 1}}
    if collection.excluded:
        clause["bool"]["must_not"] = [{"ids": {"values": sorted(collection.excluded)}}]
    return clause


def scoped(visible: Visible, within: InCollection | dict[str, Any] | None) -> Visible:
    """What a request ranges over: what the caller may see, within the collection if one is named.

    The body builders put this in the query's own filter, so hits, facets and
    statistics all count within it."""
    if within is None:
        return visible
    scope = within.clause if isinstance(within, InCollection) else within
    if visible is None:
        return scope
    return {"bool": {"filter": [visible, scope]}}


@dataclass(frozen=True)
class InCollection:
    """The collection a request names, and what it holds as a clause."""

    collection_id: str
    clause: dict[str, Any]

    def mark(self, hit: dict[str, Any]) -> dict[str, Any]:
        """A hit of a request within the collection says so (``collections``: this one)."""
        return {**hit, "collections": [self.collection_id]}


async def collection_scope(
    request: Request,
    collection: Annotated[
        str | None, Query(max_length=64, description="mã bộ sưu tập: chỉ tìm trong bộ sưu tập này / collection id")
    ] = None,
) -> InCollection | None:
    """The ``collection`` query parameter (None: no collection named)."""
    if collection is None:
        return None
    events: EventLog = request.app.state.deps.events
    return InCollection(collection, collection_clause(await load_collection(events, collection)))


CollectionScope = Annotated[InCollection | None, Depends(collection_scope)]
