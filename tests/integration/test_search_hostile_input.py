"""Whatever a user could send is indexable: events already in the log holding huge
texts, dates at the ends of the calendar or numbers no index field can hold are
written and found, against the real Elasticsearch; only a real fault (a mapping
bug) parks a write, and then its recorded reason is short.

The services refuse such values when they write events now, but the log keeps
what older versions appended: these tests append the events as they were then
(payload fields set as given, see ``stored``)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from services.search.documents import ASSET_MAPPINGS
from services.search.index import INDEX_SETTINGS, AssetIndex
from services.search.projector import AssetProjector, Delivered
from services.search.query import Filters, SearchParams, build_search_body
from services.search.results import shape_hit
from shared.events.envelope import EventEnvelope, new_event
from shared.events.media import AssetProbedV1
from shared.events.models import AssetKind
from shared.events.tagging import AssetActivityAssignedV1, AssetMetadataEditedV1, AssetTaggedV1, PersonTag
from shared.eventstore import EventStore
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration

# Sizes from the security review: each is over a limit of Lucene or Elasticsearch.
HUGE_KEYWORD = "Báo Ninh Thuận " * 60_000  # 900 000 characters: a term over 32 766 bytes
HUGE_NAME = "Nguyễn" + " Văn" * 10_000  # 40 006 characters
HUGE_TEXT = "Nội dung rất dài về kỳ họp. " * 43_000  # 1.2 MB: over index.highlight.max_analyzed_offset
END_OF_TIME = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-12)))
# What a hit may show of a long field: the API cuts highlights to a window.
HIGHLIGHT_BOUND = 3_000


def stored(event: EventEnvelope, **raw: Any) -> EventEnvelope:
    """``event`` with payload fields as an older service appended them, before today's input
    contract (which checks events as they are written; reading them back only trims some text)."""
    return event.model_copy(update={"payload": {**event.payload, **raw}})


def _edited(asset_id: str, **fields: Any) -> EventEnvelope:
    return new_event(AssetMetadataEditedV1(**fields), aggregate_id=asset_id, actor="luu-tru")


def _probed(asset_id: str, **fields: Any) -> EventEnvelope:
    payload = AssetProbedV1(kind=AssetKind.VIDEO, container="mov,mp4,m4a,3gp,3g2,mj2", **fields)
    return new_event(payload, aggregate_id=asset_id, actor="transcoder")


def _tagged(asset_id: str, **fields: Any) -> EventEnvelope:
    payload = AssetTaggedV1(
        activity_type="khac",
        activity_type_source="classifier",
        proposed_activity_type="khac",
        confidence=0.1,
        vocabulary_version="test",
        **fields,
    )
    return new_event(payload, aggregate_id=asset_id, actor="tagger")


def _assigned(asset_id: str, title: str) -> EventEnvelope:
    payload = AssetActivityAssignedV1(activity_id="v" + uuid.uuid4().hex, activity_title=title)
    return new_event(payload, aggregate_id=asset_id, actor="luu-tru")


def hostile_histories(word: str, tag: str) -> dict[str, list[EventEnvelope]]:
    """One asset per finding of the review, each with ``word`` in its (final) title."""

    def asset(name: str) -> str:
        return f"hx{tag}{name}"

    def upload(name: str, title: str, **raw: Any) -> EventEnvelope:
        return stored(ingested(asset(name), title), **raw)

    return {
        "source_org": [upload("org", f"Nguồn rất dài {word}", source_org=HUGE_KEYWORD)],
        "year_one": [upload("d1", f"Ngày đầu lịch {word}", recorded_at="0001-01-01T00:00:00+07:06")],
        "year_9999": [upload("d9", f"Ngày cuối lịch {word}", recorded_at="9999-12-31T23:00:00-12:00")],
        "naive_date": [upload("dn", f"Ngày không múi giờ {word}", recorded_at="2023-06-20T08:00:00")],
        "person_name": [
            upload("pp", f"Người tên dài {word}"),
            stored(_edited(asset("pp"), people=("A",)), people=[HUGE_NAME], organisations=[HUGE_KEYWORD]),
        ],
        "edited_title": [
            upload("tt", "Tiêu đề ngắn"),
            stored(_edited(asset("tt"), title="B"), title=f"{word} {HUGE_TEXT}"),
        ],
        "probed": [
            upload("pr", f"Máy quay lạ {word}"),
            _probed(asset("pr"), camera=HUGE_NAME, recorded_at=END_OF_TIME, height=2**40, width=2**40, duration_s=1e39),
        ],
        "tagged": [
            upload("tg", f"Nhận dạng dài {word}", caption="Đồng chí " + HUGE_NAME),
            _tagged(
                asset("tg"), people=(PersonTag(name=HUGE_NAME),), organisations=(HUGE_KEYWORD,), ocr_text=HUGE_TEXT
            ),
        ],
        "activity_title": [upload("ac", f"Hoạt động dài {word}"), _assigned(asset("ac"), HUGE_TEXT)],
    }


@pytest.fixture
async def index(es: AsyncElasticsearch) -> AsyncIterator[AssetIndex]:
    created = AssetIndex(es, f"mamtest-hostile-{uuid.uuid4().hex[:8]}")
    await created.ensure()
    yield created
    await created.delete_indices([*await created.all_indices(), created.failures_index])


async def _append_all(store: EventStore, events: list[EventEnvelope]) -> list[Delivered]:
    return [Delivered(e, (await store.append(e)).sequence) for e in events]


async def test_events_with_huge_texts_and_impossible_dates_are_written_and_found_by_their_words(
    index: AssetIndex,
    quiet_event_store: EventStore,
) -> None:
    word = "tuliệu" + uuid.uuid4().hex[:8]
    histories = hostile_histories(word, uuid.uuid4().hex[:8])
    delivered = await _append_all(quiet_event_store, [e for events in histories.values() for e in events])

    outcome = await AssetProjector(index, quiet_event_store, backoff_s=0.01).apply_batch(delivered)

    assert not outcome.failed and not outcome.retry
    assert outcome.done == {d.sequence for d in delivered}
    assert await index.failures() == []
    await index.refresh()
    result = await index.search(build_search_body(SearchParams(q=word, size=50), visible=None))
    hits = {h["_id"]: shape_hit(h) for h in result["hits"]["hits"]}
    assert set(hits) == {events[0].aggregate_id for events in histories.values()}
    for hit in hits.values():
        assert "<em>" in hit["highlight"]["title"]
        assert all(0 < len(marked) <= HIGHLIGHT_BOUND for marked in hit["highlight"].values())


async def test_a_recording_date_outside_the_calendar_leaves_the_asset_undated_and_keeps_the_date_as_given(
    index: AssetIndex,
    quiet_event_store: EventStore,
) -> None:
    word = "ngàylạ" + uuid.uuid4().hex[:8]
    histories = hostile_histories(word, uuid.uuid4().hex[:8])
    wanted = [*histories["year_one"], *histories["year_9999"], *histories["naive_date"], *histories["probed"]]
    delivered = await _append_all(quiet_event_store, wanted)

    outcome = await AssetProjector(index, quiet_event_store, backoff_s=0.01).apply_batch(delivered)

    assert not outcome.failed and not outcome.retry
    docs = await index.mget(d.event.aggregate_id for d in delivered)
    year_one, year_9999, naive = (
        docs[histories[n][0].aggregate_id][0] for n in ("year_one", "year_9999", "naive_date")
    )
    assert year_one["recorded_at"] is None and year_one["recorded_at_given"] == "0001-01-01T00:00:00+07:06"
    assert year_9999["recorded_at"] is None and year_9999["term"] is None
    assert year_9999["recorded_at_given"] == "9999-12-31T23:00:00-12:00"
    # A date without a time zone is a local date, as ingest reads bare dates.
    assert naive["recorded_at"] == "2023-06-20T08:00:00+07:00" and naive["year"] == 2023
    probed = docs[histories["probed"][0].aggregate_id][0]
    assert probed.get("recorded_at") is None and probed["height"] is None and probed["duration_s"] is None
    assert probed["camera"] == HUGE_NAME  # kept as given, only not indexed


async def test_a_value_too_long_to_index_is_kept_never_shown_as_a_facet_and_filtering_on_it_finds_nothing(
    index: AssetIndex,
    quiet_event_store: EventStore,
) -> None:
    word = "lọc" + uuid.uuid4().hex[:8]
    histories = hostile_histories(word, uuid.uuid4().hex[:8])
    delivered = await _append_all(quiet_event_store, histories["tagged"])  # the tagger's names are not trimmed
    await AssetProjector(index, quiet_event_store, backoff_s=0.01).apply_batch(delivered)
    await index.refresh()
    result = await index.search(build_search_body(SearchParams(q=word), visible=None))
    [hit] = result["hits"]["hits"]
    assert hit["_source"]["people"] == [HUGE_NAME]
    assert result["aggregations"]["person"]["values"]["buckets"] == []
    filtered = await index.search(
        build_search_body(SearchParams(q=word, filters=Filters(person=(HUGE_NAME,))), visible=None)
    )
    assert filtered["hits"]["total"]["value"] == 0


async def test_a_real_fault_is_parked_with_a_short_reason_and_old_long_reasons_are_cut_when_read(
    es: AsyncElasticsearch,
) -> None:
    prefix = f"mamtest-short-{uuid.uuid4().hex[:8]}"
    index = AssetIndex(es, prefix)
    mappings = copy.deepcopy(ASSET_MAPPINGS)
    mappings["properties"]["activity_title"] = {"type": "integer"}  # a mapping bug: titles are text
    await es.indices.create(
        index=f"{prefix}-assets-bad",
        settings=INDEX_SETTINGS,
        mappings=mappings,
        aliases={index.alias: {"is_write_index": True}},
    )
    try:
        items = [Delivered(ingested("short1", "Kỳ họp"), 20), Delivered(_assigned("short1", HUGE_TEXT), 21)]
        outcome = await AssetProjector(index, None, backoff_s=0.01).apply_batch(items)
        assert set(outcome.failed) == {20, 21}
        assert "document_parsing_exception" in outcome.failed[21] and len(outcome.failed[21]) <= 500
        # A record written before the bound existed (the whole value quoted back) is cut when listed.
        await es.index(
            index=index.failures_index,
            id="old1-7",
            refresh=True,
            document={
                "asset_id": "old1",
                "sequence": 7,
                "event_type": "asset.ingested",
                "reason": "400 document_parsing_exception: " + HUGE_KEYWORD,
                "recorded_at": datetime.now(UTC).isoformat(),
            },
        )
        recorded = await index.failures()
        assert [(f["asset_id"], f["sequence"]) for f in recorded] == [("short1", 21), ("short1", 20), ("old1", 7)]
        assert all(len(f["reason"]) <= 500 for f in recorded)
        assert all(f["reason"].startswith("400 document_parsing_exception") for f in recorded)
    finally:
        await index.delete_indices([f"{prefix}-assets-bad", index.failures_index])


async def test_a_batch_larger_than_one_elasticsearch_request_may_carry_is_written_in_several(
    index: AssetIndex,
) -> None:
    # Every document is ~9 MB (only stored: keywords that long are not indexed), the batch
    # ~108 MB: over Elasticsearch's http.max_content_length of 100 MB for one request.
    camera = "Dai Phat thanh - Truyen hinh " * 320_000
    tag = uuid.uuid4().hex[:6]
    items = []
    for i in range(12):
        asset = f"big{tag}{i}"
        items += [
            Delivered(ingested(asset, f"Bản lớn {i}"), 100 + 2 * i),
            Delivered(_probed(asset, camera=camera), 101 + 2 * i),
        ]
    outcome = await AssetProjector(index, None, attempts=1, backoff_s=0.01).apply_batch(items)
    assert not outcome.retry and not outcome.failed
    assert outcome.done == {d.sequence for d in items}


def _without_limits(props: dict[str, Any]) -> dict[str, Any]:
    """The asset mapping as indices created before the keyword limits hold it."""
    out = {}
    for name, spec in props.items():
        if name == "recorded_at_given":
            continue
        spec = {k: v for k, v in spec.items() if k != "ignore_above" or name == "tagging_error"}
        if "properties" in spec:
            spec["properties"] = _without_limits(spec["properties"])
        out[name] = spec
    return out


async def test_a_live_index_created_before_the_limits_takes_them_in_place_when_the_service_starts(
    es: AsyncElasticsearch,
    quiet_event_store: EventStore,
) -> None:
    prefix = f"mamtest-inplace-{uuid.uuid4().hex[:8]}"
    index = AssetIndex(es, prefix)
    old_mappings = {**ASSET_MAPPINGS, "properties": _without_limits(ASSET_MAPPINGS["properties"])}
    await es.indices.create(
        index=index.first_index,
        settings=INDEX_SETTINGS,
        mappings=old_mappings,
        aliases={index.alias: {"is_write_index": True}},
    )
    try:
        await index.ensure()  # what every search process does when it starts: no rebuild needed
        word = "tạichỗ" + uuid.uuid4().hex[:8]
        histories = hostile_histories(word, uuid.uuid4().hex[:8])
        events = [*histories["tagged"], *histories["year_one"], *histories["probed"]]
        outcome = await AssetProjector(index, quiet_event_store, backoff_s=0.01).apply_batch(
            await _append_all(quiet_event_store, events)
        )
        assert not outcome.failed and not outcome.retry
        [live] = await index.live_indices()
        mapping = (await es.indices.get_mapping(index=live))[live]["mappings"]["properties"]
        assert mapping["people"]["ignore_above"] == mapping["camera"]["ignore_above"] == 1024
    finally:
        await index.delete_indices([index.first_index, index.failures_index])
