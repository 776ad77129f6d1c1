"""Payload models of publishing (xuất bản): who may see an asset, and from when to when.

An asset is ``internal`` from its upload (the council's staff only) and
unpublished. An archivist publishes it with a window (``publish_at``, optional
``unpublish_at``) and a restriction; ``public`` assets appear on the portal feed
while in their window. ``shared.publication`` folds these events into the
:class:`shared.policy.Visibility` that every read path judges by.

Version 2 of ``asset.published`` / ``activity.published``: ``publish_at`` may be
None, "at once". Version 1 wrote the catalogue replica's "now" there, and since
every reader compares ``publish_at`` with its own clock, a replica two minutes
fast published two minutes late. "At once" involves no clock: visible as soon as
the event is read. Version 1 events are read as version 2 unchanged (they always
name an instant).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import ValidationInfo, model_validator

from shared.events.models import EventPayload, register_payload, register_upcaster
from shared.fields import Instant, Note
from shared.policy import Restriction


class AssetPublishedV1(EventPayload):
    """Version 1 (read, no longer written): ``publish_at`` always an instant, the catalogue's
    "now" when none was asked for."""

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


class AssetPublishedV2(EventPayload):
    """The asset is published from ``publish_at`` (UTC; None: at once, on no one's clock) until
    ``unpublish_at`` (None: no end), to whom ``restriction`` allows; a later one replaces the
    window and restriction."""

    EVENT_TYPE: ClassVar[str] = "asset.published"
    SCHEMA_VERSION: ClassVar[int] = 2

    publish_at: Instant | None = None
    unpublish_at: Instant | None = None
    restriction: Restriction
    note: Note = ""

    @model_validator(mode="after")
    def _window(self, info: ValidationInfo) -> AssetPublishedV2:
        stored = bool(info.context and info.context.get("stored"))
        if not stored:
            _check_window(self.publish_at, self.unpublish_at)
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
    """Version 1 (read, no longer written) of ``activity.published``: ``publish_at`` always an
    instant."""

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


class ActivityPublishedV2(EventPayload):
    """An archivist published a whole activity: each asset in ``asset_ids`` gets an
    ``asset.published`` caused by this event, with this window (``publish_at`` None: at once),
    and this restriction (None: each asset keeps its own)."""

    EVENT_TYPE: ClassVar[str] = "activity.published"
    SCHEMA_VERSION: ClassVar[int] = 2

    publish_at: Instant | None = None
    unpublish_at: Instant | None = None
    restriction: Restriction | None = None
    note: Note = ""
    asset_ids: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _window(self, info: ValidationInfo) -> ActivityPublishedV2:
        stored = bool(info.context and info.context.get("stored"))
        if not stored:
            _check_window(self.publish_at, self.unpublish_at)
        return self


def _check_window(publish_at: datetime | None, unpublish_at: datetime | None) -> None:
    if publish_at is not None and unpublish_at is not None and unpublish_at <= publish_at:
        raise ValueError("unpublish_at must be after publish_at")


def _same_payload(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 → 2: every version 1 payload is a version 2 payload (it names its instant)."""
    return data


for _model in (
    AssetPublishedV1,
    AssetPublishedV2,
    AssetUnpublishedV1,
    AssetRestrictionSetV1,
    ActivityPublishedV1,
    ActivityPublishedV2,
):
    register_payload(_model)
register_upcaster(AssetPublishedV2.EVENT_TYPE, 1, _same_payload)
register_upcaster(ActivityPublishedV2.EVENT_TYPE, 1, _same_payload)
