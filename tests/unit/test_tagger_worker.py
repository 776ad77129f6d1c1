"""The tagging job's choices about OCR, with in-memory stand-ins for the event and
object stores (the real ones are exercised in tests/integration/test_tagger_service.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from services.tagger.ocr import OcrSettings
from services.tagger.worker import APPEND_ROUNDS, RETRY_DELAY_S, AssetNotReady, Tagger, failed_event_id, settle
from shared.events.envelope import EventEnvelope, new_event
from shared.events.media import AssetProcessingFailedV1, ProcessingStage
from shared.events.models import AssetIngestedV1, AssetKind
from shared.events.tagging import AssetRetagRequestedV1
from shared.outcomes import Ack, Fail, Retry
from shared.ports import AppendResult, ConcurrencyConflict
from tests.fakes import InMemoryEventLog, InMemoryObjectStorage
from tests.transcoder_media import make_photo

ASSET = "a" + "5" * 32


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


async def _tag(history: list[EventEnvelope], objects: InMemoryObjectStorage, deliveries: int = 1) -> dict[str, Any]:
    events = InMemoryEventLog(history)
    tagger = Tagger(events, objects, OcrSettings())
    assert await tagger.handle(history[0], deliveries, _heartbeat) == "tagged"
    [tagged] = events.of_type("asset.tagged")
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
    objects = InMemoryObjectStorage()
    objects.put_bytes("mam-originals", "sha256/11/11/x", b"not a video")
    payload = await _tag([ingested, new_event(refused, aggregate_id=ASSET, actor="transcoder")], objects)
    assert objects.downloads == 0
    assert payload["ocr_error"] == "media unreadable (unsupported_format)" and payload["ocr_frames"] == 0
    assert payload["activity_type"] == "ky-hop"  # still tagged from its title


async def test_a_missing_original_is_tagged_on_the_first_delivery_with_the_reason() -> None:
    objects = InMemoryObjectStorage()  # the original is not there
    payload = await _tag([_ingested()], objects, deliveries=1)
    assert objects.downloads == 1 and payload["ocr_error"].startswith("original missing: mam-originals/")


def test_a_handled_delivery_is_acknowledged_whatever_it_did() -> None:
    cause = _ingested()
    for result in ("tagged", "duplicate", "ignored"):
        assert settle(cause, result, 1, max_attempts=3) == Ack(result)


def test_a_failed_attempt_is_retried_later_each_time_a_little_later() -> None:
    cause = _ingested()
    first = settle(cause, TimeoutError("tesseract hung"), 1, max_attempts=3)
    second = settle(cause, TimeoutError("tesseract hung"), 2, max_attempts=3)
    assert isinstance(first, Retry) and isinstance(second, Retry)
    assert first.after_s == RETRY_DELAY_S and second.after_s == 2 * RETRY_DELAY_S
    assert "tesseract hung" in first.reason


def test_the_last_failed_attempt_ends_as_a_tagging_failed_event_never_a_silent_drop() -> None:
    cause = _ingested()
    outcome = settle(cause, RuntimeError("disk full"), 3, max_attempts=3)
    assert isinstance(outcome, Fail)
    event = outcome.event
    assert event.type == "asset.tagging_failed" and event.aggregate_id == ASSET
    assert event.event_id == failed_event_id(cause) and event.causation_id == cause.event_id
    assert event.payload["code"] == "tagging_error" and event.payload["attempts"] == 3
    assert "disk full" in event.payload["message"] and "disk full" in event.payload["message_en"]


def test_an_asset_that_never_arrived_fails_with_its_own_reason() -> None:
    outcome = settle(_ingested(), AssetNotReady("no asset.ingested"), 3, max_attempts=3)
    assert isinstance(outcome, Fail) and outcome.event.payload["code"] == "asset_not_found"
    assert outcome.event.payload["message"].startswith("Không tìm thấy tư liệu gốc")


async def test_a_photo_whose_ocr_runs_past_the_budget_is_tagged_at_once_without_on_screen_text(
    tmp_path: Path,
) -> None:
    # A flat photo crossed by a dotted line: Tesseract (the real one) spends about 150 s on
    # it where a page takes 0.4 s. The same picture would take as long again, so the first
    # delivery tags it without OCR instead of holding a tagging slot for three budgets.
    objects = InMemoryObjectStorage()
    objects.put_bytes("mam-originals", "sha256/11/11/x", make_photo("84fb8dfc157d-0", size=(2400, 1600)))
    photo = _ingested().model_copy(
        update={"payload": {**_ingested().payload, "kind": "photo", "media_format": "jpeg_pipe"}}
    )
    events = InMemoryEventLog([photo])
    tagger = Tagger(events, objects, OcrSettings(timeout_s=2.0), work_dir=tmp_path)
    started = time.monotonic()
    assert await tagger.handle(photo, 1, _heartbeat) == "tagged"
    assert time.monotonic() - started < 20
    [tagged] = events.of_type("asset.tagged")
    assert tagged.payload["ocr_error"] == "tesseract timed out after 2s" and tagged.payload["ocr_frames"] == 0


def _retag() -> EventEnvelope:
    return new_event(AssetRetagRequestedV1(reason="Bộ từ vựng mới"), aggregate_id=ASSET, actor="luu-tru")


async def test_an_upload_s_tagging_that_ends_after_a_later_re_tag_was_answered_appends_nothing() -> None:
    ingested, retag = _ingested(), _retag()
    events = InMemoryEventLog([ingested, retag])
    tagger = Tagger(events, InMemoryObjectStorage(), OcrSettings())
    assert await tagger.handle(retag, 1, _heartbeat) == "tagged"  # the re-tag's job ends first
    assert await tagger.handle(ingested, 1, _heartbeat) == "superseded"  # the upload's, begun earlier, last
    assert [t.causation_id for t in events.of_type("asset.tagged")] == [retag.event_id]
    # In the other order both answers stand, the re-tag's last (the index folds in stream order).
    events = InMemoryEventLog([ingested, retag])
    tagger = Tagger(events, InMemoryObjectStorage(), OcrSettings())
    assert [await tagger.handle(cause, 1, _heartbeat) for cause in (ingested, retag)] == ["tagged", "tagged"]
    assert [t.causation_id for t in events.of_type("asset.tagged")] == [ingested.event_id, retag.event_id]


class AppendedMeanwhile(InMemoryEventLog):
    """Another appender of the asset gets in between a job's read of the history and its append."""

    def __init__(self, events: list[EventEnvelope], meanwhile: list[list[EventEnvelope]]) -> None:
        super().__init__(events)
        self.meanwhile = meanwhile

    async def append(
        self, event: EventEnvelope, expected_last_sequence: int | None = None, *, guard: str | None = None
    ) -> AppendResult:
        if self.meanwhile:
            for other in self.meanwhile.pop(0):
                await super().append(other)
        return await super().append(event, expected_last_sequence, guard=guard)


