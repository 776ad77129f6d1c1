"""Collections against the real servers: a live saved search with hand exclusions and
pins, hand order and notes, the 409 of two editors racing, the streamed export of a
200-asset collection (peak RSS of the exporting service bounded; the contact sheet's
Vietnamese captions read back from the PDF; the manifests equal the collection), and
the review statistics against an independent count of the generated data."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import random
import tempfile
import unicodedata
import uuid
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from deploy.local.processes import ProcessSpec
from services.catalogue.api import CatalogueDeps
from services.catalogue.collections import CreateCollection as Create
from services.catalogue.collections import PlaceAsset, PlaceAssets, create_collection, place_assets
from services.search.app import PROJECTOR_DURABLE
from shared.auth import Principal, Role
from shared.collections import fold_collection
from shared.events.collections import CollectionAssetAddedV1
from shared.events.envelope import EventEnvelope, new_event
from shared.events.publishing import AssetRestrictionSetV1
from shared.eventstore import EventStore
from shared.http import UserError
from shared.objectstore import content_key
from shared.policy import Restriction
from shared.ports import AppendResult
from shared.settings import Settings
from tests.conftest import ARCHIVIST, AUTH, PRODUCER, consumer_settled, object_store_for, run, wait_for
from tests.integration.collections_stack import (
    flat_jpeg,
    noise_jpeg,
    peak_and_current_rss_kib,
    photo_events,
    put_bytes,
    quiet_services,
    reset_peak_rss,
)
from tests.media import jpeg_bytes

pytestmark = pytest.mark.integration
__all__ = ["quiet_services"]  # the fixture, imported for this module

EXPORT_ASSETS = 200
# The service's own growth while exporting ≥ 100 MB of originals: one 5 MiB S3 part in
# flight, read chunks, the contact sheet's thumbnails, 200 documents.
RSS_BOUND_MIB = 56
NAMES = ["Nguyễn Thị Hường", "Trần Quốc Nam", "Phạm Văn Hậu", "Lê Thị Ánh Tuyết", "Đặng Thanh Sơn", "Huỳnh Đức Lộc"]
PLACES = ["xã Phước Dinh", "phường Đô Vinh", "huyện Ninh Hải", "xã Lợi Hải", "thị trấn Khánh Hải"]
ORGANS = ["Ban Pháp chế", "Ban Kinh tế - Ngân sách", "Ban Văn hóa - Xã hội", "Ban Dân tộc", "Thường trực HĐND"]
TYPES = ["ky-hop", "giam-sat-chuyen-de", "tiep-xuc-cu-tri", "giam-sat-kien-nghi"]


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def create(http: httpx.Client, s: Settings, **body: Any) -> dict[str, Any]:
    return dict(ok(http.post(f"{s.catalogue_url}/v1/collections", headers=ARCHIVIST, json=body), 201))


# --- a live saved search (the suite's whole pipeline: ingest → tagger → search) ---------------------


def _upload(http: httpx.Client, s: Settings, title: str, seed: int) -> str:
    response = http.post(
        f"{s.ingest_url}/v1/assets",
        headers=AUTH,
        data={"title": title, "activity_type": "giam-sat-chuyen-de", "recorded_at": "2025-03-12"},
        files={"file": ("anh.jpg", jpeg_bytes(seed), "image/jpeg")},
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["asset_id"])


def _members(http: httpx.Client, s: Settings, collection_id: str) -> set[str]:
    body = ok(
        http.get(f"{s.search_url}/v1/search", headers=ARCHIVIST, params={"collection": collection_id, "size": 50})
    )
    assert all(h["collections"] == [collection_id] for h in body["hits"])  # what the reels' drafts read
    return {h["asset_id"] for h in body["hits"]}


def test_a_saved_search_collection_picks_up_a_new_matching_upload_within_seconds_and_keeps_a_hand_exclusion(
    services: Settings, http: httpx.Client, unique: str
) -> None:
    s = services
    word = f"chuyende{unique}"
    first = _upload(http, s, f"Giám sát chuyên đề {word} tại xã Phước Dinh", random.randrange(1 << 30))
    other = _upload(http, s, f"Tiếp xúc cử tri {unique} phường Đô Vinh", random.randrange(1 << 30))
    # Deadlines for a loaded CI machine: an upload is searchable within a second or two when idle.
    wait_for(lambda: first in _search_ids(http, s, word), timeout=60, what="the first upload is searchable")
    # A hand-picked member is found through its own search document, so the page shows it
    # once it is indexed: wait for that too, not only for the saved search's match.
    wait_for(lambda: other in _search_ids(http, s, unique), timeout=60, what="the other upload is searchable")
    collection = create(
        http,
        s,
        kind="thematic",
        title="Giám sát chuyên đề năm 2025",
        year=2025,
        saved_search={"q": word, "activity_type": ["giam-sat-chuyen-de"]},
    )
    cid = collection["collection_id"]
    assert _members(http, s, cid) == {first}
    # An archivist keeps the first out by hand, and pins an asset the search does not find.
    ok(http.post(f"{s.catalogue_url}/v1/collections/{cid}/exclusions", headers=ARCHIVIST, json={"asset_id": first}))
    ok(
        http.post(
            f"{s.catalogue_url}/v1/collections/{cid}/assets", headers=ARCHIVIST, json={"items": [{"asset_id": other}]}
        )
    )
    assert _members(http, s, cid) == {other}

    later = _upload(http, s, f"Đoàn giám sát chuyên đề {word} làm việc với huyện Ninh Hải", random.randrange(1 << 30))
    wait_for(lambda: _members(http, s, cid) == {other, later}, timeout=60, what="the new upload joins the collection")
    assert first not in _members(http, s, cid)  # the hand exclusion outlives the new match
    ok(http.delete(f"{s.catalogue_url}/v1/collections/{cid}/exclusions/{first}", headers=ARCHIVIST))
    assert _members(http, s, cid) == {first, other, later}


def _search_ids(http: httpx.Client, s: Settings, q: str) -> set[str]:
    body = ok(http.get(f"{s.search_url}/v1/search", headers=ARCHIVIST, params={"q": q}))
    return {h["asset_id"] for h in body["hits"]}


# --- the generated archive of the quiet pair -----------------------------------------------------------


class Archive:
    """200 photos with Vietnamese captions, their events appended as the pipeline would."""

    def __init__(self) -> None:
        self.assets: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def archive(quiet_services: tuple[Settings, ProcessSpec]) -> Archive:
    s, _ = quiet_services
    rng = random.Random(14)
    generated = Archive()

    async def fill() -> None:
        store = object_store_for(s, "minio")
        await store.ensure_buckets(s.bucket_originals, s.bucket_renditions)
        events = await EventStore.connect(s.resolved_nats_url, s.event_stream)
        # One noisy photo (it does not compress, like a real one), made distinct per asset by
        # bytes after its end marker, which every JPEG reader ignores.
        base = noise_jpeg(rng, (1100, 820))
        thumbs = [flat_jpeg((rng.randrange(256), rng.randrange(256), rng.randrange(256))) for _ in range(8)]

        async def one(i: int) -> None:
            original = base + f"HDND-test-{uuid.uuid4()}".encode()
            thumb = thumbs[i % len(thumbs)]
            name, place = rng.choice(NAMES), rng.choice(PLACES)
            activity_type = TYPES[i % len(TYPES)]
            organs = tuple(rng.sample(ORGANS, rng.choice([0, 1, 1, 2])))
            year, month = rng.choice([2024, 2025]), rng.randrange(1, 13)
            title = f"Hoạt động số {i + 1}: đại biểu {name} tại {place}"
            caption = f"Đại biểu {name} phát biểu ý kiến về cử tri {place} kiến nghị"
            # Half the captions arrive decomposed (NFD), as some keyboards type them.
            typed = unicodedata.normalize("NFD", caption) if i % 2 else caption
            thumb_key = f"test/{uuid.uuid4().hex}/thumb.jpg"
            asset_id, evs = photo_events(
                original,
                thumb_key,
                len(thumb),
                title=title,
                caption=typed,
                recorded_at=datetime(year, month, 10, 3, 0, tzinfo=UTC),
                activity_type=activity_type,
                people=(name,),
                organisations=organs,
                settings=s,
            )
            sha = hashlib.sha256(original).hexdigest()
            await put_bytes(store, s.bucket_originals, content_key(sha), original)
            await put_bytes(store, s.bucket_renditions, thumb_key, thumb)
            for event in evs:
                await events.append(event)
            generated.assets.append(
                {
                    "asset_id": asset_id,
                    "sha256": sha,
                    "size": len(original),
                    "title": title,
                    "caption": caption,
                    "activity_type": activity_type,
                    "organs": organs,
                    "year": year,
                }
            )

        try:
            batch = 8
            for first in range(0, EXPORT_ASSETS + 1, batch):  # the last one: for the restriction test alone
                await asyncio.gather(*(one(i) for i in range(first, min(first + batch, EXPORT_ASSETS + 1))))
        finally:
            await events.close()

    asyncio.run(fill())
    with httpx.Client(timeout=60) as http:
        wanted = {a["asset_id"] for a in generated.assets}

        def all_indexed() -> bool:
            # Every event projected, not only a document per asset: a document appears with the
            # asset's first event, and its renditions and tags land later (after a busy test
            # before this one, e.g. a full re-tag sharing Elasticsearch, much later).
            if not run(consumer_settled(s, PROJECTOR_DURABLE)):
                return False
            body = ok(http.get(f"{s.search_url}/v1/search", headers=ARCHIVIST, params={"size": 1, "refresh": True}))
            return bool(body["total"] >= len(wanted))

        wait_for(all_indexed, timeout=300, what="the generated archive is indexed")
    return generated


def _place(http: httpx.Client, s: Settings, cid: str, items: list[dict[str, Any]], **headers: str) -> Any:
    return http.post(
        f"{s.catalogue_url}/v1/collections/{cid}/assets", headers={**ARCHIVIST, **headers}, json={"items": items}
    )


def test_hand_members_keep_their_order_and_notes_on_the_collection_page_and_hidden_ones_are_not_counted(
    quiet_services: tuple[Settings, ProcessSpec], archive: Archive, http: httpx.Client
) -> None:
    s, _ = quiet_services
    picked = [a["asset_id"] for a in [archive.assets[EXPORT_ASSETS], *archive.assets[1:5]]]
    cid = create(http, s, kind="annual", title="Tổng kết năm 2025", year=2025)["collection_id"]
    ok(_place(http, s, cid, [{"asset_id": a, "note": f"Ghi chú số {n}"} for n, a in enumerate(picked)]))
    # The last one moved to the front, with a new note; the second taken out.
    ok(_place(http, s, cid, [{"asset_id": picked[4], "position": 0, "note": "Mở đầu phóng sự"}]))
    ok(http.delete(f"{s.catalogue_url}/v1/collections/{cid}/assets/{picked[1]}", headers=ARCHIVIST))
    expected = [picked[4], picked[0], picked[2], picked[3]]
    page = ok(http.get(f"{s.search_url}/v1/collections/{cid}/page", headers=ARCHIVIST))
    assert [a["asset_id"] for a in page["assets"]] == expected
    assert [a["note"] for a in page["assets"]] == ["Mở đầu phóng sự", "Ghi chú số 0", "Ghi chú số 2", "Ghi chú số 3"]
    by_id = {a["asset_id"]: a for a in archive.assets}
    assert page["summary"]["total"] == 4
    assert {c["activity_type"]: c["count"] for c in page["summary"]["by_activity_type"]} == dict(
        Counter(by_id[a]["activity_type"] for a in expected)
    )
    assert sum(m["count"] for m in page["summary"]["by_month"]) == 4

    # A restricted member is neither listed nor counted for a producer without the grant.
    async def restrict() -> int:
        events = await EventStore.connect(s.resolved_nats_url, s.event_stream)
        payload = AssetRestrictionSetV1(restriction=Restriction.RESTRICTED, note="họp kín")
        result = await events.append(new_event(payload, aggregate_id=picked[0], actor="luu-tru"))
        await events.close()
        return result.sequence

    sequence = asyncio.run(restrict())
    ok(http.get(f"{s.search_url}/v1/search", headers=ARCHIVIST, params={"after_seq": sequence}))
    seen = ok(http.get(f"{s.search_url}/v1/collections/{cid}/page", headers=PRODUCER))
    assert [a["asset_id"] for a in seen["assets"]] == [picked[4], picked[2], picked[3]]
    assert seen["summary"]["total"] == 3 and seen["total"] == 3


class RacingLog:
    """The real event store, with another editor's change landing just before each append."""

    def __init__(self, inner: EventStore, rival: EventEnvelope) -> None:
        self.inner, self.rival = inner, rival

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append(self, event: EventEnvelope, **kwargs: Any) -> AppendResult:
        if event.aggregate_id == self.rival.aggregate_id:
            await self.inner.append(self.rival.model_copy(update={"event_id": str(uuid.uuid4())}))
        return await self.inner.append(event, **kwargs)


