"""Which access tokens a revocation voids: those issued up to its second, none after."""

from __future__ import annotations

from shared.revocations import ISSUE_MARGIN_S, revoked, wait_to_issue


def test_a_token_issued_before_or_in_the_second_of_the_revocation_is_void_and_a_later_one_is_not() -> None:
    at = 1_700_000_000.4
    assert revoked(1_699_999_000, at)
    assert revoked(1_700_000_000, at)  # same second: cannot be told apart, so refused
    assert not revoked(1_700_000_001, at)
    assert not revoked(1_699_999_000, None)  # never revoked


def test_a_token_is_issued_no_sooner_than_the_second_after_the_revocation_and_never_waits_long() -> None:
    at = 1_700_000_000.4
    assert wait_to_issue(None, at) == 0.0
    assert wait_to_issue(at, 1_700_000_001.0) == 0.0  # a later second already
    wait = wait_to_issue(at, 1_700_000_000.75)
    assert 0.25 < wait <= 0.25 + ISSUE_MARGIN_S + 1e-9
    # Woken a little early by the wall clock's measure, the token is still of the next second.
    assert not revoked(int(1_700_000_000.75 + wait - ISSUE_MARGIN_S / 2), at)
    assert wait_to_issue(at + 120, at) == 1.0  # a replica's clock ahead: at most a second