async def test_an_answer_is_decided_again_on_the_history_as_it_is_when_another_append_got_in_first() -> None:
    ingested, retag = _ingested(), _retag()
    unrelated = new_event(AssetRetagRequestedV1(reason="lần nữa"), aggregate_id=ASSET, actor="luu-tru")
    # The first round loses to an unrelated append: the second round appends.
    events = AppendedMeanwhile([ingested], [[unrelated]])
    assert await Tagger(events, InMemoryObjectStorage(), OcrSettings()).handle(ingested, 1, _heartbeat) == "tagged"
    assert [s.envelope.type for s in events.stored][-2:] == ["asset.retag_requested", "asset.tagged"]
    # The first round loses to a later re-tag's answer: the second round drops this one.
    answer_events = InMemoryEventLog([ingested, retag])
    await Tagger(answer_events, InMemoryObjectStorage(), OcrSettings()).handle(retag, 1, _heartbeat)
    [its_answer] = answer_events.of_type("asset.tagged")
    events = AppendedMeanwhile([ingested], [[retag, its_answer]])
    assert await Tagger(events, InMemoryObjectStorage(), OcrSettings()).handle(ingested, 1, _heartbeat) == "superseded"
    assert events.of_type("asset.tagged") == [its_answer]
    # Busy every round: the delivery is retried later, nothing appended.
    events = AppendedMeanwhile([ingested], [[_retag()] for _ in range(APPEND_ROUNDS)])
    with pytest.raises(ConcurrencyConflict):
        await Tagger(events, InMemoryObjectStorage(), OcrSettings()).handle(ingested, 1, _heartbeat)
    assert events.of_type("asset.tagged") == []


async def test_a_last_failed_attempt_is_recorded_unless_a_later_re_tag_was_answered_or_retried() -> None:
    ingested, retag = _ingested(), _retag()
    fail = settle(ingested, RuntimeError("tesseract crashed"), 3, max_attempts=3)
    assert isinstance(fail, Fail)
    # Nothing answered since: the failure is recorded, once, and the delivery acknowledged.
    events = InMemoryEventLog([ingested, retag])
    tagger = Tagger(events, InMemoryObjectStorage(), OcrSettings())
    assert isinstance(await tagger.record_failure(ingested, fail), Ack)
    assert isinstance(await tagger.record_failure(ingested, fail), Ack)  # a redelivery
    assert [e.event_id for e in events.of_type("asset.tagging_failed")] == [failed_event_id(ingested)]
    # The re-tag's answer landed first: the upload's stale failure is dropped, not shown over it.
    events = InMemoryEventLog([ingested, retag])
    tagger = Tagger(events, InMemoryObjectStorage(), OcrSettings())
    assert await tagger.handle(retag, 1, _heartbeat) == "tagged"
    assert isinstance(await tagger.record_failure(ingested, fail), Ack)
    assert events.of_type("asset.tagging_failed") == []
    # The log refuses every round: the delivery comes back later, nothing appended.
    events = AppendedMeanwhile([ingested], [[_retag()] for _ in range(APPEND_ROUNDS)])
    outcome = await Tagger(events, InMemoryObjectStorage(), OcrSettings()).record_failure(ingested, fail)
    assert isinstance(outcome, Retry) and "ConcurrencyConflict" in outcome.reason
    assert events.of_type("asset.tagging_failed") == []
