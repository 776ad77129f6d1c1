"""One transcoding job, from ``asset.ingested`` to stored renditions and events.

Delivery is at least once, so the job is idempotent: the events it appends
have ids derived from the causing event (JetStream drops a repeat inside the
dedup window, and the asset's history is checked beyond it), and renditions
go to deterministic keys, so a redelivered job rewrites the same objects.
Failures become ``asset.processing_failed`` after a bounded number of
attempts; the caller acknowledges only once the outcome is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pydantic
from minio.error import S3Error

from services.transcoder import domain
from services.transcoder.render import RenderOptions, RenderResult, render
from shared.events.envelope import EventEnvelope, new_event
from shared.events.media import (
    AssetProbedV1,
    AssetProcessingFailedV1,
    AssetRenditionsReadyV1,
    ProcessingStage,
    Rendition,
)
from shared.events.models import AssetIngestedV1, EventPayload
from shared.eventstore import EventStore, StoredEvent
from shared.ids import deterministic_event_id
from shared.media.facts import media_facts
from shared.media.ffmpeg import FfmpegError
from shared.media.probe import MediaRejected
from shared.objectstore import ObjectNotFound, ObjectStore
from shared.outcomes import Ack, Fail, Outcome, Retry

log = logging.getLogger("mam.transcoder")
ACTOR = "transcoder"
# What S3 answers an address it can never accept: the same request fails on every attempt.
HOPELESS_S3_CODES = frozenset({"InvalidBucketName", "InvalidObjectName", "XMinioInvalidObjectName", "KeyTooLongError"})


@dataclass
class WorkerDeps:
    events: EventStore
    objects: ObjectStore
    renditions_bucket: str
    work_dir: Path
    render: RenderOptions
    max_input_bytes: int
    max_attempts: int
    retry_delay_s: float


def event_id_for(cause: EventEnvelope, payload_type: type[EventPayload]) -> str:
    return str(deterministic_event_id(cause.event_id, payload_type.EVENT_TYPE))


def _caused_event(cause: EventEnvelope, payload: EventPayload) -> EventEnvelope:
    return new_event(
        payload,
        aggregate_id=cause.aggregate_id,
        actor=ACTOR,
        causation=cause,
        event_id=event_id_for(cause, type(payload)),
    )


def _failed(cause: EventEnvelope, failure: domain.JobFailure, attempt: int) -> Fail:
    """Give the job up: ``asset.processing_failed`` with its reason, recorded before the ack."""
    return Fail(_caused_event(cause, domain.failed_payload(failure, attempt)))


async def _append(deps: WorkerDeps, cause: EventEnvelope, payload: EventPayload) -> None:
    result = await deps.events.append(_caused_event(cause, payload))
    status = "duplicate" if result.duplicate else "appended"
    log.info("%s %s %s", cause.aggregate_id, payload.EVENT_TYPE, status)


def _classify(exc: BaseException, stage: ProcessingStage) -> domain.JobFailure:
    """Turn any exception of a stage into a failure with a bilingual reason."""
    if isinstance(exc, domain.JobFailure):
        return exc
    if isinstance(exc, pydantic.ValidationError):
        # The event's payload, or the facts read from the file, break the event contract: the
        # same input fails the same way on every attempt, so no retry — failed at once, with why.
        return domain.JobFailure(
            ProcessingStage.INTERNAL if stage is ProcessingStage.FETCH else stage,
            "invalid_data",
            "Dữ liệu của tệp hoặc của sự kiện không hợp lệ, thử lại cũng không được.",
            "The event's payload or the file's facts are invalid; retrying cannot help.",
            str(exc)[:600],
            False,
        )
    if isinstance(exc, domain.HopelessInput):
        # Checked before any work: FETCH is where the event's own fields are read.
        return domain.JobFailure(stage, exc.code, exc.reason, exc.reason_en, exc.detail, False)
    if isinstance(exc, S3Error) and exc.code in HOPELESS_S3_CODES:
        return domain.JobFailure(
            stage,
            "invalid_object_address",
            "Kho lưu trữ từ chối địa chỉ đối tượng (tên bucket hoặc khóa không hợp lệ); thử lại cũng không được.",
            "Object storage refuses the object's address (invalid bucket name or key); retrying cannot help.",
            repr(exc)[:600],
            False,
        )
    if isinstance(exc, MediaRejected):
        return domain.JobFailure(ProcessingStage.PROBE, exc.code, exc.message_vi, exc.message_en, "", False)
    if isinstance(exc, FfmpegError):
        return domain.JobFailure(
            ProcessingStage.RENDER, exc.code, exc.message_vi, exc.message_en, exc.detail, exc.retryable
        )
    if isinstance(exc, ObjectNotFound):
        return domain.JobFailure(
            ProcessingStage.FETCH,
            "original_missing",
            "Không tìm thấy tệp gốc trong kho lưu trữ.",
            "The original is missing from object storage.",
            str(exc),
            True,
        )
    if isinstance(exc, S3Error | OSError | ConnectionError | TimeoutError):
        return domain.JobFailure(
            stage,
            "storage_unavailable",
            "Kho lưu trữ tạm thời không phản hồi.",
            "Storage or the local disk failed; retrying may help.",
            repr(exc)[:600],
            True,
        )
    return domain.JobFailure(
        ProcessingStage.INTERNAL,
        "internal_error",
        "Lỗi nội bộ của bộ chuyển mã.",
        "Internal transcoder error.",
        repr(exc)[:600],
        True,
    )


async def handle_ingested(deps: WorkerDeps, cause: EventEnvelope, attempt: int) -> Outcome:
    """Run or finish the job for one ``asset.ingested`` delivery (``attempt`` ≥ 1)."""
    return await _run_job(deps, cause, cause, await deps.events.history("asset", cause.aggregate_id), attempt)


async def handle_retry_requested(deps: WorkerDeps, cause: EventEnvelope, attempt: int) -> Outcome:
    """Run the job again for one ``asset.processing_retry_requested`` delivery: the outcome's
    event ids derive from the request, so each request gets exactly one new outcome."""
    history = await deps.events.history("asset", cause.aggregate_id)
    ingested = next((e.envelope for e in history if e.envelope.type == AssetIngestedV1.EVENT_TYPE), None)
    if ingested is None:  # the catalogue refuses this; an event appended by hand is dropped, loudly
        log.error("%s: retry requested for an asset never ingested; ignored", cause.aggregate_id)
        return Ack("no_asset")
    return await _run_job(deps, cause, ingested, history, attempt)


async def _run_job(
    deps: WorkerDeps, cause: EventEnvelope, ingested: EventEnvelope, history: list[StoredEvent], attempt: int
) -> Outcome:
    """The job for ``ingested``'s original, its outcome caused by ``cause`` (the ingest itself or a retry)."""
    seen = {stored.envelope.event_id for stored in history}
    final_ids = {event_id_for(cause, AssetRenditionsReadyV1), event_id_for(cause, AssetProcessingFailedV1)}
    if seen & final_ids:
        return Ack("already_done")  # redelivered after the outcome was recorded
    if attempt > deps.max_attempts:
        return _failed(cause, domain.gave_up_after_crashes(attempt), attempt)
    # The facts of the original do not change on a retry: probed once, by whichever job got there.
    probed_recorded = any(stored.envelope.type == AssetProbedV1.EVENT_TYPE for stored in history)
    jobdir = deps.work_dir / f"{cause.aggregate_id}-{uuid.uuid4().hex[:8]}"
    jobdir.mkdir(parents=True)
    stage = ProcessingStage.FETCH
    try:
        payload = ingested.typed_payload()
        assert isinstance(payload, AssetIngestedV1)
        domain.check_asset_id(cause.aggregate_id)  # before any work: its renditions could never be stored
        domain.check_original_address(payload.bucket, payload.object_key)
        began = time.perf_counter()
        original = jobdir / "original"  # our name: the upload's file name is metadata only
        info = await deps.objects.stat(payload.bucket, payload.object_key)
        if info is None:
            raise ObjectNotFound(f"{payload.bucket}/{payload.object_key}")
        if info.size > deps.max_input_bytes:
            raise domain.JobFailure(
                ProcessingStage.FETCH,
                "too_large",
                f"Tệp gốc vượt giới hạn {deps.max_input_bytes:,} byte.",
                f"The original exceeds {deps.max_input_bytes:,} bytes.",
                "",
                False,
            )
        await deps.objects.download(payload.bucket, payload.object_key, original)
        stage = ProcessingStage.PROBE
        facts, fmt = await asyncio.to_thread(media_facts, original, deps.render.limits)
        if not probed_recorded:
            await _append(deps, cause, facts)
        stage = ProcessingStage.RENDER
        outdir = jobdir / "out"
        outdir.mkdir()
        result = await render(original, fmt, facts, outdir, deps.render)
        stage = ProcessingStage.STORE
        stored = await _store(deps, cause.aggregate_id, result)
        await _append(
            deps,
            cause,
            AssetRenditionsReadyV1(
                profile=domain.PROFILE,
                renditions=tuple(stored),
                poster_time_s=result.poster_time_s,
                elapsed_s=round(time.perf_counter() - began, 3),
            ),
        )
        return Ack("ready")
    except Exception as exc:
        failure = _classify(exc, stage)
        log.warning(
            "%s attempt %d failed: %s",
            cause.aggregate_id,
            attempt,
            failure,
            exc_info=failure.code == "internal_error",  # a trace for our own faults only
        )
        if domain.decide(failure, attempt, deps.max_attempts) == "retry":
            return Retry(domain.retry_delay(attempt, deps.retry_delay_s), failure.code)
        return _failed(cause, failure, attempt)
    finally:
        await asyncio.to_thread(shutil.rmtree, jobdir, True)


async def _store(deps: WorkerDeps, asset_id: str, result: RenderResult) -> list[Rendition]:
    """Upload finished files; S3 makes each object visible only when complete."""
    stored = []
    for item in result.renditions:
        key = domain.rendition_key(asset_id, item.name)
        info = await deps.objects.put_file(deps.renditions_bucket, key, item.path, item.mime_type)
        stored.append(
            Rendition(
                name=item.name,
                bucket=deps.renditions_bucket,
                key=key,
                mime_type=item.mime_type,
                size_bytes=info.size,
                width=item.width,
                height=item.height,
                duration_s=item.duration_s,
            )
        )
    return stored
