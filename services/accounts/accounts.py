"""What the accounts service does, for the HTTP API and for ``mam user …`` alike.

State lives in NATS KV (``store.py``); each change that matters for an audit is
also appended to the event log as a ``user.*`` event, after the KV write
succeeded and without any secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import TypeAdapter, ValidationError

from services.accounts.domain import (
    ACCOUNT_ROLES,
    LockoutPolicy,
    RefreshFamily,
    Refuse,
    Rotate,
    SignInGuard,
    UserRecord,
    after_failure,
    decide_logout,
    decide_refresh,
    locked_for,
    normalise_username,
    parse_refresh_token,
    password_problem,
    start_family,
    valid_username,
)
from services.accounts.passwords import Passwords
from services.accounts.store import AccountBuckets, UpdateConflict
from shared.api_keys import ApiKeyRecord, new_api_key, secret_digest
from shared.auth import Role, issue_access_token
from shared.events.accounts import (
    UserCreatedV1,
    UserDisabledV1,
    UserEnabledV1,
    UserPasswordChangedV1,
    UserRoleChangedV1,
    UserSignInFailedV1,
    Via,
)
from shared.events.envelope import new_event
from shared.events.models import EventPayload
from shared.fields import PersonName, text_problem
from shared.http import UserError
from shared.ports import EventLog
from shared.revocations import read_void_before, revoke_tokens, wait_to_issue
from shared.settings import Settings

# --- answers ---------------------------------------------------------------------------------


class Throttled(UserError):
    """A 429 whose ``Retry-After`` header says when to try again."""

    def __init__(self, retry_after_s: int, code: str, message_vi: str, message_en: str) -> None:
        super().__init__(429, code, message_vi, message_en, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


def invalid_credentials() -> UserError:
    # One answer for an unknown name, a wrong password and a disabled account.
    return UserError(
        401, "invalid_credentials", "Tên đăng nhập hoặc mật khẩu không đúng.", "Wrong user name or password."
    )


def account_locked(remaining_s: float) -> Throttled:
    seconds = max(1, math.ceil(remaining_s))
    minutes = math.ceil(seconds / 60)
    return Throttled(
        seconds,
        "account_locked",
        f"Tài khoản tạm khóa vì đăng nhập sai quá nhiều lần. Vui lòng thử lại sau {minutes} phút.",
        f"The account is locked for a while after too many failed sign-ins. Try again in {minutes} min.",
    )


def invalid_refresh_token() -> UserError:
    return UserError(
        401,
        "invalid_refresh_token",
        "Phiên đăng nhập đã hết hạn hoặc không còn hiệu lực; vui lòng đăng nhập lại.",
        "The refresh token is expired, revoked or unknown; sign in again.",
    )


def busy() -> UserError:
    return UserError(
        409, "conflict", "Tài khoản đang được thay đổi liên tục; hãy thử lại.", "The account keeps changing; retry."
    )


def user_not_found(username: str) -> UserError:
    return UserError(404, "user_not_found", f"Không có tài khoản {username}.", f"No account {username}.")


def _check_username(username: str) -> str:
    name = normalise_username(username)
    if not valid_username(name):
        raise UserError(
            422,
            "invalid_username",
            "Tên đăng nhập chỉ gồm chữ thường không dấu, số, '-' và '_', tối đa 64 ký tự.",
            "A user name has lower-case ASCII letters, digits, '-' and '_' only, at most 64 characters.",
        )
    return name


def _check_role(role: Role) -> Role:
    if role not in ACCOUNT_ROLES:
        raise UserError(422, "invalid_role", "Vai trò không hợp lệ.", f"Invalid role {role.value!r}.")
    return role


_DISPLAY_NAME: TypeAdapter[str] = TypeAdapter(PersonName)


def _check_display_name(value: str) -> str:
    """A display name within the input contract (a person's name: NFC, ≤ 150 characters)."""
    try:
        return _DISPLAY_NAME.validate_python(value)
    except ValidationError as exc:
        reason = text_problem(dict(exc.errors()[0]))
        vi, en = (reason.message_vi, reason.message_en) if reason else ("không hợp lệ", "invalid")
        raise UserError(422, "invalid_display_name", f"Tên hiển thị: {vi}", f"Display name: {en}") from exc


def _check_password(password: str, username: str) -> None:
    problem = password_problem(password, username)
    if problem is not None:
        raise UserError(422, "weak_password", problem[0], problem[1])


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str

    def body(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


@dataclass(frozen=True)
class DemoAccount:
    username: str
    display_name: str
    role: Role
    password: str


# One account per role for `make run` on loopback; the passwords are public (README).
DEMO_ACCOUNTS = (
    DemoAccount("phong-vien", "Phóng viên (tài khoản mẫu)", Role.PHONG_VIEN, "demo-phong-vien"),
    DemoAccount("luu-tru", "Lưu trữ viên (tài khoản mẫu)", Role.LUU_TRU, "demo-luu-tru"),
    DemoAccount("bien-tap", "Biên tập viên (tài khoản mẫu)", Role.BIEN_TAP, "demo-bien-tap"),
    DemoAccount("quan-tri", "Quản trị (tài khoản mẫu)", Role.QUAN_TRI, "demo-quan-tri"),
)


def unknown_name_key(name: str, secret: bytes) -> str:
    """The KV key of an unknown name's failures: a keyed hash, since the "name" may be
    anything, a password typed into the wrong field too, and must not be readable there."""
    return hmac.new(secret, name.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


class Accounts:
    """Accounts, sign-in, refresh tokens and API keys over the KV buckets."""

    def __init__(
        self,
        buckets: AccountBuckets,
        events: EventLog,
        settings: Settings,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        passwords: Passwords | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.buckets = buckets
        self.events = events
        self.settings = settings
        self.signing_key = signing_key
        self.passwords = passwords or Passwords()
        self.clock = clock
        self.policy = LockoutPolicy(
            settings.signin_max_failures, settings.signin_failure_window_s, settings.signin_lockout_s
        )

    async def _record(self, username: str, actor: str, payload: EventPayload) -> None:
        await self.events.append(new_event(payload, aggregate_id=username, actor=actor))

    # --- sign-in ---------------------------------------------------------------------------

    async def sign_in(self, username: str, password: str) -> TokenPair:
        """Tokens for a right password; else one answer whatever was wrong, or 429 when locked.

        An unknown name costs the same as a known one: its password is checked against
        a dummy hash, and its failures lock it alike (kept under a hash of the name).
        """
        now = self.clock()
        name = normalise_username(username)
        user = await self.buckets.users.value(name) if valid_username(name) else None
        unknown_key = unknown_name_key(name, self._names_secret())
        guard = user.guard if user else (await self.buckets.unknown_names.value(unknown_key) or SignInGuard())
        remaining = locked_for(guard, now)
        if remaining is not None:
            raise account_locked(remaining)
        ok = await self.passwords.verify(user.password_hash if user else None, password)
        if user is not None and ok and user.active:
            return await self._signed_in(user, password, now)
        try:
            after = await self._count_failure(user, unknown_key, now)
        except UpdateConflict as exc:
            raise invalid_credentials() from exc
        remaining = locked_for(after, now) if after else None
        if remaining is not None:
            raise account_locked(remaining)
        raise invalid_credentials()

    async def _count_failure(self, user: UserRecord | None, unknown_key: str, now: datetime) -> SignInGuard | None:
        if user is None:
            guard_change = await self.buckets.unknown_names.change(
                unknown_key, lambda g: after_failure(g or SignInGuard(), now, self.policy)
            )
            return guard_change.after

        def fail(current: UserRecord | None) -> UserRecord | None:
            if current is None:
                return None
            return current.model_copy(update={"guard": after_failure(current.guard, now, self.policy)})

        change = await self.buckets.users.change(user.username, fail)
        if change.after is None or change.before is None:
            return None
        after = change.after.guard
        newly_locked = after.locked_until is not None and after.locked_until != change.before.guard.locked_until
        await self._record(
            user.username,
            user.username,
            UserSignInFailedV1(
                reason="wrong_password" if user.active else "account_disabled",
                failures=after.failures,
                locked_until=after.locked_until if newly_locked else None,
            ),
        )
        return after

    async def _signed_in(self, user: UserRecord, password: str, now: datetime) -> TokenPair:
        rehashed = await self.passwords.hash(password) if self.passwords.needs_rehash(user.password_hash) else None
        if user.guard != SignInGuard() or rehashed:

            def reset(current: UserRecord | None) -> UserRecord | None:
                if current is None or current.password_hash != user.password_hash:
                    return None  # changed meanwhile: leave it
                update: dict[str, Any] = {"guard": SignInGuard()}
                if rehashed:
                    update["password_hash"] = rehashed
                return current.model_copy(update=update)

            await self.buckets.users.change(user.username, reset)
        family, refresh = start_family(
            user.username, now, self.settings.refresh_token_ttl_s, self.settings.refresh_session_max_s
        )
        await self.buckets.sessions.create(family.family_id, family)
        return await self._tokens(user, refresh)

    def _names_secret(self) -> bytes:
        """The key that hashes unknown names: derived from the signing key, so every
        replica of the service agrees on it and nobody without that key can test guesses."""
        if self.signing_key is None:
            raise RuntimeError("this Accounts has no signing key (the CLI signs nobody in)")
        raw = self.signing_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return hashlib.sha256(b"mam-unknown-sign-in-names\0" + raw).digest()

    async def _tokens(self, user: UserRecord, refresh_token: str) -> TokenPair:
        if self.signing_key is None:
            raise RuntimeError("this Accounts has no signing key (the CLI issues no tokens)")
        # Not void at birth: a user revoked this very second (a role change, then a refresh)
        # gets a token of the next one.
        void_before = await read_void_before(self.buckets.revocations, user.username)
        wait = wait_to_issue(void_before, time.time())
        if wait > 0:
            await asyncio.sleep(wait)
        ttl = self.settings.access_token_ttl_s
        access, _ = issue_access_token(user.principal(), self.signing_key, ttl)
        return TokenPair(access, ttl, refresh_token)

    async def refresh(self, token: str) -> TokenPair:
        """Rotate a refresh token: a new pair, with the account's role as it is now."""
        family_id = parse_refresh_token(token)
        if family_id is None:
            raise invalid_refresh_token()
        now = self.clock()
        found = await self.buckets.sessions.value(family_id)
        user = await self.buckets.users.value(found.username) if found else None
        outcome: Rotate | Refuse = Refuse("unknown")

        def decide(family: RefreshFamily | None) -> RefreshFamily | None:
            nonlocal outcome
            outcome = decide_refresh(
                family, token, user, now, self.settings.refresh_token_ttl_s, self.settings.refresh_session_max_s
            )
            return outcome.family

        try:
            await self.buckets.sessions.change(family_id, decide)
        except UpdateConflict as exc:
            raise invalid_refresh_token() from exc
        if isinstance(outcome, Rotate) and user is not None:
            return await self._tokens(user, outcome.token)
        raise invalid_refresh_token()

    async def logout(self, token: str) -> None:
        """Revoke the sign-in the refresh token belongs to (silently nothing for a bad token)."""
        family_id = parse_refresh_token(token)
        if family_id is not None:
            await self.buckets.sessions.change(family_id, lambda family: decide_logout(family, token))

    # --- users -----------------------------------------------------------------------------

    async def create_user(
        self, actor: str, username: str, display_name: str, role: Role, password: str, *, via: Via = "api"
    ) -> UserRecord:
        name = _check_username(username)
        _check_role(role)
        display_name = _check_display_name(display_name)
        _check_password(password, name)
        payload = UserCreatedV1(display_name=display_name, role=role.value, via=via)
        now = self.clock()
        record = UserRecord(
            username=name,
            display_name=display_name,
            role=role,
            password_hash=await self.passwords.hash(password),
            created_at=now,
            updated_at=now,
        )
        if not await self.buckets.users.create(name, record):
            raise UserError(409, "user_exists", f"Tài khoản {name} đã có.", f"The account {name} already exists.")
        await self._record(name, actor, payload)
        return record

    async def change_user(
        self,
        actor: str,
        username: str,
        *,
        role: Role | None = None,
        display_name: str | None = None,
        active: bool | None = None,
        password: str | None = None,
        via: Via = "api",
    ) -> UserRecord:
        """Change an account; a new password or disabling ends its sign-ins (refresh tokens)."""
        name = normalise_username(username)
        if not valid_username(name):
            raise user_not_found(username)
        if role is not None:
            _check_role(role)
        if display_name is not None:
            display_name = _check_display_name(display_name)
        new_hash = None
        if password is not None:
            _check_password(password, name)
            new_hash = await self.passwords.hash(password)
        now = self.clock()

        def change(current: UserRecord | None) -> UserRecord | None:
            if current is None:
                return None
            update: dict[str, Any] = {"updated_at": now}
            if role is not None:
                update["role"] = role
            if display_name is not None:
                update["display_name"] = display_name
            if active is not None:
                update["active"] = active
            if new_hash is not None:
                update["password_hash"] = new_hash
                update["guard"] = SignInGuard()  # a reset password unlocks the account
            if new_hash is not None or (active is False and current.active):
                update["sessions_valid_after"] = now
            return current.model_copy(update=update)

        try:
            result = await self.buckets.users.change(name, change)
        except UpdateConflict as exc:
            raise busy() from exc
        before, after = result.before, result.after
        if before is None or after is None:
            raise user_not_found(name)
        ended = after.sessions_valid_after is not None and after.sessions_valid_after != before.sessions_valid_after
        if ended or after.role != before.role:
            # Disabled, a new password or another role: the access tokens already out stop too
            # (every service reads this within token_revocation_cache_ttl_s). A new role keeps
            # the refresh tokens: a refresh gives a token with it.
            await revoke_tokens(self.buckets.revocations, name, now)
        if after.role != before.role:
            await self._record(
                name,
                actor,
                UserRoleChangedV1(role=after.role.value, previous_role=before.role.value, via=via),
            )
        if before.active and not after.active:
            await self._record(name, actor, UserDisabledV1(via=via))
        if after.active and not before.active:
            await self._record(name, actor, UserEnabledV1(via=via))
        if new_hash is not None:
            await self._record(name, actor, UserPasswordChangedV1(via=via))
        return after

    async def user(self, username: str) -> UserRecord | None:
        name = normalise_username(username)
        return await self.buckets.users.value(name) if valid_username(name) else None

    async def users(self) -> list[UserRecord]:
        return await self.buckets.users.all()

    async def ensure_demo_accounts(self) -> list[str]:
        """Create the demo accounts that do not exist yet (their passwords may have been changed)."""
        created = []
        for demo in DEMO_ACCOUNTS:
            if await self.buckets.users.value(demo.username) is None:
                try:
                    await self.create_user(
                        "system", demo.username, demo.display_name, demo.role, demo.password, via="demo"
                    )
                except UserError as exc:
                    if exc.code != "user_exists":  # another replica made it meanwhile
                        raise
                    continue
                created.append(demo.username)
        return created

    # --- API keys --------------------------------------------------------------------------

    async def create_api_key(self, actor: str, name: str, role: Role) -> tuple[ApiKeyRecord, str]:
        """A new key: its record and the key itself, which is shown this once and never stored."""
        _check_role(role)
        while True:
            key_id, secret, presented = new_api_key()
            record = ApiKeyRecord(
                key_id=key_id,
                name=name,
                role=role,
                secret_sha256=secret_digest(secret),
                created_by=actor,
                created_at=self.clock(),
            )
            if await self.buckets.api_keys.create(key_id, record):
                return record, presented

    async def api_keys(self) -> list[ApiKeyRecord]:
        return await self.buckets.api_keys.all()

    async def revoke_api_key(self, actor: str, key_id: str) -> ApiKeyRecord:
        now = self.clock()

        def revoke(current: ApiKeyRecord | None) -> ApiKeyRecord | None:
            if current is None or current.revoked:
                return None
            return current.model_copy(update={"revoked": True, "revoked_at": now, "revoked_by": actor})

        result = await self.buckets.api_keys.change(key_id, revoke) if _is_key_id(key_id) else None
        if result is None or result.after is None:
            raise UserError(404, "api_key_not_found", f"Không có khóa API {key_id}.", f"No API key {key_id}.")
        self.buckets.key_reader.forget(key_id)
        return result.after


def _is_key_id(value: str) -> bool:
    return len(value) == 16 and all(c in "0123456789abcdef" for c in value)


def api_key_view(record: ApiKeyRecord) -> dict[str, Any]:
    """An API key as lists show it: never the secret, nor its hash."""
    return {
        "id": record.key_id,
        "name": record.name,
        "role": record.role.value,
        "created_by": record.created_by,
        "created_at": record.created_at.isoformat(),
        "revoked": record.revoked,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "revoked_by": record.revoked_by,
    }
