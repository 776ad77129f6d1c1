"""The transcoder against the real stack: upload through ingest, wait for the
worker's events, then check every rendition with ffprobe and Pillow."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch
from PIL import Image, ImageStat

from services.search.documents import ASSET_MAPPINGS, apply_event
from shared.events.media import AssetProbedV1, AssetRenditionsReadyV1
from shared.eventstore import EventStore, StoredEvent
from shared.settings import Settings
from tests.conftest import AUTH, async_wait_for, object_store_for
from tests.transcoder_media import ffprobe, make_clip, make_photo, make_portrait_clip, make_wav

pytestmark = pytest.mark.integration
FINAL = {"asset.renditions_ready", "asset.processing_failed"}


def upload(http: httpx.Client, settings: Settings, name: str, data: bytes, mime: str, **form: str) -> httpx.Response:
    fields = {"title": "Kỳ họp thứ 7 HĐND tỉnh", "activity_type": "ky-hop", **form}
    return http.post(f"{settings.ingest_url}/v1/assets", headers=AUTH, files={"file": (name, data, mime)}, data=fields)


async def wait_final(events: EventStore, asset_id: str, within: float = 120.0) -> list[StoredEvent]:
    """The asset's history once the transcoder recorded an outcome."""

    async def done() -> list[StoredEvent] | None:
        history = await events.history("asset", asset_id)
        return history if any(e.envelope.type in FINAL for e in history) else None

    result: list[StoredEvent] = await async_wait_for(
        done, within, interval=0.5, what=f"transcoder outcome for {asset_id}"
    )
    return result


def payloads(history: list[StoredEvent], event_type: str) -> list[Any]:
    return [e.envelope.typed_payload() for e in history if e.envelope.type == event_type]


async def fetch(settings: Settings, key: str, target: Path) -> Path:
    store = object_store_for(settings, "minio")
    await store.download(settings.bucket_renditions, key, target)
    return target


def luma(path: Path) -> tuple[float, float]:
    with Image.open(path) as img:
        stat = ImageStat.Stat(img.convert("L"))
    return stat.mean[0], stat.stddev[0]


