"""transcoder service: wiring, the durable JetStream subscriber and /healthz.

The worker is a FastStream pull consumer of ``asset.ingested`` on a durable
shared by every replica (more replicas = more throughput, each message goes
to one of them). Acks are manual: a message is acknowledged only after its
outcome (renditions + event, or a failure event) is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.nats import NatsBroker

from services.transcoder.render import RenderOptions
from services.transcoder.worker import WorkerDeps, handle_ingested, handle_retry_requested
from shared.events.envelope import EventEnvelope
from shared.events.media import AssetProcessingRetryRequestedV1
from shared.events.models import AssetIngestedV1
from shared.eventstore import EventStore
from shared.http import service_app
from shared.media.probe import Limits
from shared.nats_liveness import liveness
from shared.objectstore import ObjectStore
from shared.outcomes import Outcome
from shared.pull_consumers import align_ack_wait, long_job_subscriber, start_broker
from shared.settings import Settings
from shared.workdirs import fresh_work_dir

TRANSCODER_DURABLE = "transcoder"
# Archivists' retries of failed jobs: a durable of their own, so the ingest durable's
# filter (and the position of every deployed one) stays as it is.
RETRY_DURABLE = "transcoder-retry"
log = logging.getLogger("mam.transcoder")


@dataclass
class TranscoderDeps:
    settings: Settings
    events: EventStore
    worker: WorkerDeps
    broker: NatsBroker

    async def readiness(self) -> dict[str, bool]:
        return {"nats": await self.events.ready(), "s3": await self.worker.objects.ready()}

    async def close(self) -> None:
        await self.broker.stop()
        await self.events.close()


def build_broker(settings: Settings, worker: WorkerDeps) -> NatsBroker:
    broker = NatsBroker(settings.nats_servers, **liveness())

    def jobs(
        event_type: str, durable: str, handle: Callable[[WorkerDeps, EventEnvelope, int], Awaitable[Outcome]]
    ) -> None:
        long_job_subscriber(
            broker,
            stream=settings.event_stream,
            event_type=event_type,
            durable=durable,
            handle=lambda cause, attempt: handle(worker, cause, attempt),
            events=worker.events,
            jobs_at_once=settings.transcoder_concurrency,
            ack_wait_s=settings.transcoder_ack_wait_s,
            retry_delay_s=settings.transcoder_retry_delay_s,
        )

    jobs(AssetIngestedV1.EVENT_TYPE, TRANSCODER_DURABLE, handle_ingested)
    jobs(AssetProcessingRetryRequestedV1.EVENT_TYPE, RETRY_DURABLE, handle_retry_requested)
    return broker


async def build_deps(settings: Settings) -> TranscoderDeps:
    """The one wiring function of this service."""
    events = await EventStore.from_settings(settings)
    objects = ObjectStore.from_settings(settings)
    await objects.ensure_buckets(settings.bucket_originals, settings.bucket_renditions)
    # Leftovers of a crashed run of this replica are swept: no job of ours is running yet.
    work_dir = await asyncio.to_thread(fresh_work_dir, settings, "transcoder", settings.transcoder_work_dir)
    limits = Limits(
        max_pixels=settings.max_photo_pixels,
        probe_timeout_s=settings.ffprobe_timeout_s,
        max_frames=settings.transcoder_max_frames,
    )
    worker = WorkerDeps(
        events=events,
        objects=objects,
        renditions_bucket=settings.bucket_renditions,
        work_dir=work_dir,
        render=RenderOptions(
            threads=settings.ffmpeg_threads,
            timeout_base_s=settings.ffmpeg_timeout_base_s,
            timeout_per_media_s=settings.ffmpeg_timeout_per_media_s,
            limits=limits,
        ),
        max_input_bytes=settings.transcoder_max_input_bytes,
        max_attempts=settings.transcoder_max_attempts,
        retry_delay_s=settings.transcoder_retry_delay_s,
    )
    broker = build_broker(settings, worker)
    for durable in (TRANSCODER_DURABLE, RETRY_DURABLE):
        await align_ack_wait(await events.jetstream(), settings.event_stream, durable, settings.transcoder_ack_wait_s)
    await start_broker(broker)
    return TranscoderDeps(settings, events, worker, broker)


def create_app(settings: Settings) -> FastAPI:
    return service_app("transcoder", settings, build_deps)
