"""The accounts' pure decisions: sign-in lock-out, refresh-token rotation and reuse, names and passwords."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from services.accounts.domain import (
    MAX_REMEMBERED,
    LockoutPolicy,
    RefreshFamily,
    Refuse,
    Rotate,
    SignInGuard,
    UserRecord,
    after_failure,
    decide_logout,
    decide_refresh,
    locked_for,
    normalise_username,
    parse_refresh_token,
    password_problem,
    start_family,
    token_digest,
    valid_username,
)
from shared.auth import Role

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
POLICY = LockoutPolicy(max_failures=5, window_s=900, lockout_s=600)
TTL, SESSION_MAX = 3600.0, 86400.0


def failures(n: int, start: datetime = T0, every_s: float = 10) -> SignInGuard:
    guard = SignInGuard()
    for i in range(n):
        guard = after_failure(guard, start + timedelta(seconds=i * every_s), POLICY)
    return guard


# --- lock-out -------------------------------------------------------------------------------


def test_four_failures_in_the_window_do_not_lock_the_account() -> None:
    guard = failures(4)

    assert guard.failures == 4
    assert locked_for(guard, T0 + timedelta(seconds=41)) is None


def test_the_fifth_failure_in_the_window_locks_the_account_for_the_lockout_time() -> None:
    guard = failures(5)
    fifth = T0 + timedelta(seconds=40)

    assert guard.locked_until == fifth + timedelta(seconds=600)
    assert locked_for(guard, fifth) == 600
    assert locked_for(guard, fifth + timedelta(seconds=599)) == 1


def test_the_lock_ends_by_itself_when_its_time_is_over() -> None:
    guard = failures(5)

    assert locked_for(guard, guard.locked_until) is None  # type: ignore[arg-type]
    assert locked_for(guard, T0 + timedelta(hours=1)) is None


def test_failures_further_apart_than_the_window_start_a_new_count_and_never_lock() -> None:
    guard = failures(10, every_s=901)

    assert guard.failures == 1
    assert guard.locked_until is None


def test_after_a_lock_out_the_next_failure_starts_counting_again_from_one() -> None:
    locked = failures(5)
    later = locked.locked_until + timedelta(seconds=1)  # type: ignore[operator]

    again = after_failure(locked, later, POLICY)

    assert again.failures == 1
    assert locked_for(again, later) is None


def test_a_policy_of_one_failure_locks_at_the_first() -> None:
    guard = after_failure(SignInGuard(), T0, LockoutPolicy(max_failures=1, window_s=60, lockout_s=60))

    assert locked_for(guard, T0) == 60


# --- refresh tokens --------------------------------------------------------------------------


def user(**changes: object) -> UserRecord:
    base = UserRecord(
        username="lan",
        display_name="Nguyễn Thị Lan",
        role=Role.LUU_TRU,
        password_hash="$argon2id$…",
        created_at=T0,
        updated_at=T0,
    )
    return base.model_copy(update=changes)


def signed_in(at: datetime = T0) -> tuple[RefreshFamily, str]:
    return start_family("lan", at, TTL, SESSION_MAX)


def test_a_new_sign_in_stores_only_the_hash_of_its_refresh_token() -> None:
    family, token = signed_in()

    assert parse_refresh_token(token) == family.family_id
    assert family.current_sha256 == token_digest(token)
    assert token not in family.model_dump_json()


def test_refreshing_rotates_the_token_and_remembers_the_old_one() -> None:
    family, token = signed_in()
    now = T0 + timedelta(minutes=30)

    outcome = decide_refresh(family, token, user(), now, TTL, SESSION_MAX)

    assert isinstance(outcome, Rotate)
    assert outcome.token != token and parse_refresh_token(outcome.token) == family.family_id
    assert outcome.family.current_sha256 == token_digest(outcome.token)
    assert outcome.family.previous_sha256 == (token_digest(token),)
    assert outcome.family.expires_at == now + timedelta(seconds=TTL)


def test_presenting_a_rotated_token_again_revokes_the_whole_sign_in() -> None:
    family, first = signed_in()
    rotated = decide_refresh(family, first, user(), T0, TTL, SESSION_MAX)
    assert isinstance(rotated, Rotate)

    reuse = decide_refresh(rotated.family, first, user(), T0, TTL, SESSION_MAX)

    assert isinstance(reuse, Refuse) and reuse.reason == "reused"
    assert reuse.family is not None and reuse.family.revoked
    after = decide_refresh(reuse.family, rotated.token, user(), T0, TTL, SESSION_MAX)
    assert isinstance(after, Refuse) and after.reason == "revoked"


def test_a_token_the_family_never_issued_is_refused_without_revoking_anything() -> None:
    family, _ = signed_in()
    _, stranger = start_family("lan", T0, TTL, SESSION_MAX)
    forged = f"mamr_{family.family_id}_{stranger.rsplit('_', 1)[1]}"

    outcome = decide_refresh(family, forged, user(), T0, TTL, SESSION_MAX)

    assert outcome == Refuse("unknown")


def test_an_unknown_family_is_refused() -> None:
    _, token = signed_in()

    assert decide_refresh(None, token, user(), T0, TTL, SESSION_MAX) == Refuse("unknown")


def test_an_expired_refresh_token_is_refused() -> None:
    family, token = signed_in()

    outcome = decide_refresh(family, token, user(), T0 + timedelta(seconds=TTL), TTL, SESSION_MAX)

    assert outcome == Refuse("expired")


def test_rotation_never_extends_a_sign_in_past_its_maximum_age() -> None:
    family, token = signed_in()
    now = T0 + timedelta(seconds=SESSION_MAX - 60)
    family = family.model_copy(update={"expires_at": now + timedelta(seconds=1)})

    outcome = decide_refresh(family, token, user(), now, TTL, SESSION_MAX)

    assert isinstance(outcome, Rotate)
    assert outcome.family.expires_at == T0 + timedelta(seconds=SESSION_MAX)


@pytest.mark.parametrize(
    "account",
    [None, user(active=False), user(sessions_valid_after=T0 + timedelta(seconds=1)), user(username="other")],
    ids=["deleted", "disabled", "password-reset-since", "other-user"],
)
def test_a_refresh_for_an_account_that_may_no_longer_sign_in_is_refused_and_revokes(
    account: UserRecord | None,
) -> None:
    family, token = signed_in()

    outcome = decide_refresh(family, token, account, T0 + timedelta(seconds=5), TTL, SESSION_MAX)

    assert isinstance(outcome, Refuse) and outcome.reason == "account"
    assert outcome.family is not None and outcome.family.revoked


def test_only_the_last_rotated_tokens_are_remembered() -> None:
    family, token = signed_in()
    for _ in range(MAX_REMEMBERED + 5):
        outcome = decide_refresh(family, token, user(), T0, TTL, SESSION_MAX)
        assert isinstance(outcome, Rotate)
        family, token = outcome.family, outcome.token

    assert len(family.previous_sha256) == MAX_REMEMBERED


def test_logging_out_with_the_current_or_an_earlier_token_revokes_the_sign_in() -> None:
    family, first = signed_in()
    rotated = decide_refresh(family, first, user(), T0, TTL, SESSION_MAX)
    assert isinstance(rotated, Rotate)

    for presented in (rotated.token, first):
        revoked = decide_logout(rotated.family, presented)
        assert revoked is not None and revoked.revoked and revoked.revoked_reason == "logout"


def test_logging_out_with_a_token_of_another_sign_in_changes_nothing() -> None:
    family, _ = signed_in()
    _, other = signed_in()

    assert decide_logout(family, other) is None
    assert decide_logout(None, other) is None


@pytest.mark.parametrize(
    "token",
    ["", "mamr_", "mamr_" + "a" * 32 + "_" + "b" * 63, "mamr_" + "A" * 32 + "_" + "b" * 64, "mam_" + "a" * 32 + "_x"],
)
def test_malformed_refresh_tokens_name_no_family(token: str) -> None:
    assert parse_refresh_token(token) is None


# --- names and passwords ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lan", "nguyen-thi-lan", "bt_2", "a" * 64, "0x"])
def test_valid_user_names(name: str) -> None:
    assert valid_username(name)


@pytest.mark.parametrize("name", ["", "Lan", "lân", "a b", "a.b", "a*", "-lan", "a" * 65, "lan>"])
def test_invalid_user_names(name: str) -> None:
    assert not valid_username(name)


def test_typed_names_are_trimmed_and_lower_cased() -> None:
    assert normalise_username("  Lan-BT ") == "lan-bt"


def test_short_long_and_name_like_passwords_are_refused_in_both_languages() -> None:
    for password in ("ngắn", "x" * 257, "Nguyen-Lan "):
        problem = password_problem(password, "nguyen-lan")
        assert problem is not None and all(problem), password
    assert password_problem("một mật khẩu đủ dài", "nguyen-lan") is None


def test_an_unknown_name_is_kept_under_a_keyed_hash_that_nobody_without_the_key_can_recompute() -> None:
    from services.accounts.accounts import unknown_name_key

    typed = "mật-khẩu-gõ-nhầm-ô"  # a password typed into the name field

    key = unknown_name_key(typed, b"k" * 32)

    assert typed not in key and key != hashlib.sha256(typed.encode()).hexdigest()
    assert key == unknown_name_key(typed, b"k" * 32) != unknown_name_key(typed, b"j" * 32)
