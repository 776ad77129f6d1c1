"""Faults against the real cluster, one at a time, each under a load of uploads and edits,
each ending in the exact reconciliation (tests/faults/reconcile.py).

`make test` runs the quick ones (the NATS stream leader killed, a poison event, a read-only
index, a _bulk refusing some of its documents: about 5 minutes with the cluster's start);
`make test-faults` runs all.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import nats.errors
import nats.js.errors
import pytest

from deploy.local.cluster import CLUSTER_ES_HEAP, ClusterStack, _get_json
from deploy.local.processes import ProcessSpec, start, stop
from deploy.local.stack import SERVICES
from shared.events.envelope import EventEnvelope
from shared.ids import asset_id_for_sha256
from shared.objectstore import ObjectStore, content_key
from shared.settings import Settings
from shared.subjects import event_subject
from tests.conftest import ADMIN, ARCHIVIST, AUTH, wait_for
from tests.faults.chaos import (
    PROJECTOR,
    consumer,
    creation_sequences,
    event_types,
    freeze,
    history,
    kill9,
    log_sizes,
    logged_since,
    minio_admin,
    projection_failures_of,
    publish_raw,
    restart,
    restart_skewed,
    restart_with,
    settle_and_reconcile,
    start_heal,
    stream_last_sequence,
    thaw,
)
from tests.faults.load import RETRYABLE, Load, replica_urls, unique_jpeg
from tests.faults.reconcile import projection_failures, read_all_events
from tests.media import make_clip

# What JetStream's API answers on a loaded machine now and then: a poll asks again.
NATS_BUSY = (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError, nats.js.errors.NoStreamResponseError)

pytestmark = pytest.mark.integration
full = pytest.mark.fault_full  # only in `make test-faults`


def stream_view(cluster: ClusterStack) -> dict[str, Any]:
    """The event stream's cluster view (leader, replicas) as a live node reports it."""
    s, p = cluster.settings, cluster.ports
    for node in range(1, 4):
        jsz = _get_json(f"http://127.0.0.1:{p.nats_monitor(s, node)}/jsz?streams=true&accounts=true", timeout=1.0)
        for account in (jsz or {}).get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                view = stream.get("cluster") or {}
                peers = {r.get("name") for r in view.get("replicas") or []}
                if stream.get("name") == s.event_stream and view.get("leader") and view["leader"] not in peers:
                    return dict(view)
    return {}


def stream_leader(cluster: ClusterStack) -> str | None:
    leader = stream_view(cluster).get("leader")
    return str(leader).removeprefix("mam-") if leader else None


def another_stream_leader(cluster: ClusterStack, than: str, timeout: float) -> str:
    """Wait until a node other than ``than`` leads the event stream; its name."""
    return str(
        wait_for(
            lambda: (lambda n: n if n and n != than else None)(stream_leader(cluster)),
            timeout=timeout,
            what="another node to lead the stream",
        )
    )


def wait_until_a_current_follower(cluster: ClusterStack, node: str) -> None:
    """``node`` is back in the stream's replica set and has caught up with it."""
    wait_for(
        lambda: any(
            r.get("name") == f"mam-{node}" and r.get("current") for r in stream_view(cluster).get("replicas") or []
        ),
        timeout=120,
        what=f"{node} to be a current follower again",
    )


def load_under_way(settings: Settings, at_least: int, **load: Any) -> Load:
    """A Load started, once ``at_least`` of its uploads are acknowledged (the fault comes next)."""
    started = Load(settings, **load).start()
    wait_for(lambda: started.acknowledged_count() >= at_least, timeout=180, what="the load to be under way")
    return started


def test_killing_the_nats_stream_leader_during_an_ingest_burst_loses_and_duplicates_nothing(
    cluster: ClusterStack,
) -> None:
    s = cluster.settings
    load = load_under_way(s, uploads=24, workers=3, pace_s=0.3, at_least=4)
    leader = wait_for(lambda: stream_leader(cluster), timeout=30, what="a stream leader")
    killed_at = time.monotonic()
    kill9(cluster, leader)
    new_leader = another_stream_leader(cluster, leader, timeout=60)
    elected_s = time.monotonic() - killed_at
    wait_for(lambda: load.acks_since(killed_at) >= 1, timeout=120, what="an upload acknowledged after the kill")
    ack_s = time.monotonic() - killed_at
    restart(cluster, leader)
    load.join()
    # The killed node is back as a follower and has caught up with the stream.
    wait_until_a_current_follower(cluster, leader)
    print(
        f"\nNATS leader {leader} killed: {new_leader} led after {elected_s:.1f}s, first upload acknowledged "
        f"after {ack_s:.1f}s; answers {dict(load.statuses)}",
        flush=True,
    )
    result = settle_and_reconcile(s, load.acknowledged)
    result.assert_exact()
    assert result.acknowledged == 24 and load.edited >= 12


@full
def test_killing_each_service_twice_mid_job_loses_and_duplicates_nothing(cluster: ClusterStack) -> None:
    s = cluster.settings
    load = Load(s, uploads=sys.maxsize, workers=2, pace_s=1.5).start()
    recovery: dict[str, list[float]] = {}
    for service in SERVICES:
        for _ in range(2):
            before = load.acknowledged_count()

            def flowing(n: int = before) -> bool:
                return load.acknowledged_count() > n

            wait_for(flowing, timeout=180, what="uploads flowing")
            kill9(cluster, service)
            recovery.setdefault(service, []).append(restart(cluster, service))
    load.stop.set()
    load.join()
    print(f"\nrestart to healthy (s): {recovery}; answers {dict(load.statuses)}", flush=True)
    result = settle_and_reconcile(s, load.acknowledged)
    result.assert_exact()


def es_health(cluster: ClusterStack) -> dict[str, Any]:
    for url in cluster.settings.es_hosts:
        health = _get_json(f"{url}/_cluster/health", timeout=2.0)
        if health:
            return dict(health)
    return {}


