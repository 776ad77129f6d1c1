"""Read-your-writes: wait until the projector has indexed a given stream sequence.

A client that just appended an event (and got its stream sequence back) passes
``after_seq``; the query waits until every event up to it is in the index — the
projector's durable consumer has acknowledged that far across all replicas —
then refreshes the index. At the deadline it settles for the event's own asset
(its document lists the sequence): the ack floor can lag behind when a delivery
to a replica that stopped waits for its ack timeout before it is redelivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from shared.nats_liveness import liveness
from shared.settings import split_urls
from shared.subjects import SubjectError, parse_subject

# (asset id, stream sequence) -> is that event folded into the asset's document?
IndexedCheck = Callable[[str, int], Awaitable[bool]]


def caught_up(info: ConsumerInfo, sequence: int) -> bool:
    """True once every event up to ``sequence`` that the consumer selects is acknowledged.

    The ack floor only moves on selected (asset) events, so "nothing pending
    and nothing awaiting an ack" also counts as caught up.
    """
    floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
    if floor >= sequence:
        return True
    return not info.num_pending and not info.num_ack_pending


class ProjectionProgress:
    def __init__(self, nc: NatsClient, stream: str, durable: str, is_indexed: IndexedCheck) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.stream = stream
        self.durable = durable
        self.is_indexed = is_indexed

    @classmethod
    async def connect(cls, url: str, stream: str, durable: str, is_indexed: IndexedCheck) -> ProjectionProgress:
        return cls(
            await nats.connect(split_urls(url), name="mam-search-progress", **liveness()), stream, durable, is_indexed
        )

    async def _asset_of(self, sequence: int) -> str | None:
        try:
            msg = await self._js.get_msg(self.stream, seq=sequence)
            aggregate, aggregate_id, _ = parse_subject(str(msg.subject))
        except (NotFoundError, SubjectError):
            return None
        return aggregate_id if aggregate == "asset" else None

    async def close(self) -> None:
        await self._nc.close()

    async def info(self) -> ConsumerInfo | None:
        """The projector's durable consumer; None before any projector has created it."""
        try:
            info: ConsumerInfo = await self._js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            return None
        return info

    async def wait_for(self, sequence: int, timeout_s: float) -> bool:
        """Poll the consumer until it is caught up with ``sequence``; False at the deadline."""
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        asset_id = await self._asset_of(sequence)
        while True:
            info = await self.info()
            if info is not None and caught_up(info, sequence):
                return True
            if time.monotonic() >= deadline:
                # Only the event's own asset is sure then. Not earlier: its document can be
                # written while events before it (other assets, another batch) are not yet —
                # a search after 24 uploads found 12 when this check came first.
                return asset_id is not None and await self.is_indexed(asset_id, sequence)
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.25)
