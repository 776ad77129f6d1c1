"""Where the benches' own servers listen: shifts from the test stack's ports, in one table.

A bench that starts servers of its own beside the test stack (a NATS with other
settings, a search API over its own index, …) takes the stack's ports plus a shift
from ``BENCH_PORT_SHIFTS``. tests/unit/test_test_ports.py checks, for every stack at
every safe offset, that no bench port is a port of any stack or of another bench
(bench_web's NATS monitor at +80 was once the search port of the stack 100 below).
"""

from __future__ import annotations

from typing import Any

from shared.settings import Settings

# bench name -> {port setting: shift}
BENCH_PORT_SHIFTS: dict[str, dict[str, int]] = {
    "eventstore-fsync": {"nats_port": 6, "nats_monitor_port": 6},
    "eventstore-nosync": {"nats_port": 7, "nats_monitor_port": 7},
    "delegates": {"nats_port": 96, "nats_monitor_port": 96, "search_port": 96},
    "search": {"nats_port": 97, "nats_monitor_port": 97, "search_port": 97},
    # Services at +80 collided: the web at offset 400 took the seaweed filer port of offset 0 (28888).
    "web": {"nats_port": 98, "nats_monitor_port": 98, "accounts_port": 50, "search_port": 50, "web_port": 50},
}


def bench_settings(settings: Settings, bench: str, **update: Any) -> Settings:
    """``settings`` (the test stack's) with bench ``bench``'s ports, and ``update``."""
    ports = {name: getattr(settings, name) + shift for name, shift in BENCH_PORT_SHIFTS[bench].items()}
    return settings.model_copy(update={**ports, **update})


def projector_beside(bench: Settings) -> Settings:
    """A search service in a process of its own (the projector alone) beside ``bench``'s API."""
    # +1 took, at offset 500, the MinIO port of the stack at offset 0 (29000).
    return bench.model_copy(update={"search_port": bench.search_port + 10})


def bench_stacks(settings: Settings) -> dict[str, Settings]:
    """The settings of every server set a bench starts beside the test stack of ``settings``."""
    stacks = {name: bench_settings(settings, name) for name in BENCH_PORT_SHIFTS}
    stacks["search-projector"] = projector_beside(stacks["search"])
    return stacks
