"""Who is calling: roles, principals and the signed access tokens every service verifies.

The accounts service signs short-lived JWTs with an Ed25519 private key; every
other service verifies them locally with the public key (no call to the
accounts service per request). Only ``EdDSA`` is accepted: ``alg: none`` and
HMAC tokens made with the public key as a secret (key confusion) are refused
by construction, not by a check someone could forget.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ISSUER = "hdnd-mam-accounts"
AUDIENCE = "hdnd-mam"
ALGORITHM = "EdDSA"


class Role(StrEnum):
    """The council's roles (DESIGN §7); ``public`` is whoever has not signed in."""

    PHONG_VIEN = "phong-vien"  # broadcaster / reporter
    LUU_TRU = "luu-tru"  # archivist (the Office)
    BIEN_TAP = "bien-tap"  # summary producer
    QUAN_TRI = "quan-tri"  # administrator
    PUBLIC = "public"


ROLE_LABELS_VI: dict[Role, str] = {
    Role.PHONG_VIEN: "Phóng viên",
    Role.LUU_TRU: "Lưu trữ viên",
    Role.BIEN_TAP: "Biên tập viên",
    Role.QUAN_TRI: "Quản trị",
    Role.PUBLIC: "Công chúng",
}


@dataclass(frozen=True)
class Principal:
    """The caller of one request, as every service's policy sees it."""

    subject: str  # user name, API key id, or "anonymous"
    name: str  # display name (Vietnamese)
    role: Role
    kind: Literal["user", "api_key", "anonymous"] = "user"
    grants: frozenset[str] = field(default_factory=frozenset)  # e.g. "restricted" for a producer

    @property
    def actor(self) -> str:
        """What events record as their ``actor``."""
        return self.subject


ANONYMOUS = Principal("anonymous", "Công chúng", Role.PUBLIC, "anonymous")


class TokenRefused(Exception):
    """An access token that must not be honoured (expired, forged, wrong kind, …)."""


# --- keys ------------------------------------------------------------------------------------------


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def ensure_signing_keys(private_path: Path, public_path: Path) -> None:
    """Create the Ed25519 key pair once (private key readable by its owner only)."""
    if private_path.exists() and public_path.exists():
        return
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_path.touch(mode=0o600)
    private_path.write_bytes(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


# --- tokens ----------------------------------------------------------------------------------------


def issue_access_token(
    principal: Principal, key: Ed25519PrivateKey, ttl_s: int, *, now: datetime | None = None
) -> tuple[str, str]:
    """A signed access token for ``principal``, and its id (``jti``)."""
    issued = now or datetime.now(UTC)
    token_id = uuid.uuid4().hex
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": principal.subject,
        "name": principal.name,
        "role": principal.role.value,
        "kind": principal.kind,
        "grants": sorted(principal.grants),
        "typ": "access",
        "iat": issued,
        "nbf": issued,
        "exp": issued + timedelta(seconds=ttl_s),
        "jti": token_id,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM), token_id


# How far ahead of this machine's clock a token's issue time may be: the accounts service that
# signed it may run on a clock minutes off (the cluster fault suite runs one 2 minutes behind).
# Expiry keeps the short ``leeway_s``: skew there only shifts a 5-minute token's life a little.
ISSUED_AHEAD_TOLERANCE_S = 300.0


def verify_access_token(token: str, key: Ed25519PublicKey, *, leeway_s: float = 5.0) -> Principal:
    """The principal a token speaks for, or :class:`TokenRefused`."""
    return verify_access_token_issued(token, key, leeway_s=leeway_s)[0]


def verify_access_token_issued(token: str, key: Ed25519PublicKey, *, leeway_s: float = 5.0) -> tuple[Principal, int]:
    """The principal a token speaks for and when it was issued (``iat``, whole seconds), or
    :class:`TokenRefused`."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],  # the only one: no "none", no HS256 with the public key
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=leeway_s,
            options={"require": ["exp", "iat", "sub", "jti", "aud", "iss"], "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenRefused(str(exc)) from exc
    latest = datetime.now(UTC).timestamp() + ISSUED_AHEAD_TOLERANCE_S
    for claim in ("iat", "nbf"):
        value = claims.get(claim, 0)
        if not isinstance(value, int | float) or value > latest:
            raise TokenRefused(f"{claim} is in the future beyond the clock-skew tolerance")
    if claims.get("typ") != "access":
        raise TokenRefused("not an access token")
    try:
        role = Role(claims["role"])
    except (KeyError, ValueError) as exc:
        raise TokenRefused("unknown role") from exc
    if role is Role.PUBLIC:
        raise TokenRefused("a token cannot speak for the public")
    kind = claims.get("kind", "user")
    if kind not in ("user", "api_key"):
        raise TokenRefused("unknown principal kind")
    grants = claims.get("grants") or []
    if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
        raise TokenRefused("malformed grants")
    principal = Principal(str(claims["sub"]), str(claims.get("name", claims["sub"])), role, kind, frozenset(grants))
    return principal, int(claims["iat"])
