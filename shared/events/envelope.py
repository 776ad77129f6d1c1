"""The envelope around every domain event in the stream."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events.models import EventPayload, payload_type_for, upcast
from shared.fields import STORED
from shared.ids import uuid7
from shared.subjects import event_subject

# Where an envelope keeps its validated payload (see EventEnvelope.typed_payload).
_TYPED_PAYLOAD = "_typed_payload"
# What ``type`` must match (the field's pattern; fullmatch: no trailing newline, as pydantic's regex).
_EVENT_TYPE = r"[a-z]+\.[a-z_]+"


class EventEnvelope(BaseModel):
    """A past-tense fact, as appended to the event store.

    ``payload`` is kept as a plain dict on the wire; ``typed_payload`` upcasts
    older schema versions on read, so stored events are never rewritten.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    type: str = Field(pattern=f"^{_EVENT_TYPE}$")
    schema_version: int = Field(ge=1)
    aggregate_id: str
    occurred_at: datetime
    actor: str
    correlation_id: str
    causation_id: str | None = None
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware (UTC)")
        return value.astimezone(UTC)

    @property
    def aggregate(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def event_name(self) -> str:
        return self.type.split(".", 1)[1]

    @property
    def subject(self) -> str:
        return event_subject(self.aggregate, self.aggregate_id, self.event_name)

    def typed_payload(self) -> EventPayload:
        """The payload as its current model, upcast from older versions.

        Validated once per envelope (the search fold asks for it several times per
        event): the result is kept beside the fields, for this very payload, type and
        version only, so a ``model_copy`` with another of them validates afresh.
        """
        key = (self.type, self.schema_version)
        kept = self.__dict__.get(_TYPED_PAYLOAD)
        if kept is not None and kept[0] is self.payload and kept[1] == key:
            return cast(EventPayload, kept[2])
        version, data = upcast(self.type, self.schema_version, self.payload)
        # Read leniently: an event stored before today's input contract is brought within it.
        typed = payload_type_for(self.type, version).model_validate(data, context=STORED)
        self.__dict__[_TYPED_PAYLOAD] = (self.payload, key, typed)  # not a field: never dumped or compared
        return typed

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> EventEnvelope:
        """An envelope read back from the stream: :func:`_as_written` when ``data`` is exactly
        what :meth:`to_bytes` writes, else full validation (an old or hand-made event)."""
        fast = _as_written(data) if cls is EventEnvelope else None  # a subclass may validate more
        return fast or cls.model_validate_json(data)


# --- reading back what to_bytes wrote, without validating it again ---------------------
# Every event in the stream was validated when appended, and a replay reads them all:
# pydantic's validation of the envelope was about a third of a bare stream read's CPU.
# An envelope whose JSON has exactly the shape and types to_bytes writes is built as
# validation would build it; anything else (another schema, a value of another type, a
# timestamp in another form, an event published on the subject by hand) is validated.
_STR_FIELDS = ("event_id", "type", "aggregate_id", "actor", "correlation_id")
# to_bytes writes every field, in this order (a dump keeps the order of the fields read).
_FIELDS_AS_WRITTEN = tuple(EventEnvelope.model_fields)
_TYPE_RE = re.compile(_EVENT_TYPE)
_new_envelope = object.__new__
_set = object.__setattr__
# What model_dump_json writes for an aware UTC datetime (pydantic reads other forms too).
_UTC_STAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")


def _as_written(data: bytes) -> EventEnvelope | None:
    """The envelope ``data`` holds if it has the exact shape and types to_bytes writes
    (the same fields and values full validation gives), else None."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(raw) is not dict or tuple(raw) != _FIELDS_AS_WRITTEN:
        return None
    for name in _STR_FIELDS:
        if type(raw[name]) is not str:
            return None
    causation, version, stamp = raw["causation_id"], raw["schema_version"], raw["occurred_at"]
    if (
        (causation is not None and type(causation) is not str)
        or type(version) is not int
        or version < 1
        or type(raw["payload"]) is not dict
        or type(stamp) is not str
        or _TYPE_RE.fullmatch(raw["type"]) is None
        or _UTC_STAMP_RE.fullmatch(stamp) is None
    ):
        return None
    try:
        raw["occurred_at"] = datetime.fromisoformat(stamp)  # "Z": tzinfo is UTC, as _utc gives
    except ValueError:  # the right shape, an impossible date (31 February): validation says why
        return None
    # What model_construct does, without its walk over the fields (slower than validating).
    envelope = _new_envelope(EventEnvelope)
    _set(envelope, "__dict__", raw)
    _set(envelope, "__pydantic_fields_set__", set(_FIELDS_AS_WRITTEN))
    _set(envelope, "__pydantic_extra__", None)
    _set(envelope, "__pydantic_private__", None)
    return envelope


def new_event(
    payload: EventPayload,
    *,
    aggregate_id: str,
    actor: str,
    correlation_id: str | None = None,
    causation: EventEnvelope | None = None,
    event_id: str | None = None,
) -> EventEnvelope:
    """Wrap a payload model in a fresh envelope.

    When the event is caused by another, it inherits that event's correlation id
    and names it as causation, which is what the audit trail shows.
    """
    eid = event_id or str(uuid7())
    if causation is not None:
        correlation = causation.correlation_id
        causation_id: str | None = causation.event_id
    else:
        correlation = correlation_id or eid
        causation_id = None
    return EventEnvelope(
        event_id=eid,
        type=payload.EVENT_TYPE,
        schema_version=payload.SCHEMA_VERSION,
        aggregate_id=aggregate_id,
        occurred_at=datetime.now(UTC),
        actor=actor,
        correlation_id=correlation,
        causation_id=causation_id,
        payload=payload.model_dump(mode="json"),
    )
