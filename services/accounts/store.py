"""The accounts' NATS KV buckets, and optimistic updates of the records in them.

Every change reads the record with its revision, computes the new record with a
pure function and writes it with ``update(key, value, last=revision)``; when
someone else wrote the key meanwhile (two sign-in failures at once, two admins
editing one account), the change is computed again on the fresh record, so
neither is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from services.accounts.domain import RefreshFamily, SignInGuard, UserRecord
from shared.api_keys import API_KEYS_BUCKET, API_KEYS_DESCRIPTION, ApiKeyRecord, KvApiKeyStore
from shared.kv import create_key, latest_values, open_bucket
from shared.revocations import open_revocations_bucket

USERS_BUCKET = "MAM_USERS"
SESSIONS_BUCKET = "MAM_SESSIONS"
# Failed sign-ins of names that have no account, so that they lock like real ones
# (else the lock-out would tell which names exist). Keyed by a keyed hash of the name.
UNKNOWN_NAMES_BUCKET = "MAM_SIGNIN_UNKNOWN"
# Attempts before a change gives up with a conflict (each one lost a race to another writer).
_ATTEMPTS = 20

M = TypeVar("M", bound=BaseModel)


class UpdateConflict(Exception):
    """A record kept changing under an update; nothing was written."""


@dataclass(frozen=True)
class Change(Generic[M]):
    before: M | None
    after: M | None
    written: bool


class Records(Generic[M]):
    """Records of one pydantic model in one KV bucket."""

    def __init__(self, kv: KeyValue, model: type[M]) -> None:
        self.kv = kv
        self.model = model

    async def get(self, key: str) -> tuple[M, int] | None:
        try:
            entry = await self.kv.get(key)
        except NotFoundError:
            return None
        if not entry.value:
            return None
        return self.model.model_validate_json(entry.value), entry.revision or 0

    async def value(self, key: str) -> M | None:
        found = await self.get(key)
        return found[0] if found else None

    async def create(self, key: str, record: M) -> bool:
        """Store ``record`` unless the key exists; False if it did."""
        try:
            await create_key(self.kv, key, record.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def change(self, key: str, decide: Callable[[M | None], M | None]) -> Change[M]:
        """Apply ``decide`` (current → new, or None for "leave it") with an optimistic write."""
        for _ in range(_ATTEMPTS):
            found = await self.get(key)
            current, revision = found if found else (None, 0)
            new = decide(current)
            if new is None:
                return Change(current, current, False)
            try:
                if found is None:
                    await create_key(self.kv, key, new.model_dump_json().encode())
                else:
                    await self.kv.update(key, new.model_dump_json().encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue  # someone else wrote it: decide again on what they wrote
            return Change(current, new, True)
        raise UpdateConflict(key)

    async def all(self) -> list[M]:
        """Every record, sorted by key, read in one pass over the bucket."""
        values = await latest_values(self.kv)
        return [self.model.model_validate_json(values[key]) for key in sorted(values) if values[key]]


@dataclass
class AccountBuckets:
    users: Records[UserRecord]
    sessions: Records[RefreshFamily]
    unknown_names: Records[SignInGuard]
    api_keys: Records[ApiKeyRecord]
    key_reader: KvApiKeyStore  # cached, as every service verifies keys
    revocations: KeyValue  # when each user's access tokens became void (shared.revocations)

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        *,
        session_max_s: float,
        guard_ttl_s: float,
        api_key_cache_ttl_s: float,
        replicas: int = 1,
    ) -> AccountBuckets:
        users = await open_bucket(
            js, USERS_BUCKET, "HĐND media archive: user accounts (argon2 hashes)", replicas=replicas
        )
        sessions = await open_bucket(
            js, SESSIONS_BUCKET, "HĐND media archive: refresh tokens (hashes)", ttl_s=session_max_s, replicas=replicas
        )
        unknown = await open_bucket(
            js,
            UNKNOWN_NAMES_BUCKET,
            "HĐND media archive: failed sign-ins of unknown names",
            ttl_s=guard_ttl_s,
            replicas=replicas,
        )
        keys = await open_bucket(js, API_KEYS_BUCKET, API_KEYS_DESCRIPTION, replicas=replicas)
        revocations = await open_revocations_bucket(js, replicas)
        return cls(
            users=Records(users, UserRecord),
            sessions=Records(sessions, RefreshFamily),
            unknown_names=Records(unknown, SignInGuard),
            api_keys=Records(keys, ApiKeyRecord),
            key_reader=KvApiKeyStore(keys, api_key_cache_ttl_s),
            revocations=revocations,
        )
