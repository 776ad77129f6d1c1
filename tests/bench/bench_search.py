"""Search benchmarks on generated assets (``MAM_BENCH_SEARCH_ASSETS``, default 100 000,
about 2.5 minutes on two cores; set it lower for a quick look):

- ``search_projection``: our batch projector (mget + fold + _bulk with external
  versions) vs ``helpers.async_bulk`` of the very same final documents (docs/s);
- ``search_replay``: a full ``rebuild-index`` replay from the event stream (after one
  untimed warm-up rebuild) vs a bare in-process read of the same events from the stream
  with the same reader (events/s), and the CPU time of each per event, the rebuild's
  counting its reader child (µs: the events/s follow the load of the shared machine,
  the CPU time much less);
- ``search_p50`` / ``search_p95``: latency through the search API vs the same
  request body sent straight to Elasticsearch (ms, lower is better), once the
  service's projector has caught up;
- ``search_p95_with_policy_vs_without``: API query p95 for a broadcaster (the
  visibility filter applies: their own uploads or what is published, in window
  and not restricted) vs the same queries as an archivist (no filter) (ms);
- ``search_p95_during_…_catch_up``: API query p95 while a fresh projector goes
  through the whole stream, running in a process of its own vs inside the API
  process (ms).

The stream's event mix is what a real asset gets: the pipeline appends four events per
upload, ``asset.ingested``, ``asset.probed``, ``asset.renditions_ready``, ``asset.tagged``
(counted on a stack with every service running, 4 photos and 2 clips uploaded, on
21/11/2026: the same four for photos and clips), shaped as recorded there; then half
the assets get an archivist's caption edit and a third a publication (below): about
4.9 events per asset (the cluster fault suite's stream held 4.4, 2 682 events for 614
documents, docs/capacity.md).

The generated assets carry what the visibility filter reads: uploads spread over
20 broadcasters (``AUTH``'s ``phong-vien`` is one of them), a third published
(a tenth of those under embargo or past their window, some restricted), a few
more restricted without being published.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import random
import resource
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import nats
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

from deploy.local.processes import start, stop
from deploy.local.stack import LocalStack
from services.search.app import PROJECTOR_DURABLE
from services.search.documents import apply_event, with_sequence
from services.search.index import AssetIndex, es_client
from services.search.params import parse_filters, parse_search
from services.search.projector import AssetProjector, Delivered
from services.search.query import build_search_body
from services.search.rebuild import read_stream, rebuild_index
from shared.auth import Principal, Role
from shared.events import EventEnvelope
from shared.events.envelope import new_event
from shared.events.media import AssetProbedV1, AssetRenditionsReadyV1, Rendition, RenditionName
from shared.events.models import AssetIngestedV1
from shared.events.publishing import AssetPublishedV1, AssetRestrictionSetV1
from shared.events.tagging import AssetMetadataEditedV1, AssetTaggedV1, PhraseMatch
from shared.eventstore import EventStore
from shared.policy import Restriction, visibility_filter
from shared.settings import Settings
from shared.subjects import aggregate_type_filter
from tests.bench.common import own_nats, pct, row, settle
from tests.bench.ports import projector_beside
from tests.conftest import ADMIN, ARCHIVIST, AUTH
from tests.search_corpus import CAPTIONS, generated_events

N_ASSETS = int(os.environ.get("MAM_BENCH_SEARCH_ASSETS", "100000"))
BATCH = 500
APPENDERS = 128  # events appended at once while the bench stream is written
PROJECTION_ROUND = 2000  # documents per side per interleaved round
WARMUP_PROJECTION_ROUNDS = 1  # rounds each side runs before the timing starts
QUERIES: list[dict[str, Any]] = [
    {"q": "tiep xuc cu tri"},
    {"q": "Kỳ họp thứ"},
    {"q": "giám sát chuyên đề", "activity_type": "giam-sat-chuyen-de"},
    {"q": "nong thon moi"},
    {"q": "chất vấn", "kind": "video"},
    {"q": "Phước Dinh", "sort": "date"},
    {"q": "", "activity_type": "ky-hop", "sort": "duration"},
    {"q": "Trần Minh Lực", "date_from": date(2020, 1, 1)},
    {"q": "don thu khieu nai", "term": "2021-2026"},
    {"q": "Đài Phát thanh"},
]
ROUNDS = 30
CATCH_UP_SAMPLES = 200
WARMUP_ROUNDS = 5


# Uploads spread over 20 broadcasters; AUTH's subject is one of them.
BROADCASTERS = ["phong-vien", *(f"phong-vien-{i:02d}" for i in range(2, 21))]
PUBLISHED_SHARE = 1 / 3
RESTRICTED_UNPUBLISHED_SHARE = 0.03


def _with_publication(events: list[EventEnvelope], seed: int = 11) -> list[EventEnvelope]:
    """The ingested events re-attributed to one of :data:`BROADCASTERS` each, followed (per
    asset) by what an archivist decided: a third published (90 % in window, 5 % under
    embargo, 5 % past their end; 70 % public, 25 % internal, 5 % restricted), and a few
    more set restricted without being published."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    out: list[EventEnvelope] = []
    for event in events:
        if event.type != AssetIngestedV1.EVENT_TYPE:
            out.append(event)
            continue
        out.append(event.model_copy(update={"actor": rng.choice(BROADCASTERS)}))
        draw = rng.random()
        if draw < PUBLISHED_SHARE:
            (restriction,) = rng.choices(
                [Restriction.PUBLIC, Restriction.INTERNAL, Restriction.RESTRICTED], weights=[70, 25, 5]
            )
            window = rng.random()
            publish_at = now - timedelta(days=rng.randint(1, 3000))
            unpublish_at = None
            if window < 0.05:  # under embargo
                publish_at = now + timedelta(days=rng.randint(1, 60))
            elif window < 0.10:  # its window is over
                unpublish_at = publish_at + timedelta(days=rng.randint(1, 30))
            payload: AssetPublishedV1 | AssetRestrictionSetV1 = AssetPublishedV1(
                publish_at=publish_at, unpublish_at=unpublish_at, restriction=restriction
            )
        elif draw < PUBLISHED_SHARE + RESTRICTED_UNPUBLISHED_SHARE:
            payload = AssetRestrictionSetV1(restriction=Restriction.RESTRICTED)
        else:
            continue
        out.append(new_event(payload, aggregate_id=event.aggregate_id, actor="luu-tru"))
    return out


