"""Helpers of the reels tests: small sources uploaded through ingest, reels through the API."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.eventstore import EventStore
from shared.settings import Settings
from tests.conftest import AUTH, PRODUCER, async_wait_for
from tests.transcoder_media import make_clip, make_photo, make_wav

FINAL = {"asset.renditions_ready", "asset.processing_failed"}


def upload(http: httpx.Client, s: Settings, name: str, data: bytes, mime: str, title: str, **form: str) -> str:
    fields = {"title": title, "activity_type": "ky-hop", "recorded_at": "2023-07-11", **form}
    response = http.post(f"{s.ingest_url}/v1/assets", headers=AUTH, files={"file": (name, data, mime)}, data=fields)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["asset_id"])


async def wait_processed(events: EventStore, asset_id: str, within: float = 120.0) -> None:
    async def done() -> bool:
        return any(e.envelope.type in FINAL for e in await events.history("asset", asset_id))

    await async_wait_for(done, within, 0.5, f"the transcoder's outcome for {asset_id}")


async def sources(http: httpx.Client, s: Settings, events: EventStore, folder: Path, tag: str) -> dict[str, str]:
    """A 3 s 25 p clip, a photo and a 4 s sound, uploaded and processed: kind → asset id."""
    clip = make_clip(folder / "clip.mp4", tag, seconds=3.0, black_lead_s=0.5)
    wav = make_wav(folder / "tone.wav", tag, seconds=4.0)
    ids = {
        "video": upload(http, s, "clip.mp4", clip.read_bytes(), "video/mp4", f"Kỳ họp thứ Bảy {tag}"),
        "photo": upload(http, s, "anh.jpg", make_photo(tag, size=(640, 480)), "image/jpeg", f"Ảnh {tag}"),
        "audio": upload(http, s, "tone.wav", wav.read_bytes(), "audio/wav", f"Phát thanh {tag}"),
    }
    for asset_id in ids.values():
        await wait_processed(events, asset_id)
    return ids


def create_reel(
    http: httpx.Client, s: Settings, title: str, headers: dict[str, str] = PRODUCER, **extra: Any
) -> dict[str, Any]:
    response = http.post(f"{s.reels_url}/v1/reels", headers=headers, json={"title": title, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def put_items(
    http: httpx.Client,
    s: Settings,
    reel_id: str,
    items: list[dict[str, Any]],
    headers: dict[str, str] = PRODUCER,
    **extra: Any,
) -> httpx.Response:
    return http.put(f"{s.reels_url}/v1/reels/{reel_id}/items", headers=headers, json={"items": items, **extra})


def get_reel(http: httpx.Client, s: Settings, reel_id: str) -> dict[str, Any]:
    response = http.get(f"{s.reels_url}/v1/reels/{reel_id}", headers=PRODUCER)
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_bilingual(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = dict(response.json()["error"])
    assert error["message"] and error["message_en"] and error["message"] != error["message_en"]
    if code is not None:
        assert error["code"] == code, error
    return error


def request(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One blocking request (the tests' client is synchronous; the services answer meanwhile)."""
    return http.request(method, url, **kwargs)


@pytest.fixture(scope="session")
async def reel_sources(
    services: Settings, event_store: EventStore, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The sources every reels test cuts from, uploaded once per run: kind → asset id."""
    folder = tmp_path_factory.mktemp("reel-sources")
    with httpx.Client(timeout=60.0) as http:
        return await sources(http, services, event_store, folder, f"reels-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def assets(reel_sources: dict[str, str]) -> dict[str, str]:
    """The reels tests' name for :func:`reel_sources`."""
    return reel_sources


TITLE = "Tổng kết hoạt động HĐND tỉnh năm 2023"
