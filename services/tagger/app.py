"""tagger service: a worker only. Wiring, the durable JetStream consumer and /healthz.

It consumes asset events (acting on ``asset.ingested`` and
``asset.retag_requested``), proposes tags and appends ``asset.tagged``. The
archivists' side (edits, activities, people) is the catalogue service.
"""

import asyncio
import logging
from dataclasses import dataclass

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub
from pydantic import ValidationError

from services.tagger.ocr import OcrSettings
from services.tagger.worker import Tagger, settle
from shared.events.envelope import EventEnvelope
from shared.eventstore import EventStore
from shared.http import service_app
from shared.nats_liveness import liveness
from shared.objectstore import ObjectStore
from shared.outcomes import Ack, Fail, Outcome, apply_outcome
from shared.pull_consumers import align_ack_wait, in_progress_acks, start_broker
from shared.settings import Settings
from shared.subjects import aggregate_type_filter
from shared.workdirs import fresh_work_dir

log = logging.getLogger("mam.tagger")
TAGGER_DURABLE = "tagger"


@dataclass
class TaggerDeps:
    settings: Settings
    events: EventStore
    tagger: Tagger
    broker: NatsBroker

    async def readiness(self) -> dict[str, bool]:
        return {"nats": await self.events.ready(), "s3": await self.tagger.objects.ready()}

    async def close(self) -> None:
        await self.broker.stop()
        await self.events.close()


def build_broker(settings: Settings, tagger: Tagger) -> NatsBroker:
    """One durable pull consumer on every asset event; it acts on ingested/retag only,
    ``tagger_concurrency`` jobs at a time (the directory catch-up is shared under a lock).

    A fetch takes only as many events as run at once (one waiting in the replica would
    run down its ack wait unseen); a running job sends in-progress acks every third of
    ``tagger_ack_wait_s``, also while one long OCR run holds it."""
    broker = NatsBroker(settings.nats_servers, **liveness())
    beat_s = max(1.0, settings.tagger_ack_wait_s / 3)

    @broker.subscriber(
        aggregate_type_filter("asset"),
        stream=JStream(name=settings.event_stream, declare=False),
        durable=TAGGER_DURABLE,
        pull_sub=PullSub(batch_size=settings.tagger_concurrency, timeout=5.0),
        config=ConsumerConfig(ack_wait=settings.tagger_ack_wait_s, max_ack_pending=64),
        ack_policy=AckPolicy.MANUAL,
        max_workers=settings.tagger_concurrency,
    )
    async def on_asset_event(msg: NatsMessage) -> None:
        raw = msg.raw_message
        deliveries = int(raw.metadata.num_delivered or 1)
        try:
            event = EventEnvelope.from_bytes(raw.data)
        except ValidationError:
            log.exception("undecodable event at sequence %s; skipped", raw.metadata.sequence.stream)
            await apply_outcome(Ack("undecodable"), raw, tagger.events)
            return
        result: str | BaseException
        try:
            async with in_progress_acks(msg, beat_s):
                result = await tagger.handle(event, deliveries, raw.in_progress)
        except Exception as exc:
            result = exc
        outcome: Outcome = settle(event, result, deliveries, tagger.max_attempts)
        if isinstance(outcome, Fail):  # appended like an answer: never over a later re-tag's
            outcome = await tagger.record_failure(event, outcome)
        if result != "ignored":
            log.info("%s %s (delivery %d): %s", event.type, event.aggregate_id, deliveries, outcome)
        await apply_outcome(outcome, raw, tagger.events)

    return broker


async def build_deps(settings: Settings) -> TaggerDeps:
    """The one wiring function of this service."""
    events = await EventStore.from_settings(settings)
    objects = ObjectStore.from_settings(settings)
    ocr = OcrSettings(
        tesseract=settings.tesseract_cmd,
        lang=settings.tesseract_lang,
        timeout_s=settings.ocr_timeout_s,
        max_keyframes=settings.ocr_max_keyframes,
        scene_threshold=settings.ocr_scene_threshold,
    )
    # A crashed run's originals and keyframes are swept: no job of ours is running yet.
    work_dir = await asyncio.to_thread(fresh_work_dir, settings, "tagger")
    tagger = Tagger(events, objects, ocr, max_attempts=settings.tagger_max_attempts, work_dir=work_dir)
    await tagger.refresh()
    broker = build_broker(settings, tagger)
    await align_ack_wait(await events.jetstream(), settings.event_stream, TAGGER_DURABLE, settings.tagger_ack_wait_s)
    await start_broker(broker)
    return TaggerDeps(settings, events, tagger, broker)


def create_app(settings: Settings) -> FastAPI:
    return service_app("tagger", settings, build_deps)
