"""How a long-lived NATS connection notices a server that stopped answering.

nats-py pings every 120 s and gives up after 2 unanswered pings: a server that is
frozen (SIGSTOP, a hung VM) or behind a half-open TCP connection keeps its clients
for about 4 minutes, and in a cluster they could have moved to a live node within
seconds (fault 7 of the cluster suite). Every service's connection, the event
store's and FastStream's brokers alike, takes these options: a frozen server is left
after 10–15 s (10 s × 3 pings took up to 40 s, with uploads answered 503 meanwhile).
A loaded server answers a ping within milliseconds; a pong is read as soon as the
client's event loop runs, so only a loop blocked for 10 s would be taken for a dead
server, and then it reconnects.
"""

from __future__ import annotations

from typing import TypedDict

PING_INTERVAL_S = 5
MAX_OUTSTANDING_PINGS = 2


class Liveness(TypedDict):
    ping_interval: int
    max_outstanding_pings: int


def liveness() -> Liveness:
    """Keyword arguments for ``nats.connect`` and FastStream's ``NatsBroker`` (read at call time)."""
    return {"ping_interval": PING_INTERVAL_S, "max_outstanding_pings": MAX_OUTSTANDING_PINGS}
