"""Who is using the pages: the session cookies, their refresh, and CSRF tokens.

The session is the accounts service's own tokens, kept in two HttpOnly cookies
(the browser's scripts never see them): the short-lived access token, verified
here with the accounts' public key like every service does, and the refresh
token, traded for a new pair when the access token has expired. The web service
keeps no session state of its own, so it can be restarted or replicated freely.

CSRF: a signed double-submit token. A random value lives in an HttpOnly,
SameSite=Strict cookie; every form and every htmx request sends
HMAC(web_secret_key, value) back (a hidden field or the ``X-CSRF-Token``
header). Another site can neither read the cookie nor compute the signature.
A caller presenting a Bearer credential (a script, not a browser) needs none:
no cookie speaks for it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from shared.access import _bearer, _public_key, authenticate, refusal, requires
from shared.auth import ANONYMOUS, Principal, TokenRefused, verify_access_token
from shared.http import UserError
from shared.policy import Action, allowed
from shared.settings import Settings, is_loopback

ACCESS_COOKIE = "mam_at"
REFRESH_COOKIE = "mam_rt"
CSRF_COOKIE = "mam_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Tokens:
    """A pair the accounts service issued (sign-in or refresh)."""

    access_token: str
    refresh_token: str
    expires_in: int

    @classmethod
    def of(cls, body: dict[str, Any]) -> Tokens:
        return cls(str(body["access_token"]), str(body["refresh_token"]), int(body.get("expires_in", 300)))


@dataclass(frozen=True)
class User:
    """The signed-in caller of one page: who, and the token to call the APIs as them."""

    principal: Principal
    token: str
    from_cookie: bool

    def may(self, action: Action | str) -> bool:
        return allowed(self.principal, Action(action))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def secure_cookies(request: Request) -> bool:
    """Secure cookies everywhere but loopback (a browser on this machine over plain http)."""
    host = (request.url.hostname or "").lower()
    return not is_loopback(host)


def uses_demo_web_key(settings: Settings) -> bool:
    """Still the public demo key (fine on loopback, refused beyond it by ``python -m services.web``)."""
    demo = Settings.model_fields["web_secret_key"].default.get_secret_value()
    return bool(settings.web_secret_key.get_secret_value() == demo)


def csrf_signature(settings: Settings, value: str) -> str:
    key = settings.web_secret_key.get_secret_value().encode()
    return hmac.new(key, f"csrf:{value}".encode(), hashlib.sha256).hexdigest()


def csrf_value(request: Request) -> str:
    """This browser's CSRF cookie value, made on first sight (the middleware sets the cookie)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if len(value) < 32:
        value = getattr(request.state, "new_csrf", "") or secrets.token_urlsafe(32)
        request.state.new_csrf = value
    return value


def csrf_token(request: Request) -> str:
    """What this browser's forms must send back."""
    return csrf_signature(request.app.state.settings, csrf_value(request))


def _csrf_refused() -> UserError:
    return UserError(
        403,
        "csrf_refused",
        "Biểu mẫu đã hết hạn hoặc không đến từ trang của kho tư liệu; hãy tải lại trang và thử lại.",
        "The form has expired or did not come from the archive's own pages; reload the page and try again.",
    )


async def check_csrf(request: Request) -> None:
    """Refuse an unsafe request whose token is missing or does not match this browser's cookie."""
    if request.method not in UNSAFE_METHODS:
        return
    value = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        field = form.get(CSRF_FIELD)
        sent = field if isinstance(field, str) else ""
    expected = csrf_signature(request.app.state.settings, value) if len(value) >= 32 else ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise _csrf_refused()


def set_session(request: Request, response: Response, tokens: Tokens) -> None:
    settings: Settings = request.app.state.settings
    secure = secure_cookies(request)
    response.set_cookie(
        ACCESS_COOKIE,
        tokens.access_token,
        max_age=tokens.expires_in,
        httponly=True,
        secure=secure,
        samesite="lax",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        tokens.refresh_token,
        max_age=settings.refresh_token_ttl_s,
        httponly=True,
        secure=secure,
        samesite="strict",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(ACCESS_COOKIE)
    response.delete_cookie(REFRESH_COOKIE)


async def refreshed(request: Request, refresh_token: str) -> Tokens | None:
    """A new pair for a still-valid refresh token (None when the sign-in has ended)."""
    deps = request.app.state.deps
    http: httpx.AsyncClient = deps.http
    try:
        response = await http.post(f"{deps.urls['accounts']}/v1/auth/refresh", json={"refresh_token": refresh_token})
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return Tokens.of(response.json())


async def _cookie_user(request: Request) -> User | None:
    """The user the session cookies speak for, refreshing an expired access token."""
    key = _public_key(request)
    access = request.cookies.get(ACCESS_COOKIE, "")
    if key is not None and access:
        try:
            return User(verify_access_token(access, key, leeway_s=0), access, True)
        except TokenRefused:
            pass
    return await _refreshed_user(request)


async def _refreshed_user(request: Request) -> User | None:
    """The user with a new pair traded for the refresh token (None: the sign-in has ended)."""
    key = _public_key(request)
    pending: Tokens | None = getattr(request.state, "new_tokens", None)
    refresh = pending.refresh_token if pending is not None else request.cookies.get(REFRESH_COOKIE, "")
    if key is None or not refresh:
        return None
    tokens = await refreshed(request, refresh)
    if tokens is None:
        request.state.clear_session = True
        return None
    request.state.new_tokens = tokens  # the middleware sets the new cookies on the answer
    try:
        return User(verify_access_token(tokens.access_token, key), tokens.access_token, True)
    except TokenRefused:
        return None


async def renewed_user(request: Request) -> User | None:
    """After an API refused a cookie session's access token before its expiry (revoked: another
    role, a new password, the account disabled), the user with a new pair, once per request;
    None when the sign-in has ended or it was renewed already."""
    if getattr(request.state, "renewed", False):
        return None
    request.state.renewed = True
    user = await _refreshed_user(request)
    if user is not None:
        request.state.user = user  # later calls of this page go with the new token
    return user


class page_requires(requires):
    """A page's declared action (the permission matrix reads it like any API route's):
    the signed-in user, from the session cookies or a Bearer credential, if the policy
    allows the action; an unsafe request from a cookie session must carry its CSRF token.

    The APIs the page calls check again: this only spares a useless round trip and
    lets the page answer in its own words.
    """

    async def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        user = await signed_in(request, credentials)
        if user is None:
            raise refusal(ANONYMOUS)
        if not allowed(user.principal, self.action):
            raise refusal(user.principal)
        if user.from_cookie:
            await check_csrf(request)
        request.state.user = user
        return user.principal


async def signed_in(request: Request, credentials: HTTPAuthorizationCredentials | None) -> User | None:
    """Whoever is calling: a Bearer credential first, then the session cookies."""
    if credentials is not None:
        principal = await authenticate(request, credentials)
        return User(principal, credentials.credentials, False)
    cached: User | None = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    user = await _cookie_user(request)
    if user is not None:
        request.state.user = user
    return user


def current_user(request: Request) -> User:
    """The user :class:`page_requires` admitted to this request."""
    user: User = request.state.user
    return user
