"""The accounts service as a real process against the test NATS: sign-in, lock-out,
refresh rotation, logout, API keys, the administrators' endpoints and the audit events."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import pytest

from deploy.local.stack import LocalStack
from services.accounts.domain import SignInGuard, UserRecord
from services.accounts.store import USERS_BUCKET, Records
from shared.api_keys import API_KEYS_BUCKET, KvApiKeyStore, verify_api_key
from shared.auth import Role, load_public_key, verify_access_token
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import one_service, run, wait_for

pytestmark = pytest.mark.integration

DEMO_PASSWORDS = {
    "phong-vien": "demo-phong-vien",
    "luu-tru": "demo-luu-tru",
    "bien-tap": "demo-bien-tap",
    "quan-tri": "demo-quan-tri",
}
PASSWORD = "mật khẩu đủ dài 2025"


@pytest.fixture(scope="module")
def accounts(stack: LocalStack) -> Iterator[Settings]:
    """The accounts service, started for these tests unless already running."""
    yield from one_service(stack, "accounts")


@pytest.fixture(scope="module")
def client(accounts: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=accounts.accounts_url, timeout=30.0) as c:
        yield c


def sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    return client.post("/v1/auth/token", data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tokens(client: httpx.Client, username: str, password: str) -> dict[str, Any]:
    response = sign_in(client, username, password)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def admin(client: httpx.Client) -> dict[str, str]:
    return bearer(tokens(client, "quan-tri", DEMO_PASSWORDS["quan-tri"])["access_token"])


def new_user(client: httpx.Client, admin: dict[str, str], role: str = "phong-vien", **extra: Any) -> str:
    name = f"u-{uuid.uuid4().hex[:10]}"
    body = {"username": name, "display_name": "Trần Văn Bình", "role": role, "password": PASSWORD, **extra}
    response = client.post("/v1/users", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return name


async def user_events(settings: Settings, username: str) -> list[tuple[str, str, dict[str, Any]]]:
    store = await EventStore.from_settings(settings)
    try:
        history = await store.history("user", username)
    finally:
        await store.close()
    return [(s.envelope.type, s.envelope.actor, s.envelope.payload) for s in history]


async def stored_user(settings: Settings, username: str) -> UserRecord | None:
    nc = await nats.connect(settings.resolved_nats_url)
    try:
        return await Records(await nc.jetstream().key_value(USERS_BUCKET), UserRecord).value(username)
    finally:
        await nc.close()


# --- signing in ------------------------------------------------------------------------------


@pytest.mark.parametrize("username", list(DEMO_PASSWORDS))
def test_each_demo_account_signs_in_and_its_token_verifies_with_the_public_key_carrying_its_role(
    client: httpx.Client, accounts: Settings, username: str
) -> None:
    response = sign_in(client, username, DEMO_PASSWORDS[username])

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == accounts.access_token_ttl_s
    assert body["refresh_token"].startswith("mamr_")
    principal = verify_access_token(body["access_token"], load_public_key(accounts.resolved_jwt_public_key_file))
    assert (principal.subject, principal.role, principal.kind) == (username, Role(username), "user")
    me = client.get("/v1/auth/me", headers=bearer(body["access_token"])).json()
    assert (me["subject"], me["role"], me["kind"]) == (username, username, "user")


def test_user_names_are_matched_whatever_their_case_and_surrounding_spaces(client: httpx.Client) -> None:
    assert sign_in(client, "  Luu-Tru ", DEMO_PASSWORDS["luu-tru"]).status_code == 200


def test_a_token_signed_by_any_other_key_is_refused_by_the_service(client: httpx.Client) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from shared.auth import Principal, issue_access_token

    forged, _ = issue_access_token(Principal("quan-tri", "x", Role.QUAN_TRI), Ed25519PrivateKey.generate(), 60)

    assert client.get("/v1/auth/me", headers=bearer(forged)).status_code == 401
    assert client.get("/v1/users", headers=bearer(forged)).status_code == 401


# --- lock-out and answers that tell nothing --------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_with_a_bilingual_429_and_retry_after(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    name = new_user(client, admin)
    answers = [sign_in(client, name, f"sai mật khẩu {i}") for i in range(accounts.signin_max_failures)]

    assert [a.status_code for a in answers[:-1]] == [401] * (accounts.signin_max_failures - 1)
    locked = answers[-1]
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= accounts.signin_lockout_s
    error = locked.json()["error"]
    assert error["code"] == "account_locked"
    assert "tạm khóa" in error["message"] and "locked" in error["message_en"]
    assert error["retry_after_s"] == int(locked.headers["retry-after"])
    # Locked means locked: the right password is not even checked.
    assert sign_in(client, name, PASSWORD).status_code == 429


def test_each_counted_failure_is_an_audit_event_without_the_password_and_the_last_says_until_when(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    name = new_user(client, admin)
    for i in range(accounts.signin_max_failures):
        sign_in(client, name, f"đoán-thử-{i}-bí-mật")

    events = run(user_events(accounts, name))

    failed = [payload for kind, _, payload in events if kind == "user.sign_in_failed"]
    assert [p["failures"] for p in failed] == list(range(1, accounts.signin_max_failures + 1))
    assert all(p["reason"] == "wrong_password" for p in failed)
    assert [p["locked_until"] is not None for p in failed] == [False] * (len(failed) - 1) + [True]
    assert "đoán-thử" not in json.dumps(events, ensure_ascii=False)


def test_an_unknown_name_gets_the_same_answers_as_a_wrong_password_and_locks_alike(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    known = new_user(client, admin)
    unknown = f"u-{uuid.uuid4().hex[:10]}"
    answers = {
        name: [sign_in(client, name, f"sai {i}") for i in range(accounts.signin_max_failures)]
        for name in (known, unknown)
    }

    for a, b in zip(answers[known], answers[unknown], strict=True):
        assert (a.status_code, a.json()) == (b.status_code, b.json())
        assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")
    assert answers[unknown][-1].status_code == 429


def test_an_unknown_name_costs_as_much_time_as_a_wrong_password(client: httpx.Client, admin: dict[str, str]) -> None:
    """Both verify an argon2 hash (a dummy one for unknown names): same timing class."""
    known = new_user(client, admin)
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(5):
        for kind in ("known", "unknown"):
            name = known if kind == "known" else f"u-{uuid.uuid4().hex[:10]}"
            began = time.perf_counter()
            assert sign_in(client, name, "không phải mật khẩu").status_code == 401
            times[kind].append(time.perf_counter() - began)
        assert sign_in(client, known, PASSWORD).status_code == 200  # resets the count: never locks

    known_s, unknown_s = statistics.median(times["known"]), statistics.median(times["unknown"])
    assert 0.5 < unknown_s / known_s < 2.0, times  # without the dummy hash: ~0.03


async def test_concurrent_wrong_passwords_are_all_counted(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    name = new_user(client, admin)
    async with httpx.AsyncClient(base_url=accounts.accounts_url, timeout=30.0) as ac:
        answers = await asyncio.gather(
            *(ac.post("/v1/auth/token", data={"username": name, "password": f"sai {i}"}) for i in range(4))
        )

    assert [a.status_code for a in answers] == [401] * 4
    stored = await stored_user(accounts, name)
    assert stored is not None and stored.guard.failures == 4


async def test_optimistic_updates_lose_no_concurrent_change_to_one_record(accounts: Settings) -> None:
    nc = await nats.connect(accounts.resolved_nats_url)
    try:
        records = Records(await nc.jetstream().key_value("MAM_SIGNIN_UNKNOWN"), SignInGuard)
        key = uuid.uuid4().hex

        def one_more(guard: SignInGuard | None) -> SignInGuard:
            return SignInGuard(failures=(guard.failures if guard else 0) + 1)

        await asyncio.gather(*(records.change(key, one_more) for _ in range(15)))

        stored = await records.value(key)
    finally:
        await nc.close()
    assert stored is not None and stored.failures == 15


def test_a_disabled_account_gets_the_same_answer_as_a_wrong_password(
    client: httpx.Client, admin: dict[str, str]
) -> None:
    name = new_user(client, admin)
    assert client.patch(f"/v1/users/{name}", json={"active": False}, headers=admin).status_code == 200

    disabled = sign_in(client, name, PASSWORD)
    wrong = sign_in(client, f"u-{uuid.uuid4().hex[:10]}", PASSWORD)

    assert (disabled.status_code, disabled.json()) == (wrong.status_code, wrong.json()) == (401, wrong.json())


# --- refresh and logout ----------------------------------------------------------------------


def refresh(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/v1/auth/refresh", json={"refresh_token": token})


def test_a_refresh_token_is_rotated_on_use_and_reusing_the_old_one_ends_the_sign_in(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    name = new_user(client, admin, role="bien-tap")
    first = tokens(client, name, PASSWORD)

    rotated = refresh(client, first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    principal = verify_access_token(second["access_token"], load_public_key(accounts.resolved_jwt_public_key_file))
    assert (principal.subject, principal.role) == (name, Role.BIEN_TAP)

    reused = refresh(client, first["refresh_token"])
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "invalid_refresh_token"
    # The copy that was stolen (or the legitimate one) no longer works either: the sign-in is over.
    assert refresh(client, second["refresh_token"]).status_code == 401


def test_a_refresh_picks_up_a_role_change_and_a_disabled_account_cannot_refresh(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    name = new_user(client, admin, role="phong-vien")
    first = tokens(client, name, PASSWORD)
    assert client.patch(f"/v1/users/{name}", json={"role": "luu-tru"}, headers=admin).status_code == 200

    second = refresh(client, first["refresh_token"]).json()
    key = load_public_key(accounts.resolved_jwt_public_key_file)
    assert verify_access_token(second["access_token"], key).role is Role.LUU_TRU

    assert client.patch(f"/v1/users/{name}", json={"active": False}, headers=admin).status_code == 200
    assert refresh(client, second["refresh_token"]).status_code == 401


def test_a_new_password_ends_earlier_sign_ins(client: httpx.Client, admin: dict[str, str]) -> None:
    name = new_user(client, admin)
    before = tokens(client, name, PASSWORD)

    changed = client.patch(f"/v1/users/{name}", json={"password": "một mật khẩu mới hẳn"}, headers=admin)

    assert changed.status_code == 200
    assert refresh(client, before["refresh_token"]).status_code == 401
    assert sign_in(client, name, PASSWORD).status_code == 401
    assert sign_in(client, name, "một mật khẩu mới hẳn").status_code == 200


def test_logout_revokes_the_refresh_token_while_the_access_token_lives_out_its_short_life(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    name = new_user(client, admin)
    pair = tokens(client, name, PASSWORD)

    out = client.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})

    assert out.status_code == 204
    assert refresh(client, pair["refresh_token"]).status_code == 401
    # Documented: access tokens are verified locally and cannot be recalled; they expire.
    assert client.get("/v1/auth/me", headers=bearer(pair["access_token"])).status_code == 200
    claims = verify_access_token(pair["access_token"], load_public_key(accounts.resolved_jwt_public_key_file))
    assert claims.subject == name


def test_a_disabled_users_access_token_is_refused_by_the_other_services_within_seconds_not_minutes(
    client: httpx.Client, admin: dict[str, str], services: Settings
) -> None:
    name = new_user(client, admin, role="luu-tru")
    token = bearer(tokens(client, name, PASSWORD)["access_token"])
    search = f"{services.search_url}/v1/search"
    assert httpx.get(search, headers=token, params={"q": "hop"}, timeout=30).status_code == 200

    assert client.patch(f"/v1/users/{name}", json={"active": False}, headers=admin).status_code == 200
    disabled_at = time.monotonic()
    refused = wait_for(
        lambda: (r := httpx.get(search, headers=token, params={"q": "hop"}, timeout=30)).status_code == 401 and r,
        timeout=60,  # without a revocation check: 200 until the token expires, 5 minutes after sign-in
        interval=0.2,
        what="the disabled user's token to be refused",
    )
    took = time.monotonic() - disabled_at
    assert took <= services.token_revocation_cache_ttl_s + 2, took
    error = refused.json()["error"]
    assert error["code"] == "invalid_token" and error["message"] and error["message_en"]
    wait_for(lambda: client.get("/v1/auth/me", headers=token).status_code == 401, 30, 0.2, "accounts to refuse it")

    # Enabled again, a new sign-in (a later second than the revocation) works at once.
    assert client.patch(f"/v1/users/{name}", json={"active": True}, headers=admin).status_code == 200
    wait_for(
        lambda: (
            httpx.get(search, headers=bearer(tokens(client, name, PASSWORD)["access_token"]), timeout=30).status_code
            == 200
        ),
        10,
        0.5,
        "a fresh token of the re-enabled user to be accepted",
    )


def test_a_demoted_users_token_is_refused_within_seconds_and_a_refresh_carries_the_new_role(
    client: httpx.Client, admin: dict[str, str], services: Settings, accounts: Settings
) -> None:
    name = new_user(client, admin, role="luu-tru")
    before = tokens(client, name, PASSWORD)
    reels = f"{services.reels_url}/v1/reels"  # reels are for producers and archivists, not reporters
    assert httpx.get(reels, headers=bearer(before["access_token"]), timeout=30).status_code == 200

    assert client.patch(f"/v1/users/{name}", json={"role": "phong-vien"}, headers=admin).status_code == 200
    demoted_at = time.monotonic()
    # At once, most likely in the very second of the revocation: the new token must not be void.
    after = refresh(client, before["refresh_token"]).json()
    assert verify_access_token(after["access_token"], load_public_key(accounts.resolved_jwt_public_key_file)).role is (
        Role.PHONG_VIEN
    )
    wait_for(
        lambda: httpx.get(reels, headers=bearer(before["access_token"]), timeout=30).status_code == 401,
        timeout=60,  # without the revocation: 200 until the token expires, 5 minutes after sign-in
        interval=0.2,
        what="the demoted user's old token to be refused",
    )
    assert time.monotonic() - demoted_at <= services.token_revocation_cache_ttl_s + 2
    # The service now knows the revocation; the new token is valid and acts with the new role.
    refused = httpx.get(reels, headers=bearer(after["access_token"]), timeout=30)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden", refused.text
    search = httpx.get(f"{services.search_url}/v1/search", headers=bearer(after["access_token"]), timeout=30)
    assert search.status_code == 200, search.text


@pytest.mark.parametrize("garbage", ["", "x", "mamr_" + "0" * 32 + "_" + "0" * 64, "a" * 200])
def test_a_made_up_refresh_token_is_refused_and_logging_out_with_it_is_harmless(
    client: httpx.Client, garbage: str
) -> None:
    assert refresh(client, garbage).status_code == 401
    assert client.post("/v1/auth/logout", json={"refresh_token": garbage}).status_code == 204


# --- API keys --------------------------------------------------------------------------------


def test_an_api_key_is_shown_once_verifies_for_its_role_and_is_refused_soon_after_revocation(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    created = client.post("/v1/api-keys", json={"name": "Máy quét Đài PT-TH", "role": "phong-vien"}, headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    key_id = created.json()["id"]
    assert key.startswith(f"mam_{key_id}_")

    listed = client.get("/v1/api-keys", headers=admin)
    assert listed.status_code == 200
    mine = [k for k in listed.json()["api_keys"] if k["id"] == key_id]
    assert len(mine) == 1 and "key" not in mine[0] and not any("sha" in field for field in mine[0])
    assert key.split("_")[2] not in listed.text
    assert mine[0]["created_by"] == "quan-tri"

    me = client.get("/v1/auth/me", headers=bearer(key))
    assert me.status_code == 200
    assert (me.json()["role"], me.json()["kind"]) == ("phong-vien", "api_key")

    assert client.delete(f"/v1/api-keys/{key_id}", headers=admin).status_code == 204
    wait_for(
        lambda: client.get("/v1/auth/me", headers=bearer(key)).status_code == 401,
        timeout=30,
        interval=1,
        what="the revoked key to be refused",
    )
    assert [k["revoked"] for k in client.get("/v1/api-keys", headers=admin).json()["api_keys"] if k["id"] == key_id]


def test_another_service_s_cached_verifier_refuses_a_revoked_key_within_its_cache_time(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    created = client.post("/v1/api-keys", json={"name": "Bộ nạp dữ liệu", "role": "luu-tru"}, headers=admin).json()

    async def verifier() -> tuple[KvApiKeyStore, Any]:
        nc = await nats.connect(accounts.resolved_nats_url)
        return KvApiKeyStore(await nc.jetstream().key_value(API_KEYS_BUCKET), cache_ttl_s=2), nc

    async def accepted(store: KvApiKeyStore) -> bool:
        return await verify_api_key(store, created["key"]) is not None

    loop = asyncio.new_event_loop()
    store, nc = loop.run_until_complete(verifier())
    try:
        assert loop.run_until_complete(accepted(store))
        assert client.delete(f"/v1/api-keys/{created['id']}", headers=admin).status_code == 204
        revoked_at = time.monotonic()
        wait_for(lambda: not loop.run_until_complete(accepted(store)), timeout=30, interval=0.2, what="revocation")
        took = time.monotonic() - revoked_at
    finally:
        loop.run_until_complete(nc.close())
        loop.close()
    assert took <= store.cache_ttl_s + 1, took


# --- administrators only -----------------------------------------------------------------------

ADMIN_ROUTES = [
    ("POST", "/v1/users", {"username": "x-nobody", "display_name": "Ai đó", "role": "quan-tri", "password": PASSWORD}),
    ("GET", "/v1/users", None),
    ("PATCH", "/v1/users/phong-vien", {"role": "quan-tri"}),
    ("POST", "/v1/api-keys", {"name": "leo thang", "role": "quan-tri"}),
    ("GET", "/v1/api-keys", None),
    ("DELETE", "/v1/api-keys/0123456789abcdef", None),
]


@pytest.mark.parametrize("role", ["phong-vien", "luu-tru", "bien-tap"])
def test_the_administrators_endpoints_refuse_every_other_role_with_a_bilingual_403(
    client: httpx.Client, role: str
) -> None:
    token = tokens(client, role, DEMO_PASSWORDS[role])["access_token"]
    for method, path, body in ADMIN_ROUTES:
        response = client.request(method, path, json=body, headers=bearer(token))
        assert response.status_code == 403, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == "forbidden" and error["message"] and error["message_en"]


def test_the_administrators_endpoints_refuse_the_anonymous_an_admin_api_key_and_a_made_up_token(
    client: httpx.Client, admin: dict[str, str]
) -> None:
    key = client.post("/v1/api-keys", json={"name": "máy quản trị", "role": "quan-tri"}, headers=admin).json()["key"]
    for headers, status in (({}, 401), (bearer(key), 403), (bearer("not-a-token"), 401)):
        for method, path, body in ADMIN_ROUTES:
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == status, (headers, method, path, response.text)
            assert response.json()["error"]["message_en"]


def test_a_demoted_administrator_is_refused_at_once_despite_a_valid_token(
    client: httpx.Client, admin: dict[str, str]
) -> None:
    boss = new_user(client, admin, role="quan-tri")
    token = bearer(tokens(client, boss, PASSWORD)["access_token"])
    assert client.get("/v1/users", headers=token).status_code == 200

    assert client.patch(f"/v1/users/{boss}", json={"role": "bien-tap"}, headers=admin).status_code == 200

    assert client.get("/v1/users", headers=token).status_code == 403


def test_an_administrator_cannot_disable_or_demote_themselves(client: httpx.Client, admin: dict[str, str]) -> None:
    boss = new_user(client, admin, role="quan-tri")  # not the demo administrator the other tests use
    token = bearer(tokens(client, boss, PASSWORD)["access_token"])
    for change in ({"active": False}, {"role": "luu-tru"}):
        response = client.patch(f"/v1/users/{boss.upper()}", json=change, headers=token)
        assert response.status_code == 422 and response.json()["error"]["code"] == "cannot_demote_self"
    assert client.get("/v1/users", headers=token).status_code == 200


# --- managing users, and what the log says --------------------------------------------------------


def test_user_changes_are_audit_events_naming_the_administrator_and_never_the_password(
    client: httpx.Client, admin: dict[str, str], accounts: Settings
) -> None:
    name = new_user(client, admin, role="phong-vien")
    for change in ({"role": "luu-tru"}, {"active": False}, {"active": True}, {"password": "bí-mật-mới-toanh-2025"}):
        assert client.patch(f"/v1/users/{name}", json=change, headers=admin).status_code == 200

    events = run(user_events(accounts, name))

    assert [(kind, actor) for kind, actor, _ in events] == [
        ("user.created", "quan-tri"),
        ("user.role_changed", "quan-tri"),
        ("user.disabled", "quan-tri"),
        ("user.enabled", "quan-tri"),
        ("user.password_changed", "quan-tri"),
    ]
    assert events[0][2]["role"] == "phong-vien" and events[0][2]["display_name"] == "Trần Văn Bình"
    assert (events[1][2]["previous_role"], events[1][2]["role"]) == ("phong-vien", "luu-tru")
    text = json.dumps(events, ensure_ascii=False)
    assert PASSWORD not in text and "bí-mật-mới" not in text and "argon2" not in text


def test_the_user_list_shows_no_password_hash(client: httpx.Client, admin: dict[str, str]) -> None:
    name = new_user(client, admin)

    listed = client.get("/v1/users", headers=admin)

    assert listed.status_code == 200
    assert name in {u["username"] for u in listed.json()["users"]}
    assert "argon2" not in listed.text and "password" not in listed.text


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"username": "Có Dấu"}, "invalid_username"),
        ({"username": "a" * 65}, "invalid_request"),
        ({"role": "public"}, "invalid_role"),
        ({"password": "ngắn"}, "weak_password"),
        ({"display_name": "   "}, "invalid_request"),
        ({"display_name": "Tên\u202eđảo"}, "invalid_request"),
    ],
)
def test_a_new_account_outside_the_contract_is_refused_in_both_languages(
    client: httpx.Client, admin: dict[str, str], change: dict[str, str], code: str
) -> None:
    body = {"username": f"u-{uuid.uuid4().hex[:8]}", "display_name": "Lê Thị Hoa", "role": "luu-tru"}
    body |= {"password": PASSWORD} | change

    response = client.post("/v1/users", json=body, headers=admin)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["message_en"]


def test_an_existing_user_name_is_refused_with_409(client: httpx.Client, admin: dict[str, str]) -> None:
    body = {"username": "quan-tri", "display_name": "Kẻ mạo danh", "role": "quan-tri", "password": PASSWORD}

    assert client.post("/v1/users", json=body, headers=admin).status_code == 409
