"""End to end through HTTP: ingest → event stream → projector → search."""

import asyncio
import hashlib
import os
import random
from datetime import date, timedelta

import httpx
import pytest

from shared.auth import Role
from shared.ids import asset_id_for_sha256
from shared.objectstore import content_key
from shared.settings import Settings
from tests.conftest import ARCHIVIST, AUTH, object_store_for, role_headers, wait_for
from tests.media import jpeg_bytes

pytestmark = pytest.mark.integration

# A sentence of the council's conclusion notice (seed document 000).
SEED_CAPTION = "Hoạt động tiếp xúc cử tri; tiếp công dân, xử lý đơn thư khiếu nại, tố cáo của công dân."


def upload(
    http: httpx.Client,
    s: Settings,
    content: bytes,
    filename: str = "anh.jpg",
    headers: dict[str, str] | None = None,
    **form: str,
) -> httpx.Response:
    return http.post(
        f"{s.ingest_url}/v1/assets",
        headers=AUTH if headers is None else headers,
        data=form,
        files={"file": (filename, content, "application/octet-stream")},
    )


def search(s: Settings, http: httpx.Client, **params: object) -> dict:  # type: ignore[type-arg]
    response = http.get(f"{s.search_url}/v1/search", headers=AUTH, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_captioned_photo_is_found_by_words_typed_without_diacritics_with_right_facets(
    services: Settings, http: httpx.Client
) -> None:
    day = date(2019, 1, 1) + timedelta(days=random.randrange(3000))
    seed = random.randrange(1 << 30)
    uploads = [
        ("Tiếp công dân định kỳ tại trụ sở HĐND tỉnh", "tiep-xuc-cu-tri"),
        ("Tiếp xúc cử tri tại xã Phước Dinh", "tiep-xuc-cu-tri"),
        ("Giám sát giải quyết đơn thư của cử tri", "giam-sat-kien-nghi"),
    ]
    ids = []
    for i, (title, code) in enumerate(uploads):
        response = upload(
            http,
            services,
            jpeg_bytes(seed + i),
            title=title,
            caption=SEED_CAPTION,
            activity_type=code,
            recorded_at=day.isoformat(),
            source_org="Báo Ninh Thuận",
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["duplicate"] is False and body["kind"] == "photo"
        ids.append(body["asset_id"])

    def found() -> dict | None:  # type: ignore[type-arg]
        result = search(services, http, q="xu ly don thu khieu nai", date_from=day, date_to=day)
        return result if result["total"] == 3 else None

    result = wait_for(found, timeout=90, what="the three uploads to be searchable")
    assert {h["asset_id"] for h in result["hits"]} == set(ids)
    facets = {f["value"]: f["count"] for f in result["facets"]["activity_type"]}
    assert facets == {"tiep-xuc-cu-tri": 2, "giam-sat-kien-nghi": 1}
    labels = {f["value"]: f["label"] for f in result["facets"]["activity_type"]}
    assert labels["tiep-xuc-cu-tri"] == "Tiếp xúc cử tri, tiếp công dân"
    # Highlights come back in the original Vietnamese, not the folded form.
    assert "<em>xử lý đơn thư khiếu nại</em>" in result["hits"][0]["highlight"]["caption"]

    filtered = search(services, http, q="xu ly don thu", date_from=day, date_to=day, activity_type="giam-sat-kien-nghi")
    assert [h["asset_id"] for h in filtered["hits"]] == [ids[2]]
    # Facets still count the other types while one is selected.
    assert {f["value"]: f["count"] for f in filtered["facets"]["activity_type"]} == facets


def test_exact_diacritics_rank_above_folded_matches(services: Settings, http: httpx.Client) -> None:
    day = date(2018, 1, 1) + timedelta(days=random.randrange(300))
    seed = random.randrange(1 << 30)
    # Both fold to "cu tri"; only the second is spelled as the query is typed.
    for i, title in enumerate(["Đo đạc cự trị tại công trình thủy lợi", "Hội nghị cử tri tại huyện Bác Ái"]):
        assert (
            upload(
                http, services, jpeg_bytes(seed + i), title=title, activity_type="khac", recorded_at=day.isoformat()
            ).status_code
            == 201
        )
    result = wait_for(
        lambda: (r := search(services, http, q="cử tri", date_from=day, date_to=day))["total"] == 2 and r,
        timeout=90,
        what="both uploads indexed",
    )
    assert result["hits"][0]["title"] == "Hội nghị cử tri tại huyện Bác Ái"
    assert result["hits"][0]["score"] > result["hits"][1]["score"]


def test_uploading_the_same_bytes_again_returns_the_existing_asset(services: Settings, http: httpx.Client) -> None:
    content = jpeg_bytes(random.randrange(1 << 30))
    first = upload(http, services, content, title="Kỳ họp thứ 7", activity_type="ky-hop")
    second = upload(http, services, content, filename="ban-sao.jpg", title="Bản sao", activity_type="khac")
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["asset_id"] == first.json()["asset_id"]
    assert second.json()["title"] == "Kỳ họp thứ 7"  # the original upload's metadata stands
    asset = http.get(f"{services.ingest_url}/v1/assets/{first.json()['asset_id']}", headers=AUTH).json()
    # One asset.ingested; the workers may already have added their own events (asset.probed, …).
    assert [e["type"] for e in asset["events"]].count("asset.ingested") == 1


def test_another_broadcaster_gets_the_same_404_for_an_unpublished_upload_and_only_its_id_on_a_duplicate(
    services: Settings, http: httpx.Client
) -> None:
    other = role_headers(Role.PHONG_VIEN, "phong-vien-khac")
    content = jpeg_bytes(random.randrange(1 << 30))
    first = upload(http, services, content, title="Phiên họp kín", activity_type="ky-hop")
    asset_id = first.json()["asset_id"]
    assert http.get(f"{services.ingest_url}/v1/assets/{asset_id}", headers=AUTH).status_code == 200
    hidden = http.get(f"{services.ingest_url}/v1/assets/{asset_id}", headers=other)
    unknown = http.get(f"{services.ingest_url}/v1/assets/a{'0' * 32}", headers=other)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "asset_not_found"
    again = upload(http, services, content, headers=other, title="Bản sao", activity_type="khac")
    assert again.status_code == 200 and again.json() == {"asset_id": asset_id, "duplicate": True}
    # Nor is it listed in its activity: its id would say it exists.
    made = http.post(
        f"{services.catalogue_url}/v1/activities",
        headers=ARCHIVIST,
        json={"title": "Phiên họp kín kỳ họp thứ 9", "activity_type": "ky-hop", "start_date": "2024-07-09"},
    )
    activity = made.json()["activity_id"]
    assigned = http.put(
        f"{services.catalogue_url}/v1/assets/{asset_id}/activity", headers=ARCHIVIST, json={"activity_id": activity}
    )
    assert assigned.status_code == 200, assigned.text
    listed = {
        name: http.get(f"{services.catalogue_url}/v1/activities/{activity}", headers=h).json()["assets"]
        for name, h in (("uploader", AUTH), ("other", other), ("archivist", ARCHIVIST))
    }
    assert listed == {"uploader": [asset_id], "other": [], "archivist": [asset_id]}


def _assert_bilingual_error(response: httpx.Response, status: int, code: str | None = None) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["message_en"] and error["message"] != error["message_en"]
    if code:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("empty_body", 422, "invalid_metadata"),
        ("empty_file", 400, "empty_file"),
        ("random_bytes_named_jpg", 415, "unsupported_media"),
        ("missing_title", 422, "invalid_metadata"),
        ("unknown_activity", 422, "invalid_metadata"),
        ("wrong_token", 401, "invalid_token"),
        ("no_token", 401, "unauthenticated"),
    ],
)
def test_bad_uploads_get_clear_bilingual_errors_and_store_nothing(
    services: Settings, http: httpx.Client, case: str, status: int, code: str
) -> None:
    content = (
        b""
        if case == "empty_file"
        else os.urandom(3000)
        if case == "random_bytes_named_jpg"
        else jpeg_bytes(random.randrange(1 << 30))
    )
    form = {"title": "Tiếp xúc cử tri", "activity_type": "tiep-xuc-cu-tri"}
    headers = AUTH
    if case == "missing_title":
        form.pop("title")
    elif case == "unknown_activity":
        form["activity_type"] = "hop-hanh-chinh"
    elif case == "wrong_token":
        headers = {"Authorization": "Bearer sai-ma"}
    elif case == "no_token":
        headers = {}
    if case == "empty_body":
        response = http.post(f"{services.ingest_url}/v1/assets", headers=AUTH)
    else:
        response = upload(http, services, content, headers=headers, **form)
    error = _assert_bilingual_error(response, status, code)
    if case == "unknown_activity":
        assert "hop-hanh-chinh" in error["message"] and error["problems"][0]["field"] == "activity_type"
    # Nothing stored: no original under the content key, no event for the asset.
    digest = hashlib.sha256(content).hexdigest()
    s3 = object_store_for(services, services.s3_backend)
    assert asyncio.run(s3.stat(services.bucket_originals, content_key(digest))) is None
    asset = http.get(f"{services.ingest_url}/v1/assets/{asset_id_for_sha256(digest)}", headers=AUTH)
    assert asset.status_code == 404
    _assert_bilingual_error(asset, 404, "asset_not_found")
