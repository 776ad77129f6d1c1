"""Payload models of reels: a summary producer's ordered segments and their renders.

A reel is an aggregate of its own (``mam.reel.<id>.<event>``). Editing is
``reel.created`` then ``reel.items_set`` (the whole ordered list each time:
one event, one version); rendering is ``reel.render_requested`` (by a
producer, with the sources resolved at that moment), then the renderer's
``reel.render_started`` and exactly one of ``reel.rendered`` /
``reel.render_failed`` per job. Progress while rendering is not an event
(NATS KV, see services/reels/progress.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events.models import AssetKind, EventPayload, register_payload
from shared.fields import Line, ReelCaption, Title
from shared.text import clean_text


class ReelProfile(StrEnum):
    BROADCAST = "broadcast"  # cut from the originals
    DRAFT = "draft"  # cut from the proxies: quick to review, not for air


class ReelItem(BaseModel):
    """One segment as the producer asked for it: ``in_s`` to ``out_s`` of an asset, in seconds
    (three decimals); for a photo, a still shown ``out_s - in_s`` seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    in_s: float = Field(ge=0, le=1_000_000)
    out_s: float = Field(ge=0, le=1_000_000)
    caption: ReelCaption = ""

    @field_validator("in_s", "out_s")
    @classmethod
    def _millisecond(cls, value: float) -> float:
        return round(value, 3)


class ReelCreatedV1(EventPayload):
    EVENT_TYPE: ClassVar[str] = "reel.created"
    SCHEMA_VERSION: ClassVar[int] = 1

    title: Title
    subtitle: Line = ""
    profile: ReelProfile = ReelProfile.BROADCAST


class ReelItemsSetV1(EventPayload):
    """The reel's segments are now these, in this order (replaces the previous list)."""

    EVENT_TYPE: ClassVar[str] = "reel.items_set"
    SCHEMA_VERSION: ClassVar[int] = 1

    items: tuple[ReelItem, ...]
    total_s: float = Field(ge=0)


class RenderSource(BaseModel):
    """One segment with where its media is, resolved when the render was requested."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset_id: str
    kind: AssetKind
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bucket: str
    key: str  # the original, or the proxy for a draft
    in_s: float = Field(ge=0)
    out_s: float = Field(ge=0)
    caption: ReelCaption = ""

    @model_validator(mode="after")
    def _ordered(self) -> RenderSource:
        if self.out_s <= self.in_s:
            raise ValueError("out_s must be after in_s")
        return self


class ReelRenderRequestedV1(EventPayload):
    EVENT_TYPE: ClassVar[str] = "reel.render_requested"
    SCHEMA_VERSION: ClassVar[int] = 1

    job_id: str
    title: Title
    subtitle: Line = ""
    profile: ReelProfile
    sources: tuple[RenderSource, ...] = Field(min_length=1)


class ReelRenderStartedV1(EventPayload):
    EVENT_TYPE: ClassVar[str] = "reel.render_started"
    SCHEMA_VERSION: ClassVar[int] = 1

    job_id: str
    attempt: int = Field(ge=1)
    worker: str  # host:port of the replica, for operators


class ReelChapter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)


class ReelRenderedV1(EventPayload):
    """The job's output and its WebVTT chapters are stored, complete."""

    EVENT_TYPE: ClassVar[str] = "reel.rendered"
    SCHEMA_VERSION: ClassVar[int] = 1

    job_id: str
    bucket: str
    output_key: str
    chapters_key: str
    size_bytes: int = Field(ge=0)
    duration_s: float = Field(ge=0)
    integrated_lufs: float
    true_peak_dbtp: float
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    chapters: tuple[ReelChapter, ...] = ()
    segments_rendered: int = Field(ge=0)
    segments_cached: int = Field(ge=0)
    elapsed_s: float = Field(ge=0)


class ReelRenderFailedV1(EventPayload):
    """The renderer gave up on this job; says why, in Vietnamese then English."""

    EVENT_TYPE: ClassVar[str] = "reel.render_failed"
    SCHEMA_VERSION: ClassVar[int] = 1

    job_id: str
    code: str
    reason: str
    reason_en: str
    detail: str = ""
    attempts: int = Field(ge=1)

    @field_validator("reason", "reason_en", "detail")
    @classmethod
    def _clean(cls, value: str) -> str:
        return clean_text(value)[:2000]


for _model in (
    ReelCreatedV1,
    ReelItemsSetV1,
    ReelRenderRequestedV1,
    ReelRenderStartedV1,
    ReelRenderedV1,
    ReelRenderFailedV1,
):
    register_payload(_model)
