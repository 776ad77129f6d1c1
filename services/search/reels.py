"""Reels in search: a reels index fed from the reel events, and ``GET /v1/reels/search``.

Producers find their reels by title, subtitle and captions typed with or
without diacritics, folded exactly as asset text is (``shared.text.fold``).
A reel's history is short (a handful of events per edit and render), so the
projector folds the whole history of each reel an event arrives for and writes
it with the stream sequence of its last event as the external version: a
redelivered or out-of-order event can neither duplicate nor roll back a
document. Kept apart from the asset index and projector (its own durable
consumer ``search-reels``), so neither can hold the other up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated, Any

from elasticsearch import AsyncElasticsearch, BadRequestError
from fastapi import APIRouter, Depends, Query
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub

from shared.access import requires
from shared.auth import Principal
from shared.events.envelope import EventEnvelope
from shared.http import app_deps
from shared.outcomes import Ack, Outcome, Retry, apply_outcome
from shared.policy import Action
from shared.ports import EventLog
from shared.settings import Settings
from shared.subjects import aggregate_type_filter
from shared.text import fold

log = logging.getLogger("mam.search.reels")
REELS_DURABLE = "search-reels"
FOLDED_TEXT = ("title", "subtitle", "captions")
REEL_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "reel_id": {"type": "keyword"},
        "title": {"type": "text", "analyzer": "standard"},
        "title_folded": {"type": "text", "analyzer": "standard"},
        "subtitle": {"type": "text", "analyzer": "standard"},
        "subtitle_folded": {"type": "text", "analyzer": "standard"},
        "captions": {"type": "text", "analyzer": "standard"},
        "captions_folded": {"type": "text", "analyzer": "standard"},
        "owner": {"type": "keyword"},
        "profile": {"type": "keyword"},
        "status": {"type": "keyword"},
        "asset_ids": {"type": "keyword", "ignore_above": 256},
        "item_count": {"type": "integer"},
        "total_s": {"type": "float"},
        "duration_s": {"type": "float"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
    },
}
# What each renderer event makes of the status (the API's statuses: services/reels/decide.py).
_STATUS = {
    "reel.items_set": "draft",
    "reel.render_requested": "queued",
    "reel.render_started": "rendering",
    "reel.rendered": "rendered",
    "reel.render_failed": "failed",
}


def reel_document(history: Iterable[EventEnvelope]) -> dict[str, Any] | None:
    """The index document of one reel from its events (None: no ``reel.created``)."""
    doc: dict[str, Any] | None = None
    current_job: str | None = None
    finished: set[str] = set()
    for event in history:
        p = event.payload
        if event.type == "reel.created":
            doc = {
                "reel_id": event.aggregate_id,
                "title": p["title"],
                "subtitle": p.get("subtitle", ""),
                "captions": [],
                "owner": event.actor,
                "profile": p.get("profile", "broadcast"),
                "status": "draft",
                "asset_ids": [],
                "item_count": 0,
                "total_s": 0.0,
                "duration_s": None,
                "created_at": event.occurred_at.isoformat(),
            }
        if doc is None:
            continue
        if event.type == "reel.items_set":
            items = p.get("items", [])
            doc["captions"] = [i["caption"] for i in items if i.get("caption")]
            doc["asset_ids"] = sorted({i["asset_id"] for i in items})
            doc["item_count"] = len(items)
            doc["total_s"] = p.get("total_s", 0.0)
        job = p.get("job_id")
        if event.type == "reel.render_requested":
            current_job = job
        if event.type in ("reel.rendered", "reel.render_failed"):
            finished.add(str(job))
            if event.type == "reel.rendered":
                doc["duration_s"] = p.get("duration_s")
        status = _STATUS.get(event.type)
        stale = job is not None and job != current_job  # an older job's late event
        late_start = event.type == "reel.render_started" and job in finished
        if status is not None and not stale and not late_start:
            doc["status"] = status
        doc["updated_at"] = event.occurred_at.isoformat()
    if doc is not None:
        for name in FOLDED_TEXT:
            value = doc[name]
            doc[f"{name}_folded"] = [fold(v) for v in value] if isinstance(value, list) else fold(value)
    return doc


class ReelIndex:
    def __init__(self, es: AsyncElasticsearch, prefix: str) -> None:
        self.es = es
        self.name = f"{prefix}-reels"

    async def ensure(self) -> None:
        if await self.es.indices.exists(index=self.name):
            return
        try:
            await self.es.indices.create(
                index=self.name,
                settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"},
                mappings=REEL_MAPPINGS,
            )
        except BadRequestError as exc:  # another replica created it first
            if "resource_already_exists" not in str(exc):
                raise

    async def put(self, doc: dict[str, Any], version: int) -> None:
        """Write at ``version`` (a stream sequence); an equal or newer document stays."""
        await self.es.index(
            index=self.name, id=doc["reel_id"], document=doc, version=version, version_type="external_gte"
        )

    async def search(self, q: str, status: str | None, owner: str | None, size: int) -> dict[str, Any]:
        must: list[dict[str, Any]] = []
        if q.strip():
            must.append(
                {
                    "multi_match": {
                        "query": fold(q),
                        "fields": ["title_folded^3", "subtitle_folded^2", "captions_folded"],
                        "operator": "and",
                    }
                }
            )
        filters = [{"term": {k: v}} for k, v in (("status", status), ("owner", owner)) if v]
        body = {
            "query": {"bool": {"must": must or [{"match_all": {}}], "filter": filters}},
            "size": size,
            "_source": {"excludes": [f"{n}_folded" for n in FOLDED_TEXT]},
            "sort": ["_score", {"updated_at": "desc"}],
        }
        response = await self.es.search(index=self.name, body=body)
        hits = response["hits"]["hits"]
        return {
            "total": response["hits"]["total"]["value"],
            "hits": [{**h["_source"], "score": h.get("_score")} for h in hits],
        }


async def project_reel(index: ReelIndex, events: EventLog, reel_id: str) -> None:
    history = await events.history("reel", reel_id)
    doc = reel_document(s.envelope for s in history)
    if doc is not None:
        await index.put(doc, history[-1].sequence)


def add_reel_projector(broker: NatsBroker, settings: Settings, index: ReelIndex, events: EventLog) -> None:
    """A durable pull consumer of every reel event on ``broker``: each one re-folds its reel."""

    @broker.subscriber(
        aggregate_type_filter("reel"),
        stream=JStream(name=settings.event_stream, declare=False),
        durable=REELS_DURABLE,
        pull_sub=PullSub(batch_size=1, timeout=settings.search_batch_wait_s),
        config=ConsumerConfig(ack_wait=30, max_ack_pending=1000),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_reel_event(msg: NatsMessage) -> None:
        outcome: Outcome
        try:
            event = EventEnvelope.from_bytes(msg.raw_message.data)
            await project_reel(index, events, event.aggregate_id)
            outcome = Ack()
        except Exception as exc:  # ES or NATS unreachable: the reel is re-folded on redelivery
            log.warning("reel event not indexed, will be redelivered: %s", exc)
            outcome = Retry(settings.search_redelivery_delay_s, f"{type(exc).__name__}: {exc}"[:300])
        await apply_outcome(outcome, msg.raw_message, None)


router = APIRouter(prefix="/v1")
ReelReader = Annotated[Principal, Depends(requires(Action.REEL_READ))]


@router.get("/reels/search", summary="Tìm phim tổng hợp (có hoặc không dấu) / search reels")
async def search_reels(
    who: ReelReader,
    d: Annotated[Any, Depends(app_deps)],
    q: Annotated[str, Query(max_length=500, description="từ khóa trong tên, phụ đề, chú thích")] = "",
    status: Annotated[str | None, Query(pattern="^(draft|queued|rendering|rendered|failed)$")] = None,
    owner: Annotated[str | None, Query(max_length=150)] = None,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    index = ReelIndex(d.es, d.settings.es_index_prefix)
    return await index.search(q, status, owner, size)
