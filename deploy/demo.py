"""Demo set: generated photos and short clips with Vietnamese captions, loaded
through the ingest HTTP API exactly as a broadcaster's upload would be."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw, ImageFont

from deploy.sample_media import pattern_clip
from shared.settings import Settings

DEMO_DATA = Path(__file__).with_name("demo_data.json")
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


def demo_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(DEMO_DATA.read_text("utf-8"))["items"]
    return items


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default()


def make_photo(path: Path, title: str, seed: int) -> None:
    """A 1280×720 JPEG: a coloured backdrop with the title, like a banner photo."""
    img = Image.new("RGB", (1280, 720), (120 + seed * 13 % 100, 20 + seed * 7 % 60, 30))
    draw = ImageDraw.Draw(img)
    draw.rectangle((60, 240, 1220, 480), fill=(180, 20, 30), outline=(250, 220, 90), width=6)
    font = _font(44)
    words, lines, line = title.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > 1100 and line:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    for i, text in enumerate(lines[:3]):
        draw.text((640, 300 + i * 56), text, font=font, fill=(255, 235, 120), anchor="mm")
    img.save(path, "JPEG", quality=88)


def make_clip(path: Path, seed: int, seconds: float = 3.0) -> None:
    """A short H.264/AAC clip from ffmpeg's test sources (distinct per seed)."""
    pattern_clip(
        path,
        seconds=seconds,
        size="640x360",
        tone_hz=300 + seed * 40,
        preset="veryfast",
        video_filter=f"hue=h={seed * 30}",
        extra=("-movflags", "+faststart"),
        timeout_s=120,
    )


# The demo broadcaster account the accounts service creates on loopback.
DEMO_UPLOADER = ("phong-vien", "demo-phong-vien")


def sign_in(settings: Settings, account: tuple[str, str]) -> str:
    """An access token for a demo account, through the accounts service's password flow."""
    username, password = account
    response = httpx.post(
        f"{settings.accounts_url}/v1/auth/token", data={"username": username, "password": password}, timeout=30
    )
    if response.status_code != 200:
        raise SystemExit(
            f"Không đăng nhập được tài khoản mẫu {username} / cannot sign in as the demo account {username}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return str(response.json()["access_token"])


def load_demo(settings: Settings, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """Upload every demo item; safe to run twice (re-uploads return the same asset)."""
    headers = {"Authorization": f"Bearer {sign_in(settings, DEMO_UPLOADER)}"}
    results = []
    with tempfile.TemporaryDirectory(prefix="mam-demo-") as tmp, httpx.Client(timeout=120) as client:
        for seed, item in enumerate(demo_items()):
            media = Path(tmp) / f"demo-{seed}.{'mp4' if item['kind'] == 'video' else 'jpg'}"
            if item["kind"] == "video":
                make_clip(media, seed)
            else:
                make_photo(media, item["title"], seed)
            form = {k: item[k] for k in ("title", "caption", "activity_type", "recorded_at", "source_org")}
            with media.open("rb") as handle:
                response = client.post(
                    f"{settings.ingest_url}/v1/assets", headers=headers, data=form, files={"file": (media.name, handle)}
                )
            response.raise_for_status()
            body = response.json()
            results.append(body)
            state = "đã có / existed" if body.get("duplicate") else "mới / new"
            print(f"  · {body['asset_id']}  {item['kind']:<5} {state:<15} {item['title']}", flush=True)
    # Wait until the projector has indexed the demo set, so the printed search URL works.
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            found = client.get(f"{settings.search_url}/v1/search", headers=headers, params={"size": 1}).json()
            if found.get("total", 0) >= len(results):
                break
            time.sleep(0.3)
    print(f"Đã nạp {len(results)} tư liệu mẫu / loaded {len(results)} demo assets", flush=True)
    return results
