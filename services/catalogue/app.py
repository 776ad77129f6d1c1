"""catalogue service: the one wiring function and the app that assembles it."""

from fastapi import FastAPI

from services.catalogue import bulk, collections
from services.catalogue.api import CatalogueDeps, router
from services.catalogue.delegates_api import router as delegates_router
from shared.eventstore import EventStore
from shared.http import service_app
from shared.settings import Settings


async def build_deps(settings: Settings) -> CatalogueDeps:
    events = await EventStore.from_settings(settings)
    return CatalogueDeps(settings, events)


def create_app(settings: Settings) -> FastAPI:
    return service_app("catalogue", settings, build_deps, [router, bulk.router, collections.router, delegates_router])
