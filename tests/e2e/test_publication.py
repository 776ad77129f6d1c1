"""Publishing end to end, against the running services: an embargo sweep (an asset
published 20 s ahead is nowhere for the public nor for another broadcaster until then —
not in hits, facet counts, statistics, similar assets, history, renditions or the feed —
appears by itself when Elasticsearch's clock passes publish_at, and leaves when
unpublish_at passes); a restricted asset never reaches a summary producer; an activity's
publication reaches each of its assets; the feed's validators; the commands' refusals.

Who is who here: a broadcaster (``phong-vien``) uploads the embargoed asset and another
broadcaster (``phong-vien-2``) looks for it; the archivist (``luu-tru``) uploads the other
assets and publishes; ``bien-tap`` is a summary producer without the restricted grant; no
token at all is the public.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest

from shared.auth import Role
from shared.settings import Settings
from shared.taxonomy import LOCAL_TZ
from tests.conftest import ARCHIVIST, AUTH, PRODUCER, role_headers, wait_for
from tests.media import jpeg_bytes

pytestmark = pytest.mark.integration

UPLOADER = AUTH  # phong-vien
BROADCASTER = role_headers(Role.PHONG_VIEN, "phong-vien-2")  # another broadcaster
PUBLIC: dict[str, str] = {}
MEDIA = "{http://search.yahoo.com/mrss/}"
MISSING = "a" + "0" * 31 + "f"  # an asset id nobody uploaded


def upload(http: httpx.Client, s: Settings, headers: dict[str, str], title: str, day: date, code: str) -> str:
    response = http.post(
        f"{s.ingest_url}/v1/assets",
        headers=headers,
        data={"title": title, "activity_type": code, "recorded_at": day.isoformat(), "caption": "Tư liệu thử xuất bản"},
        files={"file": ("anh.jpg", jpeg_bytes(random.randrange(1 << 30)), "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["asset_id"])


def ready(http: httpx.Client, s: Settings, asset_id: str) -> None:
    def renditions() -> bool:
        response = http.get(f"{s.search_url}/v1/assets/{asset_id}/renditions", headers=ARCHIVIST)
        return response.status_code == 200 and response.json()["status"] == "ready"

    wait_for(renditions, timeout=120, what=f"the renditions of {asset_id}")


def get(http: httpx.Client, s: Settings, headers: dict[str, str], path: str, **params: Any) -> httpx.Response:
    return http.get(f"{s.search_url}{path}", headers=headers, params=params)


def found(http: httpx.Client, s: Settings, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = get(http, s, headers, "/v1/search", size=100, **params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def stats_total(http: httpx.Client, s: Settings, headers: dict[str, str], day: date) -> int:
    response = get(http, s, headers, "/v1/stats", group_by="year", date_from=day, date_to=day)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


def feed_ids(http: httpx.Client, s: Settings, code: str) -> set[str]:
    response = http.get(f"{s.search_url}/v1/feed", params={"activity_type": code, "size": 100})
    assert response.status_code == 200, response.text
    return {item["_hdnd"]["asset_id"] for item in response.json()["items"]}


def rss_items(http: httpx.Client, s: Settings, code: str) -> dict[str, ET.Element]:
    response = http.get(f"{s.search_url}/v1/feed.rss", params={"activity_type": code, "size": 100})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/rss+xml")
    channel = ET.fromstring(response.content).find("channel")
    assert channel is not None
    return {str(i.findtext("guid")).rsplit(":", 1)[-1]: i for i in channel.findall("item")}


def assert_not_found_as_if_missing(response: httpx.Response, asset_id: str) -> None:
    """The same answer as for an asset that does not exist: no existence oracle."""
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error == {
        "code": "asset_not_found",
        "message": f"Không tìm thấy tư liệu {asset_id}.",
        "message_en": f"No asset {asset_id}.",
    }


def publish(http: httpx.Client, s: Settings, asset_id: str, **body: Any) -> dict[str, Any]:
    response = http.put(f"{s.catalogue_url}/v1/assets/{asset_id}/publication", headers=ARCHIVIST, json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def indexed(http: httpx.Client, s: Settings, word: str, sequence: int) -> dict[str, dict[str, Any]]:
    """The archivist's view once the catalogue's event is indexed (read your writes)."""
    return {h["asset_id"]: h for h in found(http, s, ARCHIVIST, q=word, after_seq=sequence)["hits"]}


def until(predicate: Any, moment: datetime, what: str) -> None:
    """Wait for ``predicate`` until the wall-clock ``moment`` (an absolute deadline)."""
    wait_for(predicate, timeout=max(1.0, (moment - datetime.now(UTC)).total_seconds()), interval=0.5, what=what)


def a_day() -> date:
    """A recording day no other test uses (they date assets 2016 onwards or by month)."""
    return date(1950, 1, 1) + timedelta(days=random.randrange(365 * 40))


# --- the embargo sweep ----------------------------------------------------------------------------


def test_an_embargoed_asset_is_nowhere_until_publish_at_then_appears_by_itself_and_leaves_at_unpublish_at(
    services: Settings, http: httpx.Client
) -> None:
    s = services
    word = "cbo" + uuid.uuid4().hex[:8]
    day, code = a_day(), "dien-dan-cu-tri"
    title = f'Diễn đàn "Tiếng nói cử tri" <số 7> & HĐND tỉnh {word}'
    embargoed = upload(http, s, UPLOADER, title, day, code)
    # The broadcaster's own upload, with words in common (for similar assets) and a type set by hand.
    twin = upload(http, s, BROADCASTER, f"Diễn đàn tiếng nói cử tri HĐND tỉnh {word}", day, "giam-sat-chuyen-de")
    ready(http, s, embargoed)
    ready(http, s, twin)

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    end = start + timedelta(seconds=25)
    decided = publish(
        http,
        s,
        embargoed,
        publish_at=start.astimezone(LOCAL_TZ).isoformat(),  # with the +07:00 offset
        unpublish_at=end.astimezone(LOCAL_TZ).replace(tzinfo=None).isoformat(),  # naive: Vietnam time
        restriction="public",
        note="Đăng cổng thông tin điện tử",
    )
    assert (decided["publish_at"], decided["unpublish_at"]) == (start.isoformat(), end.isoformat())
    archived = indexed(http, s, word, decided["sequence"])[embargoed]
    assert (archived["published"], archived["publish_at"], archived["restriction"]) == (
        True,
        start.isoformat(),
        "public",
    )
    assert archived["uploaded_by"] == "phong-vien"
    own = found(http, s, UPLOADER, q=word)  # its uploader sees it all along
    assert embargoed in {h["asset_id"] for h in own["hits"]}

    # --- before publish_at: nowhere, for the public and for another broadcaster -------------------
    hits = found(http, s, BROADCASTER, q=word)
    assert [h["asset_id"] for h in hits["hits"]] == [twin] and hits["total"] == 1
    assert {f["value"] for f in hits["facets"]["activity_type"]} == {"giam-sat-chuyen-de"}  # none for it
    everything = found(http, s, ARCHIVIST, q=word)
    assert {f["value"]: f["count"] for f in everything["facets"]["activity_type"]} == {code: 1, "giam-sat-chuyen-de": 1}
    assert stats_total(http, s, ARCHIVIST, day) == stats_total(http, s, BROADCASTER, day) + 1
    assert_not_found_as_if_missing(get(http, s, BROADCASTER, f"/v1/assets/{embargoed}/similar"), embargoed)
    assert_not_found_as_if_missing(get(http, s, BROADCASTER, f"/v1/assets/{MISSING}/similar"), MISSING)
    similar_to_twin = get(http, s, BROADCASTER, f"/v1/assets/{twin}/similar").json()["hits"]
    assert embargoed not in {h["asset_id"] for h in similar_to_twin}
    for path in ("history", "renditions"):
        assert_not_found_as_if_missing(get(http, s, BROADCASTER, f"/v1/assets/{embargoed}/{path}"), embargoed)
        assert get(http, s, ARCHIVIST, f"/v1/assets/{embargoed}/{path}").status_code == 200
    tags = http.get(f"{s.catalogue_url}/v1/assets/{embargoed}/tags", headers=BROADCASTER)
    assert_not_found_as_if_missing(tags, embargoed)  # the catalogue's read of one asset too
    assert embargoed not in feed_ids(http, s, code)
    assert embargoed not in rss_items(http, s, code)
    assert datetime.now(UTC) < start - timedelta(seconds=1), "the checks before publish_at ran too late"

    # --- publish_at passes: no event, no request makes it visible; Elasticsearch's clock does -----
    def everywhere() -> bool:
        return (
            embargoed in feed_ids(http, s, code)
            and embargoed in rss_items(http, s, code)
            and embargoed in {h["asset_id"] for h in found(http, s, BROADCASTER, q=word)["hits"]}
        )

    until(everywhere, start + timedelta(seconds=60), "the asset in the feed and the broadcaster's search")
    assert datetime.now(UTC) >= start
    item = rss_items(http, s, code)[embargoed]
    assert item.findtext("title") == title  # escaped on the way out, exact on the way back
    content, thumbnail = item.find(f"{MEDIA}content"), item.find(f"{MEDIA}thumbnail")
    assert content is not None and thumbnail is not None and content.get("type") == "image/jpeg"
    for link in (str(content.get("url")), str(thumbnail.get("url"))):
        media = http.get(link)  # a presigned URL: no token
        assert media.status_code == 200 and media.content[:3] == b"\xff\xd8\xff", link
    assert stats_total(http, s, ARCHIVIST, day) == stats_total(http, s, BROADCASTER, day)
    for path in ("history", "renditions", "similar"):
        assert get(http, s, BROADCASTER, f"/v1/assets/{embargoed}/{path}").status_code == 200
    assert http.get(f"{s.catalogue_url}/v1/assets/{embargoed}/tags", headers=BROADCASTER).status_code == 200
    events = get(http, s, ARCHIVIST, f"/v1/assets/{embargoed}/history").json()["events"]
    publishing = [e for e in events if e["type"].startswith(("asset.published", "asset.unpublished"))]
    assert len(publishing) == 1 and datetime.fromisoformat(publishing[0]["occurred_at"]) < start

    # --- unpublish_at passes: gone again ---------------------------------------------------------
    def nowhere() -> bool:
        return (
            embargoed not in feed_ids(http, s, code)
            and embargoed not in {h["asset_id"] for h in found(http, s, BROADCASTER, q=word)["hits"]}
            and get(http, s, BROADCASTER, f"/v1/assets/{embargoed}/history").status_code == 404
        )

    until(nowhere, end + timedelta(seconds=60), "the asset to leave the feed and the broadcaster's search")
    assert datetime.now(UTC) >= end


# --- restriction ----------------------------------------------------------------------------------


def test_a_restricted_asset_never_reaches_a_summary_producer_another_broadcaster_or_the_public(
    services: Settings, http: httpx.Client
) -> None:
    s = services
    word = "hk" + uuid.uuid4().hex[:8]
    day, code = a_day(), "ky-hop"
    closed = upload(http, s, ARCHIVIST, f"Phiên họp kín HĐND tỉnh {word}", day, code)
    ready(http, s, closed)
    restricted = http.put(
        f"{s.catalogue_url}/v1/assets/{closed}/restriction",
        headers=ARCHIVIST,
        json={"restriction": "restricted", "note": "Họp kín"},
    )
    assert restricted.status_code == 200 and restricted.json()["restriction"] == "restricted", restricted.text
    decided = publish(http, s, closed)  # published now, keeping its restriction
    assert (decided["published"], decided["restriction"]) == (True, "restricted")
    assert closed in indexed(http, s, word, decided["sequence"])

    for who in (PRODUCER, BROADCASTER):
        hits = found(http, s, who, q=word)
        assert hits["total"] == 0 and hits["facets"]["activity_type"] == []
        assert stats_total(http, s, ARCHIVIST, day) == stats_total(http, s, who, day) + 1
        for path in ("history", "renditions", "similar"):
            assert_not_found_as_if_missing(get(http, s, who, f"/v1/assets/{closed}/{path}"), closed)
    assert closed not in feed_ids(http, s, code)

    # The same asset made internal: the producer sees it (the checks above could fail), the public still not.
    internal = http.put(
        f"{s.catalogue_url}/v1/assets/{closed}/restriction", headers=ARCHIVIST, json={"restriction": "internal"}
    )
    assert internal.status_code == 200, internal.text
    shown = found(http, s, PRODUCER, q=word, after_seq=internal.json()["sequence"])
    assert [h["asset_id"] for h in shown["hits"]] == [closed]
    assert get(http, s, PRODUCER, f"/v1/assets/{closed}/history").status_code == 200
    assert closed not in feed_ids(http, s, code)


# --- activities -----------------------------------------------------------------------------------


def test_publishing_an_activity_publishes_each_of_its_assets_caused_by_the_activitys_event(
    services: Settings, http: httpx.Client
) -> None:
    s = services
    word = "hd" + uuid.uuid4().hex[:8]
    day, code = a_day(), "tham-lam-viec"
    assets = [upload(http, s, ARCHIVIST, f"Thăm, làm việc tại huyện Bác Ái {word} {i}", day, code) for i in range(2)]
    activity = http.post(
        f"{s.catalogue_url}/v1/activities",
        headers=ARCHIVIST,
        json={"title": f"Thăm, làm việc {word}", "activity_type": code, "start_date": day.isoformat()},
    ).json()["activity_id"]
    for asset_id in assets:
        assigned = http.put(
            f"{s.catalogue_url}/v1/assets/{asset_id}/activity", headers=ARCHIVIST, json={"activity_id": activity}
        )
        assert assigned.status_code == 200, assigned.text

    response = http.post(
        f"{s.catalogue_url}/v1/activities/{activity}/publication", headers=ARCHIVIST, json={"restriction": "public"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(a["asset_id"] for a in body["assets"]) == sorted(assets) and body["refused"] == []
    assert all(a["published"] and a["restriction"] == "public" and a["changed"] for a in body["assets"])
    assert {a["publish_at"] for a in body["assets"]} == {None}  # at once, for the whole activity
    for asset_id in assets:
        events = get(http, s, ARCHIVIST, f"/v1/assets/{asset_id}/history").json()["events"]
        [published] = [e for e in events if e["type"] == "asset.published"]
        assert published["causation_id"] == body["event_id"] and published["actor"] == "luu-tru"
    until(lambda: set(assets) <= feed_ids(http, s, code), datetime.now(UTC) + timedelta(seconds=30), "the feed")

    again = http.post(
        f"{s.catalogue_url}/v1/activities/{activity}/publication",
        headers=ARCHIVIST,
        json={"restriction": "public", "publish_at": body["publish_at"]},
    ).json()
    assert [a["changed"] for a in again["assets"]] == [False, False]  # the same publication: nothing appended


# --- the feed's validators ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/feed", "/v1/feed.rss", "/v1/feed.atom"])
def test_the_feed_answers_304_to_a_client_whose_copy_is_current_and_needs_no_sign_in(
    services: Settings, http: httpx.Client, path: str
) -> None:
    url = f"{services.search_url}{path}"
    for _ in range(2):  # a new signing window between the two requests changes the bytes: once more
        first = http.get(url, params={"size": 5})
        assert first.status_code == 200 and first.headers["cache-control"] == "public, max-age=60"
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        by_etag = http.get(url, params={"size": 5}, headers={"If-None-Match": etag})
        if by_etag.status_code == 304:
            break
    assert by_etag.status_code == 304 and by_etag.content == b"" and by_etag.headers["etag"] == etag
    by_date = http.get(url, params={"size": 5}, headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304
    other = http.get(url, params={"size": 5}, headers={"If-None-Match": '"autre"', "If-Modified-Since": modified})
    assert other.status_code == 200 and other.content  # If-None-Match decides when present


def test_a_feed_cursor_pages_newest_first_without_repeats_and_a_forged_one_is_refused(
    services: Settings, http: httpx.Client
) -> None:
    s = services
    code, now = "nghi-quyet", datetime.now(UTC).replace(microsecond=0)
    mine = []
    for minutes in (3, 2, 1):
        asset_id = upload(http, s, ARCHIVIST, f"Thẩm tra dự thảo nghị quyết {uuid.uuid4().hex[:6]}", a_day(), code)
        publish(http, s, asset_id, publish_at=(now - timedelta(minutes=minutes)).isoformat(), restriction="public")
        mine.append(asset_id)
    until(lambda: set(mine) <= feed_ids(http, s, code), now + timedelta(seconds=30), "the three in the feed")

    seen: list[str] = []
    dates: list[str] = []
    page = http.get(f"{s.search_url}/v1/feed", params={"activity_type": code, "size": 1}).json()
    for _ in range(500):
        seen += [item["_hdnd"]["asset_id"] for item in page["items"]]
        dates += [item["date_published"] for item in page["items"]]
        if not page.get("next_url"):
            break
        page = http.get(page["next_url"]).json()
    assert len(seen) == len(set(seen)) and set(mine) <= set(seen)
    assert dates == sorted(dates, reverse=True)
    assert [a for a in seen if a in mine] == mine[::-1]  # newest publication first

    forged = http.get(f"{s.search_url}/v1/feed", params={"cursor": "eyJ2IjoyfQ.bad"})
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_cursor"
    assert http.get(f"{s.search_url}/v1/feed", params={"size": 101}).status_code == 422


# --- the commands' refusals over HTTP -------------------------------------------------------------


def test_publication_commands_refuse_what_cannot_be_and_say_why_in_both_languages(
    services: Settings, http: httpx.Client
) -> None:
    s = services
    url = f"{s.catalogue_url}/v1/assets"
    missing = http.put(f"{url}/{MISSING}/publication", headers=ARCHIVIST, json={})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "asset_not_found"
    asset_id = upload(http, s, ARCHIVIST, "Ảnh chưa xuất bản", a_day(), "khac")
    not_published = http.request("DELETE", f"{url}/{asset_id}/publication", headers=ARCHIVIST)
    assert not_published.status_code == 409 and not_published.json()["error"]["code"] == "not_published"
    backwards = http.put(
        f"{url}/{asset_id}/publication",
        headers=ARCHIVIST,
        json={"publish_at": "2031-01-02T08:00", "unpublish_at": "2031-01-02T01:00:00Z"},  # the same instant
    )
    assert backwards.status_code == 422 and backwards.json()["error"]["code"] == "invalid_publication_window"
    far = http.put(f"{url}/{asset_id}/publication", headers=ARCHIVIST, json={"publish_at": "2101-01-01T00:00"})
    assert far.status_code == 422
    [problem] = far.json()["error"]["problems"]
    assert problem["code"] == "date_out_of_range" and problem["field"] == "publish_at" and problem["message"]
    unknown = http.put(f"{url}/{asset_id}/restriction", headers=ARCHIVIST, json={"restriction": "mật"})
    assert unknown.status_code == 422

    later = publish(http, s, asset_id, publish_at="2031-01-02")  # a bare date: midnight in Vietnam
    assert later["publish_at"] == "2031-01-01T17:00:00+00:00" and later["restriction"] == "internal"
    taken_off = http.request("DELETE", f"{url}/{asset_id}/publication", headers=ARCHIVIST, json={"reason": "nhầm"})
    assert taken_off.status_code == 200 and taken_off.json()["published"] is False
