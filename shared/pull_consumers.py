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

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from shared.events.envelope import EventEnvelope
from shared.heartbeat import beating
from shared.outcomes import Outcome, Retry, apply_outcome
from shared.ports import EventLog
from shared.subjects import event_type_filter

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


async def align_ack_wait(js: JetStreamContext, stream: str, durable: str, ack_wait_s: float) -> None:
    """Give an existing durable the configured ack wait before subscribing to it.

    nats-py binds to an existing durable as it is, so a changed ack wait setting
    would never reach it; the server updates this field of a durable in place.
    """
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        return  # the subscriber makes it, with the setting
    if info.config.ack_wait != ack_wait_s:
        log.info("durable %s: ack wait %s s → %s s", durable, info.config.ack_wait, ack_wait_s)
        info.config.ack_wait = ack_wait_s
        await js.add_consumer(stream, info.config)


@asynccontextmanager
async def in_progress_acks(msg: NatsMessage, every_s: float) -> AsyncIterator[None]:
    """Tell the server the job is alive, so a long encode is not redelivered
    to another replica; after a crash the acks stop and redelivery follows."""

    async def beat() -> None:
        try:
            await msg.in_progress()
        except Exception:  # a lost beat only risks a duplicate, which is harmless
            log.warning("in-progress ack failed", exc_info=True)

    async with beating(beat, every_s):
        yield


async def run_long_job(
    msg: NatsMessage,
    handle: Callable[[EventEnvelope, int], Awaitable[Outcome]],
    events: EventLog,
    *,
    beat_s: float,
    retry_delay_s: float,
) -> None:
    """One delivery of a long job (an encode, a render): decode the event, run ``handle(cause,
    attempt)`` with in-progress acks, turn a failure to record its outcome into a retry, settle."""
    try:
        cause = EventEnvelope.from_bytes(msg.raw_message.data)
    except ValueError:
        # Not an event at all: nothing to attach a failure to; keep it out of the loop.
        log.error("undecodable message on %s; terminated", msg.raw_message.subject)
        await msg.reject()
        return
    attempt = int(msg.raw_message.metadata.num_delivered or 1)
    outcome: Outcome
    try:
        async with in_progress_acks(msg, beat_s):
            outcome = await handle(cause, attempt)
    except Exception as exc:
        # The outcome could not be recorded (e.g. NATS unreachable): redeliver later.
        log.exception("%s: job not recorded, will be redelivered", cause.aggregate_id)
        outcome = Retry(retry_delay_s, f"{type(exc).__name__}: {exc}"[:300])
    log.info("%s attempt %d → %s", cause.aggregate_id, attempt, outcome)
    await apply_outcome(outcome, msg.raw_message, events)


def long_job_subscriber(
    broker: NatsBroker,
    *,
    stream: str,
    event_type: str,
    durable: str,
    handle: Callable[[EventEnvelope, int], Awaitable[Outcome]],
    events: EventLog,
    jobs_at_once: int,
    ack_wait_s: float,
    retry_delay_s: float,
) -> None:
    """Subscribe ``broker`` to ``event_type`` with a durable pull consumer shared by every
    replica, running ``handle(cause, attempt)`` for each as a long job (``run_long_job``).

    One fetch is the jobs a replica runs at once (``jobs_at_once``: bounded concurrency).
    Acks are manual, once the outcome is recorded; deliveries are not capped, since the
    handler's own attempts decide when a job fails; in-progress acks every third of
    ``ack_wait_s`` keep a running job from going to another replica.
    """
    beat_s = max(1.0, ack_wait_s / 3)

    @broker.subscriber(
        event_type_filter(event_type),
        stream=JStream(name=stream, declare=False),
        durable=durable,
        pull_sub=PullSub(batch_size=jobs_at_once, timeout=5.0),
        config=ConsumerConfig(
            ack_wait=ack_wait_s,
            max_deliver=-1,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=max(16, 4 * jobs_at_once),
        ),
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_job(msg: NatsMessage) -> None:
        await run_long_job(msg, handle, events, beat_s=beat_s, retry_delay_s=retry_delay_s)
