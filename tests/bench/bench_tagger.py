"""Tagger cost: tagging throughput through the real event store (caption-only
assets, so OCR does not dominate) against the bare classifier, and OCR seconds
per keyframe (our preprocessing + Tesseract) against bare Tesseract."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from deploy.local import installers
from deploy.local.stack import LocalStack
from services.tagger.ocr import OcrSettings, ocr_image
from services.tagger.worker import Tagger
from shared.events import AssetIngestedV1
from shared.events.envelope import new_event
from shared.eventstore import EventStore
from shared.objectstore import ObjectStore
from shared.vocabulary import classify

N_ASSETS = 200
N_FRAMES = 5
CAPTIONS = [
    "Đồng chí Đặng Thanh Sơn, Phó Chủ tịch Thường trực HĐND tỉnh phát biểu tại Kỳ họp thứ 7",
    "Tổ đại biểu HĐND tỉnh tiếp xúc cử tri trước kỳ họp tại xã Phước Hậu",
    "Đoàn giám sát chuyên đề của Ban Văn hóa - Xã hội làm việc với UBND huyện",
    "Chương trình Diễn đàn tiếng nói cử tri trên sóng Đài Phát thanh và Truyền hình tỉnh",
]


def _asset(i: int, tag: str) -> AssetIngestedV1:
    return AssetIngestedV1(
        sha256=f"{i:064x}",
        size_bytes=1000,
        kind="audio",
        media_format="mp3",
        mime_type="audio/mpeg",
        bucket="b",
        object_key=f"bench-{tag}-{i}",
        title=f"Ghi âm {i}",
        caption=CAPTIONS[i % len(CAPTIONS)],
        activity_type="khac",
    )


async def _tagging_rate(stack: LocalStack) -> float:
    s = stack.settings
    store = await EventStore.connect(s.resolved_nats_url, s.event_stream)
    objects = ObjectStore(s.resolved_s3_endpoint, s.s3_access_key, s.s3_secret_key.get_secret_value())
    tagger = Tagger(store, objects, OcrSettings())
    await tagger.refresh(force=True)
    tag = str(int(time.time()))
    causes = []
    for i in range(N_ASSETS):
        event = new_event(_asset(i, tag), aggregate_id=f"bench{tag}x{i}", actor="bench")
        await store.append(event)
        causes.append(event)

    async def beat() -> None:
        return None

    try:
        began = time.perf_counter()
        for event in causes:
            await tagger.handle(event, 1, beat)
        return N_ASSETS / (time.perf_counter() - began)
    finally:
        await store.close()


def _classifier_rate() -> float:
    began = time.perf_counter()
    for i in range(N_ASSETS):
        classify(f"Ghi âm {i}\n{CAPTIONS[i % len(CAPTIONS)]}")
    return N_ASSETS / (time.perf_counter() - began)


def _keyframe(path: Path) -> None:
    img = Image.new("RGB", (1280, 720), (150, 20, 25))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 46)
    draw.text((60, 300), "KỲ HỌP THỨ BẢY HĐND TỈNH KHÓA XI", font=font, fill=(255, 225, 0))
    img.save(path)


def _ocr_costs() -> tuple[float, float]:
    installers.tesseract_vietnamese()
    with tempfile.TemporaryDirectory() as tmp:
        frame = Path(tmp) / "kf.png"
        _keyframe(frame)
        began = time.perf_counter()
        for _ in range(N_FRAMES):
            ocr_image(frame, OcrSettings())
        ours = (time.perf_counter() - began) / N_FRAMES
        began = time.perf_counter()
        for _ in range(N_FRAMES):
            subprocess.run(["tesseract", str(frame), "stdout", "-l", "vie"], capture_output=True, check=True)
        bare = (time.perf_counter() - began) / N_FRAMES
    return ours, bare


def run(stack: LocalStack) -> list[dict[str, Any]]:
    ours_rate = asyncio.run(_tagging_rate(stack))
    bare_rate = _classifier_rate()
    ocr_ours, ocr_bare = _ocr_costs()
    return [
        {
            "name": "tagger_caption_only_assets_through_event_store_vs_bare_classifier",
            "ours": ours_rate,
            "baseline": bare_rate,
            "ratio": ours_rate / bare_rate,
            "unit": "assets/s",
        },
        {
            "name": "tagger_ocr_per_keyframe_1280x720_vs_bare_tesseract",
            "ours": ocr_ours,
            "baseline": ocr_bare,
            "ratio": ocr_ours / ocr_bare,
            "unit": "s/keyframe",
        },
    ]
