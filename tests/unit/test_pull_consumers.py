"""The timeout translation that keeps FastStream's batch pull loop (and its batch) alive."""

from __future__ import annotations

import pytest
from nats.errors import TimeoutError as NatsTimeoutError

from shared.pull_consumers import tolerate_plain_timeouts


async def test_a_plain_asyncio_timeout_becomes_the_nats_timeout_faststream_catches() -> None:
    async def fetch(batch: int, **_: object) -> list[str]:
        raise TimeoutError  # the builtin one nats-py raises (asyncio.TimeoutError is it)

    with pytest.raises(NatsTimeoutError):
        await tolerate_plain_timeouts(fetch)(batch=10, timeout=0.01)


async def test_messages_and_other_errors_pass_through_unchanged() -> None:
    async def fetch(batch: int, **_: object) -> list[str]:
        if batch == 0:
            raise ConnectionError("nats down")
        return ["m1", "m2"][:batch]

    wrapped = tolerate_plain_timeouts(fetch)
    assert await wrapped(batch=2, timeout=0.2) == ["m1", "m2"]
    with pytest.raises(ConnectionError):
        await wrapped(batch=0, timeout=0.2)
