"""What the benches share: a result row, percentiles, waiting for Elasticsearch's merges,
and a NATS of a bench's own beside the test stack (its ports from tests/bench/ports.py)."""

from __future__ import annotations

import shutil
import statistics
import time
from typing import Any

import httpx

from deploy.local.processes import ProcessSpec, start
from deploy.local.stack import LocalStack
from shared.settings import Settings
from tests.bench.ports import bench_settings


def row(name: str, ours: float, baseline: float | None, unit: str) -> dict[str, Any]:
    """One result: ours against the bare tool (``ratio`` ours/baseline; None where nothing compares)."""
    return {
        "name": name,
        "ours": ours,
        "baseline": baseline,
        "ratio": ours / baseline if baseline else None,
        "unit": unit,
    }


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (1–99) of ``values``."""
    return statistics.quantiles(values, n=100)[int(p) - 1]


def settle(es_url: str) -> None:
    """Wait (bounded) until Elasticsearch has finished merging the freshly built index.

    Right after a bulk load the node merges segments for a while; timing
    queries then measures the merges, not the search path.
    """
    deadline = time.monotonic() + 120
    with httpx.Client(timeout=30) as client:
        client.post(f"{es_url}/_refresh").raise_for_status()
        while time.monotonic() < deadline:
            stats = client.get(f"{es_url}/_nodes/stats/indices/merge").json()
            if all(n["indices"]["merges"]["current"] == 0 for n in stats["nodes"].values()):
                return
            time.sleep(0.5)


def own_nats(stack: LocalStack, bench: str, **update: Any) -> tuple[Settings, LocalStack, ProcessSpec]:
    """Bench ``bench``'s settings (a fresh home, its ports, ``update``), its launcher, and a NATS
    of its own started (fsync off) beside ``stack``'s servers: the caller stops it."""
    home = stack.home / f"bench-{bench}"
    shutil.rmtree(home, ignore_errors=True)
    settings = bench_settings(stack.settings, bench, home=home, **update)
    local = LocalStack(settings)
    nats = local.nats_spec(name=f"nats-bench-{bench}", sync_always=False)
    start(nats)
    return settings, local, nats
