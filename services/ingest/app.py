"""ingest service: the one wiring function and the app that assembles it."""

import asyncio

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from services.ingest import upload_api
from services.ingest.api import IngestDeps, router
from services.ingest.body_quota import SpoolLedger
from services.ingest.finalise import Finaliser
from services.ingest.sweeper import Sweeper
from services.ingest.upload_store import UploadStore
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
    objects = ObjectStore.from_settings(settings, request_timeout_s=settings.upload_s3_timeout_s)
    await objects.ensure_buckets(settings.bucket_originals, settings.bucket_uploads)
    limits = Limits(max_pixels=settings.max_photo_pixels, probe_timeout_s=settings.ffprobe_timeout_s)
    uploads = await UploadStore.open(
        await events.jetstream(), settings.upload_lock_lease_s, settings.upload_state_bucket, settings.nats_replicas
    )
    finaliser = Finaliser(settings, events, objects, uploads, limits, spool_dir)
    sweeper = Sweeper(settings, objects, uploads, finaliser)
    spool_ledger = SpoolLedger(settings.upload_quota_bytes)
    deps = IngestDeps(settings, events, objects, limits, spool_dir, uploads, finaliser, sweeper, spool_ledger)
    # Expiry and interrupted finalisations (a kill -9 while verifying) are handled from the start.
    deps.background.append(asyncio.create_task(sweeper.run()))
    return deps


def upload_origins(settings: Settings) -> list[str]:
    """Origins browsers may upload from: configured, or the web UI's own."""
    configured = [o.strip() for o in settings.upload_cors_origins.split(",") if o.strip()]
    return configured or [settings.web_url, f"http://localhost:{settings.web_port}"]


def streams_its_body(method: str, path: str) -> bool:
    """The uploads: streamed to disk or object storage under their own size and pace limits."""
    return (method == "POST" and path == "/v1/assets") or path == "/v1/uploads" or path.startswith("/v1/uploads/")


def create_app(settings: Settings) -> FastAPI:
    app = service_app("ingest", settings, build_deps, [router, upload_api.router], streams=streams_its_body)
    # tus-js-client and Uppy upload from the web UI's origin: they must send the tus
    # headers and read Location / Upload-Offset back (Access-Control-Expose-Headers).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=upload_origins(settings),
        allow_methods=upload_api.TUS_METHODS,
        allow_headers=upload_api.TUS_REQUEST_HEADERS,
        expose_headers=upload_api.TUS_RESPONSE_HEADERS,
        max_age=86400,
    )
    return app