@full
def test_killing_an_elasticsearch_node_during_projection_converges_to_a_replay(cluster: ClusterStack) -> None:
    s = cluster.settings
    load = load_under_way(s, uploads=30, workers=3, pace_s=0.2, at_least=5)
    # The node holding the index's primary shard, so the projection's writes must move.
    shards = httpx.get(f"{s.es_hosts[0]}/_cat/shards/{s.es_index_prefix}-assets?format=json", timeout=5).json()
    primary = next(sh["node"] for sh in shards if sh["prirep"] == "p")
    victim = str(primary).removeprefix("mam-")
    killed_at = time.monotonic()
    kill9(cluster, victim)
    wait_for(lambda: es_health(cluster).get("number_of_nodes") == 2, timeout=120, what="the cluster to see 2 nodes")
    restart(cluster, victim)
    wait_for(lambda: es_health(cluster).get("status") == "green", timeout=300, what="green again")
    green_s = time.monotonic() - killed_at
    load.join()
    print(f"\nES node {victim} (primary) killed: green again after {green_s:.0f}s", flush=True)
    settle_and_reconcile(s, load.acknowledged).assert_exact()


def drive_has(cluster: ClusterStack, server: int, bucket: str, key: str) -> bool:
    return (cluster.local.home / f"minio-{server}" / "drive" / bucket / key / "xl.meta").exists()


@full
def test_killing_a_minio_server_during_uploads_keeps_reads_and_writes_going_and_heals_when_it_returns(
    cluster: ClusterStack,
) -> None:
    s = cluster.settings
    victim = 3
    load = load_under_way(s, uploads=30, workers=3, pace_s=0.2, at_least=5)
    before = set(load.acknowledged)
    kill9(cluster, f"minio-{victim}")
    killed_at = time.monotonic()
    wait_for(lambda: load.acks_since(killed_at) >= 5, timeout=180, what="uploads acknowledged with a server down")
    during = set(load.acknowledged) - before  # (one acknowledged as the kill landed may be on all four)
    restart(cluster, f"minio-{victim}")
    returned_at = time.monotonic()
    load.join()
    result = settle_and_reconcile(s, load.acknowledged)
    result.assert_exact()
    # Healing: every original written while the server was away reaches its drive again.
    keys = [
        (e.payload["bucket"], e.payload["object_key"])
        for e, _ in asyncio.run(read_all_events(s))
        if e.type == "asset.ingested" and e.aggregate_id in during
    ]

    def healed() -> bool:
        return all(drive_has(cluster, victim, b, k) for b, k in keys)

    # MinIO heals what a write left short (its "most recently failed" list) once the server is back.
    # If that has not happened in two minutes, an admin heal is asked for, and the report says so.
    began = time.monotonic()
    try:
        wait_for(healed, timeout=120, interval=1, what="the drive healed by MinIO itself")
        how = f"by itself, {time.monotonic() - returned_at:.0f}s after the server returned"
    except AssertionError:
        missing = sum(1 for b, k in keys if not drive_has(cluster, victim, b, k))
        asked = time.monotonic()
        for bucket in {b for b, _ in keys}:
            start_heal(s, bucket)
        wait_for(healed, timeout=300, interval=1, what=f"minio-{victim}'s drive healed after an admin heal")
        how = (
            f"NOT by itself within {began + 120 - returned_at:.0f}s of its return ({missing} missing); "
            f"after an admin heal in {time.monotonic() - asked:.0f}s"
        )
    print(f"\nMinIO server {victim}: {len(keys)} originals written while it was away reached its drive {how}")
    assert all(Path(cluster.local.home / f"minio-{n}" / "drive").exists() for n in range(1, 5))


def upload(cluster: ClusterStack, content: bytes, filename: str, mime: str, title: str) -> httpx.Response:
    """One upload as a client sends it: to either ingest replica, again on a 503, until it is answered."""
    urls = replica_urls(cluster.settings, "ingest")
    last: httpx.Response | None = None
    for attempt in range(40):
        try:
            last = httpx.post(
                f"{urls[attempt % 2]}/v1/assets",
                headers=AUTH,
                data={"title": title, "activity_type": "ky-hop", "recorded_at": "2024-07-10"},
                files={"file": (filename, content, mime)},
                timeout=120,
            )
        except httpx.HTTPError:
            time.sleep(1)
            continue
        if last.status_code not in (502, 503, 504):
            return last
        time.sleep(1)
    assert last is not None, "no ingest replica answered"
    return last


