"""In-memory fakes of the ports (``shared/ports.py``), for fast unit tests of logic.

They implement the same Protocols as the real adapters — mypy checks both
(see the end of this module) — with the semantics the logic relies on:
the event log deduplicates by event id and checks expected sequences per
aggregate, the index keeps external versions. Behaviour against the real
servers is tested in tests/integration and tests/e2e, never with these.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from services.search.index import AssetIndex
from shared.events.envelope import EventEnvelope
from shared.eventstore import EventStore
from shared.objectstore import ObjectStore
from shared.ports import (
    AppendResult,
    BulkItemResult,
    ConcurrencyConflict,
    EventLog,
    ObjectInfo,
    ObjectNotFound,
    ObjectStorage,
    SearchIndex,
    StoredEvent,
)
from shared.subjects import aggregate_filter, subject_matches


class InMemoryEventLog:
    """The event log in a list: sequences from 1, dedup by event id, expected sequences per aggregate."""

    def __init__(self, events: Iterable[EventEnvelope] = ()) -> None:
        self.stored: list[StoredEvent] = []
        self.closed = False
        for event in events:
            self.stored.append(StoredEvent(len(self.stored) + 1, event.subject, event))

    async def append(
        self, event: EventEnvelope, expected_last_sequence: int | None = None, *, guard: str | None = None
    ) -> AppendResult:
        for stored in self.stored:
            if stored.envelope.event_id == event.event_id:
                return AppendResult(stored.sequence, duplicate=True)
        if expected_last_sequence is not None:
            agg = guard or aggregate_filter(event.aggregate, event.aggregate_id)
            last = self._last(agg)
            if last != expected_last_sequence:
                raise ConcurrencyConflict(agg, expected_last_sequence, f"last sequence is {last}")
        self.stored.append(StoredEvent(len(self.stored) + 1, event.subject, event))
        return AppendResult(len(self.stored), duplicate=False)

    async def history(self, aggregate: str, aggregate_id: str) -> list[StoredEvent]:
        return self._aggregate(aggregate, aggregate_id)

    def _aggregate(self, aggregate: str, aggregate_id: str) -> list[StoredEvent]:
        agg = aggregate_filter(aggregate, aggregate_id)
        return [s for s in self.stored if subject_matches(agg, s.subject)]

    async def read_subjects(
        self, subject_filter: str, batch: int = 256, start_sequence: int = 1
    ) -> AsyncIterator[StoredEvent]:
        for stored in list(self.stored):
            if stored.sequence >= start_sequence and subject_matches(subject_filter, stored.subject):
                yield stored

    async def last_sequence(self, subject_filter: str | None = None) -> int:
        return self._last(subject_filter) if subject_filter else len(self.stored)

    async def next_sequence(self, subject_filter: str, after: int) -> int:
        return min(
            (s.sequence for s in self.stored if s.sequence > after and subject_matches(subject_filter, s.subject)),
            default=0,
        )

    def _last(self, subject_filter: str) -> int:
        return max((s.sequence for s in self.stored if subject_matches(subject_filter, s.subject)), default=0)

    async def ready(self) -> bool:
        return not self.closed

    async def close(self) -> None:
        self.closed = True

    def of_type(self, event_type: str) -> list[EventEnvelope]:
        return [s.envelope for s in self.stored if s.envelope.type == event_type]


class InMemoryObjectStorage:
    """Buckets as dictionaries; ``presigned_get`` gives a ``memory://`` address."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.buckets: set[str] = set()
        self.downloads = 0

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.buckets.add(bucket)
        self.objects[(bucket, key)] = (data, content_type)

    async def ready(self) -> bool:
        return True

    async def ensure_buckets(self, *buckets: str) -> None:
        self.buckets.update(buckets)

    async def put_file(
        self, bucket: str, key: str, path: Path, content_type: str, metadata: dict[str, str] | None = None
    ) -> ObjectInfo:
        data = await asyncio.to_thread(path.read_bytes)
        self.put_bytes(bucket, key, data, content_type)
        return ObjectInfo(bucket, key, len(data), content_type, "")

    async def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        found = self.objects.get((bucket, key))
        return ObjectInfo(bucket, key, len(found[0]), found[1], "") if found else None

    async def get_bytes(self, bucket: str, key: str, offset: int = 0, length: int = 0) -> bytes:
        if (bucket, key) not in self.objects:
            raise ObjectNotFound(f"{bucket}/{key}")
        data = self.objects[(bucket, key)][0]
        return data[offset : offset + length] if length else data[offset:]

    async def download(self, bucket: str, key: str, path: Path) -> None:
        self.downloads += 1
        await asyncio.to_thread(path.write_bytes, await self.get_bytes(bucket, key))

    async def presigned_get(
        self, bucket: str, key: str, expiry_s: int | None = None, signed_at: datetime | None = None
    ) -> str:
        return f"memory://{bucket}/{key}"

    async def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))


