"""Versioned, frozen payload models of the domain events.

Each payload names its ``EVENT_TYPE`` and ``SCHEMA_VERSION``. A breaking change
adds a new model version plus an upcaster from the previous one; stored events
are never rewritten.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.fields import Caption, FileName, Line, Moment, Title
from shared.taxonomy import ACTIVITY_TYPE_CODES


class EventPayload(BaseModel):
    """Base of every payload: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    EVENT_TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]


class AssetKind(StrEnum):
    VIDEO = "video"
    PHOTO = "photo"
    AUDIO = "audio"


class AssetIngestedV1(EventPayload):
    """An original was validated by probing and stored content-addressed."""

    EVENT_TYPE: ClassVar[str] = "asset.ingested"
    SCHEMA_VERSION: ClassVar[int] = 1

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    kind: AssetKind
    media_format: str  # the demuxer/decoder that accepted the content, e.g. "mov,mp4,…" or "JPEG"
    mime_type: str
    bucket: str
    object_key: str
    # Metadata only: never used to build a path.
    original_filename: FileName = ""
    title: Title
    caption: Caption = ""
    recorded_at: Moment = None
    activity_type: str
    source_org: Line = ""
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None

    @field_validator("activity_type")
    @classmethod
    def _known_activity_type(cls, value: str) -> str:
        if value not in ACTIVITY_TYPE_CODES:
            raise ValueError(f"unknown activity type code {value!r}")
        return value


_PAYLOADS: dict[tuple[str, int], type[EventPayload]] = {}
_LATEST: dict[str, int] = {}
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# (event type, from version) -> function producing the payload of version + 1
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register_payload(model: type[EventPayload]) -> type[EventPayload]:
    _PAYLOADS[(model.EVENT_TYPE, model.SCHEMA_VERSION)] = model
    _LATEST[model.EVENT_TYPE] = max(_LATEST.get(model.EVENT_TYPE, 0), model.SCHEMA_VERSION)
    return model


def register_upcaster(event_type: str, from_version: int, fn: Upcaster) -> None:
    _UPCASTERS[(event_type, from_version)] = fn


for _model in (AssetIngestedV1,):
    register_payload(_model)


def registered_payloads() -> list[type[EventPayload]]:
    """Every registered payload model, every version, sorted by (event type, version)."""
    return [_PAYLOADS[key] for key in sorted(_PAYLOADS)]


class UnknownEventType(LookupError):
    """The stream holds an event this code has no model for."""


def payload_type_for(event_type: str, version: int | None = None) -> type[EventPayload]:
    """The payload model for a type (latest version unless one is given)."""
    if event_type not in _LATEST:
        raise UnknownEventType(event_type)
    key = (event_type, version if version is not None else _LATEST[event_type])
    if key not in _PAYLOADS:
        raise UnknownEventType(f"{event_type} v{key[1]}")
    return _PAYLOADS[key]


def upcast(event_type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Step ``data`` up through registered upcasters to the latest version."""
    latest = _LATEST.get(event_type)
    if latest is None:
        raise UnknownEventType(event_type)
    while version < latest:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise UnknownEventType(f"no upcaster for {event_type} v{version}")
        data = step(data)
        version += 1
    return version, data


def decode_payload(event_type: str, version: int, data: dict[str, Any]) -> EventPayload:
    version, data = upcast(event_type, version, data)
    return payload_type_for(event_type, version).model_validate(data)
