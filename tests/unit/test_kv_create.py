"""create_key: a create that lost its race is told as one, however nats-py found out."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.kv import create_key


class RacedBucket:
    """A bucket whose ``create`` fails as nats-py's does after the server refused it."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def create(self, key: str, value: bytes) -> int:
        if self.error is not None:
            raise self.error
        return 7


def test_a_lost_race_read_back_from_a_replica_that_has_not_seen_the_winner_is_a_lost_race() -> None:
    # nats-py's create reads the key back after "wrong last sequence"; a replica behind says "not found".
    with pytest.raises(KeyWrongLastSequenceError):
        asyncio.run(create_key(cast(KeyValue, RacedBucket(KeyNotFoundError())), "quota.u", b"{}"))
    with pytest.raises(KeyWrongLastSequenceError):
        asyncio.run(create_key(cast(KeyValue, RacedBucket(KeyWrongLastSequenceError())), "quota.u", b"{}"))
    assert asyncio.run(create_key(cast(KeyValue, RacedBucket(None)), "quota.u", b"{}")) == 7
