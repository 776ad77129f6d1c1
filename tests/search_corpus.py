"""Generated asset events and a small Vietnamese corpus for the search tests and bench."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

from shared.events import AssetIngestedV1
from shared.events.envelope import EventEnvelope, new_event
from shared.taxonomy import activity_types

CODES = [a.code for a in activity_types()]


def ingested(
    asset_id: str,
    title: str,
    caption: str = "",
    *,
    activity_type: str = "khac",
    recorded_at: datetime | None = None,
    kind: str = "video",
    duration_s: float | None = 60.0,
    source_org: str = "",
    height: int | None = 720,
) -> EventEnvelope:
    """An ``asset.ingested`` event as ingest would append it."""
    sha = hashlib.sha256(asset_id.encode()).hexdigest()
    is_photo = kind == "photo"
    payload = AssetIngestedV1(
        sha256=sha,
        size_bytes=1000,
        kind=kind,
        media_format="JPEG" if is_photo else "mov,mp4,m4a,3gp,3g2,mj2",
        mime_type="image/jpeg" if is_photo else "video/mp4",
        bucket="mam-originals",
        object_key=f"sha256/{sha}",
        title=title,
        caption=caption,
        recorded_at=recorded_at,
        activity_type=activity_type,
        source_org=source_org,
        width=1280 if height else None,
        height=height,
        duration_s=None if is_photo else duration_s,
    )
    return new_event(payload, aggregate_id=asset_id, actor="phong-vien")


# Titles written from the seed documents' language (sessions, supervision, voter meetings …).
TITLE_PARTS = [
    ("Kỳ họp thứ {n} HĐND tỉnh khóa XI", "ky-hop"),
    ("Phiên chất vấn và trả lời chất vấn tại kỳ họp thứ {n}", "ky-hop"),
    ("Thẩm tra dự thảo nghị quyết về đầu tư công năm {y}", "nghi-quyet"),
    ("Giám sát việc giải quyết kiến nghị cử tri huyện {p}", "giam-sat-kien-nghi"),
    ("Đoàn giám sát chuyên đề về xây dựng nông thôn mới tại {p}", "giam-sat-chuyen-de"),
    ("Tiếp xúc cử tri trước kỳ họp tại xã {p}", "tiep-xuc-cu-tri"),
    ("Diễn đàn tiếng nói cử tri: {p} với vấn đề nước sạch", "dien-dan-cu-tri"),
    ("Thường trực HĐND tỉnh thăm, làm việc tại {p}", "tham-lam-viec"),
    ("Hội nghị giao ban Thường trực HĐND quý {n}", "khac"),
]
PLACES = ["Phước Dinh", "Bác Ái", "Ninh Hải", "Thuận Nam", "Ninh Sơn", "Tháp Chàm", "Cao Lãnh", "Sa Đéc"]
CAPTIONS = [
    "Đồng chí Trần Minh Lực, Phó Chủ tịch HĐND tỉnh phát biểu kết luận.",
    "Đại biểu HĐND tỉnh thảo luận tại tổ về tình hình kinh tế - xã hội.",
    "Cử tri phản ánh về xử lý đơn thư khiếu nại, tố cáo của công dân.",
    "Báo Ninh Thuận và Đài Phát thanh và Truyền hình tỉnh đưa tin.",
    "Lãnh đạo các Ban HĐND tỉnh cùng dự và điều hành hội nghị.",
]


def generated_events(n_assets: int, seed: int = 7, prefix: str = "g") -> list[EventEnvelope]:
    """``n_assets`` ingested events with varied types, dates (2016-2026), kinds and durations."""
    rng = random.Random(seed)
    base = datetime(2016, 7, 1, 2, tzinfo=UTC)
    out = []
    for i in range(n_assets):
        template, code = rng.choice(TITLE_PARTS)
        title = template.format(n=rng.randint(1, 12), y=rng.randint(2016, 2026), p=rng.choice(PLACES))
        when = base + timedelta(days=rng.randrange(3600), hours=rng.randrange(10))
        kind = rng.choice(["video", "video", "photo", "audio"])
        out.append(
            ingested(
                f"{prefix}{i:07d}",
                title,
                rng.choice(CAPTIONS),
                activity_type=code,
                recorded_at=when,
                kind=kind,
                duration_s=round(rng.uniform(5, 1800), 1),
                source_org=rng.choice(["Báo Ninh Thuận", "Đài PT-TH tỉnh", ""]),
            )
        )
    return out
