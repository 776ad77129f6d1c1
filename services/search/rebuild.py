"""Rebuild the asset index from the event stream, with no downtime.

The stream is the source of truth and the index a view of it, so a rebuild
replays every asset event, in stream order, into a fresh index through the
same batch projector the live service uses; then it catches up with events
appended meanwhile, swaps the alias in one atomic call, and replays once more
whatever arrived around the swap. Queries read the alias, so they are served
by the old index until the swap and by the complete new one after it. The
previous index is kept (for rollback); older ones are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar, cast

from nats.aio.client import Client as NatsClient

from services.search.fold_gc import rare_collections
from services.search.fold_replay import FoldError, ReplayFold
from services.search.index import AssetIndex
from services.search.projector import AssetProjector, Delivered
from services.search.stream_reader import ChildStreamReader
from shared.eventstore import EventStore, StoredEvent
from shared.subjects import aggregate_type_filter

Progress = Callable[[str, int, int, float], None]  # phase, events done, events known, events/s


class RebuildError(RuntimeError):
    """The rebuild could not write every event.

    Before the swap (``swapped`` false) the live index is untouched and the
    new one deleted; after it, the live projector still holds the event.
    """

    swapped = False


@dataclass
class RebuildResult:
    new_index: str
    previous: list[str]
    deleted: list[str]
    events: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def read_stream(
    nc: NatsClient, stream: str, subject_filter: str, start_sequence: int, batch: int = 1000
) -> AsyncGenerator[list[StoredEvent], None]:
    """The rebuild's read on its own connection (``tests/bench`` times it bare): :meth:`EventStore.read_batches`."""
    async with aclosing(EventStore(nc, stream, 0.0).read_batches(subject_filter, start_sequence, batch)) as batches:
        async for chunk in batches:
            yield chunk


# From this many events in the stream on, a rebuild's replay reads in a child process
# (stream_reader): below it, starting the child costs more than it saves.
CHILD_READER_MIN_EVENTS = 20_000
# The child takes about half a second to start (imports): the stream's first events, up to
# this sequence, are read here meanwhile, and the child starts after them.
CHILD_READER_HEAD = 10_000
# Batches read from the stream while the projector writes the ones before them (the reader
# and Elasticsearch then work at the same time); bounded, so memory stays a few batches.
READ_AHEAD_BATCHES = 2
_T = TypeVar("_T")


async def read_ahead(source: AsyncGenerator[_T, None], depth: int) -> AsyncGenerator[_T, None]:
    """``source``'s items in order, with up to ``depth`` of them fetched ahead by a task of
    its own; an error of ``source`` is raised where its item would have come, and closing
    this generator stops the task and closes ``source``."""
    queue: asyncio.Queue[tuple[_T | None, BaseException | None, bool]] = asyncio.Queue(depth)

    async def fill() -> None:
        try:
            async for item in source:
                await queue.put((item, None, False))
        except Exception as exc:
            await queue.put((None, exc, True))
        else:
            await queue.put((None, None, True))
        finally:
            await source.aclose()

    task = asyncio.create_task(fill())
    try:
        while True:
            item, error, finished = await queue.get()
            if error is not None:
                raise error
            if finished:
                return
            yield cast(_T, item)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _head_then(
    head: AsyncGenerator[list[StoredEvent], None], last: int, rest: AsyncGenerator[list[StoredEvent], None]
) -> AsyncGenerator[list[StoredEvent], None]:
    """``head``'s events up to sequence ``last``, then ``rest``'s (which starts after it)."""
    async with aclosing(head) as batches:
        async for chunk in batches:
            kept = [stored for stored in chunk if stored.sequence <= last]
            if kept:
                yield kept
            if len(kept) < len(chunk) or chunk[-1].sequence >= last:
                break
    async with aclosing(rest) as batches:
        async for chunk in batches:
            yield chunk


async def replay(
    events: EventStore,
    projector: AssetProjector,
    start_sequence: int,
    on_batch: Callable[[int, int], None] | None = None,
    batch: int = 1000,
    rounds: int = 5,
) -> tuple[int, int]:
    """Fold every asset event from ``start_sequence`` on; returns (events, last sequence).

    A batch whose writes keep failing for a passing reason is retried a few
    rounds before the replay gives up, and a write that cannot succeed stops
    it at once: a rebuild never skips an event.
    """
    count, last = 0, start_sequence - 1
    reading = events.read_batches(aggregate_type_filter("asset"), start_sequence, batch)
    async with aclosing(read_ahead(reading, READ_AHEAD_BATCHES)) as batches:
        async for chunk in batches:
            items = [Delivered(stored.envelope, stored.sequence) for stored in chunk]
            outcome = await projector.apply_batch(items, record_failures=False)
            for _ in range(rounds):
                if not outcome.retry:
                    break
                await asyncio.sleep(1.0)
                again = [d for d in items if d.sequence in outcome.retry]
                outcome.retry.clear()
                outcome.merge(await projector.apply_batch(again, record_failures=False))
            if outcome.failed:
                first = min(outcome.failed)
                raise RebuildError(f"event {first} cannot be indexed: {outcome.failed[first]}")
            if outcome.retry:
                first = min(outcome.retry)
                raise RebuildError(f"event {first} could not be indexed: {outcome.retry[first]}")
            count += len(chunk)
            last = chunk[-1].sequence
            if on_batch:
                on_batch(count, last)
    return count, last


