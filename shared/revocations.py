"""Access tokens of a user that must stop working before they expire (the account disabled,
its password reset, its role changed).

Access tokens are verified locally (``shared.auth``), so nothing would recall one for the
rest of its 5 minutes. The accounts service therefore writes, in the NATS KV bucket
``MAM_TOKEN_REVOCATIONS``, the moment from which a user's earlier tokens are void (key: the
user name). Every service reads it through :class:`TokenRevocations`, which trusts what it
read for ``cache_ttl_s`` (at most 30 s, 5 s by default): a disabled user's token is refused
everywhere within that time. A token issued in the same second as the revocation is refused
too (``iat`` has whole seconds), so the accounts service waits for the next second before
it issues a token to a user revoked in this one (``wait_to_issue``).

A role change revokes too: a token carries its role, and a demoted user's must not act
with the old one for the rest of its life; a refresh gives a token with the new role.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from shared.kv import open_bucket

log = logging.getLogger("mam.revocations")

REVOCATIONS_BUCKET = "MAM_TOKEN_REVOCATIONS"
REVOCATIONS_DESCRIPTION = "HĐND media archive: moments from which a user's access tokens are void"
MAX_CACHE_TTL_S = 30.0


def revoked(issued_at: int, void_before: float | None) -> bool:
    """Whether a token issued at ``issued_at`` (whole seconds) is void: issued in or before the
    second of the revocation (a token of that very second cannot be told apart)."""
    return void_before is not None and issued_at <= math.floor(void_before)


class TokenRevocations:
    """Each user's revocation moment (epoch seconds) read from the KV bucket, trusted for ``cache_ttl_s``."""

    def __init__(self, kv: KeyValue, cache_ttl_s: float = 5.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= cache_ttl_s <= MAX_CACHE_TTL_S:
            raise ValueError(f"cache_ttl_s must be between 0 and {MAX_CACHE_TTL_S} s, so disabling takes effect")
        self.kv = kv
        self.cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, float | None]] = {}

    async def void_before(self, subject: str) -> float | None:
        """The moment before which ``subject``'s tokens are void (None: none is)."""
        now = self._clock()
        cached = self._cache.get(subject)
        if cached is not None and now - cached[0] < self.cache_ttl_s:
            return cached[1]
        moment = await self._read(subject)
        self._cache[subject] = (now, moment)
        return moment

    async def _read(self, subject: str) -> float | None:
        return await read_void_before(self.kv, subject)


async def read_void_before(kv: KeyValue, subject: str) -> float | None:
    """``subject``'s revocation moment as stored now (None: there is none)."""
    try:
        entry = await kv.get(subject)
    except NotFoundError:  # KeyNotFoundError, a deleted key
        return None
    try:
        return float(json.loads(entry.value or b"{}")["void_before"])
    except (ValueError, KeyError, TypeError):
        log.error("revocation record of %s is unreadable; treating every earlier token as void", subject)
        return time.time()


# Past the second's boundary: a sleep ends on the monotonic clock, the token's ``iat`` is read
# from the wall clock, which NTP may slew by up to half a millisecond a second. A token
# issued at 57.9999 instead of 58.0 was refused once (CI, 22/11).
ISSUE_MARGIN_S = 0.01


def wait_to_issue(void_before: float | None, now: float, longest_s: float = 1.0) -> float:
    """How long to wait before issuing ``subject`` a token that is not void at once: a token
    issued in the second of the revocation would be (``iat`` has whole seconds). At most
    ``longest_s``: a revocation moment ahead of this clock is another replica's clock skew."""
    if void_before is None or math.floor(now) > math.floor(void_before):
        return 0.0
    return min(math.floor(void_before) + 1 + ISSUE_MARGIN_S - now, longest_s)


async def open_revocations_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    return await open_bucket(js, REVOCATIONS_BUCKET, REVOCATIONS_DESCRIPTION, replicas=replicas)


async def revoke_tokens(kv: KeyValue, subject: str, moment: datetime) -> None:
    """Void every access token of ``subject`` issued up to ``moment`` (the accounts service)."""
    await kv.put(subject, json.dumps({"void_before": moment.timestamp(), "at": moment.isoformat()}).encode())