def test_a_poison_event_is_failed_or_parked_with_its_reason_and_the_uploads_flow_past_it(
    cluster: ClusterStack,
) -> None:
    s = cluster.settings
    load = load_under_way(s, uploads=12, workers=2, pace_s=0.3, at_least=3)
    # An asset.ingested whose payload no model accepts, appended raw (no service would write it).
    poison_id = asset_id_for_sha256(hashlib.sha256(uuid.uuid4().bytes).hexdigest())
    event_id = str(uuid.uuid4())
    envelope = {
        "event_id": event_id,
        "type": "asset.ingested",
        "schema_version": 1,
        "aggregate_id": poison_id,
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": "fault-suite",
        "correlation_id": str(uuid.uuid4()),
        "payload": {"bucket": 7, "sha256": ["not", "a", "hash"], "unexpected": "☠"},
    }
    appended_at = time.monotonic()
    sequence = publish_raw(s, event_subject("asset", poison_id, "ingested"), json.dumps(envelope).encode(), event_id)
    load.join()

    # The workers give up on it with a reason people can read, after their retries.
    def both_failed() -> Counter[str] | None:
        try:
            kinds = event_types(s, poison_id)
        except NATS_BUSY:
            return None
        return kinds if kinds["asset.processing_failed"] and kinds["asset.tagging_failed"] else None

    kinds = wait_for(
        both_failed,
        timeout=240,
        what="the transcoder and the tagger to record their failure on the poison event",
    )
    failed_s = time.monotonic() - appended_at
    events = {e.type: e.payload for e in history(s, poison_id)}
    transcoder_reason = events["asset.processing_failed"]
    tagger_reason = events["asset.tagging_failed"]
    assert kinds == {"asset.ingested": 1, "asset.processing_failed": 1, "asset.tagging_failed": 1}, kinds
    assert transcoder_reason["reason"] and transcoder_reason["reason_en"], transcoder_reason
    assert tagger_reason["message"] and tagger_reason["message_en"], tagger_reason
    # The projector cannot fold any of its events: each is parked with its reason, listed for operators.
    parked = wait_for(
        lambda: (lambda f: f if len(f) == 3 else None)(projection_failures_of(s, poison_id)),
        timeout=120,
        what="the projector to park the poison asset's three events with their reasons",
    )
    assert {p["sequence"] for p in parked} >= {sequence}
    assert all("cannot fold" in p["reason"] for p in parked), parked
    status = httpx.get(f"{s.search_url}/v1/projection", headers=ADMIN, timeout=10).json()
    assert not status["healthy"] and poison_id in {f["asset_id"] for f in status["failures"]}
    result = settle_and_reconcile(s, load.acknowledged)
    print(
        f"\npoison event at {sequence}: failed by transcoder and tagger within {failed_s:.0f}s "
        f"(codes {transcoder_reason['code']!r}, {tagger_reason['code']!r}); "
        f"projector parked {len(parked)} with reasons; answers {dict(load.statuses)}",
        flush=True,
    )
    result.assert_exact()
    assert result.acknowledged == 12 and result.parked >= 3  # this poison's, and any earlier run's (kept servers)


