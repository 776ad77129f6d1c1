"""The tagging job's choices about OCR, with in-memory stand-ins for the event and
object stores (the real ones are exercised in tests/integration/test_tagger_service.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from services.tagger.ocr import OcrSettings
from services.tagger.worker import Tagger
from shared.events.envelope import EventEnvelope, new_event
from shared.events.media import AssetProcessingFailedV1, ProcessingStage
from shared.events.models import AssetIngestedV1, AssetKind
from shared.eventstore import EventStore, StoredEvent
from shared.objectstore import ObjectNotFound, ObjectStore

ASSET = "a" + "5" * 32


class Events:
    def __init__(self, history: list[EventEnvelope]) -> None:
        self.stored = [StoredEvent(i + 1, e.subject, e) for i, e in enumerate(history)]

    async def history(self, aggregate: str, aggregate_id: str) -> list[StoredEvent]:
        return [s for s in self.stored if s.envelope.aggregate_id == aggregate_id]

    async def read_subjects(self, subject_filter: str) -> AsyncIterator[StoredEvent]:
        for _ in ():
            yield _

    async def append(self, event: EventEnvelope, expected_last_sequence: int | None = None) -> Any:
        self.stored.append(StoredEvent(len(self.stored) + 1, event.subject, event))


class Objects:
    def __init__(self, missing: bool) -> None:
        self.missing = missing
        self.downloads = 0

    async def download(self, bucket: str, key: str, path: Path) -> None:
        self.downloads += 1
        if self.missing:
            raise ObjectNotFound(f"{bucket}/{key}")
        raise AssertionError("this test never reads a stored original")


def _ingested() -> EventEnvelope:
    payload = AssetIngestedV1(
        sha256="1" * 64,
        size_bytes=2048,
        kind=AssetKind.VIDEO,
        media_format="mov",
        mime_type="video/mp4",
        bucket="mam-originals",
        object_key="sha256/11/11/x",
        original_filename="clip.mp4",
        title="Phiên chất vấn kỳ họp thứ Bảy",
        activity_type="khac",
    )
    return new_event(payload, aggregate_id=ASSET, actor="test")


async def _heartbeat() -> None:
    return None


async def _tag(history: list[EventEnvelope], objects: Objects, deliveries: int = 1) -> dict[str, Any]:
    events = Events(history)
    tagger = Tagger(cast(EventStore, events), cast(ObjectStore, objects), OcrSettings())
    assert await tagger.handle(history[0], deliveries, _heartbeat) == "tagged"
    [tagged] = [s.envelope for s in events.stored if s.envelope.type == "asset.tagged"]
    return tagged.payload


async def test_media_the_transcoder_found_unreadable_is_tagged_without_opening_it_again() -> None:
    refused = AssetProcessingFailedV1(
        stage=ProcessingStage.PROBE,
        code="unsupported_format",
        reason="Tệp không phải video hợp lệ.",
        reason_en="Not a valid video.",
        retryable=False,
        attempts=1,
    )
    ingested = _ingested()
    objects = Objects(missing=False)
    payload = await _tag([ingested, new_event(refused, aggregate_id=ASSET, actor="transcoder")], objects)
    assert objects.downloads == 0
    assert payload["ocr_error"] == "media unreadable (unsupported_format)" and payload["ocr_frames"] == 0
    assert payload["activity_type"] == "ky-hop"  # still tagged from its title


async def test_a_missing_original_is_tagged_on_the_first_delivery_with_the_reason() -> None:
    objects = Objects(missing=True)
    payload = await _tag([_ingested()], objects, deliveries=1)
    assert objects.downloads == 1 and payload["ocr_error"].startswith("original missing: mam-originals/")
