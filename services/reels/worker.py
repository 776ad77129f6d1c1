"""One render job, from ``reel.render_requested`` to a stored reel and ``reel.rendered``.

Delivery is at least once and a replica may be killed mid-render, so:

- a job already finished (``reel.rendered`` / ``reel.render_failed`` for its
  ``job_id`` in the reel's history) is acknowledged and nothing else happens;
- ``reel.render_started`` and the final event are appended with the reel's
  expected last sequence, and ids derived from the job: two replicas racing on
  one job cannot both record an outcome — the loser sees a conflict, reloads
  and finds the job done;
- the output and its chapters go to keys derived from the job, uploaded only
  once complete (S3 shows an object whole or not at all), before the event
  that names them: a kill -9 before the event leaves at most an object nobody
  is told about, and the rerun writes the same key again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, cast

from services.reels.decide import fold_reel
from services.reels.progress import Progress, ProgressBoard, ProgressReporter
from services.reels.render import (
    Profile,
    ReelPlan,
    RenderRefused,
    RenderResult,
    Segment,
    SegmentCache,
    Source,
)
from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import EventPayload
from shared.events.reels import (
    ReelChapter,
    ReelProfile,
    ReelRenderedV1,
    ReelRenderFailedV1,
    ReelRenderRequestedV1,
    ReelRenderStartedV1,
    RenderSource,
)
from shared.ids import deterministic_event_id
from shared.media.ffmpeg import FfmpegError
from shared.objectstore import sha256_file
from shared.outcomes import Ack, Outcome, Retry
from shared.ports import ConcurrencyConflict, EventLog, ObjectNotFound, ObjectStorage

log = logging.getLogger("mam.reels.worker")
T = TypeVar("T")
ACTOR = "reels-renderer"


class RenderFunction(Protocol):
    def __call__(
        self,
        plan: ReelPlan,
        work_dir: Path,
        cache: SegmentCache,
        on_progress: Callable[[float], None],
        *,
        timeout_s: float,
    ) -> Awaitable[RenderResult]: ...


@dataclass
class RendererDeps:
    events: EventLog
    objects: ObjectStorage
    cache: SegmentCache
    board: ProgressBoard
    render: RenderFunction
    reels_bucket: str
    work_dir: Path
    worker_name: str
    max_attempts: int = 3
    retry_delay_s: float = 5.0
    timeout_base_s: float = 300.0
    timeout_per_media_s: float = 20.0
    progress_per_s: float = 4.0


def output_keys(reel_id: str, job_id: str) -> tuple[str, str]:
    """Where a job's reel and its WebVTT chapters are stored (one pair per job)."""
    return f"{reel_id}/{job_id}.mp4", f"{reel_id}/{job_id}.chapters.vtt"


def _event(cause: EventEnvelope, payload: EventPayload, purpose: str) -> EventEnvelope:
    return new_event(
        payload,
        aggregate_id=cause.aggregate_id,
        actor=ACTOR,
        causation=cause,
        event_id=str(deterministic_event_id(cause.event_id, purpose)),
    )


def failed(job: ReelRenderRequestedV1, code: str, vi: str, en: str, detail: str, attempt: int) -> ReelRenderFailedV1:
    return ReelRenderFailedV1(
        job_id=job.job_id, code=code, reason=vi, reason_en=en, detail=detail[:2000], attempts=attempt
    )


async def _record_final(deps: RendererDeps, cause: EventEnvelope, payload: EventPayload, expected: int) -> Outcome:
    """Append the job's one outcome, guarded by the sequence this replica last saw."""
    job_id = getattr(payload, "job_id", "")
    try:
        await deps.events.append(_event(cause, payload, f"{job_id}:final"), expected_last_sequence=expected)
    except ConcurrencyConflict:
        reel = fold_reel(await deps.events.history("reel", cause.aggregate_id))
        if reel is not None and job_id in reel.finished_jobs:
            return Ack("finished by another delivery")
        return Retry(deps.retry_delay_s, "reel changed meanwhile")
    return Ack(payload.EVENT_TYPE)


