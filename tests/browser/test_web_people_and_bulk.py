"""An archivist's journey through bulk edit, who speaks and the people pages, in a real
browser against the real stack: ticks two search results with the keyboard, edits them
together and reads the per-asset results (one refused, in Vietnamese); confirms, then
mis-corrects and hands back the tagger's recognition of who speaks; sees the collections
an asset is in; finds the delegate without diacritics and their speeches with evidence.
Screenshots go to ``<test home>/screenshots``; axe-core checks every page on the way."""

from __future__ import annotations

import random
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from shared.auth import Role
from shared.people import bundled_registry, person_id_for
from shared.settings import Settings
from shared.taxonomy import current_term
from tests.browser.conftest import axe_violations, describe, shot, sign_in
from tests.conftest import ARCHIVIST, AUTH, role_headers, wait_for
from tests.media import jpeg_bytes

pytestmark = pytest.mark.integration
TERM = "2021-2026"
SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ", "Đặng", "Bùi")
MIDDLES = ("Văn", "Thị", "Minh", "Quốc", "Thanh", "Hữu", "Ngọc", "Đức")
GIVENS = ("Hùng", "Lan", "Tuấn", "Hạnh", "Khoa", "Mai", "Phúc", "Thảo", "Long", "Vy", "Sơn", "Trang")


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def fresh_name(rng: random.Random) -> str:
    """A three-part name nobody in the bundled registry (or an earlier run of this test) has."""
    while True:
        name = f"{rng.choice(SURNAMES)} {rng.choice(MIDDLES)} {rng.choice(MIDDLES)} {rng.choice(GIVENS)}"
        if bundled_registry().lookup(name) is None:
            return name


@pytest.fixture(scope="module")
def speakers(services: Settings) -> dict[str, Any]:
    """A delegate imported for the term, and three photos: two where they speak, one without them."""
    s = services
    marker = uuid.uuid4().hex[:8]
    name = fresh_name(random.Random(marker))
    listing = f"ho_ten,nhiem_ky,don_vi_bau_cu,to_dai_bieu\n{name},{TERM},Đơn vị bầu cử số 2,Tổ đại biểu huyện Ninh Hải"
    ok(
        httpx.post(
            f"{s.catalogue_url}/v1/delegates/import",
            headers={**ARCHIVIST, "Content-Type": "text/csv"},
            content=listing.encode(),
            timeout=60,
        )
    )
    captions = [
        f"Đại biểu {name} phát biểu ý kiến về chính sách hỗ trợ ngư dân",
        f"Đại biểu {name} chất vấn về tiến độ giải ngân vốn đầu tư công",
        "Toàn cảnh hội trường trước giờ khai mạc",
    ]
    ids = []
    for n, caption in enumerate(captions):
        photo = jpeg_bytes(n) + f"HDND-{marker}-{n}".encode()  # after the JPEG's end: unique bytes
        answer = httpx.post(
            f"{s.ingest_url}/v1/assets",
            headers=AUTH,
            files={"file": (f"anh-{n}.jpg", photo, "image/jpeg")},
            data={
                "title": f"Kỳ họp {marker} ảnh {n + 1}",
                "caption": caption,
                "activity_type": "khac",
                "recorded_at": "2024-07-10",
            },
            timeout=60,
        )
        ids.append(ok(answer, 201)["asset_id"])

    def tags(asset_id: str) -> dict[str, Any]:
        return dict(ok(httpx.get(f"{s.catalogue_url}/v1/assets/{asset_id}/tags", headers=ARCHIVIST, timeout=30)))

    wait_for(lambda: all(tags(a).get("tagged_at") for a in ids), timeout=120, what="the photos tagged")
    assert all(tags(a).get("speech_auto") for a in ids[:2]), [tags(a) for a in ids[:2]]

    def indexed() -> bool:
        found = httpx.get(f"{s.search_url}/v1/search", headers=ARCHIVIST, params={"q": marker}, timeout=30)
        return bool(found.status_code == 200 and found.json()["total"] == 3)

    wait_for(indexed, timeout=120, what="the photos searchable")
    return {"marker": marker, "name": name, "person_id": person_id_for(name), "assets": ids}


