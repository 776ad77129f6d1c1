import uuid

import pytest

from shared.ids import asset_id_for_sha256, deterministic_event_id, uuid7
from shared.subjects import (
    MAX_TOKEN_LENGTH,
    SubjectError,
    aggregate_filter,
    event_subject,
    event_type_filter,
    parse_subject,
    subject_matches,
)


def test_event_subjects_follow_the_aggregate_id_event_pattern() -> None:
    assert event_subject("asset", "a12", "ingested") == "mam.asset.a12.ingested"
    assert aggregate_filter("asset", "a12") == "mam.asset.a12.*"
    assert event_type_filter("asset.ingested") == "mam.asset.*.ingested"
    assert parse_subject("mam.reel.r9.rendered") == ("reel", "r9", "rendered")


@pytest.mark.parametrize("bad_id", ["a.b", "a*", "a>", "", "a b", "../x"])
def test_subject_tokens_that_would_break_nats_syntax_are_refused(bad_id: str) -> None:
    with pytest.raises(SubjectError):
        event_subject("asset", bad_id, "ingested")


def test_unknown_aggregates_are_refused() -> None:
    with pytest.raises(SubjectError):
        event_subject("invoice", "x1", "paid")
    with pytest.raises(SubjectError):
        parse_subject("mam.invoice.x1.paid")


def test_uuid7_has_version_7_rfc_variant_and_sorts_by_time() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert len(set(ids)) == 50
    timestamps = [u.int >> 80 for u in ids]
    assert timestamps == sorted(timestamps)


def test_caused_event_ids_are_stable_across_redeliveries() -> None:
    first = deterministic_event_id("cause-1", "renditions_ready")
    assert first == deterministic_event_id("cause-1", "renditions_ready")
    assert first != deterministic_event_id("cause-1", "probed")
    assert first != deterministic_event_id("cause-2", "renditions_ready")


def test_asset_ids_derive_from_content_hash() -> None:
    digest = "0123456789abcdef" * 4
    assert asset_id_for_sha256(digest) == "a0123456789abcdef0123456789abcdef"
    with pytest.raises(ValueError):
        asset_id_for_sha256("XYZ")


@pytest.mark.parametrize(
    ("subject_filter", "subject", "expected"),
    [
        ("mam.activity.*.*", "mam.activity.v1.merged", True),
        ("mam.activity.*.*", "mam.asset.a1.tagged", False),
        ("mam.activity.*.*", "mam.activity.v1", False),
        ("mam.>", "mam.asset.a1.tagged", True),
        ("mam.>", "mam", False),
        ("mam.asset.a1.*", "mam.asset.a12.tagged", False),
    ],
)
def test_subject_filters_match_as_nats_matches_them(subject_filter: str, subject: str, expected: bool) -> None:
    assert subject_matches(subject_filter, subject) is expected


def test_an_id_longer_than_a_subject_token_may_be_is_refused_before_nats_sees_it() -> None:
    assert event_subject("asset", "a" * MAX_TOKEN_LENGTH, "tagged")
    with pytest.raises(SubjectError):
        event_subject("asset", "a" * (MAX_TOKEN_LENGTH + 1), "tagged")
    with pytest.raises(SubjectError):
        aggregate_filter("asset", "abc\n")
