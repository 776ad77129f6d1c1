"""Who may use the administrators' endpoints beyond what the policy says: a signed-in
administrator (an access token), whose account KV still shows active and administrator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.security import HTTPAuthorizationCredentials

from services.accounts.api import administrator
from services.accounts.domain import UserRecord
from shared.auth import Principal, Role
from shared.http import UserError

JWT = HTTPAuthorizationCredentials(scheme="Bearer", credentials="eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln")
BOSS = Principal("chu-tich", "Nguyễn Văn An", Role.QUAN_TRI)


def account(**changes: Any) -> UserRecord:
    now = datetime(2025, 3, 1, tzinfo=UTC)
    record = UserRecord(
        username="chu-tich",
        display_name="Nguyễn Văn An",
        role=Role.QUAN_TRI,
        password_hash="$argon2id$…",
        created_at=now,
        updated_at=now,
    )
    return record.model_copy(update=changes)


@dataclass
class Accounts:
    stored: UserRecord | None

    async def user(self, username: str) -> UserRecord | None:
        return self.stored if self.stored and self.stored.username == username else None


def deps(stored: UserRecord | None) -> Any:
    return SimpleNamespace(accounts=Accounts(stored))


async def test_a_signed_in_administrator_whose_account_is_active_passes() -> None:
    assert await administrator(BOSS, JWT, deps(account())) == BOSS


@pytest.mark.parametrize(
    ("principal", "credentials", "stored"),
    [
        (BOSS, HTTPAuthorizationCredentials(scheme="Bearer", credentials="a-static-demo-token"), account()),
        (Principal("chu-tich", "máy", Role.QUAN_TRI, "api_key"), JWT, account()),  # a token for a machine
        (BOSS, JWT, account(active=False)),
        (BOSS, JWT, account(role=Role.BIEN_TAP)),
        (BOSS, JWT, None),
        (BOSS, None, account()),
    ],
    ids=["static-token", "api-key", "disabled-since", "demoted-since", "deleted-since", "no-credentials"],
)
async def test_anyone_else_is_refused_with_a_bilingual_403(
    principal: Principal, credentials: HTTPAuthorizationCredentials | None, stored: UserRecord | None
) -> None:
    with pytest.raises(UserError) as refused:
        await administrator(principal, credentials, deps(stored))

    assert refused.value.status == 403
    assert refused.value.message_vi and refused.value.message_en