def checked(page: Page) -> None:
    violations = axe_violations(page)
    assert not violations, describe(violations)


def test_an_archivist_bulk_edits_a_selection_decides_who_speaks_and_finds_the_delegates_speeches(
    page: Page, services: Settings, screenshots: Path, speakers: dict[str, Any]
) -> None:
    s, marker, name = services, speakers["marker"], speakers["name"]
    speaking = speakers["assets"][:2]
    saved = ok(
        httpx.post(
            f"{s.catalogue_url}/v1/collections",
            headers=ARCHIVIST,
            json={"kind": "thematic", "title": f"Chất vấn kỳ họp {marker}", "saved_search": {"q": marker}},
            timeout=30,
        ),
        201,
    )
    sign_in(page, "luu-tru")
    page.goto(f"/search?q={marker}&sort=date")
    expect(page.locator(".hit")).to_have_count(3)

    # Tick the three photos with the keyboard only.
    for asset_id in speakers["assets"]:
        box = page.locator(f"input.pick[value='{asset_id}']")
        box.focus()
        page.keyboard.press("Space")
        expect(box).to_be_checked()
    expect(page.locator("#bulk-count")).to_have_text("3")
    page.locator("details.bulk summary").focus()
    page.keyboard.press("Enter")  # opens the panel; its fields load then
    page.select_option("#bulk_term", TERM)
    page.select_option("#bulk_activity_type", "ky-hop")
    page.fill("#bulk_note", "Sửa hàng loạt theo biên bản kỳ họp")
    shot(page, screenshots, "bulk-edit-form")
    checked(page)
    # One asset that is not there (removed meanwhile, say) is refused on its own.
    gone = "a" + "0" * 32
    # Another archivist corrects the third photo while this page is open: it is not overwritten.
    raced = speakers["assets"][2]
    ok(
        httpx.patch(
            f"{s.catalogue_url}/v1/assets/{raced}/metadata",
            headers=role_headers(Role.LUU_TRU, "luu-tru-2"),
            json={"title": f"Kỳ họp {marker} ảnh 3 (đã sửa tên)"},
            timeout=30,
        )
    )
    page.evaluate(
        """gone => { const box = document.createElement('input'); box.type = 'checkbox'; box.name = 'asset';
        box.value = gone; box.checked = true; box.setAttribute('form', 'bulk-form'); document.body.append(box); }""",
        gone,
    )
    page.get_by_role("button", name="Sửa các tư liệu đã chọn").click()
    expect(page.locator("h1")).to_have_text("Kết quả sửa hàng loạt")
    expect(page.locator("tr[data-result='ok']")).to_have_count(2)
    expect(page.locator("tr[data-result='ok']").first).to_contain_text("đã sửa")
    expect(page.locator(f"tr[data-asset='{raced}']")).to_contain_text("vừa được người khác sửa")
    refused = page.locator(f"tr[data-asset='{gone}']")
    expect(refused).to_contain_text("bị từ chối")
    expect(refused).to_contain_text(f"Không tìm thấy tư liệu {gone}")
    shot(page, screenshots, "bulk-edit-results")
    checked(page)

    def tags(asset_id: str) -> dict[str, Any]:
        return dict(ok(httpx.get(f"{s.catalogue_url}/v1/assets/{asset_id}/tags", headers=ARCHIVIST, timeout=30)))

    for asset_id in speaking:  # set by hand, even where the tagger had guessed the same
        assert tags(asset_id)["manual"] | {"people": None} == {"term": TERM, "activity_type": "ky-hop", "people": None}
    assert tags(raced)["manual"] == {"title": f"Kỳ họp {marker} ảnh 3 (đã sửa tên)"}  # the other edit only

    # Who speaks, on the first photo's page: the tagger's recognition with its evidence.
    page.get_by_role("link", name=f"Kỳ họp {marker} ảnh 1").click()
    speeches = page.locator("section.speeches")
    expect(speeches.locator("tbody tr")).to_have_count(1)
    expect(speeches.locator("tbody")).to_contain_text(name)
    expect(speeches.locator("tbody q")).to_contain_text("phát biểu")
    expect(speeches).to_contain_text("tự động, chưa xác nhận")
    expect(page.locator(".in-collections")).to_contain_text(saved["title"])
    expect(page.locator(".in-collections")).to_contain_text("khớp tìm kiếm đã lưu")
    page.fill("#speech_note", "Đã đối chiếu với băng gốc")
    page.get_by_role("button", name="Xác nhận nhận dạng tự động").click()
    expect(speeches).to_contain_text("đã xác nhận")
    expect(speeches.locator("tbody")).to_contain_text("sửa tay")
    # Confirmed: the tagger's evidence stays, the archivist's note is shown beside it.
    expect(speeches.locator("tbody q")).to_contain_text("phát biểu")
    expect(speeches.locator(".speech-note")).to_contain_text("Đã đối chiếu với băng gốc")
    shot(page, screenshots, "asset-speeches")
    checked(page)
    # A name too long is refused next to the list, in Vietnamese, and what was typed stays.
    page.fill("#speech_name_1", "Nguyễn " * 30)
    page.get_by_role("button", name="Lưu danh sách đã sửa").click()
    expect(page.locator("#speeches-error")).to_be_visible()
    expect(page.locator("#speeches-error")).to_contain_text("speeches")
    # Corrected: the delegate answers rather than speaks; then handed back to the tagger.
    page.fill("#speech_name_1", "")
    page.select_option("#speech_role_0", "answers")
    page.get_by_role("button", name="Lưu danh sách đã sửa").click()
    expect(speeches).to_contain_text("đã sửa tay")
    expect(speeches.locator("tbody")).to_contain_text("Trả lời")
    page.get_by_role("button", name="Trả về nhận dạng tự động").click()
    expect(speeches).to_contain_text("tự động, chưa xác nhận")
    expect(speeches.locator("tbody")).to_contain_text("Phát biểu")

    # The delegate's page, found without diacritics: both speeches, each with its asset.
    def counted() -> bool:
        report = httpx.get(
            f"{s.search_url}/v1/delegates/report", headers=ARCHIVIST, params={"term": TERM, "evidence": 10}, timeout=30
        ).json()
        row = next((d for d in report["delegates"] if d["person_id"] == speakers["person_id"]), None)
        return bool(row and row["speeches"] == 2)

    wait_for(counted, timeout=60, what="both speeches in the delegate report")
    page.get_by_role("link", name="Người", exact=True).click()
    unaccented = unicodedata.normalize("NFD", name.replace("Đ", "D").replace("đ", "d")).encode("ascii", "ignore")
    assert unaccented.decode() != name
    page.fill("#people-q", unaccented.decode())
    page.select_option("#people-term", TERM)
    page.get_by_role("button", name="Tìm", exact=True).click()
    expect(page.locator("table.data tbody tr")).to_have_count(1)
    expect(page.locator("table.data tbody")).to_contain_text("Tổ đại biểu huyện Ninh Hải")
    shot(page, screenshots, "people")
    checked(page)
    page.get_by_role("link", name=name).click()
    expect(page.locator("h1")).to_have_text(name)
    expect(page.locator("[data-speeches]")).to_have_attribute("data-speeches", "2")
    for asset_id in speaking:
        expect(page.locator(f"section[aria-labelledby='speeches-title'] a[href='/assets/{asset_id}']")).to_have_count(1)
    expect(page.locator("#assets-title")).to_contain_text("(2)")
    shot(page, screenshots, "person")
    checked(page)
    # The delegate checklist links to the same page.
    page.goto(f"/delegates?term={TERM}")
    expect(page.locator(f"a[href='/people/{speakers['person_id']}']")).to_have_count(1)
    # Without a term asked for, both pages show the term of today (in Vietnam).
    today = current_term()
    assert today is not None
    page.goto("/delegates")
    expect(page.locator("#term")).to_have_value(today.code)
    page.goto("/people")
    expect(page.locator("#people-term")).to_have_value(today.code)
