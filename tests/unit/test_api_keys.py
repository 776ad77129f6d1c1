"""API keys as every service verifies them (shared/api_keys.py): format, hash, revocation, cache."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from nats.js.errors import KeyNotFoundError

from shared.api_keys import (
    ApiKeyRecord,
    KvApiKeyStore,
    looks_like_api_key,
    new_api_key,
    parse_api_key,
    secret_digest,
    verify_api_key,
)
from shared.auth import Role


@dataclass
class _Entry:
    value: bytes | None


class FakeKv:
    """The ``get`` of a NATS KV bucket, counting reads."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.reads = 0

    async def get(self, key: str, revision: int | None = None, validate_keys: bool = True) -> _Entry:
        self.reads += 1
        if key not in self.values:
            raise KeyNotFoundError
        return _Entry(self.values[key])

    def put(self, record: ApiKeyRecord) -> None:
        self.values[record.key_id] = record.model_dump_json().encode()


def make_key(kv: FakeKv, role: Role = Role.LUU_TRU) -> tuple[ApiKeyRecord, str]:
    key_id, secret, presented = new_api_key()
    record = ApiKeyRecord(
        key_id=key_id,
        name="Máy nhập liệu Đài PT-TH",
        role=role,
        secret_sha256=secret_digest(secret),
        created_by="quan-tri",
        created_at=datetime(2025, 3, 1, tzinfo=UTC),
    )
    kv.put(record)
    return record, presented


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_key_has_the_documented_shape_and_parses_back_to_its_id_and_secret() -> None:
    key_id, secret, presented = new_api_key()

    assert presented == f"mam_{key_id}_{secret}"
    assert parse_api_key(presented) == (key_id, secret)
    assert len(secret) == 64  # 256 random bits
    assert looks_like_api_key(presented)


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "mam_",
        "mam_0123456789abcdef",
        "mam_0123456789abcdef_" + "a" * 63,
        "mam_0123456789abcdef_" + "a" * 65,
        "mam_0123456789ABCDEF_" + "a" * 64,
        "MAM_0123456789abcdef_" + "a" * 64,
        "mam_0123456789abcdef_" + "a" * 64 + "\n",
        "mam_0123456789abcde_f" + "a" * 64,
        "eyJhbGciOiJFZERTQSJ9.e30.sig",
    ],
)
def test_malformed_keys_are_not_parsed(presented: str) -> None:
    assert parse_api_key(presented) is None


async def test_a_valid_key_speaks_for_its_role_as_an_api_key_principal() -> None:
    kv = FakeKv()
    record, presented = make_key(kv, Role.BIEN_TAP)

    principal = await verify_api_key(KvApiKeyStore(kv), presented)

    assert principal is not None
    assert (principal.role, principal.kind, principal.name) == (Role.BIEN_TAP, "api_key", record.name)
    assert principal.subject == f"api-key:{record.key_id}"


async def test_the_stored_record_holds_the_hash_of_the_secret_never_the_secret() -> None:
    kv = FakeKv()
    record, presented = make_key(kv)
    _, secret = parse_api_key(presented)  # type: ignore[misc]

    assert secret not in kv.values[record.key_id].decode()
    assert record.secret_sha256 == secret_digest(secret)


async def test_a_wrong_secret_for_a_known_id_is_refused() -> None:
    kv = FakeKv()
    record, presented = make_key(kv)
    wrong = f"mam_{record.key_id}_{'0' * 64}"

    assert await verify_api_key(KvApiKeyStore(kv), wrong) is None
    assert await verify_api_key(KvApiKeyStore(kv), presented) is not None


async def test_an_unknown_key_is_refused_and_a_malformed_one_is_not_even_looked_up() -> None:
    kv = FakeKv()
    store = KvApiKeyStore(kv)
    _, _, unknown = new_api_key()

    assert await verify_api_key(store, unknown) is None
    assert kv.reads == 1
    assert await verify_api_key(store, "mam_nothing_like_a_key") is None
    assert kv.reads == 1


async def test_a_revoked_key_is_refused() -> None:
    kv = FakeKv()
    record, presented = make_key(kv)
    kv.put(record.model_copy(update={"revoked": True}))

    assert await verify_api_key(KvApiKeyStore(kv), presented) is None


async def test_a_revocation_takes_effect_once_the_cached_record_is_older_than_the_cache_time() -> None:
    kv, clock = FakeKv(), Clock()
    store = KvApiKeyStore(kv, cache_ttl_s=15, clock=clock)
    record, presented = make_key(kv)
    assert await verify_api_key(store, presented) is not None

    kv.put(record.model_copy(update={"revoked": True}))
    clock.now += 14.9
    still_cached = await verify_api_key(store, presented)
    clock.now += 0.2
    after = await verify_api_key(store, presented)

    assert still_cached is not None
    assert after is None


async def test_forgetting_a_key_makes_the_next_check_read_it_again() -> None:
    kv = FakeKv()
    store = KvApiKeyStore(kv, cache_ttl_s=30)
    record, presented = make_key(kv)
    await verify_api_key(store, presented)
    kv.put(record.model_copy(update={"revoked": True}))

    store.forget(record.key_id)

    assert await verify_api_key(store, presented) is None


async def test_a_bare_bucket_is_read_afresh_on_every_check() -> None:
    kv = FakeKv()
    _, presented = make_key(kv)

    await verify_api_key(kv, presented)
    await verify_api_key(kv, presented)

    assert kv.reads == 2


@pytest.mark.parametrize("ttl", [-1, 30.01, 3600])
def test_a_cache_longer_than_thirty_seconds_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="cache_ttl_s"):
        KvApiKeyStore(FakeKv(), cache_ttl_s=ttl)


async def test_an_unreadable_record_refuses_the_key() -> None:
    kv = FakeKv()
    record, presented = make_key(kv)
    kv.values[record.key_id] = b'{"key_id": "broken"}'

    assert await verify_api_key(KvApiKeyStore(kv), presented) is None
