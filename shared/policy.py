"""One policy for every service: may this principal do this action, and which assets may it see.

Deny by default: an action not in :data:`RULES` is allowed to nobody, and
every route declares its action (``shared.http.requires``). What an asset
reveals is decided from its publication and restriction, the same way for a
search hit, a facet count, a statistic, a rendition URL, a history or the
portal feed: :func:`may_see` for one asset, :func:`visibility_filter` for the
Elasticsearch query that must return only what may be seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.auth import Principal, Role


class Action(StrEnum):
    ASSET_UPLOAD = "asset.upload"
    ASSET_READ = "asset.read"  # one asset, its renditions, its history (then visibility decides)
    ASSET_EDIT = "asset.edit"  # tags, metadata, activity, re-tag
    # Correct the details of an asset: any asset with ASSET_EDIT, else only one's own
    # upload while it is unpublished (the command decides; DESIGN §7: a broadcaster
    # "sees and corrects own uploads").
    ASSET_CORRECT = "asset.correct"
    ASSET_PUBLISH = "asset.publish"
    ARCHIVE_RETAG = "archive.retag"  # re-tag the whole archive
    SEARCH = "search"  # search, similar, statistics (visibility applies)
    ACTIVITY_READ = "activity.read"
    ACTIVITY_EDIT = "activity.edit"  # create, edit, merge
    PEOPLE_READ = "people.read"
    PEOPLE_EDIT = "people.edit"
    CLASSIFY = "classify"
    OPERATIONS = "operations"  # projection status, rebuilds
    ACCOUNTS = "accounts"  # users, API keys
    FEED = "feed"  # the public portal feed
    REEL_READ = "reel.read"  # reels, their renders and chapters
    REEL_EDIT = "reel.edit"  # create, set items, draft, render
    COLLECTION_READ = "collection.read"  # collections, their pages and exports
    COLLECTION_EDIT = "collection.edit"  # create, add/remove/pin/exclude, saved search
    DELEGATE_REPORT = "delegate.report"  # delegate activity per term, the council's targets
    PROCESSING_READ = "processing.read"  # the processing queue: what is transcoded/tagged, what failed and why


STAFF = frozenset({Role.PHONG_VIEN, Role.LUU_TRU, Role.BIEN_TAP, Role.QUAN_TRI})
ARCHIVE = frozenset({Role.LUU_TRU, Role.QUAN_TRI})
# Who prepares reviews: summary producers, with the archivists and admins.
PRODUCTION = frozenset({Role.BIEN_TAP, *ARCHIVE})

RULES: dict[Action, frozenset[Role]] = {
    Action.ASSET_UPLOAD: frozenset({Role.PHONG_VIEN, Role.LUU_TRU, Role.QUAN_TRI}),
    Action.ASSET_READ: STAFF,
    Action.ASSET_EDIT: ARCHIVE,
    Action.ASSET_CORRECT: frozenset({Role.PHONG_VIEN, *ARCHIVE}),
    Action.ASSET_PUBLISH: ARCHIVE,
    Action.ARCHIVE_RETAG: ARCHIVE,
    Action.SEARCH: STAFF,
    Action.ACTIVITY_READ: STAFF,
    Action.ACTIVITY_EDIT: ARCHIVE,
    Action.PEOPLE_READ: STAFF,
    Action.PEOPLE_EDIT: ARCHIVE,
    Action.CLASSIFY: STAFF,
    Action.OPERATIONS: frozenset({Role.QUAN_TRI}),
    Action.ACCOUNTS: frozenset({Role.QUAN_TRI}),
    Action.FEED: frozenset({*STAFF, Role.PUBLIC}),
    Action.REEL_READ: PRODUCTION,
    Action.REEL_EDIT: PRODUCTION,
    Action.COLLECTION_READ: PRODUCTION,
    Action.COLLECTION_EDIT: PRODUCTION,
    Action.DELEGATE_REPORT: STAFF,
    Action.PROCESSING_READ: ARCHIVE,
}


def allowed(principal: Principal, action: Action) -> bool:
    """May ``principal`` take ``action`` at all (before what it may see is decided)?"""
    return principal.role in RULES.get(action, frozenset())


class Restriction(StrEnum):
    PUBLIC = "public"  # may go on the portal once published
    INTERNAL = "internal"  # the council's staff only
    RESTRICTED = "restricted"  # e.g. closed sessions (họp kín): archivists, and producers with a grant


# The grant that lets a summary producer see restricted material.
RESTRICTED_GRANT = "restricted"


@dataclass(frozen=True)
class Visibility:
    """What decides who sees one asset (folded from its events)."""

    uploaded_by: str
    restriction: Restriction = Restriction.INTERNAL
    published: bool = False
    publish_at: datetime | None = None  # None while published: at once, on no one's clock
    unpublish_at: datetime | None = None
    # When it went out, to sort and show (the feed, the asset page): ``publish_at`` if one was
    # given, else when the publishing event was recorded. Never a gate: a writer's fast clock
    # moves it in the feed, never hides the asset.
    published_since: datetime | None = None

    def on_air(self, now: datetime) -> bool:
        """Published and inside its publish window at ``now``."""
        if not self.published:
            return False
        if self.publish_at is not None and now < self.publish_at:
            return False
        return self.unpublish_at is None or now < self.unpublish_at


def may_see(principal: Principal, asset: Visibility, now: datetime) -> bool:
    """Whether ``principal`` may see this asset at ``now`` (the rule :func:`visibility_filter` mirrors)."""
    role = principal.role
    if role in ARCHIVE:
        return True
    if role is Role.BIEN_TAP:
        return asset.restriction is not Restriction.RESTRICTED or RESTRICTED_GRANT in principal.grants
    if role is Role.PHONG_VIEN:
        if asset.uploaded_by == principal.subject:
            return True
        return asset.on_air(now) and asset.restriction is not Restriction.RESTRICTED
    return asset.on_air(now) and asset.restriction is Restriction.PUBLIC


# --- the same rule as an Elasticsearch filter (index fields written by the search projector) ------

UPLOADED_BY, RESTRICTION, PUBLISHED, PUBLISH_AT, UNPUBLISH_AT = (
    "uploaded_by",
    "restriction",
    "published",
    "publish_at",
    "unpublish_at",
)
# Indexed beside them, never filtered on (see ``Visibility.published_since``).
PUBLISHED_SINCE = "published_since"


def _on_air() -> list[dict[str, Any]]:
    """Published and in window, judged by Elasticsearch's clock at query time ("now"):
    an embargo ends without any request or event triggering it."""
    return [
        {"term": {PUBLISHED: True}},
        {
            "bool": {
                "should": [
                    {"bool": {"must_not": {"exists": {"field": PUBLISH_AT}}}},
                    {"range": {PUBLISH_AT: {"lte": "now"}}},
                ]
            }
        },
        {
            "bool": {
                "should": [
                    {"bool": {"must_not": {"exists": {"field": UNPUBLISH_AT}}}},
                    {"range": {UNPUBLISH_AT: {"gt": "now"}}},
                ]
            }
        },
    ]


def visibility_filter(principal: Principal) -> dict[str, Any] | None:
    """An Elasticsearch filter clause keeping only what ``principal`` may see (None: everything)."""
    role = principal.role
    if role in ARCHIVE:
        return None
    if role is Role.BIEN_TAP:
        if RESTRICTED_GRANT in principal.grants:
            return None
        return {"bool": {"must_not": {"term": {RESTRICTION: Restriction.RESTRICTED.value}}}}
    if role is Role.PHONG_VIEN:
        published = {
            "bool": {
                "filter": _on_air(),
                "must_not": {"term": {RESTRICTION: Restriction.RESTRICTED.value}},
            }
        }
        return {"bool": {"should": [{"term": {UPLOADED_BY: principal.subject}}, published], "minimum_should_match": 1}}
    return {"bool": {"filter": [*_on_air(), {"term": {RESTRICTION: Restriction.PUBLIC.value}}]}}
