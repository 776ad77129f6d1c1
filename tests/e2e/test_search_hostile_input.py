"""Through the running search service: events already in the log holding values no index
field could take (900 KB keywords, dates in year 1 and 9999, 40 000-character names,
1.2 MB texts) are found by their words, ``GET /v1/projection`` stays healthy and small,
read-your-writes keeps answering, and a search matching a huge text answers 200 with a
short highlight."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from shared.events.envelope import new_event
from shared.events.tagging import PersonRegisteredV1
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import ADMIN, AUTH
from tests.integration.test_search_hostile_input import HUGE_TEXT, _assigned, _edited, hostile_histories, stored
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration

# Highlights are cut to a window of 2 000 characters; marks and "…" come on top.
HIGHLIGHT_BOUND = 3_000


def search(http: httpx.Client, s: Settings, **params: Any) -> httpx.Response:
    return http.get(f"{s.search_url}/v1/search", headers=AUTH, params=params)


def projection_status(http: httpx.Client, s: Settings) -> httpx.Response:
    return http.get(f"{s.search_url}/v1/projection", headers=ADMIN)


async def test_hostile_events_in_the_log_are_found_and_leave_the_projection_healthy_and_read_your_writes_working(
    services: Settings,
    http: httpx.Client,
    event_store: EventStore,
) -> None:
    word = "thùđịch" + uuid.uuid4().hex[:8]
    histories = hostile_histories(word, uuid.uuid4().hex[:8])
    last = 0
    written = []  # each asset's last event: read-your-writes is per event, not "everything before"
    for events in histories.values():
        for event in events:
            last = (await event_store.append(event)).sequence
        written.append(last)
    for sequence in written:
        assert search(http, services, q=word, after_seq=sequence).status_code == 200
    # A later event of another aggregate: read-your-writes then waits on the projector's ack floor.
    person = new_event(PersonRegisteredV1(name=f"Người {word}"), aggregate_id="p" + uuid.uuid4().hex, actor="luu-tru")
    later = (await event_store.append(person)).sequence

    found = search(http, services, q=word, after_seq=last, size=50)
    assert found.status_code == 200, found.text[:500]
    hits = found.json()["hits"]
    assert {h["asset_id"] for h in hits} == {events[0].aggregate_id for events in histories.values()}
    assert all(len(marked) <= HIGHLIGHT_BOUND for h in hits for marked in h["highlight"].values())
    assert search(http, services, q=word, after_seq=later).status_code == 200

    projection = projection_status(http, services)
    assert projection.status_code == 200 and len(projection.content) < 20_000
    assert projection.json()["healthy"] is True, projection.json()["failures"]


async def test_a_search_matching_an_asset_with_a_1_2_mb_title_answers_200_with_a_bounded_highlight(
    services: Settings,
    http: httpx.Client,
    event_store: EventStore,
) -> None:
    word = "dàiquá" + uuid.uuid4().hex[:8]
    asset = "hl" + uuid.uuid4().hex[:12]
    events = [
        ingested(asset, f"Kỳ họp {word}"),
        stored(_edited(asset, title="B"), title=f"Kỳ họp {word} {HUGE_TEXT}"),  # as an older catalogue took it
        _assigned(asset, f"Kỳ họp {word} {HUGE_TEXT}"),  # the activity's title, carried by the asset's event
    ]
    for event in events:
        last = (await event_store.append(event)).sequence

    response = search(http, services, q=word, after_seq=last)

    assert response.status_code == 200, response.text[:500]
    [hit] = response.json()["hits"]
    assert hit["asset_id"] == asset
    for name in ("title", "activity_title"):
        assert f"<em>{word}</em>" in hit["highlight"][name]
        assert len(hit["highlight"][name]) <= HIGHLIGHT_BOUND
