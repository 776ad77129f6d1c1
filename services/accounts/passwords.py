"""Password hashing: argon2id with parameters chosen here, verified off the event loop.

Parameters: argon2id, 3 passes over 64 MiB, 1 lane, 16-byte salt, 32-byte hash
— RFC 9106's second recommended setting (t=3, m=64 MiB) with one lane, since
the reference machine has two cores shared by every service. One verification
takes about 150 ms there (README: how it was measured), slow enough to make
guessing expensive and fast enough for people signing in. At most
``CONCURRENT_HASHES`` run at once, so a burst of sign-ins costs at most that
many times 64 MiB and cannot starve the other services of CPU.

Hashes carry their parameters: a hash made with older ones still verifies and
is replaced by one with these parameters at the next successful sign-in.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TIME_COST = 3
MEMORY_COST_KIB = 64 * 1024
PARALLELISM = 1
HASH_LEN = 32
SALT_LEN = 16
CONCURRENT_HASHES = 2

HASHER = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    hash_len=HASH_LEN,
    salt_len=SALT_LEN,
    type=Type.ID,
)

# Verified instead of a real hash when the name is unknown, so an unknown name costs
# the same time as a wrong password (no timing oracle for which accounts exist).
_DUMMY_HASH = HASHER.hash("no account has this password: it only makes unknown names as slow as known ones")


def _verify(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class Passwords:
    """Hashing and verification in worker threads, at most ``concurrent`` at a time."""

    def __init__(self, concurrent: int = CONCURRENT_HASHES) -> None:
        self._slots = asyncio.Semaphore(concurrent)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; None (no such account) checks a dummy hash and fails."""
        async with self._slots:
            ok = await asyncio.to_thread(_verify, stored or _DUMMY_HASH, password)
        return ok and stored is not None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(HASHER.hash, password)

    @staticmethod
    def needs_rehash(stored: str) -> bool:
        return HASHER.check_needs_rehash(stored)


def measure(rounds: int = 20) -> dict[str, float]:
    """Milliseconds per verification with these parameters (``python -m services.accounts.passwords``)."""
    import statistics
    import time

    stored = HASHER.hash("đo thời gian kiểm tra mật khẩu")
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        HASHER.verify(stored, "đo thời gian kiểm tra mật khẩu")
        times.append((time.perf_counter() - began) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


if __name__ == "__main__":
    result = measure()
    print(
        f"argon2id t={TIME_COST} m={MEMORY_COST_KIB} KiB p={PARALLELISM}: verify median {result['median_ms']:.0f} ms "
        f"(min {result['min_ms']:.0f}, max {result['max_ms']:.0f}, 20 rounds)"
    )
