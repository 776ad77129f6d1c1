"""The exact reconciliation after a fault: what was acknowledged is there once, whole, and nothing else.

For every upload a client saw acknowledged: exactly one ``asset.ingested`` (with
the uploaded bytes' hash), the original stored under that hash with the right
content, one ``asset.renditions_ready`` whose every object exists, and a search
document equal to a fresh fold of the asset's events (what a replay would
write). Across the whole archive: no event id twice, no once-only event twice
for one asset, and no object in the originals or renditions bucket that no event
names (an orphan). Written once; every fault test and the soak end with it.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nats

from services.search.index import AssetIndex, es_client
from services.search.projector import fold_history
from shared.events.envelope import EventEnvelope
from shared.eventstore import EventStore
from shared.objectstore import ObjectStore
from shared.settings import Settings
from shared.subjects import ALL_EVENTS

# Event types that happen once per asset when nobody asks for a re-run (the load never does).
ONCE_PER_ASSET = ("asset.ingested", "asset.renditions_ready", "asset.tagged")


@dataclass
class Reconciliation:
    acknowledged: int = 0
    ingested: int = 0
    stored: int = 0
    rendered: int = 0
    indexed: int = 0
    duplicates: int = 0
    orphans: int = 0
    # Events the projector parked with a recorded reason (a poison event's): settled by design,
    # never one of an acknowledged upload.
    parked: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, ingested {self.ingested}, stored {self.stored}, "
            f"rendered {self.rendered}, indexed {self.indexed}, duplicates {self.duplicates}, orphans {self.orphans}, "
            f"parked {self.parked}"
        )

    @property
    def exact(self) -> bool:
        n = self.acknowledged
        return (
            not self.problems
            and self.ingested == self.stored == self.rendered == self.indexed == n
            and self.duplicates == 0
            and self.orphans == 0
        )

    def assert_exact(self) -> None:
        print(f"reconciliation: {self.line()}", flush=True)
        assert self.exact, f"{self.line()}; problems (first 20): {self.problems[:20]}"


async def all_consumers_settled(settings: Settings, parked: Mapping[str, int] | None = None) -> list[str]:
    """The durable consumers of the event stream that still have work (empty: all settled).

    ``parked``: durable → how many messages it may hold unacknowledged by design (the search
    projector parks a write that cannot succeed, with its reason recorded, and never acks it).
    """
    allowed = parked or {}
    nc = await nats.connect(settings.nats_servers, connect_timeout=5)
    try:
        busy = []
        for info in await nc.jetstream().consumers_info(settings.event_stream):
            if not info.config.durable_name:
                continue  # an ephemeral reader (a history read), not a worker
            # Consumer sequences: a filtered consumer's delivered *stream* sequence runs on past
            # the events it skips, its ack floor's does not.
            delivered = info.delivered.consumer_seq if info.delivered else 0
            acked = info.ack_floor.consumer_seq if info.ack_floor else 0
            may_hold = allowed.get(info.name, 0)
            if may_hold:
                # A parked message holds the ack floor back: only its count can be checked.
                if info.num_pending or (info.num_ack_pending or 0) > may_hold:
                    busy.append(f"{info.name}: pending {info.num_pending}, unacked {info.num_ack_pending}")
            elif info.num_pending or info.num_ack_pending or delivered != acked:
                busy.append(f"{info.name}: pending {info.num_pending}, unacked {info.num_ack_pending}")
        return busy
    finally:
        await nc.close()


async def projection_failures(settings: Settings) -> list[dict[str, Any]]:
    """The projector's failure records (writes parked with their reason), as the search API lists them."""
    es = es_client(settings.resolved_es_url)
    try:
        return await AssetIndex(es, settings.es_index_prefix).failures(size=1000)
    finally:
        await es.close()


async def read_all_events(settings: Settings) -> list[tuple[EventEnvelope, int]]:
    store = await EventStore.connect(settings.resolved_nats_url, settings.event_stream, configure=False)
    try:
        return [(stored.envelope, stored.sequence) async for stored in store.read_subjects(ALL_EVENTS, batch=1000)]
    finally:
        await store.close()


