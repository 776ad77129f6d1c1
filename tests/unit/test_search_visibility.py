"""Who sees what through the search API, without servers: the index document carries the
visibility the shared fold gives, and every query body carries ``visibility_filter`` in
its own filter (so facet counts and statistics obey it too), never in a post_filter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from services.search.documents import ASSET_MAPPINGS, apply_event, document_visibility
from services.search.feed import feed_body
from services.search.query import (
    Filters,
    SearchParams,
    activities_body,
    build_search_body,
    more_like_this_body,
    stats_body,
)
from shared.auth import ANONYMOUS, Principal, Role
from shared.events.envelope import EventEnvelope, new_event
from shared.events.publishing import AssetPublishedV1, AssetRestrictionSetV1, AssetUnpublishedV1
from shared.events.tagging import AssetRetagRequestedV1
from shared.policy import (
    PUBLISH_AT,
    PUBLISHED,
    PUBLISHED_SINCE,
    RESTRICTION,
    UNPUBLISH_AT,
    UPLOADED_BY,
    Restriction,
    visibility_filter,
)
from shared.publication import visibility_of
from tests.search_corpus import ingested

ASSET = "a" + "6" * 32
START = datetime(2025, 6, 20, 1, 0, tzinfo=UTC)
OTHER_BROADCASTER = Principal("phong-vien-2", "Phóng viên 2", Role.PHONG_VIEN)
PRODUCER = Principal("bien-tap", "Biên tập viên", Role.BIEN_TAP)
ARCHIVIST = Principal("luu-tru", "Lưu trữ viên", Role.LUU_TRU)


def by_archivist(payload: Any) -> EventEnvelope:
    return new_event(payload, aggregate_id=ASSET, actor="luu-tru")


def fold_all(events: list[EventEnvelope]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for event in events:
        doc = apply_event(doc, event)
    return doc


# --- the document ---------------------------------------------------------------------------------


def test_the_mapping_holds_every_field_the_policy_filters_on_with_the_right_type() -> None:
    props = ASSET_MAPPINGS["properties"]
    types = {name: props[name]["type"] for name in (UPLOADED_BY, RESTRICTION, PUBLISHED, PUBLISH_AT, UNPUBLISH_AT)}
    assert types == {
        UPLOADED_BY: "keyword",
        RESTRICTION: "keyword",
        PUBLISHED: "boolean",
        PUBLISH_AT: "date",
        UNPUBLISH_AT: "date",
    }


def test_a_new_upload_is_indexed_internal_unpublished_and_with_its_uploader() -> None:
    doc = fold_all([ingested(ASSET, "Ảnh")])
    assert {k: doc[k] for k in (UPLOADED_BY, RESTRICTION, PUBLISHED, PUBLISH_AT, UNPUBLISH_AT)} == {
        UPLOADED_BY: "phong-vien",
        RESTRICTION: "internal",
        PUBLISHED: False,
        PUBLISH_AT: None,
        UNPUBLISH_AT: None,
    }


def test_the_document_holds_the_same_visibility_as_the_shared_fold_of_the_history() -> None:
    history = [
        ingested(ASSET, "Ảnh"),
        by_archivist(AssetRestrictionSetV1(restriction=Restriction.RESTRICTED)),
        by_archivist(
            AssetPublishedV1(publish_at=START, unpublish_at=START + timedelta(days=1), restriction=Restriction.PUBLIC)
        ),
        by_archivist(AssetRetagRequestedV1(reason="x")),
    ]
    for upto in range(1, len(history) + 1):
        assert document_visibility(fold_all(history[:upto])) == visibility_of(history[:upto])
    doc = fold_all(history)
    assert doc[PUBLISHED] is True and doc[RESTRICTION] == "public"
    assert doc[PUBLISH_AT] == "2025-06-20T01:00:00+00:00" and doc[UNPUBLISH_AT] == "2025-06-21T01:00:00+00:00"
    unpublished = apply_event(doc, by_archivist(AssetUnpublishedV1(reason="hết hạn")))
    assert unpublished[PUBLISHED] is False and unpublished[PUBLISH_AT] is None and unpublished[RESTRICTION] == "public"


def test_a_document_indexed_before_visibility_existed_takes_its_uploader_from_ingested_by() -> None:
    old = {"asset_id": ASSET, "ingested_by": "phong-vien", "title": "Ảnh"}  # no visibility fields yet
    doc = apply_event(old, by_archivist(AssetPublishedV1(publish_at=START, restriction=Restriction.PUBLIC)))
    assert doc[UPLOADED_BY] == "phong-vien" and doc[PUBLISHED] is True


# --- the query bodies -----------------------------------------------------------------------------


def test_a_search_puts_the_visibility_filter_in_the_query_so_hits_and_facets_obey_it() -> None:
    visible = visibility_filter(OTHER_BROADCASTER)
    assert visible is not None
    body = build_search_body(SearchParams(q="kỳ họp", filters=Filters(kind=("video",))), visible=visible)
    assert body["query"]["bool"]["filter"] == [visible]
    assert "multi_match" in json.dumps(body["query"]["bool"]["must"])  # the words still score
    assert json.dumps(visible) not in json.dumps(body["post_filter"])  # facets ignore post_filter


def test_a_search_by_someone_who_sees_everything_has_no_visibility_clause() -> None:
    body = build_search_body(SearchParams(), visible=visibility_filter(ARCHIVIST))
    assert body["query"] == {"match_all": {}}


def test_similar_statistics_and_activities_filter_by_visibility() -> None:
    visible = visibility_filter(PRODUCER)
    assert visible is not None
    bodies = [
        more_like_this_body("a1", ["ky hop"], Filters(), 5, visible=visible),
        stats_body(Filters(), "month", visible=visible),
        activities_body(Filters(), 10, visible=visible),
    ]
    for body in bodies:
        assert body is not None and visible in body["query"]["bool"]["filter"]


def test_the_feed_filters_by_what_the_anonymous_public_may_see_newest_publication_first() -> None:
    body = feed_body(Filters(activity_type=("ky-hop",)), 20)
    assert visibility_filter(ANONYMOUS) in body["query"]["bool"]["filter"]
    assert '"restriction": "public"' in json.dumps(body["query"])
    # Sorted by when it went out, never by publish_at: one published at once has none.
    assert body["sort"][0] == {PUBLISHED_SINCE: {"order": "desc", "missing": "_last"}}
    assert UPLOADED_BY not in body["_source"]["includes"]  # who uploaded it is not the public's
