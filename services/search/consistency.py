"""Read-your-writes: wait until the projector has indexed a given stream sequence.

A client that just appended an event (and got its stream sequence back) passes
``after_seq``; the query waits until every event up to it is in the index — the
projector's durable consumer has acknowledged that far across all replicas —
then refreshes the index. At the deadline it settles for the event's own asset
(its document lists the sequence): the ack floor can lag behind when a delivery
to a replica that stopped waits for its ack timeout before it is redelivered.

An event the projector parked (a write that cannot succeed as things are, recorded
with its reason: GET /v1/projection) is never acknowledged and holds the ack floor
back for good; it counts as settled here, or one poison event would make every
later read-your-writes query wait its whole timeout and fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol

import nats
from fastapi import Query
from nats.aio.client import Client as NatsClient
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from shared.http import UserError
from shared.nats_liveness import liveness
from shared.settings import split_urls
from shared.subjects import SubjectError, parse_subject

# Stream sequences are unsigned 64-bit numbers in NATS but JSON-decoded as int64 on its
# API: a larger after_seq made the server answer 400 and this API 500.
MAX_SEQUENCE = 2**63 - 1
# The ``after_seq`` query parameter of the reads that offer read-your-writes.
Consistency = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_SEQUENCE,
        description="đợi chỉ mục cập nhật tới sự kiện này / wait until this stream sequence is indexed",
    ),
]

# (asset id, stream sequence) -> is that event folded into the asset's document?
IndexedCheck = Callable[[str, int], Awaitable[bool]]
# How many events the projector holds parked now (its failure records).
ParkedCount = Callable[[], Awaitable[int]]


def caught_up(info: ConsumerInfo, sequence: int, parked: int = 0) -> bool:
    """True once every event up to ``sequence`` that the consumer selects is acknowledged,
    or is one of the ``parked`` the projector holds unacknowledged by design.

    The ack floor only moves on selected (asset) events, and stops below a parked one,
    so "everything up to ``sequence`` delivered, and nothing awaiting an ack but the
    parked" also counts as caught up.
    """
    floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
    if floor >= sequence:
        return True
    delivered = info.delivered.stream_seq if info.delivered and info.delivered.stream_seq else 0
    all_delivered = not info.num_pending or delivered >= sequence  # delivery is in stream order
    return all_delivered and (info.num_ack_pending or 0) <= parked


class ProjectionProgress:
    def __init__(
        self, nc: NatsClient, stream: str, durable: str, is_indexed: IndexedCheck, parked: ParkedCount
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.stream = stream
        self.durable = durable
        self.is_indexed = is_indexed
        self.parked = parked

    @classmethod
    async def connect(
        cls, url: str, stream: str, durable: str, is_indexed: IndexedCheck, parked: ParkedCount
    ) -> ProjectionProgress:
        connection = await nats.connect(split_urls(url), name="mam-search-progress", **liveness())
        return cls(connection, stream, durable, is_indexed, parked)

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

    async def appended(self, sequence: int) -> bool:
        """Has the stream got that far? Asked of the stream's leader, which has every event an
        append was acknowledged for: a sequence a client was given is never beyond it."""
        info = await self._js.stream_info(self.stream)
        return sequence <= (info.state.last_seq or 0)

    async def wait_for(self, sequence: int, timeout_s: float) -> bool:
        """Poll the consumer until it is caught up with ``sequence``; False at the deadline."""
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        asset_id = await self._asset_of(sequence)
        while True:
            info = await self.info()
            if info is not None and caught_up(info, sequence):
                return True
            # Held back only by unacknowledged events? Then ask whether they are the parked ones.
            if info is not None and info.num_ack_pending and caught_up(info, sequence, await self.parked()):
                return True
            if time.monotonic() >= deadline:
                # Only the event's own asset is sure then. Not earlier: its document can be
                # written while events before it (other assets, another batch) are not yet —
                # a search after 24 uploads found 12 when this check came first.
                return asset_id is not None and await self.is_indexed(asset_id, sequence)
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.25)


class _Progress(Protocol):
    async def appended(self, sequence: int) -> bool: ...

    async def wait_for(self, sequence: int, timeout_s: float) -> bool: ...


class _Refreshable(Protocol):
    async def refresh(self) -> None: ...


async def read_your_writes(
    progress: _Progress, index: _Refreshable, after_seq: int | None, timeout_s: float, *, refresh: bool = False
) -> None:
    """Wait until the projector has indexed ``after_seq`` (then make it searchable); a 503
    (bilingual, retry shortly) when it has not within ``timeout_s``; a 400 at once for a
    sequence the stream has not reached (no append gave it out: waiting cannot help)."""
    if after_seq is not None:
        if not await progress.appended(after_seq):
            raise UserError(
                400,
                "after_seq_not_appended",
                f"Chưa có sự kiện số {after_seq} trong nhật ký; after_seq phải là số thứ tự một lần ghi đã trả về.",
                f"No event {after_seq} has been appended yet; after_seq must be a sequence an append returned.",
                field="after_seq",
                after_seq=after_seq,
            )
        if not await progress.wait_for(after_seq, timeout_s):
            raise UserError(
                503,
                "index_not_caught_up",
                f"Chỉ mục tìm kiếm chưa cập nhật tới sự kiện {after_seq}; vui lòng thử lại sau giây lát.",
                f"The search index has not caught up with event {after_seq} yet; retry shortly.",
                after_seq=after_seq,
            )
        refresh = True
    if refresh:
        await index.refresh()
