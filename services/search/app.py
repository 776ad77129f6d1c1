"""search service: wiring, the JetStream subscriber and thin HTTP handlers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from elasticsearch import AsyncElasticsearch
from fastapi import Depends, FastAPI, Query, Request
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub

from services.search.documents import SearchParams, build_search_body, shape_facets, shape_hit
from services.search.index import AssetIndex
from services.search.projector import AssetProjector
from shared.eventstore import EventStore
from shared.events.envelope import EventEnvelope
from shared.http import UserError, install_error_handlers, make_auth_dependency
from shared.settings import Settings
from shared.subjects import aggregate_type_filter
from shared.taxonomy import ACTIVITY_TYPE_CODES

PROJECTOR_DURABLE = "search-projector"
MAX_PAGE_SIZE = 100


@dataclass
class SearchDeps:
    settings: Settings
    es: AsyncElasticsearch
    index: AssetIndex
    events: EventStore
    projector: AssetProjector
    broker: NatsBroker


def build_broker(settings: Settings, projector_ref: list[AssetProjector]) -> NatsBroker:
    """A FastStream broker with one durable pull consumer on all asset events."""
    broker = NatsBroker(settings.resolved_nats_url)

    @broker.subscriber(
        aggregate_type_filter("asset"),
        stream=JStream(name=settings.event_stream, declare=False),
        durable=PROJECTOR_DURABLE,
        pull_sub=PullSub(batch_size=32, timeout=5.0),
        config=ConsumerConfig(ack_wait=60, max_ack_pending=2000),
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_asset_event(msg: NatsMessage) -> None:
        event = EventEnvelope.from_bytes(msg.raw_message.data)
        await projector_ref[0].apply(event, msg.raw_message.metadata.sequence.stream)

    return broker


async def build_deps(settings: Settings) -> SearchDeps:
    """The one wiring function of this service."""
    es = AsyncElasticsearch(settings.resolved_es_url, request_timeout=30)
    index = AssetIndex(es, settings.es_index_prefix)
    await index.ensure()
    events = await EventStore.connect(settings.resolved_nats_url, settings.event_stream,
                                      settings.event_dedup_window_s)
    projector = AssetProjector(index, events)
    broker = build_broker(settings, [projector])
    await broker.start()
    return SearchDeps(settings, es, index, events, projector, broker)


def _codes(values: list[str] | None, allowed: frozenset[str], field: str) -> tuple[str, ...]:
    codes = tuple(v.strip() for raw in (values or []) for v in raw.split(",") if v.strip())
    unknown = [c for c in codes if c not in allowed]
    if unknown:
        raise UserError(422, f"unknown_{field}", f"Giá trị không tồn tại cho {field}: {', '.join(unknown)}.",
                        f"Unknown {field}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}.",
                        field=field)
    return codes


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        deps = await build_deps(settings)
        app.state.deps = deps
        try:
            yield
        finally:
            await deps.broker.stop()
            await deps.events.close()
            await deps.es.close()

    app = FastAPI(title="HĐND media archive — search", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    Actor = Annotated[str, Depends(make_auth_dependency(settings.token_actors))]

    def deps(request: Request) -> SearchDeps:
        return request.app.state.deps  # type: ignore[no-any-return]

    Deps = Annotated[SearchDeps, Depends(deps)]

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/search", summary="Tìm tư liệu / search assets")
    async def search(
        actor: Actor,
        d: Deps,
        q: Annotated[str, Query(max_length=500, description="từ khóa, có hoặc không dấu")] = "",
        activity_type: Annotated[list[str] | None, Query()] = None,
        kind: Annotated[list[str] | None, Query()] = None,
        date_from: date | None = None,
        date_to: date | None = None,
        size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    ) -> dict[str, Any]:
        if date_from and date_to and date_from > date_to:
            raise UserError(422, "invalid_date_range", "Ngày bắt đầu sau ngày kết thúc.",
                            "date_from is after date_to.")
        params = SearchParams(
            q=q, activity_types=_codes(activity_type, ACTIVITY_TYPE_CODES, "activity_type"),
            kinds=_codes(kind, frozenset({"video", "photo", "audio"}), "kind"),
            date_from=date_from, date_to=date_to, size=size, offset=offset,
        )
        result = await d.index.search(build_search_body(params))
        return {
            "total": result["hits"]["total"]["value"],
            "hits": [shape_hit(h) for h in result["hits"]["hits"]],
            "facets": shape_facets(result.get("aggregations", {})),
        }

    return app
