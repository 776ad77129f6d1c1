"""Which access tokens a revocation voids: those issued up to its second, none after."""

from __future__ import annotations

from shared.revocations import revoked


def test_a_token_issued_before_or_in_the_second_of_the_revocation_is_void_and_a_later_one_is_not() -> None:
    at = 1_700_000_000.4
    assert revoked(1_699_999_000, at)
    assert revoked(1_700_000_000, at)  # same second: cannot be told apart, so refused
    assert not revoked(1_700_000_001, at)
    assert not revoked(1_699_999_000, None)  # never revoked
