"""A single-request upload's body, held in its user's upload quota while it is on this
replica's spool disk.

``MAM_UPLOAD_QUOTA_BYTES`` bounds one user's unfinished uploads. A resumable upload's bytes go
to the shared staging bucket, so its reservation is in the NATS KV ledger every replica
shares (``UploadStore``). A single-request upload (``POST /v1/assets``) is spooled on the disk
of the replica that receives it, from its first byte to the end of its request: its bytes
are held in this process's own ledger, by the same rule (``with_reservation_within``), with
no network round trip on the upload's path (the shared ledger's cost 1.6–2.6 ms a photo,
a tenth of its whole upload, and its compare-and-set made one user's uploads wait on each other):

- a declared ``Content-Length``: all of it, before a byte of the body is read;
- a chunked body: what has arrived plus ``RESERVE_STEP`` (or what the quota leaves), grown
  as it streams; refused with 413 ``quota_exceeded`` as soon as what has arrived would not fit.

One event loop changes the ledger, between awaits: two requests cannot both pass the quota.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.ingest.uploads import QuotaUsage, with_reservation_within, without_reservations

MIB = 1024 * 1024
# How far ahead of a chunked body's arrived bytes it reserves.
RESERVE_STEP = 16 * MIB


@dataclass
class SpoolLedger:
    """Each user's bytes of single-request bodies on this replica's spool, by request."""

    quota: int
    usage: dict[str, QuotaUsage] = field(default_factory=dict)

    def in_flight(self, owner: str) -> int:
        held = self.usage.get(owner)
        return held.in_flight if held else 0

    def hold(self, owner: str) -> BodyReservation:
        return BodyReservation(self, owner)

    def reserve(self, owner: str, request_id: str, at_least: int, wanted: int) -> int:
        """``wanted`` bytes for the request, or what the quota leaves if still ``at_least`` (413 else)."""
        usage = self.usage.get(owner) or QuotaUsage(owner=owner)
        changed = with_reservation_within(usage, request_id, at_least, wanted, self.quota, datetime.now(UTC))
        self.usage[owner] = changed
        return changed.uploads[request_id].size

    def release(self, owner: str, request_id: str) -> None:
        left = without_reservations(self.usage.get(owner) or QuotaUsage(owner=owner), [request_id])
        if left.uploads:
            self.usage[owner] = left
        else:
            self.usage.pop(owner, None)


@dataclass
class BodyReservation:
    """One request's hold (a context: given back however the request ends)."""

    ledger: SpoolLedger
    owner: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    reserved: int = 0

    def declared(self, length: int) -> None:
        """Hold a declared body's whole ``length`` (413 ``quota_exceeded`` past the quota)."""
        self.reserved = self.ledger.reserve(self.owner, self.id, length, length)

    def cover(self, received: int) -> None:
        """Hold at least the ``received`` bytes of the body (called as it arrives)."""
        if received > self.reserved:
            self.reserved = self.ledger.reserve(self.owner, self.id, received, received + RESERVE_STEP)

    def __enter__(self) -> BodyReservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ledger.release(self.owner, self.id)
        self.reserved = 0
