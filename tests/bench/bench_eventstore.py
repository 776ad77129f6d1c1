"""What fsync-per-write (`sync_interval: always`) costs: appends/s on our event
store vs the same appends to a NATS server with the default sync interval.

Both servers are the bench's own (same launcher code, own data folders), so the
bench never adds events to a stream that a projector is consuming.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from deploy.local.processes import start, stop
from deploy.local.stack import LocalStack
from shared.events import AssetIngestedV1
from shared.events.envelope import new_event
from shared.eventstore import EventStore
from tests.bench.ports import bench_settings

N_SEQUENTIAL = 2000
N_CONCURRENT = 5000
CONCURRENCY = 64


def _payload(i: int) -> AssetIngestedV1:
    return AssetIngestedV1(
        sha256=f"{i:064x}",
        size_bytes=1000 + i,
        kind="photo",
        media_format="JPEG",
        mime_type="image/jpeg",
        bucket="b",
        object_key=f"k{i}",
        title=f"Tiếp xúc cử tri số {i}",
        activity_type="tiep-xuc-cu-tri",
    )


async def _rate(url: str, stream: str, tag: str) -> tuple[float, float]:
    store = await EventStore.connect(url, stream)
    try:
        began = time.perf_counter()
        for i in range(N_SEQUENTIAL):
            await store.append(
                new_event(_payload(i), aggregate_id=f"b{tag}s{i}", actor="bench"), expected_last_sequence=0
            )
        sequential = N_SEQUENTIAL / (time.perf_counter() - began)
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            async with sem:
                await store.append(new_event(_payload(i), aggregate_id=f"b{tag}c{i}", actor="bench"))

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(N_CONCURRENT)))
        concurrent = N_CONCURRENT / (time.perf_counter() - began)
    finally:
        await store.close()
    return sequential, concurrent


def run(stack: LocalStack) -> list[dict[str, Any]]:
    s = stack.settings
    fsync, nosync = bench_settings(s, "eventstore-fsync"), bench_settings(s, "eventstore-nosync")
    ours_spec = stack.nats_spec(
        name="nats-bench-fsync", port=fsync.nats_port, monitor_port=fsync.nats_monitor_port, sync_always=True
    )
    base_spec = stack.nats_spec(
        name="nats-bench-nosync", port=nosync.nats_port, monitor_port=nosync.nats_monitor_port, sync_always=False
    )
    for spec in (ours_spec, base_spec):
        start(spec)
    try:
        tag = str(int(time.time()))
        ours_seq, ours_conc = asyncio.run(_rate(f"nats://127.0.0.1:{fsync.nats_port}", s.event_stream, tag))
        base_seq, base_conc = asyncio.run(_rate(f"nats://127.0.0.1:{nosync.nats_port}", s.event_stream, tag))
    finally:
        for spec in (ours_spec, base_spec):
            stop(spec)
    return [
        {
            "name": "eventstore_append_sequential_fsync_always_vs_default",
            "ours": ours_seq,
            "baseline": base_seq,
            "ratio": ours_seq / base_seq,
            "unit": "appends/s",
        },
        {
            "name": f"eventstore_append_concurrent{CONCURRENCY}_fsync_always_vs_default",
            "ours": ours_conc,
            "baseline": base_conc,
            "ratio": ours_conc / base_conc,
            "unit": "appends/s",
        },
    ]
