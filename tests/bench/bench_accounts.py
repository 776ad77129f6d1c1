"""What a sign-in costs beyond its password check: ``POST /v1/auth/token`` on the
accounts service (sequential requests, median) vs the bare argon2id verification
with the same parameters (``services.accounts.passwords.HASHER``) in this process,
taking turns going first, after the same warm-up (ms).

The account is created for the run through ``POST /v1/users`` (so its hash has
today's parameters and no earlier run's failures count against it).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from deploy.local.processes import start, stop
from deploy.local.stack import LocalStack
from services.accounts.passwords import HASHER
from tests.conftest import ADMIN

ROUNDS = 30
WARMUP_ROUNDS = 3
PASSWORD = "đo thời gian đăng nhập"


def _timings(accounts_url: str, username: str) -> tuple[list[float], list[float]]:
    stored = HASHER.hash(PASSWORD)
    signed_in: list[float] = []
    bare: list[float] = []
    with httpx.Client(timeout=30) as client:

        def sign_in() -> None:
            response = client.post(f"{accounts_url}/v1/auth/token", data={"username": username, "password": PASSWORD})
            response.raise_for_status()
            assert response.json()["access_token"]

        def verify() -> None:
            assert HASHER.verify(stored, PASSWORD)

        for _ in range(WARMUP_ROUNDS):
            sign_in()
            verify()
        for round_no in range(ROUNDS):
            pair = [(sign_in, signed_in), (verify, bare)]
            if round_no % 2:
                pair.reverse()
            for action, timings in pair:
                began = time.perf_counter()
                action()
                timings.append((time.perf_counter() - began) * 1000)
    return signed_in, bare


def run(stack: LocalStack) -> list[dict[str, Any]]:
    settings = stack.settings
    spec = stack.service_spec("accounts")
    start(spec)
    try:
        url = settings.accounts_url
        username = f"bench-signin-{int(time.time())}"
        created = httpx.post(
            f"{url}/v1/users",
            headers=ADMIN,
            json={"username": username, "display_name": "Đo đăng nhập", "role": "phong-vien", "password": PASSWORD},
            timeout=30,
        )
        created.raise_for_status()
        signed_in, bare = _timings(url, username)
    finally:
        stop(spec)
    ours, baseline = statistics.median(signed_in), statistics.median(bare)
    return [
        {
            "name": "sign_in_argon2_verify_per_request",
            "ours": ours,
            "baseline": baseline,
            "ratio": ours / baseline,
            "unit": "ms",
        }
    ]