class InMemorySearchIndex:
    """Documents with external versions, plus scripted per-document bulk failures.

    ``script`` holds one entry per coming ``bulk_put`` call: doc id → (status,
    error type) to answer instead of writing. ``search`` answers every document
    (queries themselves are tested against Elasticsearch).
    """

    def __init__(self) -> None:
        self.docs: dict[str, tuple[dict[str, Any], int]] = {}
        self.script: list[dict[str, tuple[int, str]]] = []
        self.parked: dict[tuple[str, int], tuple[str, str]] = {}

    async def get(self, doc_id: str) -> tuple[dict[str, Any], int] | None:
        return self.docs.get(doc_id)

    async def mget(self, doc_ids: Iterable[str]) -> dict[str, tuple[dict[str, Any], int]]:
        return {i: self.docs[i] for i in doc_ids if i in self.docs}

    async def bulk_put(
        self, docs: list[tuple[str, dict[str, Any], int]], gte: set[str] | frozenset[str] = frozenset()
    ) -> list[BulkItemResult]:
        scripted = self.script.pop(0) if self.script else {}
        out = []
        for doc_id, doc, version in docs:
            if doc_id in scripted:
                status, kind = scripted[doc_id]
                out.append(BulkItemResult(doc_id, status, kind, "scripted"))
                continue
            current = self.docs.get(doc_id)
            if current and (current[1] > version or (current[1] == version and doc_id not in gte)):
                out.append(BulkItemResult(doc_id, 409, "version_conflict_engine_exception", "newer"))
                continue
            self.docs[doc_id] = (doc, version)
            out.append(BulkItemResult(doc_id, 201))
        return out

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        hits = [{"_id": i, "_source": doc, "_version": v} for i, (doc, v) in sorted(self.docs.items())]
        return {"hits": {"total": {"value": len(hits)}, "hits": hits}}

    async def refresh(self) -> None:
        return None

    async def record_failure(self, doc_id: str, sequence: int, event_type: str, reason: str) -> None:
        self.parked[(doc_id, sequence)] = (event_type, reason)

    async def clear_failure(self, doc_id: str, sequence: int) -> bool:
        return self.parked.pop((doc_id, sequence), None) is not None

    async def failures(self, size: int = 100) -> list[dict[str, Any]]:
        return [{"doc_id": d, "sequence": s, "event_type": t, "reason": r} for (d, s), (t, r) in self.parked.items()][
            :size
        ]

    async def live_indices(self) -> list[str]:
        return ["memory"]

    async def ready(self) -> bool:
        return True


def _ports_are_satisfied(
    fakes: tuple[InMemoryEventLog, InMemoryObjectStorage, InMemorySearchIndex],
    real: tuple[EventStore, ObjectStore, AssetIndex],
) -> tuple[tuple[EventLog, ObjectStorage, SearchIndex], ...]:
    """Never called: mypy checks here that the fakes and the real adapters satisfy the ports."""
    return fakes, real
