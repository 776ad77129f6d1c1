"""reels service: wiring (adapters, the renderer's durable JetStream subscriber) and the app.

The renderer is a FastStream pull consumer of ``reel.render_requested`` on a
durable shared by every replica (more replicas, more renders at once; each
job goes to one of them). Acks are manual: a job is acknowledged only once its
outcome (``reel.rendered`` or ``reel.render_failed``) is recorded; while it
renders, in-progress acks keep it from being redelivered to another replica.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from fastapi import FastAPI
from faststream.nats import NatsBroker

from services.reels.api import ReelsDeps, router
from services.reels.cache import S3SegmentCache
from services.reels.progress import PROGRESS_BUCKET, PROGRESS_TTL_S, ProgressBoard
from services.reels.render import render_reel
from services.reels.worker import RendererDeps, handle_render_requested
from shared.eventstore import EventStore
from shared.http import service_app
from shared.kv import open_bucket
from shared.nats_liveness import liveness
from shared.objectstore import ObjectStore
from shared.pull_consumers import align_ack_wait, long_job_subscriber, start_broker
from shared.settings import Settings
from shared.workdirs import fresh_work_dir

RENDERER_DURABLE = "reels-renderer"
log = logging.getLogger("mam.reels")


def build_broker(settings: Settings, renderer: RendererDeps) -> NatsBroker:
    broker = NatsBroker(settings.nats_servers, **liveness())
    long_job_subscriber(
        broker,
        stream=settings.event_stream,
        event_type="reel.render_requested",
        durable=RENDERER_DURABLE,
        handle=lambda cause, attempt: handle_render_requested(renderer, cause, attempt),
        events=renderer.events,
        jobs_at_once=1,  # one render at a time per replica: a render already uses every core
        ack_wait_s=settings.reels_ack_wait_s,
        retry_delay_s=settings.reels_retry_delay_s,
    )
    return broker


async def build_deps(settings: Settings) -> ReelsDeps:
    """The one wiring function of this service."""
    events = await EventStore.from_settings(settings)
    objects = ObjectStore.from_settings(settings)
    await objects.ensure_buckets(settings.bucket_reels, settings.bucket_reel_cache)
    board = ProgressBoard(
        await open_bucket(
            await events.jetstream(),
            PROGRESS_BUCKET,
            "reel render progress",
            ttl_s=PROGRESS_TTL_S,
            replicas=settings.nats_replicas,
        )
    )
    # Leftovers of a crashed run of this replica are swept: no job of ours is running yet.
    work_dir = await asyncio.to_thread(fresh_work_dir, settings, "reels", settings.reels_work_dir)
    renderer = RendererDeps(
        events=events,
        objects=objects,
        cache=S3SegmentCache.from_settings(settings),
        board=board,
        render=render_reel,
        reels_bucket=settings.bucket_reels,
        work_dir=work_dir,
        worker_name=f"{socket.gethostname()}:{settings.reels_port}",
        max_attempts=settings.reels_max_attempts,
        retry_delay_s=settings.reels_retry_delay_s,
        timeout_base_s=settings.reels_render_timeout_base_s,
        timeout_per_media_s=settings.reels_render_timeout_per_media_s,
        progress_per_s=settings.reels_progress_per_s,
    )
    broker = build_broker(settings, renderer)
    deps = ReelsDeps(settings, events, objects, board, broker)
    await align_ack_wait(await events.jetstream(), settings.event_stream, RENDERER_DURABLE, settings.reels_ack_wait_s)
    await start_broker(broker)
    return deps


def create_app(settings: Settings) -> FastAPI:
    return service_app("reels", settings, build_deps, [router])
