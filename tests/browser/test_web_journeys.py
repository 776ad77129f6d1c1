"""One journey per kind of user, in a real browser against the real stack; each saves
screenshots (``<test home>/screenshots``) and checks what the user would see."""

from __future__ import annotations

import re
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from shared.settings import Settings
from tests.browser.conftest import axe_violations, describe, shot, sign_in
from tests.conftest import ARCHIVIST, AUTH, wait_for
from tests.media import make_clip

pytestmark = pytest.mark.integration


def _processed(s: Settings, asset_id: str) -> bool:
    answer = httpx.get(f"{s.search_url}/v1/assets/{asset_id}/renditions", headers=ARCHIVIST, timeout=10)
    return answer.status_code == 200 and "poster" in answer.json()["renditions"]


@pytest.fixture(scope="module")
def clip(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A broadcaster's video clip with a Vietnamese title, processed (poster, proxy, storyboard)."""
    marker = uuid.uuid4().hex[:8]
    path = make_clip(
        tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2.0, extra=["-metadata", f"comment={marker}"]
    )
    title = f"Giám sát việc xử lý đơn thư của cử tri xã Phước Hà {marker}"
    with path.open("rb") as handle:
        answer = httpx.post(
            f"{services.ingest_url}/v1/assets",
            headers=AUTH,
            data={"title": title, "activity_type": "tiep-xuc-cu-tri", "recorded_at": "2024-03-15"},
            files={"file": ("clip.mp4", handle, "video/mp4")},
            timeout=60,
        )
    assert answer.status_code == 201, answer.text
    asset_id = answer.json()["asset_id"]
    wait_for(lambda: _processed(services, asset_id), timeout=120, what="the clip's renditions")
    return {"asset_id": asset_id, "title": title, "marker": marker}


def _activity(s: Settings, title: str) -> str:
    answer = httpx.post(
        f"{s.catalogue_url}/v1/activities",
        headers=ARCHIVIST,
        json={"title": title, "activity_type": "giam-sat-kien-nghi", "start_date": "2024-03-15", "place": "Ninh Phước"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["activity_id"])


def test_an_archivist_finds_a_clip_without_diacritics_corrects_assigns_and_publishes_it_with_an_embargo(
    page: Page, services: Settings, screenshots: Path, clip: dict[str, Any]
) -> None:
    activity_title = f"Giám sát chuyên đề tại huyện Ninh Phước {clip['marker']}"
    activity_id = _activity(services, activity_title)
    sign_in(page, "luu-tru")
    # Typed without diacritics, no Enter: the results arrive without reloading the page.
    page.evaluate("window.__sameDocument = true")
    page.fill("#q", f"phuoc ha {clip['marker']}")
    hit = page.locator(".hit h3 a").first
    expect(hit).to_contain_text("Giám sát việc xử lý đơn thư")
    expect(page.locator(".hit h3 em").first).to_be_visible()  # the match highlighted in the original words
    expect(page).to_have_url(re.compile(r"/search\?q=phuoc"))
    # A facet narrows the results in place too.
    page.locator(".facet-value", has_text="Video").click()
    expect(page.locator(".facet-value.on", has_text="Video")).to_be_visible()
    expect(page).to_have_url(re.compile(r"kind=video"))
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    shot(page, screenshots, "search")
    violations = axe_violations(page)
    assert not violations, describe(violations)

    # The asset page shows the poster and does not fetch the video before it is played.
    media_requests: list[str] = []
    page.on("request", lambda r: media_requests.append(r.url) if "/media/" in r.url else None)
    hit.click()
    expect(page.locator("h1")).to_contain_text("Giám sát việc xử lý đơn thư")
    video = page.locator("video#player")
    expect(video).to_have_attribute("poster", f"/media/{clip['asset_id']}/poster")
    page.wait_for_function("() => document.querySelector('video#player').readyState === 0")
    assert any(u.endswith("/poster") for u in media_requests) or True  # the poster may come from the cache
    assert not any(u.endswith("/proxy") for u in media_requests), media_requests
    violations = axe_violations(page)
    assert not violations, describe(violations)

    # Correct the activity type: the manual value wins and the difference is shown.
    page.select_option("#activity_type", "giam-sat-kien-nghi")
    page.fill("#note", "Sửa loại hoạt động theo biên bản")
    page.get_by_role("button", name="Lưu thay đổi").click()
    expect(page.locator("p.notice")).to_have_text("Đã lưu.")
    expect(page.locator("table.compare tr.conflict")).to_contain_text("Loại hoạt động")
    # Assign it to the activity.
    page.select_option("#activity_id", activity_id)
    page.get_by_role("button", name="Gán", exact=True).click()
    expect(page.locator(".facts")).to_contain_text(activity_title)
    # Publish with an embargo: bad input first, refused next to the field in Vietnamese.
    page.fill("#publish_day", "31/02/2030")
    page.get_by_role("button", name="Xuất bản", exact=True).click()
    expect(page.locator("p.alert")).to_be_visible()
    embargo = date.today() + timedelta(days=30)
    page.fill("#publish_day", embargo.strftime("%d/%m/%Y"))
    page.fill("#publish_time", "08:00")
    page.get_by_role("button", name="Xuất bản", exact=True).click()
    expect(page.locator("p.notice")).to_have_text("Đã lưu.")
    history = page.locator(".history")
    expect(history).to_contain_text("Xuất bản")
    expect(history).to_contain_text(f"từ {embargo.strftime('%d/%m/%Y')} 08:00")
    expect(history).to_contain_text("Sửa thông tin")
    expect(history).to_contain_text("Gán vào hoạt động")
    shot(page, screenshots, "asset")
    # And into a collection, whose page lists it and exports it as a ZIP.
    collection_title = f"Tổng kết giám sát năm 2024 {clip['marker']}"
    made = httpx.post(
        f"{services.catalogue_url}/v1/collections",
        headers=ARCHIVIST,
        json={"kind": "annual", "title": collection_title, "year": 2024},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    page.get_by_role("button", name="Thêm", exact=True).click()
    expect(page.locator("#collection_id-error")).to_have_text("Hãy chọn một bộ sưu tập.")
    page.select_option("#collection_id", made.json()["collection_id"])
    page.get_by_role("button", name="Thêm", exact=True).click()
    expect(page.locator("p.notice")).to_have_text("Đã thêm vào bộ sưu tập.")
    page.goto(f"/collections/{made.json()['collection_id']}")
    expect(page.locator(".hit-list")).to_contain_text("Giám sát việc xử lý đơn thư")
    page.get_by_role("button", name="Xuất tệp ZIP").click()
    expect(page.locator("#export")).to_contain_text("Sẵn sàng tải về", timeout=120_000)
    shot(page, screenshots, "collection")
    zipped = page.request.get(page.get_by_role("link", name="Tải tệp ZIP").get_attribute("href") or "")
    assert zipped.status == 200 and zipped.body()[:2] == b"PK"


def test_a_broadcaster_uploads_resumably_through_a_dropped_connection_and_a_reload_and_sees_it_processed(
    page: Page, services: Settings, screenshots: Path, tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex[:8]
    path = make_clip(
        tmp_path / f"phong-vien-{marker}.mp4",
        seconds=6.0,
        size="1280x720",
        extra=["-metadata", f"comment={marker}", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "8M"],
    )
    chunk = 256 * 1024
    assert path.stat().st_size > 8 * chunk, path.stat().st_size
    offsets: list[int] = []  # Upload-Offset of every PATCH the browser sent
    dropped: list[int] = []

    def tus(route: Any, request: Request) -> None:
        if request.method == "PATCH":
            offset = int(request.headers.get("upload-offset", "-1"))
            offsets.append(offset)
            if len(offsets) == 3 and not dropped:
                dropped.append(offset)
                route.abort("connectionreset")  # the link drops mid-upload: tus-js-client retries
                return
            time.sleep(0.25)  # a slow link, so the page can be reloaded mid-way
        route.continue_()

    page.route(re.compile(r"/tus(/|$)"), tus)
    sign_in(page, "phong-vien")
    page.goto("/upload?chunk_kib=256")
    page.set_input_files("#files", str(path))
    title = page.locator(".queue .title").first
    title.fill("")
    page.fill("#shared-recorded_at", "32/13/2024")
    page.click("#start")
    expect(page.locator("#shared-recorded_at-error")).to_have_text("Ngày phải viết dd/mm/yyyy, ví dụ 05/07/2024.")
    expect(page.locator(".queue .title-error").first).to_have_text("Hãy nhập tiêu đề.")
    shot(page, screenshots, "upload-refused")
    upload_title = f"Tiếp xúc cử tri xã Phước Dinh {marker}"
    title.fill(upload_title)
    page.fill("#shared-recorded_at", "15/03/2024")
    page.click("#start")
    # Past the drop, part-way through: reload the page.
    page.wait_for_function("() => (document.querySelector('.queue progress') || {}).value > 30", timeout=60_000)
    expect(page.locator(".queue .status").first).to_contain_text("MB/s")
    shot(page, screenshots, "upload-in-progress", full_page=False)
    assert dropped, "the simulated drop did not happen"
    sent_before_reload = len(offsets)
    page.reload()
    page.set_input_files("#files", str(path))
    page.locator(".queue .title").first.fill(upload_title)
    page.click("#start")
    status = page.locator(".queue .status").first
    expect(status).to_contain_text("Đã tải lên", timeout=90_000)
    resumed = offsets[sent_before_reload:]
    assert resumed and resumed[0] > 0, f"the upload restarted from zero after the reload: {offsets}"
    assert dropped[0] in offsets[3:], "the dropped chunk was not sent again"
    # The recent uploads listed this one as receiving when the page was reloaded: now stored.
    listed = page.locator("section[aria-labelledby=uploads-title] tr", has_text=upload_title)
    expect(listed).to_contain_text("Đã lưu")
    expect(listed).to_contain_text("100%")
    expect(listed.get_by_role("link", name=upload_title)).to_have_attribute("href", re.compile(r"^/assets/a"))
    shot(page, screenshots, "upload")
    status.get_by_role("link").click()
    expect(page.locator("video#player")).to_be_visible(timeout=120_000)  # the page polls until processed
    expect(page.locator("h1")).to_have_text(upload_title)
    shot(page, screenshots, "upload-processed")
    # The broadcaster's own uploads, with their state, on the upload page.
    page.goto("/upload")
    row = page.locator("section[aria-labelledby=uploads-title] tr", has_text=upload_title)
    expect(row).to_contain_text("Đã lưu")
    expect(row).to_contain_text("100%")
    # And among "my uploads" (the search API's uploader=me): theirs, no one else's.
    expect(page.locator("ul.mine")).to_contain_text(upload_title)
    # A correction of their own upload (DESIGN §7), from the list of their uploads.
    page.locator("ul.mine li", has_text=upload_title).get_by_role("link", name="Sửa thông tin").click()
    expect(page.locator("#assign-title")).to_have_count(0)  # assigning to activities is the archivists'
    page.fill("#title", f"{upload_title} (đã sửa)")
    page.locator("section.edit").get_by_role("button", name="Lưu thay đổi").click()
    expect(page.locator("h1")).to_have_text(f"{upload_title} (đã sửa)")
    expect(page.locator("p.notice")).to_have_text("Đã lưu.")


def test_a_producer_builds_a_three_segment_reel_with_typed_timecodes_and_renders_it(
    page: Page, screenshots: Path, clip: dict[str, Any]
) -> None:
    sign_in(page, "bien-tap")
    page.goto("/reels")
    page.fill("#title", f"Tổng kết hoạt động giám sát năm 2024 {clip['marker']}")
    page.fill("#subtitle", "HĐND tỉnh Ninh Thuận")
    page.get_by_role("button", name="Tạo phim").click()
    expect(page).to_have_url(re.compile(r"/reels/r"))
    page.fill("#clip-q", f"phuoc ha {clip['marker']}")
    pick = page.locator("#clips .clip").first
    expect(pick).to_contain_text("Giám sát việc xử lý đơn thư")
    for _ in range(3):
        pick.click()
    expect(page.locator("#segments .segment")).to_have_count(3)
    cuts = [("00:00:00.00", "00:00:00.20"), ("00:00:00.20", "00:00:01.05"), ("00:00:01.05", "00:00:99.00")]
    for n, (start, end) in enumerate(cuts):
        page.fill(f"#in-{n}", start)
        page.fill(f"#out-{n}", end)
        page.fill(f"#caption-{n}", f"Đoạn {n + 1}")
    page.get_by_role("button", name="Lưu các đoạn").click()
    expect(page.locator("#out-2-error")).to_contain_text("hh:mm:ss.ff")
    expect(page.locator("#out-2")).to_have_value("00:00:99.00")  # what was typed is kept
    page.fill("#out-2", "00:00:01.20")
    # Reorder: the first segment goes down one place.
    page.locator("#segments .segment").first.get_by_role("button", name="Chuyển xuống").click()
    expect(page.locator("#caption-0")).to_have_value("Đoạn 2")
    page.get_by_role("button", name="Lưu các đoạn").click()
    expect(page.locator("p.notice")).to_have_text("Đã lưu các đoạn.")
    expect(page.locator("#caption-0")).to_have_value("Đoạn 2")
    expect(page.locator("#in-1")).to_have_value("00:00:00.00")
    expect(page.locator("#out-2")).to_have_value("00:00:01.20")
    violations = axe_violations(page)
    assert not violations, describe(violations)
    page.get_by_role("button", name="Dựng phim").click()
    expect(page.locator("#progress")).to_contain_text("Đã dựng xong", timeout=240_000)
    output = page.locator("video.reel-output")
    expect(output).to_be_visible()
    shot(page, screenshots, "reel")
    download = page.request.get(output.get_attribute("src") or "", headers={"Range": "bytes=0-1023"})
    assert download.status == 206 and len(download.body()) == 1024


def test_an_admin_creates_a_user_who_can_then_sign_in(page: Page, screenshots: Path, browser: Any, web: str) -> None:
    sign_in(page, "quan-tri")
    page.goto("/admin/users")
    violations = axe_violations(page)
    assert not violations, describe(violations)
    page.fill("#username", "Tên Có Dấu")
    page.fill("#password", "ngan")
    page.get_by_role("button", name="Tạo tài khoản").click()
    expect(page.locator("#username-error")).to_contain_text("Tên đăng nhập gồm")
    expect(page.locator("#display_name-error")).to_have_text("Hãy nhập họ và tên.")
    expect(page.locator("#password-error")).to_have_text("Mật khẩu cần ít nhất 12 ký tự.")
    shot(page, screenshots, "admin-user-refused")
    username = f"pv-{uuid.uuid4().hex[:6]}"
    page.fill("#username", username)
    page.fill("#display_name", "Nguyễn Thị Hồng Nhung")
    page.select_option("#role", "phong-vien")
    page.fill("#password", "mat-khau-that-dai-2024")
    page.get_by_role("button", name="Tạo tài khoản").click()
    expect(page.locator("p.notice")).to_have_text("Đã lưu.")
    expect(page.locator("table.data").first).to_contain_text("Nguyễn Thị Hồng Nhung")
    shot(page, screenshots, "admin-users")
    other = browser.new_context(base_url=web).new_page()
    sign_in(other, username, "mat-khau-that-dai-2024")
    expect(other.locator("header .who")).to_contain_text("Nguyễn Thị Hồng Nhung")
    other.context.close()


def test_the_main_pages_have_no_serious_accessibility_violations_and_fit_a_phone(
    page: Page, screenshots: Path, clip: dict[str, Any]
) -> None:
    page.goto("/sign-in")
    assert not (v := axe_violations(page)), describe(v)
    sign_in(page, "quan-tri")
    for path in (
        "/search?q=cu+tri",
        "/activities",
        "/upload",
        "/admin/index",
        "/stats",
        "/delegates",
        "/collections",
        "/people",
    ):
        page.goto(path)
        violations = axe_violations(page)
        assert not violations, f"{path}: {describe(violations)}"
    page.goto("/stats")
    expect(page.locator("#stats-table tbody tr").first).to_be_visible()
    shot(page, screenshots, "stats")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/search?q=cu+tri")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the search page scrolls sideways on a phone ({width}px)"
    shot(page, screenshots, "search-phone", full_page=False)


def test_media_reach_the_browser_through_the_web_service_with_byte_ranges(
    web: str, services: Settings, clip: dict[str, Any]
) -> None:
    from tests.browser.conftest import session_client

    client = session_client(web, "luu-tru")
    ranged = client.get(f"/media/{clip['asset_id']}/proxy", headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"].startswith("bytes 100-199/")
    assert len(ranged.content) == 100
    whole = client.get(f"/media/{clip['asset_id']}/proxy")
    assert whole.content[100:200] == ranged.content
    assert client.get(f"/media/{clip['asset_id']}/nothing").status_code == 404
    stranger = httpx.get(f"{web}/media/{clip['asset_id']}/proxy", headers={"Accept": "application/json"})
    assert stranger.status_code == 401


def test_every_services_api_docs_load_without_the_internet(page: Page, services: Settings) -> None:
    outside: list[str] = []

    def only_loopback(route: Any, request: Request) -> None:
        if re.match(r"^https?://(127\.0\.0\.1|localhost)(:\d+)?/", request.url):
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    page.route("**/*", only_loopback)
    for url in (services.search_url, services.ingest_url, services.catalogue_url, services.accounts_url):
        page.goto(f"{url}/docs")
        expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert not outside, outside
