"""The search projector: folds asset events into the index, idempotently.

At-least-once delivery means an event may arrive twice or, with several
replicas, after a newer one. The document's version is the stream sequence of
the last event folded in: an event at or below it is already reflected and is
skipped, and so is any event whose sequence the document already lists. An
event older than the document's version that it does not list arrived out of
order; then, as when a write loses a version race with another replica, the
document is rebuilt from the aggregate's full history, correct whatever order
events came in.
"""

from __future__ import annotations

import logging
from typing import Any

from services.search.documents import apply_event, with_sequence
from services.search.index import AssetIndex
from shared.eventstore import EventStore
from shared.events.envelope import EventEnvelope

log = logging.getLogger("mam.search.projector")


class AssetProjector:
    def __init__(self, index: AssetIndex, events: EventStore) -> None:
        self.index = index
        self.events = events

    async def apply(self, event: EventEnvelope, sequence: int) -> str:
        """Fold one event; returns "applied", "duplicate" or "rebuilt"."""
        current = await self.index.get(event.aggregate_id)
        if current is not None:
            doc, version = current
            if sequence in doc.get("event_sequences", []):
                return "duplicate"
            if version > sequence:
                # Arrived after a newer event was folded in: replay in order.
                await self.rebuild(event.aggregate_id)
                return "rebuilt"
        doc = with_sequence(apply_event(current[0] if current else {}, event), sequence)
        if await self.index.put(event.aggregate_id, doc, sequence):
            return "applied"
        await self.rebuild(event.aggregate_id)  # lost a race with another replica
        return "rebuilt"

    async def rebuild(self, aggregate_id: str) -> None:
        history = await self.events.history("asset", aggregate_id)
        if not history:
            return
        doc: dict[str, Any] = {}
        for stored in history:
            doc = with_sequence(apply_event(doc, stored.envelope), stored.sequence)
        written = await self.index.put(aggregate_id, doc, history[-1].sequence)
        log.info("rebuilt %s from %d events (written=%s)", aggregate_id, len(history), written)
