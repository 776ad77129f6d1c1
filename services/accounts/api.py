"""accounts HTTP API: sign-in (OAuth2 password flow), refresh, logout, who am I; the
administrators' users and API keys. Thin handlers over ``accounts.Accounts``.

Access tokens are Ed25519-signed JWTs (``shared.auth``) that every service
verifies locally. They cannot be recalled: logging out revokes the refresh
token, and the access token dies on its own within ``access_token_ttl_s``
(5 minutes by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordRequestForm
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel, ConfigDict, Field

from services.accounts.accounts import Accounts, api_key_view
from shared.access import authenticate, refusal, requires
from shared.auth import ROLE_LABELS_VI, Principal, Role
from shared.fields import Line, PersonName
from shared.http import UserError, app_deps
from shared.policy import Action
from shared.ports import EventLog
from shared.settings import Settings


@dataclass
class AccountsDeps:
    settings: Settings
    events: EventLog
    nc: NatsClient  # the KV buckets' connection
    accounts: Accounts

    async def readiness(self) -> dict[str, bool]:
        return {"nats": self.nc.is_connected and await self.events.ready()}

    async def close(self) -> None:
        await self.events.close()
        await self.nc.drain()


Deps = Annotated[AccountsDeps, Depends(app_deps)]
# Sign-in takes credentials in its body: open to anyone (no policy action).
router = APIRouter(prefix="/v1")

# --- who is calling ----------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)
# The policy's gate (shared.access): administrators only, 401/403 bilingual for anyone else.
MANAGES_ACCOUNTS = requires(Action.ACCOUNTS)


async def administrator(
    principal: Annotated[Principal, Depends(MANAGES_ACCOUNTS)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    d: Deps,
) -> Principal:
    """Beyond the policy: a signed-in administrator (an access token, not an API key or a
    configured static token) whose account is still active and still an administrator,
    as KV says now, so a demotion or a disabling takes effect here at once."""
    signed_in = credentials is not None and credentials.credentials.count(".") == 2
    if signed_in and principal.kind == "user":
        user = await d.accounts.user(principal.subject)
        if user is not None and user.active and user.role is Role.QUAN_TRI:
            return principal
    raise UserError(
        403,
        "forbidden",
        "Chỉ quản trị viên đã đăng nhập mới được quản lý tài khoản và khóa API.",
        "Only a signed-in administrator may manage accounts and API keys.",
    )


Admin = Annotated[Principal, Depends(administrator)]
# Every route here is the policy's ``accounts`` action (declared once, for all of them).
admin_router = APIRouter(prefix="/v1", dependencies=[Depends(MANAGES_ACCOUNTS)])


# --- request bodies ----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RefreshRequest(_Body):
    refresh_token: str = Field(max_length=200)


class CreateUser(_Body):
    username: str = Field(max_length=64)
    display_name: PersonName
    role: Role
    password: str = Field(max_length=256)


class EditUser(_Body):
    role: Role | None = None
    display_name: PersonName | None = None
    active: bool | None = None
    password: str | None = Field(default=None, max_length=256)


class CreateApiKey(_Body):
    name: Line = Field(min_length=1)
    role: Role


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


# --- sign-in -----------------------------------------------------------------------------------


@router.post("/auth/token", summary="Đăng nhập (OAuth2, mật khẩu) / sign in")
async def sign_in(form: Annotated[OAuth2PasswordRequestForm, Depends()], d: Deps, response: Response) -> dict[str, Any]:
    """Form fields ``username`` and ``password``: an access token (``expires_in`` seconds) and
    a refresh token. Wrong name and wrong password get the same 401; too many failures, 429."""
    response.headers.update(_NO_STORE)
    return (await d.accounts.sign_in(form.username[:256], form.password[:1024])).body()


@router.post("/auth/refresh", summary="Đổi mã làm mới lấy mã mới / rotate a refresh token")
async def refresh(body: RefreshRequest, d: Deps, response: Response) -> dict[str, Any]:
    """A new access token and a new refresh token; the one presented stops working, and
    presenting it again ends the sign-in (someone else may hold a copy)."""
    response.headers.update(_NO_STORE)
    return (await d.accounts.refresh(body.refresh_token)).body()


@router.post("/auth/logout", status_code=204, summary="Đăng xuất / sign out")
async def logout(body: RefreshRequest, d: Deps) -> Response:
    """Revokes the refresh token's sign-in. The access token stays valid until it expires
    (at most ``access_token_ttl_s``): services verify it without asking anyone."""
    await d.accounts.logout(body.refresh_token)
    return Response(status_code=204)


@router.get("/auth/me", summary="Tôi là ai / who am I")
async def me(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> dict[str, Any]:
    """The caller as every service sees it: an access token, an API key or a configured token."""
    principal = await authenticate(request, credentials)
    if principal.role is Role.PUBLIC:
        raise refusal(principal)
    return {
        "subject": principal.subject,
        "name": principal.name,
        "role": principal.role.value,
        "role_label": ROLE_LABELS_VI[principal.role],
        "kind": principal.kind,
    }


# --- users (administrators) -----------------------------------------------------------------


@admin_router.post("/users", status_code=201, summary="Tạo tài khoản / create an account")
async def create_user(body: CreateUser, admin: Admin, d: Deps) -> dict[str, Any]:
    user = await d.accounts.create_user(admin.actor, body.username, body.display_name, body.role, body.password)
    return user.view()


@admin_router.get("/users", summary="Danh sách tài khoản / list accounts")
async def list_users(admin: Admin, d: Deps) -> dict[str, Any]:
    return {"users": [u.view() for u in await d.accounts.users()]}


@admin_router.patch("/users/{username}", summary="Sửa tài khoản / change an account")
async def edit_user(username: str, body: EditUser, admin: Admin, d: Deps) -> dict[str, Any]:
    """Role, display name, active, or a new password (which also unlocks the account and
    ends its sign-ins). Administrators cannot disable or demote themselves."""
    if username.strip().lower() == admin.subject and (
        body.active is False or (body.role is not None and body.role is not Role.QUAN_TRI)
    ):
        raise UserError(
            422,
            "cannot_demote_self",
            "Không thể tự vô hiệu hóa hoặc hạ quyền của chính mình; hãy nhờ quản trị viên khác.",
            "You cannot disable or demote yourself; ask another administrator.",
        )
    user = await d.accounts.change_user(
        admin.actor,
        username,
        role=body.role,
        display_name=body.display_name,
        active=body.active,
        password=body.password,
    )
    return user.view()


# --- API keys (administrators) -------------------------------------------------------------


@admin_router.post("/api-keys", status_code=201, summary="Tạo khóa API cho máy / create an API key")
async def create_api_key(body: CreateApiKey, admin: Admin, d: Deps, response: Response) -> dict[str, Any]:
    """The key is in this answer only (``key``); it is stored as a hash and cannot be shown again."""
    response.headers.update(_NO_STORE)
    record, presented = await d.accounts.create_api_key(admin.actor, body.name, body.role)
    return {**api_key_view(record), "key": presented}


@admin_router.get("/api-keys", summary="Danh sách khóa API / list API keys")
async def list_api_keys(admin: Admin, d: Deps) -> dict[str, Any]:
    return {"api_keys": [api_key_view(k) for k in await d.accounts.api_keys()]}


@admin_router.delete("/api-keys/{key_id}", status_code=204, summary="Thu hồi khóa API / revoke an API key")
async def revoke_api_key(key_id: str, admin: Admin, d: Deps) -> Response:
    """Refused by every service within ``api_key_cache_ttl_s`` (≤ 30 s), by this one at once."""
    await d.accounts.revoke_api_key(admin.actor, key_id)
    return Response(status_code=204)