# What the pipeline appends for every upload, as counted on a real stack (every service
# running; 4 photos and 2 clips uploaded, then edited and published, on 21/11/2026):
# asset.ingested, asset.probed, asset.renditions_ready, asset.tagged, in that order, for
# photos and clips alike; then the archivist's metadata edit and publication.
EDITED_SHARE = 0.5
_RENDITIONS = {
    "photo": [("web", "jpg", "image/jpeg"), ("thumb", "jpg", "image/jpeg")],
    "video": [
        ("proxy", "mp4", "video/mp4"),
        ("poster", "jpg", "image/jpeg"),
        ("storyboard", "jpg", "image/jpeg"),
        ("storyboard_vtt", "vtt", "text/vtt"),
    ],
    "audio": [("audio", "m4a", "audio/mp4"), ("waveform", "png", "image/png")],
}


def _pipeline(ingested: EventEnvelope, rng: random.Random) -> list[EventEnvelope]:
    """The events the transcoder and tagger append after ``ingested`` (shaped as recorded on
    a real stack: a probe, the renditions, the tags), then an archivist's caption edit for
    ``EDITED_SHARE`` of the assets."""
    upload = ingested.typed_payload()
    assert isinstance(upload, AssetIngestedV1)
    asset_id, kind = ingested.aggregate_id, str(upload.kind)
    is_photo = kind == "photo"
    probed = AssetProbedV1(
        kind=upload.kind,
        container=upload.media_format,
        duration_s=upload.duration_s,
        width=upload.width,
        height=upload.height,
        frame_rate=None if is_photo else 25.0,
        video_codec=None if is_photo else "h264",
        audio_codec=None if is_photo else "aac",
        bitrate=None if is_photo else rng.randint(500_000, 20_000_000),
        audio_channels=None if is_photo else 2,
        audio_sample_rate=None if is_photo else 48_000,
    )
    renditions = AssetRenditionsReadyV1(
        profile="v1",
        renditions=tuple(
            Rendition(
                name=RenditionName(name),
                bucket="mam-renditions",
                key=f"{asset_id}/v1/{name}.{ext}",
                mime_type=mime,
                size_bytes=rng.randint(1_000, 50_000_000),
                width=upload.width,
                height=upload.height,
                duration_s=upload.duration_s if name in ("proxy", "audio") else None,
            )
            for name, ext, mime in _RENDITIONS[kind]
        ),
        poster_time_s=None if is_photo else 1.0,
        elapsed_s=round(rng.uniform(0.1, 60), 3),
    )
    tagged = AssetTaggedV1(
        activity_type=upload.activity_type,
        activity_type_source="uploader",
        proposed_activity_type=upload.activity_type,
        confidence=0.75,
        matched_phrases=(PhraseMatch(phrase="tiếp xúc cử tri", activity_type=upload.activity_type, weight=6.0),),
        ocr_frames=1,
        vocabulary_version="2025-06-01.1",
    )
    chain = [
        new_event(probed, aggregate_id=asset_id, actor="transcoder", causation=ingested),
        new_event(renditions, aggregate_id=asset_id, actor="transcoder", causation=ingested),
        new_event(tagged, aggregate_id=asset_id, actor="tagger", causation=ingested),
    ]
    if rng.random() < EDITED_SHARE:
        edit = AssetMetadataEditedV1(caption=rng.choice(CAPTIONS), note="sửa chú thích")
        chain.append(new_event(edit, aggregate_id=asset_id, actor="luu-tru"))
    return chain