def set_write_block(cluster: ClusterStack, index: str, blocked: bool) -> None:
    """What Elasticsearch itself sets past its flood-stage disk watermark: reads go on, writes are refused."""
    response = httpx.put(
        f"{cluster.settings.es_hosts[0]}/{index}/_settings",
        json={"index.blocks.read_only_allow_delete": True if blocked else None},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def has_document(cluster: ClusterStack, index: str, asset_id: str) -> bool:
    return httpx.get(f"{cluster.settings.es_hosts[0]}/{index}/_doc/{asset_id}", timeout=10).status_code == 200


def test_elasticsearch_refusing_writes_holds_the_projection_back_and_it_converges_once_the_block_is_lifted(
    cluster: ClusterStack,
) -> None:
    s = cluster.settings
    index = f"{s.es_index_prefix}-assets"
    load = load_under_way(s, uploads=16, workers=2, pace_s=0.4, at_least=3)
    set_write_block(cluster, index, True)
    blocked_at = time.monotonic()
    blocked_after = stream_last_sequence(s)  # events appended later can only meet the block
    try:
        wait_for(lambda: load.acks_since(blocked_at) >= 4, timeout=180, what="uploads acknowledged while blocked")
        # Every _bulk item is refused (cluster_block_exception, 429): the projector retries and hands
        # the events back, acknowledging none, so their documents wait; queries go on meanwhile.
        during = [a for a, n in creation_sequences(s, list(load.acknowledged)).items() if n > blocked_after]
        time.sleep(15)  # several retry rounds (search_redelivery_delay_s = 5 s) against the block
        assert not any(has_document(cluster, index, a) for a in during), "a write went through the block"
        status = httpx.get(f"{s.search_url}/v1/projection", headers=ADMIN, timeout=10).json()
        # Held back (not acknowledged), and retried rather than parked: a block lifts by itself.
        assert status["pending"] + status["awaiting_ack"] > 0, status
        assert not {f["asset_id"] for f in status["failures"]} & set(load.acknowledged), status["failures"]
        assert load.statuses["search 200"] >= 1
    finally:
        set_write_block(cluster, index, False)
    lifted_at = time.monotonic()
    load.join()
    result = settle_and_reconcile(s, load.acknowledged)
    print(
        f"\nES index {index} read-only for {lifted_at - blocked_at:.0f}s ({len(during)} uploads acknowledged "
        f"meanwhile, none indexed); converged {time.monotonic() - lifted_at:.0f}s after the block was lifted; "
        f"answers {dict(load.statuses)}",
        flush=True,
    )
    result.assert_exact()
    assert result.acknowledged == 16


# Elasticsearch refuses a document holding more nested objects than this dynamic index setting
# allows (each speech in ``speeches`` is one): lowered, it makes exactly the documents over it
# unacceptable, while every other document of the same ``_bulk`` is written.
NESTED_LIMIT_SETTING = "index.mapping.nested_objects.limit"
NESTED_LIMIT = 3
# Parked events come back this often in this test (300 s in production), so the fix is seen landing.
PARKED_REDELIVERY_S = 10.0
SPEAKERS = ["Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Phạm Minh Dũng", "Hoàng Thu Hà"]
PARTIAL_BULK = re.compile(r"_bulk of (\d+) documents: (\d+) written, (\d+) refused \(([^)]*)\)")


def set_nested_limit(cluster: ClusterStack, index: str, limit: int | None) -> None:
    """``limit`` nested objects per document on ``index``; None: back to Elasticsearch's default."""
    response = httpx.put(
        f"{cluster.settings.es_hosts[0]}/{index}/_settings", json={NESTED_LIMIT_SETTING: limit}, timeout=30
    )
    assert response.status_code == 200, response.text


def indexed_document(cluster: ClusterStack, index: str, asset_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{cluster.settings.es_hosts[0]}/{index}/_doc/{asset_id}", timeout=10)
    return dict(response.json()["_source"]) if response.status_code == 200 else None


def speech_count(cluster: ClusterStack, index: str, asset_id: str) -> int | None:
    doc = indexed_document(cluster, index, asset_id)
    return None if doc is None else len(doc.get("speeches") or [])


def test_elasticsearch_refusing_some_documents_of_a_bulk_writes_the_others_and_parks_the_refused_until_fixed(
    cluster: ClusterStack,
) -> None:
    s = cluster.settings
    index = f"{s.es_index_prefix}-assets"
    searches = cluster.service_names(("search",))
    restart_with(cluster, searches, search_parked_redelivery_s=PARKED_REDELIVERY_S)
    lifted_at: float | None = None
    try:
        logs = log_sizes(cluster, searches)
        set_nested_limit(cluster, index, NESTED_LIMIT)
        limited_at = time.monotonic()
        load = load_under_way(s, uploads=20, workers=2, pace_s=0.5, at_least=6)
        targets = list(load.acknowledged)[:6]
        wait_for(
            lambda: all(has_document(cluster, index, a) for a in targets), timeout=120, what="the first uploads indexed"
        )
        # Archivists name who speaks, all at once: five speakers (over the limit) on three assets,
        # two (within it) on three others; the projector meets them in the same batches.
        over, within = targets[:3], targets[3:]
        wanted = {**dict.fromkeys(over, 5), **dict.fromkeys(within, 2)}

        def name_speakers(asset_id: str, title: str | None = None) -> None:
            body = {"action": "correct", "speeches": [{"name": n} for n in SPEAKERS[: wanted[asset_id]]]}
            with httpx.Client(timeout=60) as http:
                answered = load.send(
                    http,
                    "edit",
                    "catalogue",
                    lambda url: (
                        http.put(f"{url}/v1/assets/{asset_id}/speeches", headers=ARCHIVIST, json=body)
                        if title is None
                        else http.patch(
                            f"{url}/v1/assets/{asset_id}/metadata", headers=ARCHIVIST, json={"title": title}
                        )
                    ),
                )
            assert answered is not None, f"the edit of {asset_id} was not accepted: {load.failures}"

        def at_once(edits: list[tuple[str, str | None]]) -> None:
            threads = [threading.Thread(target=name_speakers, args=edit) for edit in edits]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert not load.failures, load.failures

        at_once([(a, None) for a in targets])

        def mixed_bulks() -> list[tuple[int, int, int, str]]:
            return [
                (int(n), int(written), int(refused), kinds)
                for n, written, refused, kinds in PARTIAL_BULK.findall(logged_since(cluster, logs))
                if int(written) and int(refused)
            ]

        # One _bulk with both: if the first burst's batches happened to split them, edit one asset
        # of each kind together again (an edit refolds the whole document, speeches included).
        mixed: list[tuple[int, int, int, str]] = []
        for round_ in range(12):
            polled_until = time.monotonic() + 8
            while not (mixed := mixed_bulks()) and time.monotonic() < polled_until:
                time.sleep(0.5)
            if mixed:
                break
            at_once(
                [(over[round_ % 3], f"Phiên chất vấn {round_} (quá giới hạn)"), (within[round_ % 3], f"Phiên {round_}")]
            )
        assert mixed, "no _bulk in which some documents were written and others refused"

        # The refused: parked with Elasticsearch's reason (a document over an index limit cannot
        # succeed as things are: retrying at once would only fail again), never acknowledged.
        def parked_of_all() -> dict[str, list[dict[str, Any]]] | None:
            found = {a: projection_failures_of(s, a) for a in over}
            return found if all(found.values()) else None

        parked = wait_for(parked_of_all, timeout=120, what="the over-limit writes parked with their reason")
        reasons = [str(f["reason"]) for fs in parked.values() for f in fs]
        assert all(r.startswith("400 ") and "nested" in r for r in reasons), reasons
        parked_sequences = {int(str(f["sequence"])) for fs in parked.values() for f in fs}
        # Parked events come back and are refused again; they hold the ack floor below them.
        wait_for(
            lambda: all(len(re.findall(rf"cannot index {a} .*parked", logged_since(cluster, logs))) >= 2 for a in over),
            timeout=120,
            what="each parked write redelivered and refused again",
        )
        projector = consumer(s, PROJECTOR)
        floor = projector.ack_floor.stream_seq if projector.ack_floor else 0
        assert floor < min(parked_sequences), (floor, sorted(parked_sequences))
        # Every parked event (these, and any an earlier test left) still awaits its ack.
        assert (projector.num_ack_pending or 0) >= len(asyncio.run(projection_failures(s)))
        for a in over:
            doc = indexed_document(cluster, index, a)
            assert doc is not None and len(doc.get("speeches") or []) != 5, doc
            assert not set(doc["event_sequences"]) & parked_sequences, "a parked event counted as written"
        # The others: written meanwhile, the limit still in place.
        wait_for(
            lambda: all(speech_count(cluster, index, a) == 2 for a in within),
            timeout=120,
            what="the within-limit speeches indexed",
        )
        load.join()
        wait_for(
            lambda: all(has_document(cluster, index, a) for a in load.acknowledged),
            timeout=120,
            what="every upload indexed under the limit",
        )
        status = httpx.get(f"{s.search_url}/v1/projection", headers=ADMIN, timeout=10).json()
        assert not status["healthy"] and set(over) <= {f["asset_id"] for f in status["failures"]}, status
        assert not {f["asset_id"] for f in status["failures"]} & (set(load.acknowledged) - set(over))
        # The cause removed: the parked writes land at their next redelivery, their records go.
        set_nested_limit(cluster, index, None)
        lifted_at = time.monotonic()
        wait_for(
            lambda: all(speech_count(cluster, index, a) == 5 and not projection_failures_of(s, a) for a in over),
            timeout=180,
            what="the parked writes landed once the limit was lifted",
        )
        converged_s = time.monotonic() - lifted_at
        result = settle_and_reconcile(s, load.acknowledged)
        n, written, refused, kinds = mixed[0]
        print(
            f"\nES {NESTED_LIMIT_SETTING}={NESTED_LIMIT} for {lifted_at - limited_at:.0f}s: a _bulk of {n} documents "
            f"had {written} written and {refused} refused ({kinds}); {len(parked_sequences)} events of {len(over)} "
            f"assets parked with their reason ({reasons[0][:160]!r}), ack floor {floor} below them; "
            f"{len(load.acknowledged)} uploads and {len(within)} within-limit edits indexed meanwhile; "
            f"converged {converged_s:.0f}s after the limit was lifted; answers {dict(load.statuses)}",
            flush=True,
        )
        result.assert_exact()
        assert result.acknowledged == 20
    finally:
        if lifted_at is None:
            set_nested_limit(cluster, index, None)
        restart_with(cluster, searches)


# A node that refuses writes for memory: Elasticsearch's indexing pressure, a static node setting
# (`indexing_pressure.memory.limit`, 10 % of the heap by default). A shard's write (its part of a
# _bulk) arriving at a node over its limit is refused as a whole, and every document of it comes
# back in the 200 response as its own 429 `es_rejected_execution_exception`; a _bulk sent *to*
# that node is refused whole (a top-level 429). So a data-only node started with the limit at one
# byte, which no client sends to, rejects every primary write of the shards moved onto it, every
# time: the retryable per-document refusal, made deterministic. (The assets index has one shard:
# all of a _bulk's documents share the refusal; on a two-shard index the documents of the other
# shard are written in the same request — checked by hand, not part of the product.)
PRESSURED_NODE = "elasticsearch-pressured"
PRESSURE_LIMIT = "1b"
REJECTED_ITEMS = re.compile(
    r"_bulk of (\d+) documents: (\d+) written, (\d+) refused \(429 es_rejected_execution_exception"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_pressured_node(cluster: ClusterStack) -> ProcessSpec:
    """A fourth Elasticsearch node (data only, so the masters' vote is unchanged) joined to the
    cluster, refusing any primary write over ``PRESSURE_LIMIT`` of outstanding bytes."""
    s, p = cluster.settings, cluster.ports
    seeds = ", ".join(f'"127.0.0.1:{p.es_transport(s, n)}"' for n in range(1, 4))
    spec = cluster.local.elasticsearch_spec(
        name=PRESSURED_NODE,
        http_port=free_port(),
        transport_port=free_port(),
        discovery=f"discovery.seed_hosts: [{seeds}]\n",
        heap=CLUSTER_ES_HEAP,
    )
    config = cluster.local.home / PRESSURED_NODE / "config" / "elasticsearch.yml"
    config.write_text(config.read_text() + f"node.roles: [data]\nindexing_pressure.memory.limit: {PRESSURE_LIMIT}\n")
    spec.cmdline_marker = ""
    spec.startup_timeout_s = 300
    start(spec)
    return spec


def es_put(cluster: ClusterStack, path: str, body: dict[str, Any]) -> None:
    response = httpx.put(f"{cluster.settings.es_hosts[0]}{path}", json=body, timeout=60)
    assert response.status_code == 200, response.text


def primary_node(cluster: ClusterStack, index: str) -> str | None:
    shards = httpx.get(f"{cluster.settings.es_hosts[0]}/_cat/shards/{index}?format=json", timeout=10).json()
    started = [sh["node"] for sh in shards if sh["prirep"] == "p" and sh["state"] == "STARTED"]
    return str(started[0]).removeprefix("mam-") if started else None


def move_off_pressured_node(cluster: ClusterStack, index: str) -> None:
    """``index``'s shards back onto the cluster's own nodes (with rebalancing off, a shard merely
    allowed elsewhere would stay where it is: it must be excluded from the node)."""
    es_put(
        cluster,
        f"/{index}/_settings",
        {
            "index.routing.allocation.require._name": None,
            "index.routing.allocation.exclude._name": f"mam-{PRESSURED_NODE}",
        },
    )
    wait_for(
        lambda: primary_node(cluster, index) not in (None, PRESSURED_NODE), timeout=180, what="the primary moved back"
    )


def primary_rejections(cluster: ClusterStack) -> int:
    stats = httpx.get(
        f"{cluster.settings.es_hosts[0]}/_nodes/mam-{PRESSURED_NODE}/stats/indexing_pressure", timeout=10
    ).json()
    [node] = stats["nodes"].values()
    return int(node["indexing_pressure"]["memory"]["total"]["primary_document_rejections"])


@full
def test_elasticsearch_rejecting_writes_for_memory_holds_each_document_back_and_it_converges_once_the_shard_moves(
    cluster: ClusterStack,
) -> None:
    s = cluster.settings
    index = f"{s.es_index_prefix}-assets"
    searches = cluster.service_names(("search",))
    settle_and_reconcile(s, {})  # nothing in flight: a write meeting the move would fail the moving copy
    # The joining node takes no shard but the one sent to it.
    es_put(cluster, "/_cluster/settings", {"persistent": {"cluster.routing.rebalance.enable": "none"}})
    pressured = start_pressured_node(cluster)
    moved_back_at: float | None = None
    try:
        # The index's primary onto the pressured node; its replica has nowhere else to go and
        # auto-expansion drops it, so every write meets the limit at the primary.
        es_put(cluster, f"/{index}/_settings", {"index.routing.allocation.require._name": f"mam-{PRESSURED_NODE}"})
        wait_for(lambda: primary_node(cluster, index) == PRESSURED_NODE, timeout=180, what="the primary moved")
        rejections_before = primary_rejections(cluster)
        logs = log_sizes(cluster, searches)
        pressed_at = time.monotonic()
        load = load_under_way(s, uploads=12, workers=2, pace_s=0.4, at_least=4)
        # Every document of each _bulk refused on its own (429 in a 200 answer), retried, never parked.
        wait_for(
            lambda: REJECTED_ITEMS.findall(logged_since(cluster, logs)),
            timeout=120,
            what="a _bulk whose documents were each rejected for memory",
        )
        wait_for(lambda: load.acknowledged_count() >= 8, timeout=180, what="uploads acknowledged under pressure")
        time.sleep(10)  # two more retry rounds (search_redelivery_delay_s = 5 s) against the limit
        assert not any(has_document(cluster, index, a) for a in load.acknowledged), "a write went past the limit"
        status = httpx.get(f"{s.search_url}/v1/projection", headers=ADMIN, timeout=10).json()
        assert status["pending"] + status["awaiting_ack"] > 0, status
        assert not {f["asset_id"] for f in status["failures"]} & set(load.acknowledged), status["failures"]
        assert load.statuses["search 200"] >= 1  # queries go on: reads are not under indexing pressure
        refused = REJECTED_ITEMS.findall(logged_since(cluster, logs))  # all of them, so far
        rejected = primary_rejections(cluster) - rejections_before
        assert rejected >= sum(int(n) for n, _, _ in refused), (rejected, refused)
        # The cause removed: the shard moves back to the cluster's own nodes.
        move_off_pressured_node(cluster, index)
        moved_back_at = time.monotonic()
        load.join()
        result = settle_and_reconcile(s, load.acknowledged)
        print(
            f"\nES primary of {index} on a node with indexing_pressure.memory.limit={PRESSURE_LIMIT} for "
            f"{moved_back_at - pressed_at:.0f}s: {len(refused)} _bulk answers with every document refused "
            f"(429 es_rejected_execution_exception, first: {refused[0][2]} of {refused[0][0]}), {rejected} document "
            f"rejections counted by the node, none parked; converged {time.monotonic() - moved_back_at:.0f}s after "
            f"the shard was moved back; answers {dict(load.statuses)}",
            flush=True,
        )
        result.assert_exact()
        assert result.acknowledged == 12
    finally:
        try:
            if moved_back_at is None:
                move_off_pressured_node(cluster, index)
        finally:
            stop(pressured)
            es_put(cluster, f"/{index}/_settings", {"index.routing.allocation.exclude._name": None})
            es_put(cluster, "/_cluster/settings", {"persistent": {"cluster.routing.rebalance.enable": None}})
        wait_for(lambda: es_health(cluster).get("status") == "green", timeout=300, what="green again")


@full
def test_a_nats_node_stopped_longer_than_its_election_timeout_loses_and_duplicates_nothing(
    cluster: ClusterStack,
) -> None:
    s = cluster.settings
    load = load_under_way(s, uploads=24, workers=3, pace_s=0.3, at_least=4)
    leader = wait_for(lambda: stream_leader(cluster), timeout=30, what="a stream leader")
    frozen_at = time.monotonic()
    pid = freeze(cluster, leader)  # SIGSTOP: its peers and clients see silence, not a closed socket
    try:
        new_leader = another_stream_leader(cluster, leader, timeout=90)
        elected_s = time.monotonic() - frozen_at
        wait_for(lambda: load.acks_since(frozen_at) >= 1, timeout=180, what="an upload acknowledged meanwhile")
        ack_s = time.monotonic() - frozen_at
        # Longer than any election timeout (JetStream's Raft: at most a few seconds).
        wait_for(lambda: time.monotonic() - frozen_at >= 20, timeout=30, what="20 s stopped")
    finally:
        thaw(pid)
    thawed_at = time.monotonic()
    wait_until_a_current_follower(cluster, leader)
    caught_up_s = time.monotonic() - thawed_at
    load.join()
    print(
        f"\nNATS {leader} (stream leader) stopped {thawed_at - frozen_at:.0f}s: {new_leader} led after "
        f"{elected_s:.1f}s, first upload acknowledged after {ack_s:.1f}s; caught up {caught_up_s:.1f}s after "
        f"SIGCONT; answers {dict(load.statuses)}",
        flush=True,
    )
    result = settle_and_reconcile(s, load.acknowledged)
    result.assert_exact()
    assert result.acknowledged == 24


@full
def test_a_job_longer_than_its_ack_wait_is_kept_by_in_progress_acks_and_delivered_once(
    cluster: ClusterStack, tmp_path: Path
) -> None:
    s = cluster.settings
    ack_wait_s = 3.0
    transcoders = cluster.service_names(("transcoder",))
    # Both replicas restarted with a 3 s ack wait (in-progress acks every second): the durable takes it.
    restart_with(cluster, transcoders, transcoder_ack_wait_s=ack_wait_s)
    try:
        assert consumer(s, "transcoder").config.ack_wait == ack_wait_s
        logs = log_sizes(cluster, transcoders)
        redeliveries_seen = 0  # messages handed out again and not yet acknowledged, sampled throughout

        def renditions_ready() -> EventEnvelope | None:
            nonlocal redeliveries_seen
            try:
                redeliveries_seen = max(redeliveries_seen, consumer(s, "transcoder").num_redelivered or 0)
                return next((e for e in history(s, clip_id) if e.type == "asset.renditions_ready"), None)
            except NATS_BUSY:  # a loaded machine's JetStream API answering late: ask again
                return None

        load = Load(s, uploads=8, workers=2, pace_s=0.5).start()
        clip = make_clip(
            tmp_path / "phien-hop.mp4", seconds=40, size="1280x720", extra=["-metadata", f"comment={uuid.uuid4()}"]
        )
        content = clip.read_bytes()
        response = upload(cluster, content, "phien-hop.mp4", "video/mp4", "Phiên họp thường lệ — bản ghi dài")
        assert response.status_code == 201, response.text
        clip_id = str(response.json()["asset_id"])
        uploaded_at = time.monotonic()
        ready = wait_for(renditions_ready, timeout=600, interval=0.5, what="the long clip's renditions")
        done_s = time.monotonic() - uploaded_at
        load.join()
        result = settle_and_reconcile(s, {**load.acknowledged, clip_id: hashlib.sha256(content).hexdigest()})
        kinds = event_types(s, clip_id)
        deliveries = re.findall(rf"{clip_id} attempt (\d+)", logged_since(cluster, logs))
        print(
            f"\nclip transcoded in {ready.payload['elapsed_s']:.0f}s with a {ack_wait_s:.0f}s ack wait "
            f"(renditions {done_s:.0f}s after upload): deliveries {deliveries}, redeliveries seen "
            f"{redeliveries_seen}, {dict(kinds)}",
            flush=True,
        )
        result.assert_exact()
        # Longer than its ack wait many times over, yet never delivered twice.
        assert ready.payload["elapsed_s"] > 3 * ack_wait_s
        assert deliveries == ["1"] and redeliveries_seen == 0
        assert kinds["asset.probed"] == 1 and kinds["asset.renditions_ready"] == 1
        assert kinds["asset.processing_failed"] == 0
    finally:
        restart_with(cluster, transcoders)
    assert consumer(s, "transcoder").config.ack_wait == s.transcoder_ack_wait_s


@full
def test_a_full_object_store_refuses_uploads_clearly_and_stores_nothing_half(cluster: ClusterStack) -> None:
    s = cluster.settings
    admin = minio_admin(s)
    # A client that sends again on 507 once an administrator has made room (as on a 503).
    load = load_under_way(s, uploads=12, workers=2, pace_s=0.5, retry_on=frozenset(RETRYABLE | {507}), at_least=3)
    probe = unique_jpeg(load.seed, 10_000)  # bytes no other upload sends
    probe_sha = hashlib.sha256(probe).hexdigest()
    admin.bucket_quota_set(s.bucket_originals, 1)  # a hard quota of one byte: the originals bucket is full
    full_at = time.monotonic()
    try:
        refused = wait_for(
            lambda: (lambda r: r if r.status_code == 507 else None)(
                upload(cluster, probe, "anh-day.jpg", "image/jpeg", "Ảnh gửi khi kho đầy")
            ),
            timeout=60,
            what="an upload refused with 507 while the store is full",
        )
        error = refused.json()["error"]
        assert error["code"] == "storage_full" and "đầy" in error["message"] and "full" in error["message_en"]
        wait_for(lambda: load.statuses["upload 507"] >= 2, timeout=120, what="the load's uploads refused too")
        # Edits do not need the object store: they go on (a 409 is a race with the tagger: again).
        edited = next(iter(load.acknowledged))
        wait_for(
            lambda: (
                httpx.patch(
                    f"{s.catalogue_url}/v1/assets/{edited}/metadata",
                    headers=ARCHIVIST,
                    json={"title": "Tiếp xúc cử tri — sửa khi kho đầy"},
                    timeout=30,
                ).status_code
                == 200
            ),
            timeout=60,
            what="an edit while the store is full",
        )
        # Nothing half-stored: no object, no event for the refused bytes.
        probe_id = asset_id_for_sha256(probe_sha)
        assert not history(s, probe_id)
        objects = ObjectStore.from_settings(s)
        assert asyncio.run(objects.stat(s.bucket_originals, content_key(probe_sha))) is None
    finally:
        admin.bucket_quota_clear(s.bucket_originals)
    cleared_at = time.monotonic()
    accepted = wait_for(
        lambda: (lambda r: r if r.status_code == 201 else None)(
            upload(cluster, probe, "anh-day.jpg", "image/jpeg", "Ảnh gửi lại khi kho đã có chỗ")
        ),
        timeout=120,
        what="the same bytes accepted once there is room",
    )
    room_s = time.monotonic() - cleared_at
    load.join()
    acknowledged = {**load.acknowledged, str(accepted.json()["asset_id"]): probe_sha}
    result = settle_and_reconcile(s, acknowledged)
    print(
        f"\noriginals bucket full for {cleared_at - full_at:.0f}s: uploads refused 507 "
        f"({load.statuses['upload 507']} in the load), accepted again {room_s:.1f}s after the quota was "
        f"cleared; answers {dict(load.statuses)}",
        flush=True,
    )
    result.assert_exact()
    assert result.acknowledged == 13


def clock_of(url: str) -> datetime:
    """A service's own clock, as its HTTP ``Date`` header tells it."""
    return parsedate_to_datetime(httpx.get(f"{url}/healthz", timeout=10).headers["date"])


def in_public_feed(url: str, asset_id: str) -> bool:
    feed = httpx.get(f"{url}/v1/feed", timeout=30)
    assert feed.status_code == 200, feed.text
    return f"urn:hdnd-mam:asset:{asset_id}" in {item["id"] for item in feed.json()["items"]}


def edit_title(url: str, asset_id: str, title: str) -> None:
    def sent() -> bool:  # a 409 races the tagger's asset.tagged: send again on fresh history
        response = httpx.patch(
            f"{url}/v1/assets/{asset_id}/metadata", headers=ARCHIVIST, json={"title": title}, timeout=30
        )
        assert response.status_code in (200, 409), response.text
        return response.status_code == 200

    wait_for(sent, timeout=60, what=f"the edit {title!r}")


@full
def test_a_service_two_minutes_off_leaves_embargo_and_ordering_unaffected(cluster: ClusterStack) -> None:
    s = cluster.settings
    skew = {"ingest-2": -120, "catalogue-2": +120, "search-2": +120}
    _, ingest_skewed = replica_urls(s, "ingest")
    catalogue, catalogue_skewed = replica_urls(s, "catalogue")
    _, search_skewed = replica_urls(s, "search")
    try:
        for name, offset in skew.items():
            restart_skewed(cluster, name, offset)
        now = datetime.now(UTC)
        for url, offset in ((ingest_skewed, -120), (catalogue_skewed, 120), (search_skewed, 120)):
            assert abs((clock_of(url) - now).total_seconds() - offset) < 15, f"{url} is not {offset:+d}s off"
        load = Load(s, uploads=10, workers=2, pace_s=0.4).start()
        # An upload through the replica whose clock is behind.
        content = unique_jpeg(load.seed, 20_000)
        response = httpx.post(
            f"{ingest_skewed}/v1/assets",
            headers=AUTH,
            data={
                "title": "Kỳ họp thứ 9 — ảnh từ máy lệch giờ",
                "activity_type": "ky-hop",
                "recorded_at": "2024-07-10",
            },
            files={"file": ("ky-hop.jpg", content, "image/jpeg")},
            timeout=60,
        )
        assert response.status_code == 201, response.text
        asset_id = str(response.json()["asset_id"])
        # Ordering: three edits alternating between a replica 2 min ahead and one on time. Their
        # occurred_at disagree with their order; the stream's order decides.
        titles = ["Bản 1 (máy nhanh 2 phút)", "Bản 2 (máy đúng giờ)", "Bản 3 (máy nhanh 2 phút)"]
        for title, url in zip(titles, (catalogue_skewed, catalogue, catalogue_skewed), strict=True):
            edit_title(url, asset_id, title)
        edits = [e for e in history(s, asset_id) if e.type == "asset.metadata_edited"]
        assert [e.payload.get("title") for e in edits] == titles
        assert edits[1].occurred_at < edits[0].occurred_at  # the clocks did disagree
        # Embargo: published through the replica 2 min ahead, from 40 s from now (true time).
        publish_at = datetime.now(UTC) + timedelta(seconds=40)
        published = httpx.put(
            f"{catalogue_skewed}/v1/assets/{asset_id}/publication",
            headers=ARCHIVIST,
            json={"publish_at": publish_at.isoformat(), "restriction": "public"},
            timeout=30,
        )
        assert published.status_code == 200, published.text
        wait_for(lambda: any(e.type == "asset.published" for e in history(s, asset_id)), timeout=30, what="published")
        # Before its time, no replica's feed shows it — not even the one whose clock says it is time.
        while datetime.now(UTC) < publish_at - timedelta(seconds=1):
            assert not in_public_feed(search_skewed, asset_id), "shown early by the replica 2 min ahead"
            assert not in_public_feed(s.search_url, asset_id), "shown early"
            time.sleep(1)
        shown = wait_for(
            lambda: in_public_feed(s.search_url, asset_id) and in_public_feed(search_skewed, asset_id),
            timeout=90,
            what="the asset in the public feed once its embargo ended",
        )
        late_s = (datetime.now(UTC) - publish_at).total_seconds()
        load.join()
        result = settle_and_reconcile(s, {**load.acknowledged, asset_id: hashlib.sha256(content).hexdigest()})
        document = httpx.get(f"{s.es_hosts[0]}/{s.es_index_prefix}-assets/_doc/{asset_id}", timeout=30)
        print(
            f"\nclocks {skew}: edits kept stream order; embargo ended {late_s:.1f}s after its time "
            f"on every replica (feed polled every second); answers {dict(load.statuses)}",
            flush=True,
        )
        result.assert_exact()
        assert shown and late_s > -1.0  # Elasticsearch's clock (this machine's) decides, not a replica's
        assert document.json()["_source"]["title"] == titles[-1], document.text
    finally:
        restart_with(cluster, list(skew))


def replica_holding_a_job(cluster: ClusterStack, service: str) -> str | None:
    """A replica of ``service`` with a job under way: something in its scratch folder
    (``<work>/<service>-<port>``, shared/workdirs.py), where a job keeps its files while it runs."""
    s = cluster.settings
    port = int(getattr(s, f"{service}_port"))
    for replica, name in enumerate(cluster.service_names((service,))):
        folder = s.home / "work" / f"{service}-{port + s.cluster_replica_port_shift * replica}"
        if folder.is_dir() and any(folder.iterdir()):
            return name
    return None


@full
def test_killing_each_worker_twice_while_it_holds_a_job_loses_and_duplicates_nothing(
    cluster: ClusterStack, tmp_path: Path
) -> None:
    s = cluster.settings
    run = uuid.uuid4()  # bytes no earlier run uploaded: each clip a new asset, a new job
    clips = [
        make_clip(
            tmp_path / f"clip-{i}.mp4", seconds=6 + i * 0.5, size="640x360", extra=["-metadata", f"comment={run}"]
        )
        for i in range(10)
    ]
    load = Load(s, uploads=sys.maxsize, workers=1, pace_s=1.0).start()
    acknowledged_clips: dict[str, str] = {}
    kills: list[str] = []

    def upload_clips() -> None:
        for i, clip in enumerate(clips):
            content = clip.read_bytes()
            response = upload(cluster, content, clip.name, "video/mp4", f"Phiên chất vấn số {i}")
            if response.status_code == 201:
                acknowledged_clips[str(response.json()["asset_id"])] = hashlib.sha256(content).hexdigest()
            else:
                load.failures.append(f"clip {i}: {response.status_code} {response.text[:200]}")

    workers = {"transcoder": r" attempt [2-9]", "tagger": r"\(delivery [2-9]\)"}  # service → a redelivery's log
    logs = log_sizes(cluster, cluster.service_names(tuple(workers)))
    uploader = threading.Thread(target=upload_clips, daemon=True)
    uploader.start()
    try:
        for service in workers:
            for _ in range(2):
                holder = wait_for(
                    functools.partial(replica_holding_a_job, cluster, service),
                    timeout=300,
                    interval=0.05,
                    what=f"a {service} replica holding a job",
                )
                kill9(cluster, holder)
                kills.append(f"{holder} {restart(cluster, holder):.1f}s")
    finally:
        uploader.join(600)
        load.stop.set()
        load.join()
    assert not uploader.is_alive(), "the clip uploads did not finish"
    acknowledged = {**load.acknowledged, **acknowledged_clips}
    result = settle_and_reconcile(s, acknowledged, within_s=600)
    logged = logged_since(cluster, logs)
    redelivered = {svc: len(re.findall(pattern, logged)) for svc, pattern in workers.items()}
    print(
        f"\nkilled mid-job (restart to healthy): {kills}; jobs redelivered {redelivered}; "
        f"answers {dict(load.statuses)}",
        flush=True,
    )
    result.assert_exact()
    # The jobs the kills interrupted came back (to the other replica or the restarted one).
    assert all(n >= 1 for n in redelivered.values()), redelivered
    assert len(acknowledged_clips) == len(clips)
