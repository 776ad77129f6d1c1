"""The tus protocol's rules for resumable uploads (services/ingest/uploads.py), without servers."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.body_quota import RESERVE_STEP, SpoolLedger
from services.ingest.domain import UploadMetadata
from services.ingest.uploads import (
    QuotaReservation,
    QuotaUsage,
    UploadRecord,
    check_tus_resumable,
    lapsed_reservations,
    metadata_of,
    parse_checksum,
    parse_metadata_header,
    parse_non_negative,
    status_view,
    upload_id_of_staging_key,
    with_reservation,
    with_reservation_within,
    without_reservations,
)
from shared.http import UserError

MIB = 1024 * 1024


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def refused(call: object) -> UserError:
    with pytest.raises(UserError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.message_vi and caught.value.message_en
    return caught.value


def record(owner: str, length: int, state: str = "receiving") -> UploadRecord:
    now = datetime.now(UTC)
    return UploadRecord(
        id="0" * 32,
        owner=owner,
        length=length,
        meta=UploadMetadata(title="Kỳ họp", activity_type="ky-hop"),
        s3_key="uploads/" + "0" * 32,
        s3_upload_id="x",
        state=state,  # type: ignore[arg-type]
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(hours=24),
    )


def test_upload_metadata_is_decoded_to_nfc_text_and_keys_that_are_not_ours_are_ignored() -> None:
    nfd = "Tiê\u0301p xu\u0301c cư\u0309 tri"  # decomposed, as macOS file names are
    windows_path = b64("C:\\clips\\a.mp4")
    header = f"title {b64(nfd)},activity_type {b64('tiep-xuc-cu-tri')},filename {windows_path},relativePath"
    fields = parse_metadata_header(header)
    assert "relativePath" not in fields
    meta, filename, _ = metadata_of(fields)
    assert meta.title == "Tiếp xúc cử tri" and meta.activity_type == "tiep-xuc-cu-tri"
    assert filename == "a.mp4"  # the client's folders are not ours to keep


def test_malformed_metadata_headers_are_refused_with_400() -> None:
    for header in ("title a b c", "title !!notbase64", f"title {b64('x')},title {b64('y')}", " "):
        assert refused(lambda h=header: parse_metadata_header(h)).status == 400


def test_a_bad_activity_code_in_the_metadata_is_refused_with_the_known_codes() -> None:
    error = refused(lambda: metadata_of({"title": "Họp", "activity_type": "hop-bao"}))
    assert error.status == 422 and error.code == "invalid_metadata" and "ky-hop" in error.message_vi


def test_lengths_offsets_and_the_protocol_version_are_checked() -> None:
    assert parse_non_negative("Upload-Length", "1048576") == 1048576
    for bad in (None, "-1", "1e9", "١٢", "9" * 30):
        assert refused(lambda b=bad: parse_non_negative("Upload-Length", b)).code == "invalid_upload_length"
    assert refused(lambda: check_tus_resumable("0.2.2")).status == 412
    check_tus_resumable("1.0.0")


def test_checksums_name_a_supported_algorithm_and_a_base64_digest() -> None:
    assert parse_checksum(None) is None
    assert parse_checksum("sha256 " + b64("abc")) == ("sha256", b"abc")
    assert parse_checksum("sha1 " + b64("abc")) == ("sha1", b"abc")
    assert refused(lambda: parse_checksum("md5 " + b64("abc"))).code == "checksum_algorithm_unsupported"
    assert refused(lambda: parse_checksum("sha256 ***")).code == "invalid_upload_checksum"


def test_a_reservation_fits_the_quota_or_is_refused_and_a_second_one_of_an_upload_replaces_the_first() -> None:
    now = datetime.now(UTC)
    usage = with_reservation(QuotaUsage(owner="a"), "u1", 10, quota=100, now=now)
    usage = with_reservation(usage, "u2", 90, quota=100, now=now)
    assert usage.in_flight == 100
    error = refused(lambda: with_reservation(usage, "u3", 1, quota=100, now=now))
    assert error.status == 413 and error.code == "quota_exceeded" and error.extra["in_flight_bytes"] == 100
    assert with_reservation(usage, "u1", 10, quota=100, now=now).in_flight == 100  # asked again: the same
    assert without_reservations(usage, ["u2", "nope"]).in_flight == 10


def test_a_body_of_unknown_length_reserves_ahead_of_what_arrived_within_what_the_quota_leaves() -> None:
    now = datetime.now(UTC)
    usage = with_reservation(QuotaUsage(owner="a"), "other", 60, quota=100, now=now)
    ahead = with_reservation_within(usage, "body", at_least=10, wanted=30, quota=100, now=now)
    assert ahead.uploads["body"].size == 30 and ahead.in_flight == 90
    short = with_reservation_within(ahead, "body", at_least=35, wanted=55, quota=100, now=now)
    assert short.uploads["body"].size == 40  # what the quota leaves, more than what arrived
    error = refused(lambda: with_reservation_within(short, "body", at_least=41, wanted=61, quota=100, now=now))
    assert error.status == 413 and error.code == "quota_exceeded" and error.extra["in_flight_bytes"] == 60
    renewed = with_reservation_within(short, "body", 40, 40, quota=100, now=now + timedelta(seconds=120))
    assert renewed.uploads["body"] == QuotaReservation(size=40, reserved_at=now + timedelta(seconds=120))


def test_a_reservation_lapses_once_its_upload_is_no_longer_receiving_or_was_never_made() -> None:
    now = datetime.now(UTC)
    usage = QuotaUsage(owner="a")
    for upload_id in ("receiving", "stored", "expired", "unmade_old", "unmade_new"):
        usage = with_reservation(usage, upload_id, 1, quota=100, now=now - timedelta(seconds=600))
    usage = with_reservation(usage, "unmade_new", 1, quota=100, now=now)
    expired = record("a", 1).model_copy(update={"expires_at": now - timedelta(seconds=1)})
    records = {"receiving": record("a", 1), "stored": record("a", 1, "stored"), "expired": expired}
    assert lapsed_reservations(usage, records, now, grace_s=300) == {"stored", "expired", "unmade_old"}


def test_the_status_view_has_the_fields_clients_poll() -> None:
    view = status_view(record("a", 10))
    assert {"id", "state", "offset", "length", "filename", "asset_id", "duplicate", "error", "expires_at"} <= set(view)
    assert view["state"] == "receiving" and view["error"] is None


def test_staging_keys_name_their_upload_and_nothing_else_is_taken_for_one() -> None:
    upload_id = "ab" * 16
    assert upload_id_of_staging_key(f"uploads/{upload_id}") == upload_id
    assert upload_id_of_staging_key(f"uploads/{upload_id}.tail") == upload_id
    assert upload_id_of_staging_key("uploads/other") is None
    assert upload_id_of_staging_key(f"sha256/{upload_id}") is None


def test_a_spooled_body_is_held_as_it_arrives_and_given_back_however_its_request_ends() -> None:
    ledger = SpoolLedger(quota=100 * MIB)
    with ledger.hold("pv") as declared:
        declared.declared(60 * MIB)
        with ledger.hold("pv") as chunked:
            chunked.cover(1)
            assert chunked.reserved == 1 + RESERVE_STEP and ledger.in_flight("pv") == 60 * MIB + chunked.reserved
            chunked.cover(30 * MIB)
            assert chunked.reserved == 40 * MIB  # what the quota leaves, more than what arrived
            with pytest.raises(UserError) as caught:
                chunked.cover(40 * MIB + 1)
            assert caught.value.code == "quota_exceeded" and caught.value.extra["in_flight_bytes"] == 60 * MIB
        assert ledger.in_flight("pv") == 60 * MIB and ledger.in_flight("bt") == 0  # per user
        with pytest.raises(UserError), ledger.hold("pv") as refused_one:
            refused_one.declared(41 * MIB)
    assert ledger.in_flight("pv") == 0 and ledger.usage == {}
