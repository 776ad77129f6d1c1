"""How long a failing finalisation of a resumable upload is retried: attempts or age, whichever first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.ingest.domain import UploadMetadata
from services.ingest.uploads import UploadRecord, finalise_gave_up, finalise_should_give_up

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def record(failures: int, first_failure_ago_s: float | None) -> UploadRecord:
    first = None if first_failure_ago_s is None else NOW - timedelta(seconds=first_failure_ago_s)
    return UploadRecord(
        id="0" * 32,
        owner="phong-vien",
        length=10,
        meta=UploadMetadata(title="Tiếp xúc cử tri", activity_type="tiep-xuc-cu-tri"),
        s3_key="uploads/" + "0" * 32,
        s3_upload_id="x",
        state="verifying",
        finalise_failures=failures,
        first_finalise_failure_at=first,
        created_at=NOW,
        updated_at=NOW,
        expires_at=NOW,
    )


def test_a_failing_finalisation_is_retried_until_its_attempts_run_out() -> None:
    assert not finalise_should_give_up(record(2, 10), NOW, max_attempts=3, max_age_s=3600)
    assert finalise_should_give_up(record(3, 10), NOW, max_attempts=3, max_age_s=3600)


def test_a_failing_finalisation_is_given_up_once_its_first_failure_is_older_than_the_age_limit() -> None:
    assert not finalise_should_give_up(record(1, 3599), NOW, max_attempts=10, max_age_s=3600)
    assert finalise_should_give_up(record(1, 3600), NOW, max_attempts=10, max_age_s=3600)
    assert not finalise_should_give_up(record(1, None), NOW, max_attempts=10, max_age_s=3600)


def test_the_reason_a_broadcaster_reads_is_vietnamese_first_and_english_second() -> None:
    problem = finalise_gave_up(3, "kho lưu trữ đã đầy", "object storage is full")
    assert problem.code == "finalise_failed"
    assert "3 lần thử" in problem.message_vi and "kho lưu trữ đã đầy" in problem.message_vi
    assert "3 attempts" in problem.message_en and "object storage is full" in problem.message_en
