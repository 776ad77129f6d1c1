"""catalogue service: the one wiring function and the app that assembles it."""

import asyncio

from fastapi import FastAPI

from services.catalogue import bulk, collections
from services.catalogue.api import CatalogueDeps, router
from services.catalogue.delegates_api import router as delegates_router
from services.catalogue.follow_ups import follow_up_forever
from shared.eventstore import EventStore
from shared.http import service_app
from shared.settings import Settings


async def build_deps(settings: Settings) -> CatalogueDeps:
    events = await EventStore.from_settings(settings)
    deps = CatalogueDeps(settings, events)
    # Merges and renames a crash left half carried out are finished (follow_ups.py).
    deps.background.append(asyncio.create_task(follow_up_forever(deps)))
    return deps


def create_app(settings: Settings) -> FastAPI:
    return service_app("catalogue", settings, build_deps, [router, bulk.router, collections.router, delegates_router])
