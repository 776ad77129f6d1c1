"""API keys for machines: how a presented key becomes a :class:`~shared.auth.Principal`.

A key is ``mam_<id>_<secret>``: a 16-hex-digit id, which names the key in
lists and logs, and a 256-bit random secret shown once, when the key is made.
The accounts service keeps one record per key in the NATS KV bucket
``MAM_API_KEYS`` with the SHA-256 of the secret, never the secret. A fast hash
is enough here, unlike for passwords: nobody can guess or enumerate 256 random
bits, so a stolen record gives nothing to brute-force, and every request can
afford the check. Salting or stretching protects guessable secrets only.

Every service verifies keys with :func:`verify_api_key` over a
:class:`KvApiKeyStore`, which trusts what it read for ``cache_ttl_s`` (at most
30 s): a revoked key is refused everywhere within that time. Nothing here
depends on the web framework.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.auth import Principal, Role
from shared.kv import open_bucket

log = logging.getLogger("mam.api_keys")

API_KEYS_BUCKET = "MAM_API_KEYS"
API_KEYS_DESCRIPTION = "HĐND media archive: API keys (SHA-256 of the secrets)"
PREFIX = "mam_"
MAX_CACHE_TTL_S = 30.0
_PRESENTED = re.compile(r"^mam_([0-9a-f]{16})_([0-9a-f]{64})$")


class ApiKeyRecord(BaseModel):
    """One API key as stored (the secret only as its SHA-256)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    name: str = Field(max_length=300)
    role: Role
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_by: str
    created_at: datetime
    revoked: bool = False
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def principal(self) -> Principal:
        return Principal(subject=principal_subject(self.key_id), name=self.name, role=self.role, kind="api_key")


def principal_subject(key_id: str) -> str:
    """What requests made with the key are recorded as (``actor``); no user name has a colon."""
    return f"api-key:{key_id}"


def new_api_key() -> tuple[str, str, str]:
    """A fresh ``(key_id, secret, presented key)``."""
    key_id, secret = secrets.token_hex(8), secrets.token_hex(32)
    return key_id, secret, f"{PREFIX}{key_id}_{secret}"


def parse_api_key(presented: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None (nothing is looked up for it)."""
    match = _PRESENTED.fullmatch(presented)
    return (match.group(1), match.group(2)) if match else None


def looks_like_api_key(presented: str) -> bool:
    """Whether a Bearer credential is meant as an API key rather than an access token."""
    return presented.startswith(PREFIX)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class KeyValueReader(Protocol):
    """The part of a NATS KV bucket (``nats.js.kv.KeyValue``) the store reads."""

    async def get(self, key: str, revision: int | None = None, validate_keys: bool = True) -> _Entry: ...


class _Entry(Protocol):
    @property
    def value(self) -> bytes | None: ...


class KvApiKeyStore:
    """API key records read from the KV bucket, each trusted for ``cache_ttl_s``."""

    def __init__(
        self, kv: KeyValueReader, cache_ttl_s: float = 15.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not 0 <= cache_ttl_s <= MAX_CACHE_TTL_S:
            raise ValueError(f"cache_ttl_s must be between 0 and {MAX_CACHE_TTL_S} s, so revocations take effect")
        self.kv = kv
        self.cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiKeyRecord]] = {}

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """The key's record, from the cache while it is fresh; unknown keys are not cached."""
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_ttl_s:
            return cached[1]
        record = await self.read(key_id)
        if record is None:
            self._cache.pop(key_id, None)
        else:
            self._cache[key_id] = (now, record)
        return record

    async def read(self, key_id: str) -> ApiKeyRecord | None:
        """The record as stored now (no cache)."""
        try:
            entry = await self.kv.get(key_id)
        except NotFoundError:  # KeyNotFoundError, a deleted key, or a bucket not made yet
            return None
        if not entry.value:
            return None
        try:
            return ApiKeyRecord.model_validate_json(entry.value)
        except ValidationError:
            log.error("API key record %s is unreadable; the key is refused", key_id)
            return None

    def forget(self, key_id: str) -> None:
        """Drop a cached record (the process that revoked the key sees it at once)."""
        self._cache.pop(key_id, None)


async def verify_api_key(kv_or_store: KvApiKeyStore | KeyValueReader, presented: str) -> Principal | None:
    """The principal a presented API key speaks for, or None (malformed, unknown, revoked, wrong secret).

    Pass the service's long-lived :class:`KvApiKeyStore` (cached); a bare KV bucket
    is read afresh on every call.
    """
    parsed = parse_api_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    store = kv_or_store if isinstance(kv_or_store, KvApiKeyStore) else KvApiKeyStore(kv_or_store, 0)
    record = await store.get(key_id)
    if record is None or record.revoked or record.role is Role.PUBLIC:
        return None
    if not hmac.compare_digest(secret_digest(secret), record.secret_sha256):
        return None
    return record.principal()


async def open_api_key_store(js: JetStreamContext, cache_ttl_s: float = 15.0, replicas: int = 1) -> KvApiKeyStore:
    """The store a service verifies keys with: the ``MAM_API_KEYS`` bucket (made if missing)
    on the service's NATS connection, e.g. ``await open_api_key_store(nc.jetstream(),
    settings.api_key_cache_ttl_s)``; then ``app.state.api_key_verifier = lambda key:
    verify_api_key(store, key)`` lets ``shared.access`` accept API keys."""
    kv = await open_bucket(js, API_KEYS_BUCKET, API_KEYS_DESCRIPTION, replicas=replicas)
    return KvApiKeyStore(kv, cache_ttl_s)
