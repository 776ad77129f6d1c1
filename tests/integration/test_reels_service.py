"""The reels service against the real stack: producers' edits (validation, races,
permissions, visibility) and drafts from a search."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth import Role
from shared.events.envelope import new_event
from shared.events.media import AssetProcessingFailedV1, ProcessingStage
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import ADMIN, ARCHIVIST, AUTH, PRODUCER, role_headers, wait_for
from tests.integration.reels import (
    TITLE,
    assert_bilingual,
    assets,
    create_reel,
    get_reel,
    put_items,
    reel_sources,
    request,
)

pytestmark = pytest.mark.integration
__all__ = ["assets", "reel_sources"]  # the fixtures both reels test modules share (tests/integration/reels.py)


def items(assets: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"asset_id": assets["video"], "in_s": 0.5, "out_s": 2.25, "caption": "Khai mạc kỳ họp"},
        {"asset_id": assets["photo"], "in_s": 0, "out_s": 2, "caption": "Ảnh tư liệu"},
        {"asset_id": assets["audio"], "in_s": 1, "out_s": 3.5, "caption": "Phát thanh"},
    ]


async def test_a_producer_creates_a_reel_sets_video_photo_and_audio_items_and_reads_them_back(
    services: Settings, http: httpx.Client, assets: dict[str, str]
) -> None:
    reel = create_reel(http, services, TITLE, subtitle="Kỳ họp thứ Bảy", profile="draft")
    assert reel["status"] == "draft" and reel["owner"] == "bien-tap" and reel["profile"] == "draft"
    response = put_items(http, services, reel["reel_id"], items(assets))
    assert response.status_code == 200, response.text
    got = get_reel(http, services, reel["reel_id"])
    assert [i["asset_id"] for i in got["items"]] == [assets["video"], assets["photo"], assets["audio"]]
    assert got["items"][0]["out_s"] == 2.25 and got["total_s"] == 6.25
    assert got["title"] == TITLE and got["progress"] == 0 and got["output"] is None
    listed = request(
        http, "GET", f"{services.reels_url}/v1/reels", headers=PRODUCER, params={"owner": "bien-tap", "status": "draft"}
    )
    assert reel["reel_id"] in [r["reel_id"] for r in listed.json()["reels"]]
    rendered_only = request(
        http, "GET", f"{services.reels_url}/v1/reels", headers=PRODUCER, params={"status": "rendered"}
    )
    assert reel["reel_id"] not in [r["reel_id"] for r in rendered_only.json()["reels"]]


async def test_each_kind_of_bad_item_is_refused_with_a_bilingual_4xx_and_nothing_is_appended(
    services: Settings, http: httpx.Client, assets: dict[str, str], event_store: EventStore
) -> None:
    reel_id = create_reel(http, services, TITLE)["reel_id"]
    video, photo = assets["video"], assets["photo"]
    failed = await an_asset_whose_processing_failed(event_store)

    def refused(bad: list[dict[str, Any]], status: int, code: str) -> None:
        assert_bilingual(put_items(http, services, reel_id, bad), status, code)

    refused([{"asset_id": video, "in_s": 1.0, "out_s": 3.5}], 422, "out_of_range")  # the clip is 3 s
    refused([{"asset_id": video, "in_s": 2.0, "out_s": 2.0}], 422, "in_not_before_out")
    refused([{"asset_id": video, "in_s": 2.0, "out_s": 1.0}], 422, "in_not_before_out")
    refused([{"asset_id": "a" + "0" * 32, "in_s": 0, "out_s": 1}], 422, "unknown_asset")
    refused([{"asset_id": failed, "in_s": 0, "out_s": 1}], 422, "asset_processing_failed")
    refused([{"asset_id": photo, "in_s": 0, "out_s": 61}], 422, "still_too_long")
    refused([], 422, "no_items")
    refused([{"asset_id": video, "in_s": 0, "out_s": 1}] * 501, 422, "too_many_items")
    refused([{"asset_id": photo, "in_s": 0, "out_s": 60}] * 241, 422, "too_long")  # 4 h 1 min
    caption = put_items(http, services, reel_id, [{"asset_id": video, "in_s": 0, "out_s": 1, "caption": "x" * 201}])
    assert_bilingual(caption, 422, "invalid_request")
    assert_bilingual(put_items(http, services, "bad.id", items(assets)), 400, "invalid_reel_id")
    assert_bilingual(put_items(http, services, "r" + "9" * 32, items(assets)), 404, "reel_not_found")
    history = await event_store.history("reel", reel_id)
    assert [e.envelope.type for e in history] == ["reel.created"]


async def an_asset_whose_processing_failed(event_store: EventStore) -> str:
    """An asset the log says failed processing (as the transcoder records a broken original)."""
    from services.reels.assets import fold_asset_facts
    from tests.search_corpus import ingested

    asset_id = "a" + uuid.uuid4().hex
    ingest_event = ingested(asset_id, title="Tệp hỏng")
    await event_store.append(ingest_event)
    failure = AssetProcessingFailedV1(
        stage=ProcessingStage.PROBE, code="undecodable", reason="Không giải mã được", reason_en="Undecodable",
        retryable=False, attempts=1,
    )  # fmt: skip
    await event_store.append(new_event(failure, aggregate_id=asset_id, actor="transcoder"))
    facts = fold_asset_facts(asset_id, [e.envelope for e in await event_store.history("asset", asset_id)])
    assert facts is not None and facts.failed_code is not None
    return asset_id


async def test_two_producers_saving_the_same_version_one_wins_the_other_gets_a_bilingual_409(
    services: Settings, assets: dict[str, str], event_store: EventStore
) -> None:
    with httpx.Client(timeout=60.0) as http:
        reel = create_reel(http, services, TITLE, headers=ARCHIVIST)
        version = reel["version"]
        edits = [items(assets)[:1], items(assets)[1:]]
        answers: list[httpx.Response] = []
        errors: list[BaseException] = []
        gate = threading.Barrier(2)

        def save(edit: list[dict[str, Any]], who: dict[str, str]) -> None:
            try:
                with httpx.Client(timeout=60.0) as client:
                    gate.wait(10)
                    answers.append(put_items(client, services, reel["reel_id"], edit, headers=who, version=version))
            except BaseException as exc:  # a failure in a thread must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=save, args=(e, h)) for e, h in zip(edits, (ARCHIVIST, ADMIN), strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 409], [a.text for a in answers]
        loser = next(a for a in answers if a.status_code == 409)
        assert_bilingual(loser, 409, "conflict")
        history = await event_store.history("reel", reel["reel_id"])
        assert [e.envelope.type for e in history] == ["reel.created", "reel.items_set"]
        # A stale version is refused even without a race; the current one is accepted.
        assert_bilingual(
            put_items(http, services, reel["reel_id"], items(assets), headers=ARCHIVIST, version=version), 409
        )
        current = get_reel(http, services, reel["reel_id"])["version"]
        saved = put_items(http, services, reel["reel_id"], items(assets), headers=ARCHIVIST, version=current)
        assert saved.status_code == 200, saved.text


async def test_only_production_roles_use_reels_and_a_producer_edits_only_their_own(
    services: Settings, http: httpx.Client, assets: dict[str, str]
) -> None:
    url = f"{services.reels_url}/v1/reels"
    assert_bilingual(request(http, "POST", url, headers=AUTH, json={"title": TITLE}), 403, "forbidden")  # a broadcaster
    assert_bilingual(request(http, "POST", url, json={"title": TITLE}), 401, "unauthenticated")
    assert_bilingual(request(http, "GET", url, headers=AUTH), 403, "forbidden")
    reel_id = create_reel(http, services, TITLE)["reel_id"]
    other = role_headers(Role.BIEN_TAP, "bien-tap-2")
    assert_bilingual(put_items(http, services, reel_id, items(assets), headers=other), 403, "not_reel_owner")
    assert put_items(http, services, reel_id, items(assets), headers=ARCHIVIST).status_code == 200


async def test_a_producer_cannot_put_a_restricted_asset_in_a_reel_that_an_archivist_can(
    services: Settings, http: httpx.Client, tmp_path: Path, event_store: EventStore, unique: str
) -> None:
    from tests.integration.reels import TITLE, upload, wait_processed
    from tests.transcoder_media import make_photo

    secret = upload(http, services, "kin.jpg", make_photo(f"kin-{unique}", size=(320, 240)), "image/jpeg", "Họp kín")
    await wait_processed(event_store, secret)
    restricted = request(
        http,
        "PUT",
        f"{services.catalogue_url}/v1/assets/{secret}/restriction",
        headers=ARCHIVIST,
        json={"restriction": "restricted"},
    )
    assert restricted.status_code == 200, restricted.text
    item = [{"asset_id": secret, "in_s": 0, "out_s": 2}]
    mine = create_reel(http, services, TITLE)["reel_id"]
    assert_bilingual(put_items(http, services, mine, item), 422, "unknown_asset")  # not even its existence
    theirs = create_reel(http, services, TITLE, headers=ARCHIVIST)["reel_id"]
    assert put_items(http, services, theirs, item, headers=ARCHIVIST).status_code == 200


async def test_a_draft_from_a_search_takes_one_segment_per_asset_around_its_first_non_black_frame(
    services: Settings, http: httpx.Client, assets: dict[str, str], event_store: EventStore
) -> None:
    tag = next(iter(get_reel_titles(http, services, assets)))

    def indexed() -> bool:
        found = request(http, "GET", f"{services.search_url}/v1/search", headers=PRODUCER, params={"q": tag})
        return {h["asset_id"] for h in found.json()["hits"]} == set(assets.values())

    wait_for(indexed, 60, 0.3, "the search to find the three sources")
    body = {"title": TITLE, "q": tag, "rule": "each_asset", "seconds": 1.0, "year": 2023}
    response = request(http, "POST", f"{services.reels_url}/v1/reels/draft", headers=PRODUCER, json=body)
    assert response.status_code == 201, response.text
    draft = response.json()
    by_asset = {i["asset_id"]: i for i in draft["items"]}
    assert set(by_asset) == set(assets.values()), draft
    video = by_asset[assets["video"]]
    # The clip starts with 0.5 s of black: the segment is centred on the first non-black frame.
    assert video["in_s"] >= 0.0 and video["out_s"] - video["in_s"] == pytest.approx(1.0)
    assert video["in_s"] <= 0.5 <= video["out_s"]
    assert by_asset[assets["photo"]] == {**by_asset[assets["photo"]], "in_s": 0.0, "out_s": 1.0}
    assert "poster_time_s" in draft["draft"]["segment_basis"]
    one_per_activity = request(
        http,
        "POST",
        f"{services.reels_url}/v1/reels/draft",
        headers=PRODUCER,
        json={**body, "rule": "one_per_activity"},
    )
    assert one_per_activity.status_code == 201, one_per_activity.text
    # The three share a day and an activity type (and no assigned activity): one segment, the video.
    assert [i["asset_id"] for i in one_per_activity.json()["items"]] == [assets["video"]]
    nothing = request(
        http, "POST", f"{services.reels_url}/v1/reels/draft", headers=PRODUCER, json={**body, "q": "khongcogiheta"}
    )
    assert_bilingual(nothing, 422, "nothing_to_draft")


def get_reel_titles(http: httpx.Client, s: Settings, assets: dict[str, str]) -> list[str]:
    """The sources' shared tag (their titles end with it), for a search that finds them alone."""
    response = request(http, "GET", f"{s.catalogue_url}/v1/assets/{assets['video']}/tags", headers=ARCHIVIST)
    assert response.status_code == 200, response.text
    return [str(response.json()["title"]).rsplit(" ", 1)[-1]]