def _with_pipeline(events: list[EventEnvelope], seed: int = 13) -> list[EventEnvelope]:
    """Every ``asset.ingested`` of ``events`` followed by its :func:`_pipeline` events."""
    rng = random.Random(seed)
    out: list[EventEnvelope] = []
    for event in events:
        out.append(event)
        if event.type == AssetIngestedV1.EVENT_TYPE:
            out.extend(_pipeline(event, rng))
    return out


def _append_generated(bench: Settings) -> list[EventEnvelope]:
    """Append the generated stream (:func:`_with_publication`, :func:`_with_pipeline`); returns
    only its uploads (one event per asset: the projection rows' input)."""
    events = _with_pipeline(_with_publication(generated_events(N_ASSETS, prefix="b")))
    asyncio.run(_append_all(bench.resolved_nats_url, bench.event_stream, events))
    return [e for e in events if e.type == "asset.ingested"]


async def _append_all(url: str, stream: str, events: list[Any]) -> None:
    """Append ``events``, 128 at a time, each asset's in the order given, an asset's events
    close together as a live pipeline appends them (its probe, renditions and tags follow its
    upload by seconds): 128 appenders each take a whole asset at a time. (One task per asset
    behind a FIFO semaphore spread each asset's events exactly one round of every asset
    apart: at the default size, 100 000 events, more than a replay keeps an idle document
    in memory, so each would have been written and read back between two of its events.)"""
    store = await EventStore.connect(url, stream)
    by_asset: dict[str, list[Any]] = defaultdict(list)
    for e in events:
        by_asset[e.aggregate_id].append(e)
    chains = iter(by_asset.values())

    async def appender() -> None:
        for chain in chains:  # shared: each chain goes to one appender
            for e in chain:
                for attempt in range(5):
                    try:
                        await store.append(e)  # a retry is deduplicated by the event id
                        break
                    except nats.errors.TimeoutError:
                        if attempt == 4:  # a loaded machine answers late, not never
                            raise

    try:
        await asyncio.gather(*(appender() for _ in range(APPENDERS)))
    finally:
        await store.close()


