from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from shared.events import models as event_models
from shared.events.envelope import EventEnvelope, new_event
from shared.events.models import (
    AssetIngestedV1,
    EventPayload,
    UnknownEventType,
    decode_payload,
    register_payload,
    register_upcaster,
)


def ingested(**overrides: Any) -> AssetIngestedV1:
    fields: dict[str, Any] = dict(
        sha256="ab" * 32,
        size_bytes=1234,
        kind="photo",
        media_format="JPEG",
        mime_type="image/jpeg",
        bucket="mam-originals",
        object_key="sha256/ab/ab/" + "ab" * 32,
        title="Kỳ họp thứ 7 HĐND tỉnh",
        activity_type="ky-hop",
    )
    fields.update(overrides)
    return AssetIngestedV1(**fields)


def test_envelope_round_trips_through_bytes_unchanged() -> None:
    event = new_event(ingested(), aggregate_id="a" + "1" * 32, actor="phong-vien")
    again = EventEnvelope.from_bytes(event.to_bytes())
    assert again == event
    assert again.typed_payload() == ingested()


def test_envelope_carries_every_field_the_design_requires() -> None:
    event = new_event(ingested(), aggregate_id="a1", actor="phong-vien")
    assert set(EventEnvelope.model_fields) == {
        "event_id",
        "type",
        "schema_version",
        "aggregate_id",
        "occurred_at",
        "actor",
        "correlation_id",
        "causation_id",
        "payload",
    }
    assert event.type == "asset.ingested" and event.schema_version == 1
    assert event.occurred_at.tzinfo is not None and event.occurred_at.utcoffset() == timedelta(0)
    assert event.correlation_id == event.event_id and event.causation_id is None
    assert event.subject == "mam.asset.a1.ingested"


def test_caused_events_inherit_correlation_and_name_their_cause() -> None:
    cause = new_event(ingested(), aggregate_id="a1", actor="phong-vien")
    effect = new_event(ingested(), aggregate_id="a1", actor="transcoder", causation=cause)
    assert effect.correlation_id == cause.correlation_id
    assert effect.causation_id == cause.event_id
    assert effect.event_id != cause.event_id


def test_envelopes_and_payloads_are_frozen() -> None:
    event = new_event(ingested(), aggregate_id="a1", actor="x")
    with pytest.raises(ValidationError):
        event.actor = "someone else"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ingested().title = "changed"  # type: ignore[misc]


def test_envelope_rejects_naive_timestamps_and_converts_to_utc() -> None:
    event = new_event(ingested(), aggregate_id="a1", actor="x")
    data = event.model_dump()
    with pytest.raises(ValidationError):
        EventEnvelope(**{**data, "occurred_at": datetime(2024, 1, 1, 8, 0)})
    plus7 = EventEnvelope(**{**data, "occurred_at": datetime(2024, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=7)))})
    assert plus7.occurred_at == datetime(2024, 1, 1, 1, 0, tzinfo=UTC)


def test_payload_rejects_unknown_activity_codes_and_stores_nfc_text() -> None:
    with pytest.raises(ValidationError, match="unknown activity type"):
        ingested(activity_type="hop-hanh")
    decomposed_title = "Ky\u0300 ho\u0323p"  # "Kỳ họp" typed with combining marks
    assert ingested(title=decomposed_title).title == "Kỳ họp"


class _RenamedV1(EventPayload):
    EVENT_TYPE: ClassVar[str] = "asset.test_renamed"
    SCHEMA_VERSION: ClassVar[int] = 1
    name: str


class _RenamedV2(EventPayload):
    EVENT_TYPE: ClassVar[str] = "asset.test_renamed"
    SCHEMA_VERSION: ClassVar[int] = 2
    title: str
    language: str


def test_old_payload_versions_are_upcast_on_read_not_rewritten(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registered for this test only: the event catalogue's tests check every registered type.
    for registry in ("_PAYLOADS", "_LATEST", "_UPCASTERS"):
        monkeypatch.setattr(event_models, registry, dict(getattr(event_models, registry)))
    register_payload(_RenamedV1)
    register_payload(_RenamedV2)
    register_upcaster("asset.test_renamed", 1, lambda d: {"title": d["name"], "language": "vi"})
    stored = {"name": "Tiếp công dân"}
    decoded = decode_payload("asset.test_renamed", 1, stored)
    assert decoded == _RenamedV2(title="Tiếp công dân", language="vi")
    assert stored == {"name": "Tiếp công dân"}  # the stored form is untouched


def test_unknown_event_types_raise_a_clear_error() -> None:
    with pytest.raises(UnknownEventType):
        decode_payload("asset.never_heard_of", 1, {})


def test_a_payload_is_validated_once_per_envelope_and_afresh_for_a_copy_with_another_payload_or_type() -> None:
    event = new_event(ingested(), aggregate_id="a1", actor="phong-vien")
    typed = event.typed_payload()
    assert event.typed_payload() is typed  # kept
    assert event == EventEnvelope.from_bytes(event.to_bytes())  # what is kept is not a field
    assert "_typed_payload" not in event.model_dump() and "_typed_payload" not in event.model_dump_json()
    retitled = event.model_copy(update={"payload": {**event.payload, "title": "Phiên chất vấn"}})
    assert retitled.typed_payload().title == "Phiên chất vấn"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):  # the same payload read as another type is validated as that type
        event.model_copy(update={"type": "asset.processing_failed"}).typed_payload()
