"""Scale figures of the cluster profile (issue 16), measured on the cluster the launcher starts.

- How long a fresh cluster takes to start (``ClusterStack.up``: 3 NATS, 4 MinIO + the S3
  balancer, 3 Elasticsearch nodes, two replicas of every service).
- Pipeline throughput with two replicas of each pipeline service (ours: what the
  cluster runs) vs one (baseline: the second replicas stopped), interleaved round by
  round on the same cluster, same inputs (fresh, distinct files of one size each round),
  after the same warm-up: photos/s from the first upload to the last photo being
  searchable with its renditions (its document ``processing_status: ready`` in the
  index), and clips/s from the first upload to the last ``asset.renditions_ready``.
- Event appends/s to a stream with three replicas (ours, as the event stream) vs one,
  on the same cluster, interleaved: one at a time (each waits for its acknowledgement,
  as a command does) and 64 in flight. The streams are the bench's own (other subjects
  than the archive's), deleted afterwards.

Short by default; full size with ``MAM_BENCH_CLUSTER_PHOTOS``, ``…_CLIPS``, ``…_ROUNDS``,
``…_EVENTS``. It starts the cluster itself on the test ports (``MAM_TEST_PORT_OFFSET``),
so ``python -m tests.bench bench_cluster`` does not start the single-node stack.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js import api

from deploy.local.cluster import ClusterStack
from deploy.local.processes import start, stop
from deploy.local.stack import LocalStack
from shared.events.envelope import new_event
from shared.eventstore import EventStore
from tests.bench.bench_eventstore import _payload as ingested_payload
from tests.conftest import AUTH
from tests.faults.chaos import cluster_under_test
from tests.faults.load import RETRYABLE, replica_urls, unique_jpeg
from tests.transcoder_media import make_clip

OWN_SERVERS = True  # tests/bench/__main__.py: this bench starts (and stops) the cluster itself
PHOTOS = int(os.environ.get("MAM_BENCH_CLUSTER_PHOTOS", "12"))
CLIPS = int(os.environ.get("MAM_BENCH_CLUSTER_CLIPS", "4"))
ROUNDS = int(os.environ.get("MAM_BENCH_CLUSTER_ROUNDS", "2"))  # of each replica count, interleaved
EVENTS = int(os.environ.get("MAM_BENCH_CLUSTER_EVENTS", "1000"))
CONCURRENCY = 64
UPLOADERS = 4  # client threads, spread over the live ingest replicas
# The services a photo or a clip passes through; their second replicas stop for the "1" rounds.
PIPELINE = ("ingest", "search", "transcoder", "tagger")


# --- pipeline throughput ----------------------------------------------------------
def _upload(urls: list[str], files: list[tuple[str, bytes, str]]) -> list[str]:
    def one(i: int) -> str:
        name, content, mime = files[i]
        url = urls[i % len(urls)]
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=120.0) as http:
            while True:  # as a client does: a 503 (a server briefly away) is sent again
                response = http.post(
                    f"{url}/v1/assets",
                    headers=AUTH,
                    data={"title": f"Kỳ họp thứ Bảy — đo hiệu năng {name}", "activity_type": "ky-hop"},
                    files={"file": (name, content, mime)},
                )
                if response.status_code not in RETRYABLE or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        assert response.status_code in (200, 201), response.text
        return str(response.json()["asset_id"])

    with ThreadPoolExecutor(UPLOADERS) as pool:
        return list(pool.map(one, range(len(files))))


def _searchable_ready(cluster: ClusterStack, ids: list[str]) -> int:
    """How many of ``ids`` a search finds processed (refreshed index, as users see it)."""
    s = cluster.settings
    body = {"query": {"bool": {"filter": [{"ids": {"values": ids}}, {"term": {"processing_status": "ready"}}]}}}
    for host in s.es_hosts:
        try:
            response = httpx.post(f"{host}/{s.es_index_prefix}-assets/_count", json=body, timeout=5.0)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            return int(response.json()["count"])
    return 0


def _renditions_ready(cluster: ClusterStack, ids: list[str]) -> int:
    async def count() -> int:
        store = await EventStore.connect(cluster.settings.resolved_nats_url, cluster.settings.event_stream)
        try:
            done = 0
            for asset_id in ids:
                history = await store.history("asset", asset_id)
                done += any(e.envelope.type == "asset.renditions_ready" for e in history)
            return done
        finally:
            await store.close()

    return asyncio.run(count())


def _wait(done: Callable[[], int], n: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while done() < n:
        assert time.monotonic() < deadline, f"{what}: not all {n} within {timeout_s:.0f}s"
        time.sleep(0.25)


def _set_replicas(cluster: ClusterStack, replicas: int) -> None:
    for service in PIPELINE:
        name = f"{service}-2"
        if replicas == 1:
            spec = cluster.known(name)
            if spec is not None:
                stop(spec)
        else:
            start(cluster.spec(name))


def _round(cluster: ClusterStack, replicas: int, files: list[tuple[str, bytes, str]], photos: bool) -> float:
    """Items/s of one round: first upload sent → last one processed."""
    _set_replicas(cluster, replicas)
    urls = replica_urls(cluster.settings, "ingest", replicas)
    began = time.perf_counter()
    ids = _upload(urls, files)
    if photos:
        _wait(lambda: _searchable_ready(cluster, ids), len(ids), 600, "photos searchable")
    else:
        _wait(lambda: _renditions_ready(cluster, ids), len(ids), 900, "clips' renditions")
    return len(ids) / (time.perf_counter() - began)


def _photos(tag: int, count: int) -> list[tuple[str, bytes, str]]:
    return [(f"anh-{tag}-{i}.jpg", unique_jpeg(tag, i), "image/jpeg") for i in range(count)]


def _clips(folder: Path, tag: str, count: int) -> list[tuple[str, bytes, str]]:
    out = []
    for i in range(count):
        path = make_clip(folder / f"{tag}-{i}.mp4", f"bench {tag} {i}", seconds=4.0, black_lead_s=0.5)
        out.append((path.name, path.read_bytes(), "video/mp4"))
    return out


def _throughput(cluster: ClusterStack) -> dict[str, dict[int, list[float]]]:
    seed = int(time.time())
    rates: dict[str, dict[int, list[float]]] = {"photos": {1: [], 2: []}, "clips": {1: [], 2: []}}
    with tempfile.TemporaryDirectory(prefix="mam-bench-cluster-") as tmp:
        folder = Path(tmp)
        # Warm-up, both replica counts: the first files through each replica (imports, ES mappings).
        for replicas in (2, 1):
            _round(cluster, replicas, _photos(seed, 2), photos=True)
            _round(cluster, replicas, _clips(folder, f"w{replicas}", 1), photos=False)
        for r in range(ROUNDS):
            # Alternating which goes first, so neither always follows the other's backlog.
            for replicas in (2, 1) if r % 2 == 0 else (1, 2):
                photo_tag = seed + 1000 * (2 * r + replicas)
                rates["photos"][replicas].append(_round(cluster, replicas, _photos(photo_tag, PHOTOS), photos=True))
                clips = _clips(folder, f"r{r}x{replicas}", CLIPS)
                rates["clips"][replicas].append(_round(cluster, replicas, clips, photos=False))
        _set_replicas(cluster, 2)
    return rates


# --- event appends, R3 vs R1 ------------------------------------------------------
def _event_bytes(i: int, tag: str) -> tuple[str, bytes]:
    """The event bench_eventstore appends, as bytes with its id (for the dedup header)."""
    event = new_event(ingested_payload(i), aggregate_id=f"a{tag}{i}", actor="bench")
    return event.event_id, event.to_bytes()


async def _appends(cluster: ClusterStack) -> dict[int, dict[str, float]]:
    """appends/s per replica count: ``sequential`` and ``concurrent`` (events / total seconds)."""
    tag = uuid.uuid4().hex[:8]
    nc = await nats.connect(cluster.settings.nats_servers, connect_timeout=5)
    js = nc.jetstream(timeout=30)
    seconds: dict[int, dict[str, float]] = {3: {"sequential": 0.0, "concurrent": 0.0}, 1: {}}
    seconds[1] = dict(seconds[3])
    names = {r: f"BENCH_R{r}_{tag}" for r in (3, 1)}
    try:
        for replicas, name in names.items():
            await js.add_stream(
                api.StreamConfig(
                    name=name,
                    subjects=[f"bench.r{replicas}.{tag}.>"],
                    storage=api.StorageType.FILE,
                    num_replicas=replicas,
                    duplicate_window=3600,
                )
            )
        events = [_event_bytes(i, tag) for i in range(EVENTS)]
        for r in range(ROUNDS):
            for replicas in (3, 1) if r % 2 == 0 else (1, 3):
                subject = f"bench.r{replicas}.{tag}.asset"
                began = time.perf_counter()
                for event_id, data in events:
                    await js.publish(f"{subject}.s{r}", data, headers={"Nats-Msg-Id": f"s{r}{event_id}"})
                seconds[replicas]["sequential"] += time.perf_counter() - began
                gate = asyncio.Semaphore(CONCURRENCY)

                async def one(
                    event_id: str, data: bytes, subject: str = subject, r: int = r, gate: asyncio.Semaphore = gate
                ) -> None:
                    async with gate:
                        await js.publish(f"{subject}.c{r}", data, headers={"Nats-Msg-Id": f"c{r}{event_id}"})

                began = time.perf_counter()
                await asyncio.gather(*(one(event_id, data) for event_id, data in events))
                seconds[replicas]["concurrent"] += time.perf_counter() - began
    finally:
        for name in names.values():
            try:
                await js.delete_stream(name)
            except Exception:  # never made: nothing to delete
                pass
        await nc.close()
    return {r: {k: EVENTS * ROUNDS / v for k, v in kinds.items()} for r, kinds in seconds.items()}


def run(stack: LocalStack) -> list[dict[str, Any]]:
    del stack  # the single-node stack is not started for this bench (OWN_SERVERS)
    cluster = cluster_under_test()
    cluster.down()
    shutil.rmtree(cluster.local.home, ignore_errors=True)
    began = time.monotonic()
    cluster.up()
    start_s = time.monotonic() - began
    print(f"cluster started in {start_s:.0f}s", flush=True)
    try:
        rates = _throughput(cluster)
        appends = asyncio.run(_appends(cluster))
    finally:
        cluster.down()
    rows: list[dict[str, Any]] = [
        {"name": "cluster_start_fresh", "ours": start_s, "baseline": None, "ratio": None, "unit": "s"}
    ]
    for kind, unit, what in (("photos", "photos/s", "upload_to_searchable"), ("clips", "clips/s", "to_renditions")):
        two, one = statistics.median(rates[kind][2]), statistics.median(rates[kind][1])
        rows.append(
            {
                "name": f"cluster_{kind}_{what}_2_vs_1_replicas",
                "ours": two,
                "baseline": one,
                "ratio": two / one,
                "unit": unit,
            }
        )
    for mode in ("sequential", f"concurrent{CONCURRENCY}"):
        key = "sequential" if mode == "sequential" else "concurrent"
        r3, r1 = appends[3][key], appends[1][key]
        rows.append(
            {
                "name": f"cluster_append_{mode}_r3_vs_r1",
                "ours": r3,
                "baseline": r1,
                "ratio": r3 / r1,
                "unit": "appends/s",
            }
        )
    return rows
