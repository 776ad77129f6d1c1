"""Browser tests: Playwright (PyPI) driving Debian's Chromium against the real stack.

Playwright's own browser download cannot work on these machines, so the browser is
the Debian package (``deploy/local/installers.py`` installs it) given as
``executable_path``. Screenshots are test artefacts under
``<test home>/screenshots`` (``.mam/test-<offset>/screenshots``); look at them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from deploy.local import installers
from shared.settings import Settings

pytestmark = pytest.mark.integration

DEMO_PASSWORDS = {
    "phong-vien": "demo-phong-vien",
    "luu-tru": "demo-luu-tru",
    "bien-tap": "demo-bien-tap",
    "quan-tri": "demo-quan-tri",
}
OFFICE_SCREEN = {"width": 1366, "height": 768}
PHONE_SCREEN = {"width": 390, "height": 844}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def web(services: Settings) -> str:
    """The web service's address, every other service running behind it."""
    return services.web_url


@pytest.fixture(scope="session")
def screenshots(services: Settings) -> Path:
    folder = services.home.resolve() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Package scope, not session: Playwright's sync API runs its own event loop in this thread
# while it is open, so every async fixture and `run()` of the tests collected after the
# browser tests failed with "cannot be called from a running event loop".
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = installers.chromium()
    # --no-sandbox: the tests run as root in CI containers, where Chromium's sandbox cannot start.
    launched = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, web: str) -> Iterator[Page]:
    context = browser.new_context(viewport=OFFICE_SCREEN, base_url=web, locale="vi-VN")
    context.set_default_timeout(20_000)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, username: str, password: str | None = None) -> None:
    page.goto("/sign-in")
    page.fill("#username", username)
    page.fill("#password", password or DEMO_PASSWORDS[username])
    page.click("form button.primary")
    page.wait_for_url(re.compile(r"/(search|upload)"))


def shot(page: Page, folder: Path, name: str, full_page: bool = True) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """axe-core (from node_modules, never a CDN) run on the page: the violations of these impacts."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in impacts
    ]


def describe(violations: list[dict[str, Any]]) -> str:
    return json.dumps(violations, ensure_ascii=False, indent=1)


def session_client(
    web: str, username: str, password: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Client:
    """A plain HTTP client signed in through the web's own sign-in form (cookies and CSRF);
    a demo account's password unless ``password`` is given."""
    client = httpx.Client(base_url=web, follow_redirects=False, timeout=30, headers=headers)
    form = client.get("/sign-in")
    token = csrf_of(form.text)
    answer = client.post(
        "/sign-in",
        data={"username": username, "password": password or DEMO_PASSWORDS[username], "csrf_token": token},
    )
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)