def test_two_editors_racing_on_one_collection_the_loser_gets_a_bilingual_409_and_nothing_of_it_lands(
    quiet_services: tuple[Settings, ProcessSpec], archive: Archive, http: httpx.Client
) -> None:
    s, _ = quiet_services
    editor = Principal("luu-tru-1", "luu-tru-1", Role.LUU_TRU)
    one, two = archive.assets[10]["asset_id"], archive.assets[11]["asset_id"]

    async def race() -> tuple[UserError, list[str]]:
        events = await EventStore.connect(s.resolved_nats_url, s.event_stream)
        try:
            d = CatalogueDeps(s, events)
            created = await create_collection(Create(kind="term", title="Nhiệm kỳ 2021 - 2026"), editor, d)
            cid = created["collection_id"]
            rival = new_event(
                CollectionAssetAddedV1(asset_id=two, position=7, note="người khác thêm"),
                aggregate_id=cid,
                actor="luu-tru-2",
            )
            racing = CatalogueDeps(s, RacingLog(events, rival))  # type: ignore[arg-type]
            with pytest.raises(UserError) as refused:
                await place_assets(cid, PlaceAssets(items=[PlaceAsset(asset_id=one)]), editor, racing)
            state = fold_collection(await events.history("collection", cid))
            assert state is not None
            return refused.value, list(state.members)
        finally:
            await events.close()

    error, members = asyncio.run(race())
    body = error.body()["error"]
    assert error.status == 409 and body["code"] == "conflict"
    assert "người khác" in body["message"] and "Someone else" in body["message_en"]
    assert members == [two]  # the rival's change landed; the loser's did not

    # Over HTTP: a view that is out of date (If-Match: its sequence) is refused the same way.
    cid = create(http, s, kind="other", title="Tư liệu tiêu biểu")["collection_id"]
    seen = ok(http.get(f"{s.catalogue_url}/v1/collections/{cid}", headers=ARCHIVIST))["sequence"]
    ok(_place(http, s, cid, [{"asset_id": one}], **{"If-Match": str(seen)}))
    stale = _place(http, s, cid, [{"asset_id": two}], **{"If-Match": str(seen)})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "conflict"
    assert [
        m["asset_id"] for m in ok(http.get(f"{s.catalogue_url}/v1/collections/{cid}", headers=ARCHIVIST))["members"]
    ] == [one]


