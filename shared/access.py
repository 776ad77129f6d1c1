"""Every route declares the action it takes; this module turns a request into a
principal and lets it through only if the policy allows that action.

    Searcher = Annotated[Principal, Depends(requires(Action.SEARCH))]

    @router.get("/search")
    async def search(who: Searcher, …): …

Credentials: a Bearer access token signed by the accounts service (verified
locally with its public key, and refused once its user was disabled: see
``shared.revocations``), or a Bearer API key (``mam_…``) of a machine.
No credentials: the anonymous public.
A refusal is 401 for the anonymous (sign in) and 403 for a signed-in principal;
both are bilingual and say nothing about the resource.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth import ANONYMOUS, Principal, Role, TokenRefused, load_public_key, verify_access_token_issued
from shared.http import UserError
from shared.policy import Action, allowed
from shared.revocations import TokenRevocations, revoked
from shared.settings import Settings

_bearer = HTTPBearer(auto_error=False)


def _invalid() -> UserError:
    return UserError(
        401,
        "invalid_token",
        "Mã truy cập không hợp lệ hoặc đã hết hạn; hãy đăng nhập lại.",
        "Invalid or expired access token; sign in again.",
    )


def _public_key(request: Request) -> Ed25519PublicKey | None:
    """The accounts service's public key, read once (None until it exists)."""
    key: Ed25519PublicKey | None = getattr(request.app.state, "token_public_key", None)
    if key is None:
        settings: Settings = request.app.state.settings
        path = settings.resolved_jwt_public_key_file
        if path.exists():
            key = request.app.state.token_public_key = load_public_key(path)
    return key


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """Who is calling (the anonymous public without credentials); a bad credential is 401."""
    if credentials is None:
        return ANONYMOUS
    if credentials.scheme.lower() != "bearer":
        raise _invalid()
    presented = credentials.credentials
    if presented.count(".") == 2:  # a JWT
        key = _public_key(request)
        if key is None:
            raise _invalid()
        try:
            principal, issued_at = verify_access_token_issued(presented, key)
        except TokenRefused as exc:
            raise _invalid() from exc
        revocations: TokenRevocations | None = getattr(request.app.state, "token_revocations", None)
        if revocations is not None and revoked(issued_at, await revocations.void_before(principal.subject)):
            raise _invalid()  # the account was disabled (or its password reset) after this sign-in
        return principal
    verify_key: Callable[[str], Awaitable[Principal | None]] | None = getattr(
        request.app.state, "api_key_verifier", None
    )
    if presented.startswith("mam_") and verify_key is not None:
        found = await verify_key(presented)
        if found is not None:
            return found
    raise _invalid()


def refusal(principal: Principal) -> UserError:
    if principal.role is Role.PUBLIC:
        return UserError(
            401,
            "unauthenticated",
            "Cần đăng nhập để dùng chức năng này.",
            "Sign in to use this.",
        )
    return UserError(
        403,
        "forbidden",
        "Tài khoản của bạn không có quyền thực hiện thao tác này.",
        "Your account may not do this.",
    )


class requires:
    """The dependency of a route taking ``action``: the principal, if the policy allows it.

    An instance keeps its ``action``, so the permission-matrix test can read
    every route's declared action from the apps themselves.
    """

    def __init__(self, action: Action) -> None:
        self.action = action

    async def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        principal = await authenticate(request, credentials)
        if not allowed(principal, self.action):
            raise refusal(principal)
        return principal


def declared_action(dependency: object) -> Action | None:
    """The action a route's dependency declares (None for any other dependency)."""
    return dependency.action if isinstance(dependency, requires) else None
