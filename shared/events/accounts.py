"""Payload models of the accounts' audit trail (aggregate ``user``, id = the user name).

Accounts themselves live in NATS KV (mutable, with their password hashes); the
log only records who did what to them, so these payloads never carry a
secret: no password, no hash, no token. Sign-in failures are recorded for
existing accounts only: a name nobody has may be a password typed into the
wrong field, and an attacker must not be able to grow the permanent log.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from shared.events.models import EventPayload, register_payload
from shared.fields import Note, PersonName

# The roles an account can have (shared.auth.Role without ``public``).
AccountRole = Literal["phong-vien", "luu-tru", "bien-tap", "quan-tri"]
# How the change was made: the HTTP API, ``mam user …`` on the server, or the demo set.
Via = Literal["api", "cli", "demo"]


class UserCreatedV1(EventPayload):
    """An account was created (who = envelope actor)."""

    EVENT_TYPE: ClassVar[str] = "user.created"
    SCHEMA_VERSION: ClassVar[int] = 1

    display_name: PersonName
    role: AccountRole
    active: bool = True
    via: Via = "api"


class UserRoleChangedV1(EventPayload):
    """An administrator gave the account another role."""

    EVENT_TYPE: ClassVar[str] = "user.role_changed"
    SCHEMA_VERSION: ClassVar[int] = 1

    role: AccountRole
    previous_role: AccountRole
    via: Via = "api"


class UserDisabledV1(EventPayload):
    """The account may no longer sign in; its refresh tokens stop working."""

    EVENT_TYPE: ClassVar[str] = "user.disabled"
    SCHEMA_VERSION: ClassVar[int] = 1

    note: Note = ""
    via: Via = "api"


class UserEnabledV1(EventPayload):
    """A disabled account may sign in again."""

    EVENT_TYPE: ClassVar[str] = "user.enabled"
    SCHEMA_VERSION: ClassVar[int] = 1

    via: Via = "api"


class UserPasswordChangedV1(EventPayload):
    """The password was set anew (never the password itself); earlier sign-ins are ended."""

    EVENT_TYPE: ClassVar[str] = "user.password_changed"
    SCHEMA_VERSION: ClassVar[int] = 1

    via: Via = "api"


class UserSignInFailedV1(EventPayload):
    """A sign-in to an existing account was refused (never the password tried).

    ``failures`` counts the failures in the current window; ``locked_until`` is
    set when this failure locked the account.
    """

    EVENT_TYPE: ClassVar[str] = "user.sign_in_failed"
    SCHEMA_VERSION: ClassVar[int] = 1

    reason: Literal["wrong_password", "account_disabled"]
    failures: int = Field(ge=0)
    locked_until: datetime | None = None


for _model in (
    UserCreatedV1,
    UserRoleChangedV1,
    UserDisabledV1,
    UserEnabledV1,
    UserPasswordChangedV1,
    UserSignInFailedV1,
):
    register_payload(_model)