async def test_reels_are_found_by_title_and_caption_typed_without_diacritics(
    services: Settings, http: httpx.Client, assets: dict[str, str], unique: str
) -> None:
    reel = create_reel(http, services, f"Tổng kết hoạt động HĐND tỉnh năm 2023 {unique}")
    caption = [{"asset_id": assets["video"], "in_s": 0, "out_s": 1, "caption": f"Đại biểu chất vấn {unique}x"}]
    assert put_items(http, services, reel["reel_id"], caption).status_code == 200
    url = f"{services.search_url}/v1/reels/search"

    def found(q: str) -> list[str]:
        response = request(http, "GET", url, headers=PRODUCER, params={"q": q})
        assert response.status_code == 200, response.text
        return [h["reel_id"] for h in response.json()["hits"]]

    wait_for(lambda: found(f"tong ket hoat dong hdnd {unique}") == [reel["reel_id"]], 30, 0.3, "the reel by title")
    wait_for(lambda: found(f"dai bieu chat van {unique}x") == [reel["reel_id"]], 30, 0.3, "the reel by caption")
    assert found(f"Đại biểu chất vấn {unique}x") == [reel["reel_id"]]  # typed with diacritics too
    assert found(f"tong ket {unique}x") == []  # every word must match
    assert_bilingual(request(http, "GET", url, headers=AUTH, params={"q": "x"}), 403, "forbidden")


