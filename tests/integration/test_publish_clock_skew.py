"""Publishing "now" from a catalogue replica whose clock runs two minutes fast.

The replica runs with libfaketime preloaded (as the cluster fault suite's clock-skew
fault does). A publication without ``publish_at`` records no instant at all ("at
once"), so the portal feed, judged by Elasticsearch's clock, shows the asset as soon
as the projection has it — not two minutes late, as when the replica's "now" was
written down as the start of the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from deploy.local import installers
from deploy.local.processes import stop
from deploy.local.stack import LocalStack
from shared.settings import Settings
from tests import conftest
from tests.conftest import ARCHIVIST, wait_for
from tests.integration.archive import banner_jpeg, search, upload

pytestmark = pytest.mark.integration

SKEW_S = 120


@pytest.fixture(scope="module")
def fast_catalogue(services: Settings) -> Iterator[str]:
    """A second catalogue replica, its clock ``SKEW_S`` ahead; its URL."""
    installers.debian_tool("faketime")  # the Debian package that brings libfaketime
    libraries = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    assert libraries, "libfaketime is not installed"
    settings = conftest.test_settings(catalogue_port=services.catalogue_port + 90)
    spec = LocalStack(settings).service_spec("catalogue")
    spec = dataclasses.replace(
        spec,
        name="catalogue-fast-clock",
        env={**spec.env, "LD_PRELOAD": str(libraries[0]), "FAKETIME": f"+{SKEW_S}"},
    )
    conftest.start_own(spec)
    try:
        yield settings.catalogue_url
    finally:
        stop(spec)


def in_public_feed(s: Settings, asset_id: str) -> bool:
    feed = httpx.get(f"{s.search_url}/v1/feed", timeout=30)
    assert feed.status_code == 200, feed.text
    return f"urn:hdnd-mam:asset:{asset_id}" in {item["id"] for item in feed.json()["items"]}


def test_publishing_now_from_a_replica_two_minutes_fast_shows_the_asset_at_once(
    services: Settings, fast_catalogue: str, http: httpx.Client, unique: str
) -> None:
    s = services
    asset_id = upload(
        http, s, banner_jpeg(["KỲ HỌP THỨ TÁM"], unique), title=f"Khai mạc kỳ họp {unique}", activity_type="ky-hop"
    )
    wait_for(
        lambda: asset_id in {h["asset_id"] for h in search(http, s, q=unique)["hits"]},
        timeout=60,
        what="the upload in the index",
    )
    assert not in_public_feed(s, asset_id)
    published = http.put(
        f"{fast_catalogue}/v1/assets/{asset_id}/publication", headers=ARCHIVIST, json={"restriction": "public"}
    )
    assert published.status_code == 200, published.text
    view = published.json()
    assert view["published"] is True and view["publish_at"] is None  # at once: no clock written down
    # The replica's clock really is ahead: the date it records (shown, never a gate) is in our future.
    went_out = datetime.fromisoformat(view["published_since"])
    assert (went_out - datetime.now(UTC)).total_seconds() > SKEW_S - 30, view
    published_at = datetime.now(UTC)
    wait_for(lambda: in_public_feed(s, asset_id), timeout=SKEW_S / 2, what="the asset in the public feed")
    assert (datetime.now(UTC) - published_at).total_seconds() < SKEW_S / 2