async def _fetch_sources(
    deps: RendererDeps, sources: tuple[RenderSource, ...], profile: ReelProfile, folder: Path
) -> list[Source]:
    """Each distinct object once into ``folder``, side by side; a proxy's hash is computed
    here (the original's is its content address, known since ingest)."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    distinct = list({(src.bucket, src.key): src for src in sources}.values())

    async def fetch(number: int, src: RenderSource) -> Source:
        path = folder / f"source-{number}"
        await deps.objects.download(src.bucket, src.key, path)
        is_original = profile is ReelProfile.BROADCAST or src.kind.value == "photo"
        digest = src.sha256 if is_original else await asyncio.to_thread(sha256_file, path)
        return Source(path=path, sha256=digest, kind=src.kind.value)

    fetched = await _all_settled(*(fetch(number, src) for number, src in enumerate(distinct)))
    local = {(src.bucket, src.key): got for src, got in zip(distinct, fetched, strict=True)}
    log.debug("%d sources ready", len(local))
    return [local[(src.bucket, src.key)] for src in sources]


async def _all_settled(*steps: Awaitable[T]) -> list[T]:
    """Run ``steps`` side by side; their results, or the first failure once every step has
    ended (they run in threads that cannot be cancelled: none may outlive the job's folder)."""
    settled = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in settled:
        if isinstance(outcome, BaseException):
            raise outcome
    return cast(list[T], settled)


def plan_for(job: ReelRenderRequestedV1, sources: list[Source]) -> ReelPlan:
    segments = tuple(
        Segment(source=local, in_s=src.in_s, out_s=src.out_s, caption=src.caption)
        for src, local in zip(job.sources, sources, strict=True)
    )
    return ReelPlan(title=job.title, subtitle=job.subtitle, segments=segments, profile=Profile(job.profile.value))


def _content_type(path: Path) -> str:
    return "text/vtt; charset=utf-8" if path.suffix == ".vtt" else "video/mp4"


async def handle_render_requested(deps: RendererDeps, cause: EventEnvelope, attempt: int) -> Outcome:
    """Run or finish the job of one ``reel.render_requested`` delivery (``attempt`` ≥ 1)."""
    job = cause.typed_payload()
    assert isinstance(job, ReelRenderRequestedV1)
    reel_id = cause.aggregate_id
    reel = fold_reel(await deps.events.history("reel", reel_id))
    if reel is None or job.job_id in reel.finished_jobs:
        return Ack("already done")
    if attempt > deps.max_attempts:
        gave_up = failed(
            job,
            "gave_up",
            f"Dựng phim thất bại {attempt - 1} lần (bộ dựng bị dừng giữa chừng); đã dừng thử lại.",
            f"The render failed {attempt - 1} times (the renderer stopped mid-way); not retrying.",
            "",
            attempt - 1,
        )
        return await _record_final(deps, cause, gave_up, reel.last_sequence)
    started = ReelRenderStartedV1(job_id=job.job_id, attempt=attempt, worker=deps.worker_name)
    try:
        appended = await deps.events.append(
            _event(cause, started, f"{job.job_id}:started:{attempt}"), expected_last_sequence=reel.last_sequence
        )
    except ConcurrencyConflict:
        return Retry(deps.retry_delay_s, "reel changed meanwhile")
    expected = appended.sequence
    jobdir = deps.work_dir / f"{reel_id}-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(jobdir.mkdir, parents=True)
    reporter = ProgressReporter(deps.board, reel_id, job.job_id, deps.progress_per_s)
    began = time.perf_counter()
    try:
        async with reporter.running() as on_progress:
            sources = await _fetch_sources(deps, job.sources, job.profile, jobdir / "sources")
            reporter.enter("rendering")
            media_s = sum(s.out_s - s.in_s for s in job.sources)
            timeout = deps.timeout_base_s + deps.timeout_per_media_s * media_s
            result = await deps.render(
                plan_for(job, sources),
                jobdir / "render",
                deps.cache,
                lambda percent: on_progress(percent / 100),  # the renderer reports 0–100
                timeout_s=timeout,
            )
            reporter.enter("storing")
            output_key, chapters_key = output_keys(reel_id, job.job_id)
            stored = (
                await _all_settled(
                    deps.objects.put_file(deps.reels_bucket, output_key, result.output, "video/mp4"),
                    deps.objects.put_file(
                        deps.reels_bucket, chapters_key, result.chapters_vtt, "text/vtt; charset=utf-8"
                    ),
                )
            )[0]
        rendered = ReelRenderedV1(
            job_id=job.job_id,
            bucket=deps.reels_bucket,
            output_key=output_key,
            chapters_key=chapters_key,
            size_bytes=stored.size,
            duration_s=round(result.duration_s, 3),
            integrated_lufs=round(result.integrated_lufs, 2),
            true_peak_dbtp=round(result.true_peak_dbtp, 2),
            width=result.target.width,
            height=result.target.height,
            frame_rate=round(float(result.target.fps), 3),
            chapters=tuple(ReelChapter(title=c.title, start_s=c.start_s, end_s=c.end_s) for c in result.chapters),
            segments_rendered=result.segments_rendered,
            segments_cached=result.segments_cached,
            elapsed_s=round(time.perf_counter() - began, 3),
        )
        outcome = await _record_final(deps, cause, rendered, expected)
        await deps.board.put(reel_id, Progress(job.job_id, 100.0, "done"))
        return outcome
    except RenderRefused as exc:
        return await _record_final(
            deps, cause, failed(job, exc.code, exc.message_vi, exc.message_en, "", attempt), expected
        )
    except FfmpegError as exc:
        if exc.retryable and attempt < deps.max_attempts:
            return Retry(deps.retry_delay_s * attempt, f"{exc.code}: {exc.detail}"[:300])
        error = failed(job, exc.code, exc.message_vi, exc.message_en, exc.detail, attempt)
        return await _record_final(deps, cause, error, expected)
    except ObjectNotFound as exc:
        missing = failed(
            job,
            "source_missing",
            "Không tìm thấy tệp nguồn trong kho lưu trữ.",
            "A source file is missing from object storage.",
            str(exc),
            attempt,
        )
        return await _record_final(deps, cause, missing, expected)
    except Exception as exc:
        log.warning("%s job %s attempt %d failed", reel_id, job.job_id, attempt, exc_info=True)
        detail = f"{type(exc).__name__}: {exc}"[:600]
        if attempt < deps.max_attempts:
            return Retry(deps.retry_delay_s * attempt, detail)
        error = failed(
            job,
            "render_error",
            "Lỗi khi dựng phim; đã thử lại nhiều lần.",
            "The render failed; retried several times.",
            detail,
            attempt,
        )
        return await _record_final(deps, cause, error, expected)
    finally:
        await asyncio.to_thread(shutil.rmtree, jobdir, True)


def job_id_for(reel_id: str, sequence: int) -> str:
    """A job id: readable, unique per render request."""
    return "j" + hashlib.sha256(f"{reel_id}:{sequence}:{uuid.uuid4()}".encode()).hexdigest()[:24]