async def test_a_draft_from_a_collection_takes_its_assets_only_and_an_unknown_collection_is_not_found(
    services: Settings, http: httpx.Client, assets: dict[str, str]
) -> None:
    catalogue = f"{services.catalogue_url}/v1/collections"
    created = request(http, "POST", catalogue, headers=PRODUCER, json={"kind": "thematic", "title": "Chất vấn 2023"})
    assert created.status_code == 201, created.text
    collection_id = created.json()["collection_id"]
    members = [{"asset_id": assets["video"]}, {"asset_id": assets["photo"]}]
    placed = request(http, "POST", f"{catalogue}/{collection_id}/assets", headers=PRODUCER, json={"items": members})
    assert placed.status_code == 200, placed.text
    body = {"title": TITLE, "collection": collection_id, "rule": "each_asset", "seconds": 1.0}

    def drafted() -> list[str] | None:
        response = request(http, "POST", f"{services.reels_url}/v1/reels/draft", headers=PRODUCER, json=body)
        assert response.status_code in (201, 422), response.text
        return sorted(i["asset_id"] for i in response.json()["items"]) if response.status_code == 201 else None

    assert wait_for(drafted, 30, 0.5, "a draft of the collection") == sorted([assets["video"], assets["photo"]])
    unknown = {**body, "collection": "c" + "0" * 32}
    assert_bilingual(request(http, "POST", f"{services.reels_url}/v1/reels/draft", headers=PRODUCER, json=unknown), 404)
