"""The processing queue and the rebuild button in a real browser: an archivist sees a failed
clip with its reason in Vietnamese and presses retry (the page follows the retry on its own);
an admin rebuilds the index from /admin/index and watches it finish."""

from __future__ import annotations

import asyncio
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from shared.events.media import AssetProcessingFailedV1
from shared.eventstore import EventStore
from shared.settings import Settings
from tests.browser.conftest import axe_violations, csrf_of, describe, session_client, shot, sign_in
from tests.conftest import ARCHIVIST, wait_for
from tests.integration.test_processing_queue import announce

pytestmark = pytest.mark.integration


def off_the_browser_loop(coroutine: Any) -> Any:
    """Run ``coroutine`` in a thread of its own (Playwright's sync API holds this thread's
    event loop); an exception there is raised here, failing the test."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _unreadable_clip(settings: Settings) -> tuple[str, list[AssetProcessingFailedV1]]:
    events = await EventStore.connect(settings.resolved_nats_url, settings.event_stream, settings.event_dedup_window_s)
    try:
        asset_id, _ = await announce(settings, events, os.urandom(16 * 1024), store=True)
        for _ in range(240):
            history = await events.history("asset", asset_id)
            failures = [e.envelope.typed_payload() for e in history if e.envelope.type == "asset.processing_failed"]
            if failures:
                return asset_id, [f for f in failures if isinstance(f, AssetProcessingFailedV1)]
            await asyncio.sleep(0.5)
    finally:
        await events.close()
    raise AssertionError(f"no transcoder outcome for {asset_id}")


def _history_types(settings: Settings, asset_id: str) -> list[str]:
    answer = httpx.get(f"{settings.search_url}/v1/assets/{asset_id}/history", headers=ARCHIVIST, timeout=60)
    assert answer.status_code == 200, answer.text
    return [e["type"] for e in answer.json()["events"]]


@pytest.fixture(scope="module")
def failed_clip(services: Settings) -> dict[str, Any]:
    """A clip the transcoder cannot read, failed, and listed in the queue."""
    asset_id, [failure] = off_the_browser_loop(_unreadable_clip(services))

    def listed() -> bool:
        answer = httpx.get(
            f"{services.search_url}/v1/processing",
            headers=ARCHIVIST,
            params={"state": "failed", "size": 100},
            timeout=60,  # a loaded shared machine answers slowly; the wait below decides
        )
        return any(item["asset_id"] == asset_id for item in answer.json()["items"])

    wait_for(listed, 120, 0.5, f"{asset_id} in the failed list")
    return {"asset_id": asset_id, "reason": failure.reason}


def test_an_archivist_sees_a_failed_clip_with_its_reason_and_retries_it_from_the_queue(
    page: Page, screenshots: Path, services: Settings, failed_clip: dict[str, Any]
) -> None:
    asset_id = failed_clip["asset_id"]
    sign_in(page, "luu-tru")
    page.locator("header nav").get_by_role("link", name="Hàng đợi xử lý").click()
    expect(page.locator("h1")).to_have_text("Hàng đợi xử lý")
    page.select_option("#state", "failed")
    page.get_by_role("button", name="Lọc").click()
    page.wait_for_url(re.compile(r"state=failed"))
    row = page.locator(f'tr[data-asset="{asset_id}"]')
    expect(row).to_contain_text(failed_clip["reason"])  # the transcoder's reason, in Vietnamese
    expect(row.locator(".state-failed").first).to_have_text("Lỗi")
    assert not (v := axe_violations(page)), describe(v)
    shot(page, screenshots, "processing-failed")

    row.get_by_role("button", name=re.compile("^Xử lý lại")).click()
    expect(page.locator("p.notice")).to_contain_text("Đã yêu cầu xử lý lại")
    assert "state=failed" in page.url  # back to the same filter
    # The unreadable file fails again, cleanly: the page follows the retry without a reload
    # (it refreshes itself while anything is in flight) and counts it.
    expect(page.locator(f'tr[data-asset="{asset_id}"]')).to_contain_text("Đã thử lại 1 lần", timeout=90_000)
    shot(page, screenshots, "processing-retried")
    types = _history_types(services, asset_id)
    assert types.count("asset.processing_retry_requested") == 1
    wait_for(
        lambda: _history_types(services, asset_id).count("asset.processing_failed") == 2, 60, 0.5, "second failure"
    )


def test_a_retry_posted_without_its_csrf_token_is_refused_and_a_broadcaster_has_no_queue(
    web: str, services: Settings, failed_clip: dict[str, Any]
) -> None:
    asset_id = failed_clip["asset_id"]
    before = _history_types(services, asset_id).count("asset.processing_retry_requested")
    archivist = session_client(web, "luu-tru")
    refused = archivist.post(f"/processing/{asset_id}/retry", data={}, headers={"Accept": "text/html"})
    assert refused.status_code == 403 and "Biểu mẫu đã hết hạn" in refused.text
    assert _history_types(services, asset_id).count("asset.processing_retry_requested") == before
    broadcaster = session_client(web, "phong-vien")
    page = broadcaster.get("/search")
    assert page.status_code == 200 and 'href="/processing"' not in page.text
    denied = broadcaster.post(f"/processing/{asset_id}/retry", data={"csrf_token": csrf_of(page.text)})
    assert denied.status_code == 403
    assert _history_types(services, asset_id).count("asset.processing_retry_requested") == before


def test_an_admin_rebuilds_the_index_from_its_page_and_watches_it_finish(page: Page, screenshots: Path) -> None:
    sign_in(page, "quan-tri")
    page.goto("/admin/index")
    assert not (v := axe_violations(page)), describe(v)
    page.get_by_role("button", name="Dựng lại chỉ mục").click()
    expect(page.locator("section.card p.notice")).to_contain_text("Đã bắt đầu dựng lại chỉ mục")
    # The progress box polls until the rebuild is over (no reload).
    expect(page.locator("#rebuild")).to_contain_text("Lần dựng lại gần nhất đã xong", timeout=180_000)
    expect(page.locator("#rebuild")).to_contain_text("Chỉ mục mới")
    expect(page.locator("#rebuild").get_by_role("button", name="Dựng lại chỉ mục")).to_be_visible()  # offered again
    shot(page, screenshots, "admin-index-rebuilt")
