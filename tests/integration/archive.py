"""Helpers of the service tests: upload through ingest, read tags from the catalogue,
search; photos with text for OCR."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image, ImageDraw, ImageFont

from shared.settings import Settings
from tests.conftest import AUTH

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def banner_jpeg(lines: list[str], marker: str) -> bytes:
    img = Image.new("RGB", (1280, 720), (150, 20, 25))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 46)
    for i, line in enumerate(lines):
        draw.text((60, 220 + 80 * i), line, font=font, fill=(255, 225, 0))
    draw.text((10, 690), marker, font=ImageFont.truetype(FONT, 12), fill=(120, 10, 10))  # unique bytes
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def upload(http: httpx.Client, s: Settings, data: bytes, **fields: str) -> str:
    response = http.post(
        f"{s.ingest_url}/v1/assets", headers=AUTH, files={"file": ("anh.jpg", data, "image/jpeg")}, data=fields
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["asset_id"])


def tags(http: httpx.Client, s: Settings, asset_id: str) -> dict[str, Any]:
    response = http.get(f"{s.catalogue_url}/v1/assets/{asset_id}/tags", headers=AUTH)
    assert response.status_code == 200, response.text
    return dict(response.json())


def tagged_count(http: httpx.Client, s: Settings, asset_id: str) -> int:
    return sum(e["type"] == "asset.tagged" for e in tags(http, s, asset_id)["events"])


def search(http: httpx.Client, s: Settings, **params: Any) -> dict[str, Any]:
    response = http.get(f"{s.search_url}/v1/search", headers=AUTH, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())
