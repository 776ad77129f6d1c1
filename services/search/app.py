"""search service: wiring (the projector's JetStream subscriber, the adapters) and the app."""

import asyncio
import logging
from typing import Annotated, Any

from fastapi import FastAPI
from faststream import AckPolicy, Context
from faststream.nats import ConsumerConfig, JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage

from services.search import asset_collections, collections, processing, review_stats
from services.search.api import SearchDeps, router
from services.search.consistency import ProjectionProgress
from services.search.delegates_api import router as delegates_router
from services.search.export_sweeper import sweep_forever
from services.search.index import AssetIndex, es_client
from services.search.projector import AssetProjector, BatchOutcome, Delivered, Redelivery, settle_batch
from services.search.reels import ReelIndex, add_reel_projector
from services.search.reels import router as reels_router
from shared.events.envelope import EventEnvelope
from shared.eventstore import EventStore
from shared.http import service_app
from shared.nats_liveness import liveness
from shared.objectstore import ObjectStore
from shared.outcomes import apply_outcome
from shared.pull_consumers import start_broker
from shared.settings import Settings
from shared.subjects import aggregate_type_filter

PROJECTOR_DURABLE = "search-projector"
# Parked events read-your-writes counts as settled (services/search/consistency.py): beyond
# this many, queries past them wait their timeout, and an operator has a bigger problem.
PARKED_COUNTED = 1000
log = logging.getLogger("mam.search")


def build_broker(
    settings: Settings,
    projector_ref: list[AssetProjector],
    *,
    durable: str = PROJECTOR_DURABLE,
    subject: str | None = None,
) -> NatsBroker:
    """A FastStream broker with one durable pull consumer on asset events (all, unless
    ``subject`` narrows them), in batches.

    Each message is settled on its own: acknowledged once its document is
    written, redelivered soon after a passing failure, parked (redelivered
    after ``search_parked_redelivery_s``, never acknowledged nor terminated)
    once a write that cannot succeed is recorded in the failures index.
    """
    broker = NatsBroker(settings.nats_servers, **liveness())
    events = projector_ref[0].events
    delays = Redelivery(
        retry_s=settings.search_redelivery_delay_s,
        parked_s=settings.search_parked_redelivery_s,
        undecodable_s=60 * settings.search_redelivery_delay_s,
    )

    @broker.subscriber(
        subject or aggregate_type_filter("asset"),
        stream=JStream(name=settings.event_stream, declare=False),
        durable=durable,
        pull_sub=PullSub(batch_size=settings.search_batch_size, timeout=settings.search_batch_wait_s, batch=True),
        # A batch takes well under a second; a short ack wait lets another replica
        # (or a restarted one) take over undelivered work quickly.
        config=ConsumerConfig(ack_wait=30, max_ack_pending=max(2000, 4 * settings.search_batch_size)),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_asset_events(
        body: list[Any],
        message: Annotated[NatsBatchMessage, Context("message")],
    ) -> None:
        raws = list(message.raw_message)
        items: list[Delivered] = []
        undecodable = []
        for raw in raws:
            try:
                event = EventEnvelope.from_bytes(raw.data)
            except Exception:
                log.exception("undecodable event at stream sequence %d", raw.metadata.sequence.stream)
                undecodable.append(raw.metadata.sequence.stream)
                continue
            redelivered = (raw.metadata.num_delivered or 1) > 1
            items.append(Delivered(event, raw.metadata.sequence.stream, redelivered=redelivered))
        outcome: BatchOutcome | BaseException
        try:
            outcome = await projector_ref[0].apply_batch(items)
        except Exception as exc:
            log.exception("projection batch failed; redelivering %d events", len(raws))
            outcome = exc
        settled = settle_batch(outcome, (d.sequence for d in items), undecodable, delays)
        by_seq = {r.metadata.sequence.stream: r for r in raws}
        await asyncio.gather(*(apply_outcome(o, by_seq[seq], events) for seq, o in settled.items()))

    return broker


async def build_deps(settings: Settings) -> SearchDeps:
    """The one wiring function of this service."""
    es = es_client(settings.resolved_es_url)
    index = AssetIndex(es, settings.es_index_prefix)
    await index.ensure()
    events = await EventStore.connect(settings.resolved_nats_url, settings.event_stream, settings.event_dedup_window_s)

    async def is_indexed(asset_id: str, sequence: int) -> bool:
        found = await index.get(asset_id)
        return found is not None and sequence in found[0].get("event_sequences", [])

    async def parked() -> int:
        return len(await index.failures(size=PARKED_COUNTED))

    progress = await ProjectionProgress.connect(
        settings.resolved_nats_url, settings.event_stream, PROJECTOR_DURABLE, is_indexed, parked
    )
    reels = ReelIndex(es, settings.es_index_prefix)
    await reels.ensure()
    broker = None
    if settings.search_run_projector:
        projector = AssetProjector(index, events, attempts=settings.search_bulk_attempts)
        broker = build_broker(settings, [projector])
        add_reel_projector(broker, settings, reels, events)
        await start_broker(broker)
    # The client only signs URLs locally (fixed region), so it needs no connection.
    renditions = ObjectStore(
        settings.resolved_s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        region=settings.s3_region,
        presign_expiry_s=settings.presign_expiry_s,
    )
    deps = SearchDeps(settings, es, index, events, broker, progress, renditions)
    # Exports a killed replica left "running" are failed with a reason; finished ones expire.
    sweeper = sweep_forever(lambda: collections.exports_kv(deps), collections.export_store(deps), settings)
    deps.background.append(asyncio.create_task(sweeper))
    return deps


def create_app(settings: Settings) -> FastAPI:
    return service_app(
        "search",
        settings,
        build_deps,
        [
            router,
            collections.router,
            review_stats.router,
            delegates_router,
            reels_router,
            asset_collections.router,
            processing.router,
        ],
    )