async def test_a_clip_gets_a_faststart_proxy_a_non_black_poster_and_a_storyboard(
    services: Settings, event_store: EventStore, http: httpx.Client, unique: str, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", unique)
    response = upload(http, services, "clip.mp4", clip.read_bytes(), "video/mp4")
    assert response.status_code == 201, response.text
    asset_id = response.json()["asset_id"]
    history = await wait_final(event_store, asset_id)

    [probed] = payloads(history, "asset.probed")
    assert isinstance(probed, AssetProbedV1)
    assert (probed.kind.value, probed.width, probed.height) == ("video", 320, 240)
    assert probed.video_codec == "h264" and probed.audio_codec == "aac" and probed.audio_channels == 1
    assert probed.frame_rate == pytest.approx(25.0)
    assert probed.duration_s == pytest.approx(3.0, abs=0.2)
    assert probed.recorded_at == datetime.fromisoformat("2024-05-01T02:30:00+00:00")

    [ready] = payloads(history, "asset.renditions_ready")
    assert isinstance(ready, AssetRenditionsReadyV1)
    by_name = {r.name.value: r for r in ready.renditions}
    assert set(by_name) == {"proxy", "poster", "storyboard", "storyboard_vtt"}
    assert all(r.key.startswith(f"{asset_id}/") for r in ready.renditions)

    proxy = await fetch(services, by_name["proxy"].key, tmp_path / "proxy.mp4")
    info = ffprobe(proxy)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (video["width"], video["height"]) == (320, 240)  # small sources are never upscaled
    assert audio["codec_name"] == "aac" and audio["channels"] == 2
    assert float(info["format"]["duration"]) == pytest.approx(3.0, abs=0.2)
    head = proxy.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat"), "faststart: the index must precede the media"

    poster = await fetch(services, by_name["poster"].key, tmp_path / "poster.jpg")
    mean, spread = luma(poster)
    assert mean > 24 and spread > 12, f"poster looks black or flat: mean {mean:.1f}, stddev {spread:.1f}"
    assert ready.poster_time_s is not None and ready.poster_time_s >= 1.0  # past the black lead-in

    sprite = await fetch(services, by_name["storyboard"].key, tmp_path / "storyboard.jpg")
    vtt = (await fetch(services, by_name["storyboard_vtt"].key, tmp_path / "sb.vtt")).read_text("utf-8")
    cues = [line for line in vtt.splitlines() if "#xywh=" in line]
    assert vtt.startswith("WEBVTT") and len(cues) == 3
    with Image.open(sprite) as img:
        tile_w = int(cues[0].split("#xywh=")[1].split(",")[2])
        assert img.width == tile_w * len(cues)


async def test_a_portrait_phone_clip_is_probed_and_rendered_upright(
    services: Settings, event_store: EventStore, http: httpx.Client, unique: str, tmp_path: Path
) -> None:
    clip = make_portrait_clip(tmp_path / "phone.mp4", unique)
    response = upload(http, services, "VID_20240501.mp4", clip.read_bytes(), "video/mp4")
    assert response.status_code == 201, response.text
    history = await wait_final(event_store, response.json()["asset_id"])
    [probed] = payloads(history, "asset.probed")
    assert probed.rotation in (90, 270)
    assert (probed.width, probed.height) == (240, 320)
    [ready] = payloads(history, "asset.renditions_ready")
    proxy_key = next(r.key for r in ready.renditions if r.name.value == "proxy")
    video = next(
        s
        for s in ffprobe(await fetch(services, proxy_key, tmp_path / "p.mp4"))["streams"]
        if s["codec_type"] == "video"
    )
    assert (video["width"], video["height"]) == (240, 320)
    assert not any("rotation" in side for side in video.get("side_data_list", []))  # rotation baked in


async def test_a_phone_photo_gets_upright_web_and_thumbnail_and_its_exif_facts(
    services: Settings,
    event_store: EventStore,
    http: httpx.Client,
    unique: str,
    tmp_path: Path,
    es: AsyncElasticsearch,
) -> None:
    response = upload(http, services, "IMG_0001.jpg", make_photo(unique), "image/jpeg")
    assert response.status_code == 201, response.text
    asset_id = response.json()["asset_id"]
    history = await wait_final(event_store, asset_id)
    [probed] = payloads(history, "asset.probed")
    assert (probed.kind.value, probed.width, probed.height, probed.rotation) == ("photo", 800, 1200, 90)
    assert probed.camera == "Canon EOS R6"
    assert probed.recorded_at is not None and probed.recorded_at.isoformat() == "2024-05-01T09:30:00+07:00"
    assert probed.gps is not None
    assert probed.gps.lat == pytest.approx(21.0285, abs=1e-3) and probed.gps.lon == pytest.approx(105.854, abs=1e-3)

    [ready] = payloads(history, "asset.renditions_ready")
    sizes = {}
    for r in ready.renditions:
        with Image.open(io.BytesIO((await fetch(services, r.key, tmp_path / r.name.value)).read_bytes())) as img:
            sizes[r.name.value] = img.size
            assert img.format == "JPEG" and not img.getexif().get(0x0112)
            if r.name.value == "web":
                # Orientation 6 turns the red top-left quadrant to the top right.
                assert img.getpixel((img.width - 20, 20))[0] > 180 and img.getpixel((20, 20))[0] < 100
    assert sizes == {"web": (800, 1200), "thumb": (267, 400)}

    # The index document folded from these events is accepted by the strict
    # asset mapping on the real Elasticsearch and carries facts and rendition keys.
    doc: dict[str, Any] = {}
    for stored in history:
        doc = apply_event(doc, stored.envelope)
    scratch = f"{services.es_index_prefix}-transcoder-{unique}"
    await es.indices.create(index=scratch, mappings=ASSET_MAPPINGS)
    try:
        await es.index(index=scratch, id=asset_id, document=doc, refresh="wait_for")
        found = await es.search(
            index=scratch,
            query={
                "bool": {
                    "filter": [
                        {"term": {"orientation": "portrait"}},
                        {"term": {"processing_status": "ready"}},
                        {"range": {"height": {"gte": 1000}}},
                    ]
                }
            },
        )
        assert [h["_id"] for h in found["hits"]["hits"]] == [asset_id]
    finally:
        await es.indices.delete(index=scratch)
    assert doc["camera"] == "Canon EOS R6" and doc["width"] == 800
    assert doc["renditions"]["thumb"]["key"] == f"{asset_id}/v1/thumb.jpg"
    # The search API hands out presigned URLs that really fetch the renditions.
    async with httpx.AsyncClient(timeout=30) as client:
        links = await client.get(f"{services.search_url}/v1/assets/{asset_id}/renditions", headers=AUTH)
        assert links.status_code == 200, links.text
        thumb = await client.get(links.json()["renditions"]["thumb"]["url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


async def test_a_stereo_radio_recording_gets_web_audio_and_a_waveform(
    services: Settings, event_store: EventStore, http: httpx.Client, unique: str, tmp_path: Path
) -> None:
    wav = make_wav(tmp_path / "radio.wav", unique)
    response = upload(http, services, "radio.wav", wav.read_bytes(), "audio/wav")
    assert response.status_code == 201, response.text
    history = await wait_final(event_store, response.json()["asset_id"])
    [probed] = payloads(history, "asset.probed")
    assert (probed.kind.value, probed.audio_channels, probed.audio_codec) == ("audio", 2, "pcm_s16le")
    [ready] = payloads(history, "asset.renditions_ready")
    by_name = {r.name.value: r for r in ready.renditions}
    assert set(by_name) == {"audio", "waveform"}
    info = ffprobe(await fetch(services, by_name["audio"].key, tmp_path / "a.m4a"))
    [stream] = info["streams"]
    assert (stream["codec_name"], stream["channels"]) == ("aac", 2)
    assert float(info["format"]["duration"]) == pytest.approx(3.0, abs=0.2)
    with Image.open(await fetch(services, by_name["waveform"].key, tmp_path / "w.png")) as img:
        assert img.size == (1200, 240)
        bbox = img.getbbox()
        assert bbox is not None and bbox[2] - bbox[0] > 1000  # drawn across the whole width
