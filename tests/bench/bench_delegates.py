"""Delegate report benchmark: ``GET /v1/delegates/report`` for one term with
``MAM_BENCH_DELEGATE_ASSETS`` assets (default 10 000; the issue's figure is 100 000)
and 60 delegates in 10 groups over 8 sessions, vs the bare Elasticsearch aggregation
request doing the same count (the body the API sends), interleaved, same warm-up.

The asset documents are folded by the projector's own code (``apply_event`` over
``asset.ingested``, ``asset.tagged`` with speeches, ``asset.activity_assigned``) and
bulk-loaded; the delegates and sessions are events on a NATS of the bench's own,
which the search service reads as it does in production.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from elasticsearch.helpers import async_bulk

from deploy.local.processes import start, stop
from deploy.local.stack import LocalStack
from services.search.delegates import ReportParams, report_body
from services.search.documents import apply_event
from services.search.index import AssetIndex, es_client
from shared.delegates import delegate_id_for
from shared.events.delegates import DelegateRegisteredV1
from shared.events.envelope import EventEnvelope, new_event
from shared.events.speech import SpeechTag
from shared.events.tagging import ActivityCreatedV1, AssetActivityAssignedV1, AssetTaggedV1
from shared.eventstore import EventStore
from shared.people import person_id_for
from tests.bench.common import own_nats, pct, row, settle
from tests.conftest import ARCHIVIST
from tests.search_corpus import ingested

N_ASSETS = int(os.environ.get("MAM_BENCH_DELEGATE_ASSETS", "10000"))
N_DELEGATES = 60
N_GROUPS = 10
N_SESSIONS = 8
TERM = "2021-2026"
ROUNDS = 30
WARMUP_ROUNDS = 5
SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Dương", "Trương", "Châu", "Đạo")
MIDDLES = ("Văn", "Thị", "Minh", "Quốc", "Thanh", "Hữu", "Ngọc", "Đức", "Kim", "Xuân")
GIVENS = ("Hùng", "Lan", "Tuấn", "Hạnh", "Khoa", "Mai", "Phúc", "Thảo", "Long", "Vy", "Sơn", "Trang", "Bình")


def _delegates(rng: random.Random) -> list[tuple[str, str, str]]:
    names: set[str] = set()
    while len(names) < N_DELEGATES:
        names.add(f"{rng.choice(SURNAMES)} {rng.choice(MIDDLES)} {rng.choice(GIVENS)}")
    return [(person_id_for(n), n, f"Tổ đại biểu số {i % N_GROUPS + 1}") for i, n in enumerate(sorted(names))]


def _registry_events(delegates: list[tuple[str, str, str]]) -> tuple[list[EventEnvelope], list[str]]:
    events = [
        new_event(
            DelegateRegisteredV1(person_id=pid, name=name, term=TERM, group=group),
            aggregate_id=delegate_id_for(pid, TERM),
            actor="bench",
        )
        for pid, name, group in delegates
    ]
    sessions = []
    for k in range(N_SESSIONS):
        day = date(2021, 12, 1) + timedelta(days=182 * k)
        created = ActivityCreatedV1(
            title=f"Kỳ họp thứ {k + 2} HĐND tỉnh khóa XI", activity_type="ky-hop", term=TERM, start_date=day
        )
        session_id = f"vbench{k}"
        events.append(new_event(created, aggregate_id=session_id, actor="bench"))
        sessions.append(session_id)
    return events, sessions


def _documents(
    delegates: list[tuple[str, str, str]], sessions: list[str], rng: random.Random
) -> list[tuple[str, dict[str, Any]]]:
    """Asset documents as the projector folds them: a third in sessions with one or two
    speeches, a fifth elsewhere naming a delegate, the rest naming nobody."""
    kinds = ("phat-bieu", "thao-luan", "chat-van")
    start = datetime(2021, 8, 1, 2, tzinfo=UTC)
    docs = []
    for i in range(N_ASSETS):
        asset_id = f"abench{i:07d}"
        draw = rng.random()
        session = rng.choice(sessions) if draw < 0.33 else None
        when = start + timedelta(hours=i * 4)
        event = ingested(
            asset_id, f"Tư liệu số {i}", "", activity_type="ky-hop" if session else "khac", recorded_at=when
        )
        speeches = []
        if session:
            for pid, name, _ in rng.sample(delegates, rng.choice((1, 1, 2))):
                speeches.append(SpeechTag(name=name, person_id=pid, known=True, role="speaks", kind=rng.choice(kinds)))
        elif draw < 0.53:
            pid, name, _ = rng.choice(delegates)
            speeches.append(SpeechTag(name=name, person_id=pid, known=True, role="appears"))
        tagged = AssetTaggedV1(
            activity_type=event.payload["activity_type"],
            activity_type_source="uploader",
            proposed_activity_type=event.payload["activity_type"],
            confidence=1.0,
            speeches=tuple(speeches),
            vocabulary_version="bench",
        )
        chain = [event, new_event(tagged, aggregate_id=asset_id, actor="tagger")]
        if session:
            chain.append(new_event(AssetActivityAssignedV1(activity_id=session), aggregate_id=asset_id, actor="bench"))
        doc: dict[str, Any] = {}
        for e in chain:
            doc = apply_event(doc, e)
        docs.append((asset_id, doc))
    return docs


async def _load(es_url: str, prefix: str, nats_url: str, stream: str, dedup_s: float) -> ReportParams:
    rng = random.Random(60)
    delegates = _delegates(rng)
    registry, sessions = _registry_events(delegates)
    events = await EventStore.connect(nats_url, stream, dedup_s)
    try:
        for e in registry:
            await events.append(e)
    finally:
        await events.close()
    es = es_client(es_url, request_timeout=300)
    try:
        index = AssetIndex(es, prefix)
        await index.ensure()
        docs = _documents(delegates, sessions, rng)
        actions = ({"_index": index.alias, "_id": i, "_source": d} for i, d in docs)
        await async_bulk(es, actions, chunk_size=2000, refresh=True)
    finally:
        await es.close()
    return ReportParams(term=TERM)


def _latencies(search_url: str, es_url: str, alias: str, body: dict[str, Any]) -> tuple[list[float], list[float]]:
    """The report through the API and its aggregation straight to Elasticsearch, taking turns."""
    api, bare = [], []
    with httpx.Client(timeout=120) as client:

        def through_api() -> None:
            response = client.get(f"{search_url}/v1/delegates/report", headers=ARCHIVIST, params={"term": TERM})
            response.raise_for_status()
            assert len(response.json()["delegates"]) == N_DELEGATES

        def straight() -> None:
            client.post(f"{es_url}/{alias}/_search", json=body).raise_for_status()

        for _ in range(WARMUP_ROUNDS):
            through_api()
            straight()
        for round_no in range(ROUNDS):
            pair = [(through_api, api), (straight, bare)]
            if round_no % 2:
                pair.reverse()
            for send, timings in pair:
                t = time.perf_counter()
                send()
                timings.append((time.perf_counter() - t) * 1000)
    return api, bare


def run(stack: LocalStack) -> list[dict[str, Any]]:
    bench, bench_stack, nats_spec = own_nats(stack, "delegates", es_index_prefix=f"mambenchdel{int(time.time())}")
    search_spec = None
    try:
        began = time.perf_counter()
        params = asyncio.run(
            _load(
                bench.resolved_es_url,
                bench.es_index_prefix,
                bench.resolved_nats_url,
                bench.event_stream,
                bench.event_dedup_window_s,
            )
        )
        print(f"  {N_ASSETS} asset documents loaded in {time.perf_counter() - began:.1f} s", flush=True)
        search_spec = bench_stack.service_spec("search")
        start(search_spec)
        settle(bench.resolved_es_url)
        # The body the API sends for an archivist (no visibility filter): the same count, bare.
        person_ids = sorted(person_id_for(n) for _, n, _ in _delegates(random.Random(60)))
        body = report_body(params, person_ids, [f"vbench{k}" for k in range(N_SESSIONS)], visible=None)
        api, bare = _latencies(bench.search_url, bench.resolved_es_url, f"{bench.es_index_prefix}-assets", body)
    finally:
        if search_spec is not None:
            stop(search_spec)
        stop(nats_spec)
        with httpx.Client(timeout=60) as client:
            client.delete(f"{bench.resolved_es_url}/{bench.es_index_prefix}-*")
    tag = f"{N_ASSETS}_assets_{N_DELEGATES}_delegates"
    return [
        row(f"delegate_report_p50_api_vs_bare_es_aggregation_{tag}", pct(api, 50), pct(bare, 50), "ms"),
        row(f"delegate_report_p95_api_vs_bare_es_aggregation_{tag}", pct(api, 95), pct(bare, 95), "ms"),
    ]
