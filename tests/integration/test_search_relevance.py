"""Relevance in Vietnamese, against the real Elasticsearch, with the query the API sends."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from services.search.documents import apply_event
from services.search.index import AssetIndex
from services.search.projector import AssetProjector, Delivered
from services.search.query import Filters, SearchParams, build_search_body
from services.search.results import shape_hit
from shared.text import fold
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration
WHEN = datetime(2023, 4, 21, 2, tzinfo=UTC)

CORPUS = {
    "kyhop7": (
        "Kỳ họp thứ Bảy HĐND tỉnh khóa XI",
        "Đồng chí Trần Minh Lực, Phó Chủ tịch HĐND tỉnh phát biểu bế mạc kỳ họp.",
        "ky-hop",
    ),
    "txct": (
        "Tiếp xúc cử tri tại xã Phước Dinh",
        "Cử tri phản ánh về xử lý đơn thư khiếu nại, tố cáo của công dân.",
        "tiep-xuc-cu-tri",
    ),
    "cutri_folded": ("Đo đạc cự trị tại công trình thủy lợi", "Khảo sát hiện trường.", "khac"),
    "gscd": (
        "Giám sát chuyên đề về xây dựng nông thôn mới",
        "Đoàn giám sát làm việc với huyện Ninh Hải.",
        "giam-sat-chuyen-de",
    ),
    "scattered": (
        "Đề án chuyên môn của ngành y tế",
        "Ban Văn hóa - Xã hội giám sát việc triển khai đề án.",
        "giam-sat-chuyen-de",
    ),
    "ngoc": (
        "Hội nghị giao ban trực tuyến quý III",
        "Đồng chí Nguyễn Thị Bích Ngọc, Chủ tịch HĐND thành phố chủ trì hội nghị.",
        "khac",
    ),
    "hoagiai": ("Hòa giải ở cơ sở: tiếp công dân định kỳ", "Thường trực HĐND tiếp công dân.", "tiep-xuc-cu-tri"),
    "banner": ("Ảnh toàn cảnh hội trường", "", "ky-hop"),
}
OCR = {"banner": "KỲ HỌP THỨ TÁM HỘI ĐỒNG NHÂN DÂN TỈNH KHÓA XI NHIỆM KỲ 2021 - 2026"}


@pytest.fixture(scope="module")
async def index(es: AsyncElasticsearch, unique: str) -> AsyncIterator[AssetIndex]:
    idx = AssetIndex(es, f"mamtest-rel-{unique}")
    await idx.ensure()
    events = [
        Delivered(ingested(f"{unique}{key}", t, c, activity_type=code, recorded_at=WHEN, kind="photo"), i + 1)
        for i, (key, (t, c, code)) in enumerate(CORPUS.items())
    ]
    outcome = await AssetProjector(idx, None).apply_batch(events)
    assert len(outcome.done) == len(events)
    # On-screen text arrives with the tagger's event; its fields are written as that fold would.
    for key, text in OCR.items():
        doc: dict[str, Any] = {}
        doc = apply_event(doc, next(d.event for d in events if d.event.aggregate_id == f"{unique}{key}"))
        doc.update(ocr_text=text, ocr_text_folded=fold(text), event_sequences=[1])
        assert (await idx.bulk_put([(f"{unique}{key}", doc, 100)]))[0].ok
    await idx.refresh()
    yield idx
    await idx.delete_indices(await idx.all_indices())


@pytest.fixture(scope="module")
def unique() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


async def ranked(index: AssetIndex, q: str, unique: str, **filters: Any) -> list[str]:
    body = build_search_body(SearchParams(q=q, filters=Filters(**filters), size=20), visible=None)
    result = await index.search(body)
    return [h["_id"].removeprefix(unique) for h in result["hits"]["hits"]]


async def test_words_typed_without_diacritics_find_vietnamese_text(index: AssetIndex, unique: str) -> None:
    assert (await ranked(index, "tiep xuc cu tri", unique))[0] == "txct"
    assert "kyhop7" in await ranked(index, "ky hop thu bay", unique)


async def test_exact_diacritics_rank_above_words_that_only_fold_the_same(index: AssetIndex, unique: str) -> None:
    found = await ranked(index, "cử tri", unique)
    assert found.index("txct") < found.index("cutri_folded")
    found = await ranked(index, "cự trị", unique)
    assert found[0] == "cutri_folded"


async def test_decomposed_unicode_input_finds_and_ranks_like_composed(index: AssetIndex, unique: str) -> None:
    composed = "Tiếp xúc cử tri"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert await ranked(index, decomposed, unique) == await ranked(index, composed, unique)


async def test_a_phrase_ranks_above_the_same_syllables_scattered(index: AssetIndex, unique: str) -> None:
    found = await ranked(index, "giám sát chuyên đề", unique)
    assert found[0] == "gscd" and "scattered" in found


async def test_a_name_spelled_with_a_different_tone_mark_is_still_found(index: AssetIndex, unique: str) -> None:
    # "Nguyển" (hook above) instead of "Nguyễn" (tilde), "Ngoc" without its mark.
    assert (await ranked(index, "Nguyển Thị Bích Ngoc", unique))[0] == "ngoc"
    # Old-style tone placement "hoà" vs the stored "Hòa": different NFC, same word.
    assert (await ranked(index, "hoà giải", unique))[0] == "hoagiai"


async def test_words_read_on_screen_by_ocr_are_found(index: AssetIndex, unique: str) -> None:
    assert (await ranked(index, "ky hop thu tam", unique))[0] == "banner"


async def test_highlights_come_back_in_the_original_vietnamese(index: AssetIndex, unique: str) -> None:
    body = build_search_body(SearchParams(q="xu ly don thu", size=1), visible=None)
    hit = shape_hit((await index.search(body))["hits"]["hits"][0])
    assert "<em>xử</em>" in hit["highlight"]["caption"] or "<em>xử lý" in hit["highlight"]["caption"]
    assert "đơn thư</em>" in hit["highlight"]["caption"]


async def test_filters_narrow_relevance_results(index: AssetIndex, unique: str) -> None:
    assert await ranked(index, "hội nghị", unique, activity_type=("khac",)) == ["ngoc"]
    assert await ranked(index, "hội nghị", unique, activity_type=("ky-hop",)) == []
