"""The asset index's ``_bulk`` answers, per document, and the line an operator reads when
Elasticsearch refused some of them (the cluster's fault suite refuses some for real)."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from elasticsearch import AsyncElasticsearch

from services.search.index import AssetIndex


class AnsweringBulk:
    """Stands in for the client's ``bulk``: answers each document with the next of ``items``."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    async def bulk(self, operations: list[bytes]) -> dict[str, Any]:
        return {"errors": True, "items": [{"index": item} for item in self.items[: len(operations) // 2]]}


NESTED = {
    "type": "document_parsing_exception",
    "reason": "[1:812] The number of nested documents has exceeded the allowed limit of [3].",
}


async def test_a_bulk_with_refused_documents_answers_each_and_says_how_many_were_written_beside_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    es = AnsweringBulk(
        [
            {"status": 201},
            {"status": 400, "error": NESTED},
            {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "newer"}},
            {"status": 200},
            {"status": 400, "error": NESTED},
        ]
    )
    index = AssetIndex(cast(AsyncElasticsearch, es), "mam")
    with caplog.at_level(logging.WARNING, logger="mam.search.index"):
        results = await index.bulk_put([(f"a{i}", {"title": "Kỳ họp"}, i + 1) for i in range(5)])
    assert [r.status for r in results] == [201, 400, 409, 200, 400]
    assert results[1].error_type == "document_parsing_exception" and "nested" in (results[1].reason or "")
    # The conflict is a race the projector settles: not counted as refused.
    assert caplog.messages == ["_bulk of 5 documents: 2 written, 2 refused (400 document_parsing_exception ×2)"]


async def test_a_bulk_written_whole_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    index = AssetIndex(cast(AsyncElasticsearch, AnsweringBulk([{"status": 201}, {"status": 200}])), "mam")
    with caplog.at_level(logging.WARNING, logger="mam.search.index"):
        results = await index.bulk_put([("a", {}, 1), ("b", {}, 2)])
    assert all(r.ok for r in results) and not caplog.messages
