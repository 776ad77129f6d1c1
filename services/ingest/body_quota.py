"""A single-request upload's body, held in its user's upload quota while it is on disk.

``MAM_UPLOAD_QUOTA_BYTES`` bounds one user's unfinished uploads together. A resumable
upload reserves its whole length when it is created; a single-request upload
(``POST /v1/assets``) is spooled from its first byte to the end of its request, so it
holds its bytes in the same ledger (same compare-and-set, same 413 ``quota_exceeded``):

- a declared ``Content-Length``: all of it, before a byte of the body is read;
- a chunked body: what has arrived plus ``RESERVE_STEP`` (or what the quota leaves),
  grown as it streams; refused as soon as what has arrived would not fit.

The sweeper drops a reservation no upload record holds ``QUOTA_RESERVATION_GRACE_S``
after it was made; a body still arriving renews it well before (``RENEW_AFTER_S``), and
one that stops arriving is cut off by the body deadline long before.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from services.ingest.upload_store import QUOTA_RESERVATION_GRACE_S, UploadStore

MIB = 1024 * 1024
# How far ahead of a chunked body's arrived bytes it reserves: one ledger write per step.
RESERVE_STEP = 16 * MIB
RENEW_AFTER_S = QUOTA_RESERVATION_GRACE_S / 5


def _request_id() -> str:
    # Not an upload id (32 hex digits): no upload record is ever looked up under it by a client.
    return f"request-{uuid.uuid4().hex}"


@dataclass
class BodyReservation:
    uploads: UploadStore
    owner: str
    quota: int
    id: str = field(default_factory=_request_id)
    reserved: int = 0
    _renewed_at: float = 0.0

    async def declared(self, length: int) -> None:
        """Hold a declared body's whole ``length`` (413 ``quota_exceeded`` past the quota)."""
        await self._reserve(length, length)

    async def cover(self, received: int) -> None:
        """Hold at least the ``received`` bytes of the body (called as it arrives)."""
        if received > self.reserved:
            await self._reserve(received, received + RESERVE_STEP)
        elif time.monotonic() - self._renewed_at > RENEW_AFTER_S:
            await self._reserve(self.reserved, self.reserved)

    async def release(self) -> None:
        """Give the bytes back (the request is over); the sweeper does it if NATS does not answer."""
        if self.reserved:
            self.reserved = 0
            await asyncio.shield(self.uploads.release_quota_quietly(self.owner, self.id))

    async def _reserve(self, at_least: int, wanted: int) -> None:
        self.reserved = await self.uploads.reserve_quota_within(self.owner, self.id, at_least, wanted, self.quota)
        self._renewed_at = time.monotonic()
