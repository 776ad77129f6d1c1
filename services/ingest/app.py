"""ingest service: the one wiring function and the app that assembles it."""

from fastapi import FastAPI

from services.ingest.api import IngestDeps, router
from shared.eventstore import EventStore
from shared.http import service_app
from shared.media.probe import Limits
from shared.objectstore import ObjectStore
from shared.settings import Settings


async def build_deps(settings: Settings) -> IngestDeps:
    """The one wiring function: connects the adapters this service uses."""
    events = await EventStore.from_settings(settings)
    objects = ObjectStore.from_settings(settings)
    await objects.ensure_buckets(settings.bucket_originals)
    return IngestDeps(settings, events, objects, Limits(probe_timeout_s=settings.ffprobe_timeout_s))


def create_app(settings: Settings) -> FastAPI:
    return service_app("ingest", settings, build_deps, [router])
