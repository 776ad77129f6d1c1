"""An asset's visibility, folded from its events: the one fold behind every read path.

The search projector folds it into the asset's index document (the fields
:func:`shared.policy.visibility_filter` queries), and single-asset reads
(history, renditions) fold the asset's history with the same function and ask
:func:`shared.policy.may_see`. So "who uploaded it, is it published, from when
to when, how restricted" is decided once, the same way for a search hit and for
a rendition URL.

A new upload is ``internal`` and unpublished (the default of
:class:`~shared.policy.Visibility`): nothing reaches the portal until an
archivist publishes it as ``public``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.events.envelope import EventEnvelope
from shared.events.models import AssetIngestedV1
from shared.events.publishing import AssetPublishedV2, AssetRestrictionSetV1, AssetUnpublishedV1
from shared.policy import (
    PUBLISH_AT,
    PUBLISHED,
    PUBLISHED_SINCE,
    RESTRICTION,
    UNPUBLISH_AT,
    UPLOADED_BY,
    Restriction,
    Visibility,
)

VISIBILITY_EVENT_TYPES = frozenset(
    {
        AssetIngestedV1.EVENT_TYPE,
        AssetPublishedV2.EVENT_TYPE,
        AssetUnpublishedV1.EVENT_TYPE,
        AssetRestrictionSetV1.EVENT_TYPE,
    }
)


def fold_visibility(state: Visibility | None, event: EventEnvelope) -> Visibility | None:
    """``state`` after one asset event (None: nothing known yet; other events change nothing)."""
    if event.type not in VISIBILITY_EVENT_TYPES:
        return state
    current = state if state is not None else Visibility(uploaded_by="")
    p = event.typed_payload()
    if isinstance(p, AssetIngestedV1):
        return replace(current, uploaded_by=event.actor)
    if isinstance(p, AssetPublishedV2):
        # A new window or restriction without a start of its own keeps the asset's place.
        kept = current.published_since if current.published and p.publish_at is None else None
        return replace(
            current,
            published=True,
            publish_at=p.publish_at,
            unpublish_at=p.unpublish_at,
            restriction=p.restriction,
            published_since=p.publish_at or kept or event.occurred_at,
        )
    if isinstance(p, AssetUnpublishedV1):
        return replace(current, published=False, publish_at=None, unpublish_at=None, published_since=None)
    if isinstance(p, AssetRestrictionSetV1):
        return replace(current, restriction=p.restriction)
    return state


def visibility_of(history: Iterable[EventEnvelope]) -> Visibility | None:
    """The visibility of an asset from its whole history (None: no such asset)."""
    state: Visibility | None = None
    for event in history:
        state = fold_visibility(state, event)
    return state


def index_fields(v: Visibility) -> dict[str, Any]:
    """``v`` as the fields of the asset's index document (names from ``shared.policy``)."""
    return {
        UPLOADED_BY: v.uploaded_by or None,
        RESTRICTION: v.restriction.value,
        PUBLISHED: v.published,
        PUBLISH_AT: v.publish_at.isoformat() if v.publish_at else None,
        UNPUBLISH_AT: v.unpublish_at.isoformat() if v.unpublish_at else None,
        PUBLISHED_SINCE: v.published_since.isoformat() if v.published_since else None,
    }


def _instant(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def visibility_from_fields(doc: Mapping[str, Any]) -> Visibility | None:
    """The visibility an index document holds (None: it holds none yet)."""
    if RESTRICTION not in doc:
        return None
    try:
        restriction = Restriction(doc[RESTRICTION])
    except ValueError:
        restriction = Restriction.RESTRICTED  # an unknown value hides rather than shows
    return Visibility(
        uploaded_by=str(doc.get(UPLOADED_BY) or ""),
        restriction=restriction,
        published=bool(doc.get(PUBLISHED)),
        publish_at=_instant(doc.get(PUBLISH_AT)),
        unpublish_at=_instant(doc.get(UNPUBLISH_AT)),
        published_since=_instant(doc.get(PUBLISHED_SINCE)),
    )
