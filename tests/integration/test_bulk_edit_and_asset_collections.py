"""Bulk edit (catalogue) and the collections of an asset (search) against the real servers,
on the quiet NATS (only the test writes there, so histories and sequences are exact):
per-asset results with refused assets and no 5xx; selections edited concurrently give each
asset exactly one edit and a 409 for the others; an asset's collections are its hand ones
and the saved searches matching it, never where it is excluded."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from deploy.local.processes import ProcessSpec
from shared.events.envelope import new_event
from shared.events.tagging import AssetMetadataEditedV1
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import ARCHIVIST, AUTH, PRODUCER, run, wait_for
from tests.integration.collections_stack import quiet_services
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration
__all__ = ["quiet_services"]  # the fixture, imported for this module


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def new_assets(s: Settings, titles: list[str], **fields: Any) -> list[str]:
    """Assets as ingest appends them (no media: nothing here needs it)."""
    ids = ["a" + uuid.uuid4().hex for _ in titles]

    async def append() -> None:
        events = await EventStore.connect(s.resolved_nats_url, s.event_stream)
        try:
            for asset_id, title in zip(ids, titles, strict=True):
                await events.append(ingested(asset_id, title, **fields))
        finally:
            await events.close()

    run(append())
    return ids


def histories(s: Settings, ids: list[str]) -> dict[str, list[Any]]:
    async def read() -> dict[str, list[Any]]:
        events = await EventStore.connect(s.resolved_nats_url, s.event_stream)
        try:
            return {a: await events.history("asset", a) for a in ids}
        finally:
            await events.close()

    return run(read())


def edits_of(history: list[Any]) -> int:
    return sum(e.envelope.type == AssetMetadataEditedV1.EVENT_TYPE for e in history)


def test_a_bulk_edit_answers_per_asset_and_refuses_the_bad_ones_in_vietnamese(
    quiet_services: tuple[Settings, ProcessSpec], http: httpx.Client
) -> None:
    s, _ = quiet_services
    url = f"{s.catalogue_url}/v1/assets/metadata/bulk"
    ids = new_assets(s, ["Ảnh kỳ họp 1", "Ảnh kỳ họp 2", "Ảnh kỳ họp 3"])
    missing, bad = "a" + uuid.uuid4().hex, "../../etc"
    body = {
        "asset_ids": [*ids, missing, bad, ids[0]],  # one twice: edited once
        "activity_type": "ky-hop",
        "term": "2021-2026",
        "people_add": ["Nguyễn Văn Tâm"],
        "note": "sửa hàng loạt",
    }
    answer = ok(http.post(url, headers=ARCHIVIST, json=body))
    results = {r["asset_id"]: r for r in answer["results"]}
    assert len(answer["results"]) == 5 and (answer["ok"], answer["refused"]) == (3, 2)
    for asset_id in ids:
        assert results[asset_id]["result"] == "ok" and results[asset_id]["applied"] == ["metadata"]
    assert results[missing]["status"] == 404 and results[missing]["message"].startswith("Không tìm thấy tư liệu")
    assert results[bad]["status"] == 400 and results[bad]["message_en"]
    for asset_id in ids:
        tags = ok(http.get(f"{s.catalogue_url}/v1/assets/{asset_id}/tags", headers=ARCHIVIST))
        assert (tags["activity_type"], tags["term"], tags["people"]) == ("ky-hop", "2021-2026", ["Nguyễn Văn Tâm"])

    # The same again changes nothing (each asset already has it all): no new event.
    again = ok(http.post(url, headers=ARCHIVIST, json=body))
    assert [r["applied"] for r in again["results"][:3]] == [[], [], []]
    # A second name is added beside the first, not in its place.
    ok(http.post(url, headers=ARCHIVIST, json={"asset_ids": ids[:1], "people_add": ["Trần Thị Hoa"]}))
    tags = ok(http.get(f"{s.catalogue_url}/v1/assets/{ids[0]}/tags", headers=ARCHIVIST))
    assert tags["people"] == ["Nguyễn Văn Tâm", "Trần Thị Hoa"]
    assert [edits_of(h) for h in histories(s, ids).values()] == [2, 1, 1]

    # A value no asset may take is each asset's refusal, in Vietnamese first.
    wrong = ok(http.post(url, headers=ARCHIVIST, json={"asset_ids": ids, "activity_type": "khong-co"}))
    assert wrong["refused"] == 3 and all(r["status"] == 422 and r["message"] for r in wrong["results"])
    # Refused as a whole: nothing to change, too many assets, a role that may not edit.
    assert http.post(url, headers=ARCHIVIST, json={"asset_ids": ids}).status_code == 422
    too_many = {"asset_ids": [f"a{i:032x}" for i in range(501)], "term": "2021-2026"}
    assert http.post(url, headers=ARCHIVIST, json=too_many).status_code == 422
    assert http.post(url, headers=AUTH, json={"asset_ids": ids, "term": "2021-2026"}).status_code == 403


def test_bulk_edits_racing_each_other_give_each_asset_one_edit_and_the_others_409(
    quiet_services: tuple[Settings, ProcessSpec], http: httpx.Client
) -> None:
    s, _ = quiet_services
    url = f"{s.catalogue_url}/v1/assets/metadata/bulk"
    ids = new_assets(s, [f"Tiếp xúc cử tri {i}" for i in range(6)])
    seen = {a: h[-1].sequence for a, h in histories(s, ids).items()}

    # Someone edits one asset after the selection was shown: that one is refused, not overwritten.
    ok(http.patch(f"{s.catalogue_url}/v1/assets/{ids[0]}/metadata", headers=ARCHIVIST, json={"title": "Sửa trước"}))
    stale = ok(http.post(url, headers=ARCHIVIST, json={"asset_ids": ids, "term": "2016-2021", "expected": seen}))
    by_id = {r["asset_id"]: r for r in stale["results"]}
    assert by_id[ids[0]]["status"] == 409 and by_id[ids[0]]["code"] == "changed_meanwhile"
    assert by_id[ids[0]]["message"].startswith("Tư liệu") and all(by_id[a]["result"] == "ok" for a in ids[1:])

    # Four editors at once on the same selection, each as they saw it.
    seen = {a: h[-1].sequence for a, h in histories(s, ids).items()}
    before = {a: edits_of(h) for a, h in histories(s, ids).items()}

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        url,
                        headers=ARCHIVIST,
                        json={"asset_ids": ids, "people_add": [f"Người {n}"], "expected": seen},
                    )
                    for n in range(4)
                )
            )

    answers = run(race())
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    outcomes = [r for a in answers for r in a.json()["results"]]
    assert Counter(r["status"] for r in outcomes) == {200: len(ids), 409: 3 * len(ids)}
    winners = Counter(r["asset_id"] for r in outcomes if r["status"] == 200)
    assert winners == dict.fromkeys(ids, 1)
    # Counted after the fact: exactly one new edit per asset, whoever won it.
    after = {a: edits_of(h) for a, h in histories(s, ids).items()}
    assert {a: after[a] - before[a] for a in ids} == dict.fromkeys(ids, 1)


def test_the_collections_of_an_asset_are_its_hand_and_saved_search_ones_minus_exclusions(
    quiet_services: tuple[Settings, ProcessSpec], http: httpx.Client
) -> None:
    s, _ = quiet_services
    token = uuid.uuid4().hex[:10]
    first, second = new_assets(
        s, [f"Giám sát {token} một", f"Giám sát {token} hai"], activity_type="giam-sat-chuyen-de"
    )
    wait_for(
        lambda: ok(http.get(f"{s.search_url}/v1/search", headers=ARCHIVIST, params={"q": token}))["total"] == 2,
        timeout=60,
        what="both assets searchable",
    )
    collections = f"{s.catalogue_url}/v1/collections"

    def create(title: str, **extra: Any) -> str:
        made = ok(http.post(collections, headers=PRODUCER, json={"kind": "thematic", "title": title, **extra}), 201)
        return str(made["collection_id"])

    by_hand = create(f"Tay {token}")
    ok(
        http.post(
            f"{collections}/{by_hand}/assets", headers=PRODUCER, json={"items": [{"asset_id": first, "note": "mở đầu"}]}
        )
    )
    matched = create(f"Tìm {token}", saved_search={"q": token})
    excluding = create(f"Loại {token}", saved_search={"q": token})
    ok(http.post(f"{collections}/{excluding}/exclusions", headers=PRODUCER, json={"asset_id": first}))
    create(f"Khác {token}", saved_search={"q": token, "activity_type": ["ky-hop"]})  # matches neither

    def of(asset_id: str, headers: dict[str, str] = PRODUCER) -> httpx.Response:
        return http.get(f"{s.search_url}/v1/assets/{asset_id}/collections", headers=headers)

    rows = ok(of(first))["collections"]
    assert {(r["collection_id"], r["how"]) for r in rows} == {(by_hand, "hand"), (matched, "search")}
    assert next(r for r in rows if r["how"] == "hand")["note"] == "mở đầu"
    assert {r["collection_id"] for r in ok(of(second))["collections"]} == {matched, excluding}
    # Not for who may not read collections; an asset that is not there is not found, in Vietnamese.
    assert of(first, AUTH).status_code == 403
    missing = of("a" + uuid.uuid4().hex)
    assert missing.status_code == 404 and missing.json()["error"]["message"].startswith("Không tìm thấy")


def test_uploader_me_finds_only_the_callers_own_uploads(
    quiet_services: tuple[Settings, ProcessSpec], http: httpx.Client
) -> None:
    s, _ = quiet_services
    token = uuid.uuid4().hex[:10]
    ids = ["a" + uuid.uuid4().hex for _ in range(3)]
    uploaders = ["luu-tru", "luu-tru", "phong-vien"]

    async def append() -> None:
        events = await EventStore.connect(s.resolved_nats_url, s.event_stream)
        try:
            for n, (asset_id, actor) in enumerate(zip(ids, uploaders, strict=True)):
                # Uploaded one after the other, each recorded a day before the one uploaded before it.
                recorded = datetime(2020, 1, 10, tzinfo=UTC) - timedelta(days=n)
                payload = ingested(asset_id, f"Ảnh tiếp xúc cử tri {token} {n}", recorded_at=recorded).typed_payload()
                event = new_event(payload, aggregate_id=asset_id, actor=actor)
                uploaded = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
                await events.append(event.model_copy(update={"occurred_at": uploaded}))
        finally:
            await events.close()

    run(append())

    def listed(headers: dict[str, str], **params: str) -> list[str]:
        answer = ok(http.get(f"{s.search_url}/v1/search", headers=headers, params={"q": token, **params}))
        return [h["asset_id"] for h in answer["hits"]]

    def found(headers: dict[str, str], **params: str) -> set[str]:
        return set(listed(headers, **params))

    wait_for(lambda: len(found(ARCHIVIST)) == 3, timeout=60, what="the three uploads searchable")
    assert found(ARCHIVIST, uploader="me") == set(ids[:2])
    assert found(AUTH, uploader="me") == {ids[2]}
    # Newest upload first (what the upload page lists), not newest recording.
    assert listed(ARCHIVIST, uploader="me", sort="uploaded") == [ids[1], ids[0]]
    assert listed(ARCHIVIST, uploader="me", sort="date") == [ids[0], ids[1]]
    refused = http.get(f"{s.search_url}/v1/search", headers=ARCHIVIST, params={"q": token, "uploader": "everyone"})
    assert refused.status_code == 422 and refused.json()["error"]["message"].startswith("Yêu cầu không hợp lệ")