async def fold_replay(
    events: EventStore,
    fold: ReplayFold,
    start_sequence: int,
    on_batch: Callable[[int, int], None] | None = None,
    batch: int = 1000,
    *,
    reading: AsyncGenerator[list[StoredEvent], None] | None = None,
) -> tuple[int, int]:
    """Fold every asset event from ``start_sequence`` on into a fresh index only this
    rebuild writes (before its swap), every document written when it returns; returns
    (events, last sequence). Same contract as :func:`replay`, a fraction of the work.
    ``reading``: those events as another reader gives them (:mod:`stream_reader`)."""
    count, last = 0, start_sequence - 1
    if reading is None:
        reading = events.read_batches(aggregate_type_filter("asset"), start_sequence, batch)
    try:
        with rare_collections():
            async with aclosing(read_ahead(reading, READ_AHEAD_BATCHES)) as batches:
                async for chunk in batches:
                    await fold.fold(chunk)
                    count += len(chunk)
                    last = chunk[-1].sequence
                    if on_batch:
                        on_batch(count, last)
            await fold.flush()
    except FoldError as exc:
        raise RebuildError(str(exc)) from exc
    return count, last


async def rebuild_index(
    index: AssetIndex,
    nats_url: str,
    stream: str,
    *,
    progress: Progress | None = None,
    keep_previous: int = 1,
    batch: int = 1000,
    catch_up_rounds: int = 3,
    child_reader: bool | None = None,
) -> RebuildResult:
    """Replay the stream into a new index and swap the alias to it; see the module doc.

    ``progress`` hears of every batch (phases ``replay``, ``catch-up``,
    ``after-swap``) and of the swap itself: ``swap`` right before the alias
    moves, ``swapped`` right after. ``child_reader``: whether the replay's read runs in
    a process of its own (:mod:`stream_reader`); by default when the stream holds at
    least ``CHILD_READER_MIN_EVENTS`` (the child takes half a second to start).
    """
    # Reads the stream, and the history the live projector also writes here after the swap.
    # Only reads and appends nothing: the stream's configuration (dedup window) is the services'.
    events = await EventStore.connect(nats_url, stream, configure=False)
    began = time.monotonic()
    new_index: str | None = None
    fold: ReplayFold | None = None
    child: ChildStreamReader | None = None
    swapped = False
    try:
        known = await events.last_sequence()
        in_child = known >= CHILD_READER_MIN_EVENTS if child_reader is None else child_reader
        head = min(CHILD_READER_HEAD, known)
        if in_child:  # started first: it gets going while the new index is made and the head read
            child = await ChildStreamReader.start(nats_url, stream, aggregate_type_filter("asset"), head + 1, batch)
        # What a rebuild killed before its swap left behind (SIGKILL, a lost machine).
        await index.delete_indices(await index.unfinished_indices())
        new_index = await index.create_rebuild_index()
        # Until the swap nothing else writes the new index, and the fold goes in stream order.
        fold = ReplayFold(index.writing_to(new_index))
        done = 0

        def tell(phase: str, count: int = 0) -> None:
            if progress:
                elapsed = time.monotonic() - began
                progress(phase, done + count, known, (done + count) / elapsed if elapsed else 0.0)

        def report(phase: str) -> Callable[[int, int], None]:
            return lambda count, last: tell(phase, count)

        reading = None
        if child is not None:
            asset_events = aggregate_type_filter("asset")
            reading = (
                _head_then(events.read_batches(asset_events, 1, batch), head, child.batches())
                if head
                else child.batches()
            )
        count, last = await fold_replay(events, fold, 1, report("replay"), batch, reading=reading)
        done += count
        for _ in range(catch_up_rounds):  # shrink the gap before swapping
            count, last = await fold_replay(events, fold, last + 1, report("catch-up"), batch)
            done += count
            if count < batch:
                break
        tell("swap")
        previous = await index.swap_alias(new_index)
        swapped = True
        tell("swapped")
        # From the swap on the live projector writes here too: fold as it does.
        projector = AssetProjector(index.writing_to(new_index), events, attempts=4)
        count, last = await replay(events, projector, last + 1, report("after-swap"), batch)
        done += count
    except BaseException as exc:
        if fold is not None:
            await fold.close()
        if isinstance(exc, RebuildError):
            exc.swapped = swapped
        if new_index is not None and not swapped:  # the live index was never touched
            await index.delete_indices([new_index])
        raise
    finally:
        if child is not None:
            await child.close()
        await events.close()
    keep = set(previous[-keep_previous:]) if keep_previous else set()
    stale = [i for i in await index.all_indices() if i != new_index and i not in keep]
    await index.delete_indices(stale)
    return RebuildResult(new_index, previous, stale, done, time.monotonic() - began)
