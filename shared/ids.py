"""Identifiers: time-ordered event ids and content-derived asset ids."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits.

    Python 3.11 has no ``uuid.uuid7``; ids sort by creation time, which keeps
    event ids readable in logs and friendly to indexes.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return uuid.UUID(int=value)


def deterministic_event_id(causation_id: str, purpose: str) -> uuid.UUID:
    """The id of an event caused by another, stable across redeliveries.

    Workers derive the ``Nats-Msg-Id`` of what they emit from the event that
    caused it, so a redelivered job publishes a duplicate JetStream drops.
    """
    return uuid.uuid5(uuid.NAMESPACE_URL, f"mam:{causation_id}:{purpose}")


def asset_id_for_sha256(sha256_hex: str) -> str:
    """Asset ids derive from content so the same bytes always map to one asset.

    128 bits of the SHA-256 keep ids short in URLs and subjects while making a
    collision between distinct files practically impossible.
    """
    if len(sha256_hex) != 64 or any(c not in "0123456789abcdef" for c in sha256_hex):
        raise ValueError("expected a lowercase hex SHA-256 digest")
    return "a" + sha256_hex[:32]
