"""Payload models of the media pipeline (transcoder): probed, renditions, failures."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events.models import AssetKind, EventPayload, register_payload
from shared.fields import Note
from shared.text import clean_text


class GeoPoint(BaseModel):
    """Where a photo or clip was recorded (WGS84), from EXIF or container tags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    alt_m: float | None = None


class AssetProbedV1(EventPayload):
    """Media facts archivists search and sort by, read from the original.

    ``width``/``height`` are as displayed, i.e. after ``rotation`` (a portrait
    phone clip stored as 1920×1080 with rotation 90 is 1080×1920 here).
    """

    EVENT_TYPE: ClassVar[str] = "asset.probed"
    SCHEMA_VERSION: ClassVar[int] = 1

    kind: AssetKind
    container: str  # demuxer/format that read the content, e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "JPEG"
    duration_s: float | None = Field(default=None, ge=0)
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    frame_rate: float | None = Field(default=None, ge=0)
    video_codec: str | None = None
    audio_codec: str | None = None
    bitrate: int | None = Field(default=None, ge=0)  # bits/s of the whole file
    rotation: int = Field(default=0, ge=0, lt=360)  # clockwise degrees the player applies
    audio_channels: int | None = Field(default=None, ge=0)
    audio_sample_rate: int | None = Field(default=None, ge=0)
    recorded_at: datetime | None = None  # from container creation_time / EXIF DateTimeOriginal
    camera: str | None = None  # make and model, NFC
    gps: GeoPoint | None = None

    @field_validator("camera")
    @classmethod
    def _nfc(cls, value: str | None) -> str | None:
        return clean_text(value) or None


class RenditionName(StrEnum):
    PROXY = "proxy"  # video: H.264/AAC MP4 ≤ 720p, faststart
    POSTER = "poster"  # video: one representative, non-black frame
    STORYBOARD = "storyboard"  # video: sprite of small frames for scrub previews
    STORYBOARD_VTT = "storyboard_vtt"  # video: WebVTT cues mapping times to sprite tiles
    WEB = "web"  # photo: long edge ≤ 2048, orientation applied
    THUMB = "thumb"  # photo: long edge ≤ 400
    AUDIO = "audio"  # audio: AAC in MP4 (m4a)
    WAVEFORM = "waveform"  # audio: PNG of the waveform


class Rendition(BaseModel):
    """One stored derivative; keys are deterministic under the asset id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: RenditionName
    bucket: str
    key: str
    mime_type: str
    size_bytes: int = Field(ge=0)
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None


class AssetRenditionsReadyV1(EventPayload):
    """Every rendition of the asset is stored; the UI can show it."""

    EVENT_TYPE: ClassVar[str] = "asset.renditions_ready"
    SCHEMA_VERSION: ClassVar[int] = 1

    profile: str  # rendition profile version; a new profile re-renders under new keys
    renditions: tuple[Rendition, ...]
    poster_time_s: float | None = None
    elapsed_s: float = Field(ge=0)


class ProcessingStage(StrEnum):
    FETCH = "fetch"  # reading the original from object storage
    PROBE = "probe"  # identifying and checking the content
    RENDER = "render"  # ffmpeg / Pillow
    STORE = "store"  # writing renditions
    INTERNAL = "internal"  # a fault of ours, not of the file


class AssetProcessingFailedV1(EventPayload):
    """The transcoder gave up on this asset; says why, in Vietnamese then English."""

    EVENT_TYPE: ClassVar[str] = "asset.processing_failed"
    SCHEMA_VERSION: ClassVar[int] = 1

    stage: ProcessingStage
    code: str
    reason: str  # Vietnamese, shown to users
    reason_en: str
    detail: str = ""  # ffmpeg's stderr summarised, for the archivist or operator
    retryable: bool  # whether running the job again could succeed (e.g. storage was down)
    attempts: int = Field(ge=1)

    @field_validator("reason", "reason_en", "detail")
    @classmethod
    def _nfc(cls, value: str) -> str:
        return clean_text(value)


class AssetProcessingRetryRequestedV1(EventPayload):
    """An archivist asks the transcoder to run a failed asset's job again (e.g. storage was
    down, or ffmpeg timed out on a busy machine); the transcoder answers with exactly one
    ``asset.renditions_ready`` or ``asset.processing_failed`` caused by this event."""

    EVENT_TYPE: ClassVar[str] = "asset.processing_retry_requested"
    SCHEMA_VERSION: ClassVar[int] = 1

    failure_code: str = ""  # the failure being retried (the last asset.processing_failed's code)
    note: Note = ""


for _model in (AssetProbedV1, AssetRenditionsReadyV1, AssetProcessingFailedV1, AssetProcessingRetryRequestedV1):
    register_payload(_model)
