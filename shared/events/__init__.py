"""Event contracts: the envelope every event carries and the payload models."""

# The payload modules register their models on import.
from shared.events import accounts, collections, delegates, media, publishing, reels, tagging  # noqa: F401
from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import (
    AssetIngestedV1,
    AssetKind,
    decode_payload,
    payload_type_for,
)

__all__ = [
    "AssetIngestedV1",
    "AssetKind",
    "EventEnvelope",
    "decode_payload",
    "new_event",
    "payload_type_for",
]
