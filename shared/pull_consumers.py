"""Starting FastStream pull consumers, with one interoperability fix.

nats-py (2.16) ends a pull ``fetch`` whose deadline ran out between its two
server requests with a plain ``asyncio.TimeoutError``; FastStream (0.7.8) only
expects ``nats.errors.TimeoutError`` there. In a batch subscriber the stray
exception aborts the fetch loop *and drops the messages already fetched for the
batch*: they come back only after the consumer's ack wait (30 s for the search
projector), and a read-your-writes query times out meanwhile. FastStream's
supervisor restarts the loop, logging a traceback. Translating the exception
at the subscription keeps the loop, and the batch, intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from faststream.nats import NatsBroker, NatsMessage
from nats.errors import TimeoutError as NatsTimeoutError

log = logging.getLogger("mam.pull_consumers")


def tolerate_plain_timeouts(fetch: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``fetch`` raising ``nats.errors.TimeoutError`` for every timeout, as FastStream expects."""

    @functools.wraps(fetch)
    async def fetch_with_nats_timeout(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(*args, **kwargs)
        except NatsTimeoutError:
            raise
        except TimeoutError as exc:
            raise NatsTimeoutError() from exc

    return fetch_with_nats_timeout


async def start_broker(broker: NatsBroker) -> None:
    """Start the broker, then fit every pull subscription's ``fetch`` with the fix above.

    (A fetch already in flight at that moment ran with an empty batch: nothing to lose.)
    """
    await broker.start()
    for subscriber in broker.subscribers:
        subscription = getattr(subscriber, "subscription", None)
        if subscription is not None and hasattr(subscription, "fetch"):
            subscription.fetch = tolerate_plain_timeouts(subscription.fetch)


@asynccontextmanager
async def in_progress_acks(msg: NatsMessage, every_s: float) -> AsyncIterator[None]:
    """Tell the server the job is alive, so a long encode is not redelivered
    to another replica; after a crash the acks stop and redelivery follows."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await msg.in_progress()
            except Exception:  # a lost beat only risks a duplicate, which is harmless
                log.warning("in-progress ack failed", exc_info=True)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
