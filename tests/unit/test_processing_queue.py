"""The processing queue without servers: the retry decision, how the index document follows
an asset through transcoding and tagging, the queue's query and rows, the rebuild lease."""

from __future__ import annotations

import time
from typing import Any

from services.catalogue.decide import decide_processing_retry
from services.search.documents import apply_event
from services.search.processing import STATE_CLAUSES, queue_body, queue_item
from services.search.rebuild_lease import is_stale, shown
from shared.auth import Principal, Role
from shared.events.envelope import EventEnvelope, new_event
from shared.events.media import (
    AssetProcessingFailedV1,
    AssetProcessingRetryRequestedV1,
    AssetRenditionsReadyV1,
    ProcessingStage,
)
from shared.events.models import EventPayload
from shared.events.tagging import AssetRetagRequestedV1, AssetTaggedV1, AssetTaggingFailedV1
from shared.ports import StoredEvent
from tests.conftest import refusal
from tests.search_corpus import ingested

ASSET = "a" + "5" * 32
ARCHIVIST = Principal(subject="u-luu-tru", name="Lưu trữ viên", role=Role.LUU_TRU)


def event(payload: EventPayload) -> EventEnvelope:
    return new_event(payload, aggregate_id=ASSET, actor="test")


def failed(code: str = "unreadable", retryable: bool = False) -> AssetProcessingFailedV1:
    return AssetProcessingFailedV1(
        stage=ProcessingStage.PROBE,
        code=code,
        reason="Không đọc được tệp video.",
        reason_en="The video cannot be read.",
        retryable=retryable,
        attempts=1,
    )


def history(*events: EventEnvelope) -> list[StoredEvent]:
    return [StoredEvent(n, f"mam.asset.{ASSET}.{e.type.split('.')[1]}", e) for n, e in enumerate(events, 1)]


READY = AssetRenditionsReadyV1(profile="v1", renditions=(), elapsed_s=1.0)
RETRY = AssetProcessingRetryRequestedV1(failure_code="unreadable")


# --- the retry decision ------------------------------------------------------------------------------


def test_a_failed_transcode_may_be_retried_and_the_request_names_the_failure_it_retries() -> None:
    [request] = decide_processing_retry(history(ingested(ASSET, "Kỳ họp"), event(failed("timeout"))), ASSET, "lần 2")
    assert isinstance(request, AssetProcessingRetryRequestedV1)
    assert request.failure_code == "timeout" and request.note == "lần 2"


def test_a_retry_of_an_asset_still_waiting_for_the_transcoder_is_refused_as_a_conflict() -> None:
    refused = refusal(lambda: decide_processing_retry(history(ingested(ASSET, "Kỳ họp")), ASSET, ""))
    assert refused.status == 409 and refused.code == "processing_in_progress"


def test_a_second_retry_before_the_first_has_an_outcome_is_refused() -> None:
    steps = history(ingested(ASSET, "Kỳ họp"), event(failed()), event(RETRY))
    refused = refusal(lambda: decide_processing_retry(steps, ASSET, ""))
    assert refused.status == 409 and refused.code == "processing_in_progress"


def test_a_retry_of_a_processed_asset_is_refused_even_after_an_earlier_failure() -> None:
    steps = history(ingested(ASSET, "Kỳ họp"), event(failed()), event(RETRY), event(READY))
    refused = refusal(lambda: decide_processing_retry(steps, ASSET, ""))
    assert refused.status == 409 and refused.code == "processing_not_failed"


def test_a_retry_that_failed_again_may_be_retried_again() -> None:
    steps = history(ingested(ASSET, "Kỳ họp"), event(failed()), event(RETRY), event(failed("again")))
    [request] = decide_processing_retry(steps, ASSET, "")
    assert isinstance(request, AssetProcessingRetryRequestedV1) and request.failure_code == "again"


def test_a_retry_of_an_asset_that_does_not_exist_is_refused_as_not_found() -> None:
    refused = refusal(lambda: decide_processing_retry([], ASSET, ""))
    assert refused.status == 404 and refused.code == "asset_not_found"


# --- the document follows the pipeline ----------------------------------------------------------------


def fold(*events: EventEnvelope) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for e in events:
        doc = apply_event(doc, e)
    return doc