async def _projection(es_url: str, prefix: str, events: list[Any]) -> tuple[float, float]:
    """Our projector vs ``helpers.async_bulk`` of the very same final documents, in
    interleaved rounds (who goes first alternates): on a shared machine the load changes
    from one second to the next, and a side timed all at once would measure that."""
    es = es_client(es_url, request_timeout=120)
    try:
        ours_index = AssetIndex(es, f"{prefix}p")
        base_index = AssetIndex(es, f"{prefix}b")
        for index in (ours_index, base_index):
            await index.ensure()
        projector = AssetProjector(ours_index, None)
        items = [Delivered(e, i + 1) for i, e in enumerate(events)]
        docs = [(d.event.aggregate_id, with_sequence(apply_event({}, d.event), d.sequence), d.sequence) for d in items]

        async def ours(start_at: int) -> None:
            for at in range(start_at, min(start_at + PROJECTION_ROUND, len(items)), BATCH):
                outcome = await projector.apply_batch(items[at : min(at + BATCH, start_at + PROJECTION_ROUND)])
                assert not outcome.retry and not outcome.failed

        async def baseline(start_at: int) -> None:
            actions = (
                {"_index": base_index.alias, "_id": i, "_source": doc, "version": v, "version_type": "external"}
                for i, doc, v in docs[start_at : start_at + PROJECTION_ROUND]
            )
            await async_bulk(es, actions, chunk_size=BATCH)

        # The bench's own inputs (every generated event, the baseline's documents) stay out of
        # the collector's way: a full collection of them, run by whichever side happened to
        # allocate when it came due, cost that side up to 0.35 s of a 0.2 s round.
        gc.collect()
        gc.freeze()
        spent = {ours: 0.0, baseline: 0.0}
        counted = 0
        warmup = WARMUP_PROJECTION_ROUNDS if len(items) > 2 * WARMUP_PROJECTION_ROUNDS * PROJECTION_ROUND else 0
        for round_no, start_at in enumerate(range(0, len(items), PROJECTION_ROUND)):
            sides = [ours, baseline] if round_no % 2 == 0 else [baseline, ours]
            for side in sides:
                began = time.perf_counter()
                await side(start_at)
                if round_no >= warmup:  # both sides warm up alike, on documents of their own
                    spent[side] += time.perf_counter() - began
            if round_no >= warmup:
                counted += min(PROJECTION_ROUND, len(items) - start_at)
        for index in (ours_index, base_index):
            await index.delete_indices(await index.all_indices())
        return counted / spent[ours], counted / spent[baseline]
    finally:
        gc.unfreeze()
        await es.close()


@dataclasses.dataclass
class _ReplayRates:
    replay: float  # events/s
    bare_read: float
    events: int
    replay_cpu_us: float  # CPU time per event of this process and its reader child (other processes left out)
    bare_read_cpu_us: float


