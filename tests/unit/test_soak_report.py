"""The soak report's latency windows (tests/faults/soak.py): percentiles per window, failures left out."""

from __future__ import annotations

from tests.faults.load import Sample
from tests.faults.soak import percentile, windows


def test_the_95th_percentile_of_a_hundred_latencies_is_the_96th_smallest() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 96.0
    assert percentile(values, 0.5) == 51.0
    assert percentile([], 0.95) != percentile([], 0.95)  # nan: nothing measured


def test_each_window_counts_only_its_own_successful_requests_of_that_kind() -> None:
    samples = [Sample(at=float(i), kind="upload", seconds=float(i % 10) / 10, ok=True) for i in range(600)]
    samples += [Sample(at=10.0, kind="upload", seconds=99.0, ok=False)]  # a failed try is no latency
    samples += [Sample(at=20.0, kind="search", seconds=50.0, ok=True)]  # another kind
    rows = windows(samples, "upload", 300.0)
    assert [(start, count) for start, count, *_ in rows] == [(0.0, 300), (300.0, 300)]
    assert all(p95 == 0.9 and p50 == 0.5 for _, _, p50, p95, _ in rows)


def test_a_window_without_requests_of_that_kind_is_left_out_not_shown_as_zero() -> None:
    samples = [
        Sample(at=5.0, kind="render", seconds=8.0, ok=True),
        Sample(at=700.0, kind="render", seconds=12.0, ok=True),
    ]
    assert [(start, count, p95) for start, count, _, p95, _ in windows(samples, "render", 300.0)] == [
        (0.0, 1, 8.0),
        (600.0, 1, 12.0),
    ]
