"""shared.heartbeat: a beat beside a longer piece of work stops when the work ends,
even when the beat is one that swallows cancellations (as nats-py's requests can on
Python 3.11, through asyncio.wait_for)."""

from __future__ import annotations

import asyncio

from shared.heartbeat import beating


async def test_beating_ends_with_its_block_even_if_a_beat_would_swallow_a_cancellation() -> None:
    beats = 0
    cancelled = 0
    in_flight = asyncio.Event()

    async def stubborn_beat() -> None:
        nonlocal beats, cancelled
        beats += 1
        in_flight.set()
        try:
            await asyncio.sleep(0.05)  # a request in flight …
        except asyncio.CancelledError:
            cancelled += 1  # … whose library swallows the cancellation, as wait_for can on 3.11
        finally:
            in_flight.clear()

    at_end = 0

    async def work() -> None:
        nonlocal at_end
        async with beating(stubborn_beat, 0.005, at_once=True):
            await asyncio.sleep(0.1)
            await in_flight.wait()  # the block ends while a beat is in flight
            at_end = beats

    await asyncio.wait_for(work(), timeout=10)
    await asyncio.sleep(0.2)
    # It beat while the work ran; the beat in flight at the end finished and no other began
    # (a loop stopped by cancelling beat on hundreds of times here, or for ever).
    assert at_end >= 2 and beats == at_end
    assert cancelled == 0  # stopped by an event: the beat in flight is never cancelled


async def test_a_beat_answering_false_ends_the_beating_and_the_first_beat_waits_one_interval() -> None:
    calls: list[str] = []

    async def lease() -> bool:
        calls.append("renew")
        return len(calls) < 2  # the second renewal fails: the lease is gone

    async with beating(lease, 0.01):
        assert calls == []  # not at once: the first beat after one interval
        await asyncio.sleep(0.3)
    assert calls == ["renew", "renew"]
