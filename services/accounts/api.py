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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordRequestForm
from nats.aio.client import Client as NatsClient
from pydantic import BaseModel, ConfigDict, Field

from services.accounts.accounts import Accounts, api_key_view
from shared.api_keys import looks_like_api_key, verify_api_key
from shared.auth import ROLE_LABELS_VI, Principal, Role, TokenRefused, verify_access_token
from shared.fields import Line, PersonName
from shared.http import UserError, app_deps
from shared.ports import EventLog
from shared.settings import Settings


@dataclass
class AccountsDeps:
    settings: Settings
    events: EventLog
    nc: NatsClient  # the KV buckets' connection
    accounts: Accounts
    public_key: Ed25519PublicKey

    async def readiness(self) -> dict[str, bool]:
        return {"nats": self.nc.is_connected and await self.events.ready()}

    async def close(self) -> None:
        await self.events.close()
        await self.nc.drain()


Deps = Annotated[AccountsDeps, Depends(app_deps)]
router = APIRouter(prefix="/v1")

# --- who is calling ----------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)


async def caller(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)], d: Deps) -> Principal:
    """The principal of a Bearer access token (a signed JWT) or API key (``mam_…``)."""
    if credentials is None:
        raise UserError(
            401,
            "unauthenticated",
            "Cần đăng nhập: thiếu mã truy cập (Bearer token).",
            "Authentication required: missing Bearer token.",
        )
    presented = credentials.credentials
    if looks_like_api_key(presented):
        principal = await verify_api_key(d.accounts.buckets.key_reader, presented)
        if principal is None:
            raise UserError(
                401, "invalid_api_key", "Khóa API không hợp lệ hoặc đã bị thu hồi.", "Invalid or revoked API key."
            )
        return principal
    try:
        return verify_access_token(presented, d.public_key)
    except TokenRefused as exc:
        raise UserError(
            401, "invalid_token", "Mã truy cập không hợp lệ hoặc đã hết hạn.", "Invalid or expired access token."
        ) from exc


Caller = Annotated[Principal, Depends(caller)]


async def administrator(principal: Caller, d: Deps) -> Principal:
    """A signed-in administrator whose account is still active and still an administrator
    (checked in KV, so a demotion takes effect here at once). API keys administer nothing."""
    if principal.kind == "user" and principal.role is Role.QUAN_TRI:
        user = await d.accounts.user(principal.subject)
        if user is not None and user.active and user.role is Role.QUAN_TRI:
            return principal
    raise UserError(
        403,
        "forbidden",
        "Chỉ quản trị viên (đã đăng nhập) mới được quản lý tài khoản và khóa API.",
        "Only a signed-in administrator may manage accounts and API keys.",
    )


Admin = Annotated[Principal, Depends(administrator)]


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
async def me(principal: Caller) -> dict[str, Any]:
    return {
        "subject": principal.subject,
        "name": principal.name,
        "role": principal.role.value,
        "role_label": ROLE_LABELS_VI[principal.role],
        "kind": principal.kind,
    }


# --- users (administrators) -----------------------------------------------------------------


@router.post("/users", status_code=201, summary="Tạo tài khoản / create an account")
async def create_user(body: CreateUser, admin: Admin, d: Deps) -> dict[str, Any]:
    user = await d.accounts.create_user(admin.actor, body.username, body.display_name, body.role, body.password)
    return user.view()


@router.get("/users", summary="Danh sách tài khoản / list accounts")
async def list_users(admin: Admin, d: Deps) -> dict[str, Any]:
    return {"users": [u.view() for u in await d.accounts.users()]}


@router.patch("/users/{username}", summary="Sửa tài khoản / change an account")
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


@router.post("/api-keys", status_code=201, summary="Tạo khóa API cho máy / create an API key")
async def create_api_key(body: CreateApiKey, admin: Admin, d: Deps, response: Response) -> dict[str, Any]:
    """The key is in this answer only (``key``); it is stored as a hash and cannot be shown again."""
    response.headers.update(_NO_STORE)
    record, presented = await d.accounts.create_api_key(admin.actor, body.name, body.role)
    return {**api_key_view(record), "key": presented}


@router.get("/api-keys", summary="Danh sách khóa API / list API keys")
async def list_api_keys(admin: Admin, d: Deps) -> dict[str, Any]:
    return {"api_keys": [api_key_view(k) for k in await d.accounts.api_keys()]}


@router.delete("/api-keys/{key_id}", status_code=204, summary="Thu hồi khóa API / revoke an API key")
async def revoke_api_key(key_id: str, admin: Admin, d: Deps) -> Response:
    """Refused by every service within ``api_key_cache_ttl_s`` (≤ 30 s), by this one at once."""
    await d.accounts.revoke_api_key(admin.actor, key_id)
    return Response(status_code=204)
