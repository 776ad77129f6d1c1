"""Payload models of publishing (xuất bản): who may see an asset, and from when to when.

An asset is ``internal`` from its upload (the council's staff only) and
unpublished. An archivist publishes it with a window (``publish_at``, optional
``unpublish_at``) and a restriction; ``public`` assets appear on the portal feed
while in their window. ``shared.publication`` folds these events into the
:class:`shared.policy.Visibility` that every read path judges by.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationInfo, model_validator

from shared.events.models import EventPayload, register_payload
from shared.fields import Instant, Note
from shared.policy import Restriction


class AssetPublishedV1(EventPayload):
    """The asset is published from ``publish_at`` (UTC) until ``unpublish_at`` (None: no end),
    to whom ``restriction`` allows; a later one replaces the window and restriction."""

    EVENT_TYPE: ClassVar[str] = "asset.published"
    SCHEMA_VERSION: ClassVar[int] = 1

    publish_at: Instant
    unpublish_at: Instant | None = None
    restriction: Restriction
    note: Note = ""

    @model_validator(mode="after")
    def _window(self, info: ValidationInfo) -> AssetPublishedV1:
        stored = bool(info.context and info.context.get("stored"))
        if not stored and self.unpublish_at is not None and self.unpublish_at <= self.publish_at:
            raise ValueError("unpublish_at must be after publish_at")
        return self


class AssetUnpublishedV1(EventPayload):
    """The asset is no longer published (its restriction stays as it was)."""

    EVENT_TYPE: ClassVar[str] = "asset.unpublished"
    SCHEMA_VERSION: ClassVar[int] = 1

    reason: Note = ""


class AssetRestrictionSetV1(EventPayload):
    """Who may see the asset, published or not (e.g. ``restricted`` for a closed session)."""

    EVENT_TYPE: ClassVar[str] = "asset.restriction_set"
    SCHEMA_VERSION: ClassVar[int] = 1

    restriction: Restriction
    note: Note = ""


class ActivityPublishedV1(EventPayload):
    """An archivist published a whole activity: each asset in ``asset_ids`` gets an
    ``asset.published`` caused by this event, with this window, and this restriction
    (None: each asset keeps its own)."""

    EVENT_TYPE: ClassVar[str] = "activity.published"
    SCHEMA_VERSION: ClassVar[int] = 1

    publish_at: Instant
    unpublish_at: Instant | None = None
    restriction: Restriction | None = None
    note: Note = ""
    asset_ids: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _window(self, info: ValidationInfo) -> ActivityPublishedV1:
        stored = bool(info.context and info.context.get("stored"))
        if not stored and self.unpublish_at is not None and self.unpublish_at <= self.publish_at:
            raise ValueError("unpublish_at must be after publish_at")
        return self


for _model in (AssetPublishedV1, AssetUnpublishedV1, AssetRestrictionSetV1, ActivityPublishedV1):
    register_payload(_model)
