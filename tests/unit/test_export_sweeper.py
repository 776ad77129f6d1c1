"""What the exports' sweep does to one status: fail the interrupted, expire the old, leave the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.search.export_sweeper import decide

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
ME = "host:18402"


def status(state: str, age_s: float, runner: str = ME) -> dict[str, Any]:
    return {"state": state, "runner": runner, "updated_at": (NOW - timedelta(seconds=age_s)).isoformat()}


def sweep(s: dict[str, Any], at_start: bool = False) -> str | None:
    return decide(s, NOW, ME, stale_after_s=120, expiry_s=3600, at_start=at_start)


def test_an_export_of_this_replica_still_running_at_its_start_was_cut_by_a_restart() -> None:
    assert sweep(status("running", 1), at_start=True) == "interrupted"
    assert sweep(status("queued", 1), at_start=True) == "interrupted"
    assert sweep(status("running", 1)) is None  # later passes: it is one this life is running


def test_another_replicas_export_is_interrupted_only_once_it_has_been_silent_past_the_stale_limit() -> None:
    assert sweep(status("running", 119, "other:1"), at_start=True) is None
    assert sweep(status("running", 120, "other:1")) == "interrupted"


def test_finished_exports_expire_and_expired_ones_are_forgotten_as_long_after() -> None:
    assert sweep(status("ready", 3599)) is None
    assert sweep(status("ready", 3600)) == "expire"
    assert sweep(status("failed", 3600)) == "expire"
    assert sweep(status("expired", 10)) is None
    assert sweep(status("expired", 3600)) == "forget"
