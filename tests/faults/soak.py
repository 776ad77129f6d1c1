"""``make soak MINUTES=30``: the cluster under continuous load and random kills, then reconciled.

Uploads, edits, searches and reel renders (tests/faults/reel_load.py: a clip
uploaded, found in the index, cut into a reel with the previous one, rendered) run
the whole time; every 20–60 s one process of the cluster, chosen at random among
all of them (any NATS, MinIO or Elasticsearch node, the S3 balancer, any service
replica), is killed with SIGKILL and started again a few seconds later. At the end:
the exact reconciliation of uploads and of renders, and a report (Markdown + PNG of
latency percentiles over time) in ``<test home>-cluster/soak/``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from deploy.local.cluster import ClusterStack
from tests.faults.chaos import cluster_under_test, kill9, restart, settle_and_reconcile
from tests.faults.load import Load, Sample
from tests.faults.reconcile import reconcile
from tests.faults.reel_load import ReelLoad, reconcile_reels

# What the report and the plot show, each a latency of its own (a render: accepted → rendered).
KINDS = ("upload", "edit", "search", "clip", "reel", "render")


@dataclass(frozen=True)
class Kill:
    at: float
    name: str
    back_after_s: float


class Killer(threading.Thread):
    """Kills one random process every ``low``–``high`` seconds, restarts it after 3–10 s."""

    def __init__(self, cluster: ClusterStack, began: float, low: float, high: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.cluster, self.began, self.low, self.high = cluster, began, low, high
        self.random = random.Random(seed)
        self.kills: list[Kill] = []
        self.failures: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        names = self.cluster.stop_order()
        while not self.done.wait(self.random.uniform(self.low, self.high)):
            name = self.random.choice(names)
            at = time.monotonic()
            try:
                kill9(self.cluster, name)
                time.sleep(self.random.uniform(3, 10))
                restart(self.cluster, name)
            except Exception as exc:  # reported, and fails the soak
                self.failures.append(f"{name}: {exc}")
                return
            self.kills.append(Kill(at - self.began, name, time.monotonic() - at))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def windows(samples: list[Sample], kind: str, width_s: float) -> list[tuple[float, int, float, float, float]]:
    """(window start, count, p50, p95, p99) of ``kind``'s successful requests per window."""
    out: list[tuple[float, int, float, float, float]] = []
    last = max((s.at for s in samples), default=0.0)
    start = 0.0
    while start <= last:
        values = [s.seconds for s in samples if s.kind == kind and s.ok and start <= s.at < start + width_s]
        if values:
            out.append(
                (start, len(values), percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99))
            )
        start += width_s
    return out


def plot(samples: list[Sample], kills: list[Kill], width_s: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(KINDS), 1, figsize=(11, 2.6 * len(KINDS)), sharex=True)
    for ax, kind in zip(axes, KINDS, strict=True):
        rows = windows(samples, kind, width_s)
        xs = [(r[0] + width_s / 2) / 60 for r in rows]
        for column, label in ((2, "p50"), (3, "p95"), (4, "p99")):
            ax.plot(xs, [r[column] for r in rows], marker="o", label=label)
        for kill in kills:
            ax.axvline(kill.at / 60, color="red", alpha=0.25)
        ax.set_ylabel(f"{kind} (s)")
        if rows:
            ax.legend(loc="upper right")
    axes[-1].set_xlabel("phút / minutes (red: a process killed)")
    fig.suptitle("Soak: độ trễ theo thời gian / latency percentiles over time")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--kill-every", default="20,60", help="seconds between kills: low,high")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    parser.add_argument("--keep", action="store_true", help="reuse a running cluster and leave it running")
    args = parser.parse_args(argv)
    low, high = (float(v) for v in args.kill_every.split(","))
    cluster = cluster_under_test()
    if not args.keep:
        cluster.down()
        shutil.rmtree(cluster.local.home, ignore_errors=True)
    began = time.monotonic()
    cluster.up()
    print(f"cluster up in {time.monotonic() - began:.0f}s; soaking {args.minutes} min (seed {args.seed})", flush=True)
    # Paced so the tagger (OCR, the slowest worker) keeps up on two cores: the soak measures
    # faults, not a backlog.
    load = Load(cluster.settings, uploads=sys.maxsize, workers=2, pace_s=2.0, retry_deadline_s=300).start()
    reels = ReelLoad(load).start()
    killer = Killer(cluster, time.monotonic(), low, high, args.seed)
    killer.start()
    time.sleep(args.minutes * 60)
    killer.done.set()
    killer.join(timeout=400)
    load.stop.set()
    # A load that failed or a cluster that did not settle fails the soak, yet the report is
    # still written with what was counted.
    shortfalls: list[str] = []
    for finish, timeout_s in ((reels.join, 900.0), (load.join, 600.0)):
        try:
            finish(timeout_s)  # the reels' render under way finishes: its outcome is reconciled too
        except AssertionError as exc:
            shortfalls.append(str(exc))
    try:
        result = settle_and_reconcile(cluster.settings, load.acknowledged, within_s=600)
    except AssertionError as exc:
        shortfalls.append(str(exc))
        result = asyncio.run(reconcile(cluster.settings, load.acknowledged))
    renders = asyncio.run(reconcile_reels(cluster.settings, reels.accepted))
    report_dir = cluster.local.home / "soak"
    report_dir.mkdir(parents=True, exist_ok=True)
    width = 300.0 if args.minutes >= 15 else 30.0
    plot(load.samples, killer.kills, width, report_dir / "latency.png")
    lines = [
        f"# Soak {args.minutes:g} min (seed {args.seed})",
        "",
        f"Kills ({len(killer.kills)}): "
        + ", ".join(f"{k.name}@{k.at:.0f}s (back {k.back_after_s:.0f}s)" for k in killer.kills),
        "",
        f"Requests: {dict(sorted(Counter(load.statuses).items()))}",
        "",
        f"Reconciliation: {result.line()}",
        "",
        f"Reels: {renders.line()}; as the API showed them: {dict(reels.outcomes)}",
        "",
        f"| kind | window start (s) | requests | p50 s | p95 s | p99 s |  (windows of {width:.0f}s)",
        "|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        lines += [
            f"| {kind} | {w:.0f} | {n} | {p50:.2f} | {p95:.2f} | {p99:.2f} |"
            for w, n, p50, p95, p99 in windows(load.samples, kind, width)
        ]
    lines += ["", "![latency](latency.png)"]
    if killer.failures:
        lines += ["", f"Restarts that failed: {killer.failures}"]
    if shortfalls:
        lines += ["", "Shortfalls:", *(f"- {s[:1000]}" for s in shortfalls)]
    problems = result.problems[:20] + renders.problems[:20]
    if problems:
        lines += ["", "Problems (first 20 of each):", *(f"- {p}" for p in problems)]
    (report_dir / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    print(f"report: {report_dir / 'report.md'}", flush=True)
    if not args.keep:
        cluster.down()
    return 0 if result.exact and renders.exact and not killer.failures and not shortfalls else 1


if __name__ == "__main__":
    sys.exit(main())