async def reconcile(settings: Settings, acknowledged: dict[str, str]) -> Reconciliation:
    """``acknowledged``: asset id → sha256 of the bytes the client uploaded and saw acknowledged."""
    result = Reconciliation(acknowledged=len(acknowledged))
    events = await read_all_events(settings)
    ids = Counter(e.event_id for e, _ in events)
    twice = [event_id for event_id, n in ids.items() if n > 1]
    by_asset: dict[str, list[tuple[EventEnvelope, int]]] = defaultdict(list)
    for event, sequence in events:
        if event.aggregate == "asset":
            by_asset[event.aggregate_id].append((event, sequence))
    once = Counter((e.aggregate_id, e.type) for e, _ in events if e.type in ONCE_PER_ASSET)
    repeated = [key for key, n in once.items() if n > 1]
    result.duplicates = len(twice) + len(repeated)
    result.problems += [f"event id {i} appears twice" for i in twice]
    result.problems += [f"{asset}: {kind} appears {once[(asset, kind)]} times" for asset, kind in repeated]

    objects = ObjectStore.from_settings(settings)
    es = es_client(settings.resolved_es_url)
    try:
        live = await _live_documents(es, settings, list(acknowledged))
        for asset_id, sha256 in acknowledged.items():
            history = by_asset.get(asset_id, [])
            await _check_asset(result, objects, live, asset_id, sha256, history)
        await _count_orphans(result, objects, settings, events)
    finally:
        await es.close()
    for record in await projection_failures(settings):
        result.parked += 1
        if record.get("asset_id") in acknowledged:
            result.problems.append(f"{record['asset_id']}: event {record.get('sequence')} parked: {record['reason']}")
    return result


async def _live_documents(es: Any, settings: Settings, asset_ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(asset_ids), 500):
        response = await es.mget(index=f"{settings.es_index_prefix}-assets", ids=asset_ids[start : start + 500])
        out.update({d["_id"]: dict(d["_source"]) for d in response["docs"] if d.get("found")})
    return out


async def _check_asset(
    result: Reconciliation,
    objects: ObjectStore,
    live: dict[str, dict[str, Any]],
    asset_id: str,
    sha256: str,
    history: list[tuple[EventEnvelope, int]],
) -> None:
    ingested = [e for e, _ in history if e.type == "asset.ingested"]
    if len(ingested) != 1 or ingested[0].payload.get("sha256") != sha256:
        result.problems.append(f"{asset_id}: {len(ingested)} asset.ingested (hash as uploaded: {sha256})")
        return
    result.ingested += 1
    payload = ingested[0].payload
    try:
        content = await objects.get_bytes(payload["bucket"], payload["object_key"])
    except Exception as exc:
        result.problems.append(f"{asset_id}: original unreadable: {exc}")
    else:
        if hashlib.sha256(content).hexdigest() == sha256:
            result.stored += 1
        else:
            result.problems.append(f"{asset_id}: stored original's hash differs")
    ready = [e for e, _ in history if e.type == "asset.renditions_ready"]
    if len(ready) == 1:
        missing = [
            r["key"] for r in ready[0].payload["renditions"] if await objects.stat(r["bucket"], r["key"]) is None
        ]
        if missing:
            result.problems.append(f"{asset_id}: renditions missing: {missing}")
        else:
            result.rendered += 1
    else:
        failed = [e.payload for e, _ in history if e.type == "asset.processing_failed"]
        result.problems.append(f"{asset_id}: {len(ready)} asset.renditions_ready; failures: {failed}")
    expected = fold_history(asset_id, history).doc
    if live.get(asset_id) == expected:
        result.indexed += 1
    else:
        result.problems.append(f"{asset_id}: search document differs from a replay of its events")


async def _count_orphans(
    result: Reconciliation, objects: ObjectStore, settings: Settings, events: list[tuple[EventEnvelope, int]]
) -> None:
    named: set[tuple[str, str]] = set()
    for event, _ in events:
        # Read as plain dicts with .get: a poison event (a payload no model accepts) names nothing.
        if event.type == "asset.ingested":
            named.add((str(event.payload.get("bucket")), str(event.payload.get("object_key"))))
        elif event.type == "asset.renditions_ready":
            named |= {(r["bucket"], r["key"]) for r in event.payload.get("renditions") or []}
    for bucket in (settings.bucket_originals, settings.bucket_renditions):
        for key in await objects.list_keys(bucket):
            if (bucket, key) not in named:
                result.orphans += 1
                result.problems.append(f"orphan object {bucket}/{key}")
