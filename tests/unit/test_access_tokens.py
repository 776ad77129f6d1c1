"""Access tokens (shared/auth.py) against the known attacks on JWTs: only a token signed
by the accounts service's Ed25519 key, unaltered, unexpired and meant for us, is honoured."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import (
    Principal,
    Role,
    TokenRefused,
    ensure_signing_keys,
    issue_access_token,
    load_private_key,
    load_public_key,
    verify_access_token,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
LAN = Principal("lan", "Nguyễn Thị Lan", Role.PHONG_VIEN)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(unb64(token.split(".")[1]))  # type: ignore[no-any-return]


def forge(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def genuine(**kwargs: Any) -> str:
    token, _ = issue_access_token(LAN, KEY, 300, **kwargs)
    return token


def refused(token: str) -> bool:
    try:
        verify_access_token(token, PUBLIC)
    except TokenRefused:
        return True
    return False


def test_a_genuine_token_verifies_to_the_principal_it_was_issued_for() -> None:
    principal = verify_access_token(genuine(), PUBLIC)

    assert principal == LAN
    assert (principal.role, principal.kind) == (Role.PHONG_VIEN, "user")


def test_a_token_with_alg_none_and_no_signature_is_refused() -> None:
    claims = claims_of(genuine())
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{header}.{b64(json.dumps(claims).encode())}."

    assert refused(unsigned)


def test_a_token_signed_with_hs256_using_the_public_key_pem_as_the_secret_is_refused() -> None:
    pem = PUBLIC.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = {**claims_of(genuine()), "role": Role.QUAN_TRI.value}
    confused = forge({"alg": "HS256", "typ": "JWT"}, claims, lambda m: hmac.new(pem, m, hashlib.sha256).digest())

    assert refused(confused)


def test_a_token_whose_claims_were_changed_after_signing_is_refused() -> None:
    header, _, signature = genuine().split(".")
    raised = {**claims_of(genuine()), "role": Role.QUAN_TRI.value}
    tampered = f"{header}.{b64(json.dumps(raised).encode())}.{signature}"

    assert refused(tampered)


def test_a_token_signed_by_another_ed25519_key_is_refused() -> None:
    other, _ = issue_access_token(Principal("lan", "Nguyễn Thị Lan", Role.QUAN_TRI), Ed25519PrivateKey.generate(), 300)

    assert refused(other)


def test_an_expired_token_is_refused_beyond_the_leeway() -> None:
    old = genuine(now=datetime.now(UTC) - timedelta(seconds=306))

    assert refused(old)


def test_a_token_issued_by_a_clock_two_minutes_ahead_is_honoured_but_not_one_far_in_the_future() -> None:
    # What a service whose clock is 2 minutes behind the accounts service's sees.
    assert not refused(genuine(now=datetime.now(UTC) + timedelta(minutes=2)))
    assert refused(genuine(now=datetime.now(UTC) + timedelta(minutes=10)))
    claims = claims_of(genuine())
    assert refused(jwt.encode({**claims, "nbf": claims["nbf"] + 3600}, KEY, algorithm="EdDSA"))


def test_a_token_for_another_audience_or_issuer_is_refused() -> None:
    claims = claims_of(genuine())
    for change in ({"aud": "another-app"}, {"iss": "someone-else"}):
        assert refused(jwt.encode({**claims, **change}, KEY, algorithm="EdDSA")), change


def test_a_signed_token_that_is_not_an_access_token_or_speaks_for_the_public_is_refused() -> None:
    claims = claims_of(genuine())
    for change in ({"typ": "refresh"}, {"role": "public"}, {"role": "root"}, {"kind": "anonymous"}):
        assert refused(jwt.encode({**claims, **change}, KEY, algorithm="EdDSA")), change


def test_a_signed_token_without_an_expiry_is_refused() -> None:
    claims = {k: v for k, v in claims_of(genuine()).items() if k != "exp"}

    assert refused(jwt.encode(claims, KEY, algorithm="EdDSA"))


@pytest.mark.parametrize("garbage", ["", "a.b.c", "not a token", "e30.e30.", "mam_0123456789abcdef_" + "a" * 64])
def test_garbage_is_refused_not_crashed_on(garbage: str) -> None:
    assert refused(garbage)


def test_the_signing_key_pair_is_made_once_and_the_private_key_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    private, public = tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub.pem"

    ensure_signing_keys(private, public)
    first = private.read_bytes()
    ensure_signing_keys(private, public)

    assert private.read_bytes() == first
    assert private.stat().st_mode & 0o077 == 0
    token, _ = issue_access_token(LAN, load_private_key(private), 60)
    assert verify_access_token(token, load_public_key(public)) == LAN
