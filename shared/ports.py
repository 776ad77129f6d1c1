"""The ports: what the services need from the event log, object storage and the
search index, as ``typing.Protocol``s.

The real adapters (``shared.eventstore.EventStore`` on JetStream,
``shared.objectstore.ObjectStore`` on S3, ``services.search.index.AssetIndex``
on Elasticsearch) and the in-memory fakes of the unit tests (``tests/fakes.py``)
both satisfy them, and mypy checks both against these definitions. Code that
only needs a port names the port, so a fake can stand in without a cast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from shared.events.envelope import EventEnvelope

# --- the event log ------------------------------------------------------------------


class ConcurrencyConflict(RuntimeError):
    """The aggregate changed since the caller read it; re-read and retry."""

    def __init__(self, aggregate_filter: str, expected: int, detail: str) -> None:
        super().__init__(f"concurrency conflict on {aggregate_filter}: expected last sequence {expected} ({detail})")
        self.aggregate_filter = aggregate_filter
        self.expected = expected


@dataclass(frozen=True)
class AppendResult:
    sequence: int
    duplicate: bool


@dataclass(frozen=True)
class StoredEvent:
    """An event as read back, with the stream sequence that orders it."""

    sequence: int
    subject: str
    envelope: EventEnvelope


class EventLog(Protocol):
    """Append-only log of domain events, ordered by stream sequence."""

    async def append(
        self, event: EventEnvelope, expected_last_sequence: int | None = None, *, guard: str | None = None
    ) -> AppendResult:
        """Append one event; ``expected_last_sequence`` (0 = must not exist yet) guards the
        aggregate — or every subject ``guard`` matches — against concurrent writers
        (:class:`ConcurrencyConflict`)."""
        ...

    async def history(self, aggregate: str, aggregate_id: str) -> list[StoredEvent]:
        """One aggregate's events, oldest first (empty if it does not exist)."""
        ...

    def read_subjects(
        self, subject_filter: str, batch: int = 256, start_sequence: int = 1
    ) -> AsyncIterator[StoredEvent]:
        """Every event matching a subject filter from ``start_sequence`` on, in stream order."""
        ...

    async def last_sequence(self, subject_filter: str | None = None) -> int:
        """The stream's last sequence, or the latest one matching ``subject_filter`` (0: none)."""
        ...

    async def next_sequence(self, subject_filter: str, after: int) -> int:
        """The sequence of the first event matching ``subject_filter`` after ``after`` (0: none)."""
        ...

    async def ready(self) -> bool:
        """The log answers now (readiness checks)."""
        ...

    async def close(self) -> None: ...


# --- object storage -----------------------------------------------------------------


class ObjectNotFound(LookupError):
    """The bucket/key does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    content_type: str
    etag: str


class ObjectStorage(Protocol):
    """Private buckets of immutable objects (originals, renditions, reels)."""

    async def ready(self) -> bool:
        """The storage answers now (readiness checks)."""
        ...

    async def ensure_buckets(self, *buckets: str) -> None: ...

    async def put_file(
        self, bucket: str, key: str, path: Path, content_type: str, metadata: dict[str, str] | None = None
    ) -> ObjectInfo: ...

    async def stat(self, bucket: str, key: str) -> ObjectInfo | None: ...

    async def get_bytes(self, bucket: str, key: str, offset: int = 0, length: int = 0) -> bytes: ...

    async def download(self, bucket: str, key: str, path: Path) -> None:
        """Copy an object to a local file (raises :class:`ObjectNotFound`)."""
        ...

    async def presigned_get(
        self, bucket: str, key: str, expiry_s: int | None = None, signed_at: datetime | None = None
    ) -> str:
        """A URL anyone may GET for ``expiry_s`` from ``signed_at`` (default: now)."""
        ...

    async def list_keys(self, bucket: str, prefix: str = "") -> list[str]: ...


# --- the search index ---------------------------------------------------------------

# Statuses a retry can fix (overload, shard not ready, timeouts).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class BulkItemResult:
    """The outcome of one document write in a bulk call."""

    doc_id: str
    status: int
    error_type: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def version_conflict(self) -> bool:
        return self.status == 409

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES


class SearchIndex(Protocol):
    """One document per asset, versioned by the stream sequence of its last event."""

    async def get(self, doc_id: str) -> tuple[dict[str, Any], int] | None: ...

    async def mget(self, doc_ids: Iterable[str]) -> dict[str, tuple[dict[str, Any], int]]: ...

    async def bulk_put(
        self, docs: list[tuple[str, dict[str, Any], int]], gte: set[str] | frozenset[str] = frozenset()
    ) -> list[BulkItemResult]:
        """Write (id, doc, version) triples; ids in ``gte`` may overwrite the same version."""
        ...

    async def search(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def refresh(self) -> None: ...

    async def record_failure(self, doc_id: str, sequence: int, event_type: str, reason: str) -> None:
        """Remember a write that cannot succeed as things are (a parked event)."""
        ...

    async def clear_failure(self, doc_id: str, sequence: int) -> bool: ...

    async def failures(self, size: int = 100) -> list[dict[str, Any]]: ...

    async def live_indices(self) -> list[str]: ...

    async def ready(self) -> bool:
        """The index answers now (readiness checks)."""
        ...
