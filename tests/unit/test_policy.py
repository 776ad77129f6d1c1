"""Who sees which asset: one rule for every role, deny by default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.auth import ANONYMOUS, Principal, Role
from shared.policy import RESTRICTED_GRANT, Action, Restriction, Visibility, allowed, may_see, visibility_filter

NOW = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
REPORTER = Principal("pv-ninh-thuan", "Phóng viên", Role.PHONG_VIEN)
OTHER_REPORTER = Principal("pv-khac", "Phóng viên khác", Role.PHONG_VIEN)
ARCHIVIST = Principal("lt", "Lưu trữ", Role.LUU_TRU)
PRODUCER = Principal("bt", "Biên tập", Role.BIEN_TAP)
GRANTED_PRODUCER = Principal("bt2", "Biên tập", Role.BIEN_TAP, grants=frozenset({RESTRICTED_GRANT}))
ADMIN = Principal("qt", "Quản trị", Role.QUAN_TRI)


def asset(restriction: Restriction = Restriction.PUBLIC, *, published: bool = True, **window: datetime) -> Visibility:
    return Visibility("pv-ninh-thuan", restriction, published, window.get("publish_at"), window.get("unpublish_at"))


def test_an_unpublished_upload_is_hidden_from_other_reporters_and_the_public() -> None:
    draft = asset(Restriction.INTERNAL, published=False)
    seen = {
        p.subject for p in (REPORTER, OTHER_REPORTER, ARCHIVIST, PRODUCER, ADMIN, ANONYMOUS) if may_see(p, draft, NOW)
    }
    assert seen == {"pv-ninh-thuan", "lt", "bt", "qt"}


def test_an_embargoed_asset_reaches_the_public_only_inside_its_window() -> None:
    embargoed = asset(publish_at=NOW + timedelta(seconds=20), unpublish_at=NOW + timedelta(days=1))
    assert not may_see(ANONYMOUS, embargoed, NOW) and not may_see(OTHER_REPORTER, embargoed, NOW)
    assert may_see(ANONYMOUS, embargoed, NOW + timedelta(seconds=21))
    assert not may_see(ANONYMOUS, embargoed, NOW + timedelta(days=2))


@pytest.mark.parametrize(("restriction", "public_sees"), [(Restriction.PUBLIC, True), (Restriction.INTERNAL, False)])
def test_only_public_material_goes_to_the_public(restriction: Restriction, public_sees: bool) -> None:
    assert may_see(ANONYMOUS, asset(restriction), NOW) is public_sees
    assert may_see(OTHER_REPORTER, asset(restriction), NOW)


def test_restricted_material_needs_the_archive_or_a_grant_even_when_published() -> None:
    closed_session = asset(Restriction.RESTRICTED)
    assert not may_see(PRODUCER, closed_session, NOW) and not may_see(OTHER_REPORTER, closed_session, NOW)
    assert not may_see(ANONYMOUS, closed_session, NOW)
    assert may_see(GRANTED_PRODUCER, closed_session, NOW) and may_see(ARCHIVIST, closed_session, NOW)


def test_the_search_filter_narrows_exactly_the_roles_that_do_not_see_everything() -> None:
    assert visibility_filter(ARCHIVIST) is None and visibility_filter(ADMIN) is None
    assert visibility_filter(GRANTED_PRODUCER) is None
    assert visibility_filter(PRODUCER) is not None and visibility_filter(REPORTER) is not None
    assert "pv-ninh-thuan" in str(visibility_filter(REPORTER))
    assert "public" in str(visibility_filter(ANONYMOUS))


def test_an_action_nobody_was_given_is_denied_to_everyone() -> None:
    assert all(
        allowed(p, Action.ACCOUNTS) is (p.role is Role.QUAN_TRI) for p in (REPORTER, ARCHIVIST, ADMIN, ANONYMOUS)
    )
    assert not allowed(ANONYMOUS, Action.SEARCH) and allowed(ANONYMOUS, Action.FEED)
