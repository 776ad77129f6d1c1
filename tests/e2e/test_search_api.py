"""The query API through HTTP on the running search service: read-your-writes,
filters, cursor pagination, sorting, statistics, history, similar assets, errors,
and an API-only replica (``MAM_SEARCH_RUN_PROJECTOR=false``)."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from deploy.local.processes import stop
from deploy.local.stack import LocalStack
from services.search.query import SearchParams, params_fingerprint
from shared.eventstore import EventStore
from shared.settings import Settings
from tests import conftest
from tests.conftest import ADMIN, AUTH
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration


def get(
    http: httpx.Client, s: Settings, path: str, status: int = 200, headers: dict[str, str] = AUTH, **params: Any
) -> Any:
    response = http.get(f"{s.search_url}{path}", headers=headers, params=params)
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture(scope="module")
async def dataset(services: Settings, event_store: EventStore) -> dict[str, Any]:
    """24 assets in one month of a year no other test uses, with a unique word in every title
    (dates filters take 1945–2100; the other tests' assets are dated 2016 or later)."""
    word = "mã" + uuid.uuid4().hex[:6]
    month = datetime(1946 + random.randrange(60), random.randrange(1, 13), 1, 3, tzinfo=UTC)
    ids, last = [], 0
    for i in range(24):
        code = ["ky-hop", "tiep-xuc-cu-tri", "giam-sat-chuyen-de"][i % 3]
        event = ingested(
            f"api{word[2:]}{i:02d}",
            f"Kỳ họp thứ {i} {word}",
            "Cử tri phản ánh về đơn thư khiếu nại.",
            activity_type=code,
            recorded_at=month + timedelta(days=i % 25, hours=i),
            kind="video" if i % 2 else "audio",
            duration_s=10.0 * (i + 1),
        )
        last = (await event_store.append(event)).sequence
        ids.append(event.aggregate_id)
    return {"word": word, "ids": ids, "last": last, "month": month}


def test_a_search_with_after_seq_sees_the_event_just_written(
    services: Settings,
    http: httpx.Client,
    dataset: dict[str, Any],
) -> None:
    result = get(http, services, "/v1/search", q=dataset["word"], after_seq=dataset["last"], size=100)
    assert result["total"] == 24


def test_an_after_seq_no_append_gave_out_is_refused_at_once_not_waited_for_until_a_503(
    services: Settings, http: httpx.Client, dataset: dict[str, Any]
) -> None:
    began = time.monotonic()
    ahead = dataset["last"] + 1_000_000  # far past anything this session appends
    refused = get(http, services, "/v1/search", status=400, q=dataset["word"], after_seq=ahead)
    assert time.monotonic() - began < services.search_consistency_timeout_s
    assert refused["error"]["code"] == "after_seq_not_appended" and refused["error"]["field"] == "after_seq"
    assert str(ahead) in refused["error"]["message"] and str(ahead) in refused["error"]["message_en"]


def test_cursor_pages_cover_every_hit_once_in_date_order(
    services: Settings,
    http: httpx.Client,
    dataset: dict[str, Any],
) -> None:
    seen: list[str] = []
    dates: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {
            "q": dataset["word"],
            "sort": "date",
            "order": "asc",
            "size": 7,
            "after_seq": dataset["last"],
        }
        if cursor:
            params["cursor"] = cursor
        page = get(http, services, "/v1/search", **params)
        seen += [h["asset_id"] for h in page["hits"]]
        dates += [h["recorded_at"] for h in page["hits"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(dataset["ids"]) and len(seen) == len(set(seen))
    assert [datetime.fromisoformat(d) for d in dates] == sorted(datetime.fromisoformat(d) for d in dates)


def test_filters_facets_and_duration_sort_work_together(
    services: Settings,
    http: httpx.Client,
    dataset: dict[str, Any],
) -> None:
    result = get(
        http,
        services,
        "/v1/search",
        q=dataset["word"],
        kind="video",
        sort="duration",
        order="desc",
        duration_min=100,
        size=50,
        after_seq=dataset["last"],
    )
    durations = [h["duration_s"] for h in result["hits"]]
    assert durations == sorted(durations, reverse=True) and all(d >= 100 for d in durations)
    assert all(h["kind"] == "video" for h in result["hits"]) and result["total"] == 8  # odd i ≥ 9
    kinds = {f["value"]: f["count"] for f in result["facets"]["kind"]}
    assert kinds["audio"] > 0  # the kind facet ignores its own filter
    assert {f["value"] for f in result["facets"]["activity_type"]} <= {
        "ky-hop",
        "tiep-xuc-cu-tri",
        "giam-sat-chuyen-de",
    }


def test_statistics_count_assets_and_durations_per_month_and_activity_type(
    services: Settings,
    http: httpx.Client,
    dataset: dict[str, Any],
) -> None:
    month = dataset["month"]
    stats = get(
        http,
        services,
        "/v1/stats",
        group_by="month",
        date_from=month.date().isoformat(),
        date_to=(month + timedelta(days=27)).date().isoformat(),
        after_seq=dataset["last"],
    )
    assert [p["period"] for p in stats["periods"]] == [month.strftime("%Y-%m")]
    cells = {c["activity_type"]: c for c in stats["periods"][0]["by_activity_type"]}
    assert {k: c["count"] for k, c in cells.items()} == {"ky-hop": 8, "tiep-xuc-cu-tri": 8, "giam-sat-chuyen-de": 8}
    assert stats["total"] == 24 and stats["total_duration_s"] == pytest.approx(10.0 * sum(range(1, 25)))
    assert cells["ky-hop"]["label"] == "Kỳ họp, phiên họp Thường trực"
    by_year = get(
        http,
        services,
        "/v1/stats",
        group_by="year",
        date_from=month.date().isoformat(),
        date_to=(month + timedelta(days=27)).date().isoformat(),
    )
    assert by_year["periods"][0]["period"] == str(month.year)


def test_an_assets_history_lists_its_events_in_order_with_actor_and_time(
    services: Settings,
    http: httpx.Client,
    dataset: dict[str, Any],
) -> None:
    history = get(http, services, f"/v1/assets/{dataset['ids'][0]}/history")
    events = history["events"]  # other workers (transcoder, tagger) may have added theirs
    event = events[0]
    assert event["type"] == "asset.ingested" and event["actor"] == "phong-vien" and event["occurred_at"]
    assert [e["sequence"] for e in events] == sorted(e["sequence"] for e in events)
    get(http, services, "/v1/assets/khongtontai/history", status=404)


def test_similar_assets_share_words_and_exclude_the_asset_itself(
    services: Settings,
    http: httpx.Client,
    dataset: dict[str, Any],
) -> None:
    get(http, services, "/v1/search", q=dataset["word"], after_seq=dataset["last"])
    similar = get(http, services, f"/v1/assets/{dataset['ids'][0]}/similar", size=5)
    found = [h["asset_id"] for h in similar["hits"]]
    assert found and dataset["ids"][0] not in found


def test_bad_parameters_get_bilingual_errors(services: Settings, http: httpx.Client) -> None:
    error = get(http, services, "/v1/search", status=422, activity_type="hop-bao")["error"]
    assert error["code"] == "unknown_activity_type" and "hop-bao" in error["message"] and error["message_en"]
    assert get(http, services, "/v1/search", status=400, cursor="xyz")["error"]["code"] == "invalid_cursor"
    assert get(http, services, "/v1/search", status=422, size=0)["error"]["code"] == "invalid_request"
    assert get(http, services, "/v1/stats", status=422, group_by="week")["error"]["code"] == "invalid_group_by"
    assert http.get(f"{services.search_url}/v1/search").status_code == 401


def _hand_made_cursor(q: str, sort: str, values: list[Any]) -> str:
    """A cursor as one could make it by hand before cursors were signed: bound to the query."""
    raw = json.dumps({"v": 1, "f": params_fingerprint(SearchParams(q=q, sort=sort)), "s": values})  # type: ignore[arg-type]
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_numbers_out_of_range_and_hand_made_cursors_get_bilingual_errors_never_a_500(
    services: Settings,
    http: httpx.Client,
    dataset: dict[str, Any],
) -> None:
    refused = [
        (422, "invalid_height", {"height_min": 1099511627776}),
        (422, "invalid_duration", {"duration_min": "inf"}),
        (422, "invalid_duration", {"duration_max": "1e300"}),
        (422, "invalid_date", {"date_from": "0001-01-01"}),
        (422, "invalid_request", {"after_seq": 18446744073709551621}),
        (400, "invalid_cursor", {"sort": "date", "cursor": _hand_made_cursor(dataset["word"], "date", ["abc", "zzz"])}),
        (400, "invalid_cursor", {"sort": "date", "cursor": _hand_made_cursor(dataset["word"], "date", [1e40, "a"])}),
        (400, "invalid_cursor", {"sort": "date", "cursor": _hand_made_cursor(dataset["word"], "date", [True, "a"])}),
    ]
    for status, code, params in refused:
        response = http.get(f"{services.search_url}/v1/search", headers=AUTH, params={"q": dataset["word"], **params})
        assert response.status_code == status, (params, response.text[:300])
        error = response.json()["error"]
        assert error["code"] == code and error["message"] and error["message_en"], params
    # A signed cursor of this service still pages on.
    first = get(http, services, "/v1/search", q=dataset["word"], sort="date", size=5, after_seq=dataset["last"])
    second = get(http, services, "/v1/search", q=dataset["word"], sort="date", size=5, cursor=first["next_cursor"])
    assert not {h["asset_id"] for h in first["hits"]} & {h["asset_id"] for h in second["hits"]}
    # A value no index could hold matches nothing, rather than failing the search.
    assert get(http, services, "/v1/search", q=dataset["word"], person="x" * 40_000)["total"] == 0


async def test_an_api_only_replica_answers_while_the_projector_runs_in_another_process(
    services: Settings,
    http: httpx.Client,
    event_store: EventStore,
) -> None:
    # +50: +100 is the search port of the suite at the next offset (MAM_TEST_PORT_OFFSET).
    api_only = services.model_copy(update={"search_port": services.search_port + 50, "search_run_projector": False})
    spec = dataclasses.replace(LocalStack(api_only).service_spec("search"), name="search-api-only")
    spec.log_file.unlink(missing_ok=True)
    conftest.start_own(spec)
    try:
        word = "chỉđọc" + uuid.uuid4().hex[:6]
        event = ingested(f"ro{word[6:]}", f"Phiên giải trình {word}", "Giải trình về công tác tiếp công dân.")
        sequence = (await event_store.append(event)).sequence
        # Indexed by the projector in the main search process, read through this one.
        found = get(http, api_only, "/v1/search", q=word, after_seq=sequence)
        assert [h["asset_id"] for h in found["hits"]] == [event.aggregate_id]
        assert get(http, api_only, "/v1/projection", headers=ADMIN)["healthy"] is True
        assert "waiting for messages" not in spec.log_file.read_text()  # no consumer in this process
    finally:
        stop(spec)