def test_a_new_upload_waits_for_both_the_transcoder_and_the_tagger() -> None:
    doc = fold(ingested(ASSET, "Kỳ họp"))
    assert doc["processing_status"] == "pending" and doc["tagging_status"] == "pending"
    assert doc["pipeline_changed_at"]


def test_a_retry_puts_a_failed_asset_back_in_the_queue_and_counts_the_retry() -> None:
    doc = fold(ingested(ASSET, "Kỳ họp"), event(failed()))
    assert doc["processing_status"] == "failed" and doc["processing_error"]["reason"] == "Không đọc được tệp video."
    doc = fold(ingested(ASSET, "Kỳ họp"), event(failed()), event(RETRY))
    assert doc["processing_status"] == "pending" and doc["processing_error"] is None
    assert doc["processing_retries"] == 1
    doc = apply_event(doc, event(READY))
    assert doc["processing_status"] == "ready" and doc["processing_retries"] == 1


def test_tagging_is_pending_until_tagged_failed_with_its_reason_and_pending_again_on_a_retag() -> None:
    tagging_failed = AssetTaggingFailedV1(
        code="ocr", message="Không đọc được chữ.", message_en="OCR failed.", attempts=3
    )
    doc = fold(ingested(ASSET, "Kỳ họp"), event(tagging_failed))
    assert doc["tagging_status"] == "failed" and doc["tagging_error_en"] == "OCR failed."
    doc = apply_event(doc, event(AssetRetagRequestedV1(reason="thử lại")))
    assert doc["tagging_status"] == "pending"
    doc = apply_event(
        doc,
        event(
            AssetTaggedV1(
                activity_type="ky-hop",
                activity_type_source="uploader",
                proposed_activity_type="ky-hop",
                confidence=0.9,
                vocabulary_version="v1",
            )
        ),
    )
    assert doc["tagging_status"] == "tagged" and doc["tagging_error"] is None


# --- the queue's query and rows ------------------------------------------------------------------------


def test_the_queue_query_shows_one_state_newest_first_and_counts_every_state() -> None:
    body = queue_body(ARCHIVIST, "failed", ["video"], 50, 25)
    assert body["query"]["bool"]["filter"][-1] == STATE_CLAUSES["failed"]
    assert {"terms": {"kind": ["video"]}} in body["query"]["bool"]["filter"]
    assert (
        next(iter(body["sort"][0])) == "pipeline_changed_at"
        and body["sort"][0]["pipeline_changed_at"]["order"] == "desc"
    )
    assert body["from"] == 50 and body["size"] == 25
    assert set(body["aggs"]["counts"]["aggs"]["states"]["filters"]["filters"]) == set(STATE_CLAUSES)


def test_a_queue_row_says_why_each_stage_failed_in_vietnamese_and_english_and_what_can_be_retried() -> None:
    tagging_failed = AssetTaggingFailedV1(
        code="ocr", message="Không đọc được chữ.", message_en="OCR failed.", attempts=3
    )
    row = queue_item(fold(ingested(ASSET, "Kỳ họp"), event(failed()), event(tagging_failed)))
    assert row["transcoding"] == {
        "status": "failed",
        "retries": 0,
        "error": {
            "stage": "probe",
            "code": "unreadable",
            "reason": "Không đọc được tệp video.",
            "reason_en": "The video cannot be read.",
            "retryable": False,
        },
        "retryable": True,
    }
    assert row["tagging"]["error"] == {"code": "ocr", "reason": "Không đọc được chữ.", "reason_en": "OCR failed."}
    assert row["tagging"]["retryable"] is True


# --- the rebuild lease -------------------------------------------------------------------------------


def test_a_running_rebuild_whose_heartbeat_stopped_is_shown_as_interrupted() -> None:
    fresh = {"state": "running", "heartbeat": time.time()}
    old = {"state": "running", "heartbeat": time.time() - 120}
    assert not is_stale(fresh, time.time()) and is_stale(old, time.time())
    assert shown(old)["state"] == "interrupted" and "heartbeat" not in shown(old)
    assert shown(None) == {"state": "never"}
    assert not is_stale({"state": "done", "heartbeat": 0}, time.time())