# --- the export ------------------------------------------------------------------------------------------


def test_a_200_asset_collection_exports_as_a_streamed_zip_with_a_vietnamese_contact_sheet_and_manifests(
    quiet_services: tuple[Settings, ProcessSpec], archive: Archive, http: httpx.Client
) -> None:
    s, search_spec = quiet_services
    cid = create(http, s, kind="annual", title="Tổng kết hoạt động HĐND tỉnh năm 2025", year=2025)["collection_id"]
    order = [a["asset_id"] for a in archive.assets[:EXPORT_ASSETS]]
    random.Random(3).shuffle(order)
    items = [{"asset_id": a, "note": f"Mục {n + 1}"} for n, a in enumerate(order)]
    ok(_place(http, s, cid, items))
    by_id = {a["asset_id"]: a for a in archive.assets}
    total_bytes = sum(by_id[a]["size"] for a in order)
    assert total_bytes > 2.5 * RSS_BOUND_MIB * 2**20  # the bound means something only if the ZIP is far larger

    pid = int(search_spec.pid_file.read_text().strip())
    reset_peak_rss(pid)
    _, rss_before = peak_and_current_rss_kib(pid)
    started = ok(
        http.post(f"{s.search_url}/v1/collections/{cid}/exports", headers=PRODUCER, json={"media": "original"}), 202
    )
    export_url = f"{s.search_url}/v1/collections/{cid}/exports/{started['export_id']}"
    states: list[dict[str, Any]] = []

    def finished() -> bool:
        states.append(ok(http.get(export_url, headers=PRODUCER)))
        assert states[-1]["state"] != "failed", states[-1]
        return bool(states[-1]["state"] == "ready")

    wait_for(finished, timeout=120, interval=0.3, what="the export is ready")
    peak, _ = peak_and_current_rss_kib(pid)
    growth_mib = (peak - rss_before) / 1024
    print(f"export of {total_bytes / 2**20:.0f} MiB: the search service's peak RSS grew {growth_mib:.1f} MiB")
    assert growth_mib < RSS_BOUND_MIB, f"the search service grew {growth_mib:.1f} MiB exporting {total_bytes >> 20} MiB"
    final = states[-1]
    assert final["total"] == final["done"] == EXPORT_ASSETS
    # Another producer may not fetch what this one's visibility built.
    other = http.get(export_url, headers={**PRODUCER, **_other_producer()})
    assert other.status_code == 404

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.zip"
        with http.stream("GET", final["url"]) as response, path.open("wb") as out:
            assert response.status_code == 200
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
        with zipfile.ZipFile(path) as zipped:
            names = zipped.namelist()
            media = [n for n in names if n.startswith("media/")]
            assert len(media) == EXPORT_ASSETS
            assert {"contact-sheet.pdf", "manifest.csv", "manifest.xlsx"} <= set(names)
            for n, name in enumerate(media):  # in the collection's order, byte for byte the originals
                assert name.startswith(f"media/{n + 1:04d}-")
                assert hashlib.sha256(zipped.read(name)).hexdigest() == by_id[order[n]]["sha256"]
            rows = list(csv.DictReader(io.StringIO(zipped.read("manifest.csv").decode("utf-8-sig"))))
            sheet = load_workbook(io.BytesIO(zipped.read("manifest.xlsx")), read_only=True).worksheets[0]
            xlsx_rows = list(sheet.iter_rows(values_only=True))
            text = "".join(
                page.extract_text() or "" for page in PdfReader(io.BytesIO(zipped.read("contact-sheet.pdf"))).pages
            )

    assert [r["asset_id"] for r in rows] == order
    assert [r["note"] for r in rows] == [f"Mục {n + 1}" for n in range(EXPORT_ASSETS)]
    assert [r["title"] for r in rows] == [by_id[a]["title"] for a in order]
    assert [r["caption"] for r in rows] == [by_id[a]["caption"] for a in order]  # NFC, whatever was typed
    assert [r["file"] for r in rows] == media
    assert [row[1] for row in xlsx_rows[1:]] == order and xlsx_rows[0][0] == "STT"
    flowing = unicodedata.normalize("NFC", " ".join(text.split()))
    missing = [a for a in order if unicodedata.normalize("NFC", by_id[a]["caption"]) not in flowing]
    assert not missing, f"{len(missing)} captions not in the contact sheet, e.g. {by_id[missing[0]]['caption']!r}"
    assert "Tổng kết hoạt động HĐND tỉnh năm 2025" in flowing


