"""Reading envelopes back from the stream (shared/events/envelope.py ``from_bytes``): what
``to_bytes`` wrote is built without validating it again, and anything else — an event
someone published on the subject by hand, another schema, a value of another type — is
validated in full, so both paths give the very same envelope or the very same refusal."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from shared.events.envelope import EventEnvelope, _as_written, new_event
from shared.events.tagging import AssetMetadataEditedV1
from tests.search_corpus import generated_events


def _written() -> list[EventEnvelope]:
    uploads = generated_events(20, prefix="r")
    edits = [
        new_event(
            AssetMetadataEditedV1(caption="Chú thích sửa"), aggregate_id=u.aggregate_id, actor="luu-tru", causation=u
        )
        for u in uploads[:5]
    ]
    return [*uploads, *edits]


def test_an_envelope_as_written_reads_back_equal_to_full_validation_without_it() -> None:
    for event in _written():
        data = event.to_bytes()
        fast = _as_written(data)
        assert fast is not None, "what to_bytes writes takes the fast path"
        full = EventEnvelope.model_validate_json(data)
        assert fast == full == event
        assert fast.model_fields_set == full.model_fields_set
        assert fast.occurred_at.tzinfo == full.occurred_at.tzinfo
        assert fast.to_bytes() == data
        assert fast.typed_payload() == full.typed_payload()


def _hand_made(**changes: Any) -> bytes:
    """An envelope as JSON with ``changes`` (a value of ``...`` drops the field)."""
    raw = orjson.loads(_written()[0].to_bytes())
    for name, value in changes.items():
        if value is ...:
            del raw[name]
        else:
            raw[name] = value
    return orjson.dumps(raw)


HOSTILE: dict[str, bytes] = {
    "extra field": _hand_made(extra="x"),
    "no causation": _hand_made(causation_id=...),
    "no payload": _hand_made(payload=...),
    "payload a list": _hand_made(payload=[1, 2]),
    "version a string": _hand_made(schema_version="1"),
    "version a float": _hand_made(schema_version=1.0),
    "version a bool": _hand_made(schema_version=True),
    "version zero": _hand_made(schema_version=0),
    "type with a newline": _hand_made(type="asset.ingested\n"),
    "type in capitals": _hand_made(type="Asset.Ingested"),
    "actor a number": _hand_made(actor=7),
    "causation a number": _hand_made(causation_id=7),
    "naive timestamp": _hand_made(occurred_at="2026-11-21T10:00:00"),
    "timestamp with an offset": _hand_made(occurred_at="2026-11-21T17:00:00+07:00"),
    "timestamp as a number": _hand_made(occurred_at=1_700_000_000),
    "31 February": _hand_made(occurred_at="2026-02-31T10:00:00Z"),
    "fields reordered": b'{"type":"asset.ingested",' + _hand_made()[1:].replace(b'"type":"asset.ingested",', b""),
    "not an object": b"[1, 2, 3]",
    "not json": b"\xff\xfe{",
    "lone surrogate": _hand_made().replace(b'"actor":"', b'"actor":"\\ud800'),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_anything_but_what_to_bytes_writes_is_validated_in_full(name: str) -> None:
    data = HOSTILE[name]
    assert _as_written(data) is None, f"{name}: must not take the fast path"
    try:
        expected: EventEnvelope | str = EventEnvelope.model_validate_json(data)
    except ValidationError as exc:
        expected = f"refused: {exc.error_count()}"
    try:
        got: EventEnvelope | str = EventEnvelope.from_bytes(data)
    except ValidationError as exc:
        got = f"refused: {exc.error_count()}"
    assert got == expected


def test_a_hand_made_envelope_full_validation_accepts_reads_back_normalised() -> None:
    """An offset timestamp is valid, but not what to_bytes writes: validation converts it to UTC."""
    event = EventEnvelope.from_bytes(HOSTILE["timestamp with an offset"])
    assert event.occurred_at.isoformat() == "2026-11-21T10:00:00+00:00"
    with pytest.raises(ValidationError):
        EventEnvelope.from_bytes(HOSTILE["naive timestamp"])
