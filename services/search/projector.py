"""The search projector: folds asset events into the index, in batches, idempotently.

At-least-once delivery means an event may arrive twice or, with several
replicas, after a newer one. A document's version is the stream sequence of
the last event folded in, and the document lists every sequence it holds:

- an event the document lists is a duplicate and changes nothing;
- an event newer than the document is folded on top of it;
- an event older than the document that it does not list arrived out of order;
  then the document is rebuilt from the aggregate's full history (and so is
  one whose write lost a version race with another replica).

A batch costs one ``mget`` and one ``_bulk``. ``_bulk`` answers per document:
writes that failed for a passing reason are retried, a few times, then handed
back for redelivery; writes that cannot succeed as things are (a mapping
conflict, a folding bug) are recorded with their reason in the failures index
and *parked*: handed back with a long delay, never acknowledged. No event
counts as done unless its document is written, so the projection never moves
past a lost write; once a fix is deployed the parked event lands and its
failure record is removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.search.documents import fold_events
from shared.events.envelope import EventEnvelope
from shared.outcomes import Ack, Outcome, Park, Retry
from shared.ports import BulkItemResult, EventLog, SearchIndex
from shared.subjects import aggregate_filter

log = logging.getLogger("mam.search.projector")
CREATION_EVENT = "asset.ingested"
# Elasticsearch quotes a refused value back in its reason (a 900 KB keyword: 900 KB of
# reason). Reasons are for people to read in logs and ``GET /v1/projection``: keep the start.
MAX_REASON_CHARS = 500
# Bulk errors that clear by themselves (blocks are lifted, queues drain).
_RETRYABLE_TYPES = frozenset(
    {
        "cluster_block_exception",
        "es_rejected_execution_exception",
        "unavailable_shards_exception",
        "circuit_breaking_exception",
    }
)


def bounded_reason(reason: str) -> str:
    """``reason`` cut to ``MAX_REASON_CHARS``, saying how much was left out."""
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    tail = f"… (+{len(reason) - MAX_REASON_CHARS} chars)"
    return reason[: MAX_REASON_CHARS - len(tail)] + tail


@dataclass(frozen=True)
class Delivered:
    """One event as delivered, with the stream sequence that orders it."""

    event: EventEnvelope
    sequence: int
    # Delivered before: it may be a parked event, with a failure record to clear once written.
    redelivered: bool = False


@dataclass
class BatchOutcome:
    """What to tell the server about each delivered sequence."""

    done: set[int] = field(default_factory=set)  # in the index: acknowledge
    retry: dict[int, str] = field(default_factory=dict)  # passing failure: redeliver later
    failed: dict[int, str] = field(default_factory=dict)  # cannot succeed as is: recorded, parked
    rebuilt: set[str] = field(default_factory=set)  # aggregates rebuilt from history

    def merge(self, other: BatchOutcome) -> None:
        self.done |= other.done
        self.retry.update(other.retry)
        self.failed.update(other.failed)
        self.rebuilt |= other.rebuilt


@dataclass(frozen=True)
class _Plan:
    aggregate_id: str
    doc: dict[str, Any] | None  # None: nothing to write (all duplicates)
    version: int
    from_history: bool


def plan_group(current: tuple[dict[str, Any], int] | None, items: list[Delivered]) -> _Plan | None:
    """Fold one aggregate's delivered events onto its current document.

    Returns None when the group needs a rebuild from history (an event arrived
    after a newer one was folded in).
    """
    aggregate_id = items[0].event.aggregate_id
    doc, version = current if current is not None else ({}, 0)
    seen = set(doc.get("event_sequences", []))
    fresh = [d for d in items if d.sequence not in seen]
    if not fresh:
        return _Plan(aggregate_id, None, version, False)
    if any(d.sequence < version for d in fresh):
        return None
    if current is None and fresh[0].event.type != CREATION_EVENT:
        return None  # a later event came before the asset's first one: start from history
    return _Plan(aggregate_id, fold_events(doc, ((d.event, d.sequence) for d in fresh)), fresh[-1].sequence, False)


def fold_history(aggregate_id: str, history: list[tuple[EventEnvelope, int]]) -> _Plan:
    """The document from an aggregate's whole history; written with ``external_gte``, since
    a complete fold is right even over a document of the same version built from a stale base."""
    if not history:
        return _Plan(aggregate_id, None, 0, True)
    return _Plan(aggregate_id, fold_events({}, history), history[-1][1], True)


def classify_write(result: BulkItemResult) -> str:
    """A ``_bulk`` item's verdict: ``ok``, ``conflict`` (a newer version is there), ``retry``
    (a passing refusal) or ``failed`` (cannot succeed as things are)."""
    if result.ok:
        return "ok"
    if result.version_conflict:
        return "conflict"
    if result.retryable or result.error_type in _RETRYABLE_TYPES:
        return "retry"
    return "failed"


@dataclass(frozen=True)
class Redelivery:
    """How long each kind of unfinished event waits before it comes back."""

    retry_s: float  # a passing failure
    parked_s: float  # a write that cannot succeed as things are
    undecodable_s: float  # not even an event this code can read: waits for a fixed deployment


def settle_batch(
    outcome: BatchOutcome | BaseException, delivered: Iterable[int], undecodable: Iterable[int], delays: Redelivery
) -> dict[int, Outcome]:
    """What to tell the server about each delivered stream sequence (pure).

    ``outcome`` is the batch's result, or the exception that stopped the whole
    batch (Elasticsearch or NATS unreachable), in which case every event is
    redelivered. An event counts as done only once its document is written.
    """
    settled: dict[int, Outcome] = {}
    if isinstance(outcome, BaseException):
        reason = f"{type(outcome).__name__}: {outcome}"[:300]
        settled = {seq: Retry(delays.retry_s, reason) for seq in delivered}
    else:
        settled.update({seq: Ack() for seq in outcome.done})
        settled.update({seq: Retry(delays.retry_s, why) for seq, why in outcome.retry.items()})
        settled.update({seq: Park(delays.parked_s, why) for seq, why in outcome.failed.items()})
    settled.update({seq: Park(delays.undecodable_s, "undecodable event") for seq in undecodable})
    return settled


# Log lookups one batch may have in flight at once (whole-base checks, histories).
LOOKUP_CONCURRENCY = 32
# Aggregates per ``mget`` + ``_bulk`` of a batch: a slice is indexed while the next is folded.
WRITE_SLICE = 125
# Aggregates folded between two turns of the event loop.
FOLDS_BETWEEN_YIELDS = 25


class AssetProjector:
    """Folds delivered events into the index; see the module doc. (A rebuild before its
    alias swap, the only writer of a fresh index, folds with ``fold_replay`` instead.)"""

    def __init__(
        self,
        index: SearchIndex,
        events: EventLog | None,
        *,
        attempts: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.index = index
        self.events = events
        self.attempts = attempts
        self.backoff_s = backoff_s

    async def apply(self, event: EventEnvelope, sequence: int) -> BatchOutcome:
        """Fold one event (a batch of one)."""
        return await self.apply_batch([Delivered(event, sequence)])

    async def apply_batch(self, items: list[Delivered], *, record_failures: bool = True) -> BatchOutcome:
        """Fold a batch: one ``mget``, one ``_bulk``, per-document retries; see the module doc."""
        outcome = BatchOutcome()
        groups: dict[str, list[Delivered]] = defaultdict(list)
        for d in sorted({d.sequence: d for d in items}.values(), key=lambda d: d.sequence):
            groups[d.event.aggregate_id].append(d)
        pending = set(groups)
        from_history: set[str] = set()
        reasons: dict[str, str] = {}
        for attempt in range(self.attempts):
            if not pending:
                break
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                plans, broken, writes, results = await self._plan_and_write(
                    {a: groups[a] for a in pending}, from_history, outcome
                )
                for aggregate_id, reason in broken.items():
                    pending.discard(aggregate_id)
                    self._fail(outcome, groups[aggregate_id], reason)
            except Exception as exc:  # ES or NATS unreachable: the whole batch waits
                why = bounded_reason(f"{type(exc).__name__}: {exc}")
                log.warning("projection attempt %d failed: %s", attempt + 1, why)
                reasons = {a: why for a in pending}
                continue
            for plan in plans:
                if plan.doc is None:
                    outcome.done.update(d.sequence for d in groups[plan.aggregate_id])
                    pending.discard(plan.aggregate_id)
            for plan, result in zip(writes, results, strict=True):
                verdict = classify_write(result)
                if verdict == "ok":
                    outcome.done.update(d.sequence for d in groups[plan.aggregate_id])
                    pending.discard(plan.aggregate_id)
                elif verdict == "conflict":
                    from_history.add(plan.aggregate_id)  # lost a race: rebuild from history
                    reasons[plan.aggregate_id] = bounded_reason(f"version conflict: {result.reason}")
                elif verdict == "retry":
                    reasons[plan.aggregate_id] = bounded_reason(f"{result.status} {result.error_type}: {result.reason}")
                else:
                    pending.discard(plan.aggregate_id)
                    self._fail(
                        outcome, groups[plan.aggregate_id], f"{result.status} {result.error_type}: {result.reason}"
                    )
        for aggregate_id in pending:
            for d in groups[aggregate_id]:
                outcome.retry[d.sequence] = reasons.get(aggregate_id, "not written")
        if record_failures:
            await self._record(outcome, {d.sequence: d for d in items})
        await self._clear_parked(outcome.done, items)
        return outcome

    async def _plan_and_write(
        self, groups: dict[str, list[Delivered]], from_history: set[str], outcome: BatchOutcome
    ) -> tuple[list[_Plan], dict[str, str], list[_Plan], list[BulkItemResult]]:
        """Plan and write ``groups`` slice by slice, each slice's ``_bulk`` sent while the next
        slice is read and folded: Elasticsearch indexes while this process folds. Returns
        every plan, the aggregates that cannot be folded, the writes and their results (in
        the order of the writes). A slice's failure fails the whole call: written slices
        are then duplicates on the next attempt, which changes nothing."""
        ids = list(groups)
        plans: list[_Plan] = []
        broken: dict[str, str] = {}
        writes: list[_Plan] = []
        writing: list[asyncio.Task[list[BulkItemResult]]] = []
        # The current documents of the whole batch in one round trip.
        current = await self.index.mget(a for a in ids if a not in from_history)
        try:
            for start in range(0, len(ids), WRITE_SLICE):
                part_plans, part_broken = await self._plans(
                    {a: groups[a] for a in ids[start : start + WRITE_SLICE]}, current, from_history, outcome
                )
                plans.extend(part_plans)
                broken.update(part_broken)
                part_writes = [p for p in part_plans if p.doc is not None]
                if part_writes:
                    writes.extend(part_writes)
                    bulk = self.index.bulk_put(
                        [(p.aggregate_id, p.doc or {}, p.version) for p in part_writes],
                        gte={p.aggregate_id for p in part_writes if p.from_history},
                    )
                    writing.append(asyncio.ensure_future(bulk))
            results = [result for part in await asyncio.gather(*writing) for result in part]
        except BaseException:
            for task in writing:
                task.cancel()
            await asyncio.gather(*writing, return_exceptions=True)
            raise
        return plans, broken, writes, results

    async def _plans(
        self,
        groups: dict[str, list[Delivered]],
        current: dict[str, tuple[dict[str, Any], int]],
        from_history: set[str],
        outcome: BatchOutcome,
    ) -> tuple[list[_Plan], dict[str, str]]:
        """A write plan per aggregate onto its ``current`` document, and the aggregates whose
        events cannot be folded (with why).

        The log lookups (whole-base checks, then histories) run concurrently: a batch
        waits for the slowest of them, not for their sum.
        """
        folded: dict[str, _Plan | None] = {}
        broken: dict[str, str] = {}
        for n, (aggregate_id, items) in enumerate(groups.items()):
            if n % FOLDS_BETWEEN_YIELDS == FOLDS_BETWEEN_YIELDS - 1:
                # Folding is CPU work: let the loop send the slice written meanwhile (and serve requests).
                await asyncio.sleep(0)
            try:
                folded[aggregate_id] = (
                    None if aggregate_id in from_history else plan_group(current.get(aggregate_id), items)
                )
            except Exception as exc:  # a bug or a poison event, not a passing fault
                broken[aggregate_id] = f"cannot fold events: {type(exc).__name__}: {exc}"
        limit = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def whole(plan: _Plan) -> bool:
            async with limit:
                return await self._folds_onto_a_whole_base(plan, current, groups[plan.aggregate_id])

        checked = [p for p in folded.values() if p is not None and p.doc is not None]
        for plan, ok in zip(checked, await asyncio.gather(*(whole(p) for p in checked)), strict=True):
            if not ok:
                folded[plan.aggregate_id] = None  # another replica's event is missing from the base: rebuild
        again = [a for a, plan in folded.items() if plan is None]
        if again and self.events is None:
            for aggregate_id in again:
                broken[aggregate_id] = "out-of-order event and no event store to rebuild from"
            again = []
        log_ = self.events

        async def history(aggregate_id: str) -> list[tuple[EventEnvelope, int]]:
            assert log_ is not None
            async with limit:
                return [(s.envelope, s.sequence) for s in await log_.history("asset", aggregate_id)]

        histories = await asyncio.gather(*(history(a) for a in again))  # NATS faults propagate
        for aggregate_id, past in zip(again, histories, strict=True):
            try:
                folded[aggregate_id] = fold_history(aggregate_id, past)
            except Exception as exc:
                broken[aggregate_id] = f"cannot fold history: {type(exc).__name__}: {exc}"
                continue
            from_history.add(aggregate_id)
            outcome.rebuilt.add(aggregate_id)
        plans = [plan for a, plan in folded.items() if plan is not None and a not in broken]
        return plans, broken

    async def _folds_onto_a_whole_base(
        self, plan: _Plan, current: dict[str, tuple[dict[str, Any], int]], items: list[Delivered]
    ) -> bool:
        """Whether the document being folded onto holds every event of its asset before the
        first one folded now. With several projector replicas, one may fold event n+1 onto
        the version n-1 it read while another is writing event n: external versioning would
        accept n+1 over n and event n would vanish from the index (the cluster fault suite's
        reconciliation found exactly that). The log says which event comes next, unless no
        event can lie between (the next stream sequence)."""
        base = current.get(plan.aggregate_id)
        if base is None or self.events is None:
            return True  # a new document starts at the asset's creation event (plan_group checks)
        seen = set(base[0].get("event_sequences", []))
        first_new = min(d.sequence for d in items if d.sequence not in seen)
        if first_new == base[1] + 1:
            return True
        following = await self.events.next_sequence(aggregate_filter("asset", plan.aggregate_id), base[1])
        return following in (0, first_new)

    def _fail(self, outcome: BatchOutcome, items: list[Delivered], reason: str) -> None:
        short = bounded_reason(reason)
        for d in items:
            outcome.failed[d.sequence] = short

    async def _record(self, outcome: BatchOutcome, by_seq: dict[int, Delivered]) -> None:
        """Record writes that cannot succeed; an unrecorded one is redelivered soon instead of parked."""
        for seq, reason in list(outcome.failed.items()):
            d = by_seq[seq]
            log.error("cannot index %s (event %s at %d), parked: %s", d.event.aggregate_id, d.event.type, seq, reason)
            try:
                await self.index.record_failure(d.event.aggregate_id, seq, d.event.type, reason)
            except Exception as exc:
                log.warning("could not record the failure of %d, will retry: %s", seq, bounded_reason(str(exc)))
                del outcome.failed[seq]
                outcome.retry[seq] = reason

    async def _clear_parked(self, done: set[int], items: list[Delivered]) -> None:
        """A parked event finally written (after a fix) has its failure record removed.

        Only a redelivered event can have been parked, whichever replica parked
        it, so the common first delivery costs nothing here.
        """
        for d in items:
            if not d.redelivered or d.sequence not in done:
                continue
            try:
                if await self.index.clear_failure(d.event.aggregate_id, d.sequence):
                    log.info("parked event %d is indexed now", d.sequence)
            except Exception as exc:  # the record stays visible until the next redelivery clears it
                log.warning("could not clear the failure record of %d: %s", d.sequence, exc)