def _other_producer() -> dict[str, str]:
    from tests.conftest import role_headers

    return role_headers(Role.BIEN_TAP, subject="bien-tap-khac")


# --- review statistics -------------------------------------------------------------------------------------


def test_statistics_per_organ_per_collection_and_two_periods_equal_an_independent_count(
    quiet_services: tuple[Settings, ProcessSpec], archive: Archive, http: httpx.Client
) -> None:
    s, _ = quiet_services
    assets = archive.assets
    # Other tests may append to the quiet NATS too: the generated archive is counted as a collection.
    cid_all = create(http, s, kind="other", title="Toàn bộ tư liệu sinh ra")["collection_id"]
    ok(_place(http, s, cid_all, [{"asset_id": a["asset_id"]} for a in assets]))
    # A hand collection of the first 30, and a saved search (sessions of 2025) with one excluded.
    hand = [a["asset_id"] for a in assets[:30]]
    cid_hand = create(http, s, kind="thematic", title="Giám sát chuyên đề")["collection_id"]
    ok(_place(http, s, cid_hand, [{"asset_id": a} for a in hand]))
    sessions = [a for a in assets if a["activity_type"] == "ky-hop" and a["year"] == 2025]
    cid_live = create(
        http,
        s,
        kind="annual",
        title="Kỳ họp năm 2025",
        year=2025,
        saved_search={"activity_type": ["ky-hop"], "date_from": "2025-01-01", "date_to": "2025-12-31"},
    )["collection_id"]
    ok(
        http.post(
            f"{s.catalogue_url}/v1/collections/{cid_live}/exclusions",
            headers=ARCHIVIST,
            json={"asset_id": sessions[0]["asset_id"]},
        )
    )

    per_collection = ok(
        http.get(f"{s.search_url}/v1/stats/collections", headers=ARCHIVIST, params={"group_by": "year"})
    )
    series = {x["key"]: x for x in per_collection["series"]}
    assert series[cid_hand]["total"] == 30
    assert {c["activity_type"]: c["count"] for c in series[cid_hand]["by_activity_type"]} == dict(
        Counter(a["activity_type"] for a in assets[:30])
    )
    by_year = Counter(str(a["year"]) for a in assets[:30])
    assert dict(zip(per_collection["labels"], series[cid_hand]["counts"], strict=True)) == {
        y: by_year.get(y, 0) for y in per_collection["labels"]
    }
    assert series[cid_live]["total"] == len(sessions) - 1

    # Per organ (Ban), per year: an asset naming two organs counts for each.
    organs = ok(
        http.get(
            f"{s.search_url}/v1/stats/organs", headers=ARCHIVIST, params={"group_by": "year", "collection": cid_all}
        )
    )
    expected = Counter((o, str(a["year"])) for a in assets for o in a["organs"])
    for line in organs["series"]:
        for label, count in zip(organs["labels"], line["counts"], strict=True):
            if line["key"]:
                assert count == expected[(line["key"], label)], (line["key"], label)
    none = next(x for x in organs["series"] if x["key"] == "")
    assert none["total"] == sum(1 for a in assets if not a["organs"])
    # The same within a collection (collection=<id>).
    scoped = ok(
        http.get(
            f"{s.search_url}/v1/stats/organs", headers=ARCHIVIST, params={"group_by": "year", "collection": cid_hand}
        )
    )
    assert {x["key"]: x["total"] for x in scoped["series"] if x["key"]} == dict(
        Counter(o for a in assets[:30] for o in a["organs"])
    )

    # This year against last, per activity type.
    compared = ok(
        http.get(
            f"{s.search_url}/v1/stats/compare",
            headers=ARCHIVIST,
            params={
                "current_from": "2025-01-01",
                "current_to": "2025-12-31",
                "previous_from": "2024-01-01",
                "previous_to": "2024-12-31",
                "collection": cid_all,
            },
        )
    )
    current, previous = compared["series"]
    for n, code in enumerate(compared["labels"]):
        assert current["counts"][n] == sum(1 for a in assets if a["year"] == 2025 and a["activity_type"] == code)
        assert previous["counts"][n] == sum(1 for a in assets if a["year"] == 2024 and a["activity_type"] == code)
    assert current["total"] - previous["total"] == compared["change"]["total"]
    assert current["total"] + previous["total"] == len(assets)
