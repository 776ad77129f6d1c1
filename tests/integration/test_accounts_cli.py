"""``mam user …`` against a real NATS that no service uses (the quiet one), from a fresh
install: the first administrator, passwords, disabling, the list, and the audit events."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nats.js.errors import NotFoundError

from deploy.cli import main
from deploy.local.stack import settings_env
from services.accounts.accounts import Accounts
from services.accounts.domain import UserRecord
from services.accounts.passwords import Passwords
from services.accounts.store import SESSIONS_BUCKET, UNKNOWN_NAMES_BUCKET, USERS_BUCKET, AccountBuckets, Records
from shared.api_keys import API_KEYS_BUCKET
from shared.auth import Role, verify_access_token
from shared.eventstore import EventStore
from shared.http import UserError
from shared.settings import Settings
from tests.conftest import run

pytestmark = pytest.mark.integration
PASSWORD = "mật khẩu quản trị 2025"


@pytest.fixture
def cli(quiet_nats: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """``mam`` as an administrator on the server runs it: MAM_* pointing at the quiet NATS."""
    for name in Settings.model_fields:
        monkeypatch.delenv(f"MAM_{name.upper()}", raising=False)
    for key, value in settings_env(quiet_nats).items():
        monkeypatch.setenv(key, value)
    yield quiet_nats


def mam(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["user", *argv])


async def _forget_accounts(settings: Settings) -> None:
    nc = await nats.connect(settings.resolved_nats_url)
    try:
        js = nc.jetstream()
        for bucket in (USERS_BUCKET, SESSIONS_BUCKET, UNKNOWN_NAMES_BUCKET, API_KEYS_BUCKET):
            try:
                await js.delete_key_value(bucket)
            except NotFoundError:
                pass
    finally:
        await nc.close()


async def _stored(settings: Settings, username: str) -> UserRecord | None:
    nc = await nats.connect(settings.resolved_nats_url)
    try:
        return await Records(await nc.jetstream().key_value(USERS_BUCKET), UserRecord).value(username)
    finally:
        await nc.close()


async def _events(settings: Settings, username: str) -> list[tuple[str, str, dict[str, Any]]]:
    store = await EventStore.from_settings(settings)
    try:
        return [(s.envelope.type, s.envelope.actor, s.envelope.payload) for s in await store.history("user", username)]
    finally:
        await store.close()


async def _sign_in(settings: Settings, username: str, password: str) -> str:
    """Sign in as the service would (against the quiet NATS): the access token, or the refusal's code."""
    nc = await nats.connect(settings.resolved_nats_url)
    events = await EventStore.from_settings(settings)
    key = Ed25519PrivateKey.generate()
    try:
        buckets = await AccountBuckets.open(nc.jetstream(), session_max_s=3600, guard_ttl_s=3600, api_key_cache_ttl_s=0)
        accounts = Accounts(buckets, events, settings, signing_key=key)
        try:
            pair = await accounts.sign_in(username, password)
        except UserError as exc:
            return exc.code
        return verify_access_token(pair.access_token, key.public_key()).role.value
    finally:
        await events.close()
        await nc.close()


def test_the_first_administrator_is_made_on_a_fresh_install_and_can_sign_in(
    cli: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(_forget_accounts(cli))
    name = f"chu-tich-{uuid.uuid4().hex[:6]}"

    code = mam(monkeypatch, "add", name, "--role", "quan-tri", "--name", "Nguyễn Văn An", stdin=PASSWORD + "\n")

    assert code == 0, capsys.readouterr().err
    assert "Quản trị" in capsys.readouterr().out
    stored = run(_stored(cli, name))
    assert stored is not None
    assert (stored.role, stored.active, stored.display_name) == (Role.QUAN_TRI, True, "Nguyễn Văn An")
    assert stored.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=1$")
    assert run(Passwords().verify(stored.password_hash, PASSWORD))
    assert run(_sign_in(cli, name, PASSWORD)) == "quan-tri"
    events = run(_events(cli, name))
    assert [(kind, payload["via"], payload["role"]) for kind, _, payload in events] == [
        ("user.created", "cli", "quan-tri")
    ]
    assert events[0][1].startswith("mam-cli:")
    assert PASSWORD not in str(events)


def test_passwd_sets_a_new_password_and_unlocks_and_disable_stops_sign_in(
    cli: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"bt-{uuid.uuid4().hex[:6]}"
    assert mam(monkeypatch, "add", name, "--role", "bien-tap", stdin=PASSWORD + "\n") == 0
    for i in range(cli.signin_max_failures):
        run(_sign_in(cli, name, f"sai {i}"))
    assert run(_sign_in(cli, name, PASSWORD)) == "account_locked"

    assert mam(monkeypatch, "passwd", name, "--password-stdin", stdin="mật khẩu mới tinh 2025\n") == 0
    assert run(_sign_in(cli, name, "mật khẩu mới tinh 2025")) == "bien-tap"

    assert mam(monkeypatch, "disable", name) == 0
    assert run(_sign_in(cli, name, "mật khẩu mới tinh 2025")) == "invalid_credentials"
    assert mam(monkeypatch, "enable", name) == 0
    assert run(_sign_in(cli, name, "mật khẩu mới tinh 2025")) == "bien-tap"
    kinds = [kind for kind, _, _ in run(_events(cli, name)) if kind != "user.sign_in_failed"]
    assert kinds == ["user.created", "user.password_changed", "user.disabled", "user.enabled"]

    capsys.readouterr()
    assert mam(monkeypatch, "list") == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(name))
    assert "bien-tap" in line and "active" in line


@pytest.mark.parametrize(
    ("argv", "stdin", "says"),
    [
        (["add", "quan tri", "--role", "quan-tri"], PASSWORD, "user name"),
        (["add", "{name}", "--role", "luu-tru"], "ngắn", "at least"),
        (["passwd", "khong-co-ai-{name}"], PASSWORD, "No account"),
        (["disable", "khong-co-ai-{name}"], "", "No account"),
    ],
)
def test_a_refused_command_exits_1_with_the_reason_in_both_languages(
    cli: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    says: str,
) -> None:
    name = f"x-{uuid.uuid4().hex[:6]}"

    code = mam(monkeypatch, *(a.format(name=name) for a in argv), stdin=stdin + "\n")

    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("Lỗi / error: ") and says in err


def test_adding_an_existing_user_exits_1_and_changes_nothing(
    cli: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"lt-{uuid.uuid4().hex[:6]}"
    assert mam(monkeypatch, "add", name, "--role", "luu-tru", stdin=PASSWORD + "\n") == 0

    assert mam(monkeypatch, "add", name, "--role", "quan-tri", stdin="một mật khẩu khác hẳn\n") == 1

    assert "already exists" in capsys.readouterr().err
    stored = run(_stored(cli, name))
    assert stored is not None and stored.role is Role.LUU_TRU
