"""Faults injected into the cluster under test, and the wait for it to settle."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from deploy.local.cluster import ClusterStack
from deploy.local.processes import running_pid, start
from shared.settings import Settings
from tests.conftest import test_settings
from tests.faults.reconcile import Reconciliation, all_consumers_settled, reconcile


def cluster_under_test() -> ClusterStack:
    """The cluster on the test ports (``MAM_TEST_PORT_OFFSET``), data apart from the single-node stack's."""
    base = test_settings()
    return ClusterStack(test_settings(home=base.home.with_name(base.home.name + "-cluster")))


def kill9(stack: ClusterStack, name: str) -> int:
    """SIGKILL the whole process group of ``name`` (a server and its children); its pid."""
    spec = stack.known(name)
    pid = running_pid(spec) if spec else None
    assert pid is not None, f"{name} is not running"
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and running_pid(spec) is not None:  # type: ignore[arg-type]
        time.sleep(0.05)
    return pid


def restart(stack: ClusterStack, name: str) -> float:
    """Start ``name`` again; seconds until it is healthy."""
    return start(stack.spec(name)).seconds_to_healthy


def settle_and_reconcile(settings: Settings, acknowledged: dict[str, str], within_s: float = 300) -> Reconciliation:
    """Wait until every durable consumer has nothing left to do, then reconcile exactly."""

    async def settled() -> list[str]:
        deadline = time.monotonic() + within_s
        busy: list[str] = ["(not asked yet)"]
        while time.monotonic() < deadline:
            try:
                busy = await all_consumers_settled(settings)
            except Exception as exc:  # a node still electing: ask again
                busy = [repr(exc)]
            if not busy:
                # Twice, a few seconds apart: a redelivery after an ack wait would show here.
                await asyncio.sleep(3)
                busy = await all_consumers_settled(settings)
                if not busy:
                    return []
            await asyncio.sleep(1)
        return busy

    busy = asyncio.run(settled())
    assert not busy, f"consumers not settled within {within_s:.0f}s: {busy}"
    return asyncio.run(reconcile(settings, acknowledged))
