"""Something done every few seconds beside a longer piece of work: progress written,
in-progress acks sent, a lease renewed — and stopped when the work ends.

Stopped by an event, never by cancelling the loop. On Python 3.11,
``asyncio.wait_for`` (inside nats-py's requests: a KV put, a JetStream publish) can
swallow a cancellation that arrives just as its answer does; a loop cancelled then
carries on beating for ever while its owner waits for it to end. A finished reel
render sat "storing" for minutes that way, its output already stored, until the test
gave up. A loop that checks an event stops after at most one beat, whatever the
client library does with cancellations.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

# A beat answering False ends the loop early (e.g. a lease that could not be renewed).
Beat = Callable[[], Awaitable[bool | None]]


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds``; True as soon as ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return stop.is_set()
    return True


@contextlib.asynccontextmanager
async def beating(beat: Beat, every_s: float, *, at_once: bool = False) -> AsyncIterator[None]:
    """Run ``beat`` every ``every_s`` seconds while the block runs (first after one
    interval, or at once with ``at_once``); after the block, wait for the beat in hand
    to finish and run no more. ``beat`` handles its own errors: one it raises ends the
    beating and is raised here when the block ends."""
    stop = asyncio.Event()

    async def loop() -> None:
        if not at_once and await _stopped_within(stop, every_s):
            return
        while not stop.is_set():
            began = time.monotonic()
            if await beat() is False:
                return
            if await _stopped_within(stop, every_s - (time.monotonic() - began)):
                return

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        await task
