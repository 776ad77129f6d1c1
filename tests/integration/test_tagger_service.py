"""The tagger as a real process against the real servers: upload → tags in
search and facets; archivists' edits stick after a full re-tag; activities;
failures end as a visible event."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from shared.events.envelope import new_event
from shared.events.models import AssetIngestedV1, AssetKind
from shared.events.tagging import AssetRetagRequestedV1
from shared.eventstore import EventStore
from shared.ids import deterministic_event_id
from shared.settings import Settings
from tests.conftest import AUTH, async_wait_for, wait_for

pytestmark = pytest.mark.integration
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
ARCHIVIST = {"Authorization": "Bearer test-token-luu-tru"}


def banner_jpeg(lines: list[str], marker: str) -> bytes:
    img = Image.new("RGB", (1280, 720), (150, 20, 25))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 46)
    for i, line in enumerate(lines):
        draw.text((60, 220 + 80 * i), line, font=font, fill=(255, 225, 0))
    draw.text((10, 690), marker, font=ImageFont.truetype(FONT, 12), fill=(120, 10, 10))  # unique bytes
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def upload(http: httpx.Client, s: Settings, data: bytes, **fields: str) -> str:
    response = http.post(
        f"{s.ingest_url}/v1/assets", headers=AUTH, files={"file": ("anh.jpg", data, "image/jpeg")}, data=fields
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["asset_id"])


def tags(http: httpx.Client, s: Settings, asset_id: str) -> dict[str, Any]:
    response = http.get(f"{s.tagger_url}/v1/assets/{asset_id}/tags", headers=AUTH)
    assert response.status_code == 200, response.text
    return dict(response.json())


def tagged_count(http: httpx.Client, s: Settings, asset_id: str) -> int:
    return sum(e["type"] == "asset.tagged" for e in tags(http, s, asset_id)["events"])


def search(http: httpx.Client, s: Settings, **params: Any) -> dict[str, Any]:
    response = http.get(f"{s.search_url}/v1/search", headers=AUTH, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_uploaded_banner_photo_is_tagged_and_the_tags_appear_in_search_and_facets(
    services: Settings, http: httpx.Client, unique: str
) -> None:
    s = services
    asset_id = upload(
        http,
        s,
        banner_jpeg(["KỲ HỌP THỨ BẢY HĐND TỈNH KHÓA XI"], unique),
        title=f"IMG {unique}",
        activity_type="khac",
        recorded_at="2023-07-11",
        caption="Đồng chí Đặng Thanh Sơn, Phó Chủ tịch Thường trực HĐND tỉnh phát biểu",
    )
    view = wait_for(lambda: (t := tags(http, s, asset_id)).get("tagged_at") and t, timeout=60, what="asset.tagged")
    assert view["activity_type"] == "ky-hop" and view["activity_type_source"] == "classifier"
    assert "KỲ HỌP THỨ BẢY" in view["ocr_text"] and view["term"] == "2021-2026"
    assert view["people"] == ["Đặng Thanh Sơn"] and "Thường trực HĐND" in view["organisations"]

    def indexed() -> dict[str, Any] | None:
        found = search(http, s, q=unique, facets=["activity_type"])
        hits = found["hits"]
        return found if hits and hits[0].get("activity_type") == "ky-hop" and hits[0].get("people") else None

    found = wait_for(indexed, timeout=60, what="tags in the index")
    assert {"value": "ky-hop", "count": 1}.items() <= next(
        f for f in found["facets"]["activity_type"] if f["value"] == "ky-hop"
    ).items()
    # OCR words are searchable, with or without diacritics.
    assert search(http, s, q=f"khoa xi {unique}")["total"] == 1
    by_person = search(http, s, q=unique, person="Đặng Thanh Sơn")
    assert by_person["total"] == 1


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
        f"{s.tagger_url}/v1/assets/{asset_id}/metadata",
        headers=ARCHIVIST,
        json={"activity_type": "giam-sat-kien-nghi", "people": ["Nguyễn Văn Tâm"], "note": "sửa tay"},
    )
    assert edit.status_code == 200, edit.text
    assert edit.json()["activity_type"] == "giam-sat-kien-nghi"
    edited = [e for e in edit.json()["events"] if e["type"] == "asset.metadata_edited"]
    assert edited[-1]["actor"] == "luu-tru" and edited[-1]["payload"]["activity_type"] == "giam-sat-kien-nghi"

    before = tagged_count(http, s, asset_id)
    response = http.post(f"{s.tagger_url}/v1/retag", headers=ARCHIVIST, json={"reason": "đổi từ vựng"})
    assert response.status_code == 202 and response.json()["requested"] >= 1
    wait_for(lambda: tagged_count(http, s, asset_id) > before, timeout=90, what="re-tag")
    after = tags(http, s, asset_id)
    assert after["activity_type"] == "giam-sat-kien-nghi" and after["people"] == ["Nguyễn Văn Tâm"]
    assert after["auto"]["activity_type"] == "tiep-xuc-cu-tri"
    wait_for(
        lambda: (h := search(http, s, q=unique)["hits"]) and h[0]["activity_type"] == "giam-sat-kien-nghi",
        timeout=60,
        what="edit in the index after re-tag",
    )


def test_a_bad_edit_is_refused_in_vietnamese_and_english(services: Settings, http: httpx.Client) -> None:
    response = http.patch(
        f"{services.tagger_url}/v1/assets/a{'0' * 32}/metadata", headers=ARCHIVIST, json={"activity_type": "ky-hop"}
    )
    assert response.status_code == 404 and response.json()["error"]["message"].startswith("Không tìm thấy")
    assert http.get(f"{services.tagger_url}/v1/activities").status_code == 401


def test_activities_are_created_suggested_assigned_merged_and_searchable(
    services: Settings, http: httpx.Client, unique: str
) -> None:
    s = services
    url = f"{s.tagger_url}/v1/activities"
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
        f"{s.tagger_url}/v1/assets/{asset_id}/activity", headers=ARCHIVIST, json={"activity_id": dup["activity_id"]}
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
    listed = http.get(f"{s.search_url}/v1/activities", headers=AUTH, params={"term": "2021-2026"}).json()
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
    assert retitled["payload"]["activity_id"] == main_id and retitled["actor"] == "luu-tru"


async def test_an_asset_whose_original_is_missing_is_tagged_at_once_without_ocr(
    services: Settings, event_store: EventStore, unique: str
) -> None:
    asset_id = "a" + unique.ljust(32, "1")
    payload = AssetIngestedV1(
        sha256="0" * 64,
        size_bytes=1000,
        kind=AssetKind.PHOTO,
        media_format="jpeg",
        mime_type="image/jpeg",
        bucket=services.bucket_originals,
        object_key=f"missing/{unique}",
        original_filename="anh.jpg",
        title="Tiếp xúc cử tri trước kỳ họp",
        activity_type="khac",
    )
    await event_store.append(new_event(payload, aggregate_id=asset_id, actor="test"))

    async def tagged() -> list[Any]:
        return [e for e in await event_store.history("asset", asset_id) if e.envelope.type == "asset.tagged"]

    # No retries with back-off: retrying cannot bring back an original that is not there.
    [event] = await async_wait_for(tagged, 20, what="asset.tagged")
    assert "original missing" in event.envelope.payload["ocr_error"]
    assert event.envelope.payload["ocr_frames"] == 0


async def test_a_retag_of_an_unknown_asset_ends_as_a_clear_failed_event_once(
    services: Settings, event_store: EventStore, http: httpx.Client, unique: str
) -> None:
    ghost = "a" + unique.ljust(32, "0")
    cause = new_event(AssetRetagRequestedV1(reason="test"), aggregate_id=ghost, actor="test")
    await event_store.append(cause)
    await event_store.append(cause)  # a duplicate publish is dropped by Nats-Msg-Id

    async def failed() -> list[Any]:
        return [e for e in await event_store.history("asset", ghost) if e.envelope.type == "asset.tagging_failed"]

    [event] = await async_wait_for(failed, 60, what="asset.tagging_failed")
    assert event.envelope.event_id == str(deterministic_event_id(cause.event_id, "tagging_failed"))
    assert event.envelope.payload["code"] == "asset_not_found"
    assert event.envelope.payload["message"].startswith("Không tìm thấy")


def test_people_import_from_csv_is_idempotent_and_feeds_the_registry(
    services: Settings, http: httpx.Client, unique: str
) -> None:
    csv_text = f"name,role,organ,term\nHoàng Thị Mai {unique.upper()[:1]}an,Đại biểu HĐND tỉnh,Tổ đại biểu,2021-2026\n"
    url = f"{services.tagger_url}/v1/people/import"
    first = http.post(url, headers={**ARCHIVIST, "Content-Type": "text/csv"}, content=csv_text.encode())
    assert first.status_code == 200, first.text
    again = http.post(url, headers={**ARCHIVIST, "Content-Type": "text/csv"}, content=csv_text.encode())
    assert again.json()["added"] == 0 and again.json()["registry_size"] == first.json()["registry_size"]