async def _replay(es_url: str, prefix: str, nats_url: str, stream: str) -> _ReplayRates:
    """A full rebuild vs a bare read of the same events, the bare read timed right before
    and right after the rebuild (the mean of the two: the load on a shared machine drifts).
    Also each one's CPU time in this process per event: on a shared machine the rates say as
    much about the other processes as about ours."""
    import nats

    es = es_client(es_url, request_timeout=120)
    nc = await nats.connect(nats_url)

    async def bare_read() -> tuple[int, float, float]:
        began, cpu = time.perf_counter(), time.process_time()
        read = 0
        async for chunk in read_stream(nc, stream, aggregate_type_filter("asset"), 1):
            read += len(chunk)
        return read, time.perf_counter() - began, time.process_time() - cpu

    try:
        index = AssetIndex(es, prefix)
        await index.ensure()
        # Warm-up, not timed: Elasticsearch fresh from the projection rows (its JIT, its merges
        # of what they wrote) and the stream's first read; the bare read then starts as warm.
        await rebuild_index(index, nats_url, stream, keep_previous=0)
        read_before, before_s, before_cpu = await bare_read()
        cpu = time.process_time(), _children_cpu()
        result = await rebuild_index(index, nats_url, stream, keep_previous=0)
        # The rebuild's stream reader is a child process (services/search/stream_reader.py).
        replay_cpu = time.process_time() - cpu[0] + _children_cpu() - cpu[1]
        read_after, after_s, after_cpu = await bare_read()
        return _ReplayRates(
            replay=result.rate,
            bare_read=(read_before + read_after) / (before_s + after_s),
            events=result.events,
            replay_cpu_us=replay_cpu / result.events * 1e6,
            bare_read_cpu_us=(before_cpu + after_cpu) / (read_before + read_after) * 1e6,
        )
    finally:
        await nc.close()
        await es.close()


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (and been waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _projector_caught_up(search_url: str, within_s: float = 600) -> None:
    """Wait until the service's own projector has gone through the stream.

    A freshly started search service replays every event into its (already
    rebuilt) index, as duplicates; queries timed meanwhile would measure that
    catch-up sharing the process, not the query path.
    """
    deadline = time.monotonic() + within_s
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            state = client.get(f"{search_url}/v1/projection", headers=ADMIN).json()
            if state["pending"] == 0 and state["awaiting_ack"] == 0:
                return
            time.sleep(1.0)
    raise AssertionError(f"the search projector did not catch up within {within_s} s")


def _latencies(search_url: str, es_url: str, alias: str) -> tuple[list[float], list[float]]:
    """The same queries through the API and straight to Elasticsearch, side by side.

    The two paths take turns going first: whichever runs second finds the
    node's caches warmed by the first, which would flatter it.
    """
    api, direct = [], []
    bodies = []
    for q in QUERIES:
        f = parse_filters(
            **{
                k: ([v] if k in ("activity_type", "kind", "term") else v)
                for k, v in q.items()
                if k not in ("q", "sort")
            }
        )
        bodies.append(
            build_search_body(
                parse_search(
                    q=q["q"], filters=f, sort=q.get("sort"), order=None, size=20, offset=0, cursor=None, facets=None
                ),
                # What the API adds for the caller of AUTH (whose uploads the corpus is).
                visible=visibility_filter(Principal("phong-vien", "phong-vien", Role.PHONG_VIEN)),
            )
        )
    with httpx.Client(timeout=60) as client:

        def through_api(q: dict[str, Any], _body: dict[str, Any]) -> None:
            client.get(f"{search_url}/v1/search", headers=AUTH, params=q).raise_for_status()

        def straight(_q: dict[str, Any], body: dict[str, Any]) -> None:
            client.post(f"{es_url}/{alias}/_search", json=body).raise_for_status()

        for _ in range(WARMUP_ROUNDS):
            for q, body in zip(QUERIES, bodies, strict=True):
                through_api(q, body)
                straight(q, body)
        for round_no in range(ROUNDS):
            for i, (q, body) in enumerate(zip(QUERIES, bodies, strict=True)):
                pair = [(through_api, api), (straight, direct)]
                if (round_no + i) % 2:
                    pair.reverse()
                for send, timings in pair:
                    t = time.perf_counter()
                    send(q, body)
                    timings.append((time.perf_counter() - t) * 1000)
    return api, direct


def _policy_latencies(search_url: str) -> tuple[list[float], list[float], int, int]:
    """The same queries through the API as a broadcaster (visibility filter) and as an
    archivist (none), side by side, taking turns going first; also how many assets each sees."""
    with_policy: list[float] = []
    without: list[float] = []
    with httpx.Client(timeout=60) as client:

        def send(q: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
            response = client.get(f"{search_url}/v1/search", headers=headers, params=q)
            response.raise_for_status()
            return response

        seen = [int(send({"q": "", "size": 1}, h).json()["total"]) for h in (AUTH, ARCHIVIST)]
        for _ in range(WARMUP_ROUNDS):
            for q in QUERIES:
                send(q, AUTH)
                send(q, ARCHIVIST)
        for round_no in range(ROUNDS):
            for i, q in enumerate(QUERIES):
                pair = [(AUTH, with_policy), (ARCHIVIST, without)]
                if (round_no + i) % 2:
                    pair.reverse()
                for headers, timings in pair:
                    t = time.perf_counter()
                    send(q, headers)
                    timings.append((time.perf_counter() - t) * 1000)
    return with_policy, without, seen[0], seen[1]


def _p95_during_catch_up(bench: Settings, *, split: bool) -> float:
    """API query p95 while a fresh projector goes through the whole stream (as duplicates),
    with the projector inside the API process or in a process of its own
    (``MAM_SEARCH_RUN_PROJECTOR=false`` on the API)."""
    asyncio.run(_forget_projector_position(bench))
    api_settings = bench.model_copy(update={"search_run_projector": not split})
    specs = [LocalStack(api_settings).service_spec("search")]
    if split:
        own = LocalStack(projector_beside(bench)).service_spec("search")
        specs.insert(0, dataclasses.replace(own, name="search-projector"))
    for spec in specs:
        start(spec)
    timings: list[float] = []
    try:
        with httpx.Client(timeout=60) as client:

            def pending() -> int:
                response = client.get(f"{bench.search_url}/v1/projection", headers=ADMIN)
                return int(response.json()["pending"]) if response.status_code == 200 else -1

            deadline = time.monotonic() + 60
            while pending() <= 0 and time.monotonic() < deadline:  # -1: no projector yet
                time.sleep(0.05)
            i = 0
            while len(timings) < CATCH_UP_SAMPLES and pending() > 0:
                q = QUERIES[i % len(QUERIES)]
                began = time.perf_counter()
                client.get(f"{bench.search_url}/v1/search", headers=AUTH, params=q).raise_for_status()
                timings.append((time.perf_counter() - began) * 1000)
                i += 1
    finally:
        for spec in specs:
            stop(spec)
    assert len(timings) >= 20, f"the catch-up ended after {len(timings)} queries; use more assets"
    return pct(timings, 95)


async def _forget_projector_position(bench: Settings) -> None:
    """Delete the projector's durable consumer: the next projector starts from the first event."""
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(bench.resolved_nats_url)
    try:
        await nc.jetstream().delete_consumer(bench.event_stream, PROJECTOR_DURABLE)
    except NotFoundError:
        pass
    finally:
        await nc.close()


def run(stack: LocalStack) -> list[dict[str, Any]]:
    bench, bench_stack, nats_spec = own_nats(stack, "search", es_index_prefix=f"mambench{int(time.time())}")
    search_spec = None
    try:
        uploads = _append_generated(bench)
        ours_p, base_p = asyncio.run(_projection(bench.resolved_es_url, f"{bench.es_index_prefix}x", uploads))
        # The replay is timed as `mam rebuild-index` runs: in a process that holds no generated
        # events (a heap of ~100 000 envelopes slowed both sides several times over), once
        # Elasticsearch has finished merging what the projection rows wrote.
        del uploads
        gc.collect()
        settle(bench.resolved_es_url)
        replay = asyncio.run(
            _replay(bench.resolved_es_url, bench.es_index_prefix, bench.resolved_nats_url, bench.event_stream)
        )
        replayed = replay.events
        search_spec = bench_stack.service_spec("search")
        start(search_spec)
        alias = f"{bench.es_index_prefix}-assets"
        _projector_caught_up(bench.search_url)
        settle(bench.resolved_es_url)
        api, direct = _latencies(bench.search_url, bench.resolved_es_url, alias)
        policy, no_policy, seen_by_broadcaster, seen_by_archivist = _policy_latencies(bench.search_url)
        print(
            f"  a broadcaster sees {seen_by_broadcaster} of the {seen_by_archivist} assets an archivist sees",
            flush=True,
        )
        stop(search_spec)
        search_spec = None
        together = _p95_during_catch_up(bench, split=False)
        apart = _p95_during_catch_up(bench, split=True)
    finally:
        if search_spec is not None:
            stop(search_spec)
        stop(nats_spec)
        asyncio.run(_cleanup(bench.resolved_es_url, bench.es_index_prefix))
    return [
        row(f"search_projection_{N_ASSETS}_assets_vs_helpers_bulk", ours_p, base_p, "docs/s"),
        row(f"search_replay_{replayed}_events_vs_bare_stream_read", replay.replay, replay.bare_read, "events/s"),
        row(
            f"search_replay_{replayed}_events_cpu_vs_bare_stream_read",
            replay.replay_cpu_us,
            replay.bare_read_cpu_us,
            "µs CPU/event",
        ),
        row(f"search_p50_api_vs_direct_es_{N_ASSETS}_assets", pct(api, 50), pct(direct, 50), "ms"),
        row(f"search_p95_api_vs_direct_es_{N_ASSETS}_assets", pct(api, 95), pct(direct, 95), "ms"),
        row(f"search_p95_with_policy_vs_without_{N_ASSETS}_assets", pct(policy, 95), pct(no_policy, 95), "ms"),
        row(f"search_p95_during_{replayed}_event_catch_up_projector_apart_vs_in_api_process", apart, together, "ms"),
    ]


async def _cleanup(es_url: str, prefix: str) -> None:
    es = AsyncElasticsearch(es_url)
    try:
        found = await es.indices.get(index=f"{prefix}*", expand_wildcards="open")
        for name in found.body:
            await es.indices.delete(index=name)
    finally:
        await es.close()
