"""How a long-lived NATS connection notices a server that stopped answering.

nats-py pings every 120 s and gives up after 2 unanswered pings: a server that is
frozen (SIGSTOP, a hung VM) or behind a half-open TCP connection keeps its clients
for about 4 minutes, and in a cluster they could have moved to a live node within
seconds (fault 7 of the cluster suite). Every service's connection, the event
store's and FastStream's brokers alike, takes these options.
"""

from __future__ import annotations

from typing import TypedDict

PING_INTERVAL_S = 10
MAX_OUTSTANDING_PINGS = 3


class Liveness(TypedDict):
    ping_interval: int
    max_outstanding_pings: int


def liveness() -> Liveness:
    """Keyword arguments for ``nats.connect`` and FastStream's ``NatsBroker`` (read at call time)."""
    return {"ping_interval": PING_INTERVAL_S, "max_outstanding_pings": MAX_OUTSTANDING_PINGS}
