"""The catalogue as a real process against the real servers: archivists' edits
stick after a full re-tag; activities are created, assigned, merged, renamed and
searchable; the people registry imported from CSV is what the tagger recognises."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from services.catalogue.follow_ups import ACTOR as FOLLOW_UP_ACTOR
from services.search.app import PROJECTOR_DURABLE
from services.tagger.app import TAGGER_DURABLE
from shared.auth import Role
from shared.events.envelope import new_event
from shared.events.publishing import ActivityPublishedV2
from shared.events.tagging import ActivityEditedV1, ActivityMergedV1
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import ARCHIVIST, AUTH, PRODUCER, consumer_settled, role_headers, run, wait_for
from tests.integration.archive import banner_jpeg, search, tagged_count, tags, upload

pytestmark = pytest.mark.integration


def test_an_archivists_edit_sticks_after_a_full_retag(services: Settings, http: httpx.Client, unique: str) -> None:
    s = services
    asset_id = upload(
        http,
        s,
        banner_jpeg(["HỘI NGHỊ TIẾP XÚC CỬ TRI"], unique),
        title=f"Ảnh {unique}",
        activity_type="khac",
        caption="Tiếp xúc cử tri tại xã Phước Hậu",
        recorded_at="2024-03-02",
    )
    wait_for(lambda: tags(http, s, asset_id).get("tagged_at"), timeout=60, what="first tagging")
    assert tags(http, s, asset_id)["activity_type"] == "tiep-xuc-cu-tri"
    edit = http.patch(
        f"{s.catalogue_url}/v1/assets/{asset_id}/metadata",
        headers=ARCHIVIST,
        json={"activity_type": "giam-sat-kien-nghi", "people": ["Nguyễn Văn Tâm"], "note": "sửa tay"},
    )
    assert edit.status_code == 200, edit.text
    assert edit.json()["activity_type"] == "giam-sat-kien-nghi"
    edited = [e for e in edit.json()["events"] if e["type"] == "asset.metadata_edited"]
    assert edited[-1]["actor"] == "luu-tru" and edited[-1]["payload"]["activity_type"] == "giam-sat-kien-nghi"

    before = tagged_count(http, s, asset_id)
    response = http.post(f"{s.catalogue_url}/v1/retag", headers=ARCHIVIST, json={"reason": "đổi từ vựng"})
    assert response.status_code == 202 and response.json()["requested"] >= 1
    # A full re-tag queues every asset the suite has uploaded so far (hundreds by now: the bulk
    # import alone adds 200) in front of this one; the tagger takes them one at a time.
    requested = response.json()["requested"]
    wait_for(lambda: tagged_count(http, s, asset_id) > before, timeout=90 + 1.5 * requested, what="re-tag")
    after = tags(http, s, asset_id)
    assert after["activity_type"] == "giam-sat-kien-nghi" and after["people"] == ["Nguyễn Văn Tâm"]
    assert after["auto"]["activity_type"] == "tiep-xuc-cu-tri"
    wait_for(
        lambda: (h := search(http, s, q=unique)["hits"]) and h[0]["activity_type"] == "giam-sat-kien-nghi",
        timeout=60,
        what="edit in the index after re-tag",
    )
    # The full re-tag queued every asset of the run: let the tagger and the projection finish
    # it, so the tests after this one do not wait behind it (a saved search's "new upload
    # within 20 s" once ran into the storm of a thousand re-tags being projected).
    for durable in (TAGGER_DURABLE, PROJECTOR_DURABLE):
        wait_for(
            lambda durable=durable: asyncio.run(consumer_settled(s, durable)),  # type: ignore[misc]
            timeout=90 + 1.5 * requested,
            what=f"{durable} settled after the full re-tag",
        )


def test_a_bad_edit_is_refused_in_vietnamese_and_english(services: Settings, http: httpx.Client) -> None:
    response = http.patch(
        f"{services.catalogue_url}/v1/assets/a{'0' * 32}/metadata", headers=ARCHIVIST, json={"activity_type": "ky-hop"}
    )
    assert response.status_code == 404 and response.json()["error"]["message"].startswith("Không tìm thấy")
    assert http.get(f"{services.catalogue_url}/v1/activities").status_code == 401


def test_a_broadcaster_corrects_their_own_upload_until_it_is_published_and_no_one_elses(
    services: Settings, http: httpx.Client, unique: str
) -> None:
    s = services
    asset_id = upload(
        http, s, banner_jpeg(["TIẾP XÚC CỬ TRI"], unique), title=f"Ảnh sai tên {unique}", activity_type="khac"
    )
    url = f"{s.catalogue_url}/v1/assets/{asset_id}/metadata"
    other_broadcaster = role_headers(Role.PHONG_VIEN, f"pv-{unique}")
    assert http.patch(url, headers=other_broadcaster, json={"title": "x"}).status_code == 404  # unpublished: unseen
    assert http.patch(url, headers=PRODUCER, json={"title": "x"}).status_code == 403  # producers do not edit

    corrected = http.patch(url, headers=AUTH, json={"title": f"Ảnh đúng tên {unique}", "note": "gõ nhầm"})
    assert corrected.status_code == 200, corrected.text
    edited = [e for e in corrected.json()["events"] if e["type"] == "asset.metadata_edited"]
    assert edited[-1]["actor"] == "phong-vien" and edited[-1]["payload"]["title"] == f"Ảnh đúng tên {unique}"

    published = http.put(f"{s.catalogue_url}/v1/assets/{asset_id}/publication", headers=ARCHIVIST, json={})
    assert published.status_code == 200, published.text
    assert http.patch(url, headers=other_broadcaster, json={"title": "x"}).json()["error"]["code"] == "not_your_upload"
    late = http.patch(url, headers=AUTH, json={"title": "sửa sau khi xuất bản"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "already_published"
    assert tags(http, s, asset_id)["title"] == f"Ảnh đúng tên {unique}"


def test_activities_are_created_suggested_assigned_merged_and_searchable(
    services: Settings, http: httpx.Client, unique: str
) -> None:
    s = services
    url = f"{s.catalogue_url}/v1/activities"
    body = {
        "title": f"Kỳ họp thứ 9 HĐND tỉnh {unique}",
        "activity_type": "ky-hop",
        "term": "2021-2026",
        "start_date": "2024-07-09",
        "end_date": "2024-07-11",
        "place": "Hội trường HĐND tỉnh",
        "organs": ["Thường trực HĐND"],
    }
    main = http.post(url, headers=ARCHIVIST, json=body)
    assert main.status_code == 201, main.text
    dup = http.post(url, headers=ARCHIVIST, json={**body, "title": f"Kỳ họp 9 (trùng) {unique}"}).json()
    main_id = main.json()["activity_id"]
    edited = http.patch(f"{url}/{main_id}", headers=ARCHIVIST, json={"place": "Trung tâm Hội nghị tỉnh"})
    assert edited.status_code == 200 and edited.json()["place"] == "Trung tâm Hội nghị tỉnh"

    asset_id = upload(
        http,
        s,
        banner_jpeg(["PHIÊN CHẤT VẤN"], unique),
        title=f"Phiên chất vấn kỳ họp thứ 9 {unique}",
        activity_type="ky-hop",
        recorded_at="2024-07-10",
    )
    view = wait_for(lambda: (t := tags(http, s, asset_id)).get("tagged_at") and t, timeout=60, what="tagging")
    assert view["suggested_activity_id"] in {main_id, dup["activity_id"]}
    assigned = http.put(
        f"{s.catalogue_url}/v1/assets/{asset_id}/activity", headers=ARCHIVIST, json={"activity_id": dup["activity_id"]}
    )
    assert assigned.status_code == 200, assigned.text
    merged = http.post(f"{url}/{dup['activity_id']}/merge", headers=ARCHIVIST, json={"into_activity_id": main_id})
    assert merged.status_code == 200, merged.text
    assert merged.json()["moved_assets"] == [asset_id] and asset_id in merged.json()["into"]["assets"]
    wait_for(lambda: search(http, s, activity=main_id)["total"] == 1, timeout=60, what="search by activity")
    # The activity's title is searchable too, without diacritics.
    hits = search(http, s, q=f"ky hop thu 9 {unique}")["hits"]
    assert hits and hits[0]["asset_id"] == asset_id

    # The search side lists the activity under its term, with its asset.
    listed = http.get(f"{s.search_url}/v1/stats/activities", headers=AUTH, params={"term": "2021-2026"}).json()
    [term_row] = listed["terms"]
    row = next(a for a in term_row["activities"] if a["activity_id"] == main_id)
    assert term_row["term"] == "2021-2026" and row["asset_count"] == 1 and row["activity_types"] == ["ky-hop"]

    # Renaming the activity re-titles its assets in search (through their own events).
    renamed = http.patch(f"{url}/{main_id}", headers=ARCHIVIST, json={"title": f"Kỳ họp chuyên đề tháng Bảy {unique}"})
    assert renamed.status_code == 200, renamed.text

    def found_by_new_title() -> list[dict[str, Any]]:
        return [
            h
            for h in search(http, s, q=f"ky hop chuyen de thang bay {unique}")["hits"]
            if h["asset_id"] == asset_id and h.get("activity_title") == f"Kỳ họp chuyên đề tháng Bảy {unique}"
        ]

    wait_for(found_by_new_title, timeout=30, what="the asset found by the activity's new title")
    blank = http.patch(f"{url}/{main_id}", headers=ARCHIVIST, json={"title": "   "})
    assert blank.status_code == 422 and blank.json()["error"]["message"], blank.text
    assert http.get(f"{url}/{main_id}", headers=ARCHIVIST).json()["title"] == f"Kỳ họp chuyên đề tháng Bảy {unique}"
    history = http.get(f"{s.search_url}/v1/assets/{asset_id}/history", headers=AUTH).json()["events"]
    retitled = [e for e in history if e["type"] == "asset.activity_assigned"][-1]
    # The rename's own request moves it, unless the follow-up pass got there first.
    assert retitled["payload"]["activity_id"] == main_id and retitled["actor"] in ("luu-tru", FOLLOW_UP_ACTOR)


def test_a_merge_a_rename_and_a_publication_a_crash_left_unfinished_are_carried_to_the_assets_once(
    services: Settings, http: httpx.Client, unique: str
) -> None:
    # The catalogue appended activity.merged (activity.edited, activity.published) and was
    # killed before it told the assets: the events are appended here directly, as that crash
    # left them.
    s = services
    url = f"{s.catalogue_url}/v1/activities"

    def activity(title: str) -> str:
        made = http.post(
            url,
            headers=ARCHIVIST,
            json={"title": title, "activity_type": "giam-sat-chuyen-de", "start_date": "2025-03-12"},
        )
        assert made.status_code == 201, made.text
        return str(made.json()["activity_id"])

    def asset_in(activity_id: str, text: str) -> str:
        asset_id = upload(http, s, banner_jpeg([text], unique), title=f"{text} {unique}", activity_type="khac")
        put = http.put(
            f"{s.catalogue_url}/v1/assets/{asset_id}/activity", headers=ARCHIVIST, json={"activity_id": activity_id}
        )
        assert put.status_code == 200, put.text
        return asset_id

    def follow_ups(asset_id: str, event_type: str = "asset.activity_assigned") -> list[dict[str, Any]]:
        history = http.get(f"{s.search_url}/v1/assets/{asset_id}/history", headers=ARCHIVIST).json()["events"]
        return [e for e in history if e["type"] == event_type and e["actor"] == FOLLOW_UP_ACTOR]

    def crash_after(activity_id: str, payload: ActivityMergedV1 | ActivityEditedV1 | ActivityPublishedV2) -> str:
        event = new_event(payload, aggregate_id=activity_id, actor="luu-tru")

        async def append() -> None:
            store = await EventStore.from_settings(s)
            try:
                await store.append(event)
            finally:
                await store.close()

        run(append())
        return event.event_id

    def retitled(activity_id: str, asset_id: str, title: str) -> None:
        crash_after(activity_id, ActivityEditedV1(title=title))
        wait_for(
            lambda: (f := follow_ups(asset_id)) and f[-1]["payload"]["activity_title"] == title,
            timeout=60,
            what=f"{asset_id} re-titled {title}",
        )

    main_id, dup_id = activity(f"Giám sát chuyên đề {unique}"), activity(f"Giám sát (trùng) {unique}")
    asset_id = asset_in(dup_id, "GIÁM SÁT")
    crash_after(dup_id, ActivityMergedV1(into_activity_id=main_id))
    [moved] = wait_for(lambda: follow_ups(asset_id), timeout=60, what="the asset moved")
    assert moved["payload"]["activity_id"] == main_id and moved["payload"]["previous_activity_id"] == dup_id
    assert http.get(f"{url}/{main_id}", headers=ARCHIVIST).json()["assets"] == [asset_id]
    retitled(main_id, asset_id, f"Giám sát việc thi hành luật {unique}")
    published_by = crash_after(main_id, ActivityPublishedV2(asset_ids=(asset_id,), note="Xuất bản cả hoạt động"))
    [published] = wait_for(lambda: follow_ups(asset_id, "asset.published"), timeout=60, what="the asset published")
    assert published["causation_id"] == published_by and published["payload"]["note"] == "Xuất bản cả hoạt động"
    retitled(main_id, asset_id, f"Giám sát năm 2025 {unique}")
    # Settled: passes seen to run after those (through another activity's renames) leave the
    # asset as it is. Exactly one assignment per change.
    other_id = activity(f"Tiếp xúc cử tri {unique}")
    other_asset = asset_in(other_id, "TIẾP XÚC CỬ TRI")
    for n in (1, 2):
        retitled(other_id, other_asset, f"Tiếp xúc cử tri đợt {n} {unique}")
    assert [e["payload"]["activity_title"] for e in follow_ups(asset_id)] == [
        f"Giám sát chuyên đề {unique}",
        f"Giám sát việc thi hành luật {unique}",
        f"Giám sát năm 2025 {unique}",
    ]
    assert len(follow_ups(asset_id, "asset.published")) == 1
    wait_for(lambda: search(http, s, q=f"giam sat nam 2025 {unique}")["total"] == 1, timeout=60, what="new title")


def test_people_import_from_csv_is_idempotent_and_the_imported_person_is_recognised_in_a_caption(
    services: Settings, http: httpx.Client, unique: str
) -> None:
    s = services
    # A name nobody else has (letters only, as names are read from captions).
    given = "".join(chr(ord("a") + int(c, 16)) for c in unique[:5]).capitalize()
    name = f"Hoàng Thị {given}"
    csv_text = f"name,role,organ,term\n{name},Đại biểu HĐND tỉnh,Tổ đại biểu số 3,2021-2026\n"
    url = f"{s.catalogue_url}/v1/people/import"
    first = http.post(url, headers={**ARCHIVIST, "Content-Type": "text/csv"}, content=csv_text.encode())
    assert first.status_code == 200, first.text
    assert first.json()["rows"] == 1 and first.json()["added"] == 1
    again = http.post(url, headers={**ARCHIVIST, "Content-Type": "text/csv"}, content=csv_text.encode())
    assert again.json()["added"] == 0 and again.json()["registry_size"] == first.json()["registry_size"]
    [person] = [
        p for p in http.get(f"{s.catalogue_url}/v1/people", headers=ARCHIVIST).json()["people"] if p["name"] == name
    ]
    assert person["organ"] == "Tổ đại biểu số 3" and person["term"] == "2021-2026"

    # The tagger reads the registry from the log: a caption naming her (without
    # diacritics, as reporters often type) tags the registered person.
    asset_id = upload(
        http,
        s,
        banner_jpeg(["TIẾP XÚC CỬ TRI"], unique),
        title=f"Tiếp xúc cử tri {unique}",
        activity_type="tiep-xuc-cu-tri",
        recorded_at="2024-05-02",
        caption=f"Đồng chí Hoang Thi {given}, Đại biểu HĐND tỉnh phát biểu tại buổi tiếp xúc",
    )
    view = wait_for(lambda: (t := tags(http, s, asset_id)).get("tagged_at") and t, timeout=60, what="tagging")
    assert person["person_id"] in view["person_ids"], view
    assert name not in view["new_people"] and f"Hoang Thi {given}" not in view["new_people"]
