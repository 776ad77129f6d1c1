"""accounts service: the one wiring function and the app that assembles it."""

from __future__ import annotations

import logging

import nats
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.accounts.accounts import Accounts, Throttled
from services.accounts.api import AccountsDeps, admin_router, router
from services.accounts.store import AccountBuckets
from shared.api_keys import verify_api_key
from shared.auth import Principal, ensure_signing_keys, load_private_key
from shared.eventstore import EventStore
from shared.http import service_app
from shared.nats_liveness import liveness
from shared.settings import Settings

log = logging.getLogger("mam.accounts")


async def build_deps(settings: Settings) -> AccountsDeps:
    private_file, public_file = settings.resolved_jwt_private_key_file, settings.resolved_jwt_public_key_file
    ensure_signing_keys(private_file, public_file)
    events = await EventStore.from_settings(settings)
    nc = await nats.connect(settings.nats_servers, name="mam-accounts", max_reconnect_attempts=-1, **liveness())
    buckets = await AccountBuckets.open(
        nc.jetstream(),
        session_max_s=settings.refresh_session_max_s,
        guard_ttl_s=settings.signin_failure_window_s + settings.signin_lockout_s,
        api_key_cache_ttl_s=settings.api_key_cache_ttl_s,
        replicas=settings.nats_replicas,
    )
    accounts = Accounts(buckets, events, settings, signing_key=load_private_key(private_file))
    if settings.creates_demo_accounts:
        created = await accounts.ensure_demo_accounts()
        if created:
            log.info("demo accounts created (loopback only): %s", ", ".join(created))
    return AccountsDeps(settings, events, nc, accounts)


def create_app(settings: Settings) -> FastAPI:
    app = service_app("accounts", settings, build_deps, [router, admin_router])

    async def verify_key(presented: str) -> Principal | None:
        """API keys as shared.access asks for them: this service's own cached store."""
        deps: AccountsDeps = app.state.deps
        return await verify_api_key(deps.accounts.buckets.key_reader, presented)

    app.state.api_key_verifier = verify_key

    @app.exception_handler(Throttled)
    async def _throttled(_: Request, exc: Throttled) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers={"Retry-After": str(exc.retry_after_s)})

    return app
