"""Signing in and out of the web pages, the session cookies, and CSRF refusals."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from shared.settings import Settings
from tests.browser.conftest import csrf_of, session_client, shot, sign_in
from tests.conftest import ADMIN, wait_for
from tests.media import jpeg_bytes
from tests.uploads import METADATA, tus_metadata

pytestmark = pytest.mark.integration


def test_a_page_asked_for_without_signing_in_leads_to_the_sign_in_form_and_back(page: Page, screenshots: Path) -> None:
    page.goto("/search?q=ky+hop")
    expect(page).to_have_url("/sign-in?next=/search")
    expect(page.locator("h1")).to_have_text("Đăng nhập")
    shot(page, screenshots, "sign-in")
    sign_in(page, "luu-tru")
    expect(page).to_have_url("/search")


def test_the_sign_in_form_refuses_empty_fields_and_a_wrong_password_in_vietnamese(
    page: Page, screenshots: Path
) -> None:
    page.goto("/sign-in")
    page.click("form button.primary")
    expect(page.locator("#username-error")).to_have_text("Hãy nhập tên đăng nhập.")
    expect(page.locator("#password-error")).to_have_text("Hãy nhập mật khẩu.")
    expect(page.locator("#username")).to_have_attribute("aria-invalid", "true")
    shot(page, screenshots, "sign-in-empty-fields")
    page.fill("#username", "luu-tru")
    page.fill("#password", "not-the-password")
    page.click("form button.primary")
    expect(page.locator("p.alert")).to_contain_text("mật khẩu")
    expect(page).to_have_url("/sign-in")


def test_session_cookies_are_http_only_and_same_site_and_hold_no_secret_a_script_can_read(web: str) -> None:
    client = httpx.Client(base_url=web, follow_redirects=False)
    form = client.get("/sign-in")
    answer = client.post(
        "/sign-in",
        data={"username": "luu-tru", "password": "demo-luu-tru", "csrf_token": csrf_of(form.text)},
    )
    assert answer.status_code == 303
    cookies = {c.split("=", 1)[0]: c.lower() for c in answer.headers.get_list("set-cookie")}
    assert {"mam_at", "mam_rt"} <= set(cookies)
    for name in ("mam_at", "mam_rt"):
        assert "httponly" in cookies[name] and "samesite=" in cookies[name]
        assert "secure" not in cookies[name]  # loopback: plain http; any other host gets Secure
    assert "samesite=strict" in cookies["mam_rt"]


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(web: str, services: Settings) -> None:
    client = session_client(web, "quan-tri")
    body = {"username": "khong-csrf", "display_name": "Không CSRF", "role": "phong-vien", "password": "x" * 16}
    refused = client.post("/admin/users", data=body, headers={"Accept": "text/html"})
    assert refused.status_code == 403
    assert "Biểu mẫu đã hết hạn" in refused.text
    wrong = client.post("/admin/users", data={**body, "csrf_token": "0" * 64}, headers={"Accept": "application/json"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf_refused"
    # A sign-in form without a token is refused too (login CSRF).
    fresh = httpx.Client(base_url=web)
    assert fresh.post("/sign-in", data={"username": "luu-tru", "password": "demo-luu-tru"}).status_code == 403
    users = client.get("/admin/users")
    assert users.status_code == 200 and "khong-csrf" not in users.text


def test_an_expired_access_cookie_is_renewed_with_the_refresh_token(web: str) -> None:
    client = session_client(web, "luu-tru")
    client.cookies.set("mam_at", "expired.or.garbage")
    answer = client.get("/search")
    assert answer.status_code == 200 and "Tìm thấy" in answer.text
    renewed = [c for c in answer.headers.get_list("set-cookie") if c.startswith("mam_at=")]
    assert renewed and "expired.or.garbage" not in renewed[0]


def new_archivist_signed_in(
    web: str, services: Settings, name: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Client, str]:
    """A new archivist's account (made by the administrator) signed in to the web: the
    session's client and the account's URL in the accounts API."""
    password = "mật khẩu đủ dài 2025"
    accounts = f"{services.accounts_url}/v1/users"
    made = httpx.post(
        accounts,
        headers=ADMIN,
        json={"username": name, "display_name": "Lưu trữ viên", "role": "luu-tru", "password": password},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return session_client(web, name, password, headers), f"{accounts}/{name}"


def test_a_role_changed_by_an_administrator_takes_effect_on_the_next_pages_without_signing_out(
    web: str, services: Settings, unique: str
) -> None:
    client, account = new_archivist_signed_in(web, services, f"doi-vai-tro-{unique}", {"Accept": "text/html"})
    assert client.get("/reels").status_code == 200  # an archivist's page

    demoted = httpx.patch(account, headers=ADMIN, json={"role": "phong-vien"}, timeout=30)
    assert demoted.status_code == 200, demoted.text
    # Within the services' revocation cache time the old token is refused; the web trades it
    # for a new one (the reporter's) and the page answers for the new role, still signed in.
    refused = wait_for(
        lambda: (r := client.get("/reels")).status_code != 200 and r,
        timeout=30,
        interval=0.3,
        what="the reels page to be refused to the demoted user",
    )
    assert refused.status_code == 403 and "không có quyền" in refused.text, (refused.status_code, refused.text[:300])
    assert any(c.startswith("mam_at=") for c in refused.headers.get_list("set-cookie"))
    page = client.get("/search")
    assert page.status_code == 200 and "Tìm thấy" in page.text
    nav = page.text.split("</nav>")[0]
    assert 'href="/upload"' in nav and 'href="/reels"' not in nav, nav[-800:]


def test_an_upload_going_through_the_web_carries_on_when_the_users_role_changes_midway(
    web: str, services: Settings, unique: str
) -> None:
    client, account = new_archivist_signed_in(web, services, f"tai-len-doi-vai-tro-{unique}")
    tus = {"Tus-Resumable": "1.0.0", "X-CSRF-Token": csrf_of(client.get("/search").text)}
    data = jpeg_bytes(random.randrange(1 << 30), size=(1600, 1200))
    created = client.post(
        "/tus",
        headers={**tus, "Upload-Length": str(len(data)), "Upload-Metadata": tus_metadata(METADATA)},
    )
    assert created.status_code == 201, created.text
    url = created.headers["location"]

    def patch(offset: int, count: int) -> httpx.Response:
        headers = {**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        return client.patch(url, headers=headers, content=data[offset : offset + count])

    def renewed(answer: httpx.Response) -> bool:
        return any(c.startswith("mam_at=") for c in answer.headers.get_list("set-cookie"))

    assert patch(0, 1000).status_code == 204
    # A request without a body, refused with the old token, is sent again with a renewed one.
    assert httpx.patch(account, headers=ADMIN, json={"role": "phong-vien"}, timeout=30).status_code == 200
    asked = wait_for(
        lambda: (r := client.head(url, headers=tus)).status_code == 200 and renewed(r) and r,
        timeout=30,
        interval=0.3,
        what="a HEAD answered after renewing the session",
    )
    assert asked.headers["upload-offset"] == "1000"
    # A PATCH refused with the old token is answered 409 (its body went, in part, to ingest):
    # the client sends it again, with the renewed session, from the offset it asks for.
    assert httpx.patch(account, headers=ADMIN, json={"role": "luu-tru"}, timeout=30).status_code == 200
    offset = 1000

    def refused_once() -> httpx.Response | None:
        nonlocal offset
        answer = patch(offset, 100)
        if answer.status_code == 204:
            offset = int(answer.headers["upload-offset"])
            return None
        return answer

    refused = wait_for(refused_once, timeout=30, interval=0.3, what="a PATCH refused with the revoked token")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "session_renewed", refused.text
    assert renewed(refused) and refused.json()["error"]["message"] and refused.json()["error"]["message_en"]
    offset = int(client.head(url, headers=tus).headers["upload-offset"])
    assert patch(offset, len(data)).status_code == 204
    final = wait_for(
        lambda: (r := client.get(url).json())["state"] in ("stored", "rejected") and r,
        timeout=120,
        interval=0.3,
        what="the upload to be stored",
    )
    assert final["state"] == "stored" and final["offset"] == len(data), final


def test_signing_out_ends_the_sign_in_and_its_refresh_token(web: str) -> None:
    client = session_client(web, "luu-tru")
    refresh = client.cookies.get("mam_rt")
    page = client.get("/search")
    out = client.post("/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/sign-in"
    again = httpx.Client(base_url=web, follow_redirects=False, cookies={"mam_rt": refresh or ""})
    back = again.get("/search", headers={"Accept": "text/html"})
    assert back.status_code == 303 and back.headers["location"].startswith("/sign-in")


def test_a_role_sees_only_the_menu_entries_it_may_use_and_the_api_refuses_the_rest(page: Page, web: str) -> None:
    sign_in(page, "phong-vien")
    nav = page.locator("header nav")
    expect(nav.get_by_role("link", name="Tải lên")).to_be_visible()
    expect(nav.get_by_role("link", name="Tài khoản")).to_have_count(0)
    page.goto("/admin/users")
    expect(page.locator("h1")).to_have_text("Không thực hiện được")
    expect(page.locator("p.alert")).to_contain_text("không có quyền")


def test_english_is_one_click_away_and_stays_chosen(page: Page) -> None:
    sign_in(page, "luu-tru")
    page.get_by_role("button", name="English").click()
    expect(page.locator("header nav").get_by_role("link", name="Search")).to_be_visible()
    page.goto("/activities")
    expect(page.locator("h1")).to_have_text("Activities by term")
    page.get_by_role("button", name="Tiếng Việt").click()
    expect(page.locator("h1")).to_have_text("Hoạt động theo nhiệm kỳ")
