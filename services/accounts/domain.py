"""The accounts' pure logic: records as stored in KV, sign-in lock-out, refresh-token rotation.

Nothing here does I/O; the store (``store.py``) applies these decisions with
optimistic updates, and the unit tests check them without servers.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Principal, Role

# --- names and passwords ---------------------------------------------------------------------

# A user name is a subject token (it is the ``user`` aggregate's id) and a KV key:
# lower-case letters, digits, "-" and "_", at most 64 characters, starting with a letter or digit.
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PASSWORD_MIN = 10
PASSWORD_MAX = 256
ACCOUNT_ROLES = (Role.PHONG_VIEN, Role.LUU_TRU, Role.BIEN_TAP, Role.QUAN_TRI)


def normalise_username(value: str) -> str:
    """What people type (any case, spaces around) as the stored name."""
    return value.strip().lower()


def valid_username(value: str) -> bool:
    return bool(USERNAME.fullmatch(value))


def password_problem(password: str, username: str) -> tuple[str, str] | None:
    """Why a new password is refused, in Vietnamese and English; None if it is acceptable."""
    if len(password) < PASSWORD_MIN:
        return (
            f"Mật khẩu phải có ít nhất {PASSWORD_MIN} ký tự.",
            f"The password needs at least {PASSWORD_MIN} characters.",
        )
    if len(password) > PASSWORD_MAX:
        return (f"Mật khẩu dài quá {PASSWORD_MAX} ký tự.", f"The password is longer than {PASSWORD_MAX} characters.")
    if password.strip().lower() == username:
        return ("Mật khẩu không được trùng tên đăng nhập.", "The password must not be the user name.")
    return None


# --- sign-in lock-out ------------------------------------------------------------------------


class SignInGuard(BaseModel):
    """Recent failed sign-ins of one name, and whether it is locked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failures: int = Field(default=0, ge=0)
    first_failure_at: datetime | None = None
    locked_until: datetime | None = None


@dataclass(frozen=True)
class LockoutPolicy:
    """``max_failures`` failures within ``window_s`` lock the name for ``lockout_s``."""

    max_failures: int = 5
    window_s: float = 900.0
    lockout_s: float = 900.0


def locked_for(guard: SignInGuard, now: datetime) -> float | None:
    """Seconds the name stays locked, or None when it may try to sign in."""
    if guard.locked_until is None or guard.locked_until <= now:
        return None
    return (guard.locked_until - now).total_seconds()


def after_failure(guard: SignInGuard, now: datetime, policy: LockoutPolicy) -> SignInGuard:
    """The guard once one more failure happened at ``now``.

    Failures count within a window that opens at the first of them; the one that
    reaches ``max_failures`` locks the name, and the count starts again after it.
    """
    window_open = guard.first_failure_at is not None and now - guard.first_failure_at < timedelta(
        seconds=policy.window_s
    )
    failures = guard.failures + 1 if window_open else 1
    first = guard.first_failure_at if window_open else now
    if failures >= policy.max_failures:  # the next failure after the lock-out opens a new window
        return SignInGuard(
            failures=failures, first_failure_at=None, locked_until=now + timedelta(seconds=policy.lockout_s)
        )
    return SignInGuard(failures=failures, first_failure_at=first, locked_until=guard.locked_until)


# --- users -----------------------------------------------------------------------------------


class UserRecord(BaseModel):
    """One account as stored in the users bucket (key = user name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str
    display_name: str
    role: Role
    active: bool = True
    password_hash: str
    guard: SignInGuard = SignInGuard()
    created_at: datetime
    updated_at: datetime
    # Refresh tokens of sign-ins before this moment stop working (password reset, disabling).
    sessions_valid_after: datetime | None = None

    def principal(self) -> Principal:
        return Principal(subject=self.username, name=self.display_name, role=self.role, kind="user")

    def view(self) -> dict[str, object]:
        """What the API shows of an account: never the hash."""
        return {
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role.value,
            "active": self.active,
            "locked_until": self.guard.locked_until.isoformat() if self.guard.locked_until else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


# --- refresh tokens --------------------------------------------------------------------------

REFRESH_PREFIX = "mamr_"
_REFRESH = re.compile(r"^mamr_([0-9a-f]{32})_([0-9a-f]{64})$")
# Rotated-away tokens remembered per sign-in, to recognise a reuse.
MAX_REMEMBERED = 64


def new_refresh_token(family_id: str | None = None) -> tuple[str, str]:
    """``(family id, token)``: a new sign-in's first token, or the next one of ``family_id``."""
    family = family_id or secrets.token_hex(16)
    return family, f"{REFRESH_PREFIX}{family}_{secrets.token_hex(32)}"


