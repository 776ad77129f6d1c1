"""ingest service: the one wiring function and the app that assembles it."""

import asyncio

from fastapi import FastAPI

from services.ingest.api import IngestDeps, router
from shared.eventstore import EventStore
from shared.http import service_app
from shared.media.probe import Limits
from shared.objectstore import ObjectStore
from shared.settings import Settings
from shared.workdirs import fresh_work_dir


async def build_deps(settings: Settings) -> IngestDeps:
    """The one wiring function: connects the adapters this service uses."""
    # Uploads a crashed run was receiving are swept: none of ours is in flight yet.
    spool_dir = await asyncio.to_thread(fresh_work_dir, settings, "ingest")
    events = await EventStore.from_settings(settings)
    objects = ObjectStore.from_settings(settings)
    await objects.ensure_buckets(settings.bucket_originals)
    limits = Limits(max_pixels=settings.max_photo_pixels, probe_timeout_s=settings.ffprobe_timeout_s)
    return IngestDeps(settings, events, objects, limits, spool_dir)


def create_app(settings: Settings) -> FastAPI:
    return service_app("ingest", settings, build_deps, [router])
