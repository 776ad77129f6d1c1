"""A rebuild's fold: the whole replay folded in memory, one final document per asset.

Before its alias swap a rebuild is the only writer of a fresh index and reads every
asset event in stream order, so it needs none of the live projector's care (no
``mget`` of a base it wrote itself, no check against the log, no intermediate
versions): each asset's events are folded onto its document in memory, exactly as
:func:`services.search.projector.fold_history` folds a history, and the document is
written once, when the asset has gone quiet (no event of it among the last
``idle_events``), when memory holds ``max_docs`` documents, or at the end of a phase.
An asset that speaks again after its document was written (an edit years later) is
read back from the index, once, and folded on.

Writes go in ``_bulk`` requests of ``write_batch`` documents, ``writes_in_flight`` of
them at once while the fold goes on. A write refused for a passing reason is sent again
a few rounds; anything else stops the rebuild (:class:`FoldError`): a rebuild never
skips an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.search.documents import fold_event_into, indexable
from services.search.projector import bounded_reason, classify_write
from shared.ports import SearchIndex, StoredEvent

# An asset with no event among the last this many is written out and leaves memory.
IDLE_EVENTS = 20_000
# At most this many documents in memory (the least recently touched go first).
MAX_DOCS = 50_000
WRITE_BATCH = 1000
WRITES_IN_FLIGHT = 2


class FoldError(RuntimeError):
    """An event that cannot be folded or a document that cannot be written."""


@dataclass
class _Doc:
    doc: dict[str, Any]
    version: int
    touched: int  # the fold's event count when it last changed
    dirty: bool = True
    # The fold may change ``doc`` itself: nobody else holds it (one read back from the index
    # or handed to a write is copied first, once).
    owned: bool = True
    # ``event_sequences`` is this fold's own: ascending, so the next event's sequence goes at its end.
    ascending: bool = True


@dataclass
class ReplayFold:
    """Folds stream-ordered chunks into ``index`` (a fresh index nobody else writes); see the module doc."""

    index: SearchIndex
    rounds: int = 5
    retry_pause_s: float = 1.0
    idle_events: int = IDLE_EVENTS
    max_docs: int = MAX_DOCS
    write_batch: int = WRITE_BATCH
    writes_in_flight: int = WRITES_IN_FLIGHT
    written: set[str] = field(default_factory=set)  # assets with a document in the index (or on its way)
    documents_written: int = 0
    _docs: dict[str, _Doc] = field(default_factory=dict)  # in order of last touch
    _events: int = 0
    _writing: set[asyncio.Task[None]] = field(default_factory=set)

    async def fold(self, chunk: Iterable[StoredEvent]) -> None:
        """Fold one chunk of the replay (stream order, no gaps for any asset)."""
        chunk = list(chunk)
        returning = {
            s.envelope.aggregate_id
            for s in chunk
            if s.envelope.aggregate_id not in self._docs and s.envelope.aggregate_id in self.written
        }
        if returning:  # written out earlier: its document, once every write in flight has landed
            await self._drain()
            for aggregate_id, (doc, version) in (await self.index.mget(returning)).items():
                self._docs[aggregate_id] = _Doc(doc, version, self._events, dirty=False, owned=False, ascending=False)
        docs = self._docs
        for stored in chunk:
            event = stored.envelope
            aggregate_id = event.aggregate_id
            held = docs.pop(aggregate_id, None)
            self._events += 1
            if held is None:
                held = _Doc({}, 0, self._events)
            elif stored.sequence in held.doc.get("event_sequences", ()):
                docs[aggregate_id] = held  # already folded into the document read back
                continue
            elif not held.owned:
                held.doc, held.owned = dict(held.doc), True
            try:
                # with_sequence(apply_event(doc, event), sequence), without two copies of the document
                doc = held.doc
                fold_event_into(doc, event)
                seen = doc.get("event_sequences")
                if held.ascending and seen and stored.sequence > seen[-1]:
                    doc["event_sequences"] = [*seen, stored.sequence]
                else:
                    doc["event_sequences"] = sorted({*(seen or ()), stored.sequence})
                    held.ascending = True
            except Exception as exc:  # a bug or a poison event: the rebuild stops, the live index stays
                raise FoldError(
                    f"event {stored.sequence} cannot be indexed: cannot fold events: {type(exc).__name__}: {exc}"
                ) from exc
            held.version, held.touched, held.dirty = stored.sequence, self._events, True
            docs[aggregate_id] = held  # to the end: the dict stays in order of last touch
        await self._write_out([(a, held) for a, held in self._quiet() if held.dirty])

    def _quiet(self) -> list[tuple[str, _Doc]]:
        """Documents to write and forget now: gone quiet, or the oldest beyond ``max_docs``."""
        out: list[tuple[str, _Doc]] = []
        over = len(self._docs) - self.max_docs
        for aggregate_id, held in self._docs.items():
            if len(out) >= over and held.touched > self._events - self.idle_events:
                break
            out.append((aggregate_id, held))
        for aggregate_id, _ in out:
            del self._docs[aggregate_id]
        return out

    async def flush(self) -> None:
        """Write every changed document (they stay in memory) and wait for all writes."""
        changed = [(a, held) for a, held in self._docs.items() if held.dirty]
        for _, held in changed:
            held.dirty = held.owned = False  # written as it is now: a later event folds onto a copy
        await self._write_out(changed)
        await self._drain()

    async def close(self) -> None:
        """Stop writes in flight (the rebuild failed or was stopped)."""
        for task in self._writing:
            task.cancel()
        for task in list(self._writing):
            with contextlib.suppress(BaseException):
                await task
        self._writing.clear()

    async def _write_out(self, docs: list[tuple[str, _Doc]]) -> None:
        triples = [(a, indexable(held.doc), held.version) for a, held in docs]
        self.written.update(a for a, _ in docs)  # from now on its document is read back, once written
        for start in range(0, len(triples), self.write_batch):
            while len(self._writing) >= self.writes_in_flight:
                finished, _ = await asyncio.wait(self._writing, return_when=asyncio.FIRST_COMPLETED)
                self._settle(finished)
            task = asyncio.ensure_future(self._write(triples[start : start + self.write_batch]))
            self._writing.add(task)

    def _settle(self, finished: set[asyncio.Task[None]]) -> None:
        for task in finished:
            self._writing.discard(task)
            task.result()  # a write's failure stops the fold here

    async def _drain(self) -> None:
        while self._writing:
            finished, _ = await asyncio.wait(self._writing, return_when=asyncio.FIRST_COMPLETED)
            self._settle(finished)

    async def _write(self, triples: list[tuple[str, dict[str, Any], int]]) -> None:
        pending = triples
        why = ""
        for attempt in range(self.rounds + 1):
            if attempt:
                await asyncio.sleep(self.retry_pause_s)
            results = await self.index.bulk_put(pending)
            again = []
            for triple, result in zip(pending, results, strict=True):
                verdict = classify_write(result)
                if verdict == "ok":
                    self.documents_written += 1
                elif verdict == "retry":
                    again.append(triple)
                    why = f"{result.status} {result.error_type}: {result.reason}"
                else:
                    raise FoldError(
                        f"event {triple[2]} cannot be indexed: "
                        + bounded_reason(f"{result.status} {result.error_type}: {result.reason}")
                    )
            if not again:
                return
            pending = again
        raise FoldError(f"event {pending[0][2]} could not be indexed: {bounded_reason(why)}")