def parse_refresh_token(token: str) -> str | None:
    """The family id of a well-formed refresh token."""
    match = _REFRESH.fullmatch(token)
    return match.group(1) if match else None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class RefreshFamily(BaseModel):
    """The refresh tokens of one sign-in, as stored (key = family id): only hashes.

    Each use rotates the token; the one before is remembered, so presenting it
    again (a copy someone kept) revokes the whole family.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    family_id: str
    username: str
    current_sha256: str
    previous_sha256: tuple[str, ...] = ()
    signed_in_at: datetime
    expires_at: datetime  # of the current token
    revoked: bool = False
    revoked_reason: str = ""


@dataclass(frozen=True)
class Rotate:
    family: RefreshFamily  # to store, with the new token's hash
    token: str  # the new refresh token, for the client


@dataclass(frozen=True)
class Refuse:
    reason: Literal["unknown", "revoked", "expired", "reused", "account"]
    family: RefreshFamily | None = None  # to store (revoked), when the refusal changes it


def _matches(digest: str, stored: str) -> bool:
    return hmac.compare_digest(digest, stored)


def start_family(username: str, now: datetime, ttl_s: float, session_max_s: float) -> tuple[RefreshFamily, str]:
    """A new sign-in's refresh family and its first token."""
    family_id, token = new_refresh_token()
    family = RefreshFamily(
        family_id=family_id,
        username=username,
        current_sha256=token_digest(token),
        signed_in_at=now,
        expires_at=min(now + timedelta(seconds=ttl_s), now + timedelta(seconds=session_max_s)),
    )
    return family, token


def decide_refresh(
    family: RefreshFamily | None,
    presented: str,
    user: UserRecord | None,
    now: datetime,
    ttl_s: float,
    session_max_s: float,
) -> Rotate | Refuse:
    """What presenting ``presented`` does to its family: rotate it, or refuse (and maybe revoke)."""
    if family is None:
        return Refuse("unknown")
    digest = token_digest(presented)
    if family.revoked:
        return Refuse("revoked")
    if any(_matches(digest, old) for old in family.previous_sha256):
        return Refuse("reused", family.model_copy(update={"revoked": True, "revoked_reason": "reused"}))
    if not _matches(digest, family.current_sha256):
        return Refuse("unknown")
    if family.expires_at <= now:
        return Refuse("expired")
    if (
        user is None
        or not user.active
        or user.username != family.username
        or (user.sessions_valid_after is not None and family.signed_in_at < user.sessions_valid_after)
    ):
        return Refuse("account", family.model_copy(update={"revoked": True, "revoked_reason": "account"}))
    _, token = new_refresh_token(family.family_id)
    session_end = family.signed_in_at + timedelta(seconds=session_max_s)
    rotated = family.model_copy(
        update={
            "current_sha256": token_digest(token),
            "previous_sha256": (*family.previous_sha256, family.current_sha256)[-MAX_REMEMBERED:],
            "expires_at": min(now + timedelta(seconds=ttl_s), session_end),
        }
    )
    if rotated.expires_at <= now:
        return Refuse("expired")
    return Rotate(rotated, token)


def decide_logout(family: RefreshFamily | None, presented: str) -> RefreshFamily | None:
    """The family to store revoked, when ``presented`` is (or was) one of its tokens."""
    if family is None or family.revoked:
        return None
    digest = token_digest(presented)
    if _matches(digest, family.current_sha256) or any(_matches(digest, old) for old in family.previous_sha256):
        return family.model_copy(update={"revoked": True, "revoked_reason": "logout"})
    return None
