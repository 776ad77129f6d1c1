"""The tagging job: one asset event in, one ``asset.tagged`` (or ``…failed``) out.

At-least-once delivery: the emitted event's id derives from the causing event,
so a redelivery either finds its result already in the asset's history or
publishes a duplicate JetStream drops. A job that keeps failing ends as
``asset.tagging_failed`` with the reason, never as a silent drop; OCR problems
on the last attempt degrade to tags without on-screen text instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.tagger.domain import propose_tags
from services.tagger.ocr import OcrError, OcrSettings, OcrTimeout, extract_keyframes, merge_texts, ocr_image
from shared.directory import Directory
from shared.events.envelope import EventEnvelope, new_event
from shared.events.media import AssetProcessingFailedV1
from shared.events.models import AssetIngestedV1, AssetKind
from shared.events.tagging import AssetRetagRequestedV1, AssetTaggedV1, AssetTaggingFailedV1
from shared.ids import deterministic_event_id
from shared.outcomes import FAIL_RECORD_RETRY_S, Ack, Fail, Outcome, Retry
from shared.ports import ConcurrencyConflict, EventLog, ObjectNotFound, ObjectStorage, StoredEvent

log = logging.getLogger("mam.tagger")
ACTOR = "tagger"
TRIGGERS = frozenset({AssetIngestedV1.EVENT_TYPE, AssetRetagRequestedV1.EVENT_TYPE})
# Redelivery after a failed attempt waits this long times the attempt number.
RETRY_DELAY_S = 2.0
# Decide-and-append rounds lost to other appenders of the asset before the delivery is retried.
APPEND_ROUNDS = 5

Heartbeat = Callable[[], Awaitable[None]]


class AssetNotReady(RuntimeError):
    """A re-tag arrived for an asset whose ``asset.ingested`` is not readable (yet)."""


def _unreadable_media(history: list[StoredEvent]) -> str:
    """The code of a permanent ``asset.processing_failed`` in the history, or ""."""
    for stored in history:
        if stored.envelope.type != AssetProcessingFailedV1.EVENT_TYPE:
            continue  # validate only the payloads that matter
        p = stored.envelope.typed_payload()
        if isinstance(p, AssetProcessingFailedV1) and not p.retryable:
            return p.code
    return ""


def superseded(cause: EventEnvelope, history: list[StoredEvent]) -> bool:
    """Whether the history already holds the answer to a later request to tag the asset (a
    re-tag appended after ``cause``): this job's answer would be older news (pure).

    Jobs of one asset run at once on different replicas (the upload's and a re-tag's after a
    vocabulary change): whichever finishes last would otherwise win in the index."""
    sequence_of = {s.envelope.event_id: s.sequence for s in history}
    mine = sequence_of.get(cause.event_id)
    if mine is None:
        return False
    answers = (AssetTaggedV1.EVENT_TYPE, AssetTaggingFailedV1.EVENT_TYPE)
    return any(s.envelope.type in answers and sequence_of.get(s.envelope.causation_id or "", 0) > mine for s in history)


def tagged_event_id(cause: EventEnvelope) -> str:
    return str(deterministic_event_id(cause.event_id, "tagged"))


def failed_event_id(cause: EventEnvelope) -> str:
    return str(deterministic_event_id(cause.event_id, "tagging_failed"))


def failure_event(cause: EventEnvelope, exc: BaseException, attempts: int) -> EventEnvelope:
    """The ``asset.tagging_failed`` people see once retrying cannot help."""
    if isinstance(exc, AssetNotReady):
        code, vi = "asset_not_found", f"Không tìm thấy tư liệu gốc {cause.aggregate_id} để gắn nhãn."
    else:
        code, vi = "tagging_error", f"Gắn nhãn tự động thất bại sau {attempts} lần thử: {exc}"
    en = f"Tagging failed after {attempts} attempts: {type(exc).__name__}: {exc}"
    payload = AssetTaggingFailedV1(code=code, message=vi[:1000], message_en=en[:1000], attempts=attempts)
    return new_event(
        payload, aggregate_id=cause.aggregate_id, actor=ACTOR, causation=cause, event_id=failed_event_id(cause)
    )


def settle(cause: EventEnvelope, result: str | BaseException, deliveries: int, max_attempts: int) -> Outcome:
    """What to tell the server about one delivery, from what handling it gave (pure).

    A result (tagged, duplicate, ignored) is acknowledged; an exception is
    retried with a growing delay, and on the last attempt becomes
    ``asset.tagging_failed`` — never a silent drop.
    """
    if not isinstance(result, BaseException):
        return Ack(result)
    if deliveries >= max_attempts:
        return Fail(failure_event(cause, result, deliveries))
    return Retry(RETRY_DELAY_S * deliveries, f"{type(result).__name__}: {result}"[:300])


@dataclass
class Tagger:
    events: EventLog
    objects: ObjectStorage
    ocr: OcrSettings
    max_attempts: int = 3
    directory: Directory = field(default_factory=Directory)
    # Scratch space (originals, keyframes): the service's work dir, swept at start
    # (shared/workdirs.py). None only in tests: the system's temp dir.
    work_dir: Path | None = None

    async def refresh(self) -> None:
        """Catch the people and activities up with the log: a job sees every registration
        and activity recorded before it started."""
        await self.directory.catch_up(self.events)

    async def read_text(self, asset: AssetIngestedV1, heartbeat: Heartbeat) -> tuple[str, int]:
        """On-screen text of a photo, or of a clip's keyframes; audio has none.

        ``ocr.timeout_s`` is the whole asset's budget, shared by the keyframe extraction and
        every frame's OCR: six frames each just under a per-run limit would hold a tagging
        slot six times as long."""
        if asset.kind == AssetKind.AUDIO:
            return "", 0
        deadline = 0.0  # set once the original is here: the download is not OCR's time

        def budget() -> OcrSettings:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OcrTimeout(f"OCR ran past its {self.ocr.timeout_s:.0f}s budget")
            return dataclasses.replace(self.ocr, timeout_s=left)

        with tempfile.TemporaryDirectory(prefix="mam-tagger-", dir=self.work_dir) as tmp:
            job = Path(tmp)
            local = job / "original"
            await self.objects.download(asset.bucket, asset.object_key, local)
            deadline = time.monotonic() + self.ocr.timeout_s
            if asset.kind == AssetKind.PHOTO:
                return await asyncio.to_thread(ocr_image, local, budget(), job), 1
            frames_dir = job / "frames"
            frames_dir.mkdir()
            frames = await asyncio.to_thread(extract_keyframes, local, frames_dir, asset.media_format, budget())
            texts = []
            for frame in frames:
                await heartbeat()  # OCR of several frames can outlast the ack wait
                texts.append(await asyncio.to_thread(ocr_image, frame, budget(), job))
            return merge_texts(texts), len(frames)

    async def ocr_or_why_not(
        self, asset: AssetIngestedV1, deliveries: int, heartbeat: Heartbeat
    ) -> tuple[str, int, str]:
        """(text, frames, "") — or, once retrying cannot help, ("", 0, why there is no OCR).

        Passing faults are raised for redelivery until the last attempt; then the
        asset is tagged without on-screen text rather than lost.
        """
        try:
            text, frames = await self.read_text(asset, heartbeat)
            return text, frames, ""
        except ObjectNotFound as exc:
            # Ingest stores the original before announcing it: a missing one does not come back.
            return "", 0, f"original missing: {exc}"
        except OcrTimeout as exc:
            # The same picture would take as long again: tagged now without on-screen text
            # (an archivist can ask for a re-tag), not three budgets of a tagging slot.
            return "", 0, str(exc)[:500]
        except (OcrError, OSError) as exc:
            if deliveries < self.max_attempts:
                raise
            return "", 0, str(exc)[:500]
        except Exception as exc:  # S3 errors
            if deliveries < self.max_attempts:
                raise
            return "", 0, f"{type(exc).__name__}: {exc}"[:500]

    async def handle(self, cause: EventEnvelope, deliveries: int, heartbeat: Heartbeat) -> str:
        """Tag the asset ``cause`` is about; returns what happened (for logs and tests)."""
        if cause.type not in TRIGGERS:
            return "ignored"
        history = await self.events.history("asset", cause.aggregate_id)
        done = {tagged_event_id(cause), failed_event_id(cause)}
        if any(s.envelope.event_id in done for s in history):
            return "duplicate"
        ingested = next((s.envelope for s in history if s.envelope.type == AssetIngestedV1.EVENT_TYPE), None)
        if ingested is None:
            raise AssetNotReady(f"asset {cause.aggregate_id} has no asset.ingested event")
        asset = ingested.typed_payload()
        assert isinstance(asset, AssetIngestedV1)
        unreadable = _unreadable_media(history)
        if unreadable:  # the transcoder found the file corrupt or hostile: don't open it again
            text, frames, ocr_error = "", 0, f"media unreadable ({unreadable})"
        else:
            text, frames, ocr_error = await self.ocr_or_why_not(asset, deliveries, heartbeat)
        await self.refresh()
        payload = propose_tags(
            asset,
            ocr_text=text,
            ocr_frames=frames,
            ocr_error=ocr_error,
            registry=self.directory.registry,
            activities=self.directory.activities.live(),
            cause="retag" if cause.type == AssetRetagRequestedV1.EVENT_TYPE else "ingested",
        )
        event = new_event(
            payload, aggregate_id=cause.aggregate_id, actor=ACTOR, causation=cause, event_id=tagged_event_id(cause)
        )
        return await self.append_unless_superseded(cause, event)

    async def append_unless_superseded(self, cause: EventEnvelope, event: EventEnvelope) -> str:
        """Append ``event`` unless a later re-tag has been answered meanwhile ("superseded"):
        decided on the asset's history as it is, and appended only if none came since."""
        for _ in range(APPEND_ROUNDS):
            history = await self.events.history("asset", cause.aggregate_id)
            if any(s.envelope.event_id == event.event_id for s in history):
                return "duplicate"  # this job's answer landed (a redelivery raced it)
            if superseded(cause, history):
                log.info("%s %s: a later re-tag was answered first; this answer is dropped", cause.type, cause.event_id)
                return "superseded"
            try:
                await self.events.append(event, history[-1].sequence if history else 0)
                return event.type.removeprefix("asset.")  # "tagged" or "tagging_failed"
            except ConcurrencyConflict:
                continue  # the transcoder, an archivist or another job appended: decide again
        raise ConcurrencyConflict(cause.aggregate_id, -1, f"still busy after {APPEND_ROUNDS} rounds")

    async def record_failure(self, cause: EventEnvelope, fail: Fail) -> Outcome:
        """Settle a job's last failed attempt: its ``asset.tagging_failed`` is appended by the
        same rule as an answer, so a very late failure of the upload's job never lands over a
        later re-tag's answer. If it cannot be appended now, the delivery is retried (as
        ``apply_outcome`` does with a failure it could not record)."""
        try:
            note = await self.append_unless_superseded(cause, fail.event)
        except Exception as exc:
            return Retry(FAIL_RECORD_RETRY_S, f"recording the failure: {type(exc).__name__}: {exc}"[:300])
        return Ack(f"failed for good: {note}" if note != "superseded" else "failed, superseded by a later re-tag")
